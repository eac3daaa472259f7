"""Is one recvmmsg(2) per batch, through ctypes, cheaper than recvfrom per datagram?

The relay's socket reader calls ``recvfrom`` once per datagram (issue #17's profile: ~11 % of
the relay's CPU). This measures the CPU time (``time.process_time``, this thread's own, so other
load on the machine does not count) to read batches of ``--batch`` 1200-byte datagrams queued on
a loopback socket, three ways, interleaved round by round (the machine's speed drifts):

- ``recvfrom``: what the relay does today, one syscall and one (bytes, address) tuple each;
- ``recvmsg+ts``: ``recvmsg`` with room for the kernel timestamp (the relay's first read of a
  batch, and every read while stale packets are dropped);
- ``recvmmsg``: one ``recvmmsg`` into preallocated buffers, then ``bytes`` of each one (a
  datagram must become a ``bytes`` for pylibsrtp anyway) and its source port.

Sending the batch is outside the timed region. Prints the median and min-max of the rounds per
datagram.

    PYTHONPATH=. .venv/bin/python benchmarks/recv_batching.py
"""

from __future__ import annotations

import argparse
import ctypes
import socket
import statistics
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
MSG_DONTWAIT = 0x40


class IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class MsgHdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(IoVec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class MMsgHdr(ctypes.Structure):
    _fields_ = (("hdr", MsgHdr), ("len", ctypes.c_uint))


class BatchReader:
    """recvmmsg into ``count`` preallocated 2048-byte buffers with sockaddr_in room."""

    def __init__(self, count: int) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.count = count
        self.buffers = [ctypes.create_string_buffer(2048) for _ in range(count)]
        self.names = [ctypes.create_string_buffer(16) for _ in range(count)]
        self.iovecs = (IoVec * count)()
        self.msgs = (MMsgHdr * count)()
        for i in range(count):
            self.iovecs[i].base = ctypes.addressof(self.buffers[i])
            self.iovecs[i].len = 2048
            hdr = self.msgs[i].hdr
            hdr.name = ctypes.addressof(self.names[i])
            hdr.namelen = 16
            hdr.iov = ctypes.pointer(self.iovecs[i])
            hdr.iovlen = 1

    def read(self, fd: int) -> list[tuple[bytes, int]]:
        got = self.libc.recvmmsg(fd, self.msgs, self.count, MSG_DONTWAIT, None)
        out = []
        for i in range(max(got, 0)):
            length = self.msgs[i].len
            name = self.names[i].raw
            out.append((self.buffers[i].raw[:length], (name[2] << 8) | name[3]))
            self.msgs[i].hdr.namelen = 16
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batches-per-round", type=int, default=50)
    args = parser.parse_args()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = rx.getsockname()
    payload = bytes(1200)
    reader = BatchReader(args.batch)
    space = socket.CMSG_SPACE(16)

    def fill() -> None:
        for _ in range(args.batch):
            tx.sendto(payload, target)

    def by_recvfrom() -> int:
        n = 0
        for _ in range(args.batch):
            rx.recvfrom(2048)
            n += 1
        return n

    def by_recvmsg() -> int:
        n = 0
        for _ in range(args.batch):
            rx.recvmsg(2048, space)
            n += 1
        return n

    def by_recvmmsg() -> int:
        return len(reader.read(rx.fileno()))

    ways = {"recvfrom": by_recvfrom, "recvmsg+ts": by_recvmsg, "recvmmsg": by_recvmmsg}
    figures: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():
            spent = 0.0
            read = 0
            for _ in range(args.batches_per_round):
                fill()
                started = time.process_time()
                read += way()
                spent += time.process_time() - started
            figures[name].append(spent / read * 1e6)
    print(
        f"reading batches of {args.batch} x 1200 B from a loopback socket, CPU us per datagram, "
        f"{args.rounds} interleaved rounds of {args.batches_per_round} batches"
    )
    for name, values in figures.items():
        print(
            f"{name:>11}: median {statistics.median(values):5.2f} us "
            f"(min {min(values):5.2f}, max {max(values):5.2f})"
        )


if __name__ == "__main__":
    main()
