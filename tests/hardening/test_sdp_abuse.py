"""Offers built to break an SFU's parser -- Janus crashed on inputs like these (CVE-2020-13898
to CVE-2020-14034) -- are refused with an error that names the problem, at the relay's API and
through the WebSocket, while a good call in another room goes on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from sfu import InvalidOffer, Relay, RelayConfig
from sfu.offer_limits import check_offer_values
from signaling.relay_setup import RELAY
from tests.hardening.app_server import app_serving
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, use_loopback_only
from tests.signaling.api_server import media_config, write_config
from tests.signaling.test_ws_call import book, consenting_client, flowing, start_media

_CANDIDATE_PORT = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ \S+) \d+", re.M)


def _vp8(sdp: str) -> str:
    return re.search(r"^a=rtpmap:(\d+) VP8/90000", sdp, re.M).group(1)


def _payload_type_300(sdp: str) -> str:
    pt = _vp8(sdp)
    sdp = re.sub(rf"^(m=video .*) {pt}\b", r"\1 300", sdp, flags=re.M)
    sdp = re.sub(rf"^a=(rtpmap|rtcp-fb|fmtp):{pt}\b", r"a=\1:300", sdp, flags=re.M)
    return sdp.replace(f"apt={pt}", "apt=300")


def _500_codecs(sdp: str) -> str:
    pt = _vp8(sdp)
    extra = range(200, 700)
    sdp = re.sub(
        r"^(m=video .*?)\r$",
        lambda m: m[1] + "".join(f" {p}" for p in extra) + "\r",
        sdp,
        flags=re.M,
    )
    rtpmaps = "".join(f"a=rtpmap:{p} VP8/90000\r\n" for p in extra)
    return re.sub(rf"^(a=rtpmap:{pt} VP8/90000\r\n)", lambda m: m[1] + rtpmaps, sdp, flags=re.M)


def _1000_fingerprints(sdp: str) -> str:
    bogus = "a=fingerprint:sha-1 00\r\n" * 1000
    return re.sub(r"^(a=fingerprint:.*\r\n)", lambda m: m[1] + bogus, sdp, count=1, flags=re.M)


def _150_candidates(sdp: str) -> str:
    lines = "".join(
        f"a=candidate:{n} 1 udp 2122260223 192.0.2.{n % 250 + 1} {20000 + n} typ host\r\n"
        for n in range(150)
    )
    return re.sub(r"^(a=mid:0\r\n)", lambda m: m[1] + lines, sdp, count=1, flags=re.M)


# name: (how to spoil a good offer, what the error message must mention)
ABUSES: dict[str, tuple[Callable[[str], str], str]] = {
    "100000_lines": (lambda sdp: sdp + "a=x\r\n" * 100_000, "larger than"),
    "m_line_port_99999999": (
        lambda sdp: re.sub(r"^m=video \d+", "m=video 99999999", sdp, flags=re.M),
        "port",
    ),
    "negative_m_line_port": (
        lambda sdp: re.sub(r"^m=audio \d+", "m=audio -9", sdp, flags=re.M),
        "port",
    ),
    "candidate_port_99999999": (lambda sdp: _CANDIDATE_PORT.sub(r"\1 99999999", sdp), "port"),
    "negative_candidate_port": (lambda sdp: _CANDIDATE_PORT.sub(r"\1 -1", sdp), "candidate"),
    "payload_type_300": (_payload_type_300, "payload type"),
    "ice_ufrag_of_5000_characters": (
        lambda sdp: re.sub(
            r"^a=ice-ufrag:.*\r$", "a=ice-ufrag:" + "u" * 5000 + "\r", sdp, flags=re.M
        ),
        "ice-ufrag",
    ),
    "1000_fingerprints": (_1000_fingerprints, "fingerprints"),
    "rtpmap_for_500_codecs": (_500_codecs, "payload types"),
    "no_fingerprint": (
        lambda sdp: re.sub(r"^a=fingerprint:.*\r\n", "", sdp, flags=re.M),
        "fingerprint",
    ),
    "no_ice_pwd": (
        lambda sdp: re.sub(r"^a=ice-pwd:.*\r\n", "", sdp, flags=re.M),
        "ICE credentials",
    ),
    # the relay sent 723 connectivity checks to 150 ports of someone else's choosing in 10 s
    "150_candidates": (_150_candidates, "ICE candidates"),
    # these two reached aiortc, which raised AttributeError: the socket closed with 1011
    "nul_byte_in_mid": (lambda sdp: sdp.replace("a=mid:0\r\n", "a=mid:\x00\r\n", 1), "a=mid"),
    "mid_missing_from_bundle": (
        lambda sdp: re.sub(r"^a=group:BUNDLE 0 ", "a=group:BUNDLE 5 ", sdp, flags=re.M),
        "BUNDLE",
    ),
    "mid_twice_in_bundle": (
        lambda sdp: re.sub(r"^a=group:BUNDLE 0 1\b", "a=group:BUNDLE 0 0", sdp, flags=re.M),
        "BUNDLE",
    ),
}
FITS_A_MESSAGE = [name for name in ABUSES if name != "100000_lines"]


@pytest.fixture
async def relay(udp_ports) -> AsyncIterator[Relay]:
    use_loopback_only()
    relay = Relay(
        RelayConfig(
            udp_port_min=udp_ports.low,
            udp_port_max=udp_ports.high,
            listen_addresses=("127.0.0.1",),
        )
    )
    yield relay
    await relay.close()


@pytest.fixture
async def good_offer() -> AsyncIterator[str]:
    use_loopback_only()
    peer = MediaPeer(RED_BLUE, tone=440, chat=True)  # as the call page: audio, video and chat
    yield await peer.offer()
    await peer.close()


@pytest.mark.parametrize("abuse", ABUSES)
async def test_the_relay_refuses_an_abusive_offer_and_says_why(relay, good_offer, abuse):
    spoil, mentioned = ABUSES[abuse]
    offer = spoil(good_offer)
    assert offer != good_offer
    room = relay.create_room()
    with pytest.raises(InvalidOffer, match=re.escape(mentioned)):
        await room.connect("a", offer)
    assert room.leg_state("a") is None  # nothing half-built stays behind


async def test_the_relay_refuses_a_trickled_candidate_on_port_99999999(relay, good_offer):
    room = relay.create_room()
    await room.connect("a", good_offer)
    line = "candidate:1 1 udp 2130706431 127.0.0.1 99999999 typ host"
    with pytest.raises(InvalidOffer, match="port"):
        await room.add_ice_candidate("a", line, "0", None)
    assert room.leg_state("a") == "connecting"


# Offers as Chrome 131 and Firefox 133 send them (fingerprints and candidates shortened):
# the bounds must not refuse a real browser.
CHROME_OFFER = """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1 2
a=extmap-allow-mixed
a=msid-semantic: WMS 3f1c
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0 network-id 1
a=candidate:1853887674 1 tcp 1518280447 192.168.0.196 9 typ host tcptype active generation 0
a=ice-ufrag:9FtX
a=ice-pwd:GHzk6Kp+cw/tDaUGKnfSQMlN
a=ice-options:trickle
a=fingerprint:sha-256 75:74:5A:A6:A4:E5:52:F4:A7:67:4C:01:C7:EE:91:3F
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:126 telephone-event/8000
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101 112 113 116 117 118
c=IN IP4 0.0.0.0
a=ice-ufrag:9FtX
a=ice-pwd:GHzk6Kp+cw/tDaUGKnfSQMlN
a=fingerprint:sha-256 75:74:5A:A6:A4:E5:52:F4:A7:67:4C:01:C7:EE:91:3F
a=mid:1
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=ssrc-group:FID 2231627014 632943048
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:9FtX
a=ice-pwd:GHzk6Kp+cw/tDaUGKnfSQMlN
a=fingerprint:sha-256 75:74:5A:A6:A4:E5:52:F4:A7:67:4C:01:C7:EE:91:3F
a=mid:2
a=sctp-port:5000
a=max-message-size:262144
""".replace("\n", "\r\n")

FIREFOX_OFFER = """v=0
o=mozilla...THIS_IS_SDPARTA-99.0 3675584530486474493 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 2B:05:1C:7E:62:4B:36:6F:3F:DC:52:C9:0E:2D:8C:51
a=group:BUNDLE 0 1
a=ice-options:trickle
a=msid-semantic:WMS *
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP4 0.0.0.0
a=candidate:0 1 UDP 2122252543 192.168.1.2 53764 typ host
a=candidate:1 1 TCP 2105524479 192.168.1.2 9 typ host tcptype active
a=sendrecv
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=fmtp:101 0-15
a=ice-pwd:1fb9a5e5e4b8e4a1c3d2b1a0f9e8d7c6
a=ice-ufrag:7c9f3c2e
a=mid:0
a=rtcp-mux
a=rtpmap:109 opus/48000/2
a=rtpmap:101 telephone-event/8000/1
a=setup:actpass
m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98
c=IN IP4 0.0.0.0
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1
a=fmtp:124 apt=120
a=ice-pwd:1fb9a5e5e4b8e4a1c3d2b1a0f9e8d7c6
a=ice-ufrag:7c9f3c2e
a=mid:1
a=rtcp-fb:120 nack pli
a=rtcp-fb:120 ccm fir
a=rtcp-fb:* transport-cc
a=rtpmap:120 VP8/90000
a=rtpmap:124 rtx/90000
a=setup:actpass
""".replace("\n", "\r\n")


@pytest.mark.parametrize("offer", [CHROME_OFFER, FIREFOX_OFFER], ids=["chrome", "firefox"])
def test_the_bounds_let_real_browser_offers_through(offer):
    check_offer_values(offer)


# --- through the WebSocket, next to a good call ---------------------------------------------


@pytest.fixture
async def served(tmp_path: Path, udp_ports) -> AsyncIterator:
    use_loopback_only()
    async with app_serving(write_config(tmp_path, extra=media_config(udp_ports))) as (api, app):
        await api.add_therapist("alice")
        yield api, app


@pytest.fixture
async def good_call(served) -> AsyncIterator[tuple[MediaPeer, MediaPeer]]:
    """A call in full flow: both sides see each other through the relay."""
    api, _ = served
    therapist, appointment_id, token = await book(api)
    client = await consenting_client(api, token)
    alice, kim = MediaPeer(RED_BLUE, tone=440), MediaPeer(GREEN_WHITE, tone=880)
    try:
        for side, join in (
            (therapist, {"appointment": appointment_id}),
            (client, {"invite": token}),
        ):
            await side.connect()
            await side.send(type="join", **join)
            await side.next("joined")
        await start_media(therapist, alice)
        await start_media(client, kim)
        assert await alice.wait_for(flowing) and await kim.wait_for(flowing)
        yield alice, kim
    finally:
        for thing in (alice, kim, therapist, client):
            await thing.close()


def connected_rooms(app) -> int:  # type: ignore[no-untyped-def]
    return sum(
        room.leg_state("therapist") == room.leg_state("client") == "connected"
        for room in app[RELAY].rooms.values()
    )


async def keeps_flowing(peers: tuple[MediaPeer, MediaPeer]) -> bool:
    before = [p.received.video_frames for p in peers]
    await asyncio.sleep(1.0)
    return all(p.received.video_frames > n for p, n in zip(peers, before, strict=True))


async def test_abusive_offers_over_the_websocket_get_invalid_offer_and_a_good_call_goes_on(
    served, good_call
):
    api, app = served
    attacker, appointment_id, _ = await book(api)
    spare = MediaPeer(RED_BLUE, tone=440, chat=True)
    try:
        await attacker.connect()
        await attacker.send(type="join", appointment=appointment_id)
        await attacker.next("joined")
        offer = await spare.offer()
        for name in FITS_A_MESSAGE:
            spoil, mentioned = ABUSES[name]
            await attacker.send(type="offer", sdp=spoil(offer))
            error = await attacker.next("error")
            assert error["code"] == "invalid_offer" and mentioned in error["message"], (name, error)
        await attacker.send(type="offer", sdp=offer)
        await attacker.next("answer")
        bad = "candidate:1 1 udp 2130706431 127.0.0.1 99999999 typ host"
        await attacker.send(type="candidate", candidate=bad, sdpMid="0", sdpMLineIndex=0)
        error = await attacker.next("error")
        assert error["code"] == "invalid_offer" and "port" in error["message"]
        assert not attacker.ws.closed
        assert connected_rooms(app) == 1
        assert await keeps_flowing(good_call)
    finally:
        await spare.close()
        await attacker.close()


# the server refuses the message by its size before reading it: any start of an offer will do
FILLER_OFFER = "v=0\r\n" + "a=x\r\n" * 50


async def test_an_offer_of_100000_lines_closes_only_its_own_socket(served, good_call):
    api, app = served
    attacker, appointment_id, _ = await book(api)
    try:
        await attacker.connect()
        await attacker.send(type="join", appointment=appointment_id)
        await attacker.next("joined")
        spoil, _ = ABUSES["100000_lines"]
        await attacker.send(type="offer", sdp=spoil(FILLER_OFFER))
        msg = await attacker.ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009  # message too big
        assert connected_rooms(app) == 1
        assert await keeps_flowing(good_call)
    finally:
        await attacker.close()
