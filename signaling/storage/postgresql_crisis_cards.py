"""Crisis cards and therapists' settings on PostgreSQL (mirrors sqlite_crisis_cards.py)."""

from __future__ import annotations

from signaling.storage.base import CrisisCard, NotFound, TherapistSettings
from signaling.storage.postgresql_database import Database

__all__ = ["CrisisCards", "TherapistSettingsTable"]


class CrisisCards:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def set_on(self, appointment_id: int, on: bool) -> None:
        if not on:
            await self._database.write(
                "DELETE FROM crisis_cards WHERE appointment_id = %s", (appointment_id,)
            )
            return
        # ON CONFLICT: switching it on again keeps what the client already gave. A missing
        # appointment fails the foreign key, which the database maps to NotFound.
        await self._database.write(
            "INSERT INTO crisis_cards (appointment_id) VALUES (%s)"
            " ON CONFLICT (appointment_id) DO NOTHING",
            (appointment_id,),
        )

    async def get(self, appointment_id: int) -> CrisisCard | None:
        row = await self._database.one(
            "SELECT location, phone FROM crisis_cards WHERE appointment_id = %s",
            (appointment_id,),
        )
        return None if row is None else CrisisCard(row["location"], row["phone"])

    async def fill(self, appointment_id: int, location: str, phone: str) -> bool:
        changed = await self._database.write(
            "UPDATE crisis_cards SET location = %s, phone = %s WHERE appointment_id = %s",
            (location, phone, appointment_id),
        )
        return changed > 0

    async def of_therapist(self, therapist_id: int) -> set[int]:
        rows = await self._database.all(
            "SELECT c.appointment_id FROM crisis_cards c"
            " JOIN appointments a ON a.id = c.appointment_id WHERE a.therapist_id = %s",
            (therapist_id,),
        )
        return {row["appointment_id"] for row in rows}


class TherapistSettingsTable:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, therapist_id: int) -> TherapistSettings:
        row = await self._database.one(
            "SELECT arrival_alert FROM therapist_settings WHERE therapist_id = %s",
            (therapist_id,),
        )
        return TherapistSettings() if row is None else TherapistSettings(bool(row["arrival_alert"]))

    async def set(self, therapist_id: int, settings: TherapistSettings) -> TherapistSettings:
        try:
            await self._database.write(
                "INSERT INTO therapist_settings (therapist_id, arrival_alert) VALUES (%s, %s)"
                " ON CONFLICT (therapist_id) DO UPDATE SET arrival_alert = excluded.arrival_alert",
                (therapist_id, int(settings.arrival_alert)),
            )
        except NotFound:
            raise NotFound(f"no therapist with id {therapist_id}") from None
        return await self.get(therapist_id)
