"""Tenant groups of the scale-out deployment (orchestrate/tenant_groups.py): pure logic, no server.

What must hold: a tenant stays in its group when others are added or removed (each group keeps
its own Meltano state id), pinned groups win, a bad tenants file is one clear error, and each
worker's command and variables carry exactly its own tenants.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import pytest

from orchestrate.tenant_groups import (
    TENANTS_VARIABLE,
    TenantsFileError,
    bucket,
    group_schema,
    load_tenants,
    main,
    meltano_command,
    schema_variable,
    state_id,
    tenant_groups,
    worker_env,
)

if TYPE_CHECKING:
    from pathlib import Path


def tenants(count: int, seed: int = 0) -> list[dict[str, str]]:
    return [
        {"tenant_id": str(uuid.UUID(int=seed * 10_000 + n + 1)), "name": f"Customer {n}"}
        for n in range(count)
    ]


def membership(groups: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    return {t["tenant_id"]: key for key, members in groups.items() for t in members}


def test_adding_and_removing_tenants_moves_no_other_tenant() -> None:
    before = membership(tenant_groups(tenants(40), 6))
    more = tenants(40) + tenants(15, seed=1)
    after = membership(tenant_groups(more, 6))
    assert {tid: after[tid] for tid in before} == before
    fewer = tenants(40)[5:]
    assert membership(tenant_groups(fewer, 6)) == {
        tid: before[tid] for tid in before if tid in {t["tenant_id"] for t in fewer}
    }


def test_groups_spread_tenants_and_keep_every_one_once() -> None:
    entries = tenants(200)
    groups = tenant_groups(entries, 8)
    assert list(groups) == sorted(groups)
    assert set(groups) == {f"group-{n:02d}" for n in range(8)}
    assert sorted(t["tenant_id"] for m in groups.values() for t in m) == sorted(
        t["tenant_id"] for t in entries
    )
    assert all(10 <= len(members) <= 45 for members in groups.values())


def test_bucket_ignores_case_and_spaces_and_is_stable() -> None:
    tenant_id = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"
    assert bucket(tenant_id, 8) == bucket(f" {tenant_id.lower()} ", 8)
    # The same on every machine and Python (sha256 of the lower-cased id, not hash(), which
    # changes per process): the first 8 bytes of the digest, modulo the number of groups.
    assert (bucket(tenant_id, 8), bucket(tenant_id, 100)) == ("group-03", "group-47")
    assert bucket("contoso.onmicrosoft.com", 1) == "group-00"


def test_a_pinned_group_wins_and_is_not_passed_to_the_tap() -> None:
    entries = [*tenants(3), {"tenant_id": "fabrikam.onmicrosoft.com", "group": "big_customers"}]
    groups = tenant_groups(entries, 2)
    assert groups["big_customers"] == [{"tenant_id": "fabrikam.onmicrosoft.com"}]
    assert all("group" not in t for members in groups.values() for t in members)


def test_worker_env_and_command_carry_only_the_group() -> None:
    members = tenants(2)
    env = worker_env(members)
    assert list(env) == [TENANTS_VARIABLE]
    assert json.loads(env[TENANTS_VARIABLE]) == members
    command = meltano_command(["meltano"], "group-03", environment="prod")
    assert command == [
        "meltano",
        "--environment=prod",
        "run",
        "--state-id-suffix=group-03",
        "tap-microsoft365",
        "target-postgres",
    ]
    assert "--environment" not in " ".join(meltano_command(["m"], "g", environment=None))
    assert (
        state_id("group-03", environment="prod", extractor="tap-microsoft365", loader="target-x")
        == "prod:tap-microsoft365-to-target-x:group-03"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "non-empty JSON list"),
        ("{", "not JSON"),
        ('[{"name": "x"}]', "entry 1 has no tenant_id"),
        ('[{"tenant_id": "A"}, {"tenant_id": "a"}]', "tenant a is listed twice"),
        ('[{"tenant_id": "a", "group": "no spaces"}]', "has group 'no spaces'"),
    ],
)
def test_a_bad_tenants_file_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(content)
    with pytest.raises(TenantsFileError, match=message):
        load_tenants(path)


def test_tenants_file_as_list_or_object(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": tenants(2)}))
    assert load_tenants(path) == tenants(2)
    with pytest.raises(TenantsFileError, match="cannot read"):
        load_tenants(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="at least 1"):
        tenant_groups(tenants(1), 0)


def test_each_group_loads_into_a_schema_of_its_own() -> None:
    # ACTIVATE_VERSION retires every row of the table a target applies it to: groups sharing a
    # table would retire each other's tenants.
    assert group_schema("tap_microsoft365", "group-03") == "tap_microsoft365_group_03"
    assert group_schema("Raw", "Large") == "raw_large"
    assert schema_variable("target-postgres") == "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA"
    with pytest.raises(ValueError, match="longer than 63 characters"):
        group_schema("s" * 40, "g" * 30)


def test_the_command_prints_the_group_schemas_as_dbts_tap_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tenants.json"
    entries = [*tenants(5), {"tenant_id": "contoso.onmicrosoft.com", "group": "large"}]
    path.write_text(json.dumps(entries))
    assert main([str(path), "--groups", "2", "--schema", "raw"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = {f"raw_{key.replace('-', '_')}" for key in tenant_groups(entries, 2)}
    assert set(printed["tap_schemas"]) == expected
    assert "raw_large" in expected
    path.write_text("[]")
    assert main([str(path)]) == 2
    assert "expected a non-empty JSON list" in capsys.readouterr().out
