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
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import TYPE_CHECKING, Any

import orjson
from singer_sdk.singerlib.encoding.simple import RecordMessage, SimpleSingerWriter, StateMessage
from singer_sdk.singerlib.json import serialize_json

if TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message


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

    def write_message(self, message: Message) -> None:
        stdout = sys.stdout
        stdout.write(self.format_message(message) + "\n")
        if not isinstance(message, RecordMessage):
            stdout.flush()
