"""The Graph base stream: what every stream shares, on top of the run's one transport.

Every Graph stream of the tap derives from `GraphStream` and only declares data (path, keys,
schema, the permission it needs). What it shares lives here, once:

- requests go through the run's `Transport` (graph/transport.py): its session (CA bundle,
  proxies), its bearer header, its one retry loop (Retry-After, the caps of
  `retry_max_attempts` and `retry_max_wait_seconds`, a fresh token once after a 401);
- paging by `@odata.nextLink` (graph/paging.py), followed exactly as Graph returns it;
- `$select` built from the stream's schema and `$top` from `page_size`;
- Graph error bodies turned into one line: status, code, message, request-id and the fix.

Streams get the run's shared services (`GraphServices`: the tenants, the product names) from
the tap when it builds them; no stream imports the Tap class.

Tenants: every record carries its tenant's GUID in `tenant_id`, the first column of every schema
and of every primary key. With the `tenants` setting each stream reads one SDK partition per
tenant (`partitions`: state is then kept per tenant), tenant after tenant, each on the tenant's
own transport; without it the one tenant's context is None and its state stays where it was.
With several tenants, an error that ends one tenant's reading is recorded as that tenant's
failure (one ERROR line) and the stream goes on with the next tenant.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast
from urllib.parse import urlsplit

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
from tap_microsoft365.sdk_compat import (
    CompatStream,
    request_once,
    set_stream_version,
    write_activate_version,
)
from tap_microsoft365.tenants import CONTEXT_KEY

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
    from tap_microsoft365.tenants import Tenant, Tenants
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

PROGRESS_INTERVAL_SECONDS = 5.0
TENANT_ID = CONTEXT_KEY
TENANT_ID_SCHEMA = {
    "type": ["string"],
    "description": "The tenant's Directory (tenant) ID, a GUID, even when the tenant is "
    "configured by domain.",
}


def with_tenant_id(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with `tenant_id` as its first property (and required)."""
    properties = {TENANT_ID: TENANT_ID_SCHEMA}
    properties.update((k, v) for k, v in schema["properties"].items() if k != TENANT_ID)
    required = [TENANT_ID, *(name for name in schema.get("required", []) if name != TENANT_ID)]
    return {**schema, "properties": properties, "required": required}


def with_tenant_key(keys: Iterable[str]) -> tuple[str, ...]:
    """Primary keys with `tenant_id` first: ids are unique only within a tenant."""
    return (TENANT_ID, *(key for key in keys if key != TENANT_ID))


# State key of a full-table stream: the version of its last complete read.
TABLE_VERSION = "table_version"
# Graph's two ways of refusing a selected property (HTTP 400), e.g. "Could not find a property
# named 'employeeType' on type 'microsoft.graph.user'." and, on delta, "Invalid request for delta
# query: for this entity set, $expand/$select is not supported for the following properties:
# birthday" (https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/7594,
# https://github.com/microsoftgraph/microsoft-graph-docs/issues/14141).
_NOT_FOUND_PROPERTY = re.compile(r"Could not find a property named '([^']+)'")
_UNSUPPORTED_PROPERTIES = re.compile(r"not supported for the following properties:\s*(.+)$")


def refused_properties(message: str) -> list[str]:
    """The property names a Graph 400 message says it cannot select (empty: another error)."""
    found = _NOT_FOUND_PROPERTY.findall(message)
    listed = _UNSUPPORTED_PROPERTIES.search(message.strip())
    if listed:
        found += [name.strip(" .'") for name in listed.group(1).split(",")]
    return [name for name in found if name]


class PropertyRefusedError(GraphAPIError):
    """Graph refused one or more selected properties (HTTP 400)."""

    def __init__(self, message: str, names: list[str], endpoint: str) -> None:
        super().__init__(message)
        self.names = names
        self.endpoint = endpoint


