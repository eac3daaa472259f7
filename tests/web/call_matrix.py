"""The steps of a call that the browser-matrix tests share, for a Playwright chromium page or a
Firefox page (tests/web/firefox_bidi.py) alike: open the call as therapist (from the dashboard,
so the link carries the E2EE secret `#k=`), join as client, and check what each side shows.
Every wait has a deadline and fails naming what did not happen and the page's call state.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Page, expect

from tests.signaling.api_server import PASSWORD
from tests.web.browser_server import Recorded, WebServer, poll
from tests.web.firefox_bidi import FirefoxPage
from tests.web.test_call_browser import BLUE, RED, REMOTE_COLOUR, camera, media_advances, near

BERLIN = ZoneInfo("Europe/Berlin")
SAFETY_CODE = re.compile(r"^\d{3} \d{3}$")
LINK = re.compile(r"/j/[^#]+#k=[A-Za-z0-9_-]{43}$")

AnyPage = Page | FirefoxPage

E2EE = """(() => ({
  state: document.getElementById("e2ee").dataset.state,
  code: document.getElementById("e2ee-code").textContent,
  worker: Boolean(window.sprechzimmerCall && window.sprechzimmerCall.encryption
    && window.sprechzimmerCall.encryption.worker),
}))()"""

SHOWS_BLUE = f"(() => {{ const c = {REMOTE_COLOUR}; return c[2] > c[0] + 80; }})()"
SHOWS_RED = f"(() => {{ const c = {REMOTE_COLOUR}; return c[0] > c[2] + 80; }})()"


# What a failure message shows of a call page.
CALL_STATE = """(() => {
  const call = window.sprechzimmerCall;
  const e2ee = document.getElementById("e2ee");
  return {
    phase: call && call.phase, peer: call && call.peerState,
    connection: call && call.pc && call.pc.connectionState,
    e2ee: e2ee && e2ee.dataset.state, e2eeText: document.getElementById("e2ee-text")?.textContent,
    banner: document.getElementById("banner")?.textContent,
  };
})()"""


async def until(page: AnyPage, expression: str, what: str, timeout: float = 20.0) -> None:
    """Wait for `expression` to be truthy in `page`; fail naming what did not happen and how
    the page looked then."""
    if not await poll(page, expression, timeout):  # type: ignore[arg-type]
        raise AssertionError(f"{what} (within {timeout} s): {await page.evaluate(CALL_STATE)}")


def firefox_camera(colour: tuple[int, int, int]) -> str:
    # Firefox runs preload scripts in the new tab's first about:blank too, which is no secure
    # context and has no navigator.mediaDevices.
    return f"if (navigator.mediaDevices) {{ {camera(colour)} }}"


def text_is(selector: str, text: str) -> str:
    return f"document.querySelector({selector!r})?.textContent === {text!r}"


async def firefox_client_joins(firefox: Any, link: str) -> tuple[FirefoxPage, Recorded]:
    context = await firefox.context()
    await context.add_init_script(firefox_camera(BLUE))
    page, recorded = await context.page()
    await page.goto(link)
    await page.click("#accept-terms")
    await page.click("#consent-processing")
    await page.click("#btn-join")
    return page, recorded


async def chromium_client_joins(
    server: WebServer, link: str, script: str = ""
) -> tuple[Page, Recorded]:
    """The client opens the link in chromium and joins; `script` runs before the page's own."""
    context = await server.context()
    await context.add_init_script(camera(BLUE) + script)
    page, recorded = await server.page(context)
    await page.goto(link)
    await page.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await page.get_by_label("Ich willige ein").check()
    await page.get_by_role("button", name="Beitreten").click()
    return page, recorded


async def chromium_therapist_opens_call(server: WebServer) -> tuple[Page, str, list[Recorded]]:
    """A new appointment on the dashboard (its link carries the secret `#k=`), then the call."""
    context = await server.context()
    await context.add_init_script(camera(RED))
    dashboard, dashboard_log = await server.signed_in_page(context)
    starts = next_slot()
    await dashboard.locator("#btn-new").click()
    await dashboard.locator("#field-date").fill(starts.strftime("%Y-%m-%d"))
    await dashboard.locator("#field-time").fill(starts.strftime("%H:%M"))
    await dashboard.locator("#btn-save").click()
    link_input = dashboard.locator("li[data-id] input.link")
    await expect(link_input).to_have_value(LINK)
    link = await link_input.input_value()
    appointment_id = await dashboard.locator("li[data-id]").get_attribute("data-id")
    therapist, therapist_log = await server.page(context)
    await therapist.goto(f"{server.url}/call/{appointment_id}")
    return therapist, link, [dashboard_log, therapist_log]


