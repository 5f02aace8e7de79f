"""The usage-report part of the Graph emulator, checked against the documented Graph behaviour.

Most tests drive `ReportService` directly (call -> 302 -> download); one goes over real HTTPS
through `GraphEmulator`. References: https://learn.microsoft.com/graph/api/resources/report
and https://learn.microsoft.com/graph/throttling-limits#reports-service-limits.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.graph_emulator import GraphEmulator, Tenant
from tests.graph_emulator.faults import (
    FileFault,
    blank_line_after_header,
    bom_only,
    empty_file,
    html_page,
    latin1,
    refresh_dates,
)
from tests.graph_emulator.http import EmulatorRequest
from tests.graph_emulator.reports import (
    BOM,
    BULK_PROFILES,
    HEADERS,
    REPORTS,
    ReportService,
    _bulk_rows,
)

if TYPE_CHECKING:
    from tests.graph_emulator.http import EmulatorResponse

TODAY = dt.date(2026, 11, 26)
REFRESH = TODAY - dt.timedelta(days=2)
DOWNLOAD = "https://localhost:4443"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PSEUDONYM = re.compile(r"^[0-9A-F]{32}$")


class FakeClock:
    """A settable clock for pacing and expiry."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_service(
    users: int = 120, groups: int = 10, seed: int = 11, **kwargs: Any
) -> ReportService:
    tenant = Tenant.synthetic(users=users, groups=groups, seed=seed, today=TODAY)
    service = ReportService(tenant, DOWNLOAD, **kwargs)
    service.clock = FakeClock()
    return service


def request(roles: tuple[str, ...] = ("Reports.Read.All",), **headers: str) -> EmulatorRequest:
    return EmulatorRequest(
        "GET",
        "/",
        {},
        {name.lower().replace("_", "-"): value for name, value in headers.items()},
        roles=frozenset(roles),
    )


def download(service: ReportService, response: EmulatorResponse) -> bytes:
    assert response.status == 302, response.body
    location = response.headers["Location"]
    assert location.startswith(DOWNLOAD + "/data/download/")
    served = service.handle_download(location.removeprefix(DOWNLOAD), request())
    assert served.status == 200
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert not isinstance(served.body, bytes), "the file must stream as chunks"
    return b"".join(served.body)


