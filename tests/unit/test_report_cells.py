"""streams/reports.py: stream and column names, column types, CSV cells to values, ColumnPlan,
and the concealed-names message.

Column names are the CSV headers the report pages document, e.g.
https://learn.microsoft.com/en-us/graph/api/reportroot-getoffice365activationsuserdetail
"""

from __future__ import annotations

from typing import Any

import pytest

from tap_microsoft365.streams.reports.definitions import (
    CONCEALED_SETTING,
    REPORTS,
    ColumnType,
    Parameters,
    ReportDefinition,
    conventional_type,
    describe_concealment,
    snake_case,
    stream_name,
)
from tap_microsoft365.streams.reports.stream import (
    CONCEALED_VALUE,
    CONVERTERS,
    BadCell,
    ColumnPlan,
    _to_boolean,
    _to_date,
    _to_integer,
    _to_products,
)

# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Storage Used (Byte)", "storage_used_byte"),
        ("Used  Chrome OS", "used_chrome_os"),
        ("  Report Refresh Date  ", "report_refresh_date"),
        ("Prohibit Send/Receive Quota (Byte)", "prohibit_send_receive_quota_byte"),
        ("Peer-to-peer IM Count", "peer_to_peer_im_count"),
        (
            "Organized Conference Dial-in/out 3rd Party Count",
            "organized_conference_dial_in_out_3rd_party_count",
        ),
        (
            "Scheduled One-time Meetings Organized Count",
            "scheduled_one_time_meetings_organized_count",
        ),
        ("Outlook (Windows)", "outlook_windows"),
        ("iOS", "ios"),
        ("\ufeffReport Refresh Date", "report_refresh_date"),  # a BOM left on the first header
        ("Site URL", "site_url"),
        ("", ""),
    ],
)
def test_snake_case(header: str, expected: str) -> None:
    assert snake_case(header) == expected


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("getOneDriveUsageAccountDetail", "onedrive_usage_account_detail"),
        ("getOneDriveActivityUserDetail", "onedrive_activity_user_detail"),
        ("getSharePointSiteUsageDetail", "sharepoint_site_usage_detail"),
        ("getOffice365ActiveUserDetail", "office365_active_user_detail"),
        ("getM365AppUserDetail", "m365_app_user_detail"),
        ("getTeamsUserActivityUserDetail", "teams_user_activity_user_detail"),
        ("getSkypeForBusinessDeviceUsageUserDetail", "skype_for_business_device_usage_user_detail"),
        ("getEmailActivityUserDetail", "email_activity_user_detail"),
    ],
)
def test_stream_name(function: str, expected: str) -> None:
    assert stream_name(function) == expected


# --------------------------------------------------------------------------------------------
# Column types
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Assigned Products", ColumnType.PRODUCTS),
        ("Report Refresh Date", ColumnType.DATE),
        ("Last Activity Date", ColumnType.DATE),
        ("Exchange License Assign Date", ColumnType.DATE),
        ("Is Deleted", ColumnType.BOOLEAN),
        ("Has Exchange License", ColumnType.BOOLEAN),
        ("Used Chrome OS", ColumnType.BOOLEAN),
        ("Report Period", ColumnType.INTEGER),
        ("Send Count", ColumnType.INTEGER),
        ("Total Peer-to-peer Session Count", ColumnType.INTEGER),
        ("Storage Used (Byte)", ColumnType.INTEGER),  # "Used" is not its first word
        ("Audio Duration In Seconds", ColumnType.INTEGER),
        ("Peer-to-peer Audio Minutes", ColumnType.INTEGER),
        ("Audio Duration", ColumnType.STRING),  # an ISO 8601 duration text
        ("User Principal Name", ColumnType.STRING),
        ("Account Type", ColumnType.STRING),  # "Count" as a word, not a substring
        ("Date", ColumnType.STRING),
        ("Island Name", ColumnType.STRING),  # "Is" as a word, not a prefix
        ("", ColumnType.STRING),
    ],
)
def test_conventional_type(header: str, expected: ColumnType) -> None:
    assert conventional_type(header) is expected


# --------------------------------------------------------------------------------------------
# Cells to values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-11-01", "2026-11-01"),
        ("2026-11-01T00:00:00", "2026-11-01"),
        ("2026-11-01T05:00:00Z", "2026-11-01"),
        ("2026-11-01 12:00:00", "2026-11-01"),
    ],
)
def test_to_date(cell: str, expected: str) -> None:
    assert _to_date(cell) == expected


