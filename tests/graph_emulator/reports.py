"""Microsoft 365 usage reports: `GET /v1.0/reports/<function>` and the report download host.

What is emulated, and where it comes from (docs = Microsoft Graph reportRoot pages,
https://learn.microsoft.com/graph/api/resources/report?view=graph-rest-1.0; obs = observed by
third parties and reported in public issue threads and blog posts):

- Every v1.0 per-user / per-site / per-group detail report, with the CSV header line of the docs
  (`REPORTS`). Parameter forms: `period='D7|D30|D90|D180'` (quoted string), `date=YYYY-MM-DD`
  (unquoted Edm.Date); getMailboxUsageDetail takes only period, getOffice365ActivationsUserDetail
  takes nothing (docs).
- A successful call answers `302 Found`, `Content-Type: text/plain`, `Location:` a pre-authenticated
  URL on another host that lives a few minutes (docs). Except getMicrosoft365CopilotUsageUserDetail,
  served under `/v1.0/copilot/reports/` (v1.0 CSDL: bound to copilotReportRoot, period only),
  whose v1.0 page documents `200 OK` with the CSV in the body; `copilot_redirect` switches it to
  the 302 form so clients are tested against both.
- getTeamsTeamActivityDetail takes period or date= (v1.0 page and CSDL), one row per team (a
  group provisioned as a Team). The download answers `200`,
  `application/octet-stream`, UTF-8 BOM, CRLF line ends, standard CSV quoting (obs), streamed.
  Here a download URL is also single-use (an emulator choice, so a tap cannot rely on reusing one).
- `If-None-Match` with the report file's current eTag answers `304 Not Modified` (docs: "If this
  request header is included and the eTag provided matches the current tag on the file"). The docs
  do not say where the eTag is published; the emulator sends it as `ETag` on the download.
- `Report Refresh Date` is the last processed day, `tenant.today - refresh_lag_days` (docs: data
  "typically becomes available within 48 hours"). `period='Dn'` rows cover the n days ending there
  and carry `Report Period` = n (docs). `date=` rows describe that one day; their `Report Period`
  is `1` (unconfirmed: no doc shows a date= file). A date older than 28 days before the refresh
  date is rejected (obs); a date after the refresh date is accepted and yields a header-only file
  (unconfirmed: the docs are silent; obs issue #5536 shows a header-only file for a valid day).
- Errors (obs): quoted date -> 400 "Expression of type 'Edm.String' cannot be converted to type
  'Edm.Date'"; old date -> 400 InvalidArgument "Invalid date value specified: ... Only support data
  for the past 28 days."; unknown function -> 404 UnknownError wrapping InvalidArgument "The
  requested function cannot be found."; no Reports.Read.All -> 403 S2SUnauthorized "Invalid
  permission.". Unconfirmed choices: a parameter form a function lacks (period on the activations
  report, date on mailbox usage, both or neither) is answered like an unknown function; an unknown
  period value -> 400 InvalidArgument; an unquoted period or a malformed date -> 400 BadRequest.
- Throttling (docs, concepts/throttling-limits): per report function, 14 CSV requests per 10
  minutes per app per tenant and 40 per tenant across apps; a throttled request gets 429
  TooManyRequests with `Retry-After`. Throttled requests are not counted here, so Retry-After is
  exactly when a slot frees (the real service says throttled requests count).
- Concealed names (obs, 2021 and 2022 announcements): user, group and site names and group ids
  become 32 upper-case hex characters, the same for the same value in every report and day.

Deterministic usage values come from `activity.ActivityModel`; rows are derived from the tenant
when the report is requested and generated lazily while the download streams.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import hashlib
import io
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from tests.graph_emulator.activity import ActivityModel, Subject, object_key
from tests.graph_emulator.http import EmulatorResponse, graph_date, graph_error, json_response

if TYPE_CHECKING:
    from tests.graph_emulator.faults import FileFault
    from tests.graph_emulator.http import EmulatorRequest


class TenantLike(Protocol):
    """The attributes of the emulator's Tenant that reports read (read-only here)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def seed(self) -> Any: ...
    @property
    def today(self) -> date: ...
    @property
    def users(self) -> Mapping[str, dict[str, Any]]: ...
    @property
    def deleted_users(self) -> Mapping[str, dict[str, Any]]: ...
    @property
    def groups(self) -> Mapping[str, dict[str, Any]]: ...
    @property
    def skus(self) -> Any:  # list of subscribedSku dicts, or a mapping skuId -> subscribedSku
        ...


# --------------------------------------------------------------------------------------------
# Report definitions: the CSV header lines of each report's v1.0 API page (Response section),
# verbatim.
# --------------------------------------------------------------------------------------------

PERIODS: Final = {"D7": 7, "D30": 30, "D90": 90, "D180": 180}
PERIOD_OR_DATE: Final = ("period", "date")
PERIOD_ONLY: Final = ("period",)
NO_PARAMETERS: Final[tuple[str, ...]] = ()

HEADERS: Final[dict[str, str]] = {
    "getOffice365ActiveUserDetail": "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Has Exchange License,Has OneDrive License,Has SharePoint License,Has Skype For Business License,Has Yammer License,Has Teams License,Exchange Last Activity Date,OneDrive Last Activity Date,SharePoint Last Activity Date,Skype For Business Last Activity Date,Yammer Last Activity Date,Teams Last Activity Date,Exchange License Assign Date,OneDrive License Assign Date,SharePoint License Assign Date,Skype For Business License Assign Date,Yammer License Assign Date,Teams License Assign Date,Assigned Products",  # noqa: E501
    "getOffice365ActivationsUserDetail": "Report Refresh Date,User Principal Name,Display Name,Product Type,Last Activated Date,Windows,Mac,Windows 10 Mobile,iOS,Android,Activated On Shared Computer",  # noqa: E501
    "getM365AppUserDetail": "Report Refresh Date,User Principal Name,Last Activation Date,Last Activity Date,Report Period,Windows,Mac,Mobile,Web,Outlook,Word,Excel,PowerPoint,OneNote,Teams,Outlook (Windows),Word (Windows),Excel (Windows),PowerPoint (Windows),OneNote (Windows),Teams (Windows),Outlook (Mac),Word (Mac),Excel (Mac),PowerPoint (Mac),OneNote (Mac),Teams (Mac),Outlook (Mobile),Word (Mobile),Excel (Mobile),PowerPoint (Mobile),OneNote (Mobile),Teams (Mobile),Outlook (Web),Word (Web),Excel (Web),PowerPoint (Web),OneNote (Web),Teams (Web)",  # noqa: E501
    "getEmailActivityUserDetail": "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,Meeting Interacted Count,Assigned Products,Report Period",  # noqa: E501
    "getEmailAppUsageUserDetail": "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Last Activity Date,Mail For Mac,Outlook For Mac,Outlook For Windows,Outlook For Mobile,Other For Mobile,Outlook For Web,POP3 App,IMAP4 App,SMTP App,Report Period",  # noqa: E501
    # The doc's download example lacks the two columns its column list adds; 5.3 says emit 17.
    "getMailboxUsageDetail": "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Report Period",  # noqa: E501
    "getOneDriveActivityUserDetail": "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,Viewed Or Edited File Count,Synced File Count,Shared Internally File Count,Shared Externally File Count,Assigned Products,Report Period",  # noqa: E501
    "getOneDriveUsageAccountDetail": "Report Refresh Date,Site URL,Owner Display Name,Is Deleted,Last Activity Date,File Count,Active File Count,Storage Used (Byte),Storage Allocated (Byte),Owner Principal Name,Report Period",  # noqa: E501
    "getSharePointActivityUserDetail": "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,Viewed Or Edited File Count,Synced File Count,Shared Internally File Count,Shared Externally File Count,Visited Page Count,Assigned Products,Report Period",  # noqa: E501
    "getSharePointSiteUsageDetail": "Report Refresh Date,Site Id,Site URL,Owner Display Name,Is Deleted,Last Activity Date,File Count,Active File Count,Page View Count,Visited Page Count,Storage Used (Byte),Storage Allocated (Byte),Root Web Template,Owner Principal Name,Report Period",  # noqa: E501
    "getTeamsUserActivityUserDetail": "Report Refresh Date,Tenant Display Name,Shared Channel Tenant Display Names,User Id,User Principal Name,Last Activity Date,Is Deleted,Deleted Date,Assigned Products,Team Chat Message Count,Private Chat Message Count,Call Count,Meeting Count,Post Messages,Reply Messages,Urgent Messages,Meetings Organized Count,Meetings Attended Count,Ad Hoc Meetings Organized Count,Ad Hoc Meetings Attended Count,Scheduled One-time Meetings Organized Count,Scheduled One-time Meetings Attended Count,Scheduled Recurring Meetings Organized Count,Scheduled Recurring Meetings Attended Count,Audio Duration,Video Duration,Screen Share Duration,Audio Duration In Seconds,Video Duration In Seconds,Screen Share Duration In Seconds,Has Other Action,Is Licensed,Report Period",  # noqa: E501
    "getTeamsDeviceUsageUserDetail": "Report Refresh Date,User Id,User Principal Name,Last Activity Date,Is Deleted,Deleted Date,Used Web,Used Windows Phone,Used iOS,Used Mac,Used Android Phone,Used Windows,Used Chrome OS,Used Linux,Is Licensed,Report Period",  # noqa: E501
    "getYammerActivityUserDetail": "Report Refresh Date,User Principal Name,Display Name,User State,State Change Date,Last Activity Date,Posted Count,Read Count,Liked Count,Assigned Products,Report Period",  # noqa: E501
    "getYammerDeviceUsageUserDetail": "Report Refresh Date,User Principal Name,Display Name,User State,State Change Date,Last Activity Date,Used Web,Used Windows Phone,Used Android Phone,Used iPhone,Used iPad,Used Others,Report Period",  # noqa: E501
    "getYammerGroupsActivityDetail": "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Office 365 Connected,Member Count,Posted Count,Read Count,Liked Count,Report Period",  # noqa: E501
    "getSkypeForBusinessActivityUserDetail": "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,Total Peer-to-peer Session Count,Total Organized Conference Count,Total Participated Conference Count,Peer-to-peer Last Activity Date,Organized Conference Last Activity Date,Participated Conference Last Activity Date,Peer-to-peer IM Count,Peer-to-peer Audio Count,Peer-to-peer Audio Minutes,Peer-to-peer Video Count,Peer-to-peer Video Minutes,Peer-to-peer App Sharing Count,Peer-to-peer File Transfer Count,Organized Conference IM Count,Organized Conference Audio/Video Count,Organized Conference Audio/Video Minutes,Organized Conference App Sharing Count,Organized Conference Web Count,Organized Conference Dial-in/out 3rd Party Count,Organized Conference Dial-in/out Microsoft Count,Organized Conference Dial-in Microsoft Minutes,Organized Conference Dial-out Microsoft Minutes,Participated Conference IM Count,Participated Conference Audio/Video Count,Participated Conference Audio/Video Minutes,Participated Conference App Sharing Count,Participated Conference Web Count,Participated Conference Dial-in/out 3rd Party Count,Assigned Products,Report Period",  # noqa: E501
    "getSkypeForBusinessDeviceUsageUserDetail": "Report Refresh Date,User Principal Name,Last Activity Date,Used Windows,Used Windows Phone,Used Android Phone,Used iPhone,Used iPad,Report Period",  # noqa: E501
    # https://learn.microsoft.com/graph/api/reportroot-getteamsteamactivitydetail?view=graph-rest-1.0
    # The page's CSV example line (its column list writes "Team type", "Active users").
    "getTeamsTeamActivityDetail": "Report Refresh Date,Team Name,Team Id,Team Type,Last Activity Date,Report Period,Active Users,Active Channels,Guests,Reactions,Meetings Organized,Post Messages,Reply Messages,Channel Messages,Urgent Messages,Mentions,Active Shared Channels,Active External Users",  # noqa: E501
    # https://learn.microsoft.com/microsoft-365/copilot/extensibility/api/admin-settings/reports/copilotreportroot-getmicrosoft365copilotusageuserdetail
    # version v1 (the default), v1.0 CSV example.
    "getMicrosoft365CopilotUsageUserDetail": "Report Refresh Date,User Principal Name,Display Name,Last Activity Date,Copilot Chat Last Activity Date,Microsoft Teams Copilot Last Activity Date,Word Copilot Last Activity Date,Excel Copilot Last Activity Date,PowerPoint Copilot Last Activity Date,Outlook Copilot Last Activity Date,OneNote Copilot Last Activity Date,Loop Copilot Last Activity Date,Report Period",  # noqa: E501
    "getOffice365GroupsActivityDetail": "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,Guest Count,Exchange Received Email Count,SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,Yammer Liked Message Count,Exchange Mailbox Total Item Count,Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,SharePoint Site Storage Used (Byte),Group Id,Report Period",  # noqa: E501
}

