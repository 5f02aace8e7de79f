"""Invalid settings stop the tap before any network call, with one line naming the setting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.singer_run import run_tap

if TYPE_CHECKING:
    from pathlib import Path

    from tests.graph_emulator import GraphEmulator

SECRET = "Zq8~settings-test-secret-value-9f2"


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
        ({"request_timeout": -1}, "request_timeout -1 must be a positive number"),
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
