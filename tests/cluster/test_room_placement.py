"""Room placement on a real redis-server: the first join claims the least loaded healthy node,
a draining node gets no new room, an owner without a listening channel is replaced, and an owner's
renewal never takes back a room another node took over."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from signaling.cluster import Cluster
from tests.redis_server import RedisServer


@pytest.fixture
async def two(shared_redis: RedisServer, cluster_config) -> AsyncIterator[tuple[Cluster, Cluster]]:
    a = Cluster(cluster_config(shared_redis, "node-a"), "node-a", load=lambda: 3)
    b = Cluster(cluster_config(shared_redis, "node-b"), "node-b", load=lambda: 1)
    await a.start()
    await b.start()
    await a.listening.wait()
    await b.listening.wait()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_the_first_join_places_the_room_on_the_least_loaded_node_and_later_ones_agree(two):
    a, b = two
    assert await a.placement.place(7) == "node-b"  # 1 room of 50 vs 3
    b_load_after = 9
    b._load = lambda: b_load_after
    await b._heartbeat()
    assert await a.placement.place(7) == "node-b"
    assert await b.placement.place(7) == "node-b"


async def test_a_draining_node_gets_no_new_room(two):
    a, b = two
    b.begin_drain()
    await b._heartbeat()
    assert await a.placement.place(8) == "node-a"


async def test_a_room_whose_owner_does_not_listen_is_taken_over(two, shared_redis, cluster_config):
    a, _ = two
    gone = Cluster(cluster_config(shared_redis, "node-gone"), "node-gone", load=lambda: 0)
    await gone.start()
    await gone.listening.wait()
    try:
        # node-gone has the fewest rooms: it takes the room
        assert await a.placement.place(9) == "node-gone"
    finally:
        await gone.close(deregister=False)  # as a killed node: the entry lingers, the channel not
    assert not await a.alive("node-gone")
    assert await a.placement.place(9) == "node-b"
    assert await a.placement.owner(9) == "node-b"


async def test_renewal_keeps_its_own_rooms_and_never_takes_one_back(two):
    a, b = two
    assert await a.placement.place(10) == "node-b"
    redis = a.link.redis
    await redis.set(a.placement.key(10), "node-a")  # node-a took it over meanwhile
    b.hosted_rooms = lambda: [10, 11]
    await b._heartbeat()
    assert await a.placement.owner(10) == "node-a"
    assert await a.placement.owner(11) == "node-b"  # a lapsed placement is renewed
    assert 0 < await redis.pttl(a.placement.key(11)) <= 6000
    await b.placement.release(10)  # not b's: stays
    assert await a.placement.owner(10) == "node-a"
    await b.placement.release(11)
    assert await a.placement.owner(11) is None
