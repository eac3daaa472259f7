"""SIGTERM: joins are refused, everyone in a room is told and disconnected with 1001, the
appointment stays open for after the restart, and the process exits 0 within 10 seconds."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from signaling.app import shut_down
from signaling.credentials import hash_token
from signaling.drain import DRAIN
from signaling.storage import AppointmentState
from signaling.storage.sqlite import SqliteStorage
from tests.ports import PortRange, reserve_ports
from tests.signaling.api_server import media_config, write_config
from tests.signaling.test_metrics import Served, scrape, serving_with_metrics, value
from tests.signaling.test_ws_call import Side, book, consenting_client


@pytest.fixture
async def served(tmp_path: Path, udp_ports: PortRange) -> AsyncIterator[Served]:
    config = write_config(tmp_path, extra=media_config(udp_ports))
    async with serving_with_metrics(config) as served:
        await served.api.add_therapist("alice")
        yield served


async def closed_with(side: Side) -> int:
    """The code of the server's close frame. (``ws.close_code`` can read 1006 instead: aiohttp
    drops the transport once its close frame is out, racing the client's reply.)"""
    async with asyncio.timeout(15):
        msg = await side.ws.receive()
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    return msg.data


async def test_while_draining_a_join_is_refused_with_shutting_down_and_1001(served):
    therapist, appointment_id, _ = await book(served.api)
    served.app[DRAIN].begin()
    try:
        await therapist.connect()
        await therapist.send(type="join", appointment=appointment_id)
        assert (await therapist.next("error"))["code"] == "shutting_down"
        assert await closed_with(therapist) == 1001
    finally:
        await therapist.close()
    text, _ = await scrape(served.metrics_url)
    assert value(text, "sprechzimmer_joins_rejected_total", reason="shutting_down") == 1


async def test_shutdown_tells_both_closes_every_socket_and_keeps_the_appointment_open(served):
    api = served.api
    therapist, appointment_id, token = await book(api)
    client = await consenting_client(api, token)
    dashboard_http, _ = await api.signed_in("alice")
    dashboard = Side(dashboard_http)
    try:
        for side, join in (
            (therapist, {"appointment": appointment_id}),
            (client, {"invite": token}),
        ):
            await side.connect()
            await side.send(type="join", **join)
            await side.next("joined")
        await dashboard.connect()
        await dashboard.send(type="watch")
        await dashboard.next("status")

        await shut_down(served.app)

        for side in (therapist, client):
            assert (await side.next("ended"))["reason"] == "shutdown"
            assert await closed_with(side) == 1001
        assert (await dashboard.next("status"))["state"] == "invited"  # not ended
        assert await closed_with(dashboard) == 1001
    finally:
        for side in (therapist, client, dashboard):
            await side.close()
    appointment = await api.storage.get_appointment(appointment_id)
    assert appointment.state == AppointmentState.SCHEDULED
    assert appointment.both_present_at is not None  # the session's start survives the restart
    assert await api.storage.get_appointment_by_token_hash(hash_token(token)) is not None
    therapist_row = await api.storage.get_therapist("alice")
    assert await api.storage.list_session_statistics(therapist_row.id) == []


# --- the real process


PASSWORD = "correct horse battery staple"


def cli(config: Path, *args: str, stdin: str = "") -> None:
    done = subprocess.run(
        [sys.executable, "-m", "signaling", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def wait_for_line(process: subprocess.Popen, start: str) -> str:
    line = process.stdout.readline()
    if not line:  # it ended before printing: what it said on the way out is the reason
        raise AssertionError(f"the server ended before {start!r}:\n{process.stderr.read()}")
    assert line.startswith(start), line
    return line


async def test_sigterm_ends_the_call_with_1001_and_the_process_exits_0_within_10_s(
    tmp_path, udp_ports
):
    # The server's own ports, held for the test: a port bound and let go again (port 0) lies in
    # the ephemeral range, where any socket of the machine may take it before the server does.
    tcp_ports = reserve_ports(2, tcp=True)
    port, metrics_port = tcp_ports.low, tcp_ports.high
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"server:\n  port: {port}\n  public_url: {url}\n"
        f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}\n"
        f'metrics:\n  listen: "127.0.0.1:{metrics_port}"\n' + media_config(udp_ports),
        encoding="utf-8",
    )
    cli(config, "therapist", "add", "alice", stdin=PASSWORD + "\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        await asyncio.to_thread(wait_for_line, process, "Sprechzimmer is listening")
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=url, cookie_jar=jar) as http:
            async with http.post(
                "/api/therapist/login", json={"username": "alice", "password": PASSWORD}
            ) as response:
                assert response.status == 200
                csrf = (await response.json())["csrf_token"]
            start = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
            async with http.post(
                "/api/therapist/appointments",
                json={"starts_at": start},
                headers={"X-CSRF-Token": csrf, "Origin": url},
            ) as response:
                assert response.status == 201
                appointment_id = (await response.json())["id"]
            metrics_text, _ = await scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            assert "sprechzimmer_build_info" in metrics_text
            ws = await http.ws_connect("/ws", headers={"Origin": url})
            await ws.send_json({"v": 1, "type": "join", "appointment": appointment_id})
            assert (await ws.receive_json(timeout=10))["type"] == "joined"

            sent_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            ended = json.loads((await ws.receive(timeout=10)).data)
            assert (ended["type"], ended["reason"]) == ("ended", "shutdown")
            closing = await ws.receive(timeout=10)
            assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
            await ws.close()
        returncode = await asyncio.to_thread(process.wait, 10)
        assert time.monotonic() - sent_at < 10
        assert returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
        tcp_ports.release()
    assert "event=server_stopping" in stderr and "event=server_stopped" in stderr
    storage = await SqliteStorage.open(tmp_path / "data" / "db.sqlite3")
    try:
        appointment = await storage.get_appointment(appointment_id)
    finally:
        await storage.close()
    assert appointment.state == AppointmentState.SCHEDULED  # joinable again after the restart
