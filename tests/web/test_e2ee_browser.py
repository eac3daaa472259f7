"""End-to-end encryption in real browsers: both sides decode media that the relay forwards but
cannot read, show the lock and the same safety code; a wrong key gets no picture; the link's
secret never reaches the server; a tampered public key is a visible warning.

The link comes from the dashboard, as a therapist gets it: with `#k=<secret>`, and the secret in
this browser's IndexedDB for the call page.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import math
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import av
import pytest
from playwright.async_api import Page, expect

import sfu.relay
from signaling.consultations import Consultation
from tests.web.browser_server import Recorded, WebServer, poll
from tests.web.browser_server import browser as browser  # the fixtures, for pytest
from tests.web.browser_server import web_server as web_server
from tests.web.test_call_browser import (
    BLUE,
    INBOUND,
    RED,
    REMOTE_COLOUR,
    camera,
    media_advances,
    near,
)

# One event loop per module: the module shares one chromium.
pytestmark = pytest.mark.asyncio(loop_scope="module")

BERLIN = ZoneInfo("Europe/Berlin")
SAFETY_CODE = re.compile(r"^\d{3} \d{3}$")
# The pages reach their state after the client joined: media, socket and key agreement.
STATE_TIMEOUT_MS = 20_000


@dataclass
class Call:
    therapist: Page
    client: Page
    link: str
    secret: str
    logs: list[Recorded]
    sent: list[str] = field(default_factory=list)  # request URLs, bodies, WebSocket frames


async def start_call(
    server: WebServer,
    *,
    client_script: str = "",
    watch: list[str] | None = None,
    strip_fragment: bool = False,
) -> Call:
    """The therapist makes an appointment on the dashboard and opens the call; the client opens
    the shown link (fragment included) and joins."""
    sent: list[str] = [] if watch is None else watch
    therapist_context = await server.context()
    await therapist_context.add_init_script(camera(RED))
    dashboard, dashboard_log = await server.signed_in_page(therapist_context)
    record(dashboard, sent)
    # from UTC, so that the local time exists even on the day the clocks change
    starts = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).astimezone(BERLIN)
    starts += dt.timedelta(minutes=(5 - starts.minute % 5) % 5)
    await dashboard.locator("#btn-new").click()
    await dashboard.locator("#field-date").fill(starts.strftime("%Y-%m-%d"))
    await dashboard.locator("#field-time").fill(starts.strftime("%H:%M"))
    await dashboard.locator("#btn-save").click()
    link_input = dashboard.locator("li[data-id] input.link")
    await expect(link_input).to_have_value(re.compile(r"/j/[^#]+#k=[A-Za-z0-9_-]{43}$"))
    link = await link_input.input_value()
    appointment_id = await dashboard.locator("li[data-id]").get_attribute("data-id")

    therapist, therapist_log = await server.page(therapist_context)
    record(therapist, sent)
    await therapist.goto(f"{server.url}/call/{appointment_id}")

    client_context = await server.context()
    await client_context.add_init_script(camera(BLUE) + client_script)
    client, client_log = await server.page(client_context)
    record(client, sent)
    await client.goto(link.split("#", 1)[0] if strip_fragment else link)
    await client.get_by_label("Ich habe die Nutzungsbedingungen gelesen").check()
    await client.get_by_label("Ich willige ein").check()
    await client.get_by_role("button", name="Beitreten").click()
    return Call(
        therapist,
        client,
        link,
        link.rsplit("#k=", 1)[1],
        [dashboard_log, therapist_log, client_log],
        sent,
    )


def record(page: Page, sent: list[str]) -> None:
    """Everything the page sends to anyone: request URLs and bodies, WebSocket frames."""

    def on_request(request: Any) -> None:
        sent.append(request.url)
        try:
            sent.append(request.post_data or "")
        except Exception:  # a binary body Playwright cannot decode as text
            sent.append(repr(request.post_data_buffer))

    def on_websocket(socket: Any) -> None:
        sent.append(socket.url)
        socket.on("framesent", lambda payload: sent.append(str(payload)))

    page.on("request", on_request)
    page.on("websocket", on_websocket)


async def e2ee_state(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        """(() => ({
          state: document.getElementById("e2ee").dataset.state,
          text: document.getElementById("e2ee-text").textContent,
          lock: document.querySelector("#e2ee .lock").dataset.icon,
          code: document.getElementById("e2ee-code").textContent,
          codeShown: !document.getElementById("e2ee-code-line").hidden,
          banner: document.getElementById("banner").textContent,
        }))()"""
    )


async def test_both_sides_decode_encrypted_media_and_show_the_same_safety_code(
    web_server: WebServer,
):
    call = await start_call(web_server)
    for page in (call.therapist, call.client):
        await expect(page.locator("#e2ee")).to_have_attribute(
            "data-state", "verified", timeout=STATE_TIMEOUT_MS
        )
        await expect(page.locator("#e2ee-text")).to_have_text(
            "Ende-zu-Ende-verschlüsselt und bestätigt"
        )
    await media_advances(call.therapist)
    await media_advances(call.client)
    # Distinct pictures: each sees the other's colour, not its own.
    therapist_state = await e2ee_state(call.therapist)
    client_state = await e2ee_state(call.client)
    assert therapist_state["lock"] == client_state["lock"] == "lock"
    assert SAFETY_CODE.match(therapist_state["code"]), therapist_state
    assert therapist_state["code"] == client_state["code"]
    assert therapist_state["codeShown"] and client_state["codeShown"]
    # Chromium has RTCRtpScriptTransform: the frames are encrypted in the worker.
    assert await call.client.evaluate("window.sprechzimmerCall.encryption.worker !== null")
    assert await poll(
        call.therapist, f"(() => {{ const c = {REMOTE_COLOUR}; return c[2] > c[0] + 80; }})()"
    )
    assert await poll(
        call.client, f"(() => {{ const c = {REMOTE_COLOUR}; return c[0] > c[2] + 80; }})()"
    )
    assert near(await call.therapist.evaluate(REMOTE_COLOUR), BLUE)
    assert near(await call.client.evaluate(REMOTE_COLOUR), RED)
    for log in call.logs:
        assert log.errors == []


async def test_the_encoded_streams_fallback_talks_with_the_worker(web_server: WebServer):
    call = await start_call(web_server, client_script="delete window.RTCRtpScriptTransform;")
    await expect(call.client.locator("#e2ee")).to_have_attribute(
        "data-state", "verified", timeout=STATE_TIMEOUT_MS
    )
    assert await call.client.evaluate("window.sprechzimmerCall.encryption.worker === null")
    assert await call.therapist.evaluate("window.sprechzimmerCall.encryption.worker !== null")
    await media_advances(call.therapist)
    await media_advances(call.client)


async def test_without_the_link_secret_the_call_is_unconfirmed_until_the_code_is_compared(
    web_server: WebServer,
):
    call = await start_call(web_server, strip_fragment=True)
    for page in (call.therapist, call.client):
        await expect(page.locator("#e2ee")).to_have_attribute(
            "data-state", "encrypted", timeout=STATE_TIMEOUT_MS
        )
        await expect(page.locator("#e2ee-text")).to_have_text(
            "Ende-zu-Ende-verschlüsselt, nicht bestätigt"
        )
    await media_advances(call.client)
    code = await call.client.locator("#e2ee-code").text_content()
    assert SAFETY_CODE.match(code or "")
    await expect(call.therapist.locator("#e2ee-code")).to_have_text(code or "")
    await call.client.get_by_role("button", name="Code stimmt überein").click()
    await expect(call.client.locator("#e2ee")).to_have_attribute(
        "data-state", "verified", timeout=STATE_TIMEOUT_MS
    )
    await expect(call.therapist.locator("#e2ee")).to_have_attribute(
        "data-state", "encrypted", timeout=STATE_TIMEOUT_MS
    )


async def test_chat_messages_arrive_decrypted_as_text(web_server: WebServer):
    call = await start_call(web_server)
    await expect(call.client.locator("#e2ee")).to_have_attribute(
        "data-state", "verified", timeout=STATE_TIMEOUT_MS
    )
    await media_advances(call.client)
    await call.client.get_by_role("button", name="Chat").click()
    await call.client.get_by_label("Nachricht").fill("Bis <b>gleich</b>")
    await call.client.get_by_role("button", name="Senden").click()
    received = call.therapist.locator("#chat-log li.peer")
    await expect(received).to_have_text("Gegenüber: Bis <b>gleich</b>")
    assert await call.therapist.locator("#chat-log b").count() == 0
    await expect(call.client.locator("#chat-log li.me")).to_have_text("Sie: Bis <b>gleich</b>")


async def test_a_rejoin_brings_new_keys_and_media_again(web_server: WebServer):
    call = await start_call(web_server)
    await expect(call.client.locator("#e2ee")).to_have_attribute(
        "data-state", "verified", timeout=STATE_TIMEOUT_MS
    )
    await media_advances(call.therapist)
    before = await call.therapist.locator("#e2ee-code").text_content()
    await call.client.reload()
    # a browser that consented goes back in with one button (web/static/js/join.js resume())
    await call.client.get_by_role("button", name="Zurück in die Sitzung").click()
    await expect(call.therapist.locator("#e2ee-code")).not_to_have_text(before or "", timeout=15000)
    await expect(call.therapist.locator("#e2ee")).to_have_attribute(
        "data-state", "verified", timeout=STATE_TIMEOUT_MS
    )
    assert await call.therapist.locator("#e2ee-code").text_content() == (
        await call.client.locator("#e2ee-code").text_content()
    )
    await media_advances(call.client)
    await media_advances(call.therapist)


async def test_with_e2ee_preferred_a_browser_without_transforms_talks_in_the_clear(
    web_server: WebServer,
):
    # This server's own config (a fresh one per test), switched before anyone joins.
    object.__setattr__(web_server.api.config.media, "e2ee", "preferred")
    no_transforms = (
        "delete window.RTCRtpScriptTransform;delete RTCRtpSender.prototype.createEncodedStreams;"
    )
    call = await start_call(web_server, client_script=no_transforms)
    for page in (call.therapist, call.client):
        await expect(page.locator("#e2ee")).to_have_attribute(
            "data-state", "unencrypted", timeout=STATE_TIMEOUT_MS
        )
        await expect(page.locator("#e2ee-text")).to_have_text("Nicht Ende-zu-Ende-verschlüsselt")
    await media_advances(call.therapist)
    await media_advances(call.client)


# A client page that offers no H.264, so the call stays on VP8, whose payload descriptor the
# ciphertext check below reads (two chromiums would otherwise end on H.264, sfu/codec_choice.py).
NO_H264 = """
(() => {
  const createOffer = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = function (...args) {
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs.filter((c) => c.mimeType !== "video/H264");
    for (const t of this.getTransceivers()) if (t.receiver.track.kind === "video") t.setCodecPreferences(codecs);
    return createOffer.apply(this, args);
  };
})();
"""


async def test_the_relay_forwards_only_ciphertext(web_server: WebServer, monkeypatch):
    rooms: list[Any] = []
    create_room = sfu.relay.Relay.create_room

    def recording_create_room(self: Any, *args: Any, **kwargs: Any) -> Any:
        room = create_room(self, *args, **kwargs)
        rooms.append(room)
        return room

    monkeypatch.setattr(sfu.relay.Relay, "create_room", recording_create_room)
    call = await start_call(web_server, client_script=NO_H264)
    await media_advances(call.client)
    await media_advances(call.therapist)

    # Tap the sink wires of the live room: every RTP packet the relay forwards, in plain RTP.
    assert len(rooms) == 1
    forwarded: list[bytes] = []
    for forwarder in rooms[0].forwarders():
        wire = forwarder.sink.wire
        original = wire.send_rtp

        def tap(packet: bytes, original: Any = original) -> None:
            forwarded.append(bytes(packet))
            original(packet)

        monkeypatch.setattr(wire, "send_rtp", tap)

    vp8 = set()
    for page in (call.therapist, call.client):
        sdp = await page.evaluate("window.sprechzimmerCall.pc.localDescription.sdp")
        vp8 |= {int(pt) for pt in re.findall(r"a=rtpmap:(\d+) VP8/90000", sdp)}

    def frame_starts() -> list[bytes]:
        starts = [frame_start(p) for p in forwarded if p[1] & 0x7F in vp8]
        return [s for s in starts if s is not None]

    def enough() -> bool:
        starts = frame_starts()
        return (
            len(starts) > 20
            and any(s[0] & 0x01 == 0 for s in starts)
            and (len(ciphertext_of(starts)) > 20_000)
        )

    # Until a keyframe and enough frames have passed the tap: a keyframe is asked for now and
    # again while none has come (the relay's keyframe limiter may drop a request).
    loop = asyncio.get_running_loop()
    deadline, asked = loop.time() + 30, -math.inf
    while not enough():
        now = loop.time()
        assert now < deadline, (
            f"not enough passed the tap in 30 s: {len(frame_starts())} frame starts of "
            f"{len(forwarded)} packets, video payload types {vp8}"
        )
        if now - asked > 1.0 and not any(s[0] & 0x01 == 0 for s in frame_starts()):
            for forwarder in rooms[0].forwarders():
                forwarder.request_keyframe(time.monotonic())
            asked = now
        await asyncio.sleep(0.05)
    await media_advances(call.client)  # the browsers still decode what passed the tap

    starts = frame_starts()
    keyframes = [s for s in starts if s[0] & 0x01 == 0]
    # The clear VP8 header of a keyframe carries its start code (RFC 6386 9.1).
    assert all(k[3:6] == b"\x9d\x01\x2a" for k in keyframes)
    ciphertext = ciphertext_of(starts)
    assert len(ciphertext) > 20_000, len(ciphertext)
    # A canvas of one colour with a bar compresses very well; ciphertext does not.
    assert len(zlib.compress(ciphertext, 9)) > 0.98 * len(ciphertext)

    # A VP8 decoder fed the forwarded keyframe does not get the sender's picture.
    frame = reassembled_keyframe(forwarded, vp8)
    decoder = av.CodecContext.create("vp8", "r")
    try:
        pictures = decoder.decode(av.Packet(frame))
    except av.FFmpegError:
        pictures = []
    for picture in pictures:
        rgb = picture.to_ndarray(format="rgb24")
        mean = rgb.reshape(-1, 3).mean(axis=0)
        assert not any(
            all(abs(m - c) < 60 for m, c in zip(mean, colour, strict=True))
            for colour in (RED, BLUE)
        ), mean


async def test_a_page_with_a_wrong_key_gets_no_picture(web_server: WebServer):
    call = await start_call(web_server, client_script="window.__szE2eeTestCorruptKey = true;")
    await expect(call.client.locator("#e2ee")).to_have_attribute(
        "data-state", "verified", timeout=STATE_TIMEOUT_MS
    )
    # Packets arrive, but no frame decrypts, so none is decoded: by the time another hundred
    # video packets have arrived (a few seconds of it), a decodable frame would have been.
    assert await poll(call.client, f"{INBOUND}.then((s) => s.videoPackets > 50)", 20)
    first = await call.client.evaluate(INBOUND)
    later = f"{INBOUND}.then((s) => s.videoPackets > {first['videoPackets'] + 100})"
    assert await poll(call.client, later, 30), first
    second = await call.client.evaluate(INBOUND)
    assert second["audioPackets"] > first["audioPackets"]
    assert second["framesDecoded"] == first["framesDecoded"] == 0, (first, second)
    assert await call.client.evaluate("document.getElementById('remote-video').videoWidth") == 0


async def test_the_link_secret_never_reaches_the_server(
    web_server: WebServer, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    call = await start_call(web_server)
    await expect(call.client.locator("#e2ee")).to_have_attribute(
        "data-state", "verified", timeout=STATE_TIMEOUT_MS
    )
    await media_advances(call.client)
    secret = call.secret
    raw = base64.urlsafe_b64decode(secret + "=")
    assert len(raw) == 32
    assert any("/j/" in sent for sent in call.sent)  # the recording works
    assert not [sent for sent in call.sent if secret in sent]
    database = web_server.api.config.storage.sqlite_path
    for path in database.parent.glob(database.name + "*"):
        data = path.read_bytes()
        assert secret.encode() not in data and raw not in data and raw.hex().encode() not in data
    assert secret not in caplog.text


async def test_a_tampered_public_key_is_a_visible_warning(web_server: WebServer, monkeypatch):
    relay_e2ee = Consultation.relay_e2ee

    def tampering(self: Any, seat: str, payload: dict) -> None:
        if isinstance(payload.get("public_key"), str):
            key = bytearray(base64.urlsafe_b64decode(payload["public_key"] + "=="))
            key[20] ^= 0x01
            payload = {
                **payload,
                "public_key": base64.urlsafe_b64encode(bytes(key)).decode().rstrip("="),
            }
        relay_e2ee(self, seat, payload)

    monkeypatch.setattr(Consultation, "relay_e2ee", tampering)
    call = await start_call(web_server)
    for page in (call.therapist, call.client):
        await expect(page.locator("#e2ee")).to_have_attribute(
            "data-state", "warning", timeout=STATE_TIMEOUT_MS
        )
        state = await e2ee_state(page)
        assert state["text"].startswith("Achtung"), state
        assert "bestätigt" not in state["text"] and state["lock"] == "warning", state
        assert not state["codeShown"], state
        await expect(page.locator("#e2ee")).to_be_visible()
        await expect(page.locator("#btn-e2ee-confirm")).to_be_hidden()


# --- RTP and VP8 (RFC 3550, RFC 7741)


def rtp_payload(packet: bytes) -> bytes:
    first = packet[0]
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        (length,) = struct.unpack_from("!H", packet, offset + 2)
        offset += 4 + 4 * length
    end = len(packet) - (packet[-1] if first & 0x20 else 0)
    return packet[offset:end]


def vp8_payload(payload: bytes) -> tuple[bool, bytes]:
    """(starts a frame, the VP8 bytes after the payload descriptor)."""
    descriptor = payload[0]
    offset = 1
    if descriptor & 0x80:
        extension = payload[1]
        offset = 2
        if extension & 0x80:
            offset += 2 if payload[offset] & 0x80 else 1
        if extension & 0x40:
            offset += 1
        if extension & 0x30:
            offset += 1
    return bool(descriptor & 0x10) and descriptor & 0x07 == 0, payload[offset:]


def ciphertext_of(starts: list[bytes]) -> bytes:
    """The encrypted part of each frame's first packet: after the clear VP8 prefix (10 bytes on
    a keyframe, 3 otherwise), the key id (1) and the counter (8); docs/protocol.md."""
    return b"".join(s[(10 if s[0] & 0x01 == 0 else 3) + 9 :] for s in starts)


def frame_start(packet: bytes) -> bytes | None:
    starts, data = vp8_payload(rtp_payload(packet))
    return data if starts and len(data) > 40 else None


def reassembled_keyframe(packets: list[bytes], vp8: set[int]) -> bytes:
    """The VP8 bytes of the first whole keyframe among the forwarded packets."""
    video = [p for p in packets if p[1] & 0x7F in vp8]
    for index, packet in enumerate(video):
        start = frame_start(packet)
        if start is None or start[0] & 0x01:
            continue
        ssrc, timestamp = packet[8:12], packet[4:8]
        parts = {
            struct.unpack_from("!H", p, 2)[0]: p
            for p in video[index:]
            if p[8:12] == ssrc and p[4:8] == timestamp
        }
        return b"".join(vp8_payload(rtp_payload(parts[seq]))[1] for seq in sorted(parts))
    raise AssertionError("no keyframe among the forwarded packets")
