"""Single sign-on against a real OpenID Connect provider (pyoidc, tests/oidc_provider.py) over
real HTTP, with a real SQLite file: the code flow with PKCE through the provider's login form,
the callback's checks (state, code, ID token), the mapping of the subject to a provisioned
therapist, and the pages for everything that is not a sign-in."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pyotp

from signaling.credentials import load_or_create_session_secret
from signaling.totp import SecretBox
from tests.oidc_provider import CLIENT_ID
from tests.signaling.api_server import PASSWORD, call, in_days
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest
from tests.signaling.sso_setup import ALICE, DORA, STRANGER, SsoSetup, sso_serving
from tests.signaling.sso_setup import sso as sso  # the fixture, re-exported for pytest

SESSION_COOKIE = "sprechzimmer_session"


def session_cookies(client) -> list[str]:
    return [c.value for c in client.cookie_jar if c.key == SESSION_COOKIE]


async def me(sso: SsoSetup, client) -> tuple[int, dict | None]:
    status, body, _ = await call(client, "GET", f"{sso.url}/api/therapist/me")
    return status, body


async def outcome(sso: SsoSetup, client, response) -> tuple[str, int, str]:
    """Where a refused callback sent the browser, and that page's status and text."""
    assert response.status == 303
    location = response.headers["Location"]
    async with client.get(f"{sso.url}{location}", allow_redirects=False) as page:
        return location, page.status, await page.text()


def reasons(caplog, event: str) -> list[str]:
    """The `reason` field of each `event` logged so far."""
    return [
        getattr(record, "fields", {}).get("reason", "")
        for record in caplog.records
        if record.getMessage() == event
    ]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


# --- signing in


async def test_a_provisioned_therapist_signs_in_through_the_portal(sso):
    await sso.provision(ALICE, "alice")
    async with sso.client() as client:
        response = await sso.signed_in(client, ALICE)
        assert response.status == 303
        assert response.headers["Location"] == "/dashboard"
        assert len(session_cookies(client)) == 1
        status, body = await me(sso, client)
        assert status == 200
        assert body["username"] == "alice"
        # and a state-changing call with the session's CSRF token works as after a password
        status, created, _ = await call(
            client,
            "POST",
            f"{sso.url}/api/therapist/appointments",
            json={"starts_at": in_days(2)},
            headers={"X-CSRF-Token": body["csrf_token"]},
        )
        assert status == 201, created


async def test_the_authorization_request_carries_pkce_s256_a_nonce_and_only_scope_openid(sso):
    async with sso.client() as client:
        location = await sso.start(client)
    request = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{sso.provider.issuer}/authorization?")
    assert request["response_type"] == ["code"]
    assert request["client_id"] == [CLIENT_ID]
    assert request["redirect_uri"] == [f"{sso.url}/login/sso/callback"]
    assert request["scope"] == ["openid"]
    assert request["code_challenge_method"] == ["S256"]
    assert len(request["code_challenge"][0]) == 43  # base64url of a SHA-256
    assert len(request["state"][0]) >= 43 and len(request["nonce"][0]) >= 43


async def test_the_code_is_exchanged_with_its_verifier_and_the_client_secret_in_basic_auth(sso):
    await sso.provision(ALICE, "alice")
    async with sso.client() as client:
        response = await sso.signed_in(client, ALICE)
    assert response.status == 303
    (form,) = sso.provider.token_requests
    assert form["grant_type"] == "authorization_code"
    assert 43 <= len(form["code_verifier"]) <= 128
    # the secret went in the Authorization header, not in the form
    assert "client_secret" not in form


