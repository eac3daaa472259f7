"""/healthz says the process answers; /readyz says whether it can take a consultation now."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from signaling.drain import DRAIN
from signaling.readiness import udp_port_free
from tests.ports import PortRange, reserve_ports
from tests.signaling.api_server import media_config, write_config
from tests.signaling.test_metrics import Served, serving_with_metrics


@pytest.fixture
def two_ports() -> Iterator[PortRange]:
    """A range of its own, small enough to fill in a test."""
    with reserve_ports(2) as ports:
        yield ports


@pytest.fixture
async def served(tmp_path: Path, two_ports: PortRange) -> AsyncIterator[Served]:
    async with serving_with_metrics(
        write_config(tmp_path, extra=media_config(two_ports))
    ) as served:
        yield served


async def get_json(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def test_ready_when_database_ports_and_joins_are_all_fine(served):
    status, body = await get_json(f"{served.api.url}/readyz")
    assert status == 200
    assert body == {
        "status": "ok",
        "checks": {"database": "ok", "udp_ports": "ok", "accepting_joins": "ok"},
    }


async def test_not_ready_when_the_database_does_not_answer(served):
    await served.api.storage.close()
    status, body = await get_json(f"{served.api.url}/readyz")
    assert status == 503
    assert body["failed"] == ["database"]


async def test_not_ready_when_every_udp_port_of_the_range_is_taken(served, two_ports):
    taken = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for port, sock in zip(two_ports, taken, strict=True):
            sock.bind(("127.0.0.1", port))
        status, body = await get_json(f"{served.api.url}/readyz")
    finally:
        for sock in taken:
            sock.close()
    assert status == 503
    assert body["failed"] == ["udp_ports"]
    assert body["checks"]["database"] == "ok"


async def test_not_ready_but_alive_while_draining(served):
    served.app[DRAIN].begin()
    status, body = await get_json(f"{served.api.url}/readyz")
    assert (status, body["failed"]) == (503, ["accepting_joins"])
    status, body = await get_json(f"{served.api.url}/healthz")
    assert (status, body) == (200, {"status": "ok"})


def test_a_port_range_with_one_free_port_is_usable(two_ports):
    # Both ports are held for this test (tests/ports.py): a port next to an ephemeral one may
    # belong to any other socket of the machine.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", two_ports.low))
        assert not udp_port_free(two_ports.low, two_ports.low, "127.0.0.1")
        assert udp_port_free(two_ports.low, two_ports.high, "127.0.0.1")
