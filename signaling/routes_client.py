"""The client's JSON API under /api/client/, used by the waiting-room page. No account: the
invite token in the path and, after consent, the `sz_client` cookie are the credentials.

Every refusal of the link itself — unknown, malformed, cancelled, expired, or bound to another
browser — answers the same 404 `invalid_link`, so the answer does not tell which case it is.
Responses are `Cache-Control: no-store`: they describe one person's appointment.

Never log the token (it is in the path), the binding secret, the display name or the crisis
card.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from signaling.config import Config
from signaling.csrf import check_origin, origin_of
from signaling.http_errors import ApiError, read_json
from signaling.invites import (
    COOKIE_NAME,
    Consent,
    InviteAccess,
    binding_matches,
    clean_display_name,
    find_invite,
    invite_access,
    record_consent,
    usable_for_page,
)
from signaling.logs import LOGGER_NAME, log_event
from signaling.storage import Appointment, CrisisCard, Storage
from signaling.terms import TERMS_VERSION

__all__ = ["PREFIX", "ClientApi"]

PREFIX = "/api/client"

NO_STORE = {"Cache-Control": "no-store"}

logger = logging.getLogger(LOGGER_NAME)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CONSENT_FIELDS = {
    "terms_version",
    "accept_terms",
    "consent_processing",
    "display_name",
    "crisis_location",
    "crisis_phone",
}
# An address with flat, floor and a hint for the door fits in 300; a longer text is no address.
MAX_CRISIS_LOCATION_LENGTH = 300
# E.164 allows 15 digits; 40 leaves room for the spaces, brackets and dashes people write.
MAX_CRISIS_PHONE_LENGTH = 40
_PHONE = re.compile(r"\+?[0-9 ()/.-]+")
MIN_PHONE_DIGITS = 3  # 110 and 112 are the shortest numbers anyone would give


class ClientApi:
    def __init__(self, config: Config, storage: Storage) -> None:
        self._config = config
        self._storage = storage
        self._origin = origin_of(config.server.public_url)

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get(f"{PREFIX}/{{token}}", _client_route("link", self.link))
        router.add_post(f"{PREFIX}/{{token}}/consent", _client_route("consent", self.consent))

    async def link(self, request: web.Request) -> web.Response:
        """The link's state for the waiting-room page, and whether this browser holds it."""
        appointment, cookie, access = await self._usable_link(request, "link", _now())
        bound = binding_matches(appointment, cookie)
        card = await self._storage.get_crisis_card(appointment.id)
        card_given = card is not None and card.location is not None
        ends_at = appointment.starts_at + dt.timedelta(minutes=appointment.duration_minutes)
        answer: dict[str, Any] = {
            "state": "open" if access is InviteAccess.OK else "not_yet_open",
            "starts_at": _iso(appointment.starts_at),
            "ends_at": _iso(ends_at),
            "opens_at": _iso(appointment.opens_at),
            "valid_until": _iso(appointment.valid_until),
            "terms_version": TERMS_VERSION,
            "bound": bound,
            "crisis_card": card is not None,
            # So the page can tell a browser without frame encryption at once that it cannot
            # take part, instead of after consent and camera (media.e2ee "required").
            "e2ee": self._config.media.e2ee,
        }
        if bound:
            # Only to the browser the link is bound to: what it gave itself. `resume` says it
            # may go straight back into the call (a reload, a closed tab) without consenting.
            answer["display_name"] = appointment.client_display_name
            answer["resume"] = appointment.terms_version == TERMS_VERSION and (
                card is None or card_given
            )
        return web.json_response(answer)

    async def consent(self, request: web.Request) -> web.Response:
        """Record consent and bind the link to this browser (or rename, for the bound browser).

        CSRF: the client has no session before consent, so there is no CSRF token to check.
        The defences are (1) the `Origin` check below, (2) the JSON content type that
        `read_json` requires, which a cross-site form cannot send and a cross-site `fetch` can
        send only after a CORS preflight we never answer, and (3) the SameSite=Strict cookie,
        which a cross-site request does not carry, so it cannot rename a bound link. A forged
        first consent would also need the secret token in the path.
        """
        check_origin(request, self._origin)
        body = await read_json(request)
        now = _now()
        appointment, cookie, _ = await self._usable_link(request, "consent", now)
        terms_version, display_name = _parse_consent(body)
        card_on = await self._storage.get_crisis_card(appointment.id) is not None
        card = _parse_crisis_card(body, card_on)
        consent = await record_consent(
            self._storage, appointment, cookie, display_name, terms_version, now
        )
        if consent is None:
            # Another browser won a race to bind it, or it was cancelled or reissued meanwhile.
            raise _invalid_link("consent", InviteAccess.USED)
        if card is not None and card.location is not None and card.phone is not None:
            # False only if the therapist switched the card off in between: nothing to keep
            await self._storage.fill_crisis_card(appointment.id, card.location, card.phone)
        log_event(
            logger,
            "client_consented",
            appointment_id=appointment.id,
            renewed=appointment.client_binding_hash is not None,
            named=display_name is not None,
        )
        response = web.json_response({"bound": True})
        self._set_cookie(response, consent, now)
        return response

    async def _usable_link(
        self, request: web.Request, route: str, now: dt.datetime
    ) -> tuple[Appointment, str | None, InviteAccess]:
        """The link's appointment, the browser's cookie and its access (OK or NOT_YET_OPEN);
        404 `invalid_link` for everything else."""
        appointment = await find_invite(self._storage, request.match_info["token"])
        cookie = request.cookies.get(COOKIE_NAME)
        access = invite_access(appointment, cookie, now)
        if appointment is None or not usable_for_page(access):
            raise _invalid_link(route, access)
        return appointment, cookie, access

    def _set_cookie(self, response: web.Response, consent: Consent, now: dt.datetime) -> None:
        response.set_cookie(
            COOKIE_NAME,
            consent.binding_secret,
            path="/",
            httponly=True,
            samesite="Strict",
            # TLS may end at a reverse proxy; an https public URL means the browser speaks TLS.
            secure=self._config.server.tls or self._config.server.public_url.startswith("https://"),
            # Until the last link bound to it expires; the server checks validity anyway.
            max_age=math.ceil((consent.cookie_expires - now).total_seconds()),
        )