@pytest.mark.parametrize(
    "cell", ["11/01/2026", "2026-11-01x", "2026-1-01", "yesterday", "20261101"]
)
def test_to_date_rejects(cell: str) -> None:
    with pytest.raises(BadCell):
        _to_date(cell)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("True", True),
        ("False", False),
        ("true", True),
        ("FALSE", False),
        ("Yes", True),
        ("No", False),
        ("yes", True),
        ("NO", False),
    ],
)
def test_to_boolean(cell: str, expected: bool) -> None:
    assert _to_boolean(cell) is expected


@pytest.mark.parametrize("cell", ["1", "0", "Y", "N", "maybe", "Truee"])
def test_to_boolean_rejects(cell: str) -> None:
    with pytest.raises(BadCell):
        _to_boolean(cell)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("0", 0),
        ("12", 12),
        ("-3", -3),
        ("1,234", 1234),  # a thousands separator
        ("12,345,678", 12345678),
        ("1.0", 1),  # a whole number written as a float
        ("1,234.00", 1234),
        ("1099511627776", 1099511627776),  # storage in bytes outgrows 32 bits
    ],
)
def test_to_integer(cell: str, expected: int) -> None:
    value = _to_integer(cell)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize("cell", ["1.5", "0.25", "abc", "12 GB", "nan", "inf", "1,2x"])
def test_to_integer_rejects(cell: str) -> None:
    with pytest.raises(BadCell):
        _to_integer(cell)


@pytest.mark.parametrize("cell", ["2026-02-30", "2026-13-01", "0000-00-00", "2026-11-31T00:00:00"])
def test_to_date_rejects_a_day_that_is_not_in_the_calendar(cell: str) -> None:
    # Written as is, such a value fails the target's date column and stops the load; like any
    # other cell that does not hold its type, it must become null with the bad-cell warning.
    with pytest.raises(BadCell):
        _to_date(cell)


def test_a_bad_cell_is_rejected_every_time_not_cached() -> None:
    for _ in range(3):
        with pytest.raises(BadCell):
            _to_integer("1.5")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("OFFICE 365 E3", ["OFFICE 365 E3"]),
        ("OFFICE 365 E3+MICROSOFT 365 E5", ["OFFICE 365 E3", "MICROSOFT 365 E5"]),
        # ' + ' belongs to the name, '+' between words joins two names.
        ("ENTERPRISE MOBILITY + SECURITY E5", ["ENTERPRISE MOBILITY + SECURITY E5"]),
        (
            "ENTERPRISE MOBILITY + SECURITY E5+OFFICE 365 E3+POWER BI PRO",
            ["ENTERPRISE MOBILITY + SECURITY E5", "OFFICE 365 E3", "POWER BI PRO"],
        ),
        ("A++B", ["A", "B"]),  # no empty names
        ("", []),
    ],
)
def test_to_products(cell: str, expected: list[str]) -> None:
    assert _to_products(cell) == expected


def test_every_column_type_has_a_converter() -> None:
    assert set(CONVERTERS) == set(ColumnType)
    assert CONVERTERS[ColumnType.STRING]("text") == "text"


# --------------------------------------------------------------------------------------------
# Report definitions
# --------------------------------------------------------------------------------------------

EXAMPLE = ReportDefinition(
    "getExampleUserDetail",
    Parameters.DATE_OR_PERIOD,
    ("User Principal Name",),
    "Report Refresh Date,User Principal Name,Is Deleted,Send Count,Assigned Products,Windows",
    "An example report.",
    types={"Windows": ColumnType.INTEGER},
)


def test_definition_names_and_keys() -> None:
    assert EXAMPLE.name == "example_user_detail"
    assert EXAMPLE.key_properties == ("report_date", "user_principal_name")
    assert EXAMPLE.is_daily is True
    assert EXAMPLE.columns == (
        "Report Refresh Date",
        "User Principal Name",
        "Is Deleted",
        "Send Count",
        "Assigned Products",
        "Windows",
    )


def test_definition_column_types_apply_the_exceptions() -> None:
    assert EXAMPLE.column_types == {
        "report_refresh_date": ColumnType.DATE,
        "user_principal_name": ColumnType.STRING,
        "is_deleted": ColumnType.BOOLEAN,
        "send_count": ColumnType.INTEGER,
        "assigned_products": ColumnType.PRODUCTS,
        "windows": ColumnType.INTEGER,  # by its exception, not by convention (a string)
    }


