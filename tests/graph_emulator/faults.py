"""Fault injection for the Graph emulator.

A test adds rules to `emu.faults` at runtime; each rule matches requests by listener role
("login", "graph", "download" or None for any), HTTP method and a regular expression searched in
the URL path, and fires on some of them:

    emu.faults.throttle(path=r"/users", times=2, retry_after=1)   # next 2 /users calls -> 429
    emu.faults.error(503, every=4)                                # every 4th Graph call -> 503
    emu.faults.reset(path=r"/subscribedSkus")                     # TCP reset, no response
    emu.faults.reset_body(role="download")                        # reset half-way through the body
    emu.faults.latency(0.2, role=None)                            # every request waits 200 ms
    emu.faults.html(502)                                          # a proxy's HTML error page
    emu.faults.truncated_json(path=r"/groups")                    # 200 with half a JSON body
    emu.faults.token_lifetime(5)                                  # new tokens live 5 s
    emu.faults.expire_tokens(emu.tokens, path=r"/groups")         # tokens revoked mid-run
    emu.faults.malformed_csv()                                    # a download's CSV corrupted
    emu.faults.throttle(retry_after=2, retry_after_date=True)     # Retry-After as an HTTP date
    emu.faults.profile("flaky")                                   # a named set for whole syncs

Report files that only look like reports are rewritten by the report service itself, per call
(`FileFault`, with one of the rewrites below), since a download URL says nothing of its call:

    emu.reports.file_faults.append(FileFault("date=2026-11-20", empty_file))

`times` limits a rule to its next N firings (None: unlimited), `window` to N seconds from now,
`skip` lets the first matches pass and `every` fires on every k-th match only. Rules fire in
the order they were added; latency rules add up, and at most one other rule fires per request.
Inside a JSON batch only status and latency rules apply, to the individual inner request (Graph
throttles each batch item on its own).
"""

from __future__ import annotations

import csv
import email.utils
import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .http import EmulatorRequest, EmulatorResponse, graph_date, graph_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .login import TokenStore

KINDS = frozenset(
    {
        "status",
        "reset",
        "reset_body",
        "latency",
        "html",
        "truncated_json",
        "token_lifetime",
        "expire_tokens",
        "malformed_csv",
    }
)

# Default Graph error code and message per injected status (concepts/errors.md,
# concepts/throttling.md).
_GRAPH_ERRORS = {
    429: ("TooManyRequests", "Please retry after"),
    500: ("UnknownError", "An unexpected error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The upstream server did not respond in time."),
}


@dataclass
class FaultRule:
    """One injected fault; see the module docstring for the matching fields."""

    kind: str
    role: str | None = "graph"
    path: str = ""
    method: str | None = None
    times: int | None = 1
    every: int = 1
    skip: int = 0
    window: float | None = None
    status: int = 429
    code: str | None = None
    message: str | None = None
    retry_after: int | None = None
    retry_after_date: bool = False  # send Retry-After as an HTTP date that many seconds ahead
    action: Callable[[], None] | None = None  # run when the rule fires (expire_tokens)
    seconds: float = 0.0
    fraction: float = 0.5
    matched: int = 0
    fired: int = 0
    created: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            msg = f"unknown fault kind {self.kind!r}; use one of {sorted(KINDS)}"
            raise ValueError(msg)
        self._pattern = re.compile(self.path)

    def active(self) -> bool:
        """Whether the rule can still fire."""
        if self.times is not None and self.times <= 0:
            return False
        return self.window is None or time.monotonic() - self.created <= self.window

    def matches(self, role: str, method: str, path: str) -> bool:
        """Whether a request falls under the rule (without counting it)."""
        if self.role is not None and self.role != role:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._pattern.search(path) is not None


@dataclass
class FaultSelection:
    """What the server must do to one request."""

    latency: float = 0.0
    rule: FaultRule | None = None
    token_lifetime: int | None = None


