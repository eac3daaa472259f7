"""Which video codec the relay negotiates (sfu/codec_choice.py), between real aiortc peers that
encode and decode with PyAV: H.264 (libx264) where both offer it, VP8 otherwise, and a request to
offer again when the first browser was answered before the second one's codecs were known."""

from __future__ import annotations

import re

from aiortc import RTCRtpSender

from sfu.codec_choice import VP8, VideoCodec, best_shared, offered_video_codecs
from sfu.room import MAX_RENEGOTIATIONS
from tests.sfu.conftest import join
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, looks_like

H264 = VideoCodec("video/H264", "42e01f")


def video_codecs(sdp: str) -> list[str]:
    """The codec names of the video m-lines of an answer, in order."""
    video = sdp.split("m=video", 1)[1].split("m=", 1)[0]
    return re.findall(r"a=rtpmap:\d+ ([\w-]+)/90000", video)


def vp8_only(peer: MediaPeer) -> MediaPeer:
    """A browser without H.264 (firefox-esr on Debian: no OpenH264 plugin)."""
    codecs = [
        c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8",)
    ]
    for transceiver in peer.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(codecs)
    return peer


def sees(picture):
    return lambda r: (
        r.video_frames >= 10 and r.last_video is not None and looks_like(r.last_video, picture)
    )


async def test_two_h264_browsers_end_on_h264_after_the_first_offers_again(relay, peers):
    room = relay.create_room()
    asked: list[tuple[str, str]] = []
    room.on_renegotiate = lambda seat, codec: asked.append((seat, codec))
    first_answer = await join(room, "therapist", peers(RED_BLUE, tone=440, h264=True))
    # alone, the first browser gets VP8: whoever comes next has it
    assert video_codecs(first_answer)[0] == "VP8", first_answer
    client = peers(GREEN_WHITE, tone=880, h264=True)
    client_answer = await join(room, "client", client)
    assert video_codecs(client_answer)[0] == "H264", client_answer
    assert "VP8" not in video_codecs(client_answer)
    assert asked == [("therapist", "video/H264")]
    assert room.video_codec("client") == "video/H264;42e01f"

    # the therapist's page offers again (a fresh peer connection, as call.js's restartPeer)
    therapist = peers(RED_BLUE, tone=440, h264=True)
    again = await join(room, "therapist", therapist)
    assert video_codecs(again)[0] == "H264", again
    assert asked == [("therapist", "video/H264")]  # no second round
    assert await therapist.wait_for(sees(GREEN_WHITE)), "the therapist decoded no H.264 picture"
    assert await client.wait_for(sees(RED_BLUE)), "the client decoded no H.264 picture"


async def test_with_a_vp8_only_browser_both_stay_on_vp8_without_renegotiation(relay, peers):
    room = relay.create_room()
    asked: list[tuple[str, str]] = []
    room.on_renegotiate = lambda seat, codec: asked.append((seat, codec))
    therapist = peers(RED_BLUE, tone=440, h264=True)
    await join(room, "therapist", therapist)
    client = vp8_only(peers(GREEN_WHITE, tone=880, h264=True))
    answer = await join(room, "client", client)
    assert video_codecs(answer) == ["VP8", "rtx"] or video_codecs(answer)[0] == "VP8", answer
    assert await therapist.wait_for(sees(GREEN_WHITE))
    assert await client.wait_for(sees(RED_BLUE))
    assert asked == []


async def test_an_h264_browser_after_a_vp8_only_one_asks_nobody_to_renegotiate(relay, peers):
    room = relay.create_room()
    asked: list[tuple[str, str]] = []
    room.on_renegotiate = lambda seat, codec: asked.append((seat, codec))
    client = vp8_only(peers(GREEN_WHITE, tone=880, h264=True))
    await join(room, "client", client)
    therapist = peers(RED_BLUE, tone=440, h264=True)
    answer = await join(room, "therapist", therapist)
    assert video_codecs(answer)[0] == "VP8", answer
    assert await client.wait_for(sees(RED_BLUE))
    assert asked == []


CHROMIUM_VIDEO = """v=0
o=- 1 2 IN IP4 127.0.0.1
s=-
t=0 0
m=video 9 UDP/TLS/RTP/SAVPF 96 102 103 106 107 127
c=IN IP4 0.0.0.0
a=rtpmap:96 VP8/90000
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 H264/90000
a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f
a=rtpmap:106 H264/90000
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:107 H264/90000
a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f
a=rtpmap:127 H264/90000
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f
"""


def test_the_best_shared_codec():
    chromium = offered_video_codecs(CHROMIUM_VIDEO)
    assert chromium == {
        VP8,
        VideoCodec("video/H264", "42001f"),
        H264,
        VideoCodec("video/H264", "4d001f"),
    }  # packetization-mode 0 is left out: the relay forwards mode 1 (FU-A) only
    firefox = offered_video_codecs(CHROMIUM_VIDEO.replace("H264", "H265"))
    assert firefox == {VP8}
    assert best_shared(chromium, None) == VP8  # the other is not known yet
    assert best_shared(chromium, chromium) == H264  # Constrained Baseline first
    assert best_shared(chromium, firefox) == VP8
    main_only = frozenset({VP8, VideoCodec("video/H264", "4d001f")})
    assert best_shared(chromium, main_only) == VideoCodec("video/H264", "4d001f")
    # the same profile-level-id or no H.264
    assert best_shared(frozenset({VP8, H264}), main_only) == VP8


async def test_a_page_flipping_its_codecs_cannot_make_the_other_renegotiate_forever(relay, peers):
    room = relay.create_room()
    asked: list[tuple[str, str]] = []
    room.on_renegotiate = lambda seat, codec: asked.append((seat, codec))
    await join(room, "therapist", peers(RED_BLUE, tone=440, h264=True))
    for round_ in range(8):
        # the client offers H.264 and then not, each time on a fresh peer connection
        client = peers(GREEN_WHITE, tone=880, h264=True)
        if round_ % 2:
            vp8_only(client)
        await room.connect("client", await client.offer())
        if asked and asked[-1][0] == "therapist":
            # the therapist's page does what it is told: it offers again
            await room.connect("therapist", await peers(RED_BLUE, tone=440, h264=True).offer())
    # three switches, then one last to VP8, where the room stays: not one per flip (eight)
    assert len(asked) == 4, asked
    assert MAX_RENEGOTIATIONS == 3
    assert room.video_codec("therapist") == room.video_codec("client") == "video/VP8"
