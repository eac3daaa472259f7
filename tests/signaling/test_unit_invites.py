"""The invite link's rules: status by time and state, access per browser, binding, names."""

from __future__ import annotations

import datetime as dt

import pytest

from signaling.credentials import hash_token, new_token
from signaling.invites import (
    MAX_DISPLAY_NAME_LENGTH,
    InviteAccess,
    InviteStatus,
    binding_matches,
    clean_display_name,
    find_invite,
    invite_access,
    invite_status,
    record_consent,
    usable_for_page,
)
from signaling.storage import Appointment, AppointmentState

NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def appointment(**changes) -> Appointment:
    fields = {
        "id": 1,
        "therapist_id": 1,
        "starts_at": NOW,
        "duration_minutes": 50,
        "opens_at": NOW - 15 * MINUTE,
        "valid_until": NOW + 120 * MINUTE,
        "note": None,
        "invite_token_hash": hash_token(new_token()),
        "client_display_name": None,
        "client_binding_hash": None,
        "terms_version": None,
        "consent_at": None,
        "state": AppointmentState.SCHEDULED,
        "both_present_at": None,
        "ended_at": None,
        "purged_at": None,
        "created_at": NOW - dt.timedelta(days=3),
    }
    return Appointment(**{**fields, **changes})


def bound_to(secret: str, **changes) -> Appointment:
    return appointment(client_binding_hash=hash_token(secret), **changes)


# --- status


def test_status_is_not_yet_open_before_opens_at():
    assert invite_status(appointment(), NOW - 16 * MINUTE) is InviteStatus.NOT_YET_OPEN


def test_status_is_open_from_opens_at():
    assert invite_status(appointment(), NOW - 15 * MINUTE) is InviteStatus.OPEN


def test_status_is_expired_from_valid_until():
    assert invite_status(appointment(), NOW + 120 * MINUTE) is InviteStatus.EXPIRED


def test_status_is_expired_once_the_session_ended_even_within_the_window():
    ended = appointment(state=AppointmentState.ENDED)
    assert invite_status(ended, NOW) is InviteStatus.EXPIRED


@pytest.mark.parametrize("state", [AppointmentState.WAITING, AppointmentState.IN_CALL])
def test_status_is_open_while_the_room_is_in_use(state):
    assert invite_status(appointment(state=state), NOW) is InviteStatus.OPEN


def test_status_is_cancelled_for_a_cancelled_appointment_at_any_time():
    cancelled = appointment(state=AppointmentState.CANCELLED)
    assert invite_status(cancelled, NOW - dt.timedelta(days=1)) is InviteStatus.CANCELLED
    assert invite_status(cancelled, NOW + dt.timedelta(days=1)) is InviteStatus.CANCELLED


# --- access


def test_no_appointment_is_invalid():
    assert invite_access(None, None, NOW) is InviteAccess.INVALID


def test_unbound_open_link_is_ok_for_any_browser():
    assert invite_access(appointment(), None, NOW) is InviteAccess.OK


def test_bound_link_is_ok_for_the_bound_browser():
    secret = new_token()
    assert invite_access(bound_to(secret), secret, NOW) is InviteAccess.OK


@pytest.mark.parametrize("cookie", [None, "", new_token(), "x" * 43])
def test_bound_link_is_used_for_any_other_browser(cookie):
    assert invite_access(bound_to(new_token()), cookie, NOW) is InviteAccess.USED


def test_bound_link_before_opening_is_used_for_another_browser():
    early = NOW - 20 * MINUTE
    assert invite_access(bound_to(new_token()), None, early) is InviteAccess.USED


def test_unbound_link_before_opening_is_not_yet_open():
    assert invite_access(appointment(), None, NOW - 20 * MINUTE) is InviteAccess.NOT_YET_OPEN


def test_expired_wins_over_used():
    late = NOW + 121 * MINUTE
    assert invite_access(bound_to(new_token()), None, late) is InviteAccess.EXPIRED


def test_cancelled_link_is_cancelled():
    cancelled = appointment(state=AppointmentState.CANCELLED)
    assert invite_access(cancelled, None, NOW) is InviteAccess.CANCELLED


@pytest.mark.parametrize(
    ("access", "shown"),
    [
        (InviteAccess.OK, True),
        (InviteAccess.NOT_YET_OPEN, True),
        (InviteAccess.INVALID, False),
        (InviteAccess.USED, False),
        (InviteAccess.EXPIRED, False),
        (InviteAccess.CANCELLED, False),
    ],
)
def test_page_is_shown_only_for_ok_and_not_yet_open(access, shown):
    assert usable_for_page(access) is shown


# --- binding


def test_binding_matches_the_secret_whose_hash_is_stored():
    secret = new_token()
    assert binding_matches(bound_to(secret), secret)


def test_binding_does_not_match_another_secret_or_none():
    bound = bound_to(new_token())
    assert not binding_matches(bound, new_token())
    assert not binding_matches(bound, None)


def test_an_unbound_link_matches_no_cookie():
    assert not binding_matches(appointment(), new_token())


def test_the_stored_hash_itself_is_no_key():
    secret = new_token()
    bound = bound_to(secret)
    assert not binding_matches(bound, bound.client_binding_hash)


# --- finding a link


