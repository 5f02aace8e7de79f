"""The Graph emulator's own tests, over real HTTPS with plain requests and msal.

Each test builds what it needs from a small tenant; the emulator is checked against the
documented behaviour of Entra ID and Microsoft Graph (see tests/graph_emulator/*.py).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.graph_emulator import GraphEmulator, PagingOptions, Tenant
from tests.graph_emulator.login import DEFAULT_ROLES

if TYPE_CHECKING:
    from collections.abc import Iterator

TODAY = dt.date(2026, 11, 26)


def _emulator() -> GraphEmulator:
    tenant = Tenant.synthetic(users=150, groups=8, seed=3, today=TODAY)
    return GraphEmulator(tenant, paging=PagingOptions(delta_page_size=40))


@pytest.fixture(scope="module")
def shared() -> Iterator[GraphEmulator]:
    with _emulator() as emulator:
        yield emulator


@pytest.fixture
def emu(shared: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    """The module's emulator, reset after each test (tests must not mutate its tenant)."""
    # The machine may export a system CA bundle, which requests prefers over verify=.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", shared.ca_bundle)
    yield shared
    shared.faults.clear()
    shared.app.secret_expired = False
    shared.app.roles = set(DEFAULT_ROLES)
    shared.clear_log()


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    """An emulator of its own, for tests that change the tenant or the paging options."""
    with _emulator() as emulator:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_bundle)
        yield emulator


def session_for(emulator: GraphEmulator) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {emulator.issue_token()}"
    return session


@pytest.fixture
def graph(emu: GraphEmulator) -> requests.Session:
    return session_for(emu)


def token_request(emu: GraphEmulator, tenant: str | None = None, **form: str) -> requests.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "scope": f"{emu.graph_url}/.default",
    }
    data.update(form)
    data = {k: v for k, v in data.items() if v != ""}
    return requests.post(
        f"{emu.authority_host}/{tenant or emu.tenant_id}/oauth2/v2.0/token", data=data, timeout=10
    )