# Columns replaced by pseudonyms when concealed names are on (the tenant default since 2021:
# https://learn.microsoft.com/graph/api/resources/adminreportsettings?view=graph-rest-1.0).
CONCEALED_COLUMNS: Final = frozenset(
    {
        "User Principal Name",
        "Display Name",
        "Owner Principal Name",
        "Owner Display Name",
        "Site URL",
        "Group Display Name",
        "Group Id",
    }
)

# subscribedSku.skuPartNumber -> the product name reports print in Assigned Products (obs:
# names, upper case, joined with '+'; note that one real name itself contains ' + ').
PRODUCT_NAMES: Final[dict[str, str]] = {
    "ENTERPRISEPREMIUM": "OFFICE 365 E5",
    "ENTERPRISEPACK": "OFFICE 365 E3",
    "STANDARDPACK": "OFFICE 365 E1",
    "DESKLESSPACK": "OFFICE 365 F3",
    "SPE_E5": "MICROSOFT 365 E5",
    "SPE_E3": "MICROSOFT 365 E3",
    "SPE_F1": "MICROSOFT 365 F3",
    "SPB": "MICROSOFT 365 BUSINESS PREMIUM",
    "O365_BUSINESS_PREMIUM": "MICROSOFT 365 BUSINESS STANDARD",
    "O365_BUSINESS_ESSENTIALS": "MICROSOFT 365 BUSINESS BASIC",
    "O365_BUSINESS": "MICROSOFT 365 APPS FOR BUSINESS",
    "OFFICESUBSCRIPTION": "MICROSOFT 365 APPS FOR ENTERPRISE",
    "Microsoft_365_Copilot": "MICROSOFT 365 COPILOT",
    "EMS": "ENTERPRISE MOBILITY + SECURITY E3",
    "EMSPREMIUM": "ENTERPRISE MOBILITY + SECURITY E5",
    "EXCHANGESTANDARD": "EXCHANGE ONLINE (PLAN 1)",
    "EXCHANGEENTERPRISE": "EXCHANGE ONLINE (PLAN 2)",
    "POWER_BI_PRO": "POWER BI PRO",
    "POWER_BI_STANDARD": "MICROSOFT FABRIC (FREE)",
    "FLOW_FREE": "MICROSOFT POWER AUTOMATE FREE",
    "VISIOCLIENT": "VISIO PLAN 2",
    "PROJECTPROFESSIONAL": "PROJECT PLAN 3",
    "TEAMS_EXPLORATORY": "MICROSOFT TEAMS EXPLORATORY",
    "Microsoft_Teams_Enterprise_New": "MICROSOFT TEAMS ENTERPRISE",
}

# Office client service plans -> the activation report's Product Type.
ACTIVATION_PRODUCTS: Final[dict[str, str]] = {
    "OFFICESUBSCRIPTION": "MICROSOFT 365 APPS FOR ENTERPRISE",
    "OFFICE_BUSINESS": "MICROSOFT 365 APPS FOR BUSINESS",
    "VISIO_CLIENT_SUBSCRIPTION": "VISIO ONLINE PLAN 2",
    "PROJECT_CLIENT_SUBSCRIPTION": "PROJECT ONLINE DESKTOP CLIENT",
}

_USER_WORKLOADS: Final = ("exchange", "onedrive", "sharepoint", "skype", "yammer", "teams")
_GUEST_WORKLOADS: Final = frozenset({"teams", "sharepoint"})  # guests use these unlicensed

ONEDRIVE_QUOTA: Final = 1099511627776  # 1 TB
SITE_QUOTA: Final = 27487790694400  # 25 TB, the tenant default shown for sites
MAILBOX_QUOTAS: Final = (105226698752, 106300440576, 107374182400)  # 98, 99, 100 GB
DELETED_ITEM_QUOTA: Final = 32212254720  # 30 GB
CHUNK_BYTES: Final = 64 * 1024
BOM: Final = "\ufeff".encode()


_PLAN_WORKLOADS: Final[dict[str, frozenset[str]]] = {
    **dict.fromkeys(
        ("EXCHANGE_S_ENTERPRISE", "EXCHANGE_S_STANDARD", "EXCHANGE_S_DESKLESS", "EXCHANGEDESKLESS"),
        frozenset({"exchange"}),
    ),
    # SharePoint plans include OneDrive; SHAREPOINTWAC (Office for the web) and
    # SHAREPOINT_PROJECT (Project Online) license neither.
    **dict.fromkeys(
        (
            "SHAREPOINTENTERPRISE",
            "SHAREPOINTSTANDARD",
            "SHAREPOINTDESKLESS",
            "SHAREPOINT_S_DEVELOPER",
        ),
        frozenset({"sharepoint", "onedrive"}),
    ),
    **dict.fromkeys(
        ("ONEDRIVE_BASIC", "ONEDRIVESTANDARD", "ONEDRIVEENTERPRISE"), frozenset({"onedrive"})
    ),
    **dict.fromkeys(
        ("TEAMS1", "TEAMS_GOV", "TEAMS_AR_GCCHIGH", "TEAMS_AR_DOD"), frozenset({"teams"})
    ),
    **dict.fromkeys(
        ("YAMMER_ENTERPRISE", "YAMMER_EDU", "YAMMER_MIDSIZE", "VIVAENGAGE_CORE"),
        frozenset({"yammer"}),
    ),
    **dict.fromkeys(("MCOSTANDARD", "MCOIMP"), frozenset({"skype"})),
    **dict.fromkeys(ACTIVATION_PRODUCTS, frozenset({"office"})),
}


def workloads_of_plan(name: str) -> frozenset[str]:
    """Report workloads a service plan (servicePlanName) licenses."""
    return _PLAN_WORKLOADS.get(name, frozenset())


def product_name(part_number: str) -> str:
    """Display name of a SKU as reports print it."""
    return PRODUCT_NAMES.get(part_number, part_number.replace("_", " ").upper())


def conceal(tenant_id: str, value: str) -> str:
    """The stable 32-hex-character pseudonym of a name, URL or id."""
    if not value:
        return value
    digest = hashlib.blake2b(f"{tenant_id}|{value}".encode(), digest_size=16)
    return digest.hexdigest().upper()


def _day(value: Any) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def _text(day: date | None) -> str:
    return day.isoformat() if day else ""


def _tf(flag: bool) -> str:
    return "True" if flag else "False"


def _yn(flag: bool) -> str:
    return "Yes" if flag else "No"


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------------------------
# The tenant as one report sees it (taken when the report is requested).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The days a report file describes."""

    refresh: date  # Report Refresh Date
    start: date
    end: date
    report_period: str  # "7", "30", ... for period=; "1" for date=; unused by period-less reports


@dataclass(frozen=True)
class Licensing:
    """What one combination of assigned licenses grants."""

    products: str  # Assigned Products
    product_types: tuple[str, ...]  # activation report Product Types
    plans: dict[str, tuple[str, ...]]  # workload -> enabled service plan ids granting it


