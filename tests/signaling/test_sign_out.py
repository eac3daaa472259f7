"""Logout, disable and reset-password end what is already open (issue #11, item 5).

Logout runs in the server's process and closes the therapist's sockets at once. `therapist
disable` and `therapist reset-password` run in another process (the CLI, here a real subprocess
on the same SQLite file): they delete the sessions in the database, and the server notices on
the socket's next message or within `SESSION_RECHECK_SECONDS`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signaling.login_sessions import SESSION_RECHECK_SECONDS
from tests.signaling.api_server import PUBLIC_URL, ApiServer, call, serving, write_config
from tests.signaling.test_ws_call import Side, book, close_code, consenting_client, seated

NEW_PASSWORD = "a new password 42"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    async with serving(write_config(tmp_path)) as api:
        await api.add_therapist("alice")
        yield api


async def cli(tmp_path: Path, *args: str, stdin: str = "") -> None:
    """The `sprechzimmer` command in its own process, on the server's configuration."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signaling",
        *args,
        "--config",
        str(tmp_path / "api-config.yaml"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        # the code under test, wherever the installed package points
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode == 0, (out, err)


async def logout(side: Side, csrf: str) -> None:
    status, body, _ = await call(
        side.http,
        "POST",
        "/api/therapist/logout",
        headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
    )
    assert status == 204, body


async def signed_out(side: Side, timeout: float) -> None:
    """The server tells the socket it is signed out and closes it with 4001, within timeout."""
    async with asyncio.timeout(timeout):
        error = await side.next("error", timeout=timeout)
        assert error["code"] == "unauthorized", error
        assert await close_code(side) == 4001


async def me(side: Side) -> int:
    return (await call(side.http, "GET", "/api/therapist/me"))[0]


async def test_logout_closes_the_therapists_dashboard_socket_at_once(server):
    http, csrf = await server.signed_in("alice")
    dashboard = Side(http)
    try:
        await dashboard.connect()
        await dashboard.send(type="watch")
        await logout(dashboard, csrf)
        # at once: well before the periodic re-check could have noticed
        await signed_out(dashboard, timeout=SESSION_RECHECK_SECONDS / 2)
    finally:
        await dashboard.close()


async def test_logout_takes_the_therapist_out_of_a_call_and_the_client_sees_them_gone(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    csrf = (await call(therapist.http, "GET", "/api/therapist/me"))[1]["csrf_token"]
    try:
        await seated(therapist, appointment=appointment_id)
        await seated(client, invite=token)
        assert (await therapist.next("peer"))["state"] == "present"
        await logout(therapist, csrf)
        await signed_out(therapist, timeout=SESSION_RECHECK_SECONDS / 2)
        assert (await client.next("peer"))["state"] == "gone"
    finally:
        await therapist.close()
        await client.close()


async def test_after_logout_a_socket_opened_before_cannot_join(server):
    therapist, appointment_id, _ = await book(server)
    csrf = (await call(therapist.http, "GET", "/api/therapist/me"))[1]["csrf_token"]
    other_tab = Side(server.client())
    other_tab.http.cookie_jar.update_cookies(
        {c.key: c.value for c in therapist.http.cookie_jar}, therapist.http._base_url
    )
    try:
        await other_tab.connect()  # signed in when it opened; has not joined yet
        await logout(therapist, csrf)
        await other_tab.send(type="join", appointment=appointment_id)
        error = await other_tab.next("error")
        assert error["code"] == "unauthorized", error
        assert await close_code(other_tab) == 4001
    finally:
        await therapist.close()
        await other_tab.close()


async def test_logout_ends_every_session_of_the_therapist(server):
    first_http, first_csrf = await server.signed_in("alice")
    second_http, _ = await server.signed_in("alice")
    first, second = Side(first_http), Side(second_http)
    try:
        await logout(first, first_csrf)
        assert await me(second) == 401
    finally:
        await first.close()
        await second.close()


async def test_cli_disable_closes_open_sockets_within_the_recheck_period(server, tmp_path):
    http, _ = await server.signed_in("alice")
    dashboard = Side(http)
    try:
        await dashboard.connect()
        await dashboard.send(type="watch")
        await cli(tmp_path, "therapist", "disable", "alice")
        await signed_out(dashboard, timeout=SESSION_RECHECK_SECONDS * 3)
        assert await me(dashboard) == 401
    finally:
        await dashboard.close()


async def test_cli_reset_password_ends_old_sessions_and_their_sockets(server, tmp_path):
    http, _ = await server.signed_in("alice")
    dashboard = Side(http)
    try:
        await dashboard.connect()
        await dashboard.send(type="watch")
        await cli(tmp_path, "therapist", "reset-password", "alice", stdin=NEW_PASSWORD + "\n")
        await signed_out(dashboard, timeout=SESSION_RECHECK_SECONDS * 3)
        assert await me(dashboard) == 401
    finally:
        await dashboard.close()


async def test_a_message_after_a_cli_disable_is_refused_without_waiting_for_the_recheck(
    server, tmp_path
):
    therapist, appointment_id, _ = await book(server)
    try:
        await therapist.connect()
        await cli(tmp_path, "therapist", "disable", "alice")
        await therapist.send(type="join", appointment=appointment_id)
        error = await therapist.next("error", timeout=SESSION_RECHECK_SECONDS / 2)
        assert error["code"] == "unauthorized", error
    finally:
        await therapist.close()


async def test_disable_then_enable_does_not_revive_the_old_cookie(server, tmp_path):
    http, _ = await server.signed_in("alice")
    old = Side(http)
    try:
        assert await me(old) == 200
        await cli(tmp_path, "therapist", "disable", "alice")
        await cli(tmp_path, "therapist", "enable", "alice")
        assert await me(old) == 401
    finally:
        await old.close()
