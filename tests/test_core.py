"""The Singer SDK's standard tap tests, run against the emulator's sandbox tenant."""

from __future__ import annotations

from collections import Counter

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_microsoft365.tap import TapMicrosoft365
from tests.conftest import RECENT_START, shared_emulator

SANDBOX = shared_emulator()

_StandardTests = get_tap_test_class(
    tap_class=TapMicrosoft365,
    config=SANDBOX.config(**RECENT_START),
    suite_config=SuiteConfig(max_records_limit=None),
    parse_env_config=False,
)


class TestTapMicrosoft365(_StandardTests):  # type: ignore[misc, valid-type]
    """The standard suite, plus a primary-key uniqueness check (the SDK's suite has none)."""

    def test_primary_keys_are_unique(self, runner) -> None:
        for stream, records in runner.records.items():
            schema = next(m for m in runner.schema_messages if m["stream"] == stream)
            keys = schema["key_properties"]
            counts = Counter(tuple(record[key] for key in keys) for record in records)
            duplicates = [key for key, count in counts.items() if count > 1]
            assert not duplicates, f"{stream}: duplicate primary keys {duplicates[:5]}"
            assert records, f"{stream}: no records"
