"""Usage report streams: every v1.0 Microsoft 365 detail report, one generic stream class.

A report is one entry of `REPORTS`: the Graph function, the parameter forms it takes, what one row
describes (a user, a site or a group), the columns that identify a row within a day, and the CSV
header line Microsoft documents (graph-reference 5.3). Stream names, columns and types follow from
that entry; adding a report is adding an entry.

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

How the files are fetched (pacing, concurrency, redirects without the token, spooling) is in
`tap_microsoft365.report_scheduler`; this module turns a fetched file into records.
"""

from __future__ import annotations

import csv
import enum
import gzip
import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_microsoft365.client import GraphStream
from tap_microsoft365.errors import GraphAPIError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context, Record
    from typing_extensions import override

    from tap_microsoft365.report_scheduler import Delivery, ReportScheduler
    from tap_microsoft365.tap import TapMicrosoft365
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override


class Parameters(enum.Enum):
    """The parameter forms a report function accepts (graph-reference 5.3)."""

    DATE_OR_PERIOD = "date or period"  # fetched one day at a time with date=YYYY-MM-DD
    PERIOD = "period only"  # fetched as a period='D7' snapshot
    NONE = "no parameter"  # fetched as a snapshot


class Subject(enum.Enum):
    """What one row of a report describes."""

    USER = "user"
    SITE = "site"
    GROUP = "group"


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

_DESCRIBES = {
    Subject.USER: "one user",
    Subject.SITE: "one site",
    Subject.GROUP: "one group",
}


@dataclass(frozen=True)
class ReportDefinition:
    """One Graph report function and everything the tap needs to extract it."""

    function: str
    parameters: Parameters
    subject: Subject
    key: tuple[str, ...]  # documented headers identifying a row within one report day
    header: str  # the documented CSV header line
    summary: str
    types: Mapping[str, ColumnType] = field(default_factory=dict)  # exceptions to the convention
    # The function's URL path relative to the Graph version; "" means `reports/<function>`.
    # Copilot's reports live under `copilot/reports/` instead.
    path: str = ""

    def __post_init__(self) -> None:
        if not self.path:
            object.__setattr__(self, "path", f"reports/{self.function}")

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
        return th.PropertiesList(*properties).to_dict()


DAILY = Parameters.DATE_OR_PERIOD
UPN = ("User Principal Name",)

