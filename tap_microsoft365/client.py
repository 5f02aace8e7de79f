"""The Graph base stream: session, paging, query options, retries and Graph errors.

Every Graph stream of the tap derives from `GraphStream` and only declares data (path, keys,
schema, the permission it needs). Everything that touches the wire lives here, once:

- one `requests` session per run, shared by all streams (one TLS handshake, keep-alive), that
  honours REQUESTS_CA_BUNDLE, which the SDK's own stream session ignores (sdk-notes G2);
- paging by `@odata.nextLink`, followed exactly as Graph returns it (sdk-notes G6);
- `$select` built from the stream's schema and `$top` from `page_size`;
- retries of throttling and transient faults that honour `Retry-After` (the SDK ignores it,
  sdk-notes G9), capped by `retry_max_attempts` and `retry_max_wait_seconds`, each one logged
  with Graph's request-id and when the wait ends;
- Graph error bodies turned into one line: status, code, message, request-id and the fix.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import urlsplit

import requests
from singer_sdk import RESTStream
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import BaseHATEOASPaginator

from tap_microsoft365.conform import record_messages
from tap_microsoft365.errors import (
    AuthenticationError,
    GraphAPIError,
    Microsoft365Error,
    PermissionDeniedError,
)
from tap_microsoft365.retries import (
    MAX_ATTEMPTS_ON_500,
    GiveUpError,
    RetryPolicy,
    is_unreachable,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable
    from urllib.parse import ParseResult

    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.singerlib import RecordMessage
    from singer_sdk.streams.rest import HTTPRequest, PageContext
    from typing_extensions import override

    from tap_microsoft365.auth import GraphAuthenticator
    from tap_microsoft365.naming import Columns
    from tap_microsoft365.tap import TapMicrosoft365
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

try:
    USER_AGENT = f"tap-microsoft365/{version('tap-microsoft365')}"
except PackageNotFoundError:  # running from a source tree that is not installed
    USER_AGENT = "tap-microsoft365/dev"

# Statuses worth another attempt: throttling, and faults Graph documents as transient (502 comes
# from gateways and proxies in front of it). A 500 gets fewer attempts (see retries.py).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PROGRESS_INTERVAL_SECONDS = 5.0
# Exceptions of `requests` that mean the call may work when made again: resets, timeouts,
# bodies cut off in transit. TLS verification failures (an SSLError) are not among them.
TRANSIENT_NETWORK_ERRORS = (
    ConnectionResetError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

__all__ = [
    "MAX_ATTEMPTS_ON_500",
    "USER_AGENT",
    "GraphStream",
    "ODataNextLinkPaginator",
    "correlation",
    "graph_error_fields",
    "graph_json",
    "retry_after_seconds",
]


def graph_json(response: requests.Response, what: str) -> dict[str, Any]:
    """The JSON body of a Graph response, parsed once per response.

    A proxy's HTML page or a body cut off in transit becomes a `GraphAPIError` naming `what`
    (a stream or an endpoint, never a pre-authenticated URL) instead of a JSONDecodeError
    traceback.
    """
    cached = response.__dict__.get("_graph_json")
    if cached is not None:
        return cast("dict[str, Any]", cached)
    try:
        body = json.loads(response.content)
    except ValueError:
        raise GraphAPIError(describe_unparsable(response, what)) from None
    if not isinstance(body, dict):
        msg = (
            f"{what}: GET {endpoint(response)} answered JSON that is not an object "
            f"({correlation(response)}); run again, and report it if it recurs"
        )
        raise GraphAPIError(msg)
    response.__dict__["_graph_json"] = body
    return body


def endpoint(response: requests.Response) -> str:
    """The path of the URL a response answers: no query string, no host."""
    return urlsplit(response.url).path or "/"


def is_html(response: requests.Response) -> bool:
    """Whether the body is a web page (a proxy's, a firewall's) rather than an API answer."""
    content_type = response.headers.get("Content-Type", "").lower()
    head = response.content[:200].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype", b"<html"))


def describe_unparsable(response: requests.Response, what: str) -> str:
    """Say what came back instead of JSON: an HTML page (a proxy) or a truncated body."""
    if is_html(response):
        return (
            f"{what}: GET {endpoint(response)} answered HTTP {response.status_code} with an "
            f"HTML page instead of Graph's JSON ({correlation(response)}): a proxy or firewall "
            "answered, not Graph; check HTTPS_PROXY/NO_PROXY, or ask the network team to allow "
            "the Graph host"
        )
    return (
        f"{what}: GET {endpoint(response)} answered HTTP {response.status_code} with JSON that "
        f"is cut off or malformed ({len(response.content)} bytes, {correlation(response)}): the "
        "connection was probably interrupted, or a proxy altered the answer"
    )


def graph_error_fields(response: requests.Response) -> tuple[str, str]:
    """Graph's error code and message from its error envelope, tolerating non-JSON bodies."""
    try:
        body = json.loads(response.content)
        error = body.get("error", {}) if isinstance(body, dict) else {}
    except ValueError:
        error = {}
    if not isinstance(error, dict):  # token endpoints put a string here
        return str(error), ""
    return str(error.get("code") or response.reason or ""), str(error.get("message") or "")


