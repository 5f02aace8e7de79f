"""Records to RECORD messages: the SDK's steps, with type conformance compiled once per schema.

Before a record is written, the SDK drops its deselected properties, conforms it to the schema
(`TYPE_CONFORMANCE_LEVEL = RECURSIVE`: properties the schema does not know are dropped, with one
warning; booleans, floats and date-times are normalised) and applies the stream maps. Its
conformance walks the schema again for every value of every record: for a user with 30 assigned
plans that is about 200 schema look-ups and type tests, about two thirds of the CPU a users sync
took. `SchemaConformer` does the same walk once per schema and keeps, for each property, only
what the SDK would decide for it; values of JSON's own types (str, int, bool, None) then cost a
dictionary look-up. Anything else (a float, a date-time, bytes) goes through the SDK's own
function, so the output is the SDK's to the byte.
"""

from __future__ import annotations

from itertools import chain
from typing import IO, TYPE_CHECKING, Any

import singer_sdk.singerlib as singer
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform

from tap_microsoft365.sdk_compat import (
    _conform_primitive_property,
    _is_exclusive_boolean_type,
    _warn_unmapped_properties,
    conform_record_data_types,
    is_object_type,
    is_uniform_list,
    pop_deselected_record_properties,
    stream_version,
    tap_of,
    utc_now,
)
from tap_microsoft365.writer import GraphSingerWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from singer_sdk import Stream
    from singer_sdk.mapper import StreamMap

# Types JSON decoding and CSV parsing produce, which the SDK's conformance returns unchanged
# (exclusive booleans aside).
_PLAIN = frozenset({str, int, bool, type(None)})
_BOOLEAN_OR_NONE = frozenset({bool, type(None)})
_DICT = frozenset({dict})
_JSON = _PLAIN | {list, dict}
_MISSING = object()


class UnsupportedSchemaError(ValueError):
    """A schema shape the compiled walk does not reproduce; the SDK's walk is used instead."""


