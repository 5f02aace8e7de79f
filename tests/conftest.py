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

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TODAY = datetime.date(2026, 11, 26)
# Graph's report window of 10 minutes becomes 6 seconds: pacing is exercised, not waited for.
TIME_SCALE = 0.01
# Tests about the directory streams need a day or two of usage reports, not Graph's full 28.
RECENT_START = {"start_date": (TODAY - datetime.timedelta(days=3)).isoformat()}


_shared: list[GraphEmulator] = []


def shared_emulator() -> GraphEmulator:
    """The session's read-only sandbox tenant of 2,500 users, started on first use.

    Module-level so that `test_core.py` can build the SDK's standard test class (which needs a
    config at import time) against it. The tap in this process trusts its CA.
    """
    if not _shared:
        # Copilot seats and AuditLog.Read.All: every stream, the optional user_sign_in_activity
        # and the Copilot report included, has records for the SDK's standard tests.
        tenant = Tenant.synthetic(users=2500, groups=60, seed=7, today=TODAY, copilot_seats=60)
        emu = GraphEmulator(tenant, time_scale=TIME_SCALE)
        emu.app.roles.add("AuditLog.Read.All")
        emu.start()
        os.environ["REQUESTS_CA_BUNDLE"] = emu.ca_bundle
        _shared.append(emu)
    return _shared[0]


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
