"""The sandbox demo behind `make demo`, and the same pipeline on a real tenant (`make tenant`).

Sandbox (default), no credentials needed:

1. start the Graph emulator as its own process (`python -m tests.graph_emulator`) with a fake
   tenant: 300 users, 20 groups, real SKUs, group-based licensing, disabled and inactive users,
   28 days of usage reports; it writes a tap config and the CA certificate it serves with;
2. `meltano --environment=sandbox run --full-refresh tap-microsoft365 target-duckdb
   dbt-duckdb:build`, with the tap's settings passed as TAP_MICROSOFT365_* variables and
   REQUESTS_CA_BUNDLE trusting the emulator's CA (your .env is not read, so real credentials
   never meet the sandbox); dbt builds the license insight (transform/) and runs its tests;
3. stop the emulator, print what landed in output/sandbox.duckdb and the wasted seats from the
   marts (scripts/glimpse.py), and write output/license-report.html (scripts/report.py).

`--serve`: start the emulator alone and print the variables that point Meltano at it, to run
`meltano --environment=sandbox run ...` by hand in another shell; Ctrl-C stops it.

`--tenant`: the same run on your tenant (`--environment=prod`, output/microsoft365.duckdb), with
credentials from .env, the environment, or .secrets/config.json (its keys become
TAP_MICROSOFT365_* variables). State is kept, so the next run is incremental. A first run that
fails leaves no database file behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MELTANO = VENV_BIN / "meltano"
OUTPUT = ROOT / "output"
SECRETS = ROOT / ".secrets" / "config.json"
# The emulator's clock runs 200x faster, so Graph's 10-minute report pacing window lasts 3 s
# (meltano.yml's sandbox environment tells the tap: report_window_seconds 3).
TIME_SCALE = "0.005"


def env_value(value: Any) -> str:
    """A setting value as Meltano parses it from a variable (3.0 -> "3": kind integer)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def settings_env(config: dict[str, Any]) -> dict[str, str]:
    """Tap settings as the variables Meltano reads (TAP_MICROSOFT365_<SETTING>)."""
    return {
        f"TAP_MICROSOFT365_{key.upper()}": env_value(value)
        for key, value in config.items()
        if value is not None
    }