def correlation(response: requests.Response) -> str:
    """The ids Microsoft support asks for."""
    request_id = response.headers.get("request-id", "none")
    client_request_id = response.headers.get("client-request-id") or response.request.headers.get(
        "client-request-id"
    )
    return f"request-id {request_id}, client-request-id {client_request_id or 'none'}"


class ODataNextLinkPaginator(BaseHATEOASPaginator):
    """Follows `@odata.nextLink`; a page with no items but a nextLink does not end paging."""

    @override
    def get_next_url(self, response: requests.Response) -> str | None:
        link = graph_json(response, "page").get("@odata.nextLink")
        return str(link) if link else None

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        return "@odata.nextLink" in graph_json(response, "page")


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


class GraphStream(RESTStream[Any]):
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

    @property
    def tap(self) -> TapMicrosoft365:
        """The tap running this stream (it owns the shared session and authenticator)."""
        return cast("TapMicrosoft365", self._tap)

    @override
    @property
    def url_base(self) -> str:
        return f"{self.tap.graph_url}/v1.0"

    @override
    @property
    def authenticator(self) -> GraphAuthenticator:
        return self.tap.authenticator

    @override
    @property
    def requests_session(self) -> requests.Session:
        return self.tap.graph_session

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
            # The nextLink already carries every query option: add none (sdk-notes G6).
            request.url = token.geturl()
            request.params = {}
        request.headers["client-request-id"] = str(uuid.uuid4())
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

    @override
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> Generator[dict[str, Any], Any, Any]:
        # The SDK's `sync` is final, and streams read records in their own ways (delta rounds,
        # report deliveries): the one place every stream's reading passes through is here.
        try:
            yield from super()._sync_records(context, write_messages=write_messages)
        except PermissionDeniedError as exc:
            if not self.config.get("skip_forbidden_streams"):
                raise
            self.logger.warning(
                "%s: skipped, the app may not read it (skip_forbidden_streams is on): %s",
                self.name,
                exc,
            )

    @override
    def log(self, message: str, *args: Any, level: int = logging.INFO, **kwargs: Any) -> None:
        if level >= logging.ERROR and isinstance(sys.exc_info()[1], Microsoft365Error):
            # The SDK says "An unhandled error occurred while syncing ..." before re-raising;
            # for the tap's own errors the command prints the one line that says what to do.
            level = logging.DEBUG
        super().log(message, *args, level=level, **kwargs)

    # Errors and retries

    @property
    def retry_policy(self) -> RetryPolicy:
        """The caps from `retry_max_attempts` and `retry_max_wait_seconds`."""
        return RetryPolicy.from_config(self.config)

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
                else self._error_line(response, code, message)
            )
            raise RetriableAPIError(line, response)
        if is_html(response):
            raise GraphAPIError(describe_unparsable(response, self.name))
        if status == 401:
            if not response.request.__dict__.get("_tap_new_token"):
                # Token expired or revoked mid-run: fetch a fresh one and try once more.
                response.request.__dict__["_tap_new_token"] = True
                self.authenticator.invalidate_token()
                raise RetriableAPIError(self._error_line(response, code, message), response)
            msg = (
                f"{self._error_line(response, code, message)}: Graph refused a freshly issued "
                "token too: check that authority_host and graph_url (or cloud) belong to the "
                "same Microsoft cloud, and that the app is enabled in the tenant"
            )
            raise AuthenticationError(msg)
        if status == 403:
            raise PermissionDeniedError(self._permission_line(response, code, message))
        msg = (
            f"{self._error_line(response, code, message)}: Graph refused the request as the tap "
            "made it; report it to tap-microsoft365 with the ids above"
        )
        raise GraphAPIError(msg)

    def _error_line(self, response: requests.Response, code: str, message: str) -> str:
        what = f"{self.name}: GET {endpoint(response)} answered {response.status_code}"
        detail = f" {code}: {message}" if message else f" {code}"
        return f"{what}{detail} ({correlation(response)})"

    def _permission_line(self, response: requests.Response, code: str, message: str) -> str:
        needed = " or ".join(self.required_permissions)
        return (
            f"{self._error_line(response, code, message)}: the app needs the application "
            f"permission {needed}: add it under Entra ID > App registrations > your app > API "
            "permissions > Microsoft Graph > Application permissions, then Grant admin consent "
            "(a Global or Privileged Role administrator)"
        )

    @override
    def request_decorator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Retry one Graph call as `retries.py` says; the last failure becomes one plain line."""

        def send(prepared_request: requests.PreparedRequest, context: Context | None) -> Any:
            retries = self.retry_policy.start()
            while True:
                try:
                    return func(prepared_request, context)
                except (RetriableAPIError, *TRANSIENT_NETWORK_ERRORS) as exc:
                    if isinstance(exc, requests.exceptions.SSLError):
                        raise GraphAPIError(self._tls_line()) from None
                    response = getattr(exc, "response", None)
                    if not isinstance(response, requests.Response):
                        response = None
                    status = response.status_code if response is not None else None
                    retry_after = retry_after_seconds(response)
                    try:
                        wait = retries.next_wait(
                            status=status,
                            retry_after=retry_after,
                            now=status == 401,
                            unreachable=is_unreachable(exc),
                        )
                    except GiveUpError as give_up:
                        raise GraphAPIError(self._gave_up_line(exc, give_up)) from None
                    why = (
                        f"{exc}"
                        if response is not None
                        else self._network_line(exc, prepared_request)
                    )
                    self.logger.warning(
                        "%s; %s",
                        why,
                        retries.describe_wait(wait, retry_after=retry_after is not None),
                    )
                    if wait:
                        time.sleep(wait)

        return send

    def _tls_line(self) -> str:
        host = urlsplit(self.url_base).netloc
        return (
            f"{self.name}: TLS verification failed for {host}: if a proxy inspects TLS, set "
            "REQUESTS_CA_BUNDLE to a file with its CA certificate"
        )

    def _network_line(self, exc: BaseException, request: requests.PreparedRequest) -> str:
        path = urlsplit(request.url or "").path
        sent = request.headers.get("client-request-id", "none")
        return (
            f"{self.name}: GET {path} failed on the connection ({type(exc).__name__}, no "
            f"answer, client-request-id {sent})"
        )

    def _gave_up_line(self, exc: BaseException, give_up: GiveUpError) -> str:
        if isinstance(exc, RetriableAPIError):
            return (
                f"{exc}: still failing {give_up}; run again later (Microsoft 365 admin center > "
                "Health > Service health shows Graph outages)"
            )
        host = urlsplit(self.url_base).netloc
        return (
            f"{self.name}: cannot reach Graph at {host} ({type(exc).__name__}) {give_up}: check "
            "the network, HTTPS_PROXY/NO_PROXY and the graph_url setting"
        )

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        row.pop("@odata.type", None)
        return row if self.columns is None else self.columns.rename(row)

    @override
    def _generate_record_messages(self, record: Record) -> Generator[RecordMessage, None, None]:
        """The SDK's step (drop deselected properties, conform types, apply stream maps) with
        the conformance compiled once per schema (conform.py): the SDK's own walk of the schema
        for every value was two thirds of a users sync's CPU."""
        yield from record_messages(self, record)
