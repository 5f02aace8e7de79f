"""The fast record path writes exactly what the SDK's would (conform.py, writer.py).

The tap replaces two SDK steps for speed: type conformance (compiled once per schema) and JSON
encoding (the standard library's encoder). These tests hold them to the SDK's own functions,
value for value and byte for byte, on the sandbox tenant's records and on edge cases.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import gzip
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
from tap_microsoft365.conform import SchemaConformer, UnsupportedSchemaError, record_line_writer
from tap_microsoft365.streams.reports.fetcher import Delivery, DownloadBrokenError
from tap_microsoft365.streams.reports.stream import ReportStream
from tap_microsoft365.tap import TapMicrosoft365
from tap_microsoft365.writer import GraphSingerWriter, encode_message

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

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


@pytest.mark.parametrize(
    "name",
    # A list of products, a file with extra rows of every cell type, and a snapshot.
    ["onedrive_activity_user_detail", "teams_user_activity_user_detail", "mailbox_usage_detail"],
)
def test_report_lines_are_the_sdks_messages(
    emulator: GraphEmulator, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A report's records are written as lines without a message object each
    (`record_line_writer`): every RECORD line of a real read is the SDK's own message of that
    record, its type conformance and stream map included, serialized by the SDK."""
    day = emulator.reports.refresh_date.isoformat()
    catalog = TapMicrosoft365(config=emulator.config(), parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] == name
    tap = TapMicrosoft365(
        config=emulator.config(start_date=day), catalog=catalog, parse_env_config=False
    )
    stream = tap.streams[name]
    capsys.readouterr()
    tap.sync_all()
    lines = [line for line in capsys.readouterr().out.splitlines() if '"type":"RECORD"' in line]
    assert len(lines) > 10, name
    assert record_line_writer(stream) is not None  # the records went the direct way
    for line in lines:
        written = json.loads(line)
        sdks = list(Stream._generate_record_messages(stream, written["record"]))
        assert len(sdks) == 1
        sdks[0].time_extracted = datetime.datetime.fromisoformat(written["time_extracted"])
        assert line == serialize_json(sdks[0].to_dict())


def test_a_day_read_while_it_downloads_reaches_stdout_only_once_whole(
    emulator: GraphEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A day handed over while its file downloads is read as it arrives, but its lines are
    held back until the file is whole and read to its end (a day whole or not at all), and
    they are the SDK's messages of its records, a name orjson does not write included."""
    tap = TapMicrosoft365(config=emulator.config(), parse_env_config=False)
    stream = tap.streams["onedrive_activity_user_detail"]
    assert isinstance(stream, ReportStream)
    columns = stream.definition.columns
    upn = columns.index("User Principal Name")

    def row(n: int) -> bytes:
        cells = [""] * len(columns)
        cells[0] = "2026-11-24"
        cells[upn] = "zoë@contoso.com" if n == 7 else f"user{n}@contoso.com"
        return (",".join(cells) + "\r\n").encode()

    path = tmp_path / "day.csv.gz"
    delivery = Delivery(datetime.date(2026, 11, 24), path, complete=False)
    with gzip.open(path, "wb", compresslevel=1) as spool:
        spool.write(b"\xef\xbb\xbf" + ",".join(columns).encode() + b"\r\n")
        spool.write(b"".join(row(n) for n in range(2000)))
        spool.flush()  # what has arrived so far
        records = stream._read(delivery)
        stream.write_record(next(records))  # as the SDK's loop writes each record
        spool.write(b"".join(row(n) for n in range(2000, 3000)))
    assert '"type":"RECORD"' not in capsys.readouterr().out  # the file is not whole yet
    delivery.finish(broken=False)
    for record in records:
        stream.write_record(record)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3000
    for line in lines:
        written = json.loads(line)
        sdks = list(Stream._generate_record_messages(stream, written["record"]))
        sdks[0].time_extracted = datetime.datetime.fromisoformat(written["time_extracted"])
        assert line == serialize_json(sdks[0].to_dict())
    assert "zo\\u00eb@contoso.com" in lines[7]
    assert not path.exists()  # read to its end: discarded
    stream.fetcher.close()  # reading started the tenant's report workers


def test_rows_of_a_download_that_broke_are_not_counted_as_records(
    emulator: GraphEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The `record_count` metric counts RECORD lines written: the rows read from a download that
    then broke off never reach stdout, so they are not counted; the day fetched again is."""
    tap = TapMicrosoft365(config=emulator.config(), parse_env_config=False)
    stream = tap.streams["onedrive_activity_user_detail"]
    assert isinstance(stream, ReportStream)
    columns = stream.definition.columns
    upn = columns.index("User Principal Name")
    header = b"\xef\xbb\xbf" + ",".join(columns).encode() + b"\r\n"

    def rows(first: int, last: int) -> bytes:
        cells = [""] * len(columns)
        cells[0] = "2026-11-24"
        lines = []
        for n in range(first, last):
            cells[upn] = f"user{n}@contoso.com"
            lines.append(",".join(cells) + "\r\n")
        return "".join(lines).encode()

    counter = stream.get_record_counter()

    def emit(records: Iterator[dict[str, Any]]) -> None:
        for record in records:  # as the SDK's loop does with each record
            stream.write_record(record)
            counter.increment()

    broken = Delivery(datetime.date(2026, 11, 24), tmp_path / "broken.csv.gz", complete=False)
    assert broken.path is not None
    with gzip.open(broken.path, "wb", compresslevel=1) as spool:
        spool.write(header + rows(0, 2000))
        spool.flush()  # what has arrived so far
        records = stream._read(broken)
        emit(iter([next(records)]))  # one row read (more are, in its buffers) and written
    broken.finish(broken=True)
    with pytest.raises(DownloadBrokenError):
        emit(records)
    assert counter.value == 0
    assert '"type":"RECORD"' not in capsys.readouterr().out

    again = Delivery(datetime.date(2026, 11, 24), tmp_path / "again.csv.gz", complete=False)
    assert again.path is not None
    with gzip.open(again.path, "wb", compresslevel=1) as spool:
        spool.write(header + rows(0, 800))
    again.finish(broken=False)
    emit(stream._read(again))
    assert counter.value == 800
    assert len(capsys.readouterr().out.splitlines()) == 800
    stream.fetcher.close()  # reading started the tenant's report workers
