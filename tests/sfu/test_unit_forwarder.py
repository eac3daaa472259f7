"""Forwarder: one direction of a room, driven with hand-built packets and recording wires."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

import pytest

from sfu import rtcp
from sfu.forwarder import Endpoint, Forwarder
from sfu.header_extensions import MID_URI, ONE_BYTE_PROFILE, build_block, parse_elements
from sfu.media_params import KindParams

ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

SOURCE_SSRC, SOURCE_RTX_SSRC = 0x1111_0001, 0x1111_0002  # what the source browser sends
NEW_SOURCE_SSRC, NEW_SOURCE_RTX_SSRC = 0x2222_0001, 0x2222_0002  # after it reconnected
RELAY_TO_SOURCE_SSRC = 0xAAAA_0001  # the relay's own SSRC on the source leg
SINK_SSRC, SINK_RTX_SSRC = 0x5555_0001, 0x5555_0002  # what the relay sends the sink
SINK_BROWSER_SSRC = 0x9999_0001  # the sink browser's SSRC in its feedback

SOURCE_PT, SOURCE_RTX_PT = 96, 97
SINK_PT, SINK_RTX_PT = 102, 103
VIDEO_CLOCK = 90_000
ALL_FEEDBACK = frozenset(
    {("nack", None), ("nack", "pli"), ("goog-remb", None), ("transport-cc", None)}
)

SOURCE_VIDEO = KindParams(
    kind="video",
    mid="0",
    payload_type=SOURCE_PT,
    rtx_payload_type=SOURCE_RTX_PT,
    clock_rate=VIDEO_CLOCK,
    ext_ids={MID_URI: 4, ABS_SEND_TIME: 2, TWCC_URI: 3},
    local_ssrc=RELAY_TO_SOURCE_SSRC,
    local_rtx_ssrc=RELAY_TO_SOURCE_SSRC + 1,
    feedback=ALL_FEEDBACK,
)
SINK_VIDEO = KindParams(
    kind="video",
    mid="1",
    payload_type=SINK_PT,
    rtx_payload_type=SINK_RTX_PT,
    clock_rate=VIDEO_CLOCK,
    ext_ids={MID_URI: 1, ABS_SEND_TIME: 5, TWCC_URI: 6},
    local_ssrc=SINK_SSRC,
    local_rtx_ssrc=SINK_RTX_SSRC,
    feedback=ALL_FEEDBACK,
)
SINK_WITHOUT_RTX = replace(SINK_VIDEO, rtx_payload_type=None, local_rtx_ssrc=None)


class Wire:
    """Records what the forwarder sends to one leg."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def send_rtp(self, packet: bytes) -> None:
        self.rtp.append(packet)

    def send_rtcp(self, packet: bytes) -> None:
        self.rtcp.append(packet)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The forwarder's clock, under the test's control."""
    return Clock()


@dataclass
class Call:
    forwarder: Forwarder
    source: Wire = field(default_factory=Wire)
    sink: Wire = field(default_factory=Wire)


def connect(clock: Clock, source: KindParams = SOURCE_VIDEO, sink: KindParams = SINK_VIDEO) -> Call:
    call = Call(Forwarder(keyframe_interval=0.5, clock=clock.monotonic))
    call.forwarder.set_source(Endpoint({source.kind: source}, call.source))
    call.forwarder.set_sink(Endpoint({sink.kind: sink}, call.sink))
    return call


def reconnected(clock: Clock, sink: KindParams = SINK_VIDEO) -> Call:
    """A call whose source sent seq 1000 / ts 50000, then came back 0.5 s later as a new SSRC.

    The new source numbers from seq 7000 / ts 123; the sink sees that as seq 1001 / ts 95000.
    """
    call = connect(clock, sink=sink)
    call.forwarder.on_rtp(rtp_packet(1000, ts=50_000))
    clock.now += 0.5
    call.source = Wire()
    call.forwarder.set_source(Endpoint({"video": SOURCE_VIDEO}, call.source))
    call.sink.rtp.clear()
    return call


def rtp_packet(
    seq: int,
    ts: int = 0,
    ssrc: int = SOURCE_SSRC,
    pt: int = SOURCE_PT,
    payload: bytes = b"frame-data",
    marker: bool = False,
    extensions: list[tuple[int, bytes]] | None = None,
    padding: int = 0,
) -> bytes:
    """An RTP packet (RFC 3550 5.1), with an RFC 8285 extension block and padding if asked."""
    first = 0x80 | (0x10 if extensions is not None else 0) | (0x20 if padding else 0)
    packet = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    if extensions is not None:
        profile, block = build_block(extensions)
        packet += struct.pack("!HH", profile, len(block) // 4) + block
    packet += payload
    if padding:
        packet += bytes(padding - 1) + bytes([padding])
    return packet


def rtx_packet(osn: int, ts: int, rtx_seq: int = 500, **kwargs) -> bytes:
    """An RFC 4588 retransmission of the source's packet ``osn``: OSN, then the payload."""
    payload = struct.pack("!H", osn) + kwargs.pop("payload", b"frame-data")
    return rtp_packet(
        rtx_seq, ts=ts, ssrc=NEW_SOURCE_RTX_SSRC, pt=SOURCE_RTX_PT, payload=payload, **kwargs
    )


