"""GET /api/client/{token}: the link's state for the waiting-room page, one 404 for every bad link."""

from __future__ import annotations

import datetime as dt

import pytest

from signaling.credentials import hash_token, new_token
from signaling.terms import TERMS_VERSION
from tests.signaling.api_server import ApiServer, call
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest
from tests.signaling.client_links import (
    INVALID_LINK,
    consent,
    create_via_therapist_api,
    link_at,
)


async def test_an_open_link_shows_its_times_and_the_current_terms_version(api: ApiServer):
    token, created = await create_via_therapist_api(api, starts_in=dt.timedelta(minutes=5))
    async with api.client() as browser:
        status, body, headers = await call(browser, "GET", f"/api/client/{token}")
    starts = dt.datetime.fromisoformat(created["starts_at"])
    planned = starts + dt.timedelta(minutes=created["duration_minutes"])
    ends_at = planned.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status == 200
    assert body == {
        "state": "open",
        "starts_at": created["starts_at"],
        "ends_at": ends_at,
        "opens_at": created["opens_at"],
        "valid_until": created["valid_until"],
        "terms_version": TERMS_VERSION,
        "bound": False,
        "crisis_card": False,
        "e2ee": "required",  # the page tells a browser that cannot encrypt before consent
    }
    assert headers["Cache-Control"] == "no-store"


async def test_a_link_before_its_window_is_not_yet_open(api: ApiServer):
    token, _ = await create_via_therapist_api(api, starts_in=dt.timedelta(days=1))
    async with api.client() as browser:
        status, body, _ = await call(browser, "GET", f"/api/client/{token}")
    assert (status, body["state"]) == (200, "not_yet_open")


async def test_bound_is_true_for_the_browser_that_consented(api: ApiServer):
    token = await link_at(api)
    async with api.client() as browser:
        await consent(browser, token)
        status, body, _ = await call(browser, "GET", f"/api/client/{token}")
    assert (status, body["bound"]) == (200, True)


@pytest.mark.parametrize("token", [new_token(), "short", "a" * 43, "%00" * 10, "a" * 500])
async def test_an_unknown_or_malformed_token_is_an_invalid_link(api: ApiServer, token):
    async with api.client() as browser:
        status, body, headers = await call(browser, "GET", f"/api/client/{token}")
    assert (status, body) == (404, INVALID_LINK)
    assert headers["Cache-Control"] == "no-store"


async def test_a_cancelled_link_is_an_invalid_link(api: ApiServer):
    token, created = await create_via_therapist_api(api, starts_in=dt.timedelta(minutes=5))
    await api.storage.cancel_appointment(created["id"])
    async with api.client() as browser:
        status, body, _ = await call(browser, "GET", f"/api/client/{token}")
    assert (status, body) == (404, INVALID_LINK)


async def test_an_expired_link_is_an_invalid_link(api: ApiServer):
    token = await link_at(api, opened=dt.timedelta(hours=3), valid_for=dt.timedelta(seconds=-1))
    async with api.client() as browser:
        status, body, _ = await call(browser, "GET", f"/api/client/{token}")
    assert (status, body) == (404, INVALID_LINK)


async def test_an_ended_session_is_an_invalid_link(api: ApiServer):
    token = await link_at(api)
    appointment = await api.storage.get_appointment_by_token_hash(hash_token(token))
    await api.storage.update_appointment(appointment.id, state="ended")
    async with api.client() as browser:
        status, body, _ = await call(browser, "GET", f"/api/client/{token}")
    assert (status, body) == (404, INVALID_LINK)


async def test_a_link_bound_to_another_browser_is_an_invalid_link(api: ApiServer):
    token = await link_at(api)
    async with api.client() as first:
        await consent(first, token)
    async with api.client() as second:
        status, body, headers = await call(second, "GET", f"/api/client/{token}")
    assert (status, body) == (404, INVALID_LINK)
    assert headers["Cache-Control"] == "no-store"
