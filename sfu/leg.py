"""One browser's peer connection to the relay: offer in, answer out, then raw RTP both ways."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from . import aiortc_glue
from .aiortc_glue import GatherPolicy, NegotiatedMedia
from .chat_bridge import CHAT_CHANNEL_ID, CHAT_CHANNEL_LABEL, ChatLimiter
from .codec_choice import VP8, VideoCodec, offered_video_codecs
from .consent import consent_expired
from .errors import InvalidOffer, PortsExhausted
from .forwarder import Endpoint
from .latency import LatencyHistogram
from .media_params import STREAMS_BY_KIND, KindParams, kind_params
from .offer_limits import CandidateBudget, check_candidate, check_offer_values, offered_candidates
from .wire import Wire, take_over_wire

logger = logging.getLogger(__name__)

MAX_OFFER_BYTES = 32 * 1024
MAX_CANDIDATE_BYTES = 1024


class Leg:
    """A browser's connection, from offer to close. States: new, connecting, connected, failed,
    closed; ``on_state`` hears every change, ``on_rtp`` and ``on_rtcp`` get the decrypted
    packets, and ``on_chat`` the chat messages its limiter lets through."""

    def __init__(
        self,
        gather: GatherPolicy,
        on_state: Callable[[Leg, str], None],
        on_rtp: Callable[[bytes], None],
        on_rtcp: Callable[[bytes], None],
        latency: LatencyHistogram | None = None,
        on_chat: Callable[[str | bytes], None] | None = None,
    ) -> None:
        self.state = "new"
        # "ice", "consent" (the browser stopped answering for 30 s, sfu.consent) or "dtls"
        self.failure: str | None = None
        self.endpoint: Endpoint | None = None
        self.wire: Wire | None = None
        self.errors = 0
        self._gather = gather
        self._on_state = on_state
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._latency = latency
        self._on_chat = on_chat
        self.chat: RTCDataChannel | None = None
        self.chat_limiter = ChatLimiter()
        self._pc: RTCPeerConnection | None = None
        self._media: list[NegotiatedMedia] = []
        self._pending: set[int] = set()  # indexes into _media not yet negotiated
        self._streams: list[str] = []  # each transceiver's stream name, as _media
        self._candidates = CandidateBudget(set())

    async def answer(
        self,
        offer_sdp: str,
        choose_video: Callable[[frozenset[VideoCodec]], VideoCodec] | None = None,
    ) -> str:
        """Accept the browser's offer and return the relay's answer (candidates included).
        ``choose_video`` gets the video codecs the offer has (once it passed the checks) and
        names the one to answer with (the room's choice, codec_choice.py); VP8 without it."""
        description = parse_offer(offer_sdp)
        video_offered = offered_video_codecs(description)
        if not video_offered and any(m.kind == "video" for m in description.media):
            # said here, in the relay's words, before aiortc fails on it less clearly
            raise InvalidOffer("the offer has no VP8 or H.264 (packetization-mode 1) for video")
        video_codec = choose_video(video_offered) if choose_video else VP8
        self._candidates = CandidateBudget(offered_candidates(offer_sdp))
        pc = aiortc_glue.make_peer_connection([])
        self._pc = pc
        kinds = [m.kind for m in description.media if m.kind in ("audio", "video")]
        for kind in kinds:
            pc.addTransceiver(kind, direction="sendrecv")
        aiortc_glue.bundle_every_transceiver(pc)
        if any(m.kind == "application" for m in description.media):
            self._open_chat(pc)
        aiortc_glue.prepare_peer_connection(pc, self._gather)
        aiortc_glue.align_stream_ids(pc, str(uuid.uuid4()), str(uuid.uuid4()))
        for transceiver in pc.getTransceivers():
            self._media.append(aiortc_glue.intercept_media_engines(transceiver, self._media_ready))
        self._streams = _stream_names(kinds)
        pc.on("connectionstatechange", self._connection_state_changed)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            for transceiver in pc.getTransceivers():
                offered = next(m for m in description.media if m.rtp.muxId == transceiver.mid)
                wanted = (
                    (video_codec or VP8)
                    if transceiver.kind == "video"
                    else VideoCodec(aiortc_glue.PREFERRED_CODEC[transceiver.kind])
                )
                codec = next(
                    (c for c in offered.rtp.codecs if wanted.matches(c.mimeType, c.parameters)),
                    None,
                )
                aiortc_glue.tune_negotiation(transceiver, codec, video_codec)
                aiortc_glue.tune_header_extensions(transceiver, offered.rtp.headerExtensions)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
            if "a=candidate:" not in pc.localDescription.sdp:
                raise PortsExhausted("no free UDP port for media")
        except (InvalidOffer, PortsExhausted):
            await self.close()
            raise
        except Exception as exc:  # aiortc raises assorted errors on offers it cannot use
            await self.close()
            raise InvalidOffer(f"offer rejected: {exc}") from None
        self._pending = set(range(len(self._media)))
        self._set_state("connecting")
        return pc.localDescription.sdp

    async def add_candidate(
        self, candidate: str | None, sdp_mid: str | None = None, sdp_mline_index: int | None = None
    ) -> None:
        """A trickled candidate line from the browser (``None`` or empty: end of candidates)."""
        if self._pc is None or self.state in ("closed", "failed"):
            return
        if not candidate:
            await self._pc.addIceCandidate(None)
            return
        if len(candidate) > MAX_CANDIDATE_BYTES:
            raise InvalidOffer("candidate too long")
        line = candidate[len("candidate:") :] if candidate.startswith("candidate:") else candidate
        check_candidate(line)
        self._candidates.spend(line)  # each is an address the relay will send checks to
        try:
            parsed = aiortc_sdp.candidate_from_sdp(line)
        except (AssertionError, ValueError, IndexError) as exc:
            raise InvalidOffer(f"malformed candidate: {exc}") from None
        if parsed.protocol.lower() != "udp":
            return  # the relay listens on UDP only; ICE-TCP candidates cannot pair
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index if sdp_mid is None else None
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0
        await self._pc.addIceCandidate(parsed)

    def send_chat(self, message: str | bytes) -> bool:
        """Pass a message from the other leg to this browser; False if its channel is not open."""
        if self.chat is None or self.chat.readyState != "open":
            return False
        self.chat.send(message)
        return True

    def _open_chat(self, pc: RTCPeerConnection) -> None:
        channel = pc.createDataChannel(CHAT_CHANNEL_LABEL, negotiated=True, id=CHAT_CHANNEL_ID)
        self.chat = channel

        @channel.on("message")
        def relay(message: str | bytes) -> None:
            if self._on_chat is not None and self.chat_limiter.allow(message):
                self._on_chat(message)

    def remote_candidate_count(self) -> int:
        """How many candidates the browser gave us (in the offer or trickled); never addresses."""
        if self._pc is None:
            return 0
        transports = {t.receiver.transport.transport for t in self._pc.getTransceivers()}
        return sum(len(t.getRemoteCandidates()) for t in transports)

    async def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
        pc, self._pc = self._pc, None
        if pc is not None:
            try:
                await pc.close()
            except Exception as exc:
                # aiortc trips over its own half-built objects when the offer failed midway
                # (e.g. a data channel whose transport was never made); the leg is gone anyway
                logger.warning("event=leg_close_failed error=%s", type(exc).__name__)
        self._set_state("closed")

    # --- internals --------------------------------------------------------------------------

    def _media_ready(self, media: NegotiatedMedia) -> None:
        self._pending.discard(next(i for i, m in enumerate(self._media) if m is media))
        if self._pending or self.state != "connecting" or self._pc is None:
            return
        params: dict[str, KindParams] = {}
        for stream, m in zip(self._streams, self._media, strict=True):
            p = kind_params(m)
            if p is not None:
                params[stream] = p
        wire = take_over_wire(self._pc, self._on_rtp, self._on_rtcp, self._on_error, self._latency)
        if wire is None:
            logger.warning("event=leg_failed reason=unsupported_path")
            self._set_state("failed")
            return
        self.wire = wire
        self.endpoint = Endpoint(params=params, wire=wire)
        self._set_state("connected")

    def _on_error(self, exc: BaseException) -> None:
        self.errors += 1
        if self.errors <= 3:  # a bug, not an attack: log the first few, count the rest
            logger.error("event=forwarding_error error=%r", exc, exc_info=exc)

    async def _connection_state_changed(self) -> None:
        if self._pc is None:
            return
        state = self._pc.connectionState
        connection = aiortc_glue.ice_connection(self._pc)
        if connection is not None and consent_expired(connection):
            # aiortc closes the whole peer connection right after the failure, often before
            # this handler runs, so the state read here may already be "closed"
            self.failure = "consent"
            self._set_state("failed")
        elif state == "failed":
            self.failure = "ice" if self._pc.iceConnectionState == "failed" else "dtls"
            self._set_state("failed")
        elif state == "closed":
            self._set_state("closed")

    def _set_state(self, state: str) -> None:
        if state == self.state or self.state == "closed":
            return
        self.state = state
        try:
            self._on_state(self, state)
        except Exception:
            logger.exception("event=leg_state_callback_failed")


def _stream_names(kinds: list[str]) -> list[str]:
    """Each m-line's stream, in offer order: the first video m-line is the camera, a second
    one the screen (parse_offer allows no more)."""
    seen: dict[str, int] = {}
    names = []
    for kind in kinds:
        index = seen.get(kind, 0)
        seen[kind] = index + 1
        names.append(STREAMS_BY_KIND[kind][index])
    return names


# What an offer may hold: the call page offers audio, camera, screen (sent only while shared,
# docs/architecture.md#screen-sharing) and the chat channel; older pages offer no screen line.
MAX_MEDIA_LINES = {kind: len(streams) for kind, streams in STREAMS_BY_KIND.items()}
MAX_MEDIA_LINES["application"] = 1


def parse_offer(offer_sdp: str) -> aiortc_sdp.SessionDescription:
    """Parse and check a browser offer: at most one audio, two video (camera, screen) and one
    data m-line, bundled, DTLS."""
    if not isinstance(offer_sdp, str) or not offer_sdp.strip():
        raise InvalidOffer("empty offer")
    if len(offer_sdp.encode()) > MAX_OFFER_BYTES:
        raise InvalidOffer(f"offer larger than {MAX_OFFER_BYTES} bytes")
    if not offer_sdp.startswith("v=0"):
        raise InvalidOffer("malformed SDP: must start with v=0")
    check_offer_values(offer_sdp)
    try:
        description = aiortc_sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:
        raise InvalidOffer(f"malformed SDP: {type(exc).__name__}") from None
    counts: dict[str, int] = {}
    for media in description.media:
        counts[media.kind] = counts.get(media.kind, 0) + 1
        if media.kind not in ("audio", "video", "application"):
            raise InvalidOffer(f"unsupported media kind {media.kind!r}")
        if media.dtls is None or not media.dtls.fingerprints:
            raise InvalidOffer("offer lacks a DTLS fingerprint")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise InvalidOffer("offer lacks ICE credentials")
        if media.rtp.muxId is None:
            raise InvalidOffer("offer lacks a=mid")
    if not counts.get("audio") and not counts.get("video"):
        raise InvalidOffer("offer has neither audio nor video")
    if any(n > MAX_MEDIA_LINES[kind] for kind, n in counts.items()):
        raise InvalidOffer("at most one audio, two video (camera, screen) and one data m-line")
    bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
    if bundle is None or len(bundle.items) != len(description.media):
        raise InvalidOffer("offer must bundle all media on one transport")
    return description
