"""When SQLite cannot write -- locked by another process, or out of space -- the API answers a
clear JSON error with a stable code, loses and duplicates nothing, and recovers by itself."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.signaling.api_server import (
    PUBLIC_URL,
    ApiServer,
    call,
    in_days,
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
