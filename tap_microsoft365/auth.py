"""Entra ID app-only authentication (OAuth2 client credentials) through MSAL.

One `GraphAuthenticator` serves every stream of a run: one MSAL application, one token cache, so
one token is fetched and reused until MSAL renews it (MSAL serves a cached token only while more
than five minutes of its 60-90 minute life remain, so long runs renew before expiry). Token
failures become one line with Entra ID's AADSTS code, its trace and correlation ids, and the fix.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msal
import msal.authority
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from singer_sdk.authenticators import APIAuthenticatorBase

from tap_microsoft365 import redaction
from tap_microsoft365.errors import AuthenticationError, SettingsError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from typing_extensions import override
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override


@dataclass(frozen=True)
class Cloud:
    """The Entra ID and Graph hosts of one Microsoft cloud (graph-reference 1.1)."""

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

# What to do for the AADSTS codes an operator actually meets (graph-reference 1.5).
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


def describe_token_error(result: Mapping[str, Any], authority: str) -> str:
    """One line from an Entra ID token error body: code, fix, and the ids support asks for."""
    codes = result.get("error_codes") or []
    code = int(codes[0]) if codes else None
    fix = _AADSTS_FIXES.get(code) if code is not None else None
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


class GraphAuthenticator(APIAuthenticatorBase):
    """Adds an app-only Graph bearer token to each request."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        authority_host: str,
        graph_url: str,
        client_secret: str | None = None,
        client_certificate: ClientCertificate | None = None,
        timeout: float = 60,
    ) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self.scopes = [f"{graph_url.rstrip('/')}/.default"]
        self._client_secret = client_secret
        self._client_certificate = client_certificate
        self._timeout = timeout
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        redaction.register_secret(client_secret)
        if client_certificate:
            redaction.register_secret(client_certificate.password)

    def _application(self) -> msal.ConfidentialClientApplication:
        """The MSAL application, built on first use: building it fetches the OpenID metadata."""
        if self._app is None:
            credential: str | dict[str, str] = (
                self._client_certificate.as_msal_credential()
                if self._client_certificate
                else (self._client_secret or "")
            )
            host = urlsplit(self.authority).hostname or ""
            try:
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=credential,
                    authority=self.authority,
                    # Instance discovery asks login.microsoftonline.com about the host: only
                    # useful, and only reachable, for Microsoft's own authorities.
                    instance_discovery=None
                    if host in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS
                    else False,
                    # MSAL's default is no timeout at all.
                    timeout=self._timeout,
                )
            except ValueError:
                raise AuthenticationError(self._describe_discovery_failure()) from None
            except requests.exceptions.RequestException as exc:
                raise AuthenticationError(self._describe_network_failure(exc)) from None
        return self._app

    def _describe_discovery_failure(self) -> str:
        """MSAL hides the discovery error body; fetch it once to name the AADSTS code."""
        url = f"{self.authority}/v2.0/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=self._timeout)
            body = response.json()
        except (requests.exceptions.RequestException, ValueError):
            body = {}
        if isinstance(body, dict) and body.get("error"):
            return describe_token_error(body, self.authority)
        return (
            f"Entra ID has no OpenID configuration for {self.authority}: check tenant_id "
            "(Directory (tenant) ID from Entra ID > Overview) and the cloud/authority_host settings"
        )

    def _describe_network_failure(self, exc: requests.exceptions.RequestException) -> str:
        host = urlsplit(self.authority).netloc
        if isinstance(exc, requests.exceptions.SSLError):
            return (
                f"TLS verification failed for {host}: if a proxy inspects TLS, set "
                "REQUESTS_CA_BUNDLE to a file with its CA certificate"
            )
        return (
            f"Cannot reach Entra ID at {host} ({type(exc).__name__}): check the network, "
            "HTTPS_PROXY/NO_PROXY, and the cloud/authority_host settings"
        )

    @property
    def access_token(self) -> str:
        """A valid access token, from MSAL's cache while it has more than 5 minutes to live."""
        with self._lock:
            app = self._application()
            try:
                result = app.acquire_token_for_client(scopes=self.scopes)
            except requests.exceptions.RequestException as exc:
                raise AuthenticationError(self._describe_network_failure(exc)) from None
            except msal.exceptions.MsalServiceError as exc:
                msg = (
                    f"Entra ID failed to issue a token for {self.authority} ({exc.error}): "
                    "a service fault at Microsoft; run again later"
                )
                raise AuthenticationError(msg) from None
        token = result.get("access_token")
        if not token:
            raise AuthenticationError(describe_token_error(result, self.authority))
        redaction.register_secret(token)
        return str(token)

    def invalidate_token(self) -> None:
        """Forget cached tokens, so the next request gets a new one (after a 401)."""
        with self._lock:
            if self._app is None:
                return
            cache = self._app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(item)

    @override
    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        # Set the header only: the base class would re-encode the query string (sdk-notes G3).
        request.headers["Authorization"] = f"Bearer {self.access_token}"
        return request