def clean_env() -> dict[str, str]:
    """This process's environment without settings that would steer the tap elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TAP_MICROSOFT365_")}


def start_emulator(
    config_out: Path, users: int, groups: int, seed: int
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start the emulator process and wait for the config it writes."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "tests.graph_emulator",
            f"--users={users}",
            f"--groups={groups}",
            f"--seed={seed}",
            f"--time-scale={TIME_SCALE}",
            f"--config-out={config_out}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not config_out.exists():
        if process.poll() is not None:
            msg = f"the Graph emulator exited with code {process.returncode} before it was ready"
            raise SystemExit(msg)
        if time.monotonic() > deadline:
            stop(process)
            msg = "the Graph emulator did not write its config within 120 s"
            raise SystemExit(msg)
        time.sleep(0.2)
    ready = process.stdout.readline().strip() if process.stdout else ""
    print(f"demo: {ready or 'graph emulator ready'}", flush=True)
    return process, json.loads(config_out.read_text())


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_meltano(args: list[str], env: dict[str, str], log: Path) -> None:
    """Run meltano with its log in a file; on failure show the end of it and stop."""
    print(f"demo: meltano {' '.join(args)}  (log: {log})", flush=True)
    started = time.monotonic()
    with log.open("w") as stream:
        completed = subprocess.run(  # noqa: S603 - the venv's meltano, our arguments
            [str(MELTANO), "--log-format=uncolored", *args],
            cwd=ROOT,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if completed.returncode != 0:
        lines = log.read_text().splitlines()
        print("\n".join(lines[-40:]), file=sys.stderr)
        msg = f"demo: meltano failed (exit {completed.returncode}); full log in {log}"
        raise SystemExit(msg)
    print(f"demo: meltano run finished in {time.monotonic() - started:.0f} s\n", flush=True)


def glimpse(database: Path) -> None:
    """Print what landed and the marts (scripts/glimpse.py; the venv's duckdb reads the file),
    then write the HTML report next to the database (scripts/report.py)."""
    subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, str(ROOT / "scripts" / "glimpse.py"), str(database)],
        check=True,
    )
    subprocess.run(  # noqa: S603 - our interpreter, our script
        [
            sys.executable,
            str(ROOT / "scripts" / "report.py"),
            str(database),
            f"--out={database.parent / 'license-report.html'}",
        ],
        check=True,
    )


def sandbox(users: int, groups: int, seed: int, database: Path) -> None:
    """Emulator -> Meltano -> DuckDB -> glimpse; the emulator always stops."""
    database.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tap-m365-demo-") as tmp:
        process, config = start_emulator(Path(tmp) / "config.json", users, groups, seed)
        try:
            ca_bundle = config.pop("ca_bundle")
            config.pop("emulator", None)
            empty_env_file = Path(tmp) / "empty.env"
            empty_env_file.touch()
            env = {
                **clean_env(),
                **settings_env(config),
                "REQUESTS_CA_BUNDLE": ca_bundle,
                "TARGET_DUCKDB_PATH": str(database),
                "DBT_DUCKDB_PATH": str(database),
            }
            run_meltano(
                [
                    "--environment=sandbox",
                    f"--env-file={empty_env_file}",
                    "run",
                    "--full-refresh",
                    "tap-microsoft365",
                    "target-duckdb",
                    "dbt-duckdb:build",
                ],
                env,
                database.with_suffix(".log"),
            )
        finally:
            stop(process)
            print("demo: graph emulator stopped", flush=True)
    glimpse(database)
    print(
        f"\nThe sandbox data is in {database}. With your own tenant: put its "
        "credentials in .env (see .env.example) and run `make tenant`."
    )


def serve(users: int, groups: int, seed: int) -> None:
    """Start the emulator, print the environment for Meltano, wait for Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="tap-m365-sandbox-") as tmp:
        process, config = start_emulator(Path(tmp) / "config.json", users, groups, seed)
        try:
            ca_bundle = config.pop("ca_bundle")
            config.pop("emulator", None)
            variables = {**settings_env(config), "REQUESTS_CA_BUNDLE": ca_bundle}
            print("\n# Paste into another shell (in this folder), then run Meltano, e.g.:")
            print("#   .venv/bin/meltano --environment=sandbox run tap-microsoft365 \\")
            print("#       target-duckdb dbt-duckdb:run")
            for name, value in variables.items():
                print(f"export {name}={shlex.quote(value)}")
            print("\n# The emulator runs until Ctrl-C.", flush=True)
            process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop(process)
            print("demo: graph emulator stopped", flush=True)


def tenant() -> None:
    """The same pipeline on a real tenant, incremental from the stored state."""
    env = clean_env()
    if SECRETS.exists():
        env.update(settings_env(json.loads(SECRETS.read_text())))
        print(f"demo: settings from {SECRETS.relative_to(ROOT)}", flush=True)
    database = OUTPUT / "microsoft365.duckdb"
    existed = database.exists()
    try:
        run_meltano(
            ["--environment=prod", "run", "tap-microsoft365", "target-duckdb", "dbt-duckdb:build"],
            env,
            OUTPUT / "tenant-run.log",
        )
    except SystemExit:
        if not existed:
            # A first run that failed (credentials, permissions) may leave an empty database
            # file: remove it, so the next run does not look as if data had landed.
            for leftover in (database, database.with_name(database.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    glimpse(database)


def main() -> int:
    """Parse the arguments and run the sandbox or the tenant pipeline."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tenant", action="store_true", help="your tenant instead of the sandbox")
    parser.add_argument(
        "--serve", action="store_true", help="start the emulator and print Meltano's variables"
    )
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--database",
        type=Path,
        default=OUTPUT / "sandbox.duckdb",
        help="the sandbox's DuckDB file (its meltano log goes next to it)",
    )
    args = parser.parse_args()
    OUTPUT.mkdir(exist_ok=True)
    if args.tenant:
        tenant()
    elif args.serve:
        serve(args.users, args.groups, args.seed)
    else:
        args.database.parent.mkdir(parents=True, exist_ok=True)
        sandbox(args.users, args.groups, args.seed, args.database.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
