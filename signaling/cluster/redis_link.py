"""The node's one connection to Redis, and whether Redis answers right now.

redis-py reconnects on its own at the next command; what it does not do is tell anybody. This
watches: a PING every `interval` while Redis answers, and with exponential backoff (0.5 s doubling
to 10 s) while it does not. Each change of state is one log line (`redis_unreachable error=…`,
`redis_reachable`), never a traceback and never the URL, which holds the password.

Callers that need Redis call `link.redis` and catch `RedisUnavailable`, which every failure of a
command becomes (`call()` does the mapping): they answer "try again" and the watcher notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from signaling.logs import LOGGER_NAME, log_event
from signaling.task_ends import stop_tasks

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisLink", "RedisUnavailable"]

logger = logging.getLogger(LOGGER_NAME)

T = TypeVar("T")

# A command that takes longer than this is as good as failed: every caller is on a request path
# (a sign-in, a join) or a heartbeat that must not fall behind.
COMMAND_TIMEOUT_SECONDS = 2.0
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0


class RedisUnavailable(Exception):
    """Redis did not answer; `str()` names the error's class only (no address, no password)."""


class RedisLink:
    """One redis-py client (its own connection pool) and a watcher of its health."""

    def __init__(self, url: str, interval: float) -> None:
        import redis.asyncio

        self.redis: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
            # redis-py's own retries would hide an outage behind seconds of waiting; the watcher
            # retries instead, and a request gets its "try again" at once
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._interval = interval
        self._state: bool | None = None  # unknown until the first check
        self._changed: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def reachable(self) -> bool:
        return self._state is True

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(reachable)` at each change of state."""
        self._changed.append(callback)

    async def start(self) -> None:
        """Check once (so a node knows at once whether it can take rooms), then keep watching.
        An unreachable Redis at start is no error: the watcher keeps trying."""
        await self._check()
        self._task = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    async def call(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run one command; any failure of Redis becomes `RedisUnavailable` and wakes the
        watcher, so the state (and /readyz) follows within a moment."""
        import redis.exceptions

        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns a result that came
            # in the same turn as a cancel and drops the cancel, and a node's close then hangs
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                return await command()
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            TimeoutError,
        ) as exc:
            self._wake.set()
            raise RedisUnavailable(type(exc).__name__) from None
        except redis.exceptions.ResponseError as exc:
            # e.g. LOADING while Redis reads its data after a restart, or a read-only replica
            # after a failover: not ours to fix, but not a bug either
            self._wake.set()
            raise RedisUnavailable(f"{type(exc).__name__}: {_first_word(exc)}") from None

    async def _watch(self) -> None:
        backoff = BACKOFF_FIRST_SECONDS
        while True:
            if self.reachable:
                backoff = BACKOFF_FIRST_SECONDS
                delay = self._interval
            else:
                delay = backoff
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: see call()
                    await self._wake.wait()
            await self._check()

    async def _check(self) -> None:
        try:
            await self.call(self.redis.ping)
        except RedisUnavailable as exc:
            self._set(False, str(exc))
        else:
            self._set(True, "")

    def _set(self, reachable: bool, error: str) -> None:
        # The first check logs its outcome too: an operator starting a node wants to read
        # whether it found Redis.
        if reachable == self._state:
            return
        self._state = reachable
        if reachable:
            log_event(logger, "redis_reachable")
        else:
            log_event(logger, "redis_unreachable", logging.WARNING, error=error)
        for callback in self._changed:
            callback(reachable)


def _first_word(exc: Any) -> str:
    # Redis error replies start with their code (LOADING, READONLY, NOAUTH, WRONGPASS …); the rest
    # may quote the command, so only the code is kept
    text = str(exc).strip()
    return text.split(" ", 1)[0] if text else "error"
