"""The README's first command works: the sandbox demo, end to end, as a user runs it.

`scripts/demo.py` (what `make demo` runs after installing) starts the Graph emulator as its own
process, runs `meltano run tap-microsoft365 target-duckdb dbt-duckdb:build` against it (the dbt
models of transform/ and their tests, on DuckDB), stops the emulator and prints what landed and
the wasted seats from the marts. Here it runs with a smaller tenant and its own DuckDB file and
Meltano system database; the printed row counts and the seats per product must equal the
tenant's, built here from the same parameters, and the printed figures the marts'. A second run
with `--sign-ins` reads user_sign_in_activity too (meltano.yml leaves it out): the DuckDB models
then count a recent successful sign-in as activity.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html import escape
from pathlib import Path

import duckdb
import pytest

from tests.graph_emulator import Tenant
from tests.meltano_project import ROOT, MeltanoProject, installed_meltano

__all__ = ["installed_meltano"]  # the fixture this module uses

USERS, GROUPS, SEED, COPILOT_SEATS = 40, 5, 3, 8


def run_demo(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
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
            f"--copilot-seats={COPILOT_SEATS}",
            f"--database={database}",
            *options,
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


@dataclass
class Demo:
    """One run of the demo: its output and its folder."""

    completed: subprocess.CompletedProcess[str]
    folder: Path


@pytest.fixture(scope="module")
def demo(installed_meltano: MeltanoProject, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    del installed_meltano  # the demo uses the plugins it installed
    folder = tmp_path_factory.mktemp("demo")
    completed = run_demo(folder)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return Demo(completed, folder)


def test_demo_loads_the_sandbox_tenant_into_duckdb_and_prints_it(demo: Demo) -> None:
    out, tmp_path = demo.completed.stdout, demo.folder
    # The same tenant the emulator process built (it uses today's date, as here).
    tenant = Tenant.synthetic(
        users=USERS, groups=GROUPS, seed=SEED, today=dt.date.today(), copilot_seats=COPILOT_SEATS
    )
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
    # The marts dbt built on DuckDB: seats per SKU as the tenant has them.
    with duckdb.connect(str(tmp_path / "sandbox.duckdb"), read_only=True) as db:
        seats = {
            sku_id: (purchased, assigned)
            for sku_id, purchased, assigned in db.execute(
                "select sku_id, purchased_units, assigned_units from license_insight.seats_by_sku"
            ).fetchall()
        }
        (wasted, cost), *_ = db.execute(
            "select sum(wasted_seats), sum(wasted_monthly_cost)"
            " from license_insight.wasted_seats_by_sku"
        ).fetchall()
        (inactive,), *_ = db.execute(
            "select count(*) from license_insight.inactive_users"
        ).fetchall()
        copilot = db.execute(
            "select count(*), count(*) filter (where in_use),"
            " count(*) filter (where wasted_reason = 'unused Copilot')"
            " from license_insight.copilot_seats"
        ).fetchone()
        (copilot_wasted,) = db.execute(
            "select wasted_seats from license_insight.wasted_seats_by_sku"
            " where sku_part_number = 'Microsoft_365_Copilot'"
        ).fetchone() or (None,)
    assert seats == {
        sku["skuId"]: (sku["prepaidUnits"]["enabled"], sku["consumedUnits"]) for sku in tenant.skus
    }
    # The glimpse prints the marts' figures, under the tenant's name (organization was loaded);
    # the sandbox prices with the example file.
    assert f"\nTenant {tenant.display_name} ({tenant.tenant_id}):\n" in out
    assert "Seats per product (seats_by_sku)" in out
    assert f"Wasted seats (wasted_seats_by_sku): {wasted}:" in out
    assert cost is not None
    assert f"wasted per month: {cost} EUR" in out
    assert "MADE-UP prices" in out
    assert f"Inactive users holding seats (inactive_users): {inactive}\n" in out
    shown = 8  # the glimpse lists the first few and says how many it left out
    listed = out.split("Inactive users holding seats", 1)[1].split("\n\n", 1)[0]
    if inactive > shown:
        assert f"...and {inactive - shown} more" in listed
    else:
        assert "more" not in listed
    # Microsoft 365 Copilot: the tenant's seats, and the wasted ones among the products.
    assert counts["microsoft365_copilot_usage_user_detail"] == COPILOT_SEATS
    assert copilot is not None
    assert copilot[0] == COPILOT_SEATS
    assert f"Microsoft 365 Copilot seats (copilot_seats): {COPILOT_SEATS} assigned" in out
    assert f"  {copilot[1]} used Copilot in the last 90 days" in out
    assert f"wasted: {copilot[2]} unused" in out
    wasted_rows = out.split("Wasted seats (wasted_seats_by_sku)", 1)[1].split("\n\n", 1)[0]
    copilot_row = next(line for line in wasted_rows.splitlines() if "Microsoft 365 Copilot" in line)
    assert copilot_wasted is not None
    assert copilot_wasted > 0  # the subscription has two unassigned units
    assert copilot_row.split()[8] == str(copilot_wasted)
    assert "Group license errors (group_license_errors)" in out
    assert "Usage reports (report_freshness" in out
    assert "Seats per product" in out
    # The emulator was started, then stopped.
    ready = re.search(r"graph-emulator ready .* pid=(\d+)", out)
    assert ready is not None
    assert "graph emulator stopped" in out
    assert not (Path("/proc") / ready[1]).exists()  # stopped and reaped
    assert (tmp_path / "sandbox.duckdb").stat().st_size > 0


def test_the_html_report_renders_in_headless_chromium(demo: Demo) -> None:
    """The page the demo writes opens in Chromium with no network and no console message, and
    its charts carry the tenant's figures."""
    page = demo.folder / "license-report.html"
    assert f"License report: {page}" in demo.completed.stdout
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is missing: scripts/bootstrap.sh --chromium installs it"
    completed = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            # Nothing may be fetched: every host name fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={demo.folder / 'chromium'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    dom = completed.stdout
    assert not [line for line in completed.stderr.splitlines() if ":CONSOLE" in line]
    # Self-contained: no script, stylesheet or image from elsewhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", dom)
    for chart in ("seats", "wasted", "money", "copilot", "daily"):
        assert f'data-chart="{chart}"' in dom, chart
    assert dom.count("<svg") == 5
    assert dom.count("<polyline") >= 5  # one line per workload
    with duckdb.connect(str(demo.folder / "sandbox.duckdb"), read_only=True) as db:
        products = db.execute(
            "select product_name, purchased_units, assigned_units, active_seats"
            " from license_insight.seats_by_sku where applies_to = 'User' and not is_free"
        ).fetchall()
        wasted = db.execute(
            "select product_name, wasted_seats, inactive_user_seats, wasted_monthly_cost"
            " from license_insight.wasted_seats_by_sku"
        ).fetchall()
    tenant = Tenant.synthetic(
        users=USERS, groups=GROUPS, seed=SEED, today=dt.date.today(), copilot_seats=COPILOT_SEATS
    )
    # One tenant: one section, named by its display name (the organization stream).
    assert dom.count('<section class="tenant"') == 1
    assert f'data-tenant-id="{tenant.tenant_id}"><h2>{escape(tenant.display_name)}</h2>' in dom
    purchased = {sku["prepaidUnits"]["enabled"] for sku in tenant.skus}
    assert products
    for name, bought, assigned, active in products:
        assert bought in purchased
        for series, value in (
            ("purchased", bought),
            ("assigned", assigned),
            ("active users", active),
        ):
            assert (
                f'data-series="{series}" data-label="{escape(name)}" data-value="{value}"' in dom
            ), (name, series)
    for name, _seats, inactive, cost in wasted:
        assert (
            f'data-series="inactive users" data-label="{escape(name)}" data-value="{inactive}"'
            in dom
        )
        if cost is not None:
            assert f'data-label="{escape(name)}" data-value="{float(cost):g}"' in dom
    assert f"{sum(row[1] for row in wasted)} wasted seats" in dom
    # Copilot seats: assigned against used.
    with duckdb.connect(str(demo.folder / "sandbox.duckdb"), read_only=True) as db:
        copilot = db.execute(
            "select product_name, count(*), count(*) filter (where in_use)"
            " from license_insight.copilot_seats group by product_name"
        ).fetchall()
    assert copilot
    for name, assigned, used in copilot:
        for series, value in (("assigned", assigned), ("used Copilot", used)):
            assert (
                f'data-series="{series}" data-label="{escape(name)}" data-value="{value}"' in dom
            ), (name, series)


