"""Report files that only look right, bookmarks that cannot be right, and columns the tap does
not know (issue 12, items 1, 5, 7 and 10): the real tap against the emulator over HTTPS.

A day is bookmarked only after a well-formed file for that day was read to its end. Anything
else fails the day: one line naming the report, the day and what is wrong, the day fetched
again next run, no later day bookmarked past it, and a non-zero exit code from README's table.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import pytest

from tests.graph_emulator.faults import (
    FileFault,
    blank_line_after_header,
    bom_only,
    empty_file,
    html_page,
    latin1,
    refresh_dates,
)
from tests.test_reports import bookmarks, new_emulator, served, sync

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.graph_emulator import GraphEmulator
    from tests.singer_run import SyncResult

EMAIL, EMAIL_STREAM = "getEmailActivityUserDetail", "email_activity_user_detail"


@pytest.fixture(scope="module")
def emu() -> Iterator[GraphEmulator]:
    with new_emulator(users=8, groups=12) as emulator:
        yield emulator


def days_of(emu: GraphEmulator) -> list[datetime.date]:
    """Four report days ending at Graph's refresh date."""
    refresh = emu.reports.refresh_date
    return [refresh - datetime.timedelta(days=n) for n in (3, 2, 1, 0)]


def last_line(result: SyncResult) -> str:
    return result.stderr.strip().splitlines()[-1]


def delivered_days(result: SyncResult, stream: str) -> list[str]:
    return sorted({r["report_date"] for r in result.records(stream)})


# --------------------------------------------------------------------------------------------
# Item 1: a file that only looks empty is not a day without rows
# --------------------------------------------------------------------------------------------

# (rewrite of the second day's file, what the one line must say of it)
LOOKALIKES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "0-byte body": (empty_file, "is empty (0 bytes)"),
    "only the BOM": (bom_only, "holds only a byte order mark"),
    "blank line after the header": (blank_line_after_header, "blank line after its header"),
    "one-line HTML page": (html_page, "(an HTML page)"),
    "another report's header": (
        lambda _: b"Report Refresh Date,User Principal Name,Display Name,Windows,Mac\r\n",
        "has only 3 of the report's 13 documented columns",
    ),
    "empty Report Refresh Date": (refresh_dates(""), "without a Report Refresh Date"),
    "unparsable Report Refresh Date": (refresh_dates("n/a"), "'n/a' is not a YYYY-MM-DD date"),
    "impossible Report Refresh Date": (
        refresh_dates("2026-02-30"),
        "'2026-02-30' is not a YYYY-MM-DD date",
    ),
}


@pytest.mark.parametrize("case", list(LOOKALIKES))
def test_a_day_whose_file_only_looks_empty_fails_and_is_fetched_again(
    emu: GraphEmulator, case: str
) -> None:
    rewrite, said = LOOKALIKES[case]
    first, bad, *_ = days = days_of(emu)
    fault = FileFault(rf"^{EMAIL}\(date={bad.isoformat()}\)$", rewrite, times=1)
    emu.reports.file_faults.append(fault)
    try:
        failed = sync(emu, {EMAIL_STREAM}, start_date=first.isoformat())
    finally:
        emu.reports.file_faults.remove(fault)
    assert fault.fired == 1
    assert failed.exit_code == 5, failed.stderr[-2000:]  # README: a malformed report file
    assert "Traceback" not in failed.stderr
    line = last_line(failed)
    assert " ERROR " in line
    assert EMAIL_STREAM in line
    assert EMAIL in line
    assert bad.isoformat() in line
    assert said in line
    assert "not bookmarked" in line
    assert "fetched again next run" in line
    assert "running again" in line
    # The day before is complete and bookmarked; the bad day and later ones are not.
    assert delivered_days(failed, EMAIL_STREAM) == [first.isoformat()]
    assert bookmarks(failed.last_state)[EMAIL_STREAM] == first.isoformat()

    resumed = sync(emu, {EMAIL_STREAM}, state=failed.last_state, start_date=first.isoformat())
    assert resumed.exit_code == 0, resumed.stderr[-2000:]
    assert delivered_days(resumed, EMAIL_STREAM) == [day.isoformat() for day in days[1:]]
    rows = served(emu, EMAIL, f"date={bad.isoformat()}")[1]
    assert rows
    assert sum(r["report_date"] == bad.isoformat() for r in resumed.records(EMAIL_STREAM)) == len(
        rows
    )
    assert bookmarks(resumed.last_state)[EMAIL_STREAM] == days[-1].isoformat()


