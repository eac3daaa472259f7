"""The code paths Safari (WebKit) takes, in chromium with the APIs Safari lacks taken away.

Debian's WebKitGTK is built without WebRTC (docs/browsers.md shows the evidence and
test_webkitgtk_has_no_webrtc below holds it), so no WebKit can call here. What the page does
differently on Safari is in its feature checks, and chromium can be made to fail them the same
way before any page script runs:

- no `createEncodedStreams` (Safari has only RTCRtpScriptTransform): the frames must be
  encrypted in the worker, and the call must still be encrypted and confirmed;
- no `setSinkId` (Safari cannot choose the speaker): the speaker choice must be hidden;
- audible playback refused without a gesture (iOS autoplay rules; the videos are `playsinline`):
  the "sound on" button must appear, and a tap on it must start the remote audio.

Without RTCRtpScriptTransform too (Safari before 15.4), media.e2ee "required" gets the page naming
the browsers that work: test_unsupported_browser.py.
"""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import expect

from tests.web.browser_server import WebServer
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server
from tests.web.call_matrix import (
    both_verified_with_one_code,
    chromium_client_joins,
    chromium_therapist_opens_call,
    each_sees_and_hears_the_other,
    until,
)
from tests.web.webkitgtk import DRIVER, XVFB, webrtc_features

# One event loop per module: the module shares one chromium.
pytestmark = pytest.mark.asyncio(loop_scope="module")

# Before the page's modules run. Safari's rule is "a user gesture allows audible play()"; a
# gesture's activation lasts seconds in chromium, so the remote track may or may not arrive
# within it. Here only a click on the page's own "sound on" button counts, so the path is the
# same on every run: the page's first play() is refused, as on an iPhone.
SAFARI = """
(() => {
  delete RTCRtpSender.prototype.createEncodedStreams;
  delete RTCRtpReceiver.prototype.createEncodedStreams;
  delete HTMLMediaElement.prototype.setSinkId;
  window.safariGesture = false;
  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest("#btn-play")) window.safariGesture = true;
  }, true);
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (!this.muted && !window.safariGesture) {
      this.pause();
      return Promise.reject(new DOMException("play() needs a user gesture", "NotAllowedError"));
    }
    return play.call(this);
  };
})();
"""


async def test_a_safari_like_client_encrypts_in_the_worker_and_gets_sound_after_a_tap(
    web_server: WebServer,
):
    therapist, link, logs = await chromium_therapist_opens_call(web_server)
    client, client_log = await chromium_client_joins(web_server, link, SAFARI)

    assert await client.evaluate("'createEncodedStreams' in RTCRtpSender.prototype") is False
    await both_verified_with_one_code(therapist, client)  # asserts the worker on both sides
    await expect(client.locator("#btn-play")).to_be_visible()
    await client.locator("#btn-play").click()
    await expect(client.locator("#btn-play")).to_be_hidden()
    await until(
        client,
        "!document.getElementById('remote-video').paused",
        "the remote video (with its audio) did not play after the tap",
    )
    await each_sees_and_hears_the_other(therapist, client)
    # Safari cannot route audio to another speaker: the choice is not offered.
    await client.locator("#btn-devices").click()
    await expect(client.locator("#call-microphone")).to_be_visible()
    await expect(client.locator("#call-speaker")).to_be_hidden()
    for log in [*logs, client_log]:
        assert log.errors == []


async def test_webkitgtk_has_no_webrtc():
    if shutil.which(DRIVER) is None or shutil.which(XVFB) is None:
        # A failure, not a skip: the matrix would quietly lose its WebKit cell.
        pytest.fail("WebKitWebDriver or Xvfb is missing (make webkit installs them)")
    features = await webrtc_features()
    # The page is a secure context with getUserMedia, so the missing RTCPeerConnection is the
    # build's, not a policy. When this fails, Debian's WebKitGTK gained WebRTC: add a WebKit
    # <-> chromium call to the matrix (docs/browsers.md).
    assert features["secure"] and features["getUserMedia"], features
    assert features["RTCPeerConnection"] is False, features
