"""The license insight dbt project (transform/) on the real PostgreSQL of the end-to-end harness.

`meltano run tap-microsoft365 target-postgres dbt-postgres:build` loads a tenant served by the
Graph emulator into a throw-away PostgreSQL 15 (tests/postgres.py), then builds the models and
runs their dbt tests (unique, not_null, relationships, accepted_values). Every figure of the
marts is checked against numbers computed here from the emulator's tenant and its usage model,
not from the loaded tables:

- seats per SKU from the tenant's subscribedSkus;
- each seat's last activity and days inactive from the activity the report emulator generates
  for its user (tests/graph_emulator/activity.py), counted from the latest report day, and the
  day the seat's license was assigned (the grace period);
- each user's last successful sign-in from the emulator's signInActivity, when the run selected
  user_sign_in_activity: one more activity signal (a recent sign-in makes a user active even
  without report activity; without it the seat is judged on the reports alone);
- Microsoft 365 Copilot seats: the last Copilot activity the report emulator generates for each
  holder, days without Copilot, and seats wasted because Copilot went unused;
- inactive seats (90 days, and 30 through dbt's --vars), seats of disabled accounts, seats in use
  per SKU, group assignment errors, wasted seats per SKU and, with the example prices, their
  monthly cost;
- users active on the latest report day, per workload, from the rows the report emulator serves.

Two pipelines run: report names shown, and concealed (only the Teams report's User Id joins
users). The first runs without user_sign_in_activity (its table does not exist: the models build
without it), then again, with it selected, after the tenant changed and a day passed: the marts
follow, and license assignments that disappeared are retired by ACTIVATE_VERSION. The concealed
pipeline selects user_sign_in_activity, so users the Teams report does not list are judged by
their sign-ins.

A third pipeline reads two tenants in one run (the tap's `tenants` setting) into one schema: they
hold the same SKUs in other numbers and one conceals names. Every view, read for one tenant,
must equal that tenant's own figures (every model carries tenant_id and joins on it), and
scripts/report.py and scripts/glimpse.py must show each tenant under its display name.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING, Any

import duckdb
import pytest
import yaml
from psycopg import sql

from tests.graph_emulator import GraphEmulator, Tenant
from tests.graph_emulator.product_names import PRODUCT_NAMES
from tests.graph_emulator.reports import Person, _people
from tests.graph_emulator.tenant import COPILOT_SKU, SKU_BY_PART
from tests.meltano_project import ROOT, MeltanoProject, installed_meltano, settings_env
from tests.postgres import PostgresServer, postgres_server
from tests.test_license_assignments import expected_rows

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["installed_meltano", "postgres_server"]  # fixtures this module uses

TODAY = dt.date(2026, 11, 26)
EXAMPLE_PRICES = ROOT / "transform" / "seeds" / "sku_prices_example.csv"
GRACE_DAYS = 14  # transform/dbt_project.yml's grace_days
STREAMS = (
    "users",
    "groups",
    "subscribed_skus",
    "license_assignments",
    "office365_active_user_detail",
    "teams_user_activity_user_detail",
    "teams_team_activity_detail",
    "microsoft365_copilot_usage_user_detail",
)
SIGN_INS = "user_sign_in_activity"  # off unless selected (meltano.yml)
COPILOT = COPILOT_SKU.sku_id
COPILOT_SEATS = 16
WORKLOADS = ("exchange", "onedrive", "sharepoint", "skype", "yammer", "teams")
# The emulator's workloads as daily_active_users names them.
DAILY_WORKLOADS = dict(
    zip(
        WORKLOADS,
        ("exchange", "onedrive", "sharepoint", "skype_for_business", "yammer", "teams"),
        strict=True,
    )
)
FREE = {"FLOW_FREE", "TEAMS_EXPLORATORY"}  # the tenant's free products (dbt_project.yml's list)


def names_setting_declared() -> bool:
    """Whether meltano.yml passes product_names_url to the tap (it then points at the emulator)."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (extractor,) = project["plugins"]["extractors"]
    return any(s["name"] == "product_names_url" for s in extractor.get("settings", []))


Key = tuple[str, str]


# ----------------------------------------------------------------------------- expectations


@dataclass
class Expected:
    """The marts' figures, computed from the emulator."""

    as_of: dt.date
    concealed: bool
    skus: dict[str, dict[str, Any]]
    seats: dict[Key, dict[str, Any]]  # last_activity_date, activity_basis, days_inactive
    disabled: set[Key]
    group_errors: set[tuple[str, str, str, str]]  # user, sku, group, error
    teams: set[str]  # ids of the teams the Teams team-activity report lists
    sign_ins: bool  # whether the run loaded user_sign_in_activity
    users: int  # current users of the tenant
    names: dict[str, str] = field(default_factory=dict)
    tenant_id: str = ""  # the tenant's GUID: every row of its views carries it
    # Users active on the latest report day (last activity that day), per workload.
    active_on_latest_day: dict[str, int] = field(default_factory=dict)

    def unused_copilot(self, days: int) -> set[Key]:
        """Copilot seats of enabled users not otherwise inactive, without Copilot for more than
        `days`, past the grace period (an inactive user's seat is counted as inactive)."""
        inactive = self.inactive(days)
        return {
            key
            for key, seat in self.seats.items()
            if seat["is_copilot"]
            and seat["copilot_days_inactive"] is not None
            and seat["copilot_days_inactive"] > days
            and not seat["in_grace_period"]
            and key not in self.disabled
            and key not in inactive
        }

    def active_seats(self, days: int) -> dict[str, int]:
        """Per SKU, seats of enabled users active within `days` (Copilot: who used Copilot)."""
        out = dict.fromkeys(self.skus, 0)
        for key, seat in self.seats.items():
            if key in self.disabled:
                continue
            if seat["is_copilot"]:
                last, idle = seat["copilot_last_activity_date"], seat["copilot_days_inactive"]
            else:
                last, idle = seat["last_activity_date"], seat["days_inactive"]
            if last is not None and idle is not None and idle <= days:
                out[key[1]] += 1
        return out

    def inactive(self, days: int) -> set[Key]:
        """Paid seats of enabled users inactive for more than `days`, past the grace period."""
        return {
            key
            for key, seat in self.seats.items()
            if self.skus[key[1]]["part_number"] not in FREE
            and seat["days_inactive"] is not None
            and seat["days_inactive"] > days
            and not seat["in_grace_period"]
            and key not in self.disabled
        }

    def wasted(self, days: int) -> dict[str, dict[str, int]]:
        out = {}
        inactive = self.inactive(days)
        unused = self.unused_copilot(days)
        for sku_id, sku in self.skus.items():
            if sku["applies_to_user"] and sku["part_number"] not in FREE:
                disabled = sum(1 for key in self.disabled if key[1] == sku_id)
                idle = sum(1 for key in inactive if key[1] == sku_id)
                no_copilot = sum(1 for key in unused if key[1] == sku_id)
                # Warning units are still usable; over-assigned seats are not "available".
                unassigned = max(sku["purchased"] + sku["warning"] - sku["consumed"], 0)
                out[sku_id] = {
                    "unassigned_seats": unassigned,
                    "disabled_account_seats": disabled,
                    "inactive_user_seats": idle,
                    "unused_copilot_seats": no_copilot,
                    "wasted_seats": unassigned + disabled + idle + no_copilot,
                }
        return out


