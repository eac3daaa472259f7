"""The admin's records (issue #13): the audit log, the service's daily health counters and the
clients' consent records. None of them holds a name or what was said: an account or key name,
a counter, a terms version and times."""

from __future__ import annotations

import datetime as dt

from signaling.storage.base import AuditEntry, ConsentRecord, HealthCount
from signaling.storage.rows import (
    audit_entry_from_row,
    consent_record_from_row,
    format_time,
    health_count_from_row,
    retention_cutoff,
)
from signaling.storage.sqlite_database import Database

__all__ = ["Reports"]


class Reports:
    def __init__(self, database: Database) -> None:
        self._database = database

    def add_audit_entry(
        self, at: dt.datetime, actor: str, action: str, target: str | None
    ) -> AuditEntry:
        cursor = self._database.write(
            "INSERT INTO audit_log (at, actor, action, target) VALUES (?, ?, ?, ?)",
            (format_time(at), actor, action, target),
        )
        row = self._database.one("SELECT * FROM audit_log WHERE id = ?", (cursor.lastrowid,))
        return audit_entry_from_row(row)  # type: ignore[arg-type]

    def audit_entries(self, limit: int) -> list[AuditEntry]:
        rows = self._database.all(
            "SELECT * FROM audit_log ORDER BY at DESC, id DESC LIMIT ?", (limit,)
        )
        return [audit_entry_from_row(row) for row in rows]

    def add_health_counts(self, day: dt.date, counts: dict[str, int]) -> None:
        db = self._database.db
        with self._database.transaction():
            for counter, value in sorted(counts.items()):
                db.execute(
                    "INSERT INTO health_daily (day, counter, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (day, counter) DO UPDATE"
                    " SET value = health_daily.value + excluded.value",
                    (day.isoformat(), counter, value),
                )

    def health_counts(self, since: dt.date) -> list[HealthCount]:
        rows = self._database.all(
            "SELECT * FROM health_daily WHERE day >= ? ORDER BY day, counter",
            (since.isoformat(),),
        )
        return [health_count_from_row(row) for row in rows]

    def add_consent_record(
        self, appointment_id: int, terms_version: str, consent_at: dt.datetime
    ) -> None:
        self._database.write(
            "INSERT INTO consent_records (appointment_id, terms_version, consent_at)"
            " VALUES (?, ?, ?)",
            (appointment_id, terms_version, format_time(consent_at)),
        )

    def consent_records(self, appointment_id: int) -> list[ConsentRecord]:
        rows = self._database.all(
            "SELECT * FROM consent_records WHERE appointment_id = ? ORDER BY consent_at, id",
            (appointment_id,),
        )
        return [consent_record_from_row(row) for row in rows]

    def purge(self, now: dt.datetime, retention_days: int) -> int:
        """Delete what is older than the retention; return how many rows went."""
        cutoff_day = retention_cutoff(now, retention_days)
        # times are text with a Z; midnight of the cutoff day in that form compares as time
        cutoff_time = f"{cutoff_day.isoformat()}T00:00:00Z"
        db = self._database.db
        deleted = 0
        with self._database.transaction():
            for sql, value in (
                ("DELETE FROM audit_log WHERE at < ?", cutoff_time),
                ("DELETE FROM health_daily WHERE day < ?", cutoff_day.isoformat()),
                ("DELETE FROM consent_records WHERE consent_at < ?", cutoff_time),
                ("DELETE FROM password_links WHERE expires_at <= ?", format_time(now)),
            ):
                deleted += db.execute(sql, (value,)).rowcount
        return deleted
