"""Every failure an operator can meet ends with its documented line and exit code (issue 5).

One table: each row is a bad input (a setting, a credential, the tenant, the network, what Graph
or a proxy answers), the exit code, and the words the run's last line must hold. Exit codes: 2 a
setting, 3 authentication, 4 a missing permission, 5 Graph or the network; 0 for inputs the tap
handles with a warning. Each case runs the real command at DEBUG level, the most talkative, and
no secret of the run (client secret, certificate password, access tokens, download URLs) may
appear in anything it printed. The README's failure table is this table.
"""

from __future__ import annotations

import copy
import datetime
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import RECENT_START, TODAY
from tests.singer_run import catalog_selecting, run_tap
from tests.test_secrets import assert_no_secrets

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.graph_emulator import GraphEmulator
    from tests.singer_run import SyncResult

DEBUG = {"TAP_MICROSOFT365_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"}
ORGANIZATION = r"^/v1\.0/organization$"
REPORT = "office365_active_user_detail"
REFRESH = TODAY - datetime.timedelta(days=2)  # the emulator's last processed report day


@dataclass(frozen=True)
class Case:
    """A bad input, how the run ends, and what its last line says."""

    setup: Callable[[GraphEmulator, dict[str, Any], Path], dict[str, Any] | None]
    exit_code: int
    says: tuple[str, ...]
    streams: frozenset[str] = frozenset({"organization"})


def settings(**changes: Any) -> Callable[[GraphEmulator, dict[str, Any], Path], None]:
    """Change settings (None removes one)."""

    def setup(emu: GraphEmulator, config: dict[str, Any], tmp: Path) -> None:
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value

    return setup


def certificate(password: str | None, *, garbage: bool = False) -> Callable[..., None]:
    """Sign in with the emulator's certificate (or a file that is no PEM at all)."""

    def setup(emu: GraphEmulator, config: dict[str, Any], tmp: Path) -> None:
        del config["client_secret"]
        path = emu.client_certificate_path
        if garbage:
            path = str(tmp / "certificate.pem")
            (tmp / "certificate.pem").write_text("-----BEGIN NOTHING-----\nnot a key\n")
        config["client_certificate_path"] = path
        if password is not None:
            config["client_certificate_password"] = password

    return setup


def fault(kind: str, *args: Any, **kw: Any) -> Callable[..., None]:
    """Inject one of the emulator's faults (faults.py), permanently unless `times` says."""

    def setup(emu: GraphEmulator, config: dict[str, Any], tmp: Path) -> None:
        kw.setdefault("times", None)
        getattr(emu.faults, kind)(*args, **kw)
        config["retry_max_attempts"] = 2

    return setup


def expired_secret(emu: GraphEmulator, config: dict[str, Any], tmp: Path) -> None:
    emu.app.secret_expired = True


def consent_for_reports_only(emu: GraphEmulator, config: dict[str, Any], tmp: Path) -> None:
    emu.app.roles = {"Reports.Read.All"}


def tokens_refused(emu: GraphEmulator, config: dict[str, Any], tmp: Path) -> None:
    # Graph finds every token expired, even one issued a moment ago (a revoked app, or the
    # token endpoint of another cloud than graph_url's).
    emu.faults.expire_tokens(emu.tokens, path=ORGANIZATION, times=None)


def delta_reset(emu: GraphEmulator, config: dict[str, Any], tmp: Path) -> dict[str, Any] | None:
    """A first run stores a delta link; then Graph resets the sync (410 resyncRequired)."""
    first = run_tap(config, ca_bundle=emu.ca_bundle, catalog=_catalog(frozenset({"users"})))
    assert first.exit_code == 0, first.stderr[-2000:]
    emu.expire_delta_tokens(resync=True)
    return first.last_state


