"""The Graph emulator as the benchmark's own process, steered over stdin/stdout.

    python -m bench.emulator --users 100000 --groups 10000 --seed 7 --time-scale 0.1 \
        --extra-rows 0 [--tenants N] [--cache-files] --config-out PATH

Builds the tenant (with --tenants N, N tenants of that size, seeds seed, seed+1, ..., served to
one multi-tenant app; with --cache-files, each report file is built once and then served from
memory, as Graph's download host serves a file built before the redirect), starts the emulator
(tests/graph_emulator), writes the tap config (as `python -m tests.graph_emulator` does: tap
settings plus "ca_bundle"; a `tenants` list with N > 1), prints one JSON line
{"ready": true, ...} and then answers one JSON line per command line on stdin:

    {"cmd": "set", "latency": 0.15, "extra_rows": 100000}   simulated latency (every listener)
                                                            and rows added to every report
    {"cmd": "set", "reset_report_limits": true}   forget the report calls counted against
                                                  Graph's limit (14 per 10 minutes)
    {"cmd": "log"}     the requests received since the last "log", counted by endpoint, plus
                       each report function's call times and, per tenant, the report days
                       answered with a file; the log is then cleared
    {"cmd": "quit"}    stop

The request log stays in this process and out of Graph's URL space: the benchmark reads it
through this pipe, never over HTTP.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.graph_emulator import GraphEmulator, Tenant
from tests.graph_emulator.reports import ReportService

# /v1.0/reports/getX(date=2026-11-20) -> /v1.0/reports/getX(date=…); download tokens -> *
_REPORT_CALL = re.compile(r"^(/v1\.0/reports/\w+)(?:\((\w+)=[^)]*\))?$")
_DOWNLOAD = re.compile(r"^/data/download/.*$")
_TENANT_PATH = re.compile(r"^/[^/]+/(oauth2/v2\.0/token|v2\.0/\.well-known/.*)$")


def endpoint(role: str, path: str) -> str:
    """A request's endpoint with its variable parts (dates, tokens, tenant) folded."""
    if role == "download":
        return "download " + (_DOWNLOAD.sub("/data/download/*", path) if path else path)
    if role == "login":
        return "login " + _TENANT_PATH.sub(r"/{tenant}/\1", path)
    match = _REPORT_CALL.match(path)
    if match:
        return f"graph {match.group(1)}({match.group(2)}=…)" if match.group(2) else f"graph {path}"
    return f"graph {path}"


class ReportView:
    """The tenant as its usage reports see it: its first `people` users and groups.

    The emulator computes a report row per real user in Python (about 4 s per 10,000 rows),
    which would make a 100,000-user tenant's reports cost the emulator minutes; the benchmark
    wants large reports cheaply, so rows beyond these come from `extra_rows` (synthetic users,
    sites and groups drawn from cached activity profiles). Everything else is the tenant's.
    """

    def __init__(self, tenant: Tenant, people: int) -> None:
        self._tenant = tenant
        self.people = people

    # Every report call takes a snapshot: islice copies `people` entries, not the whole tenant
    # (listing 100,000 users took about 60 ms a call).
    @property
    def users(self) -> dict[str, Any]:
        return dict(itertools.islice(self._tenant.users.items(), self.people))

    @property
    def groups(self) -> dict[str, Any]:
        return dict(itertools.islice(self._tenant.groups.items(), self.people))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tenant, name)


