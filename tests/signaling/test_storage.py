"""The storage interface on both backends (a real SQLite file, a real PostgreSQL database):
migrations, accounts, keys, appointments and the purge. What only one backend has is in
test_storage_sqlite.py and test_storage_postgresql.py."""

from __future__ import annotations

import datetime as dt

import pytest

from signaling.storage import AlreadyExists, AppointmentState, NotFound
from signaling.storage.migration_files import migrations
from tests import storage_backends
from tests.storage_backends import START, make_appointment

# every test below runs on each backend (tests/storage_backends.py)
storage_backend = storage_backends.storage_backend
storage = storage_backends.storage
therapist = storage_backends.therapist

# the newest migration's number: each new migration would otherwise have to edit this file
LATEST_VERSION = migrations("sqlite")[-1].version

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)


# migrations


async def test_migrations_create_all_tables_in_an_empty_database(storage_backend):
    storage = await storage_backend.open("new")
    await storage.close()
    assert set(storage_backend.columns("new")) >= {
        "schema_migrations",
        "therapists",
        "api_keys",
        "appointments",
        "session_statistics",
        "login_sessions",
    }


async def test_migrations_record_their_version(storage):
    assert await storage.schema_version() == LATEST_VERSION


async def test_rerunning_migrations_applies_nothing(storage):
    assert await storage.migrate() == []
    assert await storage.schema_version() == LATEST_VERSION


async def test_reopening_an_existing_database_keeps_its_data(storage_backend):
    first = await storage_backend.open("kept")
    await first.add_therapist("alice", "h")
    await first.close()
    second = await storage_backend.open("kept")
    assert (await second.get_therapist("alice")).password_hash == "h"
    await second.close()


async def test_ping_fails_after_close(storage_backend):
    storage = await storage_backend.open()
    await storage.ping()
    await storage.close()
    with pytest.raises(RuntimeError):
        await storage.ping()


# therapists


async def test_added_therapist_can_be_read_back(storage, therapist):
    found = await storage.get_therapist("alice")
    assert found == therapist
    assert found.disabled is False
    assert await storage.get_therapist_by_id(therapist.id) == therapist


async def test_duplicate_username_is_rejected(storage, therapist):
    with pytest.raises(AlreadyExists):
        await storage.add_therapist("alice", "other")


async def test_therapists_are_listed_by_username(storage):
    await storage.add_therapist("zoe", "h")
    await storage.add_therapist("bob", "h")
    assert [t.username for t in await storage.list_therapists()] == ["bob", "zoe"]
    assert await storage.count_therapists() == 2


async def test_therapist_can_be_disabled_and_enabled(storage, therapist):
    await storage.set_therapist_disabled("alice", True)
    assert (await storage.get_therapist("alice")).disabled is True
    await storage.set_therapist_disabled("alice", False)
    assert (await storage.get_therapist("alice")).disabled is False


async def test_disabling_unknown_therapist_raises_not_found(storage):
    with pytest.raises(NotFound):
        await storage.set_therapist_disabled("nobody", True)


async def test_password_hash_can_be_replaced(storage, therapist):
    await storage.set_therapist_password("alice", "new-hash")
    assert (await storage.get_therapist("alice")).password_hash == "new-hash"


# API keys


async def test_api_key_is_found_by_its_hash(storage):
    key = await storage.add_api_key("practice", "abc123")
    assert await storage.get_api_key_by_hash("abc123") == key
    assert key.active


async def test_revoked_api_key_is_inactive(storage):
    await storage.add_api_key("practice", "abc123")
    await storage.revoke_api_key("practice")
    assert not (await storage.get_api_key_by_hash("abc123")).active


async def test_two_active_keys_cannot_share_a_name(storage):
    await storage.add_api_key("practice", "h1")
    with pytest.raises(AlreadyExists):
        await storage.add_api_key("practice", "h2")


async def test_name_of_revoked_key_can_be_reused(storage):
    await storage.add_api_key("practice", "h1")
    await storage.revoke_api_key("practice")
    await storage.add_api_key("practice", "h2")
    assert [k.active for k in await storage.list_api_keys()] == [False, True]


