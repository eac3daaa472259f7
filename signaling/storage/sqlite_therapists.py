"""Therapist accounts and their login sessions, one aggregate: disabling an account or setting a
new password ends its sessions in the same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from signaling.storage.base import LoginSession, NotFound, Therapist
from signaling.storage.rows import (
    format_time,
    login_session_from_row,
    now_text,
    therapist_from_row,
)
from signaling.storage.sqlite_database import Database

__all__ = ["Therapists"]


class Therapists:
    def __init__(self, database: Database) -> None:
        self._database = database

    # accounts

    def add(self, username: str, password_hash: str) -> Therapist:
        cursor = self._database.write(
            "INSERT INTO therapists (username, password_hash, created_at) VALUES (?, ?, ?)",
            (username, password_hash, now_text()),
        )
        return self.by_id(cursor.lastrowid)  # type: ignore[arg-type,return-value]

    def by_username(self, username: str) -> Therapist | None:
        row = self._database.one("SELECT * FROM therapists WHERE username = ?", (username,))
        return None if row is None else therapist_from_row(row)

    def by_id(self, therapist_id: int) -> Therapist | None:
        row = self._database.one("SELECT * FROM therapists WHERE id = ?", (therapist_id,))
        return None if row is None else therapist_from_row(row)

    def list_all(self) -> list[Therapist]:
        return [
            therapist_from_row(r)
            for r in self._database.all("SELECT * FROM therapists ORDER BY username")
        ]

    def count(self) -> int:
        return self._database.one("SELECT COUNT(*) FROM therapists")[0]  # type: ignore[index]

    def set_disabled(self, username: str, disabled: bool) -> None:
        self._update(username, "disabled", int(disabled), end_sessions=disabled)

    def set_password(self, username: str, password_hash: str) -> None:
        self._update(username, "password_hash", password_hash, end_sessions=True)

    def _update(self, username: str, column: str, value: Any, end_sessions: bool) -> None:
        db = self._database.db
        # One transaction: no moment in which the change is made but old sessions still work.
        with self._database.transaction():
            cursor = db.execute(
                f"UPDATE therapists SET {column} = ? WHERE username = ?", (value, username)
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no therapist named {username!r}")
            if end_sessions:
                db.execute(
                    "DELETE FROM login_sessions WHERE therapist_id ="
                    " (SELECT id FROM therapists WHERE username = ?)",
                    (username,),
                )

    # login sessions

    def create_session(
        self,
        token_hash: str,
        therapist_id: int,
        csrf_token: str,
        now: dt.datetime,
        expires_at: dt.datetime,
    ) -> LoginSession:
        with self._database.transaction():
            self._database.db.execute(
                "DELETE FROM login_sessions WHERE expires_at < ?", (format_time(now),)
            )
        cursor = self._database.write(
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
        return self._session_where("id = ?", cursor.lastrowid)  # type: ignore[return-value]

    def session(self, token_hash: str) -> LoginSession | None:
        return self._session_where("token_hash = ?", token_hash)

    def touch_session(
        self, session_id: int, last_seen_at: dt.datetime, expires_at: dt.datetime
    ) -> None:
        self._database.write(
            "UPDATE login_sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?",
            (format_time(last_seen_at), format_time(expires_at), session_id),
        )

    def delete_session(self, session_id: int) -> None:
        self._database.write("DELETE FROM login_sessions WHERE id = ?", (session_id,))

    def delete_sessions_of(self, therapist_id: int) -> int:
        return self._database.write(
            "DELETE FROM login_sessions WHERE therapist_id = ?", (therapist_id,)
        ).rowcount

    def live_sessions(self, session_ids: set[int], now: dt.datetime) -> set[int]:
        if not session_ids:
            return set()
        ids = sorted(session_ids)
        # ids are ints we hold, one placeholder each; a practice has a handful open at once
        marks = ", ".join("?" for _ in ids)
        rows = self._database.all(
            "SELECT s.id FROM login_sessions s JOIN therapists t ON t.id = s.therapist_id"
            f" WHERE s.id IN ({marks}) AND s.expires_at > ? AND t.disabled = 0",
            (*ids, format_time(now)),
        )
        return {row[0] for row in rows}

    def _session_where(self, condition: str, value: Any) -> LoginSession | None:
        row = self._database.one(f"SELECT * FROM login_sessions WHERE {condition}", (value,))
        return None if row is None else login_session_from_row(row)