class FaultInjector:
    """The set of fault rules of one emulator; thread-safe."""

    PROFILES = ("throttling", "flaky", "token_expiry", "latency")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    @property
    def rules(self) -> list[FaultRule]:
        """A snapshot of the current rules (fired ones included, with their counters)."""
        with self._lock:
            return list(self._rules)

    def add(self, kind: str, **fields: object) -> FaultRule:
        """Add a rule of `kind` with FaultRule fields; returns it (keep it to remove it later)."""
        rule = FaultRule(kind, **fields)  # type: ignore[arg-type]
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Remove one rule."""
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    # Convenience constructors -----------------------------------------------------------

    def throttle(
        self, path: str = "", *, times: int | None = 1, retry_after: int | None = 1, **kw: object
    ) -> FaultRule:
        """429 TooManyRequests with Retry-After (seconds; None omits the header)."""
        return self.add("status", path=path, times=times, status=429, retry_after=retry_after, **kw)

    def error(
        self,
        status: int,
        path: str = "",
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        **kw: object,
    ) -> FaultRule:
        """An error status (500, 503, 504, ...) in the listener's error format."""
        return self.add(
            "status", path=path, times=times, status=status, retry_after=retry_after, **kw
        )

    def reset(self, path: str = "", *, times: int | None = 1, **kw: object) -> FaultRule:
        """Reset the TCP connection before sending any response."""
        return self.add("reset", path=path, times=times, **kw)

    def reset_body(
        self, path: str = "", *, times: int | None = 1, fraction: float = 0.5, **kw: object
    ) -> FaultRule:
        """Send the headers and `fraction` of the body, then reset the connection."""
        return self.add("reset_body", path=path, times=times, fraction=fraction, **kw)

    def latency(
        self, seconds: float, path: str = "", *, times: int | None = None, **kw: object
    ) -> FaultRule:
        """Delay matching requests by `seconds` (unlimited by default)."""
        return self.add("latency", path=path, times=times, seconds=seconds, **kw)

    def html(
        self, status: int = 502, path: str = "", *, times: int | None = 1, **kw: object
    ) -> FaultRule:
        """An HTML error page, as a corporate proxy or load balancer would send."""
        return self.add("html", path=path, times=times, status=status, **kw)

    def truncated_json(
        self, path: str = "", *, times: int | None = 1, fraction: float = 0.5, **kw: object
    ) -> FaultRule:
        """The real response cut to `fraction` of its body, with a matching Content-Length."""
        return self.add("truncated_json", path=path, times=times, fraction=fraction, **kw)

    def token_lifetime(self, seconds: int, *, times: int | None = None, **kw: object) -> FaultRule:
        """Tokens issued while the rule is active expire after `seconds` (expires_in says so)."""
        kw.setdefault("role", "login")
        kw.setdefault("path", r"/oauth2/v2\.0/token$")
        return self.add("token_lifetime", times=times, seconds=float(seconds), **kw)

    def expire_tokens(
        self, tokens: TokenStore, path: str = "", *, times: int | None = 1, **kw: object
    ) -> FaultRule:
        """Every access token issued so far expires as a matching Graph request arrives, so
        Graph answers it 401 InvalidAuthenticationToken "Access token has expired or is not
        yet valid." (what a client sees when its cached token outlives its real validity, or
        is revoked, in the middle of a run)."""
        return self.add("expire_tokens", path=path, times=times, action=tokens.expire_all, **kw)

    def malformed_csv(
        self, path: str = "", *, times: int | None = 1, fraction: float = 0.5, **kw: object
    ) -> FaultRule:
        """A report download whose CSV is corrupted `fraction` of the way in: a row opens a
        quoted field that never closes (as a middlebox mangling the file would leave it)."""
        kw.setdefault("role", "download")
        return self.add("malformed_csv", path=path, times=times, fraction=fraction, **kw)

    def profile(self, name: str, *, tokens: TokenStore | None = None) -> list[FaultRule]:
        """Add a named set of unlimited rules for a whole-sync test; returns them.

        - throttling: every 4th Graph request answers 429 with Retry-After: 1.
        - flaky: on Graph, every 7th request 503, every 11th a connection reset, every 13th
          504, every 17th a proxy's HTML 502, every 19th a 500; from the 4th download on, every
          3rd is cut off by a reset half-way through the body.
        - token_expiry: access tokens live 3 seconds (expires_in says so: MSAL, which never
          serves a token with under 5 minutes left, fetches one per call); with `tokens` (the
          emulator's TokenStore), every 6th Graph request also finds every token issued so far
          expired, so Graph answers it 401 "Access token has expired or is not yet valid."
        - latency: 50 ms on every request of every listener.
        """
        if name == "throttling":
            return [self.throttle(every=4, retry_after=1, times=None)]
        if name == "flaky":
            return [
                self.error(503, every=7, times=None),
                self.reset(every=11, skip=3, times=None),
                self.error(504, every=13, skip=5, times=None),
                self.html(502, every=17, skip=8, times=None),
                self.error(500, every=19, skip=2, times=None),
                self.reset_body(role="download", every=3, skip=1, times=None),
            ]
        if name == "token_expiry":
            rules = [self.token_lifetime(3)]
            if tokens is not None:
                rules.append(self.expire_tokens(tokens, every=6, skip=1, times=None))
            return rules
        if name == "latency":
            return [self.latency(0.05, role=None)]
        msg = f"unknown fault profile {name!r}; use one of {self.PROFILES}"
        raise ValueError(msg)

    # Matching ---------------------------------------------------------------------------

    def select(self, role: str, method: str, path: str, *, inner: bool = False) -> FaultSelection:
        """Count this request against the rules and return the faults to apply to it."""
        selection = FaultSelection()
        with self._lock:
            for rule in self._rules:
                if not rule.active() or not rule.matches(role, method, path):
                    continue
                if inner and rule.kind not in ("status", "latency"):
                    continue
                if rule.kind not in ("latency", "token_lifetime") and selection.rule is not None:
                    continue
                rule.matched += 1
                turn = rule.matched - rule.skip
                if turn <= 0 or turn % max(1, rule.every):
                    continue
                rule.fired += 1
                if rule.times is not None:
                    rule.times -= 1
                if rule.kind == "latency":
                    selection.latency += rule.seconds
                elif rule.kind == "token_lifetime":
                    selection.token_lifetime = max(1, int(rule.seconds))
                elif rule.kind == "expire_tokens":
                    if rule.action is not None:
                        rule.action()  # the request is then answered (401) as usual
                else:
                    selection.rule = rule
        return selection


