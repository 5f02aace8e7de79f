"""The Graph base stream: what every stream shares, on top of the run's one transport.

Every Graph stream of the tap derives from `GraphStream` and only declares data (path, keys,
schema, the permission it needs). What it shares lives here, once:

- requests go through the run's `Transport` (graph/transport.py): its session (CA bundle,
  proxies), its bearer header, its one retry loop (Retry-After, the caps of
  `retry_max_attempts` and `retry_max_wait_seconds`, a fresh token once after a 401);
- paging by `@odata.nextLink` (graph/paging.py), followed exactly as Graph returns it;
- `$select` built from the stream's schema and `$top` from `page_size`;
- Graph error bodies turned into one line: status, code, message, request-id and the fix.

Streams get the run's shared services (`GraphServices`: the transport, the product names) from
the tap when it builds them; no stream imports the Tap class.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_microsoft365.conform import record_messages
from tap_microsoft365.errors import (
    AuthenticationError,
    GraphAPIError,
    Microsoft365Error,
    PermissionDeniedError,
)
from tap_microsoft365.graph.paging import ODataNextLinkPaginator
from tap_microsoft365.graph.transport import (
    RETRY_STATUSES,
    TRANSIENT_NETWORK_ERRORS,
    USER_AGENT,
    BearerAuthenticator,
    Retry,
    Transport,
    describe_unparsable,
    error_line,
    gave_up_line,
    graph_error_fields,
    graph_json,
    is_html,
    network_line,
    permission_line,
    refused_token_line,
    tls_line,
)
from tap_microsoft365.sdk_compat import CompatStream, request_once

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable
    from urllib.parse import ParseResult

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.singerlib import RecordMessage
    from singer_sdk.streams.rest import HTTPRequest, PageContext
    from typing_extensions import override

    from tap_microsoft365.naming import Columns
    from tap_microsoft365.product_names import ProductNameCatalog
    from tap_microsoft365.retries import GiveUpError
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

PROGRESS_INTERVAL_SECONDS = 5.0


class GraphServices(Protocol):
    """What the run shares with its streams (the tap provides them, built on first use)."""

    @property
    def transport(self) -> Transport:
        """The one request path."""
        ...

    @property
    def product_names(self) -> ProductNameCatalog:
        """Microsoft's product and service plan names."""
        ...


class ProgressLog:
    """At most one INFO line every few seconds saying how far a stream is."""

    def __init__(self, logger: logging.Logger, name: str) -> None:
        self.logger = logger
        self.name = name
        self.records = 0
        self.pages = 0
        self.expected: int | None = None
        self._started = self._last = time.monotonic()

    def add_page(self, records: int) -> None:
        """Count a page; log when the interval has passed."""
        self.pages += 1
        self.records += records
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_SECONDS:
            self._last = now
            self.logger.info("%s: %s so far", self.name, self.describe())

    def describe(self) -> str:
        """'12,000 of ~100,000 records (13 pages, 42 s)'."""
        of = f" of ~{self.expected:,}" if self.expected is not None else ""
        elapsed = time.monotonic() - self._started
        return f"{self.records:,}{of} records ({self.pages} pages, {elapsed:.0f} s)"


