"""The storage interface raises its own exceptions when the database cannot do its job -- locked,
full, closed, broken -- so callers (HTTP, WebSocket, CLI) never handle a driver's exceptions and
a second backend only has to map its own."""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signaling.storage import StorageFailure, StorageFull, StorageUnavailable
from signaling.storage.sqlite import SqliteStorage

SIGNALING = Path(__file__).resolve().parents[2] / "signaling"

# Short, so a lock held "too long" takes 0.3 s instead of the app's 5 s.
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
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    opened = await SqliteStorage.open(tmp_path / "db.sqlite3")
    await on_connection(opened, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        yield opened
    finally:
        await opened.close()


async def on_connection(storage: SqliteStorage, sql: str) -> list[tuple]:
    return await storage._run(lambda: [tuple(row) for row in storage._db.execute(sql)])


async def test_a_write_while_another_process_holds_the_lock_raises_storage_unavailable(storage):
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(storage.path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await asyncio.wait_for(locker.stdout.readline(), 10) == b"locked\n"
        with pytest.raises(StorageUnavailable) as raised:
            await storage.add_therapist("alice", "hash")
        assert raised.value.reason in ("SQLITE_BUSY", "SQLITE_LOCKED")
        locker.stdin.write(b"release\n")
        await locker.stdin.drain()
        assert await asyncio.wait_for(locker.wait(), 10) == 0
        await storage.add_therapist("alice", "hash")
        assert [t.username for t in await storage.list_therapists()] == ["alice"]
    finally:
        if locker.returncode is None:
            locker.kill()
        await locker.wait()


async def test_a_write_past_the_size_limit_raises_storage_full_and_keeps_the_data(storage):
    await storage.add_therapist("alice", "hash")
    [(pages,)] = await on_connection(storage, "PRAGMA page_count")
    await on_connection(storage, f"PRAGMA max_page_count={pages}")
    therapist = await storage.get_therapist("alice")
    with pytest.raises(StorageFull) as raised:
        for _ in range(10):  # a page may have room for a row or two; ten 8 KB notes do not fit
            await storage.create_appointment(
                therapist.id, *_times(), note="€" * 2000, invite_token_hash=None
            )
    assert raised.value.reason == "SQLITE_FULL"
    await on_connection(storage, "PRAGMA max_page_count=1073741823")
    assert await on_connection(storage, "PRAGMA integrity_check") == [("ok",)]


async def test_a_call_after_close_raises_storage_unavailable(tmp_path):
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    await storage.close()
    with pytest.raises(StorageUnavailable):
        await storage.count_therapists()


async def test_a_file_that_is_not_a_database_raises_storage_failure_on_open(tmp_path):
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"this is not an SQLite database, it is a text file" * 100)
    with pytest.raises(StorageFailure) as raised:
        await SqliteStorage.open(path)
    assert raised.value.reason == "SQLITE_NOTADB"


async def test_a_database_error_caught_by_the_storage_names_no_value_in_its_reason(storage):
    secret = "Frau Beispiel, Angststörung"
    with pytest.raises(StorageFailure) as raised:
        await storage._run(lambda: storage._db.execute(f"SELECT * FROM '{secret}'"))
    assert secret not in raised.value.reason


def test_only_the_sqlite_backend_imports_sqlite3():
    # HTTP, WebSocket, pages and CLI handle the interface's exceptions; a PostgreSQL backend
    # must not leave them catching sqlite3's.
    offenders = []
    for path in sorted(SIGNALING.rglob("*.py")):
        if path.parent.name == "storage" and path.name.startswith("sqlite"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "sqlite3" for name in names):
                offenders.append(str(path.relative_to(SIGNALING.parent)))
    assert offenders == []


def _times() -> tuple[dt.datetime, int, dt.datetime, dt.datetime]:
    start = dt.datetime(2030, 1, 1, 9, tzinfo=dt.UTC)
    return start, 50, start - dt.timedelta(minutes=15), start + dt.timedelta(hours=2)
