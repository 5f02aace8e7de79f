"""The Meltano Hub definition, meltano.yml and the tap's own `--about` say the same thing.

`--about --format=json` comes from the installed `tap-microsoft365` command, so a setting added to
tap.py without regenerating the definitions (`python scripts/plugin_definition.py --write`)
fails here, naming the setting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.script_modules import load_script

ROOT = Path(__file__).resolve().parent.parent
HUB_DIR = ROOT / "hub" / "extractors" / "tap-microsoft365"

plugin_definition = load_script("plugin_definition")

# What the Hub's extractor schema admits (meltano/hub schemas/plugin_definitions), and the
# fields issue 6 asks every definition to carry.
HUB_KEYS = {
    "name", "pip_url", "variant", "namespace", "label", "description", "executable", "settings",
    "docs", "repo", "logo_url", "hidden", "settings_group_validation", "commands",
    "capabilities", "metadata", "schema", "select", "maintenance_status", "domain_url",
    "keywords", "requires", "definition", "next_steps", "settings_preamble", "usage", "prereq",
}  # fmt: skip
HUB_REQUIRED = {
    "name", "namespace", "variant", "label", "description", "pip_url", "repo", "capabilities",
    "settings", "settings_group_validation", "keywords", "domain_url", "maintenance_status",
}  # fmt: skip
SETTING_KEYS = {
    "name", "aliases", "label", "value", "placeholder", "kind", "description", "tooltip",
    "documentation", "env", "value_processor", "value_post_processor", "oauth", "options",
    "docs", "hidden", "sensitive",
}  # fmt: skip
KINDS = {
    "oauth", "date_iso8601", "file", "email", "integer", "decimal", "options", "object",
    "array", "boolean", "string",
}  # fmt: skip
CAPABILITIES = {
    "properties", "catalog", "discover", "state", "about", "stream-maps", "schema-flattening",
    "activate-version", "batch", "test", "log-based", "structured-logging",
}  # fmt: skip


@pytest.fixture(scope="module")
def about() -> dict[str, Any]:
    """`tap-microsoft365 --about --format=json`, from the installed console script."""
    command = Path(sys.executable).with_name("tap-microsoft365")
    completed = subprocess.run(
        [str(command), "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return dict(json.loads(completed.stdout))


@pytest.fixture(scope="module")
def hub() -> dict[str, Any]:
    """The Hub definition (one variant file)."""
    files = sorted(HUB_DIR.glob("*.yml"))
    assert [f.name for f in files] == [f"{plugin_definition.VARIANT}.yml"]
    return dict(yaml.safe_load(files[0].read_text()))


@pytest.fixture(scope="module")
def meltano_extractor() -> dict[str, Any]:
    """The tap-microsoft365 block of meltano.yml."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (extractor,) = project["plugins"]["extractors"]
    return dict(extractor)


