"""`meltano run tap-microsoft365 target-postgres` end to end, into a real PostgreSQL 15.

The Graph emulator serves a fake tenant over HTTPS; Meltano runs this repository's meltano.yml
(sandbox environment) with the tap's settings in TAP_MICROSOFT365_* variables and the emulator's
CA in REQUESTS_CA_BUNDLE, as an operator would; target-postgres writes into a throw-away server
(tests/postgres.py) with the settings meltano.yml gives it (upsert, record metadata).

1. The first run is the initial round: tables, row counts, column types and primary keys.
2. The tenant changes (an update that clears a property, a license removed, a user added, a user
   soft-deleted, one deleted for good, a group deleted); the second run follows the stored delta
   links and the tables match the tenant again, deleted objects marked in `_sdc_deleted_at`.
3. target-postgres deletes rows only when the tap sends ACTIVATE_VERSION, which the tap does
   after every initial round: `meltano run --full-refresh` with `hard_delete: true` leaves
   exactly the tenant's current users and groups, the deleted rows gone.

Each snapshot is read right after its run, so the tests do not depend on their order.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from psycopg import sql

from tests.graph_emulator import GraphEmulator, Tenant
from tests.meltano_project import MeltanoProject, installed_meltano, settings_env
from tests.postgres import PostgresServer, postgres_server

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["installed_meltano", "postgres_server"]  # fixtures this module uses

TODAY = dt.date(2026, 11, 26)
SCHEMA = "microsoft365"
STATE_ID = "sandbox:tap-microsoft365-to-target-postgres"
STREAMS = (
    "organization",
    "subscribed_skus",
    "subscriptions",
    "users",
    "groups",
    "office365_active_user_detail",
)
# Report days from start_date up to the report refresh date (today - 2 in the emulator).
START_DATE = TODAY - dt.timedelta(days=5)
REPORT_DAYS = (TODAY - dt.timedelta(days=2) - START_DATE).days + 1
USER_COLUMNS = (
    "user_principal_name",
    "display_name",
    "department",
    "job_title",
    "account_enabled",
    "assigned_licenses",
    "_sdc_deleted_at",
    "_removed_reason",
)


def table(name: str) -> sql.Composed:
    """`"microsoft365"."<name>"`."""
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


@dataclass
class Snapshot:
    """What the schema held right after one run."""

    counts: dict[str, int]
    types: dict[tuple[str, str], str]  # (table, column) -> udt_name; `_jsonb` is jsonb[]
    primary_keys: dict[str, list[str]]
    users: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, server: PostgresServer) -> Snapshot:
        """Query everything the tests look at."""
        tables = [
            name
            for (name,) in server.query(
                "select table_name from information_schema.tables where table_schema = %s",
                SCHEMA,
            )
        ]
        counts = {
            name: server.query(sql.SQL("select count(*) from {}").format(table(name)))[0][0]
            for name in tables
        }
        types = {
            (name, column): udt
            for name, column, udt in server.query(
                "select table_name, column_name, udt_name from information_schema.columns "
                "where table_schema = %s",
                SCHEMA,
            )
        }
        primary_keys: dict[str, list[str]] = {}
        for name, column in server.query(
            "select tc.table_name, kcu.column_name from information_schema.table_constraints tc "
            "join information_schema.key_column_usage kcu using (constraint_schema, "
            "constraint_name) where tc.table_schema = %s and tc.constraint_type = 'PRIMARY KEY' "
            "order by kcu.ordinal_position",
            SCHEMA,
        ):
            primary_keys.setdefault(name, []).append(column)
        users = {
            row[0]: dict(zip(USER_COLUMNS, row[1:], strict=True))
            for row in server.query(
                sql.SQL("select id, {} from {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, USER_COLUMNS)), table("users")
                )
            )
        }
        groups = {
            gid: {"display_name": name, "_sdc_deleted_at": deleted, "_removed_reason": reason}
            for gid, name, deleted, reason in server.query(
                sql.SQL("select id, display_name, _sdc_deleted_at, _removed_reason from {}").format(
                    table("groups")
                )
            )
        }
        return cls(counts, types, primary_keys, users, groups)

    def active_users(self) -> dict[str, dict[str, Any]]:
        """Rows not marked deleted."""
        return {uid: row for uid, row in self.users.items() if row["_sdc_deleted_at"] is None}


def as_compared(row: dict[str, Any]) -> dict[str, Any]:
    """A users row (snake_case columns), reduced to what the tests compare."""
    return {
        "user_principal_name": row["user_principal_name"],
        "display_name": row["display_name"],
        "department": row["department"],
        "job_title": row["job_title"],
        "account_enabled": row["account_enabled"],
        # Nested values keep Graph's shape.
        "skus": sorted(lic["skuId"] for lic in row["assigned_licenses"] or []),
    }


def tenant_compared(user: dict[str, Any]) -> dict[str, Any]:
    """A tenant user (Graph's property names), reduced as `as_compared` reduces a row."""
    return {
        "user_principal_name": user["userPrincipalName"],
        "display_name": user["displayName"],
        "department": user["department"],
        "job_title": user["jobTitle"],
        "account_enabled": user["accountEnabled"],
        "skus": sorted(lic["skuId"] for lic in user["assignedLicenses"] or []),
    }


@dataclass
class Pipeline:
    """The emulator, Meltano and PostgreSQL of this module."""

    emulator: GraphEmulator
    meltano: MeltanoProject
    postgres: PostgresServer

    @property
    def tenant(self) -> Tenant:
        """The emulated tenant (mutable)."""
        return self.emulator.tenant

    def run(self, *, hard_delete: bool = False, full_refresh: bool = False) -> Snapshot:
        """`meltano run [--full-refresh] tap-microsoft365 target-postgres`, then a snapshot."""
        env = {
            **settings_env(self.emulator.config(start_date=START_DATE.isoformat())),
            "REQUESTS_CA_BUNDLE": self.emulator.ca_bundle,
            **self.postgres.target_env(),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": SCHEMA,
            "TARGET_POSTGRES_HARD_DELETE": json.dumps(hard_delete),
            "TAP_MICROSOFT365__SELECT": json.dumps([f"{stream}.*" for stream in STREAMS]),
        }
        args = ["run", "--full-refresh"] if full_refresh else ["run"]
        self.meltano.run(*args, "tap-microsoft365", "target-postgres", env=env)
        return Snapshot.read(self.postgres)

    def state(self) -> dict[str, Any]:
        """The state Meltano stored for the pipeline (`meltano state get`)."""
        return dict(json.loads(self.meltano.run("state", "get", STATE_ID).stdout))


@pytest.fixture(scope="module")
def pipeline(
    installed_meltano: MeltanoProject, postgres_server: PostgresServer
) -> Iterator[Pipeline]:
    """A 150-user tenant behind the emulator, Graph's report window scaled to 3 s."""
    tenant = Tenant.synthetic(users=150, groups=12, seed=11, today=TODAY)
    with GraphEmulator(tenant, time_scale=0.005) as emulator:
        yield Pipeline(emulator, installed_meltano, postgres_server)


def change_tenant(tenant: Tenant) -> dict[str, str]:
    """Every kind of change a license manager must see; returns the ids it touched."""
    users = list(tenant.users.values())
    direct = next(
        u
        for u in users
        if any(s["assignedByGroup"] is None for s in u["licenseAssignmentStates"] or [])
    )
    sku = next(
        s["skuId"] for s in direct["licenseAssignmentStates"] if s["assignedByGroup"] is None
    )
    updated, soft_deleted, hard_deleted = [
        u for u in users if u["id"] != direct["id"] and u["jobTitle"]
    ][:3]
    group = next(g for g in reversed(tenant.groups.values()) if not g.get("assignedLicenses"))
    tenant.update_user(updated["id"], department="Procurement", jobTitle=None)
    tenant.remove_license(direct["id"], sku)
    added = tenant.add_user(
        displayName="Zoë Nieuw", mailNickname="zoe.nieuw", department="Sales", usageLocation="NL"
    )
    tenant.soft_delete_user(soft_deleted["id"])
    tenant.hard_delete_user(hard_deleted["id"])
    tenant.soft_delete_group(group["id"])
    return {
        "updated": updated["id"],
        "unlicensed": direct["id"],
        "removed_sku": sku,
        "added": added,
        "soft_deleted": soft_deleted["id"],
        "hard_deleted": hard_deleted["id"],
        "group": group["id"],
    }


@dataclass
class Runs:
    """Snapshots after each run, and what the tenant change touched."""

    first: Snapshot
    first_state: dict[str, Any]
    touched: dict[str, str]
    second: Snapshot
    second_delta_queries: list[dict[str, str]]
    refreshed: Snapshot


@pytest.fixture(scope="module")
def runs(pipeline: Pipeline) -> Runs:
    """An initial run, a tenant change, an incremental run, a full refresh with hard_delete."""
    first = pipeline.run()
    first_state = pipeline.state()
    touched = change_tenant(pipeline.tenant)
    pipeline.emulator.clear_log()
    second = pipeline.run()
    queries = [r.query for r in pipeline.emulator.request_log if r.path.endswith("/delta")]
    refreshed = pipeline.run(hard_delete=True, full_refresh=True)
    return Runs(first, first_state, touched, second, queries, refreshed)


# 1. The initial round


def test_every_selected_stream_lands_as_a_table_with_its_primary_key(runs: Runs) -> None:
    assert set(runs.first.counts) == set(STREAMS)
    assert runs.first.primary_keys == {
        "organization": ["id"],
        "subscribed_skus": ["id"],
        "subscriptions": ["id"],
        "users": ["id"],
        "groups": ["id"],
        "office365_active_user_detail": ["report_date", "user_principal_name"],
    }


def test_row_counts_match_the_tenant(runs: Runs, pipeline: Pipeline) -> None:
    tenant = pipeline.tenant
    counts = runs.first.counts
    assert counts["organization"] == 1
    assert counts["subscribed_skus"] == len(tenant.skus)
    assert counts["subscriptions"] == len(tenant.subscriptions)
    assert counts["users"] == 147  # the tenant before the change: 150 made, 3 already deleted
    assert counts["groups"] == 12
    # One row per reported user and day, for each day from start_date to the refresh date.
    assert counts["office365_active_user_detail"] % REPORT_DAYS == 0
    assert counts["office365_active_user_detail"] >= REPORT_DAYS * 100


def test_columns_have_the_types_graph_documents(runs: Runs) -> None:
    expected = {
        ("users", "id"): "text",
        ("users", "account_enabled"): "bool",
        ("users", "created_date_time"): "timestamp",
        ("users", "assigned_licenses"): "_jsonb",  # an array of objects, not a JSON string
        ("users", "license_assignment_states"): "_jsonb",
        ("users", "business_phones"): "_text",
        ("users", "employee_org_data"): "jsonb",
        ("users", "_sdc_deleted_at"): "timestamp",
        ("users", "_removed_reason"): "text",
        ("groups", "security_enabled"): "bool",
        ("subscribed_skus", "sku_id"): "uuid",
        ("subscribed_skus", "consumed_units"): "int8",
        ("subscribed_skus", "prepaid_units"): "jsonb",
        ("subscriptions", "total_licenses"): "int8",
        ("subscriptions", "is_trial"): "bool",
        ("organization", "verified_domains"): "_jsonb",
        ("office365_active_user_detail", "report_date"): "date",
        ("office365_active_user_detail", "exchange_last_activity_date"): "date",
        ("office365_active_user_detail", "has_teams_license"): "bool",
        ("office365_active_user_detail", "assigned_products"): "_text",
    }
    assert {key: runs.first.types.get(key) for key in expected} == expected


def test_initial_round_loads_every_user_as_graph_has_it(runs: Runs, pipeline: Pipeline) -> None:
    assert not [u for u in runs.first.users.values() if u["_sdc_deleted_at"] is not None]
    # Users the change did not touch read in run 1 exactly as the tenant has them now.
    untouched = set(runs.first.users) - set(runs.touched.values())
    assert len(untouched) == 143
    for uid in untouched:
        assert as_compared(runs.first.users[uid]) == tenant_compared(pipeline.tenant.users[uid])
    bookmarks = runs.first_state["singer_state"]["bookmarks"]
    assert bookmarks["users"]["delta_link"]
    assert bookmarks["groups"]["delta_link"]


# 2. Changes and deletions through delta


def test_second_run_follows_the_stored_delta_links(runs: Runs) -> None:
    assert runs.second_delta_queries, "the second run made no delta request"
    for query in runs.second_delta_queries:
        assert "$deltatoken" in query or "$skiptoken" in query, f"an initial round: {query}"


def test_second_run_reproduces_the_changed_tenant(runs: Runs, pipeline: Pipeline) -> None:
    active = runs.second.active_users()
    assert set(active) == set(pipeline.tenant.users)
    for uid, user in pipeline.tenant.users.items():
        assert as_compared(active[uid]) == tenant_compared(user), uid
    touched = runs.touched
    assert active[touched["updated"]]["department"] == "Procurement"
    assert active[touched["updated"]]["job_title"] is None  # cleared in Graph, cleared here
    skus = {lic["skuId"] for lic in active[touched["unlicensed"]]["assigned_licenses"] or []}
    assert touched["removed_sku"] not in skus
    assert active[touched["added"]]["display_name"] == "Zoë Nieuw"
    assert runs.second.counts["users"] == 148  # 147 + 1 added: updates upserted in place


def test_deleted_users_and_groups_carry_sdc_deleted_at(runs: Runs) -> None:
    users, touched = runs.second.users, runs.touched
    assert users[touched["soft_deleted"]]["_sdc_deleted_at"] is not None
    assert users[touched["soft_deleted"]]["_removed_reason"] == "changed"  # recycle bin
    assert users[touched["hard_deleted"]]["_sdc_deleted_at"] is not None
    assert users[touched["hard_deleted"]]["_removed_reason"] == "deleted"  # for good
    marked = {uid for uid, row in users.items() if row["_sdc_deleted_at"] is not None}
    assert marked == {touched["soft_deleted"], touched["hard_deleted"]}
    assert runs.second.groups[touched["group"]]["_sdc_deleted_at"] is not None
    assert runs.second.counts["groups"] == 12


# 3. A full refresh with hard_delete


def test_full_refresh_with_hard_delete_removes_deleted_rows(runs: Runs, pipeline: Pipeline) -> None:
    snapshot, tenant = runs.refreshed, pipeline.tenant
    assert set(snapshot.users) == set(tenant.users)
    assert runs.touched["soft_deleted"] not in snapshot.users
    assert runs.touched["hard_deleted"] not in snapshot.users
    assert set(snapshot.groups) == set(tenant.groups)
    assert runs.touched["group"] not in snapshot.groups
    for uid, user in tenant.users.items():
        assert as_compared(snapshot.users[uid]) == tenant_compared(user), uid