def rows_of(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def fetch(service: ReportService, call: str) -> list[dict[str, str]]:
    return rows_of(download(service, service.handle_call(call, request())))


def error_of(response: EmulatorResponse) -> dict[str, Any]:
    assert isinstance(response.body, bytes)
    error: dict[str, Any] = json.loads(response.body)["error"]
    return error


# ------------------------------------------------------------------------------- file shape


@pytest.mark.parametrize("function", sorted(REPORTS))
def test_every_report_redirects_then_serves_the_documented_header(function: str) -> None:
    service = make_service()
    service.copilot_redirect = True  # its documented 200 is checked in test_emulator_coverage
    call = f"{function}(period='D7')" if REPORTS[function].parameters else function
    response = service.handle_call(call, request(client_request_id="abc"), REPORTS[function].base)
    assert response.status == 302
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["client-request-id"] == "abc"
    assert response.body == b"", "no CSV on the Graph host"
    body = download(service, response)
    assert body.startswith(b"\xef\xbb\xbf" + HEADERS[function].encode() + b"\r\n")
    assert body.endswith(b"\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")
    rows = rows_of(body)
    # ~40 % of groups use Viva Engage; the default tenant holds no Copilot seats.
    expects_rows = function not in {
        "getYammerGroupsActivityDetail",
        "getMicrosoft365CopilotUsageUserDetail",
    }
    assert rows or not expects_rows
    for row in rows:
        assert row["Report Refresh Date"] == REFRESH.isoformat()
        if "Report Period" in row:
            assert row["Report Period"] == "7"


def test_header_lines_are_the_documented_ones() -> None:
    # Spot checks against the functions' pages under
    # https://learn.microsoft.com/graph/api/resources/report, written out independently of the
    # tap's report definitions.
    assert HEADERS["getOffice365ActiveUserDetail"].split(",")[-1] == "Assigned Products"
    assert len(HEADERS["getOffice365ActiveUserDetail"].split(",")) == 24
    assert len(HEADERS["getTeamsUserActivityUserDetail"].split(",")) == 33
    assert HEADERS["getMailboxUsageDetail"].endswith(
        "Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Report Period"
    )
    assert HEADERS["getOffice365ActivationsUserDetail"] == (
        "Report Refresh Date,User Principal Name,Display Name,Product Type,Last Activated Date,"
        "Windows,Mac,Windows 10 Mobile,iOS,Android,Activated On Shared Computer"
    )
    assert HEADERS["getEmailActivityUserDetail"] == (
        "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,"
        "Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,"
        "Meeting Interacted Count,Assigned Products,Report Period"
    )
    assert REPORTS["getMailboxUsageDetail"].parameters == ("period",)
    assert REPORTS["getOffice365ActivationsUserDetail"].parameters == ()


def test_download_url_is_single_use_short_lived_and_ignores_authorization() -> None:
    service = make_service()
    clock = service.clock
    assert isinstance(clock, FakeClock)
    first = service.handle_call("getEmailActivityUserDetail(period='D7')", request())
    path = first.headers["Location"].removeprefix(DOWNLOAD)
    served = service.handle_download(path, request(authorization="Bearer leaked"))
    assert served.status == 200
    assert service.authorized_downloads[-1].authorization == "Bearer leaked"
    assert service.handle_download(path, request()).status == 404, "single use"
    late = service.handle_call("getEmailActivityUserDetail(period='D30')", request())
    clock.now += service.download_ttl_seconds + 1
    expired = late.headers["Location"].removeprefix(DOWNLOAD)
    assert service.handle_download(expired, request()).status == 404
    assert service.handle_download("/data/download/made-up", request()).status == 404
    assert len(service.downloads) == 4
    assert len(service.authorized_downloads) == 1
    assert [call.status for call in service.calls] == [302, 302], "downloads are not Graph calls"


def test_if_none_match_answers_304_until_the_file_changes() -> None:
    service = make_service()
    call = "getOneDriveUsageAccountDetail(period='D30')"
    first = service.handle_call(call, request())
    path = first.headers["Location"].removeprefix(DOWNLOAD)
    etag = service.handle_download(path, request()).headers["ETag"]
    same = service.handle_call(call, request(if_none_match=etag))
    assert same.status == 304
    assert same.headers["ETag"] == etag
    assert "Location" not in same.headers
    tenant: Any = service.tenant
    user_id = next(uid for uid, user in tenant.users.items() if user.get("assignedLicenses"))
    tenant.update_user(user_id, displayName="Renamed Person")
    assert service.handle_call(call, request(if_none_match=etag)).status == 302


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "status", "code", "message"),
    [
        (
            f"getEmailActivityUserDetail(date='{REFRESH}')",
            400,
            "BadRequest",
            "Expression of type 'Edm.String' cannot be converted to type 'Edm.Date'.",
        ),
        (
            f"getEmailActivityUserDetail(date={REFRESH - dt.timedelta(days=29)})",
            400,
            "InvalidArgument",
            f"Invalid date value specified: {REFRESH - dt.timedelta(days=29)}. "
            "Only support data for the past 28 days.",
        ),
        ("getEmailActivityUserDetail(period='D8')", 400, "InvalidArgument", None),
        ("getEmailActivityUserDetail(period=D7)", 400, "BadRequest", None),
        ("getEmailActivityUserDetail(date=2026-02-30)", 400, "BadRequest", None),
        # v1.0 binds the Copilot report to /copilot/reports, not /reports.
        ("getMicrosoft365CopilotUsageUserDetail(period='D7')", 404, "UnknownError", None),
        (f"getMailboxUsageDetail(date={REFRESH})", 404, "UnknownError", None),
        ("getOffice365ActivationsUserDetail(period='D7')", 404, "UnknownError", None),
        ("getEmailActivityUserDetail", 404, "UnknownError", None),
        (f"getEmailActivityUserDetail(period='D7',date={REFRESH})", 404, "UnknownError", None),
    ],
)
def test_parameter_errors_answer_as_graph(
    call: str, status: int, code: str, message: str | None
) -> None:
    service = make_service(users=20, groups=2)
    response = service.handle_call(call, request(client_request_id="cid"))
    assert response.status == status
    error = error_of(response)
    assert error["code"] == code
    assert error["innerError"]["client-request-id"] == "cid"
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    if message is not None:
        assert error["message"] == message
    if status == 404:
        inner = json.loads(error["message"])["error"]
        assert inner == {
            "code": "InvalidArgument",
            "message": "The requested function cannot be found.",
        }


