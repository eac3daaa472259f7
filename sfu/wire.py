"""The wire: a connected leg's selected UDP socket and SRTP contexts, read and written directly.

Once ICE and DTLS are up (aiortc_glue), ``take_over_wire`` replaces asyncio's one-datagram-per-round
reader of the nominated pair's socket with ``drain``: it reads everything queued (bounded), drops
RTP that waited past ``MAX_PACKET_AGE`` (no standing queue), unprotects SRTP and hands the plain
packets to the forwarder; STUN and DTLS go back to aioice/aiortc through the socket's
``ice_guard.GuardedStunProtocol``. ``Wire.send_rtp`` protects and sends synchronously and never
waits. The private aiortc/aioice attributes used here are listed in
``aiortc_glue.check_internals`` with the others.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aioice.ice
import pylibsrtp
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from .latency import SAMPLE_EVERY, LatencyHistogram
from .rtp import (
    DTLS_FIRST_MAX,
    DTLS_FIRST_MIN,
    RTCP_SECOND_MAX,
    RTCP_SECOND_MIN,
    SRTP_FIRST_MAX,
    SRTP_FIRST_MIN,
    STUN_FIRST_MAX,
)

__all__ = [
    "LEG_PACKETS_PER_SECOND",
    "MAX_PACKET_AGE",
    "RECEIVE_BUFFER_BYTES",
    "RECEIVE_BUFFER_SECONDS",
    "SEND_BUFFER_BYTES",
    "SO_TIMESTAMPNS",
    "Wire",
    "take_over_wire",
]

# No standing queue: a packet that waited longer than MAX_PACKET_AGE in the socket is dropped
# when read (and counted) instead of forwarded late -- a browser's jitter buffer would discard
# it or, worse, stretch its playout delay for it. 100 ms is about what a video jitter buffer
# holds; anything older only adds delay for everything behind it.
MAX_PACKET_AGE = 0.1  # seconds
# The age bound is kept when reading, not by the size of the receive buffer. A buffer sized to
# it (100 packets, as it once was) made the kernel drop whatever arrived while the relay was
# behind -- the browser's consent checks too, and an ICE agent that counts six unanswered checks
# closed the call (issue #17: every relay leg died under overload while Janus kept its own). So
# the buffer holds RECEIVE_BUFFER_SECONDS of a leg's expected traffic; reading a stale datagram
# and dropping it costs ~2 us, a fraction of forwarding it, and STUN behind it is still answered.
# 1000 packets/s covers camera + shared screen at ~2.5 Mbit/s each plus audio (~550 packets/s)
# with headroom for a keyframe's burst. The kernel doubles the value for its own overhead and
# charges a ~1200-byte datagram ~2304 bytes (measured: SO_RCVBUF 115200 holds 100 of them), so
# half of that per packet is asked for. net.core.rmem_max caps it (Debian: 212992, which holds
# ~0.2 s; docs/operating.md says how to raise it).
LEG_PACKETS_PER_SECOND = 1000
RECEIVE_BUFFER_SECONDS = 0.5
RECEIVE_BUFFER_BYTES = int(RECEIVE_BUFFER_SECONDS * LEG_PACKETS_PER_SECOND * 1152)
SEND_BUFFER_BYTES = 1 << 20  # sends never wait: a full send buffer drops (Wire.send_rtp)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 on Linux; Python does not name it
_TIMESTAMP_SPACE = socket.CMSG_SPACE(16)
MAX_DATAGRAMS_PER_WAKEUP = 64  # bound the time one socket holds the event loop


@dataclass
class Wire:
    """The leg's selected UDP path with its SRTP contexts; sends are synchronous and never block."""

    rx_srtp: pylibsrtp.Session
    tx_srtp: pylibsrtp.Session
    sock: socket.socket
    remote_addr: tuple[str, int]
    candidate_type: str
    dropped_sends: int = 0
    dropped_late: int = 0  # RTP that waited longer than MAX_PACKET_AGE in the socket
    _closed: bool = field(default=False, repr=False)

    def send_rtp(self, packet: bytes) -> None:
        if self._closed:
            return
        try:
            self.sock.sendto(self.tx_srtp.protect(packet), self.remote_addr)
        except (BlockingIOError, InterruptedError):
            self.dropped_sends += 1  # kernel buffer full: UDP semantics, drop
        except (OSError, pylibsrtp.Error, ValueError):
            self.dropped_sends += 1

    def send_rtcp(self, packet: bytes) -> None:
        if self._closed:
            return
        try:
            self.sock.sendto(self.tx_srtp.protect_rtcp(packet), self.remote_addr)
        except (OSError, pylibsrtp.Error, ValueError):
            self.dropped_sends += 1

    def close(self) -> None:
        self._closed = True


