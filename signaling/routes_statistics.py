"""A therapist's own records under /api/therapist/: sessions per quarter (what a KV billing
needs: the count for the technology surcharge and the dates) as JSON and CSV, and the proof of a
client's consent per appointment (terms version and time, never the name).

Both read only what outlives the purge; both end with the retention period
(`privacy.statistics_retention_days`). A separate module from `routes_therapist`, which holds
sign-in and appointments: same session and CSRF rules, nothing else shared.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from signaling.config import Config
from signaling.http_errors import ApiError
from signaling.login_sessions import SignedIn, current_session
from signaling.storage import SessionStatistic, Storage
from signaling.usage_reports import Quarter, csv_bytes, quarter_of

__all__ = ["OwnRecordsApi"]

PREFIX = "/api/therapist"

Handler = Callable[[web.Request, SignedIn], Awaitable[web.StreamResponse]]


class OwnRecordsApi:
    def __init__(self, config: Config, storage: Storage) -> None:
        self._config = config
        self._storage = storage

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get(f"{PREFIX}/statistics", self._signed_in(self.statistics))
        router.add_get(f"{PREFIX}/statistics.csv", self._signed_in(self.statistics_csv))
        router.add_get(f"{PREFIX}/appointments/{{id}}/consent", self._signed_in(self.consent_proof))

    async def statistics(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        quarter, rows, quarters = await self._quarter(request, signed_in)
        return web.json_response(
            {
                "quarter": str(quarter),
                "first_day": quarter.first_day.isoformat(),
                "last_day": quarter.last_day.isoformat(),
                "quarters": [str(q) for q in quarters],
                "retention_days": self._config.privacy.statistics_retention_days,
                "count": len(rows),
                "minutes": round(sum(r.duration_seconds for r in rows) / 60),
                "sessions": [
                    {
                        "date": r.session_date.isoformat(),
                        "duration_seconds": r.duration_seconds,
                        "minutes": round(r.duration_seconds / 60),
                    }
                    for r in rows
                ],
            }
        )

    async def statistics_csv(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        quarter, rows, _ = await self._quarter(request, signed_in)
        body = csv_bytes(
            ["date", "minutes", "duration_seconds"],
            (
                [r.session_date.isoformat(), round(r.duration_seconds / 60), r.duration_seconds]
                for r in rows
            ),
        )
        return web.Response(
            body=body,
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="sitzungen-{quarter}.csv"',
            },
        )

    async def consent_proof(self, request: web.Request, signed_in: SignedIn) -> web.Response:
        raw = request.match_info["id"]
        appointment = None
        if raw.isascii() and raw.isdigit() and len(raw) <= 18:
            appointment = await self._storage.get_appointment(int(raw))
        if appointment is None or appointment.therapist_id != signed_in.therapist.id:
            raise ApiError(404, "not_found", "No such appointment")
        records = await self._storage.list_consent_records(appointment.id)
        return web.json_response(
            {
                "appointment_id": appointment.id,
                "date": appointment.starts_at.date().isoformat(),
                "consents": [
                    {
                        "terms_version": r.terms_version,
                        "consent_at": r.consent_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                    for r in records
                ],
            }
        )

    # --- helpers

    async def _quarter(
        self, request: web.Request, signed_in: SignedIn
    ) -> tuple[Quarter, list[SessionStatistic], list[Quarter]]:
        """The asked quarter (default: the current one, UTC), its sessions, and every quarter
        the kept statistics reach into, newest first."""
        raw = request.query.get("quarter")
        try:
            quarter = (
                quarter_of(dt.datetime.now(dt.UTC).date()) if raw is None else Quarter.parse(raw)
            )
        except ValueError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        rows = await self._storage.list_session_statistics(signed_in.therapist.id)
        today = quarter_of(dt.datetime.now(dt.UTC).date())
        quarters = sorted(
            {quarter_of(r.session_date) for r in rows} | {today},
            key=lambda q: (q.year, q.number),
            reverse=True,
        )
        return quarter, [r for r in rows if quarter.contains(r.session_date)], quarters

    def _signed_in(
        self, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        # read-only routes: a live session is all they need (no CSRF token for a GET)
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            signed_in = await current_session(request, self._storage)
            if signed_in is None:
                raise ApiError(401, "unauthorized", "Sign in first")
            return await handler(request, signed_in)

        return wrapped
