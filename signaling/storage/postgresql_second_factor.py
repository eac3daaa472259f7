"""Two-factor sign-in and invitation reminders on PostgreSQL (mirrors sqlite_second_factor.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from signaling.storage.base import AlreadyExists, InvitationReminder, NotFound, TotpEnrolment
from signaling.storage.postgresql_database import Database
from signaling.storage.rows import (
    format_time,
    invitation_reminder_from_row,
    totp_enrolment_from_row,
)

__all__ = ["InvitationReminders", "SecondFactors"]


class SecondFactors:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, therapist_id: int) -> TotpEnrolment | None:
        row = await self._database.one(
            "SELECT * FROM therapist_totp WHERE therapist_id = %s", (therapist_id,)
        )
        return None if row is None else totp_enrolment_from_row(row)

    async def begin(self, therapist_id: int, secret_sealed: str) -> None:
        try:
            changed = await self._database.write(
                "INSERT INTO therapist_totp (therapist_id, secret_sealed) VALUES (%s, %s)"
                " ON CONFLICT (therapist_id) DO UPDATE SET secret_sealed = excluded.secret_sealed,"
                " last_used_step = NULL WHERE therapist_totp.confirmed_at IS NULL",
                (therapist_id, secret_sealed),
            )
        except NotFound:
            raise NotFound(f"no therapist with id {therapist_id}") from None
        if not changed:
            raise AlreadyExists("two-factor sign-in is already on")

    async def confirm(
        self, therapist_id: int, step: int, code_hashes: list[str], now: dt.datetime
    ) -> bool:
        async with self._database.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE therapist_totp SET confirmed_at = %s, last_used_step = %s"
                " WHERE therapist_id = %s AND confirmed_at IS NULL",
                (format_time(now), step, therapist_id),
            )
            if not cursor.rowcount:
                return False
            await _replace_codes(connection, therapist_id, code_hashes)
        return True

    async def use_step(self, therapist_id: int, step: int) -> bool:
        return bool(
            await self._database.write(
                "UPDATE therapist_totp SET last_used_step = %s WHERE therapist_id = %s"
                " AND confirmed_at IS NOT NULL"
                " AND (last_used_step IS NULL OR last_used_step < %s)",
                (step, therapist_id, step),
            )
        )

    async def replace_codes(self, therapist_id: int, code_hashes: list[str]) -> None:
        async with self._database.transaction() as connection:
            await _replace_codes(connection, therapist_id, code_hashes)

    async def use_code(self, therapist_id: int, code_hash: str, now: dt.datetime) -> bool:
        return bool(
            await self._database.write(
                "UPDATE recovery_codes SET used_at = %s WHERE id = (SELECT id FROM recovery_codes"
                " WHERE therapist_id = %s AND code_hash = %s AND used_at IS NULL LIMIT 1"
                " FOR UPDATE)",
                (format_time(now), therapist_id, code_hash),
            )
        )

    async def codes_left(self, therapist_id: int) -> int:
        row = await self._database.one(
            "SELECT COUNT(*) AS n FROM recovery_codes WHERE therapist_id = %s AND used_at IS NULL",
            (therapist_id,),
        )
        return row["n"]  # type: ignore[index]

    async def delete(self, therapist_id: int) -> bool:
        async with self._database.transaction() as connection:
            await connection.execute(
                "DELETE FROM recovery_codes WHERE therapist_id = %s", (therapist_id,)
            )
            cursor = await connection.execute(
                "DELETE FROM therapist_totp WHERE therapist_id = %s", (therapist_id,)
            )
            return bool(cursor.rowcount)


async def _replace_codes(connection: Any, therapist_id: int, code_hashes: list[str]) -> None:
    await connection.execute("DELETE FROM recovery_codes WHERE therapist_id = %s", (therapist_id,))
    for code_hash in code_hashes:
        await connection.execute(
            "INSERT INTO recovery_codes (therapist_id, code_hash) VALUES (%s, %s)",
            (therapist_id, code_hash),
        )


class InvitationReminders:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def add(
        self, appointment_id: int, email: str, remind_at: dt.datetime, link_sealed: str | None
    ) -> None:
        await self._database.write(
            "INSERT INTO invitation_reminders (appointment_id, email, remind_at, link_sealed)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (appointment_id) DO UPDATE SET"
            " email = excluded.email, remind_at = excluded.remind_at,"
            " link_sealed = excluded.link_sealed",
            (appointment_id, email, format_time(remind_at), link_sealed),
        )

    async def due(self, now: dt.datetime) -> list[InvitationReminder]:
        rows = await self._database.all(
            'SELECT * FROM invitation_reminders WHERE remind_at COLLATE "C" <= %s'
            ' ORDER BY remind_at COLLATE "C"',
            (format_time(now),),
        )
        return [invitation_reminder_from_row(row) for row in rows]

    async def claim_due(
        self, now: dt.datetime, hold_until: dt.datetime
    ) -> InvitationReminder | None:
        # the queue pattern: of several nodes claiming at once, SKIP LOCKED hands each one a
        # different row, and the row's new time hides it from the next claim until its hold ends
        row = await self._database.one(
            "UPDATE invitation_reminders SET remind_at = %s WHERE appointment_id = ("
            " SELECT appointment_id FROM invitation_reminders"
            ' WHERE remind_at COLLATE "C" <= %s ORDER BY remind_at COLLATE "C"'
            " LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *",
            (format_time(hold_until), format_time(now)),
        )
        return invitation_reminder_from_row(row) if row is not None else None

    async def move(self, appointment_id: int, remind_at: dt.datetime) -> bool:
        return bool(
            await self._database.write(
                "UPDATE invitation_reminders SET remind_at = %s WHERE appointment_id = %s",
                (format_time(remind_at), appointment_id),
            )
        )

    async def delete(self, appointment_id: int) -> bool:
        return bool(
            await self._database.write(
                "DELETE FROM invitation_reminders WHERE appointment_id = %s", (appointment_id,)
            )
        )

    async def purge(self, now: dt.datetime) -> int:
        return await self._database.write(
            "DELETE FROM invitation_reminders WHERE appointment_id IN (SELECT id FROM"
            ' appointments WHERE (valid_until COLLATE "C" < %s AND purged_at IS NULL)'
            " OR state = 'cancelled')",
            (format_time(now),),
        )