# graph-reference 5.3: the v1.0 detail reports and their documented CSV header lines.
REPORTS: tuple[ReportDefinition, ...] = (
    ReportDefinition(
        "getOffice365ActiveUserDetail",
        DAILY,
        Subject.USER,
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
        Subject.USER,
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
        Subject.USER,
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
        Subject.USER,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,"
        "Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,"
        "Meeting Interacted Count,Assigned Products,Report Period",
        "Per user: email sent, received and read, meetings created and interacted with.",
    ),
    ReportDefinition(
        "getEmailAppUsageUserDetail",
        DAILY,
        Subject.USER,
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
        Subject.USER,
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
        Subject.USER,
        UPN,
        "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,"
        "Viewed Or Edited File Count,Synced File Count,Shared Internally File Count,"
        "Shared Externally File Count,Assigned Products,Report Period",
        "Per user: OneDrive files viewed or edited, synced and shared.",
    ),
    ReportDefinition(
        "getOneDriveUsageAccountDetail",
        DAILY,
        Subject.SITE,
        ("Site URL",),
        "Report Refresh Date,Site URL,Owner Display Name,Is Deleted,Last Activity Date,"
        "File Count,Active File Count,Storage Used (Byte),Storage Allocated (Byte),"
        "Owner Principal Name,Report Period",
        "Per OneDrive: files, active files, storage used and allocated.",
    ),
    ReportDefinition(
        "getSharePointActivityUserDetail",
        DAILY,
        Subject.USER,
        UPN,
        "Report Refresh Date,User Principal Name,Is Deleted,Deleted Date,Last Activity Date,"
        "Viewed Or Edited File Count,Synced File Count,Shared Internally File Count,"
        "Shared Externally File Count,Visited Page Count,Assigned Products,Report Period",
        "Per user: SharePoint files viewed or edited, synced, shared, pages visited.",
    ),
    ReportDefinition(
        "getSharePointSiteUsageDetail",
        DAILY,
        Subject.SITE,
        ("Site Id",),
        "Report Refresh Date,Site Id,Site URL,Owner Display Name,Is Deleted,Last Activity Date,"
        "File Count,Active File Count,Page View Count,Visited Page Count,Storage Used (Byte),"
        "Storage Allocated (Byte),Root Web Template,Owner Principal Name,Report Period",
        "Per SharePoint site: files, page views, storage used and allocated.",
    ),
    ReportDefinition(
        "getTeamsUserActivityUserDetail",
        DAILY,
        Subject.USER,
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
        Subject.USER,
        UPN,
        "Report Refresh Date,User Id,User Principal Name,Last Activity Date,Is Deleted,"
        "Deleted Date,Used Web,Used Windows Phone,Used iOS,Used Mac,Used Android Phone,"
        "Used Windows,Used Chrome OS,Used Linux,Is Licensed,Report Period",
        "Per user: the devices Teams was used on.",
    ),
    ReportDefinition(
        "getYammerActivityUserDetail",
        DAILY,
        Subject.USER,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,User State,State Change Date,"
        "Last Activity Date,Posted Count,Read Count,Liked Count,Assigned Products,"
        "Report Period",
        "Per user: Viva Engage (Yammer) messages posted, read and liked.",
    ),
    ReportDefinition(
        "getYammerDeviceUsageUserDetail",
        DAILY,
        Subject.USER,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,User State,State Change Date,"
        "Last Activity Date,Used Web,Used Windows Phone,Used Android Phone,Used iPhone,"
        "Used iPad,Used Others,Report Period",
        "Per user: the devices Viva Engage (Yammer) was used on.",
    ),
    ReportDefinition(
        "getYammerGroupsActivityDetail",
        DAILY,
        Subject.GROUP,
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
        Subject.USER,
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
        Subject.USER,
        UPN,
        "Report Refresh Date,User Principal Name,Last Activity Date,Used Windows,"
        "Used Windows Phone,Used Android Phone,Used iPhone,Used iPad,Report Period",
        "Per user: the devices Skype for Business was used on (retired service).",
    ),
    ReportDefinition(
        "getOffice365GroupsActivityDetail",
        DAILY,
        Subject.GROUP,
        ("Group Id",),
        "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,"
        "Last Activity Date,Group Type,Member Count,Guest Count,Exchange Received Email Count,"
        "SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,"
        "Yammer Liked Message Count,Exchange Mailbox Total Item Count,"
        "Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,"
        "SharePoint Site Storage Used (Byte),Group Id,Report Period",
        "Per Microsoft 365 group: mail, files, storage and Viva Engage activity.",
    ),
    # https://learn.microsoft.com/graph/api/reportroot-getteamsteamactivitydetail?view=graph-rest-1.0
    # (period or date=, the date within the past 30 days). The page's column list spells
    # "Team type" and "Active users"; its CSV example "Team Type" and "Active Users": the
    # example's line is used, and columns match by snake_case name, so either spelling maps to
    # the same property.
    ReportDefinition(
        "getTeamsTeamActivityDetail",
        DAILY,
        Subject.GROUP,
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
        Subject.USER,
        UPN,
        "Report Refresh Date,User Principal Name,Display Name,Last Activity Date,"
        "Copilot Chat Last Activity Date,Microsoft Teams Copilot Last Activity Date,"
        "Word Copilot Last Activity Date,Excel Copilot Last Activity Date,"
        "PowerPoint Copilot Last Activity Date,Outlook Copilot Last Activity Date,"
        "OneNote Copilot Last Activity Date,Loop Copilot Last Activity Date,Report Period",
        "Per Copilot-licensed user: last Copilot activity overall and per app (a 7-day snapshot).",
        path="copilot/reports/getMicrosoft365CopilotUsageUserDetail",
    ),
)


# --------------------------------------------------------------------------------------------
# Cells to values
# --------------------------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes"})
_FALSE = frozenset({"false", "no"})
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:$|[T ])")
# A '+' with text on both sides joins two product names; ' + ' belongs to a name
# ("ENTERPRISE MOBILITY + SECURITY E5").
_PRODUCT_SEPARATOR = re.compile(r"(?<=\S)\+(?=\S)")


class BadCell(ValueError):  # noqa: N818 - a signal, caught next to where it is raised
    """A cell that does not hold its column's type."""


# Cells repeat (a day, True/False, small counts): converting each distinct text once makes the
# conversion a dictionary look-up for most cells. A BadCell is raised again, never cached.
@lru_cache(maxsize=4096)
def _to_date(cell: str) -> str:
    match = _DATE.match(cell)
    if not match:
        raise BadCell(cell)
    return match.group(1)


@lru_cache(maxsize=64)
def _to_boolean(cell: str) -> bool:
    folded = cell.lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise BadCell(cell)


@lru_cache(maxsize=4096)
def _to_integer(cell: str) -> int:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        number = float(cell.replace(",", ""))
    except ValueError:
        raise BadCell(cell) from None
    if not number.is_integer():
        raise BadCell(cell)
    return int(number)


def _to_products(cell: str) -> list[str]:
    return [name.strip() for name in _PRODUCT_SEPARATOR.split(cell) if name.strip()]


