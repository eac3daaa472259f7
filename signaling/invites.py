"""The client's invite link: finding it, whether it may be used, and binding it to one browser.

A link is `/j/<token>`; only the token's SHA-256 is stored. On consent the link is bound to the
browser ("einmaliger Zugangslink"): the browser gets a random binding secret in the HttpOnly
cookie `sz_client`, and the appointment stores only the secret's SHA-256. Lookups go token →
appointment → compare the cookie's hash, so the cookie names no appointment.

Any other browser sees the link as invalid. To the outside a used link is indistinguishable from
an unknown one; `InviteAccess` keeps the difference for the WebSocket's `used` error and for
counting refusals by reason.

No HTTP here: the JSON routes (`routes_client`), the pages and the WebSocket all decide with these
functions.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from signaling.credentials import hash_token, new_token
from signaling.storage import Appointment, AppointmentState, Storage

__all__ = [
    "COOKIE_NAME",
    "MAX_DISPLAY_NAME_LENGTH",
    "Consent",
    "InviteAccess",
    "InviteStatus",
    "binding_matches",
    "clean_display_name",
    "find_invite",
    "invite_access",
    "invite_status",
    "is_well_formed_token",
    "record_consent",
    "usable_for_page",
]

# One cookie for all links: a cookie per link would tell which links a browser holds.
COOKIE_NAME = "sz_client"

MAX_DISPLAY_NAME_LENGTH = 60

# `credentials.new_token`: secrets.token_urlsafe(32) is 32 bytes in unpadded base64url.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class InviteStatus(StrEnum):
    """Where the appointment stands in time, regardless of who asks."""

    NOT_YET_OPEN = "not_yet_open"
    OPEN = "open"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class InviteAccess(StrEnum):
    """What a browser may do with a link. Everything but OK and NOT_YET_OPEN answers as an invalid
    link; the difference is kept for the WebSocket's error codes and for counting refusals.

    OK means the link is open and either not bound yet (consent pending) or bound to this browser;
    `binding_matches` tells the two apart.
    """

    OK = "ok"
    INVALID = "invalid"
    USED = "used"
    EXPIRED = "expired"
    NOT_YET_OPEN = "not_yet_open"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Consent:
    """A recorded consent. `binding_secret` goes into the cookie until `cookie_expires`."""

    appointment: Appointment
    binding_secret: str
    cookie_expires: dt.datetime


def is_well_formed_token(value: object) -> bool:
    """Whether `value` has the shape of `credentials.new_token` (43 base64url characters)."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


async def find_invite(storage: Storage, token: str) -> Appointment | None:
    """The appointment whose live invite link carries `token`, or None (unknown, malformed,
    cancelled, reissued or purged: those links have no stored hash any more)."""
    if not is_well_formed_token(token):
        return None
    return await storage.get_appointment_by_token_hash(hash_token(token))


def invite_status(appointment: Appointment, now: dt.datetime) -> InviteStatus:
    if appointment.state is AppointmentState.CANCELLED:
        return InviteStatus.CANCELLED
    if appointment.state is AppointmentState.ENDED or now >= appointment.valid_until:
        return InviteStatus.EXPIRED
    if now < appointment.opens_at:
        return InviteStatus.NOT_YET_OPEN
    return InviteStatus.OPEN


def invite_access(
    appointment: Appointment | None, cookie_value: str | None, now: dt.datetime
) -> InviteAccess:
    """What the browser holding `cookie_value` (the `sz_client` cookie, or None) may do with the
    link that led to `appointment` (None: no such link)."""
    if appointment is None:
        return InviteAccess.INVALID
    status = invite_status(appointment, now)
    if status is InviteStatus.CANCELLED:
        return InviteAccess.CANCELLED
    if status is InviteStatus.EXPIRED:
        return InviteAccess.EXPIRED
    if appointment.client_binding_hash is not None and not binding_matches(
        appointment, cookie_value
    ):
        return InviteAccess.USED
    if status is InviteStatus.NOT_YET_OPEN:
        return InviteAccess.NOT_YET_OPEN
    return InviteAccess.OK


def usable_for_page(access: InviteAccess) -> bool:
    """Whether `/j/<token>` shows the waiting room; every other case gets the invalid-link page.
    Clients may arrive early, read the terms and consent before the link opens."""
    return access in (InviteAccess.OK, InviteAccess.NOT_YET_OPEN)


def binding_matches(appointment: Appointment, cookie_value: str | None) -> bool:
    """Whether the link is bound to the browser that sent `cookie_value`. Constant time."""
    stored = appointment.client_binding_hash
    if stored is None or not is_well_formed_token(cookie_value):
        return False
    return hmac.compare_digest(hash_token(cookie_value), stored)  # type: ignore[arg-type]


async def record_consent(
    storage: Storage,
    appointment: Appointment,
    cookie_value: str | None,
    display_name: str | None,
    terms_version: str,
    now: dt.datetime,
) -> Consent | None:
    """Record the client's consent and bind the link to this browser; None if another browser
    holds the link (or it was cancelled or reissued meanwhile). Call only after `invite_access`
    said OK or NOT_YET_OPEN. The same browser may consent again: the name and terms version are
    replaced, the binding never changes.
    """
    if binding_matches(appointment, cookie_value):
        secret = cookie_value
    elif appointment.client_binding_hash is not None:
        return None
    elif is_well_formed_token(cookie_value) and await storage.latest_bound_valid_until(
        hash_token(cookie_value),
        now,  # type: ignore[arg-type]
    ):
        # The browser already holds a secret bound to another live link (a client with two
        # appointments): reuse it, or the second consent would overwrite the cookie and lock
        # the browser out of the first link. Only a secret that is bound somewhere is reused,
        # so a cookie planted by someone else is not adopted.
        secret = cookie_value
    else:
        secret = new_token()
    assert secret is not None
    binding_hash = hash_token(secret)
    updated = await storage.record_client_consent(
        appointment.id,
        appointment.invite_token_hash or "",
        binding_hash,
        display_name,
        terms_version,
        now,
    )
    if updated is None:
        return None
    expires = await storage.latest_bound_valid_until(binding_hash, now)
    return Consent(updated, secret, max(expires or updated.valid_until, updated.valid_until))


def clean_display_name(raw: object) -> str | None:
    """The name the client typed, safe to show: NFC, whitespace collapsed, control and format
    characters (Unicode category C*, bidi overrides among them) removed, at most
    `MAX_DISPLAY_NAME_LENGTH` characters; None when nothing is left. Raise `ValueError` for
    anything but a string or None. HTML is kept as text: the page renders it inertly."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError("display_name must be a string or null")
    # Whitespace first, so "Anna\nMüller" keeps its space; then drop C*, which can leave runs.
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    text = "".join(c for c in text if not unicodedata.category(c).startswith("C"))
    text = " ".join(text.split())[:MAX_DISPLAY_NAME_LENGTH].rstrip()
    return text or None
