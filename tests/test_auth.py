"""Authentication: a token per run shared by all streams, and every token failure as one line.

Runs the real command against the emulator's Entra ID endpoints at DEBUG level, so the checks
that no secret is printed cover the most talkative logging too.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import RECENT_START
from tests.singer_run import SyncResult, catalog_selecting, run_tap

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.graph_emulator import GraphEmulator

DEBUG = {"TAP_MICROSOFT365_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"}


def final_error(result: SyncResult) -> str:
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert errors, result.stderr
    return errors[-1]


def assert_no_secrets(result: SyncResult, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.output


def test_one_token_serves_every_stream(emulator: GraphEmulator) -> None:
    emulator.clear_log()

    result = run_tap(emulator.config(**RECENT_START), ca_bundle=emulator.ca_bundle, env=DEBUG)

    assert result.exit_code == 0, result.stderr
    streams = {m["stream"] for m in result.messages if m["type"] == "RECORD"}
    assert {"organization", "subscribed_skus", "subscriptions", "users", "groups"} <= streams
    token_calls = [r for r in emulator.request_log if r.role == "login" and r.method == "POST"]
    assert len(token_calls) == 1
    graph_calls = [r for r in emulator.request_log if r.role == "graph"]
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in graph_calls)
    assert_no_secrets(result, emulator.client_secret)
    for token in emulator.issued_tokens():
        assert token not in result.output


def test_certificate_credential(emulator: GraphEmulator) -> None:
    config = emulator.config(**RECENT_START)
    del config["client_secret"]
    config["client_certificate_path"] = emulator.client_certificate_path
    config["client_certificate_password"] = emulator.client_certificate_password
    catalog = catalog_selecting(config, {"organization"}, emulator.ca_bundle)

    result = run_tap(config, ca_bundle=emulator.ca_bundle, catalog=catalog, env=DEBUG)

    assert result.exit_code == 0, result.stderr
    assert result.records("organization")[0]["id"] == emulator.tenant_id
    assert_no_secrets(result, emulator.client_certificate_password)


@pytest.mark.parametrize(
    ("setup", "code", "fix"),
    [
        (
            lambda emu, config: config.update(client_secret="wrong-secret-value-0000"),
            "AADSTS7000215",
            "set client_secret to the secret's Value",
        ),
        (
            lambda emu, config: setattr(emu.app, "secret_expired", True),
            "AADSTS7000222",
            "the client secret has expired: create a new secret",
        ),
        (
            lambda emu, config: config.update(client_id=str(uuid.uuid4())),
            "AADSTS700016",
            "no application with this client_id exists in this tenant",
        ),
        (
            lambda emu, config: config.update(tenant_id=str(uuid.uuid4())),
            "AADSTS90002",
            "the tenant was not found: set tenant_id",
        ),
    ],
    ids=["wrong-secret", "expired-secret", "unknown-app", "unknown-tenant"],
)
def test_token_failures_are_one_line(
    fresh_emulator: Callable[..., GraphEmulator],
    setup: Callable[[GraphEmulator, dict[str, Any]], None],
    code: str,
    fix: str,
) -> None:
    emu = fresh_emulator(users=5, groups=1)
    config = emu.config(**RECENT_START)
    setup(emu, config)

    result = run_tap(config, ca_bundle=emu.ca_bundle, env=DEBUG)

    assert result.exit_code == 3
    line = final_error(result)
    assert code in line
    assert fix in line
    assert "Traceback" not in result.stderr
    assert not result.records("organization")
    assert_no_secrets(result, emu.client_secret, config["client_secret"])


def test_token_failure_keeps_support_ids(fresh_emulator: Callable[..., GraphEmulator]) -> None:
    emu = fresh_emulator(users=5, groups=1)

    result = run_tap(
        emu.config(client_secret="wrong-secret-value-1111", **RECENT_START), ca_bundle=emu.ca_bundle
    )

    line = final_error(result)
    assert "trace id " in line
    assert "correlation id " in line


def test_missing_admin_consent_names_permission(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    emu = fresh_emulator(users=5, groups=1)
    # Consent was granted for the reports only: tokens are issued, directory calls are refused.
    emu.app.roles = {"Reports.Read.All"}

    result = run_tap(emu.config(**RECENT_START), ca_bundle=emu.ca_bundle, env=DEBUG)

    assert result.exit_code == 4
    line = final_error(result)
    assert "403 Authorization_RequestDenied" in line
    assert "Directory.Read.All" in line
    assert "Grant admin consent" in line
    assert "request-id " in line
    assert_no_secrets(result, emu.client_secret)


def test_unreachable_authority(emulator: GraphEmulator) -> None:
    config = emulator.config(authority_host="https://127.0.0.1:9", **RECENT_START)

    result = run_tap(config, ca_bundle=emulator.ca_bundle, env=DEBUG)

    assert result.exit_code == 3
    assert "Cannot reach Entra ID at 127.0.0.1:9" in final_error(result)
    assert_no_secrets(result, emulator.client_secret)


def test_untrusted_certificate_says_how_to_trust_it(emulator: GraphEmulator) -> None:
    result = run_tap(emulator.config(**RECENT_START), env={"REQUESTS_CA_BUNDLE": ""})

    assert result.exit_code == 3
    assert "TLS verification failed" in final_error(result)
    assert "REQUESTS_CA_BUNDLE" in final_error(result)
