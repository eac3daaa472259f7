"""Nodes of a cluster inside the test's process: each a real app on its own socket with its own
`Cluster`, sharing one SQLite file and one redis-server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from signaling.app import create_app
from signaling.cluster import Cluster
from signaling.config import Config
from signaling.storage.sqlite import SqliteStorage
from tests.signaling.api_server import ApiServer, running


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
