"""Every response that can carry personal data is `Cache-Control: no-store`; static assets are not.

A shared or browser cache must never keep a CSRF token, a note, a client's name or an
appointment. The app sets it in one middleware so a new route cannot forget it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from signaling.credentials import hash_token, new_token
from tests.signaling.api_server import ApiServer, call, in_days
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest
from tests.signaling.client_links import link_at


@pytest.fixture
async def therapist(api: ApiServer) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    await api.add_therapist("alice")
    session, csrf = await api.signed_in("alice")
    async with session:
        yield session, csrf


@pytest.fixture
async def portal(api: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    await api.add_therapist("alice")
    key = new_token()
    await api.storage.add_api_key("portal", hash_token(key))
    async with api.client(Authorization=f"Bearer {key}") as client:
        yield client


async def cache_control(client: aiohttp.ClientSession, method: str, path: str, **kwargs) -> str:
    async with client.request(method, path, allow_redirects=False, **kwargs) as response:
        await response.read()
        return response.headers.get("Cache-Control", "(none)")


async def test_the_login_answer_with_the_csrf_token_is_no_store(api: ApiServer):
    await api.add_therapist("alice")
    async with api.client() as browser:
        got = await cache_control(
            browser,
            "POST",
            "/api/therapist/login",
            json={"username": "alice", "password": "correct horse battery"},
        )
    assert got == "no-store"


@pytest.mark.parametrize("path", ["/api/therapist/me", "/api/therapist/appointments"])
async def test_therapist_api_reads_are_no_store(therapist, path):
    session, _ = therapist
    assert await cache_control(session, "GET", path) == "no-store"


async def test_a_created_appointment_with_its_note_and_invite_is_no_store(therapist):
    session, csrf = therapist
    got = await cache_control(
        session,
        "POST",
        "/api/therapist/appointments",
        json={"starts_at": in_days(1), "note": "Erstgespräch"},
        headers={"X-CSRF-Token": csrf},
    )
    assert got == "no-store"


async def test_therapist_api_errors_are_no_store(api: ApiServer):
    async with api.client() as stranger:
        assert await cache_control(stranger, "GET", "/api/therapist/me") == "no-store"


async def test_integration_api_answers_are_no_store(portal):
    status, created, _ = await call(
        portal, "POST", "/api/v1/appointments", json={"therapist": "alice", "starts_at": in_days(1)}
    )
    assert status == 201
    assert await cache_control(portal, "GET", f"/api/v1/appointments/{created['id']}") == (
        "no-store"
    )
    assert await cache_control(portal, "GET", "/api/v1/therapists/alice/statistics") == "no-store"


async def test_integration_api_errors_are_no_store(api: ApiServer):
    async with api.client() as stranger:
        assert await cache_control(stranger, "GET", "/api/v1/appointments/1") == "no-store"


async def test_the_client_link_answer_is_no_store(api: ApiServer):
    token = await link_at(api)
    async with api.client() as browser:
        assert await cache_control(browser, "GET", f"/api/client/{token}") == "no-store"


@pytest.mark.parametrize("path", ["/dashboard", "/call/1"])
async def test_signed_in_pages_are_no_store(therapist, path):
    session, _ = therapist
    assert await cache_control(session, "GET", path) == "no-store"


async def test_a_redirect_and_a_404_are_no_store(api: ApiServer):
    async with api.client() as stranger:
        assert await cache_control(stranger, "GET", "/") == "no-store"
        assert await cache_control(stranger, "GET", "/no/such/page") == "no-store"


async def test_static_assets_stay_cacheable(api: ApiServer):
    async with api.client() as browser:
        assert await cache_control(browser, "GET", "/static/css/app.css") == "no-cache"
