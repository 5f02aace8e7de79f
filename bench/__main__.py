"""The benchmark: requests, records/s, memory and report pacing against the Graph emulator.

    python -m bench            # ~12 minutes: a 100,000-user tenant, 100,000-row reports
    python -m bench --quick    # ~5 minutes: a 10,000-user tenant, 10,000-row reports
    python -m bench --tenants  # ~6 minutes: 10 tenants of 2,000 users side by side vs 1

Starts the emulator as its own process (bench/emulator.py), runs the tap (`python -m
tap_microsoft365`) and a raw `requests` baseline (bench/baseline.py) as subprocesses, and
measures each run: wall time, CPU time and peak RSS of the process (from wait4), records and
records/s per stream (from the Singer lines, as they arrive), and the HTTP requests the
emulator received, by endpoint. Prints the tables with a PASS/FAIL line per target and writes
them to bench/results/ (git-ignored). Benchmarks are not tests: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from bench.sizing import Measured, graph_seconds, per_process_day, run_seconds, size
from tap_microsoft365.streams.reports.definitions import REPORTS, Parameters
from tap_microsoft365.streams.reports.fetcher import KEPT_DAYS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TAP = [sys.executable, "-m", "tap_microsoft365"]
RECORD_PREFIX = b'{"type":"RECORD","stream":"'
RAW_RECORD_PREFIX = b'{"type": "RECORD", "stream": "'
DELTA_STREAMS = ("users", "groups")
PAGE = 999
REPORT = ("office365_active_user_detail", "getOffice365ActiveUserDetail")
REPORT_DEFINITION = next(definition for definition in REPORTS if definition.name == REPORT[0])
# What grows with the tenant, plus a large report: the memory comparison's selection.
MEMORY_STREAMS = {"users", "groups", "license_assignments", REPORT[0]}


@dataclass(frozen=True)
class Sizes:
    """What one benchmark run builds."""

    users: int
    groups: int
    report_rows: int
    small_users: int  # the tenant memory growth is compared against
    small_groups: int
    window_seconds: float  # Graph's 10-minute report window, time-scaled
    latency: float = 0.15
    report_people: int = 1000  # real users behind each report (the rest is extra_rows)
    pacing_people: int = 100  # smaller reports for the 28-day backfill
    repeats: int = 3  # tap and raw runs of each comparison, interleaved


# The tenants scenario: each tenant's size, and its reports' people in the time-scaled backfill.
TENANT_USERS = 2_000
TENANT_GROUPS = 200
ROWS_DAYS = 3  # days of every report at full size, for the CPU per report record

FULL = Sizes(100_000, 10_000, 100_000, 10_000, 1_000, window_seconds=60.0, repeats=3)
QUICK = Sizes(10_000, 1_000, 10_000, 2_000, 200, window_seconds=30.0, report_people=500)


@dataclass
class Run:
    """One subprocess run and what it emitted."""

    label: str
    wall: float = 0.0
    cpu: float = 0.0
    max_rss_mb: float = 0.0
    exit_code: int = 0
    records: dict[str, int] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)  # SCHEMA (stream start)
    last: dict[str, float] = field(default_factory=dict)  # last RECORD
    state: dict[str, Any] | None = None
    requests: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    def stream_wall(self, stream: str) -> float | None:
        if stream not in self.last:
            return None
        return self.last[stream] - self.started.get(stream, 0.0)

    def rate(self) -> float:
        return self.total_records / self.wall if self.wall else 0.0


class Emulator:
    """bench/emulator.py in its own process."""

    def __init__(
        self,
        *,
        users: int,
        groups: int,
        extra_rows: int,
        people: int,
        scale: float,
        tenants: int = 1,
        cache_files: bool = False,
    ):
        self.folder = Path(tempfile.mkdtemp(prefix="tap-bench-"))
        self.config_path = self.folder / "emulator.json"
        command = [
            sys.executable,
            "-m",
            "bench.emulator",
            f"--users={users}",
            f"--groups={groups}",
            f"--extra-rows={extra_rows}",
            f"--report-people={people}",
            f"--time-scale={scale}",
            f"--tenants={tenants}",
            f"--config-out={self.config_path}",
            *(["--cache-files"] if cache_files else []),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert self.process.stdout is not None
        assert self.process.stdin is not None
        self.ready = json.loads(self.process.stdout.readline())
        config = json.loads(self.config_path.read_text())
        self.ca_bundle = config.pop("ca_bundle")
        self.config = config

    def command(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def requests(self) -> dict[str, Any]:
        """The requests since the last call, by endpoint (the log is cleared)."""
        return self.command(cmd="log")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write('{"cmd": "quit"}\n')
            self.process.stdin.close()
            self.process.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def child_env(ca_bundle: str | None = None) -> dict[str, str]:
    """The subprocesses' environment: no TAP_MICROSOFT365_* settings, and Python's defaults for
    buffering and bytecode (a shell may set PYTHONUNBUFFERED/PYTHONDONTWRITEBYTECODE, which
    would make both the tap and the baseline pay a write per line and a recompile per run)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TAP_MICROSOFT365_")
        and key not in {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
    }
    env["PYTHONPATH"] = str(ROOT)
    if ca_bundle:
        env["REQUESTS_CA_BUNDLE"] = ca_bundle
    return env


