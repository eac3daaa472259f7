"""Two-factor sign-in over real HTTP and a real SQLite file: enrolment, the code step, single
use, recovery codes, throttling and `auth.require_totp`."""

from __future__ import annotations

import time

import pyotp

from tests.privacy_canaries import remember
from tests.signaling.api_server import PASSWORD, call, serving, write_config
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest


async def login(client, username="alice", password=PASSWORD):
    return await call(
        client, "POST", "/api/therapist/login", json={"username": username, "password": password}
    )


async def enrol(api, username="alice") -> tuple[str, list[str]]:
    """Turn two-factor sign-in on for `username`; its secret and recovery codes."""
    client, csrf = await api.signed_in(username)
    async with client:
        status, body, _ = await call(
            client, "POST", "/api/therapist/totp/setup", headers={"X-CSRF-Token": csrf}
        )
        assert status == 200, body
        secret = body["secret"]
        remember(secret)
        assert body["qr_svg"].startswith("data:image/svg+xml")
        assert body["otpauth_uri"].startswith("otpauth://totp/")
        ENROLMENT_CODES[username] = pyotp.TOTP(secret).now()
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/totp/confirm",
            json={"code": ENROLMENT_CODES[username]},
            headers={"X-CSRF-Token": csrf},
        )
        assert status == 200, body
        remember(*body["recovery_codes"])
        return secret, body["recovery_codes"]


# the code each enrolment was confirmed with, by username
ENROLMENT_CODES: dict[str, str] = {}


