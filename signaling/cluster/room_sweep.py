"""The sweep of rooms whose node died and whose people never came back.

A node alone resets `waiting` and `in_call` to `scheduled` at start (relay_setup.live_media): no
room outlives its process. In a cluster the database is shared, so a node must not do that; the
room of a killed node is re-placed by the next join instead. When nobody joins again, the
appointment would stay `in_call` (shown so on the dashboard, edits and new links refused) until
it ended or its validity ran out. So every node sweeps:

- every `interval` it reads the live appointments from the database and, for each, whether the
  room has a placement (`room:{id}`; a live node renews its rooms' keys every heartbeat, a dead
  node's lapse within one heartbeat TTL);
- an appointment without a placement and without a room here for `cluster.dead_room_grace_seconds`
  running is swept: this node claims the placement (`SET NX`, so a rejoin arriving meanwhile is
  seated here), resets the state with a conditional UPDATE (of two nodes sweeping, one changes
  the row), tells the dashboards (`invited`), and gives the placement back.

A room whose state was reset under it while it was live here (a join won the race with the
sweep, or this node could not renew its placement during an outage and another node swept it)
writes its state again: at once in the first case, when Redis answers again in the second.

So a room of a dead node is back to `scheduled` at most heartbeat TTL + grace + 2 x interval
after the node died (defaults: 6 + 30 + 20 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from signaling.cluster.redis_link import RedisUnavailable
from signaling.logs import LOGGER_NAME, log_event
from signaling.storage import Appointment, StorageFailure
from signaling.task_ends import BackgroundTasks

if TYPE_CHECKING:
    from signaling.cluster import Cluster
    from signaling.consultations import ConsultationRegistry
    from signaling.storage import Storage

__all__ = ["RoomSweep", "sweep_interval"]

logger = logging.getLogger(LOGGER_NAME)


def sweep_interval(heartbeat_interval: float, grace: float) -> float:
    """A third of the grace: the bound stays near the grace itself, and the database is asked
    every 10 s by default, not at every heartbeat."""
    return max(heartbeat_interval, grace / 3)


class RoomSweep:
    def __init__(
        self,
        cluster: Cluster,
        storage: Storage,
        registry: ConsultationRegistry,
        grace_seconds: float,
        interval_seconds: float,
    ) -> None:
        self._cluster = cluster
        self._storage = storage
        self._registry = registry
        self._grace = grace_seconds
        self._interval = interval_seconds
        # appointment id -> time.monotonic() when this node first saw it live without a room
        self._orphaned_since: dict[int, float] = {}
        # told of each appointment swept (the dashboards' presence)
        self.on_swept: list[Callable[[Appointment], None]] = []
        self._tasks = BackgroundTasks()
        cluster.link.on_change(self._reachability_changed)

    def start(self) -> None:
        self._tasks.spawn(self._sweep_periodically())

    async def close(self) -> None:
        await self._tasks.stop()

    async def sweep_once(self) -> list[int]:
        """One pass; returns the appointments this node swept."""
        try:
            live = await self._storage.live_appointments()
        except StorageFailure:
            return []  # the storage logged it; the next pass tries again
        now = time.monotonic()
        orphans: set[int] = set()
        swept: list[int] = []
        try:
            for appointment in live:
                if self._hosted_here(appointment.id):
                    continue
                if await self._cluster.placement.owner(appointment.id) is not None:
                    continue
                orphans.add(appointment.id)
                since = self._orphaned_since.setdefault(appointment.id, now)
                if now - since >= self._grace and await self._sweep(appointment):
                    swept.append(appointment.id)
        except RedisUnavailable:
            return swept  # nothing can be told apart during an outage; keep what was seen
        self._orphaned_since = {
            key: since for key, since in self._orphaned_since.items() if key in orphans
        }
        return swept

    async def _sweep(self, appointment: Appointment) -> bool:
        placement = self._cluster.placement
        if not await placement.claim(appointment.id):
            return False  # a join placed the room just now, or another node sweeps it
        try:
            if not await self._storage.reset_live_appointment(appointment.id):
                return False  # another node swept it first, or it ended meanwhile
            live = self._registry.get(appointment.id)
            if live is not None and not live.ended:
                # a rejoin reached this node (the placement's) while the state was reset
                await live.store_state_again()
                return False
        except StorageFailure:
            return False
        finally:
            if not self._hosted_here(appointment.id):
                await placement.release(appointment.id)
        log_event(logger, "dead_room_swept", appointment=appointment.id)
        for callback in self.on_swept:
            callback(appointment)
        return True

    def _hosted_here(self, appointment_id: int) -> bool:
        live = self._registry.get(appointment_id)
        return live is not None and not live.ended

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep_once()
            except Exception as exc:
                log_event(logger, "room_sweep_failed", logging.ERROR, error=type(exc).__name__)

    def _reachability_changed(self, reachable: bool) -> None:
        # Redis answers again: while it did not, this node could not renew its rooms'
        # placement, and another node may have swept them
        if reachable and self._registry.active:
            self._tasks.spawn(self._store_states_again())

    async def _store_states_again(self) -> None:
        for consultation in self._registry.active:
            try:
                await consultation.store_state_again()
            except Exception as exc:
                log_event(
                    logger, "room_state_not_rewritten", logging.ERROR, error=type(exc).__name__
                )
