"""Every use of aiortc's and aioice's private API, in one place.

aiortc's public API always decodes what it receives and encodes what it sends. The relay uses
aiortc only for what it does well -- SDP offer/answer, ICE and the DTLS handshake -- and takes
over below that:

- ``prepare_peer_connection`` replaces aioice's candidate gathering (no port range, no address
  choice, no 1:1 NAT address, loopback always dropped in aioice) with ours.
- ``tune_negotiation`` narrows codecs to Opus + VP8 (with RTX) and negotiates the header
  extensions and RTCP feedback the relay forwards, per transceiver, before the answer is made.
- ``intercept_media_engines`` stops aiortc's RTP sender and receiver from ever starting, so no
  encoder, decoder, jitter buffer or RTCP loop exists; it hands us the negotiated parameters at
  the moment DTLS is up instead.
- ``Wire`` reads the selected ICE pair's UDP socket directly (draining it per wake-up) and hands
  STUN and DTLS back to aioice/aiortc through the socket's ``ice_guard.GuardedStunProtocol``,
  which every socket has from its first datagram (``guard_peer_connection`` for other peers).

``check_internals`` names every private attribute relied on; a test calls it so an aiortc or
aioice upgrade that moves them fails loudly instead of silently breaking the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
import pylibsrtp
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from .codec_choice import VP8, VideoCodec
from .consent import keep_consent_fresh
from .header_extensions import MID_URI
from .ice_guard import GuardedStunProtocol
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

logger = logging.getLogger(__name__)

# Header extensions the relay forwards. Others (e.g. playout-delay, video-timing) are left out of
# the answer so browsers do not send them. video-orientation matters: phones signal rotation
# with it instead of rotating pixels.
FORWARDED_EXTENSIONS = {
    "audio": (
        MID_URI,
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    ),
    "video": (
        MID_URI,
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "urn:ietf:params:rtp-hdrext:toffset",
        "urn:3gpp:video-orientation",
    ),
}
# RTCP feedback the relay can serve or pass through, as (type, parameter).
FORWARDED_FEEDBACK = {
    ("nack", None),
    ("nack", "pli"),
    ("ccm", "fir"),
    ("goog-remb", None),
    ("transport-cc", None),
}
# Opus in-band FEC lets the receiver conceal a lost packet from the next one; minptime as browsers.
OPUS_ANSWER_PARAMETERS = {"minptime": 10, "useinbandfec": 1}
PREFERRED_CODEC = {"audio": "audio/opus", "video": "video/VP8"}

# No standing queue: a packet that waited longer than MAX_PACKET_AGE in the socket is dropped
# when read (and counted) instead of forwarded late -- a browser's jitter buffer would discard
# it or, worse, stretch its playout delay for it. 100 ms is about what a video jitter buffer
# holds; anything older only adds delay for everything behind it.
MAX_PACKET_AGE = 0.1  # seconds
# The receive buffer holds that much of a leg's expected traffic and no more: the old 1 MiB held
# ~1.8 s of packets, so overload became seconds of delay while "0 loss" was reported.
# 1000 packets/s covers camera + shared screen at ~2.5 Mbit/s each plus audio (~550 packets/s)
# with headroom for a keyframe's burst. The kernel doubles the value for its own overhead and
# charges a ~1200-byte datagram ~2304 bytes (measured: SO_RCVBUF 115200 holds 100 of them), so
# half of that per packet is asked for.
LEG_PACKETS_PER_SECOND = 1000
RECEIVE_BUFFER_BYTES = int(MAX_PACKET_AGE * LEG_PACKETS_PER_SECOND * 1152)
SEND_BUFFER_BYTES = 1 << 20  # sends never wait: a full send buffer drops (Wire.send_rtp)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 on Linux; Python does not name it
_TIMESTAMP_SPACE = socket.CMSG_SPACE(16)
MAX_DATAGRAMS_PER_WAKEUP = 64  # bound the time one socket holds the event loop


def check_internals() -> list[str]:
    """Names of the private aiortc/aioice internals this module relies on that are missing."""
    sources = {
        "RTCDtlsTransport": inspect.getsource(RTCDtlsTransport),
        "RTCRtpTransceiver": inspect.getsource(RTCRtpTransceiver),
        "RTCRtpSender": inspect.getsource(RTCRtpSender),
        "Connection": inspect.getsource(aioice.ice.Connection),
        "RTCIceGatherer": inspect.getsource(RTCIceGatherer),
        "StunProtocol": inspect.getsource(aioice.ice.StunProtocol),
    }
    needed = {
        "RTCDtlsTransport": ("self._rx_srtp", "self._tx_srtp", "self._transport"),
        "RTCRtpTransceiver": ("self._bundled", "self._codecs", "self._headerExtensions"),
        "RTCRtpSender": ("self._ssrc", "self._rtx_ssrc", "self._stream_id"),
        "Connection": (
            "self._nominated",
            "self._protocols",
            "def get_component_candidates",
            "def request_received",
            "def data_received",
            "def query_consent",
            "def build_request",
            "self._query_consent_task",
            "self.remote_password",
        ),
        "RTCIceGatherer": ("self._connection",),
        # sfu.ice_guard replaces datagram_received; it relies on these being what they were
        "StunProtocol": ("self.receiver", "self.transactions", "def datagram_received"),
    }
    missing = [
        f"{owner}: {name}"
        for owner, names in needed.items()
        for name in names
        if name not in sources[owner]
    ]
    for owner, name in (
        (aioice.ice, "StunProtocol"),
        (aioice.ice, "server_reflexive_candidate"),
        (asyncio.SelectorEventLoop, "_add_reader"),
        (asyncio.SelectorEventLoop, "_remove_reader"),
    ):
        if not hasattr(owner, name):
            missing.append(f"{owner.__name__}.{name}")
    return missing


# --- ICE candidate gathering ----------------------------------------------------------------


@dataclass(frozen=True)
class GatherPolicy:
    """Where a leg's ICE candidates come from (the relay side of the connection)."""

    # IPs to bind, resolved by the caller; None: the host addresses aioice finds (test peers)
    addresses: tuple[str, ...] | None
    bind_port: Callable[[str], socket.socket]  # binds a non-blocking UDP socket on the address
    advertised_ip: str | None = None  # 1:1 NAT: announce this instead of the private address
    stun_server: tuple[str, int] | None = None


