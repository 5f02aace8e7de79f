"""Usage report streams against the emulator, over real HTTPS, running the real tap.

One module emulator serves a 28-day backfill of every report (shared by the schema, exactly-once,
token and call-shape tests) and then the next emulated days; tests that inject faults or change
the tenant's settings build emulators of their own. The emulator runs time-scaled: Graph's 10-minute
report window lasts `WINDOW` seconds, and the tap is told so with `report_window_seconds`.
"""

from __future__ import annotations

import copy
import csv
import datetime
import io
import itertools
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tap_microsoft365.tap import TapMicrosoft365
from tests.graph_emulator import GraphEmulator, Tenant
from tests.graph_emulator.http import EmulatorRequest
from tests.graph_emulator.reports import REPORTS as DOCUMENTED
from tests.singer_run import SyncResult, run_tap

if TYPE_CHECKING:
    from collections.abc import Iterator

# The emulator's Date header is the real clock: its tenant lives on the same day.
TODAY = datetime.datetime.now(datetime.UTC).date()
SCALE = 0.005
WINDOW = 600 * SCALE  # Graph's 10-minute report window, scaled
HEX32 = re.compile(r"^[0-9A-F]{32}$")
PRODUCT_SEPARATOR = re.compile(r"(?<=\S)\+(?=\S)")

# What identifies a row within a report day (issue 4): the UPN, site id/URL or group id.
EXPECTED_KEYS = {
    "getOffice365ActivationsUserDetail": ("user_principal_name", "product_type"),
    "getOneDriveUsageAccountDetail": ("site_url",),
    "getSharePointSiteUsageDetail": ("site_id",),
    "getYammerGroupsActivityDetail": ("group_display_name",),
    "getOffice365GroupsActivityDetail": ("group_id",),
    "getTeamsTeamActivityDetail": ("team_id",),
}


