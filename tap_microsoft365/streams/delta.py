"""Incremental directory streams through Graph delta query
(https://learn.microsoft.com/graph/delta-query-overview).

A delta stream reads its collection in rounds. An initial round first asks
`/<collection>/delta?$select=...&$deltatoken=latest` for a delta link that marks "now" (one
request, no objects), then lists every object from `/<collection>?$select=...&$top=999`: Graph
ignores `$top` on delta and pages it by about 200, so listing costs a fifth of the requests
(ceil(N/999)). Changes made while the listing runs are after the mark, so the next round repeats
them: nothing is lost, an upserting target ends right. Later rounds GET the stored link and
return only what changed since, ending with a new link. The link is kept, whole, in the stream's
Singer state:

    {"bookmarks": {"users": {"delta_link": "https://graph.microsoft.com/v1.0/users/delta?...",
                             "delta_link_obtained_at": "2026-11-26T06:00:00+00:00",
                             "table_version": 1795672800,
                             "select_fingerprint": "5d41402abc4b"}}}

Guarantees:

- the stored link advances only after the last page of a round was emitted, so a run that dies
  mid-round leaves the previous link in every STATE message and the next run replays from it (at
  least once, never lost);
- every record carries every schema property (null when Graph omits it), so an upserting target
  never keeps stale values, and duplicates within a round resolve to the last one;
- `@removed` becomes a record with the id, `_sdc_deleted_at` (the sync's time) and
  `_removed_reason` (`changed` = soft-deleted, `deleted` = permanent);
- an initial round is a complete snapshot: it ends with ACTIVATE_VERSION, so SDK targets retire
  rows of objects that were not re-sent (deleted while no valid link existed). When Graph refuses
  a stored link (expired after 7 days, or reset), the stream warns once and runs such a round in
  the same run.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urlparse, urlsplit

import requests
from singer_sdk.streams.rest import PageContext

from tap_microsoft365.errors import GraphAPIError
from tap_microsoft365.graph.paging import ODataNextLinkPaginator
from tap_microsoft365.graph.transport import graph_error_fields, graph_json
from tap_microsoft365.sdk_compat import set_stream_version, write_activate_version
from tap_microsoft365.streams.base import GraphStream

if TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.streams.rest import HTTPRequest
    from typing_extensions import override
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

# State keys of a delta stream.
DELTA_LINK = "delta_link"
DELTA_LINK_OBTAINED_AT = "delta_link_obtained_at"
TABLE_VERSION = "table_version"
SELECT_FINGERPRINT = "select_fingerprint"

# Error codes with which Graph asks for a fresh initial round
# (https://learn.microsoft.com/graph/delta-query-overview).
RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired"})
# How long Graph keeps delta state for directory objects.
DIRECTORY_DELTA_DAYS = 7
COUNT_TIMEOUT_SECONDS = 30


class DeltaResyncRequiredError(GraphAPIError):
    """Graph no longer accepts the delta link: only a fresh initial round can continue."""


class DeltaLinkPaginator(ODataNextLinkPaginator):
    """Follows `@odata.nextLink` and remembers the round's final `@odata.deltaLink`."""

    def __init__(self) -> None:
        super().__init__()
        self.delta_link: str | None = None

    @override
    def get_next_url(self, response: requests.Response) -> str | None:
        body = graph_json(response, "delta page")
        link = body.get("@odata.deltaLink")
        if link and "@odata.nextLink" not in body:
            self.delta_link = str(link)
        return super().get_next_url(response)

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        # The SDK stops at an empty page without advancing the paginator; the last page of an
        # unchanged round is empty but carries the deltaLink, which must still be read.
        body = graph_json(response, "delta page")
        return "@odata.nextLink" in body or "@odata.deltaLink" in body


def error_codes(response: requests.Response) -> list[str]:
    """Graph's error code and any nested innerError codes, lower-cased."""
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return []
    codes = []
    while isinstance(error, dict):
        if error.get("code"):
            codes.append(str(error["code"]).lower())
        error = error.get("innerError") or error.get("innererror")
    return codes


