"""The cluster view in any node's metrics: nodes alive and each node's rooms, capacity and
draining flag, labelled by node id only; no view (rather than zero nodes) while Redis is down."""

from __future__ import annotations

import re

from signaling.metrics import METRICS
from tests.cluster.nodes import node
from tests.redis_server import RedisServer


def gauge(text: str, name: str, node_id: str | None = None) -> float | None:
    labels = f'{{node="{node_id}"}}' if node_id is not None else ""
    match = re.search(rf"^sprechzimmer_{name}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


async def test_each_nodes_metrics_show_every_live_node_and_its_rooms(
    private_redis: RedisServer, cluster_config
):
    async with (
        node(cluster_config(private_redis, "node-a")) as a,
        node(cluster_config(private_redis, "node-b")) as b,
    ):
        b.cluster.begin_drain()
        text = ""
        for _ in range(100):  # b's registry entry says draining at its next (immediate) beat
            text = (await a.app[METRICS].scrape()).decode()
            if gauge(text, "cluster_node_draining", "node-b") == 1:
                break
            await b.cluster.listening.wait()
        assert gauge(text, "cluster_nodes_alive") == 2, text
        assert gauge(text, "cluster_node_rooms", "node-a") == 0
        assert gauge(text, "cluster_node_capacity", "node-b") == 50
        assert gauge(text, "cluster_node_draining", "node-a") == 0
        assert gauge(text, "cluster_node_draining", "node-b") == 1, text
        # labels: the node ids and nothing else
        labels = set(re.findall(r"^sprechzimmer_cluster_\w+\{(\w+)=", text, re.M))
        assert labels == {"node"}

        private_redis.stop()
        try:
            text = (await a.app[METRICS].scrape()).decode()
            assert gauge(text, "cluster_nodes_alive") is None, text
        finally:
            private_redis.start()  # the nodes deregister on the way out, as in production
