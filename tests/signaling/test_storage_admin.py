"""Storage for issue #13 on both backends: the admin role, provisioning by external id, one-time
set-password links, the audit log, daily health counters and consent records, and their purge
after the retention period."""

from __future__ import annotations

import datetime as dt

import pytest

from signaling.storage import AlreadyExists, NotFound
from tests import storage_backends
from tests.storage_backends import make_appointment

# every test below runs on each backend (tests/storage_backends.py)
storage_backend = storage_backends.storage_backend
storage = storage_backends.storage
therapist = storage_backends.therapist

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


async def appointment_with_consent(storage, therapist_id, consent_at):
    appointment = await make_appointment(
        storage,
        therapist_id,
        consent_at + dt.timedelta(minutes=10),
        invite_token_hash=f"invite-{consent_at.isoformat()}",
    )
    consented = await storage.record_client_consent(
        appointment.id,
        f"invite-{consent_at.isoformat()}",
        "binding",
        "Erika Mustermann",
        "2026-11",
        consent_at,
    )
    assert consented is not None
    return appointment


# admin role


async def test_a_new_account_is_no_admin_until_granted_and_the_role_can_be_taken(
    storage, therapist
):
    assert therapist.is_admin is False
    await storage.set_therapist_admin("alice", True)
    assert (await storage.get_therapist("alice")).is_admin is True
    await storage.set_therapist_admin("alice", False)
    assert (await storage.get_therapist("alice")).is_admin is False


async def test_granting_admin_to_an_unknown_account_is_not_found(storage):
    with pytest.raises(NotFound):
        await storage.set_therapist_admin("nobody", True)


# provisioning


async def test_provisioning_creates_once_and_then_updates_by_external_id(storage):
    first, created = await storage.provision_therapist("portal-17", "mueller", "Dr. Müller", "h")
    assert created is True
    assert (first.username, first.external_id, first.display_name) == (
        "mueller",
        "portal-17",
        "Dr. Müller",
    )
    again, created = await storage.provision_therapist("portal-17", "mueller2", "Dr. M.", "h2")
    assert created is False
    assert again.id == first.id
    assert (again.username, again.display_name, again.password_hash) == ("mueller2", "Dr. M.", "h")
    assert (await storage.get_therapist_by_external_id("portal-17")).id == first.id
    assert await storage.get_therapist_by_external_id("portal-18") is None


async def test_provisioning_a_username_of_another_account_is_already_exists(storage, therapist):
    with pytest.raises(AlreadyExists):
        await storage.provision_therapist("portal-1", "alice", None, "h")
    await storage.provision_therapist("portal-2", "bob", None, "h")
    with pytest.raises(AlreadyExists):
        await storage.provision_therapist("portal-2", "alice", None, "h")
    assert (await storage.get_therapist_by_external_id("portal-2")).username == "bob"


# set-password links


async def test_a_password_link_works_once_sets_the_password_and_ends_sessions(storage, therapist):
    await storage.create_login_session("s1", therapist.id, "c", NOW, NOW + dt.timedelta(hours=1))
    await storage.create_password_link(therapist.id, "link", NOW, NOW + dt.timedelta(days=3))
    used = await storage.redeem_password_link("link", NOW, "new-hash")
    assert used is not None and used.id == therapist.id
    assert (await storage.get_therapist("alice")).password_hash == "new-hash"
    assert await storage.get_login_session("s1") is None
    assert await storage.redeem_password_link("link", NOW, "other") is None, "used twice"
    assert (await storage.get_therapist("alice")).password_hash == "new-hash"


async def test_an_expired_password_link_does_nothing(storage, therapist):
    await storage.create_password_link(therapist.id, "link", NOW, NOW + dt.timedelta(hours=1))
    assert await storage.redeem_password_link("link", NOW + dt.timedelta(hours=1), "x") is None
    assert (await storage.get_therapist("alice")).password_hash == "hash-a"


async def test_a_new_password_link_kills_the_older_one(storage, therapist):
    later = NOW + dt.timedelta(days=3)
    await storage.create_password_link(therapist.id, "old", NOW, later)
    await storage.create_password_link(therapist.id, "new", NOW, later)
    assert await storage.redeem_password_link("old", NOW, "x") is None
    assert await storage.redeem_password_link("new", NOW, "y") is not None


# audit log and health counters


async def test_audit_entries_come_newest_first_up_to_the_limit(storage):
    for minute in range(3):
        await storage.add_audit_entry(
            NOW + dt.timedelta(minutes=minute), "root", "therapist_disabled", f"t{minute}"
        )
    entries = await storage.list_audit_entries(2)
    assert [e.target for e in entries] == ["t2", "t1"]
    assert (entries[0].actor, entries[0].action) == ("root", "therapist_disabled")


async def test_health_counts_of_a_day_add_up_across_writers(storage):
    day = NOW.date()
    await storage.add_health_counts(day, {"joins": 3, "media_reached": 2})
    await storage.add_health_counts(day, {"joins": 1})
    await storage.add_health_counts(day + dt.timedelta(days=1), {"joins": 5})
    counts = await storage.list_health_counts(day)
    assert [(c.day, c.counter, c.value) for c in counts] == [
        (day, "joins", 4),
        (day, "media_reached", 2),
        (day + dt.timedelta(days=1), "joins", 5),
    ]
    assert len(await storage.list_health_counts(day + dt.timedelta(days=1))) == 1


async def test_no_health_counts_need_no_database(storage_backend):
    storage = await storage_backend.open()
    await storage.close()
    await storage.add_health_counts(NOW.date(), {})


# consent records


async def test_the_consent_record_outlives_the_name_and_goes_after_the_retention(
    storage, therapist
):
    appointment = await appointment_with_consent(storage, therapist.id, NOW)
    after_the_appointment = NOW + dt.timedelta(days=1)
    await storage.purge(after_the_appointment, retention_days=90)
    purged = await storage.get_appointment(appointment.id)
    assert purged.client_display_name is None
    records = await storage.list_consent_records(appointment.id)
    assert [(r.terms_version, r.consent_at) for r in records] == [("2026-11", NOW)]
    await storage.purge(NOW + dt.timedelta(days=91), retention_days=90)
    assert await storage.list_consent_records(appointment.id) == []


async def test_a_refused_consent_leaves_no_record(storage, therapist):
    appointment = await appointment_with_consent(storage, therapist.id, NOW)
    refused = await storage.record_client_consent(
        appointment.id, "wrong-invite", "binding", None, "2026-11", NOW
    )
    assert refused is None
    assert len(await storage.list_consent_records(appointment.id)) == 1


# purge


async def test_purge_deletes_audit_entries_and_health_counts_past_the_retention(storage):
    old, kept = NOW - dt.timedelta(days=91), NOW - dt.timedelta(days=89)
    for at in (old, kept):
        await storage.add_audit_entry(at, "root", "admin_granted", "alice")
        await storage.add_health_counts(at.date(), {"joins": 1})
    await storage.purge(NOW, retention_days=90)
    assert [e.at for e in await storage.list_audit_entries(10)] == [kept]
    assert [c.day for c in await storage.list_health_counts(old.date())] == [kept.date()]


async def test_all_session_statistics_span_every_therapist(storage, therapist):
    bob = await storage.add_therapist("bob", "h")
    await storage.record_session_statistic(bob.id, dt.date(2026, 3, 2), 100)
    await storage.record_session_statistic(therapist.id, dt.date(2026, 3, 1), 200)
    rows = await storage.list_all_session_statistics()
    assert [(r.therapist_id, r.duration_seconds) for r in rows] == [
        (therapist.id, 200),
        (bob.id, 100),
    ]
