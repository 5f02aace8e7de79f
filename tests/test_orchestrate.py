"""The Dagster deployment (orchestrate/) run for real: tenant groups on parallel workers, each a
`meltano run tap-microsoft365 target-postgres` with its own tenants and state id, against the
emulator's tenants, into PostgreSQL 15.

Dagster is installed into a venv of its own, built from the `orchestrate` group of uv.lock (the
tap's venv never holds it). Three tenants in two groups: `group-a` (Contoso) and `group-b`
(Fabrikam, and Northwind, whose administrator never consented). Two workers read the groups
side by side; group-b's step fails, naming Northwind, after loading Fabrikam; group-a completes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from psycopg import sql

from tests.graph_emulator import GraphEmulator, Tenant
from tests.meltano_project import MELTANO, ROOT, MeltanoProject, installed_meltano, settings_env
from tests.postgres import PostgresServer, postgres_server

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["installed_meltano", "postgres_server"]  # fixtures this module uses

TODAY = dt.date(2026, 11, 26)
SCHEMA = "microsoft365_tenants"
STREAMS = ("organization", "users", "groups", "office365_active_user_detail")
VENV = ROOT / ".meltano" / "orchestrate-venv"  # git-ignored, reused between sessions
UV = Path(sys.executable).with_name("uv")
JOB = ("job", "execute", "-m", "orchestrate.definitions", "-j", "microsoft365_all_groups")


def dagster_venv() -> Path:
    """A venv with exactly the `orchestrate` group of uv.lock (Dagster), built once."""
    python = VENV / "bin" / "python"
    requirements = subprocess.run(
        [str(UV), "export", "--only-group", "orchestrate", "--no-hashes", "--frozen"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    stamp = VENV / "requirements.txt"
    if not python.exists() or not stamp.exists() or stamp.read_text() != requirements:
        shutil.rmtree(VENV, ignore_errors=True)
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        subprocess.run(
            [str(UV), "venv", "--quiet", "--python", sys.executable, str(VENV)],
            check=True,
            env=env,
            timeout=120,
        )
        requirements_in = VENV / "requirements.in"
        requirements_in.write_text(requirements)
        subprocess.run(
            [
                str(UV),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(python),
                "-r",
                str(requirements_in),
            ],
            check=True,
            env=env,
            timeout=600,
        )
        stamp.write_text(requirements)
    return VENV / "bin" / "dagster"


def _tenant(seed: int, name: str, users: int) -> Tenant:
    return Tenant.synthetic(
        users=users,
        groups=5,
        seed=seed,
        today=TODAY,
        domain=f"{name.lower()}.onmicrosoft.com",
        display_name=name,
    )


STEP_STATS = """
import json
from dagster import DagsterInstance

instance = DagsterInstance.get()
(run,) = instance.get_runs()
print(json.dumps({
    stat.step_key: [stat.start_time, stat.end_time]
    for stat in instance.get_run_step_stats(run.run_id)
}))
"""


GROUP_SCHEMAS = {"group-a": f"{SCHEMA}_group_a", "group-b": f"{SCHEMA}_group_b"}


def rows_by_tenant(server: PostgresServer, name: str, column: str) -> dict[str, set[Any]]:
    """Current rows (not retired: `_sdc_deleted_at` null) of every group's table, per tenant."""
    found: dict[str, set[Any]] = {}
    for schema in GROUP_SCHEMAS.values():
        query = sql.SQL("select tenant_id, {} from {}.{} where _sdc_deleted_at is null").format(
            sql.Identifier(column), sql.Identifier(schema), sql.Identifier(name)
        )
        for tenant_id, value in server.query(query):
            found.setdefault(str(tenant_id), set()).add(value)
    return found


