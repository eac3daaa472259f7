"""Draining: once shutdown begins, the service reports not ready and refuses new joins."""

from __future__ import annotations

from aiohttp import web

__all__ = ["DRAIN", "Drain"]


class Drain:
    """A one-way switch: set when SIGTERM arrives, read by /readyz and the WebSocket."""

    def __init__(self) -> None:
        self.draining = False

    def begin(self) -> None:
        self.draining = True


DRAIN = web.AppKey("drain", Drain)
