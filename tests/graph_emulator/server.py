"""HTTPS listeners of the Graph emulator and the routing between its parts.

`GraphEmulator` starts three TLS listeners on 127.0.0.1 with ephemeral ports, all presenting a
certificate from a trustme CA created for the emulator (valid for 127.0.0.1 and localhost):

- login (Entra ID):  https://127.0.0.1:<p1>   -> login.LoginService
- graph:             https://127.0.0.1:<p2>   -> directory.DirectoryService, reports.ReportService
- download:          https://localhost:<p3>   -> reports.ReportService.handle_download
  (a different host name and port, so requests drops the Authorization header on the 302)

Each request goes through the fault injector, is answered, and is recorded in `request_log`.
Responses use HTTP/1.1 keep-alive; a body given as an iterable is sent with chunked transfer
encoding.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import secrets
import socket
import ssl
import string
import struct
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .directory import DirectoryService, PagingOptions
from .faults import FaultInjector, FaultSelection, fault_response, malformed_csv
from .http import EmulatorRequest, EmulatorResponse, graph_error
from .login import AppRegistration, LoginService, TokenStore
from .product_names import PRODUCT_NAMES_PATH, ProductNamesService
from .tenant import Tenant

if TYPE_CHECKING:
    from collections.abc import Iterable

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


@dataclass
class LogRecord:
    """One request as the emulator received it (readable as attributes or as rec["status"])."""

    role: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    time: float = field(default_factory=time.time)
    fault: str | None = None
    raw_query: str = ""  # the query string exactly as sent (to prove no option is repeated)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def _redact(headers: dict[str, str]) -> dict[str, str]:
    value = headers.get("authorization", "")
    if value.lower().startswith("basic "):
        return {**headers, "authorization": "Basic <redacted>"}
    return headers


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, emulator: GraphEmulator, role: str, context: ssl.SSLContext) -> None:
        self.emulator = emulator
        self.role = role
        self.ssl_context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            request.close()
            return
        with self.connections_lock:
            self.connections.add(conn)
        try:
            _Handler(conn, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            with self.connections_lock:
                self.connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are normal here; stay quiet."""

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    server: _Listener

    def log_message(self, format: str, *args: Any) -> None:
        """No stderr noise per request."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = EmulatorRequest(
            method=self.command,
            path=unquote(split.path),
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            body=self._read_body(),
            raw_query=split.query,
        )
        emulator = self.server.emulator
        role = self.server.role
        record = LogRecord(
            role,
            request.method,
            request.path,
            dict(request.query),
            _redact(headers),
            raw_query=request.raw_query,
        )
        emulator.log(record)
        selection = emulator.faults.select(role, request.method, request.path)
        if selection.latency:
            time.sleep(selection.latency)
        rule = selection.rule
        if rule is not None:
            record.fault = rule.kind
        if rule is not None and rule.kind == "reset":
            self._reset()
            return
        if rule is not None and rule.kind in ("status", "html"):
            response = fault_response(rule, role, request)
        else:
            response = emulator.dispatch(role, request, selection)
        record.status = response.status
        if rule is not None and rule.kind == "truncated_json":
            raw = _join(response.body)
            response.body = raw[: max(1, int(len(raw) * rule.fraction))]
        if rule is not None and rule.kind == "malformed_csv":
            response.body = malformed_csv(response.body, rule.fraction)
        if rule is not None and rule.kind == "reset_body":
            raw = _join(response.body)
            self._send_head(response, len(raw))
            with contextlib.suppress(OSError):
                self.wfile.write(raw[: max(1, int(len(raw) * rule.fraction))])
                self.wfile.flush()
            time.sleep(0.05)  # let the partial body reach the client before the reset
            self._reset()
            return
        self._send(response)

    def _send_head(self, response: EmulatorResponse, length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        headers = dict(response.headers)
        headers.setdefault("Date", email.utils.formatdate(usegmt=True))
        if length is None:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(length)
        if self.close_connection:
            headers["Connection"] = "close"
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if length is not None:
            return head
        self.wfile.write(head)
        return b""

    def _send(self, response: EmulatorResponse) -> None:
        body = response.body
        try:
            if isinstance(body, bytes | bytearray):
                head = self._send_head(response, len(body))
                self.wfile.write(head + bytes(body))
            else:
                self._send_head(response, None)
                for chunk in body:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        """Abort the TCP connection with a RST (SO_LINGER 0), sending nothing more."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw = socket.socket(fileno=self.connection.detach())  # bypass TLS close_notify
        with contextlib.suppress(OSError):
            raw.close()
        self.close_connection = True


