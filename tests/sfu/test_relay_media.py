"""The relay between real aiortc peers sending real VP8 + Opus."""

from __future__ import annotations

import asyncio
import re

from aiortc.rtcrtpreceiver import RTCRtpReceiver

from sfu.forwarder import Forwarder
from tests.sfu.conftest import join
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, Picture, looks_like, until

YELLOW_BLACK = Picture((230, 220, 30), (10, 10, 10), vertical=True)


def flowing(r) -> bool:
    return r.video_frames >= 10 and r.loud_audio_frames >= 10


def announced_ssrcs(sdp: str) -> set[int]:
    return {int(s) for s in re.findall(r"^a=ssrc:(\d+) ", sdp, re.M)}


def video_media_ssrc(sdp: str) -> int:
    """The SSRC of the first video m-line's media stream (not its RTX, not audio's)."""
    video = sdp.split("m=video", 1)[1].split("\r\nm=", 1)[0]
    group = re.search(r"^a=ssrc-group:FID (\d+) ", video, re.M)
    if group:
        return int(group.group(1))
    return int(re.findall(r"^a=ssrc:(\d+) ", video, re.M)[0])


async def test_each_side_decodes_the_other_sides_picture_and_tone(relay, peers):
    room = relay.create_room()
    therapist, client = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await join(room, "therapist", therapist)
    await join(room, "client", client)
    assert await therapist.wait_for(flowing)
    assert await client.wait_for(flowing)
    assert looks_like(therapist.received.last_video, GREEN_WHITE)
    assert looks_like(client.received.last_video, RED_BLUE)


