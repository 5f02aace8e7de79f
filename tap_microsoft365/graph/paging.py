"""Paging through Graph collections by `@odata.nextLink`.

Graph returns the URL of the next page, query options included; it is followed exactly as
returned (https://learn.microsoft.com/graph/paging).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from singer_sdk.pagination import BaseHATEOASPaginator

from tap_microsoft365.graph.transport import graph_json

if TYPE_CHECKING:
    import requests
    from typing_extensions import override
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override


class ODataNextLinkPaginator(BaseHATEOASPaginator):
    """Follows `@odata.nextLink`; a page with no items but a nextLink does not end paging."""

    @override
    def get_next_url(self, response: requests.Response) -> str | None:
        link = graph_json(response, "page").get("@odata.nextLink")
        return str(link) if link else None

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        return "@odata.nextLink" in graph_json(response, "page")
