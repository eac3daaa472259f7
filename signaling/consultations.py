"""Live consultations: who sits in which appointment's room, and what each side is told.

One ``Consultation`` per appointment that someone has joined. It enforces the two-person rule
(one therapist seat, one client seat, one connection each -- a newer connection of the same person
replaces the older one), drives the relay room, tells each side about the other (presence and
media state only, never SDP or addresses), and on the end keeps nothing but the session's date
and length.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from sfu import Relay, Room
from signaling.logs import LOGGER_NAME, log_event
from signaling.metrics import Metrics
from signaling.storage import Appointment, AppointmentState, CrisisCard, Storage

__all__ = [
    "SEATS",
    "Consultation",
    "ConsultationRegistry",
    "JoinRateLimited",
    "Participant",
    "TherapistRoomLimit",
]

logger = logging.getLogger(LOGGER_NAME)

THERAPIST = "therapist"
CLIENT = "client"
SEATS = (THERAPIST, CLIENT)

CLOSE_REPLACED = 4009
CLOSE_ENDED = 4004
CLOSE_GOING_AWAY = 1001  # RFC 6455: the server is going down

# Why a side is gone, in the other side's `peer {gone}`: it said `leave` (the leave button or the
# quick exit), or its socket dropped or timed out (a closed tab, a lost network).
LEFT = "left"
LOST = "lost"

# The server is restarting. The room closes, but the appointment stays open and its link keeps
# working: both may join again once the server is back, within the appointment's validity.
SHUTDOWN = "shutdown"

# Joins per seat of one appointment: a page reload or a network change rejoins a few times; a
# loop rejoining sixty times a second is not a browser of ours. 10 at once, then one per 6 s.
JOIN_BURST = 10
JOIN_REFILL_SECONDS = 6.0
# At most one presence push per side in this time; what changes within it goes out once, after.
PRESENCE_INTERVAL_SECONDS = 0.5

MEDIA_POLL_SECONDS = 0.05  # join_to_media_seconds is read in 50 ms steps, far below ICE's pace
MEDIA_WAIT_LIMIT = 120.0  # after two minutes without media the call did not start: not observed


class JoinRateLimited(Exception):
    """This seat of the appointment was joined too often in a short time."""


class TherapistRoomLimit(Exception):
    """The therapist already has `limits.max_rooms_per_therapist` rooms open."""


class Participant(Protocol):
    """One browser's signaling connection. Both calls queue and return at once."""

    def send(self, message: dict[str, Any]) -> None: ...

    def close(self, code: int) -> None: ...


