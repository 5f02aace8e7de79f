"""Request and response types shared by every part of the Graph emulator.

The HTTP server turns each incoming request into an `EmulatorRequest`, hands it to the part of the
emulator that owns the path (login, directory, reports, downloads) and writes back the
`EmulatorResponse` it gets. A body that is an iterable of chunks is sent with chunked transfer
encoding, so large CSV reports stream without being built in memory.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass
class EmulatorRequest:
    """One HTTP request as the emulator sees it."""

    method: str
    path: str  # URL path, percent-decoded, without the query string
    query: dict[str, str]  # decoded query options ($select, $top, ...), one value each
    headers: dict[str, str]  # header names lower-cased
    body: bytes = b""
    raw_query: str = ""  # the query string exactly as sent
    roles: frozenset[str] = frozenset()  # application permissions of the bearer token, if any
    tenant_id: str = ""  # the tenant the bearer token was issued for (its tid), once checked
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def client_request_id(self) -> str:
        """The caller's client-request-id, or a fresh one as Graph does when none is sent."""
        return self.headers.get("client-request-id") or self.request_id


@dataclass
class EmulatorResponse:
    """One HTTP response; `body` may be an iterable of chunks to stream."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""


def graph_date() -> str:
    """The `date` Graph puts in innerError (UTC, seconds, no zone suffix)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def json_response(
    status: int,
    payload: Any,
    request: EmulatorRequest | None = None,
    headers: dict[str, str] | None = None,
) -> EmulatorResponse:
    """A JSON response carrying Graph's correlation headers."""
    all_headers = {"Content-Type": "application/json;odata.metadata=minimal;charset=utf-8"}
    if request is not None:
        all_headers["request-id"] = request.request_id
        all_headers["client-request-id"] = request.client_request_id
    all_headers.update(headers or {})
    return EmulatorResponse(status, all_headers, json.dumps(payload).encode())


def graph_error(
    status: int,
    code: str,
    message: str,
    request: EmulatorRequest,
    headers: dict[str, str] | None = None,
) -> EmulatorResponse:
    """Graph's documented error envelope (concepts/errors.md) with innerError correlation ids."""
    payload = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_date(),
                "request-id": request.request_id,
                "client-request-id": request.client_request_id,
            },
        }
    }
    return json_response(status, payload, request, headers)