def _read_messages(stream: IO[bytes], run: Run, t0: float, raw: bool) -> None:
    """Count RECORD lines per stream as they arrive; note stream starts and the last STATE."""
    prefix = RAW_RECORD_PREFIX if raw else RECORD_PREFIX
    start = len(prefix)
    records = run.records
    last = run.last
    state_line = None
    for line in stream:
        if line.startswith(prefix):
            name = line[start : line.index(b'"', start)].decode()
            records[name] = records.get(name, 0) + 1
            last[name] = time.monotonic() - t0
        elif line.startswith(b'{"type":"SCHEMA"'):
            name = json.loads(line)["stream"]
            run.started.setdefault(name, time.monotonic() - t0)
        elif line.startswith(b'{"type":"STATE"'):
            state_line = line
    if state_line is not None:
        run.state = json.loads(state_line)["value"]


def run_process(label: str, command: list[str], ca_bundle: str, *, raw: bool = False) -> Run:
    """Run one tap or baseline process to its end and measure it."""
    run = Run(label)
    with tempfile.TemporaryFile() as stderr:
        t0 = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=child_env(ca_bundle),
            bufsize=1 << 20,
        )
        assert process.stdout is not None
        reader = threading.Thread(target=_read_messages, args=(process.stdout, run, t0, raw))
        reader.start()
        _, status, usage = os.wait4(process.pid, 0)
        run.wall = time.monotonic() - t0
        process.returncode = run.exit_code = os.waitstatus_to_exitcode(status)
        reader.join()
        process.stdout.close()
        run.cpu = usage.ru_utime + usage.ru_stime
        run.max_rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
        stderr.seek(0)
        run.stderr_tail = stderr.read().decode(errors="replace")[-3000:]
    if run.exit_code != 0:
        print(f"!! {label} exited {run.exit_code}:\n{run.stderr_tail}", file=sys.stderr)
    return run