def _parse_consent(body: dict[str, Any]) -> tuple[str, str | None]:
    """Validate a consent body; return the terms version and the cleaned display name."""
    unknown = sorted(set(body) - _CONSENT_FIELDS)
    if unknown:
        raise ApiError(400, "invalid_request", f"Unknown field: {unknown[0]}")
    terms_version = body.get("terms_version")
    if not isinstance(terms_version, str):
        raise ApiError(400, "invalid_request", "terms_version is required and must be a string")
    for flag in ("accept_terms", "consent_processing"):
        # Literally true: "yes", 1 or a missing field is no consent.
        if body.get(flag) is not True:
            raise ApiError(400, "invalid_request", f"{flag} must be true")
    if terms_version != TERMS_VERSION:
        raise ApiError(400, "terms_changed", "The terms have changed; read and accept them again")
    try:
        display_name = clean_display_name(body.get("display_name"))
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    return terms_version, display_name


def _parse_crisis_card(body: dict[str, Any], card_on: bool) -> CrisisCard | None:
    """The crisis card from a consent body: both fields required when the therapist switched
    the card on, refused when not (nothing is kept that nobody asked for)."""
    given = [field for field in ("crisis_location", "crisis_phone") if field in body]
    if not card_on:
        if given:
            raise ApiError(
                400, "invalid_request", f"{given[0]}: this appointment has no crisis card"
            )
        return None
    location = _card_text(
        body.get("crisis_location"), "crisis_location", MAX_CRISIS_LOCATION_LENGTH
    )
    phone = _card_text(body.get("crisis_phone"), "crisis_phone", MAX_CRISIS_PHONE_LENGTH)
    if not _PHONE.fullmatch(phone) or sum(c.isdigit() for c in phone) < MIN_PHONE_DIGITS:
        raise ApiError(
            400, "invalid_request", "crisis_phone must be a phone number: digits, +, spaces, ()-/."
        )
    return CrisisCard(location, phone)


def _card_text(raw: object, field: str, limit: int) -> str:
    """Trimmed, whitespace collapsed, control and format characters removed; required."""
    if not isinstance(raw, str):
        raise ApiError(400, "invalid_request", f"{field} is required and must be a string")
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    text = " ".join("".join(c for c in text if not unicodedata.category(c).startswith("C")).split())
    if not text:
        raise ApiError(400, "invalid_request", f"{field} is required")
    if len(text) > limit:
        raise ApiError(400, "invalid_request", f"{field} must be at most {limit} characters")
    return text


def _invalid_link(route: str, access: InviteAccess) -> ApiError:
    # The reason is logged for counting; the answer is the same for every reason.
    log_event(logger, "client_link_refused", route=route, reason=access.value)
    return ApiError(404, "invalid_link", "This link is not valid")


def _client_route(route: str, handler: Handler) -> Handler:
    """Add `Cache-Control: no-store` to every answer, errors included, and keep the token out of
    the crash log: the generic error middleware would log the path, which holds the token."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            exc.headers.update(NO_STORE)
            raise
        except (web.HTTPException, asyncio.CancelledError):
            raise
        except Exception as exc:
            log_event(
                logger,
                "unhandled_error",
                logging.ERROR,
                method=request.method,
                route=route,
                error=type(exc).__name__,
            )
            raise ApiError(500, "internal_error", "Internal server error", dict(NO_STORE)) from None
        response.headers.update(NO_STORE)
        return response

    return wrapped


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
