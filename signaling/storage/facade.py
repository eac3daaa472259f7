"""What the two backends' `Storage` facades (`sqlite.py`, `postgresql.py`) share: the operations
built from smaller steps, and the checks made on a call's arguments before any query.

Each backend supplies the steps (the underscored methods below) and keeps its SQL in its own
table modules; the rule that puts the steps together is written here once.

The purge is not here: its order is the backend's (SQLite folds its write-ahead log back after
the last step, PostgreSQL deletes the crisis cards in the statistics' transaction and VACUUMs
after it), so each facade keeps its own.
"""

from __future__ import annotations

import abc
import datetime as dt

from signaling.storage.base import Appointment, AppointmentState, Storage
from signaling.storage.rows import check_changes

__all__ = ["Facade"]


class Facade(Storage):
    """A `Storage` whose composed operations are these; a backend implements the rest."""

    # appointments

    async def update_appointment(self, appointment_id: int, **changes: object) -> Appointment:
        # a caller's bug is a TypeError before any query, even on a closed storage
        check_changes(changes)
        return await self._update_appointment(appointment_id, changes)

    async def cancel_appointment(self, appointment_id: int) -> Appointment:
        cancelled = await self.update_appointment(
            appointment_id, state=AppointmentState.CANCELLED, invite_token_hash=None
        )
        # no reminder for a cancelled appointment; a crash just before this leaves the row to
        # the purge, which deletes those of cancelled appointments too
        await self.delete_invitation_reminder(appointment_id)
        return cancelled

    async def record_client_consent(
        self,
        appointment_id: int,
        invite_token_hash: str,
        binding_hash: str,
        display_name: str | None,
        terms_version: str,
        consent_at: dt.datetime,
    ) -> Appointment | None:
        appointment = await self._bind_client(
            appointment_id, invite_token_hash, binding_hash, display_name, terms_version, consent_at
        )
        if appointment is not None:
            # the proof outlives the name (purged at the appointment's end)
            await self._add_consent_record(appointment_id, terms_version, consent_at)
        return appointment

    # login sessions

    async def live_login_sessions(self, session_ids: set[int], now: dt.datetime) -> set[int]:
        # nothing to ask: no query, so no error either while the database is away
        if not session_ids:
            return set()
        # a copy: the caller's set may change while the query runs
        return await self._live_login_sessions(set(session_ids), now)

    # reports

    async def add_health_counts(self, day: dt.date, counts: dict[str, int]) -> None:
        if counts:
            await self._add_health_counts(day, dict(counts))

    # the steps each backend supplies

    @abc.abstractmethod
    async def _update_appointment(
        self, appointment_id: int, changes: dict[str, object]
    ) -> Appointment:
        """Set the checked `changes`; raise `NotFound`."""

    @abc.abstractmethod
    async def _bind_client(
        self,
        appointment_id: int,
        invite_token_hash: str,
        binding_hash: str,
        display_name: str | None,
        terms_version: str,
        consent_at: dt.datetime,
    ) -> Appointment | None:
        """The appointment's side of `record_client_consent`, in one statement."""

    @abc.abstractmethod
    async def _add_consent_record(
        self, appointment_id: int, terms_version: str, consent_at: dt.datetime
    ) -> None: ...

    @abc.abstractmethod
    async def _live_login_sessions(self, session_ids: set[int], now: dt.datetime) -> set[int]:
        """`live_login_sessions` for a set that is not empty."""

    @abc.abstractmethod
    async def _add_health_counts(self, day: dt.date, counts: dict[str, int]) -> None:
        """`add_health_counts` for counts that are not empty."""
