"""streams/reports/fetcher.py: SpoolBudget, the spooled report bytes every tenant's fetcher of a
run counts against report_spool_limit_mb together."""

from __future__ import annotations

import threading

from tap_microsoft365.streams.reports.fetcher import SpoolBudget


def test_full_only_beyond_the_limit() -> None:
    budget = SpoolBudget(100)
    seen = [budget.full]
    budget.add(100)
    seen.append(budget.full)  # at the limit, not over it
    budget.add(1)
    seen.append(budget.full)
    budget.add(-1)  # a file's records were emitted and it was deleted
    seen.append(budget.full)
    assert seen == [False, False, True, False]


def test_the_files_of_every_fetcher_count_together() -> None:
    budget = SpoolBudget(1_000)
    # Two tenants' workers spool 600 bytes each: each alone is under the limit, both are over.
    workers = [threading.Thread(target=budget.add, args=(600,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seen = [budget.full]
    budget.add(-600)
    seen.append(budget.full)
    assert seen == [True, False]
