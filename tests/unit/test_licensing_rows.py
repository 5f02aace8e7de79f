"""streams/licensing.py: license_assignments rows from a user's license properties.

The user properties are those of
https://learn.microsoft.com/en-us/graph/api/resources/licenseassignmentstate (one entry per
assignment path: direct, or one per group), assignedLicense and assignedPlan. GUIDs here are
made up; the product names file is a small local copy (no download).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from tap_microsoft365.graph.transport import Transport
from tap_microsoft365.product_names import ProductNameCatalog
from tap_microsoft365.streams.licensing import SkuInfo, _summary, assigned_since, assignment_rows

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

E5 = "00000000-0000-4000-8000-0000000000e5"
E3 = "00000000-0000-4000-8000-0000000000e3"
EXCHANGE = "00000000-0000-4000-8000-00000000ec01"
PHONE = "00000000-0000-4000-8000-00000000ca11"
E3_ONLY = "00000000-0000-4000-8000-00000000e301"
G1 = "11111111-0000-4000-8000-000000000001"
G2 = "22222222-0000-4000-8000-000000000002"

HEADER = (
    "Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,"
    "Service_Plans_Included_Friendly_Names"
)
NAMES_CSV = f"""{HEADER}
Microsoft 365 E5,SPE_E5,{E5},EXCHANGE_S_ENTERPRISE,{EXCHANGE},Exchange Online (Plan 2)
Microsoft 365 E5,SPE_E5,{E5},MCOEV,{PHONE},Microsoft 365 Phone System
Microsoft 365 E3,SPE_E3,{E3},EXCHANGE_S_ENTERPRISE,{EXCHANGE},Exchange Online (Plan 2)
Microsoft 365 E3,SPE_E3,{E3},E3_ONLY_PLAN,{E3_ONLY},Only In E3
"""

SKUS: dict[str, SkuInfo] = {
    E5: SkuInfo(
        "SPE_E5",
        frozenset({EXCHANGE, PHONE}),
        {EXCHANGE: "EXCHANGE_S_ENTERPRISE", PHONE: "MCOEV"},
    ),
    # subscribedSkus gave no name for E3_ONLY: the file's code name is used.
    E3: SkuInfo("SPE_E3", frozenset({EXCHANGE, E3_ONLY}), {EXCHANGE: "EXCHANGE_S_ENTERPRISE"}),
}

LOGGER = logging.getLogger("tests.unit.licensing")
# Never used for a request here: names come from a local file, or are turned off.
OFFLINE = Transport(graph_url="https://graph.invalid", timeout=1)


@pytest.fixture
def catalog(tmp_path: Path) -> ProductNameCatalog:
    path = tmp_path / "names.csv"
    path.write_text(NAMES_CSV, encoding="utf-8")
    return ProductNameCatalog({"product_names_path": str(path)}, LOGGER, OFFLINE)


@pytest.fixture
def no_names() -> ProductNameCatalog:
    return ProductNameCatalog({"product_names_url": ""}, LOGGER, OFFLINE)  # names turned off


def _path(
    sku: str,
    group: str | None,
    state: str | None = "Active",
    *,
    error: str | None = "None",
    disabled: list[str] | None = None,
    updated: str | None = None,
) -> dict[str, Any]:
    return {
        "skuId": sku,
        "assignedByGroup": group,
        "state": state,
        "error": error,
        "disabledPlans": disabled or [],
        "lastUpdatedDateTime": updated,
    }


ADELE: dict[str, Any] = {
    "id": "u-adele",
    "userPrincipalName": "adele@contoso.com",
    "accountEnabled": True,
    "userType": "Member",
    # Graph's GUIDs may come in any case: rows are keyed by the lower-case form.
    "assignedLicenses": [
        {"skuId": E5.upper(), "disabledPlans": [PHONE.upper()]},
        {"skuId": E3, "disabledPlans": []},
    ],
    "licenseAssignmentStates": [
        _path(E5, G2, "Error", error="CountViolation", updated="2026-03-01T00:00:00Z"),
        _path(E5, None, disabled=[PHONE], updated="2026-01-02T00:00:00Z"),
        _path(E3, G1, updated="2025-05-05T00:00:00Z"),
    ],
    "assignedPlans": [
        {"servicePlanId": EXCHANGE, "assignedDateTime": "2024-01-01T00:00:00Z"},
        # a removed plan does not date anything
        {
            "servicePlanId": EXCHANGE,
            "assignedDateTime": "2020-01-01T00:00:00Z",
            "capabilityStatus": "Deleted",
        },
        {"servicePlanId": PHONE, "assignedDateTime": "2026-01-02T00:00:00Z"},
        {"servicePlanId": E3_ONLY, "assignedDateTime": "2025-06-01T00:00:00Z"},
        {"servicePlanId": E3_ONLY.upper(), "assignedDateTime": "2025-05-05T10:00:00Z"},
    ],
}


def test_rows_of_a_user_with_direct_and_group_assignments(catalog: ProductNameCatalog) -> None:
    rows = list(assignment_rows(ADELE, SKUS, catalog))
    assert [row["sku_id"] for row in rows] == [E3, E5]  # skuId order, lower case
    e3, e5 = rows
    assert e3 == {
        "user_id": "u-adele",
        "sku_id": E3,
        "sku_part_number": "SPE_E3",
        "product_display_name": "Microsoft 365 E3",
        "user_principal_name": "adele@contoso.com",
        "account_enabled": True,
        "user_type": "Member",
        "consumes_unit": True,
        "assigned_directly": False,
        "assigned_by_groups": [G1],
        "state": "Active",
        "error": None,
        "disabled_plans": [],
        "disabled_service_plans": [],
        # E3_ONLY is E3's own plan: its earliest date, whatever the GUID's case
        "assigned_date_time": "2025-05-05T10:00:00Z",
        "last_updated_date_time": "2025-05-05T00:00:00Z",
        "assignments": [
            {
                "assignedByGroup": G1,
                "state": "Active",
                "error": "None",
                "disabledPlans": [],
                "lastUpdatedDateTime": "2025-05-05T00:00:00Z",
            }
        ],
    }
    assert e5 == {
        "user_id": "u-adele",
        "sku_id": E5,
        "sku_part_number": "SPE_E5",
        "product_display_name": "Microsoft 365 E5",
        "user_principal_name": "adele@contoso.com",
        "account_enabled": True,
        "user_type": "Member",
        "consumes_unit": True,
        "assigned_directly": True,
        "assigned_by_groups": [G2],
        # Held through the direct path, while the group's assignment failed.
        "state": "ActiveWithError",
        "error": "CountViolation",
        "disabled_plans": [PHONE],
        "disabled_service_plans": [
            {
                "servicePlanId": PHONE,
                "servicePlanName": "MCOEV",
                "servicePlanFriendlyName": "Microsoft 365 Phone System",
            }
        ],
        # Exchange comes with E3 too and the phone plan is disabled: no plan dates E5.
        "assigned_date_time": None,
        "last_updated_date_time": "2026-03-01T00:00:00Z",
        "assignments": [  # the direct path first, then the groups
            {
                "assignedByGroup": None,
                "state": "Active",
                "error": "None",
                "disabledPlans": [PHONE],
                "lastUpdatedDateTime": "2026-01-02T00:00:00Z",
            },
            {
                "assignedByGroup": G2,
                "state": "Error",
                "error": "CountViolation",
                "disabledPlans": [],
                "lastUpdatedDateTime": "2026-03-01T00:00:00Z",
            },
        ],
    }


def test_a_sku_every_group_failed_to_assign(catalog: ProductNameCatalog) -> None:
    user = {
        "id": "u-bob",
        "assignedLicenses": [],
        "licenseAssignmentStates": [
            _path(E5, G2, "Error", error="MutuallyExclusiveViolation", disabled=[PHONE]),
            _path(E5, G1, "Error", error="CountViolation", disabled=[PHONE, EXCHANGE]),
        ],
        "assignedPlans": [{"servicePlanId": PHONE, "assignedDateTime": "2026-01-01T00:00:00Z"}],
    }
    (row,) = assignment_rows(user, SKUS, catalog)
    assert row["consumes_unit"] is False
    assert row["state"] == "Error"
    assert row["error"] == "CountViolation, MutuallyExclusiveViolation"  # sorted, joined
    assert row["assigned_directly"] is False
    assert row["assigned_by_groups"] == [G1, G2]
    assert [path["assignedByGroup"] for path in row["assignments"]] == [G1, G2]
    assert row["disabled_plans"] == [PHONE]  # what every failed path would disable
    assert row["assigned_date_time"] is None  # not held: not dated
    assert row["last_updated_date_time"] is None
    assert row["user_principal_name"] is None


def test_a_held_sku_without_assignment_states(no_names: ProductNameCatalog) -> None:
    user = {"id": "u-carol", "assignedLicenses": [{"skuId": E5}], "licenseAssignmentStates": None}
    (row,) = assignment_rows(user, SKUS, no_names)
    assert row["consumes_unit"] is True
    assert row["assigned_directly"] is None  # unknown: Graph gave no path
    assert row["assigned_by_groups"] == []
    assert (row["state"], row["error"]) == ("Active", None)
    assert row["assignments"] == []
    assert row["product_display_name"] is None  # names off
    assert row["sku_part_number"] == "SPE_E5"


def test_without_subscribed_skus_plans_come_from_the_names_file(
    catalog: ProductNameCatalog,
) -> None:
    user = {
        "id": "u-dan",
        "assignedLicenses": [{"skuId": E3, "disabledPlans": [E3_ONLY]}],
        "assignedPlans": [
            {"servicePlanId": EXCHANGE, "assignedDateTime": "2024-02-02T00:00:00Z"},
        ],
    }
    (row,) = assignment_rows(user, {}, catalog)
    assert row["sku_part_number"] is None
    assert row["product_display_name"] == "Microsoft 365 E3"
    # E3's plans from the file: Exchange is its own (no other license), E3_ONLY is disabled.
    assert row["assigned_date_time"] == "2024-02-02T00:00:00Z"
    assert row["disabled_service_plans"] == [
        {
            "servicePlanId": E3_ONLY,
            "servicePlanName": "E3_ONLY_PLAN",
            "servicePlanFriendlyName": "Only In E3",
        }
    ]


def test_entries_without_a_sku_are_ignored(no_names: ProductNameCatalog) -> None:
    user = {
        "id": "u-eve",
        "assignedLicenses": [{"skuId": ""}, "garbage", {"disabledPlans": []}],
        "licenseAssignmentStates": [{"state": "Active"}, None],
    }
    assert list(assignment_rows(user, SKUS, no_names)) == []


# --------------------------------------------------------------------------------------------
# _summary: the row's state and error from its paths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paths", "held", "expected"),
    [
        ([], True, ("Active", None)),
        ([{"state": "Active", "error": "None"}], True, ("Active", None)),
        (
            [{"state": "Active", "error": "None"}, {"state": "Active", "error": "None"}],
            True,
            ("Active", None),
        ),
        (
            [{"state": "Active", "error": "None"}, {"state": "Error", "error": "CountViolation"}],
            True,
            ("ActiveWithError", "CountViolation"),
        ),
        (
            [{"state": "ActiveWithError", "error": "DependencyViolation"}],
            True,
            ("ActiveWithError", "DependencyViolation"),
        ),
        ([{"state": "Error", "error": "CountViolation"}], False, ("Error", "CountViolation")),
        (
            [
                {"state": "Error", "error": "UniquenessViolation"},
                {"state": "Error", "error": "CountViolation"},
                {"state": "Error", "error": "CountViolation"},
            ],
            False,
            ("Error", "CountViolation, UniquenessViolation"),
        ),
        # An error on a path Graph calls Active still makes an unheld SKU an error.
        ([{"state": "Active", "error": "Other"}], False, ("Error", "Other")),
        ([{"state": "Disabled", "error": "None"}], False, ("Disabled", None)),
        ([{"state": "Disabled", "error": None}], False, ("Disabled", None)),
        ([{"state": "", "error": ""}], False, ("Error", None)),
        ([{"state": None, "error": None}], False, ("Error", None)),
    ],
)
def test_summary(
    paths: list[Mapping[str, Any]], held: bool, expected: tuple[str, str | None]
) -> None:
    assert _summary(paths, held) == expected


# --------------------------------------------------------------------------------------------
# assigned_since: when a held SKU reached the user
# --------------------------------------------------------------------------------------------

DATES = {
    EXCHANGE: "2020-01-01T00:00:00Z",
    PHONE: "2024-06-01T00:00:00Z",
    E3_ONLY: "2022-03-03T00:00:00Z",
}


@pytest.mark.parametrize(
    ("sku", "enabled", "expected"),
    [
        # E5 alone: its earliest plan.
        (E5, {E5: frozenset({EXCHANGE, PHONE})}, "2020-01-01T00:00:00Z"),
        # E5 with E3: Exchange is shared, so only the phone plan dates E5, E3_ONLY dates E3.
        (
            E5,
            {E5: frozenset({EXCHANGE, PHONE}), E3: frozenset({EXCHANGE, E3_ONLY})},
            "2024-06-01T00:00:00Z",
        ),
        (
            E3,
            {E5: frozenset({EXCHANGE, PHONE}), E3: frozenset({EXCHANGE, E3_ONLY})},
            "2022-03-03T00:00:00Z",
        ),
        # Every plan of E5 also comes with E3: unknown.
        (E5, {E5: frozenset({EXCHANGE}), E3: frozenset({EXCHANGE, E3_ONLY})}, None),
        # An own plan that assignedPlans does not list dates nothing.
        (E5, {E5: frozenset({"no-date-plan"})}, None),
        (E5, {E3: frozenset({E3_ONLY})}, None),  # not held
        (E5, {E5: frozenset()}, None),
    ],
)
def test_assigned_since(sku: str, enabled: dict[str, frozenset[str]], expected: str | None) -> None:
    assert assigned_since(sku, enabled, DATES) == expected
