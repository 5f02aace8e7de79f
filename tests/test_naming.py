"""Column naming: Graph's camelCase properties become snake_case columns, and back for $select."""

from __future__ import annotations

import pytest

from tap_microsoft365 import schemas
from tap_microsoft365.naming import Columns, snake_case

ALL_COLUMNS = (
    schemas.ORGANIZATION_COLUMNS,
    schemas.SUBSCRIBED_SKU_COLUMNS,
    schemas.COMPANY_SUBSCRIPTION_COLUMNS,
    schemas.USER_COLUMNS,
    schemas.GROUP_COLUMNS,
)


@pytest.mark.parametrize(
    ("graph", "column"),
    [
        ("id", "id"),
        ("userPrincipalName", "user_principal_name"),
        ("onPremisesSamAccountName", "on_premises_sam_account_name"),
        ("skuId", "sku_id"),
        ("_sdc_deleted_at", "_sdc_deleted_at"),
        ("user_principal_name", "user_principal_name"),
    ],
)
def test_snake_case(graph: str, column: str) -> None:
    assert snake_case(graph) == column


def test_rename_keeps_values_nested_shape_and_unknown_keys() -> None:
    record = {
        "id": "1",
        "userPrincipalName": "ada@contoso.com",
        "assignedLicenses": [{"skuId": "s", "disabledPlans": []}],
        "@removed": {"reason": "changed"},
    }
    renamed = schemas.USER_COLUMNS.rename(record)
    assert renamed == {
        "id": "1",
        "user_principal_name": "ada@contoso.com",
        "assigned_licenses": [{"skuId": "s", "disabledPlans": []}],
        "@removed": {"reason": "changed"},
    }


def test_select_speaks_graph_and_leaves_out_the_taps_own() -> None:
    columns = schemas.SUBSCRIBED_SKU_COLUMNS
    names = columns.graph_names(list(columns.schema["properties"]))
    assert "skuPartNumber" in names
    assert "prepaidUnits" in names
    assert "productDisplayName" not in names
    assert columns.rename({"productDisplayName": "E5"}) == {"product_display_name": "E5"}
    users = schemas.USER_COLUMNS
    assert "_sdc_deleted_at" not in users.graph_names(list(users.schema["properties"]))


@pytest.mark.parametrize("columns", ALL_COLUMNS)
def test_mapping_is_one_to_one_and_round_trips(columns: Columns) -> None:
    for column, graph in columns.to_graph.items():
        assert snake_case(graph) == column
        assert columns.rename({graph: 1}) == {column: 1}
        assert columns.schema["properties"][column]["description"].startswith(
            f"Graph property `{graph}`."
        )
    assert len(set(columns.to_graph.values())) == len(columns.to_graph)


def test_two_properties_on_one_column_are_refused() -> None:
    with pytest.raises(ValueError, match="user_name"):
        Columns({"properties": {"userName": {}, "user_name": {}}})
