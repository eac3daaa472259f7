"""Failed logins slow down per account and per client address (over real HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.signaling.api_server import PASSWORD, ApiServer, call, serving, write_config

LIMITS = """limits:
  login_attempts_per_account: 3
  login_attempts_per_address: 5
  login_window_seconds: 600
"""


@pytest.fixture
async def api(tmp_path) -> AsyncIterator[ApiServer]:
    async with serving(write_config(tmp_path, extra=LIMITS)) as server:
        await server.add_therapist("alice")
        yield server


async def login(api: ApiServer, username: str, password: str):
    async with api.client() as client:
        return await call(
            client,
            "POST",
            "/api/therapist/login",
            json={"username": username, "password": password},
        )


async def test_account_is_throttled_with_429_and_retry_after_after_too_many_failures(api):
    for _ in range(3):
        assert (await login(api, "alice", "wrong"))[0] == 401
    status, body, headers = await login(api, "alice", "wrong")
    assert status == 429
    assert body["error"]["code"] == "rate_limited"
    assert 1 <= int(headers["Retry-After"]) <= 600


async def test_throttled_account_is_refused_even_with_the_right_password(api):
    for _ in range(3):
        await login(api, "alice", "wrong")
    status, _, headers = await login(api, "alice", PASSWORD)
    assert status == 429
    assert "Set-Cookie" not in headers


async def test_unknown_username_is_throttled_exactly_like_a_real_one(api):
    for _ in range(3):
        await login(api, "alice", "wrong")
        await login(api, "nobody", "wrong")
    real = await login(api, "alice", "wrong")
    unknown = await login(api, "nobody", "wrong")
    assert real[:2] == unknown[:2]
    assert real[0] == 429


async def test_address_is_throttled_across_usernames(api):
    # Five failures on five different accounts: each account is under its limit of 3.
    for index in range(5):
        assert (await login(api, f"user{index}", "wrong"))[0] == 401
    status, _, headers = await login(api, "alice", PASSWORD)
    assert status == 429
    assert "Retry-After" in headers


async def test_successful_login_clears_the_accounts_failures(api):
    for _ in range(2):
        await login(api, "alice", "wrong")
    assert (await login(api, "alice", PASSWORD))[0] == 200
    for _ in range(2):
        assert (await login(api, "alice", "wrong"))[0] == 401
