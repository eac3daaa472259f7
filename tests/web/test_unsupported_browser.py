"""A browser that cannot hold the call gets a page naming the browsers that can (with versions),
never a blank or a dead waiting room. The checks are feature detection in the page, so chromium
is made to fail them with an init script that runs before any page script."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.async_api import expect

from tests.web.browser_server import WebServer
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

NO_TRANSFORMS = (
    "delete window.RTCRtpScriptTransform;"
    "delete RTCRtpSender.prototype.createEncodedStreams;"
    "delete RTCRtpReceiver.prototype.createEncodedStreams;"
)


async def open_link(web_server: WebServer, script: str):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    context = await web_server.context()
    await context.add_init_script(script)
    page, recorded = await web_server.page(context)
    await page.goto(appointment["invite_url"])
    return page, recorded


async def shows_the_supported_browsers(page) -> None:
    await expect(page.locator("#unsupported")).to_be_visible()
    browsers = page.locator("#supported-browsers")
    await expect(browsers).to_contain_text("Chrome oder Edge ab Version 93")
    await expect(browsers).to_contain_text("Firefox ab Version 117")
    await expect(browsers).to_contain_text("Safari ab Version 15.4")
    await expect(browsers).to_contain_text("iOS 15.4")
    # nothing of the waiting room or the call is left to click
    for section in ("#prepare", "#resume", "#call"):
        assert not await page.locator(section).is_visible(), f"{section} still shown"


async def test_without_webrtc_the_page_names_the_browsers_that_work(web_server: WebServer):
    page, recorded = await open_link(web_server, "delete window.RTCPeerConnection;")
    await shows_the_supported_browsers(page)
    await expect(page.locator("#unsupported-e2ee")).to_be_hidden()
    assert recorded.errors == []


async def test_a_browser_whose_modules_cannot_run_still_gets_the_page(web_server: WebServer):
    # Object.hasOwn (Chrome 93, Safari 15.4) stands for any language feature an older browser
    # lacks: the page's module fails, and only the classic browser-check.js is left to speak.
    page, _recorded = await open_link(web_server, "delete Object.hasOwn;")
    await shows_the_supported_browsers(page)
    assert await page.evaluate("document.documentElement.dataset.unsupported") == "es2022"


async def test_without_frame_encryption_a_required_call_names_the_browsers_that_work(
    web_server: WebServer,
):
    assert web_server.api.config.media.e2ee == "required"
    page, recorded = await open_link(web_server, NO_TRANSFORMS)
    await shows_the_supported_browsers(page)
    await expect(page.locator("#unsupported-e2ee")).to_be_visible()
    await expect(page.locator("#unsupported-e2ee")).to_contain_text("Ende-zu-Ende")
    assert recorded.errors == []


async def test_with_e2ee_preferred_a_browser_without_frame_encryption_may_join(
    web_server: WebServer,
):
    object.__setattr__(web_server.api.config.media, "e2ee", "preferred")
    page, recorded = await open_link(web_server, NO_TRANSFORMS)
    await expect(page.locator("#prepare")).to_be_visible()
    await expect(page.locator("#btn-join")).to_be_enabled()
    assert not await page.locator("#unsupported").is_visible()
    assert recorded.errors == []


async def test_the_therapists_call_page_names_the_browsers_that_work(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    context = await web_server.context()
    await context.add_init_script("delete window.RTCPeerConnection;")
    dashboard, _ = await web_server.signed_in_page(context)
    page, recorded = await web_server.page(context)
    await page.goto(f"{web_server.url}/call/{appointment['id']}")
    await shows_the_supported_browsers(page)
    await dashboard.close()
    assert recorded.errors == []
