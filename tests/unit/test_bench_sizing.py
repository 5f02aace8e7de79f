"""bench/sizing.py: tenants per day from what the tenants benchmark measured.

Graph's report limit, 14 calls per 10 minutes per report function, app and tenant
(https://learn.microsoft.com/en-us/graph/throttling-limits#microsoft-graph-reports-service-limits),
counts per tenant, so a backfill's least time does not grow with the tenants read side by side.
"""

from __future__ import annotations

import pytest

from bench.sizing import Measured, graph_seconds, linear, per_process_day, run_seconds, size


def test_a_run_splits_into_a_fixed_part_and_a_part_per_tenant() -> None:
    assert linear(10.0, 46.0, 10) == (6.0, 4.0)


def test_one_run_alone_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="two runs"):
        linear(10.0, 10.0, 1)


@pytest.mark.parametrize(
    ("calls", "seconds"),
    [(0, 0.0), (1, 0.0), (14, 0.0), (15, 600.0), (28, 600.0), (29, 1200.0), (30, 1200.0)],
)
def test_graphs_least_time_for_a_reports_calls(calls: int, seconds: float) -> None:
    # The first 14 go at once; the 15th waits for the first window to pass.
    assert graph_seconds(calls, 14, 600.0) == seconds


def test_tenants_per_day_from_the_measured_runs() -> None:
    measured = Measured(
        tenants=10,
        cpu_one=5.0,  # 2 s fixed + 3 s a tenant
        cpu_many=32.0,
        rss_one=110.0,  # 100 MB fixed + 10 MB a tenant
        rss_many=200.0,
        report_records=3_000,
        calls_per_report=30,
        report_calls=540,  # 18 reports x 30 calls
        first_window_calls=252,  # 18 reports x 14 calls
        rows_cpu=6.0,  # 3 days of 20,000 report records: 100 µs each
        rows_records=60_000,
        rows_days=3,
        current_cpu_many=11.0,
        seconds_per_call=0.3,
        concurrency=8,
    )
    sized = size(measured, cores=2, memory_mb=1_100.0)
    assert (sized.cpu_fixed, sized.cpu_per_tenant) == (2.0, 3.0)
    assert sized.cpu_per_report_record == pytest.approx(1e-4)
    assert sized.day_records == 20_000
    assert (sized.rss_fixed, sized.rss_per_tenant) == (100.0, 10.0)
    # A full-size backfill: 3 s + (29 x 20,000 - 3,000) records x 100 µs = 60.7 s.
    assert sized.backfill_cpu == pytest.approx(60.7)
    # Kept current: 11 s / 10 tenants + 20,000 records x 100 µs = 3.1 s.
    assert sized.current_cpu == pytest.approx(3.1)
    assert sized.graph_backfill_seconds == 1200.0
    # Each tenant's first window: 252 calls of 0.3 s through 8 transfers, 9.45 s.
    assert sized.stagger_per_tenant == pytest.approx(9.45)
    # One run: Graph's wait, then each tenant's first window and records one after another.
    assert run_seconds(sized, 1) == pytest.approx(1_272.15)  # 1,200 + 2 + 9.45 + 60.7
    assert run_seconds(sized, 10) == pytest.approx(1_903.5)  # 1,200 + 2 + 10 x 70.15
    assert per_process_day(sized, 10) == 453  # 86,400 x 10 / 1,903.5 = 453.9
    assert sized.backfill_per_run_transfers == 59  # 8 x 1,200 / (540 x 0.3) = 59.3
    assert sized.backfill_per_day == 2_846  # 2 x 86,400 / 60.7 = 2,846.8
    assert sized.current_per_day == 55_741  # 2 x 86,400 / 3.1 = 55,741.9
    assert sized.tenants_per_run_memory == 100  # (1,100 - 100) / 10


def test_nothing_measured_sizes_nothing() -> None:
    measured = Measured(
        tenants=2,
        cpu_one=3.0,
        cpu_many=3.0,
        rss_one=100.0,
        rss_many=100.0,
        report_records=0,
        calls_per_report=0,
        report_calls=0,
        first_window_calls=0,
        rows_cpu=0.0,
        rows_records=0,
        rows_days=0,
        current_cpu_many=0.0,
        seconds_per_call=0.0,
    )
    sized = size(measured, cores=1, memory_mb=500.0)
    assert sized.backfill_per_day == 0
    assert sized.backfill_per_run_transfers == 0
    assert sized.tenants_per_run_memory == 0