def _message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "type": kind, **fields}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Consultation:
    def __init__(
        self,
        appointment: Appointment,
        relay: Relay,
        storage: Storage,
        on_change: Callable[[Consultation], None],
        clock: Callable[[], dt.datetime] = _utcnow,
        metrics: Metrics | None = None,
        may_open_room: Callable[[Consultation], bool] = lambda _: True,
    ) -> None:
        self.appointment_id = appointment.id
        self.therapist_id = appointment.therapist_id
        self.valid_until = appointment.valid_until
        self.client_name = appointment.client_display_name
        self.crisis_card: CrisisCard | None = None  # the therapist's only, like the name
        self.both_present_at = appointment.both_present_at
        self.ended = False
        self._end_reason: str | None = None
        self._relay = relay
        self._storage = storage
        self._on_change = on_change
        self._clock = clock
        self._seats: dict[str, Participant | None] = dict.fromkeys(SEATS)
        self._media: dict[str, str] = {}
        self._room: Room | None = None
        self._last_together: dt.datetime | None = None
        self._lock = asyncio.Lock()  # joins, leaves and the end never interleave
        self._metrics = metrics or Metrics()
        # per seat: when both were last seated, and the packets forwarded to it until then
        self._awaiting_media: dict[str, tuple[float, int]] = {}
        self._media_watch: asyncio.Task[None] | None = None
        self._may_open_room = may_open_room
        self._stored_state = appointment.state
        self._join_budget = {seat: _Budget(JOIN_BURST, JOIN_REFILL_SECONDS) for seat in SEATS}
        # per receiving seat: the peer fields it was last told, when, and a pending push
        self._told: dict[str, dict[str, Any]] = {}
        self._told_at: dict[str, float] = {}
        self._push_later: dict[str, asyncio.TimerHandle] = {}
        self._pending_state: dict[str, str] = {}
        self._gone_reason: dict[str, str] = {}  # per seat that left: LEFT or LOST

    # --- presence ---------------------------------------------------------------------------

    @property
    def has_room(self) -> bool:
        """Whether a relay room is open for this appointment (it counts against the limits)."""
        return self._room is not None

    def present(self, seat: str) -> bool:
        return self._seats[seat] is not None

    @property
    def status(self) -> str:
        """The dashboard's view: invited, waiting, in_call or ended."""
        if self.ended:
            # after a shutdown the appointment goes on: the dashboard shows it as before the call
            return "invited" if self._end_reason == SHUTDOWN else AppointmentState.ENDED.value
        if self.present(THERAPIST) and self.present(CLIENT):
            return AppointmentState.IN_CALL.value
        if self.present(CLIENT):
            return AppointmentState.WAITING.value
        return "invited"

    async def join(
        self,
        seat: str,
        participant: Participant,
        client_name: str | None = None,
        crisis_card: CrisisCard | None = None,
    ) -> dict:
        """Seat ``participant``; returns what it should be told about the other side. A client
        brings its name and crisis card as stored at this join (it may have consented again)."""
        async with self._lock:
            if not self._join_budget[seat].take():
                raise JoinRateLimited
            old = self._seats[seat]
            if old is not None and old is not participant:
                old.send(_message("error", code="replaced", message="Joined from elsewhere"))
                old.close(CLOSE_REPLACED)
            self._seats[seat] = participant
            if self._gone_reason.pop(seat, None) is not None or (
                old is not None and old is not participant
            ):
                # the admin's weekly health report counts these (signaling/health_recorder.py)
                self._metrics.reconnects.inc()
            if seat == CLIENT:
                if client_name is not None:
                    self.client_name = client_name
                self.crisis_card = crisis_card
            await self._update_together()
            # after the update: a push that goes out at once then has the session's start
            self._tell_peer(self._other(seat), "present")
            self._on_change(self)
            view = self._peer_view(seat)
            # what the new connection knows from `joined`; pushes start from there
            self._told[seat] = view
            return view

    async def leave(self, seat: str, participant: Participant, reason: str = LOST) -> None:
        """``participant`` left (``LEFT``) or vanished (``LOST``); a replaced connection leaving
        changes nothing."""
        async with self._lock:
            if self._seats.get(seat) is not participant:
                return
            self._seats[seat] = None
            self._gone_reason[seat] = reason
            self._media.pop(seat, None)
            self._awaiting_media.clear()
            if self._room is not None:
                await self._room.disconnect(seat)
            other = self._seats[self._other(seat)]
            if other is not None:
                self._tell_peer(self._other(seat), "gone")
            elif self._room is not None:
                # nobody left: give the relay room (and its max_rooms slot) back now rather than
                # at the end of the appointment's validity; the next offer opens a fresh one
                room, self._room = self._room, None
                await room.close()
            await self._update_together()
            self._on_change(self)

    # --- media ------------------------------------------------------------------------------

    async def offer(self, seat: str, sdp: str) -> str:
        """Hand the seat's offer to the relay (a second offer replaces its peer connection)."""
        if self._room is None:
            if not self._may_open_room(self):
                raise TherapistRoomLimit
            self._room = self._relay.create_room()
            self._room.on_leg_state = self._leg_state_changed
            self._room.on_renegotiate = self._renegotiate
        return await self._room.connect(seat, sdp)

    async def candidate(
        self, seat: str, candidate: str | None, sdp_mid: str | None, index: int | None
    ) -> None:
        if self._room is not None:
            await self._room.add_ice_candidate(seat, candidate, sdp_mid, index)

    def relay_e2ee(self, seat: str, payload: dict) -> None:
        """Key-exchange messages of the end-to-end encryption, passed on unread."""
        other = self._seats[self._other(seat)]
        if other is not None:
            other.send(_message("e2ee", payload=payload))

    def _renegotiate(self, seat: str, codec: str) -> None:
        """The relay answered the other browser with a codec this seat's leg lacks (H.264, when
        both have it): the page offers again on a fresh peer connection (call.js)."""
        participant = self._seats.get(seat)
        if participant is not None:
            participant.send(_message("renegotiate", codec=codec))

    def _leg_state_changed(self, seat: str, state: str) -> None:
        self._media[seat] = state
        if state in ("failed", "closed"):
            # the role and the appointment id only: enough to correlate with a complaint
            log_event(logger, "media_leg_" + state, appointment=self.appointment_id, role=seat)
        participant = self._seats.get(seat)
        if participant is not None:
            participant.send(_message("media", state=state))
        if participant is not None:
            self._tell_peer(self._other(seat), "connected" if state == "connected" else "present")

    # --- the end ----------------------------------------------------------------------------

    async def end(self, reason: str) -> None:
        """End for both: tell them, close the room, keep only the date and length."""
        async with self._lock:
            if self.ended:
                return
            self.ended = True
            self._end_reason = reason
            now = self._clock()
            if self.present(THERAPIST) and self.present(CLIENT):
                self._last_together = now
            close_code = CLOSE_GOING_AWAY if reason == SHUTDOWN else CLOSE_ENDED
            for seat, participant in self._seats.items():
                if participant is not None:
                    participant.send(_message("ended", reason=reason))
                    participant.close(close_code)
                self._seats[seat] = None
            self._awaiting_media.clear()
            for handle in self._push_later.values():
                handle.cancel()
            self._push_later.clear()
            if self._media_watch is not None:
                self._media_watch.cancel()
            if self._room is not None:
                await self._room.close()
                self._room = None
            if reason == SHUTDOWN:
                await self._record_pause()
            else:
                await self._record_end(now, reason)
            self._on_change(self)

    async def store_state_again(self) -> None:
        """Write the room's state again. In a cluster the sweep of dead nodes' rooms
        (signaling/cluster/room_sweep.py) may have reset it while this node could not renew its
        placement (Redis away) or while a join raced the sweep."""
        async with self._lock:
            if self.ended:
                return
            state = self._state_to_store()
            await self._storage.update_appointment(self.appointment_id, state=state)
            self._stored_state = state

    async def _record_pause(self) -> None:
        """The server stops mid-appointment: nobody is in the room, the appointment goes on."""
        try:
            await self._storage.update_appointment(
                self.appointment_id, state=AppointmentState.SCHEDULED
            )
        except Exception:
            log_event(logger, "session_pause_not_recorded", logging.ERROR, exc_info=True)
        log_event(logger, "session_interrupted", appointment=self.appointment_id)

    async def _record_end(self, now: dt.datetime, reason: str) -> None:
        state = AppointmentState.CANCELLED if reason == "cancelled" else AppointmentState.ENDED
        try:
            await self._storage.update_appointment(
                self.appointment_id,
                state=state,
                ended_at=now,
                invite_token_hash=None,  # the link ends with the session
            )
            if self.both_present_at is not None:
                until = self._last_together or now
                seconds = max(int((until - self.both_present_at).total_seconds()), 0)
                self._metrics.session_duration.observe(seconds)
                await self._storage.record_session_statistic(
                    self.therapist_id, self.both_present_at.date(), seconds
                )
        except Exception:
            log_event(logger, "session_end_not_recorded", logging.ERROR, exc_info=True)
        log_event(logger, "session_ended", appointment=self.appointment_id)

    # --- internals --------------------------------------------------------------------------

    async def _update_together(self) -> None:
        both = self.present(THERAPIST) and self.present(CLIENT)
        now = self._clock()
        if both:
            self._last_together = None
            self._await_media()
            if self.both_present_at is None:
                self._metrics.sessions.inc()
                self.both_present_at = now.replace(microsecond=0)
                await self._storage.update_appointment(
                    self.appointment_id,
                    both_present_at=self.both_present_at,
                    state=AppointmentState.IN_CALL,
                )
                self._stored_state = AppointmentState.IN_CALL
                return
        elif self._last_together is None and self.both_present_at is not None:
            self._last_together = now
        state = self._state_to_store()
        if state is not self._stored_state:  # a replacing join changes nothing worth a write
            await self._storage.update_appointment(self.appointment_id, state=state)
            self._stored_state = state

    def _state_to_store(self) -> AppointmentState:
        return {
            "in_call": AppointmentState.IN_CALL,
            "waiting": AppointmentState.WAITING,
        }.get(self.status, AppointmentState.SCHEDULED)

    def _await_media(self) -> None:
        """Both are seated: time how long until packets reach each of them."""
        now = time.monotonic()
        for seat in SEATS:
            self._awaiting_media.setdefault(seat, (now, self._forwarded_to(seat)))
        if self._media_watch is None or self._media_watch.done():
            self._media_watch = asyncio.create_task(self._watch_media())

    async def _watch_media(self) -> None:
        # Polling the room's plain counters keeps the relay's hot path free of callbacks.
        while self._awaiting_media and not self.ended:
            await asyncio.sleep(MEDIA_POLL_SECONDS)
            now = time.monotonic()
            for seat, (since, before) in list(self._awaiting_media.items()):
                if self._forwarded_to(seat) > before:
                    self._metrics.join_to_media.observe(now - since)
                elif now - since <= MEDIA_WAIT_LIMIT:
                    continue
                with contextlib.suppress(KeyError):
                    del self._awaiting_media[seat]

    def _forwarded_to(self, seat: str) -> int:
        """RTP packets the relay has forwarded to ``seat`` (sent by the other seat)."""
        if self._room is None:
            return 0
        sent = self._room.stats().get(self._other(seat))
        if sent is None:
            return 0
        return sent.forwarded_from.packets

    def _tell_peer(self, receiver: str, state: str) -> None:
        """Push the other side's presence to ``receiver``: not at all if that is what it was
        last told, at once if it was told nothing for PRESENCE_INTERVAL_SECONDS, else once at
        the end of that interval with whatever holds then. A rejoin loop thus costs the other
        side two messages a second at most, and the last state always arrives."""
        self._pending_state[receiver] = state
        if receiver in self._push_later:
            return
        wait = self._told_at.get(receiver, -PRESENCE_INTERVAL_SECONDS) + PRESENCE_INTERVAL_SECONDS
        wait -= time.monotonic()
        if wait <= 0:
            self._push_peer(receiver)
        else:
            loop = asyncio.get_running_loop()
            self._push_later[receiver] = loop.call_later(wait, self._push_peer, receiver)

    def _push_peer(self, receiver: str) -> None:
        self._push_later.pop(receiver, None)
        state = self._pending_state.pop(receiver, None)
        participant = self._seats.get(receiver)
        if state is None or participant is None or self.ended:
            return
        fields = self._peer_fields(receiver, state)
        if fields == self._told.get(receiver):
            return
        participant.send(_message("peer", **fields))
        self._told[receiver] = fields
        self._told_at[receiver] = time.monotonic()

    def _peer_view(self, seat: str) -> dict:
        other = self._other(seat)
        if not self.present(other):
            state = "absent"
        elif self._media.get(other) == "connected":
            state = "connected"
        else:
            state = "present"
        return self._peer_fields(seat, state)

    @property
    def session_started_at(self) -> str | None:
        """When both were first in the room, for both pages' session clock (ISO, UTC)."""
        if self.both_present_at is None:
            return None
        return self.both_present_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _peer_fields(self, seat: str, state: str) -> dict:
        fields: dict[str, Any] = {"state": state}
        if state == "gone":
            fields["reason"] = self._gone_reason.get(self._other(seat), LOST)
        if state == "connected" and self.session_started_at is not None:
            fields["session_started_at"] = self.session_started_at
        if seat == THERAPIST and state != "absent":
            # only the therapist sees the client's name and crisis card
            if self.client_name:
                fields["name"] = self.client_name
            card = self.crisis_card
            if card is not None and card.location is not None and card.phone is not None:
                fields["crisis_card"] = {"location": card.location, "phone": card.phone}
        return fields

    @staticmethod
    def _other(seat: str) -> str:
        return CLIENT if seat == THERAPIST else THERAPIST


