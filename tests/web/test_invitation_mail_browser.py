"""The dashboard's invitation by e-mail in Debian's chromium, against a real SMTP server: the
address field appears only for a new appointment where mail is on, a bad address is refused in
the form, the mail goes out with the link (without the browser's `#k=` secret) and the page says
so, and with the server gone the page says the mail was not sent and keeps the link to copy.
Screenshots for the README."""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from signaling.app import create_app
from signaling.storage.sqlite import SqliteStorage
from tests.ports import PortRange
from tests.privacy_canaries import remember
from tests.signaling.api_server import ApiServer, media_config, write_config
from tests.smtp_server import SmtpServer
from tests.web.browser_server import WebServer, foreign_requests, screenshot
from tests.web.browser_server import browser as browser  # the fixture, for pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADDRESS = "klient.browser@example.net"
remember(ADDRESS)
LINK = re.compile(r"https?://\S+/j/[A-Za-z0-9_-]{43}")


@pytest.fixture
def smtp(tcp_port: int) -> Iterator[SmtpServer]:
    with SmtpServer(tcp_port) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def web_server(
    tmp_path: Path, browser: Browser, udp_ports: PortRange, smtp: SmtpServer
) -> AsyncIterator[WebServer]:
    """As tests/web/browser_server.py's, with mail on (reminders a day before) to `smtp`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    mail = (
        "mail:\n  enabled: true\n  host: 127.0.0.1\n"
        f"  port: {smtp.port}\n  security: none\n  sender: praxis@example.org\n"
        "  reminder_minutes_before: 1440\n  timeout_seconds: 10\n"
    )
    config = write_config(tmp_path, public_url=url, extra=media_config(udp_ports) + mail)
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    runner = web.AppRunner(create_app(config, storage), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    server = WebServer(ApiServer(url, config, storage, config.storage.sqlite_path), browser)
    try:
        yield server
    finally:
        for context in browser.contexts:
            await context.close()
        await runner.cleanup()
        await storage.close()


def in_berlin(delta: dt.timedelta) -> dt.datetime:
    later = (dt.datetime.now(dt.UTC) + delta).astimezone(ZoneInfo("Europe/Berlin"))
    return later.replace(second=0, microsecond=0)


async def fill_form(page: Page, when: dt.datetime, email: str) -> None:
    await page.get_by_role("button", name="Neuer Termin").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Datum").fill(when.strftime("%d.%m.%Y"))
    await dialog.get_by_label("Uhrzeit").fill(when.strftime("%H:%M"))
    await dialog.get_by_label("E-Mail-Adresse des Klienten / der Klientin (optional)").fill(email)


async def test_the_invitation_goes_out_by_mail_from_the_form(web_server: WebServer, smtp):
    context = await web_server.context()
    page, recorded = await web_server.signed_in_page(context)
    dialog = page.get_by_role("dialog")

    await fill_form(page, in_berlin(dt.timedelta(days=2)), "kein-at-zeichen")
    await expect(dialog.locator("#email-kept")).to_have_text(
        "Für die Erinnerung 1 Tag vor dem Termin wird die Adresse bis dahin aufbewahrt,"
        " dann gelöscht."
    )
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(dialog.get_by_role("alert")).to_have_text(
        "Bitte prüfen Sie die E-Mail-Adresse, z. B. name@example.org."
    )
    await expect(dialog.locator("#field-email")).to_be_focused()

    # a fresh form (the error above gone) for the screenshot
    await dialog.get_by_role("button", name="Abbrechen").click()
    await fill_form(page, in_berlin(dt.timedelta(days=2)), ADDRESS)
    await dialog.locator("#btn-save").scroll_into_view_if_needed()
    await screenshot(page, "dashboard-invite-by-mail")
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(dialog).to_be_hidden()
    item = page.locator("li.appointment").first
    status = item.locator(".mail-status")
    await expect(status).to_contain_text("Einladung per E-Mail gesendet; Erinnerung am ")
    shown = await item.locator("input.link").input_value()
    remember(shown.split("#", 1)[1], shown.split("/j/", 1)[1].split("#")[0])

    (mail,) = await smtp.wait_for(1)
    assert mail.recipients == [ADDRESS]
    text = mail.message.get_body(("plain",)).get_content()
    # the same link, without the end-to-end secret that only this browser holds
    assert set(LINK.findall(text)) == {shown.split("#", 1)[0]}
    assert "#" not in text
    await page.locator("body").click(position={"x": 5, "y": 300})
    await screenshot(page, "dashboard-invite-mailed")

    # editing offers no address: there is no link to send any more
    await item.get_by_role("button", name="Bearbeiten").click()
    await expect(dialog.get_by_role("heading")).to_have_text("Termin bearbeiten")
    await expect(dialog.locator("#email-field")).to_be_hidden()
    await dialog.get_by_role("button", name="Abbrechen").click()

    assert foreign_requests(web_server, recorded) == []
    assert recorded.errors == []
    await context.close()


async def test_with_the_mail_server_gone_the_page_says_so_and_keeps_the_link(
    web_server: WebServer, smtp
):
    smtp.stop()
    context = await web_server.context()
    page, recorded = await web_server.signed_in_page(context)
    await fill_form(page, in_berlin(dt.timedelta(hours=3)), ADDRESS)
    await page.get_by_role("dialog").get_by_role("button", name="Speichern").click()
    item = page.locator("li.appointment").first
    status = item.locator(".mail-status")
    await expect(status).to_contain_text(
        "Die E-Mail wurde nicht gesendet: Der Mailserver ist nicht erreichbar."
    )
    await expect(status).to_contain_text("bitte kopieren Sie den Link und senden Sie ihn selbst.")
    link = await item.locator("input.link").input_value()
    remember(link.split("#", 1)[1], link.split("/j/", 1)[1].split("#")[0])
    assert LINK.match(link)
    await expect(item.get_by_role("button", name="Link kopieren")).to_be_visible()
    assert recorded.errors == []
    await context.close()
