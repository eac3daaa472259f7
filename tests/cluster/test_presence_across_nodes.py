"""Dashboard presence across nodes: the therapist's dashboard socket on one node hears of the
client arriving, the call starting and the client leaving in a room on the other node, exactly as
on one node; a dashboard opened later is told what holds already; the client's name never
travels through Redis. Two in-process nodes (real apps on real sockets) sharing one SQLite file
and one redis-server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio
from yarl import URL

from tests.cluster.nodes import two_nodes
from tests.redis_server import RedisServer
from tests.signaling.api_server import PUBLIC_URL, ApiServer
from tests.signaling.test_ws_call import Side, book, consenting_client, seated

CONFIG = f"server:\n  public_url: {PUBLIC_URL}\n"
CLIENT_NAME = "Kim Anwesend"
STATUS_SECONDS = 15.0


def same_browser(side: Side, api: ApiServer) -> Side:
    """Another tab of the browser of `side`, whose requests the load balancer sends to `api`."""
    other = Side(api.client())
    other.http.cookie_jar.update_cookies(
        {cookie.key: cookie.value for cookie in side.http.cookie_jar}, URL(api.url)
    )
    return other


async def status(dashboard: Side, state: str) -> dict[str, Any]:
    """The next `status` with `state` (an `invited` of the room opening may come first)."""
    try:
        async with asyncio.timeout(STATUS_SECONDS):
            while (message := await dashboard.next("status", STATUS_SECONDS))["state"] != state:
                pass
    except TimeoutError:
        raise AssertionError(
            f"the dashboard was not told {state!r} within {STATUS_SECONDS} s; "
            f"it got {dashboard.received}"
        ) from None
    return message


@contextlib.asynccontextmanager
async def presence_messages(server: RedisServer, prefix: str) -> AsyncIterator[list[bytes]]:
    """Every message on any presence channel of this test, as Redis carries it."""
    seen: list[bytes] = []
    client = redis.asyncio.Redis.from_url(server.url())
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"{prefix}presence:*")

    async def collect() -> None:
        async for message in pubsub.listen():
            seen.append(message["data"])

    task = asyncio.create_task(collect())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()
        await client.aclose()


async def test_a_dashboard_on_one_node_sees_the_client_arrive_join_and_leave_on_the_other(
    shared_redis: RedisServer, cluster_config, key_prefix: str
):
    # node-a reports more rooms: placement puts the room on node-b
    async with (
        two_nodes(cluster_config, shared_redis, CONFIG) as (a, b),
        presence_messages(shared_redis, key_prefix) as carried,
    ):
        dashboard, appointment_id, token = await book(a.api)
        client = await consenting_client(b.api, token, name=CLIENT_NAME)
        call_page = same_browser(dashboard, a.api)
        try:
            await dashboard.connect()
            await dashboard.send(type="watch")
            await seated(client, invite=token)
            assert await a.cluster.placement.owner(appointment_id) == "node-b"
            assert await status(dashboard, "waiting") == {
                "v": 1,
                "type": "status",
                "appointment": appointment_id,
                "state": "waiting",
                "client_name": CLIENT_NAME,
            }
            await seated(call_page, appointment=appointment_id)  # through node-a to node-b
            assert (await status(dashboard, "in_call"))["client_name"] == CLIENT_NAME
            await client.send(type="leave")
            left = await status(dashboard, "invited")
            assert "client_name" not in left, left
        finally:
            for side in (dashboard, client, call_page):
                await side.close()
        # the states crossed Redis, the name did not (node-a read it from the database)
        assert any(b'"in_call"' in message for message in carried), carried
        assert not any(CLIENT_NAME.encode() in message for message in carried), carried


async def test_a_dashboard_opened_later_on_another_node_is_told_the_client_waits_already(
    shared_redis: RedisServer, cluster_config
):
    # node-b reports more rooms: placement puts the room on node-a
    async with two_nodes(cluster_config, shared_redis, CONFIG, busy="node-b") as (a, b):
        therapist, appointment_id, token = await book(a.api)
        client = await consenting_client(a.api, token, name=CLIENT_NAME)
        dashboard = same_browser(therapist, b.api)
        try:
            await seated(client, invite=token)
            assert await a.cluster.placement.owner(appointment_id) == "node-a"
            await dashboard.connect()
            await dashboard.send(type="watch")
            waiting = await status(dashboard, "waiting")
            assert (waiting["appointment"], waiting["client_name"]) == (
                appointment_id,
                CLIENT_NAME,
            )
            # and what follows: the client closes the tab, the room is empty again
            await client.ws.close()
            assert (await status(dashboard, "invited"))["appointment"] == appointment_id
        finally:
            for side in (therapist, client, dashboard):
                await side.close()


async def test_a_change_during_a_redis_outage_reaches_the_dashboard_once_redis_is_back(
    private_redis: RedisServer, cluster_config
):
    fast = {"heartbeat_interval_seconds": 0.5, "heartbeat_ttl_seconds": 2}
    async with two_nodes(cluster_config, private_redis, CONFIG, **fast) as (a, b):
        dashboard, appointment_id, token = await book(a.api)
        client = await consenting_client(b.api, token, name=CLIENT_NAME)
        try:
            await dashboard.connect()
            await dashboard.send(type="watch")
            await seated(client, invite=token)
            assert await a.cluster.placement.owner(appointment_id) == "node-b"
            await status(dashboard, "waiting")

            private_redis.stop()
            async with asyncio.timeout(STATUS_SECONDS):
                while a.cluster.listening.is_set() or b.cluster.reachable:
                    await asyncio.sleep(0.05)
            # on node-b alone, with nobody to tell: node-b's presence cannot publish now
            await client.send(type="leave")
            private_redis.start()
            # node-a subscribes again and asks what it missed
            assert (await status(dashboard, "invited"))["appointment"] == appointment_id
        finally:
            for side in (dashboard, client):
                await side.close()
