"""Sequence-number and timestamp continuity for one outgoing stream.

The receiving browser sees one stream per kind for the whole call, even when the sending browser
reconnects with a new peer connection (new SSRC, new random sequence and timestamp bases). Each
incoming source gets offsets chosen so that its first packet continues right after the last
packet sent: sequence +1, timestamp advanced by the wall-clock time that passed. Gaps and
reordering within a source are preserved, so the receiver's NACKs still describe real loss.
Continuous sequence numbers also matter to SRTP: libsrtp's send-side replay window is 1024.
"""

from __future__ import annotations

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32


class StreamMapping:
    """Offsets from one incoming source onto the outgoing stream."""

    __slots__ = (
        "clock_rate",
        "last_out_seq",
        "last_out_ts",
        "last_time",
        "seq_offset",
        "ts_offset",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.seq_offset = 0
        self.ts_offset = 0
        self.last_out_seq: int | None = None
        self.last_out_ts: int | None = None
        self.last_time = 0.0

    def start_source(self, first_seq: int, first_ts: int, now: float) -> None:
        """A new incoming source begins: continue the outgoing numbering where it stopped."""
        if self.last_out_seq is None or self.last_out_ts is None:
            self.seq_offset = 0
            self.ts_offset = 0
            return
        elapsed = max(now - self.last_time, 0.0)
        ts_step = max(int(elapsed * self.clock_rate), 1)
        self.seq_offset = (self.last_out_seq + 1 - first_seq) % SEQ_MOD
        self.ts_offset = (self.last_out_ts + ts_step - first_ts) % TS_MOD

    def forward(self, seq: int, ts: int, now: float) -> tuple[int, int]:
        """The outgoing (seq, ts) of a packet of the current source forwarded now.

        The newest packet sent is remembered, so the next source can continue after it; a late,
        reordered packet must not pull that continuation point back. The forwarder's hot path
        calls this once per packet, so it is kept to a few integer operations.
        """
        out_seq = (seq + self.seq_offset) & 0xFFFF
        out_ts = (ts + self.ts_offset) & 0xFFFFFFFF
        last = self.last_out_seq
        if last is None or (out_seq - last) & 0xFFFF < 0x8000:
            self.last_out_seq = out_seq
            self.last_out_ts = out_ts
            self.last_time = now
        return out_seq, out_ts

    def out_seq(self, seq: int) -> int:
        """The outgoing number of a source packet, without recording it (retransmissions)."""
        return (seq + self.seq_offset) % SEQ_MOD

    def out_ts(self, ts: int) -> int:
        """The outgoing timestamp of a source timestamp (retransmissions, sender reports)."""
        return (ts + self.ts_offset) % TS_MOD

    def in_seq(self, out_seq: int) -> int:
        """The source's number of an outgoing packet (NACKs passed upstream)."""
        return (out_seq - self.seq_offset) % SEQ_MOD
