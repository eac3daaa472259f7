"""A call in real browsers across two nodes: the therapist's page on n1, the client's on n2 (two
node processes sharing PostgreSQL and Redis), Debian's chromium with fake media. Each decodes the
other's picture and hears the other; the signaling crosses the nodes through Redis, E2EE keys
included, and the media goes straight to the room's node.

Each node has its own origin here (its own address as `public_url`): a browser cannot be told to
resolve one name to two ports, and the therapist stays on n1 and the client on n2 anyway, as a
load balancer with sticky connections would keep them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from signaling.storage.postgresql import PostgresqlStorage
from tests.cluster.node_processes import NodeProcess, node_cluster
from tests.cluster.test_calls_across_nodes import postgres as postgres  # the fixture, for pytest
from tests.postgres_server import PostgresServer
from tests.privacy_canaries import remember
from tests.redis_server import RedisServer
from tests.signaling.api_server import _PASSWORD_HASH, PASSWORD
from tests.web.browser_server import DESKTOP
from tests.web.browser_server import browser as browser  # the fixture, for pytest
from tests.web.call_matrix import SHOWS_BLUE, SHOWS_RED, until
from tests.web.test_call_browser import BLUE, RED, camera, media_advances

# One event loop per module: the module shares one chromium.
pytestmark = pytest.mark.asyncio(loop_scope="module")

MEDIA_SECONDS = 30.0
ENCRYPTED = '["encrypted", "verified"].includes(window.sprechzimmerCall.e2eeState.state)'
SAFETY_CODE = "window.sprechzimmerCall.e2eeState.safetyCode"


async def context(browser: Browser, colour: tuple[int, int, int]) -> BrowserContext:
    made = await browser.new_context(viewport=DESKTOP, locale="de-DE", timezone_id="Europe/Berlin")
    await made.add_init_script(camera(colour))
    return made


async def therapist_opens_a_new_call(browser: Browser, n1: NodeProcess) -> tuple[Page, str]:
    """Alice signs in on n1's login page, books through n1's API with the page's cookie, and
    opens the call page; returns it and the invite's token."""
    therapist = await context(browser, RED)
    page = await therapist.new_page()
    await page.goto(f"{n1.url}/login")
    await page.locator("#username").fill("alice")
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#btn-login").click()
    await page.wait_for_url(f"{n1.url}/dashboard")
    me = await (await therapist.request.get(f"{n1.url}/api/therapist/me")).json()
    remember(me["csrf_token"])
    starts_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    response = await therapist.request.post(
        f"{n1.url}/api/therapist/appointments",
        data={"starts_at": starts_at},
        headers={"X-CSRF-Token": me["csrf_token"], "Origin": n1.url},
    )
    assert response.status == 201, await response.text()
    appointment = await response.json()
    token = appointment["invite_url"].rsplit("/j/", 1)[1]
    remember(token)
    await page.goto(f"{n1.url}/call/{appointment['id']}")
    return page, token


async def client_joins(browser: Browser, n2: NodeProcess, token: str) -> Page:
    page = await (await context(browser, BLUE)).new_page()
    await page.goto(f"{n2.url}/j/{token}")
    await page.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await page.get_by_label("Ich willige ein").check()
    await page.get_by_role("button", name="Beitreten").click()
    return page


async def test_therapist_on_one_node_and_client_on_another_see_and_hear_each_other(
    browser: Browser,
    tmp_path: Path,
    shared_redis: RedisServer,
    key_prefix: str,
    postgres: PostgresServer,
):
    dsn = postgres.create_database()
    storage = await PostgresqlStorage.open(dsn, pool_size=1)
    try:
        await storage.add_therapist("alice", _PASSWORD_HASH)
    finally:
        await storage.close()
    async with node_cluster(tmp_path, dsn, shared_redis, key_prefix, own_origins=True) as cluster:
        n1, n2 = cluster.node("n1"), cluster.node("n2")
        try:
            therapist, token = await therapist_opens_a_new_call(browser, n1)
            client = await client_joins(browser, n2, token)
            await media_advances(therapist, MEDIA_SECONDS)
            await media_advances(client, MEDIA_SECONDS)
            await until(therapist, SHOWS_BLUE, "the therapist (n1) saw no blue client picture")
            await until(client, SHOWS_RED, "the client (n2) saw no red therapist picture")
            # the key exchange crossed the nodes too: both encrypt, with one safety code
            for page, who in ((therapist, "therapist"), (client, "client")):
                await until(page, ENCRYPTED, f"the {who}'s media was not end-to-end encrypted")
            codes = [await page.evaluate(SAFETY_CODE) for page in (therapist, client)]
            assert codes[0] and codes[0] == codes[1], codes
            appointment_id = int(therapist.url.rsplit("/", 1)[1])
            assert await cluster.owner(appointment_id) in ("n1", "n2")
        finally:
            for each in browser.contexts:
                await each.close()
