"""Storage of two-factor sign-in (TOTP enrolment, single-use steps, recovery codes) and of the
addresses kept for invitation reminders, on both backends (tests/storage_backends.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from signaling.storage import AlreadyExists, AppointmentState
from tests import storage_backends
from tests.storage_backends import START, make_appointment

storage_backend = storage_backends.storage_backend
storage = storage_backends.storage
therapist = storage_backends.therapist

NOW = dt.datetime(2025, 3, 10, 8, 0, tzinfo=dt.UTC)


async def test_an_enrolment_counts_only_once_confirmed(storage, therapist):
    assert await storage.get_totp(therapist.id) is None
    await storage.begin_totp(therapist.id, "sealed-1")
    enrolment = await storage.get_totp(therapist.id)
    assert enrolment.secret_sealed == "sealed-1"
    assert not enrolment.confirmed
    # a second try replaces the unconfirmed secret
    await storage.begin_totp(therapist.id, "sealed-2")
    assert (await storage.get_totp(therapist.id)).secret_sealed == "sealed-2"
    assert await storage.confirm_totp(therapist.id, 100, ["h1", "h2"], NOW)
    enrolment = await storage.get_totp(therapist.id)
    assert enrolment.confirmed
    assert enrolment.last_used_step == 100
    assert await storage.recovery_codes_left(therapist.id) == 2
    # confirmed: neither a new set-up nor a second confirmation replaces it
    with pytest.raises(AlreadyExists):
        await storage.begin_totp(therapist.id, "sealed-3")
    assert not await storage.confirm_totp(therapist.id, 101, ["h3"], NOW)
    assert (await storage.get_totp(therapist.id)).secret_sealed == "sealed-2"


async def test_a_step_is_accepted_once_and_only_after_the_last(storage, therapist):
    await storage.begin_totp(therapist.id, "sealed")
    await storage.confirm_totp(therapist.id, 100, [], NOW)
    assert not await storage.use_totp_step(therapist.id, 100)
    assert not await storage.use_totp_step(therapist.id, 99)
    assert await storage.use_totp_step(therapist.id, 101)
    assert not await storage.use_totp_step(therapist.id, 101)


async def test_of_two_requests_with_one_code_exactly_one_passes(storage, therapist):
    await storage.begin_totp(therapist.id, "sealed")
    await storage.confirm_totp(therapist.id, 100, [], NOW)
    results = await asyncio.gather(*(storage.use_totp_step(therapist.id, 101) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]


async def test_a_recovery_code_works_once(storage, therapist):
    await storage.begin_totp(therapist.id, "sealed")
    await storage.confirm_totp(therapist.id, 100, ["h1", "h2"], NOW)
    assert await storage.use_recovery_code(therapist.id, "h1", NOW)
    assert not await storage.use_recovery_code(therapist.id, "h1", NOW)
    assert not await storage.use_recovery_code(therapist.id, "unknown", NOW)
    assert await storage.recovery_codes_left(therapist.id) == 1
    await storage.replace_recovery_codes(therapist.id, ["h3"])
    assert not await storage.use_recovery_code(therapist.id, "h2", NOW)
    assert await storage.use_recovery_code(therapist.id, "h3", NOW)


async def test_deleting_removes_the_authenticator_and_its_codes(storage, therapist):
    await storage.begin_totp(therapist.id, "sealed")
    await storage.confirm_totp(therapist.id, 100, ["h1"], NOW)
    assert await storage.delete_totp(therapist.id)
    assert await storage.get_totp(therapist.id) is None
    assert not await storage.use_recovery_code(therapist.id, "h1", NOW)
    assert not await storage.delete_totp(therapist.id)


async def test_reminders_are_due_at_their_time_and_go_when_deleted(storage, therapist):
    appointment = await make_appointment(storage, therapist.id)
    remind_at = START - dt.timedelta(hours=1)
    await storage.add_invitation_reminder(appointment.id, "client@example.org", remind_at)
    assert await storage.due_invitation_reminders(remind_at - dt.timedelta(seconds=1)) == []
    (due,) = await storage.due_invitation_reminders(remind_at)
    assert (due.appointment_id, due.email) == (appointment.id, "client@example.org")
    assert await storage.delete_invitation_reminder(appointment.id)
    assert await storage.due_invitation_reminders(START) == []


async def test_the_purge_deletes_the_addresses_with_the_names(storage, therapist):
    past = await make_appointment(storage, therapist.id, START - dt.timedelta(days=1))
    cancelled = await make_appointment(storage, therapist.id, START + dt.timedelta(days=1))
    future = await make_appointment(storage, therapist.id, START + dt.timedelta(days=2))
    await storage.update_appointment(cancelled.id, state=AppointmentState.CANCELLED)
    for appointment in (past, cancelled, future):
        await storage.add_invitation_reminder(appointment.id, "client@example.org", START)
    await storage.purge(START, 90)
    remaining = await storage.due_invitation_reminders(START + dt.timedelta(days=3))
    assert [r.appointment_id for r in remaining] == [future.id]