def make_peer_connection(ice_servers: list[dict[str, Any]]) -> RTCPeerConnection:
    """A peer connection with exactly the configured ICE servers (aiortc defaults to Google's)."""
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers
    ]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


def bundle_every_transceiver(pc: RTCPeerConnection) -> None:
    """Let the offer's BUNDLE move every transceiver onto the bundle transport. Call after adding
    transceivers, before setRemoteDescription.

    Under aiortc's "balanced" policy a second video transceiver (the screen) starts on the first
    video's transport and is marked bundled already, so when BUNDLE moves that transport's first
    user to the audio m-line's, it is skipped: it keeps a transport that is stopped and never
    connects, and the leg never got its parameters. "max-bundle" instead would take the remote
    candidates of the offer's last m-line, which a balanced browser (Firefox) gathers on a
    transport it then drops.
    """
    for transceiver in pc.getTransceivers():
        transceiver._bundled = False


def guard_peer_connection(pc: RTCPeerConnection) -> None:
    """Gather ``pc``'s host candidates on guarded sockets (``sfu.ice_guard``), as the relay's legs
    do, so that only the remote peer's authenticated traffic reaches its ICE and DTLS.

    For peer connections other than the relay's own (the tests' peers); call after adding tracks
    and channels, before the first offer or answer. Host candidates only: no STUN or TURN.
    """
    prepare_peer_connection(pc, GatherPolicy(addresses=None, bind_port=_bind_any_port))