async def test_the_pending_sign_in_cookie_is_httponly_lax_short_lived_and_scoped(sso):
    async with (
        sso.client() as client,
        client.get(f"{sso.url}/login/sso", allow_redirects=False) as response,
    ):
        cookie = response.cookies["sprechzimmer_sso"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/login/sso"
    assert cookie["max-age"] == "600"


async def test_the_pending_sign_in_is_used_up_by_its_callback(sso):
    await sso.provision(ALICE, "alice")
    async with sso.client() as client:
        await sso.signed_in(client, ALICE)
        assert [c for c in client.cookie_jar if c.key == "sprechzimmer_sso"] == []


async def test_the_session_is_always_a_new_one_never_the_cookie_the_browser_brought(sso):
    """Session fixation: a session planted in the browser is not upgraded to alice's."""
    await sso.provision(ALICE, "alice")
    await sso.api.add_therapist("mallory")
    mallorys, _ = await sso.api.signed_in("mallory")
    async with mallorys:
        planted = session_cookies(mallorys)[0]
    async with sso.client() as client:
        client.cookie_jar.update_cookies({SESSION_COOKIE: planted}, response_url=sso.url_of())
        await sso.signed_in(client, ALICE)
        (fresh,) = session_cookies(client)
        assert fresh != planted
        assert (await me(sso, client))[1]["username"] == "alice"
    async with sso.client() as other:
        other.cookie_jar.update_cookies({SESSION_COOKIE: planted}, response_url=sso.url_of())
        assert (await me(sso, other))[1]["username"] == "mallory"


async def test_single_sign_on_leaves_the_second_factor_to_the_portal(tmp_path, tcp_port):
    """With auth.require_totp and an enrolled authenticator, the portal's sign-in alone gives
    the session; the password still needs the code."""
    async with sso_serving(tmp_path, tcp_port, "auth:\n  require_totp: true\n") as sso:
        therapist = await sso.provision(ALICE, "alice")
        secret = pyotp.random_base32()
        await sso.api.storage.begin_totp(therapist.id, _sealed(sso, secret, therapist.id))
        await sso.api.storage.confirm_totp(therapist.id, 1, [], _utc_now())
        async with sso.client() as client:
            response = await sso.signed_in(client, ALICE)
            assert response.status == 303
            assert (await me(sso, client))[0] == 200
        async with sso.client() as client:
            status, body, _ = await call(
                client,
                "POST",
                f"{sso.url}/api/therapist/login",
                json={"username": "alice", "password": PASSWORD},
            )
            assert status == 200
            assert body["second_factor"] == "code"
            assert session_cookies(client) == []


# --- the login page's question


async def test_the_login_page_is_told_to_offer_the_portal(sso):
    async with sso.client() as client:
        status, body, _ = await call(client, "GET", f"{sso.url}/api/therapist/login/methods")
    assert (status, body) == (200, {"password": True, "sso": True})


async def test_without_oidc_there_is_no_portal_button_and_no_sso_route(api):
    async with api.client() as client:
        status, body, _ = await call(client, "GET", "/api/therapist/login/methods")
        assert (status, body) == (200, {"password": True, "sso": False})
        async with client.get("/login/sso", allow_redirects=False) as response:
            assert response.status == 404
        async with client.get("/login/sso/callback?state=x&code=y") as response:
            assert response.status == 404


# --- state


async def test_a_callback_without_the_browsers_pending_sign_in_is_refused(sso):
    """Login CSRF: a callback URL carried to another browser does not sign that browser in."""
    await sso.provision(ALICE, "alice")
    async with sso.client() as victim, sso.client() as attacker:
        callback = await sso.through_the_portal(attacker, ALICE)
        async with victim.get(callback, allow_redirects=False) as response:
            location, status, text = await outcome(sso, victim, response)
        assert (location, status) == ("/login/sso/failed", 400)
        assert "nicht abgeschlossen" in text
        assert session_cookies(victim) == []
        # nothing went to the provider: the code was never redeemed
        assert sso.provider.token_requests == []


async def test_a_callback_with_another_state_is_refused(sso):
    await sso.provision(ALICE, "alice")
    async with sso.client() as client:
        callback = await sso.through_the_portal(client, ALICE)
        forged = with_query(callback, state="A" * 43)
        async with client.get(forged, allow_redirects=False) as response:
            location, status, _ = await outcome(sso, client, response)
        assert (location, status) == ("/login/sso/failed", 400)
        assert session_cookies(client) == []
        assert sso.provider.token_requests == []


async def test_a_callback_without_state_is_refused(sso):
    async with sso.client() as client:
        await sso.start(client)
        async with client.get(
            f"{sso.url}/login/sso/callback?code=abc", allow_redirects=False
        ) as response:
            location, status, _ = await outcome(sso, client, response)
    assert (location, status) == ("/login/sso/failed", 400)


async def test_the_portal_reporting_an_error_ends_on_the_failed_page(sso):
    async with sso.client() as client:
        location = await sso.start(client)
        state = parse_qs(urlsplit(location).query)["state"][0]
        cancelled = f"{sso.url}/login/sso/callback?" + urlencode(
            {"state": state, "error": "access_denied"}
        )
        async with client.get(cancelled, allow_redirects=False) as response:
            location, status, _ = await outcome(sso, client, response)
    assert (location, status) == ("/login/sso/failed", 400)


# --- the code


async def test_a_used_code_is_refused_even_with_its_pending_sign_in(sso):
    """A callback replayed with a copy of the browser's cookie: the provider refuses the code
    the second time, and the replay gets no session."""
    await sso.provision(ALICE, "alice")
    async with sso.client() as client:
        callback = await sso.through_the_portal(client, ALICE)
        pending = {c.key: c.value for c in client.cookie_jar if c.key == "sprechzimmer_sso"}
        async with client.get(callback, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/dashboard"
    async with sso.client() as replay:
        replay.cookie_jar.update_cookies(pending, response_url=sso.url_of("/login/sso"))
        async with replay.get(callback, allow_redirects=False) as response:
            location, status, _ = await outcome(sso, replay, response)
        assert (location, status) == ("/login/sso/failed", 400)
        assert session_cookies(replay) == []
    assert len(sso.provider.token_requests) == 2


async def test_an_expired_code_is_refused(sso):
    await sso.provision(ALICE, "alice")
    sso.provider.set_code_lifetime(1)
    async with sso.client() as client:
        callback = await sso.through_the_portal(client, ALICE)
        code = parse_qs(urlsplit(callback).query)["code"][0]
        deadline = time.monotonic() + 10
        while not sso.provider.code_expired(code):
            assert time.monotonic() < deadline, "the provider's code never expired"
            await asyncio.sleep(0.1)
        async with client.get(callback, allow_redirects=False) as response:
            location, status, _ = await outcome(sso, client, response)
        assert (location, status) == ("/login/sso/failed", 400)
        assert session_cookies(client) == []


async def test_a_code_from_another_sign_in_fails_on_its_verifier(sso):
    """Code injection: the attacker puts the victim's code into their own callback, with their
    own state; their verifier is not the code's, so the provider refuses it (PKCE)."""
    await sso.provision(ALICE, "alice")
    async with sso.client() as victim, sso.client() as attacker:
        victims_callback = await sso.through_the_portal(victim, ALICE)
        code = parse_qs(urlsplit(victims_callback).query)["code"][0]
        attackers_callback = await sso.through_the_portal(attacker, STRANGER)
        injected = with_query(attackers_callback, code=code)
        async with attacker.get(injected, allow_redirects=False) as response:
            location, status, _ = await outcome(sso, attacker, response)
        assert (location, status) == ("/login/sso/failed", 400)
        assert session_cookies(attacker) == []
        # the victim's own code still works for the victim: it was never redeemed
        async with victim.get(victims_callback, allow_redirects=False) as response:
            assert response.headers["Location"] == "/dashboard"


# --- who signs in


async def test_a_portal_account_without_a_therapist_is_refused_with_403(sso):
    await sso.provision(ALICE, "alice")
    async with sso.client() as client:
        response = await sso.signed_in(client, STRANGER)
        location, status, text = await outcome(sso, client, response)
        assert (location, status) == ("/login/sso/refused", 403)
        assert "keinen Zugang" in text
        assert session_cookies(client) == []
        assert (await me(sso, client))[0] == 401


async def test_the_configured_claim_names_the_account_instead_of_sub(tmp_path, tcp_port):
    async with sso_serving(tmp_path, tcp_port, claim="portal_id") as sso:
        await sso.api.storage.provision_therapist("P-1017", "alice", None, "-")
        await sso.provision(STRANGER, "stranger")  # its sub is provisioned, but sub is not read
        sso.provider.id_token_claims = lambda claims: {**claims, "portal_id": "P-1017"}
        async with sso.client() as client:
            response = await sso.signed_in(client, STRANGER)
            assert response.headers["Location"] == "/dashboard"
            assert (await me(sso, client))[1]["username"] == "alice"


async def test_a_disabled_therapist_is_refused_with_403(sso):
    await sso.provision(DORA, "dora", disabled=True)
    async with sso.client() as client:
        response = await sso.signed_in(client, DORA)
        location, status, _ = await outcome(sso, client, response)
        assert (location, status) == ("/login/sso/refused", 403)
        assert session_cookies(client) == []


async def test_the_refused_page_speaks_english_when_asked_and_has_the_security_headers(sso):
    async with (
        sso.client() as client,
        client.get(
            f"{sso.url}/login/sso/refused", headers={"Accept-Language": "en-GB,en;q=0.9"}
        ) as response,
    ):
        assert response.status == 403
        assert '<html lang="en">' in await response.text()
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"


# --- the ID token


async def test_an_id_token_for_another_audience_is_refused(sso, caplog):
    await sso.provision(ALICE, "alice")
    sso.provider.id_token_claims = lambda claims: {**claims, "aud": ["another-client"]}
    await _refused_as_unavailable(sso)
    assert reasons(caplog, "login_sso_unavailable") == ["id_token_invalid_claim:aud"]


async def test_an_id_token_with_another_nonce_is_refused(sso, caplog):
    await sso.provision(ALICE, "alice")
    sso.provider.id_token_claims = lambda claims: {**claims, "nonce": "B" * 43}
    await _refused_as_unavailable(sso)
    assert reasons(caplog, "login_sso_unavailable") == ["id_token_invalid_claim:nonce"]


async def test_an_id_token_from_another_issuer_is_refused(sso, caplog):
    await sso.provision(ALICE, "alice")
    sso.provider.id_token_claims = lambda claims: {**claims, "iss": "https://elsewhere.example"}
    await _refused_as_unavailable(sso)
    assert reasons(caplog, "login_sso_unavailable") == ["id_token_invalid_claim:iss"]


async def test_an_expired_id_token_is_refused(sso, caplog):
    await sso.provision(ALICE, "alice")
    sso.provider.id_token_claims = lambda claims: {**claims, "exp": int(time.time()) - 3600}
    await _refused_as_unavailable(sso)
    assert reasons(caplog, "login_sso_unavailable") == ["id_token_expired_token:exp"]


async def test_an_id_token_whose_signature_is_not_the_published_keys_is_refused(sso, caplog):
    await sso.provision(ALICE, "alice")
    sso.provider.publish_other_key = True
    await _refused_as_unavailable(sso)
    assert reasons(caplog, "login_sso_unavailable") == ["id_token_bad_signature"]


async def test_the_provider_rewriting_nothing_still_signs_in(sso):
    """The claim-rewriting switch itself breaks nothing: the tests above fail for their claim."""
    await sso.provision(ALICE, "alice")
    sso.provider.id_token_claims = lambda claims: claims
    async with sso.client() as client:
        response = await sso.signed_in(client, ALICE)
    assert response.headers["Location"] == "/dashboard"


async def _refused_as_unavailable(sso: SsoSetup) -> None:
    async with sso.client() as client:
        response = await sso.signed_in(client, ALICE)
        location, status, _ = await outcome(sso, client, response)
        assert (location, status) == ("/login/sso/unavailable", 502)
        assert session_cookies(client) == []
        assert (await me(sso, client))[0] == 401


# --- the provider down


async def test_the_portal_down_at_the_start_gives_a_502_page_not_a_traceback(sso):
    await sso.provider.stop()
    async with (
        sso.client() as client,
        client.get(f"{sso.url}/login/sso", allow_redirects=False) as response,
    ):
        assert response.status == 502
        text = await response.text()
    assert "nicht erreichbar" in text
    assert "Traceback" not in text


async def test_the_portal_gone_before_the_code_exchange_gives_the_unavailable_page(sso):
    await sso.provision(ALICE, "alice")
    async with sso.client() as client:
        callback = await sso.through_the_portal(client, ALICE)
        await sso.provider.stop()
        async with client.get(callback, allow_redirects=False) as response:
            location, status, _ = await outcome(sso, client, response)
        assert (location, status) == ("/login/sso/unavailable", 502)
        assert session_cookies(client) == []


# --- throttling


async def test_a_pending_sign_in_replayed_too_often_is_throttled(tmp_path, tcp_port):
    """Callbacks count like password attempts, the pending sign-in as the account: after
    `login_attempts_per_account` failures it answers 429 without asking the provider."""
    extra = "limits:\n  login_attempts_per_account: 2\n"
    async with sso_serving(tmp_path, tcp_port, extra) as sso:
        async with sso.client() as client:
            callback = await sso.through_the_portal(client, STRANGER)
            pending = {c.key: c.value for c in client.cookie_jar if c.key == "sprechzimmer_sso"}
        statuses = []
        for _ in range(3):
            async with sso.client() as replay:
                replay.cookie_jar.update_cookies(pending, response_url=sso.url_of("/login/sso"))
                async with replay.get(callback, allow_redirects=False) as response:
                    statuses.append(response.status)
                    retry_after = response.headers.get("Retry-After")
        assert statuses == [303, 303, 429]
        assert retry_after is not None and int(retry_after) > 0
        assert len(sso.provider.token_requests) == 2


# --- helpers


def _sealed(sso: SsoSetup, secret: str, therapist_id: int) -> str:
    """A TOTP secret sealed as the app seals it (the data directory's session secret)."""
    session_secret = load_or_create_session_secret(sso.api.config.storage.data_dir)
    return SecretBox(session_secret).seal(secret, therapist_id)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