@dataclass
class Snapshot:
    """Tenant state captured when the report was requested."""

    tenant_id: str
    domain: str
    users: list[dict[str, Any]]
    deleted_users: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    skus: list[dict[str, Any]]
    model: ActivityModel
    extra_rows: int
    deleted_groups: list[dict[str, Any]] = field(default_factory=list)
    group_members: dict[str, list[str]] = field(default_factory=dict)  # group id -> user ids
    idle_since: dict[str, date] = field(default_factory=dict)  # disabled account -> since
    plan_workloads: dict[str, frozenset[str]] = field(default_factory=dict)  # servicePlanId ->
    plan_products: dict[str, str] = field(default_factory=dict)  # servicePlanId -> Product Type
    sku_plans: dict[str, list[str]] = field(default_factory=dict)  # skuId -> servicePlanIds
    sku_names: dict[str, str] = field(default_factory=dict)  # skuId -> product name
    _licensing: dict[tuple[tuple[str, tuple[str, ...]], ...], Licensing] = field(
        default_factory=dict
    )
    host_prefix: str = ""
    personal_sites: str = ""

    def __post_init__(self) -> None:
        # `contoso` for contoso.onmicrosoft.com: SharePoint and OneDrive host names.
        self.host_prefix = re.sub(r"[^a-z0-9]", "", self.domain.split(".")[0].lower()) or "tenant"
        self.personal_sites = f"https://{self.host_prefix}-my.sharepoint.com/personal/"
        for sku in self.skus:
            sku_id = str(sku.get("skuId", ""))
            self.sku_names[sku_id] = product_name(str(sku.get("skuPartNumber", sku_id)))
            plans = self.sku_plans.setdefault(sku_id, [])
            for plan in sku.get("servicePlans", []):
                plan_id = str(plan.get("servicePlanId", ""))
                name = str(plan.get("servicePlanName", ""))
                plans.append(plan_id)
                self.plan_workloads[plan_id] = workloads_of_plan(name)
                if name in ACTIVATION_PRODUCTS:
                    self.plan_products[plan_id] = ACTIVATION_PRODUCTS[name]

    def licensing(self, licenses: list[dict[str, Any]]) -> Licensing:
        """What a set of assignedLicenses grants (cached: most users share a few sets)."""
        key = tuple(
            (str(item.get("skuId", "")), tuple(sorted(map(str, item.get("disabledPlans") or []))))
            for item in licenses
        )
        found = self._licensing.get(key)
        if found is None:
            plans: dict[str, list[str]] = {}
            product_types: list[str] = []
            for sku_id, disabled in key:
                for plan_id in self.sku_plans.get(sku_id, []):
                    if plan_id in disabled:
                        continue
                    for workload in self.plan_workloads.get(plan_id, ()):
                        plans.setdefault(workload, []).append(plan_id)
                    product = self.plan_products.get(plan_id)
                    if product and product not in product_types:
                        product_types.append(product)
            found = Licensing(
                products="+".join(self.sku_names.get(sku_id, sku_id) for sku_id, _ in key),
                product_types=tuple(product_types),
                plans={workload: tuple(ids) for workload, ids in plans.items()},
            )
            self._licensing[key] = found
        return found

    @property
    def organization_name(self) -> str:
        """The tenant display name Teams reports print."""
        return self.domain.split(".")[0].capitalize()

    def members(self) -> list[dict[str, Any]]:
        """Member (non-guest) users, for picking owners."""
        return [user for user in self.users if not _is_guest(user)]


_NOT_URL_SAFE: Final = re.compile(r"[^a-z0-9]")


def _is_guest(user: Mapping[str, Any]) -> bool:
    return user.get("userType") == "Guest" or "#EXT#" in str(user.get("userPrincipalName", ""))


class Person:
    """One user as the reports see them: licenses, lifetime and activity."""

    __slots__ = (
        "_assigned",
        "_user",
        "activity",
        "created",
        "deleted",
        "display_name",
        "guest",
        "id",
        "licenses",
        "licensing",
        "upn",
    )

    def __init__(self, user: Mapping[str, Any], snapshot: Snapshot) -> None:
        self._user = user
        self.id = str(user.get("id", ""))
        self.upn = str(user.get("userPrincipalName", ""))
        self.display_name = str(user.get("displayName") or "")
        self.guest = _is_guest(user)
        self.created = _day(user.get("createdDateTime"))
        self.deleted = _day(user.get("deletedDateTime"))
        self.licenses: list[dict[str, Any]] = list(user.get("assignedLicenses") or [])
        self.licensing = snapshot.licensing(self.licenses)
        self._assigned: dict[str, date | None] | None = None
        ended = self.deleted - timedelta(days=1) if self.deleted else None
        idle = [
            day
            for day in (snapshot.idle_since.get(self.id), _day(user.get("employeeLeaveDateTime")))
            if day
        ]
        self.activity: Subject = snapshot.model.subject(
            self.id, self.created, ended, min(idle) if idle else None
        )

    @property
    def products(self) -> str:
        """Assigned Products: product names joined with '+'."""
        return self.licensing.products

    @property
    def product_types(self) -> tuple[str, ...]:
        """Office client products (activation report rows)."""
        return self.licensing.product_types

    @property
    def assigned(self) -> dict[str, date | None]:
        """Workload -> first assignment day of a plan granting it (assignedPlans, else created)."""
        if self._assigned is None:
            granting = self.licensing.plans
            wanted = {plan_id for plan_ids in granting.values() for plan_id in plan_ids}
            when: dict[str, date | None] = {}
            for plan in self._user.get("assignedPlans") or []:
                plan_id = plan.get("servicePlanId")
                if plan_id in wanted and plan.get("capabilityStatus", "Enabled") == "Enabled":
                    when[plan_id] = _day(plan.get("assignedDateTime"))
            self._assigned = {}
            for workload, plan_ids in granting.items():
                days = [day for day in (when.get(plan_id) for plan_id in plan_ids) if day]
                self._assigned[workload] = min(days) if days else self.created
        return self._assigned

    def licensed_since(self, sku_id: str) -> date | None:
        """The day an active assignment of the SKU began (its licenseAssignmentState's
        lastUpdatedDateTime), or None when the user does not hold it."""
        days = [
            _day(state.get("lastUpdatedDateTime"))
            for state in self._user.get("licenseAssignmentStates") or []
            if str(state.get("skuId")) == sku_id and state.get("state") == "Active"
        ]
        held = [day for day in days if day]
        return min(held) if held else None

    def exists_on(self, day: date) -> bool:
        """Whether the account existed on that day."""
        return self.created is None or self.created <= day

    def deleted_by(self, day: date) -> bool:
        """Whether the account was deleted on or before that day."""
        return self.deleted is not None and self.deleted <= day

    def deleted_text(self, day: date) -> str:
        """Deleted Date as seen on that day."""
        return _text(self.deleted) if self.deleted_by(day) else ""

    def licensed(self, workload: str) -> bool:
        """Whether a license currently covers the workload."""
        return workload in self.licensing.plans

    def uses(self, workload: str) -> bool:
        """Whether the person can have activity in the workload."""
        return workload in self.licensing.plans or (self.guest and workload in _GUEST_WORKLOADS)

    def last(self, workload: str, day: date) -> str:
        """Last activity date on or before `day`, or empty."""
        if not self.uses(workload):
            return ""
        return _text(self.activity.last_active(workload, day))

    def days(self, workload: str, window: Window) -> int:
        """Active days in the window."""
        if not self.uses(workload):
            return 0
        return self.activity.active_days(workload, window.start, window.end)

    def count(self, workload: str, metric: str, window: Window, mean: float) -> int:
        """An activity count over the window."""
        if not self.uses(workload) and workload != "mail_received":
            return 0
        return self.activity.count(workload, metric, window.start, window.end, mean)

    def trait(self, share: float, *salt: str | int) -> bool:
        """A stable yes/no property of this person."""
        return self.activity.uniform("trait", *salt) < share


def _people(snapshot: Snapshot, end: date) -> Iterator[Person]:
    """Everyone the directory knew on `end`, deleted users last."""
    for user in snapshot.users:
        person = Person(user, snapshot)
        if person.exists_on(end):
            yield person
    for user in snapshot.deleted_users:
        person = Person(user, snapshot)
        if person.deleted is None:
            person.deleted = end  # a deleted user without deletedDateTime: deleted by now
        if person.exists_on(end):
            yield person


# Synthetic rows (ReportService.extra_rows) reuse this many activity profiles, so a 200,000-row
# report costs one row computation per profile plus string work per row.
BULK_PROFILES: Final = 499


@lru_cache(maxsize=64)
def _bulk_prefix(tenant_id: str, kind: str) -> str:
    return hashlib.blake2b(f"{tenant_id}/{kind}".encode(), digest_size=4).hexdigest()


def _bulk_id(snapshot: Snapshot, kind: str, index: int) -> str:
    """A GUID-shaped id for synthetic object `index` of a kind."""
    return f"{_bulk_prefix(snapshot.tenant_id, kind)}-b01c-4000-8000-{index:012d}"


def _bulk_person(snapshot: Snapshot, slot: int) -> Person:
    """A licensed member standing for every synthetic user of one profile slot; one slot in
    five also holds Microsoft 365 Copilot when the tenant has it (its report's synthetic rows)."""
    template = next(
        (user for user in snapshot.users if user.get("assignedLicenses")),
        {"assignedLicenses": [{"skuId": sku.get("skuId")} for sku in snapshot.skus[:1]]},
    )
    licenses = list(template.get("assignedLicenses") or [])
    if slot % 5 == 0 and any(str(sku.get("skuId")) == COPILOT_SKU_ID for sku in snapshot.skus):
        licenses.append({"skuId": COPILOT_SKU_ID, "disabledPlans": []})
    return Person(
        {
            "id": _bulk_id(snapshot, "profile", slot),
            "userPrincipalName": "",
            "displayName": "",
            "userType": "Member",
            "createdDateTime": "2021-03-01T09:00:00Z",
            "assignedLicenses": licenses,
        },
        snapshot,
    )


Identity = dict[str, Callable[[int], str]]  # column -> value for synthetic object `index`


