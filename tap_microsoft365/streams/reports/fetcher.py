"""Fetch the usage report files of a whole run, concurrently, within Graph's limits.

Graph allows 14 CSV calls per 10 minutes per report function, per app and tenant
(https://learn.microsoft.com/graph/throttling-limits#reports-service-limits), and a 28-day
backfill needs about 28 calls per report. The SDK syncs streams one after another, so fetching
each report when its stream's turn comes would add up every report's wait. Instead, when the
first report stream starts, the run's `ReportFetcher` starts one worker per selected report:
each paces its own function's calls on its own budget, and spools every file it downloads to a
compressed temporary file. Each stream then reads its own days, in order, as
they become ready, so a backfill of 15 reports takes about as long as one. A day is handed over
as soon as its file's header is verified: its stream may read the file while it downloads
(`GrowingFile`), holding the day's lines back until the file is whole (stream.py); a download
that breaks off marks its delivery broken, and a new delivery of the same day follows.

One report's work:

1. A `period='D7'` call whose first row says the Report Refresh Date: the last day Graph has
   processed, learned from the data rather than assumed (the lag varies from 1 to several days).
2. For reports that take `date=`: one call per day, from the day after the bookmark (or
   `start_date`) through that refresh date, from the oldest of the 28 days Graph keeps (a day
   Graph refuses as too old, counting from today, is skipped with a WARNING naming it). A day
   after the refresh date is not asked for: it is fetched by a later run. A file that is the
   report's header alone is a day without rows, delivered as such; a file that only looks empty
   (0 bytes, a lone BOM, an HTML page, a blank line after the header, a first row without a
   YYYY-MM-DD Report Refresh Date) fails the day, which the stream then does not bookmark
   (`BadReportFileError`).
3. For snapshot reports (period-only or parameterless): one call; nothing is delivered when its
   refresh date has not moved since the last run.

A bookmark after Graph's refresh date (`2099-01-01` in a state edited by hand) is ignored with a
warning (the days are fetched as if there were none), never waited for.

Each call answers `302 Found` with a short-lived pre-authenticated URL on another host (some,
such as the Copilot reports, answer 200 with the file). The URL is followed by hand on a
download session with a request built without any `Authorization` header (the bearer token
stays with Graph), and never logged. Every call and download goes through the run's
`Transport`: its sessions, and its one retry loop (Retry-After honoured, `retry_max_attempts`
and `retry_max_wait_seconds` for 429 too, a fresh token once after a 401, an unreachable host
given up on once for every report).
"""

from __future__ import annotations

import atexit
import codecs
import csv
import gzip
import io
import logging
import re
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from singer_sdk import metrics

from tap_microsoft365.errors import (
    AuthenticationError,
    ConcealedNamesError,
    GraphAPIError,
    PermissionDeniedError,
)
from tap_microsoft365.graph.transport import (
    Retry,
    StoppedError,
    correlation,
    describe_unparsable,
    error_line,
    gave_up_line,
    graph_error_fields,
    is_html,
    permission_line,
    refused_token_line,
    tls_line,
)
from tap_microsoft365.streams.reports.definitions import (
    Parameters,
    describe_concealment,
    snake_case,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Mapping

    from tap_microsoft365.graph.transport import Transport
    from tap_microsoft365.retries import GiveUpError
    from tap_microsoft365.streams.reports.definitions import ReportDefinition

LOGGER_NAME = "tap-microsoft365"
METRICS_LOGGER = metrics.get_metrics_logger()
CALLS_PER_WINDOW = 14  # Graph's documented CSV limit per report function, app and tenant
WINDOW_SECONDS = 600.0
KEPT_DAYS = 28  # Graph rejects dates older than this (400 InvalidArgument)
PROGRESS_INTERVAL_SECONDS = 5.0
PROGRESS_REPEAT_SECONDS = 60.0
CHUNK_BYTES = 256 * 1024
MAX_DOWNLOAD_REDIRECTS = 3
PERMISSION_CODES = frozenset({"S2SUnauthorized", "Authorization_RequestDenied", "accessDenied"})


class ReportSource(Protocol):
    """What the fetcher needs of a report stream (stream.py's `ReportStream`)."""

    name: str
    definition: ReportDefinition
    ABORT_AT_RECORD_COUNT: int | None

    @property
    def required_permissions(self) -> tuple[str, ...]:
        """The application permissions that allow reading the report."""
        ...

    @property
    def bookmark(self) -> date | None:
        """The last day delivered by earlier runs."""
        ...

    @property
    def selected(self) -> bool:
        """Whether the catalog selects the stream."""
        ...


def oldest_requestable_day(refresh: date) -> date:
    """The oldest day to ask Graph for: 28 days before the refresh date.

    Graph keeps 28 days but does not say whether they count from today or from the refresh
    date, so every day it may still serve is asked for, oldest first; a day it refuses as too
    old (400 InvalidArgument) costs one call and is skipped with a WARNING naming it. Graph's
    Date header does not narrow the range: narrowing it dropped days Graph still served.
    """
    return refresh - timedelta(days=KEPT_DAYS)


def due_days(*, bookmark: date | None, start_date: date | None, refresh: date) -> list[date]:
    """The days to fetch, oldest first: after the bookmark (or from start_date) to the refresh."""
    candidates = [oldest_requestable_day(refresh)]
    if bookmark:
        candidates.append(bookmark + timedelta(days=1))
    if start_date:
        candidates.append(start_date)
    first = max(candidates)
    return [first + timedelta(days=n) for n in range((refresh - first).days + 1)]


_ISO_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:$|[T ])")


