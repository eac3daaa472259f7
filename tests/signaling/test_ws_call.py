"""The whole consultation over real HTTP + WebSocket, with the real relay and aiortc peers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from signaling.credentials import hash_token
from signaling.relay_setup import RELAY
from signaling.storage import AppointmentState
from tests.ports import PortRange
from tests.privacy_canaries import remember
from tests.sfu.media_peers import GREEN_WHITE, RED_BLUE, MediaPeer, looks_like, use_loopback_only
from tests.signaling.api_server import (
    PUBLIC_URL,
    ApiServer,
    call,
    media_config,
    serving,
    write_config,
)


@pytest.fixture
async def server(tmp_path: Path, udp_ports: PortRange) -> AsyncIterator[ApiServer]:
    use_loopback_only()
    async with serving(write_config(tmp_path, extra=media_config(udp_ports))) as api:
        await api.add_therapist("alice")
        yield api


@dataclass
class Side:
    """One person's browser: an HTTP session with its cookies and a signaling socket."""

    http: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect("/ws", headers={"Origin": PUBLIC_URL})

    async def send(self, **message: Any) -> None:
        await self.ws.send_json({"v": 1, **message})

    async def next(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        """The next message of ``kind`` (others are kept in ``received``)."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"socket ended while waiting for {kind}: {msg.type}")
                self.raw.append(msg.data)
                data = json.loads(msg.data)
                self.received.append(data)
                if data["type"] == kind:
                    return data

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()


async def close_code(side: Side) -> int | None:
    """The code of the server's close frame (aiohttp may report 1006 once the TCP connection
    drops right after the frame, so read the frame rather than ``ws.close_code``)."""
    msg = await side.ws.receive()
    while msg.type == aiohttp.WSMsgType.TEXT:
        msg = await side.ws.receive()
    if msg.type == aiohttp.WSMsgType.CLOSE:
        return msg.data
    return side.ws.close_code


async def seated(side: Side, **join: Any) -> dict[str, Any]:
    """Open the side's socket, join, and return the `joined` message."""
    await side.connect()
    await side.send(type="join", **join)
    return await side.next("joined")


async def book(server: ApiServer) -> tuple[Side, int, str]:
    """Alice signs in and books an appointment starting now; returns her side, id and token."""
    http, csrf = await server.signed_in("alice")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    status, body, _ = await call(
        http,
        "POST",
        "/api/therapist/appointments",
        json={"starts_at": start},
        headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
    )
    assert status == 201, body
    token = body["invite_url"].rsplit("/", 1)[1]
    remember(token)
    return Side(http), body["id"], token


async def consenting_client(server: ApiServer, token: str, name: str | None = "Kim") -> Side:
    http = server.client()
    payload: dict[str, Any] = {"accept_terms": True, "consent_processing": True}
    status, info, _ = await call(http, "GET", f"/api/client/{token}")
    assert status == 200, info
    payload["terms_version"] = info["terms_version"]
    if name:
        payload["display_name"] = name
        remember(name)
    status, body, _ = await call(
        http, "POST", f"/api/client/{token}/consent", json=payload, headers={"Origin": PUBLIC_URL}
    )
    assert status == 200, body
    return Side(http)


async def start_media(side: Side, peer: MediaPeer) -> None:
    await side.send(type="offer", sdp=await peer.offer())
    answer = await side.next("answer")
    await peer.accept(answer["sdp"])


def flowing(r) -> bool:
    return r.video_frames >= 10 and r.loud_audio_frames >= 10