def test_missing_reports_permission_is_403() -> None:
    service = make_service(users=20, groups=2)
    response = service.handle_call(
        "getEmailActivityUserDetail(period='D7')", request(roles=("User.Read.All",))
    )
    assert response.status == 403
    assert error_of(response)["code"] == "S2SUnauthorized"
    assert error_of(response)["message"] == "Invalid permission."


def test_date_range_and_freshness() -> None:
    service = make_service(users=40, groups=2)
    oldest = fetch(service, f"getTeamsUserActivityUserDetail(date={REFRESH - dt.timedelta(28)})")
    assert oldest
    assert {row["Report Period"] for row in oldest} == {"1"}
    assert fetch(service, f"getTeamsUserActivityUserDetail(date={REFRESH + dt.timedelta(1)})") == []
    service.refresh_lag_days = 3
    rows = fetch(service, "getTeamsUserActivityUserDetail(period='D7')")
    assert {row["Report Refresh Date"] for row in rows} == {(TODAY - dt.timedelta(3)).isoformat()}
    fresh = fetch(service, "getOffice365ActivationsUserDetail")
    assert {row["Report Refresh Date"] for row in fresh} == {(TODAY - dt.timedelta(3)).isoformat()}


# ------------------------------------------------------------------------------- data


def test_date_rows_add_up_to_the_period_row() -> None:
    service = make_service(users=60, groups=2)
    service.calls_per_window = 100
    period = {
        row["User Principal Name"]: row
        for row in fetch(service, "getEmailActivityUserDetail(period='D7')")
    }
    totals: dict[str, int] = {}
    for back in range(7):
        day = REFRESH - dt.timedelta(days=back)
        for row in fetch(service, f"getEmailActivityUserDetail(date={day})"):
            totals[row["User Principal Name"]] = totals.get(row["User Principal Name"], 0) + int(
                row["Send Count"]
            )
            if back == 0:
                assert (
                    row["Last Activity Date"]
                    == period[row["User Principal Name"]]["Last Activity Date"]
                )
    assert {upn: int(row["Send Count"]) for upn, row in period.items()} == totals
    assert sum(totals.values()) > 0


def test_history_stays_put_when_days_pass() -> None:
    service = make_service(users=60, groups=4)
    day = REFRESH - dt.timedelta(days=3)
    before = fetch(service, f"getOffice365ActiveUserDetail(date={day})")
    tenant: Any = service.tenant
    tenant.today += dt.timedelta(days=1)
    after = fetch(service, f"getOffice365ActiveUserDetail(date={day})")
    assert all(row.pop("Report Refresh Date") == REFRESH.isoformat() for row in before)
    assert all(
        row.pop("Report Refresh Date") == (REFRESH + dt.timedelta(1)).isoformat() for row in after
    )
    assert before == after


def test_usage_looks_like_a_real_tenant_with_wasted_seats() -> None:
    service = make_service(users=600, groups=10, seed=5)
    rows = fetch(service, "getOffice365ActiveUserDetail(period='D30')")
    licensed = [row for row in rows if row["Assigned Products"] and row["Is Deleted"] == "False"]
    workloads = ("Exchange", "OneDrive", "SharePoint", "Teams", "Yammer")

    def last_seen(row: dict[str, str]) -> dt.date | None:
        days = [row[f"{name} Last Activity Date"] for name in workloads]
        return max((dt.date.fromisoformat(day) for day in days if day), default=None)

    def idle(days: int) -> float:
        cutoff = REFRESH - dt.timedelta(days=days)
        return sum(1 for row in licensed if (last_seen(row) or dt.date.min) < cutoff) / len(
            licensed
        )

    assert 0.08 <= idle(30) <= 0.35
    assert 0.04 <= idle(90) <= idle(30)
    recent = REFRESH - dt.timedelta(days=30)
    busy = [
        row
        for row in licensed
        if sum(
            1
            for name in workloads
            if row[f"{name} Last Activity Date"]
            and dt.date.fromisoformat(row[f"{name} Last Activity Date"]) >= recent
        )
        >= 2
    ]
    assert len(busy) / len(licensed) > 0.6