class _Property:
    """What the SDK's conformance does with one property's values (`_conform_record_data_types`
    and `_conform_uniform_list`, decided once)."""

    __slots__ = ("exclusive_boolean", "identity", "items", "obj", "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.exclusive_boolean = _is_exclusive_boolean_type(schema)
        self.items: _Property | None = None
        self.obj: _Object | None = None
        try:
            uniform_list = is_uniform_list(schema)
        except Exception:  # no "type" (or empty): the SDK fails on a list value; let it
            raise UnsupportedSchemaError(str(schema)) from None
        if uniform_list:
            items = schema["items"]
            if is_object_type(items) and "properties" not in items:
                raise UnsupportedSchemaError(str(items))  # the SDK fails on such items
            self.items = _Property(items)
        if is_object_type(schema) and "properties" in schema:
            self.obj = _Object(schema)
        # Whether conforming leaves every JSON value of this property as it is, NaN and
        # infinite floats aside (no booleans to coerce, no object that drops unknown keys).
        self.identity: bool = (
            not self.exclusive_boolean
            and (self.items is None or self.items.identity)
            and (self.obj is None or self.obj.identity)
        )

    def value(self, elem: Any, path: str, unmapped: list[str]) -> Any:
        """The conformed value of a property that is not a plain JSON value."""
        if self.items is not None and isinstance(elem, list):
            return self.items.elements(elem, path, unmapped)
        if self.obj is not None and isinstance(elem, dict):
            return self.obj.conform(elem, path, unmapped)
        return self.primitive(elem)

    def elements(self, elements: list[Any], path: str, unmapped: list[str]) -> list[Any]:
        """A uniform list's items (`_conform_uniform_list`); `self` is the items' schema."""
        obj, primitive = self.obj, self.primitive
        if obj is None:
            if not self.exclusive_boolean and _PLAIN.issuperset(map(type, elements)):
                return elements
            return [primitive(item) for item in elements]
        if obj.all_unchanged(elements):
            return elements
        return [
            obj.conform(item, path, unmapped) if isinstance(item, dict) else primitive(item)
            for item in elements
        ]

    def primitive(self, elem: Any) -> Any:
        """`_conform_primitive_property`: plain JSON values directly, anything else by the SDK."""
        if elem.__class__ in _PLAIN:
            if self.exclusive_boolean and elem is not None:
                return elem != 0
            return elem
        return _conform_primitive_property(elem, self.schema)


class _Object:
    """An object schema's properties, compiled."""

    __slots__ = ("additional", "booleans", "identity", "names", "properties", "special")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.additional = bool(schema.get("additionalProperties"))
        self.properties = {name: _Property(sub) for name, sub in schema["properties"].items()}
        self.names = frozenset(self.properties)
        self.booleans = tuple(name for name, p in self.properties.items() if p.exclusive_boolean)
        self.identity: bool = self.additional and all(p.identity for p in self.properties.values())
        # The properties whose value may change when it is JSON: containers the schema
        # describes (their contents), and exclusive booleans (a string or number becomes a
        # boolean); with the value types each leaves as they are.
        self.special = tuple(
            (
                name,
                p,
                _BOOLEAN_OR_NONE if p.exclusive_boolean else _PLAIN,
                # a list of strings, numbers or nulls: left as it is
                p.items is not None and p.items.obj is None and not p.items.exclusive_boolean,
                # a list of objects: `all_unchanged` tells at once
                p.items.obj if p.items is not None else None,
                p.identity,
            )
            for name, p in self.properties.items()
            if p.exclusive_boolean or p.items is not None or p.obj is not None
        )

    def all_unchanged(self, elements: list[Any]) -> bool:
        """Whether every item of a list is an object that conforming leaves as it is (known
        keys, plain values, no boolean properties), tested by C-level set operations."""
        return (
            not self.booleans
            and _DICT.issuperset(map(type, elements))
            and (self.additional or all(map(self.names.issuperset, elements)))
            and _PLAIN.issuperset(map(type, chain.from_iterable(map(dict.values, elements))))
        )

    def conform(
        self,
        obj: dict[str, Any],
        parent: str | None,
        unmapped: list[str],
        *,
        skip_identity: bool = False,
    ) -> dict[str, Any]:
        """`obj` conformed as the SDK does; only the properties that can change are visited
        when every key is known and every value is plain JSON or a container.

        `skip_identity`: the caller knows every value is JSON and that a NaN or infinite float
        left in place is written as the SDK writes its None (null): identity properties are
        then not visited at all.
        """
        if not (self.additional or obj.keys() <= self.names):
            return self.walk(obj, parent, unmapped)  # unknown keys: dropped and reported
        types = set(map(type, obj.values()))
        if not types <= _JSON:  # a float (NaN?), a date-time...: the full walk
            return self.walk(obj, parent, unmapped)
        output = None
        for name, prop, unchanged, plain_items, object_items, identity in self.special:
            if skip_identity and identity:
                continue
            elem = obj.get(name, _MISSING)
            if elem is _MISSING or elem.__class__ in unchanged:
                continue
            if elem.__class__ is list and (
                (plain_items and _PLAIN.issuperset(map(type, elem)))
                or (object_items is not None and object_items.all_unchanged(elem))
            ):
                continue  # the common lists, checked here without a call per item
            if output is None:
                output = dict(obj)
            output[name] = prop.value(
                elem, name if parent is None else f"{parent}.{name}", unmapped
            )
        return obj if output is None else output

    def walk(self, obj: dict[str, Any], parent: str | None, unmapped: list[str]) -> dict[str, Any]:
        """`_conform_record_data_types`, property by property (the SDK's order)."""
        output: dict[str, Any] = {}
        properties = self.properties
        for name, elem in obj.items():
            prop = properties.get(name)
            if prop is None:
                if self.additional:
                    output[name] = elem
                else:
                    unmapped.append(name if parent is None else f"{parent}.{name}")
                continue
            if elem.__class__ in _PLAIN:
                output[name] = elem != 0 if prop.exclusive_boolean and elem is not None else elem
            else:
                output[name] = prop.value(
                    elem, name if parent is None else f"{parent}.{name}", unmapped
                )
        return output


class SchemaConformer:
    """`conform_record_data_types` at level RECURSIVE for one schema, compiled once."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._root = _Object(schema)

    def conform(
        self, stream_name: str, record: dict[str, Any], logger: Any, *, json_values: bool = False
    ) -> dict[str, Any]:
        """The conformed record; unknown properties dropped with the SDK's one-time warning.

        `json_values`: the record holds only JSON values and goes straight to the writer
        (no stream map reads it), so properties whose JSON values conforming never changes
        are not visited (see `_Object.conform`).
        """
        unmapped: list[str] = []
        output = self._root.conform(record, None, unmapped, skip_identity=json_values)
        if unmapped:
            _warn_unmapped_properties(stream_name, tuple(unmapped), logger)
        return output


def _conformer(stream: Stream, schema: dict[str, Any]) -> SchemaConformer | None:
    """The stream's compiled conformer for `schema` (None: use the SDK's walk)."""
    cached: tuple[dict[str, Any], SchemaConformer | None] | None = getattr(
        stream, "_tap_conformer", None
    )
    if cached is not None and cached[0] is schema:
        return cached[1]
    conformer: SchemaConformer | None
    try:
        conformer = SchemaConformer(schema)
    except (UnsupportedSchemaError, KeyError, TypeError, AttributeError):
        conformer = None
    stream.__dict__["_tap_conformer"] = (schema, conformer)
    return conformer


def _selects_everything(stream: Stream) -> bool:
    """Whether no property is deselected, so dropping deselected properties drops nothing."""
    mask = stream.mask
    cached: tuple[Any, bool] | None = getattr(stream, "_tap_mask_full", None)
    if cached is not None and cached[0] is mask:
        return cached[1]
    full = all(mask.values())
    stream.__dict__["_tap_mask_full"] = (mask, full)
    return full


def _default_map(stream: Stream) -> StreamMap | None:
    """The stream's only map when it passes records through unchanged (no stream maps
    configured, no flattening), else None."""
    cached: tuple[Any, StreamMap | None] | None = getattr(stream, "_tap_default_map", None)
    maps = stream.stream_maps
    if cached is not None and cached[0] is maps:
        return cached[1]
    only = (
        maps[0]
        if len(maps) == 1
        and type(maps[0]) is SameRecordTransform
        and not maps[0].flattening_enabled
        else None
    )
    stream.__dict__["_tap_default_map"] = (maps, only)
    return only


def record_line_writer(
    stream: Stream, out: IO[bytes] | None = None
) -> Callable[[dict[str, Any]], bool] | None:
    """A function writing a record's RECORD line straight to the tap's writer, when that line
    is what `record_messages` and the writer would produce for it: no property deselected, no
    type conformance (the stream builds its records typed), no stream map but the default one,
    the tap's own writer, and an extraction time the stream knows (`records_extracted_at`).
    None otherwise. The function returns False for a record it leaves to the ordinary path.

    With `out`, lines go to that file instead of stdout (`GraphSingerWriter.write_lines` copies
    them later), every record's: one orjson does not write goes through `record_messages` and
    the writer's own serialization."""
    extracted = getattr(stream, "records_extracted_at", None)
    writer = getattr(tap_of(stream), "message_writer", None)
    default_map = _default_map(stream)
    if (
        stream.TYPE_CONFORMANCE_LEVEL != TypeConformanceLevel.NONE
        or not _selects_everything(stream)
        or default_map is None
        or extracted is None
        or type(writer) is not GraphSingerWriter
    ):
        return None
    direct = writer.record_writer(
        default_map.stream_alias, stream_version(stream), extracted, out=out
    )
    if direct is None or out is None:
        return direct
    format_message = writer.format_message

    def write_any(record: dict[str, Any]) -> bool:
        if not direct(record):
            for message in record_messages(stream, record):
                out.write(format_message(message).encode() + b"\n")
        return True

    return write_any


