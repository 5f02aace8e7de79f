"""README.md says what the code does.

- the settings table is the tap's own `--about` settings, with the allowed values;
- the streams table names every stream the tap discovers, with the permissions its class
  declares, and the app-registration walk-through grants enough to read every stream;
- every TAP_MICROSOFT365_* variable it mentions is a real setting;
- the quick start's two commands are the Makefile's, and CI runs the second;
- the stream-maps example, run with the tap against the emulator, hashes user principal names the
  same way in users and in the usage report and drops the names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tap_microsoft365 import errors
from tap_microsoft365.tap import TapMicrosoft365
from tests.graph_emulator import GraphEmulator, Tenant
from tests.script_modules import load_script
from tests.singer_run import catalog_selecting, run_tap

ROOT = Path(__file__).resolve().parent.parent
plugin_definition = load_script("plugin_definition")
README = (ROOT / "README.md").read_text()
WALKTHROUGH_PERMISSIONS = {
    "Directory.Read.All",
    "Organization.Read.All",
    "User.Read.All",
    "Reports.Read.All",
}


def between(start: str, end: str) -> str:
    """The README text between a start marker line (containing `start`) and `end`."""
    match = re.search(
        rf"<!-- {re.escape(start)}[^\n]*-->\n(.*?)<!-- {re.escape(end)} -->", README, re.S
    )
    assert match, f"README.md lacks the block '{start}'"
    return match.group(1)


def tap_streams() -> dict[str, Any]:
    """The tap's streams, discovered without settings or network."""
    tap = TapMicrosoft365(config={}, validate_config=False, parse_env_config=False)
    return dict(tap.streams)


def test_settings_table_is_the_taps_about_with_the_allowed_values() -> None:
    about = subprocess.run(
        [str(Path(sys.executable).with_name("tap-microsoft365")), "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    table = between("settings table", "end of settings table")
    assert table == plugin_definition.settings_table_from_about(json.loads(about)), (
        "README.md's settings table is stale: run python scripts/plugin_definition.py --write"
    )
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "| 1 to 999 |" in rows["page_size"]
    assert "| one of `global`, `usgov`, `usgov_dod`, `china` |" in rows["cloud"]
    assert "| a GUID or a domain |" in rows["tenant_id"]
    assert "| more than 0 |" in rows["report_window_seconds"]


def test_streams_table_names_every_stream_with_the_permissions_it_needs() -> None:
    rows: dict[str, list[str]] = {}
    for line in between("streams table", "end of streams table").splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    streams = tap_streams()
    for name, stream in sorted(streams.items()):
        needed = " or ".join(stream.required_permissions)
        keys = ", ".join(stream.primary_keys)
        assert name in rows, f"README.md's streams table lacks: | `{name}` | ... | {keys} | ... |"
        assert rows[name][2] == keys, f"{name}: the key is {keys}"
        assert rows[name][-1] == needed, f"{name}: the permission column must read '{needed}'"
        if not stream.selected_by_default:  # an optional stream: its permission is optional
            assert all(f"Optional: `{p}`" in README for p in stream.required_permissions), name
            continue
        assert set(stream.required_permissions) & WALKTHROUGH_PERMISSIONS, (
            f"{name}: none of the walk-through's permissions can read it"
        )
    assert set(rows) == set(streams), f"rows for streams the tap lacks: {set(rows) - set(streams)}"
    for permission in WALKTHROUGH_PERMISSIONS:
        assert f"`{permission}`" in README


def test_environment_variables_named_in_the_readme_are_settings() -> None:
    schema = {"properties": dict(TapMicrosoft365.config_jsonschema["properties"])}
    TapMicrosoft365.append_builtin_config(schema)  # stream maps, flattening: the SDK's own
    about = schema["properties"]
    named = set(re.findall(r"TAP_MICROSOFT365_([A-Z_]+[A-Z])", README))
    assert named, "the README names no TAP_MICROSOFT365_ variable"
    for name in named:
        assert name.lower() in about, f"TAP_MICROSOFT365_{name} is not a setting of the tap"


def test_quick_start_is_make_demo_then_make_test_and_ci_runs_make_test() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first_block = quick_start.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in first_block.splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "tenant"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no {target} target"
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


@pytest.fixture(scope="module")
def stream_maps_example() -> dict[str, Any]:
    block = between("stream maps example", "end of stream maps example")
    return dict(yaml.safe_load(block.split("```yaml\n", 1)[1].split("```", 1)[0])["config"])


def test_stream_maps_example_hashes_user_principal_names(
    stream_maps_example: dict[str, Any],
) -> None:
    salt = "pepper-for-the-test"
    tenant = Tenant.synthetic(users=30, groups=3, seed=5, today=dt.date(2026, 11, 26))
    with GraphEmulator(tenant, time_scale=0.005) as emulator:
        config = emulator.config(
            start_date="2026-11-23",
            stream_map_config={"hash_salt": salt},
            **stream_maps_example,
        )
        catalog = catalog_selecting(
            config, {"users", "office365_active_user_detail"}, emulator.ca_bundle
        )
        result = run_tap(config, ca_bundle=emulator.ca_bundle, catalog=catalog)
    assert result.exit_code == 0, result.stderr[-3000:]

    def digest(upn: str) -> str:
        return hashlib.md5((salt + upn.lower()).encode()).hexdigest()  # noqa: S324 - the example's

    users = result.records("users")
    report = result.records("office365_active_user_detail")
    assert {u["user_principal_name"] for u in users} == {
        digest(u["userPrincipalName"]) for u in tenant.users.values()
    }
    assert all(u["mail"] is None or re.fullmatch(r"[0-9a-f]{32}", u["mail"]) for u in users)
    for dropped in ("display_name", "given_name", "surname", "proxy_addresses", "other_mails"):
        assert all(dropped not in u for u in users), dropped
    assert report
    assert all("display_name" not in row for row in report)
    # Still joinable: report rows are current users, or deleted ones the report still lists.
    hashed_users = {u["user_principal_name"] for u in users}
    deleted = {digest(u["userPrincipalName"]) for u in tenant.deleted_users.values()}
    reported = {row["user_principal_name"] for row in report}
    assert reported <= hashed_users | deleted
    assert len(reported & hashed_users) >= 20
    output = result.output
    for user in tenant.users.values():
        assert user["userPrincipalName"] not in output
    schema = next(m for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == "users")
    assert "display_name" not in schema["schema"]["properties"]
    assert json.dumps(schema["key_properties"]) == '["tenant_id", "id"]'


def test_every_exit_code_of_the_tap_is_in_the_failure_table() -> None:
    section = README.split("## When a run fails", 1)[1].split("\n## ", 1)[0]
    exits = {
        cell
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| Failure")
        for cell in re.findall(r"\d+", line.rstrip(" |").rsplit("|", 1)[-1])
    }
    codes = {
        str(getattr(cls, "exit_code", 1)) for cls in _error_classes(errors.Microsoft365Error)
    } - {"1"}
    codes |= {str(128 + signal.SIGINT), str(128 + signal.SIGTERM)}  # InterruptedRunError
    assert codes <= exits, f"exit codes missing from README's failure table: {codes - exits}"


def _error_classes(base: type[Any]) -> list[type[Any]]:
    return [base, *(c for sub in base.__subclasses__() for c in _error_classes(sub))]
