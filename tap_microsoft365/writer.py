"""Singer messages to stdout: the SDK's JSON, encoded by orjson.

The SDK encodes every message with simplejson (for `Decimal` numbers and NaN) and flushes stdout
after each one. For the JSON this tap emits (strings, integers, booleans, lists, objects and the
`time_extracted` date-time) orjson writes the same bytes about twenty times faster. A line orjson
would write differently goes to the standard library's C encoder, configured as the SDK's: text
that is not ASCII or holds DEL (the SDK escapes those as \\uXXXX, orjson does not), an integer
beyond 64 bits, a date, date-time, dataclass or subclass of a JSON type; and anything that
encoder cannot write as the SDK does (a Decimal, a NaN in a line that needs the fallback) goes to
the SDK's own function. What is left: a float under 1e-4 is spelled without an exponent by
orjson (0.00001, the SDK 1e-05: the same number), and an Enum member (never in a record parsed
from JSON or CSV) is written as its value; no schema of this tap has a number property.

RECORD lines go out through stdout's buffer; every other message (STATE above all) flushes it,
so a target has every record before the state that covers it.

`record_writer` writes the RECORD lines of one stream, version and extraction time without a
message object per record: the line's fixed parts are cut once from the writer's own line for an
empty record, and each record's JSON goes between them; a record orjson would not write as
`encode_message` does is left to the caller's ordinary path.
"""

from __future__ import annotations

import datetime
import json
import shutil
import sys
from typing import IO, TYPE_CHECKING, Any

import orjson
from singer_sdk.singerlib.encoding.simple import RecordMessage, SimpleSingerWriter, StateMessage
from singer_sdk.singerlib.json import serialize_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from singer_sdk.singerlib.encoding.simple import Message

_RECORD_SLOT = ',"record":{}'
_COPY_BYTES = 1 << 20


class _NotPlainJSONError(TypeError):
    """A value the standard encoder would write differently from the SDK's."""


def _encode_datetime(value: Any) -> str:
    # The SDK's `_default_encoding` for date-times; anything else is left to the SDK.
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep="T")
    raise _NotPlainJSONError


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_encode_datetime).encode
_dumps = orjson.dumps
# Dates, date-times, dataclasses and subclasses of str, int, dict and list are not written by
# orjson itself: they raise, and the line goes to the encoders below.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_OrjsonError = orjson.JSONEncodeError


def encode_message(message: dict[str, Any]) -> str:
    """One Singer message as the SDK's `serialize_json` writes it."""
    try:
        line = _dumps(message, option=_ORJSON_OPTIONS)
    except _OrjsonError:  # a big integer, a date, a Decimal, another object
        pass
    else:
        if line.isascii() and b"\x7f" not in line:  # the SDK escapes DEL as \u007f
            return line.decode()
    try:
        return _encode(message)
    except (_NotPlainJSONError, ValueError):  # a Decimal, a NaN or another object
        return serialize_json(message)


class GraphSingerWriter(SimpleSingerWriter):
    """The SDK's writer with a faster encoder and a flush per non-RECORD message."""

    _extracted: datetime.datetime | None = None
    _extracted_text = ""

    def serialize_message(self, message: Message) -> str:
        if message.__class__ is StateMessage:
            # `to_dict` deep-copies the whole state (every tenant's partitions of every stream)
            # for each STATE message, a report day each; the line is written at once, so the
            # value itself is encoded (the same JSON).
            return encode_message({"type": message.type, "value": message.value})
        data = message.to_dict()
        extracted = data.get("time_extracted")
        if extracted.__class__ is datetime.datetime:  # as `_encode_datetime` would, but once
            # The records of one report file share their extraction time: formatted once.
            if extracted is not self._extracted:
                self._extracted = extracted
                self._extracted_text = extracted.isoformat(sep="T")
            data["time_extracted"] = self._extracted_text
        return encode_message(data)

    def record_writer(
        self,
        stream: str,
        version: int | None,
        time_extracted: datetime.datetime | None,
        out: IO[bytes] | None = None,
    ) -> Callable[[dict[str, Any]], bool] | None:
        """A function that writes a record's RECORD line exactly as `write_message` writes
        `RecordMessage(stream, record, version, time_extracted)` (to stdout, or as bytes to
        `out`), and returns False, writing nothing, for a record it cannot (a value orjson
        leaves to the other encoders, text that is not ASCII). None when the line's fixed
        parts are not plain ASCII JSON."""
        if not stream.isascii() or "\x7f" in stream or not -(2**63) <= (version or 0) < 2**64:
            return None  # the line would not be orjson's (`encode_message`)
        empty = self.serialize_message(
            RecordMessage(stream=stream, record={}, version=version, time_extracted=time_extracted)
        )
        head, slot, rest = empty.partition(_RECORD_SLOT)
        if not slot:
            return None
        head += ',"record":'
        tail = rest + "\n"
        dumps, options, error = _dumps, _ORJSON_OPTIONS, _OrjsonError
        if out is not None:
            write, head_bytes, tail_bytes = out.write, head.encode(), tail.encode()

            def write_bytes(record: dict[str, Any]) -> bool:
                try:
                    body = dumps(record, option=options)
                except error:
                    return False
                if not body.isascii() or b"\x7f" in body:
                    return False
                write(head_bytes + body + tail_bytes)
                return True

            return write_bytes

        def write_record(record: dict[str, Any]) -> bool:
            try:
                body = dumps(record, option=options)
            except error:  # a big integer, a date, a Decimal, another object
                return False
            if not body.isascii() or b"\x7f" in body:  # the SDK escapes these
                return False
            sys.stdout.write(head + body.decode() + tail)
            return True

        return write_record

    @staticmethod
    def write_lines(lines: IO[bytes]) -> None:
        """Copy a file of whole lines (`record_writer`'s with `out`) to stdout, after what
        stdout holds already."""
        stdout = sys.stdout
        stdout.flush()
        lines.seek(0)
        target = getattr(stdout, "buffer", None)
        if target is not None:
            shutil.copyfileobj(lines, target, _COPY_BYTES)
            return
        while chunk := lines.read(_COPY_BYTES):  # a stdout without bytes underneath
            stdout.write(chunk.decode())

    def write_message(self, message: Message) -> None:
        stdout = sys.stdout
        stdout.write(self.format_message(message) + "\n")
        if not isinstance(message, RecordMessage):
            stdout.flush()
