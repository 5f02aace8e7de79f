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
    cpu_one: float  # CPU s of the 1-tenant backfill (reports of a few users a day)
    cpu_many: float  # CPU s of the N-tenant backfill
    rss_one: float  # peak RSS MB
    rss_many: float
    report_records: int  # report records per tenant in those backfills
    calls_per_report: int  # most calls one tenant's backfill made to one report function
    report_calls: int  # calls one tenant's backfill made to every report function
    day_cpu: float  # CPU s of a 1-tenant run of one day of every report at full size
    day_records: int  # its records
    current_cpu_many: float  # CPU s of the N tenants' next run (nothing new yet)
    seconds_per_call: float  # a report call and its download, on the wire
    concurrency: int = 8  # report_concurrency
    backfill_days: int = 29  # the refresh date and the 28 days before it


@dataclass(frozen=True)
class Sizing:
    """Tenants one machine handles, and what bounds it."""

    cpu_fixed: float  # CPU s of a run besides its tenants
    cpu_per_tenant: float  # CPU s each more tenant adds to a backfill run (benchmark size)
    cpu_per_report_record: float  # CPU s per report record at full size (start-up included)
    rss_fixed: float  # MB of a run besides its tenants
    rss_per_tenant: float  # MB each more tenant adds to one run's peak
    backfill_cpu: float  # CPU s per full-size tenant's 28-day backfill
    current_cpu: float  # CPU s per full-size tenant and day to keep it current
    graph_backfill_seconds: float  # the least time Graph's limit lets a backfill take
    backfill_per_run_cpu: int  # tenants one process's CPU backfills in that time (one core)
    backfill_per_run_transfers: int  # tenants report_concurrency transfers in that time
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


def _per(budget: float, cost: float) -> int:
    return int(budget // cost) if cost > 0 else 0


def size(m: Measured, *, cores: int, memory_mb: float) -> Sizing:
    """Tenants per day on a machine of `cores` cores and `memory_mb` MB for the tap.

    - A backfill run costs a fixed part plus a part per tenant (the 1- and N-tenant runs); a
      full-size tenant adds the report records its days have beyond the benchmark's, at the
      CPU per record of the one-day run (its start-up included, so it errs high).
    - Keeping a tenant current: its share of the N tenants' next run plus one day of reports.
    - One run is one Python process, about one core: it backfills as many tenants as its CPU
      gets through in the time Graph's per-tenant limit takes anyway, and as many as
      report_concurrency transfers carry in that time.
    """
    cpu_fixed, cpu_per_tenant = linear(m.cpu_one, m.cpu_many, m.tenants)
    rss_fixed, rss_per_tenant = linear(m.rss_one, m.rss_many, m.tenants)
    per_record = m.day_cpu / m.day_records if m.day_records else 0.0
    full_records = m.backfill_days * m.day_records
    backfill_cpu = cpu_per_tenant + per_record * max(full_records - m.report_records, 0)
    current_cpu = m.current_cpu_many / m.tenants + per_record * m.day_records
    graph = graph_seconds(m.calls_per_report, GRAPH_CALLS_PER_WINDOW, GRAPH_WINDOW_SECONDS)
    day = cores * DAY_SECONDS
    return Sizing(
        cpu_fixed=cpu_fixed,
        cpu_per_tenant=cpu_per_tenant,
        cpu_per_report_record=per_record,
        rss_fixed=rss_fixed,
        rss_per_tenant=rss_per_tenant,
        backfill_cpu=backfill_cpu,
        current_cpu=current_cpu,
        graph_backfill_seconds=graph,
        backfill_per_run_cpu=_per(graph - max(cpu_fixed, 0.0), backfill_cpu),
        backfill_per_run_transfers=_per(m.concurrency * graph, m.report_calls * m.seconds_per_call),
        backfill_per_day=_per(day, backfill_cpu),
        current_per_day=_per(day, current_cpu),
        tenants_per_run_memory=_per(memory_mb - rss_fixed, rss_per_tenant),
    )
