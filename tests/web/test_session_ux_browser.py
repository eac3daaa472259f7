"""The session as therapist and client meet it (issue #14), in Debian chromium with fake devices:
the dashboard row at every width, icons from our sprite, the session timer, the client-gone
state beside the therapist's own connection, the client's quick exit, and date and time fields
that follow the page's language, not the browser's."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.signaling.api_server import call
from tests.web.browser_server import (
    PHONE,
    SCREENSHOTS,
    WebServer,
    foreign_requests,
    poll,
    screenshot,
)
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

# One event loop per module: the module shares one chromium.
pytestmark = pytest.mark.asyncio(loop_scope="module")

LONG_NOTE = (
    "Erstgespräch nach Überweisung; bitte vorher den Fragebogen ansehen, an die Vertretung im "
    "August denken und den Folgetermin für die nächste Woche vorschlagen, falls es passt. "
    "Rückfragen zur Kostenübernahme klären; die Bescheinigung für den Arbeitgeber liegt bereits "
    "vor und muss nur noch unterschrieben und mit der Rechnung für das Quartal verschickt werden."
)
LONG_NAME = "Maximiliane Musterfrau-Lüdenscheid"


async def appointment_with_note(
    server: WebServer, starts_in: dt.timedelta, note: str | None, duration: int = 50
) -> dict[str, Any]:
    """An appointment of alice's with a note, made through her API (with its invite_url)."""
    if await server.api.storage.get_therapist("alice") is None:
        await server.api.add_therapist("alice")
    session, csrf = await server.api.signed_in("alice")
    starts_at = (dt.datetime.now(dt.UTC) + starts_in).replace(microsecond=0).isoformat()
    async with session:
        status, body, _ = await call(
            session,
            "POST",
            "/api/therapist/appointments",
            json={"starts_at": starts_at, "duration_minutes": duration, "note": note},
            headers={"X-CSRF-Token": csrf},
        )
    assert status == 201, body
    return body


async def client_joins(
    server: WebServer, invite_url: str, name: str = ""
) -> tuple[BrowserContext, Page, Any]:
    """A client in a fresh browser who consents, switches devices on and joins."""
    context = await server.context()
    page, recorded = await server.page(context)
    await page.goto(invite_url)
    await page.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await page.get_by_label("Ich willige ein").check()
    if name:
        await page.get_by_label("Ihr Name (optional)").fill(name)
    await page.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    assert await poll(page, "document.getElementById('preview').videoWidth > 0", 20), (
        "the client's camera preview never showed a picture"
    )
    await page.get_by_role("button", name="Beitreten").click()
    return context, page, recorded


# The geometry of one dashboard row, measured in the page.
ROW_GEOMETRY = """
(id) => {
  const item = document.querySelector(`li[data-id="${id}"]`);
  const badge = item.querySelector(".badge");
  const text = badge.querySelector(".badge-text") || badge;
  const note = item.querySelector(".note");
  const lineHeight = (element) => {
    const style = getComputedStyle(element);
    const value = parseFloat(style.lineHeight);
    return Number.isNaN(value) ? parseFloat(style.fontSize) * 1.2 : value;
  };
  const range = document.createRange();
  range.selectNodeContents(text);
  const lineTops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
  const page = document.documentElement;
  return {
    viewport: innerWidth,
    pageScrollWidth: page.scrollWidth,
    pageClientWidth: page.clientWidth,
    itemScrollWidth: item.scrollWidth,
    itemClientWidth: item.clientWidth,
    itemRight: item.getBoundingClientRect().right,
    badgeHeight: badge.getBoundingClientRect().height,
    badgeLineHeight: lineHeight(badge),
    badgeTextLines: lineTops.size,
    badgeTitle: badge.title,
    badgeCut: text.scrollWidth > text.clientWidth + 1,
    infoWidth: (item.querySelector(".info") || note.parentElement).getBoundingClientRect().width,
    noteHeight: note.getBoundingClientRect().height,
    noteLineHeight: lineHeight(note),
    noteText: note.textContent,
    noteTitle: note.title,
    noteClipped: note.scrollHeight > note.clientHeight + 1,
  };
}
"""