def test_licenses_guests_and_deleted_users() -> None:
    service = make_service(users=200, groups=6)
    tenant: Any = service.tenant
    unlicensed = {
        user["userPrincipalName"]
        for user in tenant.users.values()
        if not user.get("assignedLicenses") and user.get("userType") == "Member"
    }
    guests = {u["userPrincipalName"] for u in tenant.users.values() if u.get("userType") == "Guest"}
    assert unlicensed
    assert guests
    gone_id = next(uid for uid, user in tenant.users.items() if user.get("assignedLicenses"))
    gone = tenant.users[gone_id]["userPrincipalName"]
    tenant.soft_delete_user(gone_id)
    not_yet = fetch(service, "getOffice365ActiveUserDetail(period='D7')")
    assert {row["Is Deleted"] for row in not_yet if row["User Principal Name"] == gone} == {"False"}
    tenant.today += dt.timedelta(days=3)  # the report's refresh date passes the deletion

    active = {
        row["User Principal Name"]: row
        for row in fetch(service, "getOffice365ActiveUserDetail(period='D7')")
    }
    for upn in unlicensed:
        assert {active[upn][f"Has {w} License"] for w in ("Exchange", "Teams", "OneDrive")} == {
            "False"
        }
        assert active[upn]["Assigned Products"] == ""
    assert active[gone]["Is Deleted"] == "True"
    assert active[gone]["Deleted Date"] == TODAY.isoformat()

    email = {
        row["User Principal Name"]: row
        for row in fetch(service, "getEmailActivityUserDetail(period='D7')")
    }
    assert not (unlicensed | guests) & set(email)
    assert email[gone]["Is Deleted"] == "True"
    assert gone not in {
        row["User Principal Name"] for row in fetch(service, "getMailboxUsageDetail(period='D7')")
    }

    teams = {
        row["User Principal Name"]: row
        for row in fetch(service, "getTeamsUserActivityUserDetail(period='D30')")
    }
    assert {teams[upn]["Is Licensed"] for upn in guests} == {"No"}
    assert not unlicensed & set(teams)

    products = {row["Assigned Products"] for row in active.values()} - {""}
    assert all(name == name.upper() for name in products)
    assert any("+" in name for name in products), "several products joined with '+'"


def test_disabled_accounts_and_pinned_users_go_idle() -> None:
    service = make_service(users=300, groups=4)
    tenant: Any = service.tenant
    workloads = ("Exchange", "OneDrive", "SharePoint", "Teams", "Yammer")

    def last_seen(upn: str) -> dt.date | None:
        row = next(r for r in active if r["User Principal Name"] == upn)
        days = [row[f"{name} Last Activity Date"] for name in workloads]
        return max((dt.date.fromisoformat(day) for day in days if day), default=None)

    disabled = [
        user["userPrincipalName"]
        for user in tenant.users.values()
        if not user["accountEnabled"] and user["assignedLicenses"]
    ]
    assert disabled
    active = fetch(service, "getOffice365ActiveUserDetail(period='D30')")
    for upn in disabled:
        assert (last_seen(upn) or dt.date.min) < REFRESH - dt.timedelta(days=29)

    busy = next(
        user
        for user in tenant.users.values()
        if user["accountEnabled"] and last_seen(user["userPrincipalName"]) == REFRESH
    )
    pinned = next(
        user
        for user in tenant.users.values()
        if user is not busy and last_seen(user["userPrincipalName"]) == REFRESH
    )
    tenant.update_user(busy["id"], accountEnabled=False)
    service.activity.last_active_override[pinned["id"]] = REFRESH - dt.timedelta(days=40)
    fetch(service, "getOffice365ActiveUserDetail(period='D7')")  # the emulator notices today
    tenant.today += dt.timedelta(days=5)
    active = fetch(service, "getOffice365ActiveUserDetail(period='D30')")
    seen = last_seen(busy["userPrincipalName"])
    assert seen is not None
    assert REFRESH <= seen <= TODAY, "active until disabled, nothing after"
    assert (last_seen(pinned["userPrincipalName"]) or dt.date.min) <= REFRESH - dt.timedelta(40)


