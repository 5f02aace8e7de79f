"""Report cells, headers and dates, without a server (issue 12): impossible dates are bad cells,
a served header is sorted once per file into documented, renamed, unknown and repeated columns,
and every report schema declares `extra_columns`."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tap_microsoft365.streams.reports.definitions import REPORTS, ReportDefinition
from tap_microsoft365.streams.reports.fetcher import iso_day
from tap_microsoft365.streams.reports.stream import BadCell, ColumnPlan, _to_date


@pytest.mark.parametrize("cell", ["2026-02-30", "2026-13-01", "0000-00-00", "2026-1-01", "n/a"])
def test_impossible_dates_are_bad_cells(cell: str) -> None:
    with pytest.raises(BadCell):
        _to_date(cell)
    assert iso_day(cell) is None


def test_dates_keep_their_day() -> None:
    assert _to_date("2026-02-28") == "2026-02-28"
    assert _to_date("2026-02-28T00:00:00") == "2026-02-28"
    assert iso_day("2024-02-29") == datetime.date(2024, 2, 29)


def definition(function: str) -> ReportDefinition:
    return next(d for d in REPORTS if d.function == function)


def test_column_plan_sorts_known_renamed_unknown_and_repeated_columns() -> None:
    groups = definition("getOffice365GroupsActivityDetail")
    header = [
        *(c if c != "Guest Count" else "External Member Count" for c in groups.columns),
        "Member Count",
        "Copilot Actions (Web)",
        "",
        " ",  # a second column without a name is no repeat of the first
    ]
    plan = ColumnPlan(groups, header)
    assert plan.repeated == ["Member Count"]
    width = len(groups.columns)
    assert plan.unknown == [
        "Copilot Actions (Web)",
        f"(unnamed column {width + 3})",
        f"(unnamed column {width + 4})",
    ]
    assert plan.extra_cells == [
        (len(groups.columns) + 1, "copilot_actions_web"),
        (len(groups.columns) + 2, f"column_{len(groups.columns) + 3}"),
        (len(groups.columns) + 3, f"column_{len(groups.columns) + 4}"),
    ]
    assert plan.missing == []
    assert "guest_count" in {name for _, name, _ in plan.typed_cells}
    assert "extra_columns" not in plan.absent

    plain = ColumnPlan(groups, list(groups.columns))
    assert plain.absent == {"extra_columns": None}
    assert not plain.unknown
    assert not plain.repeated


def test_every_report_schema_declares_extra_columns() -> None:
    for report in REPORTS:
        prop: dict[str, Any] = report.schema["properties"]["extra_columns"]
        assert prop["type"] == ["object", "null"]
        assert prop["additionalProperties"] == {"type": ["string", "null"]}
