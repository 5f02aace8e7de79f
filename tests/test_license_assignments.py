"""license_assignments and product names (issue 8), end to end against the Graph emulator.

Every test runs the real tap in a subprocess over HTTPS. The license_assignments rows are applied
to a table keyed by (user_id, sku_id) as target-postgres does (upsert by key, each row stamped
with its RECORD's `version`, ACTIVATE_VERSION marks rows of an older version deleted); the rows
left active must equal what the emulator's tenant says, computed here from its users and groups
without the tap's code.

Product names: the emulator serves a small "Product names and service plan identifiers for
licensing" CSV on its download host, as untidy as the real one; the names the tap reads must be the
clean names of `tests.graph_emulator.product_names`, fetched at most once per run without the
Graph token, cached, and null with one warning when the file or an ID is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tap_microsoft365.product_names import (
    ProductNames,
    ProductNamesUnavailableError,
    clean_name,
)
from tests.graph_emulator.product_names import PLAN_FRIENDLY_NAMES, PRODUCT_NAMES, render
from tests.graph_emulator.tenant import PLAN_BY_ID, SKU_BY_ID, SKU_BY_PART
from tests.singer_run import SyncResult, catalog_selecting, run_tap

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.graph_emulator import GraphEmulator, Tenant

STREAM = "license_assignments"
Key = tuple[str, str]
Table = dict[Key, dict[str, Any]]


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    """license_assignments and subscribed_skus selected (discovery needs no tenant)."""
    return catalog_selecting({}, {STREAM, "subscribed_skus"})


def sync(
    emu: GraphEmulator,
    catalog: dict[str, Any],
    state: dict[str, Any] | None = None,
    **settings: Any,
) -> SyncResult:
    result = run_tap(emu.config(**settings), ca_bundle=emu.ca_bundle, catalog=catalog, state=state)
    assert result.exit_code == 0, result.stderr[-4000:]
    return result


def warnings(result: SyncResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if "| WARNING" in line]


def since(paths: list[dict[str, Any]]) -> str:
    """When the emulator's licensing engine gave the user the SKU: its earliest active path."""
    return min(p["lastUpdatedDateTime"] for p in paths if p["state"] == "Active")


def user_plans(sku_id: str, disabled: set[str]) -> set[str]:
    """The service plans a SKU puts on a user (the tenant's catalog; Company plans are not)."""
    return {p.id for p in SKU_BY_ID[sku_id].plans if p.applies_to == "User"} - disabled


def expected_rows(tenant: Tenant, omitted: frozenset[str] = frozenset()) -> Table:
    """Every (user, SKU) of the tenant's current users as a license_assignments row."""
    table: Table = {}
    for user in tenant.users.values():
        held = {lic["skuId"]: lic for lic in user["assignedLicenses"]}
        paths: dict[str, list[dict[str, Any]]] = {}
        for path in user["licenseAssignmentStates"]:
            paths.setdefault(path["skuId"], []).append(path)
        enabled = {sku: user_plans(sku, set(lic["disabledPlans"])) for sku, lic in held.items()}
        for sku, sku_paths in paths.items():
            ordered = sorted(
                sku_paths, key=lambda p: (p["assignedByGroup"] is not None, p["assignedByGroup"])
            )
            errors = sorted({p["error"] for p in sku_paths if p["error"] != "None"})
            active = all(p["state"] == "Active" for p in sku_paths)
            state = "Active" if active else "ActiveWithError" if sku in held else "Error"
            if sku in held:
                disabled = sorted(held[sku]["disabledPlans"])
                others = set().union(*(plans for s, plans in enabled.items() if s != sku))
                # Exact when some plan of the SKU comes with no other license of the user.
                assigned = since(sku_paths) if enabled[sku] - others else None
            else:
                disabled = sorted(set.intersection(*(set(p["disabledPlans"]) for p in sku_paths)))
                assigned = None
            named = sku not in omitted
            table[(user["id"], sku)] = {
                "user_id": user["id"],
                "sku_id": sku,
                "sku_part_number": SKU_BY_ID[sku].part_number,
                "product_display_name": PRODUCT_NAMES[sku] if named else None,
                "user_principal_name": user["userPrincipalName"],
                "account_enabled": user["accountEnabled"],
                "user_type": user["userType"],
                "consumes_unit": sku in held,
                "assigned_directly": any(p["assignedByGroup"] is None for p in sku_paths),
                "assigned_by_groups": sorted(
                    p["assignedByGroup"] for p in sku_paths if p["assignedByGroup"]
                ),
                "state": state,
                "error": ", ".join(errors) or None,
                "disabled_plans": disabled,
                "disabled_service_plans": [
                    {
                        "servicePlanId": plan,
                        "servicePlanName": PLAN_BY_ID[plan].name,
                        "servicePlanFriendlyName": PLAN_FRIENDLY_NAMES[plan] if named else None,
                    }
                    for plan in disabled
                ],
                "assigned_date_time": assigned,
                "last_updated_date_time": max(p["lastUpdatedDateTime"] for p in sku_paths),
                "assignments": [
                    {
                        "assignedByGroup": p["assignedByGroup"],
                        "state": p["state"],
                        "error": p["error"],
                        "disabledPlans": p["disabledPlans"],
                        "lastUpdatedDateTime": p["lastUpdatedDateTime"],
                    }
                    for p in ordered
                ],
            }
        assert set(held) <= set(paths), "every held SKU has an assignment path"
    return table


