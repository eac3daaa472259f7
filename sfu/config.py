"""The relay's own settings; ``signaling`` builds one from its configuration file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelayConfig:
    udp_port_min: int = 40000
    udp_port_max: int = 40199
    # addresses to gather ICE candidates on; empty: every non-loopback interface
    listen_addresses: tuple[str, ...] = ()
    # 1:1 NAT (e.g. a cloud VM): announce this address instead of the bound private one
    public_ip: str | None = None
    # offer 127.0.0.1 as well: for tests and for a browser on the same machine
    allow_loopback: bool = False
    # "host:port" of a STUN server to learn the relay's public address from; usually not needed
    stun_server: str | None = None
    keyframe_request_interval: float = 0.5  # seconds; see keyframe_limiter
    receiver_report_interval: float = 1.0  # seconds; RFC 3550 suggests ~5 s, browsers use 1 s
    max_rooms: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.udp_port_min <= self.udp_port_max <= 65535:
            raise ValueError("need 1 <= udp_port_min <= udp_port_max <= 65535")
