"""The relay's snapshot values: every hot-path counter has a field, and they are copies."""

from __future__ import annotations

import dataclasses

import pytest

from sfu import ForwardingCounts, RelaySnapshot
from sfu.forwarding_state import Counters
from sfu.snapshot import counts_of, sum_counts


def test_every_forwarding_counter_has_a_field_in_the_snapshot():
    names = {f.name for f in dataclasses.fields(ForwardingCounts)}
    assert names == set(Counters.__slots__)


def test_counts_are_copied_so_later_packets_leave_a_snapshot_alone():
    counters = Counters()
    counters.video_packets, counters.audio_bytes, counters.retransmit_misses = 3, 400, 2
    counts = counts_of(counters)
    counters.video_packets += 1
    assert (counts.video_packets, counts.audio_bytes, counts.retransmit_misses) == (3, 400, 2)


def test_counts_add_field_by_field():
    one = ForwardingCounts(audio_packets=1, video_packets=2, nacks_received=3)
    two = ForwardingCounts(audio_packets=10, video_packets=20, dropped=4)
    total = sum_counts([one, two])
    assert total == ForwardingCounts(
        audio_packets=11, video_packets=22, dropped=4, nacks_received=3
    )
    assert total.packets == 33


def test_a_snapshot_cannot_be_changed():
    snapshot = RelaySnapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.rooms_created = 1  # type: ignore[misc]
