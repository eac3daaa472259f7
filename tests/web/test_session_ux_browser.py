"""The session as therapist and client meet it (issue #14), in Debian chromium with fake devices:
the dashboard row at every width, icons from our sprite, the session timer, the client-gone
state beside the therapist's own connection, the client's quick exit, and date and time fields
that follow the page's language, not the browser's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.signaling.api_server import call
from tests.web.browser_server import WebServer, foreign_requests, poll, screenshot
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
    server: WebServer, starts_in: dt.timedelta, note: str, duration: int = 50
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
    await expect(note).to_have_attribute("aria-expanded", "true")
    opened = await dashboard.evaluate(ROW_GEOMETRY, appointment["id"])
    assert not opened["noteClipped"] and opened["noteHeight"] > 2 * opened["noteLineHeight"], (
        f"the note did not open in full: {opened}"
    )
    await note.click()
    await expect(note).to_have_attribute("aria-expanded", "false")

    assert recorded.errors == []
    assert foreign_requests(web_server, recorded) == []
    await client_context.close()
    await therapist_context.close()
