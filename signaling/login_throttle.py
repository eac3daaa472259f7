"""Failed-login counting per account and per client address, in a sliding window.

Pure logic with an injectable clock, so it is testable without a network. State is in memory:
a restart forgets it, which costs an attacker at most one extra window of guesses.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["LoginThrottle"]

# Bound on remembered keys, so a flood of random usernames cannot grow memory without limit.
# At ~200 bytes per key this is about 20 MB.
MAX_KEYS = 100_000


class LoginThrottle:
    """Refuses login attempts for an account or address once it has too many recent failures.

    The account key is the submitted username, whether or not it exists, so the answer does not
    tell an attacker which usernames are real.
    """

    def __init__(
        self,
        per_account: int,
        per_address: int,
        window_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"account": per_account, "address": per_address}
        self._window = window_seconds
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until an attempt is allowed again; 0 if it is allowed now."""
        now = self._clock()
        wait = 0.0
        for key in (("account", username.lower()), ("address", address)):
            failures = self._recent(key, now)
            if failures is not None and len(failures) >= self._limits[key[0]]:
                # The oldest failure that keeps the count at the limit must leave the window.
                oldest = failures[len(failures) - self._limits[key[0]]]
                wait = max(wait, oldest + self._window - now)
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def record_failure(self, username: str, address: str) -> None:
        now = self._clock()
        if len(self._failures) >= MAX_KEYS:
            self._forget_expired(now)
        if len(self._failures) >= MAX_KEYS:
            # Still full: drop the oldest-inserted key rather than refuse to count.
            del self._failures[next(iter(self._failures))]
        for key in (("account", username.lower()), ("address", address)):
            self._failures.setdefault(key, deque()).append(now)

    def record_success(self, username: str) -> None:
        """A correct password clears the account's failures; the address keeps its count."""
        self._failures.pop(("account", username.lower()), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def _forget_expired(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