def expected_figures(
    emu: GraphEmulator, *, sign_ins: bool, tenant_id: str | None = None
) -> Expected:
    """What the views must say about one of the emulator's tenants (by default its first) as
    the last run saw it."""
    tenant_id = tenant_id or emu.tenant_id
    tenant, reports = emu.site(tenant_id).tenant, emu.reports_of(tenant_id)
    directory = emu.directory_of(tenant_id)
    as_of = reports.refresh_date  # the latest report day loaded
    concealed = bool(reports.concealed_names)
    skus = {
        sku["skuId"]: {
            "part_number": sku["skuPartNumber"],
            "applies_to_user": sku["appliesTo"] == "User",
            "purchased": sku["prepaidUnits"]["enabled"],
            "warning": sku["prepaidUnits"]["warning"],
            "suspended": sku["prepaidUnits"]["suspended"],
            "locked_out": sku["prepaidUnits"]["lockedOut"],
            "consumed": sku["consumedUnits"],
        }
        for sku in tenant.skus
    }
    # The report emulator's people: who they are on the latest report day, what they did.
    # The emulator's own model (a private method of it) is the truth here.
    snapshot = reports._snapshot()
    last: dict[str, tuple[str, dt.date | None]] = {}
    report_assigned: dict[str, dt.date | None] = {}  # the latest License Assign Date
    for user in tenant.users.values():
        person = Person(user, snapshot)
        if person.exists_on(as_of) and not concealed:
            days_assigned = [person.assigned.get(w) for w in WORKLOADS if person.licensed(w)]
            report_assigned[user["id"]] = max((d for d in days_assigned if d), default=None)
        if not person.exists_on(as_of):
            last[user["id"]] = ("not in reports", None)
            continue
        workloads = ("teams",) if concealed else WORKLOADS
        if concealed and not person.uses("teams"):  # no Teams report row to join
            last[user["id"]] = ("not in reports", None)
            continue
        days = [person.last(workload, as_of) for workload in workloads]
        latest = max((d for d in days if d), default="")
        basis = "Teams only" if concealed else "all workloads"
        last[user["id"]] = (basis, dt.date.fromisoformat(latest) if latest else None)
    # The Copilot report: a row per Copilot holder on the snapshot day (as_of), listing their
    # last Copilot activity; its user principal names join users unless names are concealed.
    copilot_last: dict[str, dt.date | None] = {}
    for user in tenant.users.values():
        person = Person(user, snapshot)
        holds = any(str(item.get("skuId")) == COPILOT for item in person.licenses)
        if holds and person.exists_on(as_of) and not person.deleted_by(as_of) and not concealed:
            copilot_last[user["id"]] = person.activity.last_active("copilot", as_of)
    # signInActivity as the emulator served it to the run (the last successful sign-in's day).
    signed_in: dict[str, dt.date | None] = {}
    if sign_ins:
        for user in tenant.users.values():
            stamp = directory.sign_in_activity(user)["lastSuccessfulSignInDateTime"]
            signed_in[user["id"]] = dt.date.fromisoformat(stamp[:10]) if stamp else None
    seats: dict[Key, dict[str, Any]] = {}
    disabled: set[Key] = set()
    errors: set[tuple[str, str, str, str]] = set()
    for key, row in expected_rows(tenant).items():
        for path in row["assignments"]:
            if path["assignedByGroup"] and path["error"] != "None":
                errors.add((*key, path["assignedByGroup"], path["error"]))
        if not row["consumes_unit"]:
            continue
        basis, report_latest = last[key[0]]
        copilot = copilot_last.get(key[0])
        report_latest = max((d for d in (report_latest, copilot) if d), default=None)
        sign_in = signed_in.get(key[0])
        # A sign-in is one more activity signal; a user in no report is judged by it alone.
        overall = max((d for d in (report_latest, sign_in) if d), default=None)
        if basis == "not in reports" and key[0] in signed_in:
            basis = "sign-ins only"
        # Held since the SKU's own assignment day, else the report's License Assign Date.
        held_since = (
            dt.date.fromisoformat(row["assigned_date_time"][:10])
            if row["assigned_date_time"]
            else report_assigned.get(key[0])
            or dt.date.fromisoformat(row["last_updated_date_time"][:10])
        )
        since = overall or held_since
        is_copilot = key[1] == COPILOT
        judged_copilot = is_copilot and key[0] in copilot_last
        seats[key] = {
            "last_activity_date": overall,
            "last_report_activity_date": report_latest,
            "last_sign_in_date": sign_in,
            "activity_basis": basis,
            "sign_ins_known": key[0] in signed_in,
            "days_inactive": None if basis == "not in reports" else max(0, (as_of - since).days),
            "held_since": held_since,
            "in_grace_period": (as_of - held_since).days < GRACE_DAYS,
            "is_copilot": is_copilot,
            "copilot_last_activity_date": copilot,
            "copilot_days_inactive": (
                max(0, (as_of - (copilot or held_since)).days) if judged_copilot else None
            ),
        }
        if row["account_enabled"] is False:
            disabled.add(key)
    teams = {
        group["id"]
        for group in tenant.groups.values()
        if "Team" in (group.get("resourceProvisioningOptions") or [])
    }
    # The active-user report's rows of the latest day: everyone the directory knew that day,
    # deleted users included (the emulator's own selection of them is the truth here).
    people = list(_people(snapshot, as_of))
    active_on_latest_day = {
        DAILY_WORKLOADS[workload]: sum(1 for p in people if p.last(workload, as_of) == str(as_of))
        for workload in WORKLOADS
    }
    return Expected(
        as_of,
        concealed,
        skus,
        seats,
        disabled,
        errors,
        teams,
        sign_ins,
        len(tenant.users),
        tenant_id=tenant_id,
        active_on_latest_day=active_on_latest_day,
    )


