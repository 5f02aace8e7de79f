"""Entra ID app-only authentication (OAuth2 client credentials) through MSAL.

One `GraphAuthenticator` serves every stream of a run: one MSAL application, one token cache, so
one token is fetched and reused until MSAL renews it (MSAL serves a cached token only while more
than five minutes of its 60-90 minute life remain, so long runs renew before expiry). Token
failures become one line with Entra ID's AADSTS code, its trace and correlation ids, and the fix.

Passing faults at Entra ID (throttling, 5xx, resets, an AADSTS code documented as transient) are
retried by the run's transport, under the same policy as Graph calls (graph/transport.py). MSAL
replays a failed token call from its HTTP cache instead of asking again (a 400 for 60 s, a
429/5xx for its Retry-After: `msal.throttled_http_client`), so a plain retry would only see the
same failure again: the tap gives MSAL an HTTP client (on the transport's Entra ID session, so
the same CA bundle and proxies apply) and an HTTP cache of its own, reads the real status and
Retry-After through the former, and empties the latter before each retry.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import msal
import msal.authority
import requests

from tap_microsoft365 import redaction
from tap_microsoft365.errors import AuthenticationError, SettingsError
from tap_microsoft365.graph.transport import Retry

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tap_microsoft365.graph.transport import Transport
    from tap_microsoft365.retries import GiveUpError


@dataclass(frozen=True)
class Cloud:
    """The Entra ID and Graph hosts of one Microsoft cloud
    (https://learn.microsoft.com/graph/deployments)."""

    authority_host: str
    graph_url: str
    has_usage_reports: bool


CLOUDS: dict[str, Cloud] = {
    "global": Cloud("https://login.microsoftonline.com", "https://graph.microsoft.com", True),
    "usgov": Cloud("https://login.microsoftonline.us", "https://graph.microsoft.us", False),
    "usgov_dod": Cloud("https://login.microsoftonline.us", "https://dod-graph.microsoft.us", False),
    "china": Cloud(
        "https://login.partner.microsoftonline.cn", "https://microsoftgraph.chinacloudapi.cn", False
    ),
}

PORTAL_SECRETS = "Entra ID > App registrations > your app > Certificates & secrets"

# What to do for the AADSTS codes an operator actually meets
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
_AADSTS_FIXES: dict[int, str] = {
    7000215: (
        "the client secret is wrong: set client_secret to the secret's Value (shown once when "
        f"it is created under {PORTAL_SECRETS}), not its Secret ID"
    ),
    7000222: (
        f"the client secret has expired: create a new secret under {PORTAL_SECRETS} and put its "
        "Value in client_secret (or switch to a certificate)"
    ),
    7000218: "no credential reached Entra ID: set client_secret or client_certificate_path",
    700016: (
        "no application with this client_id exists in this tenant: copy the Application (client) "
        "ID from App registrations > your app > Overview, and check tenant_id and cloud"
    ),
    7000229: (
        "the application has no service principal in this tenant: an administrator must grant "
        "admin consent (App registrations > your app > API permissions > Grant admin consent)"
    ),
    90002: (
        "the tenant was not found: set tenant_id to the Directory (tenant) ID from Entra ID > "
        "Overview (or a verified domain), and check the cloud setting"
    ),
    900023: (
        "tenant_id is neither a tenant GUID nor a domain: copy the Directory (tenant) ID from "
        "Entra ID > Overview"
    ),
    90038: "the tenant lives in another national cloud: set cloud to that tenant's cloud",
    900432: "the tenant lives in another national cloud: set cloud to that tenant's cloud",
    700027: (
        "the certificate is not accepted: upload its public certificate under "
        f"{PORTAL_SECRETS} > Certificates, or check client_certificate_path"
    ),
    7000112: "the application is disabled in this tenant: an administrator must re-enable it",
    53003: "Conditional Access blocked the sign-in: exclude this workload identity from the policy",
    70011: "the scope was rejected: check the cloud, graph_url and authority_host settings",
    500011: "Microsoft Graph is unknown in this tenant's cloud: check the cloud setting",
    65001: (
        "admin consent is missing: App registrations > your app > API permissions > Grant admin "
        "consent"
    ),
}

# AADSTS codes Entra ID documents as transient service errors or throttling
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes): retried like a 503.
TRANSIENT_AADSTS = frozenset({90006, 90024, 90033, 90055})
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
T = TypeVar("T")


# Codes an administrator of the tenant fixes by consenting to the app (a multi-tenant app's
# customer tenant included): the line then gives the tenant's admin-consent URL
# (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent).
CONSENT_CODES = frozenset({65001, 7000229})


