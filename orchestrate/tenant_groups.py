"""Which tenants each worker reads: tenant groups, their state ids and their Meltano commands.

Pure logic, no Dagster: the orchestrator (definitions.py) and the tests use it alike.

A tenants file is a JSON list of the tap's `tenants` entries (tenant_id, name, and optionally
client_id, client_secret, ...), each optionally with a `group`. A tenant without a group lands in
one of `groups` buckets by a hash of its tenant_id, so adding or removing a tenant never moves
another: each group keeps its own Meltano state id (`--state-id-suffix=<group>`), and a tenant
that moved would start over (a full read, its delta links and report bookmarks left behind in
the old group's state). Changing the number of groups moves tenants: pin them with `group` first.

Each group also loads into a schema of its own (`<schema>_<group>`): a run ends each full read
with ACTIVATE_VERSION, which a target applies to the whole table, so groups sharing a table
would retire each other's rows. The license insight (transform/) reads the group schemas as one
(dbt var `tap_schemas`, which `python -m orchestrate.tenant_groups TENANTS_FILE` prints).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path
from typing import Any

GROUP_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
TENANTS_VARIABLE = "TAP_MICROSOFT365_TENANTS"
MAX_SCHEMA_NAME = 63  # PostgreSQL's identifier limit


class TenantsFileError(ValueError):
    """The tenants file cannot be used as it is; the message says what to fix."""


def load_tenants(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a tenants file (a JSON list, or an object with a `tenants` list)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"tenants file {path}: cannot read it ({exc.strerror})"
        raise TenantsFileError(msg) from None
    except ValueError as exc:
        msg = f"tenants file {path}: not JSON ({exc})"
        raise TenantsFileError(msg) from None
    entries = data.get("tenants") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        msg = f"tenants file {path}: expected a non-empty JSON list of tenants"
        raise TenantsFileError(msg)
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        tenant_id = entry.get("tenant_id") if isinstance(entry, dict) else None
        if not isinstance(tenant_id, str) or not tenant_id.strip():
            msg = f"tenants file {path}: entry {number} has no tenant_id"
            raise TenantsFileError(msg)
        if tenant_id.lower() in seen:
            msg = f"tenants file {path}: tenant {tenant_id} is listed twice"
            raise TenantsFileError(msg)
        seen.add(tenant_id.lower())
        group = entry.get("group")
        if group is not None and not (isinstance(group, str) and GROUP_KEY.match(group)):
            msg = (
                f"tenants file {path}: entry {number} ({tenant_id}) has group {group!r}: use "
                "letters, digits, '-' and '_' (it becomes a partition key and a state id suffix)"
            )
            raise TenantsFileError(msg)
    return entries


def bucket(tenant_id: str, groups: int) -> str:
    """The hash bucket of a tenant: stable across runs, machines and Python versions."""
    digest = hashlib.sha256(tenant_id.strip().lower().encode()).digest()
    return f"group-{int.from_bytes(digest[:8], 'big') % groups:02d}"


def tenant_groups(entries: list[dict[str, Any]], groups: int) -> dict[str, list[dict[str, Any]]]:
    """Group key -> the tap's `tenants` entries of that group (without `group`), keys sorted;
    empty groups are left out."""
    if groups < 1:
        msg = f"groups must be at least 1, not {groups}"
        raise ValueError(msg)
    result: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        key = entry.get("group") or bucket(entry["tenant_id"], groups)
        result.setdefault(key, []).append({k: v for k, v in entry.items() if k != "group"})
    return dict(sorted(result.items()))


def worker_env(group: list[dict[str, Any]]) -> dict[str, str]:
    """The variables that give one worker's `meltano run` its tenants."""
    return {TENANTS_VARIABLE: json.dumps(group, separators=(",", ":"))}


def meltano_command(
    meltano: list[str],
    key: str,
    *,
    environment: str | None,
    extractor: str = "tap-microsoft365",
    loader: str = "target-postgres",
) -> list[str]:
    """`meltano [--environment=E] run --state-id-suffix=<group> EXTRACTOR LOADER`."""
    command = list(meltano)
    if environment:
        command.append(f"--environment={environment}")
    return [*command, "run", f"--state-id-suffix={key}", extractor, loader]


def state_id(key: str, *, environment: str, extractor: str, loader: str) -> str:
    """The state id Meltano stores a group's state under."""
    return f"{environment}:{extractor}-to-{loader}:{key}"


def group_schema(schema: str, key: str) -> str:
    """The schema a group's run loads into: `<schema>_<group>`, lower case, '-' as '_'."""
    name = f"{schema}_{key}".lower().replace("-", "_")
    if len(name) > MAX_SCHEMA_NAME:
        msg = (
            f"schema {name} is longer than {MAX_SCHEMA_NAME} characters: shorten the schema "
            f"({schema}) or the group name ({key})"
        )
        raise ValueError(msg)
    return name


def schema_variable(loader: str) -> str:
    """The variable Meltano reads the loader's default_target_schema setting from."""
    return f"{loader.upper().replace('-', '_')}_DEFAULT_TARGET_SCHEMA"


def main(argv: list[str] | None = None) -> int:
    """Print the group schemas of a tenants file as the dbt var tap_schemas (a JSON list)."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestrate.tenant_groups",
        description="The schemas the tenant groups load into, for dbt's --vars tap_schemas.",
    )
    parser.add_argument("tenants_file")
    parser.add_argument("--groups", type=int, default=8, help="as ORCHESTRATE_GROUPS")
    parser.add_argument("--schema", default="tap_microsoft365", help="as ORCHESTRATE_SCHEMA")
    args = parser.parse_args(argv)
    try:
        groups = tenant_groups(load_tenants(args.tenants_file), args.groups)
        schemas = [group_schema(args.schema, key) for key in groups]
    except ValueError as exc:
        print(exc)
        return 2
    print(json.dumps({"tap_schemas": schemas}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