async def test_revoking_unknown_key_raises_not_found(storage):
    with pytest.raises(NotFound):
        await storage.revoke_api_key("nothing")


# appointments


async def test_created_appointment_is_scheduled_and_found_by_id(storage, therapist):
    appointment = await make_appointment(storage, therapist.id, note="n", invite_token_hash="t")
    assert appointment.state is AppointmentState.SCHEDULED
    assert appointment.starts_at == START
    assert appointment.opens_at == START - dt.timedelta(minutes=15)
    assert await storage.get_appointment(appointment.id) == appointment


async def test_appointment_is_found_by_invite_token_hash(storage, therapist):
    appointment = await make_appointment(storage, therapist.id, invite_token_hash="t1")
    assert await storage.get_appointment_by_token_hash("t1") == appointment
    assert await storage.get_appointment_by_token_hash("t2") is None


async def test_appointment_for_unknown_therapist_is_rejected(storage):
    with pytest.raises(NotFound):
        await make_appointment(storage, therapist_id=999)


async def test_appointments_are_listed_per_therapist_by_start(storage, therapist):
    other = await storage.add_therapist("bob", "h")
    late = await make_appointment(storage, therapist.id, START + dt.timedelta(days=1))
    early = await make_appointment(storage, therapist.id, START)
    await make_appointment(storage, other.id)
    listed = await storage.list_appointments_for_therapist(therapist.id)
    assert [a.id for a in listed] == [early.id, late.id]


async def test_update_changes_only_the_given_fields(storage, therapist):
    appointment = await make_appointment(storage, therapist.id, note="keep")
    consent = START - dt.timedelta(minutes=3)
    updated = await storage.update_appointment(
        appointment.id,
        state=AppointmentState.WAITING,
        client_display_name="K.",
        consent_at=consent,
        terms_version="2025-01",
    )
    assert updated.state is AppointmentState.WAITING
    assert updated.consent_at == consent
    assert updated.note == "keep"
    assert await storage.get_appointment(appointment.id) == updated


async def test_update_rejects_fields_that_are_not_updatable(storage, therapist):
    appointment = await make_appointment(storage, therapist.id)
    with pytest.raises(TypeError):
        await storage.update_appointment(appointment.id, purged_at=START)


async def test_update_of_unknown_appointment_raises_not_found(storage):
    with pytest.raises(NotFound):
        await storage.update_appointment(42, note="x")


async def test_an_update_a_caller_got_wrong_is_a_type_error_before_any_query(storage_backend):
    # on a closed storage: any query would raise StorageUnavailable instead
    storage = await storage_backend.open()
    await storage.close()
    with pytest.raises(TypeError, match="nothing to change"):
        await storage.update_appointment(1)
    with pytest.raises(TypeError, match="cannot change purged_at"):
        await storage.update_appointment(1, purged_at=START)


async def test_cancelling_an_unknown_appointment_raises_not_found(storage):
    with pytest.raises(NotFound):
        await storage.cancel_appointment(42)


async def test_cancel_sets_state_and_invalidates_the_invite(storage, therapist):
    appointment = await make_appointment(storage, therapist.id, invite_token_hash="t")
    cancelled = await storage.cancel_appointment(appointment.id)
    assert cancelled.state is AppointmentState.CANCELLED
    assert await storage.get_appointment_by_token_hash("t") is None


async def test_naive_datetimes_are_refused(storage, therapist):
    with pytest.raises(ValueError):
        await make_appointment(storage, therapist.id, starts_at=dt.datetime(2025, 1, 1, 9, 0))


# login sessions


async def test_live_login_sessions_are_those_that_exist_and_have_not_expired(storage, therapist):
    now = START
    live = await storage.create_login_session("a", therapist.id, "c", now, now + HOUR)
    expired = await storage.create_login_session("b", therapist.id, "c", now, now + HOUR)
    await storage.touch_login_session(expired.id, now, now - HOUR)
    asked = {live.id, expired.id, 999}
    assert await storage.live_login_sessions(asked, now) == {live.id}
    assert asked == {live.id, expired.id, 999}


