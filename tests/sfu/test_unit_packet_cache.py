"""PacketCache: the ring of recently sent packets that answers NACKs locally."""

from __future__ import annotations

import pytest

from sfu.packet_cache import PacketCache


def test_stored_packet_is_returned_by_its_sequence_number():
    cache = PacketCache(slots=8, max_age=1.0)
    cache.store(5, b"five", now=10.0)
    assert cache.get(5, now=10.0) == b"five"


def test_never_stored_sequence_number_is_a_miss():
    cache = PacketCache(slots=8, max_age=1.0)
    cache.store(5, b"five", now=10.0)
    assert cache.get(6, now=10.0) is None


def test_each_slot_keeps_its_own_packet():
    cache = PacketCache(slots=8, max_age=1.0)
    for seq in range(8):
        cache.store(seq, bytes([seq]), now=10.0)
    assert [cache.get(seq, now=10.0) for seq in range(8)] == [bytes([s]) for s in range(8)]


def test_storing_a_full_ring_later_overwrites_the_oldest_packet():
    cache = PacketCache(slots=8, max_age=1.0)
    cache.store(3, b"old", now=10.0)
    cache.store(3 + 8, b"new", now=10.0)
    assert cache.get(11, now=10.0) == b"new"


def test_overwritten_sequence_number_is_a_miss_not_the_newer_packet():
    cache = PacketCache(slots=8, max_age=1.0)
    cache.store(3, b"old", now=10.0)
    cache.store(3 + 8, b"new", now=10.0)
    assert cache.get(3, now=10.0) is None


def test_ring_wraps_with_the_16_bit_sequence_space():
    cache = PacketCache(slots=8, max_age=1.0)
    cache.store(65535, b"last", now=10.0)
    cache.store(0, b"first", now=10.0)
    assert (cache.get(65535, now=10.0), cache.get(0, now=10.0)) == (b"last", b"first")


def test_packet_exactly_max_age_old_is_still_returned():
    cache = PacketCache(slots=8, max_age=1.0)
    cache.store(5, b"five", now=10.0)
    assert cache.get(5, now=11.0) == b"five"


def test_packet_older_than_max_age_is_a_miss():
    cache = PacketCache(slots=8, max_age=1.0)
    cache.store(5, b"five", now=10.0)
    assert cache.get(5, now=11.01) is None


@pytest.mark.parametrize("slots", [1, 2, 1024])
def test_power_of_two_slot_counts_are_accepted(slots):
    cache = PacketCache(slots=slots)
    cache.store(slots - 1, b"x", now=0.0)
    assert cache.get(slots - 1, now=0.0) == b"x"


@pytest.mark.parametrize("slots", [0, -4, 3, 1000])
def test_slot_count_that_is_not_a_positive_power_of_two_is_rejected(slots):
    with pytest.raises(ValueError, match="power of two"):
        PacketCache(slots=slots)


def test_a_steady_stream_holds_only_the_packets_of_the_last_max_age():
    # 200 packets/s for 5 s: sized by time, ~100 packets are kept, not the ring's 1024
    cache = PacketCache(slots=1024, max_age=0.5)
    for n in range(1000):
        cache.store(n & 0xFFFF, bytes(1100), now=n / 200)
    assert cache.held() <= 0.5 * 200 + 1


def test_packets_are_released_once_older_than_max_age_though_the_ring_is_not_full():
    cache = PacketCache(slots=1024, max_age=0.5)
    for seq in range(10):
        cache.store(seq, b"early", now=10.0)
    cache.store(10, b"later", now=12.0)
    assert cache.held() == 1


def test_releasing_keeps_every_packet_still_within_max_age():
    cache = PacketCache(slots=1024, max_age=0.5)
    for n in range(300):
        cache.store(60000 + n & 0xFFFF, bytes([n & 0xFF]), now=n / 200)
    now = 299 / 200
    recent = [(60000 + n) & 0xFFFF for n in range(300) if now - n / 200 <= 0.5]
    assert all(cache.get(seq, now=now) is not None for seq in recent)


def test_a_late_packet_stored_out_of_order_releases_nothing_newer():
    cache = PacketCache(slots=1024, max_age=0.5)
    for seq in range(100, 110):
        cache.store(seq, b"x", now=10.0)
    cache.store(99, b"late", now=10.1)
    assert [cache.get(seq, now=10.1) for seq in range(99, 110)] == [b"late"] + [b"x"] * 10


def test_a_wrapped_ring_keeps_no_number_objects_per_slot():
    # sequence numbers and times sit in C arrays: after the ring has wrapped, a slot holds no int
    # or float object of its own (with lists: ~56 KiB more per 1024-slot stream, issue #17)
    import tracemalloc

    packet = bytes(1100)  # one shared packet: only the cache's own bookkeeping is measured
    cache = PacketCache(slots=1024, max_age=0.5)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(3000):
            cache.store((n + 1000) & 0xFFFF, packet, now=1000.0 + n / 200)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 4096, grown