def record_messages(
    stream: Stream, record: dict[str, Any]
) -> Generator[singer.RecordMessage, None, None]:
    """What `Stream._generate_record_messages` yields for `record`, computed faster."""
    schema = stream.effective_schema
    if not _selects_everything(stream):
        pop_deselected_record_properties(record, stream.schema, stream.mask)
    level = stream.TYPE_CONFORMANCE_LEVEL
    default_map = _default_map(stream)
    if level == TypeConformanceLevel.RECURSIVE and (conformer := _conformer(stream, schema)):
        # Records hold only JSON values (the stream says so) and reach the writer unchanged:
        # a NaN left in place is written null there, as the SDK's conformance makes it.
        json_values = default_map is not None and bool(getattr(stream, "records_are_json", False))
        record = conformer.conform(stream.name, record, stream.logger, json_values=json_values)
    elif level != TypeConformanceLevel.NONE:  # NONE: the SDK returns the record as it is
        record = conform_record_data_types(
            stream_name=stream.name,
            record=record,
            schema=schema,
            level=level,
            logger=stream.logger,
        )
    # A stream that knows when its records were extracted (a report file: when it was
    # downloaded) says so; the SDK's default is the time the message is made.
    extracted = getattr(stream, "records_extracted_at", None) or utc_now()
    if default_map is not None:  # its transform returns the record itself
        yield singer.RecordMessage(
            stream=default_map.stream_alias,
            record=record,
            version=stream_version(stream),
            time_extracted=extracted,
        )
        return
    for stream_map in stream.stream_maps:
        mapped_record = stream_map.transform(record)
        if mapped_record is not None:
            yield singer.RecordMessage(
                stream=stream_map.stream_alias,
                record=mapped_record,
                version=stream_version(stream),
                time_extracted=extracted,
            )
