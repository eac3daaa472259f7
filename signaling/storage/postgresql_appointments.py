"""Appointments, invites, consent and binding on PostgreSQL (mirrors sqlite_appointments.py)."""

from __future__ import annotations

import datetime as dt

from signaling.storage.base import Appointment, AppointmentState, NotFound
from signaling.storage.postgresql_database import Database
from signaling.storage.rows import (
    appointment_column_value,
    appointment_from_row,
    format_time,
    now_text,
    optional_time,
)

__all__ = ["Appointments"]


class Appointments:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(
        self,
        therapist_id: int,
        starts_at: dt.datetime,
        duration_minutes: int,
        opens_at: dt.datetime,
        valid_until: dt.datetime,
        note: str | None,
        invite_token_hash: str | None,
    ) -> Appointment:
        row = await self._database.one(
            "INSERT INTO appointments (therapist_id, starts_at, duration_minutes, opens_at,"
            " valid_until, note, invite_token_hash, state, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (
                therapist_id,
                format_time(starts_at),
                duration_minutes,
                format_time(opens_at),
                format_time(valid_until),
                note,
                invite_token_hash,
                AppointmentState.SCHEDULED.value,
                now_text(),
            ),
        )
        return appointment_from_row(row)  # type: ignore[arg-type]

    async def by_id(self, appointment_id: int) -> Appointment | None:
        row = await self._database.one(
            "SELECT * FROM appointments WHERE id = %s", (appointment_id,)
        )
        return None if row is None else appointment_from_row(row)

    async def by_token_hash(self, token_hash: str) -> Appointment | None:
        row = await self._database.one(
            "SELECT * FROM appointments WHERE invite_token_hash = %s", (token_hash,)
        )
        return None if row is None else appointment_from_row(row)

    async def of_therapist(self, therapist_id: int) -> list[Appointment]:
        # COLLATE "C": the times are fixed-width UTC text, so byte order is time order
        rows = await self._database.all(
            'SELECT * FROM appointments WHERE therapist_id = %s ORDER BY starts_at COLLATE "C", id',
            (therapist_id,),
        )
        return [appointment_from_row(row) for row in rows]

    async def update(self, appointment_id: int, changes: dict[str, object]) -> Appointment:
        """Set `changes` (checked by `check_changes` on the caller's side)."""
        columns = list(changes)
        values = [appointment_column_value(column, changes[column]) for column in columns]
        # column names come from APPOINTMENT_UPDATABLE_FIELDS (check_changes), never from input
        assignments = ", ".join(f"{column} = %s" for column in columns)
        row = await self._database.one(
            f"UPDATE appointments SET {assignments} WHERE id = %s RETURNING *",
            (*values, appointment_id),
        )
        if row is None:
            raise NotFound(f"no appointment with id {appointment_id}")
        return appointment_from_row(row)

    async def reset_live(self) -> int:
        return await self._database.write(
            "UPDATE appointments SET state = %s WHERE state IN (%s, %s)",
            (
                AppointmentState.SCHEDULED.value,
                AppointmentState.WAITING.value,
                AppointmentState.IN_CALL.value,
            ),
        )

    async def live(self) -> list[Appointment]:
        rows = await self._database.all(
            "SELECT * FROM appointments WHERE state IN (%s, %s) ORDER BY id",
            (AppointmentState.WAITING.value, AppointmentState.IN_CALL.value),
        )
        return [appointment_from_row(row) for row in rows]

    async def reset_live_one(self, appointment_id: int) -> bool:
        # under READ COMMITTED a second UPDATE waits for the first's row lock and re-checks the
        # state on the new row version: it matches nothing
        changed = await self._database.write(
            "UPDATE appointments SET state = %s WHERE id = %s AND state IN (%s, %s)",
            (
                AppointmentState.SCHEDULED.value,
                appointment_id,
                AppointmentState.WAITING.value,
                AppointmentState.IN_CALL.value,
            ),
        )
        return changed == 1

    async def record_consent(
        self,
        appointment_id: int,
        invite_token_hash: str,
        binding_hash: str,
        display_name: str | None,
        terms_version: str,
        consent_at: dt.datetime,
    ) -> Appointment | None:
        # One UPDATE with the conditions in its WHERE clause: under READ COMMITTED a second
        # browser's UPDATE waits for the first's row lock, then re-checks the WHERE clause on the
        # new row version, so of two racing consents exactly one matches.
        row = await self._database.one(
            "UPDATE appointments SET client_binding_hash = %s, client_display_name = %s,"
            " terms_version = %s, consent_at = %s"
            " WHERE id = %s AND invite_token_hash = %s AND state NOT IN (%s, %s)"
            " AND (client_binding_hash IS NULL OR client_binding_hash = %s) RETURNING *",
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
        return None if row is None else appointment_from_row(row)

    async def latest_bound_valid_until(
        self, binding_hash: str, now: dt.datetime
    ) -> dt.datetime | None:
        row = await self._database.one(
            'SELECT MAX(valid_until COLLATE "C") AS latest FROM appointments'
            ' WHERE client_binding_hash = %s AND valid_until COLLATE "C" > %s',
            (binding_hash, format_time(now)),
        )
        return optional_time(row["latest"])  # type: ignore[index]
