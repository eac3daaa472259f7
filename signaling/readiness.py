"""What /readyz checks: the database answers, a UDP port of the media range can be bound, the
service is not shutting down, and in a cluster Redis answers. Each check is cheap enough for a
probe every few seconds (Redis's is the link's last known state: no command per probe)."""

from __future__ import annotations

import asyncio
import socket

from signaling.config import Config
from signaling.storage import Storage, StorageFailure

__all__ = ["DATABASE_TIMEOUT_SECONDS", "check_readiness", "udp_port_free"]

# A probe that hangs is worse than one that fails: a healthy SQLite ping takes microseconds.
DATABASE_TIMEOUT_SECONDS = 2.0


async def check_readiness(
    config: Config, storage: Storage, draining: bool, redis_reachable: bool | None = None
) -> dict[str, bool]:
    """Each check's name and whether it passed; `redis` only in a cluster (`redis_reachable`
    not None)."""
    checks = {
        "database": await _database_answers(storage),
        "udp_ports": udp_port_free(
            config.media.udp_port_min, config.media.udp_port_max, _probe_address(config)
        ),
        "accepting_joins": not draining,
    }
    if redis_reachable is not None:
        checks["redis"] = redis_reachable
    return checks


async def _database_answers(storage: Storage) -> bool:
    try:
        await asyncio.wait_for(storage.ping(), DATABASE_TIMEOUT_SECONDS)
    except (StorageFailure, TimeoutError):
        # every backend reports its trouble as a StorageFailure; anything else is a bug and
        # is logged as one by the error middleware, not hidden as "not ready"
        return False
    return True


def udp_port_free(low: int, high: int, address: str) -> bool:
    """Whether some port of ``low..high`` can be bound on ``address`` right now (bind, close).

    Bind and close happen without an await in between, so the relay (on the same event loop)
    never races the probe for a port.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for port in range(low, high + 1):
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue
            return True
    return False


def _probe_address(config: Config) -> str:
    # The wildcard address collides with a port bound on any one interface, so a port it can
    # bind is free wherever the relay gathers candidates.
    addresses = config.media.listen_addresses
    return addresses[0] if addresses else "0.0.0.0"