CONVERTERS: dict[ColumnType, Callable[[str], Any]] = {
    ColumnType.STRING: str,
    ColumnType.DATE: _to_date,
    ColumnType.BOOLEAN: _to_boolean,
    ColumnType.INTEGER: _to_integer,
    ColumnType.PRODUCTS: _to_products,
}

# Concealed names (graph-reference 5.6): 32 upper-case hex digits instead of a name or URL.
CONCEALED_VALUE = re.compile(r"^[0-9A-F]{32}$")
NAME_COLUMNS = (
    "user_principal_name",
    "owner_principal_name",
    "site_url",
    "group_display_name",
    "group_id",
)
CONCEALMENT_SAMPLE = 50  # rows of each file checked for concealed names
CONCEALED_SETTING = (
    'Microsoft 365 admin center > Settings > Org settings > Services > Reports: "Display '
    'concealed user, group, and site names in all reports"'
)


class ColumnPlan:
    """How the columns of one served CSV header map to the stream's properties."""

    def __init__(self, definition: ReportDefinition, header: list[str]) -> None:
        types = definition.column_types
        self.text_cells: list[tuple[int, str]] = []
        self.typed_cells: list[tuple[int, str, Callable[[str], Any]]] = []
        self.unknown: list[str] = []
        served: set[str] = set()
        for index, column in enumerate(header):
            name = snake_case(column)
            if name in types and name not in served:
                served.add(name)
                if types[name] is ColumnType.STRING:
                    self.text_cells.append((index, name))
                else:
                    self.typed_cells.append((index, name, CONVERTERS[types[name]]))
            elif name != "report_date":
                self.unknown.append(column.strip())
        self.missing = [column for column in definition.columns if snake_case(column) not in served]
        self.absent = {name: None for name in types if name not in served}
        self.width = len(header)
        self.key = [snake_case(column) for column in definition.key]
        self.names = [name for name in NAME_COLUMNS if name in served]


@dataclass
class ParseIssues:
    """What a stream noticed in the files of one run, each logged once."""

    logged: set[str] = field(default_factory=set)
    bad_cells: dict[str, int] = field(default_factory=dict)
    keyless_rows: int = 0
    short_rows: int = 0