def later_code(secret: str) -> str:
    """The code of the next 30-second step: the current one was used by the enrolment."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def test_with_an_authenticator_the_password_alone_gives_no_session(api):
    await api.add_therapist("alice")
    await enrol(api)
    async with api.client() as client:
        status, body, headers = await login(client)
        assert status == 200
        assert body["second_factor"] == "code"
        assert "csrf_token" not in body
        assert headers.getall("Set-Cookie", []) == []
        status, _, _ = await call(client, "GET", "/api/therapist/me")
        assert status == 401


async def test_password_then_a_valid_code_signs_in(api):
    await api.add_therapist("alice")
    secret, _ = await enrol(api)
    async with api.client() as client:
        _, body, _ = await login(client)
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/login/code",
            json={"ticket": body["ticket"], "code": later_code(secret)},
        )
        assert status == 200, body
        assert body["username"] == "alice"
        status, _, _ = await call(client, "GET", "/api/therapist/me")
        assert status == 200


async def test_a_wrong_code_is_refused(api):
    await api.add_therapist("alice")
    secret, _ = await enrol(api)
    wrong = f"{(int(later_code(secret)) + 1) % 1_000_000:06d}"
    async with api.client() as client:
        _, body, _ = await login(client)
        status, body, headers = await call(
            client,
            "POST",
            "/api/therapist/login/code",
            json={"ticket": body["ticket"], "code": wrong},
        )
        assert status == 401
        assert body["error"]["code"] == "invalid_code"
        assert headers.getall("Set-Cookie", []) == []


async def test_a_code_works_once(api):
    await api.add_therapist("alice")
    secret, _ = await enrol(api)
    code = later_code(secret)
    async with api.client() as first, api.client() as second:
        _, body, _ = await login(first)
        status, _, _ = await call(
            first,
            "POST",
            "/api/therapist/login/code",
            json={"ticket": body["ticket"], "code": code},
        )
        assert status == 200
        _, body, _ = await login(second)
        status, body, _ = await call(
            second,
            "POST",
            "/api/therapist/login/code",
            json={"ticket": body["ticket"], "code": code},
        )
        assert status == 401
        assert body["error"]["code"] == "code_used"


async def test_the_enrolment_code_cannot_sign_in_again(api):
    await api.add_therapist("alice")
    await enrol(api)
    # the very code that confirmed the enrolment: its step is spent
    code = ENROLMENT_CODES["alice"]
    async with api.client() as client:
        _, body, _ = await login(client)
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/login/code",
            json={"ticket": body["ticket"], "code": code},
        )
        assert status == 401
        assert body["error"]["code"] == "code_used"


async def test_a_recovery_code_signs_in_once(api):
    await api.add_therapist("alice")
    _, codes = await enrol(api)
    async with api.client() as client:
        _, body, _ = await login(client)
        ticket = body["ticket"]
        status, _, _ = await call(
            client, "POST", "/api/therapist/login/code", json={"ticket": ticket, "code": codes[0]}
        )
        assert status == 200
    async with api.client() as client:
        _, body, _ = await login(client)
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/login/code",
            json={"ticket": body["ticket"], "code": codes[0].upper()},
        )
        assert status == 401
        assert body["error"]["code"] == "invalid_code"


async def test_recovery_codes_and_secret_are_not_stored_in_clear(api):
    await api.add_therapist("alice")
    secret, codes = await enrol(api)
    stored = api.database_bytes()
    for value in (secret, *codes):
        assert value.encode() not in stored


async def test_code_step_is_throttled_per_account(tmp_path):
    config = write_config(tmp_path, extra="limits:\n  login_attempts_per_account: 3\n")
    async with serving(config) as api:
        await api.add_therapist("alice")
        secret, _ = await enrol(api)
        async with api.client() as client:
            _, body, _ = await login(client)
            ticket = body["ticket"]
            statuses = []
            for _ in range(4):
                status, _, headers = await call(
                    client,
                    "POST",
                    "/api/therapist/login/code",
                    json={"ticket": ticket, "code": "000000"},
                )
                statuses.append(status)
            assert statuses[:3] == [401, 401, 401] or 200 in statuses[:3]
            assert statuses[3] == 429
            assert int(headers["Retry-After"]) > 0
            # even the right code is refused while throttled
            status, _, _ = await call(
                client,
                "POST",
                "/api/therapist/login/code",
                json={"ticket": ticket, "code": later_code(secret)},
            )
            assert status == 429


async def test_a_forged_or_foreign_ticket_is_refused(api):
    await api.add_therapist("alice")
    await api.add_therapist("bob")
    secret, _ = await enrol(api, "alice")
    async with api.client() as client:
        _, body, _ = await login(client)
        ticket = body["ticket"]
        therapist_id, rest = ticket.split(".", 1)
        forged = f"{int(therapist_id) + 1}.{rest}"
        for bad in (forged, "garbage", "1.code.9999999999.x.y", ""):
            status, body, _ = await call(
                client,
                "POST",
                "/api/therapist/login/code",
                json={"ticket": bad, "code": later_code(secret)},
            )
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
            status, body, _ = await call(
                client,
                "POST",
                "/api/therapist/login/code",
                json={"ticket": ticket, "code": pyotp.TOTP(secret).now()},
            )
            assert status == 200, body
            assert len(body["recovery_codes"]) == 10
            remember(*body["recovery_codes"])
            status, _, _ = await call(client, "GET", "/api/therapist/me")
            assert status == 200
            # and it cannot be switched off while required
            csrf = body["csrf_token"]
            status, body, _ = await call(
                client,
                "POST",
                "/api/therapist/totp/disable",
                json={"code": later_code(secret)},
                headers={"X-CSRF-Token": csrf},
            )
            assert status == 403
            assert body["error"]["code"] == "totp_required"


async def test_disabling_needs_a_code_and_then_the_password_suffices(api):
    await api.add_therapist("alice")
    secret, codes = await enrol(api)
    client, csrf = await _signed_in_with_code(api, secret)
    async with client:
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/totp/disable",
            json={"code": "123456"},
            headers={"X-CSRF-Token": csrf},
        )
        assert status == 401
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/totp/disable",
            # the next step's code was spent on the sign-in: a recovery code does it
            json={"code": codes[1]},
            headers={"X-CSRF-Token": csrf},
        )
        assert status == 200, body
    async with api.client() as client:
        status, body, _ = await login(client)
        assert "csrf_token" in body


async def _signed_in_with_code(api, secret):
    client = api.client()
    _, body, _ = await login(client)
    status, body, _ = await call(
        client,
        "POST",
        "/api/therapist/login/code",
        json={"ticket": body["ticket"], "code": later_code(secret)},
    )
    assert status == 200, body
    remember(body["csrf_token"], *(c.value for c in client.cookie_jar))
    return client, body["csrf_token"]


async def test_cli_totp_reset_lets_the_password_alone_sign_in_again(api, run_cli, tmp_path):
    await api.add_therapist("alice")
    await enrol(api)
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