async def test_the_dashboard_row_reads_well_from_phone_to_wide(web_server: WebServer):
    appointment = await appointment_with_note(web_server, dt.timedelta(minutes=5), LONG_NOTE)
    therapist_context = await web_server.context()
    dashboard, recorded = await web_server.signed_in_page(therapist_context)
    client_context, _client, _ = await client_joins(
        web_server, appointment["invite_url"], LONG_NAME
    )
    item = dashboard.locator(f'li[data-id="{appointment["id"]}"]')
    await expect(item.locator(".badge")).to_have_text(f"{LONG_NAME} wartet", timeout=20_000)

    for width in (360, 800, 1280, 1920):
        await dashboard.set_viewport_size({"width": width, "height": 900})
        await expect(item).to_be_visible()
        g = await dashboard.evaluate(ROW_GEOMETRY, appointment["id"])
        assert g["viewport"] == width, g
        assert g["pageScrollWidth"] <= g["pageClientWidth"], f"the page scrolls sideways: {g}"
        assert g["itemScrollWidth"] <= g["itemClientWidth"], f"the row overflows: {g}"
        assert g["itemRight"] <= width, f"the row runs past the window: {g}"
        assert g["badgeTextLines"] == 1, f"the badge wraps at {width} px: {g}"
        # One line of text plus the pill's padding, never two lines.
        assert g["badgeHeight"] < 2 * g["badgeLineHeight"], f"the badge is tall at {width}: {g}"
        assert g["badgeTitle"] == f"{LONG_NAME} wartet", g
        if width >= 800:
            # Room for the status and the note, not a sliver beside the buttons.
            assert not g["badgeCut"], f"the badge is cut at {width} px: {g}"
            assert g["infoWidth"] >= 300, f"status and note squeezed at {width} px: {g}"
        assert g["noteHeight"] <= 2 * g["noteLineHeight"] + 1, f"the note is too tall: {g}"
        assert g["noteClipped"], f"a note this long should be clamped at {width} px: {g}"
        assert g["noteText"] == g["noteTitle"] == LONG_NOTE, g
        if width == 1280:
            await screenshot(dashboard, "dashboard")
        if width == 360:
            await screenshot(dashboard, "dashboard-phone")

    # The whole note is one click (or Enter) away, and it stays open across a refresh.
    note = item.locator(".note")
    await note.focus()
    await dashboard.keyboard.press("Enter")
    await expect(note).to_have_class(re.compile(r"\bexpanded\b"))
    opened = await dashboard.evaluate(ROW_GEOMETRY, appointment["id"])
    assert not opened["noteClipped"] and opened["noteHeight"] > 2 * opened["noteLineHeight"], (
        f"the note did not open in full: {opened}"
    )
    await note.click()
    await expect(note).not_to_have_class(re.compile(r"\bexpanded\b"))

    assert recorded.errors == []
    assert foreign_requests(web_server, recorded) == []
    await client_context.close()
    await therapist_context.close()


# --- the call


# Records, across the page's navigations, every camera or microphone track the page stops.
TRACK_STOPS = """
(() => {
  const stop = MediaStreamTrack.prototype.stop;
  MediaStreamTrack.prototype.stop = function () {
    if (this.readyState === "live") window.reportTrackStop(this.kind);
    return stop.call(this);
  };
})();
"""


def berlin_time(iso: str, minutes: int = 0) -> str:
    from zoneinfo import ZoneInfo

    moment = dt.datetime.fromisoformat(iso) + dt.timedelta(minutes=minutes)
    return moment.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M")


async def therapist_opens_call(
    server: WebServer, appointment: dict[str, Any]
) -> tuple[BrowserContext, Page, Any]:
    context = await server.context()
    await server.signed_in_page(context)
    page, recorded = await server.page(context)
    await page.goto(f"{server.url}/call/{appointment['id']}")
    await expect(page.locator("#remote-status")).to_have_text(
        "Ihr Klient / Ihre Klientin ist noch nicht im Warteraum."
    )
    return context, page, recorded


