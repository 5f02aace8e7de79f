"""Singer messages to stdout: the SDK's JSON, encoded by the standard library's C encoder.

The SDK encodes every message with simplejson (for `Decimal` numbers and NaN) and flushes stdout
after each one. For the JSON this tap emits (strings, integers, booleans, lists, objects and the
`time_extracted` date-time) the standard library's encoder writes the same bytes about three
times faster; a message holding anything else (a Decimal, a NaN, another object) is encoded by
the SDK's own function, so every line is what the SDK would write. RECORD lines go out through
stdout's buffer; every other message (STATE above all) flushes it, so a target has every record
before the state that covers it.
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import TYPE_CHECKING, Any

from singer_sdk.singerlib.encoding.simple import RecordMessage, SimpleSingerWriter
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


def encode_message(message: dict[str, Any]) -> str:
    """One Singer message as the SDK's `serialize_json` writes it."""
    try:
        return _encode(message)
    except (_NotPlainJSONError, ValueError):  # a Decimal, a NaN or another object
        return serialize_json(message)


class GraphSingerWriter(SimpleSingerWriter):
    """The SDK's writer with a faster encoder and a flush per non-RECORD message."""

    def serialize_message(self, message: Message) -> str:
        data = message.to_dict()
        extracted = data.get("time_extracted")
        if extracted.__class__ is datetime.datetime:  # as `_encode_datetime` would, but once
            data["time_extracted"] = extracted.isoformat(sep="T")
        return encode_message(data)

    def write_message(self, message: Message) -> None:
        stdout = sys.stdout
        stdout.write(self.format_message(message) + "\n")
        if not isinstance(message, RecordMessage):
            stdout.flush()