class _Budget:
    """A token bucket: ``burst`` at once, then one per ``refill_seconds``."""

    def __init__(self, burst: int, refill_seconds: float) -> None:
        self._burst = burst
        self._refill = refill_seconds
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) / self._refill)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class ConsultationRegistry:
    """All live consultations, and the dashboards watching them."""

    def __init__(
        self,
        relay: Relay,
        storage: Storage,
        clock: Callable[[], dt.datetime] = _utcnow,
        metrics: Metrics | None = None,
        max_rooms_per_therapist: int = 2,
    ) -> None:
        self.relay = relay
        self._max_rooms_per_therapist = max_rooms_per_therapist
        self._storage = storage
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._consultations: dict[int, Consultation] = {}
        self._watchers: dict[int, set[Participant]] = {}
        self._last_status: dict[int, dict] = {}
        # called with the appointment id when a consultation ends (a cluster releases its room)
        self.on_ended: list[Callable[[int], None]] = []
        # A cluster carries presence to dashboards on other nodes (signaling/cluster/presence.py):
        # each change the dashboards here are told of, each new dashboard (by therapist id), and
        # the last dashboard of a therapist going away.
        self.on_status: list[Callable[[Consultation], None]] = []
        self.on_watch: list[Callable[[int], None]] = []
        self.on_unwatched: list[Callable[[int], None]] = []

    def get(self, appointment_id: int) -> Consultation | None:
        return self._consultations.get(appointment_id)

    def open(self, appointment: Appointment) -> Consultation:
        consultation = self._consultations.get(appointment.id)
        if consultation is None or consultation.ended:
            consultation = Consultation(
                appointment,
                self.relay,
                self._storage,
                self._changed,
                self._clock,
                self._metrics,
                self._may_open_room,
            )
            self._consultations[appointment.id] = consultation
        return consultation

    def _may_open_room(self, consultation: Consultation) -> bool:
        """Without a cap per therapist, one account could open empty rooms up to `max_rooms`
        and leave every other practice without one."""
        open_rooms = sum(
            1
            for other in self._consultations.values()
            if other.therapist_id == consultation.therapist_id and other.has_room
        )
        return open_rooms < self._max_rooms_per_therapist

    async def end(self, appointment_id: int, reason: str) -> None:
        consultation = self._consultations.get(appointment_id)
        if consultation is not None:
            await consultation.end(reason)

    async def expire(self) -> None:
        """End every consultation whose appointment's validity has run out."""
        now = self._clock()
        for consultation in list(self._consultations.values()):
            if consultation.valid_until <= now:
                await consultation.end("expired")

    async def close_all(self, reason: str) -> None:
        for consultation in list(self._consultations.values()):
            await consultation.end(reason)

    @property
    def active(self) -> list[Consultation]:
        return [c for c in self._consultations.values() if not c.ended]

    def seated(self) -> dict[str, int]:
        """How many people sit in live consultations, by seat (for metrics)."""
        return {seat: sum(c.present(seat) for c in self.active) for seat in SEATS}

    def watch(self, therapist_id: int, participant: Participant) -> None:
        self._watchers.setdefault(therapist_id, set()).add(participant)
        for consultation in self.active:
            if consultation.therapist_id == therapist_id:
                participant.send(self._status(consultation))
        for callback in self.on_watch:
            callback(therapist_id)

    def unwatch(self, therapist_id: int, participant: Participant) -> None:
        watchers = self._watchers.get(therapist_id)
        if watchers is not None:
            watchers.discard(participant)
            if not watchers:
                del self._watchers[therapist_id]
                for callback in self.on_unwatched:
                    callback(therapist_id)

    def watched(self, therapist_id: int) -> bool:
        return therapist_id in self._watchers

    def tell_watchers(self, therapist_id: int, status: dict[str, Any]) -> None:
        """A `status` of a room on another node, for this node's dashboards of the therapist."""
        for watcher in self._watchers.get(therapist_id, ()):
            watcher.send(status)

    def _changed(self, consultation: Consultation) -> None:
        status = self._status(consultation)
        if consultation.ended:
            if self._consultations.get(consultation.appointment_id) is consultation:
                for callback in self.on_ended:
                    callback(consultation.appointment_id)
            self._consultations.pop(consultation.appointment_id, None)
            self._last_status.pop(consultation.appointment_id, None)
        elif self._last_status.get(consultation.appointment_id) == status:
            return  # a replacing join changes nothing the dashboard shows
        else:
            self._last_status[consultation.appointment_id] = status
        for watcher in self._watchers.get(consultation.therapist_id, ()):
            watcher.send(status)
        for tell_elsewhere in self.on_status:
            tell_elsewhere(consultation)

    @staticmethod
    def _status(consultation: Consultation) -> dict:
        fields: dict[str, Any] = {"appointment": consultation.appointment_id}
        fields["state"] = consultation.status
        if consultation.client_name and consultation.status in ("waiting", "in_call"):
            fields["client_name"] = consultation.client_name
        return _message("status", **fields)
