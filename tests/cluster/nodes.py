"""Nodes of a cluster inside the test's process: each a real app on its own socket with its own
`Cluster`, sharing one SQLite file and one redis-server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from signaling.app import create_app
from signaling.cluster import Cluster
from signaling.config import Config
from signaling.storage.sqlite import SqliteStorage
from tests.redis_server import RedisServer
from tests.signaling.api_server import ApiServer, running

# How long a node may take to confirm its pub/sub subscription.
LISTENING_SECONDS = 15.0


@dataclass
class Node:
    api: ApiServer
    cluster: Cluster
    app: web.Application


@contextlib.asynccontextmanager
async def node(config: Config, rooms: int = 0) -> AsyncIterator[Node]:
    """`rooms`: the load the node reports, so a test can have placement choose the other."""
    assert config.cluster.node_id is not None
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    cluster = Cluster(config, config.cluster.node_id, load=lambda: rooms)
    try:
        await cluster.start()
        app = create_app(config, storage, cluster=cluster)
        async with running(config, storage, app) as url:
            yield Node(
                ApiServer(url, config, storage, config.storage.sqlite_path, app), cluster, app
            )
    finally:
        await cluster.close()
        await storage.close()


async def listening(*nodes: Node) -> None:
    """Until each node's pub/sub connection is subscribed (messages before it are lost)."""
    async with asyncio.timeout(LISTENING_SECONDS):
        for each in nodes:
            await each.cluster.listening.wait()


@contextlib.asynccontextmanager
async def two_nodes(
    cluster_config: Callable[..., Config],
    redis: RedisServer,
    extra: str,
    busy: str | None = "node-a",
    **cluster: object,
) -> AsyncIterator[tuple[Node, Node]]:
    """node-a and node-b on `redis`, both listening, with alice's account. `busy` reports five
    rooms, so placement puts new rooms on the other node (None: both report none)."""
    async with (
        node(cluster_config(redis, "node-a", extra, **cluster), rooms=5 * (busy == "node-a")) as a,
        node(cluster_config(redis, "node-b", extra, **cluster), rooms=5 * (busy == "node-b")) as b,
    ):
        await listening(a, b)
        await a.api.add_therapist("alice")
        yield a, b