def _bulk_person_identity(snapshot: Snapshot) -> Identity:
    domain = snapshot.domain
    onedrive = _personal_site_url(snapshot, f"bulk.user@{domain}").replace("@", "", 1)
    return {
        "User Principal Name": lambda index: f"bulk.user{index:06d}@{domain}",
        "Display Name": lambda index: f"Bulk User {index:06d}",
        "User Id": lambda index: _bulk_id(snapshot, "user", index),
        "Owner Principal Name": lambda index: f"bulk.user{index:06d}@{domain}",
        "Owner Display Name": lambda index: f"Bulk User {index:06d}",
        # bulk_user_contoso_com -> bulk_user000123_contoso_com
        "Site URL": lambda index: onedrive.replace("bulk_user", f"bulk_user{index:06d}", 1),
    }


def _bulk_rows(
    snapshot: Snapshot, profile_rows: Callable[[int], list[Row]], identity: Identity
) -> Iterator[Row]:
    """`extra_rows` rows: a profile's cached rows with each synthetic object's own identity.

    Rows, not objects, are counted: a report that leaves some objects out (only Yammer-connected
    groups are in the Yammer groups report) still gets `extra_rows` more rows, so a benchmark's
    large day is as large for every report. A report whose profiles give no row at all gets none.
    """
    profiles: dict[int, list[Row]] = {}
    wanted: list[tuple[str, Callable[[int], str]]] | None = None
    served = 0
    index = 0
    while served < snapshot.extra_rows:
        slot = index % BULK_PROFILES
        rows = profiles.get(slot)
        if rows is None:
            rows = profiles[slot] = profile_rows(slot)
        if not rows:
            if index == BULK_PROFILES - 1 and not any(profiles.values()):
                return
            index += 1
            continue
        if wanted is None:
            wanted = [(column, make) for column, make in identity.items() if column in rows[0]]
        for row in rows[: snapshot.extra_rows - served]:
            out = dict(row)
            for column, make in wanted:
                out[column] = make(index)
            yield out
            served += 1
        index += 1


@dataclass
class Place:
    """A SharePoint site or Microsoft 365 group as the reports see it."""

    id: str
    name: str
    url: str
    template: str
    visibility: str
    owner_upn: str
    owner_name: str
    member_count: int
    guest_count: int
    yammer: bool
    deleted: bool
    activity: Subject


def _places(snapshot: Snapshot, groups_only: bool, bulk_slot: int | None = None) -> Iterator[Place]:
    """Microsoft 365 groups (each with its team site); the root site unless `groups_only`.

    With `bulk_slot`, only the synthetic group standing for that profile slot.
    """
    members = snapshot.members()
    by_id = {str(user.get("id")): user for user in snapshot.users}
    model = snapshot.model
    prefix = snapshot.host_prefix

    def place(group: Mapping[str, Any], deleted: bool = False) -> Place:
        group_id = str(group.get("id", ""))
        subject = model.subject(group_id, _day(group.get("createdDateTime")))
        listed = snapshot.group_members.get(group_id)
        owner: Mapping[str, Any] = next(
            (by_id[uid] for uid in listed or () if uid in by_id and not _is_guest(by_id[uid])), {}
        )
        if not owner and members:
            owner = members[int(subject.uniform("owner") * len(members))]
        name = str(group.get("displayName") or "")
        nickname = str(group.get("mailNickname") or re.sub(r"[^A-Za-z0-9]", "", name) or group_id)
        return Place(
            id=group_id,
            name=name,
            url=f"https://{prefix}.sharepoint.com/sites/{nickname}",
            template="Group",
            visibility=str(
                group.get("visibility") or ("Public" if subject.uniform("vis") < 0.4 else "Private")
            ),
            owner_upn=str(owner.get("userPrincipalName", "")),
            owner_name=str(owner.get("displayName", "")),
            member_count=len(listed)
            if listed is not None
            else 2 + int(subject.uniform("members") * 40),
            guest_count=sum(1 for uid in listed if _is_guest(by_id.get(uid, {})))
            if listed is not None
            else int(subject.uniform("guests") * 3),
            yammer=subject.uniform("yammer") < 0.4,
            deleted=deleted,
            activity=subject,
        )

    if bulk_slot is not None:
        group_id = _bulk_id(snapshot, "group-profile", bulk_slot)
        yield place({"id": group_id, "groupTypes": ["Unified"], "createdDateTime": "2021-03-01"})
        return
    if not groups_only:
        root_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{snapshot.tenant_id}/root-site"))
        yield Place(
            id=root_id,
            name="Communication site",
            url=f"https://{prefix}.sharepoint.com/",
            template="Communication Site",
            visibility="Public",
            owner_upn="",
            owner_name="",
            member_count=0,
            guest_count=0,
            yammer=False,
            deleted=False,
            activity=model.subject(root_id),
        )
    for group in snapshot.groups:
        if "Unified" in (group.get("groupTypes") or []):
            yield place(group)
    for group in snapshot.deleted_groups:
        if "Unified" in (group.get("groupTypes") or []):
            yield place(group, deleted=True)


# --------------------------------------------------------------------------------------------
# Row builders: one function per report, returning documented column name -> value.
# --------------------------------------------------------------------------------------------

Row = dict[str, str]


def _user_common(person: Person, window: Window) -> Row:
    return {
        "User Principal Name": person.upn,
        "Display Name": person.display_name,
        "Is Deleted": _tf(person.deleted_by(window.end)),
        "Deleted Date": person.deleted_text(window.end),
        "Assigned Products": person.products,
    }


_ACTIVE_USER_COLUMNS: Final = tuple(
    (
        workload,
        f"Has {label} License",
        f"{label} Last Activity Date",
        f"{label} License Assign Date",
    )
    for label, workload in zip(
        ("Exchange", "OneDrive", "SharePoint", "Skype For Business", "Yammer", "Teams"),
        _USER_WORKLOADS,
        strict=True,
    )
)


def _active_user_detail(person: Person, window: Window, snapshot: Snapshot) -> Iterator[Row]:
    row = _user_common(person, window)
    for workload, has_license, last_activity, assigned in _ACTIVE_USER_COLUMNS:
        licensed = person.licensed(workload)
        row[has_license] = _tf(licensed)
        row[last_activity] = person.last(workload, window.end)
        row[assigned] = _text(person.assigned.get(workload)) if licensed else ""
    yield row


def _activation_date(person: Person, refresh: date) -> date | None:
    if not person.activity.adopts("office"):
        return None
    assigned = person.assigned.get("office") or person.created or refresh
    latest = refresh - timedelta(days=int(person.activity.uniform("activated") * 200))
    return min(max(assigned, latest), refresh)


def _activations_user_detail(person: Person, window: Window, snapshot: Snapshot) -> Iterator[Row]:
    if person.deleted_by(window.end):
        return
    activated = _activation_date(person, window.refresh)
    for index, product in enumerate(person.product_types):
        used = activated is not None

        def devices(
            share: float, most: int, salt: str, *, used: bool = used, index: int = index
        ) -> str:
            if not used or not person.trait(share, salt, index):
                return "0"
            return str(1 + int(person.activity.uniform(salt, "n", index) * most))

        windows = devices(0.85, 3, "win")
        yield {
            "User Principal Name": person.upn,
            "Display Name": person.display_name,
            "Product Type": product,
            "Last Activated Date": _text(activated),
            "Windows": windows,
            "Mac": devices(0.15, 1, "mac"),
            "Windows 10 Mobile": "0",
            "iOS": devices(0.4, 2, "ios"),
            "Android": devices(0.25, 1, "android"),
            "Activated On Shared Computer": _tf(used and person.trait(0.05, "shared", index)),
        }


_M365_APPS: Final = (
    ("Outlook", 0.9),
    ("Word", 0.8),
    ("Excel", 0.75),
    ("PowerPoint", 0.6),
    ("OneNote", 0.3),
    ("Teams", 0.85),
)
_M365_PLATFORMS: Final = (("Windows", 0.85), ("Mac", 0.15), ("Mobile", 0.5), ("Web", 0.6))


def _m365_app_user_detail(person: Person, window: Window, snapshot: Snapshot) -> Iterator[Row]:
    if not person.licensed("office"):
        return
    active = person.days("office", window) > 0
    row = {
        "User Principal Name": person.upn,
        "Last Activation Date": _text(_activation_date(person, window.refresh)),
        "Last Activity Date": person.last("office", window.end),
    }
    platforms = {
        name: active and person.trait(share, "platform", name) for name, share in _M365_PLATFORMS
    }
    apps = {name: active and person.trait(share, "app", name) for name, share in _M365_APPS}
    for name, used in {**platforms, **apps}.items():
        row[name] = _yn(used)
    for platform, on_platform in platforms.items():
        for app, uses_app in apps.items():
            row[f"{app} ({platform})"] = _yn(
                on_platform and uses_app and person.trait(0.8, app, platform)
            )
    yield row


def _email_activity_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.licensed("exchange"):
        return
    row = _user_common(person, window)
    row.update(
        {
            "Last Activity Date": person.last("exchange", window.end),
            "Send Count": str(person.count("exchange", "send", window, 6)),
            "Receive Count": str(person.count("mail_received", "receive", window, 25)),
            "Read Count": str(person.count("exchange", "read", window, 20)),
            "Meeting Created Count": str(person.count("exchange", "meeting_created", window, 0.6)),
            "Meeting Interacted Count": str(
                person.count("exchange", "meeting_interacted", window, 1.5)
            ),
        }
    )
    yield row


_EMAIL_APPS: Final = (
    ("Mail For Mac", 0.05, ("Undetermined",)),
    ("Outlook For Mac", 0.12, ("Outlook 2016", "Outlook 2019", "Outlook M365")),
    ("Outlook For Windows", 0.75, ("Outlook 2016", "Outlook 2019", "Outlook M365", "Outlook M365")),
    ("Outlook For Mobile", 0.55, ("Undetermined",)),
    ("Other For Mobile", 0.08, ("Undetermined",)),
    ("Outlook For Web", 0.6, ("Undetermined",)),
    ("POP3 App", 0.01, ("Undetermined",)),
    ("IMAP4 App", 0.02, ("Undetermined",)),
    ("SMTP App", 0.03, ("Undetermined",)),
)


