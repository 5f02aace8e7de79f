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
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import urlsplit

import backoff
import requests
from singer_sdk import RESTStream
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import BaseHATEOASPaginator

from tap_microsoft365.errors import GraphAPIError, PermissionDeniedError

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Generator, Iterable
    from urllib.parse import ParseResult

    from backoff.types import Details
    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.streams.rest import HTTPRequest, PageContext
    from typing_extensions import override

    from tap_microsoft365.auth import GraphAuthenticator
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

# Statuses worth another attempt: throttling, and faults Graph documents as transient.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A 500 is usually a bug on Graph's side rather than load: fewer attempts.
MAX_ATTEMPTS_ON_500 = 3
PROGRESS_INTERVAL_SECONDS = 5.0


def graph_json(response: requests.Response, what: str) -> dict[str, Any]:
    """The JSON body of a Graph response, parsed once per response.

    A proxy's HTML page or a body cut off in transit becomes a `GraphAPIError` naming `what`
    (an endpoint, never a pre-authenticated URL) instead of a JSONDecodeError traceback.
    """
    cached = response.__dict__.get("_graph_json")
    if cached is not None:
        return cast("dict[str, Any]", cached)
    try:
        body = json.loads(response.content)
    except ValueError:
        raise GraphAPIError(describe_unparsable(response, what)) from None
    if not isinstance(body, dict):
        msg = f"{what}: Graph's answer is JSON but not an object; run again, report it if it recurs"
        raise GraphAPIError(msg)
    response.__dict__["_graph_json"] = body
    return body


def describe_unparsable(response: requests.Response, what: str) -> str:
    """Say what came back instead of JSON: an HTML page (a proxy) or a truncated body."""
    content_type = response.headers.get("Content-Type", "")
    head = response.content[:200].lstrip().lower()
    if "html" in content_type or head.startswith((b"<!doctype", b"<html")):
        return (
            f"{what}: got an HTML page (HTTP {response.status_code}) instead of Graph's JSON: a "
            "proxy or firewall answered; check HTTPS_PROXY/NO_PROXY or ask the network team to "
            "allow the Graph host"
        )
    return (
        f"{what}: Graph's JSON answer (HTTP {response.status_code}, {len(response.content)} bytes) "
        "was cut off or malformed; the connection was probably interrupted: run again"
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


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Graph's Retry-After header, in seconds (it may also be an HTTP date)."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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
        """Properties to `$select`: the schema's, except the tap's own additions (`_...`)."""
        return [name for name in self.schema["properties"] if not name.startswith("_")]

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

    # Errors and retries

    @override
    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        code, message = graph_error_fields(response)
        if status in RETRY_STATUSES:
            raise RetriableAPIError(self._error_line(response, code, message), response)
        if status == 401 and not getattr(response.request, "_tap_new_token", False):
            # Token expired or revoked mid-run: fetch a fresh one and try once more.
            setattr(response.request, "_tap_new_token", True)  # noqa: B010 - marks this request
            self.authenticator.invalidate_token()
            raise RetriableAPIError(self._error_line(response, code, message), response)
        if status == 403:
            raise PermissionDeniedError(self._permission_line(response, code, message))
        raise GraphAPIError(self._error_line(response, code, message))

    def _error_line(self, response: requests.Response, code: str, message: str) -> str:
        what = f"{self.name}: GET {urlsplit(response.url).path} answered {response.status_code}"
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
    def backoff_max_tries(self) -> int:
        return int(self.config.get("retry_max_attempts", 8))

    @override
    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        attempt = 0
        exception = yield 0.0  # primed by backoff with None
        while True:
            attempt += 1
            response = getattr(exception, "response", None)
            wait = retry_after_seconds(response)
            if wait is None:
                # Exponential with full jitter: 1, 2, 4 ... seconds, at most 60.
                wait = random.uniform(0.5, 1.0) * min(60.0, 2.0 ** (attempt - 1))
            exception = yield wait

    @override
    def backoff_jitter(self, value: float) -> float:
        return value  # jitter is applied in the wait generator; Retry-After is exact

    @override
    def backoff_handler(self, details: Details) -> None:
        exception = details.get("exception")
        wait = float(details.get("wait") or 0.0)
        until = (datetime.now(UTC) + timedelta(seconds=wait)).strftime("%H:%M:%S UTC")
        response = getattr(exception, "response", None)
        why = (
            f"Graph answered {response.status_code} ({correlation(response)})"
            if isinstance(response, requests.Response)
            else f"{type(exception).__name__} on the connection"
        )
        reason = (
            "as Retry-After asks"
            if retry_after_seconds(response if isinstance(response, requests.Response) else None)
            is not None
            else "backing off"
        )
        self.logger.warning(
            "%s: %s; waiting %.1f s (%s) until %s before attempt %d of %d",
            self.name,
            why,
            wait,
            reason,
            until,
            details.get("tries", 0) + 1,
            self.backoff_max_tries(),
        )

    @override
    def request_decorator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        retrying = backoff.on_exception(
            self.backoff_wait_generator,
            (
                RetriableAPIError,
                ConnectionResetError,
                requests.exceptions.Timeout,
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
            max_tries=self.backoff_max_tries,
            max_time=lambda: float(self.config.get("retry_max_wait_seconds", 900)),
            giveup=self._give_up_early,
            on_backoff=self.backoff_handler,
            jitter=self.backoff_jitter,
            logger=None,
        )(func)

        def send(*args: Any, **kwargs: Any) -> Any:
            try:
                return retrying(*args, **kwargs)
            except RetriableAPIError as exc:
                msg = f"{exc}: still failing after retries; run again later"
                raise GraphAPIError(msg) from None
            except requests.exceptions.SSLError:
                host = urlsplit(self.url_base).netloc
                msg = (
                    f"{self.name}: TLS verification failed for {host}: if a proxy inspects TLS, "
                    "set REQUESTS_CA_BUNDLE to a file with its CA certificate"
                )
                raise GraphAPIError(msg) from None
            except requests.exceptions.RequestException as exc:
                host = urlsplit(self.url_base).netloc
                msg = (
                    f"{self.name}: cannot reach Graph at {host} ({type(exc).__name__}) after "
                    "retries: check the network, HTTPS_PROXY/NO_PROXY and the graph_url setting"
                )
                raise GraphAPIError(msg) from None

        return send

    def _give_up_early(self, exception: Exception) -> bool:
        """Stop retrying what will not get better: TLS errors, or a 500 seen too often."""
        if isinstance(exception, requests.exceptions.SSLError):
            return True
        response = getattr(exception, "response", None)
        if isinstance(response, requests.Response) and response.status_code == 500:
            seen = response.request.__dict__.get("_tap_500s", 0) + 1
            response.request.__dict__["_tap_500s"] = seen
            return seen >= MAX_ATTEMPTS_ON_500
        return False

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        row.pop("@odata.type", None)
        return row