def test_refresh_dates_in_another_format_stop_the_report_loudly(emu: GraphEmulator) -> None:
    # Every file of the report says 12/02/2026 instead of 2026-12-02: before, the first call
    # concluded "no rows, nothing to fetch" and a whole report was skipped in silence.
    def us_format(old: str) -> str:
        day = datetime.date.fromisoformat(old)
        return f"{day.month:02d}/{day.day:02d}/{day.year}"

    fault = FileFault(rf"^{EMAIL}\(", refresh_dates(us_format))
    emu.reports.file_faults.append(fault)
    try:
        result = sync(emu, {EMAIL_STREAM}, start_date=days_of(emu)[0].isoformat())
    finally:
        emu.reports.file_faults.remove(fault)
    assert result.exit_code == 5, result.stderr[-2000:]
    line = last_line(result)
    refresh = emu.reports.refresh_date
    assert f"'{refresh.month:02d}/{refresh.day:02d}/{refresh.year}'" in line
    assert "is not a YYYY-MM-DD date" in line
    assert "running again will not help" in line
    assert "upgrade" in line
    assert not result.records(EMAIL_STREAM)
    assert EMAIL_STREAM not in bookmarks(result.last_state)


def test_a_header_only_file_is_a_day_without_rows(emu: GraphEmulator) -> None:
    # The real header alone is still a valid day without rows, and is bookmarked.
    first, bad, *_ = days = days_of(emu)

    def header_only(body: bytes) -> bytes:
        return body.split(b"\r\n", 1)[0] + b"\r\n"

    fault = FileFault(rf"^{EMAIL}\(date={bad.isoformat()}\)$", header_only, times=1)
    emu.reports.file_faults.append(fault)
    try:
        result = sync(emu, {EMAIL_STREAM}, start_date=first.isoformat())
    finally:
        emu.reports.file_faults.remove(fault)
    assert result.exit_code == 0, result.stderr[-2000:]
    assert bad.isoformat() not in delivered_days(result, EMAIL_STREAM)
    assert bookmarks(result.last_state)[EMAIL_STREAM] == days[-1].isoformat()


# --------------------------------------------------------------------------------------------
# Item 7: a Latin-1 file names its real line and what happens next
# --------------------------------------------------------------------------------------------


def test_a_latin1_file_names_its_line_and_that_the_day_is_fetched_again(
    emu: GraphEmulator,
) -> None:
    first, bad, *_ = days_of(emu)
    mangled_line = 4  # the third row
    fault = FileFault(rf"^{EMAIL}\(date={bad.isoformat()}\)$", latin1(mangled_line), times=1)
    emu.reports.file_faults.append(fault)
    try:
        result = sync(emu, {EMAIL_STREAM}, start_date=first.isoformat())
    finally:
        emu.reports.file_faults.remove(fault)
    header, rows = served(emu, EMAIL, f"date={bad.isoformat()}")
    assert len(rows) >= mangled_line
    # The first line that is not ASCII (so not UTF-8 once re-encoded as Latin-1): the mangled
    # one, or an earlier one whose names are not ASCII.
    lines = [",".join(header), *(",".join(row) for row in rows)]
    expected = min([n for n, text in enumerate(lines, start=1) if not text.isascii()] + [4])
    assert result.exit_code == 5, result.stderr[-2000:]
    line = last_line(result)
    assert f"for {bad.isoformat()} is not UTF-8 text (line {expected}:" in line
    assert "line 0" not in line
    assert f"{bad.isoformat()} is not bookmarked" in line
    assert "fetched again next run" in line
    assert "running again helps only if" in line
    assert bookmarks(result.last_state)[EMAIL_STREAM] == first.isoformat()


