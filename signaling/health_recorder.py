"""The service's health counters written to the database per day, so the admin's weekly report
survives restarts and sums every node (table health_daily; Prometheus keeps them in memory).

Every `FLUSH_SECONDS` the recorder reads this process's counters through the registry's public
`get_sample_value` (the same numbers a scrape shows), and adds what grew since the last read to
today's (UTC) row. Nothing but counts: no appointment, therapist, address or time of a join.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from signaling.logs import LOGGER_NAME, log_event
from signaling.metrics import JOIN_TO_MEDIA_BUCKETS, METRICS, Metrics
from signaling.storage import Storage
from signaling.usage_reports import join_to_media_counter

__all__ = ["FLUSH_SECONDS", "HealthRecorder", "record_health_periodically"]

# Five minutes: a crash loses at most that much of a day's counts; a write costs a few rows.
FLUSH_SECONDS = 300.0

logger = logging.getLogger(LOGGER_NAME)

# our counter name -> the sample's name in the exposition
_SAMPLES = {
    "joins": "sprechzimmer_joins_total",
    "media_reached": "sprechzimmer_join_to_media_seconds_count",
    "ice_failures": "sprechzimmer_ice_failures_total",
    "reconnects": "sprechzimmer_reconnects_total",
}


class HealthRecorder:
    def __init__(
        self, metrics: Metrics, storage: Storage, today: Callable[[], dt.date] | None = None
    ) -> None:
        self._metrics = metrics
        self._storage = storage
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._last: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        """The counters as they stand (cumulative since the process started)."""
        registry = self._metrics.registry
        values = {
            name: int(registry.get_sample_value(sample) or 0) for name, sample in _SAMPLES.items()
        }
        below = 0
        for bound in (*JOIN_TO_MEDIA_BUCKETS, float("inf")):
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            cumulative = int(
                registry.get_sample_value("sprechzimmer_join_to_media_seconds_bucket", {"le": le})
                or 0
            )
            # the exposition's buckets are cumulative; stored per bucket, so days add up
            values[join_to_media_counter(bound)] = cumulative - below
            below = cumulative
        return values

    async def flush(self) -> None:
        """Add what grew since the last flush to today's counters."""
        current = self.read()
        grown = {k: v - self._last.get(k, 0) for k, v in current.items()}
        grown = {k: v for k, v in grown.items() if v > 0}
        if grown:
            await self._storage.add_health_counts(self._today(), grown)
        # only after the write: a failed write is retried with the next flush
        self._last = current


def record_health_periodically(
    storage: Storage,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: flush every `FLUSH_SECONDS`, and once more at shutdown."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        recorder = HealthRecorder(app[METRICS], storage)
        task = asyncio.create_task(_loop(recorder))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await _flush(recorder)

    return context


async def _loop(recorder: HealthRecorder) -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        await _flush(recorder)


async def _flush(recorder: HealthRecorder) -> None:
    try:
        await recorder.flush()
    except Exception:
        log_event(logger, "health_counts_not_recorded", logging.WARNING, exc_info=True)
