"""Two-factor sign-in (migration 0005): a therapist's TOTP enrolment and recovery codes, and the
e-mail addresses kept for pending invitation reminders. Small tables that hang on an account or
an appointment, kept apart from those aggregates' modules because nothing else reads them."""

from __future__ import annotations

import datetime as dt
import sqlite3

from signaling.storage.base import AlreadyExists, InvitationReminder, NotFound, TotpEnrolment
from signaling.storage.rows import (
    format_time,
    invitation_reminder_from_row,
    totp_enrolment_from_row,
)
from signaling.storage.sqlite_database import Database

__all__ = ["InvitationReminders", "SecondFactors"]


class SecondFactors:
    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, therapist_id: int) -> TotpEnrolment | None:
        row = self._database.one(
            "SELECT * FROM therapist_totp WHERE therapist_id = ?", (therapist_id,)
        )
        return None if row is None else totp_enrolment_from_row(row)

    def begin(self, therapist_id: int, secret_sealed: str) -> None:
        # Replaces an unconfirmed secret (a second try at enrolment); a confirmed one stays.
        try:
            changed = self._database.write(
                "INSERT INTO therapist_totp (therapist_id, secret_sealed) VALUES (?, ?)"
                " ON CONFLICT (therapist_id) DO UPDATE SET secret_sealed = excluded.secret_sealed,"
                " last_used_step = NULL WHERE therapist_totp.confirmed_at IS NULL",
                (therapist_id, secret_sealed),
            ).rowcount
        except NotFound:
            raise NotFound(f"no therapist with id {therapist_id}") from None
        if not changed:
            raise AlreadyExists("two-factor sign-in is already on")

    def confirm(
        self, therapist_id: int, step: int, code_hashes: list[str], now: dt.datetime
    ) -> bool:
        db = self._database.db
        with self._database.transaction():
            confirmed = db.execute(
                "UPDATE therapist_totp SET confirmed_at = ?, last_used_step = ?"
                " WHERE therapist_id = ? AND confirmed_at IS NULL",
                (format_time(now), step, therapist_id),
            ).rowcount
            if not confirmed:
                return False
            _replace_codes(db, therapist_id, code_hashes)
        return True

    def use_step(self, therapist_id: int, step: int) -> bool:
        # One statement: of two requests with the same code, exactly one moves the step on.
        return bool(
            self._database.write(
                "UPDATE therapist_totp SET last_used_step = ? WHERE therapist_id = ?"
                " AND confirmed_at IS NOT NULL AND (last_used_step IS NULL OR last_used_step < ?)",
                (step, therapist_id, step),
            ).rowcount
        )

    def replace_codes(self, therapist_id: int, code_hashes: list[str]) -> None:
        with self._database.transaction():
            _replace_codes(self._database.db, therapist_id, code_hashes)

    def use_code(self, therapist_id: int, code_hash: str, now: dt.datetime) -> bool:
        return bool(
            self._database.write(
                "UPDATE recovery_codes SET used_at = ? WHERE id = (SELECT id FROM recovery_codes"
                " WHERE therapist_id = ? AND code_hash = ? AND used_at IS NULL LIMIT 1)",
                (format_time(now), therapist_id, code_hash),
            ).rowcount
        )

    def codes_left(self, therapist_id: int) -> int:
        row = self._database.one(
            "SELECT COUNT(*) FROM recovery_codes WHERE therapist_id = ? AND used_at IS NULL",
            (therapist_id,),
        )
        return row[0]  # type: ignore[index]

    def delete(self, therapist_id: int) -> bool:
        db = self._database.db
        with self._database.transaction():
            db.execute("DELETE FROM recovery_codes WHERE therapist_id = ?", (therapist_id,))
            return bool(
                db.execute(
                    "DELETE FROM therapist_totp WHERE therapist_id = ?", (therapist_id,)
                ).rowcount
            )


def _replace_codes(db: sqlite3.Connection, therapist_id: int, code_hashes: list[str]) -> None:
    db.execute("DELETE FROM recovery_codes WHERE therapist_id = ?", (therapist_id,))
    db.executemany(
        "INSERT INTO recovery_codes (therapist_id, code_hash) VALUES (?, ?)",
        [(therapist_id, code_hash) for code_hash in code_hashes],
    )


class InvitationReminders:
    def __init__(self, database: Database) -> None:
        self._database = database

    def add(
        self, appointment_id: int, email: str, remind_at: dt.datetime, link_sealed: str | None
    ) -> None:
        self._database.write(
            "INSERT INTO invitation_reminders (appointment_id, email, remind_at, link_sealed)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (appointment_id) DO UPDATE SET"
            " email = excluded.email, remind_at = excluded.remind_at,"
            " link_sealed = excluded.link_sealed",
            (appointment_id, email, format_time(remind_at), link_sealed),
        )

    def due(self, now: dt.datetime) -> list[InvitationReminder]:
        rows = self._database.all(
            "SELECT * FROM invitation_reminders WHERE remind_at <= ? ORDER BY remind_at",
            (format_time(now),),
        )
        return [invitation_reminder_from_row(row) for row in rows]

    def claim_due(self, now: dt.datetime, hold_until: dt.datetime) -> InvitationReminder | None:
        # one statement under BEGIN IMMEDIATE: another process on the same file (a second
        # worker) waits for the lock and then finds the row's time moved past `now`
        with self._database.transaction():
            row = self._database.db.execute(
                "UPDATE invitation_reminders SET remind_at = ? WHERE appointment_id = ("
                " SELECT appointment_id FROM invitation_reminders WHERE remind_at <= ?"
                " ORDER BY remind_at LIMIT 1) RETURNING *",
                (format_time(hold_until), format_time(now)),
            ).fetchone()
        return invitation_reminder_from_row(row) if row is not None else None

    def move(self, appointment_id: int, remind_at: dt.datetime) -> bool:
        return bool(
            self._database.write(
                "UPDATE invitation_reminders SET remind_at = ? WHERE appointment_id = ?",
                (format_time(remind_at), appointment_id),
            ).rowcount
        )

    def delete(self, appointment_id: int) -> bool:
        return bool(
            self._database.write(
                "DELETE FROM invitation_reminders WHERE appointment_id = ?", (appointment_id,)
            ).rowcount
        )

    def purge(self, now: dt.datetime) -> int:
        """Delete the addresses of the appointments the purge is about to clear, and of those
        cancelled (no reminder goes out for them)."""
        return self._database.write(
            "DELETE FROM invitation_reminders WHERE appointment_id IN (SELECT id FROM"
            " appointments WHERE (valid_until < ? AND purged_at IS NULL) OR state = 'cancelled')",
            (format_time(now),),
        ).rowcount