# ----------------------------------------------------------------------------- the pipelines


@dataclass
class Views:
    """What the marts said right after one dbt build."""

    status: dict[str, Any]
    skus: dict[str, dict[str, Any]]
    seats: dict[Key, dict[str, Any]]
    inactive: set[Key]
    inactive_users: set[str]
    disabled: set[Key]
    group_errors: set[tuple[str, str, str, str]]
    wasted: dict[str, dict[str, Any]]
    copilot: dict[Key, dict[str, Any]]
    unused_copilot: set[Key]
    teams: set[str]  # team ids on the latest day of stg_teams_team_activity
    active_on_latest_day: dict[str, int]  # daily_active_users of the latest day, per workload
    sign_in_rows: int  # rows of stg_user_sign_in_activity
    sign_in_table: bool  # whether the tap's user_sign_in_activity table exists
    retired_assignments: set[Key]
    names_loaded: bool
    tenant_name: str  # the tenants mart's name for the tenant

    @classmethod
    def read(cls, server: PostgresServer, schema: str, tenant_id: str) -> Views:
        """One tenant's rows of the marts in `<schema>_insight` and of the loaded tables in
        `schema`: every table read is narrowed to `tenant_id` first."""
        marts = f"{schema}_insight"

        def rows(sql: str, search_path: str = marts) -> list[dict[str, Any]]:
            # `{name}` in `sql` reads table `name` holding only this tenant's rows.
            tables = re.findall(r"\{(\w+)\}", sql)
            narrowed = "(SELECT * FROM {0} WHERE tenant_id = %(tenant)s) AS {0}"
            scoped = sql.format_map({name: narrowed.format(name) for name in tables})
            with server.connect() as connection:
                connection.execute(f'SET search_path TO "{search_path}"')
                cursor = connection.execute(scoped, {"tenant": tenant_id} if tables else None)
                names = [column.name for column in cursor.description or []]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        def keyed(sql: str, *columns: str) -> dict[Any, dict[str, Any]]:
            """Rows by their key; a key twice (rows joined across tenants) fails."""
            found = rows(sql)
            out = {
                tuple(str(r[c]) for c in columns) if len(columns) > 1 else str(r[columns[0]]): r
                for r in found
            }
            assert len(out) == len(found), sql
            return out

        def keys(sql: str, search_path: str = marts) -> set[Key]:
            return {(r["user_id"], str(r["sku_id"])) for r in rows(sql, search_path)}

        (status,) = rows(
            "SELECT latest_report_date AS activity_as_of, names_concealed FROM {report_freshness}"
            " WHERE report = 'office365_active_user_detail'"
        )
        return cls(
            status=status,
            skus=keyed("SELECT * FROM {seats_by_sku}", "sku_id"),
            seats=keyed("SELECT * FROM {seat_activity}", "user_id", "sku_id"),
            inactive=keys("SELECT * FROM {wasted_seats} WHERE wasted_reason = 'inactive user'"),
            inactive_users=set(keyed("SELECT user_id FROM {inactive_users}", "user_id")),
            disabled=keys("SELECT * FROM {wasted_seats} WHERE wasted_reason = 'disabled account'"),
            group_errors={
                (r["user_id"], str(r["sku_id"]), r["group_id"], r["error"])
                for r in rows("SELECT * FROM {group_license_errors}")
            },
            wasted=keyed("SELECT * FROM {wasted_seats_by_sku}", "sku_id"),
            copilot=keyed("SELECT * FROM {copilot_seats}", "user_id", "sku_id"),
            unused_copilot=keys(
                "SELECT * FROM {wasted_seats} WHERE wasted_reason = 'unused Copilot'"
            ),
            teams={
                r["team_id"]
                for r in rows(
                    "SELECT team_id FROM {stg_teams_team_activity} WHERE report_date ="
                    " (SELECT max(report_date) FROM {stg_teams_team_activity})"
                )
            },
            active_on_latest_day={
                r["workload"]: r["active_users"]
                for r in rows(
                    "SELECT workload, active_users FROM {daily_active_users} WHERE report_date ="
                    " (SELECT max(report_date) FROM {daily_active_users})"
                )
            },
            sign_in_rows=rows("SELECT count(*) AS n FROM {stg_user_sign_in_activity}")[0]["n"],
            sign_in_table=rows(
                "SELECT to_regclass('user_sign_in_activity') IS NOT NULL AS found", schema
            )[0]["found"],
            retired_assignments=keys(
                "SELECT user_id, sku_id FROM {license_assignments}"
                " WHERE _sdc_deleted_at IS NOT NULL",
                schema,
            ),
            names_loaded=bool(
                rows("SELECT count(product_display_name) AS n FROM {subscribed_skus}", schema)[0][
                    "n"
                ]
            ),
            tenant_name=rows("SELECT tenant_name FROM {tenants}")[0]["tenant_name"],
        )