async def test_receiver_sees_the_relays_ssrcs_never_the_senders(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    a_offer_ssrcs = announced_ssrcs(await a.offer())
    answer_to_a = await room.connect("a", a.pc.localDescription.sdp)
    await a.accept(answer_to_a)
    answer_to_b = await join(room, "b", b)
    assert await b.wait_for(flowing)
    stats = [await r.getStats() for r in b.pc.getReceivers()]
    seen = {s.ssrc for report in stats for s in report.values() if s.type == "inbound-rtp"}
    assert seen and seen <= announced_ssrcs(answer_to_b)
    assert not seen & a_offer_ssrcs


async def test_answer_reveals_nothing_of_the_other_leg(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    a_offer = await a.offer()
    await a.accept(await room.connect("a", a_offer))
    answer_to_b = await join(room, "b", b)
    a_ports = set(re.findall(r"^a=candidate:\S+ \d \S+ \d+ \S+ (\d+) typ", a_offer, re.M))
    b_ports = set(re.findall(r"^a=candidate:\S+ \d \S+ \d+ \S+ (\d+) typ", answer_to_b, re.M))
    assert a_ports and b_ports and not a_ports & b_ports
    a_fingerprint = re.search(r"^a=fingerprint:sha-256 (\S+)", a_offer, re.M).group(1)
    assert a_fingerprint not in answer_to_b
    assert announced_ssrcs(a_offer).isdisjoint(announced_ssrcs(answer_to_b))


async def test_replaced_leg_resumes_on_the_same_track_for_the_other_side(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await join(room, "a", a)
    await join(room, "b", b)
    assert await b.wait_for(flowing)
    tracks_before = len(b.received.tasks)

    a_again = peers(YELLOW_BLACK, tone=660)  # the same person, reconnecting with a new camera view
    await join(room, "a", a_again)
    assert await b.wait_for(
        lambda r: r.last_video is not None and looks_like(r.last_video, YELLOW_BLACK)
    )
    assert len(b.received.tasks) == tracks_before  # no new track: the view stayed continuous
    frames = b.received.video_frames
    assert await b.wait_for(lambda r: r.video_frames >= frames + 10)
    assert await a_again.wait_for(
        lambda r: r.last_video is not None and looks_like(r.last_video, GREEN_WHITE)
    )


async def test_keyframe_requests_reach_the_sender_at_most_once_per_interval(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await join(room, "a", a)
    await join(room, "b", b)
    assert await b.wait_for(flowing)
    video_sender = next(s for s in a.pc.getSenders() if s.track and s.track.kind == "video")
    plis = []
    original = video_sender._handle_rtcp_packet

    async def record(packet):
        if type(packet).__name__ == "RtcpPsfbPacket" and packet.fmt == 1:
            plis.append(asyncio.get_running_loop().time())
        await original(packet)

    video_sender._handle_rtcp_packet = record
    await asyncio.sleep(0.6)  # let the start-up keyframe requests' interval pass
    plis.clear()
    counters = room.forwarders()[0].counters  # a -> b: b's keyframe requests arrive here
    received, sent = counters.keyframe_requests_received, counters.keyframe_requests_sent
    receiver = next(r for r in b.pc.getReceivers() if r.track.kind == "video")
    # a PLI names the video stream: any other SSRC of the answer (audio, RTX) is no keyframe
    media_ssrc = video_media_ssrc(b.pc.remoteDescription.sdp)
    interval = relay.config.keyframe_request_interval
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(10):
        await receiver._send_rtcp_pli(media_ssrc)
    # the relay has taken all ten (a positive signal, not a sleep) ...
    await until(
        lambda: counters.keyframe_requests_received >= received + 10, "the relay got all 10"
    )
    elapsed = loop.time() - started
    # ... and passed on at most one per interval that began while they came in: one on a quiet
    # machine (none if a request of the receiver's own decoder passed just before), a loaded one
    # may spread the ten over more than an interval, never over ten of them
    passed = counters.keyframe_requests_sent - sent
    assert passed <= 1 + int(elapsed / interval), (passed, elapsed)
    assert passed < 10
    await asyncio.sleep(interval)  # the interval passes: time itself is what is tested
    before = counters.keyframe_requests_sent
    await receiver._send_rtcp_pli(media_ssrc)
    await until(
        lambda: counters.keyframe_requests_sent > before,
        "the relay passed on the next request after the interval",
    )
    await until(lambda: len(plis) >= 1, "the sender got a keyframe request")


async def test_nacks_for_packets_lost_on_the_receivers_leg_are_answered_from_the_cache(
    relay, peers
):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880, send_audio=False)
    await join(room, "a", a)
    await join(room, "b", b)
    assert await b.wait_for(lambda r: r.video_frames >= 5)
    forwarder: Forwarder = room.forwarders()[0]  # a -> b
    leg_b_wire = forwarder.sink.wire
    original_send = leg_b_wire.send_rtp
    sent = {"n": 0}

    def lossy_send(packet: bytes) -> None:
        sent["n"] += 1
        if packet[1] & 0x7F == 97 and sent["n"] % 7 == 0:  # lose every 7th first transmission
            return
        original_send(packet)

    leg_b_wire.send_rtp = lossy_send
    frames = b.received.video_frames
    assert await b.wait_for(lambda r: r.video_frames >= frames + 30)
    assert forwarder.counters.nacks_received > 0
    assert forwarder.counters.retransmit_hits > 0
    assert forwarder.counters.nack_upstream == 0
    assert looks_like(b.received.last_video, RED_BLUE)


async def test_relay_legs_never_start_aiortc_receivers(relay, peers, monkeypatch):
    started = []
    original = RTCRtpReceiver.receive

    async def spy(self, parameters):
        started.append(self)
        await original(self, parameters)

    monkeypatch.setattr(RTCRtpReceiver, "receive", spy)
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await join(room, "a", a)
    await join(room, "b", b)
    assert await b.wait_for(flowing)
    client_receivers = {id(r) for p in (a, b) for r in p.pc.getReceivers()}
    assert started and all(id(r) in client_receivers for r in started)


async def test_relay_legs_keep_none_of_aiortcs_receive_machinery(relay, peers, monkeypatch):
    # aiortc builds a bandwidth estimator and a NACK generator for every video receiver; the
    # relay's receivers never receive, so it releases them (~0.19 MiB per room, issue #17)
    built = []
    original = RTCRtpReceiver.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(RTCRtpReceiver, "__init__", spy)
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    room = relay.create_room()
    await join(room, "a", a)
    await join(room, "b", b)
    assert await b.wait_for(flowing)
    client_receivers = {id(r) for p in (a, b) for r in p.pc.getReceivers()}
    relay_receivers = [r for r in built if id(r) not in client_receivers]
    assert {r.track.kind for r in relay_receivers} == {"audio", "video"}
    assert all(
        r._RTCRtpReceiver__remote_bitrate_estimator is None
        and r._RTCRtpReceiver__nack_generator is None
        for r in relay_receivers
    )


async def test_the_relay_samples_how_long_packets_spend_inside_it(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await join(room, "a", a)
    await join(room, "b", b)
    # one datagram in 32 per socket is timestamped by the kernel and timed to our send
    assert await b.wait_for(lambda r: relay.snapshot().latency.count >= 10, timeout=20)
    snapshot = relay.snapshot()
    latency = snapshot.latency
    assert latency.count <= snapshot.forwarded.packets // 16
    assert sum(latency.counts) == latency.count
    assert 0 < latency.sum / latency.count < 0.05


async def test_the_first_participant_receives_media_from_one_who_joins_much_later(relay, peers):
    room = relay.create_room()
    first, later = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    states = []
    room.on_leg_state = lambda seat, state: states.append((seat, state))
    await join(room, "first", first)
    assert await first.wait_for(lambda r: ("first", "connected") in states, timeout=15)
    await join(room, "later", later)
    assert await first.wait_for(flowing)
    assert looks_like(first.received.last_video, GREEN_WHITE)
    assert await later.wait_for(flowing)
