"""Dagster definitions: tap-microsoft365 over many tenants, tenant groups on parallel workers.

Each tenant group is one `meltano run tap-microsoft365 target-postgres` with its own state id
(`--state-id-suffix=<group>`) and its own tenants (TAP_MICROSOFT365_TENANTS, JSON). Two ways in:

- job `microsoft365_all_groups`: one run that reads every group, at most ORCHESTRATE_WORKERS
  groups at a time (Dagster's multiprocess executor); a failed group fails its own step only.
- asset `microsoft365_tenant_group`, one partition per group: schedule, backfill or retry
  groups one by one from Dagster's UI or CLI.

Settings (environment): ORCHESTRATE_TENANTS_FILE (the tenants file, see tenant_groups.py),
ORCHESTRATE_GROUPS (hash buckets for tenants without a `group`, default 8), ORCHESTRATE_WORKERS
(default 4), ORCHESTRATE_MELTANO (the meltano command, default `meltano`),
ORCHESTRATE_ENVIRONMENT (Meltano environment, default the project's), ORCHESTRATE_LOADER
(default target-postgres), ORCHESTRATE_SCHEMA (the base of each group's schema
`<schema>_<group>`, default the loader's default_target_schema variable, else
tap_microsoft365), MELTANO_PROJECT_ROOT (default the repository). Everything else a
worker needs (client secret, loader settings, MELTANO_DATABASE_URI) comes from the environment
as for any `meltano run`. Workers run side by side, so Meltano's system database must take
concurrent writers (PostgreSQL, not the default SQLite file).

    dagster job execute -m orchestrate.definitions -j microsoft365_all_groups
    dagster asset materialize -m orchestrate.definitions --select microsoft365_tenant_group \
        --partition group-03
"""

import fcntl
import os
import shlex
import subprocess
from collections import deque
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    Definitions,
    DynamicOut,
    DynamicOutput,
    Failure,
    OpExecutionContext,
    StaticPartitionsDefinition,
    asset,
    job,
    multiprocess_executor,
    op,
)

from orchestrate.tenant_groups import (
    group_schema,
    load_tenants,
    meltano_command,
    schema_variable,
    tenant_groups,
    worker_env,
)

PROJECT_ROOT = Path(
    os.environ.get("MELTANO_PROJECT_ROOT") or Path(__file__).resolve().parent.parent
)
TENANTS_FILE = os.environ.get("ORCHESTRATE_TENANTS_FILE", str(PROJECT_ROOT / "tenants.json"))
GROUPS = int(os.environ.get("ORCHESTRATE_GROUPS", "8"))
WORKERS = int(os.environ.get("ORCHESTRATE_WORKERS", "4"))
MELTANO = shlex.split(os.environ.get("ORCHESTRATE_MELTANO", "meltano"))
ENVIRONMENT = os.environ.get("ORCHESTRATE_ENVIRONMENT") or None
LOADER = os.environ.get("ORCHESTRATE_LOADER", "target-postgres")
SCHEMA = (
    os.environ.get("ORCHESTRATE_SCHEMA")
    or os.environ.get(schema_variable(LOADER))
    or "tap_microsoft365"
)
TAIL_LINES = 40


def groups() -> dict[str, list[dict[str, Any]]]:
    """The tenant groups of the tenants file (read again at each call: tenants come and go)."""
    return tenant_groups(load_tenants(TENANTS_FILE), GROUPS)


def _shared_sys_dir() -> Path:
    return Path(os.environ.get("MELTANO_SYS_DIR_ROOT") or PROJECT_ROOT / ".meltano")


def _run_dir(key: str) -> Path:
    """A Meltano system folder of this group's own, sharing the installed plugins.

    Meltano writes each run's plugin config and catalog under `<sys dir>/run/<plugin>/` and
    clears it afterwards: two runs side by side in one folder would delete each other's files.
    """
    shared = _shared_sys_dir()
    own = shared / "orchestrate" / key
    own.mkdir(parents=True, exist_ok=True)
    for plugin_type in ("extractors", "loaders"):
        (shared / plugin_type).mkdir(parents=True, exist_ok=True)
        link = own / plugin_type
        if not link.exists():
            link.symlink_to((shared / plugin_type).resolve(), target_is_directory=True)
    return own


def _system_database() -> str:
    """One system database for every worker (it holds the state), never one per run folder."""
    return os.environ.get("MELTANO_DATABASE_URI") or f"sqlite:///{_shared_sys_dir() / 'meltano.db'}"