def _email_app_usage_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.licensed("exchange"):
        return
    row = _user_common(person, window)
    row["Last Activity Date"] = person.last("exchange", window.end)
    active = person.days("exchange", window) > 0
    for column, share, versions in _EMAIL_APPS:
        used = active and person.trait(share, "mailapp", column)
        row[column] = person.activity.choice(versions, "version", column) if used else ""
    yield row


def _mailbox_usage_detail(person: Person, window: Window, snapshot: Snapshot) -> Iterator[Row]:
    # Deleted mailboxes are not listed (obs: microsoft-graph-docs issue #10132).
    if not person.licensed("exchange") or person.deleted_by(window.end):
        return
    activity = person.activity
    items = activity.growing("items", window.end, 1500, 18)
    deleted_items = activity.growing("deleted_items", window.end, 40, 1.5)
    row = _user_common(person, window)
    row.update(
        {
            "Created Date": _text(person.assigned.get("exchange") or person.created),
            "Last Activity Date": person.last("exchange", window.end),
            "Item Count": str(items),
            "Storage Used (Byte)": str(
                items * (40_000 + int(activity.uniform("item_size") * 90_000))
            ),
            "Issue Warning Quota (Byte)": str(MAILBOX_QUOTAS[0]),
            "Prohibit Send Quota (Byte)": str(MAILBOX_QUOTAS[1]),
            "Prohibit Send/Receive Quota (Byte)": str(MAILBOX_QUOTAS[2]),
            "Deleted Item Count": str(deleted_items),
            "Deleted Item Size (Byte)": str(deleted_items * 35_000),
            "Deleted Item Quota (Byte)": str(DELETED_ITEM_QUOTA),
            "Has Archive": _tf(person.trait(0.3, "archive")),
        }
    )
    yield row


def _onedrive_activity_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.licensed("onedrive"):
        return
    row = _user_common(person, window)
    row.update(
        {
            "Last Activity Date": person.last("onedrive", window.end),
            "Viewed Or Edited File Count": str(person.count("onedrive", "viewed", window, 5)),
            "Synced File Count": str(person.count("onedrive", "synced", window, 3)),
            "Shared Internally File Count": str(person.count("onedrive", "shared_in", window, 0.5)),
            "Shared Externally File Count": str(
                person.count("onedrive", "shared_out", window, 0.2)
            ),
        }
    )
    yield row


def _personal_site_url(snapshot: Snapshot, upn: str) -> str:
    return snapshot.personal_sites + _NOT_URL_SAFE.sub("_", upn.lower())


def _onedrive_usage_account_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.licensed("onedrive"):
        return
    activity = person.activity
    files = activity.growing("od_files", window.end, 300, 1.2)
    yield {
        "Site URL": _personal_site_url(snapshot, person.upn),
        "Owner Display Name": person.display_name,
        "Is Deleted": _tf(person.deleted_by(window.end)),
        "Last Activity Date": person.last("onedrive", window.end),
        "File Count": str(files),
        "Active File Count": str(person.count("onedrive", "active_files", window, 4)),
        "Storage Used (Byte)": str(
            activity.growing("od_bytes", window.end, 150_000_000, 4_000_000)
        ),
        "Storage Allocated (Byte)": str(ONEDRIVE_QUOTA),
        "Owner Principal Name": person.upn,
    }


def _sharepoint_activity_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.uses("sharepoint"):
        return
    row = _user_common(person, window)
    row.update(
        {
            "Last Activity Date": person.last("sharepoint", window.end),
            "Viewed Or Edited File Count": str(person.count("sharepoint", "viewed", window, 4)),
            "Synced File Count": str(person.count("sharepoint", "synced", window, 1)),
            "Shared Internally File Count": str(
                person.count("sharepoint", "shared_in", window, 0.4)
            ),
            "Shared Externally File Count": str(
                person.count("sharepoint", "shared_out", window, 0.1)
            ),
            "Visited Page Count": str(person.count("sharepoint", "visited", window, 6)),
        }
    )
    yield row


def _site_usage_detail(place: Place, window: Window) -> Iterator[Row]:
    activity = place.activity
    last = activity.last_active("site", window.end)
    yield {
        "Site Id": place.id,
        "Site URL": place.url,
        "Owner Display Name": place.owner_name,
        "Is Deleted": _tf(place.deleted),
        "Last Activity Date": _text(last),
        "File Count": str(activity.growing("files", window.end, 200, 0.6)),
        "Active File Count": str(
            activity.count("site", "active_files", window.start, window.end, 5)
        ),
        "Page View Count": str(activity.count("site", "page_views", window.start, window.end, 14)),
        "Visited Page Count": str(activity.count("site", "visited", window.start, window.end, 5)),
        "Storage Used (Byte)": str(activity.growing("bytes", window.end, 400_000_000, 3_000_000)),
        "Storage Allocated (Byte)": str(SITE_QUOTA),
        "Root Web Template": place.template,
        "Owner Principal Name": place.owner_upn,
    }


_TEAMS_COUNTS: Final = (
    ("Team Chat Message Count", "team_chat", 4),
    ("Private Chat Message Count", "private_chat", 12),
    ("Call Count", "calls", 1),
    ("Post Messages", "posts", 0.8),
    ("Reply Messages", "replies", 1.5),
    ("Urgent Messages", "urgent", 0.05),
)
_MEETING_KINDS: Final = ("Ad Hoc", "Scheduled One-time", "Scheduled Recurring", "")


def _teams_user_activity_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.uses("teams"):
        return
    row = {
        "Tenant Display Name": snapshot.organization_name,
        "Shared Channel Tenant Display Names": "",
        "User Id": person.id,
        "User Principal Name": person.upn,
        "Last Activity Date": person.last("teams", window.end),
        "Is Deleted": _tf(person.deleted_by(window.end)),
        "Deleted Date": person.deleted_text(window.end),
        "Assigned Products": person.products,
    }
    for column, metric, mean in _TEAMS_COUNTS:
        row[column] = str(person.count("teams", metric, window, mean))
    totals = {"Organized": 0, "Attended": 0}
    for role, mean in (("Organized", 0.25), ("Attended", 0.5)):
        for kind in _MEETING_KINDS:
            # Unclassified meetings ("") count in the totals only (docs).
            count = person.count("teams", f"meetings_{role}_{kind}", window, mean)
            totals[role] += count
            if kind:
                row[f"{kind} Meetings {role} Count"] = str(count)
        row[f"Meetings {role} Count"] = str(totals[role])
    row["Meeting Count"] = str(totals["Organized"] + totals["Attended"])
    for label, metric, mean in (
        ("Audio", "audio", 1500),
        ("Video", "video", 700),
        ("Screen Share", "screen", 300),
    ):
        seconds = person.count("teams", metric, window, mean)
        row[f"{label} Duration"] = _hms(seconds)
        row[f"{label} Duration In Seconds"] = str(seconds)
    row["Has Other Action"] = _yn(person.days("teams", window) > 0 and person.trait(0.5, "other"))
    row["Is Licensed"] = _yn(person.licensed("teams"))
    yield row


_TEAMS_DEVICES: Final = (
    ("Used Web", 0.3),
    ("Used Windows Phone", 0.0),
    ("Used iOS", 0.35),
    ("Used Mac", 0.12),
    ("Used Android Phone", 0.25),
    ("Used Windows", 0.85),
    ("Used Chrome OS", 0.02),
    ("Used Linux", 0.02),
)


def _teams_device_usage_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.uses("teams"):
        return
    active = person.days("teams", window) > 0
    row = {
        "User Id": person.id,
        "User Principal Name": person.upn,
        "Last Activity Date": person.last("teams", window.end),
        "Is Deleted": _tf(person.deleted_by(window.end)),
        "Deleted Date": person.deleted_text(window.end),
        "Is Licensed": _yn(person.licensed("teams")),
    }
    for column, share in _TEAMS_DEVICES:
        row[column] = _yn(active and person.trait(share, column))
    yield row


def _yammer_common(person: Person, window: Window) -> Row:
    deleted = person.deleted_by(window.end)
    return {
        "User Principal Name": person.upn,
        "Display Name": person.display_name,
        "User State": "Deleted" if deleted else "Active",
        "State Change Date": _text(person.deleted if deleted else person.assigned.get("yammer")),
        "Last Activity Date": person.last("yammer", window.end),
    }


def _yammer_activity_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.licensed("yammer"):
        return
    row = _yammer_common(person, window)
    row.update(
        {
            "Posted Count": str(person.count("yammer", "posted", window, 0.6)),
            "Read Count": str(person.count("yammer", "read", window, 5)),
            "Liked Count": str(person.count("yammer", "liked", window, 1)),
            "Assigned Products": person.products,
        }
    )
    yield row


_YAMMER_DEVICES: Final = (
    ("Used Web", 0.8),
    ("Used Windows Phone", 0.0),
    ("Used Android Phone", 0.15),
    ("Used iPhone", 0.25),
    ("Used iPad", 0.05),
    ("Used Others", 0.03),
)


def _yammer_device_usage_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.licensed("yammer"):
        return
    active = person.days("yammer", window) > 0
    row = _yammer_common(person, window)
    for column, share in _YAMMER_DEVICES:
        row[column] = _yn(active and person.trait(share, column))
    yield row


def _yammer_groups_activity_detail(place: Place, window: Window) -> Iterator[Row]:
    if not place.yammer:
        return
    activity = place.activity
    yield {
        "Group Display Name": place.name,
        "Is Deleted": _tf(place.deleted),
        "Owner Principal Name": place.owner_upn,
        "Last Activity Date": _text(activity.last_active("group_yammer", window.end)),
        "Group Type": place.visibility,
        "Office 365 Connected": "True",
        "Member Count": str(place.member_count),
        "Posted Count": str(activity.count("group_yammer", "posted", window.start, window.end, 1)),
        "Read Count": str(activity.count("group_yammer", "read", window.start, window.end, 8)),
        "Liked Count": str(activity.count("group_yammer", "liked", window.start, window.end, 2)),
    }


