"""Therapist sign-in sessions: a random token in an HttpOnly cookie, its hash in the database.

Sessions end after `IDLE_TIMEOUT` without a request, on logout, or when the account is disabled.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from aiohttp import web

from signaling.config import Config
from signaling.credentials import hash_token, new_token
from signaling.storage import LoginSession, Storage, Therapist

__all__ = [
    "COOKIE_NAME",
    "IDLE_TIMEOUT",
    "SignedIn",
    "clear_cookie",
    "current_session",
    "end_session",
    "set_cookie",
    "start_session",
]

COOKIE_NAME = "sprechzimmer_session"

# A working day with breaks; after that the therapist signs in again.
IDLE_TIMEOUT = dt.timedelta(hours=12)

# Extending the session on every request would write to the database on every request; once a
# minute is precise enough for a 12-hour timeout.
_TOUCH_INTERVAL = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class SignedIn:
    therapist: Therapist
    session: LoginSession


async def start_session(storage: Storage, therapist: Therapist) -> tuple[str, LoginSession]:
    """Create a session; return the cookie token (never stored) and the session."""
    token = new_token()
    now = _now()
    session = await storage.create_login_session(
        hash_token(token), therapist.id, new_token(), now, now + IDLE_TIMEOUT
    )
    return token, session


async def current_session(request: web.Request, storage: Storage) -> SignedIn | None:
    """The live session named by the request's cookie, or None."""
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    session = await storage.get_login_session(hash_token(token))
    now = _now()
    if session is None or session.expires_at <= now:
        return None
    therapist = await storage.get_therapist_by_id(session.therapist_id)
    if therapist is None or therapist.disabled:
        return None
    if now - session.last_seen_at >= _TOUCH_INTERVAL:
        await storage.touch_login_session(session.id, now, now + IDLE_TIMEOUT)
    return SignedIn(therapist, session)


async def end_session(storage: Storage, session: LoginSession) -> None:
    await storage.delete_login_session(session.id)


def set_cookie(response: web.StreamResponse, config: Config, token: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_secure(config),
        # No max_age: a browser session cookie; the server enforces the idle timeout.
    )


def clear_cookie(response: web.StreamResponse, config: Config) -> None:
    response.del_cookie(COOKIE_NAME, path="/", secure=_secure(config), samesite="Strict")


def _secure(config: Config) -> bool:
    # TLS may end at a reverse proxy; an https public URL means the browser speaks TLS.
    return config.server.tls or config.server.public_url.startswith("https://")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
