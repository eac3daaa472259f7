"""Recently forwarded packets of one outgoing stream, kept to answer NACKs locally.

A ring indexed by sequence number: storing is one list assignment, so the hot path pays almost
nothing. Memory is bounded by time, not by slots: each store also releases the packets that have
aged past ``max_age`` (oldest first, in steady state one per store), so a 200 packets/s stream
holds ~100 packets (~120 KB) instead of a full ring of 1024 (~1.2 MB, 2.5 MiB per room). Older
packets are useless for retransmission anyway because the receiver's jitter buffer has given up
on them, and a stalled stream never replays stale data. The ring's 1024 slots only cap a stream
above 2000 packets/s.

Sequence numbers and times sit in C arrays rather than lists: a list slot keeps an int and a
float object of its own per packet ever stored (~52 bytes a slot once the ring has wrapped), an
array slot 12 bytes, whatever the stream has sent.
"""

from __future__ import annotations

from array import array

DEFAULT_SLOTS = 1024  # power of two: the index is a mask, not a modulo
# seconds; Janus's default min_nack_queue is 500 ms too: a NACK comes within an RTT or two of the
# loss, and a packet resent later than that arrives after its frame was given up
DEFAULT_MAX_AGE = 0.5


class PacketCache:
    __slots__ = ("_mask", "_max_age", "_oldest", "_packets", "_seqs", "_times")

    def __init__(self, slots: int = DEFAULT_SLOTS, max_age: float = DEFAULT_MAX_AGE) -> None:
        if slots <= 0 or slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._mask = slots - 1
        self._max_age = max_age
        self._packets: list[bytes | None] = [None] * slots
        self._seqs = array("i", [-1]) * slots
        self._times = array("d", [0.0]) * slots
        self._oldest = 0  # the slot the release walk looks at next

    def store(self, seq: int, packet: bytes, now: float) -> None:
        index = seq & self._mask
        self._packets[index] = packet
        self._seqs[index] = seq
        self._times[index] = now
        # release what has aged out, walking in sequence order from the oldest slot; stops at
        # the packet just stored, so it never laps the ring
        oldest = self._oldest
        expired = now - self._max_age
        times = self._times
        while oldest != index and times[oldest] < expired:
            self._packets[oldest] = None
            oldest = (oldest + 1) & self._mask
        self._oldest = oldest

    def get(self, seq: int, now: float) -> bytes | None:
        index = seq & self._mask
        if self._seqs[index] != seq:
            return None
        if now - self._times[index] > self._max_age:
            return None
        return self._packets[index]

    def held(self) -> int:
        """Packets the cache holds in memory (for tests and benchmarks; walks the ring)."""
        return sum(packet is not None for packet in self._packets)