def _groups_activity_detail(place: Place, window: Window) -> Iterator[Row]:
    activity = place.activity
    start, end = window.start, window.end
    lasts = [
        activity.last_active(workload, end) for workload in ("group_mail", "site", "group_yammer")
    ]
    if not place.yammer:
        lasts.pop()
    known = [day for day in lasts if day]

    def yammer(metric: str, mean: float) -> str:
        return str(activity.count("group_yammer", metric, start, end, mean) if place.yammer else 0)

    items = activity.growing("mail_items", end, 300, 6)
    yield {
        "Group Display Name": place.name,
        "Is Deleted": _tf(place.deleted),
        "Owner Principal Name": place.owner_upn,
        "Last Activity Date": _text(max(known) if known else None),
        "Group Type": place.visibility,
        "Member Count": str(place.member_count),
        "Guest Count": str(place.guest_count),
        "Exchange Received Email Count": str(
            activity.count("group_mail", "received", start, end, 8)
        ),
        "SharePoint Active File Count": str(activity.count("site", "active_files", start, end, 5)),
        "Yammer Posted Message Count": yammer("posted", 1),
        "Yammer Read Message Count": yammer("read", 8),
        "Yammer Liked Message Count": yammer("liked", 2),
        "Exchange Mailbox Total Item Count": str(items),
        "Exchange Mailbox Storage Used (Byte)": str(items * 60_000),
        "SharePoint Total File Count": str(activity.growing("files", end, 200, 0.6)),
        "SharePoint Site Storage Used (Byte)": str(
            activity.growing("bytes", end, 400_000_000, 3_000_000)
        ),
        "Group Id": place.id,
    }


def _skype_activity_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    # Skype for Business Online is retired: licensed people are listed with no activity.
    if not person.licensed("skype"):
        return
    row = dict.fromkeys(HEADERS["getSkypeForBusinessActivityUserDetail"].split(","), "0")
    for column in row:
        if column.endswith("Date"):
            row[column] = ""
    row.update(
        {
            "User Principal Name": person.upn,
            "Is Deleted": _tf(person.deleted_by(window.end)),
            "Deleted Date": person.deleted_text(window.end),
            "Assigned Products": person.products,
        }
    )
    yield row


def _skype_device_usage_user_detail(
    person: Person, window: Window, snapshot: Snapshot
) -> Iterator[Row]:
    if not person.licensed("skype") or person.deleted_by(window.end):
        return
    row = dict.fromkeys(HEADERS["getSkypeForBusinessDeviceUsageUserDetail"].split(","), "No")
    row.update({"User Principal Name": person.upn, "Last Activity Date": ""})
    yield row


# --------------------------------------------------------------------------------------------
# The table the service (and the tap's own report table) is built from.
# --------------------------------------------------------------------------------------------

RowSource = Callable[[Snapshot, Window], Iterator[Row]]


def _bulk_place_identity(snapshot: Snapshot) -> Identity:
    sites = f"https://{snapshot.host_prefix}.sharepoint.com/sites/bulkgroup"
    return {
        "Group Display Name": lambda index: f"Bulk Group {index:06d}",
        "Group Id": lambda index: _bulk_id(snapshot, "group", index),
        "Team Name": lambda index: f"Bulk Group {index:06d}",
        "Team Id": lambda index: _bulk_id(snapshot, "group", index),
        "Site Id": lambda index: _bulk_id(snapshot, "site", index),
        "Site URL": lambda index: f"{sites}{index:06d}",
    }


# Microsoft 365 Copilot's skuId (Microsoft's product names CSV, String_Id Microsoft_365_Copilot).
COPILOT_SKU_ID: Final = "639dec6b-bb19-468b-871c-c5c441c4b0cb"
_COPILOT_APPS: Final = (
    "Copilot Chat",
    "Microsoft Teams Copilot",
    "Word Copilot",
    "Excel Copilot",
    "PowerPoint Copilot",
    "Outlook Copilot",
    "OneNote Copilot",
    "Loop Copilot",
)


def _copilot_usage_user_detail(person: Person, window: Window, snapshot: Snapshot) -> Iterator[Row]:
    """Only users holding a Microsoft 365 Copilot license have a row (docs: "This API only
    returns usage data for users who have a Microsoft 365 Copilot license"); about 40 % of them
    never use it, so their dates are empty. Nobody used Copilot before holding its license."""
    if person.deleted_by(window.end) or not any(
        str(item.get("skuId")) == COPILOT_SKU_ID for item in person.licenses
    ):
        return
    since = person.licensed_since(COPILOT_SKU_ID)

    def licensed(day: date | None) -> date | None:
        return day if day is not None and (since is None or day >= since) else None

    last = licensed(person.activity.last_active("copilot", window.end))
    main = person.activity.choice(_COPILOT_APPS, "copilot-main")
    row = {
        "User Principal Name": person.upn,
        "Display Name": person.display_name,
        "Last Activity Date": _text(last),
    }
    for app in _COPILOT_APPS:
        day: date | None = None
        if last is not None and (app == main or person.trait(0.5, "copilot", app)):
            back = 0 if app == main else int(person.activity.uniform("copilot", app) * 20)
            day = licensed(
                person.activity.last_active("copilot", window.end - timedelta(days=back))
            )
        row[f"{app} Last Activity Date"] = _text(day)
    yield row


_TEAM_COUNTS: Final = (
    ("Active Channels", "channels", 1.2),
    ("Reactions", "reactions", 4),
    ("Meetings Organized", "meetings", 0.5),
    ("Post Messages", "posts", 3),
    ("Reply Messages", "replies", 5),
    ("Channel Messages", "channel_messages", 8),
    ("Urgent Messages", "urgent", 0.05),
    ("Mentions", "mentions", 2),
    ("Active Shared Channels", "shared_channels", 0.1),
    ("Active External Users", "external_users", 0.2),
)


def _teams_team_activity_detail(snapshot: Snapshot, window: Window) -> Iterator[Row]:
    """One row per team: a Microsoft 365 group provisioned as a team."""
    teams = {
        str(group.get("id"))
        for group in snapshot.groups
        if "Team" in (group.get("resourceProvisioningOptions") or [])
    }
    for place in _places(snapshot, groups_only=True):
        if place.id in teams and not place.deleted:
            yield _team_row(place, window)
    # Synthetic rows: every synthetic group stands for a team here.
    yield from _bulk_rows(
        snapshot,
        lambda slot: [_team_row(place, window) for place in _places(snapshot, True, slot)],
        _bulk_place_identity(snapshot),
    )


def _team_row(place: Place, window: Window) -> Row:
    activity = place.activity
    start, end = window.start, window.end
    days = activity.active_days("team", start, end)
    active_users = min(place.member_count, activity.count("team", "users", start, end, 3))
    row = {
        "Team Name": place.name,
        "Team Id": place.id,
        "Team Type": place.visibility,
        "Last Activity Date": _text(activity.last_active("team", end)),
        "Active Users": str(active_users),
        "Guests": str(place.guest_count),
    }
    for column, metric, mean in _TEAM_COUNTS:
        row[column] = str(activity.count("team", metric, start, end, mean) if days else 0)
    return row


def _per_person(build: Callable[[Person, Window, Snapshot], Iterable[Row]]) -> RowSource:
    def rows(snapshot: Snapshot, window: Window) -> Iterator[Row]:
        for person in _people(snapshot, window.end):
            yield from build(person, window, snapshot)
        yield from _bulk_rows(
            snapshot,
            lambda slot: list(build(_bulk_person(snapshot, slot), window, snapshot)),
            _bulk_person_identity(snapshot),
        )

    return rows


def _per_place(build: Callable[[Place, Window], Iterable[Row]], groups_only: bool) -> RowSource:
    def rows(snapshot: Snapshot, window: Window) -> Iterator[Row]:
        for place in _places(snapshot, groups_only):
            yield from build(place, window)
        yield from _bulk_rows(
            snapshot,
            lambda slot: [
                row for place in _places(snapshot, True, slot) for row in build(place, window)
            ],
            _bulk_place_identity(snapshot),
        )

    return rows


@dataclass(frozen=True)
class ReportDefinition:
    """One report function: parameter forms, documented columns, row source."""

    name: str
    parameters: tuple[str, ...]  # PERIOD_OR_DATE, PERIOD_ONLY or NO_PARAMETERS
    rows: RowSource
    base: str = "reports"  # the path segment(s) the function is bound under

    @property
    def columns(self) -> tuple[str, ...]:
        """The documented CSV header, in order."""
        return tuple(HEADERS[self.name].split(","))


