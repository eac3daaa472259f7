"""The node registry and pub/sub on a real redis-server: nodes see each other with their load,
placement picks the least loaded healthy node, a node that stops heartbeating expires, and a
message published to a node's channel reaches it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from signaling.cluster import Cluster
from signaling.config import Config
from tests.redis_server import RedisServer

DEADLINE_SECONDS = 15


@contextlib.asynccontextmanager
async def running(config: Config, rooms: Callable[[], int] = lambda: 0) -> AsyncIterator[Cluster]:
    assert config.cluster.node_id is not None
    cluster = Cluster(config, config.cluster.node_id, load=rooms)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.close()


async def until(condition: Callable[[], Any], what: str) -> None:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while not await condition():
            await asyncio.sleep(0.05)
    # (a TimeoutError here means: `what` did not happen within the deadline)
    del what


async def test_nodes_see_each_other_with_their_rooms_capacity_and_media_address(
    shared_redis: RedisServer, cluster_config
):
    a = cluster_config(shared_redis, "node-a", "media:\n  public_ip: 192.0.2.10")
    b = cluster_config(shared_redis, "node-b", "limits:\n  max_rooms: 7")
    async with running(a, rooms=lambda: 3) as first, running(b):
        nodes = {node.node_id: node for node in await first.nodes()}
        assert set(nodes) == {"node-a", "node-b"}
        assert (nodes["node-a"].rooms, nodes["node-a"].media_address) == (3, "192.0.2.10")
        assert (nodes["node-b"].rooms, nodes["node-b"].capacity) == (0, 7)
        assert not nodes["node-a"].draining


async def test_least_loaded_healthy_skips_draining_and_full_nodes(
    shared_redis: RedisServer, cluster_config
):
    rooms = {"node-a": 1, "node-b": 5, "node-c": 2}
    configs = [cluster_config(shared_redis, node_id) for node_id in rooms]
    async with (
        running(configs[0], lambda: rooms["node-a"]) as a,
        running(configs[1], lambda: rooms["node-b"]),
        running(configs[2], lambda: rooms["node-c"]),
    ):
        assert (await a.least_loaded_healthy()).node_id == "node-a"
        a.begin_drain()

        async def a_draining() -> bool:
            return any(n.node_id == "node-a" and n.draining for n in await a.nodes())

        await until(a_draining, "node-a's entry never said draining")
        assert (await a.least_loaded_healthy()).node_id == "node-c"


async def test_a_node_that_stops_heartbeating_is_gone_within_its_ttl(
    shared_redis: RedisServer, cluster_config
):
    config = cluster_config(
        shared_redis, "node-dies", heartbeat_interval_seconds=0.2, heartbeat_ttl_seconds=1
    )
    watcher_config = cluster_config(shared_redis, "node-watches")
    async with running(watcher_config) as watcher:
        dying = Cluster(config, "node-dies", load=lambda: 0)
        await dying.start()
        assert "node-dies" in {n.node_id for n in await watcher.nodes()}
        # as kill -9 would: the heartbeat stops and nobody deletes the key
        await dying.close(deregister=False)

        async def gone() -> bool:
            return "node-dies" not in {n.node_id for n in await watcher.nodes()}

        await until(gone, "the dead node's entry did not expire")


async def test_a_message_published_to_a_node_reaches_its_handler(
    shared_redis: RedisServer, cluster_config
):
    async with (
        running(cluster_config(shared_redis, "node-a")) as a,
        running(cluster_config(shared_redis, "node-b")) as b,
    ):
        received: asyncio.Queue[dict] = asyncio.Queue()
        b.on_message(received.put_nowait)
        async with asyncio.timeout(DEADLINE_SECONDS):
            await b.listening.wait()
        assert await a.publish("node-b", {"type": "signal", "body": "offer"}) == 1
        async with asyncio.timeout(DEADLINE_SECONDS):
            assert await received.get() == {"type": "signal", "body": "offer"}


async def test_a_broadcast_reaches_every_other_node_but_not_its_sender(
    shared_redis: RedisServer, cluster_config
):
    async with (
        running(cluster_config(shared_redis, "node-a")) as a,
        running(cluster_config(shared_redis, "node-b")) as b,
        running(cluster_config(shared_redis, "node-c")) as c,
    ):
        queues: dict[str, asyncio.Queue[dict]] = {}
        for each in (a, b, c):
            queues[each.node_id] = asyncio.Queue()
            each.on_message(queues[each.node_id].put_nowait)
        async with asyncio.timeout(DEADLINE_SECONDS):
            for each in (a, b, c):
                await each.listening.wait()
        await a.broadcast({"type": "sign-out", "therapist": 7})
        async with asyncio.timeout(DEADLINE_SECONDS):
            for other in ("node-b", "node-c"):
                got = await queues[other].get()
                assert got == {"type": "sign-out", "therapist": 7, "from": "node-a"}
        # one pub/sub connection per node keeps order: had node-a's handler been given its own
        # broadcast, it would come before this later message to node-a's channel
        await b.publish("node-a", {"type": "marker"})
        async with asyncio.timeout(DEADLINE_SECONDS):
            assert await queues["node-a"].get() == {"type": "marker"}


async def test_a_node_closes_within_seconds_right_after_it_started(
    shared_redis: RedisServer, cluster_config
):
    # Its heartbeat is then in the middle of a Redis command, and redis-py can drop the cancel
    # of a command whose send has just completed (asyncio.wait_for on Python 3.11): close()
    # waited for the heartbeat forever in 4 of 5 tries here.
    config = cluster_config(shared_redis, "node-a")
    for _ in range(5):
        cluster = Cluster(config, "node-a", load=lambda: 0)
        await cluster.start()
        await cluster.nodes()
        # not under a timeout: cancelling a close() that waits for such a task hangs as well
        done, _ = await asyncio.wait(
            {asyncio.create_task(cluster.close())}, timeout=DEADLINE_SECONDS
        )
        assert done, f"close() did not return within {DEADLINE_SECONDS} s"


async def test_closing_a_node_removes_it_from_the_registry_at_once(
    shared_redis: RedisServer, cluster_config
):
    async with running(cluster_config(shared_redis, "node-a")) as a:
        async with running(cluster_config(shared_redis, "node-b")):
            assert len(await a.nodes()) == 2
        assert [n.node_id for n in await a.nodes()] == ["node-a"]


@pytest.mark.parametrize("url", ["http://x", "sqlite:///tmp/x"])
def test_a_redis_url_of_another_scheme_is_refused_without_echoing_it(tmp_path, url):
    from signaling.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text(f"cluster:\n  redis_url: '{url}'\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert "cluster.redis_url: must be a redis://" in str(error.value)
    assert url not in str(error.value)
