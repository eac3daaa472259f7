"""Redis stopped under a running node: /readyz turns false with `redis: failed`, a sign-in gets
503 storage_unavailable with Retry-After (the throttle cannot count), one redis_unreachable line;
Redis started again: the node re-registers by itself, /readyz is ok, sign-in works, one
redis_reachable line, and no traceback anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from signaling.cluster.redis_link import RedisLink, RedisUnavailable
from tests.cluster.nodes import node
from tests.cluster.test_login_across_nodes import LIMITS, login
from tests.redis_server import RedisServer
from tests.signaling.api_server import PASSWORD, call

DEADLINE_SECONDS = 30


async def readyz(api) -> tuple[int, dict]:
    async with api.client() as client:
        status, body, _ = await call(client, "GET", "/readyz")
        return status, body


async def test_redis_stopped_and_started_under_a_running_node(
    private_redis: RedisServer, cluster_config, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    config = cluster_config(
        private_redis, "node-a", LIMITS, heartbeat_interval_seconds=0.5, heartbeat_ttl_seconds=2
    )
    async with node(config) as a:
        await a.api.add_therapist("alice")
        assert (await readyz(a.api))[0] == 200

        private_redis.stop()
        async with asyncio.timeout(DEADLINE_SECONDS):
            while (await readyz(a.api))[0] != 503:
                await asyncio.sleep(0.1)
        status, body = await readyz(a.api)
        assert body["checks"]["redis"] == "failed", body
        status, body, headers = await login(a.api, "alice", PASSWORD)
        assert (status, body["error"]["code"]) == (503, "storage_unavailable"), body
        assert int(headers["Retry-After"]) > 0

        private_redis.start()
        async with asyncio.timeout(DEADLINE_SECONDS):
            while (await readyz(a.api))[0] != 200:
                await asyncio.sleep(0.1)
            # a restarted Redis has forgotten everything: the node writes its entry again
            while "node-a" not in {n.node_id for n in await a.cluster.nodes()}:
                await asyncio.sleep(0.1)
        assert (await login(a.api, "alice", PASSWORD))[0] == 200

    events = [r.getMessage() for r in caplog.records]
    assert events.count("redis_unreachable") == 1, events
    assert events.count("redis_reachable") == 2, events  # at start, and after the restart
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    assert private_redis.password not in caplog.text


async def test_the_link_closes_at_once_right_after_a_command_failed_while_redis_is_away(
    private_redis: RedisServer,
):
    link = RedisLink(private_redis.url(), interval=0.5)
    await link.start()
    private_redis.stop()
    async with asyncio.timeout(DEADLINE_SECONDS):
        while link.reachable:
            await asyncio.sleep(0.05)
    # the watcher now waits out its back-off
    # as a node's close does: its deregistration fails, which wakes the watcher, and the link
    # is closed in the same turn of the event loop (Python 3.11's wait_for lost that cancel)
    with contextlib.suppress(RedisUnavailable):
        await link.call(link.redis.ping)
    closing = asyncio.create_task(link.close())
    done, _ = await asyncio.wait({closing}, timeout=DEADLINE_SECONDS)
    assert done, "the link's watcher ignored its cancellation: close() never returned"
