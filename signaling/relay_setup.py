"""The live side's life inside the application: the relay, the live consultations and the
therapists' open sockets are built at start-up from the configuration, expired appointments are
ended as time passes, sessions ended by another process close their sockets, and at shutdown
every participant is told before the relay closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web

from sfu import Relay, RelayConfig
from signaling.config import Config
from signaling.consultations import SHUTDOWN, ConsultationRegistry
from signaling.login_sessions import SESSION_RECHECK_SECONDS, SignedInSockets
from signaling.logs import LOGGER_NAME, log_event
from signaling.metrics import METRICS, LiveState
from signaling.storage import Storage

__all__ = [
    "CONSULTATIONS",
    "OTHER_NODES",
    "RELAY",
    "SIGNED_IN_SOCKETS",
    "close_live_media",
    "end_live_session",
    "live_media",
    "live_state",
    "relay_config",
    "sign_out_live",
]

RELAY = web.AppKey("relay", Relay)
CONSULTATIONS = web.AppKey("consultations", ConsultationRegistry)
SIGNED_IN_SOCKETS = web.AppKey("signed_in_sockets", SignedInSockets)


class OtherNodes(Protocol):
    """In a cluster, the same actions on what lives on other nodes
    (signaling/cluster/remote_actions.py)."""

    def sign_out(self, therapist_id: int) -> None: ...

    async def end_room(self, appointment_id: int, reason: str) -> None: ...


OTHER_NODES: web.AppKey[OtherNodes] = web.AppKey("other_nodes")

EXPIRY_CHECK_SECONDS = 15  # an appointment's room closes at most this long after valid_until

logger = logging.getLogger(LOGGER_NAME)


def relay_config(config: Config) -> RelayConfig:
    media = config.media
    return RelayConfig(
        udp_port_min=media.udp_port_min,
        udp_port_max=media.udp_port_max,
        listen_addresses=tuple(media.listen_addresses),
        public_ip=media.public_ip,
        allow_loopback=media.allow_loopback_candidates,
        max_rooms=config.limits.max_rooms,
    )


def live_media(
    config: Config, storage: Storage
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that puts the relay and the consultation registry into the app."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        # No room outlives its process: after a crash (kill -9, power loss) the database may
        # still say `waiting` or `in_call`, and those states refuse edits and new links. The
        # client's consent stays; both simply join again.
        # In a cluster the database is shared: the other nodes' calls are live. A room of a node
        # that died is re-placed by the next join instead, whose state writes replace the stale
        # one (docs/scaling.md).
        if not config.cluster.enabled:
            reset = await storage.reset_live_appointments()
            if reset:
                log_event(logger, "live_states_reset", appointments=reset)
        relay = Relay(relay_config(config))
        registry = ConsultationRegistry(
            relay,
            storage,
            metrics=app.get(METRICS),
            max_rooms_per_therapist=config.limits.max_rooms_per_therapist,
        )
        app[RELAY] = relay
        app[CONSULTATIONS] = registry
        app[SIGNED_IN_SOCKETS] = sockets = SignedInSockets()
        tasks = [
            asyncio.create_task(_expire_periodically(registry)),
            asyncio.create_task(_recheck_sessions_periodically(sockets, storage)),
        ]
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await close_live_media(app)

    return context


def live_state(app: web.Application) -> LiveState:
    """The relay's snapshot and the rooms' occupancy, for a metrics scrape."""
    relay = app.get(RELAY)
    registry = app.get(CONSULTATIONS)
    return LiveState(
        relay=relay.snapshot() if relay is not None else None,
        seated=registry.seated() if registry is not None else {},
    )


async def close_live_media(app: web.Application) -> None:
    """Tell everyone in a room that the server stops, close the rooms, then the relay.

    Safe to call twice: `serve` calls it first thing on SIGTERM, and the cleanup context again.
    """
    registry = app.get(CONSULTATIONS)
    if registry is not None:
        await registry.close_all(SHUTDOWN)
    relay = app.get(RELAY)
    if relay is not None:
        await relay.close()


async def _expire_periodically(registry: ConsultationRegistry) -> None:
    while True:
        await asyncio.sleep(EXPIRY_CHECK_SECONDS)
        try:
            await registry.expire()
        except Exception as exc:
            log_event(logger, "expiry_failed", logging.ERROR, error=type(exc).__name__)


async def _recheck_sessions_periodically(sockets: SignedInSockets, storage: Storage) -> None:
    while True:
        await asyncio.sleep(SESSION_RECHECK_SECONDS)
        try:
            await sockets.recheck(storage)
        except Exception as exc:
            log_event(logger, "session_recheck_failed", logging.ERROR, error=type(exc).__name__)


def sign_out_live(app: web.Application, therapist_id: int) -> None:
    """Close every open socket of the therapist now (a call's seat, dashboards, pages), on every
    node of a cluster."""
    sockets = app.get(SIGNED_IN_SOCKETS)
    if sockets is not None:
        sockets.sign_out_therapist(therapist_id)
    others = app.get(OTHER_NODES)
    if others is not None:
        others.sign_out(therapist_id)


async def end_live_session(app: web.Application, appointment_id: int, reason: str) -> None:
    """End the appointment's consultation, if one is live (in a cluster: wherever it is): its
    participants are told at once."""
    registry = app.get(CONSULTATIONS)
    live = registry.get(appointment_id) if registry is not None else None
    if registry is not None and live is not None and not live.ended:
        await registry.end(appointment_id, reason)
        return
    others = app.get(OTHER_NODES)
    if others is not None:
        await others.end_room(appointment_id, reason)
