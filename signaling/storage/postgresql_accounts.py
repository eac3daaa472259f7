"""The admin role, provisioning and one-time set-password links on PostgreSQL (mirrors
sqlite_accounts.py statement for statement)."""

from __future__ import annotations

import datetime as dt

from signaling.storage.base import NotFound, Therapist
from signaling.storage.postgresql_database import Database
from signaling.storage.rows import format_time, now_text, therapist_from_row

__all__ = ["Accounts"]


class Accounts:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def set_admin(self, username: str, admin: bool) -> None:
        changed = await self._database.write(
            "UPDATE therapists SET is_admin = %s WHERE username = %s", (int(admin), username)
        )
        if changed == 0:
            raise NotFound(f"no therapist named {username!r}")

    async def by_external_id(self, external_id: str) -> Therapist | None:
        row = await self._database.one(
            "SELECT * FROM therapists WHERE external_id = %s", (external_id,)
        )
        return None if row is None else therapist_from_row(row)

    async def provision(
        self, external_id: str, username: str, display_name: str | None, password_hash: str
    ) -> tuple[Therapist, bool]:
        # a unique violation (the username is another account's) is AlreadyExists, mapped by
        # the database layer; the transaction is then rolled back whole
        async with self._database.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE therapists SET username = %s, display_name = %s WHERE external_id = %s"
                " RETURNING *",
                (username, display_name, external_id),
            )
            row = await cursor.fetchone()
            if row is not None:
                return therapist_from_row(row), False
            cursor = await connection.execute(
                "INSERT INTO therapists (username, password_hash, created_at, external_id,"
                " display_name) VALUES (%s, %s, %s, %s, %s) RETURNING *",
                (username, password_hash, now_text(), external_id, display_name),
            )
            return therapist_from_row(await cursor.fetchone()), True  # type: ignore[arg-type]

    async def create_password_link(
        self, therapist_id: int, token_hash: str, now: dt.datetime, expires_at: dt.datetime
    ) -> None:
        async with self._database.transaction() as connection:
            # one live link per account: a reset makes the previous link worthless
            await connection.execute(
                "DELETE FROM password_links WHERE therapist_id = %s", (therapist_id,)
            )
            await connection.execute(
                "INSERT INTO password_links (token_hash, therapist_id, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s)",
                (token_hash, therapist_id, format_time(now), format_time(expires_at)),
            )

    async def redeem_password_link(
        self, token_hash: str, now: dt.datetime, password_hash: str
    ) -> Therapist | None:
        async with self._database.transaction() as connection:
            # DELETE … RETURNING: of two browsers racing with the same link, one gets no row
            cursor = await connection.execute(
                "DELETE FROM password_links WHERE token_hash = %s"
                ' AND expires_at COLLATE "C" > %s RETURNING therapist_id',
                (token_hash, format_time(now)),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            therapist_id = row["therapist_id"]
            cursor = await connection.execute(
                "UPDATE therapists SET password_hash = %s WHERE id = %s RETURNING *",
                (password_hash, therapist_id),
            )
            therapist = await cursor.fetchone()
            await connection.execute(
                "DELETE FROM login_sessions WHERE therapist_id = %s", (therapist_id,)
            )
        return therapist_from_row(therapist)  # type: ignore[arg-type]
