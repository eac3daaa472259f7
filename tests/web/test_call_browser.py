"""A whole call in real browsers: therapist and client see and hear each other through the relay,
a third browser is refused, and the therapist's "end" reaches both.

Each side's camera is replaced by a canvas of its own colour (red for the therapist, blue for the
client) with a moving bar, so a picture sent back to its sender (an echo) cannot pass.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.web.browser_server import WebServer, poll, screenshot
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

# One event loop per module: the module shares one chromium.
pytestmark = pytest.mark.asyncio(loop_scope="module")

RED = (220, 40, 40)
BLUE = (40, 60, 220)

# getUserMedia's video becomes a 640x480 canvas of one colour with a moving white bar; audio
# stays chromium's fake microphone (a beep), so audio packets flow as in a real call.
CANVAS_CAMERA = """
(() => {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = new MediaStream();
    if (constraints.audio) {
      for (const track of (await original({ audio: constraints.audio })).getAudioTracks()) {
        stream.addTrack(track);
      }
    }
    if (constraints.video) {
      const canvas = document.createElement("canvas");
      canvas.width = 640;
      canvas.height = 480;
      const context = canvas.getContext("2d");
      let x = 0;
      setInterval(() => {
        context.fillStyle = "rgb(%s)";
        context.fillRect(0, 0, 640, 480);
        context.fillStyle = "#fff";
        context.fillRect(x, 0, 40, 60);
        x = (x + 8) %% 600;
      }, 33);
      stream.addTrack(canvas.captureStream(30).getVideoTracks()[0]);
    }
    return stream;
  };
})();
"""

# The average colour of the middle of the remote picture.
REMOTE_COLOUR = """
(() => {
  const video = document.getElementById("remote-video");
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 48;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0, 64, 48);
  const data = context.getImageData(16, 24, 32, 20).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += 4) for (let c = 0; c < 3; c++) sum[c] += data[i + c];
  return sum.map((s) => Math.round(s / (data.length / 4)));
})()
"""

INBOUND = """
(async () => {
  const report = await window.sprechzimmerCall.getStats();
  const result = { framesDecoded: 0, videoPackets: 0, audioPackets: 0 };
  if (!report) return result;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      result.framesDecoded += s.framesDecoded || 0;
      result.videoPackets += s.packetsReceived || 0;
    }
    if (s.type === "inbound-rtp" && s.kind === "audio") result.audioPackets += s.packetsReceived || 0;
  });
  return result;
})()
"""

CALL_STATE = """
(() => {
  const call = window.sprechzimmerCall;
  const pc = call && call.pc;
  return {
    status: call && call.status,
    connection: pc && pc.connectionState,
    ice: pc && pc.iceConnectionState,
    signaling: pc && pc.signalingState,
    remote: String(document.getElementById("remote-video").srcObject),
    placeholder: document.getElementById("remote-status").textContent,
    banner: document.getElementById("banner").textContent,
  };
})()
"""

SOCKET_JOIN = """
(token) => new Promise((resolve) => {
  const socket = new WebSocket(`ws://${location.host}/ws`);
  const answers = [];
  socket.onopen = () => socket.send(JSON.stringify({ v: 1, type: "join", invite: token }));
  socket.onmessage = (event) => answers.push(JSON.parse(event.data));
  socket.onclose = (event) => resolve({ code: event.code, answers });
  // a deadline, not an expectation: the server closes the refused socket long before
  setTimeout(() => resolve({ code: null, answers }), 30000);
})
"""


def camera(colour: tuple[int, int, int]) -> str:
    return CANVAS_CAMERA % ",".join(map(str, colour))


def near(seen: list[int], colour: tuple[int, int, int]) -> bool:
    # VP8 at a low start bitrate blurs and shifts colours a little; the bar moves through too.
    return all(abs(a - b) < 60 for a, b in zip(seen, colour, strict=True))


async def media_advances(page: Page, timeout: float = 20.0) -> dict[str, Any]:
    """Remote video decoded and advancing, audio arriving: a sample, then a later one with more
    frames decoded and more audio packets (waited for, however slowly the machine runs)."""
    decoded = await poll(page, "document.getElementById('remote-video').videoWidth > 0", timeout)
    assert decoded, f"no remote video decoded: {await page.evaluate(CALL_STATE)}"
    flowing = await poll(
        page, f"{INBOUND}.then((s) => s.framesDecoded > 0 && s.audioPackets > 0)", timeout
    )
    assert flowing, f"no frames decoded or no audio: {await page.evaluate(CALL_STATE)}"
    first = await page.evaluate(INBOUND)
    advanced = await poll(
        page,
        f"{INBOUND}.then((s) => s.framesDecoded > {first['framesDecoded']}"
        f" && s.audioPackets > {first['audioPackets']})",
        timeout,
    )
    second = await page.evaluate(INBOUND)
    assert advanced, f"media stopped: {first} then {second}; {await page.evaluate(CALL_STATE)}"
    return second


async def test_a_call_between_therapist_and_client(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    token = appointment["invite_url"].rsplit("/j/", 1)[1]

    therapist_context = await web_server.context()
    await therapist_context.add_init_script(camera(RED))
    dashboard, _ = await web_server.signed_in_page(therapist_context)
    item = dashboard.locator(f'li[data-id="{appointment["id"]}"]')
    await expect(item.locator(".badge")).to_have_text("Eingeladen")
    await expect(item.locator("a.join")).to_have_attribute("href", f"/call/{appointment['id']}")
    therapist, therapist_log = await web_server.page(therapist_context)
    await therapist.goto(f"{web_server.url}/call/{appointment['id']}")
    await expect(therapist.locator("#remote-status")).to_have_text(
        "Ihr Klient / Ihre Klientin ist noch nicht im Warteraum."
    )

    client_context = await web_server.context()
    await client_context.add_init_script(camera(BLUE))
    client, client_log = await web_server.page(client_context)
    await client.goto(appointment["invite_url"])
    await client.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await client.get_by_label("Ich willige ein").check()
    await client.get_by_label("Ihr Name (optional)").fill("Anna <b>M.</b>")
    await client.get_by_role("button", name="Kamera und Mikrofon einschalten").click()
    assert await poll(client, "document.getElementById('preview').videoWidth > 0")
    await client.get_by_role("button", name="Beitreten").click()

    # The therapist sees the client's name, as text; the dashboard shows the live status.
    await expect(therapist.locator("#peer-name")).to_have_text("Anna <b>M.</b>")
    await expect(item.locator(".badge")).to_contain_text("Anna <b>M.</b>")

    await media_advances(therapist)
    await media_advances(client)
    # Each sees the other's picture, not its own.
    assert await poll(
        therapist, f"(() => {{ const c = {REMOTE_COLOUR}; return c[2] > c[0] + 80; }})()"
    )
    assert await poll(
        client, f"(() => {{ const c = {REMOTE_COLOUR}; return c[0] > c[2] + 80; }})()"
    )
    assert near(await therapist.evaluate(REMOTE_COLOUR), BLUE)
    assert near(await client.evaluate(REMOTE_COLOUR), RED)
    await expect(therapist.locator("#remote-placeholder")).to_be_hidden()
    await expect(client.locator("#remote-placeholder")).to_be_hidden()
    assert await poll(
        therapist, "document.getElementById('quality').classList.contains('good')", 10
    )
    await screenshot(therapist, "call")

    # The client's connection drops: a fresh peer connection for the same seat (`reconnect`),
    # and media flows again both ways; the therapist keeps its peer connection.
    therapist_pc = await therapist.evaluate("window.sprechzimmerCall.pc.localDescription.sdp")
    restarts = await client.evaluate("window.sprechzimmerCall.restarts")
    await client.evaluate("window.sprechzimmerCall.restartPeer()")
    await expect(client.locator("#banner")).to_have_text("Verbindung wird wiederhergestellt …")
    await expect(client.locator("#banner")).to_be_empty(timeout=15000)
    assert await client.evaluate("window.sprechzimmerCall.restarts") == restarts + 1
    await media_advances(client)
    await media_advances(therapist)
    assert (
        await therapist.evaluate("window.sprechzimmerCall.pc.localDescription.sdp") == therapist_pc
    )

    # A third browser with the same link: the page is the invalid one, the socket is refused.
    third_context = await web_server.context()
    third, _ = await web_server.page(third_context)
    response = await third.goto(appointment["invite_url"])
    assert response is not None and response.status == 404
    refused = await third.evaluate(SOCKET_JOIN, token)
    assert refused["code"] in (4001, 4003), refused
    assert [a["type"] for a in refused["answers"]] == ["error"]
    await media_advances(client)  # the call goes on

    # The therapist ends the session: both see the end screen.
    therapist.once("dialog", lambda dialog: dialog.accept())
    await therapist.get_by_role("button", name="Sitzung beenden").click()
    await expect(therapist.get_by_role("heading", name="Die Sitzung ist beendet")).to_be_visible()
    await expect(client.get_by_role("heading", name="Die Sitzung ist beendet")).to_be_visible()
    await expect(client.locator("#ended-text")).to_have_text(
        "Vielen Dank. Sie können dieses Fenster jetzt schließen."
    )
    await screenshot(client, "ended")
    await expect(item.locator(".badge")).to_have_text("Beendet")
    assert therapist_log.errors == []
    assert client_log.errors == []


async def test_the_client_waits_for_the_therapist(web_server: WebServer):
    appointment = await web_server.appointment(dt.timedelta(minutes=5))
    context = await web_server.context()
    await context.add_init_script(camera(BLUE))
    client, recorded = await web_server.page(context)
    await client.goto(appointment["invite_url"])
    await client.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await client.get_by_label("Ich willige ein").check()
    await client.get_by_role("button", name="Beitreten").click()
    await expect(client.locator("#remote-status")).to_have_text(
        "Ihr Therapeut / Ihre Therapeutin ist gleich für Sie da."
    )
    await expect(client.locator("#remote-sub")).to_have_text(
        "Ihre Verbindung steht. Bitte lassen Sie dieses Fenster geöffnet."
    )
    assert await poll(client, "document.getElementById('self-video').videoWidth > 0")
    await screenshot(client, "waiting-for-therapist")

    await client.get_by_role("button", name="Auflegen").click()
    await expect(
        client.get_by_role("heading", name="Sie haben das Gespräch verlassen")
    ).to_be_focused()
    await expect(client.get_by_role("button", name="Wieder beitreten")).to_be_visible()
    assert recorded.errors == []


async def test_the_call_page_sends_a_visitor_to_login(web_server: WebServer):
    page, _ = await web_server.page(await web_server.context())
    await page.goto(f"{web_server.url}/call/1")
    await expect(page).to_have_url(f"{web_server.url}/login")
