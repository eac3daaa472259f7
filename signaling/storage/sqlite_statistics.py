"""Session statistics (date and length only) and the purge that clears clients' personal data
from past appointments and drops statistics past their retention."""

from __future__ import annotations

import datetime as dt

from signaling.storage.base import PurgeResult, SessionStatistic
from signaling.storage.rows import (
    PURGED_FIELDS,
    format_time,
    retention_cutoff,
    statistic_from_row,
)
from signaling.storage.sqlite_database import Database

__all__ = ["Statistics"]


class Statistics:
    def __init__(self, database: Database) -> None:
        self._database = database

    def record(
        self, therapist_id: int, session_date: dt.date, duration_seconds: int
    ) -> SessionStatistic:
        cursor = self._database.write(
            "INSERT INTO session_statistics (therapist_id, session_date, duration_seconds)"
            " VALUES (?, ?, ?)",
            (therapist_id, session_date.isoformat(), duration_seconds),
        )
        return SessionStatistic(
            id=cursor.lastrowid,  # type: ignore[arg-type]
            therapist_id=therapist_id,
            session_date=session_date,
            duration_seconds=duration_seconds,
        )

    def of_therapist(self, therapist_id: int) -> list[SessionStatistic]:
        rows = self._database.all(
            "SELECT * FROM session_statistics WHERE therapist_id = ? ORDER BY session_date, id",
            (therapist_id,),
        )
        return [statistic_from_row(row) for row in rows]

    def all_therapists(self) -> list[SessionStatistic]:
        rows = self._database.all(
            "SELECT * FROM session_statistics ORDER BY session_date, therapist_id, id"
        )
        return [statistic_from_row(row) for row in rows]

    def purge(self, now: dt.datetime, retention_days: int) -> PurgeResult:
        cutoff_date = (retention_cutoff(now, retention_days)).isoformat()
        cleared = ", ".join(f"{column} = NULL" for column in PURGED_FIELDS)
        db = self._database.db
        with self._database.transaction():
            appointments = db.execute(
                f"UPDATE appointments SET {cleared}, purged_at = ?"
                " WHERE valid_until < ? AND purged_at IS NULL",
                (format_time(now), format_time(now)),
            ).rowcount
            statistics = db.execute(
                "DELETE FROM session_statistics WHERE session_date < ?", (cutoff_date,)
            ).rowcount
        if appointments or statistics:
            # the write-ahead log still holds the old pages; fold it back and empty it
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return PurgeResult(appointments_purged=appointments, statistics_deleted=statistics)
