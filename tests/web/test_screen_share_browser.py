"""Screen sharing and the weak-connection switch in two Debian chromium contexts with fake
devices (issue #14): the therapist shares, the client sees it large and encrypted, either side
stops it and the camera view returns; a weak link goes audio only on both sides and back."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.async_api import Page, expect

from tests.web.browser_server import (
    WebServer,
    foreign_requests,
    poll,
    screenshot,
)
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server
from tests.web.test_session_ux_browser import (
    appointment_with_note,
    client_joins,
    therapist_opens_call,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The screen m-line's transceiver (mid "2") and what arrives on it, read in the page.
SCREEN_RECEIVED = """(async () => {
  const pc = window.sprechzimmerCall.pc;
  const t = pc.getTransceivers().find((x) => x.mid === "2");
  const stats = await t.receiver.getStats();
  let frames = 0;
  stats.forEach((s) => { if (s.type === "inbound-rtp") frames = s.framesDecoded || 0; });
  const video = document.getElementById("screen-video");
  const stage = document.querySelector(".stage").getBoundingClientRect();
  const box = video.getBoundingClientRect();
  const camera = document.getElementById("remote-video").getBoundingClientRect();
  return {
    frames, width: video.videoWidth, height: video.videoHeight,
    shownShare: box.width / stage.width, cameraShare: camera.width / stage.width,
    encrypted: t.receiver.transform instanceof RTCRtpScriptTransform
      && t.sender.transform instanceof RTCRtpScriptTransform,
  };
})()"""


async def in_call(server: WebServer) -> tuple[Page, Page, list]:
    appointment = await appointment_with_note(server, dt.timedelta(minutes=5), None)
    _, therapist, therapist_log = await therapist_opens_call(server, appointment)
    _, client, client_log = await client_joins(server, appointment["invite_url"])
    for page in (therapist, client):
        await expect(page.locator("#remote-placeholder")).to_be_hidden(timeout=30_000)
        await expect(page.locator("#e2ee")).to_have_attribute(
            "data-state", "encrypted", timeout=30_000
        )
    return therapist, client, [therapist_log, client_log]


async def screen_frames(page: Page) -> int:
    return (await page.evaluate(SCREEN_RECEIVED))["frames"]


async def test_the_therapists_shared_screen_shows_large_and_encrypted_and_either_stops_it(
    web_server: WebServer,
):
    therapist, client, logs = await in_call(web_server)
    await expect(client.locator("#screen-video")).to_be_hidden()

    await therapist.get_by_role("button", name="Bildschirm teilen").click()
    await expect(therapist.locator("#screen-text")).to_have_text(
        "Sie teilen Ihren Bildschirm (Ende-zu-Ende-verschlüsselt)."
    )
    await expect(client.locator("#call")).to_have_attribute("data-sharing", "peer")
    await expect(client.locator("#screen-text")).to_have_text("Ihr Gegenüber teilt den Bildschirm.")
    assert await poll(client, f"{SCREEN_RECEIVED}.then((s) => s.frames > 3 && s.width > 0)"), (
        "the client decoded no frame of the screen on its screen transceiver"
    )
    seen = await client.evaluate(SCREEN_RECEIVED)
    assert seen["encrypted"], seen
    assert seen["shownShare"] > 0.9, seen  # the screen fills the stage
    assert seen["cameraShare"] < 0.3, seen  # the camera is a small tile
    # the fake screen is not the fake camera (640x480), and within SCREEN_CAPTURE's cap
    assert 640 < seen["width"] <= 1920 and seen["height"] <= 1080, seen
    camera = "document.getElementById('remote-video')"
    assert await poll(client, f"{camera}.videoWidth > 0 && {camera}.videoWidth < 1280")
    # the sender's limits hold: content hint for text, five frames a second at most
    sender = await therapist.evaluate(
        """(() => {
          const t = window.sprechzimmerCall.pc.getTransceivers().find((x) => x.mid === "2");
          return {hint: t.sender.track.contentHint,
                  fps: t.sender.getParameters().encodings[0].maxFramerate};
        })()"""
    )
    assert sender == {"hint": "detail", "fps": 5}
    await screenshot(client, "screen-share")

    # the viewer stops it: the sharer's page stops sharing, both return to the camera
    await client.get_by_role("button", name="Freigabe beenden").click()
    await expect(therapist.locator("#btn-screen")).to_have_attribute("aria-pressed", "false")
    assert await therapist.evaluate("window.sprechzimmerCall.screenTrack === null")
    await expect(client.locator("#call")).to_have_attribute("data-sharing", "")
    await expect(client.locator("#screen-video")).to_be_hidden()
    await expect(client.locator("#screen-bar")).to_be_hidden()
    full = "document.getElementById('remote-video').getBoundingClientRect().width"
    stage = "document.querySelector('.stage').getBoundingClientRect().width"
    assert await poll(client, f"{full} / {stage} > 0.9"), "the camera view did not return"

    # shared again, and this time the sharer stops it (no reconnect, no new offer)
    restarts = await therapist.evaluate("window.sprechzimmerCall.restarts")
    offers_before = await therapist.evaluate("window.sprechzimmerCall.generation")
    frames_before = await screen_frames(client)
    await therapist.get_by_role("button", name="Bildschirm teilen").click()
    await expect(client.locator("#call")).to_have_attribute("data-sharing", "peer")
    assert await poll(client, f"{SCREEN_RECEIVED}.then((s) => s.frames > {frames_before + 3})")
    await therapist.get_by_role("button", name="Teilen beenden").click()
    await expect(client.locator("#call")).to_have_attribute("data-sharing", "")
    await expect(client.locator("#screen-video")).to_be_hidden()
    assert await therapist.evaluate("window.sprechzimmerCall.restarts") == restarts
    assert await therapist.evaluate("window.sprechzimmerCall.generation") == offers_before
    for log in logs:
        assert log.errors == []
        assert foreign_requests(web_server, log) == []


# A weak link, made in the client's page: its getStats() reports 30 % of its packets lost on
# the way to the relay while window.__weakLink is set. Real loss would need one browser's media
# through a lossy path (tests/sfu/lossy_link.py relays aiortc peers, not a browser's ICE), and
# chromium has no switch that throttles one page's WebRTC; the decision itself is tested on its
# own in test_link_quality_logic.py, so this test holds the pages' reaction on both sides.
WEAK_LINK = """
(() => {
  const real = RTCPeerConnection.prototype.getStats;
  RTCPeerConnection.prototype.getStats = async function (...args) {
    const report = await real.apply(this, args);
    if (!window.__weakLink || args.length) return report;
    const out = new Map();
    report.forEach((entry, id) => {
      out.set(id, entry.type === "remote-inbound-rtp" ? { ...entry, fractionLost: 0.3 } : entry);
    });
    return out;
  };
})();
"""


async def test_a_weak_link_goes_audio_only_on_both_sides_and_video_returns(
    web_server: WebServer,
):
    appointment = await appointment_with_note(web_server, dt.timedelta(minutes=5), None)
    _, therapist, therapist_log = await therapist_opens_call(web_server, appointment)
    client_context = await web_server.context()
    await client_context.add_init_script(WEAK_LINK)
    client, client_log = await web_server.page(client_context)
    await client.goto(appointment["invite_url"])
    await client.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await client.get_by_label("Ich willige ein").check()
    await client.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    await client.get_by_role("button", name="Beitreten").click()
    for page in (therapist, client):
        await expect(page.locator("#remote-placeholder")).to_be_hidden(timeout=30_000)

    await client.evaluate("window.__weakLink = true")
    # first the offer (4 s weak), then the switch (10 s weak)
    await expect(client.locator("#link-notice-text")).to_have_text(
        "Schwache Verbindung \u2013 auf nur Audio umschalten?", timeout=30_000
    )
    await expect(client.locator("#link-notice-text")).to_have_text(
        "Schwache Verbindung \u2013 nur Audio", timeout=30_000
    )
    await expect(therapist.locator("#link-notice-text")).to_have_text(
        "Schwache Verbindung \u2013 nur Audio"
    )
    await expect(therapist.locator("#call")).to_have_attribute("data-audio-only", "true")
    # both stopped sending their camera: nothing is on either video sender
    for page in (client, therapist):
        assert await poll(
            page, "window.sprechzimmerCall.pc.getTransceivers()[1].sender.track === null"
        ), "a page still sends its camera"
    await screenshot(therapist, "audio-only")

    await client.evaluate("window.__weakLink = false")
    for page in (client, therapist):
        await expect(page.locator("#link-notice")).to_be_hidden(timeout=45_000)
        await expect(page.locator("#call")).to_have_attribute("data-audio-only", "false")
        assert await poll(
            page, "window.sprechzimmerCall.pc.getTransceivers()[1].sender.track !== null"
        ), "a page did not send its camera again"
    for log in (therapist_log, client_log):
        assert log.errors == []
        assert foreign_requests(web_server, log) == []
