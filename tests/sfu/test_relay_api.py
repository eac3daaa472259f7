"""The relay's API as signaling uses it: seats, offers, ports, refusals."""

from __future__ import annotations

import re

import pytest

from sfu import InvalidOffer, PortsExhausted, Relay, RelayFull, RoomClosed, RoomFull
from sfu.aiortc_glue import check_internals
from sfu.offer_limits import MAX_REMOTE_CANDIDATES, TRICKLE_BURST
from tests.ports import reserve_ports
from tests.sfu.conftest import join, relay_config
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, until


def candidate_ports(sdp: str) -> list[int]:
    return [int(p) for p in re.findall(r"^a=candidate:\S+ \d \S+ \d+ \S+ (\d+) typ", sdp, re.M)]


def test_every_private_aiortc_internal_the_relay_uses_still_exists():
    assert check_internals() == []


async def test_answers_offer_candidates_only_from_the_configured_port_range(relay, peers):
    room = relay.create_room()
    answers = [await join(room, seat, peers(RED_BLUE, tone=440)) for seat in ("a", "b")]
    ports = [p for answer in answers for p in candidate_ports(answer)]
    assert len(set(ports)) == 2  # one socket per leg, listed in each bundled m-line
    low, high = relay.config.udp_port_min, relay.config.udp_port_max
    assert all(low <= p <= high for p in ports), (ports, low, high)


async def test_a_third_participant_is_refused(relay, peers):
    room = relay.create_room()
    await join(room, "therapist", peers(RED_BLUE, tone=440))
    await join(room, "client", peers(GREEN_WHITE, tone=880))
    intruder = peers(RED_BLUE, tone=440)
    with pytest.raises(RoomFull):
        await room.connect("someone-else", await intruder.offer())
    assert sorted(room.stats()) == ["client", "therapist"]


async def test_a_closed_room_refuses_to_connect(relay, peers):
    room = relay.create_room()
    await room.close()
    with pytest.raises(RoomClosed):
        await room.connect("a", await peers(RED_BLUE, tone=440).offer())
    assert room.id not in relay.rooms


async def test_relay_refuses_rooms_beyond_its_limit(udp_ports):
    relay = Relay(relay_config(udp_ports, max_rooms=1))
    try:
        relay.create_room()
        with pytest.raises(RelayFull):
            relay.create_room()
    finally:
        await relay.close()


async def test_port_range_exhaustion_fails_the_offer_clearly(peers):
    with reserve_ports(1) as one:
        relay = Relay(relay_config(one))
        try:
            room = relay.create_room()
            await join(room, "a", peers(RED_BLUE, tone=440))
            with pytest.raises(PortsExhausted):
                await room.connect("b", await peers(GREEN_WHITE, tone=880).offer())
            assert relay.snapshot().port_exhaustions == 1
        finally:
            await relay.close()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda sdp: "this is not sdp", "malformed"),
        (lambda sdp: "", "empty"),
        (lambda sdp: re.sub(r"^a=fingerprint:.*\r?\n", "", sdp, flags=re.M), "fingerprint"),
        (lambda sdp: re.sub(r"^a=ice-pwd:.*\r?\n", "", sdp, flags=re.M), "ICE"),
        (lambda sdp: re.sub(r"^a=group:BUNDLE.*\r?\n", "", sdp, flags=re.M), "bundle"),
        (lambda sdp: sdp + "a=x:" + "y" * 40000 + "\r\n", "larger"),
        (lambda sdp: sdp.replace("VP8/90000", "XYZ/90000"), "VP8"),
    ],
)
async def test_unusable_offers_are_refused_with_a_reason(relay, peers, mutate, reason):
    room = relay.create_room()
    offer = await peers(RED_BLUE, tone=440).offer()
    with pytest.raises(InvalidOffer, match=reason):
        await room.connect("a", mutate(offer))
    assert room.leg_state("a") is None


async def test_an_offer_with_three_video_lines_is_refused(relay, peers):
    # camera and screen are two; a third would be a stream the relay has no place for
    room = relay.create_room()
    offer = await peers(RED_BLUE, tone=440).offer()
    video = offer[offer.index("m=video") :]
    tripled = offer + video.replace("a=mid:1", "a=mid:2") + video.replace("a=mid:1", "a=mid:3")
    tripled = tripled.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2 3")
    with pytest.raises(InvalidOffer, match="two video"):
        await room.connect("a", tripled)


async def test_leg_states_are_reported_to_signaling(relay, peers):
    room = relay.create_room()
    seen = []
    room.on_leg_state = lambda seat, state: seen.append((seat, state))
    a = peers(RED_BLUE, tone=440)
    await join(room, "a", a)
    assert await a.wait_for(lambda r: ("a", "connected") in seen, timeout=10)
    await room.disconnect("a")
    assert seen == [("a", "connecting"), ("a", "connected"), ("a", "closed")]


