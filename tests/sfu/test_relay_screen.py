"""Screen sharing through the relay: a second video stream per leg, each m-line's stream
forwarded to the other leg's matching transceiver (docs/architecture.md#screen-sharing)."""

from __future__ import annotations

import re

from tests.sfu.conftest import join
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, Picture, until
from tests.sfu.screen_peers import SharingPeer

# four pictures no two of which looks_like() confuses
THERAPIST_SCREEN = Picture((230, 220, 30), (10, 10, 10), vertical=True)
CLIENT_SCREEN = Picture((20, 200, 200), (200, 20, 200), vertical=False)


async def test_camera_and_screen_each_reach_the_other_sides_matching_transceiver(relay):
    room = relay.create_room()
    therapist = SharingPeer(RED_BLUE, THERAPIST_SCREEN)
    client = SharingPeer(GREEN_WHITE, CLIENT_SCREEN, tone=880)
    try:
        answer = await join(room, "therapist", therapist)
        assert len(re.findall(r"^m=video ", answer, re.M)) == 2  # the relay answers both lines
        await join(room, "client", client)
        await until(
            lambda: client.screen.shows(THERAPIST_SCREEN) and client.camera.shows(RED_BLUE),
            "the client decodes the therapist's screen on its screen transceiver (mid 2) and "
            f"the camera on mid 1 (frames: {client.decoded_counts()})",
        )
        await until(
            lambda: therapist.screen.shows(CLIENT_SCREEN) and therapist.camera.shows(GREEN_WHITE),
            "the therapist decodes the client's screen on mid 2 and camera on mid 1 "
            f"(frames: {therapist.decoded_counts()})",
        )
        # and they stay apart: later frames on each transceiver are still its own stream
        camera_frames, screen_frames = client.camera.frames, client.screen.frames
        await until(
            lambda: (
                client.camera.frames >= camera_frames + 10
                and client.screen.frames >= screen_frames + 10
            ),
            "ten more frames on each of the client's video transceivers",
        )
        assert client.camera.shows(RED_BLUE) and client.screen.shows(THERAPIST_SCREEN)
    finally:
        await therapist.close()
        await client.close()


async def test_an_unshared_screen_line_sends_nothing_and_the_camera_still_flows(relay):
    room = relay.create_room()
    therapist = SharingPeer(RED_BLUE, None)
    client = SharingPeer(GREEN_WHITE, None, tone=880)
    try:
        await join(room, "therapist", therapist)
        await join(room, "client", client)
        await until(
            lambda: client.camera.frames >= 20 and client.camera.shows(RED_BLUE),
            "the client decodes twenty frames of the therapist's camera",
        )
        assert client.screen.frames == 0  # nothing was shared, so nothing decoded there
    finally:
        await therapist.close()
        await client.close()


async def test_an_old_offer_with_one_video_line_gets_the_camera_not_the_screen(relay, peers):
    room = relay.create_room()
    therapist = SharingPeer(RED_BLUE, THERAPIST_SCREEN)
    old_client = peers(GREEN_WHITE, tone=880)  # audio + one video m-line, as before screens
    try:
        await join(room, "therapist", therapist)
        await join(room, "client", old_client)
        await until(
            lambda: therapist.camera.shows(GREEN_WHITE),
            "the therapist decodes the old client's camera on its camera transceiver",
        )
        assert await old_client.wait_for(
            lambda r: r.video_frames >= 30 and r.last_video is not None
        ), "the old client decodes thirty frames"
        frames = old_client.received.video_frames
        assert await old_client.wait_for(lambda r: r.video_frames >= frames + 10)
        from tests.sfu.media_peers import looks_like

        assert looks_like(old_client.received.last_video, RED_BLUE)  # never the screen
        assert therapist.screen.frames == 0
    finally:
        await therapist.close()
