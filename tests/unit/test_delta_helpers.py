"""streams/delta.py: Graph's error codes (nested innerError included) and the delta paginator.

Delta query rounds end with `@odata.deltaLink` on the last page, earlier pages carry
`@odata.nextLink`; an expired token is answered with `syncStateNotFound`/`resyncRequired`
(https://learn.microsoft.com/en-us/graph/delta-query-overview and
https://learn.microsoft.com/en-us/graph/errors).

Not covered here: `_usable_link` and `select_fingerprint` are methods of a stream (they need its
URL base, path and `$select`), so they are proven end to end in tests/test_delta.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tap_microsoft365.errors import GraphAPIError
from tap_microsoft365.streams.delta import RESYNC_CODES, DeltaLinkPaginator, error_codes
from tests.unit.responses import response

NEXT = "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=page2"
DELTA = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=round2"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"code": "syncStateNotFound", "message": "gone"}}, ["syncstatenotfound"]),
        (
            {
                "error": {
                    "code": "BadRequest",
                    "innerError": {"code": "ResyncRequired", "innerError": {"code": "Deeper"}},
                }
            },
            ["badrequest", "resyncrequired", "deeper"],
        ),
        (  # "innererror" in lower case is read too
            {"error": {"code": "badRequest", "innererror": {"code": "syncStateInvalid"}}},
            ["badrequest", "syncstateinvalid"],
        ),
        ({"error": {"code": "", "innerError": {"code": "X"}}}, ["x"]),  # an empty code skipped
        ({"error": {"message": "no code"}}, []),
        ({"error": "a string, not an object"}, []),
        ({"value": []}, []),
        (["not", "an", "object"], []),
    ],
)
def test_error_codes(body: Any, expected: list[str]) -> None:
    assert error_codes(response(400, body=body)) == expected


@pytest.mark.parametrize("content", [b"", b"<html>proxy</html>", b'{"error": {"code": "cut'])
def test_error_codes_of_a_body_that_is_not_json(content: bytes) -> None:
    assert error_codes(response(502, content=content)) == []


def test_resync_codes_are_lower_case_for_the_comparison() -> None:
    assert {"syncstatenotfound", "resyncrequired"} == RESYNC_CODES
    codes = error_codes(response(400, body={"error": {"code": "SyncStateNotFound"}}))
    assert RESYNC_CODES.intersection(codes) == {"syncstatenotfound"}


def test_paginator_follows_next_links_and_keeps_the_final_delta_link() -> None:
    paginator = DeltaLinkPaginator()
    first = response(body={"value": [{"id": "1"}], "@odata.nextLink": NEXT})
    assert paginator.get_next_url(first) == NEXT
    assert paginator.delta_link is None
    last = response(body={"value": [{"id": "2"}], "@odata.deltaLink": DELTA})
    assert paginator.get_next_url(last) is None
    assert paginator.delta_link == DELTA


def test_a_delta_link_next_to_a_next_link_is_not_final() -> None:
    paginator = DeltaLinkPaginator()
    page = response(body={"value": [], "@odata.nextLink": NEXT, "@odata.deltaLink": DELTA})
    assert paginator.get_next_url(page) == NEXT
    assert paginator.delta_link is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"value": [], "@odata.nextLink": NEXT}, True),
        # The last page of an unchanged round: no items, but its deltaLink must be read.
        ({"value": [], "@odata.deltaLink": DELTA}, True),
        ({"value": []}, False),
    ],
)
def test_paginator_continues_past_empty_pages_that_carry_a_link(
    body: dict[str, Any], expected: bool
) -> None:
    assert DeltaLinkPaginator().continue_if_empty(response(body=body)) is expected


def test_paginator_names_a_page_that_is_not_json() -> None:
    page = response(
        200, content=b"<html><body>Proxy error</body></html>", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(GraphAPIError, match="delta page"):
        DeltaLinkPaginator().get_next_url(page)
