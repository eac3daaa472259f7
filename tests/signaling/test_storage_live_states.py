"""The live states a cluster's sweep reads and resets (signaling/cluster/room_sweep.py), on both
backends: which appointments are live, and a reset of one that exactly one of two racing
callers wins."""

from __future__ import annotations

import asyncio

from signaling.storage import AppointmentState
from tests import storage_backends
from tests.signaling.test_storage import make_appointment

storage_backend = storage_backends.storage_backend
storage = storage_backends.storage


async def test_live_appointments_are_the_waiting_and_in_call_ones(storage):
    therapist = await storage.add_therapist("alice", "hash-a")
    states = [AppointmentState.SCHEDULED, AppointmentState.WAITING, AppointmentState.IN_CALL]
    states += [AppointmentState.ENDED, AppointmentState.CANCELLED]
    ids = {}
    for state in states:
        appointment = await make_appointment(storage, therapist.id)
        await storage.update_appointment(appointment.id, state=state)
        ids[state] = appointment.id
    live = await storage.live_appointments()
    assert [a.id for a in live] == [ids[AppointmentState.WAITING], ids[AppointmentState.IN_CALL]]
    assert {a.therapist_id for a in live} == {therapist.id}


async def test_resetting_one_live_appointment_keeps_consent_and_only_one_racer_wins(storage):
    therapist = await storage.add_therapist("alice", "hash-a")
    appointment = await make_appointment(storage, therapist.id, invite_token_hash="h")
    other = await make_appointment(storage, therapist.id)
    for each in (appointment, other):
        await storage.update_appointment(
            each.id, state=AppointmentState.IN_CALL, client_binding_hash="b"
        )
    won = await asyncio.gather(*(storage.reset_live_appointment(appointment.id) for _ in "ab"))
    assert sorted(won) == [False, True]
    stored = await storage.get_appointment(appointment.id)
    assert (stored.state, stored.client_binding_hash) == (AppointmentState.SCHEDULED, "b")
    assert (await storage.get_appointment(other.id)).state is AppointmentState.IN_CALL
    await storage.update_appointment(other.id, state=AppointmentState.ENDED)
    assert not await storage.reset_live_appointment(other.id)  # not live: left alone
    assert (await storage.get_appointment(other.id)).state is AppointmentState.ENDED