def stream_of(function: str) -> str:
    """The stream name the issue asks for: the function without `get`, snake_cased."""
    name = function.removeprefix("get").replace("OneDrive", "Onedrive")
    name = name.replace("SharePoint", "Sharepoint")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def snake(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")


DAILY = sorted(f for f, d in DOCUMENTED.items() if d.parameters == ("period", "date"))
SNAPSHOTS = sorted(f for f in DOCUMENTED if f not in DAILY)
ALL_STREAMS = {stream_of(function) for function in DOCUMENTED}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


_discovered: list[dict[str, Any]] = []


def catalog_for(streams: set[str]) -> dict[str, Any]:
    """The tap's catalog (discovered once, in-process) with only `streams` selected."""
    if not _discovered:
        settings = {"tenant_id": "contoso.onmicrosoft.com", "client_id": str(uuid.uuid4())}
        tap = TapMicrosoft365(config=settings, parse_env_config=False, validate_config=False)
        _discovered.append(tap.catalog_dict)
    catalog = copy.deepcopy(_discovered[0])
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def config(emu: GraphEmulator, **settings: Any) -> dict[str, Any]:
    return emu.config(report_window_seconds=WINDOW, **settings)


def sync(
    emu: GraphEmulator, streams: set[str], state: dict | None = None, **settings: Any
) -> SyncResult:
    return run_tap(
        config(emu, **settings), ca_bundle=emu.ca_bundle, catalog=catalog_for(streams), state=state
    )


def bookmarks(state: dict[str, Any] | None) -> dict[str, str]:
    found = (state or {}).get("bookmarks", {})
    return {
        name: entry["replication_key_value"]
        for name, entry in found.items()
        if name in ALL_STREAMS and "replication_key_value" in entry
    }


@pytest.fixture(scope="module")
def emu() -> Iterator[GraphEmulator]:
    # Copilot seats: the Copilot report has rows only for their holders.
    tenant = Tenant.synthetic(users=24, groups=8, seed=23, today=TODAY, copilot_seats=4)
    with GraphEmulator(tenant, time_scale=SCALE) as emulator:
        yield emulator


def new_emulator(users: int = 8, groups: int = 3) -> GraphEmulator:
    tenant = Tenant.synthetic(users=users, groups=groups, seed=5, today=TODAY)
    return GraphEmulator(tenant, time_scale=SCALE)


def served(emu: GraphEmulator, function: str, params: str) -> tuple[list[str], list[list[str]]]:
    """The CSV the emulator serves for a call, fetched in-process (no HTTP, budget lifted)."""
    service = emu.reports
    call = f"{function}({params})" if params else function
    roles = frozenset({"Reports.Read.All"})
    request = EmulatorRequest("GET", f"/v1.0/reports/{call}", {}, {}, roles=roles)
    limits = service.calls_per_window, service.tenant_calls_per_window
    service.calls_per_window = service.tenant_calls_per_window = 10**9
    try:
        answer = service.handle_call(call, request, DOCUMENTED[function].base)
        if answer.status == 200:  # the Copilot report serves its CSV directly
            download = answer
        else:
            assert answer.status == 302, answer.body
            path = urlsplit(answer.headers["Location"]).path
            download = service.handle_download(path, EmulatorRequest("GET", path, {}, {}))
    finally:
        service.calls_per_window, service.tenant_calls_per_window = limits
    body = download.body if isinstance(download.body, bytes) else b"".join(download.body)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    return rows[0], rows[1:]


def answered(calls: list[Any]) -> list[Any]:
    """The calls Graph answered with a file. (The test's own in-process fetches count against
    the emulator's tenant-wide limit too, so a run right after them may meet a 429, which the
    tap waits out; that is not what these tests count.)"""
    return [call for call in calls if call.status != 429]


def typed(prop: dict[str, Any], cell: str) -> Any:
    """A CSV cell as the schema says it should arrive (an independent reading of the issue)."""
    if cell == "":
        return None
    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if "array" in kinds:
        return [name.strip() for name in PRODUCT_SEPARATOR.split(cell)]
    if "boolean" in kinds:
        return {"True": True, "Yes": True, "False": False, "No": False}[cell]
    if "integer" in kinds:
        return int(cell)
    return cell


@dataclass
class Backfill:
    """The first sync of every report stream, and what the emulator served meanwhile."""

    result: SyncResult
    calls: list[Any]
    downloads: list[Any]
    log: list[Any]
    refresh: datetime.date
    schemas: dict[str, dict[str, Any]]
    keys: dict[str, list[str]]


@pytest.fixture(scope="module")
def backfill(emu: GraphEmulator) -> Backfill:
    emu.clear_log()
    result = sync(emu, ALL_STREAMS)
    assert result.exit_code == 0, result.stderr[-3000:]
    service = emu.reports
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    keys = {m["stream"]: m["key_properties"] for m in result.messages if m["type"] == "SCHEMA"}
    return Backfill(
        result,
        list(service.calls),
        list(service.downloads),
        list(emu.request_log),
        service.refresh_date,
        schemas,
        keys,
    )


def assert_day_matches(
    emu: GraphEmulator, backfill: Backfill, function: str, params: str, records: list
) -> None:
    """The records of one report day are exactly the rows the emulator serves, typed."""
    stream = stream_of(function)
    header, rows = served(emu, function, params)
    schema = backfill.schemas[stream]["properties"]
    keys = [key for key in backfill.keys[stream] if key not in ("report_date", "tenant_id")]
    expected = {}
    for row in rows:
        values = {
            snake(column): typed(schema[snake(column)], cell)
            for column, cell in zip(header, row, strict=True)
        }
        values["tenant_id"] = emu.tenant_id  # every row carries its tenant's GUID
        expected[tuple(values[key] for key in keys)] = values
    got = Counter(tuple(record[key] for key in keys) for record in records)
    assert all(count == 1 for count in got.values()), f"{stream} {params}: a row twice"
    assert set(got) == set(expected), f"{stream} {params}: rows differ"
    for record in records:
        want = expected[tuple(record[key] for key in keys)]
        # Files with only documented columns: extra_columns is null.
        assert {k: v for k, v in record.items() if k != "report_date"} == {
            **want,
            "extra_columns": None,
        }, stream


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------


def test_every_documented_report_is_a_stream_with_its_columns(backfill: Backfill) -> None:
    assert set(backfill.schemas) == ALL_STREAMS
    for function, definition in DOCUMENTED.items():
        stream = stream_of(function)
        properties = backfill.schemas[stream]["properties"]
        assert next(iter(properties)) == "tenant_id"
        # Every documented column, and extra_columns for the ones Microsoft adds later.
        assert set(properties) == {"tenant_id", "report_date", "extra_columns"} | {
            snake(c) for c in definition.columns
        }
        assert (properties["report_date"]["type"], properties["report_date"]["format"]) == (
            ["string"],  # never null: it leads the primary key
            "date",
        )
        key = EXPECTED_KEYS.get(function, ("user_principal_name",))
        assert backfill.keys[stream] == ["tenant_id", "report_date", *key]
    names = backfill.schemas
    assert {"office365_active_user_detail", "m365_app_user_detail"} <= set(names)
    assert {"onedrive_usage_account_detail", "teams_user_activity_user_detail"} <= set(names)


def test_column_types_follow_the_documentation_and_the_data(
    emu: GraphEmulator, backfill: Backfill
) -> None:
    def kind(stream: str, column: str) -> tuple[str, str | None]:
        prop = backfill.schemas[stream]["properties"][column]
        types = [t for t in prop["type"] if t != "null"]
        return types[0], prop.get("format")

    teams = "teams_user_activity_user_detail"
    assert kind("mailbox_usage_detail", "storage_used_byte") == ("integer", None)
    assert kind("mailbox_usage_detail", "has_archive") == ("boolean", None)
    assert kind("email_activity_user_detail", "is_deleted") == ("boolean", None)
    assert kind("email_activity_user_detail", "last_activity_date") == ("string", "date")
    assert kind("email_activity_user_detail", "report_refresh_date") == ("string", "date")
    assert kind("email_activity_user_detail", "send_count") == ("integer", None)
    assert kind("email_activity_user_detail", "assigned_products") == ("array", None)
    assert kind(teams, "audio_duration_in_seconds") == ("integer", None)
    assert kind(teams, "has_other_action") == ("boolean", None)  # Yes/No
    assert kind(teams, "post_messages") == ("integer", None)
    assert kind("teams_device_usage_user_detail", "used_chrome_os") == ("boolean", None)
    assert kind("m365_app_user_detail", "outlook_windows") == ("boolean", None)
    assert kind("office365_activations_user_detail", "windows") == ("integer", None)
    assert kind("yammer_groups_activity_detail", "office_365_connected") == ("boolean", None)
    assert kind("onedrive_usage_account_detail", "site_url") == ("string", None)
    # Every column's type agrees with every value the emulator serves in it.
    shapes = {
        "integer": re.compile(r"^-?\d+$"),
        "boolean": re.compile(r"^(True|False|Yes|No)$"),
        "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    }
    for function in DOCUMENTED:
        stream = stream_of(function)
        params = "" if function == "getOffice365ActivationsUserDetail" else "period='D7'"
        header, rows = served(emu, function, params)
        for index, column in enumerate(header):
            cells = [row[index] for row in rows if row[index]]
            json_type, fmt = kind(stream, snake(column))
            shape = shapes.get(fmt or json_type)
            if shape is not None:
                assert all(shape.match(cell) for cell in cells), (stream, column, cells[:3])
            elif json_type == "string" and cells:
                assert not all(shapes["integer"].match(c) for c in cells), (stream, column)
                assert not all(shapes["boolean"].match(c) for c in cells), (stream, column)


# --------------------------------------------------------------------------------------------
# The backfill
# --------------------------------------------------------------------------------------------


def test_backfill_delivers_every_row_of_every_day_once(
    emu: GraphEmulator, backfill: Backfill
) -> None:
    refresh = backfill.refresh
    for function in DAILY:
        stream = stream_of(function)
        records = backfill.result.records(stream)
        by_day = defaultdict(list)
        for record in records:
            by_day[record["report_date"]].append(record)
        days = sorted(by_day)
        if not days:  # nobody holds the product: the report has no rows at all
            assert not served(emu, function, "period='D7'")[1], stream
            continue
        first = datetime.date.fromisoformat(days[0])
        # A contiguous window ending at the last processed day, within the 28 days Graph keeps.
        assert days[-1] == refresh.isoformat(), stream
        assert refresh - datetime.timedelta(days=28) <= first <= refresh - datetime.timedelta(20)
        assert len(days) == (refresh - first).days + 1, f"{stream}: a day is missing"
        for day in days:
            assert_day_matches(emu, backfill, function, f"date={day}", by_day[day])
    for function in SNAPSHOTS:
        stream = stream_of(function)
        records = backfill.result.records(stream)
        assert {r["report_date"] for r in records} == {refresh.isoformat()}, stream
        params = "period='D7'" if DOCUMENTED[function].parameters else ""
        assert_day_matches(emu, backfill, function, params, records)
    delivered = {name for name in ALL_STREAMS if backfill.result.records(name)}
    assert len(delivered) >= len(ALL_STREAMS) - 2  # a product nobody holds has no rows
    assert bookmarks(backfill.result.last_state) == dict.fromkeys(delivered, refresh.isoformat())


def test_calls_are_one_per_day_unquoted_never_too_old_and_never_throttled(
    backfill: Backfill,
) -> None:
    refresh = backfill.refresh
    by_function = defaultdict(list)
    for call in backfill.calls:
        by_function[call.function].append(call)
    assert set(by_function) == set(DOCUMENTED)
    # The Copilot report answers 200 with its file (its v1.0 page); the others 302.
    assert all(
        call.status == (200 if DOCUMENTED[call.function].base == "copilot/reports" else 302)
        for call in backfill.calls
    ), "a 4xx: the tap sent a bad call"
    for function in DAILY:
        params = [call.params for call in by_function[function]]
        assert params[0] == "period='D7'"  # learns the last processed day from the data
        if not backfill.result.records(stream_of(function)):
            assert params == ["period='D7'"], "an empty report costs one call"
            continue
        days = [datetime.date.fromisoformat(p.removeprefix("date=")) for p in params[1:]]
        assert all(re.fullmatch(r"date=\d{4}-\d{2}-\d{2}", p) for p in params[1:])
        assert days == sorted(set(days)), "each day once, oldest first"
        assert days[-1] == refresh
        assert days[0] >= refresh - datetime.timedelta(days=28)
    assert [c.params for c in by_function["getMailboxUsageDetail"]] == ["period='D7'"]
    assert [c.params for c in by_function["getOffice365ActivationsUserDetail"]] == [""]


def test_no_bearer_token_reaches_the_download_host(backfill: Backfill) -> None:
    downloads = [r for r in backfill.log if r.role == "download"]
    redirected = [call for call in backfill.calls if call.status == 302]
    assert len(downloads) == len(redirected) > 300
    assert all("authorization" not in r.headers for r in downloads)
    assert not [d for d in backfill.downloads if d.authorization is not None]
    # Nor is any pre-authenticated URL printed.
    output = backfill.result.stderr
    for record in downloads:
        assert record.path.rsplit("/", 1)[-1] not in output


def test_next_days_fetch_only_the_new_day(emu: GraphEmulator, backfill: Backfill) -> None:
    service = emu.reports
    refresh = backfill.refresh
    state = backfill.result.last_state
    # Same day: Graph has processed nothing new, so nothing is delivered and nothing moves.
    before = len(service.calls)
    again = sync(emu, ALL_STREAMS, state=state)
    assert again.exit_code == 0, again.stderr[-3000:]
    assert not [m for m in again.messages if m["type"] == "RECORD"]
    assert bookmarks(again.last_state) == bookmarks(state)
    calls = answered(service.calls[before:])
    assert sorted(c.function for c in calls) == sorted(DOCUMENTED)  # one call per report
    assert all(c.params in {"period='D7'", ""} for c in calls)
    # The next day: each report fetches that one day.
    emu.tenant.today += datetime.timedelta(days=1)
    try:
        new_day = refresh + datetime.timedelta(days=1)
        before = len(service.calls)
        nxt = sync(emu, ALL_STREAMS, state=again.last_state)
        assert nxt.exit_code == 0, nxt.stderr[-3000:]
        calls = answered(service.calls[before:])
        for function in DAILY:
            params = [c.params for c in calls if c.function == function]
            if not backfill.result.records(stream_of(function)):
                assert params == ["period='D7'"]  # still nothing to fetch
                continue
            assert params == ["period='D7'", f"date={new_day.isoformat()}"], function
            records = nxt.records(stream_of(function))
            assert {r["report_date"] for r in records} == {new_day.isoformat()}
            assert_day_matches(emu, backfill, function, params[1], records)
        for function in SNAPSHOTS:
            records = nxt.records(stream_of(function))
            assert records, function
            assert {r["report_date"] for r in records} == {new_day.isoformat()}
        delivered = {name for name in ALL_STREAMS if backfill.result.records(name)}
        assert bookmarks(nxt.last_state) == dict.fromkeys(delivered, new_day.isoformat())
    finally:
        emu.tenant.today -= datetime.timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Faults, throttling and pacing
# --------------------------------------------------------------------------------------------


def test_bookmark_stops_before_a_day_that_failed_and_the_next_run_fetches_it() -> None:
    stream = "email_activity_user_detail"
    with new_emulator() as emu:
        refresh = emu.reports.refresh_date
        start, bad = refresh - datetime.timedelta(days=6), refresh - datetime.timedelta(days=3)
        path = rf"getEmailActivityUserDetail\(date={bad.isoformat()}\)"
        outage = emu.faults.error(503, path=path, times=None)
        failed = sync(emu, {stream}, start_date=start.isoformat(), retry_max_attempts=2)
        assert failed.exit_code == 5
        assert "503" in failed.stderr
        assert "still failing" in failed.stderr
        days = sorted({r["report_date"] for r in failed.records(stream)})
        expected = [(start + datetime.timedelta(days=n)).isoformat() for n in range(3)]
        assert days == expected  # every day before the failing one, complete
        assert bookmarks(failed.last_state)[stream] == expected[-1]

        emu.faults.remove(outage)
        throttle = emu.faults.throttle(
            path=r"getEmailActivityUserDetail\(date=", times=2, retry_after=1
        )
        cut = emu.faults.reset_body(role="download", skip=2, times=1)  # a download breaks off
        resumed = sync(emu, {stream}, state=failed.last_state, start_date=start.isoformat())
        assert resumed.exit_code == 0, resumed.stderr[-3000:]
        records = resumed.records(stream)
        days = sorted({r["report_date"] for r in records})
        assert days == [(bad + datetime.timedelta(days=n)).isoformat() for n in range(4)]
        assert cut.fired == 1
        # The metric counts the lines written, not the rows read from the broken download.
        assert resumed.counted(stream) == len(records)
        keys = Counter((r["report_date"], r["user_principal_name"]) for r in records)
        assert set(keys.values()) == {1}
        for day in days:  # the broken file was fetched again, not half-emitted
            rows = served(emu, "getEmailActivityUserDetail", f"date={day}")[1]
            assert sum(1 for r in records if r["report_date"] == day) == len(rows)
        assert "getEmailActivityUserDetail's file" in resumed.stderr  # said, then retried
        assert bookmarks(resumed.last_state)[stream] == refresh.isoformat()
        # Throttling never failed the run, and Retry-After was honoured.
        assert throttle.fired == 2
        calls = [r for r in emu.request_log if r.role == "graph" and "Detail(date=" in r.path]
        for throttled, following in itertools.pairwise(calls):
            if throttled.status == 429:
                assert following.time - throttled.time >= 1.0
        assert "throttled" in resumed.stderr


def test_reports_draw_on_their_own_budgets_concurrently() -> None:
    # Six daily reports of about 26 calls each: each needs a second window. One after the other
    # they would take six windows or more; on their own budgets, about one.
    scale = 0.01
    window = 600 * scale
    functions = [
        "getEmailActivityUserDetail",
        "getEmailAppUsageUserDetail",
        "getOffice365ActiveUserDetail",
        "getOneDriveActivityUserDetail",
        "getSharePointActivityUserDetail",
        "getTeamsUserActivityUserDetail",
    ]
    tenant = Tenant.synthetic(users=6, groups=2, seed=3, today=TODAY)
    with GraphEmulator(tenant, time_scale=scale) as emu:
        result = run_tap(
            emu.config(report_window_seconds=window),
            ca_bundle=emu.ca_bundle,
            catalog=catalog_for({stream_of(f) for f in functions}),
        )
        assert result.exit_code == 0, result.stderr[-3000:]
        calls = emu.reports.calls
    assert all(call.status == 302 for call in calls), "paced calls are never throttled"
    times = defaultdict(list)
    for call in calls:
        times[call.function].append(call.time)
    for function in functions:
        mine = times[function]
        assert len(mine) > 14, function
        # Never more than 14 calls of one function in any window.
        assert all(later - first >= window for first, later in zip(mine, mine[14:], strict=False))
    span = max(call.time for call in calls) - min(call.time for call in calls)
    assert window <= span < 2.5 * window
    assert "waiting for Graph's limit of 14 calls per 6 seconds per report" in result.stderr


# --------------------------------------------------------------------------------------------
# Concealed names, permissions, clouds, changing columns
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> Iterator[GraphEmulator]:
    with new_emulator(users=10, groups=8) as emulator:
        yield emulator


def recent(emu: GraphEmulator) -> str:
    """A start_date that limits daily reports to their two latest days."""
    return (emu.reports.refresh_date - datetime.timedelta(days=1)).isoformat()


def test_concealed_names_warn_once_or_stop_the_run(small: GraphEmulator) -> None:
    # The same run also sees Graph add, rename and drop columns of one report.
    function, stream = "getEmailActivityUserDetail", "email_activity_user_detail"
    streams = {stream, "onedrive_usage_account_detail"}
    service = small.reports
    service.concealed_names = True
    service.extra_columns[function] = ["Copilot Chat Count"]
    service.renamed_columns[function] = {"Read Count": "Read Email Count"}
    service.dropped_columns[function] = {"Meeting Created Count"}
    try:
        warned = sync(small, streams, start_date=recent(small))
        assert warned.exit_code == 0, warned.stderr[-3000:]
        stopped = sync(small, streams, start_date=recent(small), concealed_names="error")
    finally:
        service.concealed_names = False
        service.extra_columns.clear()
        service.renamed_columns.clear()
        service.dropped_columns.clear()
    records = warned.records(stream)
    assert len({r["report_date"] for r in records}) == 2
    assert all(HEX32.match(r["user_principal_name"]) for r in records)
    assert all(HEX32.match(r["site_url"]) for r in warned.records("onedrive_usage_account_detail"))
    lines = [line for line in warned.stderr.splitlines() if "conceal" in line]
    assert len(lines) == 1, lines  # one warning per run, for every report
    for line in lines[0], stopped.stderr.strip().splitlines()[-1]:
        assert "Org settings" in line
        assert '"Display concealed user, group, and site names in all reports"' in line
        assert "users stream" in line  # joins will not match
    assert " WARNING " in lines[0]
    assert stopped.exit_code == 6
    assert not stopped.records(stream)  # not one hashed row emitted

    # Columns Graph added, renamed or dropped: the sync goes on, each change said once.
    assert all(r["read_count"] is None and r["meeting_created_count"] is None for r in records)
    assert all(isinstance(r["send_count"], int) for r in records)
    # Columns the tap does not know reach the target in extra_columns (issue 12, item 10).
    assert all(
        set(r["extra_columns"]) == {"copilot_chat_count", "read_email_count"} for r in records
    )
    assert all(r["extra_columns"]["read_email_count"] is not None for r in records)
    added = [line for line in warned.stderr.splitlines() if "does not know" in line]
    gone = [line for line in warned.stderr.splitlines() if "has no column" in line]
    assert len(added) == 1  # once per run, though every day's file has them
    assert len(gone) == 1
    assert "Copilot Chat Count" in added[0]
    assert "Read Email Count" in added[0]
    assert "Read Count" in gone[0]
    assert "Meeting Created Count" in gone[0]


def test_missing_reports_permission_is_one_line_naming_the_stream(small: GraphEmulator) -> None:
    small.app.roles.discard("Reports.Read.All")
    try:
        result = sync(small, {"email_activity_user_detail", "organization"})
    finally:
        small.app.roles.add("Reports.Read.All")
    assert result.exit_code == 4
    last = result.stderr.strip().splitlines()[-1]
    assert "email_activity_user_detail" in last
    assert "403" in last
    assert "Reports.Read.All" in last
    assert "Grant admin consent" in last


def test_clouds_without_reports_skip_them_with_one_warning(small: GraphEmulator) -> None:
    before = len(small.reports.calls)
    result = sync(small, {"email_activity_user_detail", "organization"}, cloud="usgov")
    assert result.exit_code == 0, result.stderr[-3000:]
    assert result.records("organization")
    assert not result.records("email_activity_user_detail")
    assert len(small.reports.calls) == before
    lines = [line for line in result.stderr.splitlines() if "no usage reports" in line]
    assert len(lines) == 1
    assert "usgov" in lines[0]


def test_days_graph_refuses_as_too_old_are_skipped_with_a_warning_each() -> None:
    # Graph keeps 28 days and answers 400 InvalidArgument "Invalid date value specified: ...
    # Only support data for the past 28 days." for an older date
    # (https://learn.microsoft.com/graph/api/reportroot-getemailactivityuserdetail). Whether the
    # 28 days count from today or from the refresh date is not documented: the tap asks for every
    # day back to 28 before the refresh date; a Graph counting from a later day refuses the
    # oldest ones.
    stream = "email_activity_user_detail"
    with new_emulator() as emu:
        emu.reports.max_date_age_days = 26
        refresh = emu.reports.refresh_date
        result = sync(emu, {stream})
        assert result.exit_code == 0, result.stderr[-3000:]
        refused = [refresh - datetime.timedelta(days=n) for n in (28, 27)]
        for day in refused:
            warnings = [
                line
                for line in result.stderr.splitlines()
                if day.isoformat() in line and "WARNING" in line
            ]
            assert len(warnings) == 1, warnings
            assert "no longer keeps" in warnings[0]
        days = sorted({r["report_date"] for r in result.records(stream)})
        assert days[0] == (refresh - datetime.timedelta(days=26)).isoformat()
        assert days[-1] == refresh.isoformat()
        assert len(days) == 27  # every day Graph still serves
        assert bookmarks(result.last_state)[stream] == refresh.isoformat()


def test_a_report_days_records_carry_the_time_its_file_was_downloaded() -> None:
    stream = "email_activity_user_detail"
    with new_emulator() as emu:
        refresh = emu.reports.refresh_date
        start = refresh - datetime.timedelta(days=1)
        before = datetime.datetime.now(datetime.UTC)
        result = sync(emu, {stream}, start_date=start.isoformat())
        after = datetime.datetime.now(datetime.UTC)
        assert result.exit_code == 0, result.stderr[-3000:]
        by_day: dict[str, set[str]] = defaultdict(set)
        for message in result.record_messages(stream):
            by_day[message["record"]["report_date"]].add(message["time_extracted"])
        assert sorted(by_day) == [start.isoformat(), refresh.isoformat()]
        extracted = []
        for day in sorted(by_day):
            assert len(by_day[day]) == 1  # one file, one extraction time: its download's
            extracted.append(datetime.datetime.fromisoformat(by_day[day].pop()))
        # Downloaded during the run, oldest day first; a file's mtime has whole microseconds.
        assert before - datetime.timedelta(seconds=1) <= extracted[0] <= extracted[1] <= after
