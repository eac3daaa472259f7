"""The crisis card of an appointment and the therapist's settings: two small tables that hang
on an appointment and an account (migration 0003), kept apart from those aggregates' modules
because nothing else about an appointment or an account reads them."""

from __future__ import annotations

import datetime as dt

from signaling.storage.base import CrisisCard, NotFound, TherapistSettings
from signaling.storage.sqlite_database import Database, format_time

__all__ = ["CrisisCards", "TherapistSettingsTable"]


class CrisisCards:
    def __init__(self, database: Database) -> None:
        self._database = database

    def set_on(self, appointment_id: int, on: bool) -> None:
        if not on:
            self._database.write(
                "DELETE FROM crisis_cards WHERE appointment_id = ?", (appointment_id,)
            )
            return
        # ON CONFLICT: switching it on again keeps what the client already gave. A missing
        # appointment fails the foreign key, which `write` turns into NotFound.
        self._database.write(
            "INSERT INTO crisis_cards (appointment_id) VALUES (?)"
            " ON CONFLICT (appointment_id) DO NOTHING",
            (appointment_id,),
        )

    def get(self, appointment_id: int) -> CrisisCard | None:
        row = self._database.one(
            "SELECT location, phone FROM crisis_cards WHERE appointment_id = ?", (appointment_id,)
        )
        return None if row is None else CrisisCard(row["location"], row["phone"])

    def fill(self, appointment_id: int, location: str, phone: str) -> bool:
        cursor = self._database.write(
            "UPDATE crisis_cards SET location = ?, phone = ? WHERE appointment_id = ?",
            (location, phone, appointment_id),
        )
        return cursor.rowcount > 0

    def of_therapist(self, therapist_id: int) -> set[int]:
        rows = self._database.all(
            "SELECT c.appointment_id FROM crisis_cards c"
            " JOIN appointments a ON a.id = c.appointment_id WHERE a.therapist_id = ?",
            (therapist_id,),
        )
        return {row[0] for row in rows}

    def purge(self, now: dt.datetime) -> int:
        """Delete the cards of the appointments the purge is about to clear (same condition)."""
        return self._database.write(
            "DELETE FROM crisis_cards WHERE appointment_id IN (SELECT id FROM appointments"
            " WHERE valid_until < ? AND purged_at IS NULL)",
            (format_time(now),),
        ).rowcount


class TherapistSettingsTable:
    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, therapist_id: int) -> TherapistSettings:
        row = self._database.one(
            "SELECT arrival_alert FROM therapist_settings WHERE therapist_id = ?", (therapist_id,)
        )
        return TherapistSettings() if row is None else TherapistSettings(bool(row[0]))

    def set(self, therapist_id: int, settings: TherapistSettings) -> TherapistSettings:
        try:
            self._database.write(
                "INSERT INTO therapist_settings (therapist_id, arrival_alert) VALUES (?, ?)"
                " ON CONFLICT (therapist_id) DO UPDATE SET arrival_alert = excluded.arrival_alert",
                (therapist_id, int(settings.arrival_alert)),
            )
        except NotFound:
            raise NotFound(f"no therapist with id {therapist_id}") from None
        return self.get(therapist_id)
