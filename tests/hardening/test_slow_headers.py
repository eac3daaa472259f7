"""Slowloris: sockets that trickle a request head are closed within `limits.header_timeout_seconds`
and one address cannot hold more than `limits.connections_per_address` connections -- enforced by
the app itself (signaling.connection_guard), not only by the nginx example. Real sockets on
127.0.0.1 against the real app served as `serve` serves it (`start_site`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from signaling.app import SECURITY_HEADERS, create_app, start_site
from signaling.config import Config
from signaling.storage.sqlite import SqliteStorage
from tests.signaling.api_server import PUBLIC_URL, write_config

SLOW_SOCKETS = 300


@asynccontextmanager
async def guarded(config: Config) -> AsyncIterator[tuple[str, int]]:
    """The app on 127.0.0.1 with its connection guard; yields (url, port)."""
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    try:
        runner = web.AppRunner(create_app(config, storage), access_log=None)
        await runner.setup()
        try:
            await start_site(runner, runner.app, "127.0.0.1", 0)
            port = runner.addresses[0][1]
            yield f"http://127.0.0.1:{port}", port
        finally:
            await runner.cleanup()
    finally:
        await storage.close()


def limits(timeout: int = 1, per_address: int = 1000, proxies: str = "[]") -> str:
    return (
        f"  trusted_proxies: {proxies}\n"
        f"limits:\n  header_timeout_seconds: {timeout}\n"
        f"  connections_per_address: {per_address}\n"
    )


def config_with(tmp_path: Path, **kwargs) -> Config:
    # write_config ends with the server section open, so trusted_proxies lands inside it
    return write_config(tmp_path, extra=limits(**kwargs))


async def slowloris(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    return reader, writer


async def trickle(writer: asyncio.StreamWriter) -> None:
    """One header byte every 0.2 s, as long as the server lets us."""
    with contextlib.suppress(ConnectionError):
        while not writer.is_closing():
            writer.write(b"X")
            await writer.drain()
            await asyncio.sleep(0.2)


async def closed_after(reader: asyncio.StreamReader, started: float, deadline: float) -> float:
    """Seconds from `started` until the server closed the socket (EOF or reset)."""
    try:
        async with asyncio.timeout(deadline):
            while await reader.read(1024):
                pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server did not close the socket within {deadline} s") from None
    return time.monotonic() - started


async def healthz(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
        return response.status


async def test_trickling_sockets_are_closed_within_the_header_timeout_and_others_are_served(
    tmp_path,
):
    async with guarded(config_with(tmp_path, timeout=2)) as (url, port):
        started = time.monotonic()
        sockets = await asyncio.gather(*(slowloris(port) for _ in range(SLOW_SOCKETS)))
        tricklers = [asyncio.create_task(trickle(writer)) for _, writer in sockets]
        try:
            assert await healthz(url) == 200  # a normal client is served meanwhile
            # 2 s timeout + slack for a loaded 2-core machine; before, this took 75 s+
            held = await asyncio.gather(*(closed_after(r, started, 15) for r, _ in sockets))
            assert min(held) >= 1.9, "closed before its header deadline"
            assert await healthz(url) == 200
        finally:
            for task in tricklers:
                task.cancel()
            for _, writer in sockets:
                writer.close()


async def test_a_silent_socket_is_closed_within_the_header_timeout(tmp_path):
    async with guarded(config_with(tmp_path, timeout=1)) as (_, port):
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert 0.9 <= await closed_after(reader, started, 10) < 10
        finally:
            writer.close()


async def test_a_kept_alive_socket_that_trickles_its_next_head_is_closed(tmp_path):
    async with guarded(config_with(tmp_path, timeout=1)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            await reader.readexactly(len(b'{"status": "ok"}'))
            started = time.monotonic()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            trickler = asyncio.create_task(trickle(writer))
            try:
                assert await closed_after(reader, started, 10) >= 0.9
            finally:
                trickler.cancel()
        finally:
            writer.close()


async def a_deadline_has_passed(port: int) -> None:
    """Returns once a trickling socket opened now has been closed by the guard: every header
    deadline armed before it has passed too. A positive signal instead of a sleep."""
    started = time.monotonic()
    reader, writer = await slowloris(port)
    trickler = asyncio.create_task(trickle(writer))
    try:
        await closed_after(reader, started, 10)
    finally:
        trickler.cancel()
        writer.close()


async def get_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """GET /healthz on an open keep-alive connection; the response head."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    await reader.readexactly(len(b'{"status": "ok"}'))
    return head


async def test_an_idle_kept_alive_socket_outlives_the_header_timeout(tmp_path):
    async with guarded(config_with(tmp_path, timeout=1)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert (await get_on(reader, writer)).startswith(b"HTTP/1.1 200")
            await a_deadline_has_passed(port)
            assert (await get_on(reader, writer)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()


async def test_an_open_websocket_outlives_the_header_timeout(tmp_path):
    async with (
        guarded(config_with(tmp_path, timeout=1)) as (url, port),
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/ws", headers={"Origin": PUBLIC_URL}) as ws,
    ):
        await a_deadline_has_passed(port)
        await ws.send_str("not json")
        reply = await ws.receive_json(timeout=10)
        assert reply["type"] == "error"


async def test_one_address_over_the_cap_gets_429_with_security_headers(tmp_path):
    async with guarded(config_with(tmp_path, timeout=60, per_address=5)) as (url, port):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answer = await asyncio.wait_for(reader.read(), 10)  # until the server closes
            writer.close()
            head = answer.split(b"\r\n\r\n", 1)[0].decode()
            assert head.startswith("HTTP/1.1 429 ")
            for name, value in {**SECURITY_HEADERS, "Cache-Control": "no-store"}.items():
                assert f"\r\n{name}: {value}" in head, name
            assert "\r\nRetry-After: " in head
        finally:
            for _, held_writer in held:
                held_writer.close()
        # once the held sockets are gone, the address is served again
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    if await healthz(url) == 200:
                        break
                await asyncio.sleep(0.05)


async def test_behind_a_trusted_proxy_the_forwarded_address_is_capped_not_the_proxy(tmp_path):
    config = config_with(tmp_path, timeout=60, per_address=3, proxies='["127.0.0.1"]')
    async with (
        guarded(config) as (url, _),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):

        def open_ws(client: str):  # type: ignore[no-untyped-def]
            return session.ws_connect(
                f"{url}/ws", headers={"Origin": PUBLIC_URL, "X-Forwarded-For": client}
            )

        crowd = [await open_ws("203.0.113.7") for _ in range(3)]
        try:
            async with session.get(
                f"{url}/healthz", headers={"X-Forwarded-For": "203.0.113.7"}
            ) as refused:
                assert refused.status == 429
                for name, value in SECURITY_HEADERS.items():
                    assert refused.headers[name] == value, name
            async with session.get(
                f"{url}/healthz", headers={"X-Forwarded-For": "198.51.100.9"}
            ) as other:
                assert other.status == 200
        finally:
            for ws in crowd:
                await ws.close()
        async with session.get(
            f"{url}/healthz", headers={"X-Forwarded-For": "203.0.113.7"}
        ) as again:
            assert again.status == 200