def test_value_shapes() -> None:
    service = make_service(users=150, groups=8)
    teams = fetch(service, "getTeamsUserActivityUserDetail(period='D30')")
    for row in teams:
        for label in ("Audio", "Video", "Screen Share"):
            hours, minutes, seconds = map(int, row[f"{label} Duration"].split(":"))
            assert hours * 3600 + minutes * 60 + seconds == int(row[f"{label} Duration In Seconds"])
        assert row["Has Other Action"] in {"Yes", "No"}
        assert row["Is Deleted"] in {"True", "False"}
        assert DATE.match(row["Last Activity Date"]) or row["Last Activity Date"] == ""
        organized = sum(
            int(row[f"{kind} Meetings Organized Count"])
            for kind in ("Ad Hoc", "Scheduled One-time", "Scheduled Recurring")
        )
        assert organized <= int(row["Meetings Organized Count"])
    devices = fetch(service, "getTeamsDeviceUsageUserDetail(period='D7')")
    assert {row["Used Windows"] for row in devices} == {"Yes", "No"}
    onedrive = fetch(service, "getOneDriveUsageAccountDetail(period='D7')")
    assert all(
        row["Site URL"].startswith("https://contoso-my.sharepoint.com/personal/")
        for row in onedrive
    )
    assert all(int(row["Storage Used (Byte)"]) > 0 for row in onedrive)
    sites = fetch(service, "getSharePointSiteUsageDetail(period='D7')")
    assert all(re.match(r"^[0-9a-f-]{36}$", row["Site Id"]) for row in sites)
    groups = fetch(service, "getOffice365GroupsActivityDetail(period='D7')")
    tenant: Any = service.tenant
    assert {row["Group Id"] for row in groups} <= set(tenant.groups)
    activations = fetch(service, "getOffice365ActivationsUserDetail")
    assert {row["Product Type"] for row in activations} >= {"MICROSOFT 365 APPS FOR ENTERPRISE"}


def test_concealed_names_are_stable_pseudonyms() -> None:
    service = make_service(users=80, groups=6)
    service.concealed_names = True
    service.calls_per_window = 100
    email = fetch(service, "getEmailActivityUserDetail(period='D7')")
    email_day = fetch(service, f"getEmailActivityUserDetail(date={REFRESH - dt.timedelta(5)})")
    active = fetch(service, "getOffice365ActiveUserDetail(period='D7')")
    assert all(PSEUDONYM.match(row["User Principal Name"]) for row in email)
    assert all(PSEUDONYM.match(row["Display Name"]) for row in email)
    assert {row["User Principal Name"] for row in email} == {
        row["User Principal Name"] for row in email_day
    }
    assert {row["User Principal Name"] for row in email} <= {
        row["User Principal Name"] for row in active
    }
    sites = fetch(service, "getSharePointSiteUsageDetail(period='D7')")
    assert all(PSEUDONYM.match(row["Site URL"]) for row in sites)
    assert not any(PSEUDONYM.match(row["Site Id"]) for row in sites)
    groups = fetch(service, "getOffice365GroupsActivityDetail(period='D7')")
    assert all(
        PSEUDONYM.match(row["Group Id"]) and PSEUDONYM.match(row["Group Display Name"])
        for row in groups
    )
    teams = fetch(service, "getTeamsUserActivityUserDetail(period='D7')")
    tenant: Any = service.tenant
    assert {row["User Id"] for row in teams} <= set(tenant.users) | set(tenant.deleted_users)


def test_columns_added_dropped_and_renamed() -> None:
    service = make_service(users=40, groups=2)
    function = "getEmailActivityUserDetail"
    plain = fetch(service, f"{function}(period='D7')")
    service.extra_columns[function] = ["Copilot Prompt Count"]
    service.dropped_columns[function] = {"Display Name"}
    service.renamed_columns[function] = {"Send Count": "Sent Count"}
    body = download(service, service.handle_call(f"{function}(period='D7')", request()))
    header = body.decode("utf-8-sig").split("\r\n", 1)[0].split(",")
    assert header == service.columns(function)
    assert header[-1] == "Copilot Prompt Count"
    assert "Display Name" not in header
    assert "Send Count" not in header
    changed = rows_of(body)
    assert [row["Sent Count"] for row in changed] == [row["Send Count"] for row in plain]
    assert {row["Copilot Prompt Count"] for row in changed} == {""}


