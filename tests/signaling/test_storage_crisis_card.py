"""Storage of the crisis card (per appointment) and the therapist's arrival-alert setting, on a
real SQLite file: defaults, switching, filling, and the purge that leaves no trace of the card."""

from __future__ import annotations

import datetime as dt

from signaling.storage import CrisisCard, TherapistSettings
from tests import storage_backends
from tests.storage_backends import make_appointment

# the `storage` here is tests/signaling/conftest.py's: a SQLite file, whose bytes a test reads
therapist = storage_backends.therapist

LOCATION = "Gartenweg 17, Hinterhaus, 2. OG, 37073 Göttingen"
PHONE = "+49 551 1234567"


async def test_the_arrival_alert_is_on_until_the_therapist_turns_it_off(storage, therapist):
    assert await storage.get_therapist_settings(therapist.id) == TherapistSettings(
        arrival_alert=True
    )
    await storage.set_therapist_settings(therapist.id, TherapistSettings(arrival_alert=False))
    assert (await storage.get_therapist_settings(therapist.id)).arrival_alert is False
    await storage.set_therapist_settings(therapist.id, TherapistSettings(arrival_alert=True))
    assert (await storage.get_therapist_settings(therapist.id)).arrival_alert is True


async def test_an_appointment_has_no_crisis_card_until_it_is_switched_on(storage, therapist):
    appointment = await make_appointment(storage, therapist.id)
    assert await storage.get_crisis_card(appointment.id) is None
    assert await storage.crisis_card_appointments(therapist.id) == set()
    await storage.set_crisis_card(appointment.id, True)
    assert await storage.get_crisis_card(appointment.id) == CrisisCard(None, None)
    assert await storage.crisis_card_appointments(therapist.id) == {appointment.id}


async def test_the_client_fills_the_card_and_switching_it_on_again_keeps_it(storage, therapist):
    appointment = await make_appointment(storage, therapist.id)
    assert not await storage.fill_crisis_card(appointment.id, LOCATION, PHONE), (
        "a card that is not switched on must not be filled"
    )
    await storage.set_crisis_card(appointment.id, True)
    assert await storage.fill_crisis_card(appointment.id, LOCATION, PHONE)
    await storage.set_crisis_card(appointment.id, True)
    assert await storage.get_crisis_card(appointment.id) == CrisisCard(LOCATION, PHONE)
    await storage.set_crisis_card(appointment.id, False)
    assert await storage.get_crisis_card(appointment.id) is None


async def test_the_purge_leaves_no_trace_of_the_crisis_card_in_the_file(storage, therapist):
    appointment = await make_appointment(storage, therapist.id)
    await storage.set_crisis_card(appointment.id, True)
    await storage.fill_crisis_card(appointment.id, LOCATION, PHONE)
    await storage.purge(appointment.valid_until + dt.timedelta(seconds=1), retention_days=90)
    assert await storage.get_crisis_card(appointment.id) is None
    files = sorted(storage.path.parent.glob(storage.path.name + "*"))
    on_disk = b"".join(path.read_bytes() for path in files)
    assert LOCATION.encode() not in on_disk and PHONE.encode() not in on_disk


async def test_the_purge_keeps_the_card_of_an_appointment_still_valid(storage, therapist):
    appointment = await make_appointment(storage, therapist.id)
    await storage.set_crisis_card(appointment.id, True)
    await storage.fill_crisis_card(appointment.id, LOCATION, PHONE)
    await storage.purge(appointment.valid_until, retention_days=90)
    assert await storage.get_crisis_card(appointment.id) == CrisisCard(LOCATION, PHONE)