class DeltaStream(GraphStream):
    """A directory collection read incrementally through `/<collection>/delta`."""

    # `$top` is not supported on directory delta (Graph picks the page size).
    supports_top = False
    # `GET <count_path>` (with ConsistencyLevel: eventual) gives the expected total of an
    # initial round for progress lines; empty to skip.
    count_path: ClassVar[str] = ""
    # The plain collection an initial round lists with `$top` (999 per page).
    list_path: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._round_link: str | None = None
        self._listing = False
        self._paginator = DeltaLinkPaginator()
        self._synced_at = datetime.now(UTC).isoformat()
        self._removed = 0

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        # The SDK's own switch would send ACTIVATE_VERSION before every sync, incremental ones
        # included, and retire every row an incremental round did not touch. Delta streams
        # send it themselves, around initial rounds only.
        return False

    @property
    def select_fingerprint(self) -> str:
        """Short hash of the `$select` list that Graph encodes into the delta tokens."""
        # The column names count too: when they change, a full round rewrites every row.
        selected = ",".join(self.select) + "|" + ",".join(self.schema["properties"])
        return hashlib.sha256(selected.encode()).hexdigest()[:12]

    @override
    def get_new_paginator(self) -> DeltaLinkPaginator:
        self._paginator = DeltaLinkPaginator()
        return self._paginator

    @override
    def get_url(self, context: Context | None) -> str:
        if self._listing:
            return f"{self.url_base}{self.list_path}"
        return super().get_url(context)

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        if self._listing:
            params["$top"] = self.config.get("page_size", 999)
        return params

    def _latest_delta_link(self, context: Context | None) -> str:
        """A delta link marking now, for the round that lists the collection next."""
        query = urlencode({"$select": ",".join(self.select), "$deltatoken": "latest"}, safe="$,")
        prepared = self.build_prepared_request(
            method="GET",
            url=f"{self.url_base}{self.path}?{query}",
            headers={**self.http_headers, "client-request-id": self.transport.request_id()},
        )
        response = self.send(prepared, context)
        link = graph_json(response, self.path).get("@odata.deltaLink")
        if not link:
            msg = f"{self.name}: GET {self.path}?$deltatoken=latest returned no @odata.deltaLink"
            raise GraphAPIError(msg)
        return str(link)

    @override
    def get_http_request(self, *, page: PageContext[Any]) -> HTTPRequest:
        if page.next_page_token is None and self._round_link is not None:
            # An incremental round starts at the stored deltaLink, used exactly like a nextLink:
            # its token already encodes `$select`.
            page = PageContext(page.stream_context, urlparse(self._round_link))
        return super().get_http_request(page=page)

    @override
    def validate_response(self, response: requests.Response) -> None:
        if response.status_code == 410 or (
            400 <= response.status_code < 500 and RESYNC_CODES.intersection(error_codes(response))
        ):
            code, message = graph_error_fields(response)
            detail = f" {code}: {message.rstrip('.')}" if message else f" {code}"
            if response.headers.get("Location"):
                detail += " (its Location header asks for a new initial round)"
            msg = f"Graph answered HTTP {response.status_code}{detail}"
            raise DeltaResyncRequiredError(msg)
        super().validate_response(response)

    @override
    def expected_record_count(self, context: Context | None) -> int | None:
        if self._round_link is not None or not self.count_path:
            return None  # incremental rounds make exactly one request when nothing changed
        prepared = self.build_prepared_request(
            method="GET",
            url=f"{self.url_base}{self.count_path}",
            headers={
                **self.http_headers,
                "Accept": "text/plain",
                "ConsistencyLevel": "eventual",
                "client-request-id": self.transport.request_id(),
            },
        )
        try:
            response = self.requests_session.send(
                prepared, timeout=min(self.timeout, COUNT_TIMEOUT_SECONDS)
            )
            response.raise_for_status()
            return int(response.text.strip())
        except (requests.exceptions.RequestException, ValueError) as exc:
            # Only the progress lines lose their "of ~N"; the round itself is unaffected.
            self.logger.debug("%s: no expected total (%s)", self.name, type(exc).__name__)
            return None

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        self._synced_at = datetime.now(UTC).isoformat()
        state = self.stream_state
        link = self._usable_link(state)
        if link is not None:
            try:
                yield from self._round(context, state, link)
            except DeltaResyncRequiredError as exc:
                self.logger.warning(
                    "%s: Graph no longer accepts the stored delta link (%s; it was obtained %s, "
                    "and Graph keeps directory change tracking for %d days): starting a full "
                    "round now; it ends with ACTIVATE_VERSION, which retires the rows of "
                    "objects deleted meanwhile",
                    self.name,
                    exc,
                    self._age(state),
                    DIRECTORY_DELTA_DAYS,
                )
            else:
                return
        try:
            yield from self._round(context, state, None)
        except DeltaResyncRequiredError as exc:
            msg = (
                f"{self.name}: Graph asked for a fresh sync during an initial round ({exc}); "
                "run again"
            )
            raise GraphAPIError(msg) from None

    def _round(
        self, context: Context | None, state: dict[str, Any], link: str | None
    ) -> Iterable[dict[str, Any]]:
        """One delta round from `link` (None: an initial round); store its deltaLink after it."""
        self._round_link = link
        self._listing = False
        self._removed = 0
        previous_version = state.get(TABLE_VERSION)
        version: int | None
        if link is None:
            # A version greater than any earlier one, in seconds as the SDK's own: targets
            # store it in an integer column.
            version = max(int(time.time()), int(previous_version or 0) + 1)
            self.logger.info(
                "%s: initial round (every object), table version %d", self.name, version
            )
            # The version is announced only at the end of the round: announced up front (as
            # some Singer taps do on a first sync), a full refresh that then failed would have
            # let SDK targets retire the whole table until the next successful run.
        else:
            # Incremental records carry the version of the snapshot they amend, older than the
            # next initial round's, so that round's ACTIVATE_VERSION retires them if not re-sent.
            version = previous_version if isinstance(previous_version, int) else None
            self.logger.info(
                "%s: incremental round: changes since the delta link obtained %s",
                self.name,
                self._age(state),
            )
        # The SDK puts this on every RECORD message (`version`).
        set_stream_version(self, version)

        marked_link = None
        if link is None and self.list_path:
            marked_link = self._latest_delta_link(context)
            self._listing = True
        try:
            yield from super().request_records(context)
        finally:
            self._listing = False

        # Every page of the round has been emitted: only now may the state move forward.
        delta_link = marked_link or self._paginator.delta_link
        if delta_link is None:
            self.logger.warning(
                "%s: the round ended without an @odata.deltaLink; the stored link is kept and "
                "the next run repeats these changes",
                self.name,
            )
            return
        if link is None and version is not None:
            write_activate_version(self, version)
        state[DELTA_LINK] = delta_link
        state[DELTA_LINK_OBTAINED_AT] = self._synced_at
        state[SELECT_FINGERPRINT] = self.select_fingerprint
        if version is not None:
            state[TABLE_VERSION] = version
        self.logger.info(
            "%s: %s round complete (%d removed); next run continues from its delta link",
            self.name,
            "initial" if link is None else "incremental",
            self._removed,
        )

    def _usable_link(self, state: dict[str, Any]) -> str | None:
        """The stored deltaLink, or None (with the reason logged) when a full round is needed."""
        link = state.get(DELTA_LINK)
        if not link:
            return None
        if not isinstance(link, str):
            self.logger.warning("%s: the stored delta link is not a URL: full round", self.name)
            return None
        stored, ours = urlsplit(link), urlsplit(f"{self.url_base}{self.path}")
        if (stored.scheme, stored.netloc) != (ours.scheme, ours.netloc) or not (
            stored.path.startswith(ours.path)
        ):
            self.logger.warning(
                "%s: the stored delta link is for %s://%s%s, not %s://%s%s (graph_url or cloud "
                "changed): starting a full round",
                self.name,
                stored.scheme,
                stored.netloc,
                stored.path,
                ours.scheme,
                ours.netloc,
                ours.path,
            )
            return None
        fingerprint = state.get(SELECT_FINGERPRINT)
        if fingerprint and fingerprint != self.select_fingerprint:
            self.logger.warning(
                "%s: the stored delta link tracks another property list than this version of "
                "the tap selects; starting a full round so every record has the new properties",
                self.name,
            )
            return None
        return link

    @staticmethod
    def _age(state: dict[str, Any]) -> str:
        """When the stored link was obtained, for log lines."""
        obtained = state.get(DELTA_LINK_OBTAINED_AT)
        try:
            when = datetime.fromisoformat(str(obtained))
        except ValueError:
            return "at an unknown time"
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        days = (datetime.now(UTC) - when).total_seconds() / 86400
        return f"{days:.1f} days ago ({obtained})"

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        row.pop("@odata.type", None)
        if self.columns is not None:
            row = self.columns.rename(row)
        removed = row.pop("@removed", None)
        properties = self.schema["properties"]
        if removed is not None:
            # Graph sends only the id: the rest of a removed object is unknown, hence null.
            self._removed += 1
            record: Record = dict.fromkeys(properties)
            record["id"] = row["id"]
            record["_sdc_deleted_at"] = self._synced_at
            reason = removed.get("reason") if isinstance(removed, dict) else None
            record["_removed_reason"] = str(reason) if reason else None
            return record
        # Complete records: a property Graph omits was never set (or is not selected), so null
        # is its value; an upserting target then never keeps a stale one.
        if row.keys() <= properties.keys():  # the usual case, built without a Python loop
            record = dict.fromkeys(properties)
            record.update(row)
            return record
        return {name: row.get(name) for name in properties}
