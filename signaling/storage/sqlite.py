"""SQLite storage: one connection, used only from one dedicated worker thread.

The aiohttp event loop also runs the media relay, so a query must never run on it. Every method
hands a plain function to a single-worker executor; the single worker also serialises access to
the connection, so no locking is needed. WAL mode lets readers (the sqlite3 shell, a backup)
coexist with the writer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from signaling.storage.base import (
    APPOINTMENT_UPDATABLE_FIELDS,
    AlreadyExists,
    ApiKey,
    Appointment,
    AppointmentState,
    LoginSession,
    NotFound,
    PurgeResult,
    SessionStatistic,
    Storage,
    Therapist,
)

__all__ = ["SqliteStorage", "format_time", "parse_time"]

T = TypeVar("T")

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_APPOINTMENT_TIME_FIELDS = frozenset(
    {"starts_at", "opens_at", "valid_until", "consent_at", "both_present_at", "ended_at"}
)

# Personal data cleared by `purge`: everything that could identify the client or the session's
# content. What remains is therapist, times, duration and state.
_PURGED_FIELDS = (
    "note",
    "client_display_name",
    "client_binding_hash",
    "terms_version",
    "consent_at",
    "invite_token_hash",
)


def format_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime; use timezone-aware UTC times")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _optional_time(text: str | None) -> dt.datetime | None:
    return None if text is None else parse_time(text)


def _now() -> str:
    return format_time(dt.datetime.now(dt.UTC))


class SqliteStorage(Storage):
    """Open with `await SqliteStorage.open(path)`, which also applies migrations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: Path, migrate: bool = True) -> SqliteStorage:
        storage = cls(path)
        try:
            await storage._run(storage._connect)
            if migrate:
                await storage.migrate()
        except BaseException:
            await storage.close()
            raise
        return storage

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def _connect(self) -> None:
        # The database holds personal data: keep it readable by the service's user only.
        # SQLite gives the -wal and -shm files the database file's permissions.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a migration file and its
        # schema_migrations row commit together.
        connection = sqlite3.connect(self.path, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=5000")
        # Purged names and notes must be gone from the file, not left in free pages.
        connection.execute("PRAGMA secure_delete=ON")
        self._connection = connection

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise sqlite3.ProgrammingError("storage is closed")
        return self._connection

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            with self._transaction():
                return self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            message = str(exc)
            if "UNIQUE" in message:
                raise AlreadyExists(message) from None
            if "FOREIGN KEY" in message:
                raise NotFound(message) from None
            raise

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # lifecycle

    async def close(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        if self._closed:
            return
        self._closed = True
        try:
            await self._run(close)
        finally:
            self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    async def migrate(self) -> list[int]:
        return await self._run(self._migrate)

    def _migrate(self) -> list[int]:
        db = self._db
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        done = []
        for version, name, sql in _migrations():
            if version in applied:
                continue
            # Values are safe to inline: version is an int and name matched _MIGRATION_NAME.
            script = (
                f"BEGIN;\n{sql}\n;INSERT INTO schema_migrations (version, name, applied_at) "
                f"VALUES ({version}, '{name}', '{_now()}');\nCOMMIT;"
            )
            try:
                db.executescript(script)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            done.append(version)
        return done

    async def schema_version(self) -> int:
        def version() -> int:
            row = self._db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
            return row[0] or 0

        return await self._run(version)

    # therapists

    async def add_therapist(self, username: str, password_hash: str) -> Therapist:
        def add() -> Therapist:
            cursor = self._write(
                "INSERT INTO therapists (username, password_hash, created_at) VALUES (?, ?, ?)",
                (username, password_hash, _now()),
            )
            return self._therapist_where("id = ?", cursor.lastrowid)  # type: ignore[return-value]

        return await self._run(add)

    def _therapist_where(self, condition: str, value: Any) -> Therapist | None:
        row = self._db.execute(f"SELECT * FROM therapists WHERE {condition}", (value,)).fetchone()
        return None if row is None else _therapist(row)

    async def get_therapist(self, username: str) -> Therapist | None:
        return await self._run(self._therapist_where, "username = ?", username)

    async def get_therapist_by_id(self, therapist_id: int) -> Therapist | None:
        return await self._run(self._therapist_where, "id = ?", therapist_id)

    async def list_therapists(self) -> list[Therapist]:
        def list_all() -> list[Therapist]:
            rows = self._db.execute("SELECT * FROM therapists ORDER BY username").fetchall()
            return [_therapist(row) for row in rows]

        return await self._run(list_all)

    async def count_therapists(self) -> int:
        return await self._run(
            lambda: self._db.execute("SELECT COUNT(*) FROM therapists").fetchone()[0]
        )

    async def set_therapist_disabled(self, username: str, disabled: bool) -> None:
        await self._update_therapist(username, "disabled", int(disabled), end_sessions=disabled)

    async def set_therapist_password(self, username: str, password_hash: str) -> None:
        await self._update_therapist(username, "password_hash", password_hash, end_sessions=True)

    async def _update_therapist(
        self, username: str, column: str, value: Any, end_sessions: bool
    ) -> None:
        def update() -> None:
            # One transaction: no moment in which the change is made but old sessions still work.
            with self._transaction():
                cursor = self._db.execute(
                    f"UPDATE therapists SET {column} = ? WHERE username = ?", (value, username)
                )
                if cursor.rowcount == 0:
                    raise NotFound(f"no therapist named {username!r}")
                if end_sessions:
                    self._db.execute(
                        "DELETE FROM login_sessions WHERE therapist_id ="
                        " (SELECT id FROM therapists WHERE username = ?)",
                        (username,),
                    )

        await self._run(update)

    # API keys

    async def add_api_key(self, name: str, key_hash: str) -> ApiKey:
        def add() -> ApiKey:
            cursor = self._write(
                "INSERT INTO api_keys (name, key_hash, created_at) VALUES (?, ?, ?)",
                (name, key_hash, _now()),
            )
            row = self._db.execute(
                "SELECT * FROM api_keys WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
            return _api_key(row)

        return await self._run(add)

    async def list_api_keys(self) -> list[ApiKey]:
        def list_all() -> list[ApiKey]:
            rows = self._db.execute("SELECT * FROM api_keys ORDER BY name, id").fetchall()
            return [_api_key(row) for row in rows]

        return await self._run(list_all)

    async def get_api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        def get() -> ApiKey | None:
            row = self._db.execute(
                "SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
            return None if row is None else _api_key(row)

        return await self._run(get)

    async def revoke_api_key(self, name: str) -> None:
        def revoke() -> None:
            cursor = self._write(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (_now(), name),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no active API key named {name!r}")

        await self._run(revoke)

    # appointments

    async def create_appointment(
        self,
        therapist_id: int,
        starts_at: dt.datetime,
        duration_minutes: int,
        opens_at: dt.datetime,
        valid_until: dt.datetime,
        note: str | None = None,
        invite_token_hash: str | None = None,
    ) -> Appointment:
        def create() -> Appointment:
            cursor = self._write(
                "INSERT INTO appointments (therapist_id, starts_at, duration_minutes, opens_at,"
                " valid_until, note, invite_token_hash, state, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    therapist_id,
                    format_time(starts_at),
                    duration_minutes,
                    format_time(opens_at),
                    format_time(valid_until),
                    note,
                    invite_token_hash,
                    AppointmentState.SCHEDULED.value,
                    _now(),
                ),
            )
            return self._appointment_where("id = ?", cursor.lastrowid)  # type: ignore[return-value]

        return await self._run(create)

    def _appointment_where(self, condition: str, value: Any) -> Appointment | None:
        row = self._db.execute(f"SELECT * FROM appointments WHERE {condition}", (value,)).fetchone()
        return None if row is None else _appointment(row)

    async def get_appointment(self, appointment_id: int) -> Appointment | None:
        return await self._run(self._appointment_where, "id = ?", appointment_id)

    async def get_appointment_by_token_hash(self, token_hash: str) -> Appointment | None:
        return await self._run(self._appointment_where, "invite_token_hash = ?", token_hash)

    async def list_appointments_for_therapist(self, therapist_id: int) -> list[Appointment]:
        def list_all() -> list[Appointment]:
            rows = self._db.execute(
                "SELECT * FROM appointments WHERE therapist_id = ? ORDER BY starts_at, id",
                (therapist_id,),
            ).fetchall()
            return [_appointment(row) for row in rows]

        return await self._run(list_all)

    async def update_appointment(self, appointment_id: int, **changes: object) -> Appointment:
        unknown = sorted(set(changes) - APPOINTMENT_UPDATABLE_FIELDS)
        if unknown:
            raise TypeError(f"update_appointment: cannot change {', '.join(unknown)}")
        if not changes:
            raise TypeError("update_appointment: nothing to change")
        columns = list(changes)
        values = [_column_value(column, changes[column]) for column in columns]
        assignments = ", ".join(f"{column} = ?" for column in columns)

        def update() -> Appointment:
            cursor = self._write(
                f"UPDATE appointments SET {assignments} WHERE id = ?", (*values, appointment_id)
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no appointment with id {appointment_id}")
            return self._appointment_where("id = ?", appointment_id)  # type: ignore[return-value]

        return await self._run(update)

    async def reset_live_appointments(self) -> int:
        def reset() -> int:
            return self._write(
                "UPDATE appointments SET state = ? WHERE state IN (?, ?)",
                (
                    AppointmentState.SCHEDULED.value,
                    AppointmentState.WAITING.value,
                    AppointmentState.IN_CALL.value,
                ),
            ).rowcount

        return await self._run(reset)

    async def cancel_appointment(self, appointment_id: int) -> Appointment:
        return await self.update_appointment(
            appointment_id, state=AppointmentState.CANCELLED, invite_token_hash=None
        )

    async def record_client_consent(
        self,
        appointment_id: int,
        invite_token_hash: str,
        binding_hash: str,
        display_name: str | None,
        terms_version: str,
        consent_at: dt.datetime,
    ) -> Appointment | None:
        def record() -> Appointment | None:
            # One UPDATE with the conditions in its WHERE clause: the check and the write cannot
            # be split by another browser's consent.
            cursor = self._write(
                "UPDATE appointments SET client_binding_hash = ?, client_display_name = ?,"
                " terms_version = ?, consent_at = ?"
                " WHERE id = ? AND invite_token_hash = ? AND state NOT IN (?, ?)"
                " AND (client_binding_hash IS NULL OR client_binding_hash = ?)",
                (
                    binding_hash,
                    display_name,
                    terms_version,
                    format_time(consent_at),
                    appointment_id,
                    invite_token_hash,
                    AppointmentState.CANCELLED.value,
                    AppointmentState.ENDED.value,
                    binding_hash,
                ),
            )
            if cursor.rowcount == 0:
                return None
            return self._appointment_where("id = ?", appointment_id)

        return await self._run(record)

    async def latest_bound_valid_until(
        self, binding_hash: str, now: dt.datetime
    ) -> dt.datetime | None:
        def latest() -> dt.datetime | None:
            # No index: this runs once per consent, and a practice's table holds some thousand
            # rows a year.
            row = self._db.execute(
                "SELECT MAX(valid_until) FROM appointments"
                " WHERE client_binding_hash = ? AND valid_until > ?",
                (binding_hash, format_time(now)),
            ).fetchone()
            return _optional_time(row[0])

        return await self._run(latest)

    # login sessions

    async def create_login_session(
        self,
        token_hash: str,
        therapist_id: int,
        csrf_token: str,
        now: dt.datetime,
        expires_at: dt.datetime,
    ) -> LoginSession:
        def create() -> LoginSession:
            with self._transaction():
                self._db.execute(
                    "DELETE FROM login_sessions WHERE expires_at < ?", (format_time(now),)
                )
            cursor = self._write(
                "INSERT INTO login_sessions (token_hash, therapist_id, csrf_token, created_at,"
                " last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    token_hash,
                    therapist_id,
                    csrf_token,
                    format_time(now),
                    format_time(now),
                    format_time(expires_at),
                ),
            )
            return self._login_session_where("id = ?", cursor.lastrowid)  # type: ignore[return-value]

        return await self._run(create)

    def _login_session_where(self, condition: str, value: Any) -> LoginSession | None:
        row = self._db.execute(
            f"SELECT * FROM login_sessions WHERE {condition}", (value,)
        ).fetchone()
        return None if row is None else _login_session(row)

    async def get_login_session(self, token_hash: str) -> LoginSession | None:
        return await self._run(self._login_session_where, "token_hash = ?", token_hash)

    async def touch_login_session(
        self, session_id: int, last_seen_at: dt.datetime, expires_at: dt.datetime
    ) -> None:
        await self._run(
            self._write,
            "UPDATE login_sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?",
            (format_time(last_seen_at), format_time(expires_at), session_id),
        )

    async def delete_login_session(self, session_id: int) -> None:
        await self._run(self._write, "DELETE FROM login_sessions WHERE id = ?", (session_id,))

    async def delete_login_sessions_of(self, therapist_id: int) -> int:
        def delete() -> int:
            return self._write(
                "DELETE FROM login_sessions WHERE therapist_id = ?", (therapist_id,)
            ).rowcount

        return await self._run(delete)

    async def live_login_sessions(self, session_ids: set[int], now: dt.datetime) -> set[int]:
        if not session_ids:
            return set()
        ids = sorted(session_ids)

        def live() -> set[int]:
            # ids are ints we hold, one placeholder each; a practice has a handful open at once
            marks = ", ".join("?" for _ in ids)
            rows = self._db.execute(
                "SELECT s.id FROM login_sessions s JOIN therapists t ON t.id = s.therapist_id"
                f" WHERE s.id IN ({marks}) AND s.expires_at > ? AND t.disabled = 0",
                (*ids, format_time(now)),
            ).fetchall()
            return {row[0] for row in rows}

        return await self._run(live)

    # statistics and purge

    async def record_session_statistic(
        self, therapist_id: int, session_date: dt.date, duration_seconds: int
    ) -> SessionStatistic:
        def record() -> SessionStatistic:
            cursor = self._write(
                "INSERT INTO session_statistics (therapist_id, session_date, duration_seconds)"
                " VALUES (?, ?, ?)",
                (therapist_id, session_date.isoformat(), duration_seconds),
            )
            return SessionStatistic(
                id=cursor.lastrowid,  # type: ignore[arg-type]
                therapist_id=therapist_id,
                session_date=session_date,
                duration_seconds=duration_seconds,
            )

        return await self._run(record)

    async def list_session_statistics(self, therapist_id: int) -> list[SessionStatistic]:
        def list_all() -> list[SessionStatistic]:
            rows = self._db.execute(
                "SELECT * FROM session_statistics WHERE therapist_id = ? ORDER BY session_date, id",
                (therapist_id,),
            ).fetchall()
            return [
                SessionStatistic(
                    id=row["id"],
                    therapist_id=row["therapist_id"],
                    session_date=dt.date.fromisoformat(row["session_date"]),
                    duration_seconds=row["duration_seconds"],
                )
                for row in rows
            ]

        return await self._run(list_all)

    async def purge(self, now: dt.datetime, retention_days: int) -> PurgeResult:
        cutoff_date = (
            now.astimezone(dt.UTC).date() - dt.timedelta(days=retention_days)
        ).isoformat()
        cleared = ", ".join(f"{column} = NULL" for column in _PURGED_FIELDS)

        def purge() -> PurgeResult:
            with self._transaction():
                appointments = self._db.execute(
                    f"UPDATE appointments SET {cleared}, purged_at = ?"
                    " WHERE valid_until < ? AND purged_at IS NULL",
                    (format_time(now), format_time(now)),
                ).rowcount
                statistics = self._db.execute(
                    "DELETE FROM session_statistics WHERE session_date < ?", (cutoff_date,)
                ).rowcount
            if appointments or statistics:
                # the write-ahead log still holds the old pages; fold it back and empty it
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return PurgeResult(appointments_purged=appointments, statistics_deleted=statistics)

        return await self._run(purge)


class _Transaction:
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


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("signaling.storage").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _column_value(column: str, value: object) -> object:
    if column in _APPOINTMENT_TIME_FIELDS and value is not None:
        return format_time(value)  # type: ignore[arg-type]
    if isinstance(value, AppointmentState):
        return value.value
    if column == "state":
        return AppointmentState(value).value
    return value


def _therapist(row: sqlite3.Row) -> Therapist:
    return Therapist(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        disabled=bool(row["disabled"]),
        created_at=parse_time(row["created_at"]),
    )


def _api_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        created_at=parse_time(row["created_at"]),
        revoked_at=_optional_time(row["revoked_at"]),
    )


def _login_session(row: sqlite3.Row) -> LoginSession:
    return LoginSession(
        id=row["id"],
        token_hash=row["token_hash"],
        therapist_id=row["therapist_id"],
        csrf_token=row["csrf_token"],
        created_at=parse_time(row["created_at"]),
        last_seen_at=parse_time(row["last_seen_at"]),
        expires_at=parse_time(row["expires_at"]),
    )


def _appointment(row: sqlite3.Row) -> Appointment:
    return Appointment(
        id=row["id"],
        therapist_id=row["therapist_id"],
        starts_at=parse_time(row["starts_at"]),
        duration_minutes=row["duration_minutes"],
        opens_at=parse_time(row["opens_at"]),
        valid_until=parse_time(row["valid_until"]),
        note=row["note"],
        invite_token_hash=row["invite_token_hash"],
        client_display_name=row["client_display_name"],
        client_binding_hash=row["client_binding_hash"],
        terms_version=row["terms_version"],
        consent_at=_optional_time(row["consent_at"]),
        state=AppointmentState(row["state"]),
        both_present_at=_optional_time(row["both_present_at"]),
        ended_at=_optional_time(row["ended_at"]),
        purged_at=_optional_time(row["purged_at"]),
        created_at=parse_time(row["created_at"]),
    )
