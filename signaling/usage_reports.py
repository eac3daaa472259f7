"""The reports built from the only data kept about sessions (therapist, date, length) and from
the service's own daily counters: usage per month, a therapist's quarter, health per week, and
their CSV form. Plain functions over storage models, testable without a server."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from signaling.metrics import JOIN_TO_MEDIA_BUCKETS
from signaling.storage import HealthCount, SessionStatistic

__all__ = [
    "HEALTH_COUNTERS",
    "MonthUsage",
    "Quarter",
    "WeekHealth",
    "csv_bytes",
    "health_by_week",
    "join_to_media_counter",
    "quarter_of",
    "usage_by_month",
]

# The daily counters (table health_daily): joins, joins whose browser received media, ICE
# failures, joins that came back to a seat (reconnects), and one counter per bucket of the
# join-to-media histogram ("join_to_media_le_<bound>", plus "_inf").
HEALTH_COUNTERS = ("joins", "media_reached", "ice_failures", "reconnects")


def join_to_media_counter(bound: float) -> str:
    return "join_to_media_le_inf" if bound == float("inf") else f"join_to_media_le_{bound:g}"


@dataclass(frozen=True)
class MonthUsage:
    month: str  # "2026-03"
    sessions: int
    seconds: int

    @property
    def minutes(self) -> int:
        return round(self.seconds / 60)


def usage_by_month(statistics: Iterable[SessionStatistic]) -> list[MonthUsage]:
    """Sessions and their total length per calendar month, oldest first."""
    sessions: dict[str, int] = {}
    seconds: dict[str, int] = {}
    for row in statistics:
        month = row.session_date.strftime("%Y-%m")
        sessions[month] = sessions.get(month, 0) + 1
        seconds[month] = seconds.get(month, 0) + row.duration_seconds
    return [MonthUsage(month, sessions[month], seconds[month]) for month in sorted(sessions)]


@dataclass(frozen=True)
class Quarter:
    year: int
    number: int  # 1..4

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, 3 * self.number - 2, 1)

    @property
    def last_day(self) -> dt.date:
        if self.number == 4:
            return dt.date(self.year, 12, 31)
        return dt.date(self.year, 3 * self.number + 1, 1) - dt.timedelta(days=1)

    def __str__(self) -> str:
        return f"{self.year}-Q{self.number}"

    def contains(self, day: dt.date) -> bool:
        return self.first_day <= day <= self.last_day

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """`2026-Q1`; ValueError for anything else."""
        year, _, number = text.partition("-Q")
        if not (len(year) == 4 and year.isdigit() and number in ("1", "2", "3", "4")):
            raise ValueError("quarter must look like 2026-Q1")
        return cls(int(year), int(number))


def quarter_of(day: dt.date) -> Quarter:
    return Quarter(day.year, (day.month - 1) // 3 + 1)


@dataclass(frozen=True)
class WeekHealth:
    week: str  # ISO week, "2026-W10"
    joins: int
    media_reached: int
    ice_failures: int
    reconnects: int
    median_join_to_media_seconds: float | None

    @property
    def media_share(self) -> float | None:
        """Share of joins whose browser received media (None without joins)."""
        if self.joins == 0:
            return None
        return min(self.media_reached / self.joins, 1.0)


def health_by_week(counts: Iterable[HealthCount]) -> list[WeekHealth]:
    """The daily counters summed per ISO week, oldest first; the median from the histogram's
    buckets, interpolated within its bucket as Prometheus' histogram_quantile does."""
    weeks: dict[str, dict[str, int]] = {}
    for count in counts:
        year, week, _ = count.day.isocalendar()
        totals = weeks.setdefault(f"{year}-W{week:02d}", {})
        totals[count.counter] = totals.get(count.counter, 0) + count.value
    return [
        WeekHealth(
            week=week,
            joins=totals.get("joins", 0),
            media_reached=totals.get("media_reached", 0),
            ice_failures=totals.get("ice_failures", 0),
            reconnects=totals.get("reconnects", 0),
            median_join_to_media_seconds=_median(totals),
        )
        for week, totals in sorted(weeks.items())
    ]


def _median(totals: dict[str, int]) -> float | None:
    bounds = (*JOIN_TO_MEDIA_BUCKETS, float("inf"))
    counts = [totals.get(join_to_media_counter(bound), 0) for bound in bounds]
    total = sum(counts)
    if total == 0:
        return None
    half = total / 2
    below, lower = 0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count and below + count >= half:
            if bound == float("inf"):
                return lower  # past the last bound: all we can say is "at least"
            return round(lower + (bound - lower) * (half - below) / count, 2)
        below += count
        lower = bound
    return None


# Excel, the tool a practice opens a CSV with, reads a file without a byte-order mark as the
# Windows code page and garbles umlauts, and a German Excel splits columns at ';', not ','.
# So: UTF-8 with BOM, ';' between fields, every field quoted as RFC 4180 says where needed.
CSV_BOM = "\ufeff"
# A cell starting with one of these is a formula to a spreadsheet (CSV injection); a leading
# apostrophe makes it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return (CSV_BOM + buffer.getvalue()).encode("utf-8")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
