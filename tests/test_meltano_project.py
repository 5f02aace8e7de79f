"""meltano.yml is a valid Meltano 4 project that keeps secrets out of itself.

These run the real `meltano` command on a copy of meltano.yml (no plugin install, no network):
Meltano must accept the file, read every setting from `TAP_MICROSOFT365_*` variables with the
right types, and write secrets set through `meltano config set` to `.env`, never to meltano.yml.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml

from tap_microsoft365.tap import TapMicrosoft365
from tests.graph_emulator import GraphEmulator, Tenant
from tests.meltano_project import ROOT, MeltanoProject, installed_meltano, settings_env

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["installed_meltano"]  # the fixture the `meltano config test` checks use

SECRET = "s3cr3t-value-never-in-meltano-yml"


def project_yaml() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "meltano.yml").read_text()))


def sensitive_settings(project: dict[str, Any]) -> dict[str, set[str]]:
    """Plugin name -> names of its sensitive settings."""
    plugins = [p for kind in project["plugins"].values() for p in kind]
    return {p["name"]: {s["name"] for s in p["settings"] if s.get("sensitive")} for p in plugins}


@pytest.fixture
def project_copy(tmp_path: Path) -> MeltanoProject:
    """A scratch Meltano project holding a copy of this repository's meltano.yml."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "meltano.yml", root / "meltano.yml")
    return MeltanoProject(root, tmp_path / "work", environment=None, isolate_dotenv=False)


def test_meltano_yml_matches_meltanos_own_schema() -> None:
    schema_file = files("meltano") / "schemas" / "meltano.schema.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(project_yaml(), schema)


def test_project_declares_the_plugins_and_environments_issue_6_names() -> None:
    project = project_yaml()
    (extractor,) = project["plugins"]["extractors"]
    assert extractor["namespace"] == "tap_microsoft365"
    assert extractor["pip_url"] == "-e ."
    assert extractor["executable"] == "tap-microsoft365"
    loaders = {loader["name"]: loader for loader in project["plugins"]["loaders"]}
    assert loaders["target-postgres"]["variant"] == "meltanolabs"
    assert loaders["target-postgres"]["pip_url"].startswith("meltanolabs-target-postgres")
    assert loaders["target-duckdb"]["pip_url"].startswith("target-duckdb")
    for loader in loaders.values():
        for setting in loader["settings"]:
            assert setting.get("label"), f"{loader['name']}.{setting['name']} has no label"
            assert setting.get("description"), f"{loader['name']}.{setting['name']}"
    assert {env["name"] for env in project["environments"]} == {"prod", "sandbox"}
    assert project["default_environment"] == "prod"


def test_no_secret_has_a_value_anywhere_in_meltano_yml() -> None:
    project = project_yaml()
    secrets = sensitive_settings(project)
    # tenants is sensitive because its entries may carry their own client secrets.
    assert secrets["tap-microsoft365"] == {
        "client_secret",
        "client_certificate_password",
        "tenants",
    }
    assert secrets["target-postgres"] == {"password", "sqlalchemy_url"}
    plugin_blocks = [p for kind in project["plugins"].values() for p in kind]
    for environment in project["environments"]:
        for kind in (environment.get("config") or {}).get("plugins", {}).values():
            plugin_blocks.extend(kind)
    for block in plugin_blocks:
        names = secrets[block["name"]]
        for setting in block.get("settings", []):
            if setting["name"] in names:
                assert "value" not in setting, f"{block['name']}.{setting['name']} has a value"
        assert not names & set(block.get("config") or {}), f"{block['name']} configures a secret"


