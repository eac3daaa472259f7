"""A restart loses nothing a person holds: the same SQLite file, a new process-worth of app, and
the client's link, the therapist's sign-in and the appointment are as they were."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from signaling.config import Config
from signaling.storage import Appointment
from tests.hardening.app_server import app_serving
from tests.ports import PortRange, reserve_ports
from tests.sfu.media_peers import use_loopback_only
from tests.signaling.api_server import PUBLIC_URL, ApiServer, call, media_config, write_config
from tests.signaling.test_ws_call import Side, book, close_code, consenting_client


@dataclass
class Restarted:
    """The second server, and what the browsers and the database held before the restart."""

    api: ApiServer
    therapist_cookies: aiohttp.abc.AbstractCookieJar
    client_cookies: aiohttp.abc.AbstractCookieJar
    appointment_id: int
    token: str
    shown: dict[str, Any]  # the therapist's view of the appointment
    stored: Appointment

    def browser(self, cookies: aiohttp.abc.AbstractCookieJar | None = None) -> Side:
        """A browser that comes back after the restart with the cookies it kept."""
        jar = cookies if cookies is not None else aiohttp.CookieJar(unsafe=True)
        return Side(aiohttp.ClientSession(base_url=self.api.url, cookie_jar=jar))


@pytest.fixture
async def restarted(tmp_path: Path, udp_ports: PortRange) -> AsyncIterator[Restarted]:
    use_loopback_only()
    config = write_config(tmp_path, extra=media_config(udp_ports))
    # The second server must come up on the first one's port. Port 0 would give an ephemeral
    # port, which any socket of the machine may take while no server holds it.
    with reserve_ports(1, tcp=True) as reserved:
        async with restarting(config, reserved.low) as restarted:
            yield restarted


@asynccontextmanager
async def restarting(config: Config, port: int) -> AsyncIterator[Restarted]:
    """Alice books and the client consents on one server; then a new one on the same port."""
    async with app_serving(config, port=port) as (api, _):
        await api.add_therapist("alice")
        therapist, appointment_id, token = await book(api)
        client = await consenting_client(api, token)
        path = f"/api/therapist/appointments/{appointment_id}"
        status, shown, _ = await call(therapist.http, "GET", path)
        assert status == 200, shown
        stored = await api.storage.get_appointment(appointment_id)
        cookies = therapist.http.cookie_jar, client.http.cookie_jar
        await therapist.close()  # the TCP connections go; the browsers keep their cookies
        await client.close()
    async with app_serving(config, port=port) as (api, _):
        yield Restarted(api, *cookies, appointment_id, token, shown, stored)


async def test_after_a_restart_the_appointment_is_unchanged(restarted):
    therapist = restarted.browser(restarted.therapist_cookies)
    try:
        path = f"/api/therapist/appointments/{restarted.appointment_id}"
        status, shown, _ = await call(therapist.http, "GET", path)
    finally:
        await therapist.close()
    assert status == 200, shown
    assert shown == restarted.shown
    assert await restarted.api.storage.get_appointment(restarted.appointment_id) == (
        restarted.stored
    )


async def test_after_a_restart_the_consenting_browser_still_gets_in(restarted):
    client = restarted.browser(restarted.client_cookies)
    try:
        status, info, _ = await call(client.http, "GET", f"/api/client/{restarted.token}")
        assert status == 200 and info["bound"] is True, info
        await client.connect()
        await client.send(type="join", invite=restarted.token)
        assert (await client.next("joined"))["seat"] == "client"
    finally:
        await client.close()


async def test_after_a_restart_another_browser_is_still_refused(restarted):
    other = restarted.browser()
    try:
        status, body, _ = await call(
            other.http,
            "POST",
            f"/api/client/{restarted.token}/consent",
            json={
                "terms_version": restarted.stored.terms_version,
                "accept_terms": True,
                "consent_processing": True,
            },
            headers={"Origin": PUBLIC_URL},
        )
        assert status == 404 and body["error"]["code"] == "invalid_link", body
        await other.connect()
        await other.send(type="join", invite=restarted.token)
        assert (await other.next("error"))["code"] == "used"
        assert await close_code(other) == 4003
    finally:
        await other.close()


async def test_after_a_restart_the_therapist_is_still_signed_in(restarted):
    therapist = restarted.browser(restarted.therapist_cookies)
    try:
        status, me, _ = await call(therapist.http, "GET", "/api/therapist/me")
        assert status == 200 and me["username"] == "alice", me
        await therapist.connect()
        await therapist.send(type="join", appointment=restarted.appointment_id)
        assert (await therapist.next("joined"))["seat"] == "therapist"
    finally:
        await therapist.close()
