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
- ``sfu.consent`` replaces aioice's consent checks (RFC 7675 with retransmissions).
- ``sfu.wire`` then reads the selected ICE pair's UDP socket directly (draining it per wake-up)
  and hands STUN and DTLS back to aioice/aiortc through the socket's
  ``ice_guard.GuardedStunProtocol``, which every socket has from its first datagram
  (``guard_peer_connection`` for other peers).

``check_internals`` names every private attribute relied on (sfu.wire's too); a test calls it so an aiortc or
aioice upgrade that moves them fails loudly instead of silently breaking the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aioice.ice
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
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from .codec_choice import VP8, VideoCodec
from .consent import keep_consent_fresh
from .header_extensions import MID_URI
from .ice_guard import GuardedStunProtocol
from .wire import RECEIVE_BUFFER_BYTES, SEND_BUFFER_BYTES, SO_TIMESTAMPNS

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


def check_internals() -> list[str]:
    """Names of the private aiortc/aioice internals this module relies on that are missing."""
    sources = {
        "RTCDtlsTransport": inspect.getsource(RTCDtlsTransport),
        "RTCRtpTransceiver": inspect.getsource(RTCRtpTransceiver),
        "RTCRtpSender": inspect.getsource(RTCRtpSender),
        "RTCRtpReceiver": inspect.getsource(RTCRtpReceiver),
        "Connection": inspect.getsource(aioice.ice.Connection),
        "RTCIceGatherer": inspect.getsource(RTCIceGatherer),
        "StunProtocol": inspect.getsource(aioice.ice.StunProtocol),
    }
    needed = {
        "RTCDtlsTransport": ("self._rx_srtp", "self._tx_srtp", "self._transport"),
        "RTCRtpTransceiver": ("self._bundled", "self._codecs", "self._headerExtensions"),
        "RTCRtpSender": ("self._ssrc", "self._rtx_ssrc", "self._stream_id"),
        # released by _drop_receive_machinery; aiortc checks both for None before use
        "RTCRtpReceiver": (
            "self.__remote_bitrate_estimator is not None",
            "self.__nack_generator is not None",
        ),
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


_told_capped = False


def _note_capped_receive_buffer(sock: socket.socket) -> None:
    """Say once per process when net.core.rmem_max cuts the legs' receive buffers short: the
    relay still works, but falls back to dropping in the kernel during a stall (sfu.wire)."""
    global _told_capped
    if _told_capped:
        return
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # the kernel doubles it
    if granted < RECEIVE_BUFFER_BYTES:
        _told_capped = True
        logger.warning(
            "event=receive_buffer_capped requested=%d granted=%d hint=%s",
            RECEIVE_BUFFER_BYTES,
            granted,
            "raise net.core.rmem_max (docs/operating.md)",
        )


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
            _note_capped_receive_buffer(sock)
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
    _drop_receive_machinery(transceiver.receiver)
    return media


# aiortc's RTCRtpReceiver builds these in its constructor for every video receiver; the
# bandwidth estimator alone is a window of 1000 rate buckets (~48 KiB).
_UNUSED_RECEIVER_PARTS = (
    "_RTCRtpReceiver__remote_bitrate_estimator",
    "_RTCRtpReceiver__nack_generator",
)


def _drop_receive_machinery(receiver: RTCRtpReceiver) -> None:
    """Release what aiortc built to receive media itself. The relay's receivers never receive
    (``receive`` is intercepted, and ``sfu.wire`` reads the socket), so these were dead weight:
    ~0.19 MiB of each room with a camera and a screen transceiver per leg (issue #17). aiortc's
    audio receivers run without either, so None is a state aiortc knows."""
    for name in _UNUSED_RECEIVER_PARTS:
        setattr(receiver, name, None)


def ice_connection(pc: RTCPeerConnection) -> aioice.ice.Connection | None:
    """The aioice connection under ``pc``'s (bundled) transport, once there is one."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    dtls: RTCDtlsTransport = transceivers[0].receiver.transport
    return dtls.transport._connection
