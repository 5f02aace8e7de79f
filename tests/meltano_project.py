"""Run Meltano on this repository's meltano.yml the way an operator does, isolated from the host.

`MeltanoProject` runs the real `meltano` command (from the dev dependency group, next to the
test interpreter) in a project directory. Each instance has its own system database (state, run
history) and an empty env file, so a developer's `.env`, stray `TAP_MICROSOFT365_*`/`TARGET_*`
variables or earlier state never leak into a test. Plugins install under the project's
`.meltano/` (git-ignored) and are reused between test sessions; `meltano install` only brings
them up to date. Each instance also has a `.meltano` of its own (MELTANO_SYS_DIR_ROOT) whose
plugin folders link to the project's: Meltano writes every run's plugin config and catalog into
`.meltano/run/<plugin>/` and clears it afterwards, so two runs sharing that folder (tests in
parallel processes) would delete each other's files.

`settings_env` turns a tap config (the one the Graph emulator writes) into the
`TAP_MICROSOFT365_*` variables Meltano reads, the way a deployment passes secrets.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Mapping

ROOT = Path(__file__).resolve().parent.parent
MELTANO = Path(sys.executable).with_name("meltano")
PLUGINS = ("tap-microsoft365", "target-postgres", "target-duckdb", "dbt-duckdb", "dbt-postgres")
# Variables that would configure Meltano or a plugin behind the test's back.
FOREIGN_PREFIXES = (
    "TAP_MICROSOFT365_",
    "TARGET_POSTGRES_",
    "TARGET_DUCKDB_",
    "DBT_",
    "MELTANO_",
)


def env_value(value: Any) -> str:
    """A setting value as Meltano parses it from a variable (3.0 -> "3": kind integer)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def settings_env(config: Mapping[str, Any], prefix: str = "TAP_MICROSOFT365_") -> dict[str, str]:
    """`{"tenant_id": ...}` -> `{"TAP_MICROSOFT365_TENANT_ID": ...}`."""
    return {
        f"{prefix}{key.upper()}": env_value(value)
        for key, value in config.items()
        if value is not None
    }


@dataclass
class MeltanoProject:
    """The `meltano` command bound to one project directory and one private system database."""

    root: Path
    work_dir: Path
    environment: str | None = "sandbox"
    env: dict[str, str] = field(default_factory=dict)
    # False: the project's own .env (for tests of `meltano config set` on a scratch copy).
    isolate_dotenv: bool = True

    def __post_init__(self) -> None:
        if not MELTANO.exists():
            msg = f"{MELTANO} is missing: install the dev group (bash scripts/bootstrap.sh)"
            raise RuntimeError(msg)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.env_file = self.work_dir / "empty.env"
        self.env_file.touch()
        # A private .meltano: its own run/ folder, the project's installed plugins.
        self.sys_dir = self.work_dir / "sys"
        self.sys_dir.mkdir(exist_ok=True)
        for plugin_type in ("extractors", "loaders", "utilities"):
            shared = self.root / ".meltano" / plugin_type
            shared.mkdir(parents=True, exist_ok=True)
            link = self.sys_dir / plugin_type
            if not link.exists():
                link.symlink_to(shared, target_is_directory=True)

    def base_env(self) -> dict[str, str]:
        """The host environment without anything that configures Meltano or the plugins."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
        env.pop("REQUESTS_CA_BUNDLE", None)
        env.update(
            MELTANO_DATABASE_URI=f"sqlite:///{self.work_dir / 'meltano.db'}",
            MELTANO_SYS_DIR_ROOT=str(self.sys_dir),
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            NO_COLOR="1",
        )
        return env

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `meltano [--environment=E] [--env-file=<empty>] ARGS`; raise with its output."""
        command = [str(MELTANO), "--log-format=uncolored"]
        if self.isolate_dotenv:
            command.append(f"--env-file={self.env_file}")
        if self.environment:
            command.append(f"--environment={self.environment}")
        completed = subprocess.run(
            [*command, *args],
            cwd=self.root,
            env={**self.base_env(), **self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            msg = (
                f"meltano {' '.join(args)} exited {completed.returncode}\n"
                f"--- stdout\n{completed.stdout[-6000:]}\n--- stderr\n{completed.stderr[-12000:]}"
            )
            raise AssertionError(msg)
        return completed

    def install(self, *plugins: str) -> None:
        """`meltano install` (a no-op download when uv's cache and .meltano/ are warm)."""
        self.run("install", *plugins, timeout=900)


@pytest.fixture(scope="session")
def installed_meltano(tmp_path_factory: pytest.TempPathFactory) -> MeltanoProject:
    """This repository's Meltano project with the tap and both loaders installed.

    Test processes running side by side (pytest -n) install one after the other: they share the
    project's .meltano/ folder.
    """
    project = MeltanoProject(ROOT, tmp_path_factory.mktemp("meltano"))
    lock_file = ROOT / ".meltano" / "tests-install.lock"
    lock_file.parent.mkdir(exist_ok=True)
    with lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        project.install(*PLUGINS)
    return project
