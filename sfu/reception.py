"""Reception statistics of one incoming stream, for the receiver reports the relay sends.

The arithmetic is RFC 3550 appendix A.1 (extended highest sequence number), A.3 (expected and
lost, fraction lost per interval) and A.8 (interarrival jitter), kept per packet in a few integer
operations because it runs on the hot path.
"""

from __future__ import annotations

from .rtcp import ReportBlock

SEQ_MOD = 1 << 16


class ReceptionStats:
    __slots__ = (
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "jitter",
        "last_sr",
        "last_sr_time",
        "last_transit",
        "lost_in_last_interval",
        "max_seq",
        "received",
        "received_prior",
        "ssrc",
    )

    def __init__(self, ssrc: int, clock_rate: int, first_seq: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.base_seq = first_seq
        self.max_seq = first_seq
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self.last_transit: float | None = None
        self.last_sr = 0  # middle 32 bits of the last SR's NTP time
        self.last_sr_time = 0.0
        self.lost_in_last_interval = 0

    def update(self, seq: int, timestamp: int, now: float) -> None:
        delta = (seq - self.max_seq) & 0xFFFF  # mod 2**16; a mask is cheaper per packet
        if 0 < delta < 0x8000:
            if seq < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = seq
        self.received += 1
        transit = now * self.clock_rate - timestamp
        last = self.last_transit
        if last is not None:
            d = transit - last
            if d < 0:
                d = -d
            if d < self.clock_rate:  # a jump of more than 1 s is a timestamp reset, not jitter
                self.jitter += (d - self.jitter) / 16
        self.last_transit = transit

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    def report_block(self, now: float) -> ReportBlock:
        """A report block for the interval since the last call (which it then starts anew)."""
        expected = self.extended_max - self.base_seq + 1
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        self.lost_in_last_interval = max(lost_interval, 0)
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min((lost_interval << 8) // expected_interval, 255)
        dlsr = int((now - self.last_sr_time) * 65536) if self.last_sr else 0
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            cumulative_lost=expected - self.received,
            highest_sequence=self.extended_max,
            jitter=int(self.jitter),
            last_sr=self.last_sr,
            delay_since_last_sr=dlsr & 0xFFFFFFFF,
        )
