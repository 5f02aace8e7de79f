"""A usage report as a stream: the CSV files the fetcher spooled, turned into records.

Records come from the files `ReportFetcher` (fetcher.py) fetched and spooled, one file per report
day (or one snapshot), delivered in ascending day order. Cells become typed values by the
column's type (definitions.py); the bookmark (`report_date`) moves only when a whole day has been
emitted, so it never passes a day that was not delivered. A day whose file is still downloading is
read as it arrives, its RECORD lines written to a temporary file and copied to stdout only once the
file is whole and read to its end: a day is emitted whole or not at all, and its download overlaps
its parsing. A file that cannot be read to its end
(not UTF-8, malformed CSV) stops the stream before its day is bookmarked. Columns the tap does not
know go to each record's `extra_columns`, decided once per file (`ColumnPlan`).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import re
import tempfile
from contextlib import closing, suppress
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from singer_sdk import metrics
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_microsoft365.conform import record_line_writer, record_messages
from tap_microsoft365.errors import GraphAPIError
from tap_microsoft365.sdk_compat import write_state_message
from tap_microsoft365.streams.base import GraphServices, GraphStream, with_tenant_key
from tap_microsoft365.streams.reports.definitions import (
    EXTRA_COLUMNS,
    ColumnType,
    ReportDefinition,
    snake_case,
)
from tap_microsoft365.streams.reports.fetcher import DownloadBrokenError, GrowingFile
from tap_microsoft365.tenants import CONTEXT_KEY
from tap_microsoft365.writer import GraphSingerWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
    from pathlib import Path

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context
    from singer_sdk.singerlib import RecordMessage
    from typing_extensions import override

    from tap_microsoft365.streams.reports.fetcher import Delivery, ReportFetcher
    from tap_microsoft365.tenants import Tenant
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override


class DayRecordCounter(metrics.Counter):
    """The `record_count` metric of a report: a day's records count when its lines reach stdout.

    Lines held back until their file is whole (`hold`) are counted when the day is emitted
    (`emitted`), and not at all if its download broke and the day is fetched again (`dropped`),
    so the metric equals the RECORD lines written.
    """

    def __init__(self, base: metrics.Counter) -> None:
        super().__init__(base.metric, base.tags, log_interval=base.log_interval)
        self.hold = False
        self.held = 0

    @override
    def increment(self, value: int = 1) -> None:
        if self.hold:
            self.held += value
        else:
            super().increment(value)

    def emitted(self) -> None:
        """The held lines were written."""
        held, self.held, self.hold = self.held, 0, False
        if held:
            super().increment(held)

    def dropped(self) -> None:
        """The held lines were discarded."""
        self.held, self.hold = 0, False


class ReportServices(GraphServices, Protocol):
    """What report streams share besides the tenants: a report fetcher per tenant."""

    def report_fetcher(self, tenant: Tenant) -> ReportFetcher:
        """Fetches every selected report's files of one tenant, concurrently within Graph's
        limits (which count per tenant)."""
        ...


class TenantReport:
    """One report stream for one tenant, as that tenant's fetcher sees it (`ReportSource`):
    the tenant's bookmark, and, with several tenants, a name that says which tenant."""

    def __init__(self, stream: ReportStream, context: Context | None) -> None:
        self.stream = stream
        self.context = context
        # With several tenants the name says which (the fetcher's log lines use it).
        self.name = stream.name if context is None else f"{stream.name}[{context[CONTEXT_KEY]}]"
        self.definition = stream.definition
        self.ABORT_AT_RECORD_COUNT = stream.ABORT_AT_RECORD_COUNT  # set for a dry run (--test)

    @property
    def required_permissions(self) -> tuple[str, ...]:
        """The application permissions that allow reading the report."""
        return self.stream.required_permissions

    @property
    def bookmark(self) -> date | None:
        """The last day delivered to this tenant by earlier runs."""
        return self.stream.bookmark_for(self.context)

    @property
    def selected(self) -> bool:
        """Whether the catalog selects the stream."""
        return self.stream.selected


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
    day = match.group(1)
    try:
        date.fromisoformat(day)  # 2026-02-30, 2026-13-01 and 0000-00-00 are no days
    except ValueError:
        raise BadCell(cell) from None
    return day


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
    # A fresh list per record (records are the targets'), from names split once per cell text.
    return list(_product_names(cell))


