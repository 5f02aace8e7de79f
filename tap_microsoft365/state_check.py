"""Check the files given on the command line, and the state, before anything runs.

A config or state file that cannot be used ends the run with one line naming the file and what to
do, before any network call and before any record is emitted: a state the tap cannot resume from
(cut off, of the wrong shape, or written by another version for a stream that now keeps another
bookmark) would otherwise stop the run half-way, after records were emitted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tap_microsoft365.errors import SettingsError, StateError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

STATE_FIX = (
    "pass the last STATE a run of the tap wrote (meltano state get), or remove the broken "
    "bookmark (a stream without one is read in full)"
)
CONFIG_FIX = (
    "pass the path of a JSON file holding an object of settings, or --config ENV to read "
    "TAP_MICROSOFT365_* variables"
)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _read(path: str, what: str, error: type[Exception], fix: str) -> Any:
    """The JSON in `path`, or `error` with one line naming the file."""
    file = Path(path)
    if not file.exists():
        msg = f"{what} '{path}' does not exist: {fix}"
        raise error(msg)
    if file.is_dir():
        msg = f"{what} '{path}' is a directory, not a file: {fix}"
        raise error(msg)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        msg = f"{what} '{path}' is not UTF-8 text: {fix}"
        raise error(msg) from None
    except OSError as exc:
        msg = (
            f"{what} '{path}' cannot be read ({exc.strerror}): give the user running the tap "
            "read access to it"
        )
        raise error(msg) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        cut_off = (
            " (cut off)"
            if isinstance(exc, json.JSONDecodeError) and exc.pos >= len(text.rstrip())
            else ""
        )
        msg = f"{what} '{path}' is not valid JSON{cut_off}: {exc}: {fix}"
        raise error(msg) from None


def check_config_file(path: str) -> None:
    """A config file must be readable JSON holding an object."""
    config = _read(path, "config file", SettingsError, CONFIG_FIX)
    if not isinstance(config, dict):
        msg = f"config file '{path}' holds {_kind(config)}, not an object of settings: {CONFIG_FIX}"
        raise SettingsError(msg)


def check_state_file(path: str) -> None:
    """A state file must be readable JSON of the shape `check_state` accepts."""
    state = _read(path, "state file", StateError, STATE_FIX)
    check_state(state, where=f"state file '{path}'")


def _check_bookmark(stream: str, bookmark: Any, where: str) -> None:
    if not isinstance(bookmark, dict):
        msg = f"{where}: the bookmark of {stream} is {_kind(bookmark)}, not an object: {STATE_FIX}"
        raise StateError(msg)
    version = bookmark.get("table_version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        msg = (
            f"{where}: table_version of {stream} is {version!r}, not a whole number (the "
            f"Unix time its full read started): {STATE_FIX}"
        )
        raise StateError(msg)
    partitions = bookmark.get("partitions")
    if partitions is not None:
        if not isinstance(partitions, list):
            msg = f"{where}: the partitions of {stream} are {_kind(partitions)}: {STATE_FIX}"
            raise StateError(msg)
        for partition in partitions:
            _check_bookmark(stream, partition, where)


def check_state(state: Any, where: str = "state") -> None:
    """The shape every Singer state of this tap has: {"bookmarks": {stream: {...}}}."""
    if not isinstance(state, dict):
        msg = f"{where} holds {_kind(state)}, not a Singer state object: {STATE_FIX}"
        raise StateError(msg)
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        msg = f"{where}: bookmarks is {_kind(bookmarks)}, not an object: {STATE_FIX}"
        raise StateError(msg)
    for stream, bookmark in bookmarks.items():
        _check_bookmark(stream, bookmark, where)


def check_replication_keys(
    state: Mapping[str, Any], streams: Iterable[tuple[str, str | None]]
) -> None:
    """Each stream's bookmark must be kept on the stream's own replication key.

    A bookmark on another key (from another version of the tap) cannot say where to resume:
    the run would fail half-way, after emitting records.
    """
    bookmarks = state.get("bookmarks") or {}
    for stream, replication_key in streams:
        bookmark = bookmarks.get(stream)
        if not isinstance(bookmark, dict):
            continue
        for entry in [bookmark, *(bookmark.get("partitions") or [])]:
            stored = entry.get("replication_key")
            if stored is not None and stored != replication_key:
                expected = (
                    f"keeps its bookmark on {replication_key}"
                    if replication_key
                    else "keeps no replication key"
                )
                msg = (
                    f"state: the bookmark of {stream} is kept on replication_key {stored!r}, "
                    f"from another version of the tap; {stream} now {expected}: remove "
                    f"{stream}'s bookmark from the state (meltano state edit, or a new --state) "
                    "to read it in full"
                )
                raise StateError(msg)


def command_line_files(argv: list[str], option: str) -> list[str]:
    """The values given to `option` (`--config x` or `--config=x`) on a command line."""
    values = []
    for index, argument in enumerate(argv):
        if argument == option and index + 1 < len(argv):
            values.append(argv[index + 1])
        elif argument.startswith(f"{option}="):
            values.append(argument.split("=", 1)[1])
    return values