@dataclass(frozen=True)
class Rtp:
    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    extensions: tuple[int, list[tuple[int, bytes]] | None] | None
    payload: bytes


def parse_rtp(packet: bytes) -> Rtp:
    first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", packet)
    assert first >> 6 == 2
    pos = 12 + 4 * (first & 0x0F)
    extensions = None
    if first & 0x10:
        profile, words = struct.unpack_from("!HH", packet, pos)
        block = packet[pos + 4 : pos + 4 + 4 * words]
        extensions = (profile, parse_elements(profile, block))
        pos += 4 + 4 * words
    end = len(packet) - (packet[-1] if first & 0x20 else 0)
    return Rtp(bool(second & 0x80), second & 0x7F, seq, ts, ssrc, extensions, packet[pos:end])


def sink_sends(call: Call, datagram: bytes) -> None:
    for view in rtcp.iter_packets(datagram):
        call.forwarder.on_sink_feedback(view)


def upstream(call: Call) -> list[rtcp.RtcpView]:
    return [view for packet in call.source.rtcp for view in rtcp.iter_packets(packet)]


def upstream_of(call: Call, packet_type: int, fmt: int) -> list[bytes]:
    return [v.data for v in upstream(call) if (v.packet_type, v.count) == (packet_type, fmt)]


def upstream_plis(call: Call) -> list[tuple[int, int]]:
    return [rtcp.feedback_ssrcs(p) for p in upstream_of(call, rtcp.PSFB, rtcp.PSFB_PLI)]


def upstream_nacks(call: Call) -> list[bytes]:
    return upstream_of(call, rtcp.RTPFB, rtcp.RTPFB_NACK)


def upstream_rembs(call: Call) -> list[bytes]:
    return upstream_of(call, rtcp.PSFB, rtcp.PSFB_AFB)


def upstream_transport_cc(call: Call) -> list[bytes]:
    return upstream_of(call, rtcp.RTPFB, rtcp.RTPFB_TWCC)


