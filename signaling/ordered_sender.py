"""A participant's outgoing signaling messages, written in order by one task of their own.

Sends must not block the room (a slow browser would stall the other person's messages), and
must not overtake each other (an answer before its offer). So each participant has a queue and
one writer; the base of a browser's own socket (`ws_endpoint.Connection`) and of a socket that
lives on another node (`cluster.signal_relay.RemoteSocket`).
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from signaling.task_ends import let_finish

__all__ = ["OrderedSender"]

# How long `finish` lets queued messages go out before it stops the writer.
FINISH_SECONDS = 2.0


class OrderedSender(abc.ABC):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._closing = False
        self._writer = asyncio.create_task(self._write())

    def send(self, message: dict[str, Any]) -> None:
        if not self._closing:
            self._queue.put_nowait(("send", message))

    def close(self, code: int) -> None:
        """Close after what is queued; nothing is sent after it."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(("close", code))

    async def finish(self) -> None:
        """Let queued messages go out (bounded), then stop the writer."""
        self._closing = True
        self._queue.put_nowait(None)
        await let_finish(self._writer, FINISH_SECONDS)

    async def _write(self) -> None:
        while (item := await self._queue.get()) is not None:
            action, value = item
            if not await self._deliver(action, value) or action == "close":
                return

    @abc.abstractmethod
    async def _deliver(self, action: str, value: Any) -> bool:
        """Write one "send" (a message) or "close" (a close code); False: the other end is gone."""
