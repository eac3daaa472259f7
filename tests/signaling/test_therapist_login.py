"""Therapist sign-in, the session cookie and sign-out over real HTTP."""

from __future__ import annotations

from tests.signaling.api_server import PASSWORD, serving, write_config
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest


async def post_login(api, username: str, password: str):
    async with (
        api.client() as client,
        client.post(
            "/api/therapist/login", json={"username": username, "password": password}
        ) as response,
    ):
        return response.status, await response.json(), response.headers.getall("Set-Cookie", [])


async def test_login_with_right_password_returns_username_and_csrf_token(api):
    await api.add_therapist("alice")
    status, body, cookies = await post_login(api, "alice", PASSWORD)
    assert status == 200
    assert body["username"] == "alice"
    assert len(body["csrf_token"]) >= 43
    assert len(cookies) == 1


async def test_login_with_wrong_password_is_refused(api):
    await api.add_therapist("alice")
    status, body, cookies = await post_login(api, "alice", "wrong password")
    assert status == 401
    assert body["error"]["code"] == "invalid_credentials"
    assert cookies == []


async def test_unknown_user_gets_the_same_answer_as_wrong_password(api):
    await api.add_therapist("alice")
    wrong_password = await post_login(api, "alice", "wrong password")
    unknown_user = await post_login(api, "mallory", "wrong password")
    assert unknown_user == wrong_password


async def test_disabled_account_cannot_log_in(api):
    await api.add_therapist("alice", disabled=True)
    status, body, cookies = await post_login(api, "alice", PASSWORD)
    assert status == 403
    assert body["error"]["code"] == "account_disabled"
    assert cookies == []


async def test_session_cookie_is_httponly_samesite_strict_and_not_secure_over_plain_http(api):
    await api.add_therapist("alice")
    _, _, cookies = await post_login(api, "alice", PASSWORD)
    flags = [part.strip().lower() for part in cookies[0].split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/" in flags
    assert "secure" not in flags


async def test_session_cookie_is_secure_when_the_public_url_is_https(tmp_path):
    async with serving(write_config(tmp_path, public_url="https://praxis.example")) as api:
        await api.add_therapist("alice")
        _, _, cookies = await post_login(api, "alice", PASSWORD)
    assert "secure" in [part.strip().lower() for part in cookies[0].split(";")]


async def test_session_cookie_holds_a_token_whose_hash_only_is_stored(api):
    await api.add_therapist("alice")
    client, _ = await api.signed_in("alice")
    async with client:
        token = next(iter(client.cookie_jar)).value
    assert token.encode() not in api.database_bytes()


async def test_me_returns_username_and_the_sessions_csrf_token(api):
    await api.add_therapist("alice")
    client, csrf = await api.signed_in("alice")
    async with client, client.get("/api/therapist/me") as response:
        assert response.status == 200
        assert await response.json() == {
            "username": "alice",
            "csrf_token": csrf,
            "is_admin": False,
            "invitation_mail": None,  # mail is off by default
        }


async def test_me_without_a_session_is_401(api):
    async with api.client() as client, client.get("/api/therapist/me") as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_logout_ends_the_session_on_the_server(api):
    await api.add_therapist("alice")
    client, csrf = await api.signed_in("alice")
    async with client:
        cookie = next(iter(client.cookie_jar))
        async with client.post("/api/therapist/logout", headers={"X-CSRF-Token": csrf}) as response:
            assert response.status == 204
    # Replaying the old cookie must not work: the session is gone, not just the cookie.
    async with api.client() as replay:
        replay.cookie_jar.update_cookies({cookie.key: cookie.value})
        async with replay.get("/api/therapist/me") as response:
            assert response.status == 401


async def test_disabling_an_account_ends_its_open_sessions(api):
    await api.add_therapist("alice")
    client, _ = await api.signed_in("alice")
    await api.storage.set_therapist_disabled("alice", True)
    async with client, client.get("/api/therapist/me") as response:
        assert response.status == 401


async def test_login_without_json_body_is_415(api):
    async with (
        api.client() as client,
        client.post("/api/therapist/login", data="username=alice&password=x") as response,
    ):
        assert response.status == 415
        assert (await response.json())["error"]["code"] == "unsupported_media_type"
