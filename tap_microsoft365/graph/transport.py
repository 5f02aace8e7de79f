"""The one request path to Microsoft Graph, Entra ID and the download hosts.

Every HTTP request of the tap goes through the run's `Transport`:

- its sessions: one shared by the streams (one TLS handshake, keep-alive) and one per report
  worker thread, each honouring REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE (`Session.send`, which the SDK
  uses, skips requests' environment merge, so the bundle is set on the session) and the proxy
  variables, with the tap's user agent;
- the bearer header (`authorize`), on Graph calls only: a report's pre-authenticated download
  URL and the product names file never get it;
- `retrying`, the package's only retry loop: one `RetryPolicy` (retries.py) for every call,
  Retry-After honoured, caps from `retry_max_attempts` and `retry_max_wait_seconds` (429
  included), a fresh token once after a 401, and a host found unreachable given up on for the
  rest of the run (a wrong setting, not a blip: the report workers do not each try again);
- Graph's failures sorted into the typed errors of errors.py, each one line with Graph's
  request-id and the fix (`error_line`, `permission_line`, `gave_up_line`, ...).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import requests
from singer_sdk.authenticators import APIAuthenticatorBase

from tap_microsoft365.errors import GraphAPIError
from tap_microsoft365.retries import GiveUpError, RetryPolicy, is_unreachable, retry_after_seconds

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from typing_extensions import override
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

try:
    USER_AGENT = f"tap-microsoft365/{version('tap-microsoft365')}"
except PackageNotFoundError:  # running from a source tree that is not installed
    USER_AGENT = "tap-microsoft365/dev"

LOGGER = logging.getLogger("tap-microsoft365")
T = TypeVar("T")

# Statuses worth another attempt: throttling, and faults Graph documents as transient (502 comes
# from gateways and proxies in front of it). A 500 gets fewer attempts (see retries.py).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Exceptions of `requests` that mean the call may work when made again: resets, timeouts,
# bodies cut off in transit. TLS verification failures (an SSLError) are not among them.
TRANSIENT_NETWORK_ERRORS = (
    ConnectionResetError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


# -- reading Graph's answers -------------------------------------------------------------------


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


# -- one-line messages -------------------------------------------------------------------------


def error_line(what: str, response: requests.Response, code: str, message: str) -> str:
    """'users: GET /v1.0/users answered 503 code: message (request-id .., client-request-id ..)'."""
    head = f"{what}: GET {endpoint(response)} answered {response.status_code}"
    detail = f" {code}: {message}" if message else f" {code}"
    return f"{head}{detail} ({correlation(response)})"


def permission_line(
    what: str, response: requests.Response, code: str, message: str, permissions: Sequence[str]
) -> str:
    """A 403: which application permission to grant, and where."""
    needed = " or ".join(permissions)
    return (
        f"{error_line(what, response, code, message)}: the app needs the application "
        f"permission {needed}: add it under Entra ID > App registrations > your app > API "
        "permissions > Microsoft Graph > Application permissions, then Grant admin consent "
        "(a Global or Privileged Role administrator)"
    )


def refused_token_line(what: str, response: requests.Response, code: str, message: str) -> str:
    """A 401 after a freshly issued token."""
    return (
        f"{error_line(what, response, code, message)}: Graph refused a freshly issued "
        "token too: check that authority_host and graph_url (or cloud) belong to the "
        "same Microsoft cloud, and that the app is enabled in the tenant"
    )


def tls_line(what: str, host: str) -> str:
    """TLS verification failed: a TLS-inspecting proxy needs its CA in the bundle."""
    return (
        f"{what}: TLS verification failed for {host}: if a proxy inspects TLS, set "
        "REQUESTS_CA_BUNDLE to a file with its CA certificate"
    )


def network_line(what: str, exc: BaseException, request: requests.PreparedRequest) -> str:
    """A call that got no answer."""
    path = urlsplit(request.url or "").path
    sent = request.headers.get("client-request-id", "none")
    return (
        f"{what}: GET {path} failed on the connection ({type(exc).__name__}, no "
        f"answer, client-request-id {sent})"
    )


def gave_up_line(what: str, host: str, retry: Retry, give_up: GiveUpError, timeout: float) -> str:
    """The last failure of a Graph call, once no attempt is left."""
    if retry.response is not None or retry.cause is None:
        return (
            f"{retry}: still failing {give_up}; run again later (Microsoft 365 admin center > "
            "Health > Service health shows Graph outages)"
        )
    if isinstance(retry.cause, requests.exceptions.ReadTimeout):
        return (
            f"{what}: Graph at {host} did not answer within request_timeout ({timeout:g} s) "
            f"{give_up}: raise the request_timeout setting, or check the network, "
            "HTTPS_PROXY/NO_PROXY and the graph_url setting"
        )
    return (
        f"{what}: cannot reach Graph at {host} ({type(retry.cause).__name__}) {give_up}: check "
        "the network, HTTPS_PROXY/NO_PROXY and the graph_url setting"
    )


# -- the retry loop ------------------------------------------------------------------------------


class Retry(Exception):  # noqa: N818 - a signal to the retry loop, not an error of the run
    """One failed attempt worth another; `Transport.retrying` decides whether and when."""

    def __init__(
        self,
        line: str,
        *,
        response: requests.Response | None = None,
        cause: BaseException | None = None,
        host: str = "",
        log_line: str | None = None,
    ) -> None:
        super().__init__(line)
        self.response = response
        self.cause = cause  # the network exception, when no answer came
        self.host = host
        self.log_line = log_line or line
        self.unreachable = cause is not None and is_unreachable(cause)

    @property
    def status(self) -> int | None:
        """The HTTP status that failed; None when no answer came."""
        return self.response.status_code if self.response is not None else None

    @property
    def retry_after(self) -> float | None:
        """The server's Retry-After, in seconds."""
        return retry_after_seconds(self.response)