def test_definition_schema() -> None:
    schema = EXAMPLE.schema
    assert schema["required"] == ["report_date"]
    properties = schema["properties"]
    assert list(properties) == [
        "report_date",
        "report_refresh_date",
        "user_principal_name",
        "is_deleted",
        "send_count",
        "assigned_products",
        "windows",
        "extra_columns",  # columns the tap does not know (issue 12)
    ]
    assert properties["extra_columns"]["type"] == ["object", "null"]
    assert properties["extra_columns"]["additionalProperties"] == {"type": ["string", "null"]}
    assert properties["report_date"]["type"] == ["string"]  # required: never null
    assert properties["report_date"]["format"] == "date"
    assert "the `date=` requested" in properties["report_date"]["description"]
    assert properties["report_refresh_date"]["type"] == ["string", "null"]
    assert properties["report_refresh_date"]["format"] == "date"
    assert properties["user_principal_name"]["type"] == ["string", "null"]
    assert "format" not in properties["user_principal_name"]
    assert properties["is_deleted"]["type"] == ["boolean", "null"]
    assert properties["send_count"]["type"] == ["integer", "null"]
    assert properties["windows"]["type"] == ["integer", "null"]
    assert properties["assigned_products"]["type"] == ["array", "null"]
    assert properties["assigned_products"]["items"]["type"] == ["string"]
    assert properties["send_count"]["description"] == "CSV column 'Send Count'."


def test_snapshot_definition_describes_report_date_as_the_refresh_date() -> None:
    snapshot = ReportDefinition(
        "getSnapshotDetail", Parameters.PERIOD, ("Id",), "Report Refresh Date,Id", ""
    )
    assert snapshot.is_daily is False
    assert "Report Refresh Date" in snapshot.schema["properties"]["report_date"]["description"]


def test_activations_report() -> None:
    (activations,) = [r for r in REPORTS if r.function == "getOffice365ActivationsUserDetail"]
    assert activations.name == "office365_activations_user_detail"
    assert activations.parameters is Parameters.NONE
    assert activations.key_properties == ("report_date", "user_principal_name", "product_type")
    types = activations.column_types
    assert types["windows"] is ColumnType.INTEGER
    assert types["windows_10_mobile"] is ColumnType.INTEGER
    assert types["activated_on_shared_computer"] is ColumnType.BOOLEAN
    assert types["last_activated_date"] is ColumnType.DATE


@pytest.mark.parametrize("definition", REPORTS, ids=[r.name for r in REPORTS])
def test_every_report_is_consistent(definition: ReportDefinition) -> None:
    names = [snake_case(column) for column in definition.columns]
    assert len(names) == len(set(names)), "two headers would become one property"
    assert "report_date" not in names
    assert set(definition.key) <= set(definition.columns), "a key column is not documented"
    assert set(definition.types) <= set(definition.columns), "an exception names no column"
    assert definition.columns[0] == "Report Refresh Date"
    assert definition.key_properties[0] == "report_date"
    assert set(definition.schema["properties"]) == {"report_date", "extra_columns", *names}


def test_stream_names_are_unique() -> None:
    names = [r.name for r in REPORTS]
    assert len(names) == len(set(names)) == 20


# --------------------------------------------------------------------------------------------
# ColumnPlan
# --------------------------------------------------------------------------------------------


def test_plan_of_the_documented_header() -> None:
    plan = ColumnPlan(EXAMPLE, list(EXAMPLE.columns))
    assert plan.text_cells == [(1, "user_principal_name")]
    assert [(index, name) for index, name, _ in plan.typed_cells] == [
        (0, "report_refresh_date"),
        (2, "is_deleted"),
        (3, "send_count"),
        (4, "assigned_products"),
        (5, "windows"),
    ]
    converters = {name: convert for _, name, convert in plan.typed_cells}
    assert converters["send_count"]("1,234") == 1234
    assert converters["is_deleted"]("False") is False
    assert converters["assigned_products"]("A+B") == ["A", "B"]
    assert converters["windows"]("3") == 3
    assert (plan.unknown, plan.repeated, plan.missing) == ([], [], [])
    assert plan.absent == {"extra_columns": None}  # no unknown column: null in every record
    assert plan.width == 6
    assert plan.key == ["user_principal_name"]
    assert plan.names == ["user_principal_name"]


def test_plan_follows_the_served_order_and_spelling() -> None:
    header = ["Windows", " user principal name ", "REPORT REFRESH DATE", "Send Count"]
    plan = ColumnPlan(EXAMPLE, header)
    assert plan.text_cells == [(1, "user_principal_name")]
    assert [(i, n) for i, n, _ in plan.typed_cells] == [
        (0, "windows"),
        (2, "report_refresh_date"),
        (3, "send_count"),
    ]
    assert plan.missing == ["Is Deleted", "Assigned Products"]
    assert plan.absent == {"is_deleted": None, "assigned_products": None, "extra_columns": None}
    assert plan.width == 4