class GraphServices(Protocol):
    """What the run shares with its streams (the tap provides them, built on first use)."""

    @property
    def tenants(self) -> Tenants:
        """The run's tenants: each with its own request path, and their failures."""
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
    # Whether a run reads the whole collection, so that a row not sent is a row that vanished:
    # the read then ends with ACTIVATE_VERSION (see `get_records`).
    full_table_snapshot: ClassVar[bool] = False

    def __init__(self, tap: Tap, services: GraphServices, **kwargs: Any) -> None:
        self.services = services
        self._bearers: dict[str, BearerAuthenticator] = {}
        self._tenant: Tenant | None = None
        self._tenant_guid = ""
        if kwargs.get("schema") is not None:
            kwargs["schema"] = with_tenant_id(kwargs["schema"])
        self._complete_tenants: set[str] = set()  # tenants read in full by this run
        # Graph names of selected properties Graph refused in this run (dropped from $select).
        self.refused: set[str] = set()
        super().__init__(tap=tap, **kwargs)
        if "schema" not in kwargs:  # the class's schema: this stream's own copy, with tenant_id
            self.__dict__["schema"] = with_tenant_id(cast("dict[str, Any]", type(self).schema))
        self.primary_keys = with_tenant_key(self.primary_keys)  # type: ignore[misc]

    @property
    def tenant(self) -> Tenant:
        """The tenant being read (the first one before any is)."""
        return self._tenant if self._tenant is not None else self.services.tenants.first

    @override
    @property
    def partitions(self) -> list[dict[str, Any]] | None:
        return self.services.tenants.contexts()

    @property
    def transport(self) -> Transport:
        """The request path of the tenant being read."""
        return self.tenant.transport

    @override
    @property
    def url_base(self) -> str:
        return self.transport.base_url

    @override
    @property
    def authenticator(self) -> BearerAuthenticator:
        tenant = self.tenant
        if tenant.key not in self._bearers:
            self._bearers[tenant.key] = BearerAuthenticator(tenant.transport)
        return self._bearers[tenant.key]

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
    @override
    def emit_activate_version_messages(self) -> bool:
        # The SDK's own switch sends ACTIVATE_VERSION before the first record: a target would
        # retire every row while the stream is still being read, and for good if the run fails.
        # Full-table streams send it themselves after the last record (`get_records`).
        if self.full_table_snapshot:
            return False
        return super().emit_activate_version_messages

    @property
    def retires_vanished_rows(self) -> bool:
        """Whether a full read ends with ACTIVATE_VERSION (on unless the setting turns it off)."""
        return self.full_table_snapshot and (
            self.config.get("emit_activate_version_messages") is not False
        )

    @property
    def select(self) -> list[str]:
        """Properties to `$select`: the schema's, in Graph's names, except the tap's own and
        those Graph refused in this run."""
        names = [
            name
            for name in self.schema["properties"]
            if not name.startswith("_") and name != TENANT_ID
        ]
        graph = names if self.columns is None else self.columns.graph_names(names)
        return [name for name in graph if name not in self.refused] if self.refused else graph

    # Whether `request_records` itself retries the read without a property Graph refused
    # (delta streams restart their whole round instead).
    retries_refused_properties: ClassVar[bool] = True

    def drop_refused(self, error: PropertyRefusedError) -> None:
        """Leave the properties Graph refused out of `$select` for the rest of the run, with one
        warning; raise `error` when that cannot help (a key, or nothing we asked for)."""
        lowered = {name.lower(): name for name in self.select}
        names = [lowered.get(name.lower()) for name in error.names]
        keys = set(self.columns.graph_names(list(self.primary_keys)) if self.columns else [])
        keys |= set(self.primary_keys)
        if not names or None in names or keys & set(names):
            raise error
        dropped = sorted(name for name in names if name)
        self.refused.update(dropped)
        self.logger.warning(
            "%s: Graph refused the propert%s %s on %s (HTTP 400: this endpoint, cloud or "
            "tenant does not support %s); reading on without %s for this run, the column%s "
            "stay%s null",
            self.name,
            "y" if len(dropped) == 1 else "ies",
            ", ".join(dropped),
            error.endpoint,
            "it" if len(dropped) == 1 else "them",
            "it" if len(dropped) == 1 else "them",
            "" if len(dropped) == 1 else "s",
            "s" if len(dropped) == 1 else "",
        )

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
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The records of one tenant (the context's), on its own request path."""
        tenants = self.services.tenants
        tenant = tenants.of(context)
        if not tenants.failures.failed(tenant):  # a failed tenant was said once, when it failed
            self._tenant = tenant
            if tenants.partitioned:
                self.logger.info("%s: tenant %s", self.name, tenant.label)
            try:
                self._tenant_guid = guid = tenant.guid
                for record in self.tenant_records(context):
                    record[TENANT_ID] = guid  # every record, before post_process sees it
                    yield record
            except Microsoft365Error as exc:
                if not self.handle_sync_error(exc):
                    if not tenants.isolated:
                        raise
                    tenants.failures.fail(tenant, exc, self.name)
                    self.tenant_failed(tenant)
        if tenants.partitioned and tenant is tenants.last:
            self.all_tenants_read()

    def tenant_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The records of the tenant being read (the SDK's `get_records`); a full-table read
        ends with ACTIVATE_VERSION."""
        if not self.retires_vanished_rows:
            yield from super().get_records(context)
            return
        state = self.get_context_state(context)  # the tenant's own (or the stream's)
        partitioned = self.services.tenants.partitioned
        previous = state.get(TABLE_VERSION)
        # Above every earlier version, in seconds as the SDK's own (targets use an integer
        # column); with several tenants, one version for all of them (`run_version`).
        version = (
            self.run_version
            if partitioned
            else max(int(time.time()), previous + 1 if isinstance(previous, int) else 0)
        )
        # The SDK puts this on every RECORD message (`version`).
        set_stream_version(self, version)
        yield from super().get_records(context)
        state[TABLE_VERSION] = version
        if partitioned:
            # The table holds every tenant's rows: retired only once all were re-sent.
            self._complete_tenants.add(self.tenant.key)
        else:
            # Every row has been emitted: only now may a target retire the rows not sent again
            # (a SKU or subscription that disappeared). A failed run retires nothing.
            write_activate_version(self, version)

    def tenant_failed(self, tenant: Tenant) -> None:
        """Called when the tenant failed while this stream read it (nothing to do by default)."""

    def all_tenants_read(self) -> None:
        """Called after the last tenant's partition (with the `tenants` setting): a full-table
        stream sends ACTIVATE_VERSION when every tenant's rows were re-sent under one version."""
        tenants = self.services.tenants
        complete, self._complete_tenants = self._complete_tenants, set()
        if not self.retires_vanished_rows:
            return
        if complete == {tenant.key for tenant in tenants} and tenants.complete:
            write_activate_version(self, self.run_version)
            return
        # ACTIVATE_VERSION now would retire the rows of the tenants not read.
        self.logger.warning(
            "%s: %d of %d tenants read, so vanished rows are not retired this run (the next "
            "complete run retires them)",
            self.name,
            len(complete),
            len(tenants),
        )

    @cached_property
    def run_version(self) -> int:
        """With several tenants, the one table version of this run's full reads, above every
        tenant's earlier one (in seconds, as the SDK's own: targets keep it in an integer)."""
        versions = [int(time.time())]
        for context in self.services.tenants.contexts() or []:
            previous = self.get_context_state(context).get(TABLE_VERSION)
            if isinstance(previous, int):
                versions.append(previous + 1)
        return max(versions)

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        progress = ProgressLog(self.logger, self.name)
        progress.expected = self.expected_record_count(context)
        self._progress = progress
        while True:
            try:
                yield from super().request_records(context)
                break
            except PropertyRefusedError as exc:
                if not self.retries_refused_properties:
                    raise
                # Graph checks `$select` on the first page, before any record of the read.
                self.drop_refused(exc)
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
        refused = refused_properties(message) if status == 400 else []
        if refused:
            endpoint = f"{response.request.method} {urlsplit(response.request.url or '').path}"
            raise PropertyRefusedError(
                f"{error_line(self.name, response, code, message)}: Graph does not support the "
                "selected propert(ies) here",
                refused,
                endpoint,
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
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        # No Graph stream has child streams: the SDK's default would still build a context
        # (a copy of the record) for each record, for no child to read.
        if not self.child_streams:
            return ()
        return super().generate_child_contexts(record, context)

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        row.pop("@odata.type", None)
        record = row if self.columns is None else self.columns.rename(row)
        for name in self.refused:
            # Not asked for (Graph refused it): null, so the column exists and a target
            # never keeps a stale value.
            record.setdefault(self.columns.from_graph.get(name, name) if self.columns else name)
        return record

    @override
    def record_messages(self, record: Record) -> Generator[RecordMessage, None, None]:
        """The SDK's step (drop deselected properties, conform types, apply stream maps) with
        the conformance compiled once per schema (conform.py): the SDK's own walk of the schema
        for every value was two thirds of a users sync's CPU."""
        yield from record_messages(self, record)
