"""The SQLite connection the tables share: opening it, transactions, column values for times, and
mapping sqlite3's errors to the storage interface's exceptions.

Everything here runs in the storage's single worker thread (see `sqlite.py`), never on the event
loop.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from signaling.storage.base import (
    AlreadyExists,
    NotFound,
    StorageFailure,
    StorageFull,
    StorageUnavailable,
)
from signaling.storage.rows import format_time, now_text, optional_time, parse_time

__all__ = [
    "Database",
    "format_time",
    "now_text",
    "optional_time",
    "parse_time",
    "storage_failure",
]

# Result codes (the low byte of an extended code) that mean "not now", not "a bug": another
# process holds the lock past the busy timeout, or the file cannot be opened, read or written at
# the moment (a read-only remount, an I/O error). Every write is one transaction, so nothing of
# it was kept and the same call may succeed later.
_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PROTOCOL,
    }
)
# The disk, or the database's max_page_count, is full.
_FULL = frozenset({sqlite3.SQLITE_FULL})


def storage_failure(exc: sqlite3.Error) -> StorageFailure:
    """The interface's exception for one of sqlite3's. Its `reason` is SQLite's name for the
    result code (``SQLITE_BUSY``): the exception's own text may quote the statement."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        # raised by the sqlite3 module itself, not the library: a closed connection, or misuse
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc).lower():
            return StorageUnavailable("the database is closed", "closed")
        return StorageFailure(f"{type(exc).__name__}: {exc}", type(exc).__name__)
    reason = getattr(exc, "sqlite_errorname", None) or f"SQLITE_{code}"
    message = f"{reason}: {exc}"
    if code & 0xFF in _UNAVAILABLE:
        return StorageUnavailable(message, reason)
    if code & 0xFF in _FULL:
        return StorageFull(message, reason)
    return StorageFailure(message, reason)


class Database:
    """One connection, opened by `connect` and used by every table class."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None

    def connect(self) -> None:
        # The database holds personal data: keep it readable by the service's user only.
        # SQLite gives the -wal and -shm files the database file's permissions.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a migration file and its
        # schema_migrations row commit together.
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout=5000")
            # Purged names and notes must be gone from the file, not left in free pages.
            connection.execute("PRAGMA secure_delete=ON")
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise sqlite3.ProgrammingError("storage is closed")
        return self._connection

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        return self.db.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """One statement in its own transaction; constraint failures become `AlreadyExists`
        (UNIQUE) or `NotFound` (FOREIGN KEY)."""
        try:
            with self.transaction():
                return self.db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            message = str(exc)
            if "UNIQUE" in message:
                raise AlreadyExists(message) from None
            if "FOREIGN KEY" in message:
                raise NotFound(message) from None
            raise

    def transaction(self) -> Transaction:
        return Transaction(self.db)


class Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error. Not re-entrant."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:
            # SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR); a second
            # ROLLBACK would fail and hide the real error behind "no transaction is active"
            self._db.execute("ROLLBACK")
