"""sdk_compat.py: StateLineWriter, the SDK's STATE writer without its deep copy of the state.

Like the SDK's StateWriter it sends a STATE message only when the state changed since the last
one; it remembers that state as its JSON, so a report's STATE after every day no longer copies
every tenant's partitions of every stream.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from singer_sdk.singerlib.encoding.simple import StateMessage

from tap_microsoft365.sdk_compat import StateLineWriter


class Collect:
    """A message writer that keeps what it is given, as it was then (a real writer writes the
    line at once; the state itself goes on changing)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def write_message(self, message: Any) -> None:
        assert isinstance(message, StateMessage)
        self.messages.append(copy.deepcopy(message))


def test_a_state_is_written_only_when_it_changed() -> None:
    out = Collect()
    writer = StateLineWriter(out)
    state: dict[str, Any] = {"bookmarks": {"r": {"partitions": [{"replication_key_value": "1"}]}}}
    writer.write_state(state)
    writer.write_state(state)  # unchanged: nothing
    state["bookmarks"]["r"]["partitions"][0]["replication_key_value"] = "2"  # changed in place
    writer.write_state(state)
    writer.write_state({"bookmarks": {"r": {"partitions": [{"replication_key_value": "2"}]}}})
    assert [
        m.value["bookmarks"]["r"]["partitions"][0]["replication_key_value"] for m in out.messages
    ] == ["1", "2"]


def test_a_state_that_is_not_plain_json_is_compared_as_the_sdk_does() -> None:
    out = Collect()
    writer = StateLineWriter(out)
    when = datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC)
    state: dict[str, Any] = {"bookmarks": {"s": {"at": when}}}
    writer.write_state(state)
    writer.write_state({"bookmarks": {"s": {"at": when}}})  # equal: nothing
    state["bookmarks"]["s"]["at"] = when + datetime.timedelta(days=1)  # changed in place
    writer.write_state(state)
    assert len(out.messages) == 2
