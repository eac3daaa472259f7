"""ReceptionStats: RFC 3550 appendix A reception statistics for the relay's receiver reports."""

from __future__ import annotations

import pytest

from sfu.reception import ReceptionStats

AUDIO_CLOCK = 48_000
FRAME = 960  # 20 ms of Opus at 48 kHz


def receive(stats: ReceptionStats, seqs, start: float = 100.0) -> None:
    """Packets ``seqs`` arriving exactly on time, one 20 ms frame apart."""
    for i, seq in enumerate(seqs):
        stats.update(seq, i * FRAME, start + i * 0.020)


def test_report_block_names_the_reported_ssrc():
    stats = ReceptionStats(0xABCD, AUDIO_CLOCK, first_seq=10)
    receive(stats, [10])
    assert stats.report_block(now=101.0).ssrc == 0xABCD


def test_extended_highest_sequence_counts_a_cycle_at_the_wrap():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=65534)
    receive(stats, [65534, 65535, 0, 1])
    assert stats.report_block(now=101.0).highest_sequence == 65536 + 1


def test_reordered_older_packet_does_not_lower_the_highest_sequence():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=100)
    receive(stats, [100, 102, 101])
    assert stats.extended_max == 102


def test_reordered_packet_from_before_the_wrap_does_not_count_another_cycle():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=65534)
    receive(stats, [65534, 0, 65535, 1])
    assert stats.extended_max == 65536 + 1


def test_cumulative_lost_is_expected_minus_received():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=10)
    receive(stats, [10, 11, 13, 14, 17])
    assert stats.report_block(now=101.0).cumulative_lost == 3


def test_cumulative_lost_counts_across_the_wrap():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=65534)
    receive(stats, [65534, 65535, 2])
    assert stats.report_block(now=101.0).cumulative_lost == 2


def test_duplicates_make_cumulative_lost_negative():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=10)
    receive(stats, [10, 11, 11, 12, 12])
    assert stats.report_block(now=101.0).cumulative_lost == -2


def test_fraction_lost_is_the_intervals_loss_in_256ths():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    receive(stats, [s for s in range(10) if s not in (3, 7)])  # 2 of 10 lost
    assert stats.report_block(now=101.0).fraction_lost == 2 * 256 // 10


def test_fraction_lost_covers_only_the_interval_since_the_last_report():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    receive(stats, [s for s in range(10) if s not in (3, 7)])
    stats.report_block(now=101.0)
    receive(stats, range(10, 20), start=101.0)
    block = stats.report_block(now=102.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 2)


def test_fraction_lost_of_a_later_interval_ignores_earlier_loss():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    receive(stats, range(10))
    stats.report_block(now=101.0)
    receive(stats, [10, 11, 13, 14], start=101.0)  # 1 of 5 lost
    assert stats.report_block(now=102.0).fraction_lost == 256 // 5


def test_fraction_lost_is_zero_when_duplicates_outnumber_losses():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    receive(stats, [0, 1, 1, 1, 3])
    assert stats.report_block(now=101.0).fraction_lost == 0


def test_jitter_stays_zero_for_packets_arriving_on_their_timestamps():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    receive(stats, range(50))
    assert stats.report_block(now=102.0).jitter == 0


def test_jitter_follows_rfc3550_for_irregular_arrival():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    now = 100.0
    for seq in range(40):
        stats.update(seq, seq * FRAME, now)
        now += 0.010 if seq % 2 else 0.030  # 20 ms frames arriving 10 ms early or late
    # every transit difference is 10 ms = 480 ticks; J(i) = J(i-1) + (480 - J(i-1)) / 16
    expected = 0.0
    for _ in range(39):
        expected += (480 - expected) / 16
    assert stats.jitter == pytest.approx(expected)


def test_jitter_is_reported_in_whole_timestamp_units():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    stats.update(0, 0, 100.0)
    stats.update(1, 1020, 100.03125)  # 1500 ticks later, stamped 1020: 480 late; 480 / 16 = 30
    assert stats.report_block(now=101.0).jitter == 30


def test_timestamp_jump_of_more_than_a_second_is_not_jitter():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    stats.update(0, 0, 100.0)
    stats.update(1, 5 * AUDIO_CLOCK, 100.020)
    assert stats.jitter == 0


def test_without_a_sender_report_lsr_and_dlsr_are_zero():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    receive(stats, [0])
    block = stats.report_block(now=101.0)
    assert (block.last_sr, block.delay_since_last_sr) == (0, 0)


def test_report_echoes_the_last_sender_reports_ntp_middle_bits():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    stats.last_sr, stats.last_sr_time = 0xCCDD1122, 100.0
    assert stats.report_block(now=101.0).last_sr == 0xCCDD1122


def test_dlsr_is_the_time_since_the_last_sender_report_in_65536ths_of_a_second():
    stats = ReceptionStats(1, AUDIO_CLOCK, first_seq=0)
    stats.last_sr, stats.last_sr_time = 0xCCDD1122, 100.0
    assert stats.report_block(now=101.5).delay_since_last_sr == 98_304
