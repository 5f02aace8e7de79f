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
- inactive seats (90 days, and 30 through dbt's --vars), seats of disabled accounts, group
  assignment errors, wasted seats per SKU and, with the example prices, their monthly cost.

Two pipelines run: report names shown, and concealed (only the Teams report's User
Id joins users). The first then runs again after the tenant changed and a day passed: the marts
follow, and license assignments that disappeared are retired by ACTIVATE_VERSION.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.graph_emulator import GraphEmulator, Tenant
from tests.graph_emulator.product_names import PRODUCT_NAMES
from tests.graph_emulator.reports import Person
from tests.graph_emulator.tenant import SKU_BY_PART
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
)
WORKLOADS = ("exchange", "onedrive", "sharepoint", "skype", "yammer", "teams")
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
    names: dict[str, str] = field(default_factory=dict)

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
        for sku_id, sku in self.skus.items():
            if sku["applies_to_user"] and sku["part_number"] not in FREE:
                disabled = sum(1 for key in self.disabled if key[1] == sku_id)
                idle = sum(1 for key in inactive if key[1] == sku_id)
                # Warning units are still usable; over-assigned seats are not "available".
                unassigned = max(sku["purchased"] + sku["warning"] - sku["consumed"], 0)
                out[sku_id] = {
                    "unassigned_seats": unassigned,
                    "disabled_account_seats": disabled,
                    "inactive_user_seats": idle,
                    "wasted_seats": unassigned + disabled + idle,
                }
        return out


def expected_figures(emu: GraphEmulator) -> Expected:
    """What the views must say about the emulator's tenant as the last run saw it."""
    tenant, reports = emu.tenant, emu.reports
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
    seats: dict[Key, dict[str, Any]] = {}
    disabled: set[Key] = set()
    errors: set[tuple[str, str, str, str]] = set()
    for key, row in expected_rows(tenant).items():
        for path in row["assignments"]:
            if path["assignedByGroup"] and path["error"] != "None":
                errors.add((*key, path["assignedByGroup"], path["error"]))
        if not row["consumes_unit"]:
            continue
        basis, last_day = last[key[0]]
        # Held since the SKU's own assignment day, else the report's License Assign Date.
        held_since = (
            dt.date.fromisoformat(row["assigned_date_time"][:10])
            if row["assigned_date_time"]
            else report_assigned.get(key[0])
            or dt.date.fromisoformat(row["last_updated_date_time"][:10])
        )
        since = last_day or held_since
        seats[key] = {
            "last_activity_date": last_day,
            "activity_basis": basis,
            "days_inactive": None if basis == "not in reports" else max(0, (as_of - since).days),
            "held_since": held_since,
            "in_grace_period": (as_of - held_since).days < GRACE_DAYS,
        }
        if row["account_enabled"] is False:
            disabled.add(key)
    return Expected(as_of, concealed, skus, seats, disabled, errors)


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
    retired_assignments: set[Key]
    names_loaded: bool

    @classmethod
    def read(cls, server: PostgresServer, schema: str) -> Views:
        """The marts in `<schema>_insight`; the loaded tables in `schema`."""
        marts = f"{schema}_insight"

        def rows(sql: str, search_path: str = marts) -> list[dict[str, Any]]:
            with server.connect() as connection:
                connection.execute(f'SET search_path TO "{search_path}"')
                cursor = connection.execute(sql)
                names = [column.name for column in cursor.description or []]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        def keys(sql: str, search_path: str = marts) -> set[Key]:
            return {(r["user_id"], str(r["sku_id"])) for r in rows(sql, search_path)}

        (status,) = rows(
            "SELECT latest_report_date AS activity_as_of, names_concealed FROM report_freshness"
            " WHERE report = 'office365_active_user_detail'"
        )
        return cls(
            status=status,
            skus={str(r["sku_id"]): r for r in rows("SELECT * FROM seats_by_sku")},
            seats={
                (r["user_id"], str(r["sku_id"])): r for r in rows("SELECT * FROM seat_activity")
            },
            inactive=keys("SELECT * FROM wasted_seats WHERE wasted_reason = 'inactive user'"),
            inactive_users={r["user_id"] for r in rows("SELECT user_id FROM inactive_users")},
            disabled=keys("SELECT * FROM wasted_seats WHERE wasted_reason = 'disabled account'"),
            group_errors={
                (r["user_id"], str(r["sku_id"]), r["group_id"], r["error"])
                for r in rows("SELECT * FROM group_license_errors")
            },
            wasted={str(r["sku_id"]): r for r in rows("SELECT * FROM wasted_seats_by_sku")},
            retired_assignments=keys(
                "SELECT user_id, sku_id FROM license_assignments WHERE _sdc_deleted_at IS NOT NULL",
                schema,
            ),
            names_loaded=bool(
                rows("SELECT count(product_display_name) AS n FROM subscribed_skus", schema)[0]["n"]
            ),
        )