def take_over_wire(
    pc: RTCPeerConnection,
    on_rtp: Callable[[bytes], None],
    on_rtcp: Callable[[bytes], None],
    on_error: Callable[[BaseException], None],
    latency: LatencyHistogram | None = None,
) -> Wire | None:
    """Read the selected pair's socket directly; None if the path is not a plain UDP socket."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    dtls: RTCDtlsTransport = transceivers[0].receiver.transport
    connection = dtls.transport._connection
    pair = connection._nominated.get(1)
    if pair is None or dtls._rx_srtp is None:
        return None
    protocol = pair.protocol
    sock = getattr(protocol, "relay_socket", None)
    if not isinstance(protocol, aioice.ice.StunProtocol) or sock is None:
        return None  # not a socket our gatherer bound (e.g. a TURN allocation); not supported
    wire = Wire(
        rx_srtp=dtls._rx_srtp,
        tx_srtp=dtls._tx_srtp,
        sock=sock,
        remote_addr=pair.remote_addr,
        candidate_type=pair.remote_candidate.type,
    )
    _install_reader(sock, protocol, wire, on_rtp, on_rtcp, on_error, latency)
    return wire


def _install_reader(
    sock: socket.socket,
    protocol: aioice.ice.StunProtocol,
    wire: Wire,
    on_rtp: Callable[[bytes], None],
    on_rtcp: Callable[[bytes], None],
    on_error: Callable[[BaseException], None],
    latency: LatencyHistogram | None,
) -> None:
    loop = asyncio.get_running_loop()
    fd = sock.fileno()
    recvfrom = sock.recvfrom
    recvmsg = sock.recvmsg
    unprotect = wire.rx_srtp.unprotect
    unprotect_rtcp = wire.rx_srtp.unprotect_rtcp
    hand_back = protocol.datagram_received
    countdown = SAMPLE_EVERY if latency is not None else -1

    def follow(addr: tuple[str, int]) -> None:
        # The browser may move to another candidate pair (a second interface, a network
        # change). A packet that passed SRTP authentication proves where the browser now is,
        # so answer there, as aiortc's own path would after ICE nominated the new pair.
        wire.remote_addr = (addr[0], addr[1])

    def drain() -> None:
        # One wake-up reads everything queued (bounded), instead of asyncio's one datagram per
        # selector round; SRTP is handled here, STUN and DTLS go back to aioice/aiortc.
        #
        # Stale packets: the queue is FIFO, so only its head can be too old. Each batch reads
        # with the kernel's receive timestamp until the first datagram younger than
        # MAX_PACKET_AGE, dropping the stale RTP before it; every later datagram is younger, so
        # the rest of the batch uses plain recvfrom. One clock read per batch. STUN and DTLS
        # are handed back whatever their age: consent checks must never starve behind media.
        nonlocal countdown
        stale_before = time.time() - MAX_PACKET_AGE
        checking = True
        for _ in range(MAX_DATAGRAMS_PER_WAKEUP):
            received_at = 0.0
            try:
                countdown -= 1
                sample = countdown == 0  # never when latency is None: countdown runs below 0
                if sample:  # before the read: the batch's last read fails with EAGAIN
                    countdown = SAMPLE_EVERY
                if checking or sample:
                    data, ancillary, _, addr = recvmsg(2048, _TIMESTAMP_SPACE)
                    received_at = _kernel_time(ancillary)
                    if checking:
                        if 0.0 < received_at < stale_before:
                            if (
                                len(data) > 1
                                and SRTP_FIRST_MIN <= data[0] <= SRTP_FIRST_MAX
                                and not RTCP_SECOND_MIN <= data[1] <= RTCP_SECOND_MAX
                            ):
                                wire.dropped_late += 1
                                continue
                        else:
                            checking = False
                    if not sample:
                        received_at = 0.0  # read for its age, not a latency sample
                else:
                    data, addr = recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            # rtp.demux, inline: a call per datagram costs
            if len(data) > 1 and SRTP_FIRST_MIN <= data[0] <= SRTP_FIRST_MAX:
                try:
                    if RTCP_SECOND_MIN <= data[1] <= RTCP_SECOND_MAX:
                        plain = unprotect_rtcp(data)
                        if addr != wire.remote_addr:
                            follow(addr)
                        on_rtcp(plain)
                    else:
                        plain = unprotect(data)
                        if addr != wire.remote_addr:  # compare inline: a call per packet costs
                            follow(addr)
                        on_rtp(plain)
                        if received_at:
                            latency.observe(time.time() - received_at)  # type: ignore[union-attr]
                except pylibsrtp.Error:
                    pass  # replayed or forged: libsrtp authenticates every packet
                except Exception as exc:  # a bug must not kill the socket reader
                    on_error(exc)
            elif data and (
                data[0] <= STUN_FIRST_MAX or DTLS_FIRST_MIN <= data[0] <= DTLS_FIRST_MAX
            ):
                hand_back(data, addr)  # STUN or DTLS, as RFC 7983 demultiplexes
            # anything else is dropped here: aiortc's DTLS reader dies on an empty datagram

    # the selector loop's own reader slot, which create_datagram_endpoint registered: replaced
    # rather than added beside, so asyncio's one-datagram-per-round reader never runs again
    loop._remove_reader(fd)  # type: ignore[attr-defined]
    loop._add_reader(fd, drain)  # type: ignore[attr-defined]


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive time (wall clock) from SO_TIMESTAMPNS ancillary data, or 0."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack_from("qq", data)
            return float(seconds + nanoseconds / 1e9)
    return 0.0