def test_plan_names_unknown_columns_and_skips_report_date() -> None:
    header = [*EXAMPLE.columns, " Copilot Chat Count ", "Report Date"]
    plan = ColumnPlan(EXAMPLE, header)
    assert plan.unknown == ["Copilot Chat Count"]
    assert plan.extra_cells == [(6, "copilot_chat_count")]  # its values go to extra_columns
    assert "extra_columns" not in plan.absent
    assert plan.width == 8
    assert plan.missing == []


def test_plan_reads_a_duplicate_column_once_and_names_the_repeat() -> None:
    header = ["Report Refresh Date", "User Principal Name", "Send Count", "Send Count"]
    plan = ColumnPlan(EXAMPLE, header)
    assert [(i, n) for i, n, _ in plan.typed_cells] == [
        (0, "report_refresh_date"),
        (2, "send_count"),
    ]
    assert plan.repeated == ["Send Count"]  # a repeat, not a column the tap does not know
    assert plan.unknown == []


def test_plan_without_the_key_column() -> None:
    plan = ColumnPlan(EXAMPLE, ["Report Refresh Date", "Send Count"])
    assert "User Principal Name" in plan.missing
    assert plan.absent["user_principal_name"] is None
    assert plan.key == ["user_principal_name"]
    assert plan.names == []


def test_plan_of_an_empty_header() -> None:
    plan = ColumnPlan(EXAMPLE, [])
    assert plan.missing == list(EXAMPLE.columns)
    assert plan.absent == {**dict.fromkeys(EXAMPLE.column_types), "extra_columns": None}
    assert (plan.text_cells, plan.typed_cells, plan.unknown, plan.width) == ([], [], [], 0)


def test_plan_names_lists_the_name_columns_served() -> None:
    (groups,) = [r for r in REPORTS if r.function == "getOffice365GroupsActivityDetail"]
    plan = ColumnPlan(groups, list(groups.columns))
    assert plan.names == ["owner_principal_name", "group_display_name", "group_id"]


# --------------------------------------------------------------------------------------------
# Concealed names
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "concealed"),
    [
        ("A1B2C3D4E5F60718293A4B5C6D7E8F90", True),
        ("00000000000000000000000000000000", True),
        ("a1b2c3d4e5f60718293a4b5c6d7e8f90", False),  # concealment is upper case
        ("A1B2C3D4E5F60718293A4B5C6D7E8F9", False),  # 31 digits
        ("A1B2C3D4E5F60718293A4B5C6D7E8F901", False),  # 33 digits
        ("A1B2C3D4-E5F6-0718-293A-4B5C6D7E8F90", False),  # a GUID is not a concealed name
        ("adele.vance@contoso.com", False),
        ("", False),
    ],
)
def test_concealed_value(value: str, concealed: bool) -> None:
    assert bool(CONCEALED_VALUE.match(value)) is concealed


@pytest.mark.parametrize(
    ("failing", "tail"),
    [
        (True, "; concealed_names is 'error', so the run stops"),
        (False, "; set concealed_names to 'error' to fail runs instead"),
    ],
)
def test_describe_concealment(failing: bool, tail: str) -> None:
    text = describe_concealment(
        "email_activity_user_detail", "user_principal_name", failing=failing
    )
    assert text.startswith(
        "Microsoft 365 usage reports conceal user, group and site names in this tenant "
        "(email_activity_user_detail.user_principal_name holds 32-character hex ids"
    )
    assert CONCEALED_SETTING in text
    assert "Display concealed user, group, and site names in all reports" in text
    assert text.endswith(tail)
    assert "\n" not in text


def _typed_values(definition: ReportDefinition, row: list[str]) -> dict[str, Any]:
    """Convert one row as the plan says (what a stream does, without a stream)."""
    plan = ColumnPlan(definition, list(definition.columns))
    values: dict[str, Any] = {name: row[i].strip() or None for i, name in plan.text_cells}
    for index, name, convert in plan.typed_cells:
        values[name] = convert(row[index]) if row[index] else None
    return values


def test_a_row_of_the_example_report() -> None:
    row = ["2026-11-24", "adele@contoso.com", "False", "1,234", "OFFICE 365 E3+EMS E5", "2"]
    assert _typed_values(EXAMPLE, row) == {
        "report_refresh_date": "2026-11-24",
        "user_principal_name": "adele@contoso.com",
        "is_deleted": False,
        "send_count": 1234,
        "assigned_products": ["OFFICE 365 E3", "EMS E5"],
        "windows": 2,
    }
