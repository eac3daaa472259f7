"""Two real aiortc peers exchange VP8 + Opus through the relay; each decodes the other."""

from __future__ import annotations

import pytest

from sfu import Relay, RelayConfig
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, looks_like, use_loopback_only


@pytest.fixture
async def relay():
    use_loopback_only()
    relay = Relay(
        RelayConfig(udp_port_min=41000, udp_port_max=41099, listen_addresses=("127.0.0.1",))
    )
    yield relay
    await relay.close()


async def join(room, seat: str, peer: MediaPeer) -> None:
    answer = await room.connect(seat, await peer.offer())
    await peer.accept(answer)


async def test_each_side_decodes_the_other_sides_picture_and_tone(relay):
    room = relay.create_room()
    therapist = MediaPeer(RED_BLUE, tone=440)
    client = MediaPeer(GREEN_WHITE, tone=880)
    try:
        await join(room, "therapist", therapist)
        await join(room, "client", client)
        assert await therapist.wait_for(
            lambda r: r.video_frames >= 10 and r.loud_audio_frames >= 10
        )
        assert await client.wait_for(lambda r: r.video_frames >= 10 and r.loud_audio_frames >= 10)
        assert looks_like(therapist.received.last_video, GREEN_WHITE)
        assert looks_like(client.received.last_video, RED_BLUE)
    finally:
        await therapist.close()
        await client.close()
