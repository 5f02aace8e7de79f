"""Invalid settings stop the tap before any network call, with one line naming the setting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tap_microsoft365.tap import TapMicrosoft365
from tests.conftest import RECENT_START
from tests.singer_run import catalog_selecting, run_tap

if TYPE_CHECKING:
    from pathlib import Path

    from tests.graph_emulator import GraphEmulator

SECRET = "Zq8~settings-test-secret-value-9f2"
DEBUG = {"TAP_MICROSOFT365_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"tenant_id": None}, "tenant_id is missing"),
        ({"tenant_id": "not a tenant"}, "tenant_id 'not a tenant' is neither a GUID nor a domain"),
        ({"tenant_id": "1234-5678"}, "tenant_id '1234-5678' is neither a GUID nor a domain"),
        ({"client_id": None}, "client_id is missing"),
        ({"client_id": "my-app"}, "client_id 'my-app' is not a GUID"),
        ({"client_secret": None}, "no credential: set client_secret"),
        (
            {"client_certificate_path": "/nonexistent/cert.pem"},
            "client_secret and client_certificate_path are both set",
        ),
        ({"page_size": 1000}, "page_size 1000 is out of range"),
        ({"page_size": 0}, "page_size 0 is out of range"),
        ({"cloud": "mars"}, "cloud 'mars' is unknown"),
        ({"authority_host": "http://login.example"}, "authority_host 'http://login.example'"),
        ({"request_timeout": -1}, "request_timeout -1 is out of range: it must be a positive"),
        ({"report_window_seconds": 0}, "report_window_seconds 0 is out of range"),
        ({"concealed_names": "ignore"}, "concealed_names 'ignore' is unknown: use one of warn"),
        ({"product_names_url": "http://example.com/names.csv"}, "must be an https:// URL"),
        # Graph's version is the tap's business: a path would end in AADSTS70011 at sign-in.
        (
            {"graph_url": "https://graph.microsoft.com/v1.0"},
            "graph_url 'https://graph.microsoft.com/v1.0' has a path: remove it",
        ),
        ({"authority_host": "https://login.example/tenant"}, "authority_host 'https://login"),
        ({"client_secret": 12345678}, "client_secret (a value of type int, not shown)"),
    ],
)
def test_invalid_setting_fails_before_network(
    emulator: GraphEmulator, change: dict[str, Any], names: str
) -> None:
    config = {**emulator.config(client_secret=SECRET), **change}
    config = {key: value for key, value in config.items() if value is not None}
    emulator.clear_log()

    result = run_tap(config, ca_bundle=emulator.ca_bundle)

    assert result.exit_code == 2
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert names in errors[0]
    assert result.stdout == ""  # nothing half-written
    assert emulator.request_log == []  # no network call
    assert SECRET not in result.output


def test_unreadable_certificate(emulator: GraphEmulator, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a pem file")
    emulator.clear_log()
    for path, expected in (
        (missing, f"client_certificate_path: cannot read '{missing}'"),
        (garbage, "client_certificate_path: no readable private key"),
    ):
        config = emulator.config()
        del config["client_secret"]
        config["client_certificate_path"] = str(path)

        result = run_tap(config, ca_bundle=emulator.ca_bundle)

        assert result.exit_code == 2
        assert expected in error_lines(result.stderr)[0]
    assert emulator.request_log == []


def test_wrong_certificate_password(emulator: GraphEmulator) -> None:
    config = emulator.config()
    del config["client_secret"]
    config["client_certificate_path"] = emulator.client_certificate_path
    config["client_certificate_password"] = "not-the-passphrase"

    result = run_tap(config, ca_bundle=emulator.ca_bundle)

    assert result.exit_code == 2
    assert "client_certificate_password is wrong" in error_lines(result.stderr)[0]
    assert "not-the-passphrase" not in result.output


def test_every_problem_of_a_config_in_one_line(emulator: GraphEmulator) -> None:
    config = emulator.config()
    for name in ("tenant_id", "client_id", "client_secret"):
        del config[name]
    config["page_size"] = 5000
    emulator.clear_log()

    result = run_tap(config, ca_bundle=emulator.ca_bundle)

    assert result.exit_code == 2
    (line,) = error_lines(result.stderr)
    assert "4 settings problems" in line
    for says in (
        "tenant_id is missing: set it to the Directory (tenant) ID",
        "client_id is missing: set it to the Application (client) ID",
        "no credential: set client_secret",
        "page_size 5000 is out of range: Graph accepts 1 to 999",
    ):
        assert says in line
    assert emulator.request_log == []


@pytest.mark.parametrize(
    "secret",
    [[SECRET], {"value": SECRET}, {SECRET: 1}, [[SECRET, "x"]]],
    ids=["list", "object", "key", "nested"],
)
def test_secret_of_the_wrong_type_is_never_printed(emulator: GraphEmulator, secret: Any) -> None:
    config = {**emulator.config(), "client_secret": secret}
    emulator.clear_log()

    result = run_tap(config, ca_bundle=emulator.ca_bundle, env=DEBUG)

    assert result.exit_code == 2
    (line,) = error_lines(result.stderr)
    assert "client_secret (a value of type" in line
    assert "not shown) is not of type 'string'" in line
    assert SECRET not in result.output
    assert "Traceback" not in result.stderr
    assert emulator.request_log == []


def test_every_numeric_setting_from_the_environment(emulator: GraphEmulator) -> None:
    """`--config ENV` gives every setting as text; numbers must be read as numbers."""
    numeric = {
        name: schema
        for name, schema in TapMicrosoft365.config_jsonschema["properties"].items()
        if {"integer", "number"} & set(schema["type"])
    }
    assert "report_window_seconds" in numeric
    env = {
        f"TAP_MICROSOFT365_{key.upper()}": str(value)
        for key, value in emulator.config(**RECENT_START).items()
    }
    values = {"report_window_seconds": "3.5", "page_size": "500"}
    for name, schema in numeric.items():
        env[f"TAP_MICROSOFT365_{name.upper()}"] = values.get(name, str(schema["default"]))
    catalog = catalog_selecting({}, {"subscribed_skus"})

    result = run_tap(
        {}, ca_bundle=emulator.ca_bundle, catalog=catalog, args=("--config", "ENV"), env=env
    )

    assert result.exit_code == 0, result.stderr[-2000:]
    assert result.records("subscribed_skus")


@pytest.mark.parametrize(("value", "says"), [("abc", "'abc'"), ("12.5", "'12.5'"), ("", "''")])
def test_a_number_that_does_not_parse_in_the_environment(
    emulator: GraphEmulator, value: str, says: str
) -> None:
    env = {f"TAP_MICROSOFT365_{key.upper()}": str(v) for key, v in emulator.config().items()}
    env["TAP_MICROSOFT365_PAGE_SIZE"] = value
    emulator.clear_log()

    result = run_tap({}, ca_bundle=emulator.ca_bundle, args=("--config", "ENV"), env=env)

    assert result.exit_code == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert f"page_size {says} is not of type 'integer': set it to a whole number" in line
    assert "Traceback" not in result.stderr
    assert emulator.request_log == []
