"""What a request on one node does to rooms and sockets on the others, as it would on one node.

A therapist cancels an appointment (or the portal does) on one node while its room lives on
another: this node reads the room's node from the placement and sends it `room.end`, and that
node ends the room as a cancel on it would (both people told `ended cancelled`, the sockets
closed, wherever they are). A therapist signs out, or an admin disables or resets the account:
this node closes the therapist's sockets here and broadcasts `therapist.sign_out`; every other
node closes the therapist's sockets it holds (a seat whose room is elsewhere then leaves it
through the signal relay, as a closed tab does).

    any node -> the room's node   {"type": "room.end", "appointment", "reason"}
    any node -> every node        {"type": "therapist.sign_out", "therapist"}

Only internal ids travel. When Redis cannot carry the message, the database still has the
truth: every node re-reads its sign-ins every `SESSION_RECHECK_SECONDS` (as for the CLI's
`therapist disable`), and the rooms' node re-reads its appointments every
`ROOM_RECHECK_SECONDS` and ends a room whose appointment was cancelled meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from signaling.cluster.redis_link import RedisUnavailable
from signaling.logs import LOGGER_NAME, log_event
from signaling.storage import AppointmentState
from signaling.task_ends import BackgroundTasks

if TYPE_CHECKING:
    from signaling.cluster import Cluster
    from signaling.consultations import ConsultationRegistry
    from signaling.login_sessions import SignedInSockets
    from signaling.storage import Storage

__all__ = ["ROOM_END", "ROOM_RECHECK_SECONDS", "SIGN_OUT", "RemoteActions"]

logger = logging.getLogger(LOGGER_NAME)

ROOM_END = "room.end"
SIGN_OUT = "therapist.sign_out"
# What another node may end a room for: what `relay_setup.end_live_session` is called with. The
# reason reaches both browsers (`ended`), so nothing else is passed on.
END_REASONS = frozenset({"cancelled"})
# As often as rooms are checked for their end of validity (relay_setup.EXPIRY_CHECK_SECONDS).
ROOM_RECHECK_SECONDS = 15.0


class RemoteActions:
    """`relay_setup.OtherNodes` for a cluster, and the receiving end of it on this node."""

    def __init__(
        self,
        cluster: Cluster,
        storage: Storage,
        registry: ConsultationRegistry,
        sockets: SignedInSockets,
    ) -> None:
        self._cluster = cluster
        self._storage = storage
        self._registry = registry
        self._sockets = sockets
        self._tasks = BackgroundTasks()
        cluster.on_message(self._message)

    def start(self) -> None:
        self._tasks.spawn(self._recheck_rooms_periodically())

    async def close(self) -> None:
        await self._tasks.stop()

    # --- this node asks

    def sign_out(self, therapist_id: int) -> None:
        """Close the therapist's sockets on every other node (this node closed its own)."""
        self._tasks.spawn(self._broadcast_sign_out(therapist_id))

    async def end_room(self, appointment_id: int, reason: str) -> None:
        """End the appointment's room where it lives, when that is another node."""
        try:
            owner = await self._cluster.placement.owner(appointment_id)
            if owner is None or owner == self._cluster.node_id:
                return  # no room anywhere (or a dead node's, which nobody can join any more)
            message = {"type": ROOM_END, "appointment": appointment_id, "reason": reason}
            await self._cluster.publish(owner, message)
        except RedisUnavailable:
            log_event(logger, "room_end_not_relayed", logging.WARNING, appointment=appointment_id)

    async def _broadcast_sign_out(self, therapist_id: int) -> None:
        try:
            await self._cluster.broadcast({"type": SIGN_OUT, "therapist": therapist_id})
        except RedisUnavailable:
            # the sessions are gone from the database: the re-check closes the sockets
            log_event(logger, "sign_out_not_relayed", logging.WARNING, therapist_id=therapist_id)

    # --- another node asks

    def _message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == SIGN_OUT:
            therapist = message.get("therapist")
            if isinstance(therapist, int):
                self._sockets.sign_out_therapist(therapist)
        elif kind == ROOM_END:
            appointment, reason = message.get("appointment"), message.get("reason")
            if isinstance(appointment, int) and reason in END_REASONS:
                self._tasks.spawn(self._registry.end(appointment, str(reason)))

    async def _recheck_rooms_periodically(self) -> None:
        while True:
            await asyncio.sleep(ROOM_RECHECK_SECONDS)
            for consultation in self._registry.active:
                try:
                    stored = await self._storage.get_appointment(consultation.appointment_id)
                    if stored is not None and stored.state is AppointmentState.CANCELLED:
                        await self._registry.end(consultation.appointment_id, "cancelled")
                except Exception as exc:
                    log_event(
                        logger, "room_recheck_failed", logging.ERROR, error=type(exc).__name__
                    )