@dataclass
class Pipeline:
    """One emulator loaded into one schema by its own Meltano system database."""

    emulator: GraphEmulator
    meltano: MeltanoProject
    postgres: PostgresServer
    schema: str
    cache: Path
    sign_ins: bool = False  # select user_sign_in_activity (and grant AuditLog.Read.All)
    # Read every tenant the emulator serves in one run (the tap's `tenants` setting), and the
    # organization stream too (the tenants mart names each tenant by its display name).
    every_tenant: bool = False

    def env(self) -> dict[str, str]:
        """The tap pointed at the emulator, target-postgres and dbt-postgres at the server."""
        start = (TODAY - dt.timedelta(days=3)).isoformat()
        if self.every_tenant:
            config = self.emulator.tenants_config(start_date=start)
        else:
            config = self.emulator.config(start_date=start)
        streams = (
            *STREAMS,
            *([SIGN_INS] if self.sign_ins else []),
            *(["organization"] if self.every_tenant else []),
        )
        return {
            **settings_env(config),
            "REQUESTS_CA_BUNDLE": self.emulator.ca_bundle,
            **self.postgres.target_env(),
            **self.postgres.dbt_env(self.schema, f"{self.schema}_insight"),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
            "TAP_MICROSOFT365__SELECT": json.dumps([f"{stream}.*" for stream in streams]),
            # The sandbox environment prices with the example file; these checks start without.
            "DBT_POSTGRES_EXAMPLE_PRICES": "false",
            # Where meltano.yml does not declare the product names settings yet, the tap falls
            # back to Microsoft's address: keep the test off the internet and its cache here.
            "XDG_CACHE_HOME": str(self.cache),
            **dict.fromkeys(("HTTPS_PROXY", "https_proxy"), "http://127.0.0.1:9"),
            **dict.fromkeys(("NO_PROXY", "no_proxy"), "127.0.0.1,localhost"),
        }

    def run(self) -> Views:
        """The README's line: tap -> target-postgres -> dbt (models and their tests)."""
        if self.sign_ins:
            self.emulator.app.roles.add("AuditLog.Read.All")
        self.meltano.run(
            "run",
            f"--state-id-suffix={self.schema}",
            "tap-microsoft365",
            "target-postgres",
            "dbt-postgres:build",
            env=self.env(),
        )
        return self.read()

    def rebuild(self, dbt_vars: dict[str, Any], env: dict[str, str] | None = None) -> Views:
        """dbt alone, again, with other variables (`meltano invoke dbt-postgres build --vars`)."""
        self.meltano.run(
            "invoke",
            "dbt-postgres",
            "build",
            "--target",
            "postgres",
            "--vars",
            json.dumps(dbt_vars),
            env={**self.env(), **(env or {})},
        )
        return self.read()

    def read(self, tenant_id: str | None = None) -> Views:
        """The views of one tenant (by default the emulator's first)."""
        return Views.read(self.postgres, self.schema, tenant_id or self.emulator.tenant_id)


@dataclass
class Runs:
    """Views and expectations after each run."""

    plain: tuple[Views, Expected]
    concealed: tuple[Views, Expected]
    changed: tuple[Views, Expected]
    touched: dict[str, Any]
    settings: dict[str, Any]


def change_tenant(tenant: Tenant) -> dict[str, Any]:
    """A license removed, a user deleted, an account disabled, a group over its units, a day."""
    users = [u for u in tenant.users.values() if u["userType"] == "Member"]
    direct = next(
        u for u in users if any(p["assignedByGroup"] is None for p in u["licenseAssignmentStates"])
    )
    sku = next(
        p["skuId"] for p in direct["licenseAssignmentStates"] if p["assignedByGroup"] is None
    )
    tenant.remove_license(direct["id"], sku)
    deleted = next(u for u in users if u["assignedLicenses"] and u["id"] != direct["id"])
    tenant.hard_delete_user(deleted["id"])
    disabled = next(
        u
        for u in users
        if u["assignedLicenses"]
        and u["accountEnabled"]
        and u["id"] not in (direct["id"], deleted["id"])
    )
    tenant.update_user(disabled["id"], accountEnabled=False)
    visio_group = next(
        g["id"] for g in tenant.groups.values() if g["displayName"] == "SG-License-Visio-Plan2"
    )
    members = set(tenant.members_of(visio_group))
    joiner = next(u["id"] for u in users if u["id"] not in members and u["id"] != deleted["id"])
    tenant.add_group_member(visio_group, joiner)
    newcomer = tenant.add_user(displayName="Nieuw", mailNickname="nieuw", usageLocation="NL")
    tenant.assign_license(newcomer, "SPE_E3")
    tenant.today = tenant.today + dt.timedelta(days=1)
    return {
        "removed": (direct["id"], sku),
        "deleted": deleted["id"],
        "disabled": disabled["id"],
        "joiner": joiner,
        "newcomer": newcomer,
    }