async def media_flows_both_ways(
    therapist: MediaPeer, client: MediaPeer, timeout: float = 30.0
) -> None:
    """Until each side has decoded enough of the other's video and tone (``flowing``); both are
    waited for at once, and the failure says which side got how much."""
    seen = await asyncio.gather(
        therapist.wait_for(flowing, timeout), client.wait_for(flowing, timeout)
    )
    if not all(seen):
        counts = {
            name: (peer.received.video_frames, peer.received.loud_audio_frames)
            for name, peer in (("therapist", therapist), ("client", client))
        }
        raise AssertionError(
            f"media did not flow both ways within {timeout} s; (video frames, loud audio frames)"
            f" decoded: {counts}; connection states: {therapist.pc.connectionState}, "
            f"{client.pc.connectionState}"
        )


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Until ``condition()`` holds; an AssertionError naming ``what`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def test_therapist_and_client_see_and_hear_each_other_through_the_relay(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    alice_peer, kim_peer = MediaPeer(RED_BLUE, tone=440), MediaPeer(GREEN_WHITE, tone=880)
    try:
        await therapist.connect()
        await therapist.send(type="join", appointment=appointment_id)
        joined = await therapist.next("joined")
        assert joined["seat"] == "therapist" and joined["peer"] == {"state": "absent"}

        await client.connect()
        await client.send(type="join", invite=token)
        assert (await client.next("joined"))["peer"]["state"] == "present"
        assert await therapist.next("peer") == {
            "v": 1,
            "type": "peer",
            "state": "present",
            "name": "Kim",
        }

        await start_media(therapist, alice_peer)
        await start_media(client, kim_peer)
        assert (await client.next("media"))["state"] in ("connecting", "connected")
        await media_flows_both_ways(alice_peer, kim_peer)
        assert looks_like(alice_peer.received.last_video, GREEN_WHITE)
        assert looks_like(kim_peer.received.last_video, RED_BLUE)

        # the client learns nothing of the therapist's connection, and vice versa
        alice_offer = alice_peer.pc.localDescription.sdp
        alice_ports = re.findall(r"^a=candidate:\S+ \d \S+ \d+ \S+ (\d+) typ", alice_offer, re.M)
        fingerprint = re.search(r"^a=fingerprint:sha-256 (\S+)", alice_offer, re.M).group(1)
        seen_by_client = "".join(client.raw)
        assert alice_ports and not any(f" {p} typ" in seen_by_client for p in alice_ports)
        assert fingerprint not in seen_by_client
        assert "Kim" not in seen_by_client  # the client's name goes to the therapist only
    finally:
        await alice_peer.close()
        await kim_peer.close()
        await therapist.close()
        await client.close()


async def test_ending_closes_the_room_for_both_and_keeps_only_date_and_length(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    try:
        await seated(therapist, appointment=appointment_id)
        await seated(client, invite=token)
        await therapist.send(type="end")
        assert (await therapist.next("ended"))["reason"] == "therapist_ended"
        assert (await client.next("ended"))["reason"] == "therapist_ended"
        assert await close_code(client) == 4004

        appointment = await server.storage.get_appointment(appointment_id)
        assert appointment.state == AppointmentState.ENDED
        assert appointment.invite_token_hash is None
        assert await server.storage.get_appointment_by_token_hash(hash_token(token)) is None
        therapist_row = await server.storage.get_therapist("alice")
        stats = await server.storage.list_session_statistics(therapist_row.id)
        assert len(stats) == 1 and stats[0].duration_seconds >= 0
    finally:
        await therapist.close()
        await client.close()


async def test_a_third_browser_with_the_same_link_is_refused(server):
    therapist, _, token = await book(server)
    client = await consenting_client(server, token)
    intruder = Side(server.client())  # same link, no consent cookie of the bound browser
    try:
        await seated(client, invite=token)
        await intruder.connect()
        await intruder.send(type="join", invite=token)
        error = await intruder.next("error")
        assert error["code"] == "used"
        assert await close_code(intruder) == 4003
    finally:
        for side in (therapist, client, intruder):
            await side.close()


async def test_the_same_person_in_a_second_tab_replaces_the_first(server):
    first, appointment_id, _ = await book(server)
    second_http, _ = await server.signed_in("alice")
    second = Side(second_http)
    try:
        await seated(first, appointment=appointment_id)
        await seated(second, appointment=appointment_id)
        assert (await first.next("error"))["code"] == "replaced"
        assert await close_code(first) == 4009
    finally:
        await first.close()
        await second.close()


async def test_a_therapist_cannot_join_another_therapists_appointment(server):
    _, appointment_id, _ = await book(server)
    await server.add_therapist("bob")
    http, _ = await server.signed_in("bob")
    bob = Side(http)
    try:
        await bob.connect()
        await bob.send(type="join", appointment=appointment_id)
        assert (await bob.next("error"))["code"] == "unauthorized"
    finally:
        await bob.close()


async def test_a_foreign_origin_cannot_open_the_socket(server):
    http, _ = await server.signed_in("alice")
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect("/ws", headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
    finally:
        await http.close()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_message"),
        ("[1, 2]", "bad_message"),
        ('{"v": 1, "type": "dance"}', "bad_message"),
        ('{"v": 2, "type": "join", "appointment": 1}', "bad_message"),
        ('{"v": 1, "type": "join", "appointment": "1"}', "bad_message"),
        ('{"v": 1, "type": "offer", "sdp": "v=0"}', "bad_message"),  # before join
    ],
)
async def test_malformed_messages_get_an_error_and_the_socket_stays_open(server, text, code):
    http, _ = await server.signed_in("alice")
    side = Side(http)
    try:
        await side.connect()
        await side.ws.send_str(text)
        assert (await side.next("error"))["code"] == code
        await side.ws.send_str("not json")  # still read and answered
        assert (await side.next("error"))["code"] == "bad_message"
    finally:
        await side.close()


async def test_an_oversized_message_closes_the_socket_with_1009(server):
    http, _ = await server.signed_in("alice")
    side = Side(http)
    try:
        await side.connect()
        await side.ws.send_str(json.dumps({"v": 1, "type": "offer", "sdp": "x" * 70000}))
        assert await close_code(side) == 1009
    finally:
        await side.close()


async def test_a_garbage_offer_is_refused_without_disturbing_the_other_side(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    try:
        await seated(therapist, appointment=appointment_id)
        await seated(client, invite=token)
        await client.send(type="offer", sdp="v=0\r\nthis is not an offer\r\n")
        assert (await client.next("error"))["code"] == "invalid_offer"
        await therapist.send(type="watch")
        assert (await therapist.next("status"))["state"] == "in_call"
    finally:
        await therapist.close()
        await client.close()


async def test_the_dashboard_hears_when_the_client_arrives(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token, name="Kim")
    try:
        await therapist.connect()
        await therapist.send(type="watch")
        await client.connect()
        await client.send(type="join", invite=token)
        status = await therapist.next("status")
        while status["state"] == "invited":
            # the room opening may be reported before the client is seated in it, depending on
            # whether `watch` was handled first: wait for the arrival itself
            status = await therapist.next("status")
        assert status == {
            "v": 1,
            "type": "status",
            "appointment": appointment_id,
            "state": "waiting",
            "client_name": "Kim",
        }
    finally:
        await therapist.close()
        await client.close()


async def test_a_flood_of_messages_is_cut_off(server):
    http, _ = await server.signed_in("alice")
    side = Side(http)
    try:
        await side.connect()
        for _ in range(80):
            await side.ws.send_str('{"v": 1, "type": "dance"}')
        error = await side.next("error")
        while error["code"] != "rate_limited":
            error = await side.next("error")
        assert await close_code(side) == 4029
    finally:
        await side.close()


async def test_the_same_browser_rejoins_after_a_drop(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    try:
        await seated(therapist, appointment=appointment_id)
        await seated(client, invite=token)
        await client.ws.close()  # the network drops; the cookie stays in this browser
        assert (await therapist.next("peer"))["state"] == "present"
        assert (await therapist.next("peer"))["state"] == "gone"
        await client.connect()
        await client.send(type="join", invite=token)
        assert (await client.next("joined"))["peer"]["state"] == "present"
        assert (await therapist.next("peer"))["state"] == "present"
    finally:
        await therapist.close()
        await client.close()


async def test_a_vanished_browser_is_reported_gone_to_the_other_side(server, monkeypatch):
    import signaling.ws_endpoint

    monkeypatch.setattr(signaling.ws_endpoint, "HEARTBEAT_SECONDS", 0.5)
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    try:
        await seated(therapist, appointment=appointment_id)
        await seated(client, invite=token)
        # the client stops reading: it answers no more pings, as a browser whose laptop lid
        # closed; the server must notice without any close frame
        assert (await therapist.next("peer"))["state"] == "present"
        assert (await therapist.next("peer"))["state"] == "gone"
    finally:
        await therapist.close()
        await client.close()


async def test_after_the_purge_only_date_and_length_of_the_session_remain(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token, name="Kim")
    try:
        for side, join in (
            (therapist, {"appointment": appointment_id}),
            (client, {"invite": token}),
        ):
            await seated(side, **join)
        await therapist.send(type="end")
        await therapist.next("ended")
    finally:
        await therapist.close()
        await client.close()
    appointment = await server.storage.get_appointment(appointment_id)
    later = appointment.valid_until + dt.timedelta(minutes=1)
    await server.storage.purge(later, retention_days=90)
    purged = await server.storage.get_appointment(appointment_id)
    assert (purged.client_display_name, purged.note, purged.consent_at) == (None, None, None)
    assert (purged.client_binding_hash, purged.terms_version, purged.invite_token_hash) == (
        None,
        None,
        None,
    )
    alice = await server.storage.get_therapist("alice")
    [statistic] = await server.storage.list_session_statistics(alice.id)
    assert statistic.session_date == appointment.both_present_at.date()
    assert b"Kim" not in server.database_bytes()


async def test_cancelling_a_live_appointment_ends_it_for_everyone_in_the_room(server):
    therapist, appointment_id, _ = await book(server)
    http, csrf = await server.signed_in("alice")
    try:
        await seated(therapist, appointment=appointment_id)
        status, _, _ = await call(
            http,
            "DELETE",
            f"/api/therapist/appointments/{appointment_id}",
            headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
        )
        assert status == 200
        assert (await therapist.next("ended"))["reason"] == "cancelled"
        appointment = await server.storage.get_appointment(appointment_id)
        assert appointment.state == AppointmentState.CANCELLED
    finally:
        await therapist.close()
        await http.close()


async def test_the_relay_room_is_given_back_when_both_have_left(server):
    therapist, appointment_id, token = await book(server)
    client = await consenting_client(server, token)
    alice_peer, alice_again = MediaPeer(RED_BLUE, tone=440), MediaPeer(RED_BLUE, tone=440)
    try:
        await seated(therapist, appointment=appointment_id)
        await start_media(therapist, alice_peer)
        relay = server.app[RELAY]
        assert len(relay.rooms) == 1
        await therapist.send(type="leave")
        # its max_rooms slot is free again
        await until(lambda: len(relay.rooms) == 0, "the relay room given back after leave")
        await therapist.send(type="join", appointment=appointment_id)
        await therapist.next("joined")
        await start_media(therapist, alice_again)
        assert len(relay.rooms) == 1
    finally:
        await alice_peer.close()
        await alice_again.close()
        await therapist.close()
        await client.close()