class Deployment:
    """The emulator's tenants, the tenants file, and one `dagster job execute`."""

    def __init__(
        self, meltano: MeltanoProject, postgres: PostgresServer, work: Path, emulator: GraphEmulator
    ) -> None:
        self.meltano = meltano
        self.postgres = postgres
        self.work = work
        self.emulator = emulator

    def run(self) -> subprocess.CompletedProcess[str]:
        emulator = self.emulator
        sites = list(emulator.sites.values())
        tenants_file = self.work / "tenants.json"
        entries = [
            {"tenant_id": sites[0].tenant_id, "name": "Contoso", "group": "group-a"},
            {"tenant_id": sites[1].tenant_id, "name": "Fabrikam", "group": "group-b"},
            {"tenant_id": sites[2].tenant_id, "name": "Northwind", "group": "group-b"},
        ]
        tenants_file.write_text(json.dumps(entries))
        config = emulator.config(start_date=(TODAY - dt.timedelta(days=4)).isoformat())
        config.pop("tenant_id")
        user, password = self.postgres.user, self.postgres.password
        system_db = (
            f"postgresql+psycopg://{user}:{password}@{self.postgres.host}:{self.postgres.port}/"
            f"{self.postgres.database}"
        )
        env = {
            **self.meltano.base_env(),
            **settings_env(config),
            **self.postgres.target_env(),
            "REQUESTS_CA_BUNDLE": emulator.ca_bundle,
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": SCHEMA,
            "TAP_MICROSOFT365__SELECT": json.dumps([f"{stream}.*" for stream in STREAMS]),
            # Workers write state side by side: Meltano's system database in PostgreSQL.
            "MELTANO_DATABASE_URI": system_db,
            "DAGSTER_HOME": str(self.work / "dagster"),
            "ORCHESTRATE_TENANTS_FILE": str(tenants_file),
            "ORCHESTRATE_WORKERS": "2",
            "ORCHESTRATE_ENVIRONMENT": "sandbox",
            "ORCHESTRATE_MELTANO": (
                f"{MELTANO} --log-format=uncolored --env-file={self.meltano.env_file}"
            ),
        }
        (self.work / "dagster").mkdir(exist_ok=True)
        dagster = dagster_venv()
        return subprocess.run(
            [str(dagster), *JOB],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def step_spans(self) -> dict[str, tuple[float, float]]:
        """When each group's step started and ended, from Dagster's own run storage (its
        workers' console lines can interleave)."""
        python = dagster_venv().with_name("python")
        printed = subprocess.run(
            [str(python), "-c", STEP_STATS],
            env={**os.environ, "DAGSTER_HOME": str(self.work / "dagster")},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        stats = json.loads(printed.strip().splitlines()[-1])
        prefix = "load_tenant_group["
        return {
            key.removeprefix(prefix).removesuffix("]"): (start, end)
            for key, (start, end) in stats.items()
            if key.startswith(prefix)
        }

    def state_ids(self) -> list[str]:
        listed = self.meltano.run(
            "state",
            "list",
            env={"MELTANO_DATABASE_URI": self.system_db()},
        ).stdout
        return sorted(line.strip() for line in listed.splitlines() if line.strip())

    def system_db(self) -> str:
        server = self.postgres
        return (
            f"postgresql+psycopg://{server.user}:{server.password}@{server.host}:{server.port}/"
            f"{server.database}"
        )


@pytest.fixture(scope="module")
def deployment(
    installed_meltano: MeltanoProject,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Deployment, subprocess.CompletedProcess[str]]]:
    contoso = _tenant(51, "Contoso", 40)
    fabrikam = _tenant(52, "Fabrikam", 30)
    northwind = _tenant(53, "Northwind", 20)
    emulator = GraphEmulator(contoso, tenants=[fabrikam], time_scale=0.005)
    emulator.add_tenant(northwind, consented=False)
    with emulator:
        made = Deployment(
            installed_meltano, postgres_server, tmp_path_factory.mktemp("orchestrate"), emulator
        )
        yield made, made.run()


def test_groups_load_side_by_side_and_a_failed_tenant_fails_its_group(
    deployment: tuple[Deployment, subprocess.CompletedProcess[str]],
) -> None:
    made, completed = deployment
    output = completed.stdout + completed.stderr
    errors = "\n".join(line for line in output.splitlines() if "rror" in line)
    assert completed.returncode != 0, output[-4000:]  # the orchestrator sees the failure
    assert "Steps failed: ['load_tenant_group[group_b]']" in output, errors[-8000:]
    assert "tenant group group-a: done" in output
    # Each worker found the system database migrated (or migrated it) before its run: two
    # `meltano run`s migrating a new database at once fail with "Cannot upgrade the system
    # database".
    assert output.count("Meltano system database ready") == 2, errors[-8000:]
    assert "Cannot upgrade the system database" not in output
    northwind = list(made.emulator.sites.values())[2]
    group_b = "\n".join(line for line in output.splitlines() if "group-b" in line)
    assert any("Northwind" in line and "AADSTS65001" in line for line in output.splitlines()), (
        group_b[-6000:]
    )
    assert northwind.tenant_id in output
    # Parallel workers: each group's step started before the other one ended.
    spans = made.step_spans()
    assert set(spans) == {"group_a", "group_b"}, spans
    (a_start, a_end), (b_start, b_end) = spans["group_a"], spans["group_b"]
    assert a_start < b_end
    assert b_start < a_end


def test_each_tenant_lands_in_the_shared_tables_with_its_own_rows(
    deployment: tuple[Deployment, subprocess.CompletedProcess[str]],
) -> None:
    made, _ = deployment
    sites = list(made.emulator.sites.values())
    users = rows_by_tenant(made.postgres, "users", "id")
    organizations = rows_by_tenant(made.postgres, "organization", "id")
    reports = rows_by_tenant(made.postgres, "office365_active_user_detail", "user_principal_name")
    for site in sites[:2]:
        assert users[site.tenant_id] == set(site.tenant.users)
        assert organizations[site.tenant_id] == {site.tenant_id}
        domains = (site.tenant.default_domain, site.tenant.domain)
        assert reports[site.tenant_id]
        assert all(str(upn).endswith(domains) for upn in reports[site.tenant_id])
    assert sites[2].tenant_id not in users
    for schema in GROUP_SCHEMAS.values():
        keys = made.postgres.query(
            "select tc.table_name, kcu.column_name from information_schema.table_constraints tc "
            "join information_schema.key_column_usage kcu "
            "using (constraint_schema, constraint_name) "
            "where tc.table_schema = %s and tc.constraint_type = 'PRIMARY KEY' "
            "and kcu.ordinal_position = 1",
            schema,
        )
        assert dict(keys) == dict.fromkeys(STREAMS, "tenant_id"), schema


def test_each_group_loads_into_its_own_schema_so_no_group_retires_anothers_rows(
    deployment: tuple[Deployment, subprocess.CompletedProcess[str]],
) -> None:
    # Each full read ends with ACTIVATE_VERSION, which target-postgres applies to the whole
    # table: in one shared table the group that finished last would have marked the other
    # group's users and organization deleted.
    made, completed = deployment
    sites = list(made.emulator.sites.values())
    output = completed.stdout + completed.stderr
    for key, schema in GROUP_SCHEMAS.items():
        assert f"tenant group {key}: " in output
        assert f"into schema {schema}" in output
    schema_of = {sites[0].tenant_id: GROUP_SCHEMAS["group-a"]}
    schema_of[sites[1].tenant_id] = GROUP_SCHEMAS["group-b"]
    for tenant_id, schema in schema_of.items():
        query = sql.SQL(
            "select count(*), count(*) filter (where _sdc_deleted_at is null), "
            "array_agg(distinct tenant_id::text) from {}.{}"
        )
        for name in ("users", "organization"):
            total, current, tenants = made.postgres.query(
                query.format(sql.Identifier(schema), sql.Identifier(name))
            )[0]
            assert tenants == [tenant_id], (schema, name, tenants)
            assert current == total > 0, (schema, name, total, current)
    assert not made.postgres.query(
        "select 1 from information_schema.tables where table_schema = %s", SCHEMA
    )


def test_each_group_keeps_its_own_state_id(
    deployment: tuple[Deployment, subprocess.CompletedProcess[str]],
) -> None:
    made, _ = deployment
    ids = made.state_ids()
    pair = "sandbox:tap-microsoft365-to-target-postgres"
    assert f"{pair}:group-a" in ids
    assert f"{pair}:group-b" in ids  # Fabrikam's progress, kept although the group failed
