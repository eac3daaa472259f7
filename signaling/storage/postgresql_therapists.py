"""Therapist accounts and their login sessions on PostgreSQL (see sqlite_therapists.py, which this
mirrors statement for statement)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from signaling.storage.base import LoginSession, NotFound, Therapist
from signaling.storage.postgresql_database import Database
from signaling.storage.rows import (
    format_time,
    login_session_from_row,
    now_text,
    therapist_from_row,
)

__all__ = ["Therapists"]


class Therapists:
    def __init__(self, database: Database) -> None:
        self._database = database

    # accounts

    async def add(self, username: str, password_hash: str) -> Therapist:
        row = await self._database.one(
            "INSERT INTO therapists (username, password_hash, created_at) VALUES (%s, %s, %s)"
            " RETURNING *",
            (username, password_hash, now_text()),
        )
        return therapist_from_row(row)  # type: ignore[arg-type]

    async def by_username(self, username: str) -> Therapist | None:
        row = await self._database.one("SELECT * FROM therapists WHERE username = %s", (username,))
        return None if row is None else therapist_from_row(row)

    async def by_id(self, therapist_id: int) -> Therapist | None:
        row = await self._database.one("SELECT * FROM therapists WHERE id = %s", (therapist_id,))
        return None if row is None else therapist_from_row(row)

    async def list_all(self) -> list[Therapist]:
        # COLLATE "C": byte order, as SQLite sorts, whatever locale the database was made with
        rows = await self._database.all('SELECT * FROM therapists ORDER BY username COLLATE "C"')
        return [therapist_from_row(row) for row in rows]

    async def count(self) -> int:
        row = await self._database.one("SELECT COUNT(*) AS n FROM therapists")
        return row["n"]  # type: ignore[index]

    async def set_disabled(self, username: str, disabled: bool) -> None:
        await self._update(username, "disabled", int(disabled), end_sessions=disabled)

    async def set_password(self, username: str, password_hash: str) -> None:
        await self._update(username, "password_hash", password_hash, end_sessions=True)

    async def _update(self, username: str, column: str, value: Any, end_sessions: bool) -> None:
        # One transaction: no moment in which the change is made but old sessions still work.
        async with self._database.transaction() as connection:
            cursor = await connection.execute(
                f"UPDATE therapists SET {column} = %s WHERE username = %s", (value, username)
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no therapist named {username!r}")
            if end_sessions:
                await connection.execute(
                    "DELETE FROM login_sessions WHERE therapist_id ="
                    " (SELECT id FROM therapists WHERE username = %s)",
                    (username,),
                )

    # login sessions

    async def create_session(
        self,
        token_hash: str,
        therapist_id: int,
        csrf_token: str,
        now: dt.datetime,
        expires_at: dt.datetime,
    ) -> LoginSession:
        await self._database.write(
            "DELETE FROM login_sessions WHERE expires_at < %s", (format_time(now),)
        )
        row = await self._database.one(
            "INSERT INTO login_sessions (token_hash, therapist_id, csrf_token, created_at,"
            " last_seen_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
            (
                token_hash,
                therapist_id,
                csrf_token,
                format_time(now),
                format_time(now),
                format_time(expires_at),
            ),
        )
        return login_session_from_row(row)  # type: ignore[arg-type]

    async def session(self, token_hash: str) -> LoginSession | None:
        row = await self._database.one(
            "SELECT * FROM login_sessions WHERE token_hash = %s", (token_hash,)
        )
        return None if row is None else login_session_from_row(row)

    async def touch_session(
        self, session_id: int, last_seen_at: dt.datetime, expires_at: dt.datetime
    ) -> None:
        await self._database.write(
            "UPDATE login_sessions SET last_seen_at = %s, expires_at = %s WHERE id = %s",
            (format_time(last_seen_at), format_time(expires_at), session_id),
        )

    async def delete_session(self, session_id: int) -> None:
        await self._database.write("DELETE FROM login_sessions WHERE id = %s", (session_id,))

    async def delete_sessions_of(self, therapist_id: int) -> int:
        return await self._database.write(
            "DELETE FROM login_sessions WHERE therapist_id = %s", (therapist_id,)
        )

    async def live_sessions(self, session_ids: set[int], now: dt.datetime) -> set[int]:
        if not session_ids:
            return set()
        rows = await self._database.all(
            "SELECT s.id FROM login_sessions s JOIN therapists t ON t.id = s.therapist_id"
            " WHERE s.id = ANY(%s) AND s.expires_at > %s AND t.disabled = 0",
            (sorted(session_ids), format_time(now)),
        )
        return {row["id"] for row in rows}
