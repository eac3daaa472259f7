"""What an admin and the portal do to accounts (issue #13): the admin role, provisioning by the
portal's external id, and one-time set-password links. Beside `sqlite_therapists`, which holds
the accounts' own life (sign-in sessions); setting a password through a link ends those sessions
in the same transaction, as `set_password` does."""

from __future__ import annotations

import datetime as dt
import sqlite3

from signaling.storage.base import AlreadyExists, NotFound, Therapist
from signaling.storage.rows import format_time, now_text, therapist_from_row
from signaling.storage.sqlite_database import Database

__all__ = ["Accounts"]


class Accounts:
    def __init__(self, database: Database) -> None:
        self._database = database

    def set_admin(self, username: str, admin: bool) -> None:
        cursor = self._database.write(
            "UPDATE therapists SET is_admin = ? WHERE username = ?", (int(admin), username)
        )
        if cursor.rowcount == 0:
            raise NotFound(f"no therapist named {username!r}")

    def by_external_id(self, external_id: str) -> Therapist | None:
        row = self._database.one("SELECT * FROM therapists WHERE external_id = ?", (external_id,))
        return None if row is None else therapist_from_row(row)

    def provision(
        self, external_id: str, username: str, display_name: str | None, password_hash: str
    ) -> tuple[Therapist, bool]:
        db = self._database.db
        try:
            with self._database.transaction():
                row = db.execute(
                    "SELECT id FROM therapists WHERE external_id = ?", (external_id,)
                ).fetchone()
                if row is None:
                    therapist_id = db.execute(
                        "INSERT INTO therapists (username, password_hash, created_at,"
                        " external_id, display_name) VALUES (?, ?, ?, ?, ?)",
                        (username, password_hash, now_text(), external_id, display_name),
                    ).lastrowid
                    created = True
                else:
                    therapist_id = row[0]
                    db.execute(
                        "UPDATE therapists SET username = ?, display_name = ? WHERE id = ?",
                        (username, display_name, therapist_id),
                    )
                    created = False
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(str(exc)) from None
        row = db.execute("SELECT * FROM therapists WHERE id = ?", (therapist_id,)).fetchone()
        return therapist_from_row(row), created

    def create_password_link(
        self, therapist_id: int, token_hash: str, now: dt.datetime, expires_at: dt.datetime
    ) -> None:
        db = self._database.db
        try:
            with self._database.transaction():
                # one live link per account: a reset makes the previous link worthless
                db.execute("DELETE FROM password_links WHERE therapist_id = ?", (therapist_id,))
                db.execute(
                    "INSERT INTO password_links (token_hash, therapist_id, created_at, expires_at)"
                    " VALUES (?, ?, ?, ?)",
                    (token_hash, therapist_id, format_time(now), format_time(expires_at)),
                )
        except sqlite3.IntegrityError as exc:
            raise NotFound(str(exc)) from None

    def redeem_password_link(
        self, token_hash: str, now: dt.datetime, password_hash: str
    ) -> Therapist | None:
        db = self._database.db
        with self._database.transaction():
            row = db.execute(
                "SELECT therapist_id FROM password_links WHERE token_hash = ? AND expires_at > ?",
                (token_hash, format_time(now)),
            ).fetchone()
            if row is None:
                return None
            therapist_id = row[0]
            # deleted first: of two browsers racing with the same link, one finds no row
            db.execute("DELETE FROM password_links WHERE token_hash = ?", (token_hash,))
            db.execute(
                "UPDATE therapists SET password_hash = ? WHERE id = ?",
                (password_hash, therapist_id),
            )
            db.execute("DELETE FROM login_sessions WHERE therapist_id = ?", (therapist_id,))
        found = db.execute("SELECT * FROM therapists WHERE id = ?", (therapist_id,)).fetchone()
        return therapist_from_row(found)