CASES: dict[str, Case] = {
    # -- settings (exit 2, before any network call) ---------------------------------------------
    "missing-credential": Case(
        settings(client_secret=None), 2, ("no credential: set client_secret",)
    ),
    "doubled-credentials": Case(
        settings(client_certificate_path="/etc/ssl/cert.pem"),
        2,
        ("client_secret and client_certificate_path are both set: keep exactly one",),
    ),
    "malformed-tenant-id": Case(
        settings(tenant_id="contoso"),
        2,
        ("tenant_id 'contoso' is neither a GUID nor a domain", "Directory (tenant) ID"),
    ),
    "unreadable-certificate": Case(
        certificate(None, garbage=True),
        2,
        ("client_certificate_path: no readable private key in the PEM file",),
    ),
    "wrong-certificate-password": Case(
        certificate("not-the-passphrase"),
        2,
        ("client_certificate_password is wrong",),
    ),
    "start-date-not-a-date": Case(
        settings(start_date="yesterday"),
        2,
        ("start_date 'yesterday' is not a date: use YYYY-MM-DD",),
    ),
    "setting-of-wrong-type": Case(
        settings(skip_forbidden_streams="yes"),
        2,
        ("skip_forbidden_streams 'yes' is not of type 'boolean': set it to true or false",),
    ),
    # -- authentication (exit 3) ----------------------------------------------------------------
    "wrong-secret": Case(
        settings(client_secret="Qx1~not-the-secret-value-0123456789"),
        3,
        ("AADSTS7000215", "set client_secret to the secret's Value", "trace id "),
    ),
    "expired-secret": Case(
        expired_secret,
        3,
        ("AADSTS7000222", "the client secret has expired: create a new secret"),
    ),
    "unknown-app": Case(
        settings(client_id=str(uuid.uuid4())),
        3,
        ("AADSTS700016", "no application with this client_id exists in this tenant"),
    ),
    "unknown-tenant": Case(
        settings(tenant_id=str(uuid.uuid4())),
        3,
        ("AADSTS90002", "the tenant was not found: set tenant_id"),
    ),
    "unreachable-login-host": Case(
        settings(authority_host="https://127.0.0.1:9"),
        3,
        ("Cannot reach Entra ID at 127.0.0.1:9", "HTTPS_PROXY/NO_PROXY", "after 3 attempts"),
    ),
    "login-host-outage": Case(
        fault("error", 503, role="login", path=r"/oauth2/v2\.0/token$"),
        3,
        ("Entra ID at 127.0.0.1:", "answered 503", "still failing after 2 attempts"),
    ),
    "graph-refuses-new-token": Case(
        tokens_refused,
        3,
        ("401 InvalidAuthenticationToken", "Graph refused a freshly issued token too"),
    ),
    # -- permissions (exit 4) -------------------------------------------------------------------
    "permission-denied": Case(
        consent_for_reports_only,
        4,
        (
            "organization: GET /v1.0/organization answered 403 Authorization_RequestDenied",
            "the app needs the application permission Organization.Read.All or Directory.Read.All",
            "Grant admin consent",
            "request-id ",
        ),
    ),
    # -- Graph, the network and what answers in Graph's place (exit 5) --------------------------
    "connections-reset": Case(
        fault("reset", path=ORGANIZATION),
        5,
        (
            "organization: cannot reach Graph at 127.0.0.1:",
            "(ConnectionError) after 2 attempts (retry_max_attempts)",
            "HTTPS_PROXY/NO_PROXY",
        ),
    ),
    "graph-rejects-request": Case(
        fault("error", 400, path=ORGANIZATION, code="BadRequest", message="Invalid request."),
        5,
        (
            "organization: GET /v1.0/organization answered 400 BadRequest: Invalid request. "
            "(request-id ",
            "client-request-id ",
            "report it to tap-microsoft365 with the ids above",
        ),
    ),
    "proxy-html-page": Case(
        fault("html", 200, path=ORGANIZATION),
        5,
        (
            "organization: GET /v1.0/organization answered HTTP 200 with an HTML page",
            "a proxy or firewall answered",
        ),
    ),
    "truncated-json": Case(
        fault("truncated_json", path=ORGANIZATION),
        5,
        (
            "organization: GET /v1.0/organization answered HTTP 200 with JSON that is cut off",
            "still failing after 2 attempts",
        ),
    ),
    "malformed-csv": Case(
        fault("malformed_csv", path="/data/download/", skip=1),
        5,
        (
            f"{REPORT}: the CSV file of getOffice365ActiveUserDetail for ",
            "is malformed (line ",
            "damaged in transit or by a proxy",
        ),
        frozenset({REPORT}),
    ),
    # -- handled, with a warning (exit 0) -------------------------------------------------------
    "resync-required-delta": Case(
        delta_reset,
        0,
        (
            "users: Graph no longer accepts the stored delta link",
            "HTTP 410 resyncRequired",
            "starting a full round now",
        ),
        frozenset({"users"}),
    ),
    "report-date-outside-window": Case(
        settings(start_date=(TODAY + datetime.timedelta(days=3)).isoformat()),
        0,
        (
            f"is after the last day Graph has processed ({REFRESH.isoformat()}): nothing to "
            "fetch yet",
        ),
        frozenset({REPORT}),
    ),
}

_discovered: list[dict[str, Any]] = []


def _catalog(streams: frozenset[str]) -> dict[str, Any]:
    """The discovered catalog (one discovery per module) with `streams` selected."""
    if not _discovered:
        _discovered.append(catalog_selecting({}, set()))
    catalog = copy.deepcopy(_discovered[0])
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def last_line(result: SyncResult, exit_code: int) -> str:
    """The line the run ended with: its one ERROR, or for a handled input the last warning or
    info line of the tap's own."""
    lines = result.stderr.splitlines()
    errors = [line for line in lines if "| ERROR" in line]
    if exit_code:
        assert len(errors) == 1, errors
        return errors[0]
    assert errors == []
    return "\n".join(line for line in lines if "| tap-microsoft365" in line)


@pytest.mark.parametrize("name", CASES)
def test_failure_ends_with_its_line_and_exit_code(
    fresh_emulator: Callable[..., GraphEmulator], tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    emu = fresh_emulator(users=8, groups=1)
    config = emu.config(**RECENT_START)
    state = case.setup(emu, config, tmp_path)

    result = run_tap(
        config,
        ca_bundle=emu.ca_bundle,
        catalog=_catalog(case.streams),
        state=state,
        env=DEBUG,
    )

    assert result.exit_code == case.exit_code, result.stderr[-3000:]
    line = last_line(result, case.exit_code)
    for words in case.says:
        assert words in line, line
    assert "Traceback" not in result.stderr
    assert_no_secrets(result, emu, config)
