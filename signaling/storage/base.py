"""The storage interface and its models.

Callers depend on `Storage` and these dataclasses only, so another backend (PostgreSQL) can be
added without touching them. All times are timezone-aware UTC `datetime`s with second precision.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AlreadyExists",
    "ApiKey",
    "Appointment",
    "AppointmentState",
    "AuditEntry",
    "ConsentRecord",
    "CrisisCard",
    "HealthCount",
    "InvitationReminder",
    "LoginSession",
    "NotFound",
    "PurgeResult",
    "SessionStatistic",
    "Storage",
    "StorageError",
    "StorageFailure",
    "StorageFull",
    "StorageUnavailable",
    "Therapist",
    "TherapistSettings",
    "TotpEnrolment",
]


class StorageError(Exception):
    """Base class for errors a caller may want to handle."""


class AlreadyExists(StorageError):
    pass


class NotFound(StorageError):
    pass


class StorageFailure(StorageError, RuntimeError):
    """The backend could not do what was asked, through no fault of the caller's values; every
    write is one transaction, so nothing of it was kept. Each backend maps its own driver's
    errors to this or a subclass, so callers never see sqlite3 (or psycopg) exceptions.

    Also a RuntimeError: a call on a closed storage raised the executor's RuntimeError before
    this existed, and callers (and tests) that expect that still hold.

    `reason` is the backend's own short name for the cause (e.g. ``SQLITE_BUSY``): safe to log,
    as it never holds a statement or a value."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class StorageUnavailable(StorageFailure):
    """Not now: the database is locked or busy past the wait, unreachable, or closed. The same
    call may succeed when retried shortly."""


class StorageFull(StorageFailure):
    """The database's disk (or its configured size limit) is full."""


class AppointmentState(StrEnum):
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    IN_CALL = "in_call"
    ENDED = "ended"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Therapist:
    id: int
    username: str
    password_hash: str
    disabled: bool
    created_at: dt.datetime
    # Admins see the service's usage and health and manage accounts (issue #13).
    is_admin: bool = False
    # The portal's id for the account (`PUT /api/v1/therapists/{external_id}`), else None.
    external_id: str | None = None
    display_name: str | None = None


@dataclass(frozen=True)
class TherapistSettings:
    """A therapist's preferences; a therapist who never changed them has these defaults."""

    # A sound, a desktop notification and a count in the dashboard's title when a client
    # enters the waiting room.
    arrival_alert: bool = True


@dataclass(frozen=True)
class TotpEnrolment:
    """A therapist's authenticator app (two-factor sign-in). Until `confirmed_at` it is only an
    enrolment in progress and sign-in does not ask for it."""

    therapist_id: int
    # encrypted; see signaling/totp.py
    secret_sealed: str
    confirmed_at: dt.datetime | None
    # the 30-second step of the last accepted code; only later steps are accepted
    last_used_step: int | None

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True)
class InvitationReminder:
    """A reminder e-mail still to be sent. The address is personal data: kept only until then."""

    appointment_id: int
    email: str
    remind_at: dt.datetime  # when it is (next) due; a claimed one's: when its hold ends
    # the invite link, sealed (signaling/link_seal.py); None: the reminder names no link
    link_sealed: str | None = None


@dataclass(frozen=True)
class CrisisCard:
    """Where the client is during the session and a phone number for emergencies, as the client
    gave them before joining; None until then. Personal data: purged with the name."""

    location: str | None
    phone: str | None


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    key_hash: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Appointment:
    id: int
    therapist_id: int
    starts_at: dt.datetime
    duration_minutes: int
    opens_at: dt.datetime
    valid_until: dt.datetime
    note: str | None
    invite_token_hash: str | None
    client_display_name: str | None
    client_binding_hash: str | None
    terms_version: str | None
    consent_at: dt.datetime | None
    state: AppointmentState
    both_present_at: dt.datetime | None
    ended_at: dt.datetime | None
    purged_at: dt.datetime | None
    created_at: dt.datetime


# Fields `update_appointment` may change; the rest are fixed at creation or owned by `purge`.
APPOINTMENT_UPDATABLE_FIELDS = frozenset(
    {
        "starts_at",
        "duration_minutes",
        "opens_at",
        "valid_until",
        "note",
        "invite_token_hash",
        "client_display_name",
        "client_binding_hash",
        "terms_version",
        "consent_at",
        "state",
        "both_present_at",
        "ended_at",
    }
)


