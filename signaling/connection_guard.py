"""Connection limits aiohttp lacks: a deadline for each request head, and connections per address.

aiohttp waits for a request head as long as bytes keep coming (its keep-alive timer, 75 s, is
the only bound), so a few hundred "slowloris" sockets that send one header byte every few
seconds hold the server's connections for over a minute each. nginx in front helps
(deploy/nginx), but the app must not depend on it.

- **Header deadline.** A connection must complete a request head within
  `limits.header_timeout_seconds` of being accepted, and a later head within that time of its
  first byte. Otherwise it is closed. While a request runs (a long WebSocket included) the
  deadline is off; an idle keep-alive connection is left to aiohttp's keep-alive timeout.
- **Per-address cap.** At most `limits.connections_per_address` connections from one address.
  Direct connections are counted when accepted; one over the cap is answered 429 and closed
  before aiohttp sees it. Behind a trusted proxy every connection comes from the proxy, so
  there the requests in progress are counted per forwarded client address instead
  (`signaling.client_address`) -- a WebSocket is a request in progress for its whole life.

`GuardedSite` puts the guard in front of aiohttp's protocol; `ConnectionGuard.middleware` tells
it when a request head is complete and when the request is over.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aiohttp import web

from signaling.client_address import client_address, is_trusted
from signaling.config import LimitsConfig

__all__ = ["ConnectionGuard", "GuardedSite"]

# Long enough that a NAT'd practice's browsers come back soon, short enough not to be ignored.
RETRY_AFTER_SECONDS = 10


class ConnectionGuard:
    """The header deadline and per-address counts of one server."""

    def __init__(
        self,
        limits: LimitsConfig,
        trusted_proxies: tuple[str, ...],
        response_headers: Mapping[str, str],
    ) -> None:
        self.header_timeout = float(limits.header_timeout_seconds)
        self.max_per_address = limits.connections_per_address
        self._trusted_proxies = trusted_proxies
        self._response_headers = dict(response_headers)
        self._direct: collections.Counter[str] = collections.Counter()
        self._forwarded: collections.Counter[str] = collections.Counter()
        self._connections: dict[object, _GuardedConnection] = {}
        self.refused = 0
        self.timed_out = 0

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` that wraps aiohttp's for each connection."""
        return lambda: _GuardedConnection(self, server)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        connection = self._connections.get(request.protocol)
        if connection is not None:
            connection.request_started()
        try:
            with self._forwarded_slot(request):
                return await handler(request)
        finally:
            if connection is not None:
                connection.request_finished()

    # --- direct connections

    def _admit(self, address: str) -> bool:
        if self.is_proxy(address):
            return True  # counted per forwarded client in the middleware
        if self._direct[address] >= self.max_per_address:
            self.refused += 1
            return False
        self._direct[address] += 1
        return True

    def _release(self, address: str) -> None:
        if self.is_proxy(address):
            return
        self._direct[address] -= 1
        if self._direct[address] <= 0:
            del self._direct[address]

    def is_proxy(self, address: str) -> bool:
        return bool(self._trusted_proxies) and is_trusted(address, self._trusted_proxies)

    def refusal(self) -> bytes:
        """A complete 429 response, security headers included, for a connection over the cap."""
        headers = {
            **self._response_headers,
            "Cache-Control": "no-store",
            "Retry-After": str(RETRY_AFTER_SECONDS),
            "Content-Type": "text/plain; charset=utf-8",
            "Connection": "close",
        }
        body = b"429 Too Many Requests: too many connections from your address\n"
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return (
            f"HTTP/1.1 429 Too Many Requests\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    # --- requests through a trusted proxy

    @contextlib.contextmanager
    def _forwarded_slot(self, request: web.Request) -> Iterator[None]:
        if not self.is_proxy(request.remote or ""):
            yield
            return
        address = client_address(request, self._trusted_proxies)
        if self._forwarded[address] >= self.max_per_address:
            self.refused += 1
            raise web.HTTPTooManyRequests(
                text="429 Too Many Requests: too many connections from your address\n",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._forwarded[address] += 1
        try:
            yield
        finally:
            self._forwarded[address] -= 1
            if self._forwarded[address] <= 0:
                del self._forwarded[address]


class _GuardedConnection(asyncio.Protocol):
    """Stands between the transport and aiohttp's `RequestHandler` for one connection: counts
    it, refuses it over the cap, and closes it when a request head takes too long."""

    def __init__(self, guard: ConnectionGuard, server: web.Server) -> None:
        self._guard = guard
        self._server = server
        self._handler: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._address: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._guard._admit(address):
            transport.write(self._guard.refusal())
            transport.close()
            return
        self._address = address
        self._handler = handler = self._server()
        self._guard._connections[handler] = self
        self._arm()
        handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handler is None:
            return
        if not self._busy and self._deadline is None:
            self._arm()  # the first byte of a next request head on a kept-alive connection
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self._guard._release(self._address)
            self._address = None
        if self._handler is not None:
            self._guard._connections.pop(self._handler, None)
            self._handler.connection_lost(exc)
            self._handler = None

    def request_started(self) -> None:
        self._busy = True
        self._disarm()

    def request_finished(self) -> None:
        self._busy = False

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_too_slow(self) -> None:
        self._deadline = None
        if self._busy or self._transport is None:
            return
        # No answer: a previous response may still be on its way out, and bytes of a 408 must
        # not land inside it. close() lets that response finish, then ends the connection.
        self._guard.timed_out += 1
        self._transport.close()


class GuardedSite(web.BaseSite):
    """Like `web.TCPSite`, with every connection passing through a `ConnectionGuard`."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        ssl_context: Any = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._guard = guard
        # `serve --workers`: every worker binds the port, the kernel spreads connections
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None, "runner.setup() first"
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
            # the TLS handshake is part of getting a request in: same deadline
            ssl_handshake_timeout=self._guard.header_timeout if self._ssl_context else None,
        )
