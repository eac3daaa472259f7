"""Appointment rules: input validation, the join window, invite links, and the JSON shape.

Shared by the therapist API and the integration API, so both accept and refuse the same input.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from signaling.config import Config
from signaling.credentials import hash_token, new_token
from signaling.http_errors import ApiError
from signaling.storage import Appointment, AppointmentState, Storage

__all__ = [
    "MAX_NOTE_LENGTH",
    "AppointmentInput",
    "Invite",
    "appointment_json",
    "create_appointment",
    "ensure_cancellable",
    "ensure_changeable",
    "invite_url",
    "mint_invite",
    "parse_changes",
    "parse_new_appointment",
    "window",
]

MAX_NOTE_LENGTH = 2000
MIN_DURATION_MINUTES = 5
MAX_DURATION_MINUTES = 240
# Practices plan a year ahead at most; a later date is almost certainly a typo (2062 for 2026).
MAX_LEAD_TIME = dt.timedelta(days=366)


@dataclass(frozen=True)
class AppointmentInput:
    starts_at: dt.datetime
    duration_minutes: int
    note: str | None
    # the client confirms where they are and an emergency phone number before joining
    crisis_card: bool = False


@dataclass(frozen=True)
class Invite:
    """An invite link. `url` holds the token and exists only in the response that shows it."""

    url: str
    token_hash: str


def window(config: Config, starts_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """When the invite link opens and until when it is valid."""
    rules = config.appointments
    return (
        starts_at - dt.timedelta(minutes=rules.open_before_minutes),
        starts_at + dt.timedelta(minutes=rules.valid_after_start_minutes),
    )


def invite_url(config: Config, token: str) -> str:
    return f"{config.server.public_url}/j/{token}"


def mint_invite(config: Config) -> Invite:
    token = new_token()
    return Invite(url=invite_url(config, token), token_hash=hash_token(token))


def parse_new_appointment(config: Config, body: dict[str, Any]) -> AppointmentInput:
    """Validate a create request; raise `ApiError` 400 naming the bad field."""
    _reject_unknown(body, {"starts_at", "duration_minutes", "note", "crisis_card"})
    if "starts_at" not in body:
        raise _invalid("starts_at is required")
    starts_at = _starts_at(config, body["starts_at"])
    duration = body.get("duration_minutes", config.appointments.default_duration_minutes)
    return AppointmentInput(
        starts_at,
        _duration(duration),
        _note(body.get("note")),
        _crisis_card(body.get("crisis_card", False)),
    )


def parse_changes(config: Config, body: dict[str, Any]) -> dict[str, Any]:
    """Validate an edit request; return the fields to change (window included). `crisis_card`
    is no column of the appointment: the caller switches the card itself."""
    _reject_unknown(body, {"starts_at", "duration_minutes", "note", "crisis_card"})
    if not body:
        raise _invalid("Nothing to change: send starts_at, duration_minutes, note or crisis_card")
    changes: dict[str, Any] = {}
    if "starts_at" in body:
        starts_at = _starts_at(config, body["starts_at"])
        changes["starts_at"] = starts_at
        changes["opens_at"], changes["valid_until"] = window(config, starts_at)
    if "duration_minutes" in body:
        changes["duration_minutes"] = _duration(body["duration_minutes"])
    if "note" in body:
        changes["note"] = _note(body["note"])
    if "crisis_card" in body:
        changes["crisis_card"] = _crisis_card(body["crisis_card"])
    return changes


async def create_appointment(
    config: Config, storage: Storage, therapist_id: int, data: AppointmentInput
) -> tuple[Appointment, Invite]:
    invite = mint_invite(config)
    opens_at, valid_until = window(config, data.starts_at)
    appointment = await storage.create_appointment(
        therapist_id,
        data.starts_at,
        data.duration_minutes,
        opens_at,
        valid_until,
        note=data.note,
        invite_token_hash=invite.token_hash,
    )
    if data.crisis_card:
        await storage.set_crisis_card(appointment.id, True)
    return appointment, invite


def ensure_changeable(appointment: Appointment) -> None:
    """Only scheduled appointments may be edited or get a new link; raise 409 otherwise."""
    if appointment.state is not AppointmentState.SCHEDULED:
        raise ApiError(409, "conflict", f"The appointment is {appointment.state.value}")
    if appointment.purged_at is not None:
        raise ApiError(409, "conflict", "The appointment has passed")


def ensure_cancellable(appointment: Appointment) -> None:
    """A therapist can cancel at any time before the end, a live call included: a leaked link
    must always be killable. Raise 409 only when it is over already (its link is dead then)."""
    if appointment.state is AppointmentState.ENDED:
        raise ApiError(409, "conflict", "The appointment has ended")
    if appointment.purged_at is not None:
        raise ApiError(409, "conflict", "The appointment has passed")


def appointment_json(
    appointment: Appointment, include_note: bool = True, crisis_card: bool | None = None
) -> dict[str, Any]:
    """The public view of an appointment. Never the invite token or its hash, nor what the
    client wrote on the crisis card; `crisis_card` (whether it is on) where the caller knows."""
    data: dict[str, Any] = {
        "id": appointment.id,
        "starts_at": _iso(appointment.starts_at),
        "duration_minutes": appointment.duration_minutes,
        "opens_at": _iso(appointment.opens_at),
        "valid_until": _iso(appointment.valid_until),
        "state": appointment.state.value,
        "has_invite": appointment.invite_token_hash is not None,
    }
    if include_note:
        data["note"] = appointment.note
    if crisis_card is not None:
        data["crisis_card"] = crisis_card
    return data


# --- field checks


def _starts_at(config: Config, value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise _invalid("starts_at must be an ISO 8601 string with a UTC offset")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _invalid("starts_at must be an ISO 8601 date and time with a UTC offset") from None
    if parsed.tzinfo is None:
        # A bare local time is ambiguous: the server's zone need not be the practice's.
        raise _invalid("starts_at needs a UTC offset, e.g. 2026-03-02T09:00:00+01:00")
    # Storage keeps whole seconds.
    starts_at = parsed.astimezone(dt.UTC).replace(microsecond=0)
    now = dt.datetime.now(dt.UTC)
    if window(config, starts_at)[1] <= now:
        raise _invalid("starts_at is so far in the past that the link would already be invalid")
    if starts_at > now + MAX_LEAD_TIME:
        raise _invalid("starts_at must be at most one year ahead")
    return starts_at


def _duration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid("duration_minutes must be an integer")
    if not MIN_DURATION_MINUTES <= value <= MAX_DURATION_MINUTES:
        raise _invalid(
            f"duration_minutes must be between {MIN_DURATION_MINUTES} and {MAX_DURATION_MINUTES}"
        )
    return value


def _note(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid("note must be a string or null")
    if len(value) > MAX_NOTE_LENGTH:
        raise _invalid(f"note must be at most {MAX_NOTE_LENGTH} characters")
    return value or None


def _crisis_card(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid("crisis_card must be true or false")
    return value


def _reject_unknown(body: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise _invalid(f"Unknown field: {unknown[0]}")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
