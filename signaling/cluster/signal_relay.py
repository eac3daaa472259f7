"""The signal relay: a browser's WebSocket on one node, its room on another.

The socket's node (the edge) checks who may join, asks `RoomPlacement` where the room lives and,
when that is another node, forwards the socket's messages to it over Redis pub/sub, addressed to
a connection id of its own. The room's node (the owner) seats a `RemoteSocket` in the
consultation: what the consultation sends it is published back to the edge, which writes it to the
browser. Media never takes this path: the answer SDP comes from the owner's relay and carries the
owner's candidates, so the browser's packets go straight there.

Messages on a node's channel (JSON; `conn` is the edge's connection id, `edge` the edge node):

    edge -> owner   {"type": "sig.join", "conn", "edge", "appointment", "seat"}
                    {"type": "sig.msg", "conn", "text"}    # the browser's message, as sent
                    {"type": "sig.closed", "conn"}          # the browser's socket is gone
    owner -> edge   {"type": "sig.send", "conn", "message"}
                    {"type": "sig.close", "conn", "code"}

Redis delivers one publisher's messages in order; each side publishes a connection's messages from
one task, so a connection's messages stay in order both ways. A node that dies is noticed by the
other side within one heartbeat interval (its channel has no subscriber any more): the edge
closes the browser's socket (1012, the page reconnects and its join re-places the room), the owner
treats the seat as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from signaling.cluster.redis_link import RedisUnavailable
from signaling.logs import LOGGER_NAME, log_event
from signaling.ordered_sender import OrderedSender
from signaling.task_ends import BackgroundTasks, stop_tasks

if TYPE_CHECKING:
    from signaling.cluster import Cluster

__all__ = ["CLOSE_SERVICE_RESTART", "EdgeSocket", "RemoteSocket", "SignalRelay"]

logger = logging.getLogger(LOGGER_NAME)

# RFC 6455 1012 "service restart": not final, so the page reconnects with back-off and rejoins.
CLOSE_SERVICE_RESTART = 1012
# A browser's socket closed while its room's node was unreachable: the error it is told.
ROOM_NODE_GONE = {
    "v": 1,
    "type": "error",
    "code": "storage_unavailable",
    "message": "The connection to your session moved. Reconnecting.",
}


class RemoteSocket(OrderedSender):
    """On the room's node: a browser whose socket is on another node, as a `Participant`."""

    def __init__(self, relay: SignalRelay, edge: str, conn: str) -> None:
        self.edge = edge
        self.conn = conn
        self._relay = relay
        super().__init__()

    async def _deliver(self, action: str, value: Any) -> bool:
        if action == "send":
            message = {"type": "sig.send", "conn": self.conn, "message": value}
        else:
            message = {"type": "sig.close", "conn": self.conn, "code": value}
        # on an outage the link logs it; the edge's browser reconnects on its own
        with contextlib.suppress(RedisUnavailable):
            await self._relay.cluster.publish(self.edge, message)
        return True


class EdgeSocket:
    """On the socket's node: where a joined socket's messages go."""

    def __init__(self, relay: SignalRelay, owner: str, conn: str) -> None:
        self.owner = owner
        self.conn = conn
        self._relay = relay

    async def forward(self, text: str) -> bool:
        """The browser's message to the room's node; False when that node is not listening.
        Raises RedisUnavailable."""
        return await self._relay.publish(
            self.owner, {"type": "sig.msg", "conn": self.conn, "text": text}
        )

    async def closed(self) -> None:
        self._relay.drop_edge(self.conn)
        with contextlib.suppress(RedisUnavailable):
            await self._relay.publish(self.owner, {"type": "sig.closed", "conn": self.conn})


# What the room's node runs per remote socket: (inbox, participant) until "closed".
RemoteSession = Callable[["asyncio.Queue[tuple[str, Any]]", RemoteSocket], Awaitable[None]]


