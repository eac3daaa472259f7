"""A rejoin into a call that lives on this node gets in while the node drains or Redis is down;
a join that needs the placement gets a retryable answer during a Redis outage, never the final
`shutting_down`."""

from __future__ import annotations

import asyncio

from signaling.app import DRAIN
from tests.cluster.nodes import node
from tests.ports import PortRange
from tests.redis_server import RedisServer
from tests.signaling.api_server import PUBLIC_URL, call, media_config
from tests.signaling.test_ws_call import Side, book, close_code, seated

DEADLINE_SECONDS = 30.0


def extra(udp_ports: PortRange) -> str:
    return f"server:\n  public_url: {PUBLIC_URL}\n" + media_config(udp_ports)


async def test_a_redis_outage_lets_rejoins_of_live_rooms_in_and_asks_new_rooms_to_retry(
    private_redis: RedisServer, cluster_config, udp_ports: PortRange
):
    async with node(cluster_config(private_redis, "node-a", extra(udp_ports))) as a:
        await a.api.add_therapist("alice")
        therapist, live_id, _ = await book(a.api)
        _, other_id, _ = await book(a.api)
        second = Side(therapist.http)
        try:
            assert (await seated(therapist, appointment=live_id))["seat"] == "therapist"
            assert await a.cluster.placement.owner(live_id) == "node-a"
            private_redis.stop()
            try:
                async with asyncio.timeout(DEADLINE_SECONDS):
                    while True:
                        status, _, _ = await call(a.api.client(), "GET", "/readyz")
                        if status == 503 and not a.cluster.reachable:
                            break
                        await asyncio.sleep(0.1)
                # the same person again (a reload): the call is here, so it is found
                second_joined = await seated(second, appointment=live_id)
                assert second_joined["seat"] == "therapist", second.received
                # a room that is nowhere yet needs Redis: "try again", not "shutting down"
                await second.send(type="leave")
                await second.send(type="join", appointment=other_id)
                error = await second.next("error")
                assert error["code"] == "storage_unavailable", error
                assert await close_code(second) == 1011
            finally:
                private_redis.start()
        finally:
            await therapist.close()
            await second.close()


async def test_a_draining_node_seats_a_rejoin_into_its_live_call(
    shared_redis: RedisServer, cluster_config, udp_ports: PortRange
):
    async with node(cluster_config(shared_redis, "node-a", extra(udp_ports))) as a:
        await a.api.add_therapist("alice")
        therapist, live_id, _ = await book(a.api)
        again = Side(therapist.http)
        try:
            await seated(therapist, appointment=live_id)
            a.app[DRAIN].begin()
            a.cluster.begin_drain()
            joined = await seated(again, appointment=live_id)
            assert joined["seat"] == "therapist", again.received
            # the older socket was replaced by the rejoin, as on a node that is not draining
            assert (await therapist.next("error"))["code"] == "replaced"
        finally:
            await therapist.close()
            await again.close()
