"""Session statistics and the purge on PostgreSQL (mirrors sqlite_statistics.py).

The purge really deletes: the personal columns are set to NULL and old statistics rows are
DELETEd, never flagged. PostgreSQL keeps the old row versions as dead tuples until VACUUM, so a
purge that changed anything runs VACUUM on the tables it changed right after (SQLite's equivalent is
secure_delete plus the WAL checkpoint). What that does and does not guarantee on disk (free space
in pages, the WAL, backups) is in docs/scaling.md#deleted-means-gone.
"""

from __future__ import annotations

import datetime as dt

from signaling.storage.base import PurgeResult, SessionStatistic
from signaling.storage.postgresql_database import Database
from signaling.storage.rows import (
    PURGED_FIELDS,
    format_time,
    retention_cutoff,
    statistic_from_row,
)

__all__ = ["Statistics"]


class Statistics:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def record(
        self, therapist_id: int, session_date: dt.date, duration_seconds: int
    ) -> SessionStatistic:
        row = await self._database.one(
            "INSERT INTO session_statistics (therapist_id, session_date, duration_seconds)"
            " VALUES (%s, %s, %s) RETURNING *",
            (therapist_id, session_date.isoformat(), duration_seconds),
        )
        return statistic_from_row(row)  # type: ignore[arg-type]

    async def of_therapist(self, therapist_id: int) -> list[SessionStatistic]:
        rows = await self._database.all(
            "SELECT * FROM session_statistics WHERE therapist_id = %s"
            ' ORDER BY session_date COLLATE "C", id',
            (therapist_id,),
        )
        return [statistic_from_row(row) for row in rows]

    async def all_therapists(self) -> list[SessionStatistic]:
        rows = await self._database.all(
            'SELECT * FROM session_statistics ORDER BY session_date COLLATE "C", therapist_id, id'
        )
        return [statistic_from_row(row) for row in rows]

    async def purge(self, now: dt.datetime, retention_days: int) -> PurgeResult:
        cutoff_date = (retention_cutoff(now, retention_days)).isoformat()
        cleared = ", ".join(f"{column} = NULL" for column in PURGED_FIELDS)
        async with self._database.transaction() as connection:
            # the crisis cards of the appointments about to be cleared go in the same
            # transaction: no moment with a card left on a purged appointment
            await connection.execute(
                "DELETE FROM crisis_cards WHERE appointment_id IN (SELECT id FROM appointments"
                ' WHERE valid_until COLLATE "C" < %s AND purged_at IS NULL)',
                (format_time(now),),
            )
            appointments = (
                await connection.execute(
                    f"UPDATE appointments SET {cleared}, purged_at = %s"
                    ' WHERE valid_until COLLATE "C" < %s AND purged_at IS NULL',
                    (format_time(now), format_time(now)),
                )
            ).rowcount
            statistics = (
                await connection.execute(
                    'DELETE FROM session_statistics WHERE session_date COLLATE "C" < %s',
                    (cutoff_date,),
                )
            ).rowcount
        if appointments or statistics:
            # outside the transaction: VACUUM cannot run inside one (autocommit connection)
            await self._database.write(
                "VACUUM appointments, crisis_cards, session_statistics, audit_log,"
                " health_daily, consent_records, password_links"
            )
        return PurgeResult(appointments_purged=appointments, statistics_deleted=statistics)
