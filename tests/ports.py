"""Ports that concurrent test runs cannot collide on.

A fixed range such as 43000-43099 in a test config breaks the moment two runs share a machine
(two CI jobs, a developer's run beside the flake loop), and it lies inside Linux's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 by default), where every client socket of
the machine -- aiortc's own peers included -- may take one of its ports at any time.

So a test asks for a range here instead. Ranges come from below the ephemeral range, where the
kernel hands out nothing on its own, in fixed blocks; a block is held by an exclusive ``flock`` on
a file named after it for as long as the test uses it. Every process on the machine that asks here
skips a held block, and a block is only handed out once each of its ports binds for UDP (and TCP
when asked) on the wildcard address, which collides with a bind on any one address. The lock dies
with its process, so a killed run leaves nothing to clean up.

Hold a range until whatever uses it has bound it, and longer: the lock is only a file's, so it
never keeps the owner (a server process started by the test) from binding, while releasing it
first lets the next caller -- the same test reserving a second node's port, or another run --
be handed the same still-unbound port (a cluster test's second node once failed with "address
already in use" that way).

Use it as a context manager or through the ``udp_ports`` fixture of tests/conftest.py::

    with reserve_ports(100) as ports:
        config = f"udp_port_min: {ports.low}\\nudp_port_max: {ports.high}\\n"
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["BLOCK", "PortRange", "hold", "reserve_ports"]

# Every reservation starts on a multiple of BLOCK and spans whole blocks: two reservations never
# overlap even when they differ in size, because each holds the lock of every block it spans.
BLOCK = 64
# Below these the ports are the well-known ones and those of common daemons (coturn's 3478/5349,
# Prometheus' 9090, 8080...); 20480 leaves them all alone.
LOWEST = 20480  # a multiple of BLOCK
LOCK_DIR = Path(tempfile.gettempdir()) / "sprechzimmer-test-ports"


@dataclass
class PortRange:
    """``low..high`` inclusive, held until :meth:`release` (or the process ends)."""

    low: int
    high: int
    _locks: list[int] = field(default_factory=list, repr=False)

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def __iter__(self):
        return iter(range(self.low, self.high + 1))

    def release(self) -> None:
        for fd in self._locks:
            os.close(fd)  # closing the descriptor drops its flock
        self._locks.clear()

    def __enter__(self) -> PortRange:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def reserve_ports(size: int = 1, tcp: bool = False) -> PortRange:
    """``size`` contiguous ports free for UDP (and TCP with ``tcp``) that no other caller of this
    function on the machine holds; raises RuntimeError naming the range searched when none is."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    blocks = -(-size // BLOCK)
    bottom, top = _search_window()  # top exclusive
    starts = list(range(bottom, top - blocks * BLOCK + 1, BLOCK))
    random.SystemRandom().shuffle(starts)  # concurrent runs start their search in different places
    LOCK_DIR.mkdir(mode=0o777, exist_ok=True)
    for start in starts:
        locks = _lock_blocks(start, blocks)
        if locks is None:
            continue
        if _all_bind(start, start + size - 1, tcp):
            return PortRange(start, start + size - 1, locks)
        for fd in locks:
            os.close(fd)
    raise RuntimeError(
        f"no {size} contiguous free ports in {bottom}-{top - 1} (blocks held by other runs are "
        f"locked in {LOCK_DIR}; ports bound by other programs are skipped)"
    )


def hold(name: str) -> int | None:
    """An exclusive hold on ``name`` (anything else test runs must not share, such as a subnet)
    for every caller on the machine: a descriptor to ``os.close`` when done, or None when another
    process or caller holds it."""
    LOCK_DIR.mkdir(mode=0o777, exist_ok=True)
    fd = os.open(LOCK_DIR / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _search_window() -> tuple[int, int]:
    """From LOWEST up to (not including) the kernel's ephemeral range."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return LOWEST, max(low, LOWEST + BLOCK)


def _lock_blocks(start: int, blocks: int) -> list[int] | None:
    locks: list[int] = []
    for block in range(blocks):
        path = LOCK_DIR / f"{start + block * BLOCK}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            for held in locks:
                os.close(held)
            return None
        locks.append(fd)
    return locks


def _all_bind(low: int, high: int, tcp: bool) -> bool:
    kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if tcp else (socket.SOCK_DGRAM,)
    for port in range(low, high + 1):
        for kind in kinds:
            with socket.socket(socket.AF_INET, kind) as sock:
                try:
                    sock.bind(("0.0.0.0", port))
                except OSError:
                    return False
    return True
