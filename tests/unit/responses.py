"""Build `requests.Response` objects in memory, as `requests` hands them to the tap."""

from __future__ import annotations

import json
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict


def response(
    status: int = 200,
    *,
    body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    request_headers: dict[str, str] | None = None,
    url: str = "https://graph.microsoft.com/v1.0/users",
) -> requests.Response:
    """A response with `body` as JSON (or raw `content`) and the request that asked for it."""
    answer = requests.Response()
    answer.status_code = status
    answer.url = url
    answer.headers = CaseInsensitiveDict(headers or {})
    if content is None:
        content = b"" if body is None else json.dumps(body).encode()
    answer._content = content  # what requests stores once a body has been read
    answer.request = requests.Request("GET", url, headers=request_headers or {}).prepare()
    return answer