def collect(
    session: requests.Session, url: str, **kw: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow nextLinks; returns (items, pages)."""
    items: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = session.get(next_url, timeout=10, **kw)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        items.extend(page["value"])
        next_url = page.get("@odata.nextLink")
    return items, pages


# ---------------------------------------------------------------------------- login


def msal_app(emu: GraphEmulator, credential: Any) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=credential,
        authority=f"{emu.authority_host}/{emu.tenant_id}",
        instance_discovery=False,
        timeout=10,
    )


def test_msal_secret_flow_and_token_use(emu: GraphEmulator) -> None:
    result = msal_app(emu, emu.client_secret).acquire_token_for_client(
        [f"{emu.graph_url}/.default"]
    )
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    response = requests.get(
        f"{emu.graph_url}/v1.0/organization",
        headers={"Authorization": f"Bearer {result['access_token']}", "client-request-id": "abc"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["value"][0]["id"] == emu.tenant_id
    assert response.headers["client-request-id"] == "abc"
    assert response.headers["request-id"]
    assert response.headers["Date"]
    assert all(emu.client_secret not in json.dumps(r.headers) for r in emu.request_log)


@pytest.mark.parametrize("form", ["thumbprint", "public_certificate"])
def test_msal_certificate_flow(emu: GraphEmulator, form: str) -> None:
    pem = Path(emu.client_certificate_path).read_bytes()
    cert = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE") :])
    credential: dict[str, Any] = {
        "private_key": pem.decode(),
        "passphrase": emu.client_certificate_password,
    }
    if form == "thumbprint":  # legacy RS256 + x5t
        credential["thumbprint"] = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303
    else:  # PS256 + x5t#S256
        credential["public_certificate"] = cert.public_bytes(serialization.Encoding.PEM).decode()
    result = msal_app(emu, credential).acquire_token_for_client([f"{emu.graph_url}/.default"])
    assert "access_token" in result, result


def _foreign_assertion(emu: GraphEmulator) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "RS256", "typ": "JWT", "x5t": b64(cert.fingerprint(hashes.SHA1()))}  # noqa: S303
    now = int(time.time())
    claims = {
        "aud": f"{emu.authority_host}/{emu.tenant_id}/oauth2/v2.0/token",
        "iss": emu.client_id,
        "sub": emu.client_id,
        "jti": str(uuid.uuid4()),
        "exp": now + 600,
        "nbf": now,
    }
    signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signed}.{b64(signature)}"


@pytest.mark.parametrize(
    ("case", "status", "error", "code"),
    [
        ("wrong_secret", 401, "invalid_client", 7000215),
        ("expired_secret", 401, "invalid_client", 7000222),
        ("unknown_client", 400, "unauthorized_client", 700016),
        ("unknown_tenant", 400, "invalid_request", 90002),
        ("malformed_tenant", 400, "invalid_request", 900023),
        ("missing_credential", 401, "invalid_client", 7000218),
        ("bad_scope", 400, "invalid_scope", 70011),
        ("foreign_certificate", 401, "invalid_client", 700027),
    ],
)
def test_token_errors(emu: GraphEmulator, case: str, status: int, error: str, code: int) -> None:
    tenant = None
    form: dict[str, str] = {}
    if case == "wrong_secret":
        form["client_secret"] = emu.app.secret_id  # the classic: the secret's ID, not its value
    elif case == "expired_secret":
        emu.app.secret_expired = True
    elif case == "unknown_client":
        form["client_id"] = str(uuid.uuid4())
    elif case == "unknown_tenant":
        tenant = "fabrikam.onmicrosoft.com"
    elif case == "malformed_tenant":
        tenant = "not a tenant!"
    elif case == "missing_credential":
        form["client_secret"] = ""
    elif case == "bad_scope":
        form["scope"] = "https://graph.microsoft.com/.default"
    elif case == "foreign_certificate":
        form.update(
            client_secret="",
            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion=_foreign_assertion(emu),
        )
    response = token_request(emu, tenant, **form)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    description = body["error_description"]
    assert description.startswith(f"AADSTS{code}: ")
    for line in ("Trace ID: ", "Correlation ID: ", "Timestamp: "):
        assert line in description
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= body.keys()
    assert emu.client_secret not in response.text


def test_discovery_endpoints(emu: GraphEmulator) -> None:
    by_domain = requests.get(
        f"{emu.authority_host}/{emu.tenant_domain}//v2.0/.well-known/openid-configuration",
        timeout=10,
    )
    assert by_domain.status_code == 200
    config = by_domain.json()
    assert config["token_endpoint"].split("/")[3] == emu.tenant_id
    assert {"authorization_endpoint", "issuer"} <= config.keys()
    missing = requests.get(
        f"{emu.authority_host}/contoso.example/v2.0/.well-known/openid-configuration", timeout=10
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_tenant"
    assert missing.json()["error_description"].startswith(
        "AADSTS90002: Tenant 'contoso.example' not found."
    )
    for version in ("1.0", "1.1"):
        instance = requests.get(
            f"{emu.authority_host}/common/discovery/instance",
            params={
                "api-version": version,
                "authorization_endpoint": f"{emu.authority_host}/common/oauth2/authorize",
            },
            timeout=10,
        ).json()
        assert instance["tenant_discovery_endpoint"].endswith(
            "/v2.0/.well-known/openid-configuration"
        )
        assert instance["metadata"][0]["aliases"]


# ---------------------------------------------------------------------------- graph basics


def test_bearer_and_role_checks(emu: GraphEmulator) -> None:
    url = f"{emu.graph_url}/v1.0/users"
    empty = requests.get(url, timeout=10)
    assert empty.status_code == 401
    assert empty.json()["error"] == {**empty.json()["error"], "code": "InvalidAuthenticationToken"}
    assert empty.json()["error"]["message"] == "Access token is empty."
    expired = emu.issue_token(lifetime=1)
    emu.tokens.expire_all()
    stale = requests.get(url, headers={"Authorization": f"Bearer {expired}"}, timeout=10)
    assert stale.status_code == 401
    assert stale.json()["error"]["message"] == "Access token has expired or is not yet valid."
    weak = emu.issue_token(roles=["Reports.Read.All"])
    denied = requests.get(url, headers={"Authorization": f"Bearer {weak}"}, timeout=10)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    assert denied.json()["error"]["message"] == "Insufficient privileges to complete the operation."
    settings = requests.get(
        f"{emu.graph_url}/v1.0/admin/reportSettings",
        headers={"Authorization": f"Bearer {emu.issue_token()}"},
        timeout=10,
    )
    assert settings.status_code == 403


def test_paging_with_select_and_top(emu: GraphEmulator, graph: requests.Session) -> None:
    url = f"{emu.graph_url}/v1.0/users?$select=id,displayName,assignedLicenses&$top=40"
    users, pages = collect(graph, url)
    assert len(users) == len(emu.tenant.users)
    assert len({u["id"] for u in users}) == len(users)
    assert [len(p["value"]) for p in pages][:-1] == [40] * (len(pages) - 1)
    assert all(set(u) == {"id", "displayName", "assignedLicenses"} for u in users)
    for page in pages[:-1]:
        link = page["@odata.nextLink"]
        assert link.startswith(f"{emu.graph_url}/v1.0/users?")
        assert link.count("$select=") == 1
        assert link.count("$top=40") == 1
        assert link.count("$skiptoken=") == 1
    assert "@odata.nextLink" not in pages[-1]
    assert all(
        p["@odata.context"].endswith("#users(id,displayName,assignedLicenses)") for p in pages
    )
    default, _ = collect(graph, f"{emu.graph_url}/v1.0/users")
    assert set(default[0]) == {
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    }
    groups, _ = collect(
        graph, f"{emu.graph_url}/v1.0/groups?$select=id,assignedLicenses,licenseProcessingState"
    )
    assert len(groups) == len(emu.tenant.groups)
    assert any(g["assignedLicenses"] for g in groups)


def test_seats_match_assignments(emu: GraphEmulator, graph: requests.Session) -> None:
    skus = graph.get(f"{emu.graph_url}/v1.0/subscribedSkus", timeout=10).json()
    assert "@odata.nextLink" not in skus
    users, _ = collect(graph, f"{emu.graph_url}/v1.0/users?$select=assignedLicenses&$top=999")
    for sku in skus["value"]:
        holders = sum(any(a["skuId"] == sku["skuId"] for a in u["assignedLicenses"]) for u in users)
        assert sku["consumedUnits"] == holders, sku["skuPartNumber"]
    subs = graph.get(f"{emu.graph_url}/v1.0/directory/subscriptions", timeout=10).json()["value"]
    assert {s["status"] for s in subs} >= {"Enabled", "Warning", "Suspended", "LockedOut"}
    only = graph.get(
        f"{emu.graph_url}/v1.0/subscribedSkus?$select=skuPartNumber", timeout=10
    ).json()
    assert all(set(s) == {"skuPartNumber"} for s in only["value"])


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        (
            "$top=1000",
            {},
            "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.",
        ),
        ("$top=0", {}, "Invalid page size specified: '0'. Must be between 1 and 999 inclusive."),
        (
            "$select=foo",
            {},
            "Could not find a property named 'foo' on type 'microsoft.graph.user'.",
        ),
        ("$top=5&$top=6", {}, "Query option '$top' was specified more than once"),
        ("$count=true", {}, "$count is not currently supported."),
    ],
)
def test_bad_requests(
    emu: GraphEmulator, graph: requests.Session, query: str, headers: dict[str, str], message: str
) -> None:
    response = graph.get(f"{emu.graph_url}/v1.0/users?{query}", headers=headers, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "Request_BadRequest"
    assert error["message"].startswith(message)
    assert error["innerError"]["request-id"] == response.headers["request-id"]


def test_count(emu: GraphEmulator, graph: requests.Session) -> None:
    assert graph.get(f"{emu.graph_url}/v1.0/users/$count", timeout=10).status_code == 400
    eventual = {"ConsistencyLevel": "eventual"}
    count = graph.get(f"{emu.graph_url}/v1.0/users/$count", headers=eventual, timeout=10)
    assert count.headers["Content-Type"].startswith("text/plain")
    assert int(count.text) == len(emu.tenant.users)
    _, pages = collect(graph, f"{emu.graph_url}/v1.0/users?$count=true&$top=100", headers=eventual)
    assert pages[0]["@odata.count"] == len(emu.tenant.users)
    assert all("@odata.count" not in p for p in pages[1:])


# ---------------------------------------------------------------------------- delta


def run_round(
    session: requests.Session, url: str, **kw: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    items, pages = collect(session, url, **kw)
    assert all("@odata.deltaLink" not in p for p in pages[:-1])
    return items, pages, pages[-1]["@odata.deltaLink"]


def test_user_delta_rounds(fresh: GraphEmulator) -> None:
    emu, graph = fresh, session_for(fresh)
    tenant = emu.tenant
    select = "displayName,mobilePhone,accountEnabled,assignedLicenses"
    items, pages, delta_link = run_round(
        graph, f"{emu.graph_url}/v1.0/users/delta?$select={select}&$top=5"
    )
    assert len(items) == len(tenant.users)  # $top is ignored by users/delta
    assert max(len(p["value"]) for p in pages) == 40
    assert all(p.get("@odata.nextLink", "").count("$select") == 0 for p in pages)
    with_phone = next(u for u in tenant.users.values() if u["mobilePhone"])
    without_phone = next(u for u in tenant.users.values() if not u["mobilePhone"])
    assert "mobilePhone" not in next(i for i in items if i["id"] == without_phone["id"])

    cleared = with_phone["id"]
    ids = [i for i in tenant.users if i != cleared]
    renamed, soft, hard, licensed, untracked = ids[1:6]
    tenant.update_user(renamed, displayName="Renamed User")
    tenant.update_user(cleared, mobilePhone=None)
    tenant.soft_delete_user(soft)
    tenant.hard_delete_user(hard)
    tenant.assign_license(licensed, "VISIOCLIENT")
    tenant.update_user(untracked, jobTitle="Not selected")
    new_id = tenant.add_user(displayName="New Person", mailNickname="new.person")

    changes, _, next_link = run_round(graph, delta_link)
    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {renamed, cleared, soft, hard, licensed, new_id}
    assert by_id[renamed]["displayName"] == "Renamed User"
    assert by_id[renamed]["accountEnabled"] in (True, False)  # default: unchanged values too
    assert by_id[cleared]["mobilePhone"] is None  # cleared: null, not omitted
    assert by_id[soft]["@removed"] == {"reason": "changed"}
    assert by_id[hard]["@removed"] == {"reason": "deleted"}
    assert any(
        a["skuId"] == "c5928f49-12ba-48f7-ada3-0d743a3601d5"
        for a in by_id[licensed]["assignedLicenses"]
    )
    assert by_id[new_id]["displayName"] == "New Person"

    tenant.update_user(renamed, displayName="Renamed Again")
    minimal = graph.get(next_link, headers={"Prefer": "return=minimal"}, timeout=10)
    assert minimal.headers["Preference-Applied"] == "return=minimal"
    assert minimal.json()["value"] == [{"displayName": "Renamed Again", "id": renamed}]

    latest = graph.get(f"{emu.graph_url}/v1.0/users/delta?$deltatoken=latest", timeout=10).json()
    assert latest["value"] == []
    assert "@odata.deltaLink" in latest
    tenant.update_user(renamed, displayName="After Latest")
    after = graph.get(latest["@odata.deltaLink"], timeout=10).json()
    assert [v["id"] for v in after["value"]] == [renamed]


def test_group_delta_membership(fresh: GraphEmulator) -> None:
    emu, graph = fresh, session_for(fresh)
    tenant = emu.tenant
    items, _, delta_link = run_round(graph, f"{emu.graph_url}/v1.0/groups/delta")
    license_group = next(g for g in tenant.groups.values() if g["assignedLicenses"])
    first = next(i for i in items if i["id"] == license_group["id"])
    assert {m["id"] for m in first["members@delta"]} == set(tenant.members_of(license_group["id"]))
    outsider = next(u for u in tenant.users if u not in tenant.members_of(license_group["id"]))
    tenant.add_group_member(license_group["id"], outsider)
    changes, _, _ = run_round(graph, delta_link)
    assert changes[0]["members@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": outsider}]
    user = tenant.users[outsider]
    inherited = [
        s for s in user["licenseAssignmentStates"] if s["assignedByGroup"] == license_group["id"]
    ]
    assert inherited
    assert inherited[0]["state"] in ("Active", "Error")


def test_delta_quirks_and_expiry(fresh: GraphEmulator) -> None:
    emu, graph = fresh, session_for(fresh)
    emu.paging.empty_page_every = 2
    emu.paging.delta_duplicates = True
    items, pages, delta_link = run_round(
        graph, f"{emu.graph_url}/v1.0/users/delta?$select=displayName"
    )
    assert any(p["value"] == [] and "@odata.nextLink" in p for p in pages)
    assert len(items) > len({i["id"] for i in items}) == len(emu.tenant.users)

    emu.expire_delta_tokens()
    expired = graph.get(delta_link, timeout=10)
    assert expired.status_code == 400
    assert expired.json()["error"]["code"] == "syncStateNotFound"

    _, _, fresh_link = run_round(graph, f"{emu.graph_url}/v1.0/users/delta?$select=displayName")
    emu.expire_delta_tokens(resync=True)
    gone = graph.get(fresh_link, timeout=10)
    assert gone.status_code == 410
    location = gone.headers["Location"]
    assert location.endswith("$deltatoken=")
    assert "$select=displayName" in location
    restarted, _, aged = run_round(graph, location)
    assert len({i["id"] for i in restarted}) == len(emu.tenant.users)

    emu.tenant.today += dt.timedelta(days=8)  # directory delta tokens live 7 days
    assert graph.get(aged, timeout=10).json()["error"]["code"] == "syncStateNotFound"
    both = graph.get(f"{emu.graph_url}/v1.0/users/delta?$skiptoken=x&$select=id", timeout=10)
    assert both.status_code == 400


# ---------------------------------------------------------------------------- $batch


def test_batch(emu: GraphEmulator, graph: requests.Session) -> None:
    url = f"{emu.graph_url}/v1.0/$batch"
    emu.faults.throttle(path=r"/organization$", retry_after=7)
    body = {
        "requests": [
            {"id": "1", "method": "GET", "url": "/users?$select=id&$top=2"},
            {"id": "2", "method": "GET", "url": "/organization"},
            {"id": "3", "method": "GET", "url": "/subscribedSkus", "dependsOn": ["2"]},
            {
                "id": "4",
                "method": "GET",
                "url": "users/$count",
                "headers": {"ConsistencyLevel": "eventual"},
            },
        ]
    }
    response = graph.post(url, json=body, timeout=10)
    assert response.status_code == 200
    items = {r["id"]: r for r in response.json()["responses"]}
    assert items["1"]["status"] == 200
    assert len(items["1"]["body"]["value"]) == 2
    assert items["1"]["body"]["@odata.nextLink"].startswith(f"{emu.graph_url}/v1.0/users?")
    assert items["2"]["status"] == 429
    assert items["2"]["headers"]["Retry-After"] == "7"
    assert items["3"]["status"] == 424
    assert items["4"]["body"] == str(len(emu.tenant.users))
    duplicate = {"requests": [{"id": "1", "method": "GET", "url": "/users"}] * 2}
    assert graph.post(url, json=duplicate, timeout=10).status_code == 400
    too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]}
    assert graph.post(url, json=too_many, timeout=10).status_code == 400


# ---------------------------------------------------------------------------- faults


def test_status_faults(emu: GraphEmulator, graph: requests.Session) -> None:
    url = f"{emu.graph_url}/v1.0/organization"
    emu.faults.throttle(path="/organization", times=2, retry_after=3)
    for _ in range(2):
        throttled = graph.get(url, timeout=10)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "3"
        error = throttled.json()["error"]
        assert error["code"] == "TooManyRequests"
        assert error["innerError"]["status"] == "429"
    assert graph.get(url, timeout=10).status_code == 200
    rule = emu.faults.error(503, every=2, times=None)
    assert [graph.get(url, timeout=10).status_code for _ in range(4)] == [
        200,
        503,
        200,
        503,
    ]  # every 2nd
    emu.faults.remove(rule)
    emu.faults.html(502)
    page = graph.get(url, timeout=10)
    assert page.status_code == 502
    assert page.headers["Content-Type"].startswith("text/html")
    emu.faults.truncated_json(path="/organization")
    cut = graph.get(url, timeout=10)
    assert cut.status_code == 200
    with pytest.raises(ValueError):  # noqa: PT011
        cut.json()
    assert [r.fault for r in emu.request_log if r.fault][-2:] == ["html", "truncated_json"]


def test_connection_faults_and_latency(emu: GraphEmulator, graph: requests.Session) -> None:
    url = f"{emu.graph_url}/v1.0/users?$top=999"
    emu.faults.reset(path="/users")
    with pytest.raises(requests.ConnectionError):
        graph.get(url, timeout=10)
    emu.faults.reset_body(path="/users", fraction=0.3)
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        graph.get(url, timeout=10)
    assert graph.get(url, timeout=10).status_code == 200
    emu.faults.latency(0.3, path="/organization", times=1)
    started = time.monotonic()
    graph.get(f"{emu.graph_url}/v1.0/organization", timeout=10)
    assert time.monotonic() - started >= 0.3


def test_short_token_lifetime(emu: GraphEmulator) -> None:
    emu.faults.token_lifetime(1)
    token = token_request(emu).json()
    assert token["expires_in"] == 1
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    time.sleep(1.1)
    expired = requests.get(f"{emu.graph_url}/v1.0/organization", headers=headers, timeout=10)
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "Access token has expired or is not yet valid."


def test_fault_profiles(emu: GraphEmulator, graph: requests.Session) -> None:
    for name in emu.faults.PROFILES:
        assert emu.faults.profile(name)
    emu.faults.clear()
    emu.faults.profile("throttling")
    statuses = [
        graph.get(f"{emu.graph_url}/v1.0/organization", timeout=10).status_code for _ in range(8)
    ]
    assert statuses.count(429) == 2
    with pytest.raises(ValueError, match="unknown fault profile"):
        emu.faults.profile("nope")


# ---------------------------------------------------------------------------- reports, tenant


def test_reports_are_delegated(emu: GraphEmulator, graph: requests.Session) -> None:
    url = f"{emu.graph_url}/v1.0/reports/getOffice365ActiveUserDetail(period='D7')"
    weak = emu.issue_token(roles=["User.Read.All"])
    denied = requests.get(url, headers={"Authorization": f"Bearer {weak}"}, timeout=10)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "S2SUnauthorized"
    response = graph.get(url, allow_redirects=False, timeout=10)
    if emu.reports is None:
        assert response.status_code == 404
    else:
        assert response.status_code not in (401, 403)


def test_synthetic_tenant_variety_and_determinism() -> None:
    one = Tenant.synthetic(users=400, groups=10, seed=5, today=TODAY)
    two = Tenant.synthetic(users=400, groups=10, seed=5, today=TODAY)
    assert one.users == two.users
    assert one.groups == two.groups
    assert one.skus == two.skus
    users = list(one.users.values())
    assert {u["userType"] for u in users} == {"Member", "Guest"}
    assert any(not u["accountEnabled"] and u["assignedLicenses"] for u in users)
    assert any(not u["assignedLicenses"] for u in users)
    assert any(any(d["disabledPlans"] for d in u["assignedLicenses"]) for u in users)
    states = [s for u in users for s in u["licenseAssignmentStates"]]
    assert {s["error"] for s in states} >= {"None", "CountViolation"}
    assert any(s["assignedByGroup"] for s in states)
    assert any(not s["assignedByGroup"] for s in states)
    assert {u["onPremisesSyncEnabled"] for u in users} == {True, None}
    assert one.deleted_users
    assert all(u["deletedDateTime"] for u in one.deleted_users.values())
    for sku in one.skus:
        holders = sum(any(a["skuId"] == sku["skuId"] for a in u["assignedLicenses"]) for u in users)
        assert holders == sku["consumedUnits"]


@contextlib.contextmanager
def standalone(tmp_path: Path, *options: str) -> Iterator[dict[str, Any]]:
    """`python -m tests.graph_emulator OPTIONS` running; its config file's settings."""
    config_path = tmp_path / "emulator-config.json"
    command = [sys.executable, "-m", "tests.graph_emulator", *options]
    process = subprocess.Popen(
        [*command, "--config-out", str(config_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("graph-emulator ready")
        yield json.loads(config_path.read_text())
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


def request_token(config: dict[str, Any], tenant_id: str) -> requests.Response:
    """A client-credentials token request for one tenant, with the config's app."""
    return requests.post(
        f"{config['authority_host']}/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": config["client_id"],
            "client_secret": config["client_secret"],
            "scope": f"{config['graph_url']}/.default",
        },
        verify=config["ca_bundle"],
        timeout=10,
    )


def test_standalone_process(tmp_path: Path) -> None:
    with standalone(tmp_path, "--users", "20", "--groups", "3") as config:
        assert request_token(config, config["tenant_id"]).status_code == 200
