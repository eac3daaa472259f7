"""Therapist sign-in sessions: a random token in an HttpOnly cookie, its hash in the database.

Sessions end after `IDLE_TIMEOUT` without a request, on logout (every session of the therapist),
when the account is disabled and when its password is reset. Ending them also ends the therapist's
open WebSockets: at once in this process (`SignedInSockets.sign_out_therapist`), and within
`SESSION_RECHECK_SECONDS` when another process (the CLI) changed the database.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from aiohttp import web

from signaling.config import Config
from signaling.credentials import hash_token, new_token
from signaling.logs import LOGGER_NAME, log_event
from signaling.storage import LoginSession, Storage, Therapist

__all__ = [
    "COOKIE_NAME",
    "IDLE_TIMEOUT",
    "SESSION_RECHECK_SECONDS",
    "SignedIn",
    "SignedInSockets",
    "clear_cookie",
    "current_session",
    "end_all_sessions",
    "set_cookie",
    "signed_in_redirect",
    "signed_in_response",
    "start_session",
]

COOKIE_NAME = "sprechzimmer_session"

logger = logging.getLogger(LOGGER_NAME)

# A working day with breaks; after that the therapist signs in again.
IDLE_TIMEOUT = dt.timedelta(hours=12)

# Extending the session on every request would write to the database on every request; once a
# minute is precise enough for a 12-hour timeout.
_TOUCH_INTERVAL = dt.timedelta(minutes=1)

# `therapist disable` and `reset-password` run in another process and can only change the
# database: an open socket notices on its next message, and an idle one within this many seconds.
SESSION_RECHECK_SECONDS = 5.0


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


async def signed_in_response(
    storage: Storage, config: Config, therapist: Therapist, extra: dict[str, object] | None = None
) -> web.Response:
    """A new session for `therapist`: the JSON the page needs (username, CSRF token, and
    `extra`) and the session cookie. Every way of signing in ends here."""
    token, session = await start_session(storage, therapist)
    response = web.json_response(
        {"username": therapist.username, "csrf_token": session.csrf_token, **(extra or {})}
    )
    set_cookie(response, config, token)
    return response


async def signed_in_redirect(
    storage: Storage, config: Config, therapist: Therapist, location: str
) -> web.Response:
    """A new session for `therapist` and a 303 to `location` (single sign-on, where the browser
    arrives by navigation rather than by `fetch`). Like `signed_in_response`, the cookie is
    always a fresh token, never one the browser brought along."""
    token, _session = await start_session(storage, therapist)
    response = web.Response(status=303, headers={"Location": location})
    set_cookie(response, config, token)
    return response


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


async def end_all_sessions(storage: Storage, therapist_id: int) -> None:
    """Sign the therapist out everywhere. Logout does this rather than end one session: a
    therapist who signs out because a device was lost or shared means that device too."""
    await storage.delete_login_sessions_of(therapist_id)


class SignedInSockets:
    """The open WebSockets of signed-in therapists, by login session, each with the function
    that tells it it is signed out and closes it."""

    def __init__(self) -> None:
        self._sockets: dict[int, dict[Hashable, Callable[[], None]]] = {}
        self._therapist: dict[int, int] = {}

    def add(self, session: LoginSession, socket: Hashable, sign_out: Callable[[], None]) -> None:
        self._sockets.setdefault(session.id, {})[socket] = sign_out
        self._therapist[session.id] = session.therapist_id

    def discard(self, session: LoginSession, socket: Hashable) -> None:
        sockets = self._sockets.get(session.id)
        if sockets is not None:
            sockets.pop(socket, None)
            if not sockets:
                del self._sockets[session.id]
                del self._therapist[session.id]

    def sign_out_therapist(self, therapist_id: int) -> None:
        """Close every socket of the therapist, whichever session opened it."""
        self._sign_out(s for s, t in self._therapist.items() if t == therapist_id)

    async def recheck(self, storage: Storage) -> None:
        """Close the sockets whose session has ended in the database (deleted by another
        process, expired, or its account disabled)."""
        if not self._sockets:
            return
        live = await storage.live_login_sessions(set(self._sockets), _now())
        self._sign_out(s for s in list(self._sockets) if s not in live)

    def _sign_out(self, session_ids: Iterable[int]) -> None:
        for session_id in list(session_ids):
            sockets = self._sockets.pop(session_id, {})
            self._therapist.pop(session_id, None)
            if sockets:
                log_event(logger, "signed_out_sockets", sockets=len(sockets))
            for sign_out in sockets.values():
                sign_out()


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
