"""How many tenants one machine reads in a day, from what the tenants benchmark measured.

The benchmark runs the tap on 1 tenant and on N tenants (the same 28-day backfill under a
time-scaled report window) and once on one day of every report at a tenant's full size. A tap
run's CPU and memory are then a fixed part (start-up, catalog, product names) plus a part per
tenant, and a tenant's CPU grows with its records. Graph's report limit counts per tenant, so
it sets how long a backfill waits, not how many tenants wait side by side; but no report is
complete before its last window (a 28-day backfill is 30 calls, the last two in the third
window), and the SDK emits one stream after another, tenant after tenant, so a run's records
are emitted after that wait, one tenant after another: a run of N tenants takes about the wait
plus N tenants' CPU. The arithmetic here turns those measurements into tenants per day at
Graph's real 10-minute window.
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
    first_window_calls: int  # of those, the calls of the first window (up to 14 a report)
    rows_cpu: float  # CPU s of a 1-tenant run of `rows_days` days of every report at full
    # size, beyond the same run's next one (no day left to read: start-up and calls alone)
    rows_records: int  # the records of those days
    rows_days: int
    current_cpu_many: float  # CPU s of the N tenants' next run (nothing new yet)
    seconds_per_call: float  # a report call and its download, on the wire
    concurrency: int = 8  # report_concurrency
    backfill_days: int = 29  # the refresh date and the 28 days before it


@dataclass(frozen=True)
class Sizing:
    """Tenants one machine handles, and what bounds it."""

    cpu_fixed: float  # CPU s of a run besides its tenants
    cpu_per_tenant: float  # CPU s each more tenant adds to a backfill run (benchmark size)
    cpu_per_report_record: float  # CPU s per report record at full size
    day_records: float  # report records of one day of every report at full size
    rss_fixed: float  # MB of a run besides its tenants
    rss_per_tenant: float  # MB each more tenant adds to one run's peak
    backfill_cpu: float  # CPU s per full-size tenant's 28-day backfill
    current_cpu: float  # CPU s per full-size tenant and day to keep it current
    graph_backfill_seconds: float  # the least time Graph's limit lets a backfill take
    stagger_per_tenant: float  # s each tenant's first window adds to the transfers' queue
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


def run_seconds(sizing: Sizing, tenants: int) -> float:
    """At most about how long one run backfills `tenants` full-size tenants: Graph's wait, made
    later by the first window's calls queueing for report_concurrency's transfers (each report's
    later windows count from its first call), then every tenant's records, one after another
    (one process, about one core)."""
    per_tenant = sizing.stagger_per_tenant + sizing.backfill_cpu
    return sizing.graph_backfill_seconds + max(sizing.cpu_fixed, 0.0) + tenants * per_tenant


def per_process_day(sizing: Sizing, tenants: int) -> int:
    """Tenants one process backfills in a day, in runs of `tenants` one after another."""
    return _per(DAY_SECONDS * tenants, run_seconds(sizing, tenants))


def _per(budget: float, cost: float) -> int:
    return int(budget // cost) if cost > 0 else 0


def size(m: Measured, *, cores: int, memory_mb: float) -> Sizing:
    """Tenants per day on a machine of `cores` cores and `memory_mb` MB for the tap.

    - A backfill run costs a fixed part plus a part per tenant (the 1- and N-tenant runs); a
      full-size tenant adds the report records its days have beyond the benchmark's, at the
      CPU per record of the full-size run (beyond its next run, which reads no day).
    - Keeping a tenant current: its share of the N tenants' next run plus one day of reports.
    - One run is one Python process, about one core, idle while Graph's limit makes it wait:
      the machine's CPU bounds the tenants a day when runs go side by side (their waits
      overlap); within one run, report_concurrency's transfers bound the tenants whose calls
      fit in the wait.
    """
    cpu_fixed, cpu_per_tenant = linear(m.cpu_one, m.cpu_many, m.tenants)
    rss_fixed, rss_per_tenant = linear(m.rss_one, m.rss_many, m.tenants)
    per_record = max(m.rows_cpu, 0.0) / m.rows_records if m.rows_records else 0.0
    day_records = m.rows_records / m.rows_days if m.rows_days else 0.0
    full_records = m.backfill_days * day_records
    backfill_cpu = cpu_per_tenant + per_record * max(full_records - m.report_records, 0)
    current_cpu = m.current_cpu_many / m.tenants + per_record * day_records
    graph = graph_seconds(m.calls_per_report, GRAPH_CALLS_PER_WINDOW, GRAPH_WINDOW_SECONDS)
    day = cores * DAY_SECONDS
    return Sizing(
        cpu_fixed=cpu_fixed,
        cpu_per_tenant=cpu_per_tenant,
        cpu_per_report_record=per_record,
        day_records=day_records,
        rss_fixed=rss_fixed,
        rss_per_tenant=rss_per_tenant,
        backfill_cpu=backfill_cpu,
        current_cpu=current_cpu,
        graph_backfill_seconds=graph,
        stagger_per_tenant=m.first_window_calls * m.seconds_per_call / m.concurrency
        if m.concurrency
        else 0.0,
        backfill_per_run_transfers=_per(m.concurrency * graph, m.report_calls * m.seconds_per_call),
        backfill_per_day=_per(day, backfill_cpu),
        current_per_day=_per(day, current_cpu),
        tenants_per_run_memory=_per(memory_mb - rss_fixed, rss_per_tenant),
    )
