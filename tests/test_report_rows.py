"""A report row's fast path (`ColumnPlan.fast_record`) builds exactly the record `_record` does.

`ReportStream._read` turns each CSV row into a record with the plan's compiled function and
falls back to `ReportStream._record` (the cell-by-cell path that warns) when the compiled one
declines a row. These tests hold the two to each other, value for value and key for key, on every
report's documented header, with served headers that reorder, drop and add columns, and on cells
of every kind: typed, blank, padded, of the wrong type, keyless rows and short rows.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pytest

from tap_microsoft365.streams.reports.definitions import REPORTS, ColumnType, snake_case
from tap_microsoft365.streams.reports.stream import ColumnPlan
from tap_microsoft365.tap import TapMicrosoft365

if TYPE_CHECKING:
    from tap_microsoft365.streams.reports.definitions import ReportDefinition
    from tap_microsoft365.streams.reports.stream import ReportStream
    from tests.graph_emulator import GraphEmulator

DAY = "2026-11-24"
GOOD: dict[ColumnType, list[str]] = {
    ColumnType.STRING: ["alex@contoso.com", " Alex Wilber ", "Windows 11", "x,y", "0"],
    ColumnType.DATE: ["2026-11-24", "2026-11-20T00:00:00", " 2026-01-01 "],
    ColumnType.BOOLEAN: ["True", "false", "Yes", "no", " TRUE "],
    ColumnType.INTEGER: ["0", "42", "1,234", "7.0", " 12 "],
    ColumnType.PRODUCTS: [
        "MICROSOFT 365 E3",
        "MICROSOFT 365 E3+ENTERPRISE MOBILITY + SECURITY E5",
        " OFFICE 365 E1 + ",
    ],
}
# Cells `_record` nulls with a warning: the fast path must decline the row.
BAD: dict[ColumnType, list[str]] = {
    ColumnType.DATE: ["24/11/2026", "never"],
    ColumnType.BOOLEAN: ["maybe", "1"],
    ColumnType.INTEGER: ["1.5", "many", "1e400"],
}
BLANK = ["", "   "]


def report_streams(emulator: GraphEmulator) -> dict[str, ReportStream]:
    tap = TapMicrosoft365(config=emulator.config(), parse_env_config=False)
    return {definition.name: tap.streams[definition.name] for definition in REPORTS}  # type: ignore[misc]


def served_headers(definition: ReportDefinition, rng: random.Random) -> list[list[str]]:
    """The documented header, a shuffled one, one without a non-key column and with an
    unknown one, and one with a duplicated column."""
    documented = list(definition.columns)
    shuffled = documented[:]
    rng.shuffle(shuffled)
    keys = set(definition.key)
    dropped = [column for column in documented if column not in keys][-1]
    changed = [column for column in documented if column != dropped] + ["Brand New Column"]
    duplicated = [*documented, documented[-1]]
    return [documented, shuffled, changed, duplicated]


def random_row(
    plan_types: list[ColumnType | None], rng: random.Random, *, clean: bool
) -> list[str]:
    row = []
    for column_type in plan_types:
        kind = column_type or ColumnType.STRING
        roll = rng.random()
        if roll < 0.15:
            row.append(rng.choice(BLANK))
        elif not clean and roll < 0.25 and kind in BAD:
            row.append(rng.choice(BAD[kind]))
        else:
            row.append(rng.choice(GOOD[kind]))
    if not clean and rng.random() < 0.05:
        row = row[: rng.randrange(len(row))]  # a short row
    return row


@pytest.mark.parametrize("definition", REPORTS, ids=lambda definition: definition.name)
def test_fast_rows_equal_the_cell_by_cell_records(
    emulator: GraphEmulator, definition: ReportDefinition
) -> None:
    stream = report_streams(emulator)[definition.name]
    types = definition.column_types
    rng = random.Random(definition.name)
    for header in served_headers(definition, rng):
        plan = ColumnPlan(definition, header)
        column_types = [types.get(snake_case(column)) for column in header]
        declined = 0
        for n in range(600):
            row = random_row(column_types, rng, clean=n % 2 == 0)
            fast = plan.fast_record(list(row), DAY)
            careful = stream._record(plan, list(row), DAY)
            if fast is None:
                declined += 1
                continue
            assert fast == careful
            assert list(fast) == list(careful)  # the same columns in the same order
            assert {name: type(value) for name, value in fast.items()} == {
                name: type(value) for name, value in careful.items()
            }
        assert declined < 600, "the fast path declined every row"


@pytest.mark.parametrize("definition", REPORTS, ids=lambda definition: definition.name)
def test_fast_path_declines_exactly_the_rows_that_need_a_warning(
    emulator: GraphEmulator, definition: ReportDefinition
) -> None:
    stream = report_streams(emulator)[definition.name]
    plan = ColumnPlan(definition, list(definition.columns))
    types = definition.column_types
    good = [GOOD[types[snake_case(column)]][0] for column in definition.columns]
    record = plan.fast_record(good, DAY)
    assert record is not None
    assert record == stream._record(plan, good, DAY)
    assert set(record) == set(definition.schema["properties"])

    assert plan.fast_record(good[:-1], DAY) is None  # short: padded by `_record`, with a warning
    assert plan.fast_record([*good, "x"], DAY) is None  # long: `_record` keeps the surplus cell
    for index, column in enumerate(definition.columns):
        kind = types[snake_case(column)]
        if kind in BAD:
            row = good[:]
            row[index] = BAD[kind][0]
            assert plan.fast_record(row, DAY) is None, column
            slow = stream._record(plan, row, DAY)
            assert slow is not None
            assert slow[snake_case(column)] is None
    for column in definition.key:
        row = good[:]
        row[definition.columns.index(column)] = " "
        assert plan.fast_record(row, DAY) is None, column
        assert stream._record(plan, row, DAY) is None  # keyless: skipped


def test_fast_records_are_typed(emulator: GraphEmulator) -> None:
    definition = next(d for d in REPORTS if d.name == "office365_active_user_detail")
    plan = ColumnPlan(definition, list(definition.columns))
    row = {
        "Report Refresh Date": "2026-11-24",
        "User Principal Name": " adele@contoso.com ",
        "Display Name": "",
        "Is Deleted": "False",
        "Deleted Date": "",
        "Has Exchange License": "True",
        "Exchange Last Activity Date": "2026-11-23",
        "Assigned Products": "MICROSOFT 365 E3+ENTERPRISE MOBILITY + SECURITY E5",
    }
    cells: list[Any] = [row.get(column, "") for column in definition.columns]
    record = plan.fast_record(cells, DAY)
    assert record is not None
    assert record["report_date"] == DAY
    assert record["user_principal_name"] == "adele@contoso.com"
    assert record["display_name"] is None
    assert record["is_deleted"] is False
    assert record["has_exchange_license"] is True
    assert record["exchange_last_activity_date"] == "2026-11-23"
    assert record["assigned_products"] == ["MICROSOFT 365 E3", "ENTERPRISE MOBILITY + SECURITY E5"]
