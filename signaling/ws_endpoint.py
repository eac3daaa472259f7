"""The signaling WebSocket ``/ws``: authentication, the two-person rule, SDP and ICE to the relay.

One connection per browser page. Refusals go out as an ``error`` message with a code from the
fixed set in docs/protocol.md, followed by a close where the connection cannot go on. Nothing a
browser sends reaches the other browser except ``e2ee`` payloads, which are passed on unread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from sfu import InvalidOffer, RelayError, RelayFull
from signaling import invites
from signaling.config import Config
from signaling.consultations import (
    CLIENT,
    CLOSE_GOING_AWAY,
    LEFT,
    THERAPIST,
    Consultation,
    ConsultationRegistry,
    JoinRateLimited,
    TherapistRoomLimit,
)
from signaling.csrf import origin_of
from signaling.drain import Drain
from signaling.http_errors import log_request_error
from signaling.login_sessions import SignedIn, current_session
from signaling.logs import LOGGER_NAME, log_event
from signaling.metrics import Metrics
from signaling.ordered_sender import OrderedSender
from signaling.relay_setup import SIGNED_IN_SOCKETS
from signaling.storage import Appointment, Storage, StorageFailure
from signaling.turn_credentials import ice_servers_for_participant
from signaling.ws_messages import BadMessage, Message, parse_message

if TYPE_CHECKING:
    from signaling.cluster import Cluster
    from signaling.cluster.signal_relay import EdgeSocket, RemoteSocket, SignalRelay

__all__ = ["Connection", "SignalingEndpoint"]

logger = logging.getLogger(LOGGER_NAME)

HEARTBEAT_SECONDS = 10.0  # ping every 10 s; aiohttp closes after a missed pong (~15 s)
RATE_CAPACITY = 50  # messages ...
RATE_WINDOW = 10.0  # ... per 10 seconds: ICE trickling is bursty, a flood is not
# A page sends join or watch right after the socket opens; one that says nothing for 30 s is
# not a page of ours (or a stuck one) and only holds a socket and a file descriptor.
JOIN_TIMEOUT_SECONDS = 30.0

CLOSE_UNAUTHORIZED = 4001
CLOSE_REFUSED = 4003
CLOSE_JOIN_TIMEOUT = 4008  # 4000 + 408 Request Timeout, as 4029 mirrors 429
CLOSE_RATE_LIMITED = 4029
CLOSE_INTERNAL = 1011
# What a browser may send about a seat whose room is on another node: passed there as sent.
_FORWARDED = frozenset({"offer", "reconnect", "candidate", "e2ee", "leave", "end"})


_CLIENT_REFUSALS = {
    invites.InviteAccess.INVALID: ("unauthorized", "this link is not valid", CLOSE_UNAUTHORIZED),
    invites.InviteAccess.USED: ("used", "this link was used in another browser", CLOSE_REFUSED),
    invites.InviteAccess.EXPIRED: ("expired", "the appointment has ended", CLOSE_REFUSED),
    invites.InviteAccess.NOT_YET_OPEN: ("expired", "the room is not open yet", CLOSE_REFUSED),
    invites.InviteAccess.CANCELLED: ("cancelled", "the appointment was cancelled", CLOSE_REFUSED),
}


class _RoomUnreachable(Exception):
    """Redis (placement, the signal relay) did not answer: the browser tries again."""


class Refusal(Exception):
    """A join or action that the rules refuse; ``code`` is one of the protocol's error codes."""

    def __init__(self, code: str, message: str, close: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.close = close


class Connection(OrderedSender):
    """A browser's socket as a ``Participant``: sends are queued and written in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        super().__init__()

    async def finish(self) -> None:
        """Close the socket after what is queued (bounded), then stop the writer."""
        self.close(1000)
        await super().finish()

    async def _deliver(self, action: str, value: Any) -> bool:
        try:
            if action == "send":
                await self._ws.send_json(value)
            else:
                await self._ws.close(code=value)
        except (ConnectionError, RuntimeError):
            return False  # the browser is gone; the reader notices and cleans up
        return True


class RateLimit:
    """A token bucket: ``capacity`` messages, refilled evenly over ``window`` seconds."""

    def __init__(self, capacity: int = RATE_CAPACITY, window: float = RATE_WINDOW) -> None:
        self._capacity = capacity
        self._rate = capacity / window
        self._tokens = float(capacity)
        self._last = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class _State:
    """What one connection has become: a seat in a consultation, a dashboard watcher, or neither."""

    signed_in: SignedIn | None
    client_cookie: str | None
    seat: str | None = None
    consultation: Consultation | None = None
    watching: int | None = None
    limit: RateLimit = field(default_factory=RateLimit)
    join_deadline: asyncio.TimerHandle | None = None  # cancelled by the first join or watch
    edge: EdgeSocket | None = None  # seated in a room on another node (signaling/cluster)

    def engaged(self) -> None:
        if self.join_deadline is not None:
            self.join_deadline.cancel()
            self.join_deadline = None


class SignalingEndpoint:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        registry: Callable[[], ConsultationRegistry],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        metrics: Metrics | None = None,
        drain: Drain | None = None,
        cluster: Cluster | None = None,
        signal_relay: SignalRelay | None = None,
    ) -> None:
        self._config = config
        self._storage = storage
        self._registry = registry
        self._clock = clock
        self._origin = origin_of(config.server.public_url)
        self._metrics = metrics or Metrics()
        self._drain = drain or Drain()
        self._cluster = cluster
        self._signal_relay = signal_relay
        if signal_relay is not None:
            signal_relay.serve_remotes(self.serve_remote)
        self._connections: set[Connection] = set()
        self._handlers: dict[str, Callable[[_State, Message, Connection], Awaitable[None]]] = {
            "join": self._join,
            "offer": self._offer,
            "reconnect": self._offer,
            "candidate": self._candidate,
            "e2ee": self._e2ee,
            "leave": self._leave,
            "end": self._end,
            "watch": self._watch,
        }

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/ws", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != self._origin:
            # a page elsewhere must not ride on the browser's cookies (cross-site WebSocket
            # hijacking); non-browser clients send no Origin and still need the cookies
            raise web.HTTPForbidden(text="Cross-origin WebSocket refused")
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT_SECONDS,
            max_msg_size=self._config.limits.websocket_max_message_bytes,
        )
        await ws.prepare(request)
        connection = Connection(ws)
        self._connections.add(connection)
        self._metrics.websocket_connections.inc()
        try:
            state = _State(
                signed_in=await current_session(request, self._storage),
                client_cookie=request.cookies.get(invites.COOKIE_NAME),
            )
        except StorageFailure as exc:
            self._storage_failed(request, connection, exc)
            await self._gone(connection)
            return ws
        except BaseException:
            await self._gone(connection)
            raise
        state.join_deadline = asyncio.get_running_loop().call_later(
            JOIN_TIMEOUT_SECONDS, self._join_timed_out, connection
        )
        sockets = request.app.get(SIGNED_IN_SOCKETS)
        if state.signed_in is not None and sockets is not None:
            sockets.add(state.signed_in.session, connection, lambda: self._signed_out(connection))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if not await self._receive(state, msg.data, connection, request):
                        break
                elif msg.type == WSMsgType.BINARY:
                    self._error(connection, "bad_message", "messages are JSON text")
                else:
                    break
        finally:
            state.engaged()
            if state.signed_in is not None and sockets is not None:
                sockets.discard(state.signed_in.session, connection)
            await self._forget(state, connection)
            await self._gone(connection)
        return ws

    def _signed_out(self, connection: Connection) -> None:
        """The socket's login session ended (logout, disable, new password): close it now."""
        self._refuse(connection, Refusal("unauthorized", "you were signed out", CLOSE_UNAUTHORIZED))

    def _join_timed_out(self, connection: Connection) -> None:
        log_event(logger, "join_timeout")
        self._error(connection, "join_timeout", "send join or watch after opening the socket")
        connection.close(CLOSE_JOIN_TIMEOUT)

    async def _gone(self, connection: Connection) -> None:
        self._connections.discard(connection)
        self._metrics.websocket_connections.dec()
        await connection.finish()

    def close_all(self) -> None:
        """Shutdown: close every socket still open (dashboards, pages not yet seated) with 1001."""
        for connection in list(self._connections):
            connection.close(CLOSE_GOING_AWAY)

    # --- dispatch ---------------------------------------------------------------------------

    async def _receive(
        self, state: _State, text: str, connection: Any, request: web.Request | None
    ) -> bool:
        """Handle one message; False when the connection must end."""
        if not state.limit.allow():
            self._refuse(
                connection, Refusal("rate_limited", "too many messages", CLOSE_RATE_LIMITED)
            )
            return False
        try:
            if state.signed_in is not None and state.seat != CLIENT:
                # Each message re-checks the sign-in: the CLI may have ended it in the database.
                live = await self._storage.live_login_sessions(
                    {state.signed_in.session.id}, self._clock()
                )
                if not live:
                    self._signed_out(connection)
                    return False
            message = parse_message(text)
            if state.edge is not None and message.type in _FORWARDED:
                return await self._forward(state, message, text, connection)
            await self._handlers[message.type](state, message, connection)
        except _RoomUnreachable:
            self._error(
                connection,
                "storage_unavailable",
                "The service cannot reach its other parts right now. Please try again in a moment.",
            )
            connection.close(CLOSE_INTERNAL)
            return False
        except BadMessage as exc:
            self._error(connection, "bad_message", str(exc))
        except Refusal as refusal:
            self._refuse(connection, refusal)
            return refusal.close is None
        except InvalidOffer as exc:
            self._error(connection, "invalid_offer", str(exc))
        except RelayFull:
            self._unavailable(
                connection,
                "capacity",
                "The service is at capacity: every consultation room is in use. "
                "Please try again in a few minutes.",
            )
        except TherapistRoomLimit:
            self._unavailable(
                connection,
                "therapist_rooms",
                "Too many consultation rooms are open for this practice account. "
                "Please leave another one first, or try again in a few minutes.",
            )
        except RelayError:
            self._unavailable(
                connection,
                "relay_unavailable",
                "No media connection is free right now. Please try again in a few minutes.",
            )
        except StorageFailure as exc:
            if request is None:
                log_event(logger, "storage_failed", logging.ERROR, error=type(exc).__name__)
                self._error(connection, "storage_unavailable", "Please try again in a moment.")
                connection.close(CLOSE_INTERNAL)
            else:
                self._storage_failed(request, connection, exc)
            return False
        except Exception as exc:
            # only the type: an exception's text may carry what the browser sent
            log_event(logger, "signaling_error", logging.ERROR, error=type(exc).__name__)
            self._error(connection, "internal", "internal error")
            connection.close(CLOSE_INTERNAL)
            return False
        return True

    def _error(self, connection: Connection, code: str, message: str) -> None:
        connection.send({"v": 1, "type": "error", "code": code, "message": message})

    def _storage_failed(
        self, request: web.Request, connection: Connection, exc: StorageFailure
    ) -> None:
        """The database could not answer (locked, full, closed): nothing of the message took
        effect. `storage_unavailable` says so -- the pages say the service is briefly
        unavailable -- and 1011 is not a final close, so the page's socket reconnects with
        back-off and joins again."""
        log_request_error(request, exc)
        self._error(
            connection,
            "storage_unavailable",
            "The service cannot reach its database right now. Please try again in a moment.",
        )
        connection.close(CLOSE_INTERNAL)

    def _unavailable(self, connection: Connection, reason: str, message: str) -> None:
        """The relay cannot take this call; the browser may retry on the same connection."""
        self._metrics.reject(reason)
        log_event(logger, "media_refused", reason=reason)
        self._error(connection, "relay_unavailable", message)

    def _refuse(self, connection: Connection, refusal: Refusal) -> None:
        self._metrics.reject(refusal.code)
        log_event(logger, "join_refused", reason=refusal.code)
        self._error(connection, refusal.code, str(refusal))
        if refusal.close is not None:
            connection.close(refusal.close)

    # --- messages ---------------------------------------------------------------------------

    async def _join(self, state: _State, message: Message, connection: Connection) -> None:
        if state.seat is not None or state.edge is not None:
            raise BadMessage("already joined; send leave first")
        if self._drain.draining and self._cluster is None:
            raise Refusal(
                "shutting_down", "the service is restarting; join again shortly", CLOSE_GOING_AWAY
            )
        if message.appointment is not None:
            appointment, seat = (
                await self._therapist_appointment(state, message.appointment),
                THERAPIST,
            )
        else:
            appointment, seat = await self._client_appointment(state, message.invite or ""), CLIENT
        owner = await self._place(appointment.id)
        if owner is not None:
            await self._join_elsewhere(state, owner, appointment.id, seat, connection)
            return
        await self._seat(state, appointment, seat, connection)

    async def _seat(
        self, state: _State, appointment: Appointment, seat: str, connection: Any
    ) -> None:
        """Seat the connection in the appointment's room on this node."""
        consultation = self._registry().open(appointment)
        name = appointment.client_display_name if seat == CLIENT else None
        card = await self._storage.get_crisis_card(appointment.id) if seat == CLIENT else None
        try:
            peer = await consultation.join(seat, connection, name, card)
        except JoinRateLimited:
            raise Refusal(
                "rate_limited", "too many joins; wait a minute", CLOSE_RATE_LIMITED
            ) from None
        state.seat, state.consultation = seat, consultation
        state.engaged()
        self._metrics.joins.inc()
        connection.send(
            {
                "v": 1,
                "type": "joined",
                "seat": seat,
                "ice_servers": ice_servers_for_participant(self._config.media),
                "e2ee": self._config.media.e2ee,
                "peer": peer,
                # kept by the server, so every device and a reload show the same clock
                "session_started_at": consultation.session_started_at,
            }
        )

    async def _place(self, appointment_id: int) -> str | None:
        """In a cluster, the node hosting the appointment's room when that is another node;
        None to seat here. A room live on this node stays here whatever else holds (draining,
        Redis down): a rejoin must find its call."""
        live = self._registry().get(appointment_id)
        if self._cluster is None or (live is not None and not live.ended):
            return None
        from signaling.cluster import RedisUnavailable
        from signaling.cluster.rooms import NoNodeForRoom

        if not self._cluster.reachable:
            raise _RoomUnreachable
        try:
            owner = await self._cluster.placement.place(appointment_id)
        except RedisUnavailable:
            raise _RoomUnreachable from None
        except NoNodeForRoom:
            raise RelayFull from None
        return None if owner == self._cluster.node_id else owner

    async def _join_elsewhere(
        self, state: _State, owner: str, appointment_id: int, seat: str, connection: Connection
    ) -> None:
        """The room lives on `owner`: hand the seat over; its `joined` comes back from there."""
        from signaling.cluster import RedisUnavailable

        assert self._signal_relay is not None and self._cluster is not None
        for _ in range(2):
            try:
                edge = await self._signal_relay.join(connection, owner, appointment_id, seat)
            except RedisUnavailable:
                raise _RoomUnreachable from None
            if edge is not None:
                state.edge = edge
                state.engaged()  # joins are counted where the room is
                return
            # the owner died since the placement was read: place again (it is no longer alive)
            placed = await self._place(appointment_id)
            if placed is None:
                live = await self._storage.get_appointment(appointment_id)
                if live is None:
                    raise Refusal("unauthorized", "no such appointment", CLOSE_UNAUTHORIZED)
                await self._seat(state, live, seat, connection)
                return
            owner = placed
        raise _RoomUnreachable

    async def _forward(
        self, state: _State, message: Message, text: str, connection: Connection
    ) -> bool:
        """A seated browser's message to its room's node."""
        from signaling.cluster import RedisUnavailable
        from signaling.cluster.signal_relay import CLOSE_SERVICE_RESTART, ROOM_NODE_GONE

        edge = state.edge
        assert edge is not None
        try:
            delivered = await edge.forward(text)
        except RedisUnavailable:
            raise _RoomUnreachable from None
        if not delivered:
            # the room's node died: the page reconnects and its join places the room anew
            state.edge = None
            await edge.closed()
            connection.send(ROOM_NODE_GONE)
            connection.close(CLOSE_SERVICE_RESTART)
            return False
        if message.type == "leave":
            state.edge = None
            await edge.closed()
        return True

    async def serve_remote(
        self, inbox: asyncio.Queue[tuple[str, Any]], socket: RemoteSocket
    ) -> None:
        """On the room's node: a socket of another node, seated here, until it closes."""
        state = _State(signed_in=None, client_cookie=None)
        try:
            while True:
                kind, value = await inbox.get()
                if kind == "closed":
                    return
                if kind == "join":
                    appointment_id, seat = value
                    if not await self._remote_seat(state, appointment_id, seat, socket):
                        return
                elif not await self._receive(state, value, socket, None):
                    return
        finally:
            await self._forget(state, socket)

    async def _remote_seat(
        self, state: _State, appointment_id: int, seat: str, socket: RemoteSocket
    ) -> bool:
        # The edge node checked the sign-in or the invite against the same database; here the
        # appointment is read again for the room's state.
        try:
            appointment = await self._storage.get_appointment(appointment_id)
            if appointment is None or seat not in (THERAPIST, CLIENT):
                raise Refusal("unauthorized", "no such appointment", CLOSE_UNAUTHORIZED)
            await self._seat(state, appointment, seat, socket)
        except Refusal as refusal:
            self._refuse(socket, refusal)
            return refusal.close is None
        except StorageFailure as exc:
            log_event(logger, "storage_failed", logging.ERROR, error=type(exc).__name__)
            self._error(socket, "storage_unavailable", "Please try again in a moment.")
            socket.close(CLOSE_INTERNAL)
            return False
        return True

    async def _therapist_appointment(self, state: _State, appointment_id: int) -> Appointment:
        if state.signed_in is None:
            raise Refusal("unauthorized", "sign in first", CLOSE_UNAUTHORIZED)
        appointment = await self._storage.get_appointment(appointment_id)
        if appointment is None or appointment.therapist_id != state.signed_in.therapist.id:
            raise Refusal("unauthorized", "no such appointment", CLOSE_UNAUTHORIZED)
        self._check_open(appointment)
        return appointment

    async def _client_appointment(self, state: _State, token: str) -> Appointment:
        appointment = await invites.find_invite(self._storage, token)
        access = invites.invite_access(appointment, state.client_cookie, self._clock())
        refusal = _CLIENT_REFUSALS.get(access)
        if refusal is not None:
            raise Refusal(*refusal)
        if appointment is None or not invites.binding_matches(appointment, state.client_cookie):
            raise Refusal("unauthorized", "accept the terms and consent first", CLOSE_UNAUTHORIZED)
        return appointment

    def _check_open(self, appointment: Appointment) -> None:
        """The therapist may enter early to get ready, but not after the end or a cancel."""
        status = invites.invite_status(appointment, self._clock())
        if status is invites.InviteStatus.CANCELLED:
            raise Refusal("cancelled", "the appointment was cancelled", CLOSE_REFUSED)
        if status is invites.InviteStatus.EXPIRED:
            raise Refusal("expired", "the appointment has ended", CLOSE_REFUSED)

    def _seated(self, state: _State) -> tuple[Consultation, str]:
        if state.consultation is None or state.seat is None or state.consultation.ended:
            raise BadMessage("join first")
        return state.consultation, state.seat

    async def _offer(self, state: _State, message: Message, connection: Connection) -> None:
        consultation, seat = self._seated(state)
        answer = await consultation.offer(seat, message.sdp or "")
        connection.send({"v": 1, "type": "answer", "sdp": answer})

    async def _candidate(self, state: _State, message: Message, connection: Connection) -> None:
        consultation, seat = self._seated(state)
        await consultation.candidate(
            seat, message.candidate, message.sdp_mid, message.sdp_mline_index
        )

    async def _e2ee(self, state: _State, message: Message, connection: Connection) -> None:
        consultation, seat = self._seated(state)
        consultation.relay_e2ee(seat, message.payload or {})

    async def _leave(self, state: _State, message: Message, connection: Connection) -> None:
        consultation, seat = self._seated(state)
        await consultation.leave(seat, connection, LEFT)
        state.seat = state.consultation = None

    async def _end(self, state: _State, message: Message, connection: Connection) -> None:
        consultation, seat = self._seated(state)
        if seat != THERAPIST:
            raise BadMessage("only the therapist can end the session")
        await consultation.end("therapist_ended")

    async def _watch(self, state: _State, message: Message, connection: Connection) -> None:
        if state.signed_in is None:
            raise Refusal("unauthorized", "sign in first", CLOSE_UNAUTHORIZED)
        if state.watching is None:
            state.engaged()
            state.watching = state.signed_in.therapist.id
            self._registry().watch(state.watching, connection)

    async def _forget(self, state: _State, connection: Any) -> None:
        if state.edge is not None:
            edge, state.edge = state.edge, None
            await edge.closed()
        if state.consultation is not None and state.seat is not None:
            try:
                await state.consultation.leave(state.seat, connection)
            except Exception as exc:
                log_event(logger, "leave_failed", logging.ERROR, error=type(exc).__name__)
        if state.watching is not None:
            self._registry().unwatch(state.watching, connection)
