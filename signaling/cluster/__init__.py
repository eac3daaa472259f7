"""Several nodes sharing ephemeral state in Redis (docs/scaling.md): the registry of live nodes,
their pub/sub channels, and shared login throttles.

Imported only when `cluster.redis_url` is set; without it a node is alone, exactly as before, and
redis-py is never loaded (tests/cluster/test_cluster_config.py holds that).

    cluster = Cluster(config, load=lambda: live_rooms)
    await cluster.start()            # connects (or keeps trying), heartbeats, listens
    await cluster.nodes()            # every live node's NodeInfo
    await cluster.least_loaded_healthy()
    await cluster.publish(node_id, {"type": ...})
    cluster.on_message(handler)      # messages sent to this node's channel
    await cluster.close()            # deregisters

What part 2b plugs in here: placement of a room at its first join (`least_loaded_healthy`, then a
`SET NX` of the room's key), and the signal relay (`publish` to the room's node, `on_message` on
it). Control messages of the cluster itself (`drain`) are handled here and never reach handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from signaling.cluster.redis_link import RedisLink, RedisUnavailable
from signaling.cluster.registry import NodeInfo, NodeRegistry, least_loaded
from signaling.config import Config
from signaling.logs import LOGGER_NAME, log_event

__all__ = ["DRAIN_MESSAGE", "Cluster", "NodeInfo", "RedisUnavailable"]

logger = logging.getLogger(LOGGER_NAME)

# The message `sprechzimmer drain` sends to a node's channel.
DRAIN_MESSAGE = "drain"
# Pub/sub messages are signaling only (offers, answers, candidates, chat control): an SDP offer is
# a few KiB. Anything far larger is not ours and is dropped unread.
MAX_MESSAGE_BYTES = 256 * 1024

MessageHandler = Callable[[dict[str, Any]], None]


class Cluster:
    """This node's membership: its heartbeat in the registry, its channel, and the others'."""

    def __init__(self, config: Config, node_id: str, load: Callable[[], int]) -> None:
        cluster = config.cluster
        assert cluster.redis_url is not None, "Cluster needs cluster.redis_url"
        self.node_id = node_id
        self._config = config
        self._load = load
        self._prefix = cluster.key_prefix
        self._interval = cluster.heartbeat_interval_seconds
        self.link = RedisLink(cluster.redis_url, cluster.heartbeat_interval_seconds)
        self.registry = NodeRegistry(self.link, self._prefix, cluster.heartbeat_ttl_seconds)
        self.draining = False
        self._drain_requested: list[Callable[[], None]] = []
        self._handlers: list[MessageHandler] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._beat_now = asyncio.Event()
        # set once this node's channel is subscribed (again, after an outage): a test or 2b's
        # relay can wait for it instead of sleeping
        self.listening = asyncio.Event()
        # the rooms this node hosts, renewed in the placement at every heartbeat (set by the app)
        self.hosted_rooms: Callable[[], list[int]] = list
        from signaling.cluster.rooms import RoomPlacement

        self.placement = RoomPlacement(self, self._prefix, cluster.heartbeat_ttl_seconds)

    # --- life cycle

    async def start(self) -> None:
        """Connect, register and listen. Redis being down is no error: the node starts, reports
        not ready, and registers as soon as Redis answers."""
        self.link.on_change(self._reachability_changed)
        await self.link.start()
        if self.link.reachable:
            await self._heartbeat()
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._listen_loop()),
        ]

    async def close(self, deregister: bool = True) -> None:
        """Stop the heartbeat and leave the registry at once (not one TTL later). With
        `deregister=False` the entry is left to expire, as a killed node's would be."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if deregister:
            with contextlib.suppress(RedisUnavailable):
                await self.registry.remove(self.node_id)
        await self.link.close()

    @property
    def reachable(self) -> bool:
        """Whether Redis answers: without it this node must not take a new room."""
        return self.link.reachable

    def begin_drain(self) -> None:
        """No new rooms here: the next heartbeat (at once) says so to every node."""
        if not self.draining:
            self.draining = True
            log_event(logger, "node_draining", node=self.node_id)
            self._beat_now.set()

    def on_drain_requested(self, callback: Callable[[], None]) -> None:
        """`sprechzimmer drain` asked this node to drain (as SIGTERM does)."""
        self._drain_requested.append(callback)

    # --- the registry

    def info(self) -> NodeInfo:
        media = self._config.media
        address = media.public_ip or (media.listen_addresses[0] if media.listen_addresses else None)
        return NodeInfo(
            node_id=self.node_id,
            media_address=address,
            udp_port_min=media.udp_port_min,
            udp_port_max=media.udp_port_max,
            rooms=self._load(),
            capacity=self._config.limits.max_rooms,
            draining=self.draining,
        )

    async def nodes(self) -> list[NodeInfo]:
        """Every live node (this one included once it has registered). Raises RedisUnavailable."""
        return await self.registry.nodes()

    async def least_loaded_healthy(self) -> NodeInfo | None:
        """The node that should take a new room, or None when every node is draining or full.
        Raises RedisUnavailable."""
        return least_loaded(await self.nodes())

    async def alive(self, node_id: str) -> bool:
        """Whether `node_id` listens on its channel. A killed process's pub/sub connection is
        closed by its kernel, so this turns false at once, long before its registry entry
        expires. Raises RedisUnavailable."""
        redis = self.link.redis
        counts = await self.link.call(lambda: redis.pubsub_numsub(self.channel(node_id)))
        return bool(counts) and int(counts[0][1]) > 0

    # --- pub/sub

    def channel(self, node_id: str) -> str:
        return f"{self._prefix}node:{node_id}"

    async def publish(self, node_id: str, message: dict[str, Any]) -> int:
        """Send a JSON message to a node's channel; returns how many subscribers got it (0: the
        node is not listening, e.g. dead). Raises RedisUnavailable."""
        redis = self.link.redis
        text = json.dumps(message, separators=(",", ":"))
        return int(await self.link.call(lambda: redis.publish(self.channel(node_id), text)))

    def on_message(self, handler: MessageHandler) -> None:
        """Call `handler(message)` for each message to this node's channel (not `drain`)."""
        self._handlers.append(handler)

    # --- loops

    def _reachability_changed(self, reachable: bool) -> None:
        if reachable:
            # re-register at once: a restarted Redis has forgotten this node
            self._beat_now.set()

    async def _heartbeat(self) -> None:
        # on failure the link has logged the change of state; the next beat tries again
        with contextlib.suppress(RedisUnavailable):
            await self.registry.write(self.info())
            await self.placement.renew(self.hosted_rooms())

    async def _heartbeat_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), self._interval)
            self._beat_now.clear()
            await self._heartbeat()

    async def _listen_loop(self) -> None:
        """Subscribe to this node's channel and stay subscribed: after an outage, subscribe
        again (a pub/sub connection does not come back by itself)."""
        import redis.exceptions

        channel = self.channel(self.node_id)
        backoff = 0.5
        while True:
            try:
                async with self.link.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(channel)
                    self.listening.set()
                    backoff = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._dispatch(message.get("data"))
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                pass  # the link's watcher logs the outage once; here only wait and retry
            self.listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _dispatch(self, data: Any) -> None:
        if not isinstance(data, bytes | str) or len(data) > MAX_MESSAGE_BYTES:
            return
        try:
            message = json.loads(data)
        except ValueError:
            log_event(logger, "cluster_message_unreadable", logging.WARNING)
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == DRAIN_MESSAGE:
            for callback in self._drain_requested:
                callback()
            return
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:
                log_event(logger, "cluster_message_failed", logging.ERROR, exc_info=True)
