from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sfu import Relay, RelayConfig
from tests.ports import PortRange
from tests.sfu.media_peers import MediaPeer, use_loopback_only


def relay_config(ports: PortRange, **settings) -> RelayConfig:
    """The relay on 127.0.0.1 in ``ports`` (tests/ports.py: no concurrent test or run has them)."""
    return RelayConfig(
        udp_port_min=ports.low,
        udp_port_max=ports.high,
        listen_addresses=("127.0.0.1",),
        **settings,
    )


@pytest.fixture
async def relay(udp_ports: PortRange) -> AsyncIterator[Relay]:
    use_loopback_only()
    relay = Relay(relay_config(udp_ports))
    yield relay
    await relay.close()


@pytest.fixture
async def peers():
    """Factory for media peers that are closed after the test."""
    made: list[MediaPeer] = []

    def make(*args, **kwargs) -> MediaPeer:
        peer = MediaPeer(*args, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()


async def join(room, seat: str, peer: MediaPeer) -> str:
    answer = await room.connect(seat, await peer.offer())
    await peer.accept(answer)
    return answer
