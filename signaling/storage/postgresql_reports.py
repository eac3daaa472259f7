"""The audit log, daily health counters and consent records on PostgreSQL (mirrors
sqlite_reports.py)."""

from __future__ import annotations

import datetime as dt

from signaling.storage.base import AuditEntry, ConsentRecord, HealthCount
from signaling.storage.postgresql_database import Database
from signaling.storage.rows import (
    audit_entry_from_row,
    consent_record_from_row,
    format_time,
    health_count_from_row,
    retention_cutoff,
)

__all__ = ["Reports"]


class Reports:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def add_audit_entry(
        self, at: dt.datetime, actor: str, action: str, target: str | None
    ) -> AuditEntry:
        row = await self._database.one(
            "INSERT INTO audit_log (at, actor, action, target) VALUES (%s, %s, %s, %s) RETURNING *",
            (format_time(at), actor, action, target),
        )
        return audit_entry_from_row(row)  # type: ignore[arg-type]

    async def audit_entries(self, limit: int) -> list[AuditEntry]:
        rows = await self._database.all(
            'SELECT * FROM audit_log ORDER BY at COLLATE "C" DESC, id DESC LIMIT %s', (limit,)
        )
        return [audit_entry_from_row(row) for row in rows]

    async def add_health_counts(self, day: dt.date, counts: dict[str, int]) -> None:
        async with self._database.transaction() as connection:
            for counter, value in sorted(counts.items()):
                await connection.execute(
                    "INSERT INTO health_daily (day, counter, value) VALUES (%s, %s, %s)"
                    " ON CONFLICT (day, counter) DO UPDATE"
                    " SET value = health_daily.value + excluded.value",
                    (day.isoformat(), counter, value),
                )

    async def health_counts(self, since: dt.date) -> list[HealthCount]:
        rows = await self._database.all(
            'SELECT * FROM health_daily WHERE day COLLATE "C" >= %s'
            ' ORDER BY day COLLATE "C", counter COLLATE "C"',
            (since.isoformat(),),
        )
        return [health_count_from_row(row) for row in rows]

    async def add_consent_record(
        self, appointment_id: int, terms_version: str, consent_at: dt.datetime
    ) -> None:
        await self._database.write(
            "INSERT INTO consent_records (appointment_id, terms_version, consent_at)"
            " VALUES (%s, %s, %s)",
            (appointment_id, terms_version, format_time(consent_at)),
        )

    async def consent_records(self, appointment_id: int) -> list[ConsentRecord]:
        rows = await self._database.all(
            "SELECT * FROM consent_records WHERE appointment_id = %s"
            ' ORDER BY consent_at COLLATE "C", id',
            (appointment_id,),
        )
        return [consent_record_from_row(row) for row in rows]

    async def purge(self, now: dt.datetime, retention_days: int) -> int:
        cutoff_day = retention_cutoff(now, retention_days)
        cutoff_time = f"{cutoff_day.isoformat()}T00:00:00Z"
        deleted = 0
        async with self._database.transaction() as connection:
            for sql, value in (
                ('DELETE FROM audit_log WHERE at COLLATE "C" < %s', cutoff_time),
                ('DELETE FROM health_daily WHERE day COLLATE "C" < %s', cutoff_day.isoformat()),
                ('DELETE FROM consent_records WHERE consent_at COLLATE "C" < %s', cutoff_time),
                ('DELETE FROM password_links WHERE expires_at COLLATE "C" <= %s', format_time(now)),
            ):
                deleted += (await connection.execute(sql, (value,))).rowcount
        return deleted
