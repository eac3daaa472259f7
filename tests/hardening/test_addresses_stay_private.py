"""Neither browser learns the other's address: two peers in separate network namespaces, the
real relay in between, and everything each peer receives searched for the other's address.

Each namespace has one veth link to the root namespace, where the relay listens on both links'
addresses. IP forwarding stays off, so the peers can reach the relay and nothing else: the only
way A's address could reach B is through the relay itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sfu import Relay, RelayConfig
from tests.hardening.netns_peer import ENOUGH_RTCP, ENOUGH_RTP
from tests.ports import hold

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Site:
    """A namespace with a veth link to the root namespace: the peer's and the relay's end."""

    namespace: str
    peer_address: str
    relay_address: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _make_site(tag: str, subnet: int) -> Site:
    pid = os.getpid()
    site = Site(f"sz-{tag}-{pid}", f"10.77.{subnet}.2", f"10.77.{subnet}.1")
    root_end, ns_end = f"sz{tag}{pid}r", f"sz{tag}{pid}n"  # interface names: 15 bytes at most
    _ip("netns", "add", site.namespace)
    _ip("link", "add", root_end, "type", "veth", "peer", "name", ns_end)
    _ip("link", "set", ns_end, "netns", site.namespace)
    _ip("addr", "add", f"{site.relay_address}/24", "dev", root_end)
    _ip("link", "set", root_end, "up")
    _ip("-n", site.namespace, "addr", "add", f"{site.peer_address}/24", "dev", ns_end)
    _ip("-n", site.namespace, "link", "set", ns_end, "up")
    _ip("-n", site.namespace, "link", "set", "lo", "up")
    return site


def _remove_site(tag: str) -> None:
    pid = os.getpid()
    # deleting the namespace deletes the veth pair; the root end goes too if it never moved
    for args in (("netns", "del", f"sz-{tag}-{pid}"), ("link", "del", f"sz{tag}{pid}r")):
        subprocess.run(["ip", *args], capture_output=True, timeout=10)


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    with two_free_subnets() as (first, second):
        try:
            yield _make_site("a", first), _make_site("b", second)
        finally:
            _remove_site("a")
            _remove_site("b")


@contextmanager
def two_free_subnets() -> Iterator[tuple[int, int]]:
    """Two /24s of 10.77.0.0/16 (their third octets) that no concurrent run holds
    (tests/ports.py's hold) and no interface of the root namespace uses: two runs with the same
    subnet on two veth links would route each other's packets."""
    used = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    candidates = [n for n in range(1, 255, 2) if f" 10.77.{n}." not in used]
    candidates = [n for n in candidates if f" 10.77.{n + 1}." not in used]
    random.shuffle(candidates)
    for first in candidates:
        lock = hold(f"subnet-10.77.{first}-{first + 1}")
        if lock is None:
            continue
        try:
            yield first, first + 1
        finally:
            os.close(lock)
        return
    raise RuntimeError("no two free /24s left in 10.77.0.0/16 for the network namespaces")


@pytest.fixture
async def relay(sites, udp_ports):
    a, b = sites
    relay = Relay(
        RelayConfig(
            udp_port_min=udp_ports.low,
            udp_port_max=udp_ports.high,
            listen_addresses=(a.relay_address, b.relay_address),
        )
    )
    yield relay
    await relay.close()


class PeerProcess:
    """tests/hardening/netns_peer.py inside a namespace, one JSON object a line each way."""

    def __init__(self, process: asyncio.subprocess.Process, record: Path) -> None:
        self.process = process
        self.record_path = record

    @classmethod
    async def start(cls, site: Site, picture: str, expected: str, tmp: Path) -> PeerProcess:
        record = tmp / f"{site.namespace}.json"
        process = await asyncio.create_subprocess_exec(
            *("ip", "netns", "exec", site.namespace, sys.executable),
            *("-m", "tests.hardening.netns_peer", site.peer_address, picture, expected),
            str(record),
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process, record)

    async def read(self, timeout: float = 45) -> dict:
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert line, "the peer process ended early"
        return json.loads(line)

    async def write(self, message: dict) -> None:
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    def record(self) -> dict:
        return json.loads(self.record_path.read_text())

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def candidate_addresses(sdp: str) -> set[str]:
    return set(re.findall(r"^a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ", sdp, re.M | re.I))


def traces_of(address: str, record: dict) -> list[str]:
    """Where ``address`` shows up in a peer's record: as text, or as its four raw bytes."""
    text, raw = address.encode(), socket.inet_aton(address)
    found = []
    if address in record["answer"]:
        found.append("answer")
    for kind in ("rtp", "rtcp"):
        for n, item in enumerate(record[kind]):
            data = base64.b64decode(item)
            # a VP8 payload is near-random: a chance 4-byte match is about 2^-32 per position,
            # below 1 in 1000 over the few hundred kilobytes a run receives
            if text in data or raw in data:
                found.append(f"{kind}[{n}]")
    if address in record["stun_addresses"]:
        found.append("stun")
    if address in record["senders"]:
        found.append("sender")
    return found


async def test_neither_peer_receives_the_others_address_through_the_relay(relay, sites, tmp_path):
    a, b = sites
    peer_a = await PeerProcess.start(a, "red_blue", "green_white", tmp_path)
    peer_b = await PeerProcess.start(b, "green_white", "red_blue", tmp_path)
    try:
        offer_a, offer_b = (await peer_a.read())["offer"], (await peer_b.read())["offer"]
        assert candidate_addresses(offer_a) == {a.peer_address}
        assert candidate_addresses(offer_b) == {b.peer_address}
        room = relay.create_room()
        answer_a = await room.connect("a", offer_a)
        answer_b = await room.connect("b", offer_b)
        await peer_a.write({"answer": answer_a})
        await peer_b.write({"answer": answer_b})
        seen_a, seen_b = await peer_a.read(), await peer_b.read()
        assert seen_a["sees_other"] and seen_b["sees_other"], (seen_a, seen_b)
        # both keep receiving until each has recorded enough to search (netns_peer.py)
        enough_a, enough_b = await peer_a.read(), await peer_b.read()
        assert enough_a["enough"] and enough_b["enough"], (enough_a, enough_b)
        for peer in (peer_a, peer_b):
            await peer.write({"stop": True})
        for peer in (peer_a, peer_b):
            assert "recorded" in await peer.read()
        record_a, record_b = peer_a.record(), peer_b.record()
    finally:
        await peer_a.stop()
        await peer_b.stop()

    relay_addresses = {a.relay_address, b.relay_address}
    for answer, site in ((answer_a, a), (answer_b, b)):
        offered = candidate_addresses(answer)
        assert site.relay_address in offered and offered <= relay_addresses, offered
        assert a.peer_address not in answer and b.peer_address not in answer
    assert record_a["answer"] == answer_a and record_b["answer"] == answer_b
    for record in (record_a, record_b):
        assert len(record["rtp"]) >= ENOUGH_RTP and len(record["rtcp"]) >= ENOUGH_RTCP
    assert set(record_a["senders"]) <= relay_addresses
    assert set(record_b["senders"]) <= relay_addresses
    assert traces_of(a.peer_address, record_b) == []
    assert traces_of(b.peer_address, record_a) == []
