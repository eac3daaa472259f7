"""The PostgreSQL connection pool the tables share: queries, transactions, psycopg's errors mapped
to the storage interface's, and one log line per change between reachable and unreachable.

psycopg and psycopg_pool are imported by `Database.open`, never at import time of this package:
the default SQLite backend must run without them (`make run` needs nothing but Python).

Reconnecting is the pool's job: a connection that breaks (the server restarts, a network blip)
is dropped when it goes back, `check_connection` finds a dead one before a query uses it, and the
pool opens new ones in the background with exponential backoff (1 s doubling, with jitter).
Meanwhile a call waits at most `ACQUIRE_TIMEOUT_SECONDS` for a connection and then raises
`StorageUnavailable`, which the app answers with 503 and `Retry-After`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from signaling.logs import LOGGER_NAME, log_event
from signaling.storage.base import (
    AlreadyExists,
    NotFound,
    StorageFailure,
    StorageFull,
    StorageUnavailable,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

__all__ = ["ACQUIRE_TIMEOUT_SECONDS", "Database", "storage_failure"]

logger = logging.getLogger(LOGGER_NAME)

# How long a call waits for a pooled connection before it is refused as "not now": long enough
# for a server's fast restart, short enough that a page does not hang (nginx gives up at 60 s).
ACQUIRE_TIMEOUT_SECONDS = 5.0
# A server that drops packets would otherwise hold a connection attempt for the kernel's TCP
# timeout (minutes).
CONNECT_TIMEOUT_SECONDS = 5

# SQLSTATE classes and codes (PostgreSQL's appendix A) that mean "not now": the same call may
# succeed later, and nothing of a failed transaction was kept.
_UNAVAILABLE_CLASSES = frozenset(
    {
        "08",  # connection exception
        "57",  # operator intervention: admin shutdown, crash shutdown, cannot connect now
        "58",  # system error: I/O error
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "53200",  # out_of_memory
        "53300",  # too_many_connections
    }
)
_FULL_CODES = frozenset({"53100"})  # disk_full


def storage_failure(exc: psycopg.Error) -> StorageFailure:
    """The interface's exception for one of psycopg's. `reason` is the error's class name and
    SQLSTATE (``AdminShutdown 57P01``); the message is PostgreSQL's primary message only, as
    its DETAIL may quote a row's values."""
    import psycopg
    from psycopg_pool import PoolClosed, PoolTimeout

    if isinstance(exc, PoolTimeout):
        return StorageUnavailable("no database connection within the wait", "unreachable")
    if isinstance(exc, PoolClosed):
        return StorageUnavailable("the database is closed", "closed")
    code = exc.sqlstate
    if code is None:
        # raised by libpq or psycopg itself: the server cannot be reached, or the connection
        # broke (the server went away); both are "not now"
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return StorageUnavailable(f"{type(exc).__name__}", "connection_failed")
        return StorageFailure(type(exc).__name__, type(exc).__name__)
    reason = f"{type(exc).__name__} {code}"
    message = f"{reason}: {exc.diag.message_primary or ''}"
    if code in _FULL_CODES:
        return StorageFull(message, reason)
    if code[:2] in _UNAVAILABLE_CLASSES or code in _UNAVAILABLE_CODES:
        return StorageUnavailable(message, reason)
    return StorageFailure(message, reason)


class Database:
    """A pool of connections in autocommit mode; `transaction()` for more than one statement."""

    def __init__(self, dsn: str, pool_size: int) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._reachable = True

    async def open(self, timeout: float) -> None:
        """Open the pool and wait until one connection works; `StorageUnavailable` otherwise."""
        from psycopg import AsyncConnection
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        # The pool logs a warning for every failed attempt while the server is down; this class
        # logs the state change once instead (`database_unreachable` / `database_reachable`).
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self._pool = AsyncConnectionPool(
            self._dsn,
            connection_class=AsyncConnection[Any],
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            },
            min_size=1,
            max_size=self._pool_size,
            open=False,
            timeout=ACQUIRE_TIMEOUT_SECONDS,
            # a restarted server leaves every pooled connection dead; check each one before a
            # query gets it, so the first request after the restart does not fail
            check=AsyncConnectionPool.check_connection,
            name="sprechzimmer",
        )
        async with self._mapping_errors():
            await self._pool.open(wait=True, timeout=timeout)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise StorageUnavailable("the database is closed", "closed")
        async with self._mapping_errors(), self._pool.connection() as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """One connection inside BEGIN … COMMIT, rolled back on error."""
        async with self.connection() as connection, connection.transaction():
            yield connection

    async def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        async with self.connection() as connection:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchone()

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self.connection() as connection:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchall()

    async def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction (autocommit); the number of rows it changed."""
        async with self.connection() as connection:
            cursor = await connection.execute(sql, params)
            return cursor.rowcount

    @asynccontextmanager
    async def _mapping_errors(self) -> AsyncIterator[None]:
        import psycopg

        try:
            yield
        except psycopg.errors.UniqueViolation as exc:
            # the constraint's name, never PostgreSQL's DETAIL, which quotes the value
            raise AlreadyExists(f"unique constraint {exc.diag.constraint_name}") from None
        except psycopg.errors.ForeignKeyViolation as exc:
            raise NotFound(f"foreign key {exc.diag.constraint_name}") from None
        except psycopg.Error as exc:
            failure = storage_failure(exc)
            if isinstance(failure, StorageUnavailable) and failure.reason != "closed":
                self._state_changed(reachable=False, reason=failure.reason)
            # `from exc` keeps the driver's error for a debugger; logs show only `reason`
            raise failure from exc
        else:
            self._state_changed(reachable=True)

    def _state_changed(self, reachable: bool, reason: str = "") -> None:
        if reachable == self._reachable:
            return
        self._reachable = reachable
        if reachable:
            log_event(logger, "database_reachable", backend="postgresql")
        else:
            log_event(
                logger, "database_unreachable", logging.WARNING, backend="postgresql", error=reason
            )
