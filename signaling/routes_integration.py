"""The integration API under /api/v1/ for an operator's practice software.

Authentication is an API key (`sprechzimmer apikey create`) sent as `Authorization: Bearer …`.
No cookies are involved, so there is nothing to forge cross-site and no CSRF token.
"""

from __future__ import annotations

import logging

from aiohttp import web

from signaling.appointments import (
    appointment_json,
    create_appointment,
    ensure_cancellable,
    parse_new_appointment,
)
from signaling.config import Config
from signaling.credentials import hash_token, token_matches
from signaling.http_errors import ApiError, read_json
from signaling.logs import LOGGER_NAME, log_event
from signaling.relay_setup import end_live_session
from signaling.storage import ApiKey, Appointment, AppointmentState, Storage, Therapist

__all__ = ["PREFIX", "IntegrationApi"]

PREFIX = "/api/v1"

logger = logging.getLogger(LOGGER_NAME)


class IntegrationApi:
    def __init__(self, config: Config, storage: Storage) -> None:
        self._config = config
        self._storage = storage

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"{PREFIX}/appointments", self.create)
        router.add_get(f"{PREFIX}/appointments/{{id}}", self.get)
        router.add_delete(f"{PREFIX}/appointments/{{id}}", self.cancel)
        router.add_get(f"{PREFIX}/therapists/{{username}}/statistics", self.statistics)

    async def create(self, request: web.Request) -> web.Response:
        key = await self._authenticate(request)
        body = await read_json(request)
        username = body.pop("therapist", None)
        if not isinstance(username, str):
            raise ApiError(400, "invalid_request", "therapist (a username) is required")
        data = parse_new_appointment(self._config, body)
        therapist = await self._therapist(username)
        appointment, invite = await create_appointment(
            self._config, self._storage, therapist.id, data
        )
        log_event(logger, "appointment_created", appointment_id=appointment.id, api_key=key.name)
        return web.json_response(
            {**self._json(appointment, therapist), "invite_url": invite.url}, status=201
        )

    async def get(self, request: web.Request) -> web.Response:
        await self._authenticate(request)
        appointment = await self._appointment(request)
        therapist = await self._storage.get_therapist_by_id(appointment.therapist_id)
        return web.json_response(self._json(appointment, therapist))

    async def cancel(self, request: web.Request) -> web.Response:
        key = await self._authenticate(request)
        appointment = await self._appointment(request)
        if appointment.state is not AppointmentState.CANCELLED:
            ensure_cancellable(appointment)  # a leaked link must be killable, even mid-call
            appointment = await self._storage.cancel_appointment(appointment.id)
            log_event(
                logger, "appointment_cancelled", appointment_id=appointment.id, api_key=key.name
            )
            await end_live_session(request.app, appointment.id, "cancelled")
        therapist = await self._storage.get_therapist_by_id(appointment.therapist_id)
        return web.json_response(self._json(appointment, therapist))

    async def statistics(self, request: web.Request) -> web.Response:
        await self._authenticate(request)
        # Disabled accounts too: their sessions still count for billing.
        therapist = await self._therapist(request.match_info["username"], allow_disabled=True)
        rows = await self._storage.list_session_statistics(therapist.id)
        return web.json_response(
            {
                "therapist": therapist.username,
                "sessions": [
                    {"date": row.session_date.isoformat(), "duration_seconds": row.duration_seconds}
                    for row in rows
                ],
            }
        )

    # --- helpers

    async def _authenticate(self, request: web.Request) -> ApiKey:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        found = None
        if scheme.lower() == "bearer" and key:
            found = await self._storage.get_api_key_by_hash(hash_token(key))
        # The lookup is by hash, so its timing says nothing about the key; the constant-time
        # comparison guards against a backend that matched loosely.
        if found is None or not found.active or not token_matches(key, found.key_hash):
            raise ApiError(
                401,
                "unauthorized",
                "A valid API key is required",
                {"WWW-Authenticate": 'Bearer realm="sprechzimmer"'},
            )
        return found

    async def _therapist(self, username: str, allow_disabled: bool = False) -> Therapist:
        therapist = await self._storage.get_therapist(username)
        if therapist is None:
            raise ApiError(404, "not_found", "No such therapist")
        if therapist.disabled and not allow_disabled:
            raise ApiError(409, "conflict", "The therapist's account is disabled")
        return therapist

    async def _appointment(self, request: web.Request) -> Appointment:
        raw = request.match_info["id"]
        appointment = None
        if raw.isascii() and raw.isdigit() and len(raw) <= 18:
            appointment = await self._storage.get_appointment(int(raw))
        if appointment is None:
            raise ApiError(404, "not_found", "No such appointment")
        return appointment

    def _json(self, appointment: Appointment, therapist: Therapist | None) -> dict[str, object]:
        # No note: the portal wrote it and has it; this API does not hand personal data back.
        data = appointment_json(appointment, include_note=False)
        return {**data, "therapist": therapist.username if therapist else None}