class SignalRelay:
    """Both ends of the relay on this node."""

    def __init__(self, cluster: Cluster, check_seconds: float) -> None:
        self.cluster = cluster
        self._check_seconds = check_seconds
        # edge side: conn -> (the browser's connection, its room's node)
        self._edges: dict[str, tuple[Any, str]] = {}
        # owner side: conn -> (inbox, the RemoteSocket, its session task)
        self._remotes: dict[str, tuple[asyncio.Queue[tuple[str, Any]], RemoteSocket]] = {}
        self._session: RemoteSession | None = None
        self._tasks = BackgroundTasks()
        self._watcher: asyncio.Task[None] | None = None
        cluster.on_message(self._dispatch)

    def serve_remotes(self, session: RemoteSession) -> None:
        """How this node runs a socket of another node seated in one of its rooms."""
        self._session = session

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            await stop_tasks([self._watcher])

    async def publish(self, node: str, message: dict[str, Any]) -> bool:
        return await self.cluster.publish(node, message) > 0

    # --- the edge

    async def join(
        self, connection: Any, owner: str, appointment_id: int, seat: str
    ) -> EdgeSocket | None:
        """Seat the browser of `connection` in the room on `owner`; None when `owner` is not
        listening (it died: re-place the room). Raises RedisUnavailable."""
        conn = secrets.token_hex(8)
        self._edges[conn] = (connection, owner)
        message = {
            "type": "sig.join",
            "conn": conn,
            "edge": self.cluster.node_id,
            "appointment": appointment_id,
            "seat": seat,
        }
        try:
            delivered = await self.publish(owner, message)
        except BaseException:
            self._edges.pop(conn, None)
            raise
        if not delivered:
            self._edges.pop(conn, None)
            return None
        return EdgeSocket(self, owner, conn)

    def drop_edge(self, conn: str) -> None:
        self._edges.pop(conn, None)

    # --- dispatch

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        conn = message.get("conn")
        if not isinstance(conn, str):
            return
        if kind == "sig.send":
            edge = self._edges.get(conn)
            if edge is not None and isinstance(message.get("message"), dict):
                edge[0].send(message["message"])
        elif kind == "sig.close":
            edge = self._edges.pop(conn, None)
            code = message.get("code")
            if edge is not None:
                edge[0].close(code if isinstance(code, int) else CLOSE_SERVICE_RESTART)
        elif kind == "sig.join":
            self._remote_joined(conn, message)
        elif kind == "sig.msg":
            remote = self._remotes.get(conn)
            if remote is not None and isinstance(message.get("text"), str):
                remote[0].put_nowait(("msg", message["text"]))
        elif kind == "sig.closed":
            remote = self._remotes.get(conn)
            if remote is not None:
                remote[0].put_nowait(("closed", None))

    def _remote_joined(self, conn: str, message: dict[str, Any]) -> None:
        edge, appointment, seat = (
            message.get("edge"),
            message.get("appointment"),
            message.get("seat"),
        )
        if self._session is None or conn in self._remotes:
            return
        if not (isinstance(edge, str) and isinstance(appointment, int) and isinstance(seat, str)):
            return
        inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        socket = RemoteSocket(self, edge, conn)
        self._remotes[conn] = (inbox, socket)
        inbox.put_nowait(("join", (appointment, seat)))
        self._tasks.spawn(self._run_remote(conn, inbox, socket))

    async def _run_remote(
        self, conn: str, inbox: asyncio.Queue[tuple[str, Any]], socket: RemoteSocket
    ) -> None:
        try:
            assert self._session is not None
            await self._session(inbox, socket)
        except Exception as exc:
            log_event(logger, "remote_socket_failed", logging.ERROR, error=type(exc).__name__)
        finally:
            self._remotes.pop(conn, None)
            await socket.finish()

    # --- a node of the other side dying

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_seconds)
            # nothing can be told apart during an outage; calls go on meanwhile
            with contextlib.suppress(RedisUnavailable):
                await self._check()

    async def _check(self) -> None:
        nodes = {owner for _, owner in self._edges.values()}
        nodes |= {socket.edge for _, socket in self._remotes.values()}
        nodes.discard(self.cluster.node_id)
        for node in nodes:
            if await self.cluster.alive(node):
                continue
            log_event(logger, "cluster_node_lost", node=node)
            for conn, (connection, owner) in list(self._edges.items()):
                if owner == node:
                    del self._edges[conn]
                    connection.send(ROOM_NODE_GONE)
                    connection.close(CLOSE_SERVICE_RESTART)
            for inbox, socket in list(self._remotes.values()):
                if socket.edge == node:
                    inbox.put_nowait(("closed", None))

    @property
    def sockets(self) -> int:
        """Sockets of this node whose room is elsewhere, and sockets elsewhere seated here."""
        return len(self._edges) + len(self._remotes)