def _join(body: bytes | Iterable[bytes]) -> bytes:
    return body if isinstance(body, bytes) else b"".join(body)


_CLIENT_CERT_CACHE: dict[str, tuple[bytes, x509.Certificate]] = {}
_CA_CACHE: list[tuple[trustme.CA, trustme.LeafCert]] = []
_CA_LOCK = threading.Lock()


def _certificate_authority() -> tuple[trustme.CA, trustme.LeafCert]:
    """The trustme CA and server certificate (127.0.0.1, localhost), made once per process.

    Every emulator of a process presents a certificate of the same CA, so one
    REQUESTS_CA_BUNDLE (any emulator's `ca_bundle`) trusts all of them - the tap under test
    reads that variable once, while a test may run several emulators.
    """
    with _CA_LOCK:
        if not _CA_CACHE:
            ca = trustme.CA(organization_name="Graph emulator test CA")
            _CA_CACHE.append((ca, ca.issue_cert("127.0.0.1", "localhost")))
        return _CA_CACHE[0]


def _client_certificate(password: str) -> tuple[bytes, x509.Certificate]:
    """An RSA key + self-signed certificate for certificate credentials (generated once)."""
    if "cert" not in _CLIENT_CERT_CACHE:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tap-microsoft365-test")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _CLIENT_CERT_CACHE["cert"] = (key_pem, cert)
    key_pem, cert = _CLIENT_CERT_CACHE["cert"]
    loaded = serialization.load_pem_private_key(key_pem, password=None)
    encrypted = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    return encrypted + cert.public_bytes(serialization.Encoding.PEM), cert


