"""H.264 frames through the page's end-to-end encryption (e2ee-worker.js), in Debian's chromium:
two peer connections in one page, H.264 forced with setCodecPreferences, the sender's frames
encrypted and the receiver's decrypted by the real worker behind RTCRtpScriptTransform. The
picture must decode (chromium's H.264 packetizer and depacketizer read the NAL units, so the
clear part and the escaping must keep them intact) and show the sender's colour."""

from __future__ import annotations

import pytest

from tests.web.browser_server import WebServer, poll
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOOPBACK = """
async (codec) => {
  const { MediaEncryption } = await import("/static/js/e2ee-media.js");
  const canvas = document.createElement("canvas");
  canvas.width = 320; canvas.height = 240;
  const context = canvas.getContext("2d");
  let x = 0;
  setInterval(() => {
    context.fillStyle = "rgb(220,30,30)"; context.fillRect(0, 0, 320, 240);
    context.fillStyle = "#fff"; context.fillRect(x, 0, 20, 30); x = (x + 4) % 300;
  }, 33);
  const track = canvas.captureStream(30).getVideoTracks()[0];
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt", "decrypt"]);
  const salt = crypto.getRandomValues(new Uint8Array(12));
  const keys = { send: { id: 1, key, salt }, receive: { id: 1, key, salt } };
  const sending = new MediaEncryption(), receiving = new MediaEncryption();
  sending.setKeys(keys); receiving.setKeys(keys);
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  const wanted = RTCRtpReceiver.getCapabilities("video").codecs.filter(
    (c) => c.mimeType === codec && (codec !== "video/H264" ||
      (c.sdpFmtpLine || "").includes("packetization-mode=1") && (c.sdpFmtpLine || "").includes("42e01f")));
  // as call.js does: the transforms attached right after addTransceiver, before the offer
  const sender = a.addTransceiver(track, { direction: "sendonly" });
  sender.setCodecPreferences(wanted);
  sending.attach(sender, "video");
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  const receiver = b.getTransceivers()[0];
  receiving.attach(receiver, "video");
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.append(video);
  video.srcObject = new MediaStream([receiver.receiver.track]);
  video.play().catch(() => {});
  window.loop = { a, b, video, sending, receiving };
  return wanted.map((c) => c.sdpFmtpLine || c.mimeType);
}
"""

RECEIVED = """
(async () => {
  const report = await window.loop.b.getStats();
  let frames = 0, codec = null, codecId = null;
  report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") { frames = s.framesDecoded || 0; codecId = s.codecId; } });
  if (codecId) codec = report.get(codecId)?.mimeType || null;
  const v = window.loop.video;
  let colour = null;
  if (v.videoWidth) {
    const c = document.createElement("canvas"); c.width = 16; c.height = 16;
    const g = c.getContext("2d"); g.drawImage(v, v.videoWidth / 2 - 8, v.videoHeight / 2 + 20, 16, 16, 0, 0, 16, 16);
    const d = g.getImageData(8, 8, 1, 1).data; colour = [d[0], d[1], d[2]];
  }
  return { frames, codec, colour };
})()
"""

STATS = """
(async (which) => {
  const worker = window.loop[which].worker;
  return await new Promise((resolve) => {
    worker.addEventListener("message", (e) => e.data.type === "stats" && resolve(e.data.stats), { once: true });
    worker.postMessage({ type: "stats" });
  });
})
"""


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_encrypted_frames_decode(web_server: WebServer, codec: str):
    context = await web_server.context()
    page, recorded = await web_server.page(context)
    await page.goto(f"{web_server.url}/terms")
    offered = await page.evaluate(LOOPBACK, codec)
    assert offered, f"chromium offers no {codec}"
    decoding = await poll(
        page,
        f"{RECEIVED}.then((r) => r.frames > 30 && r.colour && r.colour[0] > 150"
        " && r.colour[1] < 100 && r.colour[2] < 100)",
        30,
    )
    received = await page.evaluate(RECEIVED)
    sent = await page.evaluate(f"{STATS}('sending')")
    got = await page.evaluate(f"{STATS}('receiving')")
    assert decoding, f"{codec}: no red picture decoded: {received}, sent {sent}, got {got}"
    assert received["codec"] == codec, received
    assert sent["encrypted"] > 30 and got["decrypted"] > 30, (sent, got)
    assert recorded.errors == []
