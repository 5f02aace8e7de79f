"""conform.py and writer.py: the tap's faster paths give what the SDK's own functions give.

`SchemaConformer` against the SDK's `conform_record_data_types` at level RECURSIVE, and
`GraphSingerWriter` against the SDK's `SimpleSingerWriter`, on the same inputs.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import logging
import math
from typing import Any

import pytest
import singer_sdk.singerlib as singer
from singer_sdk.helpers._typing import conform_record_data_types
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter
from singer_sdk.singerlib.json import serialize_json

from tap_microsoft365.conform import SchemaConformer
from tap_microsoft365.writer import GraphSingerWriter, encode_message

NULLABLE_STRING = {"type": ["string", "null"]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": ["string"]},
        "enabled": {"type": ["boolean", "null"]},
        "count": {"type": ["integer", "null"]},
        "ratio": {"type": ["number", "null"]},
        "when": {"type": ["string", "null"], "format": "date-time"},
        "day": {"type": ["string", "null"], "format": "date"},
        "tags": {"type": ["array", "null"], "items": {"type": ["string"]}},
        "flags": {"type": ["array", "null"], "items": {"type": ["boolean"]}},
        "plans": {
            "type": ["array", "null"],
            "items": {
                "type": ["object"],
                "properties": {
                    "servicePlanId": {"type": ["string"]},
                    "on": {"type": ["boolean", "null"]},
                },
            },
        },
        "address": {
            "type": ["object", "null"],
            "properties": {"city": NULLABLE_STRING, "zip": NULLABLE_STRING},
        },
        "extra": {"type": ["object", "null"], "properties": {}, "additionalProperties": True},
    },
}

WHEN = datetime.datetime(2026, 11, 26, 6, 0, 0, 123456, tzinfo=datetime.UTC)

RECORDS: dict[str, dict[str, Any]] = {
    "plain-json": {
        "id": "u1",
        "enabled": True,
        "count": 3,
        "ratio": None,
        "when": "2026-11-26T06:00:00Z",
        "tags": ["a", "b"],
        "flags": [True, False],
        "plans": [{"servicePlanId": "p1", "on": True}, {"servicePlanId": "p2"}],
        "address": {"city": "Oslo", "zip": None},
        "extra": {"anything": [1, {"x": None}]},
    },
    "nulls-and-missing": {"id": "u2", "enabled": None, "tags": None, "address": None},
    "unknown-properties": {
        "id": "u3",
        "@odata.type": "#microsoft.graph.user",
        "address": {"city": "Rome", "planet": "Earth"},
        "plans": [{"servicePlanId": "p1", "legacy": 1}],
    },
    "booleans-to-coerce": {
        "id": "u4",
        "enabled": 1,
        "flags": [1, 0, True],
        "plans": [{"servicePlanId": "p1", "on": 0}],
    },
    "python-values": {
        "id": "u5",
        "ratio": 0.25,
        "count": decimal.Decimal(7),
        "when": WHEN,
        "day": datetime.date(2026, 11, 26),
        "tags": [b"\x01\x02", "c"],
        "address": {"city": datetime.date(2026, 1, 1), "zip": b"\xff"},
    },
    "not-a-number": {"id": "u6", "ratio": math.nan, "count": 1, "plans": []},
    "infinite": {"id": "u7", "ratio": -math.inf, "flags": []},
    "a-list-where-an-object-is-expected": {"id": "u8", "address": ["not", "an", "object"]},
}


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _logger(name: str) -> tuple[logging.Logger, _Capture]:
    logger = logging.getLogger(f"tests.unit.conform.{name}")
    capture = _Capture()
    logger.addHandler(capture)
    logger.propagate = False
    return logger, capture


def _names(record: logging.LogRecord) -> object:
    """The dropped property names a conformance warning lists."""
    assert isinstance(record.args, tuple)
    return record.args[0]


@pytest.mark.parametrize("case", list(RECORDS))
def test_conformer_output_is_the_sdks(case: str) -> None:
    record = RECORDS[case]
    our_logger, ours_logged = _logger(f"ours.{case}")
    sdk_logger, sdk_logged = _logger(f"sdk.{case}")

    ours = SchemaConformer(SCHEMA).conform(f"ours_{case}", copy.deepcopy(record), our_logger)
    theirs = conform_record_data_types(
        stream_name=f"sdk_{case}",
        record=copy.deepcopy(record),
        schema=SCHEMA,
        level=TypeConformanceLevel.RECURSIVE,
        logger=sdk_logger,
    )

    assert ours == theirs
    assert serialize_json(ours) == serialize_json(theirs)
    # The same one warning naming the same dropped properties.
    assert [_names(r) for r in ours_logged.records] == [_names(r) for r in sdk_logged.records]


def test_unknown_properties_are_named_in_one_warning() -> None:
    logger, logged = _logger("unknown")
    out = SchemaConformer(SCHEMA).conform(
        "unknown_stream", copy.deepcopy(RECORDS["unknown-properties"]), logger
    )
    assert out == {
        "id": "u3",
        "address": {"city": "Rome"},
        "plans": [{"servicePlanId": "p1"}],
    }
    (warning,) = logged.records
    assert warning.levelno == logging.WARNING
    names = _names(warning)
    assert isinstance(names, tuple)
    assert set(names) == {"@odata.type", "address.planet", "plans.legacy"}


@pytest.mark.parametrize(
    "case", ["plain-json", "nulls-and-missing", "unknown-properties", "booleans-to-coerce"]
)
def test_conformer_of_json_values_is_the_sdks(case: str) -> None:
    record = RECORDS[case]
    ours = SchemaConformer(SCHEMA).conform(
        f"json_{case}", copy.deepcopy(record), logging.getLogger("tests.unit.conform.json")
    )
    fast = SchemaConformer(SCHEMA).conform(
        f"json_{case}",
        copy.deepcopy(record),
        logging.getLogger("tests.unit.conform.json"),
        json_values=True,
    )
    assert fast == ours


def test_conformer_leaves_the_input_record_unchanged() -> None:
    record = copy.deepcopy(RECORDS["booleans-to-coerce"])
    before = copy.deepcopy(record)
    SchemaConformer(SCHEMA).conform("unchanged", record, logging.getLogger("tests.unit.conform"))
    assert record == before


# --------------------------------------------------------------------------------------------
# writer.py
# --------------------------------------------------------------------------------------------

MESSAGES: dict[str, singer.Message] = {
    "record": singer.RecordMessage(
        stream="users",
        record={"id": "u1", "n": 3, "ok": True, "none": None, "list": [1, "a"], "obj": {"k": 1.5}},
        version=1795672800,
        time_extracted=WHEN,
    ),
    "record-without-time": singer.RecordMessage(stream="users", record={"id": "u2"}),
    "non-ascii": singer.RecordMessage(
        stream="users", record={"name": "Zoë Ångström ☕ \u2028", "quote": 'say "hi"\n'}
    ),
    "decimal": singer.RecordMessage(
        stream="x", record={"amount": decimal.Decimal("1.10"), "big": decimal.Decimal("1e400")}
    ),
    "nan-and-infinity": singer.RecordMessage(
        stream="x", record={"a": math.nan, "b": math.inf, "c": -math.inf}
    ),
    "dates-in-a-record": singer.RecordMessage(
        stream="x",
        record={"day": datetime.date(2026, 11, 26), "at": WHEN, "naive": WHEN.replace(tzinfo=None)},
    ),
    "floats": singer.RecordMessage(stream="x", record={"a": 0.1, "b": 1e21, "c": -0.0, "d": 3.0}),
    "schema": singer.SchemaMessage(
        stream="users", schema=SCHEMA, key_properties=["id"], bookmark_properties=["when"]
    ),
    "state": singer.StateMessage(
        value={
            "bookmarks": {"users": {"delta_link": "https://graph.microsoft.com/x?$deltatoken=1"}}
        }
    ),
    "activate-version": singer.ActivateVersionMessage(stream="users", version=1795672800),
}


@pytest.mark.parametrize("case", list(MESSAGES))
def test_writer_line_is_the_sdks(case: str) -> None:
    message = MESSAGES[case]
    assert GraphSingerWriter().serialize_message(message) == SimpleSingerWriter().serialize_message(
        message
    )


@pytest.mark.parametrize("case", list(MESSAGES))
def test_encode_message_is_serialize_json(case: str) -> None:
    data = MESSAGES[case].to_dict()
    assert encode_message(data) == serialize_json(data)


def test_written_lines_are_the_sdks(capsys: pytest.CaptureFixture[str]) -> None:
    writer = GraphSingerWriter()
    for message in MESSAGES.values():
        writer.write_message(message)
    ours = capsys.readouterr().out
    sdk = SimpleSingerWriter()
    for message in MESSAGES.values():
        sdk.write_message(message)
    theirs = capsys.readouterr().out
    assert ours == theirs
    assert ours.count("\n") == len(MESSAGES)


# Records of every kind: the ones orjson writes as the SDK does, and the ones the direct
# writer must leave to the ordinary path (it writes nothing for them).
DIRECT_RECORDS: list[dict[str, Any]] = [
    {
        "tenant_id": "00000000-0000-0000-0000-000000000001",
        "report_date": "2026-11-24",
        "user_principal_name": "alex@contoso.com",
        "is_deleted": False,
        "deleted_date": None,
        "storage_used_byte": 2**63 - 1,
        "assigned_products": ["MICROSOFT 365 E3", "ENTERPRISE MOBILITY + SECURITY E5"],
        "extra_columns": {"brand_new_column": "x,y", "empty": None},
    },
    {"escapes": '"\\/\b\f\n\r\t\x00', "n": -(2**63)},
    {"non_ascii": "Zoë"},
    {"delete": "\x7f"},
    {"big": 2**64},
    {"day": datetime.date(2026, 11, 26)},
    {"amount": decimal.Decimal("1.10")},
    {"nan": math.nan, "infinity": -math.inf},  # null, as the SDK writes them
]


@pytest.mark.parametrize("version", [None, 1795672800])
@pytest.mark.parametrize(
    "extracted",
    [
        None,
        WHEN,
        datetime.datetime(
            2026, 11, 26, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        ),
    ],
)
def test_record_writer_lines_are_the_writers(
    capsys: pytest.CaptureFixture[str], version: int | None, extracted: datetime.datetime | None
) -> None:
    writer = GraphSingerWriter()
    write_record = writer.record_writer("onedrive_activity_user_detail", version, extracted)
    assert write_record is not None
    for record in DIRECT_RECORDS:
        written = write_record(record)
        direct = capsys.readouterr().out
        message = singer.RecordMessage(
            stream="onedrive_activity_user_detail",
            record=record,
            version=version,
            time_extracted=extracted,
        )
        SimpleSingerWriter().write_message(message)
        sdk = capsys.readouterr().out
        if written:
            assert direct == sdk
        else:  # left to the ordinary path, which writes the SDK's line
            assert direct == ""
            writer.write_message(message)
            assert capsys.readouterr().out == sdk
    # Plain ASCII JSON is written directly; the rest is declined.
    assert [bool(write_record(record)) for record in DIRECT_RECORDS] == [
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        True,
    ]


def test_record_writer_declines_a_stream_name_orjson_would_not_write_as_the_sdk() -> None:
    writer = GraphSingerWriter()
    assert writer.record_writer("zoë", None, WHEN) is None
    assert writer.record_writer("s", 2**64, WHEN) is None
