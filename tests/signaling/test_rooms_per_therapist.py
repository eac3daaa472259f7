"""One therapist cannot take every relay room (issue #11, item 7): `limits.max_rooms_per_therapist`
(default 2: one, and one more at a change-over) caps the rooms open for one therapist's
appointments; another therapist is not affected. Real relay, real aiortc peers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.ports import PortRange
from tests.sfu.media_peers import RED_BLUE, MediaPeer, use_loopback_only
from tests.signaling.api_server import (
    PUBLIC_URL,
    ApiServer,
    call,
    in_days,
    media_config,
    serving,
    write_config,
)
from tests.signaling.test_ws_call import Side, book, seated


@pytest.fixture
async def server(tmp_path: Path, udp_ports: PortRange) -> AsyncIterator[ApiServer]:
    use_loopback_only()
    async with serving(write_config(tmp_path, extra=media_config(udp_ports))) as api:
        await api.add_therapist("alice")
        await api.add_therapist("bob")
        yield api


async def answered(side: Side, peer: MediaPeer) -> str:
    """`answer` or the error code the offer got."""
    await side.send(type="offer", sdp=await peer.offer())
    async with asyncio.timeout(15):
        while True:
            msg = await side.ws.receive_json()
            side.received.append(msg)
            if msg["type"] == "answer":
                await peer.accept(msg["sdp"])
                return "answer"
            if msg["type"] == "error":
                return msg["code"]


async def test_a_therapists_third_room_is_refused_and_another_therapist_still_gets_one(server):
    sides: list[Side] = []
    peers: list[MediaPeer] = []
    try:
        for _ in range(3):
            side, appointment_id, _ = await book(server)
            sides.append(side)
            await seated(side, appointment=appointment_id)
        peers = [MediaPeer(RED_BLUE, tone=440) for _ in range(4)]
        assert await answered(sides[0], peers[0]) == "answer"
        assert await answered(sides[1], peers[1]) == "answer"
        assert await answered(sides[2], peers[2]) == "relay_unavailable"

        bob_http, _ = await server.signed_in("bob")
        bob = Side(bob_http)
        sides.append(bob)
        csrf = (await call(bob.http, "GET", "/api/therapist/me"))[1]["csrf_token"]
        status, body, _ = await call(
            bob.http,
            "POST",
            "/api/therapist/appointments",
            json={"starts_at": in_days(0)},
            headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
        )
        assert status == 201, body
        await seated(bob, appointment=body["id"])
        assert await answered(bob, peers[3]) == "answer"
    finally:
        for peer in peers:
            await peer.close()
        for side in sides:
            await side.close()


async def test_a_room_given_back_can_be_opened_for_another_appointment(server):
    sides: list[Side] = []
    peers = [MediaPeer(RED_BLUE, tone=440) for _ in range(4)]
    try:
        for _ in range(3):
            side, appointment_id, _ = await book(server)
            sides.append(side)
            await seated(side, appointment=appointment_id)
        assert await answered(sides[0], peers[0]) == "answer"
        assert await answered(sides[1], peers[1]) == "answer"
        assert await answered(sides[2], peers[2]) == "relay_unavailable"
        await sides[0].send(type="leave")  # the room of the first appointment is given back
        # messages of one socket are handled in order: this answer means the leave is done
        await sides[0].send(type="candidate", candidate=None)
        assert (await sides[0].next("error"))["code"] == "bad_message"
        assert await answered(sides[2], peers[3]) == "answer"
    finally:
        for peer in peers:
            await peer.close()
        for side in sides:
            await side.close()
