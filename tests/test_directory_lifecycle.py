"""What directory rows become when objects vanish, properties are refused or deselected
(issue 12, items 6, 7, 9, 11 and 12).

Every test runs the real tap in a subprocess against the Graph emulator over HTTPS and applies
its output as an upserting SDK target with ACTIVATE_VERSION support does (tests/test_delta.py's
`Target`: upsert by key, rows of an older or no version retired on ACTIVATE_VERSION).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.singer_run import SyncResult, activate_version, catalog_selecting, run_tap, upsert

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.graph_emulator import GraphEmulator

FULL_TABLE = {"organization": "id", "subscribed_skus": "sku_id", "subscriptions": "id"}


def sync(
    emu: GraphEmulator, catalog: dict[str, Any], state: dict[str, Any] | None = None
) -> SyncResult:
    emu.clear_log()
    return run_tap(emu.config(), ca_bundle=emu.ca_bundle, catalog=catalog, state=state)


class Tables:
    """Tables keyed by primary key, as target-postgres keeps them (`_sdc_deleted_at` marks rows
    retired by ACTIVATE_VERSION; the tap's own `_sdc_deleted_at` marks removals)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.rows: dict[str, dict[str, dict[str, Any]]] = {stream: {} for stream in keys}

    def apply(self, result: SyncResult) -> Tables:
        for message in result.messages:
            stream = message.get("stream")
            if stream not in self.rows:
                continue
            if message["type"] == "RECORD":
                row = {
                    "_sdc_deleted_at": None,
                    **message["record"],
                    "_sdc_table_version": message.get("version"),
                }
                upsert(self.rows[stream], [row], key=self.keys[stream])
            elif message["type"] == "ACTIVATE_VERSION":
                activate_version(self.rows[stream], message["version"])
        return self

    def active(self, stream: str) -> set[str]:
        return {k for k, r in self.rows[stream].items() if r["_sdc_deleted_at"] is None}


# ----------------------------------------------------------------------------- item 12


def test_a_vanished_sku_or_subscription_is_retired_after_a_complete_read(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    """organization, subscribed_skus and subscriptions are read whole every run: each read ends
    with ACTIVATE_VERSION (after its last record), so a SKU or subscription the tenant no longer
    lists is retired by the target; a read that fails sends none and retires nothing."""
    emu = fresh_emulator()
    tenant = emu.tenant
    catalog = catalog_selecting({}, set(FULL_TABLE))
    first = sync(emu, catalog)
    assert first.exit_code == 0, first.stderr[-3000:]
    tables = Tables(FULL_TABLE).apply(first)
    for stream in FULL_TABLE:
        kinds = [m["type"] for m in first.messages if m.get("stream") == stream]
        # Announced only after the last record: a target keeps serving the rows during the read.
        assert kinds[-1] == "ACTIVATE_VERSION", (stream, kinds)
        assert "ACTIVATE_VERSION" not in kinds[:-1], (stream, kinds)
        assert {m["version"] for m in first.record_messages(stream)} == {
            next(
                m["version"]
                for m in first.messages
                if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream
            )
        }
    assert tables.active("subscribed_skus") == {s["skuId"] for s in tenant.skus}

    gone_sku = tenant.skus.pop()
    gone_subscription = tenant.subscriptions.pop()

    # A run whose subscriptions read fails retires none of its rows.
    emu.faults.error(403, path=r"/directory/subscriptions", times=None)
    failed = sync(emu, catalog, first.last_state)
    assert failed.exit_code != 0
    assert not [
        m
        for m in failed.messages
        if m["type"] == "ACTIVATE_VERSION" and m["stream"] == "subscriptions"
    ]
    tables.apply(failed)
    assert gone_subscription["id"] in tables.active("subscriptions")

    emu.faults.clear()
    second = sync(emu, catalog, failed.last_state or first.last_state)
    assert second.exit_code == 0, second.stderr[-3000:]
    tables.apply(second)
    assert tables.active("subscribed_skus") == {s["skuId"] for s in tenant.skus}
    assert gone_sku["skuId"] not in tables.active("subscribed_skus")
    assert tables.active("subscriptions") == {s["id"] for s in tenant.subscriptions}
    assert tables.active("organization") == {tenant.organization["id"]}
    # The version only grows, so the next read retires what this one did not send.
    for stream in FULL_TABLE:
        assert second.last_state is not None
        assert (
            second.last_state["bookmarks"][stream]["table_version"]
            >= first.last_state["bookmarks"][stream]["table_version"]  # type: ignore[index]
        )


@pytest.mark.parametrize("setting", [False])
def test_activate_version_can_be_turned_off(
    fresh_emulator: Callable[..., GraphEmulator], setting: bool
) -> None:
    """`emit_activate_version_messages: false` (for targets without support) sends none."""
    emu = fresh_emulator()
    catalog = catalog_selecting({}, set(FULL_TABLE))
    result = run_tap(
        emu.config(emit_activate_version_messages=setting),
        ca_bundle=emu.ca_bundle,
        catalog=catalog,
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    assert not [m for m in result.messages if m["type"] == "ACTIVATE_VERSION"]
    assert result.records("subscribed_skus")


# ----------------------------------------------------------------------------- item 6

DELTA = {"users": "id", "groups": "id"}


def deselect(catalog: dict[str, Any], stream: str, columns: tuple[str, ...]) -> dict[str, Any]:
    """`catalog` with `columns` of `stream` deselected (and marked `available`, as an older
    discovery listed them)."""
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] != stream:
            continue
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"][-1:] and metadata["breadcrumb"][-1] in columns:
                metadata["metadata"]["selected"] = False
                metadata["metadata"]["inclusion"] = "available"
    return catalog


def test_removals_stay_distinguishable_when_their_columns_are_deselected(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    """`_sdc_deleted_at` and `_removed_reason` are listed with `inclusion: automatic`, and a
    catalog that deselects them anyway gets them, with one warning: without them a removal
    would reach the target as `{"id": ...}`, an update that cleared every column."""
    emu = fresh_emulator()
    discovered = catalog_selecting({}, {"users"})
    users_entry = next(e for e in discovered["streams"] if e["tap_stream_id"] == "users")
    inclusion = {
        m["breadcrumb"][-1]: m["metadata"].get("inclusion")
        for m in users_entry["metadata"]
        if m["breadcrumb"]
    }
    assert inclusion["_sdc_deleted_at"] == inclusion["_removed_reason"] == "automatic"

    catalog = deselect(discovered, "users", ("_sdc_deleted_at", "_removed_reason"))
    first = sync(emu, catalog)
    assert first.exit_code == 0, first.stderr[-3000:]
    gone = list(emu.tenant.users)[3]
    updated = list(emu.tenant.users)[4]
    emu.tenant.soft_delete_user(gone)
    emu.tenant.update_user(updated, jobTitle="Still here")
    second = sync(emu, catalog, first.last_state)
    assert second.exit_code == 0, second.stderr[-3000:]
    records = {r["id"]: r for r in second.records("users")}
    assert records[gone]["_sdc_deleted_at"] is not None
    assert records[gone]["_removed_reason"] == "changed"
    assert records[updated]["_sdc_deleted_at"] is None
    warnings = [line for line in second.stderr.splitlines() if "WARNING" in line]
    named = [w for w in warnings if "_sdc_deleted_at and _removed_reason" in w]
    assert len(named) == 1, warnings
    assert "sent anyway" in named[0]


# ----------------------------------------------------------------------------- item 7


def test_a_damaged_delta_link_starts_a_full_round_by_itself(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    """A stored link Graph cannot read (400 "The delta token is not valid", e.g. a state edited
    by hand or copied from another tenant) is what an expired link is: the stream warns once and
    runs a full round in the same run, ending with ACTIVATE_VERSION; no manual state reset."""
    emu = fresh_emulator()
    catalog = catalog_selecting({}, {"users"})
    first = sync(emu, catalog)
    assert first.exit_code == 0, first.stderr[-3000:]
    state = first.last_state
    assert state is not None
    link = state["bookmarks"]["users"]["delta_link"]
    state["bookmarks"]["users"]["delta_link"] = link.split("$deltatoken=")[0] + "$deltatoken=AAAA"

    second = sync(emu, catalog, state)
    assert second.exit_code == 0, second.stderr[-3000:]
    warnings = [line for line in second.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "The delta token is not valid" in warnings[0]
    assert "starting a full round" in warnings[0]
    assert "report it" not in second.stderr
    kinds = [m["type"] for m in second.messages if m.get("stream") == "users"]
    assert kinds[-1] == "ACTIVATE_VERSION"
    assert {r["id"] for r in second.records("users")} == set(emu.tenant.users)
    assert second.last_state is not None
    assert "AAAA" not in second.last_state["bookmarks"]["users"]["delta_link"]


# ----------------------------------------------------------------------------- item 9


@pytest.mark.parametrize("endpoint", ["users/delta", "users"])
def test_a_property_graph_refuses_on_delta_is_dropped_with_one_warning(
    fresh_emulator: Callable[..., GraphEmulator], endpoint: str
) -> None:
    """Graph refuses employeeType on users/delta (400 "Invalid request for delta query: ...
    not supported for the following properties"): the round starts again without it, the
    column stays null, one warning names it and the endpoint; the stored link (obtained without
    it) is used next run as it is, not taken for a changed selection. Refused by the listing
    of an initial round instead, the round starts again from a new mark without it, so the
    stored link and the rows agree."""
    emu = fresh_emulator()
    tenant = emu.tenant
    tenant.refuse_property(endpoint, "employeeType")
    catalog = catalog_selecting({}, {"users"})
    first = sync(emu, catalog)
    assert first.exit_code == 0, first.stderr[-3000:]
    warnings = [line for line in first.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "employeeType" in warnings[0]
    assert f"GET /v1.0/{endpoint} " in warnings[0]
    users = first.records("users")
    assert {u["id"] for u in users} == set(tenant.users)
    assert all(u["employee_type"] is None for u in users)
    assert all(
        u["user_principal_name"] == tenant.users[u["id"]]["userPrincipalName"] for u in users
    )
    requests = [r for r in emu.request_log if r.role == "graph" and r.path.startswith("/v1.0/u")]
    # The refused mark, the mark again without employeeType, then the listing without it.
    marks = [r for r in requests if r.path == "/v1.0/users/delta"]
    assert len(marks) == 2
    assert "employeeType" in marks[0].query["$select"]
    assert "employeeType" not in marks[1].query["$select"]
    listing = [r for r in requests if r.path == "/v1.0/users"]
    if endpoint == "users":  # the refused listing, before the second mark
        assert "employeeType" in listing.pop(0).query["$select"]
    assert listing
    assert all("employeeType" not in r.query["$select"] for r in listing)
    assert first.last_state is not None
    assert first.last_state["bookmarks"]["users"]["refused_properties"] == ["employeeType"]

    changed = list(tenant.users)[7]
    tenant.update_user(changed, jobTitle="Moved on")
    second = sync(emu, catalog, first.last_state)
    assert second.exit_code == 0, second.stderr[-3000:]
    # The stored link is used as it is: no second full round, one warning saying why it is null.
    kinds = [m["type"] for m in second.messages if m.get("stream") == "users"]
    assert "ACTIVATE_VERSION" not in kinds
    assert [r["id"] for r in second.records("users")] == [changed]
    warnings = [line for line in second.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "does not track employeeType" in warnings[0]


def test_a_property_graph_refuses_on_a_list_is_dropped_for_the_run(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    """The same for a plain collection: 400 "Could not find a property named 'tenantType' on
    type 'microsoft.graph.organization'." drops it for the run and the stream carries on."""
    emu = fresh_emulator()
    emu.tenant.refuse_property("organization", "tenantType")
    catalog = catalog_selecting({}, {"organization", "subscribed_skus"})
    result = sync(emu, catalog)
    assert result.exit_code == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "tenantType" in warnings[0]
    assert "GET /v1.0/organization" in warnings[0]
    (org,) = result.records("organization")
    assert org["tenant_type"] is None
    assert org["display_name"] == emu.tenant.organization["displayName"]
    assert result.records("subscribed_skus")


# ----------------------------------------------------------------------------- item 11


def test_a_removed_user_keeps_its_last_known_name_and_licenses(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    """A delta removal carries only the id; the row of a soft-deleted user is completed from
    the recycle bin (`GET /directory/deletedItems/{id}`, 20 to a `$batch`,
    https://learn.microsoft.com/graph/json-batching): name, UPN, licenses and deletion time
    stay, so "which leavers still held licenses" can name them. A permanently deleted user
    (`reason: deleted`, not in the recycle bin) keeps its id only. A throttled batch item is
    read again on its own."""
    emu = fresh_emulator()
    tenant = emu.tenant
    catalog = catalog_selecting({}, {"users"})
    first = sync(emu, catalog)
    assert first.exit_code == 0, first.stderr[-3000:]
    before = {uid: dict(user) for uid, user in tenant.users.items()}
    leavers = [uid for uid in before if before[uid]["assignedLicenses"]][:25]
    assert len(leavers) == 25
    purged = next(uid for uid in before if uid not in leavers)
    for uid in leavers:
        tenant.soft_delete_user(uid)
    tenant.hard_delete_user(purged)
    # One item of the first batch is throttled (Graph throttles batch items one by one).
    emu.faults.throttle(path=r"/directory/deletedItems/", times=1, retry_after=1)

    second = sync(emu, catalog, first.last_state)
    assert second.exit_code == 0, second.stderr[-3000:]
    records = {r["id"]: r for r in second.records("users")}
    for uid in leavers:
        row = records[uid]
        assert row["_removed_reason"] == "changed"
        assert row["_sdc_deleted_at"] is not None
        assert row["display_name"] == before[uid]["displayName"]
        assert row["user_principal_name"] == before[uid]["userPrincipalName"]
        assert row["assigned_licenses"] == before[uid]["assignedLicenses"]
        assert row["deleted_date_time"] == tenant.deleted_users[uid]["deletedDateTime"]
    gone = records[purged]
    assert gone["_removed_reason"] == "deleted"
    assert gone["user_principal_name"] is None
    assert {k for k, v in gone.items() if v is not None} == {
        "tenant_id",
        "id",
        "_sdc_deleted_at",
        "_removed_reason",
    }

    graph = [r for r in emu.request_log if r.role == "graph"]
    batches = [r for r in graph if r.path == "/v1.0/$batch"]
    # 25 removals: one batch of 20 and one of 5; the throttled item once more on its own.
    assert len(batches) == 2
    alone = [r for r in graph if r.path.startswith("/v1.0/directory/deletedItems/")]
    assert len(alone) == 1
    assert not [line for line in second.stderr.splitlines() if "WARNING" in line]
    # Still one delta request for the round itself.
    assert [r.path for r in graph if r.path.startswith("/v1.0/users")] == ["/v1.0/users/delta"]


def test_a_property_the_recycle_bin_refuses_is_left_out_of_its_reads(
    fresh_emulator: Callable[..., GraphEmulator],
) -> None:
    """The recycle bin refusing one selected property (400 "Could not find a property named
    ...") costs that column only: the removals are read again without it, with one warning."""
    emu = fresh_emulator()
    tenant = emu.tenant
    catalog = catalog_selecting({}, {"users"})
    first = sync(emu, catalog)
    assert first.exit_code == 0, first.stderr[-3000:]
    leavers = list(tenant.users)[:3]
    names = {uid: tenant.users[uid]["userPrincipalName"] for uid in leavers}
    for uid in leavers:
        tenant.soft_delete_user(uid)
    tenant.refuse_property("directory/deletedItems", "employeeType")

    second = sync(emu, catalog, first.last_state)
    assert second.exit_code == 0, second.stderr[-3000:]
    records = {r["id"]: r for r in second.records("users")}
    for uid in leavers:
        assert records[uid]["user_principal_name"] == names[uid]
        assert records[uid]["employee_type"] is None
        assert records[uid]["_removed_reason"] == "changed"
    warnings = [line for line in second.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "employeeType" in warnings[0]
    assert "/directory/deletedItems" in warnings[0]
    batches = [r for r in emu.request_log if r.role == "graph" and r.path == "/v1.0/$batch"]
    assert len(batches) == 2