class Target:
    """One table filled as target-postgres fills it (upsert, versions, soft delete)."""

    def __init__(self) -> None:
        self.rows: dict[Key, dict[str, Any]] = {}
        self.activations: list[int] = []

    def apply(self, result: SyncResult) -> Target:
        for message in result.messages:
            if message.get("stream") != STREAM:
                continue
            if message["type"] == "RECORD":
                record = message["record"]
                self.rows[(record["user_id"], record["sku_id"])] = {
                    **record,
                    "_sdc_table_version": message.get("version"),
                    "_sdc_deleted_at": None,
                }
            elif message["type"] == "ACTIVATE_VERSION":
                self.activations.append(message["version"])
                for row in self.rows.values():
                    version = row["_sdc_table_version"]
                    if (version is None or version < message["version"]) and row[
                        "_sdc_deleted_at"
                    ] is None:
                        row["_sdc_deleted_at"] = "retired"
        return self

    def active(self) -> Table:
        return {
            key: {k: v for k, v in row.items() if not k.startswith("_sdc_")}
            for key, row in self.rows.items()
            if row["_sdc_deleted_at"] is None
        }

    def retired(self) -> set[Key]:
        return {key for key, row in self.rows.items() if row["_sdc_deleted_at"] is not None}

    def assert_matches(self, expected: Table) -> None:
        active = self.active()
        assert sorted(active) == sorted(expected)
        for key, row in expected.items():
            assert active[key] == row, key


def stream_kinds(result: SyncResult) -> list[str]:
    """The kinds of the stream's own messages in order, consecutive RECORDs collapsed."""
    kinds: list[str] = []
    for message in result.messages:
        if message.get("stream") == STREAM:
            kind = message["type"]
            if not (kinds and kinds[-1] == kind == "RECORD"):
                kinds.append(kind)
    return kinds


