"""How many tenants one machine reads in a day, from what the tenants benchmark measured.

The benchmark runs the tap on 1 tenant and on N tenants (the same 28-day backfill under a
time-scaled report window) and once on one day of every report at a tenant's full size. A tap
run's CPU and memory are then a fixed part (start-up, catalog, product names) plus a part per
tenant, and a tenant's CPU grows with its records; Graph's report limit counts per tenant, so
it sets how long a backfill takes, not how many tenants read side by side. The arithmetic here
turns those measurements into tenants per day at Graph's real 10-minute window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_SECONDS = 86_400.0
GRAPH_WINDOW_SECONDS = 600.0  # Graph's report limit: 14 calls per 10 minutes
GRAPH_CALLS_PER_WINDOW = 14


@dataclass(frozen=True)
class Measured:
    """What the tenants benchmark measured."""

    tenants: int  # N of the many-tenant run
    cpu_one: float  # CPU s of the 1-tenant backfill
    cpu_many: float  # CPU s of the N-tenant backfill
    records_one: int
    records_many: int
    rss_one: float  # peak RSS MB
    rss_many: float
    directory_records: int  # records per tenant of the streams that are not reports
    calls_per_report: int  # most calls one tenant's backfill made to one report function
    day_report_records: int  # report records of one day of every report at full size
    backfill_days: int = 29  # the refresh date and the 28 days before it


@dataclass(frozen=True)
class Sizing:
    """Tenants one machine handles, and what bounds it."""

    cpu_fixed: float  # CPU s of a run besides its tenants
    cpu_per_record: float  # marginal CPU s per record
    rss_fixed: float  # MB of a run besides its tenants
    rss_per_tenant: float  # MB each more tenant adds to one run's peak
    backfill_cpu: float  # CPU s per full-size tenant's 28-day backfill
    current_cpu: float  # CPU s per full-size tenant and day to keep it current
    graph_backfill_seconds: float  # the least time Graph's limit lets a backfill take
    backfill_per_run: int  # tenants one process backfills within that time (one core)
    backfill_per_day: int  # tenants backfilled per day on `cores` cores
    current_per_day: int  # tenants kept current per day on `cores` cores
    tenants_per_run_memory: int  # tenants one run holds in `memory_mb`


def linear(one: float, many: float, tenants: int) -> tuple[float, float]:
    """The fixed part and the part per tenant of a run measured on 1 and on `tenants` tenants."""
    if tenants < 2:
        msg = "two runs of different tenant counts are needed"
        raise ValueError(msg)
    per_tenant = (many - one) / (tenants - 1)
    return one - per_tenant, per_tenant


def graph_seconds(calls: int, calls_per_window: int, window: float) -> float:
    """The least time `calls` calls to one report function take under Graph's limit: the
    first `calls_per_window` go at once, each later batch one window after the one before."""
    if calls <= 0:
        return 0.0
    return math.floor((calls - 1) / calls_per_window) * window


def size(m: Measured, *, cores: int, memory_mb: float) -> Sizing:
    """Tenants per day on a machine of `cores` cores and `memory_mb` MB for the tap.

    - CPU per record: the N-tenant run's CPU beyond the 1-tenant run's, per record beyond its
      records (each tenant's requests and sign-in count in, so it errs high).
    - A full-size tenant's backfill: its directory records plus `backfill_days` days of every
      report; keeping it current: its directory records (a full read: a delta reads fewer) plus
      one day of every report.
    - One run is one Python process, about one core: it backfills as many tenants as its CPU
      gets through in the time Graph's per-tenant limit takes anyway.
    """
    extra_records = m.records_many - m.records_one
    cpu_per_record = (m.cpu_many - m.cpu_one) / extra_records if extra_records > 0 else 0.0
    cpu_fixed = m.cpu_one - cpu_per_record * m.records_one
    rss_fixed, rss_per_tenant = linear(m.rss_one, m.rss_many, m.tenants)
    backfill_cpu = cpu_per_record * (m.directory_records + m.backfill_days * m.day_report_records)
    current_cpu = cpu_per_record * (m.directory_records + m.day_report_records)
    graph = graph_seconds(m.calls_per_report, GRAPH_CALLS_PER_WINDOW, GRAPH_WINDOW_SECONDS)
    day = cores * DAY_SECONDS

    def per(budget: float, cost: float) -> int:
        return int(budget // cost) if cost > 0 else 0

    return Sizing(
        cpu_fixed=cpu_fixed,
        cpu_per_record=cpu_per_record,
        rss_fixed=rss_fixed,
        rss_per_tenant=rss_per_tenant,
        backfill_cpu=backfill_cpu,
        current_cpu=current_cpu,
        graph_backfill_seconds=graph,
        backfill_per_run=per(graph - cpu_fixed, backfill_cpu),
        backfill_per_day=per(day, backfill_cpu),
        current_per_day=per(day, current_cpu),
        tenants_per_run_memory=per(memory_mb - rss_fixed, rss_per_tenant),
    )
