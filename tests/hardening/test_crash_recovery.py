"""`kill -9` mid-call (issue #11, item 8): a real `sprechzimmer serve` process is killed with
SIGKILL while both people are in the room, and a fresh one starts on the same SQLite file.

No room survives a process, so the new one resets `waiting` and `in_call` to `scheduled` at start
(the client's consent and binding stay): the appointment can be edited, relinked and cancelled
again, and the client's browser gets back in.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from signaling.config import load_config
from signaling.storage import AppointmentState
from signaling.storage.sqlite import SqliteStorage
from tests.ports import PortRange, reserve_ports
from tests.signaling.api_server import PUBLIC_URL, ApiServer, call, media_config
from tests.signaling.test_ws_call import Side, book, consenting_client, seated

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server_port() -> Iterator[int]:
    with reserve_ports(1, tcp=True) as ports:
        yield ports.low


@asynccontextmanager
async def serve_process(config: Path) -> AsyncIterator[subprocess.Popen[str]]:
    """`python -m signaling serve` until it says it listens; killed (if still alive) at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        if not line.startswith("Sprechzimmer is listening"):
            raise AssertionError(f"the server did not start: {line!r}\n{process.stderr.read()}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        process.stdout.close()
        process.stderr.close()


@dataclass
class Killed:
    """The restarted server, and what the database and the client held before the kill."""

    api: ApiServer
    appointment_id: int
    token: str
    client: Side
    therapist: Side
    csrf: str


@pytest.fixture
async def killed_mid_call(
    tmp_path: Path, server_port: int, udp_ports: PortRange
) -> AsyncIterator[Killed]:
    url = f"http://127.0.0.1:{server_port}"
    path = tmp_path / "serve.yaml"
    # public_url is the test's Origin; the server listens on the reserved port
    path.write_text(
        f"server:\n  port: {server_port}\n  public_url: {PUBLIC_URL}\n"
        f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}\n"
        'metrics:\n  listen: ""\n' + media_config(udp_ports),
        encoding="utf-8",
    )
    config = load_config(path)
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    api = ApiServer(url, config, storage, config.storage.sqlite_path)
    sides: list[Side] = []
    try:
        await api.add_therapist("alice")
        async with serve_process(path) as process:
            therapist, appointment_id, token = await book(api)
            client = await consenting_client(api, token)
            sides += [therapist, client]
            await seated(therapist, appointment=appointment_id)
            await seated(client, invite=token)
            stored = await storage.get_appointment(appointment_id)
            assert stored.state is AppointmentState.IN_CALL, stored
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait, 30)
        # the browsers come back with the cookies they kept, on new connections
        therapist, client = Side(therapist.http), Side(client.http)
        async with serve_process(path):
            status, me, _ = await call(therapist.http, "GET", "/api/therapist/me")
            assert status == 200, me
            yield Killed(api, appointment_id, token, client, therapist, me["csrf_token"])
            await therapist.close()
            await client.close()
    finally:
        for side in sides:
            await side.close()
        await storage.close()


async def test_after_a_kill_mid_call_the_appointment_is_scheduled_with_its_consent(
    killed_mid_call,
):
    appointment = await killed_mid_call.api.storage.get_appointment(killed_mid_call.appointment_id)
    assert appointment.state is AppointmentState.SCHEDULED
    assert appointment.client_binding_hash is not None
    assert appointment.consent_at is not None
    assert appointment.client_display_name == "Kim"


async def test_after_a_kill_mid_call_the_client_gets_back_in(killed_mid_call):
    joined = await seated(killed_mid_call.client, invite=killed_mid_call.token)
    assert joined["seat"] == "client"


async def test_after_a_kill_mid_call_the_therapist_can_edit_and_cancel(killed_mid_call):
    path = f"/api/therapist/appointments/{killed_mid_call.appointment_id}"
    headers = {"X-CSRF-Token": killed_mid_call.csrf, "Origin": PUBLIC_URL}
    http = killed_mid_call.therapist.http
    status, body, _ = await call(http, "PATCH", path, json={"note": "later"}, headers=headers)
    assert status == 200, body
    status, body, _ = await call(http, "DELETE", path, headers=headers)
    assert status == 200, body
    assert body["state"] == "cancelled" and body["has_invite"] is False
