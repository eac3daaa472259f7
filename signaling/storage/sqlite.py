"""SQLite storage: the `Storage` facade over one connection used only from one worker thread.

The aiohttp event loop also runs the media relay, so a query must never run on it. Every method
hands a plain function of one table class to a single-worker executor; the single worker also
serialises access to the connection, so no locking is needed. WAL mode lets readers (the sqlite3
shell, a backup) coexist with the writer.

The SQL lives in one module per aggregate, each a plain synchronous class that knows nothing of
threads or the event loop:

- `sqlite_therapists`: accounts and their login sessions
- `sqlite_appointments`: appointments, invites, consent and binding
- `sqlite_statistics`: session statistics and the purge
- `sqlite_api_keys`: the integration API's keys
- `sqlite_crisis_cards`: appointments' crisis cards and therapists' settings
- `sqlite_accounts`: the admin role, provisioning, one-time set-password links
- `sqlite_reports`: the audit log, daily health counters, consent records
- `sqlite_migrations`: the schema; `sqlite_database`: the connection, transactions, times, and
  sqlite3's errors mapped to the interface's (`StorageUnavailable`, `StorageFull`, ...)

This class owns only what every aggregate shares: the thread, the connection's lifetime and the
error mapping. The operations built from several steps (cancelling, consent with its record) are
written once for both backends in `facade.py`; this class supplies the steps. A facade rather than mixins: each table class sees only the connection, never
the others' state, and a PostgreSQL backend can mirror the same parts behind its own facade.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from signaling.storage import sqlite_migrations
from signaling.storage.base import (
    ApiKey,
    Appointment,
    AuditEntry,
    ConsentRecord,
    CrisisCard,
    HealthCount,
    InvitationReminder,
    LoginSession,
    PurgeResult,
    SessionStatistic,
    StorageUnavailable,
    Therapist,
    TherapistSettings,
    TotpEnrolment,
)
from signaling.storage.facade import Facade
from signaling.storage.rows import format_time, parse_time
from signaling.storage.sqlite_accounts import Accounts
from signaling.storage.sqlite_api_keys import ApiKeys
from signaling.storage.sqlite_appointments import Appointments
from signaling.storage.sqlite_crisis_cards import CrisisCards, TherapistSettingsTable
from signaling.storage.sqlite_database import Database, storage_failure
from signaling.storage.sqlite_reports import Reports
from signaling.storage.sqlite_second_factor import InvitationReminders, SecondFactors
from signaling.storage.sqlite_statistics import Statistics
from signaling.storage.sqlite_therapists import Therapists

__all__ = ["SqliteStorage", "format_time", "parse_time"]

T = TypeVar("T")


class SqliteStorage(Facade):
    """Open with `await SqliteStorage.open(path)`, which also applies migrations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._database = Database(path)
        self._therapists = Therapists(self._database)
        self._api_keys = ApiKeys(self._database)
        self._appointments = Appointments(self._database)
        self._statistics = Statistics(self._database)
        self._crisis_cards = CrisisCards(self._database)
        self._settings = TherapistSettingsTable(self._database)
        self._second_factors = SecondFactors(self._database)
        self._reminders = InvitationReminders(self._database)
        self._accounts = Accounts(self._database)
        self._reports = Reports(self._database)
        self._closed = False

    @classmethod
    async def open(cls, path: Path, migrate: bool = True) -> SqliteStorage:
        storage = cls(path)
        try:
            await storage._run(storage._database.connect)
            if migrate:
                await storage.migrate()
        except BaseException:
            await storage.close()
            raise
        return storage

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in the worker thread, sqlite3's errors as the interface's."""
        if self._closed:
            raise StorageUnavailable("the database is closed", "closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _mapping_errors, function, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection itself, for tests and tools that run raw SQL through `_run`."""
        return self._database.db

    # lifecycle

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._database.close)
        finally:
            self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(self._database.one, "SELECT 1")

    async def migrate(self) -> list[int]:
        return await self._run(sqlite_migrations.migrate, self._database)

    async def schema_version(self) -> int:
        return await self._run(sqlite_migrations.schema_version, self._database)

    # therapists

    async def add_therapist(self, username: str, password_hash: str) -> Therapist:
        return await self._run(self._therapists.add, username, password_hash)

    async def get_therapist(self, username: str) -> Therapist | None:
        return await self._run(self._therapists.by_username, username)

    async def get_therapist_by_id(self, therapist_id: int) -> Therapist | None:
        return await self._run(self._therapists.by_id, therapist_id)

    async def list_therapists(self) -> list[Therapist]:
        return await self._run(self._therapists.list_all)

    async def count_therapists(self) -> int:
        return await self._run(self._therapists.count)

    async def set_therapist_disabled(self, username: str, disabled: bool) -> None:
        await self._run(self._therapists.set_disabled, username, disabled)

    async def set_therapist_password(self, username: str, password_hash: str) -> None:
        await self._run(self._therapists.set_password, username, password_hash)

    async def get_therapist_settings(self, therapist_id: int) -> TherapistSettings:
        return await self._run(self._settings.get, therapist_id)

    async def set_therapist_settings(
        self, therapist_id: int, settings: TherapistSettings
    ) -> TherapistSettings:
        return await self._run(self._settings.set, therapist_id, settings)

    # API keys

    async def add_api_key(self, name: str, key_hash: str) -> ApiKey:
        return await self._run(self._api_keys.add, name, key_hash)

    async def list_api_keys(self) -> list[ApiKey]:
        return await self._run(self._api_keys.list_all)

    async def get_api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self._run(self._api_keys.by_hash, key_hash)

    async def revoke_api_key(self, name: str) -> None:
        await self._run(self._api_keys.revoke, name)

    # appointments

    async def create_appointment(
        self,
        therapist_id: int,
        starts_at: dt.datetime,
        duration_minutes: int,
        opens_at: dt.datetime,
        valid_until: dt.datetime,
        note: str | None = None,
        invite_token_hash: str | None = None,
    ) -> Appointment:
        return await self._run(
            self._appointments.create,
            therapist_id,
            starts_at,
            duration_minutes,
            opens_at,
            valid_until,
            note,
            invite_token_hash,
        )

    async def get_appointment(self, appointment_id: int) -> Appointment | None:
        return await self._run(self._appointments.by_id, appointment_id)

    async def get_appointment_by_token_hash(self, token_hash: str) -> Appointment | None:
        return await self._run(self._appointments.by_token_hash, token_hash)

    async def list_appointments_for_therapist(self, therapist_id: int) -> list[Appointment]:
        return await self._run(self._appointments.of_therapist, therapist_id)

    async def _update_appointment(
        self, appointment_id: int, changes: dict[str, object]
    ) -> Appointment:
        return await self._run(self._appointments.update, appointment_id, changes)

    async def reset_live_appointments(self) -> int:
        return await self._run(self._appointments.reset_live)

    async def live_appointments(self) -> list[Appointment]:
        return await self._run(self._appointments.live)

    async def reset_live_appointment(self, appointment_id: int) -> bool:
        return await self._run(self._appointments.reset_live_one, appointment_id)

    async def _bind_client(
        self,
        appointment_id: int,
        invite_token_hash: str,
        binding_hash: str,
        display_name: str | None,
        terms_version: str,
        consent_at: dt.datetime,
    ) -> Appointment | None:
        return await self._run(
            self._appointments.record_consent,
            appointment_id,
            invite_token_hash,
            binding_hash,
            display_name,
            terms_version,
            consent_at,
        )

    async def _add_consent_record(
        self, appointment_id: int, terms_version: str, consent_at: dt.datetime
    ) -> None:
        await self._run(self._reports.add_consent_record, appointment_id, terms_version, consent_at)

    async def latest_bound_valid_until(
        self, binding_hash: str, now: dt.datetime
    ) -> dt.datetime | None:
        return await self._run(self._appointments.latest_bound_valid_until, binding_hash, now)

    # crisis cards

    async def set_crisis_card(self, appointment_id: int, on: bool) -> None:
        await self._run(self._crisis_cards.set_on, appointment_id, on)

    async def get_crisis_card(self, appointment_id: int) -> CrisisCard | None:
        return await self._run(self._crisis_cards.get, appointment_id)

    async def fill_crisis_card(self, appointment_id: int, location: str, phone: str) -> bool:
        return await self._run(self._crisis_cards.fill, appointment_id, location, phone)

    async def crisis_card_appointments(self, therapist_id: int) -> set[int]:
        return await self._run(self._crisis_cards.of_therapist, therapist_id)

    # login sessions

    async def create_login_session(
        self,
        token_hash: str,
        therapist_id: int,
        csrf_token: str,
        now: dt.datetime,
        expires_at: dt.datetime,
    ) -> LoginSession:
        return await self._run(
            self._therapists.create_session, token_hash, therapist_id, csrf_token, now, expires_at
        )

    async def get_login_session(self, token_hash: str) -> LoginSession | None:
        return await self._run(self._therapists.session, token_hash)

    async def touch_login_session(
        self, session_id: int, last_seen_at: dt.datetime, expires_at: dt.datetime
    ) -> None:
        await self._run(self._therapists.touch_session, session_id, last_seen_at, expires_at)

    async def delete_login_session(self, session_id: int) -> None:
        await self._run(self._therapists.delete_session, session_id)

    async def delete_login_sessions_of(self, therapist_id: int) -> int:
        return await self._run(self._therapists.delete_sessions_of, therapist_id)

    async def _live_login_sessions(self, session_ids: set[int], now: dt.datetime) -> set[int]:
        return await self._run(self._therapists.live_sessions, session_ids, now)

    # two-factor sign-in

    async def get_totp(self, therapist_id: int) -> TotpEnrolment | None:
        return await self._run(self._second_factors.get, therapist_id)

    async def begin_totp(self, therapist_id: int, secret_sealed: str) -> None:
        await self._run(self._second_factors.begin, therapist_id, secret_sealed)

    async def confirm_totp(
        self, therapist_id: int, step: int, recovery_code_hashes: list[str], now: dt.datetime
    ) -> bool:
        return await self._run(
            self._second_factors.confirm, therapist_id, step, recovery_code_hashes, now
        )

    async def use_totp_step(self, therapist_id: int, step: int) -> bool:
        return await self._run(self._second_factors.use_step, therapist_id, step)

    async def replace_recovery_codes(self, therapist_id: int, code_hashes: list[str]) -> None:
        await self._run(self._second_factors.replace_codes, therapist_id, code_hashes)

    async def use_recovery_code(self, therapist_id: int, code_hash: str, now: dt.datetime) -> bool:
        return await self._run(self._second_factors.use_code, therapist_id, code_hash, now)

    async def recovery_codes_left(self, therapist_id: int) -> int:
        return await self._run(self._second_factors.codes_left, therapist_id)

    async def delete_totp(self, therapist_id: int) -> bool:
        return await self._run(self._second_factors.delete, therapist_id)

    # invitation reminders

    async def add_invitation_reminder(
        self,
        appointment_id: int,
        email: str,
        remind_at: dt.datetime,
        link_sealed: str | None = None,
    ) -> None:
        await self._run(self._reminders.add, appointment_id, email, remind_at, link_sealed)

    async def due_invitation_reminders(self, now: dt.datetime) -> list[InvitationReminder]:
        return await self._run(self._reminders.due, now)

    async def claim_due_invitation_reminder(
        self, now: dt.datetime, hold_until: dt.datetime
    ) -> InvitationReminder | None:
        return await self._run(self._reminders.claim_due, now, hold_until)

    async def move_invitation_reminder(self, appointment_id: int, remind_at: dt.datetime) -> bool:
        return await self._run(self._reminders.move, appointment_id, remind_at)

    async def delete_invitation_reminder(self, appointment_id: int) -> bool:
        return await self._run(self._reminders.delete, appointment_id)

    # statistics and purge

    async def record_session_statistic(
        self, therapist_id: int, session_date: dt.date, duration_seconds: int
    ) -> SessionStatistic:
        return await self._run(
            self._statistics.record, therapist_id, session_date, duration_seconds
        )

    async def list_session_statistics(self, therapist_id: int) -> list[SessionStatistic]:
        return await self._run(self._statistics.of_therapist, therapist_id)

    async def list_all_session_statistics(self) -> list[SessionStatistic]:
        return await self._run(self._statistics.all_therapists)

    async def purge(self, now: dt.datetime, retention_days: int) -> PurgeResult:
        return await self._run(self._purge, now, retention_days)

    def _purge(self, now: dt.datetime, retention_days: int) -> PurgeResult:
        # The cards first: should the second step fail, they are gone and the rest is cleared
        # on the next run; the other order could leave a card of a purged appointment. The
        # admin's records go before the statistics, whose purge then folds the write-ahead log
        # back, with the cards' and records' pages in it.
        self._reminders.purge(now)
        self._crisis_cards.purge(now)
        self._reports.purge(now, retention_days)
        return self._statistics.purge(now, retention_days)

    # administration

    async def set_therapist_admin(self, username: str, admin: bool) -> None:
        await self._run(self._accounts.set_admin, username, admin)

    async def get_therapist_by_external_id(self, external_id: str) -> Therapist | None:
        return await self._run(self._accounts.by_external_id, external_id)

    async def provision_therapist(
        self, external_id: str, username: str, display_name: str | None, password_hash: str
    ) -> tuple[Therapist, bool]:
        return await self._run(
            self._accounts.provision, external_id, username, display_name, password_hash
        )

    async def create_password_link(
        self, therapist_id: int, token_hash: str, now: dt.datetime, expires_at: dt.datetime
    ) -> None:
        await self._run(
            self._accounts.create_password_link, therapist_id, token_hash, now, expires_at
        )

    async def redeem_password_link(
        self, token_hash: str, now: dt.datetime, password_hash: str
    ) -> Therapist | None:
        return await self._run(self._accounts.redeem_password_link, token_hash, now, password_hash)

    async def add_audit_entry(
        self, at: dt.datetime, actor: str, action: str, target: str | None
    ) -> AuditEntry:
        return await self._run(self._reports.add_audit_entry, at, actor, action, target)

    async def list_audit_entries(self, limit: int) -> list[AuditEntry]:
        return await self._run(self._reports.audit_entries, limit)

    async def _add_health_counts(self, day: dt.date, counts: dict[str, int]) -> None:
        await self._run(self._reports.add_health_counts, day, counts)

    async def list_health_counts(self, since: dt.date) -> list[HealthCount]:
        return await self._run(self._reports.health_counts, since)

    async def list_consent_records(self, appointment_id: int) -> list[ConsentRecord]:
        return await self._run(self._reports.consent_records, appointment_id)


def _mapping_errors(function: Callable[..., T], *args: Any) -> T:
    try:
        return function(*args)
    except sqlite3.Error as exc:
        # `from exc` keeps the driver's error for a debugger; logs show only `reason`
        raise storage_failure(exc) from exc