REPORTS: Final[dict[str, ReportDefinition]] = {
    definition.name: definition
    for definition in (
        ReportDefinition(
            "getOffice365ActiveUserDetail", PERIOD_OR_DATE, _per_person(_active_user_detail)
        ),
        ReportDefinition(
            "getOffice365ActivationsUserDetail",
            NO_PARAMETERS,
            _per_person(_activations_user_detail),
        ),
        ReportDefinition(
            "getM365AppUserDetail", PERIOD_OR_DATE, _per_person(_m365_app_user_detail)
        ),
        ReportDefinition(
            "getEmailActivityUserDetail", PERIOD_OR_DATE, _per_person(_email_activity_user_detail)
        ),
        ReportDefinition(
            "getEmailAppUsageUserDetail", PERIOD_OR_DATE, _per_person(_email_app_usage_user_detail)
        ),
        ReportDefinition("getMailboxUsageDetail", PERIOD_ONLY, _per_person(_mailbox_usage_detail)),
        ReportDefinition(
            "getOneDriveActivityUserDetail",
            PERIOD_OR_DATE,
            _per_person(_onedrive_activity_user_detail),
        ),
        ReportDefinition(
            "getOneDriveUsageAccountDetail",
            PERIOD_OR_DATE,
            _per_person(_onedrive_usage_account_detail),
        ),
        ReportDefinition(
            "getSharePointActivityUserDetail",
            PERIOD_OR_DATE,
            _per_person(_sharepoint_activity_user_detail),
        ),
        ReportDefinition(
            "getSharePointSiteUsageDetail",
            PERIOD_OR_DATE,
            _per_place(_site_usage_detail, groups_only=False),
        ),
        ReportDefinition(
            "getTeamsUserActivityUserDetail",
            PERIOD_OR_DATE,
            _per_person(_teams_user_activity_user_detail),
        ),
        ReportDefinition(
            "getTeamsDeviceUsageUserDetail",
            PERIOD_OR_DATE,
            _per_person(_teams_device_usage_user_detail),
        ),
        ReportDefinition(
            "getYammerActivityUserDetail", PERIOD_OR_DATE, _per_person(_yammer_activity_user_detail)
        ),
        ReportDefinition(
            "getYammerDeviceUsageUserDetail",
            PERIOD_OR_DATE,
            _per_person(_yammer_device_usage_user_detail),
        ),
        ReportDefinition(
            "getYammerGroupsActivityDetail",
            PERIOD_OR_DATE,
            _per_place(_yammer_groups_activity_detail, groups_only=True),
        ),
        ReportDefinition(
            "getSkypeForBusinessActivityUserDetail",
            PERIOD_OR_DATE,
            _per_person(_skype_activity_user_detail),
        ),
        ReportDefinition(
            "getSkypeForBusinessDeviceUsageUserDetail",
            PERIOD_OR_DATE,
            _per_person(_skype_device_usage_user_detail),
        ),
        ReportDefinition(
            "getOffice365GroupsActivityDetail",
            PERIOD_OR_DATE,
            _per_place(_groups_activity_detail, groups_only=True),
        ),
        ReportDefinition("getTeamsTeamActivityDetail", PERIOD_OR_DATE, _teams_team_activity_detail),
        # v1.0 has only the period form (msgraph-metadata v1.0 CSDL: one overload, `period`);
        # the by-date function is beta only. Served under /v1.0/copilot/reports/ only.
        ReportDefinition(
            "getMicrosoft365CopilotUsageUserDetail",
            PERIOD_ONLY,
            _per_person(_copilot_usage_user_detail),
            base="copilot/reports",
        ),
    )
}
_BY_LOWER_NAME: Final = {name.lower(): definition for name, definition in REPORTS.items()}


# --------------------------------------------------------------------------------------------
# The service.
# --------------------------------------------------------------------------------------------


class ReportCall(NamedTuple):
    """One request to a report function on the Graph host."""

    function: str  # canonical name when known, else as sent
    params: str  # the text between the parentheses, as sent
    time: float  # ReportService.clock() when it arrived
    status: int
    app: str  # appid of the caller's token ("" when it has none)


class DownloadRecord(NamedTuple):
    """One request that reached the download host."""

    path: str
    time: float
    status: int
    authorization: str | None  # the Authorization header, if one was (wrongly) sent


@dataclass
class _PendingDownload:
    definition: ReportDefinition
    window: Window | None  # None: header-only file
    snapshot: Snapshot
    columns: list[str]  # header line as served
    sources: list[str]  # documented column feeding each served column ("" for additions)
    concealed: bool
    etag: str
    expires_at: float
    call: str = ""  # the function call as sent, e.g. "getEmailActivityUserDetail(date=...)"


class _InvalidCallError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_CALL: Final = re.compile(r"^\s*(?P<name>[A-Za-z0-9_]+)\s*(?:\((?P<params>.*)\))?\s*$", re.DOTALL)
_DATE_LITERAL: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FUNCTION_NOT_FOUND: Final = json.dumps(
    {"error": {"code": "InvalidArgument", "message": "The requested function cannot be found."}}
)