def about_leaves(about: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every setting of `--about` down to the leaves, by dotted name (no conversion rules)."""
    leaves: dict[str, dict[str, Any]] = {}

    def walk(prefix: str, properties: dict[str, Any]) -> None:
        for key, schema in properties.items():
            leaves[f"{prefix}{key}"] = schema
            walk(f"{prefix}{key}.", schema.get("properties") or {})

    walk("", about["settings"]["properties"])
    return leaves


def by_name(settings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = [s["name"] for s in settings]
    assert len(names) == len(set(names)), f"duplicate settings: {names}"
    return {s["name"]: s for s in settings}


@pytest.mark.parametrize("where", ["hub", "meltano.yml"])
def test_every_about_setting_is_defined_once_with_its_description(
    where: str, about: dict[str, Any], hub: dict[str, Any], meltano_extractor: dict[str, Any]
) -> None:
    defined = by_name((hub if where == "hub" else meltano_extractor)["settings"])
    leaves = about_leaves(about)
    for name, setting in defined.items():
        assert name in leaves, f"{where}: {name} is not a setting of the tap"
        # The description, with the schema's rule (range, pattern) that Meltano cannot hold.
        assert setting["description"] == plugin_definition.described(leaves[name]), where
        assert setting["description"].startswith(leaves[name]["description"]), where
        assert setting.get("label") == leaves[name].get("title"), f"{where}: {name}"
        assert setting["kind"] in KINDS, f"{where}: {name} has kind {setting['kind']}"
        assert set(setting) <= SETTING_KEYS, f"{where}: {name}: {set(setting) - SETTING_KEYS}"
    # Each tap setting is either defined itself or through all of its leaves.
    for name in about["settings"]["properties"]:
        covered = [d for d in defined if d == name or d.startswith(f"{name}.")]
        assert covered, f"{where}: the tap's setting {name} is missing"
        if name not in defined:
            children = {leaf for leaf in leaves if leaf.startswith(f"{name}.")}
            parents = {leaf.rsplit(".", 1)[0] for leaf in children}
            assert set(covered) == children - parents, f"{where}: {name} is partly defined"


@pytest.mark.parametrize("where", ["hub", "meltano.yml"])
def test_secrets_are_sensitive_and_kinds_follow_the_tap_types(
    where: str, about: dict[str, Any], hub: dict[str, Any], meltano_extractor: dict[str, Any]
) -> None:
    defined = by_name((hub if where == "hub" else meltano_extractor)["settings"])
    leaves = about_leaves(about)
    secrets = {name for name, schema in leaves.items() if schema.get("secret")}
    # `tenants` as a whole: its entries may hold client secrets.
    assert secrets == {"client_secret", "client_certificate_password", "tenants"}
    assert {name for name, s in defined.items() if s.get("sensitive")} == secrets
    for name in secrets - {"tenants"}:
        assert defined[name]["kind"] == "string"  # not the deprecated `password`
    assert defined["tenants"]["kind"] == "array"
    assert defined["start_date"]["kind"] == "date_iso8601"
    assert defined["page_size"]["kind"] == "integer"
    assert defined["page_size"]["value"] == leaves["page_size"]["default"]
    assert defined["cloud"]["kind"] == "options"
    assert [o["value"] for o in defined["cloud"]["options"]] == leaves["cloud"]["enum"]
    assert defined["cloud"]["value"] == "global"
    assert defined["flattening_enabled"]["kind"] == "boolean"
    assert defined["stream_maps"]["kind"] == "object"
    assert defined["batch_config.encoding.format"]["kind"] == "options"
    assert defined["page_size"]["description"].endswith("Allowed: 1 to 999.")
    assert defined["tenant_id"]["description"].endswith("Allowed: a GUID or a domain.")
    assert defined["graph_url"]["description"].endswith("an https:// host, without a path.")
    # Meltano 4.4 cannot write a `decimal` setting into the tap's config (a Decimal is not
    # JSON serializable): numbers are declared as integer, which Meltano passes through.
    assert defined["report_window_seconds"]["kind"] == "integer"


def test_hub_meltano_yml_and_about_agree_setting_by_setting(
    about: dict[str, Any], hub: dict[str, Any], meltano_extractor: dict[str, Any]
) -> None:
    expected = by_name(plugin_definition.meltano_settings(about))
    assert by_name(hub["settings"]) == expected
    assert by_name(meltano_extractor["settings"]) == expected
    assert [s["name"] for s in meltano_extractor["settings"]] == list(expected)  # tap's order
    assert [s["name"] for s in hub["settings"]] == sorted(expected)  # the Hub sorts


def test_capabilities_and_credential_groups_agree(
    about: dict[str, Any], hub: dict[str, Any], meltano_extractor: dict[str, Any]
) -> None:
    assert set(hub["capabilities"]) <= CAPABILITIES
    assert hub["capabilities"] == meltano_extractor["capabilities"] == sorted(about["capabilities"])
    groups = hub["settings_group_validation"]
    assert groups == meltano_extractor["settings_group_validation"]
    # tenant_id or tenants, and client_id at the top level or in every tenant: the tap checks
    # those rules across settings, so its schema requires none of them on its own.
    assert not about["settings"].get("required")
    credentials = {"client_secret", "client_certificate_path"}
    for group in groups:
        assert len({"tenant_id", "tenants"} & set(group)) == 1
        if group != ["tenants"]:  # every tenant with its own app and credential
            assert "client_id" in group
            assert len(credentials & set(group)) == 1
    assert {frozenset(group) & credentials for group in groups} == {
        frozenset({"client_secret"}),
        frozenset({"client_certificate_path"}),
        frozenset(),
    }


def test_hub_definition_has_the_hub_fields(hub: dict[str, Any]) -> None:
    assert set(hub) <= HUB_KEYS, set(hub) - HUB_KEYS
    assert set(hub) >= HUB_REQUIRED, HUB_REQUIRED - set(hub)
    assert hub["name"] == "tap-microsoft365"
    assert hub["namespace"] == "tap_microsoft365"
    assert hub["variant"] == plugin_definition.VARIANT
    assert hub["executable"] == "tap-microsoft365"
    assert hub["pip_url"] == "tap-microsoft365"  # the PyPI distribution, see pyproject.toml
    assert "meltano_sdk" in hub["keywords"]
    assert hub["maintenance_status"] in {"active", "beta", "development", "inactive", "unknown"}
    assert hub["domain_url"].startswith("https://")
    assert hub["repo"].startswith("https://github.com/")


def test_generated_files_are_current() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plugin_definition.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
