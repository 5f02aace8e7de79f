"""The fast record path writes exactly what the SDK's would (conform.py, writer.py).

The tap replaces two SDK steps for speed: type conformance (compiled once per schema) and JSON
encoding (the standard library's encoder). These tests hold them to the SDK's own functions,
value for value and byte for byte, on the sandbox tenant's records and on edge cases.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from singer_sdk import Stream
from singer_sdk.helpers._typing import conform_record_data_types
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.encoding.simple import (
    ActivateVersionMessage,
    RecordMessage,
    SchemaMessage,
    SimpleSingerWriter,
    StateMessage,
)
from singer_sdk.singerlib.json import serialize_json

from tap_microsoft365 import schemas
from tap_microsoft365.conform import SchemaConformer, UnsupportedSchemaError
from tap_microsoft365.tap import TapMicrosoft365
from tap_microsoft365.writer import GraphSingerWriter, encode_message

if TYPE_CHECKING:
    from tests.graph_emulator import GraphEmulator

LOGGER = logging.getLogger("test-fast-output")


class Text(str):
    """A subclass of str: orjson leaves it to the fallback encoders."""

    __slots__ = ()


def sdk_conform(record: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return conform_record_data_types(
        "s", copy.deepcopy(record), schema, TypeConformanceLevel.RECURSIVE, LOGGER
    )


@pytest.fixture(scope="module")
def sandbox_records(emulator: GraphEmulator) -> dict[str, list[dict[str, Any]]]:
    """Post-processed records of the directory streams, read from the sandbox tenant."""
    tap = TapMicrosoft365(config=emulator.config(), parse_env_config=False)
    records: dict[str, list[dict[str, Any]]] = {}
    for name in ("users", "groups", "organization", "subscriptions"):
        stream = tap.streams[name]
        rows = []
        for row in stream.get_records(None):
            assert isinstance(row, dict)  # a record, never the (record, context) pair
            processed = stream.post_process(row, None)
            if processed is not None:
                rows.append(processed)
            if len(rows) >= 600:
                break
        records[name] = rows
    return records


@pytest.mark.parametrize("name", ["users", "groups", "organization", "subscriptions"])
def test_messages_equal_the_sdks(
    emulator: GraphEmulator, sandbox_records: dict[str, list[dict[str, Any]]], name: str
) -> None:
    tap = TapMicrosoft365(config=emulator.config(), parse_env_config=False)
    stream = tap.streams[name]
    assert sandbox_records[name], name
    for record in sandbox_records[name]:
        ours = list(stream._generate_record_messages(copy.deepcopy(record)))
        sdks = list(Stream._generate_record_messages(stream, copy.deepcopy(record)))
        assert len(ours) == len(sdks) == 1
        assert ours[0].record == sdks[0].record
        assert list(ours[0].record) == list(sdks[0].record)  # same key order, same JSON
        assert (ours[0].stream, ours[0].version) == (sdks[0].stream, sdks[0].version)
        line = ours[0].to_dict()
        assert encode_message(line) == serialize_json(line)


def test_unknown_properties_follow_additional_properties(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = {
        "id": "u1",
        "surprise": 1,
        "assigned_plans": [
            {"service": "exchange", "newField": "x", "capabilityStatus": "Enabled"},
            "not an object",
        ],
        "employee_org_data": {"division": "IT", "unknown": True},
        "account_enabled": "true",  # a string in a boolean column: the SDK makes it True
        "other_mails": ["a@b.c", None, 3],
    }
    ours = SchemaConformer(schemas.USER).conform("users-test", copy.deepcopy(record), LOGGER)
    assert ours == sdk_conform(record, schemas.USER)
    assert "surprise" not in ours
    # Graph's nested objects allow additional properties: kept, as the SDK keeps them.
    assert ours["assigned_plans"][0]["newField"] == "x"
    assert ours["account_enabled"] is True

    strict = {
        "type": "object",
        "properties": {
            "id": {"type": ["string"]},
            "plans": {
                "type": ["array", "null"],
                "items": {"type": "object", "properties": {"service": {"type": ["string"]}}},
            },
            "org": {"type": ["object", "null"], "properties": {"division": {"type": ["string"]}}},
        },
    }
    nested = {
        "id": "u1",
        "extra": 1,
        "plans": [{"service": "s", "newField": 1}],
        "org": {"division": "IT", "unknown": True},
    }
    with caplog.at_level(logging.WARNING):
        ours = SchemaConformer(strict).conform("strict-test", copy.deepcopy(nested), LOGGER)
    assert ours == sdk_conform(nested, strict)
    assert ours == {"id": "u1", "plans": [{"service": "s"}], "org": {"division": "IT"}}
    for path in ("extra", "plans.newField", "org.unknown"):
        assert path in caplog.text


def test_schemas_the_sdk_cannot_walk_are_left_to_it() -> None:
    with pytest.raises(UnsupportedSchemaError):
        SchemaConformer({"type": "object", "properties": {"any": {}}})


def test_values_outside_json_go_through_the_sdk() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": ["string", "null"], "format": "date-time"},
            "day": {"type": ["string", "null"], "format": "date"},
            "ratio": {"type": ["number", "null"]},
            "nan": {"type": ["number", "null"]},
            "flag": {"type": ["boolean", "null"]},
            "bits": {"type": ["boolean", "null"]},
            "free": {"type": ["object", "null"], "additionalProperties": True, "properties": {}},
        },
    }
    record = {
        "when": datetime.datetime(2026, 11, 26, 6, 0, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 11, 26),
        "ratio": decimal.Decimal("1.50"),
        "nan": float("nan"),
        "flag": 0,
        "bits": b"\x01",
        "free": {"x": 1, "y": [1, 2]},
    }
    assert SchemaConformer(schema).conform("s", dict(record), LOGGER) == sdk_conform(record, schema)


@pytest.mark.parametrize(
    "message",
    [
        RecordMessage(
            stream="users",
            record={
                "name": 'Zoë \u00e9\u4e2d\U0001f600 "quoted" \\ / \n\t\x00\x1f\u2028',
                "n": 2**70,
                "f": 0.1,
                "b": [True, False, None],
                "o": {"nested": {"deep": []}},
            },
            version=1795672800,
            time_extracted=datetime.datetime(2026, 11, 26, 6, 0, 1, 5, tzinfo=datetime.UTC),
        ),
        RecordMessage(stream="x", record={"d": decimal.Decimal("12.50"), "nan": float("nan")}),
        RecordMessage(stream="x", record={"day": datetime.date(2026, 11, 26)}),
        StateMessage(value={"bookmarks": {"users": {"delta_link": "https://g/x?$a=b&c"}}}),
        SchemaMessage(stream="users", schema=schemas.USER, key_properties=["id"]),
        ActivateVersionMessage(stream="users", version=7),
    ],
)
def test_encoding_equals_the_sdks(message: Any) -> None:
    line = message.to_dict()
    assert encode_message(line) == serialize_json(line)


def test_state_lines_equal_the_sdks() -> None:
    # With many tenants the state holds a partition per tenant and stream, and a report writes
    # it after every day: the writer encodes the value itself, to the SDK writer's bytes.
    partitions = [
        {
            "context": {"tenant_id": f"tenant{n}.onmicrosoft.com"},
            "replication_key": "report_date",
            "replication_key_value": "2026-11-24",
            "progress_markers": None,
            "note": "Zoë \u4e2d \x7f",
        }
        for n in range(3)
    ]
    message = StateMessage(value={"bookmarks": {"users": {"partitions": partitions}}})
    line = GraphSingerWriter().serialize_message(message)
    assert line == SimpleSingerWriter().serialize_message(message)
    assert json.loads(line) == {"type": "STATE", "value": message.value}


@pytest.mark.parametrize(
    "record",
    [
        # What a report row becomes: orjson writes it (ASCII, no float).
        {
            "report_date": "2026-11-24",
            "user_principal_name": "alex@contoso.com",
            "is_deleted": False,
            "deleted_date": None,
            "send_count": 2**63 - 1,
            "assigned_products": ["MICROSOFT 365 E3", "ENTERPRISE MOBILITY + SECURITY E5"],
        },
        {"n": -(2**63), "big": 2**64, "nan": float("nan"), "inf": float("-inf")},
        {"f": [0.1, 1e16, 1.5e300, -0.0, 123456789.125], "t": (1, "a")},
        {"uuid": uuid.UUID(int=7), "escapes": '"\\/\b\f\n\r\t\x00\x7f'},
        {"subclass": Text("x"), "when": datetime.date(2026, 11, 26)},
    ],
)
def test_fast_encoding_equals_the_sdks(record: dict[str, Any]) -> None:
    line = RecordMessage(stream="s", record=record, version=3).to_dict()
    assert encode_message(line) == serialize_json(line)


def test_floats_under_1e_4_keep_their_value() -> None:
    # orjson writes 1e-05 as 0.00001: the same number, spelled without an exponent.
    line = {"type": "RECORD", "stream": "s", "record": {"small": [1e-05, -3.5e-09, 5e-324]}}
    assert json.loads(encode_message(line)) == json.loads(serialize_json(line))


def test_a_nan_in_graphs_json_is_written_as_the_sdk_writes_it(emulator: GraphEmulator) -> None:
    tap = TapMicrosoft365(config=emulator.config(), parse_env_config=False)
    stream = tap.streams["users"]
    record = dict.fromkeys(schemas.USER["properties"])
    record["id"] = "u1"
    record["assigned_plans"] = [{"service": "exchange", "weight": float("nan")}]
    record["employee_org_data"] = {"division": "IT", "ratio": float("inf")}
    ours = list(stream._generate_record_messages(copy.deepcopy(record)))
    sdks = list(Stream._generate_record_messages(stream, copy.deepcopy(record)))
    ours[0].time_extracted = sdks[0].time_extracted
    assert encode_message(ours[0].to_dict()) == serialize_json(sdks[0].to_dict())
    assert '"weight":null' in encode_message(ours[0].to_dict())
