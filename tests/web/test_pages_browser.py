"""The pages in a real browser (Debian chromium): login, dashboard, the waiting room, static pages,
language, and that nothing leaves our origin or breaks the CSP."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.async_api import Page, expect

from tests.web.browser_server import (
    PHONE,
    WebServer,
    foreign_requests,
    poll,
    screenshot,
)
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

# One event loop per module: the module shares one chromium.
pytestmark = pytest.mark.asyncio(loop_scope="module")

HOUR = dt.timedelta(hours=1)


async def create_in_form(page: Page, when: dt.datetime, note: str = "") -> None:
    await page.get_by_role("button", name="Neuer Termin").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Datum").fill(when.strftime("%Y-%m-%d"))
    await dialog.get_by_label("Uhrzeit").fill(when.strftime("%H:%M"))
    await dialog.get_by_label("Dauer (Minuten)").fill("50")
    if note:
        await dialog.get_by_label("Notiz (optional)").fill(note)
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(dialog).to_be_hidden()


def in_berlin(delta: dt.timedelta) -> dt.datetime:
    """A local time in the browser's zone (Europe/Berlin), rounded to the minute."""
    from zoneinfo import ZoneInfo

    # from UTC, so that the local time exists even on the day the clocks change
    later = (dt.datetime.now(dt.UTC) + delta).astimezone(ZoneInfo("Europe/Berlin"))
    return later.replace(second=0, microsecond=0)


# --- therapist


async def test_the_login_form_signs_in_and_shows_the_dashboard(web_server: WebServer):
    context = await web_server.context()
    page, _ = await web_server.page(context)
    await web_server.api.add_therapist("alice")
    await page.goto(web_server.url + "/")
    await expect(page).to_have_url(web_server.url + "/login")
    await expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    await screenshot(page, "login")
    await context.close()

    context = await web_server.context()
    page, _ = await web_server.signed_in_page(context)
    await expect(page.get_by_role("heading", name="Ihre Termine")).to_be_visible()
    await expect(page.locator("#user-name")).to_have_text("alice")


async def test_a_wrong_password_says_so_and_stays_on_the_login_page(web_server: WebServer):
    await web_server.api.add_therapist("alice")
    page, _ = await web_server.page(await web_server.context())
    await page.goto(web_server.url + "/login")
    await page.get_by_label("Benutzername").fill("alice")
    await page.get_by_label("Passwort").fill("wrong")
    await page.get_by_role("button", name="Anmelden").click()
    await expect(page.get_by_role("alert")).to_have_text("Benutzername oder Passwort ist falsch.")
    await expect(page).to_have_url(web_server.url + "/login")


async def test_the_dashboard_sends_a_visitor_to_login(web_server: WebServer):
    page, _ = await web_server.page(await web_server.context())
    await page.goto(web_server.url + "/dashboard")
    await expect(page).to_have_url(web_server.url + "/login")


