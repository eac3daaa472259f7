"""How long packets spend in the relay: from the kernel receiving them to our send.

Sampled (one datagram in ``SAMPLE_EVERY``) with the kernel's receive timestamp (SO_TIMESTAMPNS),
so the figure includes time a packet waited in the socket buffer while the event loop was busy,
not just our own processing -- the delay a browser actually experiences from the relay.
"""

from __future__ import annotations

import bisect

from .snapshot import LatencySnapshot

SAMPLE_EVERY = 32  # ~1 % of the per-packet cost goes to the timestamped recvmsg; 32 keeps it <0.1 %

# Seconds; from well under a millisecond (an idle relay) to what a user would notice.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class LatencyHistogram:
    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        if seconds < 0:
            seconds = 0.0  # the wall clock stepped; better a zero than a negative delay
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def snapshot(self) -> LatencySnapshot:
        return LatencySnapshot(BUCKETS, tuple(self.counts), self.count, self.sum)
