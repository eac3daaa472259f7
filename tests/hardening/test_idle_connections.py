"""Sockets that open and then say nothing: the server closes them after the join timeout, many
of them do not keep a real call from starting, and closing them leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

import signaling.ws_endpoint
from signaling.app import SIGNALING
from signaling.metrics import METRICS
from signaling.relay_setup import CONSULTATIONS
from tests.hardening.app_server import app_serving
from tests.sfu.media_peers import use_loopback_only
from tests.signaling.api_server import PUBLIC_URL, media_config, write_config
from tests.signaling.test_ws_call import Side, book, consenting_client

IDLE_SOCKETS = 200


@pytest.fixture
async def served(tmp_path: Path, udp_ports) -> AsyncIterator:
    use_loopback_only()
    async with app_serving(write_config(tmp_path, extra=media_config(udp_ports))) as (api, app):
        await api.add_therapist("alice")
        yield api, app


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> tuple[list, int]:
    """The messages a socket gets until the server closes it, and the code of the server's close
    frame (read from the frame: ``ws.close_code`` may say 1006 if TCP drops right after it)."""
    messages = []
    async with asyncio.timeout(timeout):
        msg = await ws.receive()
        while msg.type == aiohttp.WSMsgType.TEXT:
            messages.append(json.loads(msg.data))
            msg = await ws.receive()
    return messages, msg.data if msg.type == aiohttp.WSMsgType.CLOSE else ws.close_code


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


def open_sockets(app) -> float:  # type: ignore[no-untyped-def]
    return app[METRICS].registry.get_sample_value("sprechzimmer_websocket_connections_active")


async def test_a_socket_that_never_joins_is_closed_with_4008_after_the_join_timeout(
    served, monkeypatch
):
    api, _ = served
    monkeypatch.setattr(signaling.ws_endpoint, "JOIN_TIMEOUT_SECONDS", 0.5)
    http, _ = await api.signed_in()
    side = Side(http)
    try:
        started = time.monotonic()
        await side.connect()
        messages, code = await closed_with(side.ws, timeout=5)
        assert time.monotonic() - started >= 0.5
        assert [m["code"] for m in messages if m["type"] == "error"] == ["join_timeout"]
        assert code == 4008
    finally:
        await side.close()


async def test_a_dashboard_that_watches_stays_open_past_the_join_timeout(served, monkeypatch):
    api, _ = served
    monkeypatch.setattr(signaling.ws_endpoint, "JOIN_TIMEOUT_SECONDS", 1.0)
    http, _ = await api.signed_in()
    side, marker = Side(http), Side(api.client())
    try:
        await side.connect()
        await side.send(type="watch")
        await answers(side)  # messages are handled in order: the watch has been too
        # A socket opened later that says nothing: once the server has closed it for its join
        # timeout, the watcher's own timeout (started earlier) has passed as well.
        await marker.connect()
        _, code = await closed_with(marker.ws, timeout=15)
        assert code == 4008
        await answers(side)
    finally:
        await side.close()
        await marker.close()


async def answers(side: Side) -> None:
    """The server still reads and answers ``side``: a malformed message gets its error."""
    await side.ws.send_str("not json")
    assert (await side.next("error"))["code"] == "bad_message"


async def test_200_idle_sockets_neither_block_a_call_nor_outlive_the_join_timeout(
    served, monkeypatch
):
    api, app = served
    monkeypatch.setattr(signaling.ws_endpoint, "JOIN_TIMEOUT_SECONDS", 3.0)
    therapist, appointment_id, token = await book(api)
    client = await consenting_client(api, token)
    # one browser-less crowd, no cookies: anyone on the internet can open this many sockets
    crowd = aiohttp.ClientSession(base_url=api.url, connector=aiohttp.TCPConnector(limit=0))
    try:
        idle = await asyncio.gather(
            *(crowd.ws_connect("/ws", headers={"Origin": PUBLIC_URL}) for _ in range(IDLE_SOCKETS))
        )
        await until(lambda: open_sockets(app) == IDLE_SOCKETS, "every idle socket counted")

        await therapist.connect()
        await therapist.send(type="join", appointment=appointment_id)
        assert (await therapist.next("joined", timeout=5))["seat"] == "therapist"
        await client.connect()
        await client.send(type="join", invite=token)
        assert (await client.next("joined", timeout=5))["peer"]["state"] == "present"

        ends = await asyncio.gather(*(closed_with(ws, timeout=20) for ws in idle))
        assert {code for _, code in ends} == {4008}
        # the server's handlers finish after their close frame
        await until(lambda: open_sockets(app) == 2, "only the call's two sockets left open")
        assert len(app[SIGNALING]._connections) == 2
        assert [c.appointment_id for c in app[CONSULTATIONS].active] == [appointment_id]
        assert app[CONSULTATIONS]._watchers == {}
        assert not therapist.ws.closed and not client.ws.closed
    finally:
        await crowd.close()
        await therapist.close()
        await client.close()
