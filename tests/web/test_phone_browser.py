"""The client's pages on a phone: chromium with a phone's viewport, touch and mobile emulation
(390x844 portrait, 844x390 landscape), calling a desktop chromium therapist through the real
relay. What a phone adds: the layout has to fit both orientations, the camera turns between front
and back, the on-screen keyboard takes half the height, and the screen locks or the tab goes to
the background and comes back."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.web.browser_server import WebServer
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server
from tests.web.call_matrix import chromium_therapist_opens_call, until
from tests.web.test_call_browser import BLUE, camera, media_advances

pytestmark = pytest.mark.asyncio(loop_scope="module")

PORTRAIT = {"width": 390, "height": 844}
LANDSCAPE = {"width": 844, "height": 390}

# After the canvas camera: what the page asks getUserMedia for, and how often it negotiates.
RECORDER = """
(() => {
  window.__videoAsks = [];
  const gum = navigator.mediaDevices.getUserMedia;
  navigator.mediaDevices.getUserMedia = (constraints) => {
    if (constraints && constraints.video) window.__videoAsks.push(constraints.video);
    return gum(constraints);
  };
  window.__localDescriptions = 0;
  const set = RTCPeerConnection.prototype.setLocalDescription;
  RTCPeerConnection.prototype.setLocalDescription = function (...args) {
    window.__localDescriptions += 1;
    return set.apply(this, args);
  };
})();
"""

# Every problem with the layout at this moment: horizontal scrolling, a visible control outside
# the viewport, a remote video that does not fit or has no room.
LAYOUT_PROBLEMS = """
(() => {
  const width = window.innerWidth, height = window.innerHeight;
  const problems = [];
  if (document.documentElement.scrollWidth > width) {
    problems.push(`scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  }
  const inside = (el) => {
    const r = el.getBoundingClientRect();
    return r.left >= -1 && r.top >= -1 && r.right <= width + 1 && r.bottom <= height + 1;
  };
  for (const button of document.querySelectorAll(".controls button")) {
    if (button.offsetParent === null) continue; // hidden
    if (!inside(button)) problems.push(`${button.id} outside ${JSON.stringify(button.getBoundingClientRect())}`);
  }
  const video = document.getElementById("remote-video");
  const r = video.getBoundingClientRect();
  if (!inside(video)) problems.push(`remote video outside ${JSON.stringify(r)}`);
  if (r.height < height * 0.3) problems.push(`remote video too small: ${r.height} of ${height}`);
  return problems;
})()
"""


async def phone_joins(server: WebServer, link: str, viewport: dict[str, int]) -> Page:
    context = await server.context(viewport=viewport, is_mobile=True, has_touch=True)
    await context.add_init_script(camera(BLUE) + RECORDER)
    page, recorded = await server.page(context)
    page.recorded = recorded  # type: ignore[attr-defined]
    await page.goto(link)
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    await page.get_by_label("Ich habe die Nutzungsbedingungen gelesen").tap()
    await page.get_by_label("Ich willige ein").tap()
    await page.get_by_role("button", name="Beitreten").tap()
    return page


async def in_call(server: WebServer, viewport: dict[str, int]) -> tuple[Page, Page]:
    therapist, link, _logs = await chromium_therapist_opens_call(server)
    phone = await phone_joins(server, link, viewport)
    await media_advances(phone)
    await media_advances(therapist)
    return therapist, phone


async def no_layout_problems(page: Page, when: str) -> None:
    problems: list[Any] = await page.evaluate(LAYOUT_PROBLEMS)
    assert problems == [], f"{when}: {problems}"


async def test_the_waiting_room_fits_a_phone_both_ways(web_server: WebServer):
    appointment = await web_server.appointment(__import__("datetime").timedelta(minutes=5))
    for viewport in (PORTRAIT, LANDSCAPE):
        context = await web_server.context(viewport=viewport, is_mobile=True, has_touch=True)
        await context.add_init_script(camera(BLUE))
        page, recorded = await web_server.page(context)
        await page.goto(appointment["invite_url"])
        await page.get_by_role("button", name="Kamera und Mikrofon einschalten").tap()
        await expect(page.locator("#device-controls")).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"{viewport}: scrolls sideways ({width})"
        preview = await page.locator("#preview").bounding_box()
        assert preview and preview["width"] <= viewport["width"], (viewport, preview)
        join = page.get_by_role("button", name="Beitreten")
        await join.scroll_into_view_if_needed()
        await expect(join).to_be_in_viewport()
        assert recorded.errors == []
        await context.close()


async def test_a_call_on_a_phone_fits_portrait_and_landscape(web_server: WebServer):
    _therapist, phone = await in_call(web_server, PORTRAIT)
    await no_layout_problems(phone, "portrait")
    await phone.set_viewport_size(LANDSCAPE)
    await until(
        phone,
        "window.innerWidth === 844",
        "the phone did not turn to landscape",
    )
    await no_layout_problems(phone, "landscape")
    assert phone.recorded.errors == []  # type: ignore[attr-defined]


async def test_the_camera_turns_from_front_to_back_without_renegotiation(web_server: WebServer):
    therapist, phone = await in_call(web_server, PORTRAIT)
    flip = phone.locator("#btn-flip")
    await expect(flip).to_be_visible()
    sender_track = (
        "window.sprechzimmerCall.pc.getTransceivers().find((t) => t.mid === '1').sender.track?.id"
    )
    before = await phone.evaluate(sender_track)
    negotiated = await phone.evaluate("window.__localDescriptions")
    await flip.tap()
    await until(
        phone,
        f"(() => {{ const id = {sender_track}; return id && id !== {before!r}; }})()",
        "the sender's camera track was not replaced",
    )
    asks = await phone.evaluate("window.__videoAsks")
    assert (
        asks[-1].get("facingMode") == {"exact": "environment"}
        or asks[-1].get("facingMode") == "environment"
        or asks[-1].get("facingMode", {}).get("ideal") == "environment"
    ), asks
    await expect(flip).to_have_attribute("data-facing", "environment")
    # the self view is not mirrored for the back camera (text on paper reads right)
    await expect(phone.locator("#self-video")).to_have_class("self-video environment")
    # the therapist keeps getting frames from the new track: a positive signal the swap is done
    await media_advances(therapist)
    assert await phone.evaluate("window.__localDescriptions") == negotiated, "renegotiated"
    await flip.tap()
    await expect(flip).to_have_attribute("data-facing", "user")
    asks = await phone.evaluate("window.__videoAsks")
    assert "user" in str(asks[-1].get("facingMode")), asks
    await media_advances(therapist)
    assert await phone.evaluate("window.__localDescriptions") == negotiated, "renegotiated"
    assert phone.recorded.errors == []  # type: ignore[attr-defined]


async def test_the_chat_stays_usable_when_the_keyboard_opens(web_server: WebServer):
    _therapist, phone = await in_call(web_server, PORTRAIT)
    await phone.locator("#btn-chat").tap()
    chat_input = phone.locator("#chat-input")
    await expect(chat_input).to_be_focused()
    # The keyboard takes the lower 45 % of the screen: the visual viewport shrinks.
    keyboard_open = {"width": 390, "height": 464}
    await phone.set_viewport_size(keyboard_open)
    await until(
        phone,
        "window.visualViewport.height <= 464",
        "the visual viewport did not shrink",
    )
    for selector in ("#chat-input", "#btn-chat-send"):
        await expect(phone.locator(selector)).to_be_in_viewport(ratio=1)
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
    await chat_input.fill("Hallo vom Telefon")
    await phone.locator("#btn-chat-send").tap()
    await expect(phone.locator("#chat-log li.me")).to_contain_text("Hallo vom Telefon")
    # the keyboard closes: the call fills the screen again
    await phone.set_viewport_size(PORTRAIT)
    await until(phone, "window.visualViewport.height >= 800", "the keyboard did not close")
    await no_layout_problems(phone, "after the keyboard")


HIDE = """
(() => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  document.dispatchEvent(new Event("visibilitychange"));
  // what a locked screen leaves behind on a phone: the remote video paused by the browser
  document.getElementById("remote-video").pause();
})()
"""
SHOW = """
(() => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
  document.dispatchEvent(new Event("visibilitychange"));
})()
"""


async def test_after_a_locked_screen_the_picture_plays_again(web_server: WebServer):
    therapist, phone = await in_call(web_server, PORTRAIT)
    await phone.evaluate(HIDE)
    assert await phone.evaluate("document.getElementById('remote-video').paused")
    await phone.evaluate(SHOW)
    await until(
        phone,
        "!document.getElementById('remote-video').paused",
        "the remote video stayed paused after the page became visible again",
    )
    await media_advances(phone)
    await media_advances(therapist)
    assert phone.recorded.errors == []  # type: ignore[attr-defined]


# Safari and Chrome on Android (since 108, `interactive-widget=resizes-visual`) leave the layout
# viewport as it is when the keyboard opens and shrink only the visual viewport. Headless chromium
# cannot open a keyboard, so the visual viewport's height is made to read less, and its resize
# event fired, as the browser does.
KEYBOARD_OVER_THE_PAGE = """
(() => {
  Object.defineProperty(window.visualViewport, "height", { configurable: true, get: () => 464 });
  window.visualViewport.dispatchEvent(new Event("resize"));
})()
"""


async def test_the_chat_input_stays_above_a_keyboard_that_covers_the_page(web_server: WebServer):
    _therapist, phone = await in_call(web_server, PORTRAIT)
    await phone.locator("#btn-chat").tap()
    await expect(phone.locator("#chat-input")).to_be_focused()
    await phone.evaluate(KEYBOARD_OVER_THE_PAGE)
    assert await phone.evaluate("window.innerHeight") == 844  # the layout viewport stays
    for selector in ("#chat-input", "#btn-chat-send"):
        box = await phone.locator(selector).bounding_box()
        assert box and box["y"] + box["height"] <= 464, f"{selector} under the keyboard: {box}"
    await phone.locator("#chat-input").fill("Hallo")
    await phone.locator("#btn-chat-send").tap()
    await expect(phone.locator("#chat-log li.me")).to_contain_text("Hallo")
    assert phone.recorded.errors == []  # type: ignore[attr-defined]
