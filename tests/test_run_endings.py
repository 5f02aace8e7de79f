"""Every way a run can end has one ERROR line naming the file, setting or signal, and an exit code
from README's failure table, with no traceback (issue 12, items 2, 4 and 7).

- a config or state file the tap cannot use (exit 2 / 7), found before any record is emitted;
- REQUESTS_CA_BUNDLE naming a missing file (exit 2);
- SIGTERM and SIGINT (exit 143 / 130): the last STATE covers only records that were emitted;
- the target stops reading (broken pipe, exit 141);
- TMPDIR full while report files are spooled (exit 8).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import RECENT_START
from tests.singer_run import TAP, SyncResult, catalog_selecting, run_tap, tap_env
from tests.test_secrets import assert_no_secrets

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.graph_emulator import GraphEmulator

REPORT = "office365_active_user_detail"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


def one_error(result: SyncResult, exit_code: int) -> str:
    """The run's one ERROR line, after checking its exit code and that it printed no
    traceback."""
    assert result.exit_code == exit_code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "An unhandled error occurred" not in result.stderr
    (line,) = error_lines(result.stderr)
    return line


def run_command(
    args: list[str], emu: GraphEmulator, env: dict[str, str] | None = None
) -> SyncResult:
    completed = subprocess.run(
        [*TAP, *args],
        capture_output=True,
        text=True,
        env={**tap_env(emu.ca_bundle), **(env or {})},
        timeout=300,
        check=False,
    )
    return SyncResult(completed.returncode, completed.stdout, completed.stderr)


# -- state files (exit 7), refused before any record -------------------------------------------

STATES: dict[str, tuple[str, str]] = {
    "truncated": ('{"bookmarks": {"users": {"delta_link": "https://gra', "is not valid JSON"),
    "array": ("[]", "holds an array, not a Singer state object"),
    "bookmarks-a-list": ('{"bookmarks": []}', "bookmarks is an array, not an object"),
    "bookmark-a-string": ('{"bookmarks": {"users": "x"}}', "the bookmark of users is a string"),
    "table-version-text": (
        '{"bookmarks": {"users": {"table_version": "1795672800"}}}',
        "table_version of users is '1795672800', not a whole number",
    ),
    # A bookmark kept on another replication key (another version of the tap): before, the
    # run failed with InvalidStreamSortException after emitting records.
    "other-replication-key": (
        json.dumps(
            {
                "bookmarks": {
                    REPORT: {
                        "replication_key": "refreshDate",
                        "replication_key_value": "2026-11-30",
                    }
                }
            }
        ),
        f"the bookmark of {REPORT} is kept on replication_key 'refreshDate'",
    ),
}


@pytest.mark.parametrize("name", STATES)
def test_a_state_file_the_tap_cannot_resume_from(
    emulator: GraphEmulator, tmp_path: Path, name: str
) -> None:
    text, says = STATES[name]
    (tmp_path / "state.json").write_text(text)
    (tmp_path / "config.json").write_text(json.dumps(emulator.config(**RECENT_START)))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog_selecting({}, {"users", REPORT})))

    result = run_command(
        [
            "--config",
            str(tmp_path / "config.json"),
            "--catalog",
            str(tmp_path / "catalog.json"),
            "--state",
            str(tmp_path / "state.json"),
        ],
        emulator,
    )

    line = one_error(result, 7)
    assert says in line
    assert "meltano state get" in line or "remove" in line  # what to do
    assert result.records("users") == []
    assert result.records(REPORT) == []


# -- config files and the CA bundle (exit 2), before any network call ---------------------------


def _missing(tmp: Path) -> str:
    return str(tmp / "missing.json")


def _folder(tmp: Path) -> str:
    return str(tmp)


def _array(tmp: Path) -> str:
    (tmp / "config.json").write_text("[]")
    return str(tmp / "config.json")


def _not_json(tmp: Path) -> str:
    (tmp / "config.json").write_text('{"tenant_id": ')
    return str(tmp / "config.json")


def _binary(tmp: Path) -> str:
    (tmp / "config.json").write_bytes(b"\xff\xfe{\x00")
    return str(tmp / "config.json")


CONFIG_FILES: dict[str, tuple[Callable[[Path], str], str]] = {
    "missing": (_missing, "does not exist"),
    "a-directory": (_folder, "is a directory, not a file"),
    "an-array": (_array, "holds an array, not an object of settings"),
    "not-json": (_not_json, "is not valid JSON"),
    "not-text": (_binary, "is not UTF-8 text"),
}


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_a_config_file_the_tap_cannot_read(
    emulator: GraphEmulator, tmp_path: Path, name: str
) -> None:
    make, says = CONFIG_FILES[name]
    path = make(tmp_path)
    emulator.clear_log()

    result = run_command(["--config", path], emulator)

    line = one_error(result, 2)
    assert f"config file '{path}' {says}" in line
    assert "--config ENV" in line
    assert emulator.request_log == []


def test_a_ca_bundle_that_does_not_exist(emulator: GraphEmulator, tmp_path: Path) -> None:
    emulator.clear_log()

    result = run_tap(
        emulator.config(),
        ca_bundle=emulator.ca_bundle,
        env={"REQUESTS_CA_BUNDLE": str(tmp_path / "proxy-ca.pem")},
    )

    line = one_error(result, 2)
    assert f"REQUESTS_CA_BUNDLE names '{tmp_path / 'proxy-ca.pem'}', which does not exist" in line
    assert emulator.request_log == []


# -- signals (exit 130 / 143): no success, no STATE beyond what was emitted ---------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_run_fails_and_its_state_covers_only_emitted_records(
    fresh_emulator: Callable[..., GraphEmulator], tmp_path: Path, signum: int, code: int
) -> None:
    emu = fresh_emulator(users=150, groups=12)
    # Pages of 25 and a slow third page of users: the signal lands in the middle of the round.
    emu.faults.latency(3.0, path=r"^/v1\.0/users$", skip=2)
    config = emu.config(**RECENT_START, page_size=25)
    (tmp_path / "config.json").write_text(json.dumps(config))
    catalog = catalog_selecting({}, {"organization", "groups", "users"})
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        process = subprocess.Popen(
            [
                *TAP,
                "--config",
                str(tmp_path / "config.json"),
                "--catalog",
                str(tmp_path / "catalog.json"),
            ],
            stdout=out,
            stderr=err,
            env=tap_env(emu.ca_bundle),
        )
        try:
            deadline = time.monotonic() + 120
            while sum(r.path == "/v1.0/users" for r in list(emu.request_log)) < 3:
                assert process.poll() is None, "the run ended before the signal"
                assert time.monotonic() < deadline, "the users round never reached page 3"
                time.sleep(0.02)
            os.kill(process.pid, signum)
            process.wait(timeout=60)
        finally:
            process.kill()
    result = SyncResult(
        process.returncode, (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    )

    line = one_error(result, code)
    assert f"interrupted by {signal.Signals(signum).name}" in line
    assert "Gracefully shutting down" not in result.stderr  # the SDK's exit-0 handler is gone
    users = {record["id"] for record in result.records("users")}
    assert 0 < len(users) < len(emu.tenant.users)  # the round was cut half-way
    bookmarks = (result.last_state or {}).get("bookmarks", {})
    assert "delta_link" not in bookmarks.get("users", {})  # no round stored as complete
    if "delta_link" in bookmarks.get("groups", {}):  # a stored round: every group was emitted
        assert {r["id"] for r in result.records("groups")} == set(emu.tenant.groups)
    assert_no_secrets(result, emu, config)


# -- the target stops reading (exit 141) --------------------------------------------------------


def test_a_target_that_stops_reading(
    fresh_emulator: Callable[..., GraphEmulator], tmp_path: Path
) -> None:
    emu = fresh_emulator(users=400, groups=5)
    (tmp_path / "config.json").write_text(json.dumps(emu.config(**RECENT_START, page_size=50)))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog_selecting({}, {"users"})))
    process = subprocess.Popen(
        [
            *TAP,
            "--config",
            str(tmp_path / "config.json"),
            "--catalog",
            str(tmp_path / "catalog.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=tap_env(emu.ca_bundle),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline()  # the target reads one line, then dies
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    process.wait(timeout=120)
    assert json.loads(first)["type"] == "SCHEMA"
    result = SyncResult(process.returncode, "", stderr)

    line = one_error(result, 141)
    assert "the target stopped reading the tap's output (broken pipe)" in line


# -- TMPDIR full (exit 8) ------------------------------------------------------------------------


def test_a_full_tmpdir_is_named_with_the_space_needed(
    fresh_emulator: Callable[..., GraphEmulator], tmp_path: Path
) -> None:
    emu = fresh_emulator(users=1500, groups=2)
    config = emu.config(**RECENT_START)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog_selecting({}, {REPORT})))
    tiny = tmp_path / "tmp"
    tiny.mkdir()
    # A 4 KiB TMPDIR: a tmpfs mounted in a mount namespace of the tap's own.
    command = [
        "unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
        'mount -t tmpfs -o size=4k tmpfs "$0" && exec "$@"', str(tiny),
        *TAP, "--config", str(tmp_path / "config.json"),
        "--catalog", str(tmp_path / "catalog.json"),
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=tap_env(emu.ca_bundle, TMPDIR=str(tiny)),
        timeout=300,
        check=False,
    )
    result = SyncResult(completed.returncode, completed.stdout, completed.stderr)

    line = one_error(result, 8)
    assert f"no space left in TMPDIR ({tiny}" in line
    assert "report_spool_limit_mb (2048 MB)" in line
    assert "point TMPDIR at a larger disk" in line