def describe_token_error(
    result: Mapping[str, Any], authority: str, consent_url: str | None = None
) -> str:
    """One line from an Entra ID token error body: code, fix, and the ids support asks for;
    `consent_url`, the tenant's admin-consent URL, is added to consent failures."""
    codes = result.get("error_codes") or []
    code = int(codes[0]) if codes else None
    fix = _AADSTS_FIXES.get(code) if code is not None else None
    if fix and consent_url and code in CONSENT_CODES:
        fix += f", or have an administrator of this tenant open {consent_url}"
    description = str(result.get("error_description") or "").splitlines()
    summary = description[0].strip() if description else ""
    what = f"AADSTS{code}" if code is not None else str(result.get("error", "error"))
    parts = [f"Entra ID refused a token for {authority} ({what})"]
    parts.append(fix or summary or "no description")
    ids = [
        f"{label} {result[key]}"
        for key, label in (("trace_id", "trace id"), ("correlation_id", "correlation id"))
        if result.get(key)
    ]
    if ids:
        parts.append("; ".join(ids))
    return ": ".join(parts[:2]) + (f" [{parts[2]}]" if len(parts) > 2 else "")


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate credential read from a PEM file holding the private key and certificate."""

    private_key_pem: str
    certificate_pem: str
    password: str | None

    @classmethod
    def load(cls, path: str, password: str | None) -> ClientCertificate:
        """Read and check the PEM file, so a bad file fails before any network call."""
        # Imported here: only certificate credentials need it (about 30 ms of every run's
        # start otherwise).
        from cryptography import x509  # noqa: PLC0415
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

        try:
            data = Path(path).expanduser().read_bytes()
        except OSError as exc:
            msg = (
                f"client_certificate_path: cannot read '{path}' ({exc.strerror}): point it at a "
                "PEM file holding the private key and the certificate"
            )
            raise SettingsError(msg) from None
        try:
            serialization.load_pem_private_key(data, password.encode() if password else None)
        except TypeError:
            msg = (
                "client_certificate_password is needed: the private key in "
                "client_certificate_path is encrypted"
                if not password
                else "client_certificate_password is set but the private key is not encrypted: "
                "remove client_certificate_password"
            )
            raise SettingsError(msg) from None
        except ValueError:
            msg = (
                "client_certificate_path: no readable private key in the PEM file, or "
                "client_certificate_password is wrong: the file must hold the private key and "
                "the certificate (openssl pkcs12 -in cert.pfx -out cert.pem converts a PFX)"
            )
            raise SettingsError(msg) from None
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError:
            msg = (
                "client_certificate_path: the PEM file has no certificate: append the public "
                "certificate uploaded to the app registration"
            )
            raise SettingsError(msg) from None
        text = data.decode("ascii", errors="replace")
        return cls(
            private_key_pem=text,
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            password=password,
        )

    def as_msal_credential(self) -> dict[str, str]:
        """MSAL's certificate credential; with the public certificate MSAL computes the
        SHA-256 thumbprint itself and sends x5c (subject-name/issuer auth works too)."""
        credential = {
            "private_key": self.private_key_pem,
            "public_certificate": self.certificate_pem,
        }
        if self.password:
            credential["passphrase"] = self.password
        return credential


class ProxyPageError(Exception):
    """The login host answered with a web page (a proxy's or a firewall's), not Entra ID's JSON."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code} HTML page")
        self.response = response