@lru_cache(maxsize=4096)
def _product_names(cell: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in _PRODUCT_SEPARATOR.split(cell) if name.strip())


CONVERTERS: dict[ColumnType, Callable[[str], Any]] = {
    ColumnType.STRING: str,
    ColumnType.DATE: _to_date,
    ColumnType.BOOLEAN: _to_boolean,
    ColumnType.INTEGER: _to_integer,
    ColumnType.PRODUCTS: _to_products,
}

# Concealed names: 32 upper-case hex digits instead of a name or URL
# (https://learn.microsoft.com/microsoft-365/admin/activity-reports/activity-reports).
CONCEALED_VALUE = re.compile(r"^[0-9A-F]{32}$")
NAME_COLUMNS = (
    "user_principal_name",
    "owner_principal_name",
    "site_url",
    "group_display_name",
    "group_id",
)
CONCEALMENT_SAMPLE = 50  # rows of each file checked for concealed names


class ColumnPlan:
    """How the columns of one served CSV header map to the stream's properties.

    Decided once per file: a documented column (or a known rename of one) fills its property;
    a column this tap does not know goes to `extra_columns` under its snake_cased name; a column
    served twice is read from its first occurrence.
    """

    def __init__(self, definition: ReportDefinition, header: list[str]) -> None:
        types = definition.column_types
        aliases = definition.alias_properties
        self.text_cells: list[tuple[int, str]] = []
        self.typed_cells: list[tuple[int, str, Callable[[str], Any]]] = []
        self.unknown: list[str] = []
        self.repeated: list[str] = []
        self.extra_cells: list[tuple[int, str]] = []  # unknown columns -> extra_columns keys
        served: set[str] = set()
        for index, column in enumerate(header):
            name = snake_case(column)
            name = aliases.get(name, name) or f"column_{index + 1}"  # a column without a name
            shown = column.strip() or f"(unnamed column {index + 1})"
            if name in served:
                self.repeated.append(shown)
            elif name in types:
                served.add(name)
                if types[name] is ColumnType.STRING:
                    self.text_cells.append((index, name))
                else:
                    self.typed_cells.append((index, name, CONVERTERS[types[name]]))
            elif name != "report_date":
                served.add(name)
                self.unknown.append(shown)
                self.extra_cells.append((index, name))
        self.missing = [column for column in definition.columns if snake_case(column) not in served]
        self.absent = {name: None for name in types if name not in served}
        if not self.extra_cells:
            self.absent[EXTRA_COLUMNS] = None
        self.width = len(header)
        self.key = [snake_case(column) for column in definition.key]
        self.names = [name for name in NAME_COLUMNS if name in served]
        self.fast_record = self._compile()

    def _compile(self) -> Callable[[list[str], str], dict[str, Any] | None]:
        """The plan as one function of a row: the record `ReportStream._record` builds for a
        row that needs no warning, or None when the row needs `_record` (a cell too few or too
        many, a cell not of its column's type, no key). One dict display per row instead of a
        loop per cell; names enter the source only as string literals, converters as arguments.
        """
        converters = [convert for _, _, convert in self.typed_cells]
        items = ["'report_date': report_date"]
        items += [f"{name!r}: None" for name in self.absent]
        items += [f"{name!r}: row[{index}].strip() or None" for index, name in self.text_cells]
        items += [
            f"{name!r}: convert_{n}(cell) if (cell := row[{index}].strip()) else None"
            for n, (index, name, _) in enumerate(self.typed_cells)
        ]
        if self.extra_cells:  # columns this tap does not know, last as in `_record`
            extra = ", ".join(
                f"{name!r}: row[{index}].strip() or None" for index, name in self.extra_cells
            )
            items.append(f"{EXTRA_COLUMNS!r}: {{{extra}}}")
        keyed = " or ".join(f"record[{name!r}] is None" for name in self.key) or "False"
        parameters = ", ".join(f"convert_{n}" for n in range(len(converters)))
        source = (
            f"def build({parameters}):\n"
            "    def fast_record(row, report_date):\n"
            f"        if len(row) != {self.width}:\n"
            "            return None\n"
            "        try:\n"
            f"            record = {{{', '.join(items)}}}\n"
            "        except BadCell:\n"
            "            return None\n"
            f"        return None if {keyed} else record\n"
            "    return fast_record\n"
        )
        namespace: dict[str, Any] = {"BadCell": BadCell}
        exec(compile(source, f"<report row: {self.width} columns>", "exec"), namespace)  # noqa: S102
        fast: Callable[[list[str], str], dict[str, Any] | None] = namespace["build"](*converters)
        return fast


