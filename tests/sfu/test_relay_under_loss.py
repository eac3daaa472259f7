"""A lossy, jittery link between one peer and the relay: video keeps decoding because the relay
answers NACKs from its cache and relays keyframe requests (issue: hardening, faults)."""

from __future__ import annotations

import time

import pytest

from tests.sfu.lossy_link import LossyLink, relay_address, through, without_candidates
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, looks_like


@pytest.mark.parametrize("loss", [0.05, 0.10])
async def test_video_keeps_decoding_over_a_lossy_jittery_link(relay, peers, loss):
    room = relay.create_room()
    sender, receiver = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await sender.accept(await room.connect("a", await sender.offer()))
    link = LossyLink(loss=loss, delay=0.025, jitter=0.025)  # 0-50 ms: 50 ms of jitter
    try:
        answer = await room.connect("b", without_candidates(await receiver.offer()))
        proxy = await link.start(relay_address(answer))
        await receiver.accept(through(answer, proxy))
        assert await receiver.wait_for(lambda r: r.video_frames >= 5, timeout=20)
        start, frames = time.monotonic(), receiver.received.video_frames
        assert await receiver.wait_for(lambda r: r.video_frames >= frames + 60, timeout=20)
        forwarder = room.forwarders()[0]  # a -> b: b's NACKs are answered here
        assert forwarder.counters.nacks_received > 0
        assert forwarder.counters.retransmit_hits > 0
        assert link.dropped > 0
        assert looks_like(receiver.received.last_video, RED_BLUE)
        assert receiver.received.longest_gap(since=start) < 3.0
    finally:
        link.close()
