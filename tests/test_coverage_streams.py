"""The tap reads Copilot usage, Teams team activity and sign-in activity (issue 13), over HTTPS.

What Graph documents, and the emulator serves (see tests/test_emulator_coverage.py for the
Microsoft URLs):
- getMicrosoft365CopilotUsageUserDetail: v1.0 under /copilot/reports/, period only, `200 OK`
  with the CSV (the tap must also follow a 302), one row per Copilot-licensed user;
- getTeamsTeamActivityDetail: period or date=, 302 to the download host, one row per team;
- users?$select=id,userPrincipalName,signInActivity: pages of at most 120 users; 403
  Authentication_MSGraphPermissionMissing without AuditLog.Read.All, 403
  Authentication_RequestFromNonPremiumTenantOrB2CTenant without Entra ID P1/P2.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.graph_emulator import GraphEmulator, Tenant
from tests.graph_emulator.reports import COPILOT_SKU_ID
from tests.singer_run import SyncResult, catalog_selecting, run_tap

if TYPE_CHECKING:
    from collections.abc import Iterator

# The emulator's Date header is the real clock: its tenant lives on the same day.
TODAY = dt.datetime.now(dt.UTC).date()
SCALE = 0.005
WINDOW = 600 * SCALE
COPILOT = "microsoft365_copilot_usage_user_detail"
TEAMS = "teams_team_activity_detail"
SIGN_IN = "user_sign_in_activity"
NEW = {COPILOT, TEAMS, SIGN_IN}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_catalogs: dict[frozenset[str], dict[str, Any]] = {}


def catalog(emu: GraphEmulator, streams: set[str]) -> dict[str, Any]:
    key = frozenset(streams)
    if key not in _catalogs:
        _catalogs[key] = catalog_selecting(emu.config(), streams, emu.ca_bundle)
    return _catalogs[key]


def sync(emu: GraphEmulator, streams: set[str], state: dict[str, Any] | None = None) -> SyncResult:
    return run_tap(
        emu.config(report_window_seconds=WINDOW),
        ca_bundle=emu.ca_bundle,
        catalog=catalog(emu, streams),
        state=state,
    )


def schema_of(result: SyncResult, stream: str) -> dict[str, Any]:
    return next(m for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == stream)


@pytest.fixture(scope="module")
def emu() -> Iterator[GraphEmulator]:
    tenant = Tenant.synthetic(users=40, groups=10, seed=23, today=TODAY, copilot_seats=8)
    with GraphEmulator(tenant, time_scale=SCALE) as emulator:
        emulator.app.roles.add("AuditLog.Read.All")
        yield emulator


def test_discover_lists_the_three_streams_and_sign_in_is_off_by_default() -> None:
    discovered = catalog_selecting({}, set())  # runs `tap-microsoft365 --discover`
    entries = {entry["tap_stream_id"]: entry for entry in discovered["streams"]}
    assert set(entries) >= NEW
    assert entries[COPILOT]["key_properties"] == ["report_date", "user_principal_name"]
    assert entries[TEAMS]["key_properties"] == ["report_date", "team_id"]
    assert entries[SIGN_IN]["key_properties"] == ["id"]

    def selected_by_default(stream: str) -> bool:
        root = next(m for m in entries[stream]["metadata"] if m["breadcrumb"] == [])
        return bool(root["metadata"].get("selected-by-default"))

    assert not selected_by_default(SIGN_IN), "needs a permission and a license beyond the base"
    assert selected_by_default(COPILOT)
    assert selected_by_default(TEAMS)


def test_sync_loads_the_three_keyed_and_typed(emu: GraphEmulator) -> None:
    result = sync(emu, NEW)
    assert result.exit_code == 0, result.stderr[-3000:]

    holders = {
        user["userPrincipalName"]
        for user in emu.tenant.users.values()
        if any(item["skuId"] == COPILOT_SKU_ID for item in user["assignedLicenses"])
    }
    copilot = result.records(COPILOT)
    assert {row["user_principal_name"] for row in copilot} == holders
    refresh = {row["report_date"] for row in copilot}
    assert len(refresh) == 1
    assert all(DATE.match(row["report_date"]) for row in copilot)
    assert any(row["last_activity_date"] is None for row in copilot), "unused seats"
    assert all(row["report_period"] == 7 for row in copilot)
    properties = schema_of(result, COPILOT)["schema"]["properties"]
    assert properties["loop_copilot_last_activity_date"]["format"] == "date"

    teams = result.records(TEAMS)
    team_ids = {
        group["id"]
        for group in emu.tenant.groups.values()
        if "Team" in (group.get("resourceProvisioningOptions") or [])
    }
    assert {row["team_id"] for row in teams} == team_ids
    days = sorted({row["report_date"] for row in teams})
    assert len(days) > 1, "one file per day"
    keys = [(row["report_date"], row["team_id"]) for row in teams]
    assert len(keys) == len(set(keys))
    assert all(isinstance(row["active_users"], int) for row in teams)
    assert all(row["report_period"] == 1 for row in teams)

    signed = result.records(SIGN_IN)
    assert {row["id"] for row in signed} == set(emu.tenant.users)
    columns = set(schema_of(result, SIGN_IN)["schema"]["properties"])
    assert columns == {
        "id",
        "user_principal_name",
        "last_sign_in_date_time",
        "last_sign_in_request_id",
        "last_non_interactive_sign_in_date_time",
        "last_non_interactive_sign_in_request_id",
        "last_successful_sign_in_date_time",
        "last_successful_sign_in_request_id",
    }
    assert any(row["last_sign_in_date_time"] for row in signed)
    assert any(row["last_sign_in_date_time"] is None for row in signed), "never signed in"
    pages = [
        entry
        for entry in emu.request_log
        if entry.path == "/v1.0/users" and "signInActivity" in entry.query.get("$select", "")
    ]
    assert pages, "read through the documented $select"
    assert all(entry.query.get("$top") == "120" for entry in pages), "the documented cap"

    # Incremental: nothing new for Teams (already up to the refresh date), no moved snapshot
    # for Copilot: no file is fetched or emitted again.
    calls_before = len(emu.reports.calls)
    again = sync(emu, {COPILOT, TEAMS}, state=result.last_state)
    assert again.exit_code == 0, again.stderr[-3000:]
    assert again.records(COPILOT) == []
    assert again.records(TEAMS) == []
    answered = [call for call in emu.reports.calls[calls_before:] if call.status != 429]
    teams_days = [call for call in answered if call.function == "getTeamsTeamActivityDetail"]
    assert all("date=" not in call.params for call in teams_days), "no day fetched twice"

    # A day later Graph has processed one more day: only that day is fetched, and the Copilot
    # snapshot moved, so it is fetched again (now through a 302, the other documented answer).
    emu.tenant.today = TODAY + dt.timedelta(days=1)
    emu.reports.copilot_redirect = True
    try:
        later = sync(emu, {COPILOT, TEAMS}, state=again.last_state)
    finally:
        emu.tenant.today = TODAY
        emu.reports.copilot_redirect = False
    assert later.exit_code == 0, later.stderr[-3000:]
    new_days = {row["report_date"] for row in later.records(TEAMS)}
    assert new_days == {(dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)).isoformat()}
    moved = later.records(COPILOT)
    assert {row["user_principal_name"] for row in moved} == holders
    assert {row["report_date"] for row in moved} == {
        (dt.date.fromisoformat(next(iter(refresh))) + dt.timedelta(days=1)).isoformat()
    }


@pytest.mark.parametrize("missing", ["permission", "license"])
def test_without_audit_log_or_premium_one_warning_and_the_rest_completes(missing: str) -> None:
    tenant = Tenant.synthetic(users=20, groups=10, seed=5, today=TODAY)
    with GraphEmulator(tenant, time_scale=SCALE) as emu:
        if missing == "license":
            emu.app.roles.add("AuditLog.Read.All")
            tenant.entra_premium = False
        result = sync(emu, {SIGN_IN, "users", "subscribed_skus", TEAMS})
    assert result.exit_code == 0, result.stderr[-3000:]
    assert result.records(SIGN_IN) == []
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    about = [line for line in warnings if SIGN_IN in line]
    assert len(about) == 1, warnings
    assert "AuditLog.Read.All" in about[0]
    assert "P1 or P2" in about[0]
    assert "API permissions" in about[0]
    expected = (
        "Authentication_MSGraphPermissionMissing"
        if missing == "permission"
        else "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    )
    assert expected in about[0]
    assert len(result.records("users")) == len(tenant.users)
    assert result.records("subscribed_skus")
    assert result.records(TEAMS)
    assert "Traceback" not in result.stderr


def test_report_paths_default_to_reports_and_copilot_has_its_own() -> None:
    from tap_microsoft365.streams.reports.definitions import REPORTS

    paths = {definition.function: definition.url_path for definition in REPORTS}
    assert paths["getTeamsTeamActivityDetail"] == "reports/getTeamsTeamActivityDetail"
    assert paths["getMailboxUsageDetail"] == "reports/getMailboxUsageDetail"
    assert paths["getMicrosoft365CopilotUsageUserDetail"] == (
        "copilot/reports/getMicrosoft365CopilotUsageUserDetail"
    )


def test_teams_columns_in_the_column_lists_letter_case_map_to_the_same_properties() -> None:
    # The page's column list writes "Team type" and "Active users", its example "Team Type" and
    # "Active Users": whichever Graph serves, the values land in team_type and active_users.
    tenant = Tenant.synthetic(users=20, groups=10, seed=5, today=TODAY)
    with GraphEmulator(tenant, time_scale=SCALE) as emu:
        emu.reports.renamed_columns["getTeamsTeamActivityDetail"] = {
            "Team Type": "Team type",
            "Active Users": "Active users",
        }
        result = sync(emu, {TEAMS})
    assert result.exit_code == 0, result.stderr[-3000:]
    rows = result.records(TEAMS)
    assert rows
    assert all(row["team_type"] in {"Public", "Private"} for row in rows)
    assert all(isinstance(row["active_users"], int) for row in rows)
    assert "does not know" not in result.stderr
    assert "no longer has" not in result.stderr
