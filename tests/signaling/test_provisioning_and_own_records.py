"""The portal's provisioning (PUT/DELETE /api/v1/therapists/{external_id}), a therapist's own
statistics per quarter and the consent proof, over real HTTP on a real SQLite file."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest

from signaling.credentials import hash_token, new_token
from signaling.terms import TERMS_VERSION
from tests.privacy_canaries import remember
from tests.signaling.api_server import _PASSWORD_HASH, ApiServer, call, in_days
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest
from tests.signaling.client_links import consent


@pytest.fixture
async def portal(api: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    key = new_token()
    remember(key)
    await api.storage.add_api_key("portal", hash_token(key))
    async with api.client(Authorization=f"Bearer {key}") as client:
        yield client


async def put(portal, external_id, **body):
    return await call(portal, "PUT", f"/api/v1/therapists/{external_id}", json=body)


async def test_provisioning_is_idempotent_by_external_id(api, portal):
    status, body, _ = await put(portal, "p-17", username="mueller", display_name="Dr. Müller")
    assert status == 201
    assert body["set_password_url"].startswith(f"{api.config.server.public_url}/set-password#")
    remember(body["set_password_url"].split("#")[1])
    assert {k: body[k] for k in ("external_id", "username", "active")} == {
        "external_id": "p-17",
        "username": "mueller",
        "active": True,
    }
    status, body, _ = await put(portal, "p-17", username="mueller", display_name="Dr. Müller")
    assert status == 200
    assert "set_password_url" not in body
    assert len(await api.storage.list_therapists()) == 1


async def test_deactivating_ends_the_therapists_sessions_and_is_audited(api, portal):
    _, body, _ = await put(portal, "p-1", username="alice")
    remember(body["set_password_url"].split("#")[1])
    # the tests' known password instead of the link
    await api.storage.set_therapist_password("alice", _PASSWORD_HASH)
    alice, _ = await api.signed_in("alice")
    async with alice:
        status, body, _ = await call(portal, "DELETE", "/api/v1/therapists/p-1")
        assert (status, body["active"]) == (200, False)
        assert (await call(alice, "GET", "/api/therapist/me"))[0] == 401
    status, body, _ = await call(portal, "DELETE", "/api/v1/therapists/p-1")
    assert (status, body["active"]) == (200, False), "deactivating twice is harmless"
    status, body, _ = await put(portal, "p-1", username="alice", active=True)
    assert (status, body["active"]) == (200, True)
    actions = [(e.actor, e.action) for e in await api.storage.list_audit_entries(10)]
    assert actions == [
        ("api:portal", "therapist_enabled"),
        ("api:portal", "therapist_disabled"),
        ("api:portal", "therapist_provisioned"),
    ]


async def test_a_put_with_active_false_deactivates(api, portal):
    await put(portal, "p-2", username="bob")
    status, body, _ = await put(portal, "p-2", username="bob", active=False)
    assert (status, body["active"]) == (200, False)
    assert (await api.storage.get_therapist("bob")).disabled


async def test_provisioning_errors_are_clear(api, portal):
    await api.add_therapist("alice")
    status, body, _ = await put(portal, "p-3", username="alice")
    assert (status, body["error"]["code"]) == (409, "conflict")
    for external_id, fields in (
        ("p-4", {"username": "Bad Name"}),
        ("p-4", {"username": "ok", "active": "yes"}),
        ("p-4", {"username": "ok", "display_name": ""}),
        ("p-4", {"username": "ok", "role": "admin"}),
        ("-bad", {"username": "ok"}),
        ("x" * 129, {"username": "ok"}),
    ):
        status, body, _ = await put(portal, external_id, **fields)
        assert (status, body["error"]["code"]) == (400, "invalid_request"), fields
    status, body, _ = await call(portal, "DELETE", "/api/v1/therapists/unknown")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_provisioning_needs_an_api_key(api):
    async with api.client() as anyone:
        status, _, headers = await put(anyone, "p-5", username="x1")
    assert status == 401
    assert "Bearer" in headers["WWW-Authenticate"]


async def test_own_statistics_list_the_quarters_sessions_with_date_and_length(api):
    await api.add_therapist("alice")
    await api.add_therapist("bob")
    alice = await api.storage.get_therapist("alice")
    bob = await api.storage.get_therapist("bob")
    await api.storage.record_session_statistic(alice.id, dt.date(2026, 1, 5), 3000)
    await api.storage.record_session_statistic(alice.id, dt.date(2026, 3, 31), 2990)
    await api.storage.record_session_statistic(alice.id, dt.date(2026, 4, 1), 3000)
    await api.storage.record_session_statistic(bob.id, dt.date(2026, 2, 1), 3000)
    session, _ = await api.signed_in("alice")
    async with session:
        status, body, _ = await call(session, "GET", "/api/therapist/statistics?quarter=2026-Q1")
        assert status == 200
        assert (body["quarter"], body["count"], body["minutes"]) == ("2026-Q1", 2, 100)
        assert [s["date"] for s in body["sessions"]] == ["2026-01-05", "2026-03-31"]
        assert {"2026-Q1", "2026-Q2"} <= set(body["quarters"])
        async with session.get("/api/therapist/statistics.csv?quarter=2026-Q1") as response:
            raw = await response.read()
            assert "2026-Q1" in response.headers["Content-Disposition"]
        for bad in ("2026-Q5", "26-Q1", "2026Q1", "x"):
            status, _, _ = await call(session, "GET", f"/api/therapist/statistics?quarter={bad}")
            assert status == 400, bad
    assert raw.decode("utf-8-sig").split("\r\n")[:3] == [
        "date;minutes;duration_seconds",
        "2026-01-05;50;3000",
        "2026-03-31;50;2990",
    ]


async def test_own_statistics_need_a_session(api):
    async with api.client() as anyone:
        assert (await call(anyone, "GET", "/api/therapist/statistics"))[0] == 401


async def test_the_consent_proof_shows_version_and_time_without_the_name(api):
    await api.add_therapist("alice")
    await api.add_therapist("bob")
    session, csrf = await api.signed_in("alice")
    async with session:
        _, created, _ = await call(
            session,
            "POST",
            "/api/therapist/appointments",
            json={"starts_at": in_days(0.01)},
            headers={"X-CSRF-Token": csrf},
        )
        token = created["invite_url"].rsplit("/", 1)[1]
        remember(token)
        async with api.client() as client:
            status, _, _ = await consent(client, token, display_name="Erika Mustermann")
            assert status == 200, status
        status, body, _ = await call(
            session, "GET", f"/api/therapist/appointments/{created['id']}/consent"
        )
        assert status == 200
        assert [c["terms_version"] for c in body["consents"]] == [TERMS_VERSION]
        assert "Erika" not in str(body)
    bob, _ = await api.signed_in("bob")
    async with bob:
        status, _, _ = await call(
            bob, "GET", f"/api/therapist/appointments/{created['id']}/consent"
        )
    assert status == 404, "another therapist's appointment"