def test_added_columns_can_carry_values_from_their_row() -> None:
    service = make_service(users=40, groups=2)
    function = "getEmailActivityUserDetail"
    service.extra_columns[function] = ["Copilot Prompt Count"]
    service.extra_column_values[function] = {
        "Copilot Prompt Count": lambda row: row["Send Count"] + "0"
    }
    rows = fetch(service, f"{function}(period='D7')")
    assert rows
    assert all(row["Copilot Prompt Count"] == row["Send Count"] + "0" for row in rows)


def served_file(service: ReportService, call: str) -> bytes:
    """The downloaded body of one call, whether it streams or was rewritten whole."""
    location = service.handle_call(call, request()).headers["Location"]
    served = service.handle_download(location.removeprefix(DOWNLOAD), request())
    assert served.status == 200
    return served.body if isinstance(served.body, bytes) else b"".join(served.body)


def test_file_faults_rewrite_only_the_matching_calls_download() -> None:
    service = make_service(users=40, groups=2)
    function = "getEmailActivityUserDetail"
    day = REFRESH - dt.timedelta(days=1)
    fault = FileFault(rf"\(date={day.isoformat()}\)$", empty_file, times=1)
    service.file_faults.append(fault)
    assert served_file(service, f"{function}(date={REFRESH.isoformat()})").startswith(BOM)
    assert served_file(service, f"{function}(date={day.isoformat()})") == b""
    assert fault.fired == 1
    assert served_file(service, f"{function}(date={day.isoformat()})").startswith(BOM)  # once

    plain = served_file(service, f"{function}(date={REFRESH.isoformat()})")
    assert bom_only(plain) == BOM
    assert blank_line_after_header(plain) == plain.split(b"\r\n", 1)[0] + b"\r\n\r\n"
    assert html_page(plain).startswith(b"<html>")
    assert b"\n" not in html_page(plain)  # one line
    moved = rows_of(refresh_dates("12/02/2026")(plain))
    assert moved
    assert {row["Report Refresh Date"] for row in moved} == {"12/02/2026"}
    assert [row["User Principal Name"] for row in moved] == [
        row["User Principal Name"] for row in rows_of(plain)
    ]
    latin = latin1(3)(plain)
    assert not latin.startswith(BOM)
    with pytest.raises(UnicodeDecodeError):
        latin.decode("utf-8")
    assert latin.decode("latin-1").split("\r\n")[2].split(",")[1].startswith("\u00eb")


# ------------------------------------------------------------------------------- pacing


def test_fifteenth_call_in_ten_minutes_is_throttled() -> None:
    service = make_service(users=20, groups=2, time_scale=0.01)  # 14 calls per 6 s
    clock = service.clock
    assert isinstance(clock, FakeClock)
    call = "getTeamsUserActivityUserDetail(period='D7')"
    for _ in range(14):
        response = service.handle_call(call, request())
        download(service, response)  # downloads do not count
        clock.now += 0.2
    throttled = service.handle_call(call, request())
    assert throttled.status == 429
    error = error_of(throttled)
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["status"] == "429"
    retry_after = int(throttled.headers["Retry-After"])
    assert 1 <= retry_after <= 6
    assert service.handle_call("getEmailActivityUserDetail(period='D7')", request()).status == 302
    clock.now += retry_after
    assert service.handle_call(call, request()).status == 302
    statuses = [c.status for c in service.calls_to("getTeamsUserActivityUserDetail")]
    assert statuses == [302] * 14 + [429, 302]
    assert service.calls[0].params == "period='D7'"


def test_pacing_counts_errors_and_the_whole_window() -> None:
    service = make_service(users=20, groups=2)
    clock = service.clock
    assert isinstance(clock, FakeClock)
    for _ in range(14):
        service.handle_call("getEmailActivityUserDetail(date='2026-11-20')", request())
        clock.now += 30
    throttled = service.handle_call("getEmailActivityUserDetail(period='D7')", request())
    assert throttled.status == 429
    assert int(throttled.headers["Retry-After"]) == 600 - 14 * 30


# ------------------------------------------------------------------------------- scale


def test_a_200000_row_report_streams_without_building_the_file() -> None:
    service = make_service(users=30, groups=2)
    service.extra_rows = 200_000
    response = service.handle_call("getEmailActivityUserDetail(period='D7')", request())
    location = response.headers["Location"].removeprefix(DOWNLOAD)
    served = service.handle_download(location, request())
    assert not isinstance(served.body, bytes)
    chunks = iter(served.body)
    tracemalloc.start()
    try:
        lines = 0
        for chunk in chunks:
            assert len(chunk) < 200_000
            lines += chunk.count(b"\r\n")
            if lines > 5_000:
                break
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, peak
    lines += sum(chunk.count(b"\r\n") for chunk in chunks)
    licensed = sum(
        1 for user in service.tenant.users.values() if "exchange" in str(user.get("assignedPlans"))
    )
    assert lines > 200_000 + licensed // 2