class EntraHttpClient:
    """The HTTP client MSAL calls Entra ID through: the transport's Entra session, with a timeout.

    Given to MSAL so that the tap sees what MSAL does not pass on: the status, Retry-After and
    ids of the last answer (MSAL turns a 5xx into a bare "HTTP Error: 503"). A web page in place
    of Entra's JSON raises `ProxyPageError` before MSAL tries to parse (and log) it. The session
    honours HTTPS_PROXY/NO_PROXY and the CA bundle like every other call of the tap.
    """

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self.session = session
        self.timeout = timeout
        self.last: requests.Response | None = None

    def _done(self, response: requests.Response) -> requests.Response:
        self.last = response
        content_type = response.headers.get("Content-Type", "").lower()
        if "html" in content_type or response.content[:100].lstrip().lower().startswith(
            (b"<!doctype", b"<html")
        ):
            raise ProxyPageError(response)
        return response

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """POST for MSAL (the token endpoint)."""
        kwargs.setdefault("timeout", self.timeout)
        return self._done(self.session.post(url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """GET for MSAL (OpenID configuration, instance discovery)."""
        kwargs.setdefault("timeout", self.timeout)
        return self._done(self.session.get(url, **kwargs))


def entra_ids(response: requests.Response | None) -> str:
    """The ids Microsoft support asks for, from an Entra ID answer."""
    if response is None:
        return "no answer"
    try:
        body = json.loads(response.content)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    trace = body.get("trace_id") or response.headers.get("x-ms-request-id") or "none"
    correlation = (
        body.get("correlation_id")
        or response.headers.get("client-request-id")
        or response.request.headers.get("client-request-id")
        or "none"
    )
    return f"trace id {trace}, correlation id {correlation}"


def entra_retry(
    line: str, response: requests.Response | None, host: str, cause: BaseException | None = None
) -> Retry:
    """A failure of Entra ID worth another attempt, logged with the ids support asks for."""
    return Retry(
        line,
        response=response,
        cause=cause,
        host=host,
        log_line=f"{line} ({entra_ids(response)})",
    )


class GraphAuthenticator:
    """App-only Graph bearer tokens for the run's transport (one MSAL app, one token cache)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        authority_host: str,
        graph_url: str,
        transport: Transport,
        client_secret: str | None = None,
        client_certificate: ClientCertificate | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self.scopes = [f"{graph_url.rstrip('/')}/.default"]
        self._client_secret = client_secret
        self._client_certificate = client_certificate
        self._transport = transport
        self._http = EntraHttpClient(transport.entra_session, transport.timeout)
        # MSAL's HTTP cache (it replays failed token calls from it): ours, to empty it before a
        # retry. It holds no token and no secret (MSAL keys it by hashes).
        self._http_cache: dict[str, Any] = {}
        self._app: msal.ConfidentialClientApplication | None = None
        self._failure: AuthenticationError | None = None
        self._lock = threading.Lock()
        redaction.register_secret(client_secret)
        if client_certificate:
            redaction.register_secret(client_certificate.password)

    @property
    def consent_url(self) -> str:
        """Where an administrator of the tenant grants the app admin consent."""
        return f"{self.authority}/adminconsent?client_id={self.client_id}"

    @property
    def host(self) -> str:
        """The Entra ID host and port, for messages."""
        return urlsplit(self.authority).netloc

    def _application(self) -> msal.ConfidentialClientApplication:
        """The MSAL application, built on first use: building it fetches the OpenID metadata."""
        if self._app is None:
            self._app = self._with_retries(self._build_application)
        return self._app

    def _build_application(self) -> msal.ConfidentialClientApplication:
        credential: str | dict[str, str] = (
            self._client_certificate.as_msal_credential()
            if self._client_certificate
            else (self._client_secret or "")
        )
        host = urlsplit(self.authority).hostname or ""
        try:
            return msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=credential,
                authority=self.authority,
                # Instance discovery asks login.microsoftonline.com about the host: only
                # useful, and only reachable, for Microsoft's own authorities.
                instance_discovery=None
                if host in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS
                else False,
                http_client=self._http,
                http_cache=self._http_cache,
            )
        except ValueError:
            # MSAL could not read the OpenID configuration: Entra ID refused it (an unknown
            # tenant) or something else answered.
            raise AuthenticationError(self._describe_discovery_failure()) from None

    def _describe_discovery_failure(self) -> str:
        """Name the AADSTS code of a refused OpenID configuration (MSAL hides the body)."""
        response = self._http.last
        try:
            body = json.loads(response.content) if response is not None else {}
        except ValueError:
            body = {}
        if isinstance(body, dict) and body.get("error"):
            return describe_token_error(body, self.authority)
        return (
            f"Entra ID has no OpenID configuration for {self.authority}: check tenant_id "
            "(Directory (tenant) ID from Entra ID > Overview) and the cloud/authority_host settings"
        )

    def _describe_network_failure(self, exc: requests.exceptions.RequestException) -> str:
        if isinstance(exc, requests.exceptions.SSLError):
            return (
                f"TLS verification failed for {self.host}: if a proxy inspects TLS, set "
                "REQUESTS_CA_BUNDLE to a file with its CA certificate"
            )
        return (
            f"Cannot reach Entra ID at {self.host} ({type(exc).__name__}): check the network, "
            "HTTPS_PROXY/NO_PROXY, and the cloud/authority_host settings"
        )

    def _describe_proxy_page(self, response: requests.Response) -> str:
        return (
            f"Entra ID at {self.host} answered HTTP {response.status_code} with an HTML page "
            "instead of its JSON: a proxy or firewall answered, not Entra ID; check "
            "HTTPS_PROXY/NO_PROXY, or ask the network team to allow the login host"
        )

    def _with_retries(self, call: Callable[[], T]) -> T:
        """Run an MSAL call through the transport's retry loop; Entra ID's passing faults are
        tried again, others become one line."""

        def attempt() -> T:
            self._http.last = None
            return self._classified(call)

        def give_up(retry: Retry, reason: GiveUpError) -> AuthenticationError:
            msg = (
                f"{retry} ({reason})"
                if retry.unreachable
                else f"{retry} ({entra_ids(retry.response)}): still failing {reason}; run "
                "again later"
            )
            return AuthenticationError(msg)

        def before_retry(retry: Retry, wait: float) -> None:
            # Without this MSAL would replay the failure from its cache, not ask again.
            self._http_cache.clear()

        return self._transport.retrying(attempt, give_up=give_up, before_retry=before_retry)

    def _classified(self, call: Callable[[], T]) -> T:
        """Run an MSAL call once: transient faults raise `Retry`, permanent
        ones `AuthenticationError`; a token error body that is not transient is returned."""
        try:
            outcome = call()
        except ProxyPageError as exc:
            if exc.response.status_code == 429 or exc.response.status_code >= 500:
                raise entra_retry(
                    self._describe_proxy_page(exc.response), exc.response, self.host
                ) from None
            raise AuthenticationError(self._describe_proxy_page(exc.response)) from None
        except requests.exceptions.SSLError as exc:
            raise AuthenticationError(self._describe_network_failure(exc)) from None
        except requests.exceptions.RequestException as exc:
            retry = entra_retry(self._describe_network_failure(exc), None, self.host, exc)
            if not retry.unreachable:
                line = f"Entra ID at {self.host}: {type(exc).__name__} on the connection"
                retry = entra_retry(line, None, self.host, exc)
            raise retry from None
        except msal.exceptions.MsalServiceError:
            response = self._http.last  # MSAL raises this for a 5xx
            status = str(response.status_code) if response is not None else "5xx"
            line = f"Entra ID at {self.host} answered {status}"
            raise entra_retry(line, response, self.host) from None
        if isinstance(outcome, dict) and outcome.get("error"):
            response = self._http.last
            codes = {int(code) for code in outcome.get("error_codes") or [] if str(code).isdigit()}
            if (
                (response is not None and response.status_code == 429)
                or outcome.get("error") == "temporarily_unavailable"
                or codes & TRANSIENT_AADSTS
            ):
                answered = str(response.status_code) if response is not None else "an error"
                description = str(outcome.get("error_description") or "").splitlines()
                line = (
                    f"Entra ID at {self.host} answered {answered} {outcome.get('error')}: "
                    f"{description[0].strip() if description else 'no description'}"
                )
                raise entra_retry(line, response, self.host)
        return outcome

    @property
    def access_token(self) -> str:
        """A valid access token, from MSAL's cache while it has more than 5 minutes to live."""
        with self._lock:
            if self._failure is not None:  # another stream's call already gave up: so does this
                raise AuthenticationError(str(self._failure))
            try:
                app = self._application()
                result = self._with_retries(
                    lambda: app.acquire_token_for_client(scopes=self.scopes)
                )
                token = result.get("access_token")
                if not token:
                    raise AuthenticationError(
                        describe_token_error(result, self.authority, self.consent_url)
                    )
            except AuthenticationError as exc:
                self._failure = exc
                raise
        redaction.register_secret(token)
        return str(token)

    def resolved_tenant_id(self) -> str:
        """The tenant's GUID, from Entra ID's OpenID configuration for it: its token endpoint
        names the tenant by GUID even when tenant_id is a domain."""
        with self._lock:
            if self._failure is not None:
                raise AuthenticationError(str(self._failure))
            try:
                app = self._application()
            except AuthenticationError as exc:
                self._failure = exc
                raise
        endpoint = str(getattr(app.authority, "token_endpoint", "") or "")
        segments = [part for part in urlsplit(endpoint).path.split("/") if part]
        if segments and _GUID.match(segments[0]):
            return segments[0].lower()
        msg = (
            f"Entra ID did not name the GUID of tenant {self.tenant_id} (token endpoint "
            f"{endpoint or 'missing'}): set tenant_id to the Directory (tenant) ID from Entra ID "
            "> Overview"
        )
        raise AuthenticationError(msg)

    def invalidate_token(self) -> None:
        """Forget cached tokens, so the next request gets a new one (after a 401)."""
        with self._lock:
            if self._app is None:
                return
            cache = self._app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(item)
