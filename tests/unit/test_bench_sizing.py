"""bench/sizing.py: tenants per day from what the tenants benchmark measured.

Graph's report limit, 14 calls per 10 minutes per report function, app and tenant
(https://learn.microsoft.com/en-us/graph/throttling-limits#microsoft-graph-reports-service-limits),
counts per tenant, so a backfill's least time does not grow with the tenants read side by side.
"""

from __future__ import annotations

import pytest

from bench.sizing import Measured, graph_seconds, linear, size


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
        cpu_one=5.0,  # 2 s fixed + 1,000 records at 3 ms
        cpu_many=32.0,  # 2 s fixed + 10,000 records at 3 ms
        records_one=1_000,
        records_many=10_000,
        rss_one=110.0,
        rss_many=200.0,
        directory_records=400,
        calls_per_report=30,
        day_report_records=200,
    )
    sized = size(measured, cores=2, memory_mb=1_100.0)
    assert sized.cpu_per_record == pytest.approx(0.003)
    assert sized.cpu_fixed == pytest.approx(2.0)
    assert (sized.rss_fixed, sized.rss_per_tenant) == (100.0, 10.0)
    # Backfill: 400 + 29 x 200 = 6,200 records; current: 400 + 200 = 600 records.
    assert sized.backfill_cpu == pytest.approx(18.6)
    assert sized.current_cpu == pytest.approx(1.8)
    assert sized.graph_backfill_seconds == 1200.0
    assert sized.backfill_per_run == int((1200.0 - 2.0) // 18.6)  # 64
    assert sized.backfill_per_day == int(2 * 86_400 // 18.6)  # 9,290
    assert sized.current_per_day == int(2 * 86_400 // 1.8)  # 96,000
    assert sized.tenants_per_run_memory == 100  # (1,100 - 100) / 10


def test_no_extra_records_means_no_per_record_cost() -> None:
    measured = Measured(
        tenants=2,
        cpu_one=3.0,
        cpu_many=3.0,
        records_one=0,
        records_many=0,
        rss_one=100.0,
        rss_many=100.0,
        directory_records=0,
        calls_per_report=0,
        day_report_records=0,
    )
    sized = size(measured, cores=1, memory_mb=500.0)
    assert sized.backfill_per_day == 0
    assert sized.tenants_per_run_memory == 0
