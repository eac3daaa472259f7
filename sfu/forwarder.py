"""One direction of a room: RTP from the source leg's browser to the sink leg's browser.

The hot path (``on_rtp``) takes a decrypted packet and, without decoding anything, rewrites the
fields that differ between the two legs' negotiations -- SSRC, payload type, header-extension ids,
and sequence number / timestamp offsets that keep the sink's view continuous across reconnects --
then hands it to the sink's wire for SRTP protection and sending.

The slower paths answer the sink's RTCP feedback (NACKs from the packet cache, keyframe requests
coalesced upstream, REMB and transport-cc passed through with SSRCs translated) and translate the
source's sender reports so the sink can keep audio and video in sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import rtcp
from .forwarding_state import (
    Counters,
    Downstream,
    Endpoint,
    MediaRoute,
    RtxRoute,
    Upstream,
)
from .header_extensions import MID_URI, ExtensionRewriter, parse_elements
from .keyframe_limiter import KeyframeRequestLimiter
from .media_params import STREAMS_BY_KIND, KindParams
from .reception import ReceptionStats
from .rtp import (
    FIXED_HEADER,
    extension_block,
    header_length,
    payload_end,
    unwrap_rtx,
    with_extension_block,
    wrap_rtx,
)

__all__ = ["Counters", "Endpoint", "Forwarder", "RouteTables"]


@dataclass(frozen=True)
class RouteTables:
    """How many entries the forwarder's per-SSRC tables hold (they must stay bounded)."""

    media_routes: int
    rtx_routes: int
    rewriting_routes: int  # routes whose header extensions are rewritten per packet
    receptions: int


