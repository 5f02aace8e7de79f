"""Run the tap the way users do, and read what it wrote.

`run_tap` starts the real `tap-microsoft365` command in a subprocess (real CLI, real exit codes,
real stderr), pointed at an emulator; `SyncResult` parses its Singer messages. Tests assert on
those, never on the tap's internals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAP = [sys.executable, "-m", "tap_microsoft365"]


@dataclass
class SyncResult:
    """What one tap run produced."""

    exit_code: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for line in self.stdout.splitlines():
            if line.strip():
                self.messages.append(json.loads(line))

    def records(self, stream: str) -> list[dict[str, Any]]:
        """The records of one stream, in order."""
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def record_messages(self, stream: str) -> list[dict[str, Any]]:
        """The RECORD messages (with `version`, `time_extracted`) of one stream."""
        return [m for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    @property
    def states(self) -> list[dict[str, Any]]:
        """Every STATE value, in order."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def last_state(self) -> dict[str, Any] | None:
        """The last STATE value, the one an orchestrator stores."""
        return self.states[-1] if self.states else None

    def counted(self, stream: str) -> int:
        """The sum of the `record_count` METRIC points of one stream (plain log format)."""
        total = 0
        for line in self.stderr.splitlines():
            _, marker, point = line.partition("METRIC: ")
            if marker:
                metric = json.loads(point)
                if metric["metric"] == "record_count" and metric["tags"]["stream"] == stream:
                    total += metric["value"]
        return total

    @property
    def output(self) -> str:
        """Everything the run printed, for secret scans."""
        return self.stdout + self.stderr


def tap_env(ca_bundle: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a tap subprocess: no stray TAP_MICROSOFT365_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_MICROSOFT365_")}
    if ca_bundle:
        env["REQUESTS_CA_BUNDLE"] = ca_bundle
    env.update(extra)
    return env


def run_tap(
    config: dict[str, Any],
    *,
    ca_bundle: str | None = None,
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> SyncResult:
    """Run `tap-microsoft365 --config ...` in a subprocess and collect its output."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        command = [*TAP, "--config", str(folder / "config.json")]
        (folder / "config.json").write_text(json.dumps(config))
        if state is not None:
            (folder / "state.json").write_text(json.dumps(state))
            command += ["--state", str(folder / "state.json")]
        if catalog is not None:
            (folder / "catalog.json").write_text(json.dumps(catalog))
            command += ["--catalog", str(folder / "catalog.json")]
        completed = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**tap_env(ca_bundle), **(env or {})},
            check=False,
        )
    return SyncResult(completed.returncode, completed.stdout, completed.stderr)


def catalog_selecting(
    config: dict[str, Any], streams: set[str], ca_bundle: str | None = None
) -> dict[str, Any]:
    """The tap's discovered catalog with only `streams` selected."""
    discovered = subprocess.run(
        [*TAP, "--discover"],
        capture_output=True,
        text=True,
        env=tap_env(ca_bundle),
        check=True,
        timeout=120,
    )
    catalog = json.loads(discovered.stdout)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def upsert(
    table: dict[str, dict[str, Any]], records: list[dict[str, Any]], key: str = "id"
) -> dict[str, dict[str, Any]]:
    """Apply records to a table keyed by `key` as an upserting target does; rows with
    `_sdc_deleted_at` set are marked deleted (kept, flagged), as SDK targets do by default."""
    for record in records:
        table[record[key]] = record
    return table


def activate_version(table: dict[str, dict[str, Any]], version: int) -> None:
    """ACTIVATE_VERSION as target-postgres applies it: rows loaded under an older version (or
    none, `_sdc_table_version`) and not yet deleted are marked deleted."""
    for row in table.values():
        loaded_under = row["_sdc_table_version"]
        if (loaded_under is None or loaded_under < version) and row["_sdc_deleted_at"] is None:
            row["_sdc_deleted_at"] = "retired by ACTIVATE_VERSION"
