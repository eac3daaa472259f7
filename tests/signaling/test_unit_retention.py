"""The retention cut-off: `privacy.statistics_retention_days`, but never past three calendar
months (issue #13: "must not exceed three calendar months")."""

from __future__ import annotations

import datetime as dt

import pytest

from signaling.storage.rows import retention_cutoff


def at_noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12, 0), tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("today", "days", "first_kept"),
    [
        # the days bind when they are the shorter period
        (dt.date(2025, 6, 30), 90, dt.date(2025, 4, 1)),
        (dt.date(2025, 6, 30), 30, dt.date(2025, 5, 31)),
        # with February inside, 92 days reach past three calendar months: the months bind
        (dt.date(2025, 4, 30), 92, dt.date(2025, 1, 30)),
        (dt.date(2025, 5, 1), 90, dt.date(2025, 2, 1)),
        # a day that February lacks: the first of March (28 February + 3 months = 28 May)
        (dt.date(2025, 5, 31), 92, dt.date(2025, 3, 1)),
        (dt.date(2025, 5, 29), 92, dt.date(2025, 3, 1)),
        (dt.date(2024, 5, 30), 92, dt.date(2024, 3, 1)),
        (dt.date(2024, 5, 29), 92, dt.date(2024, 2, 29)),
        # across the turn of the year
        (dt.date(2025, 1, 15), 92, dt.date(2024, 10, 15)),
    ],
)
def test_the_cutoff_is_the_later_of_the_days_and_three_calendar_months(today, days, first_kept):
    assert retention_cutoff(at_noon(today), days) == first_kept


def test_a_whole_quarter_is_still_kept_on_its_last_day():
    for last_day, first_day in [
        (dt.date(2025, 3, 31), dt.date(2025, 1, 1)),
        (dt.date(2025, 6, 30), dt.date(2025, 4, 1)),
        (dt.date(2025, 9, 30), dt.date(2025, 7, 1)),
        (dt.date(2025, 12, 31), dt.date(2025, 10, 1)),
    ]:
        assert retention_cutoff(at_noon(last_day), 92) <= first_day