@dataclass(frozen=True)
class SessionStatistic:
    id: int
    therapist_id: int
    session_date: dt.date
    duration_seconds: int


@dataclass(frozen=True)
class AuditEntry:
    """One admin action: who (an admin's username, ``cli`` or ``api:<key name>``), what, to
    which account or key, when. Never client data."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str | None


@dataclass(frozen=True)
class HealthCount:
    """One of the service's own counters for one UTC day, summed over every node."""

    day: dt.date
    counter: str
    value: int


@dataclass(frozen=True)
class ConsentRecord:
    """What the client of an appointment agreed to and when; no name (Art. 7(1) GDPR)."""

    id: int
    appointment_id: int
    terms_version: str
    consent_at: dt.datetime


@dataclass(frozen=True)
class LoginSession:
    """A therapist's sign-in. Only the hash of the cookie's token is kept."""

    id: int
    token_hash: str
    therapist_id: int
    csrf_token: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class PurgeResult:
    appointments_purged: int
    statistics_deleted: int


class Storage(abc.ABC):
    """Everything the service keeps. Methods never block the event loop."""

    # lifecycle

    @abc.abstractmethod
    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied (empty when up to date)."""

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Run a trivial query; raise if the database cannot answer."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # therapists

    @abc.abstractmethod
    async def add_therapist(self, username: str, password_hash: str) -> Therapist:
        """Raise `AlreadyExists` if the username is taken."""

    @abc.abstractmethod
    async def get_therapist(self, username: str) -> Therapist | None: ...

    @abc.abstractmethod
    async def get_therapist_by_id(self, therapist_id: int) -> Therapist | None: ...

    @abc.abstractmethod
    async def list_therapists(self) -> list[Therapist]: ...

    @abc.abstractmethod
    async def count_therapists(self) -> int: ...

    @abc.abstractmethod
    async def set_therapist_disabled(self, username: str, disabled: bool) -> None:
        """Raise `NotFound` for an unknown username. Disabling also deletes every login session
        of the account, in the same transaction, so enabling it again revives none of them."""

    @abc.abstractmethod
    async def set_therapist_password(self, username: str, password_hash: str) -> None:
        """Raise `NotFound` for an unknown username. Also deletes every login session of the
        account, in the same transaction: whoever knew the old password is signed out."""

    @abc.abstractmethod
    async def get_therapist_settings(self, therapist_id: int) -> TherapistSettings:
        """The therapist's settings; the defaults if none were ever set."""

    @abc.abstractmethod
    async def set_therapist_settings(
        self, therapist_id: int, settings: TherapistSettings
    ) -> TherapistSettings:
        """Replace the therapist's settings; raise `NotFound` for an unknown therapist."""

    # API keys

    @abc.abstractmethod
    async def add_api_key(self, name: str, key_hash: str) -> ApiKey:
        """Raise `AlreadyExists` if an active key has this name."""

    @abc.abstractmethod
    async def list_api_keys(self) -> list[ApiKey]: ...

    @abc.abstractmethod
    async def get_api_key_by_hash(self, key_hash: str) -> ApiKey | None: ...

    @abc.abstractmethod
    async def revoke_api_key(self, name: str) -> None:
        """Revoke the active key called `name`; raise `NotFound` if there is none."""

    # appointments

    @abc.abstractmethod
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
        """Raise `NotFound` for an unknown therapist."""

    @abc.abstractmethod
    async def get_appointment(self, appointment_id: int) -> Appointment | None: ...

    @abc.abstractmethod
    async def get_appointment_by_token_hash(self, token_hash: str) -> Appointment | None: ...

    @abc.abstractmethod
    async def list_appointments_for_therapist(self, therapist_id: int) -> list[Appointment]:
        """All of the therapist's appointments, earliest start first."""

    @abc.abstractmethod
    async def update_appointment(self, appointment_id: int, **changes: object) -> Appointment:
        """Set the given fields (see `APPOINTMENT_UPDATABLE_FIELDS`); raise `NotFound`."""

    @abc.abstractmethod
    async def reset_live_appointments(self) -> int:
        """Set every `waiting` or `in_call` appointment back to `scheduled`, consent and binding
        kept; return how many. For the start of the server: no room outlives its process."""

    @abc.abstractmethod
    async def live_appointments(self) -> list[Appointment]:
        """Every `waiting` or `in_call` appointment: in a cluster, the rooms some node should
        host (signaling/cluster/room_sweep.py)."""

    @abc.abstractmethod
    async def reset_live_appointment(self, appointment_id: int) -> bool:
        """Set one `waiting` or `in_call` appointment back to `scheduled`, as
        `reset_live_appointments` does for all; True when it was live. The check is in the
        UPDATE: of two nodes sweeping the same room, one gets True."""

    @abc.abstractmethod
    async def cancel_appointment(self, appointment_id: int) -> Appointment:
        """Set state to cancelled and drop the invite token so the link stops working; a
        pending invitation reminder (and the client's address with it) is deleted too."""

    @abc.abstractmethod
    async def record_client_consent(
        self,
        appointment_id: int,
        invite_token_hash: str,
        binding_hash: str,
        display_name: str | None,
        terms_version: str,
        consent_at: dt.datetime,
    ) -> Appointment | None:
        """Record the client's consent and binding, atomically and only if the appointment still
        has this invite, is not cancelled or ended, and is unbound or bound to `binding_hash`.
        None otherwise: of two browsers racing to bind a link, exactly one wins."""

    @abc.abstractmethod
    async def latest_bound_valid_until(
        self, binding_hash: str, now: dt.datetime
    ) -> dt.datetime | None:
        """The latest `valid_until` after `now` among appointments bound to `binding_hash`."""

    # crisis cards

    @abc.abstractmethod
    async def set_crisis_card(self, appointment_id: int, on: bool) -> None:
        """Switch the appointment's crisis card on (what the client gave is kept) or off (it is
        deleted). Raise `NotFound` for an unknown appointment."""

    @abc.abstractmethod
    async def get_crisis_card(self, appointment_id: int) -> CrisisCard | None:
        """The card, or None when it is not switched on for the appointment."""

    @abc.abstractmethod
    async def fill_crisis_card(self, appointment_id: int, location: str, phone: str) -> bool:
        """Store what the client gave; False (nothing stored) when the card is not on."""

    @abc.abstractmethod
    async def crisis_card_appointments(self, therapist_id: int) -> set[int]:
        """The ids of the therapist's appointments whose crisis card is switched on."""

    # login sessions

    @abc.abstractmethod
    async def create_login_session(
        self,
        token_hash: str,
        therapist_id: int,
        csrf_token: str,
        now: dt.datetime,
        expires_at: dt.datetime,
    ) -> LoginSession:
        """Also deletes every session that expired before `now`, so the table stays small."""

    @abc.abstractmethod
    async def get_login_session(self, token_hash: str) -> LoginSession | None:
        """The session with this token hash, expired or not (the caller checks `expires_at`)."""

    @abc.abstractmethod
    async def touch_login_session(
        self, session_id: int, last_seen_at: dt.datetime, expires_at: dt.datetime
    ) -> None: ...

    @abc.abstractmethod
    async def delete_login_session(self, session_id: int) -> None: ...

    @abc.abstractmethod
    async def delete_login_sessions_of(self, therapist_id: int) -> int:
        """Delete every login session of the therapist; return how many there were."""

    @abc.abstractmethod
    async def live_login_sessions(self, session_ids: set[int], now: dt.datetime) -> set[int]:
        """Those of `session_ids` that still exist, have not expired by `now`, and belong to an
        account that is not disabled."""

    # two-factor sign-in (issue #13)

    @abc.abstractmethod
    async def get_totp(self, therapist_id: int) -> TotpEnrolment | None: ...

    @abc.abstractmethod
    async def begin_totp(self, therapist_id: int, secret_sealed: str) -> None:
        """Store a new, unconfirmed secret (replacing an unconfirmed one). Raise `AlreadyExists`
        when a confirmed one exists, `NotFound` for an unknown therapist."""

    @abc.abstractmethod
    async def confirm_totp(
        self, therapist_id: int, step: int, recovery_code_hashes: list[str], now: dt.datetime
    ) -> bool:
        """In one transaction: confirm the enrolment with the code of `step` (now its last used
        step) and replace the recovery codes. False (nothing changed) if not unconfirmed."""

    @abc.abstractmethod
    async def use_totp_step(self, therapist_id: int, step: int) -> bool:
        """Record `step` as used if it is later than the last used one; False if it is not (a
        reused code), atomically, so two requests with one code cannot both pass."""

    @abc.abstractmethod
    async def replace_recovery_codes(self, therapist_id: int, code_hashes: list[str]) -> None: ...

    @abc.abstractmethod
    async def use_recovery_code(self, therapist_id: int, code_hash: str, now: dt.datetime) -> bool:
        """Mark the unused code with this hash used; False if there is none."""

    @abc.abstractmethod
    async def recovery_codes_left(self, therapist_id: int) -> int: ...

    @abc.abstractmethod
    async def delete_totp(self, therapist_id: int) -> bool:
        """Remove the authenticator and the recovery codes; whether there was one."""

    # invitation reminders (issue #13)

    @abc.abstractmethod
    async def add_invitation_reminder(
        self,
        appointment_id: int,
        email: str,
        remind_at: dt.datetime,
        link_sealed: str | None = None,
    ) -> None:
        """Keep the address (and the sealed link) until the reminder is sent (replaces an
        earlier one)."""

    @abc.abstractmethod
    async def due_invitation_reminders(self, now: dt.datetime) -> list[InvitationReminder]: ...

    @abc.abstractmethod
    async def claim_due_invitation_reminder(
        self, now: dt.datetime, hold_until: dt.datetime
    ) -> InvitationReminder | None:
        """The earliest reminder due by `now`, held until `hold_until` (its time is set to it),
        or None. Of several nodes claiming at once, each reminder goes to exactly one. The
        claimer deletes it once sent; if the claimer dies first, it comes due again when the
        hold ends, so a reminder is never lost (and at worst sent twice)."""

    @abc.abstractmethod
    async def move_invitation_reminder(self, appointment_id: int, remind_at: dt.datetime) -> bool:
        """Set a pending reminder's time (the appointment moved); whether there was one."""

    @abc.abstractmethod
    async def delete_invitation_reminder(self, appointment_id: int) -> bool: ...

    # statistics and purge

    @abc.abstractmethod
    async def record_session_statistic(
        self, therapist_id: int, session_date: dt.date, duration_seconds: int
    ) -> SessionStatistic: ...

    @abc.abstractmethod
    async def list_session_statistics(self, therapist_id: int) -> list[SessionStatistic]: ...

    @abc.abstractmethod
    async def list_all_session_statistics(self) -> list[SessionStatistic]:
        """Every therapist's, by date: the admin's usage report."""

    @abc.abstractmethod
    async def purge(self, now: dt.datetime, retention_days: int) -> PurgeResult:
        """Clear personal data of appointments whose `valid_until` < `now` (their crisis cards
        are deleted) and delete statistics, audit entries, health counters and consent records
        dated more than `retention_days` before `now`'s date, and expired password links."""

    # administration (issue #13)

    @abc.abstractmethod
    async def set_therapist_admin(self, username: str, admin: bool) -> None:
        """Grant or take the admin role; raise `NotFound` for an unknown username."""

    @abc.abstractmethod
    async def get_therapist_by_external_id(self, external_id: str) -> Therapist | None: ...

    @abc.abstractmethod
    async def provision_therapist(
        self, external_id: str, username: str, display_name: str | None, password_hash: str
    ) -> tuple[Therapist, bool]:
        """The account with this external id, its username and display name set (it is created
        with `password_hash` if there is none); and whether it was created. Raise
        `AlreadyExists` when `username` belongs to another account."""

    @abc.abstractmethod
    async def create_password_link(
        self, therapist_id: int, token_hash: str, now: dt.datetime, expires_at: dt.datetime
    ) -> None:
        """Store a one-time set-password link; the therapist's older links die."""

    @abc.abstractmethod
    async def redeem_password_link(
        self, token_hash: str, now: dt.datetime, password_hash: str
    ) -> Therapist | None:
        """In one transaction: if the link exists and has not expired by `now`, delete it, set
        the password and end every login session of the account; return the account. None (and
        nothing changed) otherwise."""

    @abc.abstractmethod
    async def add_audit_entry(
        self, at: dt.datetime, actor: str, action: str, target: str | None
    ) -> AuditEntry: ...

    @abc.abstractmethod
    async def list_audit_entries(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""

    @abc.abstractmethod
    async def add_health_counts(self, day: dt.date, counts: dict[str, int]) -> None:
        """Add `counts` to the day's counters (several nodes add to the same day)."""

    @abc.abstractmethod
    async def list_health_counts(self, since: dt.date) -> list[HealthCount]:
        """Every counter of every day from `since` on, by day."""

    @abc.abstractmethod
    async def list_consent_records(self, appointment_id: int) -> list[ConsentRecord]:
        """The consents given for the appointment (one per link the client used), oldest
        first. `record_client_consent` writes them."""
