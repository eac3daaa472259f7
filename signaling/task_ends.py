"""Ending background tasks without losing a cancel, on Python 3.11's asyncio.

Two traps this module exists for:
- ``asyncio.wait_for`` (used inside redis-py) drops a cancel that arrives in the same turn as
  the awaited result, so one ``task.cancel()`` may not end a task: it goes on into its next
  wait, and whoever awaits it waits forever.
- ``await wait_for(shield(task), t)`` under ``contextlib.suppress(CancelledError)`` swallows the
  *caller's* own cancel too: a handler cancelled while it lets its writer finish carries on as
  if nothing had happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

from signaling.logs import LOGGER_NAME, log_event

__all__ = ["BackgroundTasks", "let_finish", "stop_tasks"]

logger = logging.getLogger(LOGGER_NAME)

# How long `stop_tasks` waits before it cancels a task again.
CANCEL_AGAIN_SECONDS = 0.2


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel each task and wait for its end, cancelling again while it runs on (see above: a
    node's close once waited forever for a task cancelled in the middle of a Redis command). A
    task that failed is logged by the name of its error."""
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_AGAIN_SECONDS)
        if not task.cancelled() and task.exception() is not None:
            log_event(logger, "task_failed", logging.ERROR, error=type(task.exception()).__name__)


async def let_finish(task: asyncio.Task[Any], seconds: float) -> None:
    """Give ``task`` up to ``seconds`` to end by itself (a writer sending what is queued), then
    stop it. If the caller is cancelled meanwhile, the task is cancelled too and the caller's
    CancelledError goes on up."""
    try:
        await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    await stop_tasks([task])


class BackgroundTasks:
    """The tasks an object starts and must stop when it closes. A task is kept (asyncio holds
    only a weak reference) until it ends, then dropped at once."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def stop(self) -> None:
        await stop_tasks(list(self._running))