def change_tenant(tenant: Tenant) -> dict[str, Any]:
    """Assignments added, changed and removed, errors raised, users disabled and deleted."""
    users = list(tenant.users.values())
    groups = list(tenant.groups.values())
    e3_group = next(g["id"] for g in groups if g["displayName"] == "SG-License-M365-E3")
    visio_group = next(g["id"] for g in groups if g["displayName"] == "SG-License-Visio-Plan2")
    e3, e5, visio = (SKU_BY_PART[p].sku_id for p in ("SPE_E3", "SPE_E5", "VISIOCLIENT"))

    def paths_of(user: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for path in user["licenseAssignmentStates"]:
            out.setdefault(path["skuId"], []).append(path)
        return out

    def direct_only(sku: str) -> list[dict[str, Any]]:
        return [
            u
            for u in users
            if [p["assignedByGroup"] for p in paths_of(u).get(sku, [])] == [None]
            and u["id"] not in taken
        ]

    taken: set[str] = set()
    touched: dict[str, Any] = {}

    def pick(name: str, candidates: list[dict[str, Any]]) -> str:
        user_id = candidates[0]["id"]
        taken.add(user_id)
        touched[name] = user_id
        return user_id

    unlicensed = [
        u for u in users if not u["licenseAssignmentStates"] and u["userType"] == "Member"
    ]
    # Added: a direct license for someone who had none.
    tenant.assign_license(pick("added", unlicensed), "POWER_BI_PRO")
    # Changed: other plans disabled on a direct assignment.
    tenant.assign_license(pick("changed", direct_only(e3)), e3, ["SWAY", "YAMMER_ENTERPRISE"])
    # Removed: the only assignment of a SKU.
    tenant.remove_license(pick("removed", direct_only(e3)), e3)
    # The same SKU directly and through a group: two paths, one row.
    tenant.add_group_member(e3_group, pick("direct_and_group", direct_only(e3)))
    # A group assignment that conflicts with a direct E5: Error, the user does not hold E3.
    tenant.add_group_member(e3_group, pick("exclusive", direct_only(e5)))
    # The same conflict next to a working direct E3: the user holds E3, ActiveWithError.
    both = pick("active_with_error", direct_only(e5))
    tenant.assign_license(both, e3)
    tenant.add_group_member(e3_group, both)
    # More Visio group members than units: the last ones get CountViolation.
    sku = tenant.sku("VISIOCLIENT")
    free = sku["prepaidUnits"]["enabled"] + sku["prepaidUnits"]["warning"] - sku["consumedUnits"]
    members = set(tenant.members_of(visio_group))
    joiners = [u["id"] for u in users if u["id"] not in members and u["id"] not in taken]
    for user_id in joiners[: max(free, 0) + 2]:
        tenant.add_group_member(visio_group, user_id)
        taken.add(user_id)
    touched["count_violation"] = joiners[max(free, 0) + 1]
    # A group member leaves: the inherited license goes.
    leaver = next(
        u
        for u in users
        if u["id"] not in taken
        and [p["assignedByGroup"] for p in paths_of(u).get(e3, [])] == [e3_group]
    )
    tenant.remove_group_member(e3_group, pick("left_group", [leaver]))
    # Accounts disabled and deleted.
    licensed = [u for u in users if u["assignedLicenses"] and u["id"] not in taken]
    tenant.update_user(pick("disabled", licensed), accountEnabled=False)
    licensed = [u for u in licensed if u["id"] not in taken]
    tenant.soft_delete_user(pick("soft_deleted", licensed))
    licensed = [u for u in licensed if u["id"] not in taken]
    tenant.hard_delete_user(pick("hard_deleted", licensed))
    # A new user with a license.
    new = tenant.add_user(displayName="Nieuw", mailNickname="nieuw", usageLocation="NL")
    tenant.assign_license(new, "ENTERPRISEPREMIUM")
    touched["new"] = new
    touched.update(e3=e3, e5=e5, visio=visio, e3_group=e3_group)
    return touched


# ----------------------------------------------------------------------------- tests


def test_rows_match_the_tenant_after_an_initial_and_a_later_sync(
    fresh_emulator: Callable[..., GraphEmulator], catalog: dict[str, Any]
) -> None:
    emu = fresh_emulator(users=150, groups=8, seed=23)
    tenant = emu.tenant
    first = sync(emu, catalog)
    target = Target().apply(first)
    target.assert_matches(expected_rows(tenant))
    before = set(target.rows)
    # One request for the SKUs, ceil(users / 999) for the users, each with the $select asked.
    users = [r for r in emu.request_log if r.role == "graph" and r.path == "/v1.0/users"]
    assert len(users) == 1
    assert users[0].query["$select"].split(",") == [
        "id",
        "userPrincipalName",
        "accountEnabled",
        "userType",
        "assignedLicenses",
        "licenseAssignmentStates",
        "assignedPlans",
    ]
    assert users[0].query["$top"] == "999"

    touched = change_tenant(tenant)
    second = sync(emu, catalog, state=first.last_state)
    target.apply(second)
    expected = expected_rows(tenant)
    target.assert_matches(expected)

    rows = target.active()
    e3, e5, visio = touched["e3"], touched["e5"], touched["visio"]
    assert (touched["added"], SKU_BY_PART["POWER_BI_PRO"].sku_id) in rows
    assert (touched["added"], SKU_BY_PART["POWER_BI_PRO"].sku_id) not in before
    changed = rows[(touched["changed"], e3)]
    assert {p["servicePlanName"] for p in changed["disabled_service_plans"]} == {
        "SWAY",
        "YAMMER_ENTERPRISE",
    }
    assert (touched["removed"], e3) in target.retired()
    both = rows[(touched["direct_and_group"], e3)]
    assert both["assigned_directly"] is True
    assert both["assigned_by_groups"] == [touched["e3_group"]]
    assert [p["assignedByGroup"] for p in both["assignments"]] == [None, touched["e3_group"]]
    assert both["state"] == "Active"
    exclusive = rows[(touched["exclusive"], e3)]
    assert (exclusive["state"], exclusive["error"], exclusive["consumes_unit"]) == (
        "Error",
        "MutuallyExclusiveViolation",
        False,
    )
    assert exclusive["assigned_directly"] is False
    assert rows[(touched["exclusive"], e5)]["state"] == "Active"
    mixed = rows[(touched["active_with_error"], e3)]
    assert (mixed["state"], mixed["error"], mixed["consumes_unit"]) == (
        "ActiveWithError",
        "MutuallyExclusiveViolation",
        True,
    )
    over = rows[(touched["count_violation"], visio)]
    assert (over["state"], over["error"], over["consumes_unit"]) == (
        "Error",
        "CountViolation",
        False,
    )
    assert (touched["left_group"], e3) in target.retired()
    assert {k[1] for k in rows if k[0] == touched["disabled"]}
    assert all(
        row["account_enabled"] is False for k, row in rows.items() if k[0] == touched["disabled"]
    )
    for deleted in (touched["soft_deleted"], touched["hard_deleted"]):
        assert not [k for k in rows if k[0] == deleted]
        assert [k for k in target.retired() if k[0] == deleted]
    assert rows[(touched["new"], SKU_BY_PART["ENTERPRISEPREMIUM"].sku_id)]["state"] == "Active"

    # Each run ends with one ACTIVATE_VERSION after its last record, its version above the last.
    assert stream_kinds(first) == ["SCHEMA", "RECORD", "ACTIVATE_VERSION"]
    assert stream_kinds(second) == ["SCHEMA", "RECORD", "ACTIVATE_VERSION"]
    assert len(target.activations) == 2
    assert target.activations[1] > target.activations[0]
    assert {m["version"] for m in second.record_messages(STREAM)} == {target.activations[1]}
    assert second.last_state is not None
    assert second.last_state["bookmarks"][STREAM]["table_version"] == target.activations[1]

    # Nothing changed since: a third sync retires nothing more.
    retired = target.retired()
    target.apply(sync(emu, catalog, state=second.last_state))
    assert target.retired() == retired
    target.assert_matches(expected)


def test_activate_version_can_be_turned_off(
    fresh_emulator: Callable[..., GraphEmulator], catalog: dict[str, Any]
) -> None:
    emu = fresh_emulator(users=30, groups=5, seed=3)
    # An empty product_names_url turns names off, quietly.
    result = sync(emu, catalog, emit_activate_version_messages=False, product_names_url="")
    assert "ACTIVATE_VERSION" not in stream_kinds(result)
    assert result.records(STREAM)
    assert all("version" not in m for m in result.record_messages(STREAM))
    assert not product_lines(result)
    assert emu.product_names.downloads == 0
    assert all(sku["product_display_name"] is None for sku in result.records("subscribed_skus"))


# ----------------------------------------------------------------------------- product names


def product_lines(result: SyncResult) -> list[str]:
    return [line for line in warnings(result) if "names" in line.lower()]


def test_names_come_from_the_file_once_per_run_cached_without_the_graph_token(
    fresh_emulator: Callable[..., GraphEmulator], catalog: dict[str, Any]
) -> None:
    emu = fresh_emulator(users=40, groups=5, seed=9)
    result = sync(emu, catalog)
    assert not product_lines(result)
    skus = result.records("subscribed_skus")
    assert skus
    for sku in skus:
        assert sku["product_display_name"] == PRODUCT_NAMES[sku["sku_id"]]
        for plan in sku["service_plans"]:
            assert plan["servicePlanFriendlyName"] == PLAN_FRIENDLY_NAMES[plan["servicePlanId"]]
            assert plan["servicePlanName"] == PLAN_BY_ID[plan["servicePlanId"]].name  # Graph's
    # The untidy cells of the served file read clean (trailing spaces, NBSP, tab, upper case).
    names = {sku["sku_part_number"]: sku["product_display_name"] for sku in skus}
    assert names["SPE_E3"] == "Microsoft 365 E3"
    assert names["VISIOCLIENT"] == "Visio Plan 2"
    assert names["PROJECTPREMIUM"] == "Project Plan 5"
    assert names["EMS"] == "Enterprise Mobility + Security E3"
    assert names["FLOW_FREE"] == "Microsoft Power Automate Free"
    rows = result.records(STREAM)
    assert rows
    assert all(row["product_display_name"] == PRODUCT_NAMES[row["sku_id"]] for row in rows)
    # One download for both streams, and never with the Graph token.
    assert [r.authorized for r in emu.product_names.requests] == [False]
    cache = Path(emu.config()["product_names_cache_dir"])
    (cached,) = cache.iterdir()
    assert cached.read_bytes() == render()

    # A later run within product_names_cache_hours reads the cached copy: no download.
    again = sync(emu, catalog)
    assert emu.product_names.downloads == 1
    assert again.records("subscribed_skus") == skus

    # Past it, the file is downloaded again, once, and the copy replaced whole; when that
    # download fails, the older copy still gives the names, with one warning.
    emu.product_names.status = 500
    old = time.time() - 8 * 24 * 3600
    os.utime(cached, (old, old))
    stale = sync(emu, catalog)
    assert emu.product_names.downloads == 3  # the failed download is tried once more
    assert len(product_lines(stale)) == 1, product_lines(stale)
    assert "using the copy cached" in product_lines(stale)[0]
    assert stale.records("subscribed_skus") == skus
    emu.product_names.status = 200
    emu.product_names.fail_next = 1  # a passing fault: tried again, names as usual
    refreshed = sync(emu, catalog)
    assert emu.product_names.downloads == 5
    assert not product_lines(refreshed)
    assert refreshed.records("subscribed_skus") == skus
    assert cached.stat().st_mtime > old + 24 * 3600
    assert list(cache.iterdir()) == [cached]  # no temporary file left behind


def test_no_file_means_null_names_one_warning_and_a_successful_run(
    fresh_emulator: Callable[..., GraphEmulator], catalog: dict[str, Any]
) -> None:
    emu = fresh_emulator(users=40, groups=5, seed=9)
    emu.product_names.status = 503
    result = sync(emu, catalog)
    assert len(product_lines(result)) == 1, product_lines(result)
    assert "HTTP 503" in product_lines(result)[0]
    assert all(sku["product_display_name"] is None for sku in result.records("subscribed_skus"))
    assert all(
        plan["servicePlanFriendlyName"] is None
        for sku in result.records("subscribed_skus")
        for plan in sku["service_plans"]
    )
    # Null names, and the rest of every row as it would be with them.
    Target().apply(result).assert_matches(
        expected_rows(emu.tenant, omitted=frozenset(PRODUCT_NAMES))
    )

    # An unreachable host: the same single warning.
    unreachable = sync(emu, catalog, product_names_url="https://127.0.0.1:9/names.csv")
    assert len(product_lines(unreachable)) == 1
    assert "unreachable" in product_lines(unreachable)[0]


def test_an_id_missing_from_the_file_is_null_with_one_warning(
    fresh_emulator: Callable[..., GraphEmulator], catalog: dict[str, Any]
) -> None:
    emu = fresh_emulator(users=120, groups=6, seed=11)
    visio = SKU_BY_PART["VISIOCLIENT"]
    emu.product_names.omitted_skus.add(visio.sku_id)
    result = sync(emu, catalog)
    lines = product_lines(result)
    assert len(lines) == 1, lines
    assert visio.sku_id in lines[0]
    skus = {sku["sku_id"]: sku for sku in result.records("subscribed_skus")}
    assert skus[visio.sku_id]["product_display_name"] is None
    # Plans only Visio has lose their names; a plan other products list keeps it.
    plans = {p["servicePlanName"]: p for p in skus[visio.sku_id]["service_plans"]}
    assert plans["VISIO_CLIENT_SUBSCRIPTION"]["servicePlanFriendlyName"] is None
    assert plans["VISIOONLINE"]["servicePlanFriendlyName"] is None
    assert plans["EXCHANGE_S_FOUNDATION"]["servicePlanFriendlyName"] == "Exchange Foundation"
    assert all(
        sku["product_display_name"] for sku_id, sku in skus.items() if sku_id != visio.sku_id
    )
    rows = result.records(STREAM)
    assert [row for row in rows if row["sku_id"] == visio.sku_id]
    for row in rows:
        assert (row["product_display_name"] is None) == (row["sku_id"] == visio.sku_id)


def test_a_local_copy_is_read_instead_of_downloading(
    fresh_emulator: Callable[..., GraphEmulator], catalog: dict[str, Any], tmp_path: Path
) -> None:
    emu = fresh_emulator(users=40, groups=5, seed=9)
    copy = tmp_path / "names.csv"
    copy.write_bytes(render())
    result = sync(emu, catalog, product_names_path=str(copy))
    assert emu.product_names.downloads == 0
    assert not product_lines(result)
    assert all(
        sku["product_display_name"] == PRODUCT_NAMES[sku["sku_id"]]
        for sku in result.records("subscribed_skus")
    )
    missing = sync(emu, catalog, product_names_path=str(tmp_path / "absent.csv"))
    assert len(product_lines(missing)) == 1
    assert "absent.csv" in product_lines(missing)[0]
    assert emu.product_names.downloads == 0


def test_the_file_is_read_as_microsoft_writes_it() -> None:
    # Quoted commas, stray spaces, tabs and NBSPs, GUIDs in any case or with braces, a BOM.
    text = (
        "\ufeffProduct_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,"
        "Service_Plans_Included_Friendly_Names\r\n"
        '"Windows 365 Enterprise 2 vCPU, 8 GB, 128 GB ",CPC_E_2C_8GB_128GB,'
        "E2AEBE6C-897D-480F-9D62-FFF1381581F7,CPC_E_2C_8GB_128GB,"
        '{23A25099-1B2F-4E07-84BD-B84606109438},"Windows 365 Enterprise 2 vCPU,\u00a08 GB"\r\n'
        "Microsoft\u00a0365\tE5\u00a0,SPE_E5, 06ebc4ee-1bb5-47dd-8120-11324bc54e06 ,"
        "TEAMS1,57ff2da0-773e-42df-b2af-ffb7a2317929,Microsoft Teams   \r\n"
    )
    names = ProductNames.parse(text, "test")
    assert names.products == {
        "e2aebe6c-897d-480f-9d62-fff1381581f7": "Windows 365 Enterprise 2 vCPU, 8 GB, 128 GB",
        "06ebc4ee-1bb5-47dd-8120-11324bc54e06": "Microsoft 365 E5",
    }
    assert names.plans == {
        "23a25099-1b2f-4e07-84bd-b84606109438": "Windows 365 Enterprise 2 vCPU, 8 GB",
        "57ff2da0-773e-42df-b2af-ffb7a2317929": "Microsoft Teams",
    }
    assert clean_name(" \u00a0\t") is None
    with pytest.raises(ProductNamesUnavailableError, match="not the licensing reference"):
        ProductNames.parse("<html><body>Sign in to the proxy</body></html>", "proxy")
