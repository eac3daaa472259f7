"""The node registry in Redis: one key per node, rewritten every heartbeat, expiring when the node
stops writing it.

`{prefix}node:{id}` holds a JSON `NodeInfo`: where its media is (public IP and UDP slice), its
live rooms against its capacity, and whether it is draining. The key is written with `SET … PX
ttl`, so a node that dies (kill -9, power cut, a partition) is gone from `nodes()` at most one TTL
after its last heartbeat, with nobody having to notice. Nothing personal is in it: no appointment,
no name, no address of a participant.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signaling.cluster.redis_link import RedisLink

__all__ = ["NodeInfo", "NodeRegistry", "least_loaded"]

# SCAN's COUNT hint: the registry holds one key per node, a few hundred at most.
SCAN_BATCH = 500


@dataclass(frozen=True)
class NodeInfo:
    """What a node says about itself in each heartbeat."""

    node_id: str
    # The address browsers send media to (media.public_ip, else the first listen address, else
    # None when the relay gathers every interface).
    media_address: str | None
    udp_port_min: int
    udp_port_max: int
    rooms: int
    capacity: int
    draining: bool

    @property
    def load(self) -> float:
        return self.rooms / self.capacity if self.capacity else 1.0

    @property
    def takes_rooms(self) -> bool:
        return not self.draining and self.rooms < self.capacity

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> NodeInfo | None:
        """None for an entry this version cannot read (another version mid-upgrade, or junk)."""
        try:
            data: Any = json.loads(text)
            return cls(
                node_id=str(data["node_id"]),
                media_address=data["media_address"],
                udp_port_min=int(data["udp_port_min"]),
                udp_port_max=int(data["udp_port_max"]),
                rooms=int(data["rooms"]),
                capacity=int(data["capacity"]),
                draining=bool(data["draining"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


def least_loaded(nodes: list[NodeInfo]) -> NodeInfo | None:
    """The node that should take a new room: not draining, not full, the lowest share of its
    capacity in use; ties go to the fewest rooms, then the node id, so every node picks alike."""
    candidates = [node for node in nodes if node.takes_rooms]
    if not candidates:
        return None
    return min(candidates, key=lambda node: (node.load, node.rooms, node.node_id))


class NodeRegistry:
    """Reads and writes the registry's keys; the heartbeat loop is the `Cluster`'s."""

    def __init__(self, link: RedisLink, prefix: str, ttl_seconds: float) -> None:
        self._link = link
        self._prefix = prefix
        self._ttl_ms = round(ttl_seconds * 1000)

    def key(self, node_id: str) -> str:
        return f"{self._prefix}node:{node_id}"

    async def write(self, info: NodeInfo) -> None:
        redis = self._link.redis
        await self._link.call(
            lambda: redis.set(self.key(info.node_id), info.to_json(), px=self._ttl_ms)
        )

    async def remove(self, node_id: str) -> None:
        redis = self._link.redis
        await self._link.call(lambda: redis.delete(self.key(node_id)))

    async def get(self, node_id: str) -> NodeInfo | None:
        redis = self._link.redis
        text = await self._link.call(lambda: redis.get(self.key(node_id)))
        return NodeInfo.from_json(text) if text is not None else None

    async def nodes(self) -> list[NodeInfo]:
        """Every live node, sorted by id."""
        redis = self._link.redis
        pattern = f"{_glob_escape(self._prefix)}node:*"

        async def scan() -> list[Any]:
            keys = [key async for key in redis.scan_iter(match=pattern, count=SCAN_BATCH)]
            return await redis.mget(keys) if keys else []

        values = await self._link.call(scan)
        nodes = [NodeInfo.from_json(value) for value in values if value is not None]
        return sorted((node for node in nodes if node is not None), key=lambda n: n.node_id)


def _glob_escape(text: str) -> str:
    # SCAN MATCH is a glob; the prefix may hold none of its specials (config checks the
    # characters), but escaping costs nothing and keeps that true if the check ever loosens
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
