"""The /api/v1 integration API with API keys, over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest

from signaling.credentials import hash_token, new_token
from tests.signaling.api_server import ApiServer, call, in_days
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest


@pytest.fixture
async def portal(api: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    """A client holding a valid API key, with therapist alice existing."""
    await api.add_therapist("alice")
    key = new_token()
    await api.storage.add_api_key("portal", hash_token(key))
    async with api.client(Authorization=f"Bearer {key}") as client:
        yield client


async def create(portal: aiohttp.ClientSession, **fields):
    body = {"therapist": "alice", "starts_at": in_days(1), **fields}
    return await call(portal, "POST", "/api/v1/appointments", json=body)


async def test_create_returns_201_with_id_invite_url_start_and_validity(api, portal):
    status, body, _ = await create(portal, duration_minutes=30, note="from the portal")
    assert status == 201
    assert {"id", "invite_url", "starts_at", "valid_until"} <= set(body)
    assert body["therapist"] == "alice"
    assert body["duration_minutes"] == 30


async def test_created_invite_urls_token_hash_matches_the_stored_appointment(api, portal):
    _, body, _ = await create(portal)
    token = body["invite_url"].removeprefix(f"{api.config.server.public_url}/j/")
    stored = await api.storage.get_appointment_by_token_hash(hash_token(token))
    assert stored is not None
    assert stored.id == body["id"]


async def test_get_returns_the_appointment_without_invite_or_note(portal):
    _, created, _ = await create(portal, note="private")
    status, body, _ = await call(portal, "GET", f"/api/v1/appointments/{created['id']}")
    assert status == 200
    assert body["id"] == created["id"]
    assert "invite_url" not in body
    assert "note" not in body


@pytest.mark.parametrize("on", [True, False])
async def test_the_appointment_says_whether_its_crisis_card_is_on_as_the_therapist_api_does(
    api, portal, on
):
    status, created, _ = await create(portal, crisis_card=on)
    assert (status, created["crisis_card"]) == (201, on)
    path = f"/api/v1/appointments/{created['id']}"
    _, got, _ = await call(portal, "GET", path)
    therapist, _ = await api.signed_in("alice")
    async with therapist:
        _, seen, _ = await call(therapist, "GET", f"/api/therapist/appointments/{created['id']}")
    assert got["crisis_card"] is seen["crisis_card"] is on
    _, cancelled, _ = await call(portal, "DELETE", path)
    assert cancelled["crisis_card"] is on


async def test_what_the_client_wrote_on_the_crisis_card_is_not_in_the_answer(api, portal):
    _, created, _ = await create(portal, crisis_card=True)
    assert await api.storage.fill_crisis_card(created["id"], "Gartenweg 17", "+49 551 1234567")
    _, body, _ = await call(portal, "GET", f"/api/v1/appointments/{created['id']}")
    assert body["crisis_card"] is True
    assert "Gartenweg" not in str(body) and "1234567" not in str(body)


async def test_delete_cancels_the_appointment(api, portal):
    _, created, _ = await create(portal)
    status, body, _ = await call(portal, "DELETE", f"/api/v1/appointments/{created['id']}")
    assert (status, body["state"]) == (200, "cancelled")
    assert (await api.storage.get_appointment(created["id"])).invite_token_hash is None


async def test_unknown_appointment_is_404_not_found(portal):
    status, body, _ = await call(portal, "GET", "/api/v1/appointments/999")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_unknown_therapist_is_404_not_found(portal):
    status, body, _ = await create(portal, therapist="nobody")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_missing_therapist_is_400_invalid_request(portal):
    status, body, _ = await call(
        portal, "POST", "/api/v1/appointments", json={"starts_at": in_days(1)}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_start_without_offset_is_400_invalid_request(portal):
    status, body, _ = await create(portal, starts_at="2030-01-01T09:00:00")
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_missing_key_is_401_with_www_authenticate_bearer(api):
    async with api.client() as client:
        status, body, headers = await call(client, "GET", "/api/v1/appointments/1")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert headers["WWW-Authenticate"].startswith("Bearer")


async def test_wrong_key_is_401(api):
    async with api.client(Authorization=f"Bearer {new_token()}") as client:
        status, _, headers = await call(client, "GET", "/api/v1/appointments/1")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")


async def test_revoked_key_is_401(api):
    key = new_token()
    await api.storage.add_api_key("old", hash_token(key))
    await api.storage.revoke_api_key("old")
    async with api.client(Authorization=f"Bearer {key}") as client:
        status, _, _ = await call(client, "GET", "/api/v1/appointments/1")
    assert status == 401


async def test_statistics_list_date_and_duration_of_each_session(api, portal):
    alice = await api.storage.get_therapist("alice")
    await api.storage.record_session_statistic(alice.id, dt.date(2025, 3, 3), 3000)
    await api.storage.record_session_statistic(alice.id, dt.date(2025, 3, 4), 2700)
    status, body, _ = await call(portal, "GET", "/api/v1/therapists/alice/statistics")
    assert status == 200
    assert body == {
        "therapist": "alice",
        "sessions": [
            {"date": "2025-03-03", "duration_seconds": 3000},
            {"date": "2025-03-04", "duration_seconds": 2700},
        ],
    }


async def test_statistics_of_unknown_therapist_is_404(portal):
    status, _, _ = await call(portal, "GET", "/api/v1/therapists/nobody/statistics")
    assert status == 404


async def test_api_key_does_not_open_the_therapist_api(api):
    key = new_token()
    await api.storage.add_api_key("portal", hash_token(key))
    async with api.client(Authorization=f"Bearer {key}") as client:
        status, _, _ = await call(client, "GET", "/api/therapist/appointments")
    assert status == 401