def fir(media_ssrc: int) -> bytes:
    """RFC 5104 4.3.1 FIR: media SSRC field zero, the target in the FCI."""
    body = struct.pack("!II", SINK_BROWSER_SSRC, 0) + struct.pack("!IB3x", media_ssrc, 1)
    return struct.pack("!BBH", 0x80 | rtcp.PSFB_FIR, rtcp.PSFB, len(body) // 4) + body


def transport_cc(media_ssrc: int, body: bytes) -> bytes:
    payload = struct.pack("!II", SINK_BROWSER_SSRC, media_ssrc) + body
    return struct.pack("!BBH", 0x80 | rtcp.RTPFB_TWCC, rtcp.RTPFB, len(payload) // 4) + payload


# --- RTP: what the sink receives ------------------------------------------------------------


def test_forwarded_packet_carries_the_sinks_ssrc(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    assert parse_rtp(call.sink.rtp[0]).ssrc == SINK_SSRC


def test_forwarded_packet_carries_the_sinks_payload_type(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    assert parse_rtp(call.sink.rtp[0]).pt == SINK_PT


def test_marker_bit_survives_forwarding(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10, marker=True))
    assert parse_rtp(call.sink.rtp[0]).marker


def test_payload_is_forwarded_unchanged(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10, payload=b"\x90\x80vp8 bytes"))
    assert parse_rtp(call.sink.rtp[0]).payload == b"\x90\x80vp8 bytes"


def test_first_source_keeps_its_sequence_numbers_and_timestamps(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(4321, ts=777_000))
    out = parse_rtp(call.sink.rtp[0])
    assert (out.seq, out.ts) == (4321, 777_000)


def test_new_source_continues_after_the_last_sequence_number_sent(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    assert parse_rtp(call.sink.rtp[0]).seq == 1001


def test_new_source_timestamps_advance_by_the_time_that_passed(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    assert parse_rtp(call.sink.rtp[0]).ts == 50_000 + 45_000  # 0.5 s at 90 kHz


def test_new_source_keeps_its_own_spacing_after_the_switch(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.forwarder.on_rtp(rtp_packet(7002, ts=123 + 6000, ssrc=NEW_SOURCE_SSRC))
    out = parse_rtp(call.sink.rtp[1])
    assert (out.seq, out.ts) == (1003, 95_000 + 6000)


def test_header_extension_ids_are_rewritten_to_the_sinks_ids(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10, extensions=[(2, b"\x01\x02\x03"), (3, b"\x00\x07")]))
    assert parse_rtp(call.sink.rtp[0]).extensions == (
        ONE_BYTE_PROFILE,
        [(5, b"\x01\x02\x03"), (6, b"\x00\x07")],
    )


def test_mid_extension_carries_the_sinks_mid(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10, extensions=[(4, b"0")]))
    assert parse_rtp(call.sink.rtp[0]).extensions == (ONE_BYTE_PROFILE, [(1, b"1")])


def test_payload_follows_a_rewritten_extension_block_of_another_length(clock):
    call = connect(clock, sink=replace(SINK_VIDEO, ext_ids={MID_URI: 1}))
    call.forwarder.on_rtp(rtp_packet(10, extensions=[(2, b"\x01\x02\x03"), (4, b"0")]))
    assert parse_rtp(call.sink.rtp[0]).payload == b"frame-data"


def test_packet_is_forwarded_byte_for_byte_apart_from_ssrc_and_pt_when_legs_agree(clock):
    sink = replace(SINK_VIDEO, ext_ids=SOURCE_VIDEO.ext_ids, mid=SOURCE_VIDEO.mid)
    call = connect(clock, sink=sink)
    packet = rtp_packet(10, extensions=[(2, b"\x01\x02\x03"), (4, b"0")], padding=4)
    call.forwarder.on_rtp(packet)
    expected = bytearray(packet)
    struct.pack_into("!BBHII", expected, 0, packet[0], SINK_PT, 10, 0, SINK_SSRC)
    assert call.sink.rtp[0] == bytes(expected)


def test_packet_with_unknown_payload_type_is_dropped(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10, pt=35))
    assert (call.sink.rtp, call.forwarder.counters.dropped) == ([], 1)


def test_packet_before_a_sink_joins_is_not_counted_as_dropped(clock):
    forwarder = Forwarder(clock=clock.monotonic)
    forwarder.set_source(Endpoint({"video": SOURCE_VIDEO}, Wire()))
    forwarder.on_rtp(rtp_packet(10))
    assert forwarder.counters.dropped == 0


def test_forwarded_video_is_counted_in_packets_and_bytes(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    call.forwarder.on_rtp(rtp_packet(11))
    counters = call.forwarder.counters
    assert (counters.video_packets, counters.video_bytes) == (2, 2 * len(rtp_packet(10)))


# --- malformed RTP --------------------------------------------------------------------------


def test_packet_shorter_than_the_fixed_header_is_dropped(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10)[:11])
    assert (call.sink.rtp, call.forwarder.counters.dropped) == ([], 1)


def test_packet_whose_extension_runs_past_the_end_is_dropped(clock):
    call = connect(clock)
    truncated = rtp_packet(10, extensions=[(2, b"\x01\x02\x03")], payload=b"")
    call.forwarder.on_rtp(truncated[:-2])
    assert (call.sink.rtp, call.forwarder.counters.dropped) == ([], 1)


def test_packet_whose_extension_header_is_cut_off_is_dropped(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10, extensions=[(2, b"\x01\x02\x03")])[:14])
    assert (call.sink.rtp, call.forwarder.counters.dropped) == ([], 1)


# --- NACK from the sink ---------------------------------------------------------------------


def test_nack_for_a_cached_packet_is_answered_on_the_sinks_rtx_stream(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10, ts=900))
    call.sink.rtp.clear()
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [10]))
    out = parse_rtp(call.sink.rtp[0])
    assert (out.ssrc, out.pt, out.ts) == (SINK_RTX_SSRC, SINK_RTX_PT, 900)