def _app_of(request: EmulatorRequest) -> str:
    """The calling app: the appid (or azp) claim of a JWT bearer token, else ""."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    parts = token.split(".")
    if len(parts) != 3:
        return ""
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return ""
    return str(claims.get("appid") or claims.get("azp") or "") if isinstance(claims, dict) else ""


class ReportService:
    """The reports part of the Graph emulator for one tenant.

    Knobs tests and benchmarks use (all plain attributes):

    - `refresh_lag_days` (2): Report Refresh Date = tenant.today - this.
    - `max_date_age_days` (28): date= older than refresh date - this is rejected.
    - `concealed_names` (False): pseudonymise names, URLs and group ids.
    - `copilot_redirect` (False): answer the Copilot report with 302 instead of its documented 200.
    - `extra_rows` (0): add this many rows to every report, of synthetic licensed users (user
      reports) or groups/sites (site and group reports), generated lazily: a 200,000-row
      report streams.
    - `file_cache` (None): a dict to keep every file served whole, by ETag, and serve it again
      from memory. Graph builds a report's file before it redirects to the download host, so
      a download costs Graph no work per row; the benchmark sets this so that the emulator's
      row generation does not take CPU from the client it measures.
    - `extra_columns` / `dropped_columns` / `renamed_columns`: per function, simulate Graph adding,
      removing or renaming columns (additions are appended, with empty values, or with
      `extra_column_values[function][column](row)` computed from the row's documented cells).
    - `file_faults`: `FileFault`s (faults.py) that rewrite the downloaded file of matching calls
      (an empty body, a lone BOM, an HTML page answered 200, a Latin-1 file, ...).
    - `calls_per_window` (14), `tenant_calls_per_window` (40), `window_seconds` (600, emulated),
      `download_ttl_seconds` (300, emulated): all emulated seconds are multiplied by time_scale.
    - `clock`: the time source (time.monotonic); tests may replace it.
    - `activity`: the ActivityModel; `activity.last_active_override[user_id] = day | None`.

    Records: `calls` (every Graph-host call, ReportCall), `downloads` (every download-host
    request, DownloadRecord) and `authorized_downloads` (those that carried Authorization).
    """

    def __init__(self, tenant: TenantLike, download_base_url: str, time_scale: float = 1.0) -> None:
        self.tenant = tenant
        self.download_base_url = download_base_url.rstrip("/")
        self.time_scale = time_scale
        self.refresh_lag_days = 2
        self.max_date_age_days = 28
        self.concealed_names = False
        # False: the Copilot report answers 200 with the CSV (its v1.0 page); True: 302 to the
        # download host like every other report, so a tap is tested against both.
        self.copilot_redirect = False
        self.extra_rows = 0
        self.file_cache: dict[str, list[bytes]] | None = None
        self.extra_columns: dict[str, list[str]] = {}
        self.dropped_columns: dict[str, set[str]] = {}
        self.renamed_columns: dict[str, dict[str, str]] = {}
        self.extra_column_values: dict[str, dict[str, Callable[[Mapping[str, str]], str]]] = {}
        self.file_faults: list[FileFault] = []
        self.calls_per_window = 14
        self.tenant_calls_per_window = 40
        self.window_seconds = 600.0
        self.download_ttl_seconds = 300.0
        self.clock: Callable[[], float] = time.monotonic
        self.activity = ActivityModel(tenant.seed)
        self.calls: list[ReportCall] = []
        self.downloads: list[DownloadRecord] = []
        self.authorized_downloads: list[DownloadRecord] = []
        self._pending: dict[str, _PendingDownload] = {}
        self._seen_enabled: set[str] = set()
        self._idle_since: dict[str, date] = {}
        self._recent: dict[tuple[str, str], deque[float]] = {}  # (app, function) -> call times
        self._recent_tenant: dict[str, deque[float]] = {}  # function -> call times, all apps
        self._lock = threading.Lock()

    # -- what tests ask ----------------------------------------------------------------------

    @property
    def refresh_date(self) -> date:
        """The last processed day: every row's Report Refresh Date."""
        return self.tenant.today - timedelta(days=self.refresh_lag_days)

    def columns(self, function: str) -> list[str]:
        """The header line served for a function, after any simulated column changes."""
        return self._served_columns(REPORTS[function])[0]

    def calls_to(self, function: str) -> list[ReportCall]:
        """The recorded calls to one function."""
        return [call for call in self.calls if call.function == function]

    # -- Graph host --------------------------------------------------------------------------

    def handle_call(
        self, function_call: str, request: EmulatorRequest, base: str = "reports"
    ) -> EmulatorResponse:
        """`GET /v1.0/<base>/<function_call>` with an already validated bearer token; `base` is
        `reports` or `copilot/reports`, and each function answers only under its own."""
        match = _CALL.match(function_call)
        raw_name = match.group("name") if match else function_call
        params = (match.group("params") or "") if match else ""
        definition = _BY_LOWER_NAME.get(raw_name.lower())
        if definition is not None and definition.base != base:
            definition = None
        function = definition.name if definition else raw_name
        app = _app_of(request)
        now = self.clock()
        with self._lock:
            retry_after = self._throttle(app, function, now)
            status = 429 if retry_after else 0
            if not retry_after:
                self._recent.setdefault((app, function), deque()).append(now)
                self._recent_tenant.setdefault(function, deque()).append(now)
        if retry_after:
            response = self._too_many_requests(request, retry_after)
        else:
            response = self._answer(match, definition, params, request, now)
            status = response.status
        with self._lock:
            self.calls.append(ReportCall(function, params, now, status, app))
        return response

    def _throttle(self, app: str, function: str, now: float) -> int:
        """Seconds until a slot frees, or 0 when the call may proceed (lock held)."""
        window = self.window_seconds * self.time_scale
        waits = []
        for times, limit in (
            (self._recent.get((app, function)), self.calls_per_window),
            (self._recent_tenant.get(function), self.tenant_calls_per_window),
        ):
            if times is None:
                continue
            while times and times[0] <= now - window:
                times.popleft()
            if len(times) >= limit:
                waits.append(times[len(times) - limit] + window - now)
        return max(1, math.ceil(max(waits))) if waits else 0

    def _too_many_requests(self, request: EmulatorRequest, retry_after: int) -> EmulatorResponse:
        # Shape of the sample in https://learn.microsoft.com/graph/throttling.
        payload = {
            "error": {
                "code": "TooManyRequests",
                "message": "Please retry again later.",
                "innerError": {
                    "code": "429",
                    "date": graph_date(),
                    "message": "Please retry after",
                    "request-id": request.request_id,
                    "client-request-id": request.client_request_id,
                    "status": "429",
                },
            }
        }
        return json_response(429, payload, request, {"Retry-After": str(retry_after)})

    def _answer(
        self,
        match: re.Match[str] | None,
        definition: ReportDefinition | None,
        params: str,
        request: EmulatorRequest,
        now: float,
    ) -> EmulatorResponse:
        if "Reports.Read.All" not in request.roles:
            return graph_error(403, "S2SUnauthorized", "Invalid permission.", request)
        try:
            if match is None or definition is None:
                raise _InvalidCallError(404, "UnknownError", _FUNCTION_NOT_FOUND)
            window = self._window(definition, params)
        except _InvalidCallError as error:
            return graph_error(error.status, error.code, error.message, request)
        pending = self._prepare(definition, window, now)
        pending.call = f"{definition.name}({params})"
        headers = {"request-id": request.request_id, "client-request-id": request.client_request_id}
        if request.headers.get("if-none-match", "").strip() == pending.etag:
            return EmulatorResponse(304, {**headers, "ETag": pending.etag})
        if definition.base == "copilot/reports" and not self.copilot_redirect:
            # The v1.0 Copilot page documents `200 OK` with the CSV in the body.
            return EmulatorResponse(
                200,
                {**headers, "Content-Type": "application/octet-stream", "ETag": pending.etag},
                self._stream(pending),
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._pending = {
                key: value for key, value in self._pending.items() if value.expires_at > now
            }
            self._pending[token] = pending
        location = f"{self.download_base_url}/data/download/{token}"
        return EmulatorResponse(
            302, {**headers, "Location": location, "Content-Type": "text/plain"}
        )

    def _window(self, definition: ReportDefinition, params: str) -> Window | None:
        """Parse the parameters; the days the file covers (None: a header-only file)."""
        given: dict[str, str] = {}
        for part in filter(None, (piece.strip() for piece in params.split(","))):
            name, _, value = part.partition("=")
            given[name.strip()] = value.strip()
        refresh = self.refresh_date
        forms = [{name} for name in definition.parameters] or [set()]
        if set(given) not in forms:
            raise _InvalidCallError(404, "UnknownError", _FUNCTION_NOT_FOUND)
        if definition.parameters == NO_PARAMETERS:
            return Window(refresh, refresh, refresh, "")
        if "period" in given:
            value = given["period"]
            if not (len(value) >= 2 and value[0] == value[-1] == "'"):
                raise _InvalidCallError(400, "BadRequest", f"Invalid period value: {value}.")
            days = PERIODS.get(value[1:-1])
            if days is None:
                raise _InvalidCallError(
                    400, "InvalidArgument", f"Invalid period value specified: {value[1:-1]}."
                )
            return Window(refresh, refresh - timedelta(days=days - 1), refresh, str(days))
        value = given["date"]
        if value.startswith(("'", '"')):
            raise _InvalidCallError(
                400,
                "BadRequest",
                "Expression of type 'Edm.String' cannot be converted to type 'Edm.Date'.",
            )
        try:
            day = date.fromisoformat(value) if _DATE_LITERAL.match(value) else None
        except ValueError:
            day = None
        if day is None:
            raise _InvalidCallError(
                400, "BadRequest", f"The parameter 'date' has an invalid value '{value}'."
            )
        if day < refresh - timedelta(days=self.max_date_age_days):
            raise _InvalidCallError(
                400,
                "InvalidArgument",
                f"Invalid date value specified: {day.isoformat()}."
                " Only support data for the past 28 days.",
            )
        if day > refresh:
            return None  # not processed yet: header-only file
        return Window(refresh, day, day, "1")

    def _served_columns(self, definition: ReportDefinition) -> tuple[list[str], list[str]]:
        dropped = self.dropped_columns.get(definition.name, set())
        renamed = self.renamed_columns.get(definition.name, {})
        sources = [column for column in definition.columns if column not in dropped]
        columns = [renamed.get(column, column) for column in sources]
        for extra in self.extra_columns.get(definition.name, []):
            columns.append(extra)
            sources.append("")
        return columns, sources

    def _snapshot(self) -> Snapshot:
        """The tenant as it is now. Uses the Tenant's own lock and group membership when it has
        them (the emulator's Tenant does; a bare stand-in need not)."""
        tenant = self.tenant
        with getattr(tenant, "lock", None) or contextlib.nullcontext():
            skus = tenant.skus.values() if isinstance(tenant.skus, Mapping) else tenant.skus
            groups = list(tenant.groups.values())
            deleted_groups = list(getattr(tenant, "deleted_groups", {}).values())
            members_of = getattr(tenant, "members_of", None)
            members = {
                str(group["id"]): list(members_of(group["id"]))
                for group in groups
                if members_of is not None and "Unified" in (group.get("groupTypes") or [])
            }
            return Snapshot(
                tenant_id=tenant.tenant_id,
                domain=tenant.domain,
                users=list(tenant.users.values()),
                deleted_users=list(tenant.deleted_users.values()),
                groups=groups,
                skus=list(skus),
                model=self.activity,
                extra_rows=self.extra_rows,
                deleted_groups=deleted_groups,
                group_members=members,
                idle_since=self._disabled_accounts(tenant.users.values()),
            )

    def _disabled_accounts(self, users: Iterable[Mapping[str, Any]]) -> dict[str, date]:
        """Disabled account -> the day its owner stopped using it.

        Graph does not say when an account was disabled. One already disabled when the emulator
        first sees it has been idle for 30 to 180 days (the classic wasted seat); one disabled
        later (a test mutating the tenant) stops on the day that is first noticed.
        """
        today = self.tenant.today
        with self._lock:
            for user in users:
                user_id = str(user.get("id"))
                if user.get("accountEnabled", True) is not False:
                    self._seen_enabled.add(user_id)
                    self._idle_since.pop(user_id, None)
                elif user_id not in self._idle_since:
                    back = (
                        0
                        if user_id in self._seen_enabled
                        else 30 + object_key(self.tenant.seed, user_id) % 150
                    )
                    self._idle_since[user_id] = today - timedelta(days=back)
            return dict(self._idle_since)

    def _prepare(
        self, definition: ReportDefinition, window: Window | None, now: float
    ) -> _PendingDownload:
        snapshot = self._snapshot()
        columns, sources = self._served_columns(definition)
        # The file changes with the tenant: the emulator's Tenant counts its mutations in
        # `version`; a bare stand-in is compared by content.
        version = getattr(self.tenant, "version", None)
        state: Any = (
            [self.tenant.tenant_id, version]
            if isinstance(version, int)
            else [
                snapshot.users,
                snapshot.deleted_users,
                snapshot.groups,
                snapshot.deleted_groups,
                snapshot.group_members,
                snapshot.skus,
            ]
        )
        fingerprint = json.dumps(
            [
                definition.name,
                window.__dict__ if window else None,
                self.refresh_date,
                self.concealed_names,
                columns,
                sources,
                self.extra_rows,
                str(self.tenant.seed),
                sorted(self.activity.last_active_override.items()),
                sorted(snapshot.idle_since.items()),
                state,
            ],
            sort_keys=True,
            default=str,
        )
        etag = '"' + hashlib.blake2b(fingerprint.encode(), digest_size=12).hexdigest() + '"'
        return _PendingDownload(
            definition,
            window,
            snapshot,
            columns,
            sources,
            self.concealed_names,
            etag,
            now + self.download_ttl_seconds * self.time_scale,
        )

    # -- download host -----------------------------------------------------------------------

    def handle_download(self, path: str, request: EmulatorRequest) -> EmulatorResponse:
        """Any request on the download host: `GET /data/download/<token>` serves the file once."""
        now = self.clock()
        authorization = request.headers.get("authorization")
        token = path.removeprefix("/data/download/") if path.startswith("/data/download/") else None
        with self._lock:
            pending = self._pending.pop(token, None) if token and request.method == "GET" else None
        if pending is not None and pending.expires_at <= now:
            pending = None
        if pending is None:
            status = 405 if token and request.method != "GET" else 404
            response = EmulatorResponse(
                status,
                {"Content-Type": "text/plain"},
                b"The download link is invalid or has expired.",
            )
        else:
            body: bytes | Iterable[bytes]
            fault = next((f for f in self.file_faults if f.take(pending.call)), None)
            if fault is not None:
                body = fault.rewrite(b"".join(self._stream(pending)))
            elif self.file_cache is not None:
                cached = self.file_cache.get(pending.etag)
                if cached is None:
                    cached = self.file_cache[pending.etag] = list(self._stream(pending))
                body = cached
            else:
                body = self._stream(pending)
            response = EmulatorResponse(
                200,
                {"Content-Type": "application/octet-stream", "ETag": pending.etag},
                body,
            )
        record = DownloadRecord(path, now, response.status, authorization)
        with self._lock:
            self.downloads.append(record)
            if authorization is not None:
                self.authorized_downloads.append(record)
        return response

    def _stream(self, pending: _PendingDownload) -> Iterator[bytes]:
        """BOM + header + rows, CRLF, in chunks of about CHUNK_BYTES."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(pending.columns)
        prefix = BOM
        for values in self._values(pending):
            writer.writerow(values)
            if buffer.tell() >= CHUNK_BYTES:
                yield prefix + buffer.getvalue().encode()
                prefix = b""
                buffer.seek(0)
                buffer.truncate()
        yield prefix + buffer.getvalue().encode()

    def _values(self, pending: _PendingDownload) -> Iterator[list[str]]:
        window = pending.window
        if window is None:
            return
        refresh = window.refresh.isoformat()
        tenant_id = pending.snapshot.tenant_id
        sources = pending.sources
        hidden = [source in CONCEALED_COLUMNS for source in sources] if pending.concealed else None
        valued = self.extra_column_values.get(pending.definition.name, {})
        computed = [
            (index, valued[column])
            for index, (column, source) in enumerate(zip(pending.columns, sources, strict=True))
            if not source and column in valued
        ]
        for row in pending.definition.rows(pending.snapshot, window):
            row["Report Refresh Date"] = refresh
            row["Report Period"] = window.report_period
            values = [row.get(source, "") for source in sources]
            for index, value_of in computed:
                values[index] = value_of(row)
            if hidden:
                values = [
                    conceal(tenant_id, v) if h else v for v, h in zip(values, hidden, strict=True)
                ]
            yield values
