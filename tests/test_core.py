"""The Singer SDK's standard tap tests, run against the emulator's sandbox tenant."""

from __future__ import annotations

from collections import Counter
from typing import Any

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_microsoft365.streams.reports.definitions import snake_case
from tap_microsoft365.tap import TapMicrosoft365
from tests.conftest import ADDED_COLUMN, RECENT_START, standard_tests_emulator

# The sandbox tenant; every report also serves a column the tap does not know (conftest.py).
SANDBOX = standard_tests_emulator()
CONFIG = SANDBOX.config(**RECENT_START)

# Every stream selected, user_sign_in_activity (off by default) included: without an input
# catalog the SDK deselects a stream that is off by default, and its records then fail the
# suite's schema-versus-catalog check.
CATALOG = TapMicrosoft365(config=CONFIG, parse_env_config=False).catalog_dict
for _entry in CATALOG["streams"]:
    for _metadata in _entry["metadata"]:
        if _metadata["breadcrumb"] == []:
            _metadata["metadata"]["selected"] = True

_StandardTests = get_tap_test_class(
    tap_class=TapMicrosoft365,
    config=CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
    parse_env_config=False,
    catalog=CATALOG,
)


class TestTapMicrosoft365(_StandardTests):  # type: ignore[misc, valid-type]
    """The standard suite, plus a primary-key uniqueness check (the SDK's suite has none)."""

    def test_primary_keys_are_unique(self, runner: Any) -> None:
        for stream, records in runner.records.items():
            schema = next(m for m in runner.schema_messages if m["stream"] == stream)
            keys = schema["key_properties"]
            counts = Counter(tuple(record[key] for key in keys) for record in records)
            duplicates = [key for key, count in counts.items() if count > 1]
            assert not duplicates, f"{stream}: duplicate primary keys {duplicates[:5]}"
            assert records, f"{stream}: no records"

    def test_a_report_column_graph_added_reaches_extra_columns(self, runner: Any) -> None:
        # What the suite's is_object check of `extra_columns` runs on: every report has it.
        added = snake_case(ADDED_COLUMN)
        reports = [name for name, records in runner.records.items() if "report_date" in records[0]]
        assert len(reports) == 20
        for stream in reports:
            assert all(r["extra_columns"] == {added: "7"} for r in runner.records[stream]), stream
