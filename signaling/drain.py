"""Draining: the node takes no new joins, /readyz says so, and (in a cluster) live calls run to
their end before the process exits.

Alone (no `cluster.redis_url`), SIGTERM means a restart: `serve` tells everyone in a room and
exits within seconds (docs/metrics.md). In a cluster the other nodes take the new rooms, so SIGTERM
or `sprechzimmer drain` lets the calls here finish first, up to `cluster.drain_timeout_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import web

__all__ = ["DRAIN", "Drain", "wait_for_rooms_to_end"]

# How often a draining node looks whether its last room has ended: a room's end is not an event
# the node's main task can wait on, and once a second is cheap and quick enough to exit by.
ROOM_CHECK_SECONDS = 1.0


class Drain:
    """Whether this node refuses new joins: set for good when draining begins (SIGTERM,
    `sprechzimmer drain`), and also, for as long as it lasts, while a shared service the node
    needs for a new room (Redis) does not answer. Read by /readyz and the WebSocket."""

    def __init__(self) -> None:
        self._begun = False
        self._unavailable: Callable[[], bool] = lambda: False

    @property
    def draining(self) -> bool:
        return self._begun or self._unavailable()

    @property
    def begun(self) -> bool:
        return self._begun

    def begin(self) -> None:
        self._begun = True

    def refuse_joins_while(self, unavailable: Callable[[], bool]) -> None:
        """Also refuse joins whenever `unavailable()` is true (e.g. Redis unreachable)."""
        self._unavailable = unavailable


async def wait_for_rooms_to_end(
    live_rooms: Callable[[], int], timeout: float, stop_now: asyncio.Event
) -> bool:
    """Wait until no room is live, `timeout` seconds have passed, or `stop_now` is set (a second
    SIGTERM). True if every room had ended."""

    async def no_rooms() -> None:
        while live_rooms() > 0:
            await asyncio.sleep(ROOM_CHECK_SECONDS)

    waiters = [asyncio.create_task(no_rooms()), asyncio.create_task(stop_now.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return live_rooms() == 0


DRAIN = web.AppKey("drain", Drain)