@pytest.fixture(scope="module")
def runs(
    installed_meltano: MeltanoProject,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Runs]:
    """Both pipelines' first runs, then the changed tenant's second run."""
    work = tmp_path_factory.mktemp("insight")
    plain_emu = GraphEmulator(
        Tenant.synthetic(users=150, groups=12, seed=11, today=TODAY, copilot_seats=COPILOT_SEATS),
        time_scale=0.005,
    )
    concealed_emu = GraphEmulator(
        Tenant.synthetic(users=150, groups=12, seed=11, today=TODAY, copilot_seats=COPILOT_SEATS),
        time_scale=0.005,
    )
    with plain_emu, concealed_emu:
        concealed_emu.reports.concealed_names = True
        plain = Pipeline(plain_emu, installed_meltano, postgres_server, "insight", work / "c1")
        concealed = Pipeline(
            concealed_emu,
            installed_meltano,
            postgres_server,
            "insight_concealed",
            work / "c2",
            sign_ins=True,
        )
        first = plain.run()
        hidden = concealed.run()
        expected_first = expected_figures(plain_emu, sign_ins=False)
        expected_hidden = expected_figures(concealed_emu, sign_ins=True)

        # dbt's variables: another threshold, and the example prices.
        at_30 = plain.rebuild({"inactive_days": 30}, env={"DBT_POSTGRES_EXAMPLE_PRICES": "true"})

        touched = change_tenant(plain_emu.tenant)
        plain.sign_ins = True  # now with user_sign_in_activity selected
        changed = plain.run()
        yield Runs(
            plain=(first, expected_first),
            concealed=(hidden, expected_hidden),
            changed=(changed, expected_figures(plain_emu, sign_ins=True)),
            touched=touched,
            settings={"at_30": at_30},
        )


# ----------------------------------------------------------------------------- checks


def check(views: Views, expected: Expected) -> None:
    """Every figure of every view equals the emulator's."""
    assert views.status["activity_as_of"] == expected.as_of
    assert views.status["names_concealed"] is expected.concealed
    assert set(views.skus) == set(expected.skus)
    for sku_id, sku in expected.skus.items():
        row = views.skus[sku_id]
        assert (
            row["purchased_units"],
            row["warning_units"],
            row["suspended_units"],
            row["locked_out_units"],
            row["assigned_units"],
            row["available_units"],
            row["over_assigned_units"],
        ) == (
            sku["purchased"],
            sku["warning"],
            sku["suspended"],
            sku["locked_out"],
            sku["consumed"],
            max(sku["purchased"] + sku["warning"] - sku["consumed"], 0),
            max(sku["consumed"] - sku["purchased"] - sku["warning"], 0),
        ), sku["part_number"]
        # Product names: the file's when the run could read it, else the part number.
        assert views.names_loaded or not names_setting_declared()
        name = PRODUCT_NAMES[sku_id] if views.names_loaded else sku["part_number"]
        assert row["product_name"] == name
        assert row["active_seats"] == expected.active_seats(90)[sku_id], sku["part_number"]
    assert set(views.seats) == set(expected.seats)
    for key, seat in expected.seats.items():
        row = views.seats[key]
        assert {name: row[name] for name in seat} == seat, key
    paid = {sku_id for sku_id, sku in expected.skus.items() if sku["part_number"] not in FREE}
    assert views.inactive == expected.inactive(90)
    assert views.inactive_users == {key[0] for key in expected.inactive(90)}
    assert views.disabled == {key for key in expected.disabled if key[1] in paid}
    assert views.group_errors == expected.group_errors
    assert views.unused_copilot == expected.unused_copilot(90)
    # Copilot seats: one row each, with the figures seat_activity has for them.
    assert set(views.copilot) == {key for key, seat in expected.seats.items() if seat["is_copilot"]}
    for key, row in views.copilot.items():
        seat = expected.seats[key]
        assert (row["copilot_last_activity_date"], row["copilot_days_inactive"]) == (
            seat["copilot_last_activity_date"],
            seat["copilot_days_inactive"],
        ), key
    # The sign-in stream's table exists only when selected; the models build either way.
    assert views.sign_in_table is expected.sign_ins
    assert views.sign_in_rows == (expected.users if expected.sign_ins else 0)
    assert views.teams == expected.teams
    assert views.active_on_latest_day == expected.active_on_latest_day
    assert any(expected.active_on_latest_day.values())
    wasted = expected.wasted(90)
    assert set(views.wasted) == set(wasted)
    for sku_id, figures in wasted.items():
        row = views.wasted[sku_id]
        assert {name: row[name] for name in figures} == figures, expected.skus[sku_id]
        assert row["inactive_days"] == 90
        assert (row["monthly_price"], row["wasted_monthly_cost"]) == (None, None)  # no prices


def test_figures_match_the_tenant(runs: Runs) -> None:
    views, expected = runs.plain
    check(views, expected)
    # The data is rich enough to mean something.
    assert len(expected.inactive(90)) >= 10
    assert expected.disabled
    assert {e[3] for e in expected.group_errors} == {"CountViolation"}
    assert max(row["wasted_seats"] for row in views.wasted.values()) > 0
    assert all(seat["activity_basis"] == "all workloads" for seat in views.seats.values())
    # Copilot: every holder has a seat, some used Copilot lately, some never did.
    assert len(views.copilot) == COPILOT_SEATS
    copilot_days = [row["copilot_days_inactive"] for row in views.copilot.values()]
    assert None not in copilot_days
    assert any(row["copilot_last_activity_date"] is None for row in views.copilot.values())
    assert views.skus[COPILOT]["active_seats"] > 0
    # Without the organization stream the tenant is named by its id.
    assert views.tenant_name == expected.tenant_id
    # Without user_sign_in_activity: no table, no sign-ins, activity from the reports alone.
    assert not views.sign_in_table
    assert all(seat["last_sign_in_date"] is None for seat in views.seats.values())
    assert all(not seat["sign_ins_known"] for seat in views.seats.values())


def recent_sign_in_only(expected: Expected, days: int) -> set[Key]:
    """Seats held past the grace period whose user did nothing in any report for more than
    `days` days but signed in within them: the sign-in alone keeps them active."""
    return {
        key
        for key, seat in expected.seats.items()
        if seat["last_sign_in_date"] is not None
        and (expected.as_of - seat["last_sign_in_date"]).days <= days
        and (
            seat["last_report_activity_date"] is None
            or (expected.as_of - seat["last_report_activity_date"]).days > days
        )
        and (expected.as_of - seat["held_since"]).days > days
        and not seat["in_grace_period"]
        and key not in expected.disabled
    }