class ReportStream(GraphStream):
    """One usage report, configured by its `ReportDefinition`.

    Records come from CSV files the run's `ReportFetcher` fetched and spooled, one file per
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

    # Records do not move the bookmark; `_advance_bookmark` does, per complete day.
    bookmarks_follow_records = False
    # When the file being read was downloaded: the `time_extracted` of its records (conform.py).
    records_extracted_at: datetime | None = None
    # Writes a record of the file being read as its RECORD line (conform.py); None: the SDK's
    # message path.
    _write_line: Callable[[dict[str, Any]], bool] | None = None

    def __init__(self, tap: Tap, services: ReportServices, definition: ReportDefinition) -> None:
        self.definition = definition
        self.report_services = services
        self.path = f"/{definition.url_path}"
        super().__init__(tap, services, name=definition.name, schema=definition.schema)
        # GraphStream declares primary_keys per class; a report's come from its definition.
        self.primary_keys = with_tenant_key(definition.key_properties)  # type: ignore[misc]
        self._logged: set[str] = set()  # what this run's files showed, each said once
        self._context: Context | None = None  # the tenant being read
        self._record_counter: DayRecordCounter | None = None

    @override
    def get_record_counter(
        self, *, endpoint: str | None = None, log_interval: float = metrics.DEFAULT_LOG_INTERVAL
    ) -> metrics.Counter:
        counter = DayRecordCounter(
            super().get_record_counter(endpoint=endpoint, log_interval=log_interval)
        )
        self._record_counter = counter
        return counter

    @property
    def fetcher(self) -> ReportFetcher:
        """The report fetcher of the tenant being read, shared by every report stream."""
        return self.report_services.report_fetcher(self.tenant)

    @override
    def tenant_failed(self, tenant: Tenant) -> None:
        # Its other reports will not be read: stop fetching them.
        self.report_services.report_fetcher(tenant).close()

    def source(self, context: Context | None) -> TenantReport:
        """This report for one tenant, as its fetcher sees it."""
        return TenantReport(self, context)

    def bookmark_for(self, context: Context | None) -> date | None:
        """The last day delivered to a tenant by earlier runs."""
        state = self.get_context_state(context)
        value = state.get("replication_key_value")
        if not value or state.get("replication_key") != self.replication_key:
            return None
        return date.fromisoformat(str(value)[:10])

    @property
    def bookmark(self) -> date | None:
        """The last day delivered to the tenant being read by earlier runs."""
        return self.bookmark_for(self._context)

    @override
    def tenant_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        self._context = context
        records = 0
        delivered: list[date] = []
        # Closed at once when reading fails: the fetching of the report stops before the
        # error is reported (no worker's line after the run's last).
        with closing(self.fetcher.deliveries(self.source(context))) as deliveries:
            for delivery in deliveries:
                if delivery.path is not None:
                    read = 0
                    try:
                        for record in self._read(delivery):
                            read += 1
                            yield record
                    except DownloadBrokenError:
                        # Nothing of the day was emitted (its lines were held until the file
                        # was whole); a new delivery of it follows, or the report's error.
                        continue
                    records += read
                # Every record of the day has been emitted (or the day has none).
                self._advance_bookmark(delivery.report_date)
                delivered.append(delivery.report_date)
        self._log_summary(delivered, records)

    @override
    def record_messages(self, record: dict[str, Any]) -> Generator[RecordMessage, None, None]:
        # conform.py's generator itself, without the extra generator GraphStream wraps it in
        # (one frame less per row of a report).
        return record_messages(self, record)

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        # Built from the CSV with the schema's own names: no Graph JSON to clean up or rename.
        return row

    @override
    def write_record(self, record: dict[str, Any]) -> None:
        # A report's records are typed as built: the line is written without a message object
        # (no deselected property, no stream map, the tap's writer; `record_line_writer`).
        write_line = self._write_line
        if write_line is not None and write_line(record):
            self.state_manager.is_flushed = False  # as the SDK's own write does
        else:
            super().write_record(record)

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

        Records do not move the bookmark (`bookmarks_follow_records`): a run stopped in the
        middle of a day resumes with that whole day.
        """
        stored = self.bookmark
        if stored is not None and stored > day:
            # A bookmark after the days Graph has processed, which the fetcher ignored
            # (fetcher.py `_ignore_bookmark`): replaced, or it would stall the stream for ever.
            self.get_context_state(self._context).pop("replication_key_value", None)
        self.state_manager.increment_state(
            {self.replication_key: day.isoformat()},
            context=self._context,
            replication_key=self.replication_key,
        )
        write_state_message(self)

    def _read(self, delivery: Delivery) -> Iterator[dict[str, Any]]:
        """The records of one spooled CSV file, row by row."""
        assert delivery.path is not None  # noqa: S101 - checked by the caller
        report_date = delivery.report_date.isoformat()
        # The spooled file was written as it was downloaded: its records were extracted then.
        self.records_extracted_at = datetime.fromtimestamp(delivery.path.stat().st_mtime, UTC)
        self._write_line = record_line_writer(self)
        if delivery.complete:
            yield from self._records(delivery, report_date, delivery.path)
        elif self._write_line is None or self.ABORT_AT_RECORD_COUNT is not None:
            # Lines cannot be held back here (stream maps, deselected properties, a dry run
            # that stops after a few records): read the file once it is whole.
            delivery.wait()
            yield from self._records(delivery, report_date, delivery.path)
        else:
            # Read while it downloads; the day's lines go to a file of their own and reach
            # stdout only once the whole file was read: a day is emitted whole or not at all.
            assert delivery.path is not None  # noqa: S101 - checked above
            lines = tempfile.TemporaryFile(dir=delivery.path.parent)  # noqa: SIM115
            counter = self._record_counter
            if counter is not None:
                counter.hold = True
            try:
                self._write_line = record_line_writer(self, out=lines)
                yield from self._records(delivery, report_date, GrowingFile(delivery))
                GraphSingerWriter.write_lines(lines)
                if counter is not None:
                    counter.emitted()
            finally:
                if counter is not None:
                    counter.dropped()  # not emitted: nothing of the day reached stdout
                self._write_line = None
                # Dropped unless copied: closing must not fail again on a full TMPDIR (the
                # error that stopped the day is the one reported).
                with suppress(OSError):
                    lines.close()
        delivery.discard()

    def _records(
        self, delivery: Delivery, report_date: str, source: Path | GrowingFile
    ) -> Iterator[dict[str, Any]]:
        """The records of a spooled file, from its path or as it downloads."""
        with gzip.open(source, "rt", encoding="utf-8-sig", newline="") as text:
            # Strict: a quote that never closes is an error, not a field swallowing the rest.
            reader = csv.reader(text, strict=True)
            try:
                header = next(reader, None)
                if header is None:
                    return
                plan = self._plan(header)
                fast = plan.fast_record
                # Concealment is tenant-wide: the first rows of a file show it, if anywhere.
                watch = (
                    CONCEALMENT_SAMPLE if plan.names and not self.fetcher.concealment_seen else 0
                )
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    record = fast(row, report_date)
                    if record is None:
                        record = self._record(plan, row, report_date)
                        if record is None:
                            continue
                    if watch:
                        watch = 0 if self._concealed(plan, record) else watch - 1
                    yield record
            except (csv.Error, UnicodeDecodeError) as exc:
                raise GraphAPIError(self._unreadable(delivery, exc, reader.line_num)) from None

    def _unreadable(
        self, delivery: Delivery, exc: csv.Error | UnicodeDecodeError, line: int
    ) -> str:
        """The one line for a spooled file that cannot be read to its end."""
        day = delivery.report_date.isoformat()
        file = f"{self.name}: the CSV file of {self.definition.function} for {day}"
        consequence = (
            f"{day} is not bookmarked (nor any later day) and is fetched again next run (rows "
            "sent before the fault are sent again; targets upsert them by key)"
        )
        if isinstance(exc, UnicodeDecodeError):
            assert delivery.path is not None  # noqa: S101 - the file being read
            # The bytes up to the fault are spooled, whether or not the rest has arrived.
            line = _first_undecodable_line(
                delivery.path if delivery.complete else GrowingFile(delivery)
            )
            return (
                f"{file} is not UTF-8 text (line {line}: byte 0x{exc.object[exc.start]:02x} "
                f"is not UTF-8; Graph serves UTF-8, so it was re-encoded on the way, e.g. as "
                f"Latin-1): {consequence}; running again helps only if that was a passing "
                "fault: if it repeats, a proxy or content filter rewrites the report download: "
                "let those downloads through untouched"
            )
        return (
            f"{file} is malformed (line {line}: {exc}): it was damaged in transit or by a "
            f"proxy; {consequence}; running again helps if the damage was passing: if it "
            "repeats, let the report downloads through the proxy or content filter untouched"
        )

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
                "%s: Graph's %s has column(s) this tap does not know: %s; their values are in "
                "each record's extra_columns (keys %s)",
                self.name,
                self.definition.function,
                ", ".join(plan.unknown),
                ", ".join(name for _, name in plan.extra_cells),
            )
        if plan.repeated:
            self._once(
                "repeated:" + ",".join(plan.repeated),
                "%s: Graph's %s repeats the column(s) %s; the first of each is read",
                self.name,
                self.definition.function,
                ", ".join(plan.repeated),
            )
        if plan.missing:
            self._once(
                "missing:" + ",".join(plan.missing),
                "%s: Graph's %s file has no column(s) %s; they are null in this run",
                self.name,
                self.definition.function,
                ", ".join(plan.missing),
            )
        return plan

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            self.logger.warning(message, *args)

    def _record(self, plan: ColumnPlan, row: list[str], report_date: str) -> dict[str, Any] | None:
        record: dict[str, Any] = {"report_date": report_date, **plan.absent}
        if len(row) != plan.width:
            row = self._fit(plan, row, record)
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
        if plan.extra_cells:  # columns this tap does not know (issue 12): decided per file
            extra = {name: row[i].strip() or None for i, name in plan.extra_cells}
            beyond = record.get(EXTRA_COLUMNS)  # cells beyond the header (`_fit`), rare
            record[EXTRA_COLUMNS] = {**extra, **beyond} if beyond else extra
        for name in plan.key:
            if record[name] is None:
                self._once(
                    "keyless",
                    "%s: a row without %s was skipped: it cannot be keyed",
                    self.name,
                    " or ".join(plan.key),
                )
                return None
        return record

    def _fit(self, plan: ColumnPlan, row: list[str], record: dict[str, Any]) -> list[str]:
        """A row with fewer cells than its header, padded; one with more, cut to the header's
        width, the cells beyond it kept in `extra_columns` (as column_<n>)."""
        if len(row) < plan.width:
            self._once(
                "short",
                "%s: a row of %s has fewer cells than its header; the missing cells are null",
                self.name,
                self.definition.function,
            )
            return row + [""] * (plan.width - len(row))
        self._once(
            "long",
            "%s: a row of %s has more cells than its header; the cells beyond it are in "
            "extra_columns as column_<n>",
            self.name,
            self.definition.function,
        )
        record[EXTRA_COLUMNS] = {
            f"column_{index + 1}": row[index].strip() or None
            for index in range(plan.width, len(row))
        }
        return row[: plan.width]

    def _bad_cell(self, name: str) -> None:
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
                self.fetcher.report_concealment(self, name)
                return True
        return False


def _first_undecodable_line(path: Path | GrowingFile) -> int:
    """The 1-based line of a spooled file where UTF-8 decoding first fails (0: none does)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    with gzip.open(path, "rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return number
    return 0


def report_streams(
    tap: Tap, services: ReportServices, definitions: Iterable[ReportDefinition]
) -> list[ReportStream]:
    """One stream per report definition."""
    return [ReportStream(tap, services, definition) for definition in definitions]
