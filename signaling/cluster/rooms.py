"""Room placement: which node hosts an appointment's room.

`{prefix}room:{appointment id}` holds the owning node's id. The first join places the room on the
least loaded healthy node with `SET NX`, so two joins racing on two nodes agree on one owner. The
owner renews the key (`PX` = the heartbeat TTL) at every heartbeat for each room it hosts, so the
placement of a killed node's rooms expires with its registry entry; sooner than that, a join that
finds the owner's channel without a subscriber (a killed process's pub/sub connection is closed by
the kernel at once) takes the room over. Only ids are stored: no name, no address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signaling.cluster.registry import least_loaded

if TYPE_CHECKING:
    from signaling.cluster import Cluster

__all__ = ["NoNodeForRoom", "RoomPlacement"]

# Replace the owner only if it is still the dead one we saw: another join may have re-placed the
# room in between, and its choice must stand.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# Renew only a placement that is ours or has lapsed: a room another node took over (this node
# looked dead to a rejoin, e.g. during a long pause of its event loop) stays with that node.
_RENEW = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Delete only our own placement: a node that hosted the room before us must not delete ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class NoNodeForRoom(Exception):
    """Every node is draining or full."""


class RoomPlacement:
    def __init__(self, cluster: Cluster, prefix: str, ttl_seconds: float) -> None:
        self._cluster = cluster
        self._prefix = prefix
        self._ttl_ms = round(ttl_seconds * 1000)

    def key(self, appointment_id: int) -> str:
        return f"{self._prefix}room:{appointment_id}"

    async def owner(self, appointment_id: int) -> str | None:
        """The node hosting the room now, or None. Raises RedisUnavailable."""
        redis = self._cluster.link.redis
        value = await self._cluster.link.call(lambda: redis.get(self.key(appointment_id)))
        return _text(value)

    async def place(self, appointment_id: int) -> str:
        """The node that hosts the room: its live owner, or the least loaded healthy node, which
        this call claims it for. Raises RedisUnavailable, NoNodeForRoom."""
        link = self._cluster.link
        redis = link.redis
        key = self.key(appointment_id)
        for _ in range(3):
            owner = _text(await link.call(lambda: redis.get(key)))
            if owner is not None:
                if await self._cluster.alive(owner):
                    return owner
                choice = await self._choose()
                taken = await link.call(
                    lambda owner=owner, choice=choice: redis.eval(
                        _TAKE_OVER, 1, key, owner, choice, str(self._ttl_ms)
                    )
                )
                if int(taken):
                    return choice
                continue
            choice = await self._choose()
            if await link.call(
                lambda choice=choice: redis.set(key, choice, nx=True, px=self._ttl_ms)
            ):
                return choice
        # three rounds of others re-placing the room under us: take what stands now
        owner = _text(await link.call(lambda: redis.get(key)))
        if owner is None:
            raise NoNodeForRoom
        return owner

    async def claim(self, appointment_id: int) -> bool:
        """Hold the room's placement for this node if nobody holds it (the sweep of dead nodes'
        rooms: a join arriving meanwhile is seated here). Raises RedisUnavailable."""
        redis = self._cluster.link.redis
        node = self._cluster.node_id
        key = self.key(appointment_id)
        return bool(
            await self._cluster.link.call(lambda: redis.set(key, node, nx=True, px=self._ttl_ms))
        )

    async def renew(self, appointment_ids: list[int]) -> None:
        """This node still hosts these rooms. Raises RedisUnavailable."""
        if not appointment_ids:
            return
        redis = self._cluster.link.redis
        node = self._cluster.node_id

        async def renew_all() -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for appointment_id in appointment_ids:
                    pipe.eval(_RENEW, 1, self.key(appointment_id), node, str(self._ttl_ms))
                await pipe.execute()

        await self._cluster.link.call(renew_all)

    async def release(self, appointment_id: int) -> None:
        """The room ended here. Raises RedisUnavailable."""
        redis = self._cluster.link.redis
        node = self._cluster.node_id
        await self._cluster.link.call(
            lambda: redis.eval(_RELEASE, 1, self.key(appointment_id), node)
        )

    async def _choose(self) -> str:
        # A killed node's registry entry lingers up to one TTL, with its last (low) room count:
        # skip nodes whose channel has no listener, or every rejoin would land on the dead one.
        nodes = await self._cluster.nodes()
        while (node := least_loaded(nodes)) is not None:
            if node.node_id == self._cluster.node_id or await self._cluster.alive(node.node_id):
                return node.node_id
            nodes = [other for other in nodes if other.node_id != node.node_id]
        raise NoNodeForRoom


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
