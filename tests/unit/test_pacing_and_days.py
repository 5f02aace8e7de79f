"""streams/reports/fetcher.py: the per-report Pacer, and which report days a run asks Graph for.

Graph allows 14 CSV calls per 10 minutes per report function, app and tenant
(https://learn.microsoft.com/en-us/graph/throttling-limits#microsoft-graph-reports-service-limits).
It answers a `date=` older than 28 days with 400 InvalidArgument "Only support data for the past
28 days", although the report pages (e.g.
https://learn.microsoft.com/en-us/graph/api/reportroot-getoffice365activeuserdetail) say 30.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

import pytest

from tap_microsoft365.streams.reports.fetcher import (
    CALLS_PER_WINDOW,
    KEPT_DAYS,
    WINDOW_SECONDS,
    Pacer,
    due_days,
    oldest_requestable_day,
    parse_day,
)

REFRESH = date(2026, 11, 24)  # the last day Graph has processed
D = timedelta(days=1)

# --------------------------------------------------------------------------------------------
# Pacer
# --------------------------------------------------------------------------------------------


def test_graphs_documented_budget() -> None:
    assert (CALLS_PER_WINDOW, WINDOW_SECONDS, KEPT_DAYS) == (14, 600.0, 28)


def test_a_fresh_pacer_is_ready_now() -> None:
    pacer = Pacer(calls=3, window=600.0)
    assert pacer.ready_at() <= time.monotonic()
    assert pacer.limited() is False


def test_calls_below_the_budget_do_not_wait() -> None:
    pacer = Pacer(calls=3, window=600.0)
    for _ in range(2):
        pacer.start()
        pacer.finish()
    assert pacer.ready_at() <= time.monotonic()


def test_a_full_window_waits_for_the_oldest_call_to_age_out() -> None:
    pacer = Pacer(calls=3, window=600.0)
    first_before = time.monotonic()
    pacer.start()
    pacer.finish()
    first_after = time.monotonic()
    for _ in range(2):
        pacer.start()
        pacer.finish()
    ready = pacer.ready_at()
    assert first_before + 600.0 <= ready <= first_after + 600.0
    assert pacer.limited() is True


def test_with_more_calls_than_the_budget_the_window_counts_the_last_ones() -> None:
    # Four calls with a budget of three: the next one waits for the second call's window.
    pacer = Pacer(calls=3, window=600.0)
    pacer.start()
    pacer.finish()
    time.sleep(0.01)
    second_before = time.monotonic()
    pacer.start()
    pacer.finish()
    second_after = time.monotonic()
    for _ in range(2):
        pacer.start()
        pacer.finish()
    assert second_before + 600.0 <= pacer.ready_at() <= second_after + 600.0


def test_a_call_counts_from_when_its_answer_arrived() -> None:
    pacer = Pacer(calls=1, window=600.0)
    pacer.start()
    time.sleep(0.05)  # a slow answer
    answered = time.monotonic()
    pacer.finish()
    assert pacer.ready_at() >= answered + 600.0


def test_calls_older_than_the_window_no_longer_count() -> None:
    pacer = Pacer(calls=2, window=0.05)
    for _ in range(2):
        pacer.start()
        pacer.finish()
    assert pacer.ready_at() > time.monotonic()
    time.sleep(0.06)
    assert pacer.ready_at() <= time.monotonic()
    assert pacer.limited() is False


def test_finish_without_start_is_harmless() -> None:
    pacer = Pacer(calls=1, window=600.0)
    pacer.finish()
    assert pacer.ready_at() <= time.monotonic()


def test_after_a_429_no_call_before_retry_after() -> None:
    pacer = Pacer(calls=14, window=600.0)
    before = time.monotonic()
    pacer.block(30.0)
    after = time.monotonic()
    assert before + 30.0 <= pacer.ready_at() <= after + 30.0
    # The wait is Graph's Retry-After, not the pacing budget.
    assert pacer.limited() is False


def test_a_shorter_block_does_not_shorten_a_longer_one() -> None:
    pacer = Pacer(calls=14, window=600.0)
    pacer.block(120.0)
    until = pacer.blocked_until
    pacer.block(5.0)
    assert pacer.blocked_until == until
    pacer.block(300.0)
    assert pacer.blocked_until > until


def test_limited_when_the_budget_outlasts_a_429() -> None:
    pacer = Pacer(calls=2, window=600.0)
    for _ in range(2):
        pacer.start()
        pacer.finish()
    pacer.block(5.0)
    assert pacer.ready_at() > pacer.blocked_until
    assert pacer.limited() is True


def test_not_limited_when_a_429_outlasts_the_budget() -> None:
    pacer = Pacer(calls=2, window=60.0)
    for _ in range(2):
        pacer.start()
        pacer.finish()
    pacer.block(3600.0)
    assert pacer.ready_at() == pacer.blocked_until
    assert pacer.limited() is False


# --------------------------------------------------------------------------------------------
# The oldest day Graph still serves
# --------------------------------------------------------------------------------------------


def test_the_oldest_day_asked_for_is_28_days_before_the_refresh_date() -> None:
    # Graph keeps 28 days without saying whether they count from today or from the refresh
    # date: every day it may still serve is asked for, a refused one is skipped with a warning.
    assert oldest_requestable_day(REFRESH) == REFRESH - KEPT_DAYS * D


# --------------------------------------------------------------------------------------------
# Due days
# --------------------------------------------------------------------------------------------


def _span(first: date, last: date) -> list[date]:
    return [first + n * D for n in range((last - first).days + 1)]


def test_a_first_run_asks_for_every_day_graph_may_still_keep() -> None:
    days = due_days(bookmark=None, start_date=None, refresh=REFRESH)
    assert days == _span(REFRESH - KEPT_DAYS * D, REFRESH)
    assert len(days) == KEPT_DAYS + 1


@pytest.mark.parametrize(
    ("bookmark", "start_date", "first"),
    [
        (REFRESH - 3 * D, None, REFRESH - 2 * D),  # the day after the bookmark
        (None, REFRESH - 5 * D, REFRESH - 5 * D),  # start_date itself is due
        (REFRESH - 3 * D, REFRESH - 10 * D, REFRESH - 2 * D),  # the later of the two
        (REFRESH - 10 * D, REFRESH - 3 * D, REFRESH - 3 * D),  # start_date moved forward
        (
            REFRESH - 90 * D,
            None,
            REFRESH - KEPT_DAYS * D,
        ),  # an old bookmark: what Graph still keeps
        (None, date(2020, 1, 1), REFRESH - KEPT_DAYS * D),
    ],
)
def test_due_days_start_after_the_bookmark_or_at_start_date(
    bookmark: date | None, start_date: date | None, first: date
) -> None:
    days = due_days(bookmark=bookmark, start_date=start_date, refresh=REFRESH)
    assert days == _span(first, REFRESH)


@pytest.mark.parametrize(
    ("bookmark", "start_date"),
    [
        (REFRESH, None),  # caught up: the next day is not processed yet
        (REFRESH + 3 * D, None),  # a bookmark ahead of Graph (its refresh date went back)
        (None, REFRESH + D),  # start_date in the future
    ],
)
def test_nothing_is_due_after_the_refresh_date(
    bookmark: date | None, start_date: date | None
) -> None:
    assert due_days(bookmark=bookmark, start_date=start_date, refresh=REFRESH) == []


def test_a_single_new_day() -> None:
    days = due_days(bookmark=REFRESH - D, start_date=None, refresh=REFRESH)
    assert days == [REFRESH]


# --------------------------------------------------------------------------------------------
# parse_day
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01", date(2026, 11, 1)),
        ("2026-11-01T05:30:00Z", date(2026, 11, 1)),
        ("2026-11-01T23:59:59+14:00", date(2026, 11, 1)),  # the date as written, no conversion
        ("2026-11-01 00:00:00", date(2026, 11, 1)),
        (date(2026, 2, 28), date(2026, 2, 28)),
        (datetime(2026, 2, 28, 13, 0), date(2026, 2, 28)),
        (None, None),
        ("", None),
        (0, None),
        ("2026-13-01", None),
        ("2026-02-30", None),
        ("11/01/2026", None),
        ("not a date", None),
    ],
)
def test_parse_day(value: object, expected: date | None) -> None:
    assert parse_day(value) == expected
