"""Reading a synthetic peer's socket: the one receive loop of the load generators.

``relay_load.py``, ``relay_vs_janus.py`` and ``soak.py`` take the nominated ICE socket and the
SRTP sessions from aiortc and read the socket themselves. What they do per datagram is the same
(demultiplex, unprotect, find the payload, hand STUN and DTLS back to aioice); what they record is
their own. So this loop reads and decrypts, and each benchmark's ``on_rtp`` hook records:

- ``relay_load.py``: ``perf_counter`` at read, against its own send times;
- ``relay_vs_janus.py``: the kernel's receive time (``SO_TIMESTAMPNS``, ``kernel_stamps=True``),
  so the generator's scheduling after arrival is not in the delay;
- ``soak.py``: its own clock in the hook, per interval.

The byte ranges and header arithmetic are the relay's own (``sfu.rtp``), not a copy.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

from sfu.rtp import HANDSHAKE, SRTP, demux, header_length

# Linux's value; older Pythons do not export the name
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESTAMP_SPACE = socket.CMSG_SPACE(16)  # one struct timespec
_TIMESPEC = struct.Struct("qq")
BURST = 256  # datagrams per wake-up at the most, like the relay's own reader
DATAGRAM_BYTES = 2048  # above any packet the generators send (1100-byte payload + headers)

# (decrypted packet, offset of its payload, arrival): perf_counter seconds, or with
# kernel_stamps the kernel's receive time in ns (0 when the datagram carried none)
OnRtp = Callable[[bytes, int, float], None]


class ReadablePeer(Protocol):
    """What the loop needs of ``relay_load.Peer``: its socket, SRTP session and aioice protocol."""

    sock: socket.socket | None
    rx: Any
    protocol: Any


def drain(
    peer: ReadablePeer,
    on_rtp: OnRtp,
    on_bad: Callable[[], None],
    kernel_stamps: bool = False,
) -> None:
    """Read what is waiting on ``peer.sock`` (up to ``BURST`` datagrams); call ``on_rtp`` per RTP
    packet, ``on_bad`` per one that does not decrypt or whose header runs past its end. STUN and
    DTLS go to aioice (consent checks, alerts); SRTCP from the server is not counted."""
    sock = peer.sock
    assert sock is not None
    recvfrom, recvmsg = sock.recvfrom, sock.recvmsg
    unprotect, protocol = peer.rx.unprotect, peer.protocol
    clock = time.perf_counter
    for _ in range(BURST):
        try:
            if kernel_stamps:
                data, ancillary, _flags, addr = recvmsg(DATAGRAM_BYTES, TIMESTAMP_SPACE)
                arrival: float = kernel_stamp_ns(ancillary)
            else:
                data, addr = recvfrom(DATAGRAM_BYTES)
                arrival = clock()
        except (BlockingIOError, InterruptedError):
            return
        what = demux(data)
        if what == SRTP:
            try:
                plain = unprotect(data)
            except Exception:
                on_bad()
                continue
            header_end = header_length(plain, plain[0])
            if header_end < 0:
                on_bad()  # the servers never send this: counted with what does not decrypt
                continue
            on_rtp(plain, header_end, arrival)
        elif what == HANDSHAKE:
            protocol.datagram_received(data, addr)


def kernel_stamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The ``SO_TIMESTAMPNS`` receive time in ns from ``recvmsg``'s ancillary data; 0 if none."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = _TIMESPEC.unpack_from(value)
            return seconds * 1_000_000_000 + nanoseconds
    return 0