async def test_the_call_shows_the_session_time_and_the_planned_end(web_server: WebServer):
    appointment = await appointment_with_note(web_server, dt.timedelta(minutes=5), None, 50)
    therapist_context, therapist, therapist_log = await therapist_opens_call(
        web_server, appointment
    )
    clock = therapist.locator("#session-clock")
    # Before the client is there, the session has not begun: no clock.
    await expect(clock).to_be_hidden()
    client_context, client, client_log = await client_joins(web_server, appointment["invite_url"])
    await expect(therapist.locator("#remote-placeholder")).to_be_hidden(timeout=30_000)

    end = berlin_time(appointment["starts_at"], 50)
    await expect(clock).to_be_visible()
    await expect(clock).to_have_text(re.compile(rf"^Sitzungsdauer 00:0\d · bis {end}$"))
    first = await therapist.locator("#session-elapsed").text_content()
    await expect(therapist.locator("#session-elapsed")).not_to_have_text(first or "", timeout=5000)
    # The client's page has the planned end from the server (`ends_at`) too.
    await expect(client.locator("#session-clock")).to_have_text(
        re.compile(rf"^Sitzungsdauer 00:\d\d · bis {end}$"), timeout=10_000
    )
    # Its own connection is labelled as such, never a bare "Verbindung gut".
    await expect(therapist.locator("#quality-text")).to_have_text(
        re.compile(r"^Ihre Verbindung: (gut|mäßig|schlecht)$"), timeout=15_000
    )
    await screenshot(therapist, "call")

    # A reload does not start the count again.
    await expect(therapist.locator("#session-elapsed")).to_have_text(
        re.compile(r"^00:(0[3-9]|[1-5]\d)$"), timeout=15_000
    )
    await therapist.reload()
    await expect(therapist.locator("#session-elapsed")).to_have_text(
        re.compile(r"^00:(0[3-9]|[1-5]\d)$"), timeout=30_000
    )
    for log in (therapist_log, client_log):
        assert log.errors == []
        assert foreign_requests(web_server, log) == []
    await client_context.close()
    await therapist_context.close()


async def test_when_the_client_leaves_the_therapist_sees_it_and_what_comes_next(
    web_server: WebServer,
):
    appointment = await appointment_with_note(web_server, dt.timedelta(minutes=5), None)
    therapist_context, therapist, therapist_log = await therapist_opens_call(
        web_server, appointment
    )
    client_context, client, _ = await client_joins(web_server, appointment["invite_url"], "Anna")
    await expect(therapist.locator("#remote-placeholder")).to_be_hidden(timeout=30_000)
    await expect(therapist.locator("#quality-text")).to_have_text(
        re.compile(r"^Ihre Verbindung: (gut|mäßig|schlecht)$"), timeout=15_000
    )

    await client.get_by_role("button", name="Auflegen").click()
    await expect(therapist.locator("#remote-status")).to_have_text(
        "Anna hat die Sitzung verlassen."
    )
    await expect(therapist.locator("#remote-sub")).to_have_text(
        "Das Sprechzimmer bleibt offen: Kommt er oder sie über den Link zurück, geht die Sitzung "
        "weiter. Wenn Sie fertig sind, beenden Sie die Sitzung."
    )
    await expect(therapist.locator("#call")).to_have_attribute("data-screen", "peer-gone")
    # The therapist's own link is still measured, and says whose it is.
    quality = await therapist.locator("#quality").inner_text()
    assert quality.startswith("Ihre Verbindung"), quality
    assert await therapist.locator("#quality").get_attribute("title") == (
        "Ihre eigene Verbindung zum Server"
    )
    await expect(therapist.get_by_role("button", name="Sitzung beenden")).to_be_visible()
    await screenshot(therapist, "client-gone")
    assert therapist_log.errors == []
    await client_context.close()
    await therapist_context.close()


async def quick_exit_client(
    server: WebServer, invite_url: str
) -> tuple[BrowserContext, Page, Any, list[str], list[str]]:
    """A client page that reports every track it stops and every WebSocket frame it sends."""
    context = await server.context()
    stopped: list[str] = []
    await context.expose_binding("reportTrackStop", lambda _source, kind: stopped.append(kind))
    await context.add_init_script(TRACK_STOPS)
    page, recorded = await server.page(context)
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    await page.goto(invite_url)
    return context, page, recorded, stopped, sent