def test_inactive_days_and_prices_are_dbt_variables(runs: Runs) -> None:
    views, expected = runs.plain
    at_30 = runs.settings["at_30"]
    assert at_30.inactive == expected.inactive(30)
    assert at_30.inactive != views.inactive
    wasted = expected.wasted(30)
    with EXAMPLE_PRICES.open(newline="") as prices_file:
        prices = {row["sku_part_number"]: row for row in csv.DictReader(prices_file)}
    assert all("MADE-UP" in row["note"] for row in prices.values())
    priced = 0
    for sku_id, figures in wasted.items():
        row = at_30.wasted[sku_id]
        assert row["inactive_user_seats"] == figures["inactive_user_seats"]
        assert row["unused_copilot_seats"] == figures["unused_copilot_seats"]
        assert row["inactive_days"] == 30
        price = prices.get(expected.skus[sku_id]["part_number"])
        if price is None:
            assert row["wasted_monthly_cost"] is None
            continue
        priced += 1
        assert row["currency"] == price["currency"]
        assert row["monthly_price"] == Decimal(price["monthly_price"])
        assert row["wasted_monthly_cost"] == figures["wasted_seats"] * Decimal(
            price["monthly_price"]
        )
    assert priced >= 3
    # Copilot seats unused for 30 days (holders active otherwise) are wasted Copilot seats,
    # priced with the (made-up) Copilot price.
    assert at_30.unused_copilot == expected.unused_copilot(30)
    assert at_30.unused_copilot
    assert wasted[COPILOT]["unused_copilot_seats"] == len(expected.unused_copilot(30))
    assert at_30.wasted[COPILOT]["wasted_monthly_cost"] == wasted[COPILOT][
        "wasted_seats"
    ] * Decimal(prices["Microsoft_365_Copilot"]["monthly_price"])
    for sku_id, active in expected.active_seats(30).items():
        assert at_30.skus[sku_id]["active_seats"] == active, expected.skus[sku_id]


def test_with_concealed_names_only_teams_activity_and_sign_ins_join(runs: Runs) -> None:
    views, expected = runs.concealed
    check(views, expected)
    bases = {seat["activity_basis"] for seat in views.seats.values()}
    # Users the Teams report does not list are judged by their sign-ins alone.
    assert bases == {"Teams only", "sign-ins only"}
    assert views.sign_in_table
    by_sign_ins = [s for s in views.seats.values() if s["activity_basis"] == "sign-ins only"]
    assert all(s["days_inactive"] is not None for s in by_sign_ins)
    # A recent sign-in keeps a seat without recent report activity in use...
    rescued = recent_sign_in_only(expected, 90)
    assert rescued
    assert not rescued & views.inactive
    # ...and a user with neither a sign-in nor report activity in 90 days is inactive.
    assert any(views.seats[key]["last_sign_in_date"] is None for key in views.inactive)
    # The Copilot report's concealed names join no user: Copilot seats are not judged on use.
    assert views.copilot
    assert all(row["copilot_days_inactive"] is None for row in views.copilot.values())
    assert not views.unused_copilot


def test_a_later_run_follows_the_changed_tenant(runs: Runs) -> None:
    views, expected = runs.changed
    check(views, expected)
    touched = runs.touched
    assert views.status["activity_as_of"] == TODAY - dt.timedelta(days=1)  # a new report day
    # Assignments that disappeared are retired in the table and gone from the views.
    assert touched["removed"] in views.retired_assignments
    assert touched["removed"] not in views.seats
    assert {key for key in views.retired_assignments if key[0] == touched["deleted"]}
    assert not [key for key in views.seats if key[0] == touched["deleted"]]
    disabled_seats = {key for key in views.disabled if key[0] == touched["disabled"]}
    assert disabled_seats
    visio = SKU_BY_PART["VISIOCLIENT"].sku_id
    assert any(e[0] == touched["joiner"] and e[1] == visio for e in views.group_errors)
    # A user created today is in no report yet: judged by sign-ins only, and in the grace period.
    newcomer = views.seats[(touched["newcomer"], SKU_BY_PART["SPE_E3"].sku_id)]
    assert (newcomer["activity_basis"], newcomer["in_grace_period"]) == ("sign-ins only", True)
    assert newcomer["wasted_reason"] is None
    # This run selected user_sign_in_activity: sign-ins now count, and change the figures.
    assert views.sign_in_table
    assert recent_sign_in_only(expected, 90)
    assert not recent_sign_in_only(expected, 90) & views.inactive


# ----------------------------------------------------------------------------- several tenants

# What scripts/report.py and scripts/glimpse.py read, by schema (the tap's tables, the marts).
FOR_SCRIPTS = {
    "tap_microsoft365": ("organization", "subscribed_skus"),
    "license_insight": (
        "tenants",
        "seats_by_sku",
        "wasted_seats_by_sku",
        "copilot_seats",
        "daily_active_users",
        "inactive_users",
        "user_activity",
        "group_license_errors",
        "report_freshness",
        "sku_prices",
    ),
}


@dataclass
class TenantRuns:
    """One run over two tenants (the tap's `tenants` setting) into one schema."""

    pipeline: Pipeline
    figures: dict[str, tuple[Views, Expected]]  # each tenant's views and its own figures
    names: dict[str, str]  # display names by tenant id
    per_mart: dict[str, dict[str, int]]  # rows per tenant id in each mart


def several_tenants() -> GraphEmulator:
    """Contoso and Fabrikam, one multi-tenant app consented in both. They hold the same products
    (the same skuIds: a join on skuId alone mixes them) in other numbers, their reports cover the
    same days (so do joins on the report day), and Fabrikam conceals user names in its reports."""
    contoso = Tenant.synthetic(users=80, groups=8, seed=41, today=TODAY, copilot_seats=6)
    fabrikam = Tenant.synthetic(
        users=50,
        groups=6,
        seed=42,
        today=TODAY,
        copilot_seats=4,
        domain="fabrikam.onmicrosoft.com",
        display_name="Fabrikam",
    )
    return GraphEmulator(contoso, tenants=[fabrikam], time_scale=0.005)


