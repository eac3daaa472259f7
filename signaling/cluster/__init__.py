"""Several nodes sharing ephemeral state in Redis (docs/scaling.md): the registry of live nodes,
their pub/sub channels, and shared login throttles.

Imported only when `cluster.redis_url` is set; without it a node is alone, exactly as before, and
redis-py is never loaded (tests/cluster/test_cluster_config.py holds that).

    cluster = Cluster(config, load=lambda: live_rooms)
    await cluster.start()            # connects (or keeps trying), heartbeats, listens
    await cluster.nodes()            # every live node's NodeInfo
    await cluster.least_loaded_healthy()
    await cluster.publish(node_id, {"type": ...})
    await cluster.broadcast({"type": ...})   # to every other node
    cluster.on_message(handler)      # messages sent to this node's channel, and broadcasts
    await cluster.subscribe(channel, handler)   # one more channel (a therapist's presence)
    await cluster.unsubscribe(channel)
    await cluster.close()            # deregisters

Placement (`rooms.py`) and the signal relay (`signal_relay.py`) are built on `publish` and
`on_message`; dashboard presence (`presence.py`) on `subscribe`. Control messages of the cluster
itself (`drain`) are handled here and never reach handlers.

All channels of a node share one pub/sub connection: what one publisher sends on several of
them arrives in the order it was sent.
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
from signaling.task_ends import stop_tasks

__all__ = ["DRAIN_MESSAGE", "Cluster", "NodeInfo", "RedisUnavailable"]

logger = logging.getLogger(LOGGER_NAME)

# The message `sprechzimmer drain` sends to a node's channel.
DRAIN_MESSAGE = "drain"
# Pub/sub messages are signaling only (offers, answers, candidates, chat control): an SDP offer is
# a few KiB. Anything far larger is not ours and is dropped unread.
MAX_MESSAGE_BYTES = 256 * 1024

# The channel every node listens on (after the prefix), for what all nodes must hear (a
# sign-out, a dashboard asking where its therapist's rooms are): rare messages, one channel. Not
# under `node:`, where a node named like it would share it.
BROADCAST_CHANNEL = "all-nodes"
# How long `subscribe` waits for Redis to confirm a new channel.
SUBSCRIBE_TIMEOUT_SECONDS = 2.0

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
        # channels beyond the node's own and the broadcast one, each with its handler
        self._topics: dict[str, MessageHandler] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: Any = None  # the live pub/sub connection, None during an outage
        self._listening_again: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._beat_now = asyncio.Event()
        # set once this node's channels are subscribed (again, after an outage): a test or the
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
        await stop_tasks(self._tasks)
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
        return await self.publish_on(self.channel(node_id), message)

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Send a JSON message to every other node (this one skips its own). Raises
        RedisUnavailable."""
        await self.publish_on(self._prefix + BROADCAST_CHANNEL, {**message, "from": self.node_id})

    async def publish_on(self, channel: str, message: dict[str, Any]) -> int:
        """Send a JSON message to any channel; returns how many subscribers got it. Raises
        RedisUnavailable."""
        redis = self.link.redis
        text = json.dumps(message, separators=(",", ":"))
        return int(await self.link.call(lambda: redis.publish(channel, text)))

    def on_message(self, handler: MessageHandler) -> None:
        """Call `handler(message)` for each message to this node's channel (not `drain`) and
        each broadcast of another node."""
        self._handlers.append(handler)

    def on_listening_again(self, callback: Callable[[], None]) -> None:
        """Call `callback()` each time this node's channels are subscribed anew (at start and
        after an outage): what was published meanwhile is lost, so ask again."""
        self._listening_again.append(callback)

    async def subscribe(self, channel: str, handler: MessageHandler) -> bool:
        """Listen on `channel` too, now and after every outage. True once Redis confirmed it:
        from then on every message published there arrives. False while Redis is away (the
        subscription is made when it is back, and `on_listening_again` tells)."""
        import redis.exceptions

        self._topics[channel] = handler
        confirmed = self._confirmed.setdefault(channel, asyncio.Event())
        pubsub = self._pubsub
        if pubsub is None:
            return False
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                await pubsub.subscribe(channel)
                await confirmed.wait()
        except (redis.exceptions.RedisError, OSError, TimeoutError):
            return False  # the listen loop notices the outage and subscribes again later
        return True

    async def unsubscribe(self, channel: str) -> None:
        import redis.exceptions

        self._topics.pop(channel, None)
        self._confirmed.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError, TimeoutError):
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                    await pubsub.unsubscribe(channel)

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
                # not wait_for, which can drop a cancel (signaling/cluster/redis_link.py)
                async with asyncio.timeout(self._interval):
                    await self._beat_now.wait()
            self._beat_now.clear()
            await self._heartbeat()

    async def _listen_loop(self) -> None:
        """Subscribe to this node's channels and stay subscribed: after an outage, subscribe
        again (a pub/sub connection does not come back by itself)."""
        import redis.exceptions

        own = self.channel(self.node_id)
        everyone = self._prefix + BROADCAST_CHANNEL
        backoff = 0.5
        while True:
            try:
                async with self.link.redis.pubsub() as pubsub:
                    # no await between taking the topics and publishing the connection: a
                    # `subscribe` either is in this list or sends its own SUBSCRIBE
                    self._pubsub = pubsub
                    initial = {everyone, own, *self._topics}
                    await pubsub.subscribe(*initial)
                    backoff = 0.5
                    async for message in pubsub.listen():
                        kind = message.get("type")
                        channel = _text(message.get("channel"))
                        if kind == "subscribe":
                            self._subscribed(channel, initial)
                        elif kind != "message":
                            continue
                        elif channel == own:
                            self._dispatch(message.get("data"), broadcast=False)
                        elif channel == everyone:
                            self._dispatch(message.get("data"), broadcast=True)
                        elif (handler := self._topics.get(channel)) is not None:
                            topic_message = _parse(message.get("data"))
                            if topic_message is not None:
                                self._deliver(topic_message, [handler])
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                pass  # the link's watcher logs the outage once; here only wait and retry
            finally:
                self._pubsub = None
            self.listening.clear()
            for confirmed in self._confirmed.values():
                confirmed.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _subscribed(self, channel: str, initial: set[str]) -> None:
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            confirmed.set()
        initial.discard(channel)
        if not initial and not self.listening.is_set():
            self.listening.set()
            for callback in self._listening_again:
                callback()

    def _dispatch(self, data: Any, broadcast: bool) -> None:
        message = _parse(data)
        if message is None:
            return
        if broadcast:
            if message.get("from") == self.node_id:
                return
        elif message.get("type") == DRAIN_MESSAGE:
            for callback in self._drain_requested:
                callback()
            return
        self._deliver(message, self._handlers)

    def _deliver(self, message: dict[str, Any], handlers: list[MessageHandler]) -> None:
        for handler in handlers:
            try:
                handler(message)
            except Exception:
                log_event(logger, "cluster_message_failed", logging.ERROR, exc_info=True)


def _parse(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, bytes | str) or len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        log_event(logger, "cluster_message_unreadable", logging.WARNING)
        return None
    return message if isinstance(message, dict) else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
