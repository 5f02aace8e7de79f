"""Reliability: the faults Graph and Entra ID throw at a run are survived without losing or
doubling a row, and a run killed at any point resumes from its last STATE (issue 5, items 1, 2,
5 and 7).

Every test runs the real command against emulators over HTTPS, at DEBUG level, and checks that no
secret reached the output. The whole-sync tests compare what an upserting target would hold
(records applied by primary key) with a clean run of an identical tenant (same seed), and check
that no record was emitted twice within a run. They run their syncs side by side: most of a
faulty run is spent waiting, as Retry-After and the backoff ask.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import RECENT_START, TODAY
from tests.graph_emulator.product_names import render
from tests.singer_run import TAP, SyncResult, catalog_selecting, run_tap, tap_env
from tests.test_secrets import assert_no_secrets

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.graph_emulator import GraphEmulator, LogRecord

DEBUG = {"TAP_MICROSOFT365_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"}
# Every kind of stream: full-table directory reads, delta rounds, a full read with
# ACTIVATE_VERSION, a daily report and a snapshot report.
STREAMS = frozenset(
    {
        "organization",
        "subscribed_skus",
        "subscriptions",
        "users",
        "groups",
        "license_assignments",
        "office365_active_user_detail",
        "mailbox_usage_detail",
    }
)
# Pages of 25, so faults and kills land in the middle of multi-page reads (and a sync makes
# enough requests for every rule of the fault profiles to fire).
PAGE = 25
USERS = 150
SETTINGS: dict[str, Any] = {**RECENT_START, "page_size": PAGE}
TENANT: dict[str, Any] = {"users": USERS, "groups": 12, "seed": 11}
USER_PAGES = math.ceil(USERS / PAGE)
LAST_DAY = (TODAY - datetime.timedelta(days=2)).isoformat()  # the emulator's refresh date


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def discovered() -> dict[str, Any]:
    """The tap's catalog, discovered once for the module."""
    return catalog_selecting({}, set(STREAMS))