def test_env_and_secrets_folder_are_git_ignored_and_env_example_names_the_variables() -> None:
    for path in (".env", ".secrets/config.json", ".meltano/x", "output/sandbox.duckdb"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
    example = (ROOT / ".env.example").read_text()
    lines = [line.strip() for line in example.splitlines()]
    for name in ("TENANT_ID", "CLIENT_ID", "CLIENT_SECRET"):
        assert f"TAP_MICROSOFT365_{name}=" in lines  # named, and left empty
    for name in ("CLIENT_CERTIFICATE_PATH", "CLIENT_CERTIFICATE_PASSWORD"):
        assert any(line.lstrip("# ").startswith(f"TAP_MICROSOFT365_{name}=") for line in lines)
    assert "TAP_MICROSOFT365_CLIENT_SECRET=" in lines
    assert not [line for line in lines if line.startswith("TAP_MICROSOFT365_CLIENT_SECRET=x")]


def test_meltano_reads_settings_from_the_environment_with_their_kinds(
    project_copy: MeltanoProject,
) -> None:
    env = {
        "TAP_MICROSOFT365_TENANT_ID": "contoso.onmicrosoft.com",
        "TAP_MICROSOFT365_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "TAP_MICROSOFT365_CLIENT_SECRET": SECRET,
        "TAP_MICROSOFT365_PAGE_SIZE": "500",
        "TAP_MICROSOFT365_START_DATE": "2026-11-01",
        "TAP_MICROSOFT365_FLATTENING_ENABLED": "true",
        "TAP_MICROSOFT365_BATCH_CONFIG_ENCODING_FORMAT": "jsonl",
    }
    unsafe = project_copy.run("config", "--unsafe", "print", "tap-microsoft365", env=env)
    config = json.loads(unsafe.stdout)
    assert config["page_size"] == 500
    assert config["flattening_enabled"] is True
    assert config["client_secret"] == SECRET
    assert config["cloud"] == "global"  # the default the tap declares
    assert config["batch_config"] == {"encoding": {"format": "jsonl"}}  # dotted names nest
    assert config["start_date"].startswith("2026-11-01")
    safe = project_copy.run("config", "print", "tap-microsoft365", env=env)
    assert SECRET not in safe.stdout + safe.stderr
    assert json.loads(safe.stdout)["client_secret"] == "*****"


def test_config_set_puts_secrets_in_dotenv_and_the_rest_in_meltano_yml(
    project_copy: MeltanoProject,
) -> None:
    before = (project_copy.root / "meltano.yml").read_text()
    project_copy.run("config", "set", "tap-microsoft365", "client_secret", SECRET)
    project_copy.run("config", "set", "tap-microsoft365", "page_size", "250")
    after = (project_copy.root / "meltano.yml").read_text()
    assert SECRET not in after
    assert f"TAP_MICROSOFT365_CLIENT_SECRET='{SECRET}'" in (project_copy.root / ".env").read_text()
    assert yaml.safe_load(after)["plugins"]["extractors"][0]["config"] == {"page_size": 250}
    assert before.count("\n") + 2 == after.count("\n")  # only `config: {page_size: 250}` added


@pytest.mark.parametrize("secret_is_right", [True, False])
def test_meltano_config_test_checks_the_credentials_against_entra_id(
    installed_meltano: MeltanoProject, secret_is_right: bool
) -> None:
    tenant = Tenant.synthetic(users=20, groups=2, seed=4, today=dt.date(2026, 11, 26))
    with GraphEmulator(tenant, time_scale=0.005) as emulator:
        secret = emulator.client_secret if secret_is_right else SECRET
        env = {
            **settings_env(emulator.config(client_secret=secret)),
            "REQUESTS_CA_BUNDLE": emulator.ca_bundle,
        }
        completed = installed_meltano.run(
            "config", "test", "tap-microsoft365", env=env, check=False
        )
    output = completed.stdout + completed.stderr
    assert SECRET not in output
    assert emulator.client_secret not in output
    if secret_is_right:
        assert completed.returncode == 0, output[-3000:]
        assert "Plugin configuration is valid" in completed.stdout
    else:
        assert completed.returncode == 1
        assert "Plugin configuration is invalid" in output
        # The tap's one line reaches the operator through Meltano: the code and the fix.
        assert "AADSTS7000215" in output
        assert "set client_secret to the secret's Value" in output


def test_every_numeric_setting_from_meltano_is_accepted_by_the_tap(
    project_copy: MeltanoProject,
) -> None:
    """Meltano reads TAP_MICROSOFT365_* as text and casts it by the setting's kind; what it
    hands the tap must pass the tap's own settings check, for every number setting."""
    properties = TapMicrosoft365.config_jsonschema["properties"]
    # The SDK adds its built-in settings (stream maps, flattening...) to the class's schema in
    # place when --about or the environment reader runs in this process: only the tap's own.
    builtin: dict[str, Any] = {"type": "object", "properties": {}}
    TapMicrosoft365.append_builtin_config(builtin)
    numeric = [
        n
        for n, s in properties.items()
        if {"integer", "number"} & set(s["type"]) and n not in builtin["properties"]
    ]
    env = {
        "TAP_MICROSOFT365_TENANT_ID": "contoso.onmicrosoft.com",
        "TAP_MICROSOFT365_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "TAP_MICROSOFT365_CLIENT_SECRET": SECRET,
        **{f"TAP_MICROSOFT365_{n.upper()}": str(properties[n]["default"]) for n in numeric},
        "TAP_MICROSOFT365_REPORT_WINDOW_SECONDS": "600",  # rejected as text before
    }
    printed = project_copy.run("config", "--unsafe", "print", "tap-microsoft365", env=env)
    config = json.loads(printed.stdout)
    for name in numeric:
        assert config[name] == properties[name]["default"], name

    tap = TapMicrosoft365(config=config, parse_env_config=False)  # raises on any problem

    assert tap.config["report_window_seconds"] == 600