def iso_day(cell: str) -> date | None:
    """A YYYY-MM-DD date (a time may follow), or None when the text is not one."""
    match = _ISO_DAY.match(cell)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


PASSING = (
    "running again helps if the fault was passing; if it repeats, something between the tap "
    "and Microsoft (a proxy or content filter) is answering for the report download host: "
    "let those downloads through untouched"
)
NEW_FORMAT = (
    "running again will not help until tap-microsoft365 reads this format: upgrade it, or "
    "report the file's first two lines to tap-microsoft365"
)


class BadReportFileError(ValueError):
    """A downloaded report file that is not a well-formed CSV report (what is wrong with it)."""

    def __init__(self, problem: str, advice: str) -> None:
        super().__init__(problem)
        self.advice = advice  # whether running again can help, and what else to do


def parse_day(value: Any) -> date | None:
    """A date from a setting or a state value ('2026-11-01' or an ISO date-time)."""
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _clock_text(deadline: float) -> str:
    """A monotonic deadline as wall-clock UTC."""
    when = datetime.now(UTC) + timedelta(seconds=max(0.0, deadline - time.monotonic()))
    return when.strftime("%H:%M:%S UTC")


def _span(days: list[date]) -> str:
    if not days:
        return "none"
    if len(days) == 1:
        return days[0].isoformat()
    return f"{days[0].isoformat()}..{days[-1].isoformat()}"


class DownloadBrokenError(Exception):
    """The download of a delivery being read broke off: a new delivery of the same day
    follows (or the report's error, when Graph keeps failing)."""


@dataclass
class Delivery:
    """One report day (or snapshot) for its stream.

    A day is handed over as soon as its file's header is verified, while the rest downloads
    (`complete` False): the stream may read it as it arrives (`GrowingFile`), but emits its
    records only once the file is whole (stream.py). When the download breaks off, `broken` is
    set and a new delivery of the same day follows.
    """

    report_date: date
    path: Path | None  # a gzip-compressed CSV; None: no rows to read
    size: int = 0
    on_discard: Callable[[Delivery], None] | None = None
    complete: bool = True
    broken: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)

    def finish(self, *, broken: bool) -> None:
        """The download ended: whole, or broken off."""
        with self.changed:
            self.complete, self.broken = not broken, broken
            self.changed.notify_all()

    def wait(self) -> None:
        """Until the file is whole; DownloadBrokenError if its download broke off."""
        with self.changed:
            while not (self.complete or self.broken):
                self.changed.wait(1.0)
            if self.broken:
                raise DownloadBrokenError

    def discard(self) -> None:
        """Delete the spooled file (its records have been emitted)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
            if self.on_discard is not None:
                self.on_discard(self)


class GrowingFile(io.RawIOBase):
    """A delivery's spooled file read while it is being downloaded: a read waits for more
    bytes until the file is whole, and raises DownloadBrokenError if its download breaks off."""

    POLL_SECONDS = 0.02  # the spool is written in chunks; waiting readers look this often

    def __init__(self, delivery: Delivery) -> None:
        super().__init__()
        assert delivery.path is not None  # noqa: S101 - a delivery with a file
        self._delivery = delivery
        self._file = open(delivery.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        delivery = self._delivery
        while True:
            count = self._file.readinto(buffer)
            if count:
                return count
            with delivery.changed:
                if delivery.broken:
                    raise DownloadBrokenError
                if delivery.complete:  # the last bytes were written before it was marked
                    return self._file.readinto(buffer) or 0
                delivery.changed.wait(self.POLL_SECONDS)

    def close(self) -> None:
        self._file.close()
        super().close()


class Pacer:
    """At most `calls` calls of one report function in any `window` seconds.

    A call counts from when its answer arrives (at or after Graph saw it), so a call made when the
    oldest counted one is `window` seconds old cannot arrive early. After a 429, no call before
    Graph's Retry-After.
    """

    def __init__(self, calls: int, window: float) -> None:
        self.calls = calls
        self.window = window
        self._times: deque[float] = deque()
        self.blocked_until = 0.0

    def ready_at(self) -> float:
        """When the next call may start (monotonic time)."""
        now = time.monotonic()
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        at = self.blocked_until
        if len(self._times) >= self.calls:
            at = max(at, self._times[len(self._times) - self.calls] + self.window)
        return at

    def limited(self) -> bool:
        """Whether the wait is the pacing budget (True) or a Retry-After (False)."""
        return self.ready_at() > self.blocked_until

    def start(self) -> None:
        """Count a call as it starts."""
        self._times.append(time.monotonic())

    def finish(self) -> None:
        """Re-time the call that just got its answer."""
        if self._times:
            self._times[-1] = time.monotonic()

    def block(self, seconds: float) -> None:
        """Graph said 429: no call for `seconds`."""
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)


@dataclass
class Job:
    """One report stream's fetching in this run."""

    stream: ReportSource
    bookmark: date | None
    pacer: Pacer
    due: int | None = None  # report days to fetch; None until the first call has sized it
    fetched: int = 0
    ready: deque[Delivery] = field(default_factory=deque)
    finished: bool = False
    error: BaseException | None = None
    waiting_until: float | None = None
    waiting_for: str = ""  # "limit", "429", "spool"
    thread: threading.Thread | None = None
    # The report date of the file being fetched (from its refresh date), for handing it over
    # while it downloads; None: not handed over (the D7 probe).
    delivers_as: Callable[[date], date] | None = None

    @property
    def name(self) -> str:
        """The stream name."""
        return self.stream.name

    @property
    def definition(self) -> ReportDefinition:
        """The report's definition."""
        return self.stream.definition


