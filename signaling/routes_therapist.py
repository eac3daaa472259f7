"""The therapist's JSON API under /api/therapist/, used by the dashboard page with `fetch`.

Authentication is the session cookie; every state-changing request also needs the session's
CSRF token (see `signaling.csrf`). A therapist only ever sees their own appointments: another
therapist's appointment answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from signaling.appointments import (
    appointment_json,
    create_appointment,
    ensure_cancellable,
    ensure_changeable,
    mint_invite,
    parse_changes,
    parse_new_appointment,
)
from signaling.client_address import client_address
from signaling.config import Config
from signaling.credentials import (
    hash_password,
    load_or_create_session_secret,
    new_token,
    verify_password,
)
from signaling.csrf import STATE_CHANGING_METHODS, check_csrf_token, check_origin, origin_of
from signaling.http_errors import ApiError, read_json
from signaling.invitations_by_mail import InvitationsByMail
from signaling.login_sessions import (
    SignedIn,
    clear_cookie,
    current_session,
    end_all_sessions,
    signed_in_response,
)
from signaling.login_throttle import (
    Attempt,
    LoginAttempts,
    OneCheckAtATime,
    local_login_attempts,
)
from signaling.logs import LOGGER_NAME, log_event, render_ip
from signaling.relay_setup import end_live_session, sign_out_live
from signaling.routes_second_factor import SecondFactorApi
from signaling.storage import Appointment, AppointmentState, Storage, TherapistSettings

__all__ = ["PREFIX", "TherapistApi"]

PREFIX = "/api/therapist"

logger = logging.getLogger(LOGGER_NAME)

Handler = Callable[[web.Request, SignedIn], Awaitable[web.StreamResponse]]


class TherapistApi:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        login_attempts: LoginAttempts | None = None,
        session_secret: str = "",
        invitation_mail: InvitationsByMail | None = None,
        code_attempts: LoginAttempts | None = None,
    ) -> None:
        self._config = config
        self._storage = storage
        self._mail = invitation_mail or InvitationsByMail(config, storage, session_secret)
        # Without a secret (tests that build the app directly) the data directory's file is
        # used, as `serve` does.
        self._second_factor = SecondFactorApi(
            config,
            storage,
            session_secret or load_or_create_session_secret(config.storage.data_dir),
            code_attempts,
        )
        self._origin = origin_of(config.server.public_url)
        # Each argon2 check takes 64 MiB for a moment; a burst of logins must not add that up
        # without bound on a server that also carries live calls. Two at a time stay quick.
        self._password_checks = asyncio.Semaphore(2)
        # ...and one of the two at most for any one account or address, so a burst from one
        # address leaves the other slot to everyone else.
        self._one_check = OneCheckAtATime()
        # in a cluster the counts are shared in Redis (signaling/cluster/login_attempts.py)
        self._throttle = login_attempts or local_login_attempts(config.limits)

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"{PREFIX}/login", self.login)
        router.add_post(f"{PREFIX}/logout", self._signed_in(self.logout))
        self._second_factor.register(router, PREFIX, self._signed_in)
        router.add_get(f"{PREFIX}/me", self._signed_in(self.me))
        router.add_get(f"{PREFIX}/settings", self._signed_in(self.settings))
        router.add_put(f"{PREFIX}/settings", self._signed_in(self.change_settings))
        router.add_get(f"{PREFIX}/appointments", self._signed_in(self.list_appointments))
        router.add_post(f"{PREFIX}/appointments", self._signed_in(self.create))
        item = f"{PREFIX}/appointments/{{id}}"
        router.add_get(item, self._signed_in(self.get))
        router.add_patch(item, self._signed_in(self.edit))
        router.add_delete(item, self._signed_in(self.cancel))
        router.add_post(f"{item}/invite", self._signed_in(self.reissue_invite))

    # --- session

    async def login(self, request: web.Request) -> web.Response:
        # Login CSRF: a foreign page must not sign the browser into an attacker's account.
        check_origin(request, self._origin)
        body = await read_json(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(400, "invalid_request", "username and password are required strings")
        address = client_address(request, self._config.server.trusted_proxies)
        ip = render_ip(address, self._config.privacy.log_ip)

        # Counted before the password is checked: parallel guesses must not all pass this check
        # while none of them has failed yet.
        attempt = await self._throttle.begin(username, address)
        if not isinstance(attempt, Attempt):
            log_event(logger, "login_throttled", logging.WARNING, ip=ip)
            raise ApiError(
                429,
                "rate_limited",
                "Too many failed sign-ins; try again later",
                {"Retry-After": str(attempt)},
            )

        therapist = await self._storage.get_therapist(username)
        # Unknown users cost an argon2 verify too, so the response time does not tell whether
        # a username exists. argon2 takes tens of milliseconds of CPU: run it off the event
        # loop, which also carries the media relay.
        password_hash = therapist.password_hash if therapist else _dummy_hash()
        async with self._one_check.checking(username, address), self._password_checks:
            valid = await asyncio.to_thread(verify_password, password_hash, password)
        if therapist is None or not valid:
            # already counted by begin()
            log_event(logger, "login_failed", logging.WARNING, ip=ip)
            raise ApiError(401, "invalid_credentials", "Wrong username or password")
        if therapist.disabled:
            # Only someone who knows the password learns that the account is disabled.
            log_event(logger, "login_refused_disabled", logging.WARNING, therapist_id=therapist.id)
            raise ApiError(403, "account_disabled", "This account is disabled")

        await self._throttle.succeeded(attempt)
        # A therapist with an authenticator app (or who must set one up) gets a ticket for the
        # second step instead of a session.
        second_step = await self._second_factor.after_password(therapist)
        if second_step is not None:
            return second_step
        log_event(logger, "login", therapist_id=therapist.id, ip=ip)
        return await signed_in_response(self._storage, self._config, therapist)

    async def logout(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        # Every session and every open socket of the therapist: a socket must not outlive the
        # sign-in that opened it (it would still join calls and receive clients' names).
        await end_all_sessions(self._storage, signed_in.therapist.id)
        sign_out_live(request.app, signed_in.therapist.id)
        log_event(logger, "logout", therapist_id=signed_in.therapist.id)
        response = web.Response(status=204)
        clear_cookie(response, self._config)
        return response

    async def me(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        return web.json_response(
            {
                "username": signed_in.therapist.username,
                "csrf_token": signed_in.session.csrf_token,
                "is_admin": signed_in.therapist.is_admin,  # the dashboard links to /admin then
                # the dashboard offers the client's e-mail address then
                "invitation_mail": _invitation_mail_json(self._config),
            }
        )

    # --- settings

    async def settings(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        settings = await self._storage.get_therapist_settings(signed_in.therapist.id)
        return web.json_response(_settings_json(settings))

    async def change_settings(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        body = await read_json(request)
        unknown = sorted(set(body) - {"arrival_alert"})
        if unknown:
            raise ApiError(400, "invalid_request", f"Unknown field: {unknown[0]}")
        if not isinstance(body.get("arrival_alert"), bool):
            raise ApiError(400, "invalid_request", "arrival_alert must be true or false")
        settings = await self._storage.set_therapist_settings(
            signed_in.therapist.id, TherapistSettings(arrival_alert=body["arrival_alert"])
        )
        log_event(logger, "settings_changed", therapist_id=signed_in.therapist.id)
        return web.json_response(_settings_json(settings))

    # --- appointments

    async def list_appointments(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        appointments = await self._storage.list_appointments_for_therapist(signed_in.therapist.id)
        if request.query.get("include_past") != "true":
            # "Today" in UTC: the server does not know the practice's zone; the page can filter
            # further. Appointments still joinable are kept even if they began yesterday.
            now = dt.datetime.now(dt.UTC)
            today = now.replace(hour=0, minute=0, second=0, microsecond=0)
            appointments = [a for a in appointments if a.starts_at >= today or a.valid_until > now]
        cards = await self._storage.crisis_card_appointments(signed_in.therapist.id)
        return web.json_response(
            {"appointments": [appointment_json(a, crisis_card=a.id in cards) for a in appointments]}
        )

    async def create(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        body = await read_json(request)
        address = self._mail.take_address(body)
        data = parse_new_appointment(self._config, body)
        appointment, invite = await create_appointment(
            self._config, self._storage, signed_in.therapist.id, data
        )
        log_event(logger, "appointment_created", appointment_id=appointment.id)
        # The invite URL appears in this response and nowhere else; only its hash is stored.
        answer = {
            **appointment_json(appointment, crisis_card=data.crisis_card),
            "invite_url": invite.url,
        }
        if address is not None:
            # now or never: the link exists only in this request
            outcome = await self._mail.invite(appointment, invite.url, address)
            answer["invitation_mail"] = outcome.json()
        return web.json_response(answer, status=201)

    async def get(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        appointment = await self._own_appointment(request, signed_in)
        return web.json_response(await self._appointment_json(appointment))

    async def edit(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        appointment = await self._own_appointment(request, signed_in)
        changes = parse_changes(self._config, await read_json(request))
        ensure_changeable(appointment)
        crisis_card = changes.pop("crisis_card", None)
        updated = appointment
        if changes:
            updated = await self._storage.update_appointment(appointment.id, **changes)
        if crisis_card is not None:
            await self._storage.set_crisis_card(appointment.id, crisis_card)
        if "starts_at" in changes:
            await self._mail.appointment_moved(updated)
        log_event(logger, "appointment_changed", appointment_id=appointment.id)
        return web.json_response(await self._appointment_json(updated))

    async def cancel(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        appointment = await self._own_appointment(request, signed_in)
        if appointment.state is not AppointmentState.CANCELLED:
            ensure_cancellable(appointment)
            appointment = await self._storage.cancel_appointment(appointment.id)
            log_event(logger, "appointment_cancelled", appointment_id=appointment.id)
            await end_live_session(request.app, appointment.id, "cancelled")
        return web.json_response(await self._appointment_json(appointment))

    async def reissue_invite(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        appointment = await self._own_appointment(request, signed_in)
        ensure_changeable(appointment)
        invite = mint_invite(self._config)
        # Replacing the stored hash is what kills the old link. A new link is for a new start
        # (often a new device): the old browser binding and its consent go with the old link.
        updated = await self._storage.update_appointment(
            appointment.id,
            invite_token_hash=invite.token_hash,
            client_binding_hash=None,
            client_display_name=None,
            terms_version=None,
            consent_at=None,
        )
        card = await self._storage.get_crisis_card(appointment.id)
        if card is not None:
            # what the old link's client wrote goes with the old link; the card stays on
            await self._storage.set_crisis_card(appointment.id, False)
            await self._storage.set_crisis_card(appointment.id, True)
        await self._mail.link_replaced(appointment.id)
        log_event(logger, "invite_reissued", appointment_id=appointment.id)
        return web.json_response(
            {**appointment_json(updated, crisis_card=card is not None), "invite_url": invite.url}
        )

    # --- helpers

    def _signed_in(
        self, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a handler: require a live session, and the CSRF checks for state changes."""

        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if request.method in STATE_CHANGING_METHODS:
                check_origin(request, self._origin)
            signed_in = await current_session(request, self._storage)
            if signed_in is None:
                raise ApiError(401, "unauthorized", "Sign in first")
            if request.method in STATE_CHANGING_METHODS:
                check_csrf_token(request, signed_in.session.csrf_token)
            return await handler(request, signed_in)

        return wrapped

    async def _appointment_json(self, appointment: Appointment) -> dict:
        card = await self._storage.get_crisis_card(appointment.id)
        return appointment_json(appointment, crisis_card=card is not None)

    async def _own_appointment(self, request: web.Request, signed_in: SignedIn) -> Appointment:
        appointment = await _appointment_by_path(self._storage, request)
        if appointment is None or appointment.therapist_id != signed_in.therapist.id:
            raise ApiError(404, "not_found", "No such appointment")
        return appointment


async def _appointment_by_path(storage: Storage, request: web.Request) -> Appointment | None:
    raw = request.match_info["id"]
    # isdigit() alone accepts "²"; int() of huge numbers would overflow SQLite's integer.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    return await storage.get_appointment(int(raw))


def _invitation_mail_json(config: Config) -> dict | None:
    if not config.mail.enabled:
        return None
    return {"reminder_minutes_before": config.mail.reminder_minutes_before}


def _settings_json(settings: TherapistSettings) -> dict:
    return {"arrival_alert": settings.arrival_alert}


@functools.cache
def _dummy_hash() -> str:
    """An argon2 hash of a random password, made on first use (not at import)."""
    return hash_password(new_token())