def fault_response(rule: FaultRule, role: str, request: EmulatorRequest) -> EmulatorResponse:
    """The response of a "status" or "html" rule, shaped like the listener's real errors."""
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = (
            email.utils.formatdate(time.time() + rule.retry_after, usegmt=True)
            if rule.retry_after_date
            else str(rule.retry_after)
        )
    if rule.kind == "html":
        title = f"{rule.status} {'Bad Gateway' if rule.status == 502 else 'Error'}"
        page = (
            "<!DOCTYPE html>\n<html><head><title>"
            f"{title}</title></head>\n<body><h1>{title}</h1>\n"
            "<p>The proxy server received an invalid response from an upstream server.</p>\n"
            "<hr><address>corporate-proxy</address></body></html>\n"
        )
        headers["Content-Type"] = "text/html; charset=utf-8"
        return EmulatorResponse(rule.status, headers, page.encode())
    if role == "login":
        from .login import aad_error  # the login module builds Entra's error bodies

        return aad_error(
            rule.status,
            "temporarily_unavailable",
            90033,
            rule.message or "A transient error has occurred. Please try again.",
            request,
            headers=headers,
        )
    if role == "download":
        headers["Content-Type"] = "text/plain"
        return EmulatorResponse(
            rule.status, headers, (rule.message or "Service Unavailable").encode()
        )
    code, message = _GRAPH_ERRORS.get(rule.status, ("UnknownError", "An error occurred."))
    code = rule.code or code
    message = rule.message or message
    if rule.status == 429:
        # The throttling doc's sample carries code/status/message inside innerError too.
        payload = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "code": "429",
                    "date": graph_date(),
                    "message": message,
                    "request-id": request.request_id,
                    "client-request-id": request.client_request_id,
                    "status": "429",
                },
            }
        }
        response = graph_error(rule.status, code, message, request, headers)
        response.body = json.dumps(payload).encode()
        return response
    return graph_error(rule.status, code, message, request, headers)


