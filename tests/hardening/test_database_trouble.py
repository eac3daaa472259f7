"""When SQLite cannot write -- locked by another process, or out of space -- the API answers a
clear JSON error with a stable code, loses and duplicates nothing, and recovers by itself. The
signaling socket answers with an error the page retries on, and pages with a plain 503."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from signaling.logs import LOGGER_NAME
from tests.ports import PortRange
from tests.privacy_canaries import remember
from tests.sfu.media_peers import use_loopback_only
from tests.signaling.api_server import (
    PUBLIC_URL,
    ApiServer,
    call,
    in_days,
    media_config,
    serving,
    write_config,
)

# The app waits 5 s for a lock; the tests shorten that so a lock held "too long" takes 0.3 s.
BUSY_TIMEOUT_MS = 300

LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiServer]:
    async with serving(write_config(tmp_path)) as server:
        await server.add_therapist("alice")
        await on_app_connection(server, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        yield server


@pytest.fixture
async def api_with_relay(tmp_path: Path, udp_ports: PortRange) -> AsyncIterator[ApiServer]:
    use_loopback_only()
    async with serving(write_config(tmp_path, extra=media_config(udp_ports))) as server:
        await server.add_therapist("alice")
        await on_app_connection(server, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        yield server


@contextlib.asynccontextmanager
async def locked(api: ApiServer) -> AsyncIterator[None]:
    """Another process holds the database's write lock until the block ends."""
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(api.db_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(locker.stdout.readline(), 10)
        assert line == b"locked\n", f"the locking process did not lock the database: {line!r}"
        yield
        locker.stdin.write(b"release\n")
        await locker.stdin.drain()
        assert await asyncio.wait_for(locker.wait(), 10) == 0
    finally:
        if locker.returncode is None:
            locker.kill()
        await locker.wait()


async def on_app_connection(api: ApiServer, sql: str) -> list[tuple]:
    """Run ``sql`` on the app's own SQLite connection, in its storage thread."""
    storage = api.storage
    return await storage._run(lambda: [tuple(row) for row in storage._db.execute(sql)])


async def create(api: ApiServer, session, csrf: str, **fields) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    status, body, _ = await call(
        session,
        "POST",
        "/api/therapist/appointments",
        json={"starts_at": in_days(3), **fields},
        headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
    )
    return status, body


async def appointments(session) -> list[dict]:  # type: ignore[no-untyped-def]
    status, body, _ = await call(session, "GET", "/api/therapist/appointments")
    assert status == 200, body
    return body["appointments"] if isinstance(body, dict) else body


async def test_a_locked_database_answers_503_and_the_retry_creates_exactly_one(api):
    session, csrf = await api.signed_in()
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(api.db_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await asyncio.wait_for(locker.stdout.readline(), 10) == b"locked\n"
        status, body = await create(api, session, csrf, note="first try")
        assert status == 503, body
        assert body["error"]["code"] == "storage_unavailable"
        assert "sqlite" not in body["error"]["message"].lower()
        locker.stdin.write(b"release\n")
        await locker.stdin.drain()
        assert await asyncio.wait_for(locker.wait(), 10) == 0
        status, body = await create(api, session, csrf, note="first try")
        assert status == 201, body
        listed = await appointments(session)
        assert [a["note"] for a in listed] == ["first try"]
    finally:
        if locker.returncode is None:
            locker.kill()
        await locker.wait()
        await session.close()


async def test_a_full_disk_answers_507_and_leaves_the_database_intact(api):
    session, csrf = await api.signed_in()
    try:
        status, kept = await create(api, session, csrf, note="kept")
        assert status == 201, kept
        before = await appointments(session)
        # nothing may grow any more: a new row with a 6 KB note needs at least one new page
        [(pages,)] = await on_app_connection(api, "PRAGMA page_count")
        [(free,)] = await on_app_connection(api, "PRAGMA freelist_count")
        assert free == 0
        await on_app_connection(api, f"PRAGMA max_page_count={pages}")

        status, body = await create(api, session, csrf, note="€" * 2000)
        assert status == 507, body
        assert body["error"]["code"] == "storage_full"

        await on_app_connection(api, "PRAGMA max_page_count=1073741823")
        assert await appointments(session) == before
        [(result,)] = await on_app_connection(api, "PRAGMA integrity_check")
        assert result == "ok"
        status, body = await create(api, session, csrf, note="after")
        assert status == 201, body
    finally:
        await session.close()
    with sqlite3.connect(api.db_path) as db:  # what another reader of the file sees
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        notes = [row[0] for row in db.execute("SELECT note FROM appointments ORDER BY id")]
    assert notes == ["kept", "after"]


async def invite_with_consent(api: ApiServer) -> tuple[aiohttp.ClientSession, str]:
    """Alice books an appointment starting now; a client consents. The client's HTTP session
    (with its binding cookie) and the invite token."""
    therapist, csrf = await api.signed_in()
    async with therapist:
        status, body = await create(api, therapist, csrf, starts_at=in_days(0))
    assert status == 201, body
    token = body["invite_url"].rsplit("/", 1)[1]
    remember(token)
    client = api.client()
    status, info, _ = await call(client, "GET", f"/api/client/{token}")
    assert status == 200, info
    status, body, _ = await call(
        client,
        "POST",
        f"/api/client/{token}/consent",
        json={
            "accept_terms": True,
            "consent_processing": True,
            "terms_version": info["terms_version"],
        },
        headers={"Origin": PUBLIC_URL},
    )
    assert status == 200, body
    return client, token


async def join(client: aiohttp.ClientSession, token: str) -> tuple[list[dict], int | None]:
    """Open the signaling socket and join as the client. Every message up to `joined` or the
    server's close, and the close code (None while the socket stays open after `joined`)."""
    messages: list[dict] = []
    async with client.ws_connect("/ws", headers={"Origin": PUBLIC_URL}) as ws:
        await ws.send_json({"v": 1, "type": "join", "invite": token})
        async with asyncio.timeout(15):
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                messages.append(msg.json())
                if messages[-1]["type"] == "joined":
                    return messages, None
        return messages, ws.close_code


async def test_a_join_while_the_database_is_locked_gets_an_error_to_retry_on(
    api_with_relay, caplog
):
    api = api_with_relay
    client, token = await invite_with_consent(api)
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    try:
        async with locked(api):
            messages, close = await join(client, token)
        # storage_unavailable: the page says the service is briefly unavailable and
        # keeps trying; 1011 is not a final close, so its socket reconnects and joins again
        assert [(m["type"], m.get("code")) for m in messages] == [("error", "storage_unavailable")]
        assert "database" in messages[0]["message"]
        assert close == 1011
        messages, close = await join(client, token)
        assert messages[-1]["type"] == "joined", messages
    finally:
        logger.removeHandler(caplog.handler)
        await client.close()
    logged = [r.fields for r in caplog.records if r.getMessage() == "storage_unavailable"]
    assert logged, "the refused join was not logged as storage_unavailable"
    assert {f["path"] for f in logged} == {"/ws"}
    assert {f["error"] for f in logged} <= {"SQLITE_BUSY", "SQLITE_LOCKED"}
    assert token not in repr(logged)


async def test_a_page_that_cannot_reach_the_database_answers_a_plain_503(api, caplog):
    client, token = await invite_with_consent(api)
    # a closed storage is "unavailable" as a locked one is; reads go on under a write lock
    # (WAL), so this is how a page's read fails
    await api.storage.close()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    try:
        async with client.get(f"/j/{token}") as response:
            text = await response.text()
            assert response.status == 503, text
            assert response.content_type == "text/plain"
            assert response.headers["Retry-After"].isdigit()
            assert "reload" in text.lower() and "Traceback" not in text
    finally:
        logger.removeHandler(caplog.handler)
        await client.close()
    logged = [r.fields for r in caplog.records if r.getMessage() == "storage_unavailable"]
    assert {f["path"] for f in logged} == {"/j/{token}"}
    assert token not in repr(logged)
