"""The admin's JSON API under /api/admin/ and the reports it draws (issue #13).

Every route checks, on the server and on every request, a live session of an account with the
admin role (401 without a session, 403 `forbidden` without the role), and the same CSRF checks as
the therapist API for state changes. Nothing here reads or returns client data: accounts, keys,
the audit log, session counts and lengths per month, and the service's own counters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from signaling.account_admin import (
    audit,
    create_account,
    issue_password_link,
    unusable_password_hash,
)
from signaling.charts import Bar, bar_chart
from signaling.config import Config
from signaling.credentials import hash_password, hash_token, new_token
from signaling.csrf import STATE_CHANGING_METHODS, check_csrf_token, check_origin, origin_of
from signaling.http_errors import ApiError, read_json
from signaling.login_sessions import SignedIn, current_session
from signaling.logs import LOGGER_NAME
from signaling.relay_setup import sign_out_live
from signaling.routes_pages import choose_language
from signaling.storage import AlreadyExists, NotFound, Storage, Therapist
from signaling.usage_reports import (
    MonthUsage,
    WeekHealth,
    csv_bytes,
    health_by_week,
    usage_by_month,
)

__all__ = ["NAME", "PREFIX", "AdminApi", "SetPasswordApi", "therapist_json"]

PREFIX = "/api/admin"

logger = logging.getLogger(LOGGER_NAME)

# The CLI's rule for usernames and key names (signaling/cli.py).
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
AUDIT_LIMIT_MAX = 500
SVG_HEADERS = {"Content-Type": "image/svg+xml; charset=utf-8"}

Handler = Callable[[web.Request, SignedIn], Awaitable[web.StreamResponse]]


class AdminApi:
    def __init__(self, config: Config, storage: Storage) -> None:
        self._config = config
        self._storage = storage
        self._origin = origin_of(config.server.public_url)

    def register(self, router: web.UrlDispatcher) -> None:
        admin = self._admin
        router.add_get(f"{PREFIX}/therapists", admin(self.therapists))
        router.add_post(f"{PREFIX}/therapists", admin(self.add_therapist))
        item = f"{PREFIX}/therapists/{{username}}"
        router.add_post(f"{item}/disable", admin(self.disable))
        router.add_post(f"{item}/enable", admin(self.enable))
        router.add_post(f"{item}/reset-password", admin(self.reset_password))
        router.add_put(f"{item}/admin", admin(self.set_admin))
        router.add_get(f"{PREFIX}/api-keys", admin(self.api_keys))
        router.add_post(f"{PREFIX}/api-keys", admin(self.create_api_key))
        router.add_delete(f"{PREFIX}/api-keys/{{name}}", admin(self.revoke_api_key))
        router.add_get(f"{PREFIX}/audit", admin(self.audit_log))
        router.add_get(f"{PREFIX}/usage", admin(self.usage))
        router.add_get(f"{PREFIX}/usage.csv", admin(self.usage_csv))
        router.add_get(f"{PREFIX}/usage-{{metric}}.svg", admin(self.usage_chart))
        router.add_get(f"{PREFIX}/health", admin(self.health))
        router.add_get(f"{PREFIX}/health.csv", admin(self.health_csv))
        router.add_get(f"{PREFIX}/health-media.svg", admin(self.health_chart))

    # --- accounts

    async def therapists(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        therapists = await self._storage.list_therapists()
        return web.json_response({"therapists": [therapist_json(t) for t in therapists]})

    async def add_therapist(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        body = await read_json(request)
        _only(body, {"username"})
        username = _name(body.get("username"), "username")
        try:
            therapist, link = await create_account(self._config, self._storage, username)
        except AlreadyExists:
            raise ApiError(409, "conflict", "This username is taken") from None
        await audit(self._storage, _actor(signed_in), "therapist_added", username)
        # The link appears in this response and nowhere else; only its hash is stored.
        return web.json_response(
            {"therapist": therapist_json(therapist), "set_password_url": link}, status=201
        )

    async def disable(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        therapist = await self._therapist(request)
        if therapist.id == signed_in.therapist.id:
            # an admin who locks themselves out may leave nobody to undo it
            raise ApiError(409, "conflict", "You cannot disable your own account")
        # the storage ends the account's sessions in the same transaction (as the CLI does)
        await self._storage.set_therapist_disabled(therapist.username, True)
        sign_out_live(request.app, therapist.id)
        await audit(self._storage, _actor(signed_in), "therapist_disabled", therapist.username)
        return await self._therapist_response(therapist.username)

    async def enable(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        therapist = await self._therapist(request)
        await self._storage.set_therapist_disabled(therapist.username, False)
        await audit(self._storage, _actor(signed_in), "therapist_enabled", therapist.username)
        return await self._therapist_response(therapist.username)

    async def reset_password(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        therapist = await self._therapist(request)
        # The old password stops working now, not when the link is used: whoever asked for a
        # reset may suspect it is known. Setting an unknown one also ends every session.
        await self._storage.set_therapist_password(
            therapist.username, await unusable_password_hash()
        )
        sign_out_live(request.app, therapist.id)
        link = await issue_password_link(self._config, self._storage, therapist)
        await audit(self._storage, _actor(signed_in), "password_reset", therapist.username)
        return web.json_response({"set_password_url": link})

    async def set_admin(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        therapist = await self._therapist(request)
        body = await read_json(request)
        _only(body, {"admin"})
        admin = body.get("admin")
        if not isinstance(admin, bool):
            raise ApiError(400, "invalid_request", "admin must be true or false")
        if not admin and therapist.id == signed_in.therapist.id:
            raise ApiError(409, "conflict", "You cannot take the admin role from yourself")
        await self._storage.set_therapist_admin(therapist.username, admin)
        action = "admin_granted" if admin else "admin_revoked"
        await audit(self._storage, _actor(signed_in), action, therapist.username)
        return await self._therapist_response(therapist.username)

    # --- API keys

    async def api_keys(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        keys = await self._storage.list_api_keys()
        return web.json_response(
            {
                "api_keys": [
                    {
                        "name": key.name,
                        "created_at": _time(key.created_at),
                        "revoked_at": _time(key.revoked_at) if key.revoked_at else None,
                    }
                    for key in keys
                ]
            }
        )

    async def create_api_key(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        body = await read_json(request)
        _only(body, {"name"})
        name = _name(body.get("name"), "name")
        key = new_token()
        try:
            created = await self._storage.add_api_key(name, hash_token(key))
        except AlreadyExists:
            raise ApiError(409, "conflict", "An active key has this name") from None
        await audit(self._storage, _actor(signed_in), "api_key_created", name)
        # shown once: only the hash is stored
        return web.json_response(
            {"name": created.name, "created_at": _time(created.created_at), "key": key},
            status=201,
        )

    async def revoke_api_key(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        name = request.match_info["name"]
        try:
            await self._storage.revoke_api_key(name)
        except NotFound:
            raise ApiError(404, "not_found", "No active key with this name") from None
        await audit(self._storage, _actor(signed_in), "api_key_revoked", name)
        return web.Response(status=204)

    # --- audit log

    async def audit_log(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        raw = request.query.get("limit", "100")
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw[:4]) <= AUDIT_LIMIT_MAX:
            raise ApiError(400, "invalid_request", f"limit must be 1 to {AUDIT_LIMIT_MAX}")
        entries = await self._storage.list_audit_entries(int(raw))
        return web.json_response(
            {
                "entries": [
                    {"at": _time(e.at), "actor": e.actor, "action": e.action, "target": e.target}
                    for e in entries
                ]
            }
        )

    # --- usage

    async def usage(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        overall, by_therapist = await self._usage()
        return web.json_response(
            {
                "retention_days": self._config.privacy.statistics_retention_days,
                "months": [_month_json(m) for m in overall],
                "therapists": [
                    {"username": name, "months": [_month_json(m) for m in months]}
                    for name, months in by_therapist.items()
                ],
            }
        )

    async def usage_csv(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        overall, by_therapist = await self._usage()
        rows: list[list[object]] = [["", m.month, m.sessions, m.minutes] for m in overall]
        for name, months in by_therapist.items():
            rows.extend([name, m.month, m.sessions, m.minutes] for m in months)
        body = csv_bytes(["therapist", "month", "sessions", "minutes"], rows)
        return _csv_response(body, "sprechzimmer-usage.csv")

    async def usage_chart(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        metric = request.match_info["metric"]
        if metric not in ("sessions", "minutes"):
            raise ApiError(404, "not_found", "No such chart")
        overall, _ = await self._usage()
        english = _english(request)
        if metric == "sessions":
            title = "Sessions per month" if english else "Sitzungen pro Monat"
            bars = [Bar(m.month, m.sessions) for m in overall]
        else:
            title = "Minutes per month" if english else "Minuten pro Monat"
            bars = [Bar(m.month, m.minutes) for m in overall]
        intro = "All therapists, by month:" if english else "Alle Therapeut:innen, je Monat:"
        return web.Response(text=bar_chart(title, intro, bars), headers=SVG_HEADERS)

    # --- health

    async def health(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        weeks = await self._health()
        return web.json_response(
            {
                "weeks": [
                    {
                        "week": w.week,
                        "joins": w.joins,
                        "media_reached": w.media_reached,
                        "media_share": w.media_share,
                        "ice_failures": w.ice_failures,
                        "reconnects": w.reconnects,
                        "median_join_to_media_seconds": w.median_join_to_media_seconds,
                    }
                    for w in weeks
                ]
            }
        )

    async def health_csv(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        weeks = await self._health()
        rows = [
            [
                w.week,
                w.joins,
                w.media_reached,
                "" if w.media_share is None else f"{w.media_share:.3f}",
                w.ice_failures,
                w.reconnects,
                "" if w.median_join_to_media_seconds is None else w.median_join_to_media_seconds,
            ]
            for w in weeks
        ]
        header = [
            "week",
            "joins",
            "media_reached",
            "media_share",
            "ice_failures",
            "reconnects",
            "median_join_to_media_seconds",
        ]
        return _csv_response(csv_bytes(header, rows), "sprechzimmer-health.csv")

    async def health_chart(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        weeks = await self._health()
        english = _english(request)
        title = "Joins that reached media (%)" if english else "Beitritte mit Bild und Ton (%)"
        intro = "Per week:" if english else "Je Woche:"
        bars = [Bar(w.week, round(100 * (w.media_share or 0), 1)) for w in weeks]
        return web.Response(text=bar_chart(title, intro, bars, unit=" %"), headers=SVG_HEADERS)

    # --- helpers

    async def _usage(self) -> tuple[list[MonthUsage], dict[str, list[MonthUsage]]]:
        statistics = await self._storage.list_all_session_statistics()
        names = {t.id: t.username for t in await self._storage.list_therapists()}
        by_therapist: dict[str, list[MonthUsage]] = {}
        for therapist_id in sorted({row.therapist_id for row in statistics}):
            rows = [row for row in statistics if row.therapist_id == therapist_id]
            by_therapist[names.get(therapist_id, f"#{therapist_id}")] = usage_by_month(rows)
        return usage_by_month(statistics), dict(sorted(by_therapist.items()))

    async def _health(self) -> list[WeekHealth]:
        since = dt.datetime.now(dt.UTC).date() - dt.timedelta(
            days=self._config.privacy.statistics_retention_days
        )
        return health_by_week(await self._storage.list_health_counts(since))

    async def _therapist(self, request: web.Request) -> Therapist:
        username = request.match_info["username"]
        therapist = await self._storage.get_therapist(username) if NAME.match(username) else None
        if therapist is None:
            raise ApiError(404, "not_found", "No such therapist")
        return therapist

    async def _therapist_response(self, username: str) -> web.Response:
        therapist = await self._storage.get_therapist(username)
        if therapist is None:
            raise ApiError(404, "not_found", "No such therapist")
        return web.json_response(therapist_json(therapist))

    def _admin(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a handler: a live session of an admin, checked on every request, and the CSRF
        checks for state changes."""

        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if request.method in STATE_CHANGING_METHODS:
                check_origin(request, self._origin)
            signed_in = await current_session(request, self._storage)
            if signed_in is None:
                raise ApiError(401, "unauthorized", "Sign in first")
            if not signed_in.therapist.is_admin:
                raise ApiError(403, "forbidden", "This needs the admin role")
            if request.method in STATE_CHANGING_METHODS:
                check_csrf_token(request, signed_in.session.csrf_token)
            return await handler(request, signed_in)

        return wrapped