def selecting(catalog: dict[str, Any], streams: set[str] | frozenset[str]) -> dict[str, Any]:
    """A copy of `catalog` with only `streams` selected."""
    chosen = copy.deepcopy(catalog)
    for entry in chosen["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return chosen


@pytest.fixture(scope="module")
def names_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Microsoft's product names CSV as a local copy (`product_names_path`).

    The whole-sync tests are about Graph's and Entra ID's faults; the names file comes from
    download.microsoft.com, whose download is not retried (see the report of issue 5).
    """
    path = tmp_path_factory.mktemp("names") / "product-names.csv"
    path.write_bytes(render())
    return str(path)


def config_for(emu: GraphEmulator, names_file: str, **settings: Any) -> dict[str, Any]:
    return emu.config(**{**SETTINGS, "product_names_path": names_file, **settings})


def sync(
    emu: GraphEmulator,
    catalog: dict[str, Any],
    names_file: str,
    *,
    state: dict[str, Any] | None = None,
    **settings: Any,
) -> SyncResult:
    return run_tap(
        config_for(emu, names_file, **settings),
        ca_bundle=emu.ca_bundle,
        catalog=catalog,
        state=state,
        env=DEBUG,
    )


def target(*results: SyncResult) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """What an upserting target holds after loading `results` in order: records by key."""
    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for result in results:
        keys: dict[str, list[str]] = {}
        for message in result.messages:
            if message["type"] == "SCHEMA":
                keys[message["stream"]] = message["key_properties"]
            elif message["type"] == "RECORD":
                record = message["record"]
                key = tuple(record[name] for name in keys[message["stream"]])
                tables.setdefault(message["stream"], {})[key] = record
    return tables


def emitted_twice(result: SyncResult) -> list[tuple[str, tuple[Any, ...]]]:
    """Records emitted more than once within the run (by stream and key)."""
    keys: dict[str, list[str]] = {}
    seen: Counter[tuple[str, tuple[Any, ...]]] = Counter()
    for message in result.messages:
        if message["type"] == "SCHEMA":
            keys[message["stream"]] = message["key_properties"]
        elif message["type"] == "RECORD":
            record = message["record"]
            seen[message["stream"], tuple(record[k] for k in keys[message["stream"]])] += 1
    return [key for key, count in seen.items() if count > 1]


def difference(
    got: dict[str, dict[tuple[Any, ...], Any]], want: dict[str, dict[tuple[Any, ...], Any]]
) -> dict[str, str]:
    """Per stream, how `got` differs from `want` (empty when equal)."""
    out = {}
    for stream in sorted(set(got) | set(want)):
        mine, theirs = got.get(stream, {}), want.get(stream, {})
        if mine != theirs:
            changed = sum(1 for k in set(mine) & set(theirs) if mine[k] != theirs[k])
            out[stream] = (
                f"{len(set(theirs) - set(mine))} missing, {len(set(mine) - set(theirs))} extra, "
                f"{changed} changed"
            )
    return out


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def warnings(result: SyncResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if "| WARNING" in line]


def graph_calls(emu: GraphEmulator, path: str) -> list[LogRecord]:
    return [r for r in emu.request_log if r.role == "graph" and r.path == path]


# -- item 7: whole syncs under each fault profile ---------------------------------------------


def test_full_sync_under_each_fault_profile_equals_a_clean_run(
    fresh_emulator: Callable[..., GraphEmulator],
    discovered: dict[str, Any],
    names_file: str,
) -> None:
    profiles = ("throttling", "flaky", "token_expiry", "latency")
    emus = {name: fresh_emulator(**TENANT) for name in ("clean", *profiles)}
    for name in profiles:
        emus[name].faults.profile(name, tokens=emus[name].tokens)

    with ThreadPoolExecutor(len(emus)) as pool:
        runs = dict(
            zip(
                emus,
                pool.map(lambda e: sync(e, discovered, names_file), emus.values()),
                strict=True,
            )
        )

    clean = runs["clean"]
    assert clean.exit_code == 0, tail(clean.stderr)
    reference = target(clean)
    assert set(reference) == set(STREAMS)
    for name in profiles:
        result, emu = runs[name], emus[name]
        assert result.exit_code == 0, f"{name}: {tail(result.stderr)}"
        assert emitted_twice(result) == [], name
        assert difference(target(result), reference) == {}, name
        idle = [(r.kind, r.status, r.role) for r in emu.faults.rules if not r.fired]
        assert idle == [], f"{name}: faults that never fired"
        assert_no_secrets(result, emu)

    # The faults happened and each retry said why, the ids, the wait and until when.
    throttled = runs["throttling"]
    assert any("answered 429 TooManyRequests" in line for line in warnings(throttled))
    assert all(
        "as Retry-After asks) until " in line
        for line in warnings(throttled)
        if "answered 429" in line and "tap-microsoft365." in line
    )
    flaky = runs["flaky"]
    assert any("request-id " in line and "backing off" in line for line in warnings(flaky))
    assert any("HTML page" in line for line in warnings(flaky))
    # Report downloads were cut off by resets (mid-CSV, or before the client read the first
    # bytes), said so, and were fetched again, none half-emitted (above).
    assert any("'s file" in line and "Error)" in line for line in warnings(flaky))
    expired = emus["token_expiry"]
    unauthorized = [r for r in expired.request_log if r.role == "graph" and r.status == 401]
    assert unauthorized, "tokens expired mid-run"
    assert any("401 InvalidAuthenticationToken" in line for line in warnings(runs["token_expiry"]))


# -- item 5: killed at any point, resumed from the last STATE ---------------------------------


def users_page(number: int) -> Callable[[LogRecord], bool]:
    """The users stream's request for page `number` (its $select names givenName)."""

    def match(record: LogRecord) -> bool:
        if record.path != "/v1.0/users" or "givenName" not in record.query.get("$select", ""):
            return False
        return number == 1 or "$skiptoken" in record.query

    return match


def license_page_2(record: LogRecord) -> bool:
    """license_assignments' request for its second page of users (no givenName selected)."""
    return (
        record.path == "/v1.0/users"
        and "$skiptoken" in record.query
        and "givenName" not in record.query.get("$select", "")
    )


# name: (the requests held back: a regular expression on the path and how many of its
# requests pass first, so the kill lands while the run waits for an answer; when to kill; the
# stream the kill interrupts half-way)
KILL_POINTS: dict[str, tuple[str, int, Callable[[LogRecord], bool], str]] = {
    # groups' round is done and stored; license_assignments has read one page of six.
    "license_assignments page 2": (r"^/v1\.0/users$", 1, license_page_2, "license_assignments"),
    # The report scheduler has fetched the first day of office365_active_user_detail.
    "report, second day": (
        rf"getOffice365ActiveUserDetail\(date={LAST_DAY}\)",
        0,
        lambda r: f"getOffice365ActiveUserDetail(date={LAST_DAY})" in r.path,
        "office365_active_user_detail",
    ),
    # Every other stream is done; users (the last) has read one page of its initial round
    # (license_assignments' pages of /users pass, then users' first).
    "users, last stream, page 2": (r"^/v1\.0/users$", USER_PAGES + 1, users_page(2), "users"),
}


def bookmarks(state: dict[str, Any] | None) -> dict[str, Any]:
    return (state or {}).get("bookmarks", {})


def progress(state: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What a state says is done, per stream: a finished round, or the last report day."""
    done = []
    for stream, bookmark in sorted(bookmarks(state).items()):
        if "delta_link" in bookmark:
            done.append((stream, "round complete"))
        elif bookmark.get("replication_key_value"):
            done.append((stream, str(bookmark["replication_key_value"])))
    return done


def killed_run(
    emu: GraphEmulator,
    catalog: dict[str, Any],
    names_file: str,
    tmp: Path,
    when: Callable[[LogRecord], bool],
) -> SyncResult:
    """Start a sync, SIGKILL it as soon as the emulator has received a request matching
    `when`, and return what it had written (complete lines only, as a target reads them)."""
    (tmp / "config.json").write_text(json.dumps(config_for(emu, names_file)))
    (tmp / "catalog.json").write_text(json.dumps(catalog))
    with (tmp / "stdout").open("w") as out, (tmp / "stderr").open("w") as err:
        process = subprocess.Popen(
            [*TAP, "--config", str(tmp / "config.json"), "--catalog", str(tmp / "catalog.json")],
            stdout=out,
            stderr=err,
            env=tap_env(emu.ca_bundle, **DEBUG),
        )
        try:
            deadline = time.monotonic() + 120
            while not any(when(record) for record in list(emu.request_log)):
                assert process.poll() is None, "the run ended before the kill point"
                assert time.monotonic() < deadline, "the kill point was never reached"
                time.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    written = (tmp / "stdout").read_text()
    complete = written[: written.rfind("\n") + 1]
    return SyncResult(process.returncode, complete, (tmp / "stderr").read_text())


def test_runs_killed_at_three_points_resume_from_their_last_state_to_the_same_data(
    fresh_emulator: Callable[..., GraphEmulator],
    discovered: dict[str, Any],
    names_file: str,
    tmp_path: Path,
) -> None:
    clean_emu = fresh_emulator(**TENANT)
    emus = {name: fresh_emulator(**TENANT) for name in KILL_POINTS}
    for name, (held, passing, _, _) in KILL_POINTS.items():
        emus[name].faults.latency(5.0, path=held, skip=passing)

    def scenario(name: str) -> tuple[SyncResult, SyncResult]:
        emu = emus[name]
        folder = tmp_path / name.replace(" ", "-").replace(",", "")
        folder.mkdir()
        killed = killed_run(emu, discovered, names_file, folder, KILL_POINTS[name][2])
        emu.faults.clear()
        resumed = sync(emu, discovered, names_file, state=killed.last_state)
        return killed, resumed

    with ThreadPoolExecutor(len(emus) + 1) as pool:
        clean_future = pool.submit(sync, clean_emu, discovered, names_file)
        outcomes = dict(zip(emus, pool.map(scenario, emus), strict=True))
        clean = clean_future.result()

    assert clean.exit_code == 0, tail(clean.stderr)
    reference = target(clean)
    states = {}
    for name, (killed, resumed) in outcomes.items():
        assert resumed.exit_code == 0, f"{name}: {tail(resumed.stderr)}"
        assert emitted_twice(killed) == [], name
        assert emitted_twice(resumed) == [], name
        # The kill interrupted a stream half-way...
        emitted = target(killed)
        interrupted = KILL_POINTS[name][3]
        assert 0 < len(emitted.get(interrupted, {})) < len(reference[interrupted]), name
        # ...the state the killed run left covers only data it had emitted...
        state = killed.last_state
        states[name] = progress(state)
        for stream, bookmark in bookmarks(state).items():
            if "delta_link" in bookmark:  # a finished round: every object was emitted
                assert emitted.get(stream) == reference[stream], (name, stream)
            elif bookmark.get("replication_key_value"):  # report days up to the bookmark
                done = bookmark["replication_key_value"]
                want = {k: v for k, v in reference[stream].items() if v["report_date"] <= done}
                got = {k: v for k, v in emitted.get(stream, {}).items() if k in want}
                assert got == want, (name, stream, done)
        # ...and the killed run plus the resumed one leave a target as a clean run does.
        assert difference(target(killed, resumed), reference) == {}, name
        assert_no_secrets(killed, emus[name])
        assert_no_secrets(resumed, emus[name])
    # Three different points: each left a different state behind.
    assert len({json.dumps(done) for done in states.values()}) == len(KILL_POINTS), states


# -- item 1: Retry-After, backoff and the caps --------------------------------------------------


def test_retry_after_as_an_http_date_is_waited_out_and_logged(
    fresh_emulator: Callable[..., GraphEmulator], discovered: dict[str, Any], names_file: str
) -> None:
    emu = fresh_emulator(users=5, groups=1)
    emu.faults.throttle(path=r"^/v1\.0/organization$", retry_after=2, retry_after_date=True)

    result = sync(emu, selecting(discovered, {"organization"}), names_file)

    assert result.exit_code == 0, tail(result.stderr)
    assert len(result.records("organization")) == 1
    throttled, retried = graph_calls(emu, "/v1.0/organization")
    assert throttled.status == 429
    assert retried.status == 200
    # An HTTP date has whole seconds: "2 s from now" is between 1 and 2 s later.
    assert retried.time - throttled.time >= 1.0
    (line,) = [w for w in warnings(result) if "answered 429" in w]
    assert f"client-request-id {throttled.headers['client-request-id']}" in line
    assert "request-id " in line
    assert "s (as Retry-After asks) until " in line
    assert "then attempt 2 of 8" in line
    assert_no_secrets(result, emu)


CAPS = {
    "503-three-attempts": (
        {"status": 503},
        {"retry_max_attempts": 3},
        3,
        "answered 503 serviceNotAvailable: The service is temporarily unavailable. Please "
        "retry later. (request-id ",
        "still failing after 3 attempts (retry_max_attempts); run again later",
    ),
    "500-three-times": (
        {"status": 500},
        {},
        3,
        "answered 500 UnknownError: An unexpected error occurred. (request-id ",
        "still failing after 3 attempts (a 500 is tried at most 3 times); run again later",
    ),
    "retry-after-beyond-wait-limit": (
        {"status": 429, "retry_after": 30},
        {"retry_max_wait_seconds": 5},
        1,
        "answered 429 TooManyRequests: Please retry after (request-id ",
        "the server asks to wait 30 s (Retry-After) and retry_max_wait_seconds leaves 5 s",
    ),
}


@pytest.mark.parametrize("case", CAPS)
def test_retries_stop_at_their_caps_with_one_line(
    fresh_emulator: Callable[..., GraphEmulator],
    discovered: dict[str, Any],
    names_file: str,
    case: str,
) -> None:
    fault, settings, attempts, what, why = CAPS[case]
    settings_: dict[str, Any] = dict(settings)
    emu = fresh_emulator(users=5, groups=1)
    emu.faults.error(path=r"^/v1\.0/organization$", times=None, **fault)

    result = sync(emu, selecting(discovered, {"organization"}), names_file, **settings_)

    assert result.exit_code == 5
    assert len(graph_calls(emu, "/v1.0/organization")) == attempts
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, errors
    assert f"organization: GET /v1.0/organization {what}" in errors[0]
    assert why in errors[0]
    assert "Traceback" not in result.stderr


# -- item 2: tokens ------------------------------------------------------------------------------


def test_token_revoked_mid_run_gets_one_new_token(
    fresh_emulator: Callable[..., GraphEmulator], discovered: dict[str, Any], names_file: str
) -> None:
    emu = fresh_emulator(users=150, groups=2)
    # Every token issued so far stops working as the users stream asks for its second page.
    emu.faults.expire_tokens(emu.tokens, path=r"^/v1\.0/users$", skip=1)
    streams = {"organization", "users"}

    result = sync(emu, selecting(discovered, streams), names_file)

    assert result.exit_code == 0, tail(result.stderr)
    assert {r["id"] for r in result.records("users")} == set(emu.tenant.users)
    assert emitted_twice(result) == []
    log = [r for r in emu.request_log if r.role != "download"]
    (refused,) = [i for i, r in enumerate(log) if r.status == 401]
    token_call, retried = log[refused + 1], log[refused + 2]
    assert (token_call.role, token_call.method) == ("login", "POST")
    assert (retried.path, retried.status) == (log[refused].path, 200)
    assert retried.headers["authorization"] != log[refused].headers["authorization"]
    assert any(
        "401 InvalidAuthenticationToken" in w and "retrying now" in w for w in warnings(result)
    )
    assert_no_secrets(result, emu)


def test_token_endpoint_faults_are_retried_past_msals_replay_cache(
    fresh_emulator: Callable[..., GraphEmulator], discovered: dict[str, Any], names_file: str
) -> None:
    """MSAL would answer a retry within 60 s of a 400 (and within 5 s of a 503) from its cache,
    without asking Entra ID: the retries here come sooner, and still reach Entra ID."""
    emu = fresh_emulator(users=5, groups=1)
    token = r"/oauth2/v2\.0/token$"
    emu.faults.error(400, role="login", path=token)  # AADSTS90033 temporarily_unavailable
    emu.faults.error(503, role="login", path=token)
    emu.faults.reset(role="login", path=token)

    result = sync(emu, selecting(discovered, {"organization"}), names_file)

    assert result.exit_code == 0, tail(result.stderr)
    assert len(result.records("organization")) == 1
    posts = [r for r in emu.request_log if r.role == "login" and r.method == "POST"]
    assert [p.status for p in posts] == [400, 503, 0, 200]  # 0: reset, no answer
    retried = [w for w in warnings(result) if "Entra ID at " in w]
    assert len(retried) == 3
    assert "answered 400 temporarily_unavailable: AADSTS90033" in retried[0]
    assert "trace id " in retried[0]
    assert "correlation id " in retried[0]
    assert_no_secrets(result, emu)


# -- item 4: streams the app may not read ---------------------------------------------------------


def test_skip_forbidden_streams_warns_once_per_stream_and_carries_on(
    fresh_emulator: Callable[..., GraphEmulator], discovered: dict[str, Any], names_file: str
) -> None:
    emu = fresh_emulator(users=5, groups=1)
    emu.app.roles = {"Organization.Read.All"}  # no User/Group/Directory/Reports permission
    skipped_streams = {
        "users": "User.Read.All",
        "groups": "Group.Read.All",
        "license_assignments": "User.Read.All",
        "office365_active_user_detail": "Reports.Read.All",
    }
    streams = {"organization", "subscribed_skus", *skipped_streams}

    result = sync(emu, selecting(discovered, streams), names_file, skip_forbidden_streams=True)

    assert result.exit_code == 0, tail(result.stderr)
    assert len(result.records("organization")) == 1
    assert result.records("subscribed_skus")
    skipped = [w for w in warnings(result) if "skipped, the app may not read it" in w]
    assert len(skipped) == len(skipped_streams), skipped
    for stream, permission in skipped_streams.items():
        (line,) = [w for w in skipped if f"| {stream}: skipped" in w]
        assert "the app needs the application permission " in line
        assert permission in line
        assert "Grant admin consent" in line
        assert not result.records(stream)
    assert "| ERROR" not in result.stderr
    assert_no_secrets(result, emu)