@pytest.fixture
async def alices_appointment(storage):
    therapist = await storage.add_therapist("alice", "x")
    token = new_token()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    created = await storage.create_appointment(
        therapist.id,
        now,
        50,
        now - 15 * MINUTE,
        now + 120 * MINUTE,
        invite_token_hash=hash_token(token),
    )
    return token, created


async def test_find_invite_finds_the_appointment_by_its_token(storage, alices_appointment):
    token, created = alices_appointment
    assert (await find_invite(storage, token)).id == created.id


@pytest.mark.parametrize(
    "token", ["", "short", new_token(), "a" * 42, "a" * 44, "a" * 42 + "!", "ä" * 43]
)
async def test_find_invite_returns_none_for_unknown_or_malformed_tokens(
    storage, alices_appointment, token
):
    assert await find_invite(storage, token) is None


# --- consent


async def test_first_consent_binds_a_fresh_secret_and_stores_only_its_hash(
    storage, alices_appointment
):
    _, created = alices_appointment
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    consent = await record_consent(storage, created, None, "Anna", "2026-11", now)
    stored = await storage.get_appointment(created.id)
    assert stored.client_binding_hash == hash_token(consent.binding_secret)
    assert (stored.client_display_name, stored.terms_version, stored.consent_at) == (
        "Anna",
        "2026-11",
        now,
    )
    assert consent.cookie_expires == created.valid_until


async def test_consent_again_from_the_bound_browser_keeps_the_binding_and_changes_the_name(
    storage, alices_appointment
):
    _, created = alices_appointment
    now = dt.datetime.now(dt.UTC)
    first = await record_consent(storage, created, None, "Anna", "2026-11", now)
    again = await record_consent(
        storage, first.appointment, first.binding_secret, "Anna M.", "2026-11", now
    )
    assert again.binding_secret == first.binding_secret
    assert again.appointment.client_display_name == "Anna M."


async def test_consent_from_another_browser_is_refused(storage, alices_appointment):
    _, created = alices_appointment
    now = dt.datetime.now(dt.UTC)
    first = await record_consent(storage, created, None, "Anna", "2026-11", now)
    assert await record_consent(storage, first.appointment, None, "Eve", "2026-11", now) is None
    assert await record_consent(storage, created, new_token(), "Eve", "2026-11", now) is None
    stored = await storage.get_appointment(created.id)
    assert stored.client_display_name == "Anna"


async def test_of_two_browsers_racing_on_a_stale_read_only_one_binds(storage, alices_appointment):
    _, created = alices_appointment
    now = dt.datetime.now(dt.UTC)
    # Both read the unbound appointment before either wrote.
    first = await record_consent(storage, created, None, "Anna", "2026-11", now)
    second = await record_consent(storage, created, None, "Eve", "2026-11", now)
    assert first is not None and second is None


async def test_consent_after_a_reissue_of_the_link_is_refused(storage, alices_appointment):
    _, created = alices_appointment
    await storage.update_appointment(created.id, invite_token_hash=hash_token(new_token()))
    assert await record_consent(storage, created, None, None, "2026-11", NOW) is None


async def test_a_browser_bound_to_another_live_link_keeps_its_secret_and_the_later_expiry(
    storage, alices_appointment
):
    _, today = alices_appointment
    tomorrow = await storage.create_appointment(
        today.therapist_id,
        today.starts_at + dt.timedelta(days=1),
        50,
        today.opens_at + dt.timedelta(days=1),
        today.valid_until + dt.timedelta(days=1),
        invite_token_hash=hash_token(new_token()),
    )
    now = dt.datetime.now(dt.UTC)
    first = await record_consent(storage, tomorrow, None, None, "2026-11", now)
    second = await record_consent(storage, today, first.binding_secret, None, "2026-11", now)
    assert second.binding_secret == first.binding_secret
    assert second.cookie_expires == tomorrow.valid_until


async def test_an_unknown_cookie_secret_is_not_adopted(storage, alices_appointment):
    _, created = alices_appointment
    planted = new_token()
    consent = await record_consent(storage, created, planted, None, "2026-11", NOW)
    assert consent.binding_secret != planted


# --- display names


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Anna   Müller ", "Anna Müller"),
        ("Anna\nMüller\t", "Anna Müller"),
        ("An\x00na\x1b[31m", "Anna[31m"),
        ("Anna\u202eabc\u202c", "Annaabc"),
        ("\u2066Anna\u2069 \u200bM", "Anna M"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("Zoe\u0301", "Zoé"),
    ],
)
def test_display_name_is_trimmed_collapsed_and_freed_of_control_characters(raw, clean):
    assert clean_display_name(raw) == clean


@pytest.mark.parametrize("raw", [None, "", "   ", "\u202e\u200b", "\t\n"])
def test_empty_display_name_is_none(raw):
    assert clean_display_name(raw) is None


def test_display_name_is_cut_to_the_maximum_length():
    assert clean_display_name("a" * 61) == "a" * MAX_DISPLAY_NAME_LENGTH
    assert clean_display_name("a" * 59 + " b") == "a" * 59


@pytest.mark.parametrize("raw", [1, True, ["Anna"], {"name": "Anna"}])
def test_display_name_that_is_no_string_is_refused(raw):
    with pytest.raises(ValueError):
        clean_display_name(raw)
