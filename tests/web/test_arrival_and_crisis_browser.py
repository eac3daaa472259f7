"""The session's server-backed parts in Debian chromium with fake devices (issue #14): the
therapist's arrival alert (sound, desktop notification, count in the tab title; off when the
therapist turns it off), the client's crisis card from the waiting room to the therapist's call
and out of the database with the purge, and a reload mid-call that goes back in with the name."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.privacy_canaries import remember
from tests.signaling.api_server import call
from tests.web.browser_server import WebServer, foreign_requests, poll, screenshot
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server
from tests.web.test_session_ux_browser import client_joins, therapist_opens_call

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOCATION = "Gartenweg 17, Hinterhaus, 2. OG, 37073 Göttingen"
PHONE = "+49 551 1234567"
TITLE = "Termine \N{EN DASH} Sprechzimmer"
remember(LOCATION, PHONE)

# Records every desktop notification and every tone the page starts, across navigations.
ALERT_RECORDER = """
(() => {
  window.__notifications = [];
  window.__tones = 0;
  const Original = window.Notification;
  if (Original) {
    window.Notification = class extends Original {
      constructor(title, options) {
        window.__notifications.push({ title, body: (options && options.body) || "" });
        super(title, options);
      }
    };
  }
  const start = AudioScheduledSourceNode.prototype.start;
  AudioScheduledSourceNode.prototype.start = function (...args) {
    window.__tones += 1;
    return start.apply(this, args);
  };
})();
"""


async def book(server: WebServer, crisis_card: bool = False) -> dict[str, Any]:
    if await server.api.storage.get_therapist("alice") is None:
        await server.api.add_therapist("alice")
    session, csrf = await server.api.signed_in("alice")
    starts_at = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).replace(microsecond=0)
    async with session:
        status, body, _ = await call(
            session,
            "POST",
            "/api/therapist/appointments",
            json={"starts_at": starts_at.isoformat(), "crisis_card": crisis_card},
            headers={"X-CSRF-Token": csrf},
        )
    assert status == 201, body
    return body


async def dashboard_with_recorder(server: WebServer) -> tuple[BrowserContext, Page, Any]:
    context = await server.context(permissions=["notifications"])
    await context.add_init_script(ALERT_RECORDER)
    page, recorded = await server.signed_in_page(context)
    try:
        await expect(page.locator("#arrival-alert")).to_be_enabled()
    except AssertionError:
        raise AssertionError(
            f"the dashboard did not load its settings: {recorded.errors}"
        ) from None
    return context, page, recorded


async def test_a_client_entering_the_waiting_room_rings_notifies_and_counts_in_the_title(
    web_server: WebServer,
):
    appointment = await book(web_server)
    context, dashboard, recorded = await dashboard_with_recorder(web_server)
    await expect(dashboard.locator("#arrival-alert")).to_be_checked()
    await expect(dashboard).to_have_title(TITLE)

    client_context, _client, _ = await client_joins(web_server, appointment["invite_url"], "Kim")
    await expect(dashboard).to_have_title(f"(1) {TITLE}")
    assert await poll(dashboard, "window.__notifications.length === 1"), (
        "no desktop notification for the arrival"
    )
    [note] = await dashboard.evaluate("window.__notifications")
    assert note["title"] == "Sprechzimmer: jemand wartet"
    assert "im Warteraum" in note["body"] and "Kim" not in note["body"], note
    assert await poll(dashboard, "window.__tones > 0"), "no sound was played for the arrival"
    await screenshot(dashboard, "dashboard-arrival-alert")

    assert recorded.errors == []
    assert foreign_requests(web_server, recorded) == []
    await client_context.close()
    await context.close()


async def test_with_the_alert_off_an_arrival_makes_no_sound_notification_or_count(
    web_server: WebServer,
):
    appointment = await book(web_server)
    context, dashboard, recorded = await dashboard_with_recorder(web_server)
    await dashboard.locator("#arrival-alert").uncheck()
    alice = await web_server.api.storage.get_therapist("alice")
    for _ in range(100):
        if not (await web_server.api.storage.get_therapist_settings(alice.id)).arrival_alert:
            break
        await dashboard.wait_for_timeout(100)
    else:
        raise AssertionError("turning the alert off did not reach the server")
    # It stays off after a reload: the server keeps it.
    await dashboard.reload()
    await expect(dashboard.locator("#arrival-alert")).to_be_enabled()
    await expect(dashboard.locator("#arrival-alert")).not_to_be_checked()

    client_context, _client, _ = await client_joins(web_server, appointment["invite_url"], "Kim")
    # The positive sign that the arrival was handled: the row says the client waits.
    badge = dashboard.locator(f'li[data-id="{appointment["id"]}"] .badge')
    await expect(badge).to_have_text("Kim wartet")
    assert await dashboard.evaluate("window.__notifications") == []
    assert await dashboard.evaluate("window.__tones") == 0
    assert await dashboard.title() == TITLE
    assert recorded.errors == []
    await client_context.close()
    await context.close()


async def test_the_crisis_card_reaches_the_therapists_call_only_and_is_purged(
    web_server: WebServer,
):
    appointment = await book(web_server, crisis_card=True)
    therapist_context, therapist, therapist_log = await therapist_opens_call(
        web_server, appointment
    )
    client_context = await web_server.context()
    client, client_log = await web_server.page(client_context)
    await client.goto(appointment["invite_url"])
    await client.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await client.get_by_label("Ich willige ein").check()
    await client.get_by_label("Ihr Name (optional)").fill("Kim")
    await client.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    # Without the card the page does not join, and says why.
    await client.get_by_role("button", name="Beitreten").click()
    await expect(client.locator("#join-error")).to_have_text(
        "Bitte geben Sie an, wo Sie gerade sind, und eine Telefonnummer für den Notfall."
    )
    await client.get_by_label("Wo sind Sie gerade?").fill(LOCATION)
    await client.get_by_label("Telefonnummer für den Notfall").fill(PHONE)
    await client.locator("#crisis-fields").scroll_into_view_if_needed()
    await screenshot(client, "waiting-room-crisis-card")
    await client.get_by_role("button", name="Beitreten").click()

    card = therapist.locator("#crisis-card")
    await expect(card).to_be_visible()
    await card.locator("summary").click()
    await expect(therapist.locator("#crisis-location")).to_have_text(LOCATION)
    await expect(therapist.locator("#crisis-phone")).to_have_text(PHONE)
    await expect(therapist.locator("#remote-placeholder")).to_be_hidden(timeout=30_000)
    await screenshot(therapist, "call-crisis-card")
    assert LOCATION not in await client.content()
    await expect(client.locator("#crisis-card")).to_have_count(0)

    for log in (therapist_log, client_log):
        assert log.errors == []
        assert foreign_requests(web_server, log) == []
    await client_context.close()
    await therapist_context.close()

    stored = await web_server.api.storage.get_appointment(appointment["id"])
    await web_server.api.storage.purge(
        stored.valid_until + dt.timedelta(minutes=1), retention_days=90
    )
    on_disk = web_server.api.database_bytes()
    assert LOCATION.encode() not in on_disk and PHONE.encode() not in on_disk


async def test_a_reload_mid_call_goes_back_in_with_the_same_name_and_media(
    web_server: WebServer,
):
    appointment = await book(web_server)
    therapist_context, therapist, therapist_log = await therapist_opens_call(
        web_server, appointment
    )
    client_context, client, client_log = await client_joins(
        web_server, appointment["invite_url"], "Kim"
    )
    await expect(therapist.locator("#call")).to_have_attribute("data-screen", "in-call")
    await expect(therapist.locator("#peer-name")).to_have_text("Kim")

    await client.reload()
    # No long waiting room: one screen with the camera and one button, the name kept.
    await expect(client.locator("#resume")).to_be_visible()
    await expect(client.locator("#prepare")).to_be_hidden()
    await expect(client.locator("#resume-text")).to_contain_text("„Kim“")
    assert await poll(client, "document.getElementById('resume-preview').videoWidth > 0"), (
        "the camera preview did not come back after the reload"
    )
    await screenshot(client, "resume")
    await client.get_by_role("button", name="Zurück in die Sitzung").click()

    await expect(client.locator("#call")).to_have_attribute(
        "data-screen", "in-call", timeout=30_000
    )
    await expect(therapist.locator("#call")).to_have_attribute(
        "data-screen", "in-call", timeout=30_000
    )
    await expect(therapist.locator("#peer-name")).to_have_text("Kim")
    for page, who in ((client, "client"), (therapist, "therapist")):
        assert await poll(
            page,
            "(() => { const v = document.getElementById('remote-video');"
            " return v.videoWidth > 0 && v.currentTime > 0.5; })()",
            30,
        ), f"no picture reached the {who} after the reload"

    # Leaving on purpose reads differently from a lost connection.
    await client.get_by_role("button", name="Auflegen").click()
    await expect(therapist.locator("#remote-status")).to_have_text("Kim hat die Sitzung verlassen.")
    for log in (therapist_log, client_log):
        assert log.errors == []
        assert foreign_requests(web_server, log) == []
    await client_context.close()
    await therapist_context.close()


async def test_a_lost_client_reads_as_a_lost_connection(web_server: WebServer):
    appointment = await book(web_server)
    therapist_context, therapist, therapist_log = await therapist_opens_call(
        web_server, appointment
    )
    client_context, _client, _ = await client_joins(web_server, appointment["invite_url"], "Kim")
    await expect(therapist.locator("#call")).to_have_attribute("data-screen", "in-call")
    await client_context.close()  # the tab is gone: no leave message
    await expect(therapist.locator("#remote-status")).to_have_text(
        re.compile(r"^Verbindung zu Kim verloren\.$"), timeout=40_000
    )
    assert therapist_log.errors == []
    await therapist_context.close()