async def firefox_therapist_opens_call(
    server: WebServer, firefox: Any
) -> tuple[FirefoxPage, str, list[Recorded]]:
    """Sign in through the form, a new appointment on the dashboard, then the call: in Firefox."""
    if await server.api.storage.get_therapist("alice") is None:
        await server.api.add_therapist("alice")
    context = await firefox.context()
    await context.add_init_script(firefox_camera(RED))
    dashboard, dashboard_log = await context.page()
    await dashboard.goto(f"{server.url}/login")
    await dashboard.fill("#username", "alice")
    await dashboard.fill("#password", PASSWORD)
    await dashboard.click("#btn-login")
    await until(dashboard, "location.pathname === '/dashboard'", "firefox did not sign in")
    starts = next_slot()
    await dashboard.click("#btn-new")
    await dashboard.fill("#field-date", starts.strftime("%Y-%m-%d"))
    await dashboard.fill("#field-time", starts.strftime("%H:%M"))
    await dashboard.click("#btn-save")
    link_pattern = LINK.pattern.replace("\\", "\\\\")
    await until(
        dashboard,
        f"new RegExp('{link_pattern}').test("
        "document.querySelector('li[data-id] input.link')?.value || '')",
        "the dashboard in firefox showed no invite link with its secret",
    )
    link = await dashboard.evaluate("document.querySelector('li[data-id] input.link').value")
    appointment_id = await dashboard.evaluate("document.querySelector('li[data-id]').dataset.id")
    therapist, therapist_log = await context.page()
    await therapist.goto(f"{server.url}/call/{appointment_id}")
    return therapist, link, [dashboard_log, therapist_log]


def next_slot() -> dt.datetime:
    # from UTC, so that the local time exists even on the day the clocks change
    starts = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).astimezone(BERLIN)
    return starts + dt.timedelta(minutes=(5 - starts.minute % 5) % 5)


async def both_verified_with_one_code(therapist: AnyPage, client: AnyPage) -> str:
    for page, who in ((therapist, "therapist"), (client, "client")):
        await until(
            page,
            "document.getElementById('e2ee').dataset.state === 'verified'",
            f"the {who}'s call did not become end-to-end encrypted and confirmed",
        )
    therapist_e2ee = await therapist.evaluate(E2EE)
    client_e2ee = await client.evaluate(E2EE)
    assert SAFETY_CODE.match(therapist_e2ee["code"]), therapist_e2ee
    assert therapist_e2ee["code"] == client_e2ee["code"], (therapist_e2ee, client_e2ee)
    # Both have RTCRtpScriptTransform: the frames are encrypted in the worker.
    assert therapist_e2ee["worker"] and client_e2ee["worker"], (therapist_e2ee, client_e2ee)
    return therapist_e2ee["code"]


async def each_sees_and_hears_the_other(therapist: AnyPage, client: AnyPage) -> None:
    await media_advances(therapist)  # type: ignore[arg-type]
    await media_advances(client)  # type: ignore[arg-type]
    await until(therapist, SHOWS_BLUE, "the therapist did not see the client's blue picture")
    await until(client, SHOWS_RED, "the client did not see the therapist's red picture")
    assert near(await therapist.evaluate(REMOTE_COLOUR), BLUE)
    assert near(await client.evaluate(REMOTE_COLOUR), RED)
    # The quality indicator reads getStats() as each browser writes it; their reports differ.
    for page, who in ((therapist, "therapist"), (client, "client")):
        await until(
            page,
            "document.getElementById('quality').classList.contains('good')",
            f"the {who}'s quality indicator did not show a good loopback connection",
        )


async def send_chat(page: AnyPage, text: str) -> None:
    # A message that arrived opened the panel already; the button would close it.
    opened = not await page.evaluate("document.getElementById('chat-panel').hidden")
    if isinstance(page, FirefoxPage):
        if not opened:
            await page.click("#btn-chat")
        await page.fill("#chat-input", text)
        await page.click("#btn-chat-send")
    else:
        if not opened:
            await page.locator("#btn-chat").click()
        await page.locator("#chat-input").fill(text)
        await page.locator("#btn-chat-send").click()


async def chat_both_ways(therapist: AnyPage, client: AnyPage) -> None:
    await send_chat(client, "Bis <b>gleich</b>")
    await until(
        therapist,
        text_is("#chat-log li.peer", "Gegenüber: Bis <b>gleich</b>"),
        "the client's chat message did not reach the therapist as text",
    )
    await send_chat(therapist, "Guten Tag")
    await until(
        client,
        text_is("#chat-log li.peer", "Gegenüber: Guten Tag"),
        "the therapist's chat message did not reach the client",
    )
    assert await therapist.evaluate("document.querySelectorAll('#chat-log b').length") == 0


async def reconnect(page: AnyPage, other: AnyPage) -> None:
    """A fresh peer connection for the same seat; media flows again both ways."""
    restarts = await page.evaluate("window.sprechzimmerCall.restarts")
    await page.evaluate("window.sprechzimmerCall.restartPeer()")
    await until(
        page,
        f"window.sprechzimmerCall.restarts === {restarts + 1}"
        " && window.sprechzimmerCall.pc.connectionState === 'connected'"
        " && document.getElementById('banner').textContent === ''",
        "the reconnect did not bring a connected peer connection and a clear banner",
    )
    await media_advances(page)  # type: ignore[arg-type]
    await media_advances(other)  # type: ignore[arg-type]


async def both_see_the_end(therapist: AnyPage, client: AnyPage) -> None:
    if isinstance(therapist, FirefoxPage):
        await therapist.click("#btn-end")  # the driver accepts confirm()
    else:
        therapist.once("dialog", lambda dialog: dialog.accept())
        await therapist.locator("#btn-end").click()
    for page, who in ((therapist, "therapist"), (client, "client")):
        await until(
            page,
            "!document.getElementById('ended').hidden && "
            + text_is("#ended-heading", "Die Sitzung ist beendet"),
            f"the {who} did not see the end screen",
        )
    await until(
        client,
        text_is("#ended-text", "Vielen Dank. Sie können dieses Fenster jetzt schließen."),
        "the client's end screen did not thank and dismiss",
    )
