"""Coalesces keyframe requests so a receiver cannot make the sender spam keyframes.

Every PLI or FIR from the receiving browser becomes at most one PLI to the sender per interval
(500 ms by default, as Janus and Galène do): a keyframe takes longer than that to arrive anyway,
and each extra one costs the sender a burst of bitrate on a link that is already struggling.
"""

from __future__ import annotations

DEFAULT_INTERVAL = 0.5  # seconds


class KeyframeRequestLimiter:
    __slots__ = ("_interval", "_last")

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self._interval = interval
        self._last = float("-inf")

    def allow(self, now: float) -> bool:
        """True if a request may go upstream now (and records it as sent)."""
        if now - self._last < self._interval:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        """Forget the last request: a new sender must be asked for a keyframe at once."""
        self._last = float("-inf")