class GraphEmulator:
    """A faithful local stand-in for Entra ID + Microsoft Graph + the report download host.

    Use as a context manager (or `start()` / `stop()`); see the package docstring for the API.
    """

    def __init__(
        self,
        tenant: Tenant | None = None,
        *,
        time_scale: float = 1.0,
        paging: PagingOptions | None = None,
    ) -> None:
        self.tenant = tenant if tenant is not None else Tenant.synthetic()
        self.time_scale = time_scale
        self.paging = paging or PagingOptions()
        self.app = AppRegistration(
            client_id=str(uuid.uuid4()),
            secret_value=_secret_value(),
            secret_id=str(uuid.uuid4()),
        )
        self.tokens = TokenStore()
        self.faults = FaultInjector()
        # Microsoft's product names CSV, served on the download host (product_names.py).
        self.product_names = ProductNamesService()
        self.request_log: list[LogRecord] = []
        self._log_lock = threading.Lock()
        self._listeners: dict[str, _Listener] = {}
        self._threads: list[threading.Thread] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._reports: Any = None
        self._reports_state = "unloaded"
        self._reports_lock = threading.Lock()
        self.client_certificate_password = "tap-test-" + uuid.uuid4().hex[:12]
        self.client_certificate_path = ""
        self.client_certificate_thumbprint = ""
        self.ca_bundle = ""
        self.authority_host = ""
        self.graph_url = ""
        self.download_url = ""
        self.login: LoginService | None = None
        self.directory: DirectoryService | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GraphEmulator:
        """Create the CA and certificates, bind the three listeners and start serving."""
        if self._listeners:
            return self
        self._tmp = tempfile.TemporaryDirectory(prefix="graph-emulator-")
        folder = Path(self._tmp.name)
        ca, server_cert = _certificate_authority()
        self.ca_bundle = str(folder / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_bundle)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_cert.configure_cert(context)
        pem, cert = _client_certificate(self.client_certificate_password)
        self.client_certificate_path = str(folder / "client-certificate.pem")
        Path(self.client_certificate_path).write_bytes(pem)
        self.app.certificates.append(cert)
        self.client_certificate_thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
        for role in ("login", "graph", "download"):
            listener = _Listener(self, role, context)
            self._listeners[role] = listener
            thread = threading.Thread(
                target=listener.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            thread.name = f"graph-emulator-{role}"
            thread.start()
            self._threads.append(thread)
        port = {role: listener.server_address[1] for role, listener in self._listeners.items()}
        self.authority_host = f"https://127.0.0.1:{port['login']}"
        self.graph_url = f"https://127.0.0.1:{port['graph']}"
        self.download_url = f"https://localhost:{port['download']}"
        self.login = LoginService(
            self.tenant,
            self.app,
            self.tokens,
            authority_host=self.authority_host,
            graph_url=self.graph_url,
        )
        self.directory = DirectoryService(
            self.tenant, self.graph_url, self.paging, self._dispatch_inner
        )
        return self

    def stop(self) -> None:
        """Stop the listeners, drop open connections and remove the temporary files."""
        for listener in self._listeners.values():
            listener.shutdown()
            listener.close_connections()
            listener.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listeners.clear()
        self._threads.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ convenience

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def tenant_domain(self) -> str:
        return self.tenant.domain

    @property
    def client_id(self) -> str:
        return self.app.client_id

    @property
    def client_secret(self) -> str:
        return self.app.secret_value

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A ready tap config for this emulator (settings overridable by keyword)."""
        config: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "authority_host": self.authority_host,
            "graph_url": self.graph_url,
        }
        if self.download_url:
            # The product names CSV comes from this emulator, cached in its own folder.
            config["product_names_url"] = self.product_names_url
            if self._tmp is not None:
                config["product_names_cache_dir"] = str(Path(self._tmp.name) / "cache")
        if self.time_scale != 1.0:
            # The tap paces report calls by its own window setting: tell it the scaled one.
            config["report_window_seconds"] = 600 * self.time_scale
        config.update(overrides)
        return config

    @property
    def product_names_url(self) -> str:
        """Where this emulator serves the product names CSV (Microsoft's path)."""
        return self.download_url + quote(PRODUCT_NAMES_PATH)

    def log(self, record: LogRecord) -> None:
        with self._log_lock:
            self.request_log.append(record)

    def clear_log(self) -> None:
        """Forget the recorded requests."""
        with self._log_lock:
            self.request_log.clear()

    def issue_token(self, roles: Iterable[str] | None = None, lifetime: int | None = None) -> str:
        """An access token without going through the login host (for tests of Graph alone)."""
        granted = frozenset(self.app.roles if roles is None else roles)
        return self.tokens.issue(self.app.client_id, granted, lifetime or self.app.token_lifetime)

    def issued_tokens(self) -> list[str]:
        """Every access token this emulator has issued (to check none leaks into logs)."""
        return self.tokens.all()

    def expire_delta_tokens(self, *, resync: bool = False) -> None:
        """Expire every delta token issued so far (see Tenant.expire_delta_tokens)."""
        self.tenant.expire_delta_tokens(resync=resync)

    @property
    def reports(self) -> Any:
        """The ReportService (tests/graph_emulator/reports.py), or None if not importable."""
        with self._reports_lock:
            if self._reports_state == "unloaded":
                self._reports_state = "missing"
                try:
                    from .reports import ReportService
                except ImportError:
                    return None
                # cast: reports.py types the tenant with its own read-only Protocol.
                self._reports = ReportService(
                    cast("Any", self.tenant),
                    download_base_url=self.download_url,
                    time_scale=self.time_scale,
                )
                self._reports_state = "loaded"
            return self._reports

    # ------------------------------------------------------------------ routing

    def dispatch(
        self, role: str, request: EmulatorRequest, selection: FaultSelection | None = None
    ) -> EmulatorResponse:
        """Answer one request of a listener (faults other than token lifetime already applied)."""
        try:
            if role == "login":
                assert self.login is not None
                lifetime = selection.token_lifetime if selection is not None else None
                return self.login.handle(request, token_lifetime=lifetime)
            if role == "download" and request.path == PRODUCT_NAMES_PATH:
                return self.product_names.handle(request)
            if role == "download":
                service = self.reports
                if service is None:
                    return EmulatorResponse(404, {"Content-Type": "text/plain"}, b"Not Found")
                return service.handle_download(request.path, request)
            return self._graph(request)
        except Exception as exc:
            return graph_error(500, "UnknownError", f"Emulator error: {exc!r}", request)

    def _authenticate(self, request: EmulatorRequest) -> EmulatorResponse | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        www = {
            "WWW-Authenticate": (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                f'oauth2/authorize", client_id="{GRAPH_APP_ID}"'
            )
        }
        if scheme.lower() != "bearer" or not token.strip():
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token is empty.", request, www
            )
        info = self.tokens.lookup(token.strip())
        if info is None:
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed, there are no dots (.). The token needs to be "
                "in JWS or JWE Compact Serialization Format.",
                request,
                www,
            )
        if info.expires_at <= time.time():
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
                request,
                www,
            )
        request.roles = info.roles
        return None

    def _graph(self, request: EmulatorRequest) -> EmulatorResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] != "v1.0":
            version = parts[0] if parts else ""
            return graph_error(400, "BadRequest", f"Invalid version: {version}", request)
        problem = self._authenticate(request)
        if problem is not None:
            return problem
        if len(parts) >= 3 and parts[1] == "reports" and parts[2] != "":
            return self._reports_call(request, "/".join(parts[2:]))
        # v1.0 copilot singleton -> reports (copilotReportRoot), msgraph-metadata v1.0 CSDL.
        if len(parts) >= 4 and parts[1:3] == ["copilot", "reports"] and parts[3] != "":
            return self._reports_call(request, "/".join(parts[3:]), base="copilot/reports")
        assert self.directory is not None
        return self.directory.handle(request)

    def _reports_call(
        self, request: EmulatorRequest, function_call: str, base: str = "reports"
    ) -> EmulatorResponse:
        if "Reports.Read.All" not in request.roles:
            return graph_error(403, "S2SUnauthorized", "Invalid permission.", request)
        service = self.reports
        if service is None:
            return graph_error(
                404, "UnknownError", "Reports are not available in this emulator.", request
            )
        return service.handle_call(function_call, request, base)

    def _dispatch_inner(self, request: EmulatorRequest) -> EmulatorResponse:
        """A $batch item: faults (status/latency) apply to it alone, then normal routing."""
        selection = self.faults.select("graph", request.method, request.path, inner=True)
        if selection.latency:
            time.sleep(selection.latency)
        if selection.rule is not None:
            return fault_response(selection.rule, "graph", request)
        inner = EmulatorRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=request.body,
            raw_query=request.raw_query,
        )
        return self.dispatch("graph", inner)


def _secret_value() -> str:
    """A client secret in Entra's current shape: 3 chars, a version marker "8Q~", 34 chars."""
    alphabet = string.ascii_letters + string.digits + "_-.~"
    return (
        "".join(secrets.choice(alphabet) for _ in range(3))
        + "8Q~"
        + "".join(secrets.choice(alphabet) for _ in range(34))
    )
