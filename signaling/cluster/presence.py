"""Dashboard presence across nodes: a therapist's dashboard on one node hears of that therapist's
rooms on every other node as it hears of the rooms on its own.

On one node, `ConsultationRegistry` tells the therapist's dashboards (`watch`) of each change of a
room's status. In a cluster the room's node also publishes each change on the therapist's
presence channel, `{prefix}presence:{therapist id}`. A node subscribes to that channel while one
of its sockets watches the therapist and passes what arrives to those sockets as `status`. A new
dashboard asks every node (a broadcast) for the therapist's rooms it hosts; the answers come on
the same channel, asked for only once the subscription is confirmed, so no change falls between
the answer and the stream. What is published during an outage is lost, so when a node listens
again it asks again for every therapist it watches and tells again what its own rooms are:
whichever node comes back first, one of the two reaches the other.

What travels: the therapist's internal id (in the channel's name), the appointment id, the state
and the room's node id; never the client's name. The dashboard's node reads the name from the
database, as its own appointment list does.

    room's node -> presence:{therapist}   {"type": "presence.status", "node", "appointment", "state"}
    dashboard's node -> every node         {"type": "presence.ask", "therapist"}

One task publishes, in the order the changes happened; one task handles subscriptions and what
arrives, in order, so a `waiting` cannot overtake the `in_call` after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from signaling.cluster.redis_link import RedisUnavailable
from signaling.logs import LOGGER_NAME, log_event
from signaling.storage import StorageFailure
from signaling.task_ends import stop_tasks

if TYPE_CHECKING:
    from signaling.cluster import Cluster
    from signaling.consultations import Consultation, ConsultationRegistry
    from signaling.storage import Storage

__all__ = ["ASK", "STATUS", "Presence"]

logger = logging.getLogger(LOGGER_NAME)

STATUS = "presence.status"
ASK = "presence.ask"
# what `Consultation.status` can say; anything else on the channel is not ours
_STATES = frozenset({"invited", "waiting", "in_call", "ended"})
# the states in which the dashboard names the client (ConsultationRegistry._status)
_NAMED = frozenset({"waiting", "in_call"})


class Presence:
    """Both sides on this node: publishing its rooms' changes, and its dashboards' subscriptions."""

    def __init__(
        self, cluster: Cluster, prefix: str, storage: Storage, registry: ConsultationRegistry
    ) -> None:
        self._cluster = cluster
        self._prefix = prefix
        self._storage = storage
        self._registry = registry
        self._outbox: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._subscribed: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        registry.on_status.append(self._changed)
        registry.on_watch.append(lambda therapist: self._inbox.put_nowait(("watch", therapist)))
        registry.on_unwatched.append(
            lambda therapist: self._inbox.put_nowait(("unwatched", therapist))
        )
        cluster.on_message(self._message)
        cluster.on_listening_again(self._listening_again)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._publish_loop()),
            asyncio.create_task(self._inbox_loop()),
        ]

    async def close(self) -> None:
        await stop_tasks(self._tasks)

    def channel(self, therapist_id: int) -> str:
        return f"{self._prefix}presence:{therapist_id}"

    def publish_status(self, therapist_id: int, appointment_id: int, state: str) -> None:
        """Tell the therapist's dashboards on other nodes (queued; sent in order)."""
        message = {
            "type": STATUS,
            "node": self._cluster.node_id,
            "appointment": appointment_id,
            "state": state,
        }
        self._outbox.put_nowait((therapist_id, message))

    def room_reset(self, therapist_id: int, appointment_id: int) -> None:
        """A dead node's room was swept (room_sweep.py): `invited` again, here and elsewhere."""
        status = {"v": 1, "type": "status", "appointment": appointment_id, "state": "invited"}
        self._registry.tell_watchers(therapist_id, status)
        self.publish_status(therapist_id, appointment_id, "invited")

    def _listening_again(self) -> None:
        """After an outage both sides act, since either may come back first: this node tells
        what its rooms are now (heard by the nodes subscribed already), and asks for the rooms of
        the therapists it watches (heard by the nodes listening already)."""
        for consultation in self._registry.active:
            self._changed(consultation)
        self._inbox.put_nowait(("ask_again", None))

    # --- the room's side

    def _changed(self, consultation: Consultation) -> None:
        self.publish_status(
            consultation.therapist_id, consultation.appointment_id, consultation.status
        )

    def _message(self, message: dict[str, Any]) -> None:
        """A dashboard elsewhere asks for the therapist's rooms here."""
        therapist = message.get("therapist")
        if message.get("type") != ASK or not isinstance(therapist, int):
            return
        for consultation in self._registry.active:
            if consultation.therapist_id == therapist:
                self._changed(consultation)

    async def _publish_loop(self) -> None:
        while True:
            therapist_id, message = await self._outbox.get()
            # lost while Redis is away: the dashboards' nodes ask again when it is back
            with contextlib.suppress(RedisUnavailable):
                await self._cluster.publish_on(self.channel(therapist_id), message)

    # --- the dashboard's side

    async def _inbox_loop(self) -> None:
        while True:
            kind, value = await self._inbox.get()
            try:
                if kind == "watch":
                    await self._watch(value)
                elif kind == "unwatched":
                    await self._unwatched(value)
                elif kind == "ask_again":
                    for therapist_id in list(self._subscribed):
                        await self._ask(therapist_id)
                else:
                    await self._arrived(*value)
            except Exception as exc:
                log_event(logger, "presence_failed", logging.ERROR, error=type(exc).__name__)

    async def _watch(self, therapist_id: int) -> None:
        if not self._registry.watched(therapist_id):
            return  # the dashboard has gone again
        if therapist_id not in self._subscribed:
            self._subscribed.add(therapist_id)
            confirmed = await self._cluster.subscribe(
                self.channel(therapist_id),
                lambda message: self._inbox.put_nowait(("arrived", (therapist_id, message))),
            )
            if not confirmed:
                return  # Redis is away: asked when the node listens again
        await self._ask(therapist_id)

    async def _unwatched(self, therapist_id: int) -> None:
        if self._registry.watched(therapist_id) or therapist_id not in self._subscribed:
            return  # another dashboard came meanwhile
        self._subscribed.discard(therapist_id)
        await self._cluster.unsubscribe(self.channel(therapist_id))

    async def _ask(self, therapist_id: int) -> None:
        with contextlib.suppress(RedisUnavailable):
            await self._cluster.broadcast({"type": ASK, "therapist": therapist_id})

    async def _arrived(self, therapist_id: int, message: dict[str, Any]) -> None:
        appointment, state = message.get("appointment"), message.get("state")
        if (
            message.get("type") != STATUS
            or message.get("node") == self._cluster.node_id  # told here already
            or not isinstance(appointment, int)
            or state not in _STATES
            or not self._registry.watched(therapist_id)
        ):
            return
        status: dict[str, Any] = {"v": 1, "type": "status", "appointment": appointment}
        status["state"] = state
        if state in _NAMED:
            try:
                stored = await self._storage.get_appointment(appointment)
            except StorageFailure:
                stored = None  # the dashboard still learns of the arrival, without the name
            else:
                if stored is None or stored.therapist_id != therapist_id:
                    return
            if stored is not None and stored.client_display_name:
                status["client_name"] = stored.client_display_name
        self._registry.tell_watchers(therapist_id, status)
