"""RTCP reading and writing (RFC 3550, RFC 4585 feedback, RFC 5104 FIR, REMB, transport-cc)."""

from __future__ import annotations

import struct
from dataclasses import astuple

from sfu import rtcp
from sfu.rtcp import ReportBlock, SenderInfo


def header(count: int, packet_type: int, body: bytes, version: int = 2) -> bytes:
    """RTCP common header for ``body`` (RFC 3550 6.4.1): length in 32-bit words minus one."""
    assert len(body) % 4 == 0
    return struct.pack("!BBH", (version << 6) | count, packet_type, len(body) // 4) + body


def feedback(fmt: int, packet_type: int, sender: int, media: int, fci: bytes = b"") -> bytes:
    return header(fmt, packet_type, struct.pack("!II", sender, media) + fci)


def fci_entries(packet: bytes) -> list[tuple[int, int]]:
    """(pid, blp) pairs of a generic NACK."""
    return [struct.unpack_from("!HH", packet, pos) for pos in range(12, len(packet), 4)]


SR_PACKET = header(0, rtcp.SR, struct.pack("!IIIIII", 0x1111, 1, 2, 3, 4, 5))
SDES_PACKET = header(1, rtcp.SDES, struct.pack("!I", 0x1111) + b"\x01\x02ab\x00\x00\x00\x00")


# --- compound packets -----------------------------------------------------------------------


def test_compound_packet_yields_each_packet_with_type_and_count():
    views = list(rtcp.iter_packets(SR_PACKET + SDES_PACKET))
    assert [(v.packet_type, v.count, v.data) for v in views] == [
        (rtcp.SR, 0, SR_PACKET),
        (rtcp.SDES, 1, SDES_PACKET),
    ]


def test_walk_stops_at_a_length_field_that_runs_past_the_datagram():
    lying = bytearray(SDES_PACKET)
    lying[3] += 1
    assert [v.data for v in rtcp.iter_packets(SR_PACKET + bytes(lying))] == [SR_PACKET]


def test_walk_stops_at_a_packet_that_is_not_version_2():
    wrong_version = header(1, rtcp.SDES, SDES_PACKET[4:], version=1)
    assert [v.data for v in rtcp.iter_packets(SR_PACKET + wrong_version + SR_PACKET)] == [SR_PACKET]


def test_walk_ignores_trailing_bytes_shorter_than_a_header():
    assert [v.data for v in rtcp.iter_packets(SR_PACKET + b"\x80\xc8")] == [SR_PACKET]


def test_walk_of_empty_datagram_yields_nothing():
    assert list(rtcp.iter_packets(b"")) == []


# --- feedback SSRCs -------------------------------------------------------------------------


def test_feedback_ssrcs_are_sender_then_media():
    assert rtcp.feedback_ssrcs(feedback(1, rtcp.PSFB, 0xAAAA, 0xBBBB)) == (0xAAAA, 0xBBBB)


def test_feedback_shorter_than_its_fixed_part_has_no_ssrcs():
    assert rtcp.feedback_ssrcs(feedback(1, rtcp.PSFB, 0xAAAA, 0xBBBB)[:11]) is None


def test_with_feedback_ssrcs_replaces_both_ssrcs_and_keeps_the_rest():
    original = feedback(15, rtcp.RTPFB, 1, 2, fci=bytes(range(16)))
    assert rtcp.with_feedback_ssrcs(original, 0xAAAA, 0xBBBB) == feedback(
        15, rtcp.RTPFB, 0xAAAA, 0xBBBB, fci=bytes(range(16))
    )


# --- generic NACK ---------------------------------------------------------------------------


def test_nack_has_generic_nack_header_and_ssrcs():
    packet = rtcp.build_nack(0xAAAA, 0xBBBB, [7])
    assert packet == feedback(rtcp.RTPFB_NACK, rtcp.RTPFB, 0xAAAA, 0xBBBB, struct.pack("!HH", 7, 0))


def test_nack_round_trips_its_sequence_numbers():
    seqs = [10, 11, 12, 30, 200, 201, 9000]
    assert rtcp.nack_sequence_numbers(rtcp.build_nack(1, 2, seqs)) == seqs


def test_nack_asks_once_for_a_repeated_sequence_number():
    assert rtcp.nack_sequence_numbers(rtcp.build_nack(1, 2, [5, 5, 5])) == [5]


def test_nack_packs_the_16_following_losses_into_the_bitmask():
    packet = rtcp.build_nack(1, 2, [100, 101, 116])
    assert fci_entries(packet) == [(100, 0b1000_0000_0000_0001)]


def test_nack_starts_a_new_pair_for_a_loss_17_after_the_pid():
    packet = rtcp.build_nack(1, 2, [100, 117])
    assert fci_entries(packet) == [(100, 0), (117, 0)]


def test_nack_bitmask_counts_on_past_65535_when_parsed():
    packet = feedback(rtcp.RTPFB_NACK, rtcp.RTPFB, 1, 2, struct.pack("!HH", 65534, 0b111))
    assert rtcp.nack_sequence_numbers(packet) == [65534, 65535, 0, 1]


def test_nack_across_the_sequence_wrap_round_trips_every_number():
    seqs = {65533, 65535, 0, 2}
    assert set(rtcp.nack_sequence_numbers(rtcp.build_nack(1, 2, seqs))) == seqs


def test_nack_ignores_a_trailing_partial_fci_entry():
    packet = rtcp.build_nack(1, 2, [7]) + b"\x00\x09"
    assert rtcp.nack_sequence_numbers(packet) == [7]


# --- keyframe requests ----------------------------------------------------------------------


def test_pli_is_payload_specific_feedback_format_1_without_fci():
    assert rtcp.build_pli(0xAAAA, 0xBBBB) == bytes.fromhex("81ce0002") + struct.pack(
        "!II", 0xAAAA, 0xBBBB
    )


def test_fir_names_the_media_ssrc_of_every_fci_entry():
    fci = struct.pack("!IB3x", 0x1234, 7) + struct.pack("!IB3x", 0x5678, 8)
    assert rtcp.fir_media_ssrcs(feedback(rtcp.PSFB_FIR, rtcp.PSFB, 1, 0, fci)) == [0x1234, 0x5678]


def test_fir_ignores_a_truncated_fci_entry():
    fci = struct.pack("!IB3x", 0x1234, 7) + struct.pack("!I", 0x5678)
    assert rtcp.fir_media_ssrcs(feedback(rtcp.PSFB_FIR, rtcp.PSFB, 1, 0, fci)) == [0x1234]


# --- REMB -----------------------------------------------------------------------------------


def test_remb_is_application_feedback_with_zero_media_ssrc():
    packet = rtcp.build_remb(0xAAAA, 1000, [0xBBBB])
    assert (packet[0] & 0x1F, packet[1], rtcp.feedback_ssrcs(packet), packet[12:16]) == (
        rtcp.PSFB_AFB,
        rtcp.PSFB,
        (0xAAAA, 0),
        b"REMB",
    )


def test_remb_length_field_covers_the_whole_packet():
    packet = rtcp.build_remb(1, 1000, [2, 3, 4])
    assert (struct.unpack_from("!H", packet, 2)[0] + 1) * 4 == len(packet) == 32


def test_remb_round_trips_a_bitrate_that_fits_the_mantissa():
    assert rtcp.remb_ssrcs(rtcp.build_remb(1, 0x3FFFF, [2])) == (0x3FFFF, [2])


def test_remb_encodes_a_large_bitrate_with_an_exponent():
    packet = rtcp.build_remb(1, 1_000_000, [2])  # 250000 * 2^2
    assert (packet[17] >> 2, rtcp.remb_ssrcs(packet)) == (2, (1_000_000, [2]))


def test_remb_rounds_a_huge_bitrate_down_within_the_18_bit_mantissa_precision():
    bitrate = 12_345_678_901
    decoded, _ = rtcp.remb_ssrcs(rtcp.build_remb(1, bitrate, [2]))
    assert bitrate - bitrate / 2**17 < decoded <= bitrate


def test_remb_round_trips_every_ssrc():
    assert rtcp.remb_ssrcs(rtcp.build_remb(1, 500_000, [0xDEADBEEF, 7]))[1] == [0xDEADBEEF, 7]


def test_application_feedback_that_is_not_remb_is_not_read_as_remb():
    packet = feedback(rtcp.PSFB_AFB, rtcp.PSFB, 1, 0, b"ABCD" + bytes(8))
    assert rtcp.remb_ssrcs(packet) is None


def test_remb_announcing_more_ssrcs_than_it_carries_is_rejected():
    packet = bytearray(rtcp.build_remb(1, 500_000, [2]))
    packet[16] = 2
    assert rtcp.remb_ssrcs(bytes(packet)) is None


# --- sender reports -------------------------------------------------------------------------


INFO = SenderInfo(
    ssrc=0x1111,
    ntp_msw=0xAABBCCDD,
    ntp_lsw=0x11223344,
    rtp_timestamp=0xFFFFFFF0,
    packet_count=42,
    octet_count=4200,
)


def test_sender_info_reads_the_sender_report_fields():
    packet = header(0, rtcp.SR, struct.pack("!IIIIII", *astuple(INFO)))
    assert rtcp.sender_info(packet) == INFO


def test_sender_report_shorter_than_its_sender_info_is_rejected():
    assert rtcp.sender_info(rtcp.build_sender_report(INFO)[:27]) is None


def test_ntp_middle_is_the_low_16_bits_of_seconds_and_high_16_of_fraction():
    assert INFO.ntp_middle == 0xCCDD1122


def test_built_sender_report_has_no_report_blocks():
    packet = rtcp.build_sender_report(INFO)
    assert (packet[:4], len(packet)) == (bytes([0x80, rtcp.SR, 0, 6]), 28)


def test_built_sender_report_reads_back_as_the_same_info():
    assert rtcp.sender_info(rtcp.build_sender_report(INFO)) == INFO


# --- receiver reports -----------------------------------------------------------------------


BLOCK = ReportBlock(
    ssrc=0x2222,
    fraction_lost=64,
    cumulative_lost=1000,
    highest_sequence=0x0001_0005,
    jitter=37,
    last_sr=0xCCDD1122,
    delay_since_last_sr=65536 * 2,
)


def parse_rr(packet: bytes) -> list[ReportBlock]:
    (view,) = rtcp.iter_packets(packet)
    assert view.packet_type == rtcp.RR
    return rtcp.report_blocks(view.data, view.packet_type, view.count)


def test_receiver_report_blocks_read_back_field_for_field():
    assert parse_rr(rtcp.build_receiver_report(0x9999, [BLOCK])) == [BLOCK]


def test_receiver_report_carries_the_reporters_ssrc():
    packet = rtcp.build_receiver_report(0x9999, [BLOCK])
    assert struct.unpack_from("!I", packet, 4)[0] == 0x9999


def test_receiver_report_keeps_several_blocks_in_order():
    second = ReportBlock(0x3333, 0, 0, 10, 0, 0, 0)
    assert parse_rr(rtcp.build_receiver_report(1, [BLOCK, second])) == [BLOCK, second]


def test_negative_cumulative_loss_from_duplicates_reads_back_negative():
    block = ReportBlock(0x2222, 0, -3, 100, 0, 0, 0)
    assert parse_rr(rtcp.build_receiver_report(1, [block]))[0].cumulative_lost == -3


def test_cumulative_loss_beyond_24_bits_is_clamped_to_the_largest_positive_value():
    block = ReportBlock(0x2222, 0, 1 << 30, 100, 0, 0, 0)
    assert parse_rr(rtcp.build_receiver_report(1, [block]))[0].cumulative_lost == 0x7FFFFF


def test_receiver_report_holds_at_most_31_blocks():
    blocks = [ReportBlock(i, 0, 0, 0, 0, 0, 0) for i in range(40)]
    assert [b.ssrc for b in parse_rr(rtcp.build_receiver_report(1, blocks))] == list(range(31))


def test_receiver_report_without_blocks_is_just_the_reporters_ssrc():
    assert rtcp.build_receiver_report(0x9999, []) == bytes([0x80, rtcp.RR, 0, 1]) + struct.pack(
        "!I", 0x9999
    )


def test_report_blocks_of_a_sender_report_follow_the_sender_info():
    block_bytes = rtcp.build_receiver_report(1, [BLOCK])[8:]
    packet = header(1, rtcp.SR, rtcp.build_sender_report(INFO)[4:] + block_bytes)
    assert rtcp.report_blocks(packet, rtcp.SR, 1) == [BLOCK]


def test_report_blocks_stop_where_the_packet_ends():
    packet = rtcp.build_receiver_report(1, [BLOCK, BLOCK])[:-1]
    assert rtcp.report_blocks(packet, rtcp.RR, 2) == [BLOCK]


def test_nack_across_the_sequence_wrap_packs_into_one_pair():
    packet = rtcp.build_nack(1, 2, [65535, 0, 1])
    assert fci_entries(packet) == [(65535, 0b11)]
