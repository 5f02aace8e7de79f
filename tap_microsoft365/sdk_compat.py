"""Every private name of the Meltano Singer SDK the tap relies on, in one audited place.

The tap uses the SDK's public hooks wherever one exists (`request_decorator`,
`validate_response`, `post_process`, `get_records`, `TYPE_CONFORMANCE_LEVEL`, the writer class).
What remains below has no public equivalent; each use says why. All were checked against
singer-sdk 0.54.9. `missing()` lists what the installed SDK lacks, and tests/test_sdk_compat.py
fails with that list, so an SDK upgrade shows at once what to revisit.
"""

from __future__ import annotations

import copy
import inspect
from typing import TYPE_CHECKING, Any

import orjson
from singer_sdk import RESTStream, Stream, Tap

# conform.py reproduces the SDK's record conformance, compiled once per schema: it needs the
# SDK's own per-value decisions so that its output is the SDK's to the byte (no public API).
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.helpers._state import StateWriter
from singer_sdk.helpers._typing import (
    _conform_primitive_property,
    _is_exclusive_boolean_type,
    _warn_unmapped_properties,
    conform_record_data_types,
    is_object_type,
    is_uniform_list,
)
from singer_sdk.helpers._util import utc_now
from singer_sdk.singerlib.encoding.simple import StateMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    import requests
    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.singerlib import RecordMessage
    from typing_extensions import override
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

SDK_VERSION_CHECKED = "0.54.9"

# (owner, attribute) pairs the tap reads, calls or overrides.
REQUIRED: tuple[tuple[type, str], ...] = (
    (Tap, "_validate_config"),
    (Stream, "_sync_records"),
    (Stream, "_generate_record_messages"),
    (Stream, "_write_record_message"),
    (Stream, "_write_state_message"),
    (Stream, "_write_activate_version_message"),
    (Stream, "_increment_stream_state"),
    (RESTStream, "_request"),
)
# Attributes set on stream instances (not on the class) by the SDK.
REQUIRED_INSTANCE_ATTRIBUTES = ("_stream_version", "_tap")
# Attributes set on the tap instance by the SDK's constructor.
REQUIRED_TAP_ATTRIBUTES = ("_state_writer",)


def missing() -> list[str]:
    """What the installed SDK lacks of what this module relies on (empty: all present)."""
    gone = [f"{owner.__name__}.{name}" for owner, name in REQUIRED if not hasattr(owner, name)]
    source = inspect.getsource(Stream.__init__)
    gone += [
        f"Stream instance attribute {name}"
        for name in REQUIRED_INSTANCE_ATTRIBUTES
        if f"self.{name}" not in source
    ]
    tap_source = inspect.getsource(Tap.__init__)
    gone += [
        f"Tap instance attribute {name}"
        for name in REQUIRED_TAP_ATTRIBUTES
        if f"self.{name}" not in tap_source
    ]
    return gone


class StateLineWriter(StateWriter):
    """The SDK's StateWriter (a STATE message only when the state changed since the last one),
    remembering the last state as its JSON instead of as a deep copy.

    A report writes STATE after every day it delivers, and with N tenants the state holds N
    partitions of every stream: the SDK's deep copy and deep comparison of all of it after each
    day made a backfill's cost grow as N squared. orjson writes the state in one C call; a state
    it cannot write (a value that is not plain JSON) is kept as the SDK keeps it.
    """

    def __init__(self, message_writer: Any) -> None:
        super().__init__(message_writer)
        self._last: object = None

    def write_state(self, state: Any) -> None:
        """Write a STATE message if the state has changed."""
        try:
            seen: object = orjson.dumps(state, option=orjson.OPT_PASSTHROUGH_DATETIME)
        except (orjson.JSONEncodeError, TypeError):
            seen = copy.deepcopy(state)
        if self._last is None or seen != self._last:
            self._message_writer.write_message(StateMessage(value=state))
            self._last = seen