async def test_quick_exit_from_the_call_leaves_stops_the_devices_and_blanks_the_page(
    web_server: WebServer,
):
    appointment = await appointment_with_note(web_server, dt.timedelta(minutes=5), None)
    therapist_context, therapist, _ = await therapist_opens_call(web_server, appointment)
    context, client, recorded, stopped, sent = await quick_exit_client(
        web_server, appointment["invite_url"]
    )
    await client.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await client.get_by_label("Ich willige ein").check()
    await client.get_by_role("button", name="Beitreten").click()
    await expect(therapist.locator("#remote-placeholder")).to_be_hidden(timeout=30_000)
    # Always in sight during the call too.
    await expect(client.locator("#btn-quick-exit")).to_be_visible()
    await expect(client.locator("#btn-quick-exit")).to_have_text("Schnell verlassen")

    # Escape twice leaves; the page is replaced by a blank one that names nothing.
    await client.keyboard.press("Escape")
    await client.keyboard.press("Escape")
    await client.wait_for_url("about:blank")
    assert await client.title() == ""
    await expect(therapist.locator("#remote-status")).to_have_text(
        "Ihr Klient / Ihre Klientin hat die Sitzung verlassen."
    )
    assert any('"type": "leave"' in frame or '"type":"leave"' in frame for frame in sent), sent
    assert {"audio", "video"} <= set(stopped), f"camera and microphone not stopped: {stopped}"
    # Back does not lead into the session: this page's history entry was replaced.
    requests_before = len(recorded.requests)
    await client.go_back()
    assert client.url == "about:blank", client.url
    assert not any("/j/" in url for url in recorded.requests[requests_before:])
    await context.close()
    await therapist_context.close()


async def test_quick_exit_in_the_waiting_room_is_the_first_tab_stop(web_server: WebServer):
    appointment = await appointment_with_note(web_server, dt.timedelta(minutes=5), None)
    context, client, recorded, stopped, _ = await quick_exit_client(
        web_server, appointment["invite_url"]
    )
    await expect(client.get_by_role("heading", name="Willkommen im Warteraum")).to_be_visible()
    exit_button = client.locator("#btn-quick-exit")
    # The first Tab from the top of the page lands on it.
    await client.keyboard.press("Tab")
    await expect(exit_button).to_be_focused()
    await client.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    assert await poll(client, "document.getElementById('preview').videoWidth > 0", 20), (
        "the camera preview never showed a picture"
    )
    await client.set_viewport_size(PHONE)
    await expect(exit_button).to_be_in_viewport()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await client.screenshot(path=SCREENSHOTS / "waiting-room-quick-exit-phone.png")
    await exit_button.focus()
    await client.keyboard.press("Enter")
    await client.wait_for_url("about:blank")
    assert {"audio", "video"} <= set(stopped), f"camera and microphone not stopped: {stopped}"
    assert recorded.errors == []
    assert foreign_requests(web_server, recorded) == []
    await context.close()


# --- the appointment form


async def test_date_and_time_fields_follow_the_page_not_the_browser_locale(web_server: WebServer):
    # An English (US) browser, a German page (?lang=de is remembered in a cookie).
    context = await web_server.context(locale="en-US")
    page, recorded = await web_server.signed_in_page(context)
    await page.goto(f"{web_server.url}/dashboard?lang=de")
    await page.get_by_role("button", name="Neuer Termin").click()
    dialog = page.get_by_role("dialog")
    date = dialog.get_by_label("Datum")
    time = dialog.get_by_label("Uhrzeit")
    await expect(date).to_have_attribute("placeholder", "TT.MM.JJJJ")
    await expect(time).to_have_attribute("placeholder", "HH:MM")
    # The suggested slot is written the German way, in 24-hour time.
    await expect(date).to_have_value(re.compile(r"^\d{2}\.\d{2}\.\d{4}$"))
    await expect(time).to_have_value(re.compile(r"^([01]\d|2[0-3]):[0-5]\d$"))

    # A date that does not exist is refused with a message, not sent.
    year = dt.date.today().year + 1
    await date.fill(f"31.02.{year}")
    await time.fill("15:30")
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(dialog.locator("#form-error")).to_have_text(
        "Bitte geben Sie das Datum als TT.MM.JJJJ an, z. B. 24.03.2027."
    )
    await expect(date).to_have_attribute("aria-invalid", "true")
    await time.fill("25:00")
    await date.fill(f"24.03.{year}")
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(dialog.locator("#form-error")).to_have_text(
        "Bitte geben Sie die Uhrzeit als HH:MM an (24 Stunden), z. B. 15:30."
    )

    await time.fill("15:30")
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(dialog).to_be_hidden()
    item = page.locator("li.appointment").filter(has_text="15:30")
    await expect(item.locator(".when .date")).to_contain_text(f"24. März {year}")
    await item.locator(".edit").click()
    await expect(date).to_have_value(f"24.03.{year}")
    await expect(time).to_have_value("15:30")
    assert recorded.errors == []
    assert foreign_requests(web_server, recorded) == []
    await context.close()