def test_rtx_answer_starts_with_the_original_sequence_number_then_the_payload(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC, payload=b"key"))
    call.sink.rtp.clear()
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [1001]))
    assert parse_rtp(call.sink.rtp[0]).payload == struct.pack("!H", 1001) + b"key"


def test_rtx_answers_are_numbered_in_their_own_consecutive_sequence(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    call.forwarder.on_rtp(rtp_packet(11))
    call.sink.rtp.clear()
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [10, 11]))
    first, second = (parse_rtp(p).seq for p in call.sink.rtp)
    assert second == (first + 1) & 0xFFFF


def test_nack_for_a_cached_packet_is_answered_with_the_original_when_the_sink_has_no_rtx(clock):
    call = connect(clock, sink=SINK_WITHOUT_RTX)
    call.forwarder.on_rtp(rtp_packet(10, ts=900))
    sent = call.sink.rtp.pop()
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [10]))
    assert call.sink.rtp == [sent]


def test_nack_answered_from_the_cache_is_not_sent_upstream(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [10]))
    assert upstream_nacks(call) == []


def test_nack_for_an_uncached_packet_goes_upstream_with_the_sources_numbering(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.forwarder.on_rtp(rtp_packet(7002, ts=123, ssrc=NEW_SOURCE_SSRC))  # 7001 lost upstream
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [1002]))
    (nack,) = upstream_nacks(call)
    assert (rtcp.feedback_ssrcs(nack), rtcp.nack_sequence_numbers(nack)) == (
        (RELAY_TO_SOURCE_SSRC, NEW_SOURCE_SSRC),
        [7001],
    )


def test_nack_for_a_packet_older_than_the_cache_keeps_goes_upstream(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    clock.now += 2.0
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [10]))
    assert [rtcp.nack_sequence_numbers(p) for p in upstream_nacks(call)] == [[10]]


def test_uncached_nack_is_not_sent_upstream_when_the_source_did_not_negotiate_nack(clock):
    source = replace(SOURCE_VIDEO, feedback=frozenset({("nack", "pli")}))
    call = connect(clock, source=source)
    call.forwarder.on_rtp(rtp_packet(10))
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [9]))
    assert upstream_nacks(call) == []


def test_nack_for_an_ssrc_the_relay_does_not_send_is_ignored(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    call.sink.rtp.clear()
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, 0xDEAD, [10]))
    assert (call.sink.rtp, upstream_nacks(call)) == ([], [])


# --- keyframe requests ----------------------------------------------------------------------


def video_flowing(clock: Clock) -> Call:
    """A call whose video has flowed for a while, with earlier upstream RTCP forgotten."""
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    clock.now += 1.0
    call.forwarder.on_rtp(rtp_packet(11))
    call.source.rtcp.clear()
    return call