# --------------------------------------------------------------------------------------------
# Item 5: a bookmark in the future does not stall a report
# --------------------------------------------------------------------------------------------


def test_a_bookmark_in_the_future_is_ignored_with_a_warning(emu: GraphEmulator) -> None:
    streams = {EMAIL_STREAM, "mailbox_usage_detail", "office365_activations_user_detail"}
    first = days_of(emu)[0]
    future = {
        "bookmarks": {
            name: {"replication_key": "report_date", "replication_key_value": "2099-01-01"}
            for name in streams
        }
    }
    result = sync(emu, streams, state=future, start_date=first.isoformat())
    assert result.exit_code == 0, result.stderr[-2000:]
    refresh = emu.reports.refresh_date.isoformat()
    assert delivered_days(result, EMAIL_STREAM) == [d.isoformat() for d in days_of(emu)]
    for snapshot in ("mailbox_usage_detail", "office365_activations_user_detail"):
        assert delivered_days(result, snapshot) == [refresh]
    # The bookmarks now say what was delivered, so the next run is incremental again.
    assert bookmarks(result.last_state) == dict.fromkeys(streams, refresh)
    warnings = [line for line in result.stderr.splitlines() if "2099-01-01" in line]
    warnings = [line for line in warnings if "Starting incremental sync" not in line]  # SDK's
    assert len(warnings) == 3, warnings  # one per report
    for line in warnings:
        assert " WARNING " in line
        assert "is ignored" in line
    email = next(line for line in warnings if EMAIL_STREAM in line)
    assert f"fetching again from start_date {first.isoformat()}" in email

    again = sync(emu, streams, state=result.last_state, start_date=first.isoformat())
    assert again.exit_code == 0, again.stderr[-2000:]
    assert not any(again.records(name) for name in streams)
    assert "2099" not in again.stderr


# --------------------------------------------------------------------------------------------
# Item 10: columns Microsoft adds, renames and drops
# --------------------------------------------------------------------------------------------


