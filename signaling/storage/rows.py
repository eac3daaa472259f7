"""What both backends share below the interface: times as column values, and rows as models.

Both schemas keep times as UTC ISO-8601 text with second precision and a Z suffix, so text order
is time order and one set of migrations serves both databases (`migrations/`). A row is anything
indexed by column name: sqlite3.Row or psycopg's dict rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from signaling.storage.base import (
    APPOINTMENT_UPDATABLE_FIELDS,
    ApiKey,
    Appointment,
    AppointmentState,
    AuditEntry,
    ConsentRecord,
    HealthCount,
    InvitationReminder,
    LoginSession,
    SessionStatistic,
    Therapist,
    TotpEnrolment,
)

__all__ = [
    "PURGED_FIELDS",
    "RETENTION_MONTHS_AT_MOST",
    "api_key_from_row",
    "appointment_column_value",
    "appointment_from_row",
    "audit_entry_from_row",
    "check_changes",
    "consent_record_from_row",
    "format_time",
    "health_count_from_row",
    "invitation_reminder_from_row",
    "login_session_from_row",
    "now_text",
    "optional_time",
    "parse_time",
    "retention_cutoff",
    "statistic_from_row",
    "therapist_from_row",
    "totp_enrolment_from_row",
]

Row = Mapping[str, Any]

# Personal data cleared by `purge`: everything that could identify the client or the session's
# content. What remains is therapist, times, duration and state.
PURGED_FIELDS = (
    "note",
    "client_display_name",
    "client_binding_hash",
    "terms_version",
    "consent_at",
    "invite_token_hash",
)

_TIME_FIELDS = frozenset(
    {"starts_at", "opens_at", "valid_until", "consent_at", "both_present_at", "ended_at"}
)


def format_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime; use timezone-aware UTC times")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def optional_time(text: str | None) -> dt.datetime | None:
    return None if text is None else parse_time(text)


def now_text() -> str:
    return format_time(dt.datetime.now(dt.UTC))


def check_changes(changes: dict[str, object]) -> None:
    """`TypeError` for fields `update_appointment` may not change, or for no change at all: a
    caller's bug, caught before any query."""
    unknown = sorted(set(changes) - APPOINTMENT_UPDATABLE_FIELDS)
    if unknown:
        raise TypeError(f"update_appointment: cannot change {', '.join(unknown)}")
    if not changes:
        raise TypeError("update_appointment: nothing to change")


def appointment_column_value(column: str, value: object) -> object:
    if column in _TIME_FIELDS and value is not None:
        return format_time(value)  # type: ignore[arg-type]
    if isinstance(value, AppointmentState):
        return value.value
    if column == "state":
        return AppointmentState(value).value
    return value


def therapist_from_row(row: Row) -> Therapist:
    return Therapist(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        disabled=bool(row["disabled"]),
        created_at=parse_time(row["created_at"]),
        is_admin=bool(row["is_admin"]),
        external_id=row["external_id"],
        display_name=row["display_name"],
    )


def login_session_from_row(row: Row) -> LoginSession:
    return LoginSession(
        id=row["id"],
        token_hash=row["token_hash"],
        therapist_id=row["therapist_id"],
        csrf_token=row["csrf_token"],
        created_at=parse_time(row["created_at"]),
        last_seen_at=parse_time(row["last_seen_at"]),
        expires_at=parse_time(row["expires_at"]),
    )


def api_key_from_row(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        created_at=parse_time(row["created_at"]),
        revoked_at=optional_time(row["revoked_at"]),
    )


def statistic_from_row(row: Row) -> SessionStatistic:
    return SessionStatistic(
        id=row["id"],
        therapist_id=row["therapist_id"],
        session_date=dt.date.fromisoformat(row["session_date"]),
        duration_seconds=row["duration_seconds"],
    )


def appointment_from_row(row: Row) -> Appointment:
    return Appointment(
        id=row["id"],
        therapist_id=row["therapist_id"],
        starts_at=parse_time(row["starts_at"]),
        duration_minutes=row["duration_minutes"],
        opens_at=parse_time(row["opens_at"]),
        valid_until=parse_time(row["valid_until"]),
        note=row["note"],
        invite_token_hash=row["invite_token_hash"],
        client_display_name=row["client_display_name"],
        client_binding_hash=row["client_binding_hash"],
        terms_version=row["terms_version"],
        consent_at=optional_time(row["consent_at"]),
        state=AppointmentState(row["state"]),
        both_present_at=optional_time(row["both_present_at"]),
        ended_at=optional_time(row["ended_at"]),
        purged_at=optional_time(row["purged_at"]),
        created_at=parse_time(row["created_at"]),
    )


def audit_entry_from_row(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=parse_time(row["at"]),
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
    )


def health_count_from_row(row: Row) -> HealthCount:
    return HealthCount(
        day=dt.date.fromisoformat(row["day"]), counter=row["counter"], value=row["value"]
    )


def consent_record_from_row(row: Row) -> ConsentRecord:
    return ConsentRecord(
        id=row["id"],
        appointment_id=row["appointment_id"],
        terms_version=row["terms_version"],
        consent_at=parse_time(row["consent_at"]),
    )


def totp_enrolment_from_row(row: Row) -> TotpEnrolment:
    return TotpEnrolment(
        therapist_id=row["therapist_id"],
        secret_sealed=row["secret_sealed"],
        confirmed_at=optional_time(row["confirmed_at"]),
        last_used_step=row["last_used_step"],
    )


def invitation_reminder_from_row(row: Row) -> InvitationReminder:
    return InvitationReminder(
        appointment_id=row["appointment_id"],
        email=row["email"],
        remind_at=parse_time(row["remind_at"]),
        link_sealed=row["link_sealed"],
    )


# Session dates, health counts and consent proofs are kept for `privacy.statistics_retention_days`
# (at most 92, so a whole quarter fits for the KV billing), but never longer than three calendar
# months: 92 days reach back past three months when February is among them (Jan 31 -> Apr 30
# is only 89 days).
RETENTION_MONTHS_AT_MOST = 3


def retention_cutoff(now: dt.datetime, retention_days: int) -> dt.date:
    """The first day still kept: `retention_days` back from `now`'s UTC date, but no further
    back than the same day three calendar months earlier. Where that day does not exist (30 May
    -> "30 February"), the first of the next month: 28 February plus three months is 28 May,
    already past on 30 May."""
    today = now.astimezone(dt.UTC).date()
    by_days = today - dt.timedelta(days=retention_days)
    year, month_index = divmod(today.year * 12 + today.month - 1 - RETENTION_MONTHS_AT_MOST, 12)
    month = month_index + 1
    first_of_next = dt.date(year + month // 12, month % 12 + 1, 1)
    last_day = (first_of_next - dt.timedelta(days=1)).day
    by_months = dt.date(year, month, today.day) if today.day <= last_day else first_of_next
    return max(by_days, by_months)
