"""The Graph emulator serving several tenants: one multi-tenant app consented in each, over HTTPS.

What it emulates, from Microsoft's pages: an app registration is one object in its home tenant and
a service principal in every tenant that consented to it; an app-only token is for one tenant (its
`tid` claim), so Graph answers a token with that tenant's data alone
(https://learn.microsoft.com/entra/identity-platform/howto-convert-app-to-be-multi-tenant); a
tenant whose administrator never consented refuses the token with AADSTS65001, 400 invalid_grant,
suberror consent_required (the body of a real refusal:
https://github.com/MicrosoftDocs/azure-docs/issues/39189); Graph's report limits count per app
and per tenant (https://learn.microsoft.com/graph/throttling-limits#reports-service-limits).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import TYPE_CHECKING, Any

import msal
import pytest
import requests

from tests.graph_emulator import AppRegistration, GraphEmulator, Tenant
from tests.graph_emulator.login import DEFAULT_ROLES
from tests.test_emulator import request_token, standalone

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TODAY = dt.date(2026, 11, 26)
REPORT = "getOffice365ActiveUserDetail(period='D7')"


def _tenant(seed: int, name: str, users: int) -> Tenant:
    return Tenant.synthetic(
        users=users,
        groups=4,
        seed=seed,
        today=TODAY,
        domain=f"{name.lower()}.onmicrosoft.com",
        display_name=name,
    )


@pytest.fixture(scope="module")
def shared() -> Iterator[GraphEmulator]:
    """Contoso (the first tenant), Fabrikam and Northwind (never consented)."""
    emulator = GraphEmulator(_tenant(21, "Contoso", 30), tenants=[_tenant(22, "Fabrikam", 45)])
    emulator.add_tenant(_tenant(23, "Northwind", 20), consented=False)
    with emulator:
        yield emulator


@pytest.fixture
def emu(shared: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", shared.ca_bundle)
    yield shared
    shared.faults.clear()
    shared.app.roles = set(DEFAULT_ROLES)
    shared.app.secret_expired = False
    for site in shared.sites.values():
        site.roles = None
    shared.clear_log()


def tenants(emu: GraphEmulator) -> dict[str, Tenant]:
    return {site.tenant.display_name: site.tenant for site in emu.sites.values()}


def token_request(
    emu: GraphEmulator, tenant: str, client_id: str | None = None, secret: str | None = None
) -> requests.Response:
    return requests.post(
        f"{emu.authority_host}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id or emu.client_id,
            "client_secret": secret or emu.client_secret,
            "scope": f"{emu.graph_url}/.default",
        },
        timeout=10,
    )


def graph_for(emu: GraphEmulator, tenant: str) -> requests.Session:
    """A session holding a token the login host issued for `tenant` (GUID or domain)."""
    response = token_request(emu, tenant)
    assert response.status_code == 200, response.text
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def all_items(session: requests.Session, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = session.get(next_url, timeout=10)
        assert response.status_code == 200, response.text
        items.extend(response.json()["value"])
        next_url = response.json().get("@odata.nextLink")
    return items


def report_rows(session: requests.Session, emu: GraphEmulator) -> tuple[str, list[dict[str, str]]]:
    """(download location, rows) of one report call through the 302."""
    response = session.get(f"{emu.graph_url}/v1.0/reports/{REPORT}", allow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    body = requests.get(location, timeout=10).content.decode("utf-8-sig")
    return location, list(csv.DictReader(io.StringIO(body)))


def test_a_token_reads_only_its_own_tenant(emu: GraphEmulator) -> None:
    by_name = tenants(emu)
    contoso, fabrikam = by_name["Contoso"], by_name["Fabrikam"]
    assert emu.tenant is contoso  # the single-tenant API keeps meaning the first tenant
    for tenant, named_by in ((contoso, contoso.tenant_id), (fabrikam, fabrikam.domain)):
        graph = graph_for(emu, named_by)
        organization = graph.get(f"{emu.graph_url}/v1.0/organization", timeout=10).json()
        assert [org["id"] for org in organization["value"]] == [tenant.tenant_id]
        users = all_items(graph, f"{emu.graph_url}/v1.0/users?$select=id,userPrincipalName")
        assert {user["id"] for user in users} == set(tenant.users)
        domains = (tenant.default_domain, tenant.domain)  # members, guests (#EXT#)
        assert all(user["userPrincipalName"].endswith(domains) for user in users)
    assert not set(contoso.users) & set(fabrikam.users)
    served = {rec.tenant_id for rec in emu.request_log if rec.role == "graph"}
    assert served == {contoso.tenant_id, fabrikam.tenant_id}


def test_delta_and_batch_answer_for_the_token_tenant(emu: GraphEmulator) -> None:
    fabrikam = tenants(emu)["Fabrikam"]
    graph = graph_for(emu, fabrikam.tenant_id)
    delta = all_items(graph, f"{emu.graph_url}/v1.0/users/delta?$select=id")
    assert {user["id"] for user in delta} == set(fabrikam.users)
    batch = graph.post(
        f"{emu.graph_url}/v1.0/$batch",
        json={"requests": [{"id": "1", "method": "GET", "url": "/organization"}]},
        timeout=10,
    ).json()
    assert batch["responses"][0]["body"]["value"][0]["id"] == fabrikam.tenant_id


def test_withheld_consent_refuses_the_token_with_aadsts65001(emu: GraphEmulator) -> None:
    northwind = tenants(emu)["Northwind"]
    response = token_request(emu, northwind.tenant_id)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_grant"
    assert body["error_codes"] == [65001]
    assert body["suberror"] == "consent_required"
    assert body["error_description"].startswith(
        f"AADSTS65001: The user or administrator has not consented to use the application "
        f"with ID '{emu.client_id}'"
    )
    assert {"trace_id", "correlation_id", "timestamp"} <= set(body)
    # MSAL hands the same body back; the other tenants still get tokens.
    app = msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=emu.client_secret,
        authority=f"{emu.authority_host}/{northwind.domain}",
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[f"{emu.graph_url}/.default"])
    assert result.get("error_codes") == [65001]
    assert "access_token" not in result
    assert token_request(emu, tenants(emu)["Fabrikam"].tenant_id).status_code == 200


def test_roles_are_granted_per_tenant(emu: GraphEmulator) -> None:
    by_name = tenants(emu)
    emu.site(by_name["Fabrikam"].tenant_id).roles = set(DEFAULT_ROLES) - {"Reports.Read.All"}
    denied = graph_for(emu, by_name["Fabrikam"].tenant_id)
    response = denied.get(f"{emu.graph_url}/v1.0/reports/{REPORT}", allow_redirects=False)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "S2SUnauthorized"
    allowed = graph_for(emu, by_name["Contoso"].tenant_id)
    assert allowed.get(f"{emu.graph_url}/v1.0/reports/{REPORT}", allow_redirects=False).ok


def test_each_tenant_has_its_own_report_data_and_budget(emu: GraphEmulator) -> None:
    by_name = tenants(emu)
    contoso, fabrikam = by_name["Contoso"], by_name["Fabrikam"]
    sessions = {t.tenant_id: graph_for(emu, t.tenant_id) for t in (contoso, fabrikam)}
    for tenant in (contoso, fabrikam):
        location, rows = report_rows(sessions[tenant.tenant_id], emu)
        upns = {row["User Principal Name"] for row in rows}
        assert upns, "every tenant has licensed users"
        assert all(upn.endswith((tenant.default_domain, tenant.domain)) for upn in upns)
        if tenant is fabrikam:
            assert f"/tenants/{fabrikam.tenant_id}/data/download/" in location
    # 14 calls per 10 minutes per report per app per tenant: Contoso's budget runs out ...
    contoso_reports = emu.reports_of(contoso.tenant_id)
    used = sum(1 for call in contoso_reports.calls if call.status != 429)
    url = f"{emu.graph_url}/v1.0/reports/{REPORT}"
    for _ in range(contoso_reports.calls_per_window - used):
        assert sessions[contoso.tenant_id].get(url, allow_redirects=False).status_code == 302
    throttled = sessions[contoso.tenant_id].get(url, allow_redirects=False)
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    # ... while Fabrikam's is its own.
    assert sessions[fabrikam.tenant_id].get(url, allow_redirects=False).status_code == 302
    assert emu.reports_of(fabrikam.tenant_id) is not contoso_reports


def test_a_tenant_with_its_own_app_registration(emu: GraphEmulator) -> None:
    own = AppRegistration(
        client_id=str(uuid.uuid4()), secret_value="Zx18Q~" + "s" * 34, secret_id=str(uuid.uuid4())
    )
    tenant = _tenant(24, "Tailspin", 10)
    emu.add_tenant(tenant, app=own)
    try:
        refused = token_request(emu, tenant.tenant_id)  # the multi-tenant app is not there
        assert refused.status_code == 400
        assert refused.json()["error_codes"] == [700016]
        assert token_request(emu, tenant.tenant_id, own.client_id, own.secret_value).ok
        own.secret_expired = True
        expired = token_request(emu, tenant.tenant_id, own.client_id, own.secret_value)
        assert expired.json()["error_codes"] == [7000222]
        assert token_request(emu, emu.tenant_id).ok  # other tenants are not affected
        entry = next(e for e in emu.tenants_config()["tenants"] if e["name"] == "Tailspin")
        assert entry == {
            "tenant_id": tenant.tenant_id,
            "name": "Tailspin",
            "client_id": own.client_id,
            "client_secret": own.secret_value,
        }
    finally:
        del emu.sites[tenant.tenant_id]


def test_config_of_every_tenant(emu: GraphEmulator) -> None:
    single = emu.config()
    assert single["tenant_id"] == emu.tenant_id
    config = emu.tenants_config()
    assert "tenant_id" not in config
    assert config["client_id"] == single["client_id"]
    assert [(e["tenant_id"], e["name"]) for e in config["tenants"]] == [
        (site.tenant_id, site.tenant.display_name) for site in emu.sites.values()
    ]
    with pytest.raises(ValueError, match="already served"):
        emu.add_tenant(emu.tenant)


def test_the_command_line_serves_several_tenants(tmp_path: Path) -> None:
    options = ("--users", "15", "--groups", "2", "--tenants", "3", "--no-consent", "3")
    with standalone(tmp_path, *options) as config:
        assert "tenant_id" not in config
        assert [entry["name"] for entry in config["tenants"]] == ["Contoso", "Tenant 2", "Tenant 3"]
        statuses = []
        for entry in config["tenants"]:
            response = request_token(config, entry["tenant_id"])
            statuses.append((response.status_code, response.json().get("error_codes")))
        assert statuses == [(200, None), (200, None), (400, [65001])]