def test_demo_with_sign_ins_counts_them_as_activity(
    installed_meltano: MeltanoProject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    del installed_meltano
    folder = tmp_path_factory.mktemp("demo-sign-ins")
    completed = run_demo(folder, "--sign-ins")
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    out = completed.stdout
    tenant = Tenant.synthetic(
        users=USERS, groups=GROUPS, seed=SEED, today=dt.date.today(), copilot_seats=COPILOT_SEATS
    )
    assert printed_counts(out)["user_sign_in_activity"] == len(tenant.users)
    with duckdb.connect(str(folder / "sandbox.duckdb"), read_only=True) as db:
        (known, signed_in), *_ = db.execute(
            "select count(*) filter (where sign_ins_known), count(last_sign_in_date)"
            " from license_insight.user_activity"
        ).fetchall()
        # No seat is called inactive while its user signed in within the threshold...
        (contradicted,), *_ = db.execute(
            "select count(*) from license_insight.seat_activity"
            " where wasted_reason = 'inactive user'"
            " and date_diff('day', last_sign_in_date, activity_as_of) <= 90"
        ).fetchall()
        # ...and seats whose user was idle in every report are kept in use by a sign-in.
        (kept,), *_ = db.execute(
            "select count(*) from license_insight.seat_activity"
            " where in_use and (last_report_activity_date is null"
            " or date_diff('day', last_report_activity_date, activity_as_of) > 90)"
        ).fetchall()
    assert known == len(tenant.users)
    assert 0 < signed_in < known  # the emulator leaves about one user in eight never signed in
    assert contradicted == 0
    assert kept > 0
    assert f"(user_sign_in_activity: {known} users)" in out