def test_first_video_packet_from_a_source_asks_it_for_a_keyframe(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    assert upstream_plis(call) == [(RELAY_TO_SOURCE_SSRC, SOURCE_SSRC)]


def test_pli_from_the_sink_becomes_a_pli_to_the_sources_video_ssrc(clock):
    call = video_flowing(clock)
    sink_sends(call, rtcp.build_pli(SINK_BROWSER_SSRC, SINK_SSRC))
    assert upstream_plis(call) == [(RELAY_TO_SOURCE_SSRC, SOURCE_SSRC)]


def test_fir_from_the_sink_becomes_a_pli_upstream(clock):
    call = video_flowing(clock)
    sink_sends(call, fir(SINK_SSRC))
    assert upstream_plis(call) == [(RELAY_TO_SOURCE_SSRC, SOURCE_SSRC)]


def test_keyframe_requests_within_the_interval_become_one_pli_upstream(clock):
    call = video_flowing(clock)
    sink_sends(call, rtcp.build_pli(SINK_BROWSER_SSRC, SINK_SSRC))
    clock.now += 0.2
    sink_sends(call, fir(SINK_SSRC))
    clock.now += 0.2
    sink_sends(call, rtcp.build_pli(SINK_BROWSER_SSRC, SINK_SSRC))
    assert len(upstream_plis(call)) == 1


def test_keyframe_request_after_the_interval_goes_upstream_again(clock):
    call = video_flowing(clock)
    sink_sends(call, rtcp.build_pli(SINK_BROWSER_SSRC, SINK_SSRC))
    clock.now += 0.5
    sink_sends(call, rtcp.build_pli(SINK_BROWSER_SSRC, SINK_SSRC))
    assert len(upstream_plis(call)) == 2


def test_a_new_source_is_asked_for_a_keyframe_at_once_despite_the_interval(clock):
    call = video_flowing(clock)
    sink_sends(call, rtcp.build_pli(SINK_BROWSER_SSRC, SINK_SSRC))
    call.forwarder.set_source(Endpoint({"video": SOURCE_VIDEO}, call.source))
    call.forwarder.on_rtp(rtp_packet(7000, ssrc=NEW_SOURCE_SSRC))
    assert upstream_plis(call) == [
        (RELAY_TO_SOURCE_SSRC, SOURCE_SSRC),
        (RELAY_TO_SOURCE_SSRC, NEW_SOURCE_SSRC),
    ]


def test_a_new_sink_gets_one_keyframe_requested_for_it_at_once(clock):
    call = video_flowing(clock)
    sink_sends(call, rtcp.build_pli(SINK_BROWSER_SSRC, SINK_SSRC))
    call.forwarder.set_sink(Endpoint({"video": SINK_VIDEO}, Wire()))
    call.forwarder.on_rtp(rtp_packet(12))
    assert len(upstream_plis(call)) == 2


# --- sender reports from the source ---------------------------------------------------------


def source_sender_report(ssrc: int, rtp_timestamp: int) -> rtcp.SenderInfo:
    return rtcp.SenderInfo(ssrc, 0xE000_0001, 0x8000_0000, rtp_timestamp, 77, 7700)


def test_source_sender_report_reaches_the_sink_in_the_sinks_numbering(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    report = source_sender_report(NEW_SOURCE_SSRC, 123 + 9000)
    call.forwarder.on_source_sender_report(rtcp.build_sender_report(report))
    (sent,) = call.sink.rtcp
    assert rtcp.sender_info(sent) == replace(report, ssrc=SINK_SSRC, rtp_timestamp=95_000 + 9000)


def test_sender_report_for_an_ssrc_not_being_forwarded_is_not_sent(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    report = source_sender_report(0xDEAD, 0)
    call.forwarder.on_source_sender_report(rtcp.build_sender_report(report))
    assert call.sink.rtcp == []


def test_sender_report_is_echoed_in_the_relays_receiver_report(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    report = source_sender_report(SOURCE_SSRC, 0)
    call.forwarder.on_source_sender_report(rtcp.build_sender_report(report))
    (block,) = call.forwarder.receiver_report_blocks(clock.now + 0.25)
    assert (block.ssrc, block.last_sr, block.delay_since_last_sr) == (
        SOURCE_SSRC,
        report.ntp_middle,
        65536 // 4,
    )


# --- congestion control feedback from the sink ----------------------------------------------


def test_remb_from_the_sink_goes_upstream_naming_the_sources_ssrc(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    sink_sends(call, rtcp.build_remb(SINK_BROWSER_SSRC, 1_000_000, [SINK_SSRC]))
    (remb,) = upstream_rembs(call)
    assert (rtcp.feedback_ssrcs(remb)[0], rtcp.remb_ssrcs(remb)) == (
        RELAY_TO_SOURCE_SSRC,
        (1_000_000, [SOURCE_SSRC]),
    )


def test_remb_is_not_forwarded_when_the_source_did_not_negotiate_goog_remb(clock):
    source = replace(SOURCE_VIDEO, feedback=ALL_FEEDBACK - {("goog-remb", None)})
    call = connect(clock, source=source)
    call.forwarder.on_rtp(rtp_packet(10))
    sink_sends(call, rtcp.build_remb(SINK_BROWSER_SSRC, 1_000_000, [SINK_SSRC]))
    assert upstream_rembs(call) == []


def test_transport_cc_from_the_sink_goes_upstream_with_translated_ssrcs(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    body = bytes(range(20))
    sink_sends(call, transport_cc(SINK_SSRC, body))
    assert upstream_transport_cc(call) == [
        rtcp.with_feedback_ssrcs(transport_cc(0, body), RELAY_TO_SOURCE_SSRC, SOURCE_SSRC)
    ]


def test_transport_cc_is_not_forwarded_when_the_source_did_not_negotiate_it(clock):
    source = replace(SOURCE_VIDEO, feedback=ALL_FEEDBACK - {("transport-cc", None)})
    call = connect(clock, source=source)
    call.forwarder.on_rtp(rtp_packet(10))
    sink_sends(call, transport_cc(SINK_SSRC, bytes(20)))
    assert upstream_transport_cc(call) == []


# --- RTX from the source --------------------------------------------------------------------


def test_source_rtx_reaches_a_sink_with_rtx_on_its_rtx_stream(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.forwarder.on_rtp(rtx_packet(osn=6999, ts=100, payload=b"again"))
    out = parse_rtp(call.sink.rtp[-1])
    assert (out.ssrc, out.pt, out.payload) == (
        SINK_RTX_SSRC,
        SINK_RTX_PT,
        struct.pack("!H", 1000) + b"again",
    )


def test_source_rtx_reaches_a_sink_without_rtx_as_the_unwrapped_original(clock):
    call = reconnected(clock, sink=SINK_WITHOUT_RTX)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.forwarder.on_rtp(rtx_packet(osn=7001, ts=3123, payload=b"again"))
    out = parse_rtp(call.sink.rtp[-1])
    assert (out.ssrc, out.pt, out.seq, out.ts, out.payload) == (
        SINK_SSRC,
        SINK_PT,
        1002,
        95_000 + 3000,
        b"again",
    )


def test_source_rtx_padding_is_not_part_of_the_recovered_payload(clock):
    call = reconnected(clock, sink=SINK_WITHOUT_RTX)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.forwarder.on_rtp(rtx_packet(osn=7001, ts=3123, payload=b"again", padding=3))
    assert call.sink.rtp[-1].endswith(b"again")


def test_recovered_source_rtx_answers_a_later_nack_from_the_cache(clock):
    call = reconnected(clock, sink=SINK_WITHOUT_RTX)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.forwarder.on_rtp(rtx_packet(osn=7001, ts=3123, payload=b"again"))
    recovered = call.sink.rtp[-1]
    sink_sends(call, rtcp.build_nack(SINK_BROWSER_SSRC, SINK_SSRC, [1002]))
    assert (call.sink.rtp[-1], upstream_nacks(call)) == (recovered, [])


def test_padding_only_rtx_probe_is_not_forwarded(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.sink.rtp.clear()
    probe = rtp_packet(
        500, ts=0, ssrc=NEW_SOURCE_RTX_SSRC, pt=SOURCE_RTX_PT, payload=b"", padding=200
    )
    call.forwarder.on_rtp(probe)
    assert call.sink.rtp == []


def test_rtx_with_a_one_byte_payload_is_not_forwarded(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.sink.rtp.clear()
    call.forwarder.on_rtp(
        rtp_packet(500, ssrc=NEW_SOURCE_RTX_SSRC, pt=SOURCE_RTX_PT, payload=b"\x1b")
    )
    assert call.sink.rtp == []


def test_rtx_before_its_main_stream_is_not_forwarded(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtx_packet(osn=6999, ts=100))
    assert call.sink.rtp == []


def test_rtx_whose_extension_runs_past_the_end_is_not_forwarded(clock):
    call = reconnected(clock)
    call.forwarder.on_rtp(rtp_packet(7000, ts=123, ssrc=NEW_SOURCE_SSRC))
    call.sink.rtp.clear()
    broken = rtx_packet(osn=6999, ts=100, extensions=[(2, b"\x01\x02\x03")], payload=b"")
    call.forwarder.on_rtp(broken[:-4])
    assert call.sink.rtp == []


def test_packet_whose_extensions_the_sink_did_not_negotiate_is_sent_without_an_extension_block(
    clock,
):
    call = connect(clock, sink=replace(SINK_VIDEO, ext_ids={}))
    call.forwarder.on_rtp(rtp_packet(10, extensions=[(2, b"\x01\x02\x03")], payload=b"frame-data"))
    out = parse_rtp(call.sink.rtp[0])
    assert (out.extensions, out.payload) == (None, b"frame-data")


def test_packet_whose_extension_runs_past_the_end_is_dropped_when_legs_agree_on_ids(clock):
    call = connect(
        clock, sink=replace(SINK_VIDEO, ext_ids=SOURCE_VIDEO.ext_ids, mid=SOURCE_VIDEO.mid)
    )
    truncated = rtp_packet(10, extensions=[(2, b"\x01\x02\x03")], payload=b"")
    call.forwarder.on_rtp(truncated[:-2])
    assert (call.sink.rtp, call.forwarder.counters.dropped) == ([], 1)


def test_loss_on_the_source_leg_is_counted_once_per_report_interval(clock):
    call = connect(clock)
    for seq in (10, 11, 14, 15):  # 12 and 13 never arrive
        call.forwarder.on_rtp(rtp_packet(seq))
    call.forwarder.receiver_report_blocks(clock.now)
    assert call.forwarder.counters.packets_lost == 2
    call.forwarder.receiver_report_blocks(clock.now)
    assert call.forwarder.counters.packets_lost == 2


# --- bounded state, dependencies ------------------------------------------------------------


def test_a_flood_of_new_source_ssrcs_keeps_one_media_route_and_one_reception(clock):
    call = connect(clock)
    for n in range(50):
        call.forwarder.on_rtp(rtp_packet(10, ssrc=0x3000_0000 + n))
    tables = call.forwarder.route_tables()
    assert (tables.media_routes, tables.receptions) == (1, 1)


def test_a_flood_of_new_rtx_ssrcs_keeps_one_rtx_route(clock):
    call = connect(clock)
    call.forwarder.on_rtp(rtp_packet(10))
    for n in range(50):
        call.forwarder.on_rtp(rtx_packet(osn=10, ts=0, rtx_seq=n))
        call.forwarder.on_rtp(
            rtp_packet(n, ssrc=0x3000_0000 + n, pt=SOURCE_RTX_PT, payload=b"\x00\x0aagain")
        )
    assert call.forwarder.route_tables().rtx_routes == 1


def test_importing_the_forwarder_does_not_load_aiortc():
    """The forwarder is pure packet logic; aiortc (and its codecs) stay in aiortc_glue. The
    package's __init__ loads the relay and with it aiortc, so the check imports sfu.forwarder
    below a bare package of the same directory."""
    import subprocess
    import sys
    from pathlib import Path

    import sfu

    script = (
        "import sys, types\n"
        "package = types.ModuleType('sfu')\n"
        f"package.__path__ = [{str(Path(sfu.__file__).parent)!r}]\n"
        "sys.modules['sfu'] = package\n"
        "import sfu.forwarder\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiortc', 'aioice', 'av')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (result.returncode, result.stderr, result.stdout.strip()) == (0, "", "[]")
