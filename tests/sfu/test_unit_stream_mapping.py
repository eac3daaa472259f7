"""StreamMapping: one continuous outgoing stream across changing incoming sources."""

from __future__ import annotations

from sfu.stream_mapping import StreamMapping

VIDEO_CLOCK = 90_000


def mapping_after_first_source(last_seq: int, last_ts: int, at: float) -> StreamMapping:
    """A mapping whose first source has sent its last packet (``last_seq``, ``last_ts``) at ``at``."""
    mapping = StreamMapping(VIDEO_CLOCK)
    mapping.start_source(last_seq, last_ts, now=at - 1.0)
    mapping.forward(last_seq, last_ts, now=at)
    return mapping


def test_first_source_keeps_its_sequence_numbers():
    mapping = StreamMapping(VIDEO_CLOCK)
    mapping.start_source(first_seq=4321, first_ts=99, now=1.0)
    assert mapping.out_seq(4321) == 4321


def test_first_source_keeps_its_timestamps():
    mapping = StreamMapping(VIDEO_CLOCK)
    mapping.start_source(first_seq=4321, first_ts=123_456, now=1.0)
    assert mapping.out_ts(123_456) == 123_456


def test_new_source_continues_right_after_the_last_sequence_number_sent():
    mapping = mapping_after_first_source(last_seq=1000, last_ts=500_000, at=10.0)
    mapping.start_source(first_seq=7, first_ts=42, now=10.5)
    assert mapping.out_seq(7) == 1001


def test_new_source_keeps_its_own_gaps_in_sequence_numbers():
    mapping = mapping_after_first_source(last_seq=1000, last_ts=500_000, at=10.0)
    mapping.start_source(first_seq=7, first_ts=42, now=10.5)
    assert mapping.out_seq(10) == 1004


def test_new_source_timestamp_advances_by_the_wall_clock_time_that_passed():
    mapping = mapping_after_first_source(last_seq=1000, last_ts=500_000, at=10.0)
    mapping.start_source(first_seq=7, first_ts=42, now=10.5)
    assert mapping.out_ts(42) == 500_000 + 45_000  # 0.5 s at 90 kHz


def test_new_source_timestamp_advances_at_least_one_tick_when_no_time_passed():
    mapping = mapping_after_first_source(last_seq=1000, last_ts=500_000, at=10.0)
    mapping.start_source(first_seq=7, first_ts=42, now=10.0)
    assert mapping.out_ts(42) == 500_001


def test_new_source_timestamp_advances_one_tick_when_the_clock_went_backwards():
    mapping = mapping_after_first_source(last_seq=1000, last_ts=500_000, at=10.0)
    mapping.start_source(first_seq=7, first_ts=42, now=9.0)
    assert mapping.out_ts(42) == 500_001


def test_new_source_uses_the_stream_clock_rate():
    mapping = StreamMapping(48_000)
    mapping.start_source(0, 0, now=0.0)
    mapping.forward(0, 1000, now=1.0)
    mapping.start_source(first_seq=0, first_ts=0, now=1.25)
    assert mapping.out_ts(0) == 1000 + 12_000


def test_continued_sequence_number_wraps_at_2_16():
    mapping = mapping_after_first_source(last_seq=65535, last_ts=0, at=10.0)
    mapping.start_source(first_seq=300, first_ts=0, now=10.5)
    assert mapping.out_seq(300) == 0


def test_continued_timestamp_wraps_at_2_32():
    mapping = mapping_after_first_source(last_seq=1, last_ts=2**32 - 1000, at=10.0)
    mapping.start_source(first_seq=1, first_ts=5, now=10.5)
    assert mapping.out_ts(5) == 45_000 - 1000


def test_offset_sequence_numbers_wrap_within_a_source():
    mapping = mapping_after_first_source(last_seq=1000, last_ts=0, at=10.0)
    mapping.start_source(first_seq=65530, first_ts=0, now=10.5)
    assert mapping.out_seq(2) == 1001 + 8


def test_in_seq_inverts_out_seq_across_the_wrap():
    mapping = mapping_after_first_source(last_seq=65000, last_ts=0, at=10.0)
    mapping.start_source(first_seq=12, first_ts=0, now=10.5)
    assert [mapping.in_seq(mapping.out_seq(s)) for s in (0, 12, 600, 65535)] == [0, 12, 600, 65535]


def test_reordered_older_packet_does_not_pull_the_continuation_point_back():
    mapping = StreamMapping(VIDEO_CLOCK)
    mapping.start_source(100, 0, now=0.0)
    mapping.forward(105, 5000, now=1.0)
    mapping.forward(103, 3000, now=1.1)
    mapping.start_source(first_seq=0, first_ts=0, now=1.0)
    assert mapping.out_seq(0) == 106


def test_newer_packet_across_the_sequence_wrap_moves_the_continuation_point():
    mapping = StreamMapping(VIDEO_CLOCK)
    mapping.start_source(65534, 0, now=0.0)
    mapping.forward(65534, 0, now=1.0)
    mapping.forward(1, 0, now=1.0)
    mapping.start_source(first_seq=500, first_ts=0, now=1.0)
    assert mapping.out_seq(500) == 2
