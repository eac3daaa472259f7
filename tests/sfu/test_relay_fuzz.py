"""Bad input at the media port during a live call: the call keeps forwarding, nothing throws,
memory stays bounded (issue: hardening)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from tests.sfu.attacker import MaliciousBrowser, Stranger
from tests.sfu.bad_packets import rtcp_compounds, rtp_packets, stranger_datagrams
from tests.sfu.conftest import join
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,  # examples run inside a live call; a replayed database adds nothing
    suppress_health_check=list(HealthCheck),
)


async def live_call(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    answer_a = await join(room, "a", a)
    await join(room, "b", b)
    assert await b.wait_for(lambda r: r.video_frames >= 5)
    return room, a, b, answer_a


async def still_relaying(room, b) -> None:
    """The relay keeps forwarding the sender's media. (What the receiver's decoder makes of the
    garbage a malicious sender mixed into its own stream is between the two browsers.)"""
    forwarder = room.forwarders()[0]
    before = forwarder.counters.video_packets
    advancing = await b.wait_for(
        lambda r: forwarder.counters.video_packets >= before + 30, timeout=15
    )
    assert advancing, forwarder.counters.as_dict()
    assert all(s.forwarding_errors == 0 for s in room.stats().values())
    assert room.leg_state("a") == room.leg_state("b") == "connected"


async def still_forwarding(room, b) -> None:
    frames = b.received.video_frames
    advancing = await b.wait_for(lambda r: r.video_frames >= frames + 10, timeout=15)
    assert advancing, [f.counters.as_dict() for f in room.forwarders()]
    stats = room.stats()
    assert all(s.forwarding_errors == 0 for s in stats.values()), stats


class LoopErrors(logging.Handler):
    """Counts ERROR records: an exception that escaped into asyncio or aiortc shows up here."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def fuzz(strategy, send, rounds: int = 6) -> None:
    """Run the strategy in short rounds: the peers share this event loop, and a long stall would
    starve their media pipelines, not the relay's. (Not in a thread: the loop's own use of the
    random module would leak into hypothesis's generation.)"""

    @FUZZ
    @given(strategy)
    def one(packet: bytes) -> None:
        send(packet)

    for _ in range(rounds):
        one()
        await asyncio.sleep(0.3)


async def test_lying_rtp_from_a_connected_browser_does_not_disturb_the_call(relay, peers):
    errors = LoopErrors()
    logging.getLogger().addHandler(errors)
    try:
        room, a, b, _ = await live_call(relay, peers)
        attacker = MaliciousBrowser(a.pc)
        await fuzz(rtp_packets(), attacker.rtp)
        assert attacker.sent > 50  # libsrtp itself refuses to protect many lying headers
        await still_relaying(room, b)
        forwarder = room.forwarders()[0]
        # a flood of fresh SSRCs must not grow the relay's tables without bound
        tables = forwarder.route_tables()  # one media and one RTX route per kind at most
        assert tables.media_routes <= 2 and tables.rtx_routes <= 2 and tables.receptions <= 2
    finally:
        logging.getLogger().removeHandler(errors)
    assert errors.records == []


async def test_lying_rtcp_from_a_connected_browser_does_not_disturb_the_call(relay, peers):
    errors = LoopErrors()
    logging.getLogger().addHandler(errors)
    try:
        room, _, b, _ = await live_call(relay, peers)
        attacker = MaliciousBrowser(b.pc)  # b is the receiver of a's media: feedback comes from it
        await fuzz(rtcp_compounds(), attacker.rtcp)
        assert attacker.sent > 50  # libsrtp itself refuses to protect many lying headers
        await still_relaying(room, b)
    finally:
        logging.getLogger().removeHandler(errors)
    assert errors.records == []


async def test_garbage_from_a_stranger_at_the_media_port_is_ignored(relay, peers):
    errors = LoopErrors()
    logging.getLogger().addHandler(errors)
    stranger = None
    try:
        room, _, b, answer_a = await live_call(relay, peers)
        stranger = Stranger(answer_a)
        await fuzz(stranger_datagrams(), stranger.send)
        assert stranger.sent > 500
        await still_forwarding(room, b)
        assert room.leg_state("a") == "connected"
    finally:
        if stranger is not None:
            stranger.close()
        logging.getLogger().removeHandler(errors)
    assert errors.records == []


async def test_inputs_that_once_broke_the_relay_stay_harmless(relay, peers):
    room, a, b, answer_a = await live_call(relay, peers)
    media, feedback = MaliciousBrowser(a.pc), MaliciousBrowser(b.pc)
    stranger = Stranger(answer_a)
    senders = {"rtp": media.rtp, "rtcp": feedback.rtcp, "stranger": stranger.send}
    files = sorted(CORPUS.glob("*.bin"))
    assert files, "the corpus is empty"
    try:
        for path in files:
            senders[path.name.split("-", 1)[0]](path.read_bytes())
        await asyncio.sleep(0.2)
        await still_forwarding(room, b)
        assert room.leg_state("a") == "connected"
    finally:
        stranger.close()


async def test_packets_from_a_stranger_do_not_redirect_the_relays_answers(relay, peers):
    room, _, b, answer_a = await live_call(relay, peers)
    stranger = Stranger(answer_a)
    try:
        for _ in range(50):  # SRTP-looking, but not authenticated: must not move the path
            stranger.send(bytes([0x80, 0x60]) + bytes(40))
        await asyncio.sleep(0.2)
        await still_forwarding(room, b)
        peer_a = room.forwarders()[0].source.wire.remote_addr
        assert peer_a != stranger._sock.getsockname()
    finally:
        stranger.close()
