"""The admin page, the set-password page and the therapist's statistics page in Debian's
chromium: the charts load as images, the tables agree, a new account's link works once, and
screenshots for the README."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.async_api import expect

from tests.privacy_canaries import remember
from tests.web.browser_server import WebServer, screenshot
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

NEW_PASSWORD = "ein neues langes Passwort"
remember(NEW_PASSWORD)


async def usage_data(web_server: WebServer) -> None:
    """Three months of sessions for alice and bob, and a week of health counters."""
    storage = web_server.api.storage
    today = dt.datetime.now(dt.UTC).date()
    for name in ("alice", "bob"):
        if await storage.get_therapist(name) is None:
            await web_server.api.add_therapist(name)
    alice = await storage.get_therapist("alice")
    bob = await storage.get_therapist("bob")
    for months_ago, count in ((2, 14), (1, 22), (0, 9)):
        day = (today.replace(day=1) - dt.timedelta(days=31 * months_ago)).replace(day=3)
        for n in range(count):
            therapist = alice if n % 3 else bob
            await storage.record_session_statistic(therapist.id, day, 2700 + 60 * (n % 6))
    await storage.add_health_counts(
        today,
        {
            "joins": 40,
            "media_reached": 38,
            "ice_failures": 1,
            "reconnects": 3,
            "join_to_media_le_1": 30,
            "join_to_media_le_2": 8,
        },
    )


async def test_the_admin_page_shows_reports_and_manages_accounts(web_server: WebServer):
    await usage_data(web_server)
    await web_server.api.storage.set_therapist_admin("alice", True)
    context = await web_server.context()
    page, recorded = await web_server.signed_in_page(context)
    await page.goto(f"{web_server.url}/admin")
    await expect(page.get_by_role("heading", name="Verwaltung", exact=True)).to_be_visible()
    await expect(page.locator("#usage-table tbody tr").first).to_be_visible()
    await expect(page.locator("#health-table tbody tr")).to_have_count(1)
    # the charts are images that loaded (an SVG that failed has naturalWidth 0)
    for chart in ("#chart-sessions", "#chart-minutes", "#chart-health"):
        await expect(page.locator(chart)).to_have_js_property("complete", True)
        assert await page.locator(chart).evaluate("img => img.naturalWidth") > 0, chart

    await page.locator("#new-username").fill("carol")
    await page.get_by_role("button", name="Konto anlegen").click()
    await expect(page.locator("#link-box")).to_be_visible()
    link = await page.locator("#link-output").input_value()
    remember(link.split("#", 1)[1])
    await expect(page.locator("#accounts-table")).to_contain_text("carol")
    await expect(page.locator("#audit-table")).to_contain_text("Konto angelegt")
    await screenshot(page, "admin")
    assert not recorded.errors, recorded.errors

    visitor = await web_server.context()
    set_page, _ = await web_server.page(visitor)
    await set_page.goto(link)
    await set_page.locator("#new-password").fill(NEW_PASSWORD)
    await set_page.locator("#repeat-password").fill(NEW_PASSWORD)
    await set_page.get_by_role("button", name="Passwort speichern").click()
    await expect(set_page.locator("#set-done")).to_contain_text("carol")
    assert "#" not in set_page.url, "the token is taken out of the address bar"
    # a fresh page: the same address with a fragment would not load the page again
    again, _ = await web_server.page(visitor)
    await again.goto(link)
    await again.locator("#new-password").fill(NEW_PASSWORD)
    await again.locator("#repeat-password").fill(NEW_PASSWORD)
    await again.get_by_role("button", name="Passwort speichern").click()
    await expect(again.locator("#set-error")).to_contain_text("gilt nicht mehr")
    await visitor.close()
    await context.close()


async def test_the_statistics_page_lists_the_quarters_sessions(web_server: WebServer):
    await usage_data(web_server)
    context = await web_server.context()
    page, recorded = await web_server.signed_in_page(context)
    await page.goto(f"{web_server.url}/statistics")
    await expect(page.get_by_role("heading", name="Ihre Sitzungen")).to_be_visible()
    await expect(page.locator("#stats-summary")).to_contain_text("Sitzungen")
    await expect(page.locator("#stats-table tbody tr").first).to_be_visible()
    href = await page.locator("#stats-csv").get_attribute("href")
    assert "quarter=" in href
    await screenshot(page, "statistics")
    assert not recorded.errors, recorded.errors
    await context.close()
