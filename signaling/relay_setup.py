"""The media side's life inside the application: the relay and the live consultations are built
at start-up from the configuration, expired appointments are ended as time passes, and at
shutdown every participant is told before the relay closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from sfu import Relay, RelayConfig
from signaling.config import Config
from signaling.consultations import SHUTDOWN, ConsultationRegistry
from signaling.logs import LOGGER_NAME, log_event
from signaling.metrics import METRICS
from signaling.storage import Storage

__all__ = [
    "CONSULTATIONS",
    "RELAY",
    "close_live_media",
    "end_live_session",
    "live_media",
    "relay_config",
]

RELAY = web.AppKey("relay", Relay)
CONSULTATIONS = web.AppKey("consultations", ConsultationRegistry)

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
        relay = Relay(relay_config(config))
        registry = ConsultationRegistry(relay, storage, metrics=app.get(METRICS))
        app[RELAY] = relay
        app[CONSULTATIONS] = registry
        expiry = asyncio.create_task(_expire_periodically(registry))
        yield
        expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await expiry
        await close_live_media(app)

    return context


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


async def end_live_session(app: web.Application, appointment_id: int, reason: str) -> None:
    """End the appointment's consultation, if one is live: its participants are told at once."""
    registry = app.get(CONSULTATIONS)
    if registry is not None:
        await registry.end(appointment_id, reason)