class Bench:
    """The scenarios, in order, and the lines of the results."""

    def __init__(
        self, sizes: Sizes, quick: bool, compare_only: bool = False, reports_only: bool = False
    ) -> None:
        self.sizes = sizes
        self.quick = quick
        self.compare_only = compare_only
        self.reports_only = reports_only
        self.kind = "quick" if quick else "full"  # the results' file name
        self.folder = Path(tempfile.mkdtemp(prefix="tap-bench-run-"))
        self.lines: list[str] = []
        self.targets: list[tuple[bool, str]] = []
        self.catalog: dict[str, Any] | None = None
        self.data: dict[str, Any] = {"sizes": sizes.__dict__, "runs": {}}
        self.full: Run | None = None
        self.ratios: dict[str, list[float]] = {}  # tap/raw records/s, per comparison
        self.cpu_ratios: dict[str, list[float]] = {}  # raw/tap CPU per record

    # -- plumbing ------------------------------------------------------------------------

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def target(self, ok: bool, text: str) -> None:
        self.targets.append((ok, text))
        self.say(f"{'PASS' if ok else 'FAIL'}  {text}")

    def catalog_selecting(self, streams: set[str] | None, emulator: Emulator) -> Path:
        if self.catalog is None:
            discovered = subprocess.run(
                [*TAP, "--discover"],
                cwd=ROOT,
                capture_output=True,
                check=True,
                env=child_env(emulator.ca_bundle),
            )
            self.catalog = json.loads(discovered.stdout)
        for entry in self.catalog["streams"]:
            for metadata in entry["metadata"]:
                if metadata["breadcrumb"] == []:
                    chosen = streams is None or entry["tap_stream_id"] in streams
                    metadata["metadata"]["selected"] = chosen
        path = self.folder / f"catalog-{len(list(self.folder.iterdir()))}.json"
        path.write_text(json.dumps(self.catalog))
        return path

    def tap(
        self,
        label: str,
        emulator: Emulator,
        streams: set[str] | None,
        *,
        settings: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> Run:
        config = {**emulator.config, **(settings or {})}
        config_path = self.folder / f"config-{label}.json"
        config_path.write_text(json.dumps(config))
        command = [*TAP, "--config", str(config_path)]
        command += ["--catalog", str(self.catalog_selecting(streams, emulator))]
        if state is not None:
            state_path = self.folder / f"state-{label}.json"
            state_path.write_text(json.dumps(state))
            command += ["--state", str(state_path)]
        emulator.requests()  # forget earlier requests
        run = run_process(label, command, emulator.ca_bundle)
        run.requests = emulator.requests()
        self.data["runs"][label] = run.__dict__ | {"state": None}
        return run

    def baseline(self, label: str, emulator: Emulator, *args: str) -> Run:
        config_path = self.folder / "baseline.json"
        config_path.write_text(json.dumps(emulator.config))
        command = [sys.executable, "-m", "bench.baseline", str(config_path), *args]
        emulator.requests()
        run = run_process(label, command, emulator.ca_bundle, raw=True)
        run.requests = emulator.requests()
        self.data["runs"][label] = run.__dict__ | {"state": None}
        return run

    # -- tables --------------------------------------------------------------------------

    def run_table(self, title: str, runs: list[Run]) -> None:
        self.say(f"\n### {title}\n")
        self.say("| run | records | wall s | records/s | CPU s | peak RSS MB | requests |")
        self.say("|---|---:|---:|---:|---:|---:|---:|")
        for run in runs:
            self.say(
                f"| {run.label} | {run.total_records:,} | {run.wall:.1f} | {run.rate():,.0f} | "
                f"{run.cpu:.1f} | {run.max_rss_mb:.0f} | {run.requests.get('total', 0):,} |"
            )

    def stream_table(self, run: Run) -> None:
        self.say(f"\n### Per stream: {run.label}\n")
        self.say("| stream | records | wall s (schema to last record) | records/s |")
        self.say("|---|---:|---:|---:|")
        for name in sorted(run.records, key=lambda n: run.started.get(n, 0.0)):
            wall = run.stream_wall(name) or 0.0
            rate = run.records[name] / wall if wall > 0 else 0.0
            self.say(f"| {name} | {run.records[name]:,} | {wall:.1f} | {rate:,.0f} |")
        self.say(f"| **whole sync** | {run.total_records:,} | {run.wall:.1f} | {run.rate():,.0f} |")

    def request_table(self, run: Run) -> None:
        self.say(f"\n### HTTP requests by endpoint: {run.label}\n")
        self.say("| endpoint | requests |")
        self.say("|---|---:|")
        for name, count in run.requests.get("by_endpoint", {}).items():
            self.say(f"| `{name}` | {count:,} |")
        self.say(f"| **total** | {run.requests.get('total', 0):,} |")

    # -- scenarios -----------------------------------------------------------------------

    def run(self) -> None:
        s = self.sizes
        self.say(f"# tap-microsoft365 benchmark ({'quick' if self.quick else 'full'})\n")
        self.say(machine_line())
        self.say(
            f"Tenant: {s.users:,} users, {s.groups:,} groups; reports of {s.report_rows:,}+ rows "
            f"(emulator extra_rows); latency runs: {s.latency * 1000:.0f} ms per request; "
            f"report window time-scaled to {s.window_seconds:.0f} s (Graph: 600 s)."
        )
        big = Emulator(
            users=s.users,
            groups=s.groups,
            extra_rows=s.report_rows,
            people=s.report_people,
            scale=1.0,
            cache_files=True,
        )
        try:
            refresh = big.ready["refresh_date"]
            one_day = {"start_date": refresh}
            # Warm-up: compile and cache the tap's bytecode (not measured).
            subprocess.run(
                [*TAP, "--about"], cwd=ROOT, capture_output=True, env=child_env(), check=False
            )
            if self.reports_only:
                results = self.report_comparison(big, one_day)
                self.say("")
                self.report_target(results)
                return
            if self.compare_only:
                self.users_comparison(big)
                self.report_comparison(big, one_day)
                return
            memory = self.zero_latency(big, one_day)
            self.with_latency(big, one_day)
        finally:
            big.stop()
        small = Emulator(
            users=s.small_users,
            groups=s.small_groups,
            extra_rows=s.report_rows,
            people=s.report_people,
            scale=s.window_seconds / 600,
        )
        try:
            self.memory_growth(small, memory, {"start_date": small.ready["refresh_date"]})
            self.pacing(small)
        finally:
            small.stop()

    def zero_latency(self, emulator: Emulator, one_day: dict[str, Any]) -> Run:
        s = self.sizes
        raw_users, users = self.users_comparison(emulator)
        reports = self.report_comparison(emulator, one_day)
        raw_report, report = reports[REPORT[0]]
        emulator.command(cmd="set", reset_report_limits=True)
        full = self.tap("tap whole sync", emulator, None, settings=one_day)
        incremental = self.tap(
            "tap incremental (unchanged tenant)", emulator, None, settings=one_day, state=full.state
        )
        memory = self.tap(
            f"tap directory + report ({s.users:,} users)",
            emulator,
            MEMORY_STREAMS,
            settings=one_day,
        )
        self.run_table(
            "Zero latency (CPU cost)",
            [raw_users, users, raw_report, report, full, incremental, memory],
        )
        self.stream_table(full)
        self.request_table(users)
        self.request_table(full)
        self.request_table(incremental)
        self.say("\n### Targets\n")
        by_users = users.requests["by_endpoint"]
        by_groups = full.requests["by_endpoint"]  # only the groups stream lists /groups
        groups = full
        self.target(
            by_users.get("graph /v1.0/users", 0) == math.ceil(users.records["users"] / PAGE),
            f"users initial round: {by_users.get('graph /v1.0/users', 0)} pages of /users for "
            f"{users.records.get('users', 0):,} users (ceil(N/999) = "
            f"{math.ceil(users.records.get('users', 0) / PAGE)}), plus 1 $deltatoken=latest "
            "and 1 $count",
        )
        self.target(
            by_groups.get("graph /v1.0/groups", 0) == math.ceil(groups.records["groups"] / PAGE),
            f"groups initial round: {by_groups.get('graph /v1.0/groups', 0)} pages for "
            f"{groups.records.get('groups', 0):,} groups (ceil(N/999) = "
            f"{math.ceil(groups.records.get('groups', 0) / PAGE)})",
        )
        per_object = per_object_calls(full.requests["by_endpoint"])
        self.target(
            not per_object,
            f"no per-user or per-group calls in a whole sync ({sum(per_object.values())} found)",
        )
        by_incremental = incremental.requests["by_endpoint"]
        delta = {name: by_incremental.get(f"graph /v1.0/{name}/delta", 0) for name in DELTA_STREAMS}
        self.target(
            all(count == 1 for count in delta.values())
            and incremental.records.get("users", 0) == 0
            and incremental.records.get("groups", 0) == 0,
            f"incremental run on an unchanged tenant: {delta} delta requests, "
            f"{incremental.records.get('users', 0)} users and "
            f"{incremental.records.get('groups', 0)} groups re-sent",
        )
        date_calls = sum(
            count for name, count in by_incremental.items() if name.endswith("(date=…)")
        )
        probes = sum(count for name, count in by_incremental.items() if name.endswith("(period=…)"))
        self.target(
            date_calls == 0,
            f"incremental run: {date_calls} report calls for days (all delivered); "
            f"{probes} period='D7' calls (one per report: how far Graph has processed)",
        )
        ratio_users = median(self.ratios["users"])
        cpu_users = median(self.cpu_ratios["users"])
        self.target(
            ratio_users >= 1.0,
            f"users records/s = {ratio_users:.2f}x the raw baseline (median of "
            f"{len(self.ratios['users'])} interleaved pairs, {spread(self.ratios['users'])}; "
            f"target >= 1.0x); per CPU second {cpu_users:.2f}x",
        )
        self.report_target(reports)
        self.target(
            full.max_rss_mb < 200,
            f"peak RSS of a whole sync ({s.users:,} users, {s.report_rows:,}-row reports): "
            f"{full.max_rss_mb:.0f} MB (target < 200 MB)",
        )
        self.full = full
        return memory

    def report_target(self, results: dict[str, tuple[Run, Run]]) -> None:
        """Every report at >= 0.8x the raw client's records/s (medians), and per CPU second.

        Only reports the emulator serves as large days count: one it adds no extra rows to
        (a few hundred rows, or none) measures start-up alone, and is named as left out."""
        large = {
            name: runs
            for name, runs in results.items()
            if runs[1].total_records >= self.sizes.report_rows // 10
        }
        small = sorted(set(results) - set(large))
        if small:
            self.say(
                f"Left out of the target (fewer than {self.sizes.report_rows // 10:,} rows served, "
                f"start-up alone): {', '.join(small)}."
            )
        if not large:
            return
        slowest = min(large, key=lambda name: median(self.ratios[name]))
        met = sum(1 for name in large if median(self.ratios[name]) >= 0.8)
        cpu_met = sum(1 for name in large if median(self.cpu_ratios[name]) >= 0.8)
        self.target(
            met == len(large),
            f"every report at >= 0.8x the raw baseline's records/s: {met} of {len(large)}; "
            f"the slowest, {slowest}, at {median(self.ratios[slowest]):.2f}x "
            f"({spread(self.ratios[slowest])}); per CPU second {cpu_met} of {len(large)} "
            f"at >= 0.8x",
        )

    def pairs(self, key: str, raw: Any, tap: Any) -> tuple[Run, Run]:
        """`repeats` runs of the raw client and the tap, interleaved (the order alternates, so a
        drift in the machine's load falls on both); the ratio of each pair is kept. Returns the
        pair with the median ratio."""
        pairs: list[tuple[float, Run, Run]] = []
        for repeat in range(self.sizes.repeats):
            if repeat % 2 == 0:
                raw_run = raw(repeat)
                tap_run = tap(repeat)
            else:
                tap_run = tap(repeat)
                raw_run = raw(repeat)
            ratio = tap_run.rate() / raw_run.rate() if raw_run.rate() else 0.0
            cpu = (
                (raw_run.cpu / raw_run.total_records) / (tap_run.cpu / tap_run.total_records)
                if raw_run.total_records and tap_run.total_records and tap_run.cpu
                else 0.0
            )
            pairs.append((ratio, raw_run, tap_run))
            self.ratios.setdefault(key, []).append(ratio)
            self.cpu_ratios.setdefault(key, []).append(cpu)
        pairs.sort(key=lambda pair: pair[0])
        _, raw_run, tap_run = pairs[len(pairs) // 2]
        return raw_run, tap_run

    def users_comparison(self, emulator: Emulator) -> tuple[Run, Run]:
        """Users: the raw client and the tap on the same pages, after a warm-up listing.

        The emulator encodes each user's JSON once and reuses it; the first listing after it
        starts pays that encoding (about a third of its time), so whichever client runs first
        looks slower. One unmeasured raw listing warms it.
        """
        self.baseline("raw users (warm-up, not measured)", emulator, "users")
        return self.pairs(
            "users",
            lambda n: self.baseline(f"raw users #{n + 1}", emulator, "users"),
            lambda n: self.tap(f"tap users #{n + 1}", emulator, {"users"}),
        )

    def report_comparison(
        self, emulator: Emulator, one_day: dict[str, Any]
    ) -> dict[str, tuple[Run, Run]]:
        """Every report stream beside the raw client, one report at a time, on the same files:
        one report day (`date=`) or the snapshot Graph serves (`period='D7'`, no parameter).

        The emulator keeps each file it built (`--cache-files`), as Graph's download host holds
        a file built before the redirect; one unmeasured tap run per report builds its files
        (the day and the `period='D7'` file the tap reads first), so that neither client's time
        includes the emulator building rows on the same two cores.
        """
        day = one_day["start_date"]
        results: dict[str, tuple[Run, Run]] = {}
        for definition in REPORTS:
            name = definition.name
            emulator.command(cmd="set", reset_report_limits=True)
            self.tap(f"tap {name} (warm-up, not measured)", emulator, {name}, settings=one_day)

            def raw(n: int, definition: Any = definition, name: str = name) -> Run:
                emulator.command(cmd="set", reset_report_limits=True)
                return self.baseline(
                    f"raw {name} #{n + 1}", emulator, "report", *report_call(definition, day)
                )

            def tap(n: int, name: str = name) -> Run:
                emulator.command(cmd="set", reset_report_limits=True)
                return self.tap(f"tap {name} #{n + 1}", emulator, {name}, settings=one_day)

            results[name] = self.pairs(name, raw, tap)
        self.say(
            f"\n### Every report beside the raw client ({self.sizes.repeats} interleaved pairs "
            "each; a process's records/s includes its start-up)\n"
        )
        self.say(
            "| report | rows | raw records/s | tap records/s | ratio (median) | ratio range | "
            "per CPU second | tap peak RSS MB |"
        )
        self.say("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, (raw_run, tap_run) in results.items():
            self.say(
                f"| {name} | {tap_run.total_records:,} | {raw_run.rate():,.0f} | "
                f"{tap_run.rate():,.0f} | {median(self.ratios[name]):.2f}x | "
                f"{spread(self.ratios[name])} | {median(self.cpu_ratios[name]):.2f}x | "
                f"{tap_run.max_rss_mb:.0f} |"
            )
        users = self.ratios.get("users", [])
        if users:
            self.say(
                f"| users | | | | {median(users):.2f}x | {spread(users)} | "
                f"{median(self.cpu_ratios['users']):.2f}x | |"
            )
        return results

    def with_latency(self, emulator: Emulator, one_day: dict[str, Any]) -> None:
        latency = self.sizes.latency
        day = one_day["start_date"]
        emulator.command(cmd="set", reset_report_limits=True)
        emulator.command(cmd="set", latency=latency)
        try:
            raw_users = self.baseline("raw users (latency)", emulator, "users")
            users = self.tap("tap users (latency)", emulator, {"users"})
            raw_report = self.baseline(
                "raw report (latency)", emulator, "report", *report_call(REPORT_DEFINITION, day)
            )
            report = self.tap("tap report (latency)", emulator, {REPORT[0]}, settings=one_day)
        finally:
            emulator.command(cmd="set", latency=0)
        self.run_table(
            f"Simulated latency: {latency * 1000:.0f} ms per request",
            [raw_users, users, raw_report, report],
        )
        self.say("")
        for tap, raw in ((users, raw_users), (report, raw_report)):
            ratio = tap.rate() / raw.rate() if raw.rate() else 0.0
            self.say(f"- {tap.label}: records/s = {ratio:.2f}x the raw baseline")

    def memory_growth(self, emulator: Emulator, big: Run, one_day: dict[str, Any]) -> None:
        s = self.sizes
        small = self.tap(
            f"tap directory + report ({s.small_users:,} users)",
            emulator,
            MEMORY_STREAMS,
            settings=one_day,
        )
        self.run_table(
            f"Memory: {s.small_users:,} users vs {s.users:,} users (users, groups, "
            f"license_assignments and one {s.report_rows:,}-row report)",
            [small, big],
        )
        growth = (big.max_rss_mb - small.max_rss_mb) / small.max_rss_mb if small.max_rss_mb else 0
        self.say("")
        self.target(
            growth < 0.2,
            f"peak RSS {small.max_rss_mb:.0f} MB at {s.small_users:,} users -> "
            f"{big.max_rss_mb:.0f} MB at {s.users:,} users: {growth:+.0%} (target < +20%)",
        )

    def pacing(self, emulator: Emulator) -> None:
        s = self.sizes
        window = s.window_seconds
        emulator.command(cmd="set", latency=s.latency, extra_rows=0, report_people=s.pacing_people)
        reports = {definition.name for definition in REPORTS}
        try:
            run = self.tap("tap 28-day report backfill", emulator, reports)
        finally:
            emulator.command(cmd="set", latency=0)
        calls = run.requests.get("report_calls", {})
        most = max((len(times) for times in calls.values()), default=0)
        bound = math.floor((most - 1) / 14) * window if most else 0.0
        self.run_table(
            f"Report pacing: 28-day backfill of {len(calls)} reports, {window:.0f} s window "
            f"(14 calls per window per report), {s.latency * 1000:.0f} ms latency",
            [run],
        )
        self.stream_table(run)
        self.say("")
        self.say(
            "| report | calls | first call s | last call s |\n|---|---:|---:|---:|",
        )
        first = min((min(times) for times in calls.values() if times), default=0.0)
        for name, times in sorted(calls.items()):
            self.say(
                f"| {name} | {len(times)} | {min(times) - first:.1f} | {max(times) - first:.1f} |"
            )
        self.say("")
        ratio = run.wall / bound if bound else float("inf")
        # Days delivered: each daily report's date= calls Graph answered with a file.
        days = {
            name: count
            for name, count in run.requests.get("by_endpoint", {}).items()
            if name.endswith("(date=…)")
        }
        daily = len(days)
        fewest = min(days.values(), default=0)
        refused = run.requests.get("by_status", {}).get("400", 0)
        self.target(
            bound > 0 and ratio <= 1.25,
            f"28-day backfill of {len(calls)} reports took {run.wall:.1f} s; the limit's lower "
            f"bound for {most} calls per report is {bound:.0f} s (floor((calls-1)/14) windows): "
            f"{ratio:.2f}x (target <= 1.25x); {fewest} days delivered by each of {daily} daily "
            f"reports (the emulator serves {KEPT_DAYS + 1}: the refresh date and the "
            f"{KEPT_DAYS} before it), {refused} refused as too old",
        )
        # What does not shrink with the time scale (latency, downloads, emission) is the same
        # at Graph's real window; the bound grows 600/window times.
        windows = bound / window if window else 0.0
        if windows:
            real = (run.wall - bound + windows * 600) / (windows * 600)
            self.say(
                f"At Graph's real 10-minute window: about {windows * 600 + run.wall - bound:.0f} s "
                f"for a lower bound of {windows * 600:.0f} s: {real:.2f}x."
            )

    def many_tenants(self, count: int) -> None:
        """N tenants side by side against 1: the same 28-day backfill of every stream under the
        same time-scaled report window, then the sizing that follows at Graph's real window.

        Everything that waits is scaled like the window (latency too: at 150 ms against a 60 s
        window, report_concurrency's transfers, not Graph's limit, would set the pace, which they
        do not at 600 s); the CPU work shrinks with reports of a few users a day, and one day of
        every report at full size measures what the rest of the users cost.
        """
        s = self.sizes
        window = s.window_seconds
        scale = window / 600
        latency = s.latency * scale
        self.kind = f"tenants-{'quick' if self.quick else 'full'}"
        self.say(f"# tap-microsoft365 benchmark: {count} tenants side by side\n")
        self.say(machine_line())
        self.say(
            f"Each tenant: {TENANT_USERS:,} users, {TENANT_GROUPS:,} groups; every stream, a "
            f"28-day backfill of every report (reports of {s.pacing_people} users a day); report "
            f"window time-scaled to {window:.0f} s (Graph: 600 s, 14 calls per report per app "
            f"and tenant) and latency with it: {latency * 1000:.1f} ms per request "
            f"({s.latency * 1000:.0f} ms at 600 s); report_concurrency 8 (the default)."
        )
        runs: dict[int, Run] = {}
        current: Run | None = None
        for tenants in (1, count):
            emulator = Emulator(
                users=TENANT_USERS,
                groups=TENANT_GROUPS,
                extra_rows=0,
                people=s.pacing_people,
                scale=scale,
                tenants=tenants,
            )
            try:
                emulator.command(cmd="set", latency=latency)
                run = self.tap(f"tap {tenants} tenant(s), 28-day backfill", emulator, None)
                runs[tenants] = run
                if tenants == count:
                    # The next run, nothing new yet: what keeping the tenants current costs
                    # besides the new day's rows.
                    current = self.tap(
                        f"tap {tenants} tenants, next run", emulator, None, state=run.state
                    )
            finally:
                emulator.stop()
        assert current is not None
        # Days of every report at a tenant's full size (every user in the reports), then the
        # next run (no day left): the CPU a tenant's report rows cost, which the sizing
        # scales by.
        emulator = Emulator(
            users=TENANT_USERS,
            groups=TENANT_GROUPS,
            extra_rows=0,
            people=TENANT_USERS,
            scale=1.0,
        )
        reports = {definition.name for definition in REPORTS}
        try:
            refresh = datetime.fromisoformat(emulator.ready["refresh_date"]).date()
            start = (refresh - timedelta(days=ROWS_DAYS - 1)).isoformat()
            rows = self.tap(
                f"tap 1 tenant, {ROWS_DAYS} days of every report ({TENANT_USERS:,} users)",
                emulator,
                reports,
                settings={"start_date": start},
            )
            empty = self.tap(
                "tap 1 tenant, its next run (no day left)",
                emulator,
                reports,
                settings={"start_date": start},
                state=rows.state,
            )
        finally:
            emulator.stop()
        one, many = runs[1], runs[count]
        self.run_table(f"1 tenant vs {count} tenants", [one, many, current, rows, empty])
        self.say("")
        self.say(
            "| run | tenants | days delivered per tenant (fewest, of daily reports) | "
            "most report calls per tenant and report |"
        )
        self.say("|---|---:|---:|---:|")
        served = KEPT_DAYS + 1
        complete = True
        for run in (one, many):
            days = run.requests.get("tenant_days", {})
            fewest = min((min(per.values(), default=0) for per in days.values()), default=0)
            expected = count if run is many else 1
            complete = complete and fewest == served and len(days) == expected
            self.say(f"| {run.label} | {len(days)} | {fewest} of {served} | {most_calls(run)[0]} |")
        self.say("")
        ratio = many.wall / one.wall if one.wall else float("inf")
        self.target(
            ratio <= 1.3 and many.exit_code == 0 and one.exit_code == 0,
            f"{count} tenants took {many.wall:.1f} s, 1 tenant {one.wall:.1f} s: {ratio:.2f}x "
            "(target <= 1.3x)",
        )
        self.target(
            complete,
            f"every tenant got every day Graph serves ({served}: the refresh date and the "
            f"{KEPT_DAYS} before it) of every daily report",
        )
        self.tenant_sizing(one, many, current, (rows, empty), count)

    def tenant_sizing(
        self, one: Run, many: Run, current: Run, rows: tuple[Run, Run], count: int
    ) -> None:
        """Tenants per day at Graph's real window, from the runs of `many_tenants`."""
        report_names = {definition.name for definition in REPORTS}
        report_records = sum(n for name, n in one.records.items() if name in report_names)
        most, calls = most_calls(one)
        first = first_window_calls(one)
        measured = Measured(
            tenants=count,
            cpu_one=one.cpu,
            cpu_many=many.cpu,
            rss_one=one.max_rss_mb,
            rss_many=many.max_rss_mb,
            report_records=report_records,
            calls_per_report=most,
            report_calls=calls,
            first_window_calls=first,
            rows_cpu=rows[0].cpu - rows[1].cpu,
            rows_records=rows[0].total_records,
            rows_days=ROWS_DAYS,
            current_cpu_many=current.cpu,
            seconds_per_call=2 * self.sizes.latency,  # the call (302) and the download
        )
        memory_mb = machine_memory_mb() / 2  # half the machine for the tap
        cores = os.cpu_count() or 1
        z = size(measured, cores=cores, memory_mb=memory_mb)
        self.data["sizing"] = {"measured": measured.__dict__, "sizing": z.__dict__}
        daily = round(z.day_records)
        full = measured.backfill_days * daily
        wire = measured.seconds_per_call
        used, spare = rows
        self.say("\n### Sizing at Graph's real 10-minute window\n")
        self.say(
            f"- CPU of a backfill run: {z.cpu_fixed:.1f} s plus {z.cpu_per_tenant:.2f} s a "
            f"tenant (1 tenant {one.cpu:.1f} s, {count} tenants {many.cpu:.1f} s), for "
            f"{report_records:,} report records a tenant; a report record at full size "
            f"{z.cpu_per_report_record * 1e6:.0f} µs ({used.cpu:.1f} s for "
            f"{used.total_records:,} records of {ROWS_DAYS} days, less {spare.cpu:.1f} s for the "
            "next run, which reads no day)."
        )
        self.say(
            f"- A {TENANT_USERS:,}-user tenant's 28-day backfill ({measured.backfill_days} days "
            f"x {daily:,} report records = {full:,}): {z.cpu_per_tenant:.2f} + "
            f"{full - report_records:,} x {z.cpu_per_report_record * 1e6:.0f} µs = "
            f"{z.backfill_cpu:.0f} CPU s; kept current, a day: {current.cpu:.1f} s / {count} "
            f"+ {daily:,} x {z.cpu_per_report_record * 1e6:.0f} µs = "
            f"{z.current_cpu:.1f} CPU s."
        )
        fixed = max(z.cpu_fixed, 0.0)
        scaled = graph_seconds(most, 14, self.sizes.window_seconds)
        # The first window's calls queue for the transfers at the scaled latency too.
        stagger = z.stagger_per_tenant * self.sizes.window_seconds / 600
        tenant = z.cpu_per_tenant + z.stagger_per_tenant  # at 600 s, these tenants
        small_one = z.graph_backfill_seconds + fixed + tenant
        small_many = z.graph_backfill_seconds + fixed + count * tenant
        self.say(
            f"- Graph: {most} calls per report per tenant take at least "
            f"{z.graph_backfill_seconds:.0f} s (floor(({most}-1)/14) x 600 s) for any number "
            "of tenants side by side (each has its own budget); no report is complete before "
            "its last window, and the SDK emits stream after stream, tenant after tenant, so a "
            "run takes at most about that wait, plus each tenant's first-window calls queueing "
            f"for the transfers ({first} calls x {wire:.1f} s / 8 = {z.stagger_per_tenant:.1f} s "
            "at 600 s: they set when its later windows open), plus every tenant's CPU, one "
            f"after another. Checked at the scaled window: {scaled:.0f} + {fixed:.1f} + N x "
            f"({stagger:.2f} + {z.cpu_per_tenant:.2f}) s = "
            f"{scaled + fixed + stagger + z.cpu_per_tenant:.0f} s for 1 tenant (measured "
            f"{one.wall:.0f} s), {scaled + fixed + count * (stagger + z.cpu_per_tenant):.0f} s "
            f"for {count} (measured {many.wall:.0f} s). At 600 s: these tenants "
            f"{small_one:.0f} s and {small_many:.0f} s ({small_many / small_one:.2f}x); "
            f"{TENANT_USERS:,}-user tenants {run_seconds(z, 1):.0f} s and "
            f"{run_seconds(z, count):.0f} s ({run_seconds(z, count) / run_seconds(z, 1):.2f}x)."
        )
        self.say(
            f"- report_concurrency 8 carries {z.backfill_per_run_transfers} tenants' {calls} "
            f"report calls of {wire:.1f} s (call and download at {self.sizes.latency * 1000:.0f}"
            f" ms) within that wait (8 x {z.graph_backfill_seconds:.0f} / ({calls} x "
            f"{wire:.1f})); more tenants in one run need more."
        )
        self.say(
            f"- Memory: {z.rss_fixed:.0f} MB a run plus {z.rss_per_tenant:.1f} MB a tenant "
            f"(100 tenants in one run: about {z.rss_fixed + 100 * z.rss_per_tenant:,.0f} MB); "
            f"half this machine's RAM ({memory_mb:,.0f} MB) would hold "
            f"{z.tenants_per_run_memory:,} tenants' worth."
        )
        self.say(
            f"- A day: one process, in runs of {count} tenants one after another, backfills "
            f"{per_process_day(z, count):,} tenants (86,400 x {count} / "
            f"{run_seconds(z, count):.0f}), in runs of 50 {per_process_day(z, 50):,}; this "
            f"machine's {cores} cores, with runs side by side (their waits overlap), "
            f"{z.backfill_per_day:,} ({cores} x 86,400 / {z.backfill_cpu:.0f}), or keep "
            f"{z.current_per_day:,} current ({cores} x 86,400 / {z.current_cpu:.1f}): CPU "
            "bounds both, not Graph's limit and not memory."
        )

    def write(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        kind = self.kind
        path = RESULTS / f"bench-{kind}-{stamp}.md"
        path.write_text("\n".join(self.lines) + "\n")
        (RESULTS / f"bench-{kind}-{stamp}.json").write_text(
            json.dumps(self.data, indent=1, default=str)
        )
        return path


def report_call(definition: Any, day: str) -> tuple[str, str]:
    """The URL path and parameters the tap uses for one report day (or its snapshot)."""
    if definition.parameters is Parameters.DATE_OR_PERIOD:
        return definition.url_path, f"date={day}"
    if definition.parameters is Parameters.PERIOD:
        return definition.url_path, "period='D7'"
    return definition.url_path, ""


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def spread(values: list[float]) -> str:
    """The range of repeated ratios, the noise of the measurement."""
    if len(values) < 2:
        return "one run"
    return f"{min(values):.2f}-{max(values):.2f}"


def per_object_calls(by_endpoint: dict[str, int]) -> dict[str, int]:
    """Requests addressed to one user or group (`/users/{id}/...`, `/groups/{id}/...`)."""
    allowed = {
        f"graph /v1.0/{kind}{suffix}"
        for kind in ("users", "groups")
        for suffix in ("", "/delta", "/$count")
    }
    return {
        name: count
        for name, count in by_endpoint.items()
        if name.startswith(("graph /v1.0/users/", "graph /v1.0/groups/")) and name not in allowed
    }


def most_calls(run: Run) -> tuple[int, int]:
    """The most calls a tenant made to one report function, and to all of them (the busiest
    tenant's), in a run."""
    calls = run.requests.get("tenant_report_calls", {})
    most = max((len(times) for per in calls.values() for times in per.values()), default=0)
    total = max((sum(len(times) for times in per.values()) for per in calls.values()), default=0)
    return most, total


def first_window_calls(run: Run) -> int:
    """The calls of a tenant's first window (up to 14 a report function), the busiest's."""
    calls = run.requests.get("tenant_report_calls", {})
    return max(
        (sum(min(len(times), 14) for times in per.values()) for per in calls.values()), default=0
    )


def machine_memory_mb() -> float:
    """The machine's RAM in MB (0 when /proc/meminfo is unreadable)."""
    try:
        return int(Path("/proc/meminfo").read_text().split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ""
    with contextlib.suppress(OSError):
        load = f", load average {os.getloadavg()[0]:.1f} at start"
    return (
        f"Machine: {cpu}, {os.cpu_count()} CPUs{memory}{load}; Python {platform.python_version()}"
        f" on {platform.system()} {platform.release()}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller tenant, about 5 minutes")
    parser.add_argument(
        "--compare-only",
        action="store_true",
        help="only users and every report beside the raw client (no whole sync, latency, "
        "memory or pacing scenarios)",
    )
    parser.add_argument(
        "--reports-only",
        action="store_true",
        help="only every report beside the raw client (the per-report table)",
    )
    parser.add_argument("--repeats", type=int, help="interleaved pairs per comparison")
    parser.add_argument(
        "--tenants",
        type=int,
        nargs="?",
        const=10,
        metavar="N",
        help="only N tenants (default 10) of 2,000 users side by side vs 1 tenant, 28-day "
        "backfill, and the sizing per day that follows",
    )
    parser.add_argument(
        "--window",
        type=float,
        metavar="SECONDS",
        help="Graph's 10-minute report window time-scaled to this (default 60, 30 with --quick)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeats:
        sizes = dataclasses.replace(sizes, repeats=args.repeats)
    if args.window:
        sizes = dataclasses.replace(sizes, window_seconds=args.window)
    bench = Bench(sizes, args.quick, args.compare_only, args.reports_only)
    started = time.monotonic()
    if args.tenants:
        bench.many_tenants(args.tenants)
    else:
        bench.run()
    failed = sum(1 for ok, _ in bench.targets if not ok)
    bench.say(
        f"\n{len(bench.targets) - failed} of {len(bench.targets)} targets met; "
        f"benchmark took {time.monotonic() - started:.0f} s."
    )
    path = bench.write()
    shutil.rmtree(bench.folder, ignore_errors=True)
    print(f"Written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
