"""Column names: every stream's top-level columns are snake_case, whatever Graph calls them.

Graph's resources are camelCase (`userPrincipalName`); the usage reports and the tap's own streams
are snake_case (`user_principal_name`). One convention in the warehouse lets a join read
`users.user_principal_name = report.user_principal_name`. Only top-level properties are renamed:
values of nested objects (`assigned_licenses[].skuId`) keep Graph's shape, as Graph documents it.

Graph still speaks its own names, so each directory stream keeps one mapping (`Columns`): the
schema is written with Graph's names, `$select` and delta query are built from them, and each
record Graph returns is renamed once, before anything else sees it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

_UPPER_AFTER_LOWER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(name: str) -> str:
    """`userPrincipalName` -> `user_principal_name`; names already snake_case are unchanged."""
    return _UPPER_AFTER_LOWER.sub("_", name).lower()


class Columns:
    """A Graph resource's schema with snake_case columns, and the way back to Graph's names.

    `graph_schema` is the JSON schema with Graph's property names; `own` names the properties the
    tap adds (never sent to Graph in `$select`). Names starting with `_` (`_sdc_deleted_at`) are
    the tap's too and are kept as they are.
    """

    def __init__(self, graph_schema: dict[str, Any], own: frozenset[str] = frozenset()) -> None:
        self.schema: dict[str, Any] = copy.deepcopy(graph_schema)
        properties: dict[str, Any] = {}
        self.to_graph: dict[str, str] = {}
        for graph_name, prop in self.schema["properties"].items():
            column = snake_case(graph_name)
            if column in properties:
                msg = f"two properties map to the column {column!r}"
                raise ValueError(msg)
            if not graph_name.startswith("_") and graph_name not in own:
                described = prop.get("description")
                prop["description"] = (
                    f"Graph property `{graph_name}`. {described}"
                    if described
                    else f"Graph property `{graph_name}`."
                )
                self.to_graph[column] = graph_name
            properties[column] = prop
        self.schema["properties"] = properties
        self.schema["required"] = [snake_case(name) for name in self.schema.get("required", [])]
        self.from_graph: dict[str, str] = {
            graph: column for column, graph in self.to_graph.items() if graph != column
        }
        for name in own:
            self.from_graph[name] = snake_case(name)

    def graph_names(self, columns: list[str]) -> list[str]:
        """The Graph properties behind these columns (for `$select`), the tap's own left out."""
        return [self.to_graph[column] for column in columns if column in self.to_graph]

    def rename(self, record: dict[str, Any]) -> dict[str, Any]:
        """A Graph record with its top-level keys as columns; keys outside the mapping (Graph's
        annotations such as `@removed`, properties the schema lacks) are kept as they are."""
        # Built in C (map/zip) rather than a Python loop: this runs for every record.
        return dict(zip(map(self.from_graph.get, record, record), record.values(), strict=True))
