"""Fixtures: Graph emulators serving synthetic tenants over HTTPS on loopback.

`emulator` is shared by a whole session and must not be mutated; tests that change the tenant or
inject faults take `fresh_emulator`, a factory that builds emulators of their own.
"""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING, Any

import pytest

from tests.graph_emulator import GraphEmulator, Tenant
from tests.graph_emulator.reports import REPORTS as REPORT_FUNCTIONS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TODAY = datetime.date(2026, 11, 26)
# Graph's report window of 10 minutes becomes 6 seconds: pacing is exercised, not waited for.
TIME_SCALE = 0.01
# Tests about the directory streams need a day or two of usage reports, not Graph's full 28.
RECENT_START = {"start_date": (TODAY - datetime.timedelta(days=3)).isoformat()}
# A report column Graph added after the tap was written.
ADDED_COLUMN = "Added Later Count"


_shared: list[GraphEmulator] = []


def _sandbox_emulator() -> GraphEmulator:
    # Copilot seats and AuditLog.Read.All: every stream, the optional user_sign_in_activity
    # and the Copilot report included, has records for the SDK's standard tests.
    tenant = Tenant.synthetic(users=2500, groups=60, seed=7, today=TODAY, copilot_seats=60)
    emu = GraphEmulator(tenant, time_scale=TIME_SCALE)
    emu.app.roles.add("AuditLog.Read.All")
    return emu


def shared_emulator() -> GraphEmulator:
    """The session's read-only sandbox tenant of 2,500 users, started on first use.

    Module-level so that `test_core.py` can build the SDK's standard test class (which needs a
    config at import time) against it. The tap in this process trusts its CA.
    """
    if not _shared:
        emu = _sandbox_emulator()
        emu.start()
        os.environ["REQUESTS_CA_BUNDLE"] = emu.ca_bundle
        _shared.append(emu)
    return _shared[0]


def standard_tests_emulator() -> GraphEmulator:
    """The sandbox tenant for the SDK's standard tests, on an emulator of its own (started now,
    stopped with the session), whose every report also serves a column the tap does not know,
    as Graph adds columns over time. Each report's `extra_columns` object then has values for
    the suite's is_object check; with none, that check would have nothing to test.
    """
    shared_emulator()  # sets REQUESTS_CA_BUNDLE: every emulator of a process has the same CA
    emu = _sandbox_emulator()
    emu.start()
    reports = emu.reports
    for function in REPORT_FUNCTIONS:
        reports.extra_columns[function] = [ADDED_COLUMN]
        reports.extra_column_values[function] = {ADDED_COLUMN: lambda row: "7"}
    _shared.append(emu)
    return emu


def pytest_unconfigure(config: pytest.Config) -> None:
    for emu in _shared:
        emu.stop()


@pytest.fixture(scope="session")
def emulator() -> GraphEmulator:
    """The shared sandbox tenant (do not mutate it: use `fresh_emulator`)."""
    return shared_emulator()


@pytest.fixture
def fresh_emulator() -> Iterator[Callable[..., GraphEmulator]]:
    """Build emulators with their own tenant, stopped when the test ends."""
    started: list[GraphEmulator] = []

    def build(users: int = 120, groups: int = 12, seed: int = 11, **kwargs: Any) -> GraphEmulator:
        tenant = Tenant.synthetic(users=users, groups=groups, seed=seed, today=TODAY)
        emu = GraphEmulator(tenant, **{"time_scale": TIME_SCALE, **kwargs})
        emu.start()
        started.append(emu)
        return emu

    yield build
    for emu in started:
        emu.stop()
