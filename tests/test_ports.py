"""tests/ports.py: reservations never overlap, within a process or across processes, and skip
ports that other programs hold."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import ports
from tests.ports import BLOCK, PortRange, reserve_ports

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PortRange]:
    """A search window of two blocks that only this test searches: held for real (so concurrent
    runs keep out of it), then searched again with a lock directory of the test's own."""
    with reserve_ports(2 * BLOCK) as window:
        monkeypatch.setattr(ports, "_search_window", lambda: (window.low, window.high + 1))
        monkeypatch.setattr(ports, "LOCK_DIR", tmp_path)
        yield window


def test_reservations_held_at_once_never_overlap():
    held = [reserve_ports(100) for _ in range(8)]
    try:
        taken = [set(r) for r in held]
        assert sum(len(t) for t in taken) == len(set().union(*taken))
        assert all(r.low % BLOCK == 0 and r.size == 100 for r in held)
        assert all(r.high < ports._search_window()[1] for r in held)
    finally:
        for r in held:
            r.release()


def test_a_block_another_process_holds_is_never_handed_out(two_blocks, tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from pathlib import Path\n"
            "from tests import ports\n"
            f"ports._search_window = lambda: ({two_blocks.low}, {two_blocks.high + 1})\n"
            f"ports.LOCK_DIR = Path({str(tmp_path)!r})\n"
            "r = ports.reserve_ports(ports.BLOCK)\n"
            "print(r.low, flush=True)\n"
            "sys.stdin.read()\n",
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        theirs = int(holder.stdout.readline())
        for _ in range(10):  # the search order is random; each time only the other block is free
            with reserve_ports(BLOCK) as mine:
                assert mine.low != theirs
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_port_another_program_bound_is_never_handed_out(two_blocks):
    # A program outside this scheme binds a port of the second block, on one address only.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.1", two_blocks.low + BLOCK + 5))
        for _ in range(10):
            with reserve_ports(BLOCK) as got:
                assert got.low == two_blocks.low


def test_the_search_fails_with_a_message_when_everything_is_held(two_blocks):
    with reserve_ports(2 * BLOCK), pytest.raises(RuntimeError, match="no 1 contiguous free"):
        reserve_ports(1)


def test_a_held_name_is_refused_until_its_holder_lets_go(tmp_path, monkeypatch):
    monkeypatch.setattr(ports, "LOCK_DIR", tmp_path)
    first = ports.hold("subnet-10.77.1-2")
    assert first is not None
    assert ports.hold("subnet-10.77.1-2") is None
    os.close(first)
    again = ports.hold("subnet-10.77.1-2")
    assert again is not None
    os.close(again)