def malformed_csv(body: bytes | Iterable[bytes], fraction: float) -> bytes:
    """A CSV body with a quote opened at the start of the row `fraction` of the way in."""
    raw = body if isinstance(body, bytes) else b"".join(body)
    cut = raw.find(b"\n", int(len(raw) * fraction))
    if cut < 0:
        cut = raw.find(b"\n")
    return raw[: cut + 1] + b'"' + raw[cut + 1 :]


# --------------------------------------------------------------------------------------------
# Report files that only look like reports (issue 12): rewrites of a downloaded CSV body.
# --------------------------------------------------------------------------------------------


@dataclass
class FileFault:
    """Rewrite the downloaded file of report calls whose text (`getX(date=...)`) matches `call`
    (a regular expression searched in it), on the next `times` matches (None: every one)."""

    call: str
    rewrite: Callable[[bytes], bytes]
    times: int | None = None
    fired: int = 0

    def take(self, call: str) -> bool:
        """Whether the fault applies to this call's download (counting it when it does)."""
        if (self.times is not None and self.fired >= self.times) or not re.search(self.call, call):
            return False
        self.fired += 1
        return True


_BOM = "\ufeff".encode()


def empty_file(_body: bytes) -> bytes:
    """A 0-byte body answered 200."""
    return b""


def bom_only(_body: bytes) -> bytes:
    """Only the UTF-8 byte order mark."""
    return _BOM


def blank_line_after_header(body: bytes) -> bytes:
    """The header, then a blank line where the rows should be."""
    header = body.split(b"\r\n", 1)[0]
    return header + b"\r\n\r\n"


def html_page(_body: bytes) -> bytes:
    """A one-line HTML page answered 200 (a captive portal or a filtering proxy)."""
    return b"<html><head><title>Access denied</title></head><body>Blocked</body></html>"


def refresh_dates(value: str | Callable[[str], str]) -> Callable[[bytes], bytes]:
    """Every row's Report Refresh Date replaced by `value` (or `value(old)`)."""

    def rewrite(body: bytes) -> bytes:
        lines = body.decode("utf-8-sig").split("\r\n")
        index = next(csv.reader([lines[0]])).index("Report Refresh Date")
        out = [lines[0]]
        for line in lines[1:]:
            if not line:
                out.append(line)
                continue
            cells = next(csv.reader([line]))
            old = cells[index]
            cells[index] = value(old) if callable(value) else value
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(cells)
            out.append(buffer.getvalue())
        return _BOM + "\r\n".join(out).encode()

    return rewrite


def latin1(line: int) -> Callable[[bytes], bytes]:
    """The file re-encoded as Latin-1 (no BOM), with an 'ë' added to the second cell of `line`
    (1-based, the header is line 1) so at least that line is not UTF-8."""

    def rewrite(body: bytes) -> bytes:
        lines = body.decode("utf-8-sig").split("\r\n")
        first, _, rest = lines[line - 1].partition(",")
        lines[line - 1] = f"{first},\u00eb{rest}"
        return "\r\n".join(lines).encode("latin-1", errors="replace")

    return rewrite
