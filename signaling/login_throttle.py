"""Login-attempt counting per account and per client address, in a sliding window, and the
bound on password checks running at once for either.

An attempt is counted when it arrives, before its password is checked: counting only the failures
let a burst of parallel guesses all pass the check while none had failed yet. A correct password
takes its own attempt back, so only failures (and attempts still being checked) count.

`LoginThrottle` is the pure logic with an injectable clock, testable without a network; its state
is in memory, and a restart forgets it, which costs an attacker at most one extra window of
guesses. The login route talks to a `LoginAttempts`: `LocalLoginAttempts` around a `LoginThrottle`
for a node alone, or, in a cluster, `signaling.cluster.login_attempts.RedisLoginAttempts`, which
keeps the same counts in Redis so that attempts spread over nodes count together.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from signaling.config import LimitsConfig

__all__ = [
    "Attempt",
    "LocalLoginAttempts",
    "LoginAttempts",
    "LoginThrottle",
    "OneCheckAtATime",
    "local_login_attempts",
]

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

    def begin(self, username: str, address: str) -> Attempt | int:
        """Count an attempt now, before its password is checked; or, if the account or the
        address has used up its attempts, return the seconds until one is allowed again."""
        wait = self.retry_after(username, address)
        if wait:
            return wait
        return Attempt(username, address, self._record(username, address))

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account's count starts over, and the address gets this
        attempt back (its earlier failures stay)."""
        self.record_success(attempt.username)
        failures = self._failures.get(("address", attempt.address))
        if failures is not None:
            with contextlib.suppress(ValueError):
                failures.remove(attempt.at)
            if not failures:
                del self._failures[("address", attempt.address)]

    def record_failure(self, username: str, address: str) -> None:
        self._record(username, address)

    def _record(self, username: str, address: str) -> float:
        now = self._clock()
        if len(self._failures) >= MAX_KEYS:
            self._forget_expired(now)
        if len(self._failures) >= MAX_KEYS:
            # Still full: drop the oldest-inserted key rather than refuse to count.
            del self._failures[next(iter(self._failures))]
        for key in (("account", username.lower()), ("address", address)):
            self._failures.setdefault(key, deque()).append(now)
        return now

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


@dataclass(frozen=True)
class Attempt:
    """A counted login attempt, handed back to `succeeded` if the password is right."""

    username: str
    address: str
    at: float
    # the attempt's member in the shared sorted set (Redis); "" in memory
    token: str = ""


class LoginAttempts(Protocol):
    """What the login route asks: count an attempt now (or the seconds to wait), and give a
    correct password's attempt back."""

    async def begin(self, username: str, address: str) -> Attempt | int: ...

    async def succeeded(self, attempt: Attempt) -> None: ...


class LocalLoginAttempts:
    """A node alone: the counts in this process's memory."""

    def __init__(self, throttle: LoginThrottle) -> None:
        self.throttle = throttle

    async def begin(self, username: str, address: str) -> Attempt | int:
        return self.throttle.begin(username, address)

    async def succeeded(self, attempt: Attempt) -> None:
        self.throttle.succeeded(attempt)


def local_login_attempts(limits: LimitsConfig) -> LocalLoginAttempts:
    return LocalLoginAttempts(
        LoginThrottle(
            limits.login_attempts_per_account,
            limits.login_attempts_per_address,
            limits.login_window_seconds,
        )
    )


class OneCheckAtATime:
    """At most one password check at a time per account and per address.

    The argon2 checks of the whole server are few at a time (they take memory and CPU). Without
    this, one address's burst fills that queue and every other therapist's sign-in waits behind
    it; with it, a burst holds one slot at most and the others are free for everyone else.
    Parallel guesses on one account are also checked one after the other, never side by side.
    """

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._users: dict[tuple[str, str], int] = {}

    @contextlib.asynccontextmanager
    async def checking(self, username: str, address: str) -> AsyncIterator[None]:
        # Always the account's lock before the address's: one fixed order cannot deadlock.
        async with self._held(("account", username.lower())), self._held(("address", address)):
            yield

    @contextlib.asynccontextmanager
    async def _held(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            # Forget the lock once nobody holds or waits for it, so memory stays bounded by the
            # requests in flight (the throttle bounds those per key).
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]
