"""Fast checks of the settings rules, the environment reader and the state checks (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from tap_microsoft365 import settings, state_check
from tap_microsoft365.errors import StateError

GUID = "11111111-2222-3333-4444-555555555555"
VALID = {"tenant_id": "contoso.onmicrosoft.com", "client_id": GUID, "client_secret": "s3cret~x"}


def problems(**changes: Any) -> list[str]:
    config = {**VALID, **changes}
    return settings.problems(
        settings.CONFIG_SCHEMA, {k: v for k, v in config.items() if v is not None}
    )


def test_a_valid_config_has_no_problem() -> None:
    assert problems() == []
    assert problems(tenant_id=GUID, graph_url="https://graph.microsoft.us/") == []
    assert problems(product_names_url="", report_window_seconds=2.5) == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"tenant_id": "contoso"}, "tenant_id 'contoso' is neither a GUID nor a domain"),
        ({"client_id": "my-app"}, "client_id 'my-app' is not a GUID"),
        ({"cloud": "mars"}, "cloud 'mars' is unknown: use one of global, usgov, usgov_dod, china"),
        ({"page_size": 0}, "page_size 0 is out of range: Graph accepts 1 to 999"),
        ({"report_window_seconds": 0}, "report_window_seconds 0 is out of range"),
        (
            {"product_names_cache_hours": -1},
            "product_names_cache_hours -1 is out of range: use at least 0",
        ),
        ({"graph_url": "https://graph.microsoft.com/v1.0"}, "has a path: remove it"),
        ({"authority_host": "http://login.microsoftonline.com"}, "must be an https:// URL"),
        ({"client_secret": None}, "no credential: set client_secret"),
        ({"client_certificate_password": "pw12"}, "client_certificate_password is set without"),
        ({"start_date": "yesterday"}, "start_date 'yesterday' is not a date"),
    ],
)
def test_each_rule_names_its_setting_and_the_fix(change: dict[str, Any], says: str) -> None:
    (found,) = problems(**change)
    assert says in found


def test_every_problem_is_in_one_message() -> None:
    found = problems(tenant_id=None, client_id=None, client_secret=None)
    message = settings.message(found)
    assert message.startswith("3 settings problems: (1) tenant_id is missing")
    assert "(2) client_id is missing" in message
    assert "(3) no credential" in message


@pytest.mark.parametrize("secret", [["Zq8~abcdefgh"], {"v": "Zq8~abcdefgh"}, 12345678, 1.5e9])
def test_a_secret_of_any_type_is_masked_and_never_shown(secret: Any) -> None:
    (found,) = problems(client_secret=secret)
    assert "not shown" in found
    assert "Zq8~abcdefgh" not in found
    assert "12345678" not in found
    strings = settings.secret_values({"client_secret": secret})
    assert strings
    assert all(isinstance(text, str) for text in strings)


def test_the_environment_gives_numbers_as_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAP_X_PAGE_SIZE", "500")
    monkeypatch.setenv("TAP_X_REPORT_WINDOW_SECONDS", "2.5")
    monkeypatch.setenv("TAP_X_REQUEST_TIMEOUT", "abc")
    monkeypatch.setenv("TAP_X_SKIP_FORBIDDEN_STREAMS", "true")

    config = settings.environment_config(settings.CONFIG_SCHEMA, "TAP_X_")

    assert config["page_size"] == 500
    assert config["report_window_seconds"] == 2.5
    assert config["request_timeout"] == "abc"  # left for the check to name
    assert config["skip_forbidden_streams"] is True


@pytest.mark.parametrize(
    "state",
    [
        [],
        {"bookmarks": []},
        {"bookmarks": {"users": 1}},
        {"bookmarks": {"users": {"table_version": 1.5}}},
    ],
)
def test_states_the_tap_cannot_resume_from(state: Any) -> None:
    with pytest.raises(StateError):
        state_check.check_state(state)


def test_a_bookmark_on_another_replication_key() -> None:
    state = {"bookmarks": {"r": {"replication_key": "old", "replication_key_value": "x"}}}
    state_check.check_state(state)  # its shape is fine
    with pytest.raises(StateError, match="kept on replication_key 'old'"):
        state_check.check_replication_keys(state, [("r", "report_date")])
    state_check.check_replication_keys(state, [("r", "old")])


def test_files_named_on_the_command_line() -> None:
    argv = ["--config", "a.json", "--config=ENV", "--state", "s.json", "--catalog", "c.json"]
    assert state_check.command_line_files(argv, "--config") == ["a.json", "ENV"]
    assert state_check.command_line_files(argv, "--state") == ["s.json"]
