"""The relay: rooms, and the ICE settings every leg shares."""

from __future__ import annotations

import secrets

from aioice.ice import get_host_addresses

from .aiortc_glue import GatherPolicy
from .config import RelayConfig
from .errors import RelayFull
from .latency import LatencyHistogram
from .ports import PortRange
from .room import Room
from .snapshot import RelaySnapshot, sum_counts
from .totals import RelayTotals


class Relay:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self._ports = PortRange(config.udp_port_min, config.udp_port_max)
        self._rooms: dict[str, Room] = {}
        self._latency = LatencyHistogram()  # every leg's sampled receive-to-send delay
        self._totals = RelayTotals()
        self._gather = GatherPolicy(
            addresses=tuple(gather_addresses(config)),
            bind_port=self._ports.bind,
            advertised_ip=config.public_ip,
            stun_server=_host_port(config.stun_server),
        )

    @property
    def rooms(self) -> dict[str, Room]:
        return dict(self._rooms)

    def create_room(self) -> Room:
        if self.config.max_rooms is not None and len(self._rooms) >= self.config.max_rooms:
            raise RelayFull("the relay hosts as many rooms as it is configured to")
        room_id = secrets.token_hex(8)
        room = Room(
            room_id,
            self._gather,
            keyframe_interval=self.config.keyframe_request_interval,
            report_interval=self.config.receiver_report_interval,
            on_close=self._forget,
            latency=self._latency,
            totals=self._totals,
        )
        self._rooms[room_id] = room
        self._totals.rooms_created += 1
        return room

    def _forget(self, room: Room) -> None:
        self._rooms.pop(room.id, None)

    def snapshot(self) -> RelaySnapshot:
        """The live rooms and the counters since start, copied now (for metrics, at scrape)."""
        rooms = tuple(room.snapshot() for room in self._rooms.values())
        totals = self._totals
        return RelaySnapshot(
            rooms=rooms,
            rooms_created=totals.rooms_created,
            legs_connected=totals.legs_connected,
            ice_failures=totals.ice_failures,
            dtls_failures=totals.dtls_failures,
            consent_expiries=totals.consent_expiries,
            port_exhaustions=self._ports.exhausted,
            forwarded=totals.retired + sum_counts(room.forwarded for room in rooms),
            latency=self._latency.snapshot(),
        )

    async def close(self) -> None:
        for room in list(self._rooms.values()):
            await room.close()


def gather_addresses(config: RelayConfig) -> list[str]:
    addresses = list(config.listen_addresses) or get_host_addresses(use_ipv4=True, use_ipv6=True)
    if config.allow_loopback and "127.0.0.1" not in addresses:
        addresses.append("127.0.0.1")
    return addresses


def _host_port(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return host, int(port)