class ReportStream(GraphStream):
    """One usage report, configured by its `ReportDefinition`.

    Records come from CSV files the run's `ReportScheduler` fetched and spooled, one file per
    report day (or one snapshot), delivered in ascending day order. The bookmark (`report_date`)
    moves only when a whole day has been emitted, so it never passes a day that was not delivered.
    """

    replication_key = "report_date"
    is_sorted = True
    # Records are built with exactly the schema's JSON types; the SDK's per-value conformance
    # would only cost time (about 40 % of a large report's sync).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    required_permissions = ("Reports.Read.All",)
    supports_top = False
    select_from_schema = False

    def __init__(self, tap: TapMicrosoft365, definition: ReportDefinition) -> None:
        self.definition = definition
        self.path = f"/{definition.path}"
        super().__init__(tap=tap, name=definition.name, schema=definition.schema)
        # GraphStream declares primary_keys per class; a report's come from its definition.
        self.primary_keys = definition.key_properties  # type: ignore[misc]
        self._issues = ParseIssues()

    @property
    def scheduler(self) -> ReportScheduler:
        """The run's scheduler, shared by every report stream."""
        return self.tap.report_scheduler

    @property
    def bookmark(self) -> date | None:
        """The last day delivered by earlier runs."""
        state = self.stream_state
        value = state.get("replication_key_value")
        if not value or state.get("replication_key") != self.replication_key:
            return None
        return date.fromisoformat(str(value)[:10])

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        records = 0
        delivered: list[date] = []
        for delivery in self.scheduler.deliveries(self):
            if delivery.path is not None:
                for record in self._read(delivery):
                    records += 1
                    yield record
            # Every record of the day has been emitted (or the day has none).
            self._advance_bookmark(delivery.report_date)
            delivered.append(delivery.report_date)
        self._log_summary(delivered, records)

    def _log_summary(self, delivered: list[date], records: int) -> None:
        if delivered:
            span = (
                delivered[0].isoformat()
                if len(delivered) == 1
                else f"{delivered[0].isoformat()}..{delivered[-1].isoformat()}"
            )
            self.logger.info(
                "%s: done, %s record(s) for %d report day(s) (%s); bookmark now %s",
                self.name,
                f"{records:,}",
                len(delivered),
                span,
                delivered[-1].isoformat(),
            )
        else:
            bookmark = self.bookmark
            self.logger.info(
                "%s: done, nothing new%s",
                self.name,
                f" after {bookmark.isoformat()}" if bookmark else "",
            )

    def _advance_bookmark(self, day: date) -> None:
        """Move the bookmark to a fully delivered day and say so in a STATE message.

        Records do not move the bookmark (see `_increment_stream_state`): a run stopped in the
        middle of a day resumes with that whole day.
        """
        self.state_manager.increment_state(
            {self.replication_key: day.isoformat()},
            context=None,
            replication_key=self.replication_key,
        )
        self._write_state_message()

    @override
    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        """Records do not move the bookmark; `_advance_bookmark` does, per complete day."""

    def _read(self, delivery: Delivery) -> Iterator[dict[str, Any]]:
        """The records of one spooled CSV file, row by row."""
        assert delivery.path is not None  # noqa: S101 - checked by the caller
        report_date = delivery.report_date.isoformat()
        with gzip.open(delivery.path, "rt", encoding="utf-8-sig", newline="") as text:
            # Strict: a quote that never closes is an error, not a field swallowing the rest.
            reader = csv.reader(text, strict=True)
            try:
                header = next(reader, None)
                if header is None:
                    return
                plan = self._plan(header)
                # Concealment is tenant-wide: the first rows of a file show it, if anywhere.
                watch = (
                    CONCEALMENT_SAMPLE if plan.names and not self.scheduler.concealment_seen else 0
                )
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    record = self._record(plan, row, report_date)
                    if record is None:
                        continue
                    if watch:
                        watch = 0 if self._concealed(plan, record) else watch - 1
                    yield record
            except (csv.Error, UnicodeDecodeError) as exc:
                what = (
                    "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "is malformed"
                )
                msg = (
                    f"{self.name}: the CSV file of {self.definition.function} for {report_date} "
                    f"{what} (line {reader.line_num}: {exc}): it was damaged in transit or by a "
                    "proxy; run again (the day is not bookmarked, so it is fetched again)"
                )
                raise GraphAPIError(msg) from None
        delivery.discard()

    def _plan(self, header: list[str]) -> ColumnPlan:
        plan = ColumnPlan(self.definition, header)
        missing_key = [column for column in self.definition.key if column in plan.missing]
        if missing_key:
            msg = (
                f"{self.name}: Graph's {self.definition.function} no longer has the column(s) "
                f"{', '.join(missing_key)} that identify its rows, so they cannot be keyed: "
                "upgrade tap-microsoft365, or deselect this stream until a release supports "
                "the new layout"
            )
            raise GraphAPIError(msg)
        if plan.unknown:
            self._once(
                "unknown:" + ",".join(plan.unknown),
                "%s: Graph's %s has column(s) this tap does not know: %s; they are not "
                "extracted (a newer tap-microsoft365 may add them)",
                self.name,
                self.definition.function,
                ", ".join(plan.unknown),
            )
        if plan.missing:
            self._once(
                "missing:" + ",".join(plan.missing),
                "%s: Graph's %s no longer has the column(s) %s; they are null in this run",
                self.name,
                self.definition.function,
                ", ".join(plan.missing),
            )
        return plan

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._issues.logged:
            self._issues.logged.add(key)
            self.logger.warning(message, *args)

    def _record(self, plan: ColumnPlan, row: list[str], report_date: str) -> dict[str, Any] | None:
        record: dict[str, Any] = {"report_date": report_date, **plan.absent}
        if len(row) < plan.width:
            self._issues.short_rows += 1
            self._once(
                "short",
                "%s: a row of %s has fewer cells than its header; the missing cells are null",
                self.name,
                self.definition.function,
            )
            row = row + [""] * (plan.width - len(row))
        for index, name in plan.text_cells:
            record[name] = row[index].strip() or None
        for index, name, convert in plan.typed_cells:
            cell = row[index].strip()
            if not cell:
                record[name] = None
                continue
            try:
                record[name] = convert(cell)
            except BadCell:
                record[name] = None
                self._bad_cell(name)
        for name in plan.key:
            if record[name] is None:
                self._issues.keyless_rows += 1
                self._once(
                    "keyless",
                    "%s: a row without %s was skipped: it cannot be keyed",
                    self.name,
                    " or ".join(plan.key),
                )
                return None
        return record

    def _bad_cell(self, name: str) -> None:
        self._issues.bad_cells[name] = self._issues.bad_cells.get(name, 0) + 1
        self._once(
            f"cell:{name}",
            "%s: column %s holds a value that is not a %s; such values are null",
            self.name,
            name,
            self.definition.column_types[name].value,
        )

    def _concealed(self, plan: ColumnPlan, record: Mapping[str, Any]) -> bool:
        for name in plan.names:
            value = record.get(name)
            if isinstance(value, str) and "@" not in value and CONCEALED_VALUE.match(value):
                self.scheduler.report_concealment(self, name)
                return True
        return False


def report_streams(tap: TapMicrosoft365) -> list[ReportStream]:
    """One stream per report definition."""
    return [ReportStream(tap, definition) for definition in REPORTS]


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
