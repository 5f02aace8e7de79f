"""The `tenants` setting, pure logic: what each tenant inherits, what is checked, what is masked,
and how every stream's schema and key gain `tenant_id`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tap_microsoft365 import settings
from tap_microsoft365.graph.auth import describe_token_error
from tap_microsoft365.streams.base import with_tenant_id, with_tenant_key
from tap_microsoft365.tenants import Tenants, tenant_settings

CLIENT = "9b2f4c1e-5d6a-4b8c-9e0f-1a2b3c4d5e6f"
OWN_CLIENT = "1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"
A = "72f988bf-86f1-41af-91ab-2d7cd011db47"
B = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
TOP = {
    "client_id": CLIENT,
    "client_secret": "top-level-secret-value",
    "graph_url": "https://graph.example",
    "authority_host": "https://login.example",
}


def config(*entries: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**TOP, **top, "tenants": list(entries)}


def problems(value: dict[str, Any]) -> list[str]:
    return settings.problems(copy.deepcopy(settings.CONFIG_SCHEMA), value)


def test_a_tenant_inherits_what_it_leaves_out() -> None:
    first, second = tenant_settings(
        config(
            {"tenant_id": A, "name": "Contoso"},
            {
                "tenant_id": "fabrikam.onmicrosoft.com",
                "client_id": OWN_CLIENT,
                "cloud": "usgov",
                "client_certificate_path": "/certs/fabrikam.pem",
            },
        )
    )
    assert (first.client_id, first.client_secret, first.graph_url) == (
        CLIENT,
        "top-level-secret-value",
        "https://graph.example",
    )
    assert first.label == f"Contoso ({A})"
    # Its own credential replaces both top-level ones; its own cloud the host overrides.
    assert second.client_id == OWN_CLIENT
    assert second.client_secret is None
    assert second.client_certificate_path == "/certs/fabrikam.pem"
    assert (second.cloud, second.graph_url, second.authority_host) == ("usgov", None, None)
    assert second.label == "fabrikam.onmicrosoft.com"
    assert "top-level-secret-value" not in repr(first)


def test_the_top_level_tenant_alone_keeps_working() -> None:
    only = tenant_settings({**TOP, "tenant_id": A})
    assert [(t.tenant_id, t.client_id) for t in only] == [(A, CLIENT)]
    tenants = Tenants({**TOP, "tenant_id": A})
    assert tenants.contexts() is None  # its state stays where single-tenant runs kept it
    assert not tenants.isolated
    several = Tenants(config({"tenant_id": A}, {"tenant_id": B}))
    assert several.contexts() == [{"tenant_id": A}, {"tenant_id": B}]
    assert several.isolated
    assert several.of({"tenant_id": B}).key == B
    assert several.of(None).key == A


def test_a_valid_tenants_config_has_no_problems() -> None:
    assert problems(config({"tenant_id": A}, {"tenant_id": "fabrikam.onmicrosoft.com"})) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (config({"tenant_id": "contoso"}), "tenants[0].tenant_id 'contoso' is neither a GUID"),
        (config({"name": "x"}), "tenants[0]: tenant_id is missing"),
        (config({"tenant_id": A, "colour": "red"}), "tenants[0]: 'colour' was unexpected: use"),
        ({**TOP, "tenants": ["secret-looking-text"]}, "tenants[0] is not a JSON object"),
        ({**TOP, "tenants": {"tenant_id": A}}, "tenants is not a JSON array of objects"),
        (
            config({"tenant_id": A, "client_certificate_path": "/x.pem", "client_secret": "s"}),
            f"tenants[0] ({A}): client_secret and client_certificate_path are both set",
        ),
        (
            {**config({"tenant_id": A}), "client_secret": None},
            f"tenants[0] ({A}): no credential",
        ),
        (
            {**config({"tenant_id": A}), "client_id": None},
            f"tenants[0] ({A}): no client_id",
        ),
        (config({"tenant_id": A}, {"tenant_id": A.upper()}), "the tenant is listed twice"),
        ({**TOP}, "tenant_id is missing"),
    ],
)
def test_each_tenant_problem_is_named(value: dict[str, Any], expected: str) -> None:
    value = {k: v for k, v in value.items() if v is not None}
    found = problems(value)
    assert any(expected in line for line in found), found


def test_secrets_inside_tenants_are_masked_and_nothing_else() -> None:
    value = config(
        {"tenant_id": A, "name": "Contoso", "client_secret": "contoso-own-secret"},
        {
            "tenant_id": B,
            "client_certificate_path": "/b.pem",
            "client_certificate_password": "pw-b",
        },
    )
    masked = settings.secret_values(value)
    assert {"top-level-secret-value", "contoso-own-secret", "pw-b"} <= set(masked)
    assert not {A, B, "Contoso", "/b.pem"} & set(masked)
    for wrong in (
        [{"tenant_id": A, "client_secret": 12345678}],
        [{"tenant_id": A, "client_secret": "12345678", "colour": 1}],
        ["12345678"],
    ):
        problem = problems({**value, "tenants": wrong})
        assert problem
        assert not any("12345678" in line for line in problem), problem


def test_consent_failures_give_the_tenants_admin_consent_url() -> None:
    url = f"https://login.microsoftonline.com/{A}/adminconsent?client_id={CLIENT}"
    body = {"error": "invalid_grant", "error_codes": [65001], "trace_id": "t"}
    line = describe_token_error(body, f"https://login.microsoftonline.com/{A}", url)
    assert url in line
    wrong_secret = {"error": "invalid_client", "error_codes": [7000215]}
    assert url not in describe_token_error(wrong_secret, "x", url)


def test_tenant_id_comes_first_in_every_schema_and_key() -> None:
    schema = {"properties": {"id": {"type": "string"}, "name": {}}, "required": ["id"]}
    shaped = with_tenant_id(schema)
    assert list(shaped["properties"]) == ["tenant_id", "id", "name"]
    assert shaped["required"] == ["tenant_id", "id"]
    assert list(with_tenant_id(shaped)["properties"]) == ["tenant_id", "id", "name"]
    assert with_tenant_key(("report_date", "user_principal_name")) == (
        "tenant_id",
        "report_date",
        "user_principal_name",
    )
    assert with_tenant_key(("tenant_id", "id")) == ("tenant_id", "id")