async def test_trickled_candidates_connect_a_leg_whose_offer_had_none(relay, peers):
    room = relay.create_room()
    a = peers(RED_BLUE, tone=440)
    offer = await a.offer()
    candidates = re.findall(r"^a=(candidate:.*?)\r?$", offer, re.M)
    bare = re.sub(r"^a=(candidate:.*|end-of-candidates)\r?\n", "", offer, flags=re.M)
    assert candidates and "a=candidate" not in bare
    seen = []
    room.on_leg_state = lambda seat, state: seen.append(state)
    answer = await room.connect("a", bare)
    assert room.stats()["a"].remote_candidates == 0  # the peer has no answer yet: no checks
    await a.accept(answer)
    for line in dict.fromkeys(candidates):
        await room.add_ice_candidate("a", line, "0", None)
    await room.add_ice_candidate("a", None, None, None)
    assert room.stats()["a"].remote_candidates >= len(set(candidates))
    assert await a.wait_for(lambda r: "connected" in seen, timeout=15)


async def test_a_malformed_trickled_candidate_is_refused(relay, peers):
    room = relay.create_room()
    a = peers(RED_BLUE, tone=440)
    await a.accept(await room.connect("a", await a.offer()))
    with pytest.raises(InvalidOffer, match="candidate"):
        await room.add_ice_candidate("a", "candidate:garbage", "0", None)


async def test_behind_1to1_nat_the_answer_announces_the_public_address(peers):
    with reserve_ports(11) as ports:
        relay = Relay(relay_config(ports, public_ip="203.0.113.7"))
        try:
            offer = await peers(RED_BLUE, tone=440).offer()
            answer = await relay.create_room().connect("a", offer)
        finally:
            await relay.close()
    hosts = set(re.findall(r"^a=candidate:\S+ \d \S+ \d+ (\S+) \d+ typ host", answer, re.M))
    assert hosts == {"203.0.113.7"}


async def test_forwarding_totals_outlive_the_room(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await join(room, "a", a)
    await join(room, "b", b)
    assert await b.wait_for(lambda r: r.video_frames >= 5)
    live = relay.snapshot().forwarded.video_packets
    await room.close()
    after = relay.snapshot()
    assert after.forwarded.video_packets >= live > 0
    assert after.rooms == ()
    assert after.rooms_created == 1 and after.legs_connected == 2


async def test_the_snapshot_holds_each_live_rooms_seats_and_what_they_sent(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await join(room, "a", a)
    await join(room, "b", b)
    assert await b.wait_for(lambda r: r.video_frames >= 5)
    assert await a.wait_for(lambda r: r.video_frames >= 5)
    snapshot = relay.snapshot()
    [live] = snapshot.rooms
    assert sorted(leg.seat for leg in live.legs) == ["a", "b"]
    for leg in live.legs:
        assert leg.state == "connected" and leg.candidate_type == "host"
        assert leg.forwarded_from.audio_packets > 0 and leg.forwarded_from.video_packets > 0
    assert snapshot.forwarded == live.forwarded  # no room has closed yet
    assert live.chat_relayed == live.chat_dropped == live.chat_refused == 0
    # a copy: what is forwarded later shows in the next snapshot only
    before = snapshot.forwarded.packets
    await until(lambda: relay.snapshot().forwarded.packets > before, "more packets forwarded")
    assert snapshot.forwarded.packets == before


async def test_a_leg_whose_ice_never_completes_counts_as_an_ice_failure(relay, peers):
    room = relay.create_room()
    states = []
    room.on_leg_state = lambda seat, state: states.append(state)
    offer = await peers(RED_BLUE, tone=440).offer()
    bare = re.sub(r"^a=(candidate:.*|end-of-candidates)\r?\n", "", offer, flags=re.M)
    await room.connect("a", bare)  # the peer never gets the answer, so it never checks
    await room.add_ice_candidate("a", None, None, None)
    await until(lambda: "failed" in states, "the leg without checks failed", timeout=30)
    assert states[-1] == "failed"
    snapshot = relay.snapshot()
    assert snapshot.ice_failures == 1 and snapshot.dtls_failures == 0


async def test_trickled_candidates_beyond_the_per_leg_cap_are_refused(relay, peers):
    room = relay.create_room()
    offer = await peers(RED_BLUE, tone=440).offer()
    # without end-of-candidates: aiortc would ignore whatever is trickled after it
    await room.connect("a", re.sub(r"^a=end-of-candidates\r?\n", "", offer, flags=re.M))
    offered = room.stats()["a"].remote_candidates
    taken = 0
    with pytest.raises(InvalidOffer, match=f"more than {MAX_REMOTE_CANDIDATES} ICE candidates"):
        for n in range(MAX_REMOTE_CANDIDATES + 1):
            line = f"candidate:{n} 1 udp 2122260223 192.0.2.{n + 1} {20000 + n} typ host"
            await room.add_ice_candidate("a", line, "0", None)
            taken += 1
    assert offered + taken == MAX_REMOTE_CANDIDATES
    assert room.stats()["a"].remote_candidates == MAX_REMOTE_CANDIDATES
    assert room.leg_state("a") == "connecting"  # refused the candidate, not the leg


async def test_a_burst_of_trickled_candidates_beyond_the_rate_is_refused(relay, peers):
    room = relay.create_room()
    await room.connect("a", await peers(RED_BLUE, tone=440).offer())
    line = "candidate:1 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active"  # adds no address
    with pytest.raises(InvalidOffer, match="ICE candidates a second"):
        for _ in range(TRICKLE_BURST + 1):
            await room.add_ice_candidate("a", line, "0", None)