async def test_creating_an_appointment_shows_its_link_with_a_copy_button(web_server: WebServer):
    context = await web_server.context(permissions=["clipboard-read", "clipboard-write"])
    page, _ = await web_server.signed_in_page(context)
    await create_in_form(page, in_berlin(HOUR))
    item = page.locator("#list-today li, #list-upcoming li").first
    link = item.get_by_label("Zugangslink für Ihren Klienten / Ihre Klientin")
    await expect(link).to_be_visible()
    value = await link.input_value()
    assert value.startswith(f"{web_server.url}/j/") and len(value) > len(web_server.url) + 40
    copy = item.get_by_role("button", name="Link kopieren")
    await expect(copy).to_be_focused()
    await copy.click()
    await expect(item.get_by_role("button", name="Link kopiert")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == value
    await expect(item.locator(".badge")).to_have_text("Eingeladen")


async def test_a_new_link_replaces_the_old_one(web_server: WebServer):
    context = await web_server.context()
    page, _ = await web_server.signed_in_page(context)
    await create_in_form(page, in_berlin(HOUR))
    item = page.locator("li.appointment").first
    old = await item.locator("input.link").input_value()
    page.once("dialog", lambda dialog: dialog.accept())
    await item.get_by_role("button", name="Neuer Link").click()
    await expect(item.locator("input.link")).not_to_have_value(old)
    response = await page.request.get(old)
    assert response.status == 404


async def test_editing_and_cancelling_an_appointment(web_server: WebServer):
    page, _ = await web_server.signed_in_page(await web_server.context())
    await create_in_form(page, in_berlin(2 * HOUR), note="Erstgespräch")
    item = page.locator("li.appointment").first
    await expect(item.locator(".note")).to_have_text("Erstgespräch")
    await item.get_by_role("button", name="Bearbeiten").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading")).to_have_text("Termin bearbeiten")
    await dialog.get_by_label("Notiz (optional)").fill("Zweites Gespräch")
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(item.locator(".note")).to_have_text("Zweites Gespräch")

    page.once("dialog", lambda dialog: dialog.accept())
    await item.get_by_role("button", name="Absagen").click()
    await expect(item.locator(".badge")).to_have_text("Abgesagt")
    await expect(item.get_by_role("button")).to_have_count(0)
    await expect(item.get_by_role("link", name="Sitzung öffnen")).to_have_count(0)


async def test_notes_are_shown_as_text_never_as_markup(web_server: WebServer):
    page, recorded = await web_server.signed_in_page(await web_server.context())
    note = '<img src="/x" onerror="window.hacked=1"><b>fett</b>'
    await create_in_form(page, in_berlin(HOUR), note=note)
    await expect(page.locator("li.appointment .note")).to_have_text(note)
    assert await page.locator("li.appointment .note img, li.appointment .note b").count() == 0
    assert await page.evaluate("window.hacked") is None
    assert not [url for url in recorded.requests if url.endswith("/x")]


async def test_the_dashboard_on_a_phone(web_server: WebServer):
    await web_server.appointment(HOUR)
    await web_server.appointment(26 * HOUR)
    context = await web_server.context(viewport=PHONE, is_mobile=True, has_touch=True)
    page, _ = await web_server.signed_in_page(context)
    await create_in_form(page, in_berlin(3 * HOUR), note="Erstgespräch")
    await expect(page.locator("li.appointment")).to_have_count(3)
    # Nothing wider than the screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await screenshot(page, "dashboard-phone")


async def test_the_dashboard_screenshot(web_server: WebServer):
    await web_server.appointment(26 * HOUR)
    await web_server.appointment(50 * HOUR)
    page, _ = await web_server.signed_in_page(await web_server.context())
    await create_in_form(page, in_berlin(HOUR + dt.timedelta(minutes=30)), note="Erstgespräch")
    await expect(page.locator("li.appointment")).to_have_count(3)
    await page.locator("body").click(position={"x": 5, "y": 300})
    await screenshot(page, "dashboard")


# --- client


async def test_an_unknown_invite_link_gets_the_invalid_page_with_404(web_server: WebServer):
    page, _ = await web_server.page(await web_server.context())
    response = await page.goto(web_server.url + "/j/" + "A" * 43)
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dieser Link ist nicht gültig")


async def test_the_waiting_room_checks_devices_and_connection(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    page, recorded = await web_server.page(await web_server.context())
    await page.goto(appointment["invite_url"])
    await expect(page.get_by_role("heading", name="Willkommen im Warteraum")).to_be_visible()
    await expect(page.locator("#appointment-when")).to_contain_text("Ihr Termin:")
    await page.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    await expect(page.locator("#prepare").get_by_label("Kamera", exact=True)).to_be_visible()
    await expect(page.locator("#prepare").get_by_label("Mikrofon", exact=True)).to_be_visible()
    assert await poll(page, "document.getElementById('preview').videoWidth > 0")
    assert await poll(
        page, "Number(document.getElementById('meter').getAttribute('aria-valuenow')) > 0"
    )
    await page.get_by_role("button", name="Verbindung prüfen").click()
    await expect(page.locator("#check-results")).to_contain_text("Alles bereit")
    await page.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await page.get_by_label("Ich willige ein").check()
    await page.get_by_label("Ihr Name (optional)").fill("Anna")
    await screenshot(page, "waiting-room")
    assert foreign_requests(web_server, recorded) == []


async def test_the_waiting_room_on_a_phone(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    context = await web_server.context(viewport=PHONE, is_mobile=True, has_touch=True)
    page, _ = await web_server.page(context)
    await page.goto(appointment["invite_url"])
    await page.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    assert await poll(page, "document.getElementById('preview').videoWidth > 0")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await screenshot(page, "waiting-room-phone")


async def test_joining_needs_consent_first(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    page, _ = await web_server.page(await web_server.context())
    await page.goto(appointment["invite_url"])
    await page.get_by_role("button", name="Beitreten").click()
    await expect(page.locator("#join-error")).to_contain_text("Bitte bestätigen Sie zuerst")
    await expect(page.get_by_label("Ich habe die Nutzungsbedingungen gelesen")).to_be_focused()


async def test_a_link_that_is_not_open_yet_says_when_it_opens(web_server: WebServer):
    appointment = await web_server.appointment(5 * HOUR)
    page, _ = await web_server.page(await web_server.context())
    await page.goto(appointment["invite_url"])
    await expect(page.locator("#not-yet-open")).to_contain_text("Der Warteraum öffnet um")


async def test_denied_camera_explains_how_to_allow_it(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    page, _ = await web_server.page(await web_server.context())
    await page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('denied', 'NotAllowedError'));"
    )
    await page.goto(appointment["invite_url"])
    await page.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    await expect(
        page.get_by_role("heading", name="Kein Zugriff auf Kamera und Mikrofon")
    ).to_be_visible()
    await expect(page.get_by_text("iPhone / iPad")).to_be_visible()


async def test_a_browser_without_webrtc_is_told_which_to_use(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    page, _ = await web_server.page(await web_server.context())
    await page.add_init_script("delete window.RTCPeerConnection;")
    await page.goto(appointment["invite_url"])
    await expect(
        page.get_by_role("heading", name="Dieser Browser wird leider nicht unterstützt")
    ).to_be_visible()


# --- public pages and language


async def test_terms_and_privacy_are_public(web_server: WebServer):
    page, _ = await web_server.page(await web_server.context())
    for path, heading in (("/terms", "Nutzungsbedingungen"), ("/privacy", "Datenschutzhinweise")):
        response = await page.goto(web_server.url + path)
        assert response is not None and response.status == 200
        await expect(page.get_by_role("heading", level=1)).to_have_text(heading)


async def test_the_language_switch_turns_pages_english_and_is_remembered(web_server: WebServer):
    page, _ = await web_server.page(await web_server.context())
    await page.goto(web_server.url + "/login")
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert await page.get_attribute("html", "lang") == "en"
    await expect(page.get_by_label("Password")).to_be_visible()
    await page.goto(web_server.url + "/terms")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Terms of use")
    await page.get_by_role("link", name="Deutsch").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Nutzungsbedingungen")


async def test_an_english_browser_gets_english_pages(web_server: WebServer):
    page, _ = await web_server.page(await web_server.context(locale="en-GB"))
    await page.goto(web_server.url + "/privacy")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Privacy notice")


async def test_no_page_requests_another_origin_or_logs_an_error(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    page, recorded = await web_server.signed_in_page(await web_server.context())
    await expect(page.locator("li.appointment")).to_have_count(1)
    for path in ("/terms", "/privacy", "/login?lang=en", "/terms?lang=de"):
        await page.goto(web_server.url + path)
        await expect(page.locator("html.i18n-ready")).to_have_count(1)
    await page.goto(appointment["invite_url"])
    await page.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    await page.get_by_role("button", name="Verbindung prüfen").click()
    await expect(page.locator("#check-results")).to_contain_text("Alles bereit")
    assert len(recorded.requests) > 20
    assert foreign_requests(web_server, recorded) == []
    assert recorded.errors == []


UNTRANSLATED = """
(async () => {
  const english = await (await fetch("/static/i18n/en.json")).json();
  return [...document.querySelectorAll("[data-i18n]")]
    .filter((element) => !element.closest("template"))
    .filter((element) => element.textContent !== english[element.dataset.i18n])
    .map((element) => element.dataset.i18n);
})()
"""

UNLABELLED = """
[...document.querySelectorAll("input, select, textarea")]
  .filter((element) => element.type !== "hidden")
  .filter((element) => !(element.labels && element.labels.length) && !element.getAttribute("aria-label"))
  .map((element) => element.id || element.outerHTML)
"""


async def test_english_pages_have_no_german_left_and_every_field_a_label(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    context = await web_server.context(locale="en-GB")
    page, recorded = await web_server.signed_in_page(context)
    for path in (
        "/dashboard",
        "/login",
        "/terms",
        "/privacy",
        "/call/999999",
        appointment["invite_url"].removeprefix(web_server.url),
        "/j/" + "A" * 43,
    ):
        await page.goto(web_server.url + path)
        await expect(page.locator("html.i18n-ready")).to_have_count(1)
        assert await page.get_attribute("html", "lang") == "en"
        assert await page.evaluate(UNTRANSLATED) == [], path
        assert await page.evaluate(UNLABELLED) == [], path
    assert foreign_requests(web_server, recorded) == []
