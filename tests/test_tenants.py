"""Many tenants in one run (setting `tenants`), end to end over HTTPS against the emulator.

Three tenants share one multi-tenant app: Contoso (by GUID), Fabrikam (configured by its domain)
and Northwind, whose administrator never consented (Entra ID answers AADSTS65001). The run loads
Contoso and Fabrikam completely, each record carrying its tenant's GUID, names Northwind in one
ERROR line, and exits 9 with a last line listing it. The next run, from that run's STATE and with
Northwind's consent granted, is incremental for Contoso and Fabrikam (their delta links and
report bookmarks are their own) and a first full read for Northwind.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tap_microsoft365.tap import TapMicrosoft365
from tests.graph_emulator import GraphEmulator, Tenant
from tests.singer_run import SyncResult, run_tap

if TYPE_CHECKING:
    from collections.abc import Iterator

TODAY = dt.date(2026, 11, 26)
SCALE = 0.005  # Graph's 10-minute report window lasts 3 s
START = TODAY - dt.timedelta(days=5)
STREAMS = {
    "organization",
    "subscribed_skus",
    "users",
    "groups",
    "license_assignments",
    "office365_active_user_detail",
    "email_activity_user_detail",
}
REPORTS = ("office365_active_user_detail", "email_activity_user_detail")


def _tenant(seed: int, name: str, users: int) -> Tenant:
    return Tenant.synthetic(
        users=users,
        groups=6,
        seed=seed,
        today=TODAY,
        domain=f"{name.lower()}.onmicrosoft.com",
        display_name=name,
    )


def catalog() -> dict[str, Any]:
    settings = {"tenant_id": "contoso.onmicrosoft.com", "client_id": str(uuid.uuid4())}
    tap = TapMicrosoft365(config=settings, parse_env_config=False, validate_config=False)
    found = copy.deepcopy(tap.catalog_dict)
    for entry in found["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in STREAMS
    return found


@dataclass
class Runs:
    emulator: GraphEmulator
    contoso: Tenant
    fabrikam: Tenant
    northwind: Tenant
    first: SyncResult
    first_log: list[Any]
    second: SyncResult
    second_log: list[Any]
    changed_user: str
    fresh: SyncResult  # every tenant read in full (no state), all consented


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    contoso = _tenant(41, "Contoso", 40)
    fabrikam = _tenant(42, "Fabrikam", 30)
    northwind = _tenant(43, "Northwind", 20)
    emulator = GraphEmulator(contoso, tenants=[fabrikam], time_scale=SCALE)
    emulator.add_tenant(northwind, consented=False)
    with emulator:
        config = emulator.tenants_config(start_date=START.isoformat(), report_window_seconds=3)
        # Fabrikam by its domain: its records must still carry its GUID.
        config["tenants"][1]["tenant_id"] = fabrikam.domain
        selection = catalog()
        first = run_tap(config, ca_bundle=emulator.ca_bundle, catalog=selection)
        first_log = list(emulator.request_log)
        emulator.clear_log()
        changed = next(iter(fabrikam.users))
        fabrikam.update_user(changed, department="Procurement")
        emulator.site(northwind.tenant_id).consented = True  # consent granted after the run
        second = run_tap(
            config, ca_bundle=emulator.ca_bundle, catalog=selection, state=first.last_state
        )
        second_log = list(emulator.request_log)
        fresh = run_tap(config, ca_bundle=emulator.ca_bundle, catalog=selection)
        yield Runs(
            emulator,
            contoso,
            fabrikam,
            northwind,
            first,
            first_log,
            second,
            second_log,
            changed,
            fresh,
        )


def keyed(result: SyncResult) -> dict[str, list[str]]:
    return {m["stream"]: m["key_properties"] for m in result.messages if m["type"] == "SCHEMA"}


def by_tenant(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["tenant_id"], []).append(record)
    return grouped


def test_a_tenant_without_consent_fails_alone_with_one_error_line(runs: Runs) -> None:
    result = runs.first
    assert result.exit_code == 9, result.stderr[-3000:]
    northwind = runs.northwind
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    naming = [line for line in errors if "Northwind" in line and "AADSTS65001" in line]
    assert len(naming) == 1, errors
    assert northwind.tenant_id in naming[0]
    assert "admin consent" in naming[0]
    # The URL an administrator of that tenant opens to consent to the app.
    consent = f"/{northwind.tenant_id}/adminconsent?client_id={runs.emulator.client_id}"
    assert consent in naming[0]
    last = result.stderr.strip().splitlines()[-1]
    assert "ERROR" in last
    assert f"1 of 3 tenants failed: Northwind ({northwind.tenant_id})" in last
    assert runs.emulator.client_secret not in result.output


def test_every_record_carries_its_tenants_guid_first_in_every_key(runs: Runs) -> None:
    result = runs.first
    keys = keyed(result)
    assert set(keys) == STREAMS
    guids = {runs.contoso.tenant_id, runs.fabrikam.tenant_id}
    for stream in STREAMS:
        assert keys[stream][0] == "tenant_id", stream
        schema = next(m for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == stream)
        assert next(iter(schema["schema"]["properties"])) == "tenant_id"
        records = result.records(stream)
        assert {r["tenant_id"] for r in records} == guids, stream  # Fabrikam's GUID, not domain
        counts = Counter(tuple(r[k] for k in keys[stream]) for r in records)
        assert not [k for k, n in counts.items() if n > 1], f"{stream}: duplicate keys"


def test_each_tenants_rows_equal_its_own_data(runs: Runs) -> None:
    result = runs.first
    for tenant in (runs.contoso, runs.fabrikam):
        organization = by_tenant(result.records("organization"))[tenant.tenant_id]
        assert [o["id"] for o in organization] == [tenant.tenant_id]
        users = by_tenant(result.records("users"))[tenant.tenant_id]
        assert {u["id"] for u in users} == set(tenant.users)
        groups = by_tenant(result.records("groups"))[tenant.tenant_id]
        assert {g["id"] for g in groups} == set(tenant.groups)
        skus = by_tenant(result.records("subscribed_skus"))[tenant.tenant_id]
        assert {s["id"] for s in skus} == {s["id"] for s in tenant.skus}
        assignments = by_tenant(result.records("license_assignments"))[tenant.tenant_id]
        holders = {u for u, user in tenant.users.items() if user["assignedLicenses"]}
        assert {a["user_id"] for a in assignments} == holders
        refresh = runs.emulator.reports_of(tenant.tenant_id).refresh_date
        for stream in REPORTS:
            rows = by_tenant(result.records(stream))[tenant.tenant_id]
            domains = (tenant.default_domain, tenant.domain)
            assert all(r["user_principal_name"].endswith(domains) for r in rows), stream
            days = {r["report_date"] for r in rows}
            assert max(days) == refresh.isoformat()
            assert min(days) == START.isoformat()


def test_state_is_kept_per_tenant_and_untouched_for_the_failed_one(runs: Runs) -> None:
    state = runs.first.last_state or {}
    bookmarks = state["bookmarks"]
    for stream in ("users", "groups"):
        partitions = {p["context"]["tenant_id"]: p for p in bookmarks[stream]["partitions"]}
        assert partitions[runs.contoso.tenant_id]["delta_link"]
        assert partitions[runs.fabrikam.domain]["delta_link"]
        assert "delta_link" not in partitions.get(runs.northwind.tenant_id, {})
    for stream in REPORTS:
        partitions = {p["context"]["tenant_id"]: p for p in bookmarks[stream]["partitions"]}
        for key, tenant in ((runs.contoso.tenant_id, runs.contoso), (runs.fabrikam.domain, None)):
            site = tenant or runs.fabrikam
            refresh = runs.emulator.reports_of(site.tenant_id).refresh_date.isoformat()
            assert partitions[key]["replication_key_value"] == refresh
        assert "replication_key_value" not in partitions.get(runs.northwind.tenant_id, {})
    # STATE grows with the tenants, not with the data: a few hundred bytes per tenant and stream.
    assert len(str(state)) < 6000


def test_no_request_reaches_graph_for_the_failed_tenant(runs: Runs) -> None:
    served = Counter(r.tenant_id for r in runs.first_log if r.role == "graph" and r.tenant_id)
    assert served[runs.contoso.tenant_id] > 0
    assert served[runs.fabrikam.tenant_id] > 0
    assert runs.northwind.tenant_id not in served
    refused = [
        r
        for r in runs.first_log
        if r.role == "login" and runs.northwind.tenant_id in r.path and r.path.endswith("/token")
    ]
    assert 1 <= len(refused) <= 2  # asked once (a 400 is not retried), never per stream


def test_the_next_run_is_incremental_per_tenant(runs: Runs) -> None:
    result = runs.second
    assert result.exit_code == 0, result.stderr[-3000:]
    users = by_tenant(result.records("users"))
    # Contoso and Fabrikam: their stored delta links, so only what changed.
    assert runs.contoso.tenant_id not in users
    assert [u["id"] for u in users[runs.fabrikam.tenant_id]] == [runs.changed_user]
    assert users[runs.fabrikam.tenant_id][0]["department"] == "Procurement"
    # Northwind, consented now: its first full read, on state of its own.
    assert {u["id"] for u in users[runs.northwind.tenant_id]} == set(runs.northwind.users)
    # Each followed its own stored link: no new round marked ($deltatoken=latest) for them.
    for tenant in (runs.contoso, runs.fabrikam):
        delta = [
            r.query
            for r in runs.second_log
            if r.tenant_id == tenant.tenant_id and r.path == "/v1.0/users/delta"
        ]
        assert delta, tenant.display_name
        assert all(q.get("$deltatoken") not in (None, "latest") for q in delta), delta
    # Reports: the days already delivered are not fetched again; Northwind's are.
    for tenant in (runs.contoso, runs.fabrikam):
        assert not by_tenant(result.records("office365_active_user_detail")).get(tenant.tenant_id)
    northwind_rows = by_tenant(result.records("office365_active_user_detail"))
    assert northwind_rows[runs.northwind.tenant_id]


def activations(result: SyncResult, stream: str) -> list[int]:
    return [
        m["version"]
        for m in result.messages
        if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream
    ]


RETIRING = ("organization", "subscribed_skus", "users", "groups", "license_assignments")
FULL_TABLE = ("organization", "subscribed_skus", "license_assignments")


def test_rows_are_retired_only_when_every_tenant_was_read_in_full(runs: Runs) -> None:
    # The tables hold every tenant's rows: ACTIVATE_VERSION after one tenant's full read would
    # let a target retire the others'. With Northwind missing (first run) or read incrementally
    # (second run), none is sent, and the log says why.
    for stream in RETIRING:
        assert activations(runs.first, stream) == [], stream
    for stream in ("users", "groups"):
        assert activations(runs.second, stream) == [], stream
    # Full-table streams read every tenant in full on every run: with all three read, retired.
    for stream in FULL_TABLE:
        assert len(activations(runs.second, stream)) == 1, stream
    assert "full rounds for 2 of 3 tenants only" in runs.first.stderr
    assert (
        "license_assignments: 2 of 3 tenants read, so vanished rows are not retired"
        in runs.first.stderr
    )
    # Every tenant read in full in one run: one version for all of them, then one activation.
    fresh = runs.fresh
    assert fresh.exit_code == 0, fresh.stderr[-3000:]
    for stream in RETIRING:
        messages = [m for m in fresh.messages if m.get("stream") == stream]
        [version] = activations(fresh, stream)
        records = [m for m in messages if m["type"] == "RECORD"]
        assert len({r["record"]["tenant_id"] for r in records}) == 3
        assert {r["version"] for r in records} == {version}, stream
        assert messages[-1]["type"] == "ACTIVATE_VERSION"  # after every tenant's last record


def test_every_tenants_reports_are_fetched_side_by_side() -> None:
    """Graph's report limit counts per app and tenant
    (https://learn.microsoft.com/en-us/graph/throttling-limits#microsoft-graph-reports-service-limits):
    a 28-day backfill of one report waits a window for its 15th call in each tenant, and a
    second tenant's calls need not wait for the first tenant's. The SDK reads a stream's tenants
    one after another; the second tenant's report calls still start before the first tenant's
    backfill ends, and each tenant gets every day Graph keeps."""
    contoso = _tenant(51, "Contoso", 12)
    fabrikam = _tenant(52, "Fabrikam", 10)
    report = "office365_active_user_detail"
    with GraphEmulator(contoso, tenants=[fabrikam], time_scale=SCALE) as emulator:
        config = emulator.tenants_config(report_window_seconds=3)
        selection = catalog()
        for entry in selection["streams"]:
            for metadata in entry["metadata"]:
                if metadata["breadcrumb"] == []:
                    metadata["metadata"]["selected"] = entry["tap_stream_id"] == report
        result = run_tap(config, ca_bundle=emulator.ca_bundle, catalog=selection)
        calls: dict[str, list[float]] = {}
        for record in emulator.request_log:
            if record.role == "graph" and "(date=" in record.path and record.status == 302:
                calls.setdefault(record.tenant_id, []).append(record.time)
        refresh = {
            t.tenant_id: emulator.reports_of(t.tenant_id).refresh_date for t in (contoso, fabrikam)
        }
    assert result.exit_code == 0, result.stderr[-3000:]
    first, second = calls[contoso.tenant_id], calls[fabrikam.tenant_id]
    # More calls than one window allows: each tenant's backfill waited on its own budget.
    assert len(first) > 14
    assert len(second) > 14
    # The second tenant's calls began while the first tenant's backfill was still waiting.
    assert min(second) < max(first)
    rows = by_tenant(result.records(report))
    for tenant in (contoso, fabrikam):
        days = {r["report_date"] for r in rows[tenant.tenant_id]}
        assert max(days) == refresh[tenant.tenant_id].isoformat()
        assert len(days) == len(calls[tenant.tenant_id])