@dataclass
class Pipeline:
    """One emulator loaded into one schema by its own Meltano system database."""

    emulator: GraphEmulator
    meltano: MeltanoProject
    postgres: PostgresServer
    schema: str
    cache: Path

    def env(self) -> dict[str, str]:
        """The tap pointed at the emulator, target-postgres and dbt-postgres at the server."""
        config = self.emulator.config(start_date=(TODAY - dt.timedelta(days=3)).isoformat())
        return {
            **settings_env(config),
            "REQUESTS_CA_BUNDLE": self.emulator.ca_bundle,
            **self.postgres.target_env(),
            **self.postgres.dbt_env(self.schema, f"{self.schema}_insight"),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
            "TAP_MICROSOFT365__SELECT": json.dumps([f"{stream}.*" for stream in STREAMS]),
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
        self.meltano.run(
            "run",
            f"--state-id-suffix={self.schema}",
            "tap-microsoft365",
            "target-postgres",
            "dbt-postgres:build",
            env=self.env(),
        )
        return Views.read(self.postgres, self.schema)

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
        return Views.read(self.postgres, self.schema)


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
        Tenant.synthetic(users=150, groups=12, seed=11, today=TODAY), time_scale=0.005
    )
    concealed_emu = GraphEmulator(
        Tenant.synthetic(users=150, groups=12, seed=11, today=TODAY), time_scale=0.005
    )
    with plain_emu, concealed_emu:
        concealed_emu.reports.concealed_names = True
        plain = Pipeline(plain_emu, installed_meltano, postgres_server, "insight", work / "c1")
        concealed = Pipeline(
            concealed_emu, installed_meltano, postgres_server, "insight_concealed", work / "c2"
        )
        first = plain.run()
        hidden = concealed.run()
        expected_first = expected_figures(plain_emu)
        expected_hidden = expected_figures(concealed_emu)

        # dbt's variables: another threshold, and the example prices.
        at_30 = plain.rebuild({"inactive_days": 30}, env={"DBT_POSTGRES_EXAMPLE_PRICES": "true"})

        touched = change_tenant(plain_emu.tenant)
        changed = plain.run()
        yield Runs(
            plain=(first, expected_first),
            concealed=(hidden, expected_hidden),
            changed=(changed, expected_figures(plain_emu)),
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
    assert set(views.seats) == set(expected.seats)
    for key, seat in expected.seats.items():
        row = views.seats[key]
        assert {name: row[name] for name in seat} == seat, key
    paid = {sku_id for sku_id, sku in expected.skus.items() if sku["part_number"] not in FREE}
    assert views.inactive == expected.inactive(90)
    assert views.inactive_users == {key[0] for key in expected.inactive(90)}
    assert views.disabled == {key for key in expected.disabled if key[1] in paid}
    assert views.group_errors == expected.group_errors
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


def test_with_concealed_names_only_teams_activity_joins(runs: Runs) -> None:
    views, expected = runs.concealed
    check(views, expected)
    bases = {seat["activity_basis"] for seat in views.seats.values()}
    assert bases == {"Teams only", "not in reports"}
    # Users the Teams report does not list are not judged.
    unjudged = [s for s in views.seats.values() if s["activity_basis"] == "not in reports"]
    assert unjudged
    assert all(s["days_inactive"] is None for s in unjudged)


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
    # A user created today is in no report yet: held, not judged.
    newcomer = views.seats[(touched["newcomer"], SKU_BY_PART["SPE_E3"].sku_id)]
    assert (newcomer["activity_basis"], newcomer["days_inactive"]) == ("not in reports", None)