def _bind_any_port(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, 0))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def prepare_peer_connection(pc: RTCPeerConnection, policy: GatherPolicy) -> None:
    """Make every ICE gatherer of ``pc`` gather with ``policy``. Call after adding transceivers."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)  # bundled away later, unless it comes first
    for dtls in transports:
        connection = dtls.transport.iceGatherer._connection
        # replacing aioice's methods on this one instance is the point; mypy forbids it generally
        connection.get_component_candidates = _gatherer(connection, policy)  # type: ignore[method-assign, assignment]
        connection.query_consent = keep_consent_fresh(connection)  # type: ignore[method-assign]


def _gatherer(
    connection: aioice.ice.Connection, policy: GatherPolicy
) -> Callable[[int, list[str], int], Coroutine[Any, Any, list[Candidate]]]:
    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        loop = asyncio.get_running_loop()
        candidates: list[Candidate] = []
        protocols = []
        for address in addresses if policy.addresses is None else policy.addresses:
            try:
                sock = policy.bind_port(address)
            except OSError as exc:
                logger.warning(
                    "event=ice_bind_failed address_family=%s error=%s", len(address), exc
                )
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            # without kernel timestamps the relay neither samples its latency nor drops stale
            # packets; the small receive buffer still bounds the queue
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            # guarded from the first datagram: strangers never reach aioice or aiortc's DTLS
            _, protocol = await loop.create_datagram_endpoint(
                lambda: GuardedStunProtocol(connection), sock=sock
            )
            host, port = sock.getsockname()[:2]
            announced = policy.advertised_ip or host
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", announced),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=announced,
                port=port,
                type="host",
            )
            protocol.relay_socket = sock  # the real socket; asyncio only hands out a wrapper
            candidates.append(protocol.local_candidate)
            protocols.append(protocol)
        connection._protocols += protocols
        if policy.stun_server and protocols:
            tasks = [
                asyncio.create_task(aioice.ice.server_reflexive_candidate(p, policy.stun_server))
                for p in protocols
                if ":" not in p.local_candidate.host
            ]
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=timeout)
                for task in pending:
                    task.cancel()
                for task in done:
                    if task.exception() is None:
                        candidates.append(task.result()[0])
        return candidates

    return get_component_candidates


# --- negotiation ----------------------------------------------------------------------------


def _feedback_allowed(fb: RTCRtcpFeedback) -> bool:
    return (fb.type, fb.parameter) in FORWARDED_FEEDBACK


def tune_negotiation(
    transceiver: RTCRtpTransceiver,
    offered: RTCRtpCodecParameters | None,
    video_codec: VideoCodec | None = None,
) -> None:
    """Narrow what aiortc is about to answer for one transceiver (call after setRemoteDescription).

    ``offered`` is the browser's own codec entry for the chosen codec, whose feedback list we
    intersect with what the relay can forward. ``video_codec`` is the room's choice for video
    (sfu/codec_choice.py); VP8 when not given.
    """
    kind = transceiver.kind
    wanted = (video_codec or VP8) if kind == "video" else VideoCodec(PREFERRED_CODEC[kind])
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    main = next((c for c in codecs if wanted.matches(c.mimeType, c.parameters)), None)
    if main is None:
        raise ValueError(f"the offer has no {wanted} for {kind}")
    chosen = [main]
    rtx = next(
        (
            c
            for c in codecs
            if c.mimeType.lower() == f"{kind}/rtx" and c.parameters.get("apt") == main.payloadType
        ),
        None,
    )
    if rtx is not None:
        chosen.append(rtx)
    if offered is not None:
        main.rtcpFeedback = [fb for fb in offered.rtcpFeedback if _feedback_allowed(fb)]
    if kind == "audio":
        main.parameters = dict(OPUS_ANSWER_PARAMETERS)
    transceiver._codecs = chosen


def tune_header_extensions(
    transceiver: RTCRtpTransceiver, offered: list[RTCRtpHeaderExtensionParameters]
) -> None:
    wanted = FORWARDED_EXTENSIONS[transceiver.kind]
    transceiver._headerExtensions = [e for e in offered if e.uri in wanted]


def align_stream_ids(pc: RTCPeerConnection, stream_id: str, screen_stream_id: str) -> None:
    """One msid stream for audio and the camera, so the browser lip-syncs them; a second video
    transceiver (the shared screen) gets a stream of its own, so the browser does not try to
    sync the microphone with two pictures, and the page can tell the screen apart."""
    videos = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            videos += 1
        screen = transceiver.kind == "video" and videos > 1
        transceiver.sender._stream_id = screen_stream_id if screen else stream_id


@dataclass
class NegotiatedMedia:
    """What one transceiver of a leg ended up with, once DTLS is up."""

    kind: str
    mid: str | None
    send: RTCRtpSendParameters | None = None
    receive: RTCRtpReceiveParameters | None = None
    local_ssrc: int = 0
    local_rtx_ssrc: int = 0


def intercept_media_engines(
    transceiver: RTCRtpTransceiver,
    on_ready: Callable[[NegotiatedMedia], None],
) -> NegotiatedMedia:
    """Keep aiortc from encoding, decoding or running RTCP for this transceiver.

    aiortc calls ``sender.send`` and ``receiver.receive`` once DTLS is connected; we record their
    parameters and call ``on_ready`` instead of starting any of aiortc's media machinery.
    """
    media = NegotiatedMedia(
        kind=transceiver.kind,
        mid=transceiver.mid,
        local_ssrc=transceiver.sender._ssrc,
        local_rtx_ssrc=transceiver.sender._rtx_ssrc,
    )

    async def send(parameters: RTCRtpSendParameters) -> None:
        media.send = parameters
        media.mid = parameters.muxId
        if media.receive is not None or transceiver.currentDirection == "sendonly":
            on_ready(media)

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        media.receive = parameters
        media.mid = parameters.muxId or media.mid
        on_ready(media)

    transceiver.sender.send = send  # type: ignore[method-assign]
    transceiver.receiver.receive = receive  # type: ignore[method-assign]
    return media


# --- the wire: the selected pair's socket and SRTP contexts ---------------------------------


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


def ice_connection(pc: RTCPeerConnection) -> aioice.ice.Connection | None:
    """The aioice connection under ``pc``'s (bundled) transport, once there is one."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    dtls: RTCDtlsTransport = transceivers[0].receiver.transport
    return dtls.transport._connection


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
