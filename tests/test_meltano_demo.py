"""The README's first command works: the sandbox demo, end to end, as a user runs it.

`scripts/demo.py` (what `make demo` runs after installing) starts the Graph emulator as its own
process, runs `meltano run tap-microsoft365 target-duckdb` against it, prints what landed and
stops the emulator. Here it runs with a smaller tenant and its own DuckDB file and Meltano system
database; the printed row counts must equal the tenant's, built here from the same parameters.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.graph_emulator import Tenant
from tests.meltano_project import ROOT, MeltanoProject, installed_meltano

__all__ = ["installed_meltano"]  # the fixture this module uses

USERS, GROUPS, SEED = 40, 5, 3


def run_demo(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    database = tmp_path / "sandbox.duckdb"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_MICROSOFT365_", "TARGET_", "MELTANO_"))
    }
    env["MELTANO_DATABASE_URI"] = f"sqlite:///{tmp_path / 'meltano.db'}"
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            f"--users={USERS}",
            f"--groups={GROUPS}",
            f"--seed={SEED}",
            f"--database={database}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def printed_counts(stdout: str) -> dict[str, int]:
    """The `table  rows` lines of the demo's 'Rows per table' block."""
    block = stdout.split("Rows per table", 1)[1].split("\n\n", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^  (\w+)\s+(\d+)", block, re.MULTILINE)}


def test_demo_loads_the_sandbox_tenant_into_duckdb_and_prints_it(
    installed_meltano: MeltanoProject, tmp_path: Path
) -> None:
    del installed_meltano  # the demo uses the plugins it installed
    completed = run_demo(tmp_path)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    out = completed.stdout
    # The same tenant the emulator process built (it uses today's date, as here).
    tenant = Tenant.synthetic(users=USERS, groups=GROUPS, seed=SEED, today=dt.date.today())
    counts = printed_counts(out)
    assert counts["organization"] == 1
    assert counts["subscribed_skus"] == len(tenant.skus)
    assert counts["subscriptions"] == len(tenant.subscriptions)
    assert counts["users"] == len(tenant.users)
    assert counts["groups"] == len(tenant.groups)
    reports = {name: n for name, n in counts.items() if name.endswith("_detail")}
    assert len(reports) >= 15, sorted(counts)
    assert counts["office365_active_user_detail"] > 0
    licensed = sum(1 for u in tenant.users.values() if u["assignedLicenses"])
    assert counts["license_assignments"] >= licensed  # one row per (user, SKU)
    # The glimpse: seats, assignment errors, licensed users with no activity in 30 days.
    assert "License assignments in error" in out
    assert f"Licensed users: {licensed};" in out
    inactive = re.search(rf"no activity in 30 days .*: (\d+) of {licensed}\n", out)
    assert inactive is not None
    shown = 8  # the glimpse lists the first few and says how many it left out
    if int(inactive[1]) > shown:
        assert f"...and {int(inactive[1]) - shown} more" in out
    assert "Seats per product" in out
    # The emulator was started, then stopped.
    ready = re.search(r"graph-emulator ready .* pid=(\d+)", out)
    assert ready is not None
    assert "graph emulator stopped" in out
    assert not (Path("/proc") / ready[1]).exists()  # stopped and reaped
    assert (tmp_path / "sandbox.duckdb").stat().st_size > 0
