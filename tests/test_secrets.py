"""Secrets never leave the process: not in logs (DEBUG included), errors, --about, STATE or records.

The secrets are the client secret, the certificate password (and the private key), every access
token the emulator issued, and the pre-authenticated report download URLs (their token part).
`assert_no_secrets` is shared by the reliability and failure tests, which scan DEBUG runs under
faults; the tests here cover what those do not: the redaction rules themselves, and the commands
that print the settings' schema.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from tap_microsoft365 import redaction
from tests.conftest import RECENT_START
from tests.singer_run import TAP, tap_env

if TYPE_CHECKING:
    from pathlib import Path

    from tests.graph_emulator import GraphEmulator
    from tests.singer_run import SyncResult

DEBUG = {"TAP_MICROSOFT365_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"}
DOWNLOAD_PREFIX = "/data/download/"


def secrets_of(emu: GraphEmulator, config: dict[str, Any] | None = None) -> dict[str, str]:
    """Every secret a run against `emu` had in hand, by a name to report leaks with."""
    found = {
        "client secret": emu.client_secret,
        "certificate password": emu.client_certificate_password,
        "private key": "PRIVATE KEY-----",
    }
    for key in ("client_secret", "client_certificate_password"):
        if config and config.get(key):
            found[f"configured {key}"] = str(config[key])
    for number, token in enumerate(emu.issued_tokens()):
        found[f"access token #{number}"] = token
    for record in list(emu.request_log):
        if record.role == "download" and record.path.startswith(DOWNLOAD_PREFIX):
            found[f"download URL {record.path[:24]}..."] = record.path.removeprefix(DOWNLOAD_PREFIX)
    return found


def assert_no_secrets(
    result: SyncResult, emu: GraphEmulator, config: dict[str, Any] | None = None
) -> None:
    """No secret of the run in its stdout (records, STATE) or stderr (logs, errors)."""
    output = result.output
    leaked = [name for name, value in secrets_of(emu, config).items() if value in output]
    assert not leaked, f"secrets in the output: {leaked}"


@pytest.mark.parametrize(
    ("text", "secret", "masked"),
    [
        ("Authorization: Bearer eyJ0eXAiOiJKV1QiLCJub25jZSI6", "eyJ0eXAi", "Bearer ***"),
        (
            '{"token_type": "Bearer", "access_token": "eyJ0eXAi.abc"}',
            "eyJ0",
            '"access_token": "***"',
        ),
        ("client_id=1&client_secret=Zq8~abcdef&scope=x", "Zq8~", "client_secret=***&scope"),
        ("{'passphrase': 'hunter22'}", "hunter22", "'passphrase': '***'"),
        ("client_assertion=eyJhbGciOi.x.y&grant_type=c", "eyJhbGciOi", "client_assertion=***&"),
        ('"GET /data/download/Jq3kV9xT2aQ HTTP/1.1" 200', "Jq3kV9", "/data/download/*** HTTP"),
        (
            "https://reportsncu.office.com/data/v1.0/download?token=AbC123 failed",
            "AbC123",
            "/data/v1.0/download/*** failed",
        ),
        ("the secret is 3Xy8Q~registered-value", "3Xy8Q~registered-value", "the secret is ***"),
    ],
    ids=[
        "bearer",
        "json-token",
        "form-secret",
        "passphrase",
        "assertion",
        "download-path",
        "download-url",
        "registered",
    ],
)
def test_redaction_masks_every_shape_of_secret(text: str, secret: str, masked: str) -> None:
    redaction.register_secret("3Xy8Q~registered-value")

    redacted = redaction.redact(text)

    assert secret not in redacted
    assert masked in redacted


@pytest.mark.parametrize("command", [("--about", "--format=json"), ("--discover",)])
def test_about_and_discover_print_no_secret(
    emulator: GraphEmulator, tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = emulator.config(**RECENT_START)
    del config["client_secret"]
    config["client_certificate_path"] = emulator.client_certificate_path
    config["client_certificate_password"] = emulator.client_certificate_password
    (tmp_path / "config.json").write_text(json.dumps(config))

    completed = subprocess.run(
        [*TAP, "--config", str(tmp_path / "config.json"), *command],
        capture_output=True,
        text=True,
        env=tap_env(emulator.ca_bundle, **DEBUG),
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    output = completed.stdout + completed.stderr
    assert "client_certificate_password" in output  # the setting is described...
    assert emulator.client_certificate_password not in output  # ...its value is not
    assert "PRIVATE KEY" not in output