@pytest.fixture(scope="module")
def tenant_runs(
    installed_meltano: MeltanoProject,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TenantRuns]:
    with several_tenants() as emu:
        ids = list(emu.sites)
        emu.reports_of(ids[1]).concealed_names = True
        pipeline = Pipeline(
            emu,
            installed_meltano,
            postgres_server,
            "insight_tenants",
            tmp_path_factory.mktemp("insight-tenants"),
            sign_ins=True,
            every_tenant=True,
        )
        pipeline.run()
        figures = {
            tenant_id: (
                pipeline.read(tenant_id),
                expected_figures(emu, sign_ins=True, tenant_id=tenant_id),
            )
            for tenant_id in ids
        }
        per_mart: dict[str, dict[str, int]] = {}
        with postgres_server.connect() as connection:
            # Every model with a tenant_id (all but the prices) in the run's dbt schema.
            for (model,) in connection.execute(
                "SELECT table_name FROM information_schema.columns"
                " WHERE table_schema = %s AND column_name = 'tenant_id'",
                ["insight_tenants_insight"],
            ).fetchall():
                counted = connection.execute(
                    sql.SQL("SELECT tenant_id, count(*) FROM {} GROUP BY tenant_id").format(
                        sql.Identifier("insight_tenants_insight", model)
                    )
                ).fetchall()
                per_mart[model] = dict(counted)
        yield TenantRuns(
            pipeline,
            figures,
            {tenant_id: emu.site(tenant_id).tenant.display_name for tenant_id in ids},
            per_mart,
        )


def test_each_tenant_of_one_run_has_its_own_figures(tenant_runs: TenantRuns) -> None:
    """Every figure of every view, read for one tenant, equals that tenant's own: nothing of the
    other tenant joins in (the dbt tests passed too: uniqueness per tenant and key)."""
    (contoso_id, contoso), (fabrikam_id, fabrikam) = tenant_runs.figures.items()
    for views, expected in (contoso, fabrikam):
        check(views, expected)
        # The organization stream was loaded: each tenant has its display name.
        assert views.tenant_name == tenant_runs.names[expected.tenant_id]
    assert set(tenant_runs.names.values()) == {"Contoso", "Fabrikam"}
    # The same products in other numbers: SKU figures differ between the tenants.
    shared = set(contoso[1].skus) & set(fabrikam[1].skus)
    assert COPILOT in shared
    assert any(contoso[1].skus[s]["consumed"] != fabrikam[1].skus[s]["consumed"] for s in shared)
    assert contoso[0].wasted != fabrikam[0].wasted
    # Fabrikam conceals names, Contoso does not; Copilot seats are judged in Contoso only.
    assert (contoso[0].status["names_concealed"], fabrikam[0].status["names_concealed"]) == (
        False,
        True,
    )
    assert contoso[0].copilot
    assert fabrikam[0].copilot
    assert all(row["copilot_days_inactive"] is None for row in fabrikam[0].copilot.values())
    assert all(row["copilot_days_inactive"] is not None for row in contoso[0].copilot.values())
    # Every row of every model belongs to one of the two tenants, and the per-tenant reads
    # above saw them all.
    tenants = {contoso_id, fabrikam_id}
    for mart, counts in tenant_runs.per_mart.items():
        assert set(counts) <= tenants, mart
    for mart in ("tenants", "seats_by_sku", "seat_activity", "user_activity", "report_freshness"):
        assert set(tenant_runs.per_mart[mart]) == tenants, mart
    assert tenant_runs.per_mart["tenants"] == dict.fromkeys(tenants, 1)
    for tenant_id, (views, expected) in tenant_runs.figures.items():
        assert tenant_runs.per_mart["seat_activity"][tenant_id] == len(expected.seats)
        assert tenant_runs.per_mart["seats_by_sku"][tenant_id] == len(expected.skus)
        assert tenant_runs.per_mart["user_activity"][tenant_id] == expected.users
        assert tenant_runs.per_mart["report_freshness"][tenant_id] == 3  # one row per report
        assert len(views.seats) == len(expected.seats)


def mart_rows(server: PostgresServer, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every model table of a dbt schema, its rows as sorted text tuples."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with server.connect() as connection:
        models = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [schema],
        ).fetchall()
        for (model,) in models:
            rows = connection.execute(
                sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, model))
            ).fetchall()
            found[model] = sorted(tuple(str(v) for v in row) for row in rows)
    return found


def test_tenants_loaded_into_separate_schemas_read_as_one(tenant_runs: TenantRuns) -> None:
    """Runs that load tenants into schemas of their own (orchestrate/: a schema per tenant group,
    since a run's ACTIVATE_VERSION retires every row of its table) give the same models, read
    through the dbt var tap_schemas, as one run loading both tenants into one schema."""
    pipeline = tenant_runs.pipeline
    server = pipeline.postgres
    (contoso_id, _), (fabrikam_id, _) = tenant_runs.figures.items()
    split = {contoso_id: "insight_group_a", fabrikam_id: "insight_group_b"}
    reference = "insight_one_schema_source"  # the run's tables, as the split keeps them
    with server.connect() as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [pipeline.schema],
            ).fetchall()
        ]
        for schema in (reference, *split.values()):
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for name in tables:
            columns = [
                column
                for (column,) in connection.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                    [pipeline.schema, name],
                ).fetchall()
            ]
            # The reference holds both tenants; each split schema one. Fabrikam's schema lacks
            # the optional sign-in table, so the reference leaves out Fabrikam's sign-ins too.
            sign_ins = [contoso_id]
            copies = [
                (reference, sign_ins if name == SIGN_INS else [contoso_id, fabrikam_id]),
                *((schema, [tenant_id]) for tenant_id, schema in split.items()),
            ]
            for schema, wanted in copies:
                if name == SIGN_INS and wanted == [fabrikam_id]:
                    continue
                # Fabrikam's tables made by another run: another column order.
                order = columns[::-1] if wanted == [fabrikam_id] else columns
                copy = sql.SQL("CREATE TABLE {} AS SELECT {} FROM {} WHERE tenant_id = ANY(%s)")
                connection.execute(
                    copy.format(
                        sql.Identifier(schema, name),
                        sql.SQL(", ").join(sql.Identifier(c) for c in order),
                        sql.Identifier(pipeline.schema, name),
                    ),
                    [wanted],
                )
    pipeline.rebuild({}, env=server.dbt_env(reference, "insight_one_schema"))
    # The source schema names no schema that exists: only tap_schemas can feed the models.
    pipeline.rebuild(
        {"tap_schemas": list(split.values())},
        env=server.dbt_env("insight_no_such_schema", "insight_two_schemas"),
    )
    one = mart_rows(server, "insight_one_schema")
    two = mart_rows(server, "insight_two_schemas")
    assert set(one) == set(two)
    assert one["seat_activity"], "the models hold rows"
    for model, rows in one.items():
        assert two[model] == rows, model


