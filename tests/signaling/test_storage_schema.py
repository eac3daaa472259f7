"""One list of migrations for both backends (signaling/storage/migration_files.py): both end at
the same tables and columns, and the default backend never loads the PostgreSQL driver."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.storage_backends import PostgresqlBackend, SqliteBackend

# SQLite keeps a column's declared type; information_schema names PostgreSQL's own.
_SAME_TYPE = {"INTEGER": "INTEGER", "TEXT": "TEXT"}


async def test_both_backends_end_at_the_same_tables_and_columns(tmp_path, postgres):
    sqlite, postgresql = SqliteBackend(tmp_path), PostgresqlBackend(postgres)
    try:
        for backend in (sqlite, postgresql):
            await (await backend.open()).close()
        on_sqlite = {
            table: [(name, _SAME_TYPE.get(kind, kind), not_null) for name, kind, not_null in cols]
            for table, cols in sqlite.columns().items()
        }
        assert postgresql.columns() == on_sqlite
    finally:
        postgresql.drop_databases()


async def test_postgresql_numbers_new_rows_like_sqlite(postgres):
    """The PostgreSQL-only part of the migrations: ids come from an identity."""
    backend = PostgresqlBackend(postgres)
    try:
        storage = await backend.open()
        first = await storage.add_therapist("alice", "h")
        second = await storage.add_therapist("bob", "h")
        await storage.close()
        assert (first.id, second.id) == (1, 2)
    finally:
        backend.drop_databases()


def test_the_sqlite_backend_never_imports_psycopg(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  sqlite_path: {tmp_path / 'db.sqlite3'}\n", encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import signaling.app, signaling.cli
        from signaling.config import load_config
        from signaling.storage import open_storage

        async def main():
            storage = await open_storage(load_config({str(config)!r}).storage)
            await storage.add_therapist("alice", "h")
            await storage.close()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool"))
        print("loaded:", loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout, result.stdout
