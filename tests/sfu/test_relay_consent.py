"""ICE consent (RFC 7675, ``sfu/consent.py``): a browser that answers the relay's consent checks
late keeps its call; one that stops answering loses it once consent expires, and the relay counts
that as a consent expiry, not an ICE failure.

The check interval and consent lifetime are shortened for the test (5 s and 30 s in service), so
that many checks fit into seconds. A peer's late or missing answers are made in the peer's own
ICE agent, where the relay's checks arrive: the way a busy or vanished browser behaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sfu import aiortc_glue, consent
from tests.sfu.conftest import join
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, until

CHECK_INTERVAL = 0.1
CONSENT_LIFETIME = 1.5
# Later than the first retransmission timeout (0.5 s): aioice's own consent check, which does
# not retransmit, counts every such check as failed and closes after six of them.
LATE_ANSWER = 0.7
CHECKS_TO_SEE = 10


@pytest.fixture(autouse=True)
def quick_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consent, "CHECK_INTERVAL", CHECK_INTERVAL)
    monkeypatch.setattr(consent, "CONSENT_LIFETIME", CONSENT_LIFETIME)


def answer_checks_with(peer: MediaPeer, handle: Callable[[Callable[..., None], tuple], None]):
    """Route the Binding requests the relay sends to ``peer`` through ``handle``; returns the
    list of requests seen since."""
    connection = aiortc_glue.ice_connection(peer.pc)
    assert connection is not None
    answer = connection.request_received
    seen: list[object] = []

    def request_received(*args) -> None:
        seen.append(args[0])
        handle(answer, args)

    connection.request_received = request_received  # type: ignore[method-assign]
    return seen


async def connected_room(relay, peers):
    room = relay.create_room()
    a, b = peers(RED_BLUE, tone=440), peers(GREEN_WHITE, tone=880)
    await join(room, "a", a)
    await join(room, "b", b)
    await until(
        lambda: room.leg_state("a") == room.leg_state("b") == "connected",
        "both legs connected",
    )
    return room, a, b


async def test_a_peer_that_answers_consent_checks_late_keeps_its_call(relay, peers):
    room, a, _ = await connected_room(relay, peers)
    loop = asyncio.get_running_loop()
    checks = answer_checks_with(a, lambda answer, args: loop.call_later(LATE_ANSWER, answer, *args))
    await until(
        lambda: len(checks) >= CHECKS_TO_SEE or room.leg_state("a") != "connected",
        f"{CHECKS_TO_SEE} consent checks reached the slow peer",
        timeout=60,
    )
    assert room.leg_state("a") == "connected", "the relay gave up on a peer that answers late"
    frames = a.received.video_frames
    assert await a.wait_for(lambda r: r.video_frames > frames + 5), "media stopped"
    assert relay.snapshot().consent_expiries == 0


async def test_a_peer_that_stops_answering_loses_its_call_as_a_consent_expiry(relay, peers):
    room, a, _ = await connected_room(relay, peers)
    ice_failures = relay.snapshot().ice_failures
    checks = answer_checks_with(a, lambda answer, args: None)  # a closed laptop answers nothing
    await until(lambda: room.leg_state("a") == "failed", "the silent peer's leg failed", 30)
    assert len(checks) >= 2, "the relay retransmits before it gives up"
    snapshot = relay.snapshot()
    assert snapshot.consent_expiries == 1
    assert snapshot.ice_failures == ice_failures
    assert room.leg_state("b") == "connected"
