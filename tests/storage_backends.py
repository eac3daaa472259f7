"""The storage suite's fixtures over both backends: `storage` is a fresh, migrated database of
the backend the test is parametrized with (SQLite file in tmp_path, or a new database on the
run's one private PostgreSQL server: the `postgres` fixture of tests/signaling/conftest.py).

A test module that must hold for both takes the fixtures over:

    storage_backend = storage_backends.storage_backend
    storage = storage_backends.storage

and, where its tests need an account or appointments, `therapist = storage_backends.therapist`
and `make_appointment` (at `START` unless told otherwise).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling.storage import Appointment, Storage, Therapist
from signaling.storage.postgresql import PostgresqlStorage
from signaling.storage.sqlite import SqliteStorage
from tests.postgres_server import PostgresServer

__all__ = [
    "START",
    "Backend",
    "PostgresqlBackend",
    "SqliteBackend",
    "make_appointment",
    "storage",
    "storage_backend",
    "therapist",
]

BACKENDS = ("sqlite", "postgresql")

# when the storage tests' appointments start, unless a test says otherwise
START = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)


class Backend:
    """Opens storages of one backend and reads their schema with the backend's own client (not
    through the storage under test)."""

    name: str

    async def open(self, database: str = "main") -> Storage:
        """The storage of `database`, created and migrated on first use, as it is on reopening."""
        raise NotImplementedError

    def columns(self, database: str = "main") -> dict[str, list[tuple[str, str, bool]]]:
        """Every table with its columns: name, declared type (upper case), NOT NULL."""
        raise NotImplementedError


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def path(self, database: str = "main") -> Path:
        return self._directory / "data" / f"{database}.sqlite3"

    async def open(self, database: str = "main") -> Storage:
        return await SqliteStorage.open(self.path(database))

    def columns(self, database: str = "main") -> dict[str, list[tuple[str, str, bool]]]:
        with sqlite3.connect(self.path(database)) as db:
            names = [
                row[0]
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
            # an INTEGER PRIMARY KEY is never NULL, though SQLite reports notnull = 0 for it
            return {
                name: [
                    (row[1], row[2].upper(), bool(row[3] or row[5]))
                    for row in db.execute(f"PRAGMA table_info({name})")
                ]
                for name in names
            }


class PostgresqlBackend(Backend):
    name = "postgresql"

    def __init__(self, server: PostgresServer) -> None:
        self._server = server
        self._dsns: dict[str, str] = {}

    def dsn(self, database: str = "main") -> str:
        if database not in self._dsns:
            self._dsns[database] = self._server.create_database()
        return self._dsns[database]

    async def open(self, database: str = "main") -> Storage:
        return await PostgresqlStorage.open(self.dsn(database), pool_size=4)

    def columns(self, database: str = "main") -> dict[str, list[tuple[str, str, bool]]]:
        import psycopg

        with psycopg.connect(self.dsn(database)) as connection:
            rows: list[Any] = connection.execute(
                "SELECT table_name, column_name, data_type, is_nullable = 'NO'"
                " FROM information_schema.columns WHERE table_schema = 'public'"
                " ORDER BY table_name, ordinal_position"
            ).fetchall()
        tables: dict[str, list[tuple[str, str, bool]]] = {}
        for table, column, data_type, not_null in rows:
            tables.setdefault(table, []).append((column, data_type.upper(), not_null))
        return tables

    def drop_databases(self) -> None:
        """Each database holds a few MB on disk; a run makes hundreds."""
        import psycopg

        with psycopg.connect(self._server.dsn(), autocommit=True) as connection:
            for dsn in self._dsns.values():
                name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._dsns.clear()


@pytest.fixture(params=BACKENDS)
def storage_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path)
        return
    backend = PostgresqlBackend(request.getfixturevalue("postgres"))
    yield backend
    backend.drop_databases()


@pytest.fixture
async def storage(storage_backend: Backend) -> AsyncIterator[Storage]:
    opened = await storage_backend.open()
    yield opened
    await opened.close()


@pytest.fixture
async def therapist(storage: Storage) -> Therapist:
    return await storage.add_therapist("alice", "hash-a")


async def make_appointment(
    storage: Storage, therapist_id: int, starts_at: dt.datetime = START, **kwargs: Any
) -> Appointment:
    """50 minutes from `starts_at`, the room open 15 minutes before, the link valid until two
    hours after the start; `kwargs` as `create_appointment` takes them (note, invite hash)."""
    return await storage.create_appointment(
        therapist_id=therapist_id,
        starts_at=starts_at,
        duration_minutes=50,
        opens_at=starts_at - dt.timedelta(minutes=15),
        valid_until=starts_at + dt.timedelta(minutes=120),
        **kwargs,
    )
