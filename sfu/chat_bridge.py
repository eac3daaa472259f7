"""The in-call chat: one negotiated data channel per leg, bridged message by message.

Browsers open the channel themselves with ``negotiated: true, id: CHAT_CHANNEL_ID`` and encrypt
every message end to end, so the relay only moves opaque messages between the two legs. It keeps
none: a message for a leg whose channel is not open is dropped, as the brief promises ("never
stored anywhere, gone when the call ends"). Size and rate limits keep one side from flooding the
other through us.
"""

from __future__ import annotations

import time

CHAT_CHANNEL_LABEL = "chat"
CHAT_CHANNEL_ID = 0
MAX_MESSAGE_BYTES = 16 * 1024  # a phone number or a link, encrypted and encoded, with room to spare
BURST = 20
PER_SECOND = 5.0


class ChatLimiter:
    """A token bucket per sending leg; a refused message is dropped, never queued."""

    def __init__(self, burst: int = BURST, per_second: float = PER_SECOND) -> None:
        self._burst = burst
        self._rate = per_second
        self._tokens = float(burst)
        self._last = time.monotonic()
        self.refused = 0  # too big or too fast; counted so that tests and metrics can see it

    def allow(self, message: str | bytes) -> bool:
        size = len(message.encode() if isinstance(message, str) else message)
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if size > MAX_MESSAGE_BYTES or self._tokens < 1:
            self.refused += 1
            return False
        self._tokens -= 1
        return True
