"""Directory streams against the 2,500-user sandbox: every object exactly once, few requests."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import RECENT_START
from tests.singer_run import SyncResult, catalog_selecting, run_tap

if TYPE_CHECKING:
    from tests.graph_emulator import GraphEmulator


@pytest.fixture(scope="module")
def full_sync(emulator: GraphEmulator) -> tuple[SyncResult, list]:
    emulator.clear_log()
    result = run_tap(emulator.config(**RECENT_START), ca_bundle=emulator.ca_bundle)
    assert result.exit_code == 0, result.stderr
    return result, list(emulator.request_log)


def users_stream_requests(log: list) -> list:
    """The `users` stream's listing pages (license_assignments lists /users with fewer
    properties: it is told apart by `displayName`, which only `users` selects)."""
    return [
        r
        for r in log
        if r.role == "graph"
        and r.path == "/v1.0/users"
        and "displayName" in r.query.get("$select", "")
    ]


def graph_requests(log: list, path: str) -> list:
    return [r for r in log if r.role == "graph" and r.path.startswith(f"/v1.0{path}")]


def test_every_user_exactly_once_with_licenses(
    emulator: GraphEmulator, full_sync: tuple[SyncResult, list]
) -> None:
    result, _ = full_sync
    users = result.records("users")
    ids = Counter(user["id"] for user in users)
    assert len(ids) == len(users), "a user was emitted twice"
    assert set(ids) == set(emulator.tenant.users)
    for user in users:
        expected = emulator.tenant.users[user["id"]]
        # Top-level columns are snake_case; nested values keep Graph's shape.
        assert user["user_principal_name"] == expected["userPrincipalName"]
        assert user["account_enabled"] == expected["accountEnabled"]
        assert user["assigned_licenses"] == expected.get("assignedLicenses", [])
        assert user["license_assignment_states"] == expected.get("licenseAssignmentStates", [])
        assert user["assigned_plans"] == expected.get("assignedPlans", [])


def test_users_take_ceil_n_over_999_requests_with_select(
    emulator: GraphEmulator, full_sync: tuple[SyncResult, list]
) -> None:
    _, log = full_sync
    # An initial round: one delta "now" mark, then the collection listed 999 per page.
    marks = [r for r in log if r.role == "graph" and r.path == "/v1.0/users/delta"]
    assert [m.query.get("$deltatoken") for m in marks] == ["latest"]
    requests = users_stream_requests(log)
    assert len(requests) == math.ceil(len(emulator.tenant.users) / 999)
    first = requests[0]
    selected = first.query["$select"].split(",")
    for needed in ("id", "userPrincipalName", "assignedLicenses", "licenseAssignmentStates"):
        assert needed in selected
    for later in requests[1:]:
        # The nextLink is followed as Graph returned it: no option is sent twice.
        options = parse_qs(urlsplit(f"?{later.raw_query}").query)
        assert all(len(values) == 1 for values in options.values())


def test_skus_and_subscriptions_match_the_tenant(
    emulator: GraphEmulator, full_sync: tuple[SyncResult, list]
) -> None:
    result, log = full_sync
    skus = {sku["sku_id"]: sku for sku in result.records("subscribed_skus")}
    assert set(skus) == {sku["skuId"] for sku in emulator.tenant.skus}
    for sku in emulator.tenant.skus:
        emitted = skus[sku["skuId"]]
        assert emitted["sku_part_number"] == sku["skuPartNumber"]
        assert emitted["prepaid_units"] == sku["prepaidUnits"]
        assert emitted["consumed_units"] == sku["consumedUnits"]
        # Graph's plans as Graph sent them, plus Microsoft's friendly name for each.
        plans = [
            {k: v for k, v in plan.items() if k != "servicePlanFriendlyName"}
            for plan in emitted["service_plans"]
        ]
        assert plans == sku["servicePlans"]
        assert all(plan["servicePlanFriendlyName"] for plan in emitted["service_plans"])
    # One for the stream, one for license_assignments (SKU part numbers and plans only).
    sku_requests = graph_requests(log, "/subscribedSkus")
    assert len([r for r in sku_requests if "prepaidUnits" in r.query["$select"]]) == 1
    assert len(sku_requests) == 2
    assert {s["id"] for s in result.records("subscriptions")} == {
        s["id"] for s in emulator.tenant.subscriptions
    }
    assert [o["id"] for o in result.records("organization")] == [emulator.tenant_id]


def test_groups_carry_group_based_licenses(
    emulator: GraphEmulator, full_sync: tuple[SyncResult, list]
) -> None:
    result, _ = full_sync
    groups = {group["id"]: group for group in result.records("groups")}
    assert set(groups) == set(emulator.tenant.groups)
    licensed = [g for g in groups.values() if g["assigned_licenses"]]
    assert licensed, "the sandbox has group-based licensing"
    for group in licensed:
        tenant_group = emulator.tenant.groups[group["id"]]
        assert group["assigned_licenses"] == tenant_group["assignedLicenses"]
        assert group["display_name"] == tenant_group["displayName"]


def test_schemas_are_typed(full_sync: tuple[SyncResult, list]) -> None:
    result, _ = full_sync
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    users = schemas["users"]["properties"]
    assert users["created_date_time"]["format"] == "date-time"
    assert "array" in users["assigned_licenses"]["type"]
    states = users["license_assignment_states"]["items"]["properties"]
    assert "object" not in str(states["assignedByGroup"]["type"])
    assert schemas["subscribed_skus"]["properties"]["prepaid_units"]["properties"]["enabled"][
        "type"
    ] == ["integer", "null"]
    key_properties = {
        m["stream"]: m["key_properties"] for m in result.messages if m["type"] == "SCHEMA"
    }
    for stream in ("organization", "subscribed_skus", "subscriptions", "users", "groups"):
        assert key_properties[stream] == ["id"]


def test_page_size_setting_is_honoured(emulator: GraphEmulator) -> None:
    config = emulator.config(page_size=500, **RECENT_START)
    catalog = catalog_selecting(config, {"users"}, emulator.ca_bundle)
    emulator.clear_log()
    result = run_tap(config, ca_bundle=emulator.ca_bundle, catalog=catalog)
    assert result.exit_code == 0, result.stderr
    requests = users_stream_requests(emulator.request_log)
    assert len(requests) == math.ceil(len(emulator.tenant.users) / 500)
    assert len(result.records("users")) == len(emulator.tenant.users)


def test_every_top_level_column_is_snake_case(full_sync: tuple[SyncResult, list]) -> None:
    """One naming convention in the warehouse: every stream's columns are snake_case, and a
    column renamed from Graph names its Graph property in its description."""
    result, _ = full_sync
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    assert len(schemas) > 5
    for stream, schema in schemas.items():
        for column in schema["properties"]:
            assert re.fullmatch(r"_?[a-z0-9]+(_[a-z0-9]+)*", column), (stream, column)
        for record in result.records(stream)[:50]:
            assert set(record) <= set(schema["properties"]), stream
    users = schemas["users"]["properties"]
    assert users["user_principal_name"]["description"].startswith(
        "Graph property `userPrincipalName`."
    )
    assert (
        "Graph property `skuPartNumber`."
        in (schemas["subscribed_skus"]["properties"]["sku_part_number"]["description"])
    )
    # The tap's own column is not described as Graph's.
    own = schemas["subscribed_skus"]["properties"]["product_display_name"]["description"]
    assert not own.startswith("Graph property")
    assert "Not a Graph property" in own
