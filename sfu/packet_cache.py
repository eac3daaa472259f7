"""Recently forwarded packets of one outgoing stream, kept to answer NACKs locally.

A ring indexed by sequence number: storing is one list assignment, so the hot path pays almost
nothing. 1024 slots hold a little over a second of 720p video at ~800 packets/s; older packets
are useless for retransmission anyway because the receiver's jitter buffer has given up on them.
Packets older than ``max_age`` are treated as misses so a stalled stream never replays stale data.
"""

from __future__ import annotations

DEFAULT_SLOTS = 1024  # power of two: the index is a mask, not a modulo
DEFAULT_MAX_AGE = 1.0  # seconds; NACKs for older packets cannot help the receiver


class PacketCache:
    __slots__ = ("_mask", "_max_age", "_packets", "_seqs", "_times")

    def __init__(self, slots: int = DEFAULT_SLOTS, max_age: float = DEFAULT_MAX_AGE) -> None:
        if slots <= 0 or slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._mask = slots - 1
        self._max_age = max_age
        self._packets: list[bytes | None] = [None] * slots
        self._seqs = [-1] * slots
        self._times = [0.0] * slots

    def store(self, seq: int, packet: bytes, now: float) -> None:
        index = seq & self._mask
        self._packets[index] = packet
        self._seqs[index] = seq
        self._times[index] = now

    def get(self, seq: int, now: float) -> bytes | None:
        index = seq & self._mask
        if self._seqs[index] != seq:
            return None
        if now - self._times[index] > self._max_age:
            return None
        return self._packets[index]
