"""The integration API under /api/v1/ for an operator's practice software.

Authentication is an API key (`sprechzimmer apikey create`) sent as `Authorization: Bearer …`.
No cookies are involved, so there is nothing to forge cross-site and no CSRF token.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from signaling.account_admin import audit, issue_password_link, unusable_password_hash
from signaling.appointments import (
    appointment_json,
    create_appointment,
    ensure_cancellable,
    parse_new_appointment,
)
from signaling.config import Config
from signaling.credentials import hash_token, token_matches
from signaling.http_errors import ApiError, read_json
from signaling.invitations_by_mail import InvitationsByMail
from signaling.logs import LOGGER_NAME, log_event
from signaling.relay_setup import end_live_session, sign_out_live
from signaling.storage import (
    AlreadyExists,
    ApiKey,
    Appointment,
    AppointmentState,
    Storage,
    Therapist,
)

__all__ = ["PREFIX", "IntegrationApi"]

PREFIX = "/api/v1"

logger = logging.getLogger(LOGGER_NAME)

# The portal's account id: printable, no spaces or slashes, so it fits a path segment as is.
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
# The CLI's rule for usernames (signaling/cli.py).
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MAX_DISPLAY_NAME = 200


class IntegrationApi:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        invitation_mail: InvitationsByMail | None = None,
    ) -> None:
        self._config = config
        self._storage = storage
        self._mail = invitation_mail or InvitationsByMail(config, storage, session_secret="")

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"{PREFIX}/appointments", self.create)
        router.add_get(f"{PREFIX}/appointments/{{id}}", self.get)
        router.add_delete(f"{PREFIX}/appointments/{{id}}", self.cancel)
        router.add_get(f"{PREFIX}/therapists/{{username}}/statistics", self.statistics)
        router.add_put(f"{PREFIX}/therapists/{{external_id}}", self.provision)
        router.add_delete(f"{PREFIX}/therapists/{{external_id}}", self.deactivate)

    async def create(self, request: web.Request) -> web.Response:
        key = await self._authenticate(request)
        body = await read_json(request)
        username = body.pop("therapist", None)
        if not isinstance(username, str):
            raise ApiError(400, "invalid_request", "therapist (a username) is required")
        address = self._mail.take_address(body)
        data = parse_new_appointment(self._config, body)
        therapist = await self._therapist(username)
        appointment, invite = await create_appointment(
            self._config, self._storage, therapist.id, data
        )
        log_event(logger, "appointment_created", appointment_id=appointment.id, api_key=key.name)
        answer = {
            **_appointment_json(appointment, therapist, data.crisis_card),
            "invite_url": invite.url,
        }
        if address is not None:
            outcome = await self._mail.invite(appointment, invite.url, address)
            answer["invitation_mail"] = outcome.json()
        return web.json_response(answer, status=201)

    async def get(self, request: web.Request) -> web.Response:
        await self._authenticate(request)
        appointment = await self._appointment(request)
        return web.json_response(await self._stored_json(appointment))

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
        return web.json_response(await self._stored_json(appointment))

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

    # --- provisioning

    async def provision(self, request: web.Request) -> web.Response:
        """Activate (or update) the video feature for a portal account, idempotent by its
        external id: 201 and a set-password link when the account is new, else 200."""
        key = await self._authenticate(request)
        external_id = self._external_id(request)
        body = await read_json(request)
        unknown = sorted(set(body) - {"username", "display_name", "active"})
        if unknown:
            raise ApiError(400, "invalid_request", f"Unknown field: {unknown[0][:64]}")
        username, display_name = body.get("username"), body.get("display_name")
        active = body.get("active", True)
        if not isinstance(username, str) or not USERNAME.match(username):
            raise ApiError(400, "invalid_request", "username: 2 to 64 characters a-z 0-9 . _ -")
        if display_name is not None and (
            not isinstance(display_name, str) or not 0 < len(display_name) <= MAX_DISPLAY_NAME
        ):
            raise ApiError(
                400, "invalid_request", f"display_name: 1 to {MAX_DISPLAY_NAME} characters"
            )
        if not isinstance(active, bool):
            raise ApiError(400, "invalid_request", "active must be true or false")
        try:
            therapist, created = await self._storage.provision_therapist(
                external_id, username, display_name, await unusable_password_hash()
            )
        except AlreadyExists:
            raise ApiError(409, "conflict", "This username belongs to another account") from None
        actor = f"api:{key.name}"
        answer: dict[str, object] = {}
        if created:
            await audit(self._storage, actor, "therapist_provisioned", username)
            answer["set_password_url"] = await issue_password_link(
                self._config, self._storage, therapist
            )
        if therapist.disabled == active:
            therapist = await self._set_active(request, therapist, active, actor)
        answer = {**_provisioned_json(therapist), **answer}
        return web.json_response(answer, status=201 if created else 200)

    async def deactivate(self, request: web.Request) -> web.Response:
        key = await self._authenticate(request)
        therapist = await self._storage.get_therapist_by_external_id(self._external_id(request))
        if therapist is None:
            raise ApiError(404, "not_found", "No such therapist")
        if not therapist.disabled:
            therapist = await self._set_active(request, therapist, False, f"api:{key.name}")
        return web.json_response(_provisioned_json(therapist))

    async def _set_active(
        self, request: web.Request, therapist: Therapist, active: bool, actor: str
    ) -> Therapist:
        # as `sprechzimmer therapist disable`: the sessions end in the same transaction; the
        # sockets of this process close now
        await self._storage.set_therapist_disabled(therapist.username, not active)
        if not active:
            sign_out_live(request.app, therapist.id)
        await audit(
            self._storage,
            actor,
            "therapist_enabled" if active else "therapist_disabled",
            therapist.username,
        )
        return await self._storage.get_therapist_by_id(therapist.id) or therapist

    # --- helpers

    def _external_id(self, request: web.Request) -> str:
        external_id = request.match_info["external_id"]
        if not EXTERNAL_ID.match(external_id):
            raise ApiError(
                400, "invalid_request", "external id: 1 to 128 characters A-Z a-z 0-9 . _ : @ -"
            )
        return external_id

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

    async def _stored_json(self, appointment: Appointment) -> dict[str, object]:
        therapist = await self._storage.get_therapist_by_id(appointment.therapist_id)
        card = await self._storage.get_crisis_card(appointment.id)
        return _appointment_json(appointment, therapist, crisis_card=card is not None)


def _appointment_json(
    appointment: Appointment, therapist: Therapist | None, crisis_card: bool
) -> dict[str, object]:
    """The appointment object as the therapist API has it (`crisis_card`: whether the card is
    on), with the therapist's username and without the note: the portal wrote it and has it;
    this API does not hand personal data back, nor what the client wrote on the card."""
    data = appointment_json(appointment, include_note=False, crisis_card=crisis_card)
    return {**data, "therapist": therapist.username if therapist else None}


def _provisioned_json(therapist: Therapist) -> dict[str, object]:
    return {
        "external_id": therapist.external_id,
        "username": therapist.username,
        "display_name": therapist.display_name,
        "active": not therapist.disabled,
    }
