"""product_names.py: reading Microsoft's "Product names and service plan identifiers for
licensing" CSV (https://learn.microsoft.com/en-us/entra/identity/users/licensing-service-plan-reference),
whose cells carry stray spaces, tabs and non-breaking spaces, and whose names hold quoted commas.
"""

from __future__ import annotations

import pytest

from tap_microsoft365.product_names import (
    ProductNames,
    ProductNamesUnavailableError,
    clean_name,
    guid_key,
    read_text,
)

HEADER = (
    "Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,"
    "Service_Plans_Included_Friendly_Names"
)
SKU_A = "aaaaaaaa-0000-4000-8000-000000000001"
SKU_B = "bbbbbbbb-0000-4000-8000-000000000002"
PLAN_1 = "11111111-0000-4000-8000-00000000000a"
PLAN_2 = "22222222-0000-4000-8000-00000000000b"
PLAN_3 = "33333333-0000-4000-8000-00000000000c"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Microsoft 365 E5", "Microsoft 365 E5"),
        ("  Microsoft 365 E5 \t", "Microsoft 365 E5"),
        ("Microsoft\u00a0365\u00a0E5", "Microsoft 365 E5"),  # non-breaking spaces
        ("Exchange\t\tOnline  (Plan 2)", "Exchange Online (Plan 2)"),
        ("Power\u200bBI\ufeff Pro", "PowerBI Pro"),  # invisible characters dropped
        ("line\nbreak", "line break"),
        ("", None),
        ("   \t\u00a0", None),
        ("\u200b", None),
        (None, None),
    ],
)
def test_clean_name(value: str | None, expected: str | None) -> None:
    assert clean_name(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("AAAAAAAA-0000-4000-8000-000000000001", SKU_A),
        ("{AAAAAAAA-0000-4000-8000-000000000001}", SKU_A),
        (" { aaaaaaaa-0000-4000-8000-000000000001 } ", SKU_A),
        ("\ufeffaaaaaaaa-0000-4000-8000-000000000001\u200b", SKU_A),
        ("", ""),
        (None, "none"),  # str(None): no lookup ever matches it
    ],
)
def test_guid_key(value: object, expected: str) -> None:
    assert guid_key(value) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Café ☕".encode(), "Café ☕"),
        (b"\xef\xbb\xbfGUID", "GUID"),  # the UTF-8 BOM is dropped
        (b"Caf\xe9 \x96 Bar", "Café \u2013 Bar"),  # Windows-1252 (0x96: an en dash)
        (b"\x81", "\ufffd"),  # no character in either: replaced, not an error
        (b"", ""),
    ],
)
def test_read_text(body: bytes, expected: str) -> None:
    assert read_text(body) == expected


MESSY = (
    "\ufeff Product_Display_Name ,String_Id,\tGUID ,Service_Plan_Name,Service_Plan_Id,"
    "Service_Plans_Included_Friendly_Names\r\n"
    # quoted commas, NBSP and tabs inside cells, an upper-case GUID in braces
    f'"Microsoft 365 E5 (no Teams, EEA)",SPE_E5,{{{SKU_A.upper()}}},EXCHANGE_S_ENTERPRISE,'
    f'{PLAN_1},"Exchange\u00a0Online (Plan\t2)"\r\n'
    # the same product again with a second plan, a different spelling of its name
    f"Microsoft 365 E5 - later row,SPE_E5,{SKU_A}, MCOEV ,{PLAN_2.upper()}, Phone  System \r\n"
    # the same plan listed twice for the product: kept once
    f"Microsoft 365 E5,SPE_E5,{SKU_A},EXCHANGE_S_ENTERPRISE,{PLAN_1},Exchange Online (Plan 2)\r\n"
    # a row without a GUID is skipped
    f",X,,PLAN,{PLAN_3},Orphan plan\r\n"
    # a short row: a product with no plan
    f"Visio Plan 2,VISIO,{SKU_B}\r\n"
    "\r\n"
)


def test_parse_a_messy_file() -> None:
    names = ProductNames.parse(MESSY, "names.csv")
    assert names.products == {
        SKU_A: "Microsoft 365 E5 (no Teams, EEA)",  # the first name given wins
        SKU_B: "Visio Plan 2",
    }
    assert names.plans == {PLAN_1: "Exchange Online (Plan 2)", PLAN_2: "Phone System"}
    assert names.plan_codes == {PLAN_1: "EXCHANGE_S_ENTERPRISE", PLAN_2: "MCOEV"}
    assert names.sku_plans == {SKU_A: (PLAN_1, PLAN_2)}
    assert names.source == "names.csv"


def test_parse_finds_columns_by_name_in_any_order_and_case() -> None:
    text = f"service_plan_id,guid,PRODUCT_DISPLAY_NAME\n{PLAN_1},{SKU_A},Office 365 E3\n"
    names = ProductNames.parse(text, "reordered")
    assert names.products == {SKU_A: "Office 365 E3"}
    assert names.sku_plans == {SKU_A: (PLAN_1,)}
    assert names.plans == {}  # no friendly-name column
    assert names.plan_codes == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "x.csv has no GUID or Product_Display_Name column: it is not the licensing reference"),
        ("<html><body>Sign in</body></html>", "has no GUID or Product_Display_Name column"),
        ("GUID,String_Id\nabc,X\n", "x.csv has no Product_Display_Name column"),
        ("Product_Display_Name\nE5\n", "x.csv has no GUID column"),
        (HEADER + "\n", "x.csv lists no product: it is not the licensing reference"),
        (HEADER + f"\n ,SPE_E5,{SKU_A},P,{PLAN_1},Plan\n", "x.csv lists no product"),
    ],
)
def test_parse_rejects_what_is_not_the_reference(text: str, message: str) -> None:
    with pytest.raises(ProductNamesUnavailableError) as raised:
        ProductNames.parse(text, "x.csv")
    assert message in str(raised.value)
