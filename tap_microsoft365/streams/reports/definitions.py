"""The usage reports the tap extracts: one `ReportDefinition` per Graph report function.

A report is one entry of `REPORTS`: the Graph function (and where it lives), the parameter forms
it takes, the columns that identify a row within a day, and the CSV header line Microsoft
documents on the function's page (https://learn.microsoft.com/graph/api/resources/report).
Stream names, columns and types follow from that entry; adding a report is adding an entry.

- Stream name: the function without `get`, snake_cased (`getOneDriveUsageAccountDetail` ->
  `onedrive_usage_account_detail`).
- Columns: the CSV headers snake_cased (`Storage Used (Byte)` -> `storage_used_byte`), typed by
  Graph's naming conventions (`... Date` a date, `Is ...`/`Has ...`/`Used ...` a boolean from
  True/False or Yes/No, counts, bytes, seconds and minutes integers, `Assigned Products` an array),
  with per-report exceptions where a report breaks the convention. Empty cells are null.
- `report_date`: the day a record describes. For reports that take `date=`, the requested day (one
  request per day). For the period-only mailbox report (a `period='D7'` snapshot) and the
  parameterless activations report, the snapshot's Report Refresh Date: the last day Graph had
  processed when it built the file. It is the replication key and leads the primary key.
- `extra_columns`: every column a file has that the report's documented header lacks (Microsoft
  adds columns every year), as an object of snake_cased column name -> cell text (null when
  empty), null when the file has no such column. Known renames (`aliases`) map to the documented
  column's property instead.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

if TYPE_CHECKING:
    from collections.abc import Mapping


class Parameters(enum.Enum):
    """The parameter forms a report function accepts
    (https://learn.microsoft.com/graph/api/resources/report)."""

    DATE_OR_PERIOD = "date or period"  # fetched one day at a time with date=YYYY-MM-DD
    PERIOD = "period only"  # fetched as a period='D7' snapshot
    NONE = "no parameter"  # fetched as a snapshot


class ColumnType(enum.Enum):
    """How a CSV cell becomes a JSON value."""

    STRING = "string"
    DATE = "date"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    PRODUCTS = "products"  # `Assigned Products`: names joined with '+'


def snake_case(header: str) -> str:
    """`Storage Used (Byte)` -> `storage_used_byte`; `Used  Chrome OS` -> `used_chrome_os`."""
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def stream_name(function: str) -> str:
    """`getOneDriveUsageAccountDetail` -> `onedrive_usage_account_detail`.

    Product names stay one word (OneDrive, SharePoint), as in the Graph reference's own prose.
    """
    name = function.removeprefix("get").replace("OneDrive", "Onedrive")
    name = name.replace("SharePoint", "Sharepoint")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def conventional_type(header: str) -> ColumnType:
    """The type Graph's column naming implies; reports that break the convention override it."""
    words = header.split()
    if header == "Assigned Products":
        return ColumnType.PRODUCTS
    if header.endswith(" Date"):
        return ColumnType.DATE
    if words and words[0] in {"Is", "Has", "Used"}:
        return ColumnType.BOOLEAN
    if (
        header == "Report Period"
        or "Count" in words
        or header.endswith(("(Byte)", " In Seconds", " Minutes"))
    ):
        return ColumnType.INTEGER
    return ColumnType.STRING


def _typed(column_type: ColumnType, *headers: str) -> dict[str, ColumnType]:
    return dict.fromkeys(headers, column_type)


_M365_APPS = ("Outlook", "Word", "Excel", "PowerPoint", "OneNote", "Teams")
_M365_PLATFORMS = ("Windows", "Mac", "Mobile", "Web")


@dataclass(frozen=True)
class ReportDefinition:
    """One Graph report function and everything the tap needs to extract it."""

    function: str
    parameters: Parameters
    key: tuple[str, ...]  # documented headers identifying a row within one report day
    header: str  # the documented CSV header line
    summary: str
    types: Mapping[str, ColumnType] = field(default_factory=dict)  # exceptions to the convention
    # Where the function lives, relative to Graph's version (`/v1.0/`); empty: under
    # `reports/` (the Copilot reports, for one, live under `copilot/reports/`).
    function_path: str = ""
    # Other names Graph serves for a documented column (served header -> documented header).
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def url_path(self) -> str:
        """The function's path after `/v1.0/`, without parameters."""
        return self.function_path or f"reports/{self.function}"

    @property
    def name(self) -> str:
        """The stream name."""
        return stream_name(self.function)

    @property
    def columns(self) -> tuple[str, ...]:
        """The documented CSV headers, in order."""
        return tuple(column.strip() for column in self.header.split(","))

    @property
    def column_types(self) -> dict[str, ColumnType]:
        """Property name -> type, for every documented column."""
        return {
            snake_case(column): self.types.get(column, conventional_type(column))
            for column in self.columns
        }

    @property
    def alias_properties(self) -> dict[str, str]:
        """Snake-cased served name -> the documented column's property, for known renames."""
        return {snake_case(served): snake_case(column) for served, column in self.aliases.items()}

    @property
    def key_properties(self) -> tuple[str, ...]:
        """The primary key: the day, then what identifies the row within it."""
        return ("report_date", *(snake_case(column) for column in self.key))

    @property
    def is_daily(self) -> bool:
        """Whether the report is fetched one day at a time (date=)."""
        return self.parameters is Parameters.DATE_OR_PERIOD

    @property
    def schema(self) -> dict[str, Any]:
        """The stream's JSON schema."""
        day = (
            "The day this row describes (the `date=` requested)."
            if self.is_daily
            else "The last day the snapshot covers: its Report Refresh Date."
        )
        properties = [th.Property("report_date", th.DateType, required=True, description=day)]
        for column in self.columns:
            kind = self.types.get(column, conventional_type(column))
            wrapped: Any = {
                ColumnType.STRING: th.StringType,
                ColumnType.DATE: th.DateType,
                ColumnType.BOOLEAN: th.BooleanType,
                ColumnType.INTEGER: th.IntegerType,
                ColumnType.PRODUCTS: th.ArrayType(th.StringType),
            }[kind]
            properties.append(
                th.Property(snake_case(column), wrapped, description=f"CSV column '{column}'.")
            )
        properties.append(
            th.Property(
                EXTRA_COLUMNS,
                th.CustomType(
                    {
                        "type": ["object", "null"],
                        "additionalProperties": {"type": ["string", "null"]},
                    }
                ),
                description="Columns the file has that this tap does not know (Microsoft adds "
                "columns every year): snake_cased column name -> cell text (null when empty); "
                "null when the file has none.",
            )
        )
        return th.PropertiesList(*properties).to_dict()


EXTRA_COLUMNS = "extra_columns"
DAILY = Parameters.DATE_OR_PERIOD
UPN = ("User Principal Name",)

# The v1.0 detail reports and their documented CSV header lines, as on each function's page
# under https://learn.microsoft.com/graph/api/resources/report.
REPORTS: tuple[ReportDefinition, ...] = (
    ReportDefinition(
        "getOffice365ActiveUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,"
        "Has Exchange License,Has OneDrive License,Has SharePoint License,"
        "Has Skype For Business License,Has Yammer License,Has Teams License,"
        "Exchange Last Activity Date,OneDrive Last Activity Date,SharePoint Last Activity Date,"
        "Skype For Business Last Activity Date,Yammer Last Activity Date,"
        "Teams Last Activity Date,Exchange License Assign Date,OneDrive License Assign Date,"
        "SharePoint License Assign Date,Skype For Business License Assign Date,"
        "Yammer License Assign Date,Teams License Assign Date,Assigned Products",
        "Per user: licensed services, last activity and license assignment date per service.",
    ),
    ReportDefinition(
        "getOffice365ActivationsUserDetail",
        Parameters.NONE,
        ("User Principal Name", "Product Type"),
        "Report Refresh Date,User Principal Name,Display Name,Product Type,Last Activated Date,"
        "Windows,Mac,Windows 10 Mobile,iOS,Android,Activated On Shared Computer",
        "Per user and Office product: activations per platform.",
        types={
            **_typed(ColumnType.INTEGER, "Windows", "Mac", "Windows 10 Mobile", "iOS", "Android"),
            "Activated On Shared Computer": ColumnType.BOOLEAN,
        },
    ),
    ReportDefinition(
        "getM365AppUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Last Activation Date,Last Activity Date,"
        "Report Period,Windows,Mac,Mobile,Web,Outlook,Word,Excel,PowerPoint,OneNote,Teams,"
        "Outlook (Windows),Word (Windows),Excel (Windows),PowerPoint (Windows),"
        "OneNote (Windows),Teams (Windows),Outlook (Mac),Word (Mac),Excel (Mac),"
        "PowerPoint (Mac),OneNote (Mac),Teams (Mac),Outlook (Mobile),Word (Mobile),"
        "Excel (Mobile),PowerPoint (Mobile),OneNote (Mobile),Teams (Mobile),Outlook (Web),"
        "Word (Web),Excel (Web),PowerPoint (Web),OneNote (Web),Teams (Web)",
        "Per user: which Microsoft 365 apps were used, on which platforms (Yes/No).",
        types=_typed(
            ColumnType.BOOLEAN,
            *_M365_PLATFORMS,
            *_M365_APPS,
            *(f"{app} ({platform})" for platform in _M365_PLATFORMS for app in _M365_APPS),
        ),
    ),
    ReportDefinition(
        "getEmailActivityUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,"
        "Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,"
        "Meeting Interacted Count,Assigned Products,Report Period",
        "Per user: email sent, received and read, meetings created and interacted with.",
    ),
    ReportDefinition(
        "getEmailAppUsageUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,"
        "Last Activity Date,Mail For Mac,Outlook For Mac,Outlook For Windows,"
        "Outlook For Mobile,Other For Mobile,Outlook For Web,POP3 App,IMAP4 App,SMTP App,"
        "Report Period",
        "Per user: the email apps used to reach Exchange Online (the app version, or empty).",
    ),
    ReportDefinition(
        "getMailboxUsageDetail",
        Parameters.PERIOD,
        UPN,
        # The docs' example line lacks the last two quota/archive columns their list adds.
        "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,"
        "Created Date,Last Activity Date,Item Count,Storage Used (Byte),"
        "Issue Warning Quota (Byte),Prohibit Send Quota (Byte),"
        "Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),"
        "Deleted Item Quota (Byte),Has Archive,Report Period",
        "Per mailbox: items, storage used and quotas (a 7-day snapshot).",
    ),
    ReportDefinition(
        "getOneDriveActivityUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,"
        "Viewed Or Edited File Count,Synced File Count,Shared Internally File Count,"
        "Shared Externally File Count,Assigned Products,Report Period",
        "Per user: OneDrive files viewed or edited, synced and shared.",
    ),
    ReportDefinition(
        "getOneDriveUsageAccountDetail",
        DAILY,
        ("Site URL",),
        "Report Refresh Date,Site URL,Owner Display Name,Is Deleted,Last Activity Date,"
        "File Count,Active File Count,Storage Used (Byte),Storage Allocated (Byte),"
        "Owner Principal Name,Report Period",
        "Per OneDrive: files, active files, storage used and allocated.",
    ),
    ReportDefinition(
        "getSharePointActivityUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,"
        "Viewed Or Edited File Count,Synced File Count,Shared Internally File Count,"
        "Shared Externally File Count,Visited Page Count,Assigned Products,Report Period",
        "Per user: SharePoint files viewed or edited, synced, shared, pages visited.",
    ),
    ReportDefinition(
        "getSharePointSiteUsageDetail",
        DAILY,
        ("Site Id",),
        "Report Refresh Date,Site Id,Site URL,Owner Display Name,Is Deleted,Last Activity Date,"
        "File Count,Active File Count,Page View Count,Visited Page Count,Storage Used (Byte),"
        "Storage Allocated (Byte),Root Web Template,Owner Principal Name,Report Period",
        "Per SharePoint site: files, page views, storage used and allocated.",
    ),
    ReportDefinition(
        "getTeamsUserActivityUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,Tenant Display Name,Shared Channel Tenant Display Names,User Id,"
        "User Principal Name,Last Activity Date,Is Deleted,Deleted Date,Assigned Products,"
        "Team Chat Message Count,Private Chat Message Count,Call Count,Meeting Count,"
        "Post Messages,Reply Messages,Urgent Messages,Meetings Organized Count,"
        "Meetings Attended Count,Ad Hoc Meetings Organized Count,"
        "Ad Hoc Meetings Attended Count,Scheduled One-time Meetings Organized Count,"
        "Scheduled One-time Meetings Attended Count,"
        "Scheduled Recurring Meetings Organized Count,"
        "Scheduled Recurring Meetings Attended Count,Audio Duration,Video Duration,"
        "Screen Share Duration,Audio Duration In Seconds,Video Duration In Seconds,"
        "Screen Share Duration In Seconds,Has Other Action,Is Licensed,Report Period",
        "Per user: Teams chats, calls, meetings and audio/video/screen-share time.",
        types=_typed(ColumnType.INTEGER, "Post Messages", "Reply Messages", "Urgent Messages"),
    ),
    ReportDefinition(
        "getTeamsDeviceUsageUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Id,User Principal Name,Last Activity Date,Is Deleted,"
        "Deleted Date,Used Web,Used Windows Phone,Used iOS,Used Mac,Used Android Phone,"
        "Used Windows,Used Chrome OS,Used Linux,Is Licensed,Report Period",
        "Per user: the devices Teams was used on.",
    ),
    ReportDefinition(
        "getYammerActivityUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,User State,State Change Date,"
        "Last Activity Date,Posted Count,Read Count,Liked Count,Assigned Products,"
        "Report Period",
        "Per user: Viva Engage (Yammer) messages posted, read and liked.",
    ),
    ReportDefinition(
        "getYammerDeviceUsageUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,User State,State Change Date,"
        "Last Activity Date,Used Web,Used Windows Phone,Used Android Phone,Used iPhone,"
        "Used iPad,Used Others,Report Period",
        "Per user: the devices Viva Engage (Yammer) was used on.",
    ),
    ReportDefinition(
        "getYammerGroupsActivityDetail",
        DAILY,
        # The report has no group id: the display name is all that identifies a group.
        ("Group Display Name",),
        "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,"
        "Last Activity Date,Group Type,Office 365 Connected,Member Count,Posted Count,"
        "Read Count,Liked Count,Report Period",
        "Per Viva Engage (Yammer) group: members, messages posted, read and liked.",
        types={"Office 365 Connected": ColumnType.BOOLEAN},
    ),
    ReportDefinition(
        "getSkypeForBusinessActivityUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,"
        "Total Peer-to-peer Session Count,Total Organized Conference Count,"
        "Total Participated Conference Count,Peer-to-peer Last Activity Date,"
        "Organized Conference Last Activity Date,Participated Conference Last Activity Date,"
        "Peer-to-peer IM Count,Peer-to-peer Audio Count,Peer-to-peer Audio Minutes,"
        "Peer-to-peer Video Count,Peer-to-peer Video Minutes,Peer-to-peer App Sharing Count,"
        "Peer-to-peer File Transfer Count,Organized Conference IM Count,"
        "Organized Conference Audio/Video Count,Organized Conference Audio/Video Minutes,"
        "Organized Conference App Sharing Count,Organized Conference Web Count,"
        "Organized Conference Dial-in/out 3rd Party Count,"
        "Organized Conference Dial-in/out Microsoft Count,"
        "Organized Conference Dial-in Microsoft Minutes,"
        "Organized Conference Dial-out Microsoft Minutes,Participated Conference IM Count,"
        "Participated Conference Audio/Video Count,Participated Conference Audio/Video Minutes,"
        "Participated Conference App Sharing Count,Participated Conference Web Count,"
        "Participated Conference Dial-in/out 3rd Party Count,Assigned Products,Report Period",
        "Per user: Skype for Business sessions and conferences (retired service).",
    ),
    ReportDefinition(
        "getSkypeForBusinessDeviceUsageUserDetail",
        DAILY,
        UPN,
        "Report Refresh Date,User Principal Name,Last Activity Date,Used Windows,"
        "Used Windows Phone,Used Android Phone,Used iPhone,Used iPad,Report Period",
        "Per user: the devices Skype for Business was used on (retired service).",
    ),
    ReportDefinition(
        "getOffice365GroupsActivityDetail",
        DAILY,
        ("Group Id",),
        "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,"
        "Last Activity Date,Group Type,Member Count,Guest Count,Exchange Received Email Count,"
        "SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,"
        "Yammer Liked Message Count,Exchange Mailbox Total Item Count,"
        "Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,"
        "SharePoint Site Storage Used (Byte),Group Id,Report Period",
        "Per Microsoft 365 group: mail, files, storage and Viva Engage activity.",
        # The page's example line says Guest Count, its column list External Member Count
        # (https://learn.microsoft.com/graph/api/reportroot-getoffice365groupsactivitydetail).
        aliases={"External Member Count": "Guest Count"},
    ),
    # https://learn.microsoft.com/graph/api/reportroot-getteamsteamactivitydetail?view=graph-rest-1.0
    # (period or date=, the date within the past 30 days). The page's column list spells
    # "Team type" and "Active users"; its CSV example "Team Type" and "Active Users": the
    # example's line is used, and columns match by snake_case name, so either spelling maps to
    # the same property.
    ReportDefinition(
        "getTeamsTeamActivityDetail",
        DAILY,
        ("Team Id",),
        "Report Refresh Date,Team Name,Team Id,Team Type,Last Activity Date,Report Period,"
        "Active Users,Active Channels,Guests,Reactions,Meetings Organized,Post Messages,"
        "Reply Messages,Channel Messages,Urgent Messages,Mentions,Active Shared Channels,"
        "Active External Users",
        "Per team: active users and channels, guests, messages, reactions, meetings.",
        types=_typed(
            ColumnType.INTEGER,
            "Active Users",
            "Active Channels",
            "Guests",
            "Reactions",
            "Meetings Organized",
            "Post Messages",
            "Reply Messages",
            "Channel Messages",
            "Urgent Messages",
            "Mentions",
            "Active Shared Channels",
            "Active External Users",
        ),
    ),
    # https://learn.microsoft.com/microsoft-365/copilot/extensibility/api/admin-settings/reports/copilotreportroot-getmicrosoft365copilotusageuserdetail
    # v1.0: GET /v1.0/copilot/reports/getMicrosoft365CopilotUsageUserDetail(period='D7'); no
    # date form in v1.0 (the by-date function is beta only). `version` defaults to v1, whose 13
    # columns are these; v2 adds prompt counts whose CSV headers the page does not spell. Rows:
    # users holding a Microsoft 365 Copilot license only. The page documents `200 OK` with the
    # CSV in the body (the other reports answer 302 to a download URL); both are handled.
    ReportDefinition(
        "getMicrosoft365CopilotUsageUserDetail",
        Parameters.PERIOD,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,Last Activity Date,"
        "Copilot Chat Last Activity Date,Microsoft Teams Copilot Last Activity Date,"
        "Word Copilot Last Activity Date,Excel Copilot Last Activity Date,"
        "PowerPoint Copilot Last Activity Date,Outlook Copilot Last Activity Date,"
        "OneNote Copilot Last Activity Date,Loop Copilot Last Activity Date,Report Period",
        "Per Copilot-licensed user: last Copilot activity overall and per app (a 7-day snapshot).",
        function_path="copilot/reports/getMicrosoft365CopilotUsageUserDetail",
    ),
)


CONCEALED_SETTING = (
    'Microsoft 365 admin center > Settings > Org settings > Services > Reports: "Display '
    'concealed user, group, and site names in all reports"'
)


def describe_concealment(stream: str, column: str, *, failing: bool) -> str:
    """The one message, for warning and error alike."""
    first = (
        f"Microsoft 365 usage reports conceal user, group and site names in this tenant "
        f"({stream}.{column} holds 32-character hex ids instead of names)"
    )
    fix = (
        "joins with the users stream (userPrincipalName) and groups will not match. A Global "
        f"administrator can show real names: {CONCEALED_SETTING} (takes effect at Graph's next "
        "report refresh, up to 48 hours)"
    )
    tail = (
        "; concealed_names is 'error', so the run stops"
        if failing
        else "; set concealed_names to 'error' to fail runs instead"
    )
    return f"{first}: {fix}{tail}"