def prepare_system_database(log: Any, env: dict[str, str]) -> None:
    """Bring Meltano's system database to its schema before a worker's run.

    Every meltano command migrates the system database first, and two commands migrating a new
    database at the same moment fail ("Cannot upgrade the system database"). Workers on this
    machine take turns here under a file lock; once the schema is current, the migration each
    `meltano run` does is a read. Workers on several machines: run `meltano upgrade database`
    once when deploying.
    """
    lock_path = _shared_sys_dir() / "orchestrate" / "system-database.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(  # noqa: S603 - the operator's own meltano command
            [*MELTANO, "upgrade", "database"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise Failure(
            description=f"meltano upgrade database exited {done.returncode}",
            metadata={
                "last lines": "\n".join((done.stdout + done.stderr).splitlines()[-TAIL_LINES:])
            },
        )
    log.info("Meltano system database ready")


def run_group(log: Any, key: str, tenants: list[dict[str, Any]]) -> dict[str, Any]:
    """One worker: `meltano run` for one tenant group; Failure with the run's last lines when it
    fails (the tap names each failed tenant in an ERROR line and lists them on its last line)."""
    names = ", ".join(str(t.get("name") or t["tenant_id"]) for t in tenants)
    log.info(
        "tenant group %s: %d tenants (%s) into schema %s",
        key,
        len(tenants),
        names,
        group_schema(SCHEMA, key),
    )
    env = {
        **os.environ,
        **worker_env(tenants),
        "MELTANO_SYS_DIR_ROOT": str(_run_dir(key)),
        "MELTANO_PROJECT_ROOT": str(PROJECT_ROOT),
        "MELTANO_DATABASE_URI": _system_database(),
        # A schema per group: the ACTIVATE_VERSION ending a group's full reads retires every
        # row of the table it is applied to, other groups' tenants included.
        schema_variable(LOADER): group_schema(SCHEMA, key),
    }
    prepare_system_database(log, env)
    command = meltano_command(MELTANO, key, environment=ENVIRONMENT, loader=LOADER)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    errors: list[str] = []
    with subprocess.Popen(  # noqa: S603 - the operator's own meltano command
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout or ():
            text = line.rstrip()
            tail.append(text)
            if " ERROR " in f" {text} " or "[error" in text.lower():
                errors.append(text)
                log.error("tenant group %s: %s", key, text)
    if process.returncode != 0:
        raise Failure(
            description=f"tenant group {key}: meltano run exited {process.returncode}",
            metadata={"errors": "\n".join(errors[-10:]), "last lines": "\n".join(tail)},
        )
    log.info("tenant group %s: done", key)
    return {"group": key, "tenants": [t["tenant_id"] for t in tenants]}


@op(out=DynamicOut())
def tenant_group_list(context: OpExecutionContext) -> Any:
    """One output per tenant group of the tenants file."""
    for key, tenants in groups().items():
        context.log.info("tenant group %s: %d tenants", key, len(tenants))
        # Mapping keys allow letters, digits and '_' only: the group key travels in the value.
        yield DynamicOutput((key, tenants), mapping_key=key.replace("-", "_"))


@op
def load_tenant_group(
    context: OpExecutionContext, group: tuple[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """`meltano run` for one group."""
    key, tenants = group
    return run_group(context.log, key, tenants)


@job(executor_def=multiprocess_executor.configured({"max_concurrent": WORKERS}))
def microsoft365_all_groups() -> None:
    """Every tenant group, ORCHESTRATE_WORKERS at a time."""
    tenant_group_list().map(load_tenant_group)


def _partition_keys() -> list[str]:
    try:
        return list(groups())
    except ValueError:  # no tenants file yet: the job above reports it when it runs
        return []


@asset(partitions_def=StaticPartitionsDefinition(_partition_keys()))
def microsoft365_tenant_group(context: AssetExecutionContext) -> dict[str, Any]:
    """The tables of one tenant group, loaded by its own `meltano run`."""
    key = context.partition_key
    tenants = groups().get(key)
    if not tenants:
        raise Failure(description=f"tenant group {key} is no longer in {TENANTS_FILE}")
    return run_group(context.log, key, tenants)


defs = Definitions(assets=[microsoft365_tenant_group], jobs=[microsoft365_all_groups])