class CompatTap(Tap):
    """The SDK's private steps a tap changes, routed to a hook of the tap's own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The SDK's writer of STATE messages, replaced by one that does not deep-copy the
        # state after each (StateLineWriter); no public hook sets it.
        self._state_writer = StateLineWriter(self.message_writer)

    def check_config(self, *, raise_errors: bool) -> list[str]:
        """The config's problems (the SDK's JSON-schema check by default)."""
        return super()._validate_config(raise_errors=raise_errors)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # Run by the constructor before anything else: the only place to check the settings
        # first and report every problem of a config in one line (the SDK logs one line per
        # schema error, values included, and exits 1). No public hook exists.
        return self.check_config(raise_errors=raise_errors)


class CompatStream(RESTStream[Any]):
    """The SDK's private steps a Graph stream changes, each routed to a hook of the tap's own."""

    # Whether each record moves the replication bookmark (the SDK's way). Report streams move
    # it per complete day instead (`bookmark_day`).
    bookmarks_follow_records: bool = True

    def handle_sync_error(self, error: Exception) -> bool:
        """Called with an error that ends a stream's reading; True when it was handled."""
        return False

    def record_messages(self, record: Record) -> Generator[RecordMessage, None, None]:
        """The RECORD messages of one record (the SDK's own step by default)."""
        yield from super()._generate_record_messages(record)

    @override
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> Generator[dict[str, Any], Any, Any]:
        # The SDK's `sync` is final, and streams read records in their own ways (delta rounds,
        # report deliveries): the one place every stream's reading passes through is here.
        try:
            yield from super()._sync_records(context, write_messages=write_messages)
        except Exception as exc:
            if not self.handle_sync_error(exc):
                raise

    @override
    def _generate_record_messages(self, record: Record) -> Generator[RecordMessage, None, None]:
        # The SDK's step (drop deselected properties, conform types, apply stream maps) has no
        # public hook; conform.py does it with the conformance compiled once per schema.
        yield from self.record_messages(record)

    def write_record(self, record: Record) -> None:
        """Write one record's RECORD message(s) (the SDK's own step by default)."""
        super()._write_record_message(record)

    @override
    def _write_record_message(self, record: Record) -> None:
        # The SDK's per-record write (its messages, then `state_manager.is_flushed = False`)
        # has no public hook; report streams write a record's line directly (`write_record`).
        self.write_record(record)

    @override
    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        # No public switch stops records from moving the bookmark.
        if self.bookmarks_follow_records:
            super()._increment_stream_state(latest_record, context=context)


def write_state_message(stream: Stream) -> None:
    """Send the stream's state now (the SDK writes it only at its own checkpoints)."""
    stream._write_state_message()


def write_activate_version(stream: Stream, version: int) -> None:
    """ACTIVATE_VERSION through the SDK's writer (it honours stream maps and aliases); the
    SDK has no public way to send it after the last record."""
    stream._write_activate_version_message(version)


def tap_of(stream: Stream) -> Tap:
    """The tap a stream belongs to (its message writer); the SDK keeps it private."""
    return stream._tap


def stream_version(stream: Stream) -> int | None:
    """The `version` the SDK puts on every RECORD message of the stream."""
    return stream._stream_version


def set_stream_version(stream: Stream, version: int | None) -> None:
    """Set the `version` of the stream's RECORD messages; the SDK has no public setter."""
    stream._stream_version = version


def request_once(
    stream: RESTStream[Any],
) -> Callable[[requests.PreparedRequest, Context | None], requests.Response]:
    """The SDK's one HTTP call of a stream (send, request metrics, `validate_response`), for
    the calls a stream makes besides its pages; the caller wraps it in `request_decorator`."""
    return stream._request


__all__ = [
    "SDK_VERSION_CHECKED",
    "CompatStream",
    "_conform_primitive_property",
    "_is_exclusive_boolean_type",
    "_warn_unmapped_properties",
    "conform_record_data_types",
    "is_object_type",
    "is_uniform_list",
    "missing",
    "pop_deselected_record_properties",
    "request_once",
    "set_stream_version",
    "stream_version",
    "tap_of",
    "utc_now",
    "write_activate_version",
    "write_state_message",
]
