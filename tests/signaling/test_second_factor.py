"""Two-factor sign-in over real HTTP and a real SQLite file: enrolment, the code step, single
use, recovery codes, throttling and `auth.require_totp`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyotp
import pytest

from tests.privacy_canaries import remember
from tests.signaling.api_server import ApiServer, call, login, serving, write_config
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest


@dataclass(frozen=True)
class Enrolment:
    secret: str
    recovery_codes: list[str]
    # the code the enrolment was confirmed with: its 30-second step is spent
    confirmed_with: str


@pytest.fixture
async def alice(api: ApiServer) -> Enrolment:
    """The therapist alice, with two-factor sign-in on."""
    await api.add_therapist("alice")
    return await enrol(api)


async def send_code(client, ticket, code):
    return await call(
        client, "POST", "/api/therapist/login/code", json={"ticket": ticket, "code": code}
    )


async def login_with_code(client, code, username="alice"):
    """The password step, then `code` with the ticket it gave: the code step's answer."""
    _, body, _ = await login(client, username)
    return await send_code(client, body["ticket"], code)


def later_code(secret: str) -> str:
    """The code of the next 30-second step: the current one was used by the enrolment."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def enrol(api, username="alice") -> Enrolment:
    """Turn two-factor sign-in on for `username`."""
    client, csrf = await api.signed_in(username)
    async with client:
        status, body, _ = await call(client, "POST", "/api/therapist/totp/setup", csrf=csrf)
        assert status == 200, body
        secret = body["secret"]
        remember(secret)
        assert body["qr_svg"].startswith("data:image/svg+xml")
        assert body["otpauth_uri"].startswith("otpauth://totp/")
        code = pyotp.TOTP(secret).now()
        status, body, _ = await call(
            client, "POST", "/api/therapist/totp/confirm", json={"code": code}, csrf=csrf
        )
        assert status == 200, body
        remember(*body["recovery_codes"])
        return Enrolment(secret, body["recovery_codes"], code)


async def test_with_an_authenticator_the_password_alone_gives_no_session(api, alice):
    async with api.client() as client:
        status, body, headers = await login(client)
        assert status == 200
        assert body["second_factor"] == "code"
        assert "csrf_token" not in body
        assert headers.getall("Set-Cookie", []) == []
        status, _, _ = await call(client, "GET", "/api/therapist/me")
        assert status == 401


async def test_password_then_a_valid_code_signs_in(api, alice):
    async with api.client() as client:
        status, body, _ = await login_with_code(client, later_code(alice.secret))
        assert status == 200, body
        assert body["username"] == "alice"
        status, _, _ = await call(client, "GET", "/api/therapist/me")
        assert status == 200


async def test_a_wrong_code_is_refused(api, alice):
    wrong = f"{(int(later_code(alice.secret)) + 1) % 1_000_000:06d}"
    async with api.client() as client:
        status, body, headers = await login_with_code(client, wrong)
        assert status == 401
        assert body["error"]["code"] == "invalid_code"
        assert headers.getall("Set-Cookie", []) == []


async def test_a_code_works_once(api, alice):
    code = later_code(alice.secret)
    async with api.client() as first, api.client() as second:
        status, _, _ = await login_with_code(first, code)
        assert status == 200
        status, body, _ = await login_with_code(second, code)
        assert status == 401
        assert body["error"]["code"] == "code_used"


async def test_the_enrolment_code_cannot_sign_in_again(api, alice):
    async with api.client() as client:
        status, body, _ = await login_with_code(client, alice.confirmed_with)
        assert status == 401
        assert body["error"]["code"] == "code_used"


async def test_a_recovery_code_signs_in_once(api, alice):
    code = alice.recovery_codes[0]
    async with api.client() as client:
        status, _, _ = await login_with_code(client, code)
        assert status == 200
    async with api.client() as client:
        status, body, _ = await login_with_code(client, code.upper())
        assert status == 401
        assert body["error"]["code"] == "invalid_code"


async def test_recovery_codes_and_secret_are_not_stored_in_clear(api, alice):
    stored = api.database_bytes()
    for value in (alice.secret, *alice.recovery_codes):
        assert value.encode() not in stored


async def test_code_step_is_throttled_per_account(tmp_path):
    config = write_config(tmp_path, extra="limits:\n  login_attempts_per_account: 3\n")
    async with serving(config) as api:
        await api.add_therapist("alice")
        alice = await enrol(api)
        async with api.client() as client:
            _, body, _ = await login(client)
            ticket = body["ticket"]
            statuses = []
            for _ in range(4):
                status, _, headers = await send_code(client, ticket, "000000")
                statuses.append(status)
            assert statuses[:3] == [401, 401, 401] or 200 in statuses[:3]
            assert statuses[3] == 429
            assert int(headers["Retry-After"]) > 0
            # even the right code is refused while throttled
            status, _, _ = await send_code(client, ticket, later_code(alice.secret))
            assert status == 429


async def test_a_forged_or_foreign_ticket_is_refused(api, alice):
    await api.add_therapist("bob")
    async with api.client() as client:
        _, body, _ = await login(client)
        ticket = body["ticket"]
        therapist_id, rest = ticket.split(".", 1)
        forged = f"{int(therapist_id) + 1}.{rest}"
        for bad in (forged, "garbage", "1.code.9999999999.x.y", ""):
            status, body, _ = await send_code(client, bad, later_code(alice.secret))
            assert status == 401, bad
            assert body["error"]["code"] == "ticket_expired"


async def test_bad_bodies_get_400_not_a_traceback(api):
    await api.add_therapist("alice")
    async with api.client() as client:
        for body in ({}, {"ticket": 5, "code": "1"}, {"ticket": "x", "code": ["1"]}):
            status, answer, _ = await call(client, "POST", "/api/therapist/login/code", json=body)
            assert status == 400, body
            assert answer["error"]["code"] == "invalid_request"


async def test_required_totp_leads_to_enrolment_right_after_the_password(tmp_path):
    config = write_config(tmp_path, extra="auth:\n  require_totp: true\n")
    async with serving(config) as api:
        await api.add_therapist("alice")
        async with api.client() as client:
            _, body, headers = await login(client)
            assert body["second_factor"] == "enrol"
            assert headers.getall("Set-Cookie", []) == []
            ticket = body["ticket"]
            status, body, _ = await call(
                client, "POST", "/api/therapist/login/totp-setup", json={"ticket": ticket}
            )
            assert status == 200
            secret = body["secret"]
            remember(secret)
            status, body, _ = await send_code(client, ticket, pyotp.TOTP(secret).now())
            assert status == 200, body
            assert len(body["recovery_codes"]) == 10
            remember(*body["recovery_codes"])
            status, _, _ = await call(client, "GET", "/api/therapist/me")
            assert status == 200
            # and it cannot be switched off while required
            status, body, _ = await call(
                client,
                "POST",
                "/api/therapist/totp/disable",
                json={"code": later_code(secret)},
                csrf=body["csrf_token"],
            )
            assert status == 403
            assert body["error"]["code"] == "totp_required"


async def test_disabling_needs_a_code_and_then_the_password_suffices(api, alice):
    async with api.client() as client:
        status, body, _ = await login_with_code(client, later_code(alice.secret))
        assert status == 200, body
        csrf = body["csrf_token"]
        remember(csrf, *(c.value for c in client.cookie_jar))
        status, body, _ = await call(
            client, "POST", "/api/therapist/totp/disable", json={"code": "123456"}, csrf=csrf
        )
        assert status == 401
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/totp/disable",
            # the next step's code was spent on the sign-in: a recovery code does it
            json={"code": alice.recovery_codes[1]},
            csrf=csrf,
        )
        assert status == 200, body
    async with api.client() as client:
        status, body, _ = await login(client)
        assert "csrf_token" in body


async def test_cli_totp_reset_lets_the_password_alone_sign_in_again(api, alice, run_cli, tmp_path):
    config = tmp_path / "api-config.yaml"
    result = run_cli("therapist", "totp-reset", "alice", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stdout
    async with api.client() as client:
        status, body, _ = await login(client)
        assert status == 200
        assert "csrf_token" in body
    result = run_cli("therapist", "totp-reset", "nobody", "--config", str(config))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
