"""Parallel sign-in bursts (issue #11, item 4), over real HTTP with real argon2 checks.

An attempt is counted before its password is checked, so parallel guesses cannot all slip in
under the limit; and one address gets one password check at a time, so its burst cannot keep
another therapist's sign-in waiting behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from signaling.config import load_config
from tests.signaling.api_server import PASSWORD, PUBLIC_URL, ApiServer, call, serving

ATTACKER = "198.51.100.66"
VICTIM = "203.0.113.10"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiServer]:
    # The test client stands in for a reverse proxy on 127.0.0.1 that names each request's
    # client address in X-Forwarded-For, so one test can speak from several addresses.
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}\n"
        f"server:\n  public_url: {PUBLIC_URL}\n  trusted_proxies: ['127.0.0.1/32']\n"
        "limits:\n  login_attempts_per_account: 3\n  login_attempts_per_address: 20\n"
        "  login_window_seconds: 600\n",
        encoding="utf-8",
    )
    async with serving(load_config(path)) as server:
        await server.add_therapist("alice")
        await server.add_therapist("bob")
        yield server


async def login(api: ApiServer, username: str, password: str, address: str) -> tuple[int, Any]:
    async with api.client() as client:
        status, body, _ = await call(
            client,
            "POST",
            "/api/therapist/login",
            json={"username": username, "password": password},
            headers={"X-Forwarded-For": address},
        )
        return status, body


async def test_parallel_guesses_on_one_account_are_counted_before_they_are_checked(api):
    guesses = [login(api, "alice", f"wrong-{index}", ATTACKER) for index in range(12)]
    statuses = sorted(status for status, _ in await asyncio.gather(*guesses))
    # the account allows 3 attempts in the window: 3 are checked, the other 9 are refused
    assert statuses.count(401) == 3, statuses
    assert statuses.count(429) == 9, statuses


async def test_the_right_password_sent_while_guesses_are_being_checked_is_refused(api):
    answered: list[int] = []

    async def guess(index: int) -> None:
        answered.append((await login(api, "alice", f"wrong-{index}", ATTACKER))[0])

    guesses = [asyncio.create_task(guess(index)) for index in range(11)]
    # the first answer means the burst is in the server, its other guesses still being checked
    async with asyncio.timeout(60):
        while not answered:
            await asyncio.sleep(0.01)
    status, body = await login(api, "alice", PASSWORD, VICTIM)
    await asyncio.gather(*guesses)
    assert status == 429, f"the password was checked after {answered} guesses: {body}"


async def test_a_parallel_burst_from_one_address_is_checked_only_up_to_the_address_limit(api):
    # one guess per made-up username, so no account limit applies: only the address limit
    burst = [login(api, f"user{index}", "wrong", ATTACKER) for index in range(60)]
    statuses = sorted(status for status, _ in await asyncio.gather(*burst))
    assert statuses.count(401) == 20, statuses
    assert statuses.count(429) == 40, statuses


async def test_a_burst_from_one_address_does_not_keep_another_therapist_waiting(api):
    finished: list[str] = []

    async def attack(index: int) -> None:
        status, _ = await login(api, f"user{index}", "wrong", ATTACKER)
        if status == 401:
            finished.append("attacker")

    burst = [asyncio.create_task(attack(index)) for index in range(20)]
    # once the first guess has been answered the others are queued in the server
    async with asyncio.timeout(60):
        while not finished:
            await asyncio.sleep(0.01)
    started = time.monotonic()
    status, body = await login(api, "bob", PASSWORD, VICTIM)
    took = time.monotonic() - started
    finished.append("bob")
    await asyncio.gather(*burst)
    assert status == 200, body
    checked_after_bob = len(finished) - finished.index("bob") - 1
    # Bob waits for at most the one check the attacker's address may run at a time (and one
    # that was already running), not for the whole queue of the burst.
    assert checked_after_bob >= 14, (
        f"Bob's sign-in waited behind the burst: only {checked_after_bob} of its 20 checks "
        f"came after his ({took:.2f} s), order {finished}"
    )