@dataclass
class Outcome:
    """What one call to a report function produced."""

    refresh: date | None = None  # the first row's Report Refresh Date; None: header only
    path: Path | None = None
    size: int = 0
    not_kept: bool = False  # Graph no longer keeps the day (400 InvalidArgument)
    delivered: bool = False  # handed over to the stream as it downloaded


_LIVE: weakref.WeakSet[ReportFetcher] = weakref.WeakSet()


def stop_all_workers(wait: float = 2.0) -> None:
    """Stop every fetcher's workers and give them up to `wait` seconds to end, so that a failed
    run's last line is its error, not a worker's late request or retry line."""
    fetchers = list(_LIVE)
    for fetcher in fetchers:
        fetcher.close()
    deadline = time.monotonic() + wait
    for fetcher in fetchers:
        for job in list(fetcher._jobs.values()):
            if job.thread is not None and job.thread is not threading.current_thread():
                job.thread.join(max(0.0, deadline - time.monotonic()))


class SpoolBudget:
    """The bytes of report files spooled and not yet emitted, by every tenant's fetcher of a
    run: report_spool_limit_mb holds them all together."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self._used = 0
        self._lock = threading.Lock()

    def add(self, size: int) -> None:
        """Count a spooled file (or, negative, one deleted after its records were emitted)."""
        with self._lock:
            self._used += size

    @property
    def full(self) -> bool:
        """Whether the spooled files are over the limit."""
        with self._lock:
            return self._used > self.limit


class ReportFetcher:
    """Fetches the due files of every selected report stream of one run."""

    def __init__(
        self,
        config: Mapping[str, Any],
        transport: Transport,
        *,
        has_usage_reports: bool,
        cloud: str,
        streams: Callable[[], Iterable[ReportSource]],
        slots: threading.BoundedSemaphore | None = None,
        spool: SpoolBudget | None = None,
    ) -> None:
        self.transport = transport
        self.has_usage_reports = has_usage_reports
        self.cloud = cloud
        self.streams = streams
        self.logger = logging.getLogger(LOGGER_NAME)
        self.calls_per_window = int(config.get("report_calls_per_window") or CALLS_PER_WINDOW)
        self.window_seconds = float(config.get("report_window_seconds") or WINDOW_SECONDS)
        self.concurrency = int(config.get("report_concurrency") or 8)
        self.spool_limit = int(config.get("report_spool_limit_mb") or 2048) * 1024 * 1024
        self.concealed_mode = str(config.get("concealed_names") or "warn")
        self.start_date = parse_day(config.get("start_date"))
        self._cond = threading.Condition()
        # Shared by the fetchers of every tenant of a run: report_concurrency caps them all.
        self._slots = slots or threading.BoundedSemaphore(self.concurrency)
        self._stop = threading.Event()
        self._jobs: dict[str, Job] = {}
        self._started = False
        self._disabled = False
        self._consumed: set[str] = set()
        self._active: Job | None = None
        # Shared by the fetchers of every tenant of a run, like the slots.
        self._spooled = spool or SpoolBudget(self.spool_limit)
        self._spool: tempfile.TemporaryDirectory[str] | None = None
        self._progress_lock = threading.Lock()
        self._last_progress = 0.0
        self._last_line: str | None = None
        self._concealment_lock = threading.Lock()
        self.concealment_seen = False
        _LIVE.add(self)

    # -- what streams call -------------------------------------------------------------------

    def deliveries(self, stream: ReportSource) -> Generator[Delivery, None, None]:
        """The stream's report days, oldest first, each as soon as it is fetched.

        Days fetched before a failure are delivered first (and bookmarked by the stream); the
        failure is raised after them.
        """
        self._start()
        if self._disabled:
            return
        job = self._jobs.get(stream.name) or self._add_job(stream)
        self._active = job
        try:
            while True:
                with self._cond:
                    if not job.ready and not job.finished:
                        self._cond.wait(1.0)
                    delivery = job.ready.popleft() if job.ready else None
                    done = job.finished and not job.ready
                    self._cond.notify_all()
                if delivery is not None:
                    yield delivery
                    delivery.discard()
                elif done:
                    if job.error is not None:
                        raise job.error
                    return
                else:
                    self.log_progress()
        finally:
            self._active = None
            self._consumed.add(stream.name)
            if self._consumed >= set(self._jobs):
                self.close()

    def start(self) -> None:
        """Start fetching every selected report, before its stream reads it (once; the first
        `deliveries` starts it too)."""
        self._start()

    def report_concealment(self, stream: ReportSource, column: str) -> None:
        """A report showed concealed names: warn once per run, or stop the run."""
        with self._concealment_lock:
            if self.concealment_seen:
                return
            self.concealment_seen = True
        if self.concealed_mode == "error":
            raise ConcealedNamesError(describe_concealment(stream.name, column, failing=True))
        self.logger.warning("%s", describe_concealment(stream.name, column, failing=False))

    def close(self) -> None:
        """Stop the workers and delete the spooled files."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._spool is not None:
            self._spool.cleanup()
            self._spool = None

    # -- starting ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        selected = [stream for stream in self.streams() if stream.selected]
        cloud = self.cloud
        if not self.has_usage_reports:
            self._disabled = True
            self.logger.warning(
                "Microsoft Graph offers no usage reports in the %s cloud (only in the global "
                "service): skipping the %d selected report stream(s): %s",
                cloud,
                len(selected),
                ", ".join(stream.name for stream in selected),
            )
            return
        self._spool = tempfile.TemporaryDirectory(
            prefix="tap-microsoft365-reports-", ignore_cleanup_errors=True
        )
        atexit.register(self.close)
        self.logger.info(
            "Usage reports: fetching %d report(s) concurrently, each within Graph's limit of "
            "%d calls per %s per report",
            len(selected),
            self.calls_per_window,
            self._window_text(),
        )
        for stream in selected:
            self._add_job(stream)

    def _add_job(self, stream: ReportSource) -> Job:
        job = Job(stream, stream.bookmark, Pacer(self.calls_per_window, self.window_seconds))
        self._jobs[stream.name] = job
        job.thread = threading.Thread(
            target=self._work, args=(job,), name=f"report-{stream.name}", daemon=True
        )
        job.thread.start()
        return job

    def _window_text(self) -> str:
        seconds = self.window_seconds
        if seconds >= 60 and seconds % 60 == 0:
            minutes = int(seconds // 60)
            return f"{minutes} minute{'s' if minutes != 1 else ''}"
        return f"{seconds:g} seconds"

    # -- one report's work (worker thread) ---------------------------------------------------

    def _work(self, job: Job) -> None:
        try:
            if job.definition.parameters is Parameters.DATE_OR_PERIOD:
                self._fetch_days(job)
            else:
                self._fetch_snapshot(job)
        except StoppedError:
            pass
        except BaseException as exc:  # handed to the stream, raised there
            job.error = exc
        finally:
            with self._cond:
                job.finished = True
                job.waiting_until = None
                self._cond.notify_all()

    def _fetch_days(self, job: Job) -> None:
        probe = self._call(job, "period='D7'", keep=lambda _: False)
        if probe.refresh is None:
            with self._cond:
                job.due = 0
            self.logger.info(
                "%s: Graph's last 7 days of %s hold no rows; nothing to fetch this run",
                job.name,
                job.definition.function,
            )
            return
        if job.bookmark and job.bookmark > probe.refresh:
            self._ignore_bookmark(job, probe.refresh)
        days = due_days(
            bookmark=job.bookmark,
            start_date=self.start_date,
            refresh=probe.refresh,
        )
        if job.stream.ABORT_AT_RECORD_COUNT is not None:
            days = days[-1:]  # a dry run (--test): one day shows the stream works
        self._log_plan(job, probe, days)
        with self._cond:
            job.due = len(days)
        for day in days:
            self._wait_for_spool_room(job)
            job.delivers_as = lambda _refresh, day=day: day
            try:
                outcome = self._call(job, f"date={day.isoformat()}", keep=lambda _: True)
            finally:
                job.delivers_as = None
            if outcome.not_kept:
                self.logger.warning(
                    "%s: Graph no longer keeps %s (older than its 28 days); skipped",
                    job.name,
                    day.isoformat(),
                )
            if not outcome.delivered:
                self._deliver(job, Delivery(day, outcome.path, size=outcome.size))

    def _log_plan(self, job: Job, probe: Outcome, days: list[date]) -> None:
        assert probe.refresh is not None  # noqa: S101 - checked by the caller
        oldest = oldest_requestable_day(probe.refresh)
        after = job.bookmark + timedelta(days=1) if job.bookmark else None
        if after and self.start_date:
            after = max(after, self.start_date)  # days before start_date are not wanted
        if after and after < oldest:
            self.logger.warning(
                "%s: the days %s..%s are older than the 28 days Graph keeps and can no longer "
                "be extracted (the last run was too long ago)",
                job.name,
                after.isoformat(),
                (oldest - timedelta(days=1)).isoformat(),
            )
        if not days and self.start_date and self.start_date > probe.refresh:
            self.logger.info(
                "%s: start_date %s is after the last day Graph has processed (%s): nothing to "
                "fetch yet",
                job.name,
                self.start_date.isoformat(),
                probe.refresh.isoformat(),
            )
            return
        if not days:
            self.logger.info(
                "%s: up to date: Graph has processed days through %s, already delivered",
                job.name,
                probe.refresh.isoformat(),
            )
            return
        clamped = (
            f" (start_date {self.start_date.isoformat()} is older than the days Graph keeps)"
            if self.start_date and not job.bookmark and self.start_date < oldest
            else ""
        )
        self.logger.info(
            "%s: Graph has processed days through %s; fetching %d day(s): %s%s",
            job.name,
            probe.refresh.isoformat(),
            len(days),
            _span(days),
            clamped,
        )

    def _fetch_snapshot(self, job: Job) -> None:
        with self._cond:
            job.due = 1
        bookmark = job.bookmark
        params = "period='D7'" if job.definition.parameters is Parameters.PERIOD else ""
        # A refresh date before the bookmark means the bookmark is impossible: fetched too.
        job.delivers_as = lambda refresh: refresh
        try:
            outcome = self._call(
                job, params, keep=lambda refresh: bookmark is None or refresh != bookmark
            )
        finally:
            job.delivers_as = None
        if bookmark and outcome.refresh and outcome.refresh < bookmark:
            self._ignore_bookmark(job, outcome.refresh)
        if outcome.refresh is None:
            self.logger.info("%s: Graph's report holds no rows; nothing to fetch", job.name)
            self._finish_one(job)
        elif outcome.path is None:
            self.logger.info(
                "%s: unchanged since the last run (Graph's refresh date is still %s)",
                job.name,
                outcome.refresh.isoformat(),
            )
            self._finish_one(job)
        elif not outcome.delivered:
            self._deliver(job, Delivery(outcome.refresh, outcome.path, size=outcome.size))

    def _ignore_bookmark(self, job: Job, refresh: date) -> None:
        """A bookmark after the last day Graph has processed (a state edited by hand or restored
        from elsewhere, or Graph's processing went back): waiting for Graph to pass it could
        stall the stream (2099-01-01 for ever), so it is ignored, with a warning."""
        assert job.bookmark is not None  # noqa: S101 - checked by the callers
        if job.definition.is_daily:
            since = (
                f"start_date {self.start_date.isoformat()}"
                if self.start_date
                else "the oldest day Graph keeps (28 days)"
            )
            fallback = f"fetching again from {since}"
        else:
            fallback = "fetching the snapshot again"
        self.logger.warning(
            "%s: the bookmark in the state (report_date %s) is after the last day Graph has "
            "processed (%s): a state edited by hand or from another tenant, or Graph's "
            "processing went back; waiting for Graph to pass it could stall the stream for "
            "good, so it is ignored, %s; rows are upserted by their key, none duplicated, and "
            "the bookmark is replaced by the days delivered",
            job.name,
            job.bookmark.isoformat(),
            refresh.isoformat(),
            fallback,
        )
        job.bookmark = None

    def _finish_one(self, job: Job) -> None:
        with self._cond:
            job.fetched += 1

    def _deliver(self, job: Job, delivery: Delivery) -> None:
        delivery.on_discard = self._release
        with self._cond:
            job.fetched += 1
            job.ready.append(delivery)
            self._spooled.add(delivery.size)
            self._cond.notify_all()
        self.log_progress()

    def _hand_over(self, job: Job, delivery: Delivery) -> None:
        """A day whose file is still downloading, for its stream to read as it arrives."""
        delivery.on_discard = self._release
        with self._cond:
            job.ready.append(delivery)
            self._cond.notify_all()

    def _downloaded(self, job: Job, delivery: Delivery, size: int) -> None:
        """A handed-over day's file is whole."""
        with self._cond:
            job.fetched += 1
            if delivery.path is not None:  # not discarded meanwhile
                delivery.size = size
                self._spooled.add(size)
            self._cond.notify_all()
        delivery.finish(broken=False)
        self.log_progress()

    def _release(self, delivery: Delivery) -> None:
        with self._cond:
            self._spooled.add(-delivery.size)
            self._cond.notify_all()

    def _wait_for_spool_room(self, job: Job) -> None:
        """Hold a report that is not being emitted while the spool is over its limit."""
        with self._cond:
            while self._spooled.full and self._active is not job:
                self._check_stop()
                job.waiting_for = "spool"
                job.waiting_until = time.monotonic()
                self._cond.wait(1.0)
            job.waiting_until = None

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise StoppedError

    # -- one call, with pacing and retries (worker thread) ------------------------------------

    def _call(self, job: Job, params: str, keep: Callable[[date], bool]) -> Outcome:
        """Call the function with `params`, follow the redirect, and spool the file if `keep`
        says so for its refresh date; failures are retried by the transport's retry loop."""
        renewed_token = False

        def attempt() -> Outcome:
            nonlocal renewed_token
            self._wait_for_budget(job)
            with self._slots:
                self._check_stop()
                job.pacer.start()
                try:
                    response = self._send_graph(job, params)
                finally:
                    job.pacer.finish()
                try:
                    return self._answer(job, response, keep)
                except BadReportFileError as bad:
                    raise GraphAPIError(self._bad_file_line(job, params, bad)) from None
                except Retry as retry:
                    if retry.status == 401:
                        if renewed_token:
                            code, message = graph_error_fields(response)
                            line = refused_token_line(job.name, response, code, message)
                            raise AuthenticationError(line) from None
                        renewed_token = True  # the transport fetches a fresh token
                    raise
                finally:
                    response.close()

        def give_up(retry: Retry, reason: GiveUpError) -> Exception:
            if retry.status == 403:
                return PermissionDeniedError(str(retry))
            if retry.cause is not None and retry.host == self.transport.host:
                return GraphAPIError(
                    gave_up_line(job.name, retry.host, retry, reason, self.transport.timeout)
                )
            return GraphAPIError(f"{retry}: still failing {reason}; run again later")

        def before_retry(retry: Retry, wait: float) -> None:
            if retry.status == 429:  # no call of this report before Graph's Retry-After
                job.pacer.block(wait)
                with self._cond:
                    job.waiting_until = time.monotonic() + wait
                    job.waiting_for = "429"

        return self.transport.retrying(
            attempt, give_up=give_up, before_retry=before_retry, stop=self._stop
        )

    def _wait_for_budget(self, job: Job) -> None:
        while True:
            self._check_stop()
            ready_at = job.pacer.ready_at()
            now = time.monotonic()
            if ready_at <= now:
                with self._cond:
                    job.waiting_until = None
                return
            with self._cond:
                job.waiting_until = ready_at
                job.waiting_for = "limit" if job.pacer.limited() else "429"
            self.log_progress()
            self._stop.wait(min(ready_at - now, 1.0))

    def _log_request(self, job: Job, endpoint: str, response: requests.Response) -> None:
        """The SDK's http_request_duration point for a report call, as its streams log for
        their pages (a download's endpoint names the function, never the file's URL); none
        once the run is stopping."""
        if self._stop.is_set():
            return
        point = metrics.Point(
            "timer",
            metric=metrics.Metric.HTTP_REQUEST_DURATION,
            value=response.elapsed.total_seconds(),
            tags={
                metrics.Tag.STREAM: job.name,
                metrics.Tag.ENDPOINT: endpoint,
                metrics.Tag.HTTP_STATUS_CODE: response.status_code,
                metrics.Tag.STATUS: metrics.Status.SUCCEEDED
                if response.status_code < 400
                else metrics.Status.FAILED,
            },
        )
        metrics.log(METRICS_LOGGER, point)

    def _send_graph(self, job: Job, params: str) -> requests.Response:
        path = job.definition.url_path
        call = f"{path}({params})" if params else path
        url = f"{self.transport.base_url}/{call}"
        host = self.transport.host
        try:
            response = self.transport.get(
                url,
                headers={"client-request-id": self.transport.request_id()},
                kind="graph",
                authorized=True,
            )
        except requests.exceptions.SSLError:
            raise GraphAPIError(tls_line(job.name, host)) from None
        except requests.exceptions.RequestException as exc:
            msg = f"{job.name}: GET /v1.0/{call} failed ({type(exc).__name__})"
            raise Retry(msg, cause=exc, host=host) from None
        self._log_request(job, f"/{path}", response)
        return response

    def _answer(
        self, job: Job, response: requests.Response, keep: Callable[[date], bool]
    ) -> Outcome:
        status = response.status_code
        stream = job.stream
        if status in {301, 302, 303, 307, 308}:
            location = response.headers.get("Location")
            if not location:
                msg = f"{job.name}: Graph answered {status} without a download location"
                raise Retry(msg)
            return self._download(job, urljoin(response.url, location), keep)
        if status == 200:  # served directly (no redirect): the body is the file
            return self._save(job, response, keep)
        if is_html(response):  # a proxy's page, not Graph's error (its 403 is no permission)
            page = describe_unparsable(response, job.name)
            if status in {429, 500, 502, 503, 504}:
                raise Retry(page, response=response, host=self.transport.host)
            raise GraphAPIError(page)
        code, message = graph_error_fields(response)
        line = error_line(job.name, response, code, message)
        if status == 400 and code == "InvalidArgument" and "28 days" in message:
            return Outcome(not_kept=True)
        if status == 403 and (
            code in PERMISSION_CODES
            or "S2SUnauthorized" in message
            or "Invalid permission" in message
        ):
            raise PermissionDeniedError(
                permission_line(job.name, response, code, message, stream.required_permissions)
            )
        if status == 403:
            # A 403 naming no missing permission has been a passing outage of Graph's
            # reports: tried again, at most three times.
            raise Retry(
                permission_line(job.name, response, code, message, stream.required_permissions),
                response=response,
                host=self.transport.host,
            )
        if status == 429:
            msg = (
                f"{job.name}: Graph throttled {job.definition.function} (429, "
                f"{correlation(response)}; another app or run may share the budget)"
            )
            raise Retry(msg, response=response, host=self.transport.host)
        if status in {401, 500, 502, 503, 504}:
            raise Retry(line, response=response, host=self.transport.host)
        raise GraphAPIError(line)

    def _download(self, job: Job, location: str, keep: Callable[[date], bool]) -> Outcome:
        """GET the pre-authenticated URL with no Authorization header; never log it."""
        url = location
        for _ in range(MAX_DOWNLOAD_REDIRECTS + 1):
            host = urlsplit(url).netloc
            try:
                # No Authorization header: the URL is pre-authenticated, the token stays with
                # Graph.
                response = self.transport.get(url, headers={}, kind="download")
            except requests.exceptions.RequestException as exc:
                msg = (
                    f"{job.name}: downloading {job.definition.function}'s file from "
                    f"{urlsplit(url).hostname} failed ({type(exc).__name__})"
                )
                raise Retry(msg, cause=exc, host=host) from None
            self._log_request(job, f"/{job.definition.url_path} (download)", response)
            if "Authorization" in response.request.headers:  # pragma: no cover - by construction
                response.close()
                msg = f"{job.name}: refusing to send the Graph token to the download host"
                raise GraphAPIError(msg)
            with response:
                if response.is_redirect and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status_code != 200:
                    msg = (
                        f"{job.name}: the download host {urlsplit(url).hostname} answered "
                        f"{response.status_code} for {job.definition.function}'s file (the "
                        "link may have expired); asking Graph for a new one"
                    )
                    raise Retry(msg)
                return self._save(job, response, keep)
        msg = f"{job.name}: too many redirects downloading {job.definition.function}'s file"
        raise Retry(msg)

    def _save(self, job: Job, response: requests.Response, keep: Callable[[date], bool]) -> Outcome:
        """Read the header and first row; spool the whole file if `keep(refresh date)`."""
        chunks = response.iter_content(CHUNK_BYTES)
        head = bytearray()
        whole = True  # the body ended within `head`
        try:
            for chunk in chunks:
                head += chunk
                if head.count(b"\n") >= 2:
                    whole = False
                    break
            refresh = self._first_refresh_date(job, bytes(head), whole=whole)
            if refresh is None or not keep(refresh):
                return Outcome(refresh=refresh)
            assert self._spool is not None  # noqa: S101 - set when the run's reports start
            path = Path(self._spool.name) / f"{job.name}-{uuid.uuid4().hex}.csv.gz"
            early = (
                Delivery(job.delivers_as(refresh), path, complete=False)
                if job.delivers_as is not None
                else None
            )
            try:
                with gzip.open(path, "wb", compresslevel=1) as spool:
                    spool.write(head)
                    if early is not None:
                        self._hand_over(job, early)
                    for chunk in chunks:
                        self._check_stop()
                        spool.write(chunk)
            except BaseException:
                if early is not None:  # its reader drops what it read; a new one follows
                    early.finish(broken=True)
                raise
        except requests.exceptions.RequestException as exc:
            msg = (
                f"{job.name}: the download of {job.definition.function}'s file broke off "
                f"({type(exc).__name__}); asking Graph for a new link"
            )
            raise Retry(msg) from None
        size = path.stat().st_size
        if early is not None:
            self._downloaded(job, early, size)
        return Outcome(refresh=refresh, path=path, size=size, delivered=early is not None)

    @staticmethod
    def _first_refresh_date(job: Job, head: bytes, *, whole: bool) -> date | None:
        """The Report Refresh Date of the first data row, or None for a header-only file.

        A file only counts as header-only when its one line is the report's header (Report
        Refresh Date, the key columns and at least half the documented ones: Microsoft adds,
        renames and drops a few): an empty body, a lone byte order mark, an HTML page, another
        report's header, a blank line after the header, or a first row without a YYYY-MM-DD
        Report Refresh Date are not "a day without rows" (`BadReportFileError`).
        """
        if not head:
            raise BadReportFileError("is empty (0 bytes)", PASSING)
        text = codecs.getincrementaldecoder("utf-8-sig")(errors="replace").decode(head)
        if not text.strip():
            bom = head.startswith(codecs.BOM_UTF8)
            raise BadReportFileError("holds only a byte order mark" if bom else "is blank", PASSING)
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows, None) or []
        names = [snake_case(column) for column in header]
        aliases = job.definition.alias_properties
        names = [aliases.get(name, name) for name in names]
        wanted = ["report_refresh_date", *(snake_case(column) for column in job.definition.key)]
        if not all(name in names for name in wanted):
            shown = text.strip().splitlines()[0][:80]
            page = " (an HTML page)" if shown.lstrip().startswith("<") else ""
            raise BadReportFileError(
                f"does not start with the report's header{page}: it starts {shown!r}",
                PASSING,
            )
        documented = {snake_case(column) for column in job.definition.columns}
        known = documented.intersection(names)
        if len(known) * 2 < len(documented):  # another report's file, not drift in this one's
            raise BadReportFileError(
                f"has only {len(known)} of the report's {len(documented)} documented columns, "
                "so it is not this report's file",
                PASSING,
            )
        first = next(rows, None)
        if first is None:
            if whole:
                return None  # the report's header alone: a day without rows
            raise BadReportFileError("has a header whose line never ends", PASSING)
        if not first or (len(first) == 1 and not first[0].strip()):
            raise BadReportFileError("has a blank line after its header", PASSING)
        index = names.index("report_refresh_date")
        cell = first[index].strip() if index < len(first) else ""
        if not cell:
            raise BadReportFileError("has a first row without a Report Refresh Date", PASSING)
        refresh = iso_day(cell)
        if refresh is None:
            raise BadReportFileError(
                f"has a first row whose Report Refresh Date {cell!r} is not a YYYY-MM-DD date",
                NEW_FORMAT,
            )
        return refresh

    def _bad_file_line(self, job: Job, params: str, bad: BadReportFileError) -> str:
        """One line: which report, which day, what is wrong, what happens and what to do."""
        function = job.definition.function
        if params.startswith("date="):
            day = params.removeprefix("date=")
            what = f"{function}'s file for {day}"
            consequence = (
                f"{day} is not bookmarked (nor any later day) and is fetched again next run"
            )
        elif job.definition.is_daily:
            what = f"{function}'s file for the last 7 days (which says the days Graph processed)"
            consequence = "no day is bookmarked; they are fetched next run"
        else:
            what = f"{function}'s snapshot file"
            consequence = "the snapshot is not bookmarked and is fetched again next run"
        return f"{job.name}: {what} {bad}, not a well-formed report: {consequence}; {bad.advice}"

    # -- progress ----------------------------------------------------------------------------

    def log_progress(self) -> None:
        """While reports wait, one INFO line (at most every few seconds, and a repeat of the
        same line at most every minute): how far the reports are, which wait, why, until when."""
        now = time.monotonic()
        with self._progress_lock:
            if now - self._last_progress < PROGRESS_INTERVAL_SECONDS:
                return
        line = self._progress_line()
        with self._progress_lock:
            if line is None or (
                line == self._last_line and now - self._last_progress < PROGRESS_REPEAT_SECONDS
            ):
                return
            self._last_progress, self._last_line = now, line
        self.logger.info("%s", line)

    def _progress_line(self) -> str | None:
        with self._cond:
            jobs = list(self._jobs.values())
            due = sum(job.due or 0 for job in jobs)
            fetched = sum(job.fetched for job in jobs)
            unsized = sum(1 for job in jobs if job.due is None and not job.finished)
            waiting = sorted(
                (job.waiting_until, job.waiting_for, job.name) for job in jobs if job.waiting_until
            )
        if not waiting:
            return None
        parts = [f"Usage reports: {fetched} of {due} report-day file(s) fetched"]
        if unsized:
            parts[0] += f" ({unsized} report(s) not yet sized)"
        reasons = {
            "limit": f"waiting for Graph's limit of {self.calls_per_window} calls per "
            f"{self._window_text()} per report",
            "429": "throttled by Graph (429), waiting as Retry-After asks",
            "spool": "waiting for spool room (report_spool_limit_mb) while the streams ahead "
            "emit theirs",
        }
        for reason, text in reasons.items():
            group = [(until, name) for until, why, name in waiting if why == reason]
            if not group:
                continue
            if reason == "spool":
                shown = ", ".join(name for _, name in group)
            else:
                shown = ", ".join(f"{name} until {_clock_text(until)}" for until, name in group[:3])
                if len(group) > 3:
                    shown += (
                        f" and {len(group) - 3} more (the last until {_clock_text(group[-1][0])})"
                    )
            parts.append(f"{text}: {shown}")
        return "; ".join(parts)


__all__ = [
    "BadReportFileError",
    "Delivery",
    "DownloadBrokenError",
    "GrowingFile",
    "Pacer",
    "ReportFetcher",
    "ReportSource",
    "SpoolBudget",
    "due_days",
    "iso_day",
    "oldest_requestable_day",
    "parse_day",
]
