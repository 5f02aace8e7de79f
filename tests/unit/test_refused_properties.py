"""streams/base.py: which properties a Graph 400 says it cannot select.

Graph's two bodies: "Could not find a property named 'X' on type 'microsoft.graph.user'."
(https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/7594) and, on delta,
"Invalid request for delta query: for this entity set, $expand/$select is not supported for the
following properties: birthday" (https://github.com/microsoftgraph/microsoft-graph-docs/issues/14141).
"""

from __future__ import annotations

import pytest

from tap_microsoft365.streams.base import refused_properties


@pytest.mark.parametrize(
    ("message", "names"),
    [
        (
            "Could not find a property named 'employeeType' on type 'microsoft.graph.user'.",
            ["employeeType"],
        ),
        (
            "The query specified in the URI is not valid. Could not find a property named 'id' on "
            "type 'Microsoft.Fast.Profile.Web.Models._1._0.Profile'.",
            ["id"],
        ),
        (
            "Invalid request for delta query: for this entity set, $expand/$select is not "
            "supported "
            "for the following properties: birthday",
            ["birthday"],
        ),
        (
            "Invalid request for delta query: for this entity set, $expand/$select is not "
            "supported "
            "for the following properties: birthday, skills.",
            ["birthday", "skills"],
        ),
        ("Invalid request.", []),
        ("The delta token is not valid.", []),
        ("", []),
    ],
)
def test_refused_properties(message: str, names: list[str]) -> None:
    assert refused_properties(message) == names
