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

import struct
import time

from . import rtcp
from .forwarding_state import Counters, Endpoint, Outbound, Route
from .header_extensions import ExtensionRewriter
from .keyframe_limiter import KeyframeRequestLimiter
from .media_params import KindParams
from .reception import ReceptionStats

__all__ = ["Counters", "Endpoint", "Forwarder"]

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_SEQ = struct.Struct("!H")


class Forwarder:
    def __init__(self, keyframe_interval: float = 0.5) -> None:
        self.source: Endpoint | None = None
        self.sink: Endpoint | None = None
        self.counters = Counters()
        self._routes: dict[int, Route] = {}
        self._reception: dict[int, ReceptionStats] = {}
        self._current_ssrc: dict[str, int] = {}  # kind -> the source SSRC now forwarded
        self._current_rtx: dict[str, int] = {}  # kind -> the source's RTX SSRC
        self._outbound: dict[str, Outbound] = {}
        self._keyframes = KeyframeRequestLimiter(keyframe_interval)
        self.sink_rtt: float | None = None  # seconds, from the sink's receiver reports
        self.sink_fraction_lost = 0.0

    # --- wiring -----------------------------------------------------------------------------

    def set_source(self, source: Endpoint | None) -> None:
        """A (new) source leg: its SSRCs start over, the sink's numbering continues."""
        self.source = source
        self._routes.clear()
        self._reception.clear()
        self._current_ssrc.clear()
        self._current_rtx.clear()
        self._keyframes.reset()

    def set_sink(self, sink: Endpoint | None) -> None:
        """A (new) sink leg: fresh outgoing streams, and it needs a keyframe to start decoding."""
        self.sink = sink
        self._routes.clear()
        self._outbound.clear()
        if sink is not None:
            for kind, params in sink.params.items():
                self._outbound[kind] = Outbound(params.clock_rate, with_cache=params.nack)
        self._keyframes.reset()
        self.request_keyframe(time.monotonic())

    # --- RTP hot path -----------------------------------------------------------------------

    def on_rtp(self, packet: bytes) -> None:
        if len(packet) < 12:
            self.counters.dropped += 1
            return
        first, second, seq, ts, ssrc = _HEADER.unpack_from(packet)
        header_end = 12
        if first & 0x3F:  # padding, CSRCs or an extension: check their lengths before trusting them
            header_end = self._header_length(packet, first)
            if header_end < 0 or (first & 0x20 and not 0 < packet[-1] <= len(packet) - header_end):
                self.counters.dropped += 1
                return
        route = self._routes.get(ssrc)
        if route is None:
            if self.sink is None:
                return  # alone in the room: nobody to forward to, nothing wrong
            route = self._new_route(ssrc, second & 0x7F, seq, ts)
            if route is None:
                self.counters.dropped += 1
                return
        now = time.monotonic()
        if route.is_rtx:
            self._forward_rtx(route, packet, first, second, ts, now)
            return
        route.reception.update(seq, ts, now)
        out_seq = (seq + route.seq_offset) & 0xFFFF
        out_ts = (ts + route.ts_offset) & 0xFFFFFFFF
        out = bytearray(packet)
        rewriter = route.rewriter
        if rewriter is not None and first & 0x10:
            fixed = 12 + 4 * (first & 0x0F)
            if (
                packet[fixed] != 0xBE
                or packet[fixed + 1] != 0xDE
                or not rewriter.rewrite_in_place(out, fixed + 4, header_end)
            ):
                out = self._rewrite_extensions(rewriter, packet, first)
                if out is None:
                    self.counters.dropped += 1
                    return
        _HEADER.pack_into(
            out, 0, out[0], (second & 0x80) | route.out_pt, out_seq, out_ts, route.out_ssrc
        )
        data = bytes(out)
        if route.cache is not None:
            route.cache.store(out_seq, data, now)
        route.mapping.sent(out_seq, out_ts, now)
        self.sink.wire.send_rtp(data)
        counters = self.counters
        if route.kind == "video":
            counters.video_packets += 1
            counters.video_bytes += len(data)
        else:
            counters.audio_packets += 1
            counters.audio_bytes += len(data)

    def _new_route(self, ssrc: int, pt: int, seq: int, ts: int) -> Route | None:
        source, sink = self.source, self.sink
        if source is None or sink is None:
            return None
        found = _classify(source.params, pt)
        if found is None:
            return None
        params, is_rtx = found
        kind = params.kind
        sink_params = sink.params.get(kind)
        outbound = self._outbound.get(kind)
        if sink_params is None or outbound is None:
            return None
        route = Route()
        route.kind = kind
        route.is_rtx = is_rtx
        route.mapping = outbound.mapping
        rewriter = ExtensionRewriter(
            params.ext_ids, sink_params.ext_ids, params.mid, sink_params.mid
        )
        route.rewriter = None if rewriter.identity else rewriter
        if is_rtx:
            # RTX carries the original packet; _forward_rtx numbers it through the main route and
            # sends it on the sink's RTX stream, or unwrapped when the sink has none
            old_rtx = self._current_rtx.get(kind)
            if old_rtx is not None and old_rtx != ssrc:
                self._routes.pop(old_rtx, None)  # one RTX stream per kind: tables stay bounded
            self._current_rtx[kind] = ssrc
        else:
            now = time.monotonic()
            if self._current_ssrc.get(kind) != ssrc:
                old = self._current_ssrc.get(kind)
                if old is not None:
                    self._routes.pop(old, None)  # the old source stopped; never mix two
                self._current_ssrc[kind] = ssrc
                self._reception.pop(old, None)
                outbound.mapping.start_source(seq, ts, now)
                # a new encoder needs its keyframe now, whatever the sink asked for lately
                self._keyframes.reset()
            if kind == "video":
                # the sink joins mid-stream or the source is new: either way the sink's decoder
                # needs a keyframe before it can show anything
                self.request_keyframe(now)
            reception = self._reception.get(ssrc)
            if reception is None:
                reception = self._reception[ssrc] = ReceptionStats(ssrc, params.clock_rate, seq)
            route.reception = reception
            route.out_ssrc = sink_params.local_ssrc
            route.out_pt = sink_params.payload_type
            route.seq_offset = outbound.mapping.seq_offset
            route.ts_offset = outbound.mapping.ts_offset
            route.cache = outbound.cache
        self._routes[ssrc] = route
        return route

    @staticmethod
    def _header_length(packet: bytes, first: int) -> int:
        """Bytes before the payload (fixed header, CSRCs, extension); -1 if malformed."""
        length = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            if length + 4 > len(packet):
                return -1
            _, words = _EXT_HEADER.unpack_from(packet, length)
            length += 4 + 4 * words
        return length if length <= len(packet) else -1

    def _rewrite_extensions(
        self, rewriter: ExtensionRewriter, packet: bytes, first: int
    ) -> bytearray | None:
        fixed = 12 + 4 * (first & 0x0F)
        end = self._header_length(packet, first)
        if end < 0:
            return None
        profile, _ = _EXT_HEADER.unpack_from(packet, fixed)
        result = rewriter.rewrite(profile, packet[fixed + 4 : end])
        if result is None:
            return None
        new_profile, block = result
        if not block:
            out = bytearray(packet[:fixed])
            out[0] = first & ~0x10
            out += packet[end:]
            return out
        out = bytearray(packet[:fixed])
        out += _EXT_HEADER.pack(new_profile, len(block) // 4)
        out += block
        out += packet[end:]
        return out

    def _forward_rtx(
        self, route: Route, packet: bytes, first: int, second: int, ts: int, now: float
    ) -> None:
        kind = route.kind
        main_ssrc = self._current_ssrc.get(kind)
        main = self._routes.get(main_ssrc) if main_ssrc is not None else None
        sink_params = self.sink.params[kind]
        outbound = self._outbound[kind]
        header_end = self._header_length(packet, first)
        payload_end = len(packet)
        if first & 0x20 and payload_end > header_end:  # strip padding before reading the OSN
            payload_end -= packet[-1]
        if main is None or header_end < 0 or payload_end - header_end < 2:
            return  # padding-only probe or RTX before its stream: nothing to recover
        if route.rewriter is not None and first & 0x10:
            rewritten = self._rewrite_extensions(route.rewriter, packet, first)
            if rewritten is None:
                return
            shift = len(packet) - len(rewritten)
            packet, header_end, payload_end = (
                bytes(rewritten),
                header_end - shift,
                payload_end - shift,
            )
            first = packet[0]
        osn = _SEQ.unpack_from(packet, header_end)[0]
        out_seq = (osn + main.seq_offset) & 0xFFFF
        out_ts = (ts + main.ts_offset) & 0xFFFFFFFF
        # the recovered original, as the sink would have received it; cached for later NACKs
        original = bytearray(packet[:header_end])
        original[0] = first & ~0x20
        original += packet[header_end + 2 : payload_end]
        _HEADER.pack_into(
            original, 0, original[0], (second & 0x80) | main.out_pt, out_seq, out_ts, main.out_ssrc
        )
        original = bytes(original)
        if outbound.cache is not None:
            outbound.cache.store(out_seq, original, now)
        self._send_retransmission(original, sink_params, outbound)

    def _send_retransmission(
        self, original: bytes, sink_params: KindParams, outbound: Outbound
    ) -> None:
        if sink_params.local_rtx_ssrc is None or sink_params.rtx_payload_type is None:
            self.sink.wire.send_rtp(original)
            return
        first, second, seq, ts, _ = _HEADER.unpack_from(original)
        header_end = self._header_length(original, first)
        outbound.rtx_seq = (outbound.rtx_seq + 1) & 0xFFFF
        rtx = bytearray(original[:header_end])
        _HEADER.pack_into(
            rtx,
            0,
            first,
            (second & 0x80) | sink_params.rtx_payload_type,
            outbound.rtx_seq,
            ts,
            sink_params.local_rtx_ssrc,
        )
        rtx += _SEQ.pack(seq)
        rtx += original[header_end:]
        self.sink.wire.send_rtp(bytes(rtx))

    # --- RTCP from the source ---------------------------------------------------------------

    def on_source_sender_report(self, packet: bytes) -> None:
        """Translate the source's SR into the sink's numbering, so the sink can lip-sync."""
        info = rtcp.sender_info(packet)
        if info is None:
            return
        reception = self._reception.get(info.ssrc)
        if reception is not None:
            reception.last_sr = info.ntp_middle
            reception.last_sr_time = time.monotonic()
        route = self._routes.get(info.ssrc)
        if route is None or route.is_rtx or self.sink is None:
            return
        translated = rtcp.SenderInfo(
            ssrc=route.out_ssrc,
            ntp_msw=info.ntp_msw,
            ntp_lsw=info.ntp_lsw,
            rtp_timestamp=(info.rtp_timestamp + route.ts_offset) & 0xFFFFFFFF,
            packet_count=info.packet_count,
            octet_count=info.octet_count,
        )
        outbound = self._outbound[route.kind]
        reports = outbound.sent_reports
        reports[translated.ntp_middle] = time.monotonic()
        if len(reports) > 8:
            del reports[next(iter(reports))]
        self.sink.wire.send_rtcp(rtcp.build_sender_report(translated))

    def receiver_report_blocks(self, now: float) -> list[rtcp.ReportBlock]:
        """Report blocks about what the relay receives from the source (for its RR); also
        counts the packets lost on the source's leg since the last report."""
        blocks = []
        for reception in self._reception.values():
            blocks.append(reception.report_block(now))
            self.counters.packets_lost += reception.lost_in_last_interval
        return blocks

    # --- RTCP from the sink -----------------------------------------------------------------

    def on_sink_feedback(self, view: rtcp.RtcpView) -> None:
        ssrcs = rtcp.feedback_ssrcs(view.data)
        if ssrcs is None or self.sink is None:
            return
        _, media_ssrc = ssrcs
        now = time.monotonic()
        if view.packet_type == rtcp.PSFB:
            if view.count in (rtcp.PSFB_PLI, rtcp.PSFB_FIR):
                self.counters.keyframe_requests_received += 1
                self.request_keyframe(now)
            elif view.count == rtcp.PSFB_AFB:
                self._forward_remb(view.data)
        elif view.packet_type == rtcp.RTPFB:
            if view.count == rtcp.RTPFB_NACK:
                self._answer_nack(media_ssrc, rtcp.nack_sequence_numbers(view.data), now)
            elif view.count == rtcp.RTPFB_TWCC:
                self._forward_transport_cc(view.data, media_ssrc)

    def on_sink_report_blocks(self, blocks: list[rtcp.ReportBlock]) -> None:
        """The sink's reception reports about our streams: RTT and loss on the sink's leg."""
        now = time.monotonic()
        for block in blocks:
            for outbound in self._outbound.values():
                sent = outbound.sent_reports.get(block.last_sr)
                if sent is not None and block.last_sr:
                    self.sink_rtt = max(now - sent - block.delay_since_last_sr / 65536, 0.0)
            self.sink_fraction_lost = block.fraction_lost / 256

    def request_keyframe(self, now: float) -> None:
        source = self.source
        ssrc = self._current_ssrc.get("video")
        if source is None or ssrc is None or "video" not in source.params:
            return
        if self._keyframes.allow(now):
            self.counters.keyframe_requests_sent += 1
            source.wire.send_rtcp(rtcp.build_pli(source.params["video"].local_ssrc, ssrc))

    def _kind_of_sink_ssrc(self, ssrc: int) -> str | None:
        if self.sink is None:
            return None
        for kind, params in self.sink.params.items():
            if ssrc in (params.local_ssrc, params.local_rtx_ssrc):
                return kind
        return None

    def _answer_nack(self, media_ssrc: int, seqs: list[int], now: float) -> None:
        kind = self._kind_of_sink_ssrc(media_ssrc)
        if kind is None:
            return
        self.counters.nacks_received += 1
        outbound = self._outbound.get(kind)
        sink_params = self.sink.params[kind]
        misses = []
        for seq in seqs:
            cached = outbound.cache.get(seq, now) if outbound and outbound.cache else None
            if cached is None:
                misses.append(seq)
                continue
            self.counters.retransmit_hits += 1
            self._send_retransmission(cached, sink_params, outbound)
        if not misses:
            return
        self.counters.retransmit_misses += len(misses)
        source = self.source
        source_ssrc = self._current_ssrc.get(kind)
        if source is None or source_ssrc is None or outbound is None:
            return
        source_params = source.params.get(kind)
        if source_params is None or not source_params.nack:
            return
        upstream = [outbound.mapping.in_seq(s) for s in misses]
        self.counters.nack_upstream += 1
        source.wire.send_rtcp(rtcp.build_nack(source_params.local_ssrc, source_ssrc, upstream))

    def _source_ssrc_for_sink_ssrc(self, ssrc: int) -> int | None:
        kind = self._kind_of_sink_ssrc(ssrc)
        return self._current_ssrc.get(kind) if kind else None

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
            mapped = next(iter(self._current_ssrc.values()), None)
        if mapped is None:
            return
        sender = next(iter(source.params.values())).local_ssrc
        source.wire.send_rtcp(rtcp.with_feedback_ssrcs(packet, sender, mapped))


def _classify(params_by_kind: dict[str, KindParams], pt: int) -> tuple[KindParams, bool] | None:
    """The kind a payload type belongs to on a leg, and whether it is that kind's RTX."""
    for params in params_by_kind.values():
        if pt == params.payload_type:
            return params, False
        if pt == params.rtx_payload_type:
            return params, True
    return None
