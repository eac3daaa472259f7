"""CSRF protection on the therapist API: token header and Origin check."""

from __future__ import annotations

from tests.signaling.api_server import PASSWORD, PUBLIC_URL, call, in_days
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest


def new_appointment() -> dict[str, object]:
    return {"starts_at": in_days(1)}


async def test_state_change_without_csrf_token_is_403(api):
    await api.add_therapist()
    client, _ = await api.signed_in()
    async with client:
        status, body, _ = await call(
            client, "POST", "/api/therapist/appointments", json=new_appointment()
        )
    assert status == 403
    assert body["error"]["code"] == "csrf_failed"


async def test_state_change_with_wrong_csrf_token_is_403(api):
    await api.add_therapist()
    client, csrf = await api.signed_in()
    async with client:
        status, _, _ = await call(
            client,
            "POST",
            "/api/therapist/appointments",
            json=new_appointment(),
            headers={"X-CSRF-Token": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")},
        )
    assert status == 403


async def test_csrf_token_of_another_session_is_refused(api):
    await api.add_therapist()
    client, _ = await api.signed_in()
    other, other_csrf = await api.signed_in()
    async with client, other:
        status, _, _ = await call(
            client, "DELETE", "/api/therapist/appointments/1", headers={"X-CSRF-Token": other_csrf}
        )
    assert status == 403


async def test_state_change_from_a_foreign_origin_is_403_even_with_the_right_token(api):
    await api.add_therapist()
    client, csrf = await api.signed_in()
    async with client:
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/appointments",
            json=new_appointment(),
            headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        )
    assert status == 403
    assert body["error"]["code"] == "forbidden"


async def test_state_change_from_our_own_origin_with_the_token_succeeds(api):
    await api.add_therapist()
    client, csrf = await api.signed_in()
    async with client:
        status, _, _ = await call(
            client,
            "POST",
            "/api/therapist/appointments",
            json=new_appointment(),
            headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
        )
    assert status == 201


async def test_logout_without_csrf_token_is_403_and_keeps_the_session(api):
    await api.add_therapist()
    client, _ = await api.signed_in()
    async with client:
        status, _, _ = await call(client, "POST", "/api/therapist/logout")
        me_status, _, _ = await call(client, "GET", "/api/therapist/me")
    assert (status, me_status) == (403, 200)


async def test_login_from_a_foreign_origin_is_403(api):
    await api.add_therapist()
    async with api.client() as client:
        status, _, headers = await call(
            client,
            "POST",
            "/api/therapist/login",
            json={"username": "alice", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
    assert status == 403
    assert "Set-Cookie" not in headers
