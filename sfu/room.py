"""A room: two seats, one leg each, and a forwarder per direction between them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from . import rtcp
from .aiortc_glue import GatherPolicy
from .codec_choice import VideoCodec, best_shared
from .errors import RoomClosed, RoomFull
from .forwarder import Forwarder
from .latency import LatencyHistogram
from .leg import Leg
from .snapshot import LegStats, RoomSnapshot, counts_of
from .totals import RelayTotals

logger = logging.getLogger(__name__)

SEATS_PER_ROOM = 2
# Codec switches a room asks for before it settles on VP8 for good: a page that offers H.264 and
# then not, over and over, would otherwise make the other page renegotiate each time.
MAX_RENEGOTIATIONS = 3


class Room:
    def __init__(
        self,
        room_id: str,
        gather: GatherPolicy,
        keyframe_interval: float = 0.5,
        report_interval: float = 1.0,
        on_close: Callable[[Room], None] | None = None,
        latency: LatencyHistogram | None = None,
        totals: RelayTotals | None = None,
    ) -> None:
        self.id = room_id
        self.on_leg_state: Callable[[str, str], None] | None = None
        # (seat, codec mime type): that seat's browser must offer again so its leg can be
        # answered with the codec both share (codec_choice.py); signaling tells the page
        self.on_renegotiate: Callable[[str, str], None] | None = None
        self.closed = False
        self._gather = gather
        self._keyframe_interval = keyframe_interval
        self._report_interval = report_interval
        self._on_close = on_close
        self._latency = latency
        self._totals = totals
        self._legs: dict[str, Leg] = {}
        self.chat_relayed = 0
        self.chat_dropped = 0
        self._forwarders: dict[str, Forwarder] = {}  # by source seat
        self._offered_video: dict[str, frozenset[VideoCodec]] = {}  # each seat's last offer
        self._video_codec: dict[str, VideoCodec] = {}  # what each seat's leg was answered with
        self._renegotiations = 0
        self._reports = asyncio.ensure_future(self._send_receiver_reports())

    @property
    def chat_refused(self) -> int:
        """Chat messages the current legs' limits refused (too big or too fast)."""
        return sum(leg.chat_limiter.refused for leg in self._legs.values())

    def chat_open(self, seat: str) -> bool:
        """Whether the seat's chat channel to the relay is open."""
        leg = self._legs.get(seat)
        return leg is not None and leg.chat is not None and leg.chat.readyState == "open"

    def leg_state(self, seat: str) -> str | None:
        leg = self._legs.get(seat)
        return leg.state if leg else None

    async def connect(self, seat: str, offer_sdp: str) -> str:
        """Answer ``seat``'s offer; a seat that already has a leg gets it replaced (reconnect)."""
        if self.closed:
            raise RoomClosed("room is closed")
        if seat not in self._forwarders and len(self._forwarders) >= SEATS_PER_ROOM:
            raise RoomFull("room already has two participants")
        forwarder = self._forwarders.get(seat)
        if forwarder is None:
            forwarder = self._forwarders[seat] = Forwarder(self._keyframe_interval)
            waiting = next((leg for s, leg in self._legs.items() if s != seat), None)
            if waiting is not None and waiting.state == "connected" and waiting.endpoint:
                # the first participant's leg connected while this seat did not exist yet, so
                # nobody made it this direction's sink
                forwarder.set_sink(waiting.endpoint)
        old = self._legs.pop(seat, None)
        if old is not None:
            await old.close()
            self._detach(seat)
        leg = Leg(
            self._gather,
            on_state=lambda leg, state: self._leg_state_changed(seat, leg, state),
            on_rtp=forwarder.on_rtp,
            on_rtcp=lambda data: self._dispatch_rtcp(seat, data),
            latency=self._latency,
            on_chat=lambda message: self._relay_chat(seat, message),
        )
        self._legs[seat] = leg
        other = next((s for s in self._forwarders if s != seat), None)
        chosen: list[tuple[frozenset[VideoCodec], VideoCodec]] = []

        def choose(offered: frozenset[VideoCodec]) -> VideoCodec:
            # H.264 only where the first browser can be asked to offer again: without that,
            # the first leg would stay on VP8 and the two could not see each other
            settled = self._renegotiations >= MAX_RENEGOTIATIONS
            asked = other and self.on_renegotiate and not settled
            known = self._offered_video.get(other) if asked and other is not None else None
            codec = best_shared(offered, known)
            chosen.append((offered, codec))
            return codec

        try:
            answer = await leg.answer(offer_sdp, choose)
        except Exception:
            if self._legs.get(seat) is leg:
                del self._legs[seat]
            raise
        offered, codec = chosen[0]
        self._offered_video[seat] = offered
        self._video_codec[seat] = codec
        if other is not None and other in self._video_codec and self._video_codec[other] != codec:
            # the other leg was answered before this browser's codecs were known
            logger.info("renegotiate seat=%s codec=%s", other, codec)
            if self.on_renegotiate is not None:
                self._renegotiations += 1
                self.on_renegotiate(other, codec.mime)
        return answer

    def video_codec(self, seat: str) -> str | None:
        """The video codec ``seat``'s leg was answered with ("video/VP8;..."), for tests."""
        codec = self._video_codec.get(seat)
        return str(codec) if codec else None

    async def add_ice_candidate(
        self, seat: str, candidate: str | None, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        leg = self._legs.get(seat)
        if leg is not None:
            await leg.add_candidate(candidate, sdp_mid, sdp_mline_index)

    async def disconnect(self, seat: str) -> None:
        """Close ``seat``'s leg; the seat stays reserved for the same participant's return."""
        leg = self._legs.get(seat)
        if leg is not None:
            await leg.close()  # still registered, so its "closed" reaches on_leg_state
            if self._legs.get(seat) is leg:
                del self._legs[seat]
            self._detach(seat)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._reports.cancel()
        for seat in list(self._legs):
            await self.disconnect(seat)
        if self._totals is not None:
            self._totals.retire(f.counters for f in self._forwarders.values())
        if self._on_close is not None:
            self._on_close(self)

    def stats(self) -> dict[str, LegStats]:
        """Each seat's connection and counts, by seat."""
        return {leg.seat: leg for leg in self._leg_stats()}

    def snapshot(self) -> RoomSnapshot:
        return RoomSnapshot(
            legs=self._leg_stats(),
            chat_relayed=self.chat_relayed,
            chat_dropped=self.chat_dropped,
            chat_refused=self.chat_refused,
        )

    def forwarders(self) -> list[Forwarder]:
        return list(self._forwarders.values())

    # --- internals --------------------------------------------------------------------------

    def _leg_stats(self) -> tuple[LegStats, ...]:
        result = []
        for seat, forwarder in self._forwarders.items():
            leg = self._legs.get(seat)
            other = self._other_forwarder(seat)
            wire = leg.wire if leg else None
            result.append(
                LegStats(
                    seat=seat,
                    state=leg.state if leg else "absent",
                    candidate_type=wire.candidate_type if wire else None,
                    forwarded_from=counts_of(forwarder.counters),
                    round_trip_time=other.sink_rtt if other else None,
                    fraction_lost=other.sink_fraction_lost if other else 0.0,
                    dropped_sends=wire.dropped_sends if wire else 0,
                    forwarding_errors=leg.errors if leg else 0,
                    remote_candidates=leg.remote_candidate_count() if leg else 0,
                )
            )
        return tuple(result)

    def _other_forwarder(self, seat: str) -> Forwarder | None:
        return next((f for s, f in self._forwarders.items() if s != seat), None)

    def _detach(self, seat: str) -> None:
        self._forwarders[seat].set_source(None)
        other = self._other_forwarder(seat)
        if other is not None:
            other.set_sink(None)

    def _leg_state_changed(self, seat: str, leg: Leg, state: str) -> None:
        if self._legs.get(seat) is not leg:
            return  # a replaced leg's last words
        if self._totals is not None:
            if state == "connected":
                self._totals.legs_connected += 1
            elif state == "failed" and leg.failure == "ice":
                self._totals.ice_failures += 1
            elif state == "failed" and leg.failure == "consent":
                self._totals.consent_expiries += 1
            elif state == "failed":
                self._totals.dtls_failures += 1
        if state == "connected" and leg.endpoint is not None:
            self._forwarders[seat].set_source(leg.endpoint)
            other = self._other_forwarder(seat)
            if other is not None:
                other.set_sink(leg.endpoint)
        elif state in ("failed", "closed"):
            self._detach(seat)
        if self.on_leg_state is not None:
            self.on_leg_state(seat, state)

    def _relay_chat(self, seat: str, message: str | bytes) -> None:
        other = next((leg for s, leg in self._legs.items() if s != seat), None)
        if other is None or not other.send_chat(message):
            self.chat_dropped += 1  # nobody to give it to: chat is never stored
        else:
            self.chat_relayed += 1

    def _dispatch_rtcp(self, seat: str, data: bytes) -> None:
        own = self._forwarders[seat]
        other = self._other_forwarder(seat)
        for view in rtcp.iter_packets(data):
            if view.packet_type == rtcp.SR:
                own.on_source_sender_report(view.data)
                if other is not None and view.count:
                    other.on_sink_report_blocks(rtcp.report_blocks(view.data, rtcp.SR, view.count))
            elif view.packet_type == rtcp.RR:
                if other is not None:
                    other.on_sink_report_blocks(rtcp.report_blocks(view.data, rtcp.RR, view.count))
            elif view.packet_type in (rtcp.RTPFB, rtcp.PSFB) and other is not None:
                other.on_sink_feedback(view)

    async def _send_receiver_reports(self) -> None:
        while True:
            await asyncio.sleep(self._report_interval)
            now = time.monotonic()
            for seat, leg in list(self._legs.items()):
                if leg.state != "connected" or leg.endpoint is None:
                    continue
                blocks = self._forwarders[seat].receiver_report_blocks(now)
                if blocks:
                    sender = next(iter(leg.endpoint.params.values())).local_ssrc
                    leg.endpoint.wire.send_rtcp(rtcp.build_receiver_report(sender, blocks))
