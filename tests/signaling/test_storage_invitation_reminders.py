"""Storage of pending invitation reminders beyond migration 0005's basics: the sealed link kept
with the address, claiming due reminders once across nodes and holding them while they are sent, moving one with its appointment, and
cancelling deleting it -- on both backends (tests/storage_backends.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

from tests import storage_backends
from tests.storage_backends import START, make_appointment

storage_backend = storage_backends.storage_backend
storage = storage_backends.storage
therapist = storage_backends.therapist

ADDRESS = "client@example.org"


async def appointment_at(storage, therapist_id, starts_at=START):
    """With an invite, as an appointment whose invitation went out by e-mail has."""
    return await make_appointment(
        storage, therapist_id, starts_at, invite_token_hash=f"hash-{starts_at.isoformat()}"
    )


async def test_a_reminder_keeps_its_sealed_link_and_a_new_one_replaces_it(storage, therapist):
    appointment = await appointment_at(storage, therapist.id)
    await storage.add_invitation_reminder(appointment.id, ADDRESS, START, "v1.sealed-one")
    await storage.add_invitation_reminder(appointment.id, ADDRESS, START, "v1.sealed-two")
    (due,) = await storage.due_invitation_reminders(START)
    assert due.link_sealed == "v1.sealed-two"


async def test_a_reminder_without_a_link_has_none(storage, therapist):
    appointment = await appointment_at(storage, therapist.id)
    await storage.add_invitation_reminder(appointment.id, ADDRESS, START)
    (due,) = await storage.due_invitation_reminders(START)
    assert due.link_sealed is None


HOLD = START + dt.timedelta(minutes=6)  # how long a claimer keeps a reminder to itself


async def claim_all(storage, now=START, hold_until=HOLD):
    claimed = []
    while reminder := await storage.claim_due_invitation_reminder(now, hold_until):
        claimed.append(reminder)
    return claimed


async def test_claiming_takes_the_due_reminders_once_earliest_first(storage, therapist):
    later = await appointment_at(storage, therapist.id, START + dt.timedelta(hours=2))
    first = await appointment_at(storage, therapist.id, START + dt.timedelta(hours=1))
    not_yet = await appointment_at(storage, therapist.id, START + dt.timedelta(days=1))
    await storage.add_invitation_reminder(later.id, ADDRESS, START, "v1.later")
    await storage.add_invitation_reminder(first.id, ADDRESS, START - dt.timedelta(minutes=1))
    await storage.add_invitation_reminder(not_yet.id, ADDRESS, START + dt.timedelta(hours=20))

    claimed = await claim_all(storage)
    assert [(r.appointment_id, r.email, r.link_sealed, r.remind_at) for r in claimed] == [
        (first.id, ADDRESS, None, HOLD),
        (later.id, ADDRESS, "v1.later", HOLD),
    ]
    # held: a second claim before the hold ends finds nothing
    assert await storage.claim_due_invitation_reminder(START, HOLD) is None
    # sent and deleted: gone for good, the address with it
    assert await storage.delete_invitation_reminder(first.id)
    assert await storage.delete_invitation_reminder(later.id)
    remaining = await storage.due_invitation_reminders(START + dt.timedelta(days=1))
    assert [r.appointment_id for r in remaining] == [not_yet.id]


async def test_a_reminder_whose_claimer_died_comes_due_again_when_the_hold_ends(storage, therapist):
    appointment = await appointment_at(storage, therapist.id, START + dt.timedelta(hours=1))
    await storage.add_invitation_reminder(appointment.id, ADDRESS, START, "v1.sealed")
    assert (await storage.claim_due_invitation_reminder(START, HOLD)).appointment_id == (
        appointment.id
    )
    # the claimer died before sending: nothing deleted the row
    assert await storage.claim_due_invitation_reminder(HOLD - dt.timedelta(seconds=1), HOLD) is None
    again = await storage.claim_due_invitation_reminder(HOLD, HOLD + dt.timedelta(minutes=6))
    assert (again.appointment_id, again.email, again.link_sealed) == (
        appointment.id,
        ADDRESS,
        "v1.sealed",
    )


async def test_of_two_nodes_claiming_at_once_each_reminder_goes_to_one(
    storage_backend, storage, therapist
):
    ids = []
    for hours in range(1, 21):
        appointment = await appointment_at(storage, therapist.id, START + dt.timedelta(hours=hours))
        await storage.add_invitation_reminder(appointment.id, ADDRESS, START)
        ids.append(appointment.id)
    # a second storage on the same database: another node (PostgreSQL) or worker (SQLite file)
    other = await storage_backend.open()
    try:
        rounds = await asyncio.gather(*(claim_all(node) for node in (storage, other) * 3))
    finally:
        await other.close()
    claimed = [r.appointment_id for batch in rounds for r in batch]
    assert sorted(claimed) == sorted(ids)


async def test_moving_a_reminder_changes_only_its_time(storage, therapist):
    appointment = await appointment_at(storage, therapist.id)
    await storage.add_invitation_reminder(appointment.id, ADDRESS, START, "v1.sealed")
    moved_to = START + dt.timedelta(days=1)
    assert await storage.move_invitation_reminder(appointment.id, moved_to)
    assert await storage.due_invitation_reminders(START) == []
    (due,) = await storage.due_invitation_reminders(moved_to)
    assert (due.remind_at, due.email, due.link_sealed) == (moved_to, ADDRESS, "v1.sealed")


async def test_moving_without_a_pending_reminder_says_so(storage, therapist):
    appointment = await appointment_at(storage, therapist.id)
    assert not await storage.move_invitation_reminder(appointment.id, START)


async def test_cancelling_deletes_the_pending_reminder_at_once(storage, therapist):
    cancelled = await appointment_at(storage, therapist.id)
    kept = await appointment_at(storage, therapist.id, START + dt.timedelta(hours=1))
    for appointment in (cancelled, kept):
        await storage.add_invitation_reminder(appointment.id, ADDRESS, START, "v1.sealed")
    await storage.cancel_appointment(cancelled.id)
    remaining = await storage.due_invitation_reminders(START)
    assert [r.appointment_id for r in remaining] == [kept.id]