class Forwarder:
    """One direction of a room. ``clock`` is a monotonic clock in seconds (tests pass their
    own); everything time-dependent here reads it and nothing else."""

    def __init__(
        self, keyframe_interval: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source: Endpoint | None = None
        self.sink: Endpoint | None = None
        self.counters = Counters()
        self._clock = clock
        # by stream (audio, camera "video", screen: the Endpoint's keys), from each negotiation
        self._upstream: dict[str, Upstream] = {}
        self._downstream: dict[str, Downstream] = {}
        # by source SSRC; at most one of each per stream, so a flood of SSRCs cannot grow them
        self._media_routes: dict[int, MediaRoute] = {}
        self._rtx_routes: dict[int, RtxRoute] = {}
        # which stream a new source SSRC belongs to: announced in the offer, or named by the
        # packet's mid extension; camera and screen share their payload types
        self._stream_by_ssrc: dict[int, str] = {}
        self._stream_by_mid: dict[str, str] = {}
        self._keyframe_interval = keyframe_interval
        self._keyframes: dict[str, KeyframeRequestLimiter] = {}  # per video stream
        self.sink_rtt: float | None = None  # seconds, from the sink's receiver reports
        self.sink_fraction_lost = 0.0

    # --- wiring -----------------------------------------------------------------------------

    def set_source(self, source: Endpoint | None) -> None:
        """A (new) source leg: its SSRCs start over, the sink's numbering continues."""
        self.source = source
        params = source.params if source is not None else {}
        self._upstream = {stream: Upstream(p, stream) for stream, p in params.items()}
        self._stream_by_ssrc = {
            ssrc: stream for stream, p in params.items() for ssrc in p.remote_ssrcs
        }
        self._stream_by_mid = {p.mid: stream for stream, p in params.items() if p.mid is not None}
        self._keyframes = {
            stream: KeyframeRequestLimiter(self._keyframe_interval)
            for stream, p in params.items()
            if p.kind == "video"
        }
        self._media_routes.clear()
        self._rtx_routes.clear()

    def set_sink(self, sink: Endpoint | None) -> None:
        """A (new) sink leg: fresh outgoing streams, and it needs a keyframe to start decoding."""
        self.sink = sink
        params = sink.params if sink is not None else {}
        self._downstream = {stream: Downstream(p, stream) for stream, p in params.items()}
        self._media_routes.clear()
        self._rtx_routes.clear()
        now = self._clock()
        for stream, limiter in self._keyframes.items():
            limiter.reset()
            self.request_keyframe(now, stream)

    def route_tables(self) -> RouteTables:
        routes: list[MediaRoute | RtxRoute] = [
            *self._media_routes.values(),
            *self._rtx_routes.values(),
        ]
        return RouteTables(
            media_routes=len(self._media_routes),
            rtx_routes=len(self._rtx_routes),
            rewriting_routes=sum(r.rewriter is not None for r in routes),
            receptions=sum(u.reception is not None for u in self._upstream.values()),
        )

    # --- RTP hot path -----------------------------------------------------------------------

    def on_rtp(self, packet: bytes) -> None:
        if len(packet) < 12:  # literal 12s: a constant costs less than a global per packet
            self.counters.dropped += 1
            return
        first, second, seq, ts, ssrc = FIXED_HEADER.unpack_from(packet)
        header_end = 12
        if first & 0x3F:  # padding, CSRCs or an extension: check their lengths before trusting them
            header_end = header_length(packet, first)
            if header_end < 0 or (first & 0x20 and payload_end(packet, first, header_end) < 0):
                self.counters.dropped += 1
                return
        route = self._media_routes.get(ssrc)
        if route is None:
            rtx = self._rtx_routes.get(ssrc)
            if rtx is not None:
                self._forward_rtx(rtx, packet, first, second, ts, header_end)
                return
            if self.sink is None:
                return  # alone in the room: nobody to forward to, nothing wrong
            new = self._new_route(packet, first, header_end)
            if new is None:
                self.counters.dropped += 1
                return
            if isinstance(new, RtxRoute):
                self._forward_rtx(new, packet, first, second, ts, header_end)
                return
            route = new
        now = self._clock()
        route.reception.update(seq, ts, now)
        out = bytearray(packet)
        rewriter = route.rewriter
        if rewriter is not None and first & 0x10:
            fixed = 12 + 4 * (first & 0x0F)
            if (
                packet[fixed] != 0xBE
                or packet[fixed + 1] != 0xDE
                or not rewriter.rewrite_in_place(out, fixed + 4, header_end)
            ):
                rebuilt = _rewrite_extensions(rewriter, packet, first, header_end)
                if rebuilt is None:
                    self.counters.dropped += 1
                    return
                out = rebuilt
        out_seq, out_ts = route.mapping.forward(seq, ts, now)
        FIXED_HEADER.pack_into(
            out, 0, out[0], (second & 0x80) | route.out_pt, out_seq, out_ts, route.out_ssrc
        )
        data = bytes(out)
        cache = route.cache
        if cache is not None:
            cache.store(out_seq, data, now)
        route.wire.send_rtp(data)
        counters = self.counters
        if route.is_video:
            counters.video_packets += 1
            counters.video_bytes += len(data)
        else:
            counters.audio_packets += 1
            counters.audio_bytes += len(data)

    def _new_route(
        self, packet: bytes, first: int, header_end: int
    ) -> MediaRoute | RtxRoute | None:
        source, sink = self.source, self.sink
        if source is None or sink is None:
            return None
        _, second, seq, ts, ssrc = FIXED_HEADER.unpack_from(packet)
        pt = second & 0x7F
        stream = self._stream_by_ssrc.get(ssrc) or self._stream_named_by_mid(
            packet, first, header_end
        )
        if stream is not None:
            params = source.params[stream]
            if pt != params.payload_type and pt != params.rtx_payload_type:
                return None
        else:
            # no SSRC announced and no mid in the packet: the payload type names the kind, and
            # the kind's first stream (audio, or the camera) takes it
            found = _classify(source.params, pt)
            if found is None:
                return None
            stream, params = found
        is_rtx = pt == params.rtx_payload_type
        upstream = self._upstream.get(stream)
        downstream = self._downstream.get(stream)
        if upstream is None or downstream is None:
            return None  # e.g. a screen for a sink whose page has no screen m-line
        if params.codec != downstream.params.codec:
            # one leg still on VP8 while the other was answered H.264 (until the first browser
            # has offered again, codec_choice.py): the sink could not decode these packets
            return None
        full = ExtensionRewriter(
            params.ext_ids, downstream.params.ext_ids, params.mid, downstream.params.mid
        )
        rewriter = None if full.identity else full
        if is_rtx:
            # RTX carries the original packet; _forward_rtx numbers it through the main stream
            # and sends it on the sink's RTX stream, or unwrapped when the sink has none
            if upstream.rtx_ssrc is not None and upstream.rtx_ssrc != ssrc:
                self._rtx_routes.pop(upstream.rtx_ssrc, None)  # one RTX stream per stream
            upstream.rtx_ssrc = ssrc
            rtx = self._rtx_routes[ssrc] = RtxRoute(upstream, downstream, rewriter)
            return rtx
        now = self._clock()
        if upstream.ssrc != ssrc:
            if upstream.ssrc is not None:
                self._media_routes.pop(upstream.ssrc, None)  # the old source stopped; never mix
            upstream.ssrc = ssrc
            upstream.reception = ReceptionStats(ssrc, params.clock_rate, seq)
            downstream.mapping.start_source(seq, ts, now)
            # a new encoder needs its keyframe now, whatever the sink asked for lately
            limiter = self._keyframes.get(stream)
            if limiter is not None:
                limiter.reset()
        if params.kind == "video":
            # the sink joins mid-stream or the source is new: either way the sink's decoder
            # needs a keyframe before it can show anything
            self.request_keyframe(now, stream)
        route = self._media_routes[ssrc] = MediaRoute(upstream, downstream, rewriter, sink.wire)
        return route

    def _stream_named_by_mid(self, packet: bytes, first: int, header_end: int) -> str | None:
        """The stream whose mid the packet's mid extension carries (RFC 8843), if it has one."""
        if not first & 0x10 or self.source is None:
            return None
        _, profile, block = extension_block(packet, first, header_end)
        elements = parse_elements(profile, block)
        if not elements:
            return None
        # one id per extension across a BUNDLE group, so any m-line's mid id is the one
        mid_id = next(
            (i for p in self.source.params.values() if (i := p.ext_ids.get(MID_URI)) is not None),
            None,
        )
        for ext_id, value in elements:
            if ext_id == mid_id:
                return self._stream_by_mid.get(value.decode("ascii", "replace"))
        return None

    def _forward_rtx(
        self, route: RtxRoute, packet: bytes, first: int, second: int, ts: int, header_end: int
    ) -> None:
        upstream, downstream = route.upstream, route.downstream
        main = self._media_routes.get(upstream.ssrc) if upstream.ssrc is not None else None
        end = payload_end(packet, first, header_end)  # on_rtp has checked the padding
        if main is None or end - header_end < 2:
            return  # padding-only probe or RTX before its stream: nothing to recover
        if route.rewriter is not None and first & 0x10:
            rewritten = _rewrite_extensions(route.rewriter, packet, first, header_end)
            if rewritten is None:
                return
            shift = len(packet) - len(rewritten)
            # only read from here on, and a bytearray reads like bytes
            packet, header_end, end = rewritten, header_end - shift, end - shift  # type: ignore[assignment]
            first = packet[0]
        osn, original = unwrap_rtx(packet, first, header_end, end)
        mapping = downstream.mapping
        out_seq = mapping.out_seq(osn)
        # the recovered original, as the sink would have received it; cached for later NACKs
        FIXED_HEADER.pack_into(
            original,
            0,
            original[0],
            (second & 0x80) | main.out_pt,
            out_seq,
            mapping.out_ts(ts),
            main.out_ssrc,
        )
        recovered = bytes(original)
        if downstream.cache is not None:
            downstream.cache.store(out_seq, recovered, self._clock())
        self._send_retransmission(recovered, downstream)

    def _send_retransmission(self, original: bytes, downstream: Downstream) -> None:
        if self.sink is None:
            return
        params = downstream.params
        if params.local_rtx_ssrc is None or params.rtx_payload_type is None:
            self.sink.wire.send_rtp(original)
            return
        downstream.rtx_seq = (downstream.rtx_seq + 1) & 0xFFFF
        rtx = wrap_rtx(original, params.rtx_payload_type, downstream.rtx_seq, params.local_rtx_ssrc)
        self.sink.wire.send_rtp(bytes(rtx))

    # --- RTCP from the source ---------------------------------------------------------------

    def on_source_sender_report(self, packet: bytes) -> None:
        """Translate the source's SR into the sink's numbering, so the sink can lip-sync."""
        info = rtcp.sender_info(packet)
        if info is None:
            return
        upstream = next((u for u in self._upstream.values() if u.ssrc == info.ssrc), None)
        if upstream is None or upstream.reception is None:
            return
        now = self._clock()
        upstream.reception.last_sr = info.ntp_middle
        upstream.reception.last_sr_time = now
        downstream = self._downstream.get(upstream.stream)
        if info.ssrc not in self._media_routes or downstream is None or self.sink is None:
            return
        translated = rtcp.SenderInfo(
            ssrc=downstream.params.local_ssrc,
            ntp_msw=info.ntp_msw,
            ntp_lsw=info.ntp_lsw,
            rtp_timestamp=downstream.mapping.out_ts(info.rtp_timestamp),
            packet_count=info.packet_count,
            octet_count=info.octet_count,
        )
        reports = downstream.sent_reports
        reports[translated.ntp_middle] = now
        if len(reports) > 8:
            del reports[next(iter(reports))]
        self.sink.wire.send_rtcp(rtcp.build_sender_report(translated))

    def receiver_report_blocks(self, now: float) -> list[rtcp.ReportBlock]:
        """Report blocks about what the relay receives from the source (for its RR); also
        counts the packets lost on the source's leg since the last report."""
        blocks = []
        for upstream in self._upstream.values():
            reception = upstream.reception
            if reception is not None:
                blocks.append(reception.report_block(now))
                self.counters.packets_lost += reception.lost_in_last_interval
        return blocks

    # --- RTCP from the sink -----------------------------------------------------------------

    def on_sink_feedback(self, view: rtcp.RtcpView) -> None:
        ssrcs = rtcp.feedback_ssrcs(view.data)
        if ssrcs is None or self.sink is None:
            return
        _, media_ssrc = ssrcs
        now = self._clock()
        if view.packet_type == rtcp.PSFB:
            if view.count in (rtcp.PSFB_PLI, rtcp.PSFB_FIR):
                self.counters.keyframe_requests_received += 1
                # a PLI names the stream the sink's decoder lost; a FIR names it in its FCI,
                # so it (or an unknown SSRC) asks every video stream
                asked = (
                    self._downstream_sending(media_ssrc) if view.count == rtcp.PSFB_PLI else None
                )
                if asked is not None:
                    self.request_keyframe(now, asked.stream)
                else:
                    for stream in self._keyframes:
                        self.request_keyframe(now, stream)
            elif view.count == rtcp.PSFB_AFB:
                self._forward_remb(view.data)
        elif view.packet_type == rtcp.RTPFB:
            if view.count == rtcp.RTPFB_NACK:
                self._answer_nack(media_ssrc, rtcp.nack_sequence_numbers(view.data), now)
            elif view.count == rtcp.RTPFB_TWCC:
                self._forward_transport_cc(view.data, media_ssrc)

    def on_sink_report_blocks(self, blocks: list[rtcp.ReportBlock]) -> None:
        """The sink's reception reports about our streams: RTT and loss on the sink's leg."""
        now = self._clock()
        for block in blocks:
            for downstream in self._downstream.values():
                sent = downstream.sent_reports.get(block.last_sr)
                if sent is not None and block.last_sr:
                    self.sink_rtt = max(now - sent - block.delay_since_last_sr / 65536, 0.0)
            self.sink_fraction_lost = block.fraction_lost / 256

    def request_keyframe(self, now: float, stream: str = STREAMS_BY_KIND["video"][0]) -> None:
        """Ask the source for a keyframe of ``stream`` (the camera unless named), at most once
        per interval per stream: a screen's keyframe must not wait for the camera's."""
        source = self.source
        upstream = self._upstream.get(stream)
        limiter = self._keyframes.get(stream)
        if source is None or upstream is None or upstream.ssrc is None or limiter is None:
            return
        if limiter.allow(now):
            self.counters.keyframe_requests_sent += 1
            source.wire.send_rtcp(rtcp.build_pli(upstream.params.local_ssrc, upstream.ssrc))

    def _downstream_sending(self, ssrc: int) -> Downstream | None:
        """The sink-side stream the relay sends as ``ssrc`` (its media or its RTX SSRC)."""
        for downstream in self._downstream.values():
            if ssrc in (downstream.params.local_ssrc, downstream.params.local_rtx_ssrc):
                return downstream
        return None

    def _answer_nack(self, media_ssrc: int, seqs: list[int], now: float) -> None:
        downstream = self._downstream_sending(media_ssrc)
        if downstream is None:
            return
        self.counters.nacks_received += 1
        cache = downstream.cache
        misses = []
        for seq in seqs:
            cached = cache.get(seq, now) if cache is not None else None
            if cached is None:
                misses.append(seq)
                continue
            self.counters.retransmit_hits += 1
            self._send_retransmission(cached, downstream)
        if not misses:
            return
        self.counters.retransmit_misses += len(misses)
        upstream = self._upstream.get(downstream.stream)
        if self.source is None or upstream is None or upstream.ssrc is None:
            return
        if not upstream.params.nack:
            return
        wanted = [downstream.mapping.in_seq(s) for s in misses]
        self.counters.nack_upstream += 1
        self.source.wire.send_rtcp(
            rtcp.build_nack(upstream.params.local_ssrc, upstream.ssrc, wanted)
        )

    def _source_ssrc_for_sink_ssrc(self, ssrc: int) -> int | None:
        downstream = self._downstream_sending(ssrc)
        if downstream is None:
            return None
        upstream = self._upstream.get(downstream.stream)
        return upstream.ssrc if upstream is not None else None

    def _forward_remb(self, packet: bytes) -> None:
        remb = rtcp.remb_ssrcs(packet)
        source = self.source
        if remb is None or source is None:
            return
        if not any(p.remb for p in source.params.values()):
            return
        bitrate, ssrcs = remb
        mapped = [m for m in (self._source_ssrc_for_sink_ssrc(s) for s in ssrcs) if m is not None]
        if mapped:
            sender = next(iter(source.params.values())).local_ssrc
            source.wire.send_rtcp(rtcp.build_remb(sender, bitrate, mapped))

    def _forward_transport_cc(self, packet: bytes, media_ssrc: int) -> None:
        # transport-wide sequence numbers pass through unchanged, so the sink's feedback describes
        # the whole path and the sending browser's congestion control adapts to both links
        source = self.source
        if source is None or not any(p.transport_cc for p in source.params.values()):
            return
        mapped = self._source_ssrc_for_sink_ssrc(media_ssrc)
        if mapped is None:
            mapped = next((u.ssrc for u in self._upstream.values() if u.ssrc is not None), None)
        if mapped is None:
            return
        sender = next(iter(source.params.values())).local_ssrc
        source.wire.send_rtcp(rtcp.with_feedback_ssrcs(packet, sender, mapped))


def _rewrite_extensions(
    rewriter: ExtensionRewriter, packet: bytes, first: int, header_end: int
) -> bytearray | None:
    """The packet with its extension block rebuilt in the sink's numbering; None if malformed."""
    _, profile, block = extension_block(packet, first, header_end)
    result = rewriter.rewrite(profile, block)
    if result is None:
        return None
    return with_extension_block(packet, first, header_end, *result)


def _classify(params_by_stream: dict[str, KindParams], pt: int) -> tuple[str, KindParams] | None:
    """The first stream (in the leg's m-line order) whose payload type or RTX is ``pt``."""
    for stream, params in params_by_stream.items():
        if pt == params.payload_type or pt == params.rtx_payload_type:
            return stream, params
    return None