def duckdb_type(postgres: str) -> str:
    """A PostgreSQL column type as DuckDB spells it; JSON and arrays as text."""
    if "json" in postgres or postgres.endswith("[]"):
        return "varchar"
    return postgres.replace("timestamp without time zone", "timestamp")


@pytest.fixture(scope="module")
def as_duckdb(tenant_runs: TenantRuns, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tables the scripts read, copied from this run's PostgreSQL schemas into a DuckDB file
    under the schema names target-duckdb and dbt-duckdb give them (the scripts read DuckDB)."""
    folder = tmp_path_factory.mktemp("as-duckdb")
    database = folder / "tenants.duckdb"
    schemas = {
        "tap_microsoft365": tenant_runs.pipeline.schema,
        "license_insight": f"{tenant_runs.pipeline.schema}_insight",
    }
    with tenant_runs.pipeline.postgres.connect() as source, duckdb.connect(str(database)) as db:
        for schema, tables in FOR_SCRIPTS.items():
            db.execute(f"CREATE SCHEMA {schema}")
            for table in tables:
                cursor = source.execute(
                    sql.SQL("SELECT * FROM {}").format(sql.Identifier(schemas[schema], table))
                )
                columns = cursor.description or []
                file = folder / f"{table}.csv"
                with file.open("w", newline="") as out:
                    writer = csv.writer(out)
                    writer.writerow([column.name for column in columns])
                    writer.writerows(cursor.fetchall())
                # PostgreSQL's column types (JSON as text): an empty column keeps its type.
                types = ", ".join(
                    f"{column.name} {duckdb_type(column.type_display)}" for column in columns
                )
                db.execute(f"CREATE TABLE {schema}.{table} ({types})")
                db.execute(
                    f"INSERT INTO {schema}.{table}"  # noqa: S608 - this module's names
                    f" SELECT * FROM read_csv('{file}', header = true, all_varchar = true)"
                )
    return database


def test_the_html_report_has_a_section_per_tenant(as_duckdb: Path, tenant_runs: TenantRuns) -> None:
    """scripts/report.py over this run's marts: one section per tenant, named by its display
    name, with that tenant's own figures."""
    database, tmp_path = as_duckdb, as_duckdb.parent
    page = tmp_path / "report.html"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report.py"), str(database), f"--out={page}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    html = page.read_text()
    sections = {
        match[1]: match[2]
        for match in re.finditer(
            r'<section class="tenant" id="tenant-[^"]+" data-tenant-id="([^"]+)">(.*?)</section>',
            html,
            re.DOTALL,
        )
    }
    assert set(sections) == set(tenant_runs.figures)
    for tenant_id, (_views, expected) in tenant_runs.figures.items():
        section = sections[tenant_id]
        assert f"<h2>{escape(tenant_runs.names[tenant_id])}</h2>" in section
        wasted = expected.wasted(90)
        assert f"{sum(w['wasted_seats'] for w in wasted.values())} wasted seats" in section
        for sku_id, sku in expected.skus.items():
            if not sku["applies_to_user"] or sku["part_number"] in FREE:
                continue
            label = escape(PRODUCT_NAMES[sku_id])
            for series, value in (
                ("purchased", sku["purchased"]),
                ("assigned", sku["consumed"]),
                ("inactive users", wasted[sku_id]["inactive_user_seats"]),
            ):
                assert f'data-series="{series}" data-label="{label}" data-value="{value}"' in (
                    section
                ), (tenant_runs.names[tenant_id], sku["part_number"], series)
        assert section.count('data-chart="daily"') == 1


def test_the_glimpse_prints_each_tenant(as_duckdb: Path, tenant_runs: TenantRuns) -> None:
    """scripts/glimpse.py (what `make demo` and `make tenant` print) over this run: a block per
    tenant, named, with that tenant's own wasted seats and inactive users."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "glimpse.py"), str(as_duckdb)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    blocks = re.split(r"(?m)^Tenant ", completed.stdout)[1:]
    assert len(blocks) == len(tenant_runs.figures)
    for block in blocks:
        heading = block.split("\n", 1)[0]
        (tenant_id,) = [tid for tid in tenant_runs.figures if f"({tid}):" in heading]
        assert heading == f"{tenant_runs.names[tenant_id]} ({tenant_id}):"
        expected = tenant_runs.figures[tenant_id][1]
        wasted = sum(w["wasted_seats"] for w in expected.wasted(90).values())
        assert f"Wasted seats (wasted_seats_by_sku): {wasted}:" in block
        inactive = {key[0] for key in expected.inactive(90)}
        assert f"Inactive users holding seats (inactive_users): {len(inactive)}\n" in block
        concealed = "True" if expected.concealed else "False"
        assert re.search(rf"office365_active_user_detail\s+\S+\s+\d+\s+{concealed}", block)
