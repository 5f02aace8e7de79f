"""The emulator serves Copilot usage, Teams team activity and signInActivity as Microsoft documents.

Sources:
- Copilot usage (v1.0): https://learn.microsoft.com/microsoft-365/copilot/extensibility/api/admin-settings/reports/copilotreportroot-getmicrosoft365copilotusageuserdetail
  `GET /v1.0/copilot/reports/getMicrosoft365CopilotUsageUserDetail(period='D7')`, periods D7,
  D30, D90, D180, ALL (version v1, the default), answer `200 OK` with the CSV in the body; only
  users holding a Microsoft 365 Copilot license. The v1.0 CSDL in microsoftgraph/msgraph-metadata
  binds it to `copilotReportRoot` (the `copilot` singleton's `reports`) with `period` only.
- Teams team activity: https://learn.microsoft.com/graph/api/reportroot-getteamsteamactivitydetail?view=graph-rest-1.0
  period or date= (the v1.0 CSDL has both overloads), 302 to the download host.
- signInActivity: https://learn.microsoft.com/graph/api/resources/signinactivity?view=graph-rest-1.0
  and the user resource page https://learn.microsoft.com/graph/api/resources/user ("the maximum
  page size for $top is 120" when signInActivity is selected). Without AuditLog.Read.All: 403
  Authentication_MSGraphPermissionMissing (microsoftgraph/microsoft-graph-explorer-v4 issue
  2731); without Entra ID P1/P2: 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import requests

from tests.graph_emulator import GraphEmulator, Tenant
from tests.graph_emulator.reports import COPILOT_SKU_ID, HEADERS

TODAY = dt.date(2026, 11, 26)
REFRESH = TODAY - dt.timedelta(days=2)
COPILOT = "getMicrosoft365CopilotUsageUserDetail"
TEAMS = "getTeamsTeamActivityDetail"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def rows_of(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def get(
    emu: GraphEmulator, path: str, roles: set[str] | None = None, **kw: Any
) -> requests.Response:
    token = emu.issue_token(roles)
    return requests.get(
        f"{emu.graph_url}/v1.0/{path}",
        headers={"Authorization": f"Bearer {token}"},
        verify=emu.ca_bundle,
        timeout=20,
        **kw,
    )


def test_copilot_report_answers_200_with_the_csv_of_copilot_holders_only() -> None:
    tenant = Tenant.synthetic(users=80, groups=4, seed=5, today=TODAY, copilot_seats=10)
    holders = {
        user["userPrincipalName"]
        for user in tenant.users.values()
        if any(item["skuId"] == COPILOT_SKU_ID for item in user["assignedLicenses"])
    }
    assert len(holders) == 10
    with GraphEmulator(tenant) as emu:
        answer = get(emu, f"copilot/reports/{COPILOT}(period='D7')", allow_redirects=False)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/octet-stream"
        assert answer.content.startswith(b"\xef\xbb\xbf" + HEADERS[COPILOT].encode() + b"\r\n")
        rows = rows_of(answer.content)
        assert {row["User Principal Name"] for row in rows} == holders
        assert all(row["Report Refresh Date"] == REFRESH.isoformat() for row in rows)
        assert all(row["Report Period"] == "7" for row in rows)
        inactive = [row for row in rows if not row["Last Activity Date"]]
        active = [row for row in rows if row["Last Activity Date"]]
        assert inactive, "some Copilot seats are unused"
        assert active, "some are used"
        for row in active:
            apps = [
                value
                for column, value in row.items()
                if column != "Last Activity Date" and column.endswith("Last Activity Date")
            ]
            apps = [value for value in apps if value]
            assert max(apps) == row["Last Activity Date"], "the overall date is the latest app's"
        # Nobody used Copilot before holding its license; the seats were assigned on days spread
        # over the subscription's life, so a 90-day threshold finds seats on both sides.
        since = {
            user["userPrincipalName"]: state["lastUpdatedDateTime"][:10]
            for user in tenant.users.values()
            for state in user["licenseAssignmentStates"]
            if state["skuId"] == COPILOT_SKU_ID
        }
        for row in rows:
            dates = [v for c, v in row.items() if c.endswith("Last Activity Date") and v]
            assert all(day >= since[row["User Principal Name"]] for day in dates), row
        ages = {(TODAY - dt.date.fromisoformat(day)).days for day in since.values()}
        assert min(ages) < 90 < max(ages), ages
        # The function lives only under /copilot/reports in v1.0, and takes no date=.
        assert get(emu, f"reports/{COPILOT}(period='D7')").status_code == 404
        assert get(emu, f"copilot/reports/{COPILOT}(date=2026-11-20)").status_code == 404
        # The 302 form, so a client is tested against both answers.
        emu.reports.copilot_redirect = True
        moved = get(emu, f"copilot/reports/{COPILOT}(period='D30')", allow_redirects=False)
        assert moved.status_code == 302
        assert moved.headers["Location"].startswith(emu.download_url + "/data/download/")
        # Reports.Read.All is the permission, as for every report.
        refused = get(emu, f"copilot/reports/{COPILOT}(period='D7')", roles={"User.Read.All"})
        assert refused.status_code == 403


def test_teams_team_activity_is_daily_and_keyed_by_team_id() -> None:
    tenant = Tenant.synthetic(users=80, groups=12, seed=5, today=TODAY)
    teams = {
        group["id"]
        for group in tenant.groups.values()
        if "Team" in (group.get("resourceProvisioningOptions") or [])
    }
    assert teams
    with GraphEmulator(tenant) as emu:
        day = REFRESH - dt.timedelta(days=3)
        moved = get(emu, f"reports/{TEAMS}(date={day.isoformat()})", allow_redirects=False)
        assert moved.status_code == 302
        answer = get(emu, f"reports/{TEAMS}(date={day.isoformat()})")
        assert answer.content.startswith(b"\xef\xbb\xbf" + HEADERS[TEAMS].encode() + b"\r\n")
        rows = rows_of(answer.content)
        assert {row["Team Id"] for row in rows} == teams
        assert all(row["Report Period"] == "1" for row in rows)
        assert all(row["Team Type"] in {"Public", "Private"} for row in rows)
        assert all(int(row["Active Users"]) >= 0 for row in rows)
        week = rows_of(get(emu, f"reports/{TEAMS}(period='D7')").content)
        assert {row["Team Id"] for row in week} == teams
        assert all(row["Report Period"] == "7" for row in week)


def test_sign_in_activity_pages_of_120_and_the_two_refusals() -> None:
    tenant = Tenant.synthetic(users=300, groups=4, seed=5, today=TODAY)
    with GraphEmulator(tenant) as emu:
        path = "users?$select=id,userPrincipalName,signInActivity&$top=999"
        without = get(emu, path)
        assert without.status_code == 403
        assert without.json()["error"]["code"] == "Authentication_MSGraphPermissionMissing"
        assert "AuditLog.Read.All" in without.json()["error"]["message"]

        roles = {*emu.app.roles, "AuditLog.Read.All"}
        first = get(emu, path, roles=roles)
        assert first.status_code == 200
        page = first.json()
        assert len(page["value"]) == 120, "$top above 120 gives pages of 120"
        assert "@odata.nextLink" in page
        activity = [user["signInActivity"] for user in page["value"]]
        never = [a for a in activity if a["lastSignInDateTime"] is None]
        signed = [a for a in activity if a["lastSignInDateTime"] is not None]
        assert never, "some users never signed in"
        assert signed
        for item in signed:
            assert STAMP.match(item["lastSignInDateTime"])
            assert GUID.match(item["lastSignInRequestId"])
            assert item["lastNonInteractiveSignInDateTime"] >= item["lastSignInDateTime"]
            # Graph reports sign-ins that happened: none after the emulator's today began.
            assert item["lastNonInteractiveSignInDateTime"] < TODAY.isoformat()
            assert item["lastSuccessfulSignInDateTime"] in {
                item["lastSignInDateTime"],
                item["lastNonInteractiveSignInDateTime"],
            }
        # Without signInActivity the usual cap of 999 applies.
        plain = get(emu, "users?$select=id&$top=999", roles=roles).json()
        assert len(plain["value"]) == len(tenant.users)

        tenant.entra_premium = False
        refused = get(emu, path, roles=roles)
        assert refused.status_code == 403
        assert (
            refused.json()["error"]["code"]
            == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
        )
