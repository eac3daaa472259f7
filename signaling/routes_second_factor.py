"""Two-factor sign-in under /api/therapist/ (docs/api.md#two-factor-sign-in).

The password step (`TherapistApi.login`) answers a therapist with an authenticator app with a
*ticket* instead of a session; `POST /login/code` with the ticket and a code (or a recovery
code) then starts the session. With `auth.require_totp` a therapist without one gets an
``enrol`` ticket and sets it up first (`POST /login/totp-setup`), confirming it with the first
code, which also signs in. Signed in, a therapist turns it on or off on the security page.

The code step is throttled like the password (per account and per address, counted on
arrival; in a cluster the counts are in Redis, so attempts spread over nodes count together),
and each code works once: the storage keeps the last accepted 30-second step.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from signaling.client_address import client_address
from signaling.config import Config
from signaling.csrf import check_origin, origin_of
from signaling.http_errors import ApiError, read_json
from signaling.login_sessions import SignedIn, signed_in_response
from signaling.login_throttle import Attempt, LoginAttempts, local_login_attempts
from signaling.logs import LOGGER_NAME, log_event, render_ip
from signaling.storage import AlreadyExists, Storage, Therapist
from signaling.totp import (
    SecretBox,
    TicketSigner,
    hash_recovery_code,
    matching_step,
    new_recovery_codes,
    new_secret,
    normalise_recovery_code,
    provisioning_uri,
    qr_svg_data_uri,
)

__all__ = ["SecondFactorApi"]

logger = logging.getLogger(LOGGER_NAME)

Handler = Callable[[web.Request, SignedIn], Awaitable[web.StreamResponse]]
Wrap = Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]


class SecondFactorApi:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        session_secret: str,
        attempts: LoginAttempts | None = None,
    ) -> None:
        self._config = config
        self._storage = storage
        self._origin = origin_of(config.server.public_url)
        self._box = SecretBox(session_secret)
        self._tickets = TicketSigner(session_secret)
        # Its own counts: a right password must not buy fresh guesses at the code, and guesses
        # at the code must not lock out the password step of someone else on the address. In a
        # cluster they are in Redis (signaling/cluster/login_attempts.py): a ticket's code step
        # may land on any node.
        self._attempts = attempts or local_login_attempts(config.limits)

    def register(self, router: web.UrlDispatcher, prefix: str, signed_in: Wrap) -> None:
        router.add_post(f"{prefix}/login/code", self.login_code)
        router.add_post(f"{prefix}/login/totp-setup", self.login_setup)
        router.add_get(f"{prefix}/totp", signed_in(self.status))
        router.add_post(f"{prefix}/totp/setup", signed_in(self.setup))
        router.add_post(f"{prefix}/totp/confirm", signed_in(self.confirm))
        router.add_post(f"{prefix}/totp/disable", signed_in(self.disable))
        router.add_post(f"{prefix}/totp/recovery-codes", signed_in(self.renew_codes))

    # --- the password step hands over here

    async def after_password(self, therapist: Therapist) -> web.Response | None:
        """The answer to a right password when a second step is due; None when it is not."""
        enrolment = await self._storage.get_totp(therapist.id)
        if enrolment is not None and enrolment.confirmed:
            purpose = "code"
        elif self._config.auth.require_totp:
            purpose = "enrol"
        else:
            return None
        ticket = self._tickets.issue(therapist.id, purpose, therapist.password_hash)
        log_event(logger, "login_second_factor_asked", therapist_id=therapist.id, step=purpose)
        return web.json_response({"second_factor": purpose, "ticket": ticket})

    # --- second step, before any session

    async def login_setup(self, request: web.Request) -> web.Response:
        check_origin(request, self._origin)
        body = await read_json(request)
        therapist, ticket_purpose = await self._ticket(body)
        if ticket_purpose != "enrol":
            raise ApiError(409, "already_enabled", "Two-factor sign-in is already on")
        return web.json_response(await self._begin(therapist))

    async def login_code(self, request: web.Request) -> web.Response:
        check_origin(request, self._origin)
        body = await read_json(request)
        code = body.get("code")
        if not isinstance(code, str) or len(code) > 64:
            raise ApiError(400, "invalid_request", "code is a required string")
        therapist, purpose = await self._ticket(body)
        address = client_address(request, self._config.server.trusted_proxies)
        ip = render_ip(address, self._config.privacy.log_ip)
        # Counted on arrival, like the password: parallel guesses all count.
        attempt = await self._attempts.begin(f"id:{therapist.id}", address)
        if not isinstance(attempt, Attempt):
            log_event(logger, "login_code_throttled", logging.WARNING, ip=ip)
            raise ApiError(
                429,
                "rate_limited",
                "Too many wrong codes; try again later",
                {"Retry-After": str(attempt)},
            )
        payload: dict[str, object] = {}
        if purpose == "enrol":
            codes = await self._confirm(therapist, code)
            payload["recovery_codes"] = codes
        else:
            await self._check_code(therapist, code, ip)
        await self._attempts.succeeded(attempt)
        log_event(logger, "login", therapist_id=therapist.id, ip=ip, second_factor=True)
        return await signed_in_response(self._storage, self._config, therapist, payload)

    # --- signed in: the security page

    async def status(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        therapist_id = signed_in.therapist.id
        enrolment = await self._storage.get_totp(therapist_id)
        enabled = enrolment is not None and enrolment.confirmed
        return web.json_response(
            {
                "enabled": enabled,
                "required": self._config.auth.require_totp,
                "recovery_codes_left": (
                    await self._storage.recovery_codes_left(therapist_id) if enabled else 0
                ),
            }
        )

    async def setup(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        return web.json_response(await self._begin(signed_in.therapist))

    async def confirm(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        code = await _code_of(request)
        codes = await self._guarded(request, signed_in.therapist, self._confirm, code)
        return web.json_response({"enabled": True, "recovery_codes": codes})

    async def disable(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        code = await _code_of(request)
        if self._config.auth.require_totp:
            raise ApiError(403, "totp_required", "Two-factor sign-in is required here")
        therapist = signed_in.therapist
        await self._guarded(request, therapist, self._check_code, code, "-")
        await self._storage.delete_totp(therapist.id)
        log_event(logger, "totp_disabled", therapist_id=therapist.id)
        return web.json_response({"enabled": False})

    async def renew_codes(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        code = await _code_of(request)
        therapist = signed_in.therapist
        await self._guarded(request, therapist, self._check_code, code, "-")
        codes = new_recovery_codes()
        await self._storage.replace_recovery_codes(
            therapist.id, [hash_recovery_code(c) for c in codes]
        )
        log_event(logger, "recovery_codes_renewed", therapist_id=therapist.id)
        return web.json_response({"recovery_codes": codes})

    # --- helpers

    async def _ticket(self, body: dict) -> tuple[Therapist, str]:
        ticket = body.get("ticket")
        if not isinstance(ticket, str):
            raise ApiError(400, "invalid_request", "ticket is a required string")
        therapist_id = self._tickets.peek(ticket)
        therapist = (
            await self._storage.get_therapist_by_id(therapist_id)
            if therapist_id is not None
            else None
        )
        checked = self._tickets.check(ticket, therapist.password_hash) if therapist else None
        if therapist is None or checked is None or therapist.disabled:
            # expired, forged, or the password changed since: one answer, start over
            raise ApiError(401, "ticket_expired", "Sign in again with your password")
        return therapist, checked.purpose

    async def _begin(self, therapist: Therapist) -> dict[str, object]:
        secret = new_secret()
        try:
            await self._storage.begin_totp(therapist.id, self._box.seal(secret, therapist.id))
        except AlreadyExists:
            raise ApiError(409, "already_enabled", "Two-factor sign-in is already on") from None
        uri = provisioning_uri(secret, therapist.username)
        log_event(logger, "totp_setup_started", therapist_id=therapist.id)
        # The secret appears in this response only (and, sealed, in the database).
        return {"secret": secret, "otpauth_uri": uri, "qr_svg": qr_svg_data_uri(uri)}

    async def _confirm(self, therapist: Therapist, code: str) -> list[str]:
        enrolment = await self._storage.get_totp(therapist.id)
        if enrolment is None or enrolment.confirmed:
            raise ApiError(409, "no_setup", "Start the set-up first")
        secret = self._box.open(enrolment.secret_sealed, therapist.id)
        step = matching_step(secret, code) if secret else None
        if step is None:
            log_event(logger, "totp_confirm_failed", logging.WARNING, therapist_id=therapist.id)
            raise ApiError(401, "invalid_code", "The code is not right")
        codes = new_recovery_codes()
        hashes = [hash_recovery_code(c) for c in codes]
        if not await self._storage.confirm_totp(therapist.id, step, hashes, _now()):
            raise ApiError(409, "no_setup", "Start the set-up first")
        log_event(logger, "totp_enabled", therapist_id=therapist.id)
        return codes

    async def _check_code(self, therapist: Therapist, code: str, ip: str) -> None:
        """Accept a current TOTP code not used before, or an unused recovery code."""
        enrolment = await self._storage.get_totp(therapist.id)
        if enrolment is None or not enrolment.confirmed:
            raise ApiError(409, "not_enabled", "Two-factor sign-in is not on")
        recovery = normalise_recovery_code(code)
        if recovery is not None:
            if await self._storage.use_recovery_code(
                therapist.id, hash_recovery_code(recovery), _now()
            ):
                log_event(logger, "recovery_code_used", therapist_id=therapist.id)
                return
            log_event(logger, "login_code_failed", logging.WARNING, ip=ip, kind="recovery")
            raise ApiError(401, "invalid_code", "The code is not right")
        secret = self._box.open(enrolment.secret_sealed, therapist.id)
        if secret is None:
            # the session secret changed since enrolment; an operator resets it (docs)
            log_event(logger, "totp_secret_unreadable", logging.ERROR, therapist_id=therapist.id)
            raise ApiError(401, "invalid_code", "The code is not right")
        # pyotp's HMAC work is tiny (microseconds), so no thread is needed
        step = matching_step(secret, code)
        if step is None:
            log_event(logger, "login_code_failed", logging.WARNING, ip=ip, kind="totp")
            raise ApiError(401, "invalid_code", "The code is not right")
        if not await self._storage.use_totp_step(therapist.id, step):
            log_event(logger, "login_code_reused", logging.WARNING, ip=ip)
            raise ApiError(401, "code_used", "This code was used already; wait for the next one")

    async def _guarded(
        self,
        request: web.Request,
        therapist: Therapist,
        check: Callable[..., Awaitable[object]],
        *args: object,
    ) -> object:
        """A code check on a signed-in page, throttled like the sign-in's."""
        address = client_address(request, self._config.server.trusted_proxies)
        attempt = await self._attempts.begin(f"id:{therapist.id}", address)
        if not isinstance(attempt, Attempt):
            raise ApiError(
                429,
                "rate_limited",
                "Too many wrong codes; try again later",
                {"Retry-After": str(attempt)},
            )
        result = await check(therapist, *args)
        await self._attempts.succeeded(attempt)
        return result


async def _code_of(request: web.Request) -> str:
    body = await read_json(request)
    code = body.get("code")
    if not isinstance(code, str) or len(code) > 64:
        raise ApiError(400, "invalid_request", "code is a required string")
    return code


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