def test_unknown_columns_reach_the_target_and_known_renames_keep_their_property(
    emu: GraphEmulator,
) -> None:
    service = emu.reports
    groups, groups_stream = "getOffice365GroupsActivityDetail", "office365_groups_activity_detail"
    devices, devices_stream = "getTeamsDeviceUsageUserDetail", "teams_device_usage_user_detail"
    # A column Microsoft adds (with values), and one it serves twice.
    service.extra_columns[EMAIL] = ["Copilot Chat Count", "Send Count"]
    service.extra_column_values[EMAIL] = {
        "Copilot Chat Count": lambda row: str(len(row["User Principal Name"])),
        "Send Count": lambda row: "999999",
    }
    # https://learn.microsoft.com/graph/api/reportroot-getoffice365groupsactivitydetail lists
    # the column as "External Member Count" while its example line says "Guest Count".
    service.renamed_columns[groups] = {"Guest Count": "External Member Count"}
    # https://learn.microsoft.com/graph/api/reportroot-getteamsdeviceusageuserdetail (v1.0)
    # lists 12 columns; newer files add User Id, Used Chrome OS, Used Linux and Is Licensed.
    newer = {"User Id", "Used Chrome OS", "Used Linux", "Is Licensed"}
    service.dropped_columns[devices] = newer
    streams = {EMAIL_STREAM, groups_stream, devices_stream}
    start = days_of(emu)[2].isoformat()  # two days: two files of each report
    try:
        result = sync(emu, streams, start_date=start)
        email_served = {
            day: served(emu, EMAIL, f"date={day}") for day in delivered_days(result, EMAIL_STREAM)
        }
        groups_served = {
            day: served(emu, groups, f"date={day}") for day in delivered_days(result, groups_stream)
        }
    finally:
        service.extra_columns.clear()
        service.extra_column_values.clear()
        service.renamed_columns.clear()
        service.dropped_columns.clear()
    assert result.exit_code == 0, result.stderr[-2000:]

    # The schema the target receives declares extra_columns on every report stream.
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    for stream in streams:
        assert "extra_columns" in schemas[stream]["properties"]

    # The added column's values, row by row; the repeated one is read from its first place.
    records = result.records(EMAIL_STREAM)
    assert len(email_served) == 2
    for day, (header, rows) in email_served.items():
        upn, send = header.index("User Principal Name"), header.index("Send Count")
        expected = {row[upn]: (str(len(row[upn])), int(row[send])) for row in rows}
        mine = [r for r in records if r["report_date"] == day]
        assert len(mine) == len(rows)
        for record in mine:
            chat, sent = expected[record["user_principal_name"]]
            assert record["extra_columns"] == {"copilot_chat_count": chat}
            assert record["send_count"] == sent
    added = [line for line in result.stderr.splitlines() if "does not know" in line]
    repeated = [line for line in result.stderr.splitlines() if "repeats the column" in line]
    assert len(added) == 1, added  # once per run
    assert "Copilot Chat Count" in added[0]
    assert "extra_columns" in added[0]
    assert "Send Count" not in added[0]  # repeated, not unknown
    assert len(repeated) == 1, repeated
    assert "Send Count" in repeated[0]

    # The renamed column fills the documented property, and is no unknown column.
    group_records = result.records(groups_stream)
    assert group_records
    for day, (header, rows) in groups_served.items():
        assert "External Member Count" in header
        gid, guests = header.index("Group Id"), header.index("External Member Count")
        expected_guests = {row[gid]: int(row[guests]) for row in rows}
        for record in (r for r in group_records if r["report_date"] == day):
            assert record["guest_count"] == expected_guests[record["group_id"]]
            assert record["extra_columns"] is None
    assert not any(groups_stream in line for line in added)

    # The documented columns a file lacks stay null, with one warning per run.
    device_records = result.records(devices_stream)
    assert len(delivered_days(result, devices_stream)) == 2
    for record in device_records:
        for column in ("user_id", "used_chrome_os", "used_linux", "is_licensed"):
            assert record[column] is None
        assert isinstance(record["used_web"], bool)
    gone = [
        line
        for line in result.stderr.splitlines()
        if devices_stream in line and "has no column" in line
    ]
    assert len(gone) == 1, gone
    assert all(column in gone[0] for column in newer)


def test_cells_beyond_the_header_are_kept_in_extra_columns(emu: GraphEmulator) -> None:
    day = days_of(emu)[-1]

    def surplus(body: bytes) -> bytes:
        lines = body.split(b"\r\n")
        lines[2] += b",surplus"  # the second row: one cell more than the header
        return b"\r\n".join(lines)

    fault = FileFault(rf"^{EMAIL}\(date={day.isoformat()}\)$", surplus, times=1)
    emu.reports.file_faults.append(fault)
    try:
        result = sync(emu, {EMAIL_STREAM}, start_date=day.isoformat())
    finally:
        emu.reports.file_faults.remove(fault)
    assert result.exit_code == 0, result.stderr[-2000:]
    header, rows = served(emu, EMAIL, f"date={day.isoformat()}")
    records = result.records(EMAIL_STREAM)
    assert len(records) == len(rows)
    upn = rows[1][header.index("User Principal Name")]
    extra = {r["user_principal_name"]: r["extra_columns"] for r in records}
    assert extra.pop(upn) == {f"column_{len(header) + 1}": "surplus"}
    assert set(extra.values()) == {None}
    lines = [line for line in result.stderr.splitlines() if "more cells than its header" in line]
    assert len(lines) == 1
    assert " WARNING " in lines[0]
    assert bookmarks(result.last_state)[EMAIL_STREAM] == day.isoformat()
