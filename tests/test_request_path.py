"""The one request path: an unreachable Graph ends the run fast, a read timeout names its setting.

Both run the real command against the emulator over HTTPS. An unreachable host is a wrong
setting (a closed port, a dead proxy, an unknown name), not a passing fault: every call to it
gives up after three attempts, and once one call has given up the others (the report workers
included) do not try again, so the run ends within seconds instead of each report worker
backing off for minutes. Throttling keeps its patient retries (tests/test_reliability.py).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from tap_microsoft365.streams.reports.definitions import REPORTS as REPORT_DEFINITIONS
from tests.conftest import RECENT_START
from tests.singer_run import catalog_selecting, run_tap

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.graph_emulator import GraphEmulator

REPORTS = {
    "email_activity_user_detail",
    "office365_active_user_detail",
    "onedrive_activity_user_detail",
    "mailbox_usage_detail",
}


def last_error(stderr: str) -> str:
    return next(line for line in reversed(stderr.splitlines()) if "| ERROR" in line)


def test_unreachable_graph_ends_the_run_within_seconds(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    emu = fresh_emulator(users=8, groups=1)
    # Graph is named `localhost` (Entra ID issues tokens for that name) and reachable only
    # through a proxy on a closed port, so no connection to it can be made; Entra ID
    # (127.0.0.1) is reached directly.
    graph_url = emu.graph_url.replace("127.0.0.1", "localhost")
    assert emu.login is not None
    emu.login.graph_url = graph_url
    config = emu.config(graph_url=graph_url, **RECENT_START)
    started = time.monotonic()
    result = run_tap(
        config,
        ca_bundle=emu.ca_bundle,
        catalog=catalog_selecting(config, {"users", *REPORTS}),
        env={"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"},
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 5, result.stderr[-3000:]
    line = last_error(result.stderr)
    assert f"cannot reach Graph at {graph_url.removeprefix('https://')}" in line, line
    assert "after 3 attempts" in line, line
    assert "HTTPS_PROXY/NO_PROXY and the graph_url setting" in line, line
    assert elapsed < 60, f"the run took {elapsed:.0f} s"
    # No report worker went on trying once one call had given up.
    graph_calls = [r for r in emu.request_log if r.role == "graph"]
    assert graph_calls == []


def test_read_timeout_names_request_timeout(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    emu = fresh_emulator(users=8, groups=1)
    emu.faults.latency(3, path=r"^/v1\.0/organization$")
    config = emu.config(request_timeout=1, retry_max_attempts=2, **RECENT_START)
    result = run_tap(
        config, ca_bundle=emu.ca_bundle, catalog=catalog_selecting(config, {"organization"})
    )
    assert result.exit_code == 5, result.stderr[-3000:]
    line = last_error(result.stderr)
    assert "organization: Graph at " in line, line
    assert "did not answer within request_timeout (1 s) after 2 attempts" in line, line
    assert "raise the request_timeout setting" in line, line


def test_report_calls_log_the_sdks_request_metrics_without_the_download_url(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    emu = fresh_emulator(users=8, groups=1)
    config = emu.config(**RECENT_START)
    emu.clear_log()
    result = run_tap(
        config, ca_bundle=emu.ca_bundle, catalog=catalog_selecting(config, {"users", *REPORTS})
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    points = [
        json.loads(line.split("METRIC: ", 1)[1])
        for line in result.stderr.splitlines()
        if "METRIC: {" in line
    ]
    timed = [p for p in points if p["metric"] == "http_request_duration"]
    files = [p for p in timed if p["tags"]["endpoint"].endswith(" (download)")]
    for definition in REPORT_DEFINITIONS:
        if definition.name not in REPORTS:
            continue
        calls = [r for r in emu.request_log if r.role == "graph" and definition.function in r.path]
        assert calls, definition.name
        # One point per call the emulator answered, with its status, as the SDK's streams log
        # for their pages.
        graph = [p for p in timed if p["tags"]["stream"] == definition.name and p not in files]
        assert sorted(p["tags"]["http_status_code"] for p in graph) == sorted(
            r.status for r in calls
        ), definition.name
        assert {p["tags"]["endpoint"] for p in graph} == {f"/{definition.url_path}"}
    downloads = [r for r in emu.request_log if r.role == "download" and "/data/" in r.path]
    assert len(files) == len(downloads) > 0
    assert {p["tags"]["stream"] for p in files} <= REPORTS
    assert all(p["tags"]["status"] == "succeeded" for p in files)
    # The pre-authenticated download URL never appears in a metric (or any log line).
    for record in downloads:
        assert record.path not in result.stderr