def _rows_of(service: ReportService, call: str) -> list[list[str]]:
    body = download(service, service.handle_call(call, request()))
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))[1:]


def test_extra_rows_are_rows_even_where_a_report_leaves_objects_out() -> None:
    # Only Yammer-connected groups are in the Yammer groups report; `extra_rows` still adds that
    # many rows to it, as to a user report, so a benchmark's large day is large for every report.
    service = make_service(users=40, groups=6)
    plain = {
        function: len(_rows_of(service, f"{function}(period='D7')"))
        for function in ("getYammerGroupsActivityDetail", "getEmailActivityUserDetail")
    }
    service.extra_rows = 1_234
    for function, base in plain.items():
        rows = _rows_of(service, f"{function}(period='D7')")
        assert len(rows) == base + 1_234, function
        key = 1 if function == "getYammerGroupsActivityDetail" else 2  # group / user name
        assert len({row[key] for row in rows}) == len(rows), "every synthetic row is its own"


def test_synthetic_rows_end_when_no_profile_gives_a_row() -> None:
    service = make_service(users=40, groups=6)
    service.extra_rows = 500
    snapshot = service._snapshot()
    asked: list[int] = []

    def nothing(slot: int) -> list[dict[str, str]]:
        asked.append(slot)
        return []

    assert list(_bulk_rows(snapshot, nothing, {})) == []
    assert sorted(asked) == list(range(BULK_PROFILES)), "each profile is tried once"


def test_a_file_cache_serves_the_same_file_again_until_the_tenant_changes() -> None:
    service = make_service(users=40, groups=6)
    service.file_cache = {}
    call = "getEmailActivityUserDetail(date=2026-11-20)"
    first = download(service, service.handle_call(call, request()))
    assert len(service.file_cache) == 1
    again = service.handle_call(call, request())
    served = service.handle_download(again.headers["Location"].removeprefix(DOWNLOAD), request())
    assert served.body is next(iter(service.file_cache.values())), "served from the cache"
    assert b"".join(served.body) == first
    upn = first.decode("utf-8-sig").splitlines()[1].split(",")[1]  # the first row's user
    tenant = service.tenant
    assert isinstance(tenant, Tenant)
    user = next(u for u in tenant.users.values() if u["userPrincipalName"] == upn)
    tenant.update_user(user["id"], displayName="Renamed Person")
    assert b",Renamed Person," in download(service, service.handle_call(call, request()))
    assert len(service.file_cache) == 2


# ------------------------------------------------------------------------------- over HTTPS


def test_report_over_https_redirects_to_another_host_without_the_token() -> None:
    tenant = Tenant.synthetic(users=60, groups=4, seed=3, today=TODAY)
    with GraphEmulator(tenant) as emu:
        token = emu.issue_token()
        url = f"{emu.graph_url}/v1.0/reports/getTeamsUserActivityUserDetail(period='D7')"
        headers = {"Authorization": f"Bearer {token}"}
        raw = requests.get(
            url, headers=headers, verify=emu.ca_bundle, allow_redirects=False, timeout=10
        )
        assert raw.status_code == 302
        assert raw.headers["Location"].startswith(emu.download_url + "/data/download/")
        followed = requests.get(url, headers=headers, verify=emu.ca_bundle, timeout=10)
        assert followed.status_code == 200
        assert followed.headers["Content-Type"] == "application/octet-stream"
        assert followed.content.startswith(
            b"\xef\xbb\xbf" + HEADERS["getTeamsUserActivityUserDetail"].encode()
        )
        assert rows_of(followed.content)
        assert emu.reports.authorized_downloads == [], "requests drops the token on a host change"
        old = requests.get(
            f"{emu.graph_url}/v1.0/reports/getTeamsUserActivityUserDetail(date=2026-10-01)",
            headers=headers,
            verify=emu.ca_bundle,
            timeout=10,
        )
        assert old.status_code == 400
        assert old.json()["error"]["code"] == "InvalidArgument"