class StoppedError(Exception):
    """The run is ending: a retry wait was interrupted."""


class TokenSource(Protocol):
    """What the transport needs of the authenticator (graph/auth.py)."""

    @property
    def access_token(self) -> str:
        """A valid token."""
        ...

    def invalidate_token(self) -> None:
        """Forget the cached token (after a 401)."""
        ...


def new_session() -> requests.Session:
    """A session with the CA bundle of REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE.

    The SDK sends with `Session.send`, which skips requests' environment merge, so the bundle
    must be set on the session; proxies are honoured by `send` itself.
    """
    session = requests.Session()
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


class Transport:
    """The run's sessions, bearer header and retry loop (see the module docstring)."""

    def __init__(
        self, *, graph_url: str, timeout: float, policy: RetryPolicy | None = None
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.base_url = f"{self.graph_url}/v1.0"
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.session = new_session()
        # Entra ID's own: the SDK sets the stream session's `auth` to its authenticator, which
        # would ask for a token while getting one.
        self.entra_session = new_session()
        self.authenticator: TokenSource | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._unreachable: dict[str, GiveUpError] = {}

    @property
    def host(self) -> str:
        """Graph's host and port, for messages."""
        return urlsplit(self.graph_url).netloc

    def thread_session(self, kind: str) -> requests.Session:
        """This thread's session for `kind` (report workers: "graph" or "download")."""
        session = getattr(self._local, kind, None)
        if session is None:
            session = new_session()
            setattr(self._local, kind, session)
        return session

    def authorize(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Set the bearer header (only it: the query string is left as it was encoded)."""
        if self.authenticator is None:  # pragma: no cover - the tap binds one before any call
            msg = "the transport has no authenticator"
            raise RuntimeError(msg)
        request.headers["Authorization"] = f"Bearer {self.authenticator.access_token}"
        return request

    def get(
        self,
        url: str,
        *,
        headers: dict[str, str],
        kind: str,
        timeout: float | tuple[float, float] | None = None,
        authorized: bool = False,
    ) -> requests.Response:
        """One streamed GET on this thread's `kind` session; redirects are not followed.

        Proxies and the CA bundle come from the environment, but no credentials (no netrc):
        only `headers` are sent, plus the bearer header when `authorized` (Graph only).
        """
        session = self.thread_session(kind)
        prepared = requests.Request(
            "GET", url, headers={"User-Agent": USER_AGENT, **headers}
        ).prepare()
        if authorized:
            self.authorize(prepared)
        settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
        return session.send(
            prepared, allow_redirects=False, timeout=timeout or self.timeout, **settings
        )

    @staticmethod
    def request_id() -> str:
        """A new client-request-id (Graph echoes it; support asks for it)."""
        return str(uuid.uuid4())

    def retrying(
        self,
        attempt: Callable[[], T],
        *,
        give_up: Callable[[Retry, GiveUpError], BaseException],
        before_retry: Callable[[Retry, float], None] | None = None,
        policy: RetryPolicy | None = None,
        level: int = logging.WARNING,
        stop: threading.Event | None = None,
        logger: logging.Logger | None = None,
    ) -> T:
        """Run `attempt` until it returns; each `Retry` it raises is waited out and tried again
        as the policy says. When none is left, `give_up` makes the error raised. A 401 is
        tried again at once, with a fresh token. `stop` ends a wait early (`StoppedError`)."""
        retries = (policy or self.policy).start()
        while True:
            try:
                return attempt()
            except Retry as failed:
                exc = failed
                with self._lock:
                    known = self._unreachable.get(exc.host) if exc.unreachable else None
                if known is not None:  # another call already found it unreachable
                    raise give_up(exc, known) from None
                try:
                    wait = retries.next_wait(
                        status=exc.status,
                        retry_after=exc.retry_after,
                        now=exc.status == 401,
                        unreachable=exc.unreachable,
                    )
                except GiveUpError as reason:
                    if exc.unreachable:
                        with self._lock:
                            self._unreachable.setdefault(exc.host, reason)
                    raise give_up(exc, reason) from None
                (logger or LOGGER).log(
                    level,
                    "%s; %s",
                    exc.log_line,
                    retries.describe_wait(wait, retry_after=exc.retry_after is not None),
                )
                if exc.status == 401 and exc.host == self.host and self.authenticator is not None:
                    self.authenticator.invalidate_token()
                if before_retry is not None:
                    before_retry(exc, wait)
            # The package's one retry wait; an event so that a stopping run ends it early.
            if wait and (stop or threading.Event()).wait(wait):
                raise StoppedError


class BearerAuthenticator(APIAuthenticatorBase):
    """The SDK's authenticator hook for stream requests: the transport sets the header."""

    def __init__(self, transport: Transport) -> None:
        super().__init__()
        self.transport = transport

    @override
    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        # Set the header only: the base class would re-encode the query string, and Graph's
        # nextLink must be sent exactly as it came.
        return self.transport.authorize(request)


__all__ = [
    "RETRY_STATUSES",
    "TRANSIENT_NETWORK_ERRORS",
    "USER_AGENT",
    "BearerAuthenticator",
    "Retry",
    "StoppedError",
    "Transport",
    "correlation",
    "describe_unparsable",
    "endpoint",
    "error_line",
    "graph_error_fields",
    "graph_json",
    "is_html",
    "new_session",
    "permission_line",
    "retry_after_seconds",
    "tls_line",
]
