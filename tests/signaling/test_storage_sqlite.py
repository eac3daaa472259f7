"""What only the SQLite backend has: its file, its pragmas and its worker thread. The interface
itself is tested on both backends in test_storage.py."""

from __future__ import annotations

import threading


async def test_database_uses_wal_and_foreign_keys(storage):
    def pragmas():
        db = storage._db
        return (
            db.execute("PRAGMA journal_mode").fetchone()[0],
            db.execute("PRAGMA foreign_keys").fetchone()[0],
        )

    assert await storage._run(pragmas) == ("wal", 1)


async def test_database_file_is_private_to_its_owner(storage):
    assert storage.path.stat().st_mode & 0o077 == 0


async def test_queries_run_off_the_event_loop_thread(storage):
    worker = await storage._run(threading.get_ident)
    assert worker != threading.get_ident()