class GraphStream(CompatStream):
    """A Microsoft Graph v1.0 collection."""

    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    # The application permissions that allow reading this stream, least privileged first.
    required_permissions: ClassVar[tuple[str, ...]] = ("Directory.Read.All",)
    # Whether the collection takes `$top` (most directory collections do, up to 999).
    supports_top: ClassVar[bool] = True
    # Whether to send `$select` with the schema's properties (Graph returns fewer by default).
    select_from_schema: ClassVar[bool] = True
    # Graph's names for the schema's snake_case columns (None: the schema's names are Graph's).
    columns: ClassVar[Columns | None] = None
    # Whether records hold only JSON values (as parsed from Graph's JSON): conform.py then
    # skips the properties whose JSON values the SDK's type conformance never changes.
    records_are_json: ClassVar[bool] = True

    def __init__(self, tap: Tap, services: GraphServices, **kwargs: Any) -> None:
        self.services = services
        self._bearer: BearerAuthenticator | None = None
        super().__init__(tap=tap, **kwargs)

    @property
    def transport(self) -> Transport:
        """The run's one request path."""
        return self.services.transport

    @override
    @property
    def url_base(self) -> str:
        return self.transport.base_url

    @override
    @property
    def authenticator(self) -> BearerAuthenticator:
        if self._bearer is None:
            self._bearer = BearerAuthenticator(self.transport)
        return self._bearer

    @override
    @property
    def requests_session(self) -> requests.Session:
        return self.transport.session

    @override
    @property
    def timeout(self) -> int:
        return int(self.config.get("request_timeout", 300))

    @override
    @property
    def http_headers(self) -> dict[str, str]:
        return {"User-Agent": USER_AGENT, "Accept": "application/json"}

    @property
    def select(self) -> list[str]:
        """Properties to `$select`: the schema's, in Graph's names, except the tap's own."""
        names = [name for name in self.schema["properties"] if not name.startswith("_")]
        return names if self.columns is None else self.columns.graph_names(names)

    @override
    def get_new_paginator(self) -> ODataNextLinkPaginator:
        return ODataNextLinkPaginator()

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.select_from_schema:
            params["$select"] = ",".join(self.select)
        if self.supports_top:
            params["$top"] = self.config.get("page_size", 999)
        return params

    @override
    def get_http_request(self, *, page: PageContext[Any]) -> HTTPRequest:
        request = super().get_http_request(page=page)
        request.safe_query_chars = "$,()'="
        token = cast("ParseResult | None", page.next_page_token)
        if token is not None:
            # The nextLink already carries every query option: add none, or Graph refuses it.
            request.url = token.geturl()
            request.params = {}
        request.headers["client-request-id"] = self.transport.request_id()
        return request

    def expected_record_count(self, context: Context | None) -> int | None:
        """How many records this read should yield, if cheap to know (shown in progress lines).

        None by default; a stream overrides it when Graph can count the collection cheaply.
        """
        return None

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        progress = ProgressLog(self.logger, self.name)
        progress.expected = self.expected_record_count(context)
        self._progress = progress
        yield from super().request_records(context)
        self.logger.info("%s: done, %s", self.name, progress.describe())

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        records = graph_json(response, self.path).get("value", [])
        progress = getattr(self, "_progress", None)
        if progress is not None:
            progress.add_page(len(records))
        return records

    def send(self, prepared: requests.PreparedRequest, context: Context | None) -> Any:
        """One call besides the stream's pages, on the same path (metrics, retries, errors)."""
        return self.request_decorator(request_once(self))(prepared, context)

    @override
    def handle_sync_error(self, error: Exception) -> bool:
        if not isinstance(error, PermissionDeniedError) or not self.config.get(
            "skip_forbidden_streams"
        ):
            return False
        self.logger.warning(
            "%s: skipped, the app may not read it (skip_forbidden_streams is on): %s",
            self.name,
            error,
        )
        return True

    @override
    def log(self, message: str, *args: Any, level: int = logging.INFO, **kwargs: Any) -> None:
        if level >= logging.ERROR and isinstance(sys.exc_info()[1], Microsoft365Error):
            # The SDK says "An unhandled error occurred while syncing ..." before re-raising;
            # for the tap's own errors the command prints the one line that says what to do.
            level = logging.DEBUG
        super().log(message, *args, level=level, **kwargs)

    # Errors and retries

    @override
    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            if is_html(response):  # a proxy's login or block page, answered in Graph's place
                raise GraphAPIError(describe_unparsable(response, self.name))
            if response.headers.get("Content-Type", "").startswith("application/json"):
                try:
                    graph_json(response, self.name)
                except GraphAPIError as exc:
                    # Cut off in transit: another attempt usually gets the whole answer.
                    raise RetriableAPIError(str(exc), response) from None
            return
        code, message = graph_error_fields(response)
        if status in RETRY_STATUSES:
            line = (
                describe_unparsable(response, self.name)
                if is_html(response)
                else error_line(self.name, response, code, message)
            )
            raise RetriableAPIError(line, response)
        if is_html(response):
            raise GraphAPIError(describe_unparsable(response, self.name))
        if status == 401:
            if not response.request.__dict__.get("_tap_new_token"):
                # Token expired or revoked mid-run: the transport fetches a fresh one and tries
                # once more.
                response.request.__dict__["_tap_new_token"] = True
                raise RetriableAPIError(error_line(self.name, response, code, message), response)
            raise AuthenticationError(refused_token_line(self.name, response, code, message))
        if status == 403:
            raise PermissionDeniedError(
                permission_line(self.name, response, code, message, self.required_permissions)
            )
        msg = (
            f"{error_line(self.name, response, code, message)}: Graph refused the request as the "
            "tap made it; report it to tap-microsoft365 with the ids above"
        )
        raise GraphAPIError(msg)

    @override
    def request_decorator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Send one Graph call through the transport's retry loop; the last failure becomes
        one plain line."""
        transport = self.transport
        host = transport.host

        def give_up(retry: Retry, reason: GiveUpError) -> GraphAPIError:
            return GraphAPIError(gave_up_line(self.name, host, retry, reason, self.timeout))

        def send(prepared_request: requests.PreparedRequest, context: Context | None) -> Any:
            def attempt() -> Any:
                try:
                    return func(prepared_request, context)
                except requests.exceptions.SSLError:
                    raise GraphAPIError(tls_line(self.name, host)) from None
                except RetriableAPIError as exc:
                    response = exc.response if isinstance(exc.response, requests.Response) else None
                    raise Retry(str(exc), response=response, host=host) from None
                except TRANSIENT_NETWORK_ERRORS as exc:
                    line = network_line(self.name, exc, prepared_request)
                    raise Retry(line, cause=exc, host=host) from None

            return transport.retrying(attempt, give_up=give_up, logger=self.logger)

        return send

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        row.pop("@odata.type", None)
        return row if self.columns is None else self.columns.rename(row)

    @override
    def record_messages(self, record: Record) -> Generator[RecordMessage, None, None]:
        """The SDK's step (drop deselected properties, conform types, apply stream maps) with
        the conformance compiled once per schema (conform.py): the SDK's own walk of the schema
        for every value was two thirds of a users sync's CPU."""
        yield from record_messages(self, record)
