"""What a therapist does on one node reaches the room and the sockets on the other, as on one node:
a cancel ends the room for both people, a sign-out closes the therapist's sockets at once, ending
the call from a socket on the other node ends it; and a cancel while Redis is away still ends the
room, from the database. Two in-process nodes (real apps on real sockets) sharing one SQLite file
and one redis-server."""

from __future__ import annotations

import asyncio

import pytest

from signaling import relay_setup
from signaling.cluster import remote_actions
from signaling.storage import AppointmentState
from tests.cluster.nodes import two_nodes
from tests.cluster.test_presence_across_nodes import CONFIG, same_browser
from tests.cluster.test_room_sweep import state_becomes
from tests.redis_server import RedisServer
from tests.signaling.api_server import PUBLIC_URL, call
from tests.signaling.test_sign_out import logout, signed_out
from tests.signaling.test_ws_call import Side, book, close_code, consenting_client, seated

DEADLINE_SECONDS = 15.0


async def cancel(side: Side, appointment_id: int) -> None:
    csrf = (await call(side.http, "GET", "/api/therapist/me"))[1]["csrf_token"]
    status, body, _ = await call(
        side.http,
        "DELETE",
        f"/api/therapist/appointments/{appointment_id}",
        headers={"X-CSRF-Token": csrf, "Origin": PUBLIC_URL},
    )
    assert (status, body["state"]) == (200, "cancelled"), body


async def told_the_end(side: Side, reason: str) -> None:
    assert (await side.next("ended", DEADLINE_SECONDS))["reason"] == reason
    assert await close_code(side) == 4004


async def test_a_cancel_on_one_node_ends_the_room_on_the_other_for_both(
    shared_redis: RedisServer, cluster_config
):
    async with two_nodes(cluster_config, shared_redis, CONFIG) as (a, b):
        therapist, appointment_id, token = await book(a.api)
        client = await consenting_client(b.api, token)
        call_page = same_browser(therapist, a.api)  # seated through node-a
        try:
            await seated(client, invite=token)
            await seated(call_page, appointment=appointment_id)
            assert await a.cluster.placement.owner(appointment_id) == "node-b"
            await cancel(therapist, appointment_id)  # on node-a, which hosts nothing
            await told_the_end(client, "cancelled")
            await told_the_end(call_page, "cancelled")
            stored = await a.api.storage.get_appointment(appointment_id)
            assert stored is not None and stored.state is AppointmentState.CANCELLED
        finally:
            for side in (therapist, client, call_page):
                await side.close()


async def test_signing_out_on_one_node_closes_the_therapists_sockets_on_the_other_at_once(
    shared_redis: RedisServer, cluster_config, monkeypatch: pytest.MonkeyPatch
):
    # out of reach: the periodic re-check of sign-ins would close the sockets too, 5 s later
    monkeypatch.setattr(relay_setup, "SESSION_RECHECK_SECONDS", 3600.0)
    async with two_nodes(cluster_config, shared_redis, CONFIG, busy=None) as (a, b):
        therapist, appointment_id, token = await book(a.api)
        csrf = (await call(therapist.http, "GET", "/api/therapist/me"))[1]["csrf_token"]
        dashboard, call_page = same_browser(therapist, b.api), same_browser(therapist, b.api)
        client = await consenting_client(b.api, token)
        try:
            await dashboard.connect()
            await dashboard.send(type="watch")
            await seated(call_page, appointment=appointment_id)
            assert (await seated(client, invite=token))["peer"]["state"] == "present"
            await logout(therapist, csrf)  # on node-a
            await signed_out(dashboard, timeout=DEADLINE_SECONDS)
            await signed_out(call_page, timeout=DEADLINE_SECONDS)
            assert (await client.next("peer", DEADLINE_SECONDS))["state"] == "gone"
        finally:
            for side in (therapist, dashboard, call_page, client):
                await side.close()


async def test_ending_the_call_from_a_socket_on_the_other_node_ends_it_for_both(
    shared_redis: RedisServer, cluster_config
):
    async with two_nodes(cluster_config, shared_redis, CONFIG) as (a, b):
        therapist, appointment_id, token = await book(a.api)
        client = await consenting_client(b.api, token)
        try:
            await seated(client, invite=token)
            await seated(therapist, appointment=appointment_id)  # on node-a, the room on node-b
            assert await a.cluster.placement.owner(appointment_id) == "node-b"
            await therapist.send(type="end")
            await told_the_end(therapist, "therapist_ended")
            await told_the_end(client, "therapist_ended")
            # written after both are told
            await state_becomes(
                a.api.storage, appointment_id, AppointmentState.ENDED, DEADLINE_SECONDS
            )
        finally:
            for side in (therapist, client):
                await side.close()


async def test_a_cancel_while_redis_is_away_still_ends_the_room_on_the_other_node(
    private_redis: RedisServer, cluster_config, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(remote_actions, "ROOM_RECHECK_SECONDS", 0.5)
    fast = {"heartbeat_interval_seconds": 0.5, "heartbeat_ttl_seconds": 2}
    async with two_nodes(cluster_config, private_redis, CONFIG, **fast) as (a, b):
        therapist, appointment_id, token = await book(a.api)
        client = await consenting_client(b.api, token)
        try:
            await seated(client, invite=token)
            assert await a.cluster.placement.owner(appointment_id) == "node-b"
            private_redis.stop()
            async with asyncio.timeout(DEADLINE_SECONDS):
                while a.cluster.reachable:
                    await asyncio.sleep(0.05)
            await cancel(therapist, appointment_id)  # node-a cannot tell node-b
            await told_the_end(client, "cancelled")
        finally:
            for side in (therapist, client):
                await side.close()