async def test_live_login_sessions_of_a_disabled_account_are_none(storage, therapist):
    session = await storage.create_login_session("a", therapist.id, "c", START, START + HOUR)
    await storage.set_therapist_disabled("alice", True)
    assert await storage.live_login_sessions({session.id}, START) == set()


async def test_asking_for_no_login_sessions_needs_no_database(storage_backend):
    storage = await storage_backend.open()
    await storage.close()
    assert await storage.live_login_sessions(set(), START) == set()


# purge


async def test_purge_keeps_only_times_and_state_of_expired_appointments(storage, therapist):
    appointment = await make_appointment(storage, therapist.id, note="n", invite_token_hash="t")
    await storage.update_appointment(
        appointment.id,
        client_display_name="K.",
        client_binding_hash="b",
        terms_version="v1",
        consent_at=START,
        state=AppointmentState.ENDED,
    )
    now = appointment.valid_until + dt.timedelta(seconds=1)
    result = await storage.purge(now, retention_days=90)
    purged = await storage.get_appointment(appointment.id)
    assert result.appointments_purged == 1
    assert (
        purged.note,
        purged.client_display_name,
        purged.client_binding_hash,
        purged.terms_version,
        purged.consent_at,
        purged.invite_token_hash,
    ) == (None, None, None, None, None, None)
    assert purged.purged_at == now
    assert (purged.starts_at, purged.duration_minutes, purged.state) == (
        START,
        50,
        AppointmentState.ENDED,
    )


async def test_purge_leaves_appointments_that_are_still_valid(storage, therapist):
    appointment = await make_appointment(storage, therapist.id, note="n")
    result = await storage.purge(appointment.valid_until, retention_days=90)
    assert result.appointments_purged == 0
    assert (await storage.get_appointment(appointment.id)).note == "n"


async def test_purge_does_not_touch_already_purged_appointments(storage, therapist):
    appointment = await make_appointment(storage, therapist.id)
    first = appointment.valid_until + dt.timedelta(minutes=1)
    await storage.purge(first, retention_days=90)
    result = await storage.purge(first + dt.timedelta(days=1), retention_days=90)
    assert result.appointments_purged == 0
    assert (await storage.get_appointment(appointment.id)).purged_at == first


async def test_purge_deletes_statistics_older_than_retention(storage, therapist):
    today = dt.date(2025, 6, 30)
    await storage.record_session_statistic(therapist.id, today - dt.timedelta(days=91), 3000)
    kept_old = await storage.record_session_statistic(
        therapist.id, today - dt.timedelta(days=90), 2900
    )
    kept_new = await storage.record_session_statistic(therapist.id, today, 2800)
    now = dt.datetime.combine(today, dt.time(12, 0), tzinfo=UTC)
    result = await storage.purge(now, retention_days=90)
    assert result.statistics_deleted == 1
    assert await storage.list_session_statistics(therapist.id) == [kept_old, kept_new]


async def test_purge_keeps_statistics_no_longer_than_three_calendar_months(storage, therapist):
    # 92 days back from 30 April is 28 January: past three calendar months (30 January)
    today = dt.date(2025, 4, 30)
    await storage.record_session_statistic(therapist.id, dt.date(2025, 1, 29), 3000)
    kept = await storage.record_session_statistic(therapist.id, dt.date(2025, 1, 30), 2900)
    now = dt.datetime.combine(today, dt.time(12, 0), tzinfo=UTC)
    result = await storage.purge(now, retention_days=92)
    assert result.statistics_deleted == 1
    assert await storage.list_session_statistics(therapist.id) == [kept]


async def test_session_statistic_holds_only_date_and_length(storage_backend, storage, therapist):
    stat = await storage.record_session_statistic(therapist.id, dt.date(2025, 1, 2), 3000)
    columns = [column[0] for column in storage_backend.columns()["session_statistics"]]
    assert columns == ["id", "therapist_id", "session_date", "duration_seconds"]
    assert stat.session_date == dt.date(2025, 1, 2)