class Controller:
    """Applies commands to a running emulator."""

    def __init__(self, emulator: GraphEmulator, views: dict[str, ReportView]) -> None:
        self.emulator = emulator
        self.views = views  # by tenant id
        self.latency_rule: Any = None

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """One command's answer."""
        kind = command.get("cmd")
        if kind == "set":
            return self.configure(command)
        if kind == "log":
            return self.drain_log()
        return {"error": f"unknown command {kind!r}"}

    def configure(self, command: dict[str, Any]) -> dict[str, Any]:
        emulator = self.emulator
        if "latency" in command:
            if self.latency_rule is not None:
                emulator.faults.remove(self.latency_rule)
                self.latency_rule = None
            seconds = float(command["latency"])
            if seconds > 0:
                self.latency_rule = emulator.faults.latency(seconds, role=None)
        for tenant_id, view in self.views.items():
            reports = emulator.reports_of(tenant_id)
            if "extra_rows" in command:
                reports.extra_rows = int(command["extra_rows"])
            if "report_people" in command:
                view.people = int(command["report_people"])
            if command.get("reset_report_limits"):
                # The CPU comparisons call each report function more often than Graph's 14
                # calls per 10 minutes allow; they measure records/s, not pacing.
                reports._recent.clear()
                reports._recent_tenant.clear()
        return {"ok": True}

    def drain_log(self) -> dict[str, Any]:
        emulator = self.emulator
        with emulator._log_lock:  # the emulator's own lock around its request log
            records = list(emulator.request_log)
            emulator.request_log.clear()
        counts = Counter(endpoint(r.role, r.path) for r in records)
        statuses = Counter(str(r.status) for r in records)
        report_calls: dict[str, list[float]] = {}
        # Per tenant and report function: the calls Graph answered (their times) and the
        # days (`date=`) it answered with a file.
        tenant_calls: dict[str, dict[str, list[float]]] = {}
        tenant_days: dict[str, dict[str, int]] = {}
        for r in records:
            match = _REPORT_CALL.match(r.path) if r.role == "graph" else None
            if match and r.status in (200, 302):
                name = match.group(1).rsplit("/", 1)[-1]
                report_calls.setdefault(name, []).append(r.time)
                tenant_calls.setdefault(r.tenant_id, {}).setdefault(name, []).append(r.time)
                if match.group(2) == "date":
                    days = tenant_days.setdefault(r.tenant_id, {})
                    days[name] = days.get(name, 0) + 1
        return {
            "total": len(records),
            "by_endpoint": dict(sorted(counts.items())),
            "by_status": dict(sorted(statuses.items())),
            "report_calls": report_calls,
            "tenant_report_calls": tenant_calls,
            "tenant_days": tenant_days,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator", description=__doc__)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--groups", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date(2026, 11, 26))
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--extra-rows", type=int, default=0)
    parser.add_argument("--report-people", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=1, help="tenants of this size")
    parser.add_argument(
        "--cache-files",
        action="store_true",
        help="serve each report file built once from memory (about 30 MB a 100,000-row file)",
    )
    parser.add_argument("--config-out", type=Path, required=True)
    args = parser.parse_args(argv)

    # Copilot seats: its report has rows (a tenant without the add-on has none).
    seats = min(100, args.users // 10)
    tenant, *others = Tenant.several(
        args.tenants,
        seed=args.seed,
        users=args.users,
        groups=args.groups,
        today=args.today,
        copilot_seats=seats,
    )
    emulator = GraphEmulator(tenant, time_scale=args.time_scale)
    for other in others:
        emulator.add_tenant(other)
    # The tenants are millions of long-lived objects: a full collection over them took about
    # 0.6 s, at random moments inside the requests being measured. Frozen, they are never
    # scanned again; what requests allocate is still collected.
    gc.collect()
    gc.freeze()
    emulator.start()
    # Each tenant's reports are of its first --report-people users and groups (see
    # ReportView), installed where the emulator keeps its lazily built ReportServices.
    views: dict[str, ReportView] = {}
    for tenant_id, site in emulator.sites.items():
        view = views[tenant_id] = ReportView(site.tenant, args.report_people)
        first = tenant_id == emulator.tenant_id
        reports = ReportService(
            view,
            download_base_url=emulator.download_url + ("" if first else f"/tenants/{tenant_id}"),
            time_scale=args.time_scale,
        )
        reports.extra_rows = args.extra_rows
        if args.cache_files:
            reports.file_cache = {}
        if first:
            emulator._reports, emulator._reports_state = reports, "loaded"
        else:
            emulator._site_reports[tenant_id] = reports
    config = emulator.tenants_config() if args.tenants > 1 else emulator.config()
    config["ca_bundle"] = emulator.ca_bundle
    args.config_out.write_text(json.dumps(config, indent=2))
    os.chmod(args.config_out, 0o600)
    controller = Controller(emulator, views)
    ready = {
        "ready": True,
        "pid": os.getpid(),
        "tenants": list(emulator.sites),
        "users": len(tenant.users),
        "groups": len(tenant.groups),
        "refresh_date": emulator.reports.refresh_date.isoformat(),
    }
    print(json.dumps(ready), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("cmd") == "quit":
                break
            print(json.dumps(controller.handle(command)), flush=True)
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
