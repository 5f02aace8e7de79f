"""What directory rows become when objects vanish, properties are refused or deselected
(issue 12, items 6, 7, 9, 11 and 12).

Every test runs the real tap in a subprocess against the Graph emulator over HTTPS and applies
its output as an upserting SDK target with ACTIVATE_VERSION support does (tests/test_delta.py's
`Target`: upsert by key, rows of an older or no version retired on ACTIVATE_VERSION).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.singer_run import SyncResult, catalog_selecting, run_tap, upsert

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
                for row in self.rows[stream].values():
                    version = row["_sdc_table_version"]
                    if (version is None or version < message["version"]) and row[
                        "_sdc_deleted_at"
                    ] is None:
                        row["_sdc_deleted_at"] = "retired by ACTIVATE_VERSION"
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
