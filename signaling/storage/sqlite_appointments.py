"""Appointments with what hangs on them: the invite (only its token's hash), the client's consent
and binding, and the state of the consultation."""

from __future__ import annotations

import datetime as dt

from signaling.storage.base import Appointment, AppointmentState, NotFound
from signaling.storage.rows import (
    appointment_column_value,
    appointment_from_row,
    check_changes,
    format_time,
    now_text,
    optional_time,
)
from signaling.storage.sqlite_database import Database

__all__ = ["Appointments", "appointment_from_row", "check_changes"]


class Appointments:
    def __init__(self, database: Database) -> None:
        self._database = database

    def create(
        self,
        therapist_id: int,
        starts_at: dt.datetime,
        duration_minutes: int,
        opens_at: dt.datetime,
        valid_until: dt.datetime,
        note: str | None,
        invite_token_hash: str | None,
    ) -> Appointment:
        cursor = self._database.write(
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
                now_text(),
            ),
        )
        return self.by_id(cursor.lastrowid)  # type: ignore[arg-type,return-value]

    def by_id(self, appointment_id: int) -> Appointment | None:
        row = self._database.one("SELECT * FROM appointments WHERE id = ?", (appointment_id,))
        return None if row is None else appointment_from_row(row)

    def by_token_hash(self, token_hash: str) -> Appointment | None:
        row = self._database.one(
            "SELECT * FROM appointments WHERE invite_token_hash = ?", (token_hash,)
        )
        return None if row is None else appointment_from_row(row)

    def of_therapist(self, therapist_id: int) -> list[Appointment]:
        rows = self._database.all(
            "SELECT * FROM appointments WHERE therapist_id = ? ORDER BY starts_at, id",
            (therapist_id,),
        )
        return [appointment_from_row(row) for row in rows]

    def update(self, appointment_id: int, changes: dict[str, object]) -> Appointment:
        """Set `changes` (checked by `check_changes` on the caller's side)."""
        columns = list(changes)
        values = [appointment_column_value(column, changes[column]) for column in columns]
        assignments = ", ".join(f"{column} = ?" for column in columns)
        cursor = self._database.write(
            f"UPDATE appointments SET {assignments} WHERE id = ?", (*values, appointment_id)
        )
        if cursor.rowcount == 0:
            raise NotFound(f"no appointment with id {appointment_id}")
        return self.by_id(appointment_id)  # type: ignore[return-value]

    def reset_live(self) -> int:
        return self._database.write(
            "UPDATE appointments SET state = ? WHERE state IN (?, ?)",
            (
                AppointmentState.SCHEDULED.value,
                AppointmentState.WAITING.value,
                AppointmentState.IN_CALL.value,
            ),
        ).rowcount

    def live(self) -> list[Appointment]:
        rows = self._database.all(
            "SELECT * FROM appointments WHERE state IN (?, ?) ORDER BY id",
            (AppointmentState.WAITING.value, AppointmentState.IN_CALL.value),
        )
        return [appointment_from_row(row) for row in rows]

    def reset_live_one(self, appointment_id: int) -> bool:
        cursor = self._database.write(
            "UPDATE appointments SET state = ? WHERE id = ? AND state IN (?, ?)",
            (
                AppointmentState.SCHEDULED.value,
                appointment_id,
                AppointmentState.WAITING.value,
                AppointmentState.IN_CALL.value,
            ),
        )
        return cursor.rowcount == 1

    def record_consent(
        self,
        appointment_id: int,
        invite_token_hash: str,
        binding_hash: str,
        display_name: str | None,
        terms_version: str,
        consent_at: dt.datetime,
    ) -> Appointment | None:
        # One UPDATE with the conditions in its WHERE clause: the check and the write cannot be
        # split by another browser's consent.
        cursor = self._database.write(
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
        return self.by_id(appointment_id)

    def latest_bound_valid_until(self, binding_hash: str, now: dt.datetime) -> dt.datetime | None:
        # No index: this runs once per consent, and a practice's table holds some thousand rows
        # a year.
        row = self._database.one(
            "SELECT MAX(valid_until) FROM appointments"
            " WHERE client_binding_hash = ? AND valid_until > ?",
            (binding_hash, format_time(now)),
        )
        return optional_time(row[0])  # type: ignore[index]
