"""Appointments through the therapist API: create, list, get, edit, cancel, invite links."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest

from signaling.credentials import hash_token
from tests.privacy_canaries import remember
from tests.signaling.api_server import ApiServer, call, in_days
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest


class Therapist:
    """A signed-in client whose state-changing requests carry the CSRF token."""

    def __init__(self, client: aiohttp.ClientSession, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    async def __call__(self, method: str, path: str, **kwargs):
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return await call(self.client, method, f"/api/therapist{path}", headers=headers, **kwargs)

    async def create(self, **fields):
        result = await self("POST", "/appointments", json={"starts_at": in_days(1), **fields})
        remember(fields.get("note"), *(_token(result[1]),))
        return result


@pytest.fixture
async def alice(api: ApiServer) -> AsyncIterator[Therapist]:
    await api.add_therapist("alice")
    client, csrf = await api.signed_in("alice")
    async with client:
        yield Therapist(client, csrf)


@pytest.fixture
async def bob(api: ApiServer) -> AsyncIterator[Therapist]:
    await api.add_therapist("bob")
    client, csrf = await api.signed_in("bob")
    async with client:
        yield Therapist(client, csrf)


def _token(body) -> str | None:
    if isinstance(body, dict) and "invite_url" in body:
        return token_of(body["invite_url"])
    return None


def token_of(invite_url: str) -> str:
    return invite_url.rsplit("/j/", 1)[1]


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


async def test_create_returns_201_with_invite_link_and_config_default_duration(api, alice):
    starts_at = in_days(2)
    status, body, _ = await alice.create(starts_at=starts_at, note="first session")
    assert status == 201
    assert body["invite_url"].startswith(f"{api.config.server.public_url}/j/")
    assert len(token_of(body["invite_url"])) == 43
    assert body["duration_minutes"] == api.config.appointments.default_duration_minutes
    assert utc(body["starts_at"]) == utc(starts_at)
    assert body["note"] == "first session"
    assert body["state"] == "scheduled"


async def test_window_opens_before_start_and_ends_after_start_per_config(api, alice):
    _, body, _ = await alice.create()
    rules = api.config.appointments
    start = utc(body["starts_at"])
    assert utc(body["opens_at"]) == start - dt.timedelta(minutes=rules.open_before_minutes)
    assert utc(body["valid_until"]) == start + dt.timedelta(minutes=rules.valid_after_start_minutes)


async def test_invite_link_is_not_shown_again_after_creation(alice):
    _, created, _ = await alice.create()
    _, fetched, _ = await alice("GET", f"/appointments/{created['id']}")
    _, listed, _ = await alice("GET", "/appointments")
    assert "invite_url" not in fetched
    assert token_of(created["invite_url"]) not in str(listed)


async def test_only_the_invite_tokens_hash_is_stored(api, alice):
    _, created, _ = await alice.create()
    token = token_of(created["invite_url"])
    stored = await api.storage.get_appointment(created["id"])
    assert stored.invite_token_hash == hash_token(token)
    assert token.encode() not in api.database_bytes()


async def test_reissuing_the_invite_kills_the_old_link(api, alice):
    _, created, _ = await alice.create()
    status, reissued, _ = await alice("POST", f"/appointments/{created['id']}/invite")
    assert status == 200
    old, new = token_of(created["invite_url"]), token_of(reissued["invite_url"])
    assert old != new
    assert await api.storage.get_appointment_by_token_hash(hash_token(old)) is None
    found = await api.storage.get_appointment_by_token_hash(hash_token(new))
    assert found.id == created["id"]


async def test_list_shows_todays_and_upcoming_but_not_past_appointments(api, alice):
    _, upcoming, _ = await alice.create()
    therapist = await api.storage.get_therapist("alice")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    await api.storage.create_appointment(therapist.id, past, 50, past, past + dt.timedelta(hours=2))
    status, body, _ = await alice("GET", "/appointments")
    assert status == 200
    assert [a["id"] for a in body["appointments"]] == [upcoming["id"]]


async def test_list_with_include_past_shows_past_appointments_too(api, alice):
    therapist = await api.storage.get_therapist("alice")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    await api.storage.create_appointment(therapist.id, past, 50, past, past + dt.timedelta(hours=2))
    _, body, _ = await alice("GET", "/appointments?include_past=true")
    assert len(body["appointments"]) == 1


async def test_edit_moves_the_start_and_its_window(api, alice):
    _, created, _ = await alice.create()
    new_start = in_days(5)
    status, body, _ = await alice(
        "PATCH", f"/appointments/{created['id']}", json={"starts_at": new_start, "note": None}
    )
    assert status == 200
    assert utc(body["starts_at"]) == utc(new_start)
    assert utc(body["valid_until"]) > utc(created["valid_until"]) + dt.timedelta(days=3)
    assert body["note"] is None


async def test_cancel_marks_the_appointment_cancelled_and_kills_its_link(api, alice):
    _, created, _ = await alice.create()
    status, body, _ = await alice("DELETE", f"/appointments/{created['id']}")
    assert (status, body["state"], body["has_invite"]) == (200, "cancelled", False)
    token = token_of(created["invite_url"])
    assert await api.storage.get_appointment_by_token_hash(hash_token(token)) is None


async def test_cancelled_appointment_cannot_be_edited(alice):
    _, created, _ = await alice.create()
    await alice("DELETE", f"/appointments/{created['id']}")
    status, body, _ = await alice(
        "PATCH", f"/appointments/{created['id']}", json={"duration_minutes": 30}
    )
    assert (status, body["error"]["code"]) == (409, "conflict")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/invite")],
)
async def test_another_therapists_appointment_is_404(alice, bob, method, suffix):
    _, created, _ = await bob.create()
    kwargs = {"json": {"duration_minutes": 30}} if method == "PATCH" else {}
    status, body, _ = await alice(method, f"/appointments/{created['id']}{suffix}", **kwargs)
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_another_therapists_appointments_are_not_listed(alice, bob):
    await bob.create()
    _, body, _ = await alice("GET", "/appointments")
    assert body["appointments"] == []


@pytest.mark.parametrize(
    "starts_at",
    ["tomorrow at nine", "2030-01-01T09:00:00", "2030-02-30T09:00:00+01:00", 1767258000],
    ids=["not-iso", "no-offset", "no-such-day", "number"],
)
async def test_malformed_start_time_is_400(alice, starts_at):
    status, body, _ = await alice.create(starts_at=starts_at)
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert "starts_at" in body["error"]["message"]


async def test_start_more_than_a_year_ahead_is_400(alice):
    status, _, _ = await alice.create(starts_at=in_days(400))
    assert status == 400


async def test_start_whose_link_would_already_have_expired_is_400(alice):
    status, _, _ = await alice.create(starts_at=in_days(-1))
    assert status == 400


@pytest.mark.parametrize("duration", [4, 241, "50", True])
async def test_duration_outside_5_to_240_minutes_or_not_an_integer_is_400(alice, duration):
    status, body, _ = await alice.create(duration_minutes=duration)
    assert status == 400
    assert "duration_minutes" in body["error"]["message"]


async def test_note_longer_than_2000_characters_is_400(alice):
    status, body, _ = await alice.create(note="x" * 2001)
    assert status == 400
    assert "note" in body["error"]["message"]


async def test_unknown_field_is_400(alice):
    status, _, _ = await alice.create(room="secret")
    assert status == 400


async def test_body_over_64_kib_is_413(alice):
    status, body, _ = await alice("POST", "/appointments", json={"note": "x" * 70_000})
    assert (status, body["error"]["code"]) == (413, "body_too_large")


async def test_non_json_content_type_is_415(alice):
    status, body, _ = await alice(
        "POST", "/appointments", data=b"starts_at=x", headers={"Content-Type": "text/plain"}
    )
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")


async def test_invalid_json_is_400(alice):
    status, body, _ = await alice(
        "POST", "/appointments", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_non_numeric_appointment_id_is_404(alice):
    status, _, _ = await alice("GET", "/appointments/abc")
    assert status == 404


async def test_unknown_api_path_answers_json_404(alice):
    status, body, _ = await alice("GET", "/nothing-here")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_a_reissued_link_can_be_taken_by_a_new_browser(api, alice):
    from tests.signaling.client_links import consent

    _, created, _ = await alice.create()
    old_device, new_device = api.client(), api.client()
    try:
        status, _, _ = await consent(
            old_device, token_of(created["invite_url"]), display_name="Kim"
        )
        assert status == 200
        _, reissued, _ = await alice("POST", f"/appointments/{created['id']}/invite")
        status, _, _ = await consent(new_device, token_of(reissued["invite_url"]))
        assert status == 200
        stored = await api.storage.get_appointment(created["id"])
        assert stored.client_display_name is None  # the old consent went with the old link
    finally:
        await old_device.close()
        await new_device.close()