def therapist_json(therapist: Therapist) -> dict[str, object]:
    return {
        "username": therapist.username,
        "display_name": therapist.display_name,
        "disabled": therapist.disabled,
        "admin": therapist.is_admin,
        "external_id": therapist.external_id,
        "created_at": _time(therapist.created_at),
    }


def _actor(signed_in: SignedIn) -> str:
    return signed_in.therapist.username


def _only(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, "invalid_request", f"Unknown field: {unknown[0][:64]}")


def _name(value: object, field: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ApiError(
            400, "invalid_request", f"{field}: 2 to 64 characters a-z 0-9 . _ -, starting a-z 0-9"
        )
    return value


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month_json(month: MonthUsage) -> dict[str, object]:
    return {"month": month.month, "sessions": month.sessions, "minutes": month.minutes}


def _english(request: web.Request) -> bool:
    # the chart's words follow the page's language
    return choose_language(request)[0] == "en"


def _csv_response(body: bytes, filename: str) -> web.Response:
    return web.Response(
        body=body,
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


# The CLI's minimum (signaling/cli.py); the maximum bounds what argon2 is handed.
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


class SetPasswordApi:
    """POST /api/set-password: a one-time link's token and the new password. No session: the
    link is the credential. It works once, until it expires, and only if no newer link was made;
    using it ends every session of the account."""

    def __init__(self, config: Config, storage: Storage) -> None:
        self._storage = storage
        self._origin = origin_of(config.server.public_url)
        # argon2 takes 64 MiB for a moment and runs before the link is looked up (the lookup
        # and the write are one transaction): two at a time, as for sign-ins
        self._hashing = asyncio.Semaphore(2)

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/set-password", self.set_password)

    async def set_password(self, request: web.Request) -> web.Response:
        check_origin(request, self._origin)
        body = await read_json(request)
        _only(body, {"token", "password"})
        token, password = body.get("token"), body.get("password")
        if not isinstance(token, str) or not isinstance(password, str):
            raise ApiError(400, "invalid_request", "token and password are required strings")
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise ApiError(
                400,
                "invalid_request",
                f"The password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            )
        async with self._hashing:
            password_hash = await asyncio.to_thread(hash_password, password)
        therapist = await self._storage.redeem_password_link(
            hash_token(token[:256]), dt.datetime.now(dt.UTC), password_hash
        )
        if therapist is None:
            # used, expired, replaced by a newer link, or never made: one answer for all
            raise ApiError(404, "not_found", "This link is not valid any more")
        sign_out_live(request.app, therapist.id)
        await audit(self._storage, therapist.username, "password_set", therapist.username)
        return web.json_response({"username": therapist.username})
