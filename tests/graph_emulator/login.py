"""The Entra ID (v2.0) login host: OIDC discovery, instance discovery and the token endpoint.

Only the client-credentials grant exists here, with a client secret (form field or HTTP Basic) or
a certificate-signed client assertion (RS256 with x5t, or PS256 with x5t#S256, as msal sends).
Error bodies follow Entra's documented shape (reference-error-codes.md): `error`,
`error_description` starting "AADSTSnnn:" and ending with Trace ID / Correlation ID / Timestamp
lines, `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`.

Several tenants can be served (`TenantSite`): the tenant named in the token URL decides which
app registration, which granted roles and which consent apply, and the issued token carries that
tenant's id (the `tid` claim), which decides whose data Graph answers with.

Statuses: 7000215/7000222 (wrong/expired secret) 401 invalid_client; 700016 (unknown client) 400
unauthorized_client; 65001 (no administrator of the tenant consented to the app) 400 invalid_grant
with suberror consent_required, the body a real token request got
(https://github.com/MicrosoftDocs/azure-docs/issues/39189); 90002 (unknown tenant) 400; 70011
(bad scope) 400 invalid_scope; 700027 (bad certificate assertion) 401 invalid_client; 7000218 (no
credential) 401 invalid_client - public captures of real responses show invalid_client/401 for
it, not the 400 invalid_request the shared reference guessed (marked unconfirmed there).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from .http import EmulatorRequest, EmulatorResponse

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cryptography import x509

    from .tenant import Tenant

DEFAULT_ROLES = frozenset(
    {"Directory.Read.All", "Organization.Read.All", "User.Read.All", "Reports.Read.All"}
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DNS = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_CLOCK_SKEW = 300


@dataclass
class AppRegistration:
    """The app registration (and its service principal) the tap signs in as.

    `roles` are the application permissions granted with admin consent; a token carries the
    roles held when it was issued. `secret_expired` makes the (correct) secret fail with
    AADSTS7000222. `token_lifetime` is the `expires_in` of new tokens, in seconds.
    """

    client_id: str
    secret_value: str
    secret_id: str
    roles: set[str] = field(default_factory=lambda: set(DEFAULT_ROLES))
    secret_expired: bool = False
    token_lifetime: int = 3599
    display_name: str = "tap-microsoft365"
    certificates: list[x509.Certificate] = field(default_factory=list)

    def __repr__(self) -> str:  # never show the secret in test output or logs
        return f"AppRegistration(client_id={self.client_id!r}, roles={sorted(self.roles)!r})"


@dataclass(eq=False)
class TenantSite:
    """One tenant the emulator serves, and the app's standing in it.

    `app` is the registration the tap signs in with there: the emulator's multi-tenant app unless
    the tenant has one of its own. `roles` are the application permissions this tenant's
    administrator granted (admin consent is recorded per tenant, so one tenant may grant less);
    None: whatever `app.roles` holds at the time. `consented` False: nobody in this tenant ever
    consented to the app, and Entra ID refuses every token request for it with AADSTS65001.
    """

    tenant: Tenant
    app: AppRegistration
    roles: set[str] | None = None
    consented: bool = True

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def granted(self) -> frozenset[str]:
        """The roles a token issued now for this tenant carries."""
        return frozenset(self.app.roles if self.roles is None else self.roles)


@dataclass(frozen=True)
class TokenInfo:
    """What the emulator remembers about an access token it issued."""

    client_id: str
    roles: frozenset[str]
    expires_at: float  # time.time()
    tenant_id: str = ""  # the token's tid claim: whose data Graph answers with ("" = first tenant)


class TokenStore:
    """Issued access tokens (opaque random strings), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenInfo] = {}

    def issue(
        self, client_id: str, roles: frozenset[str], lifetime: int, tenant_id: str = ""
    ) -> str:
        """A new opaque token valid for `lifetime` seconds, for tenant `tenant_id`."""
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = TokenInfo(client_id, roles, time.time() + lifetime, tenant_id)
        return token

    def lookup(self, token: str) -> TokenInfo | None:
        """The token's record, or None if the emulator never issued it."""
        with self._lock:
            return self._tokens.get(token)

    def all(self) -> list[str]:
        """Every token issued so far."""
        with self._lock:
            return list(self._tokens)

    def expire_all(self) -> None:
        """Make every issued token expired (Graph then answers 401)."""
        with self._lock:
            for token, info in self._tokens.items():
                self._tokens[token] = dataclasses.replace(info, expires_at=0.0)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def aad_error(
    status: int,
    error: str,
    code: int,
    text: str,
    request: EmulatorRequest,
    *,
    error_uri_host: str = "https://login.microsoftonline.com",
    headers: dict[str, str] | None = None,
    suberror: str | None = None,
) -> EmulatorResponse:
    """An Entra error response in the documented shape."""
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: "
            f"{correlation_id}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{error_uri_host}/error?code={code}",
    }
    if suberror:
        body["suberror"] = suberror
    all_headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "x-ms-request-id": trace_id,
        "client-request-id": correlation_id,
    }
    all_headers.update(headers or {})
    return EmulatorResponse(status, all_headers, json.dumps(body).encode())


def _json(status: int, payload: Any, request: EmulatorRequest) -> EmulatorResponse:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "x-ms-request-id": request.request_id,
    }
    if "client-request-id" in request.headers:
        headers["client-request-id"] = request.headers["client-request-id"]
    return EmulatorResponse(status, headers, json.dumps(payload).encode())


class LoginService:
    """Answers every request of the login listener."""

    def __init__(
        self,
        tenant: Tenant,
        app: AppRegistration,
        tokens: TokenStore,
        *,
        authority_host: str,
        graph_url: str,
        sites: Mapping[str, TenantSite] | None = None,
    ) -> None:
        self.tenant = tenant
        self.app = app
        self.tokens = tokens
        self.authority_host = authority_host
        self.graph_url = graph_url
        # Every tenant served, by id (the first one is `tenant`, with `app` and its roles).
        self.sites: Mapping[str, TenantSite] = (
            sites if sites is not None else {tenant.tenant_id: TenantSite(tenant, app)}
        )

    # ----------------------------------------------------------------- helpers

    def _error(
        self,
        status: int,
        error: str,
        code: int,
        text: str,
        request: EmulatorRequest,
        *,
        suberror: str | None = None,
    ) -> EmulatorResponse:
        return aad_error(
            status,
            error,
            code,
            text,
            request,
            error_uri_host=self.authority_host,
            suberror=suberror,
        )

    def _resolve_tenant(self, name: str) -> tuple[str | None, tuple[int, str] | None]:
        """(tenant id, None) for a tenant served here, else (None, (AADSTS code, message))."""
        lowered = name.lower()
        if _GUID.match(name):
            for site in list(self.sites.values()):
                if lowered == site.tenant.tenant_id.lower():
                    return site.tenant.tenant_id, None
        elif _DNS.match(name):
            for site in list(self.sites.values()):
                if lowered in (site.tenant.domain.lower(), site.tenant.default_domain.lower()):
                    return site.tenant.tenant_id, None
        else:
            return None, (
                900023,
                f"Specified tenant identifier '{name}' is neither a valid DNS name, nor a valid "
                "external domain.",
            )
        return None, (
            90002,
            f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant.",
        )

    # ----------------------------------------------------------------- routing

    def handle(
        self, request: EmulatorRequest, *, token_lifetime: int | None = None
    ) -> EmulatorResponse:
        """Route one login-host request; `token_lifetime` overrides the app's for new tokens."""
        parts = [p for p in request.path.split("/") if p]  # msal may send a doubled slash
        if parts[:2] == ["common", "discovery"] and parts[2:] == ["instance"]:
            return self._instance_discovery(request)
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self._openid_configuration(parts[0], request)
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            if request.method != "POST":
                return self._error(
                    400,
                    "invalid_request",
                    900561,
                    "The endpoint only accepts POST requests. Received a GET request.",
                    request,
                )
            return self._token(parts[0], request, token_lifetime)
        return EmulatorResponse(404, {"Content-Type": "text/plain"}, b"Not Found")

    def _openid_configuration(self, tenant: str, request: EmulatorRequest) -> EmulatorResponse:
        tid: str | None = "{tenantid}"
        if tenant.lower() not in ("common", "organizations"):
            tid, problem = self._resolve_tenant(tenant)
            if problem is not None:
                return self._error(400, "invalid_tenant", problem[0], problem[1], request)
        base = f"{self.authority_host}/{tid}"
        return _json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{self.authority_host}/{tid}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{self.authority_host}/{tid}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "NA",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": urlsplit(self.graph_url).netloc,
                "rbac_url": "https://pas.windows.net",
            },
            request,
        )

    def _instance_discovery(self, request: EmulatorRequest) -> EmulatorResponse:
        version = request.query.get("api-version", "1.0")
        endpoint = request.query.get("authorization_endpoint", "")
        host = urlsplit(self.authority_host).netloc
        split = urlsplit(endpoint)
        if split.netloc and split.netloc != host:
            return _json(
                400,
                {
                    "error": "invalid_instance",
                    "error_description": "AADSTS50049: Unknown or invalid instance.",
                    "error_codes": [50049],
                },
                request,
            )
        segments = [p for p in split.path.split("/") if p]
        tenant = segments[0] if segments else "common"
        return _json(
            200,
            {
                "tenant_discovery_endpoint": (
                    f"{self.authority_host}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": version,
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            },
            request,
        )

    # ----------------------------------------------------------------- token endpoint

    def _token(  # noqa: PLR0911 - one return per documented error
        self, tenant_name: str, request: EmulatorRequest, lifetime_override: int | None
    ) -> EmulatorResponse:
        tenant_id, problem = self._resolve_tenant(tenant_name)
        if problem is not None or tenant_id is None:
            code, text = problem or (90002, f"Tenant '{tenant_name}' not found.")
            return self._error(400, "invalid_request", code, text, request)
        site = self.sites[tenant_id]
        app = site.app
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        basic_id, basic_secret = self._basic_credentials(request)
        grant = form.get("grant_type")
        if not grant:
            return self._missing("grant_type", request)
        if grant != "client_credentials":
            return self._error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
                request,
            )
        client_id = form.get("client_id") or basic_id
        if not client_id:
            return self._missing("client_id", request)
        if client_id.lower() != app.client_id.lower():
            return self._error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{site.tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
                request,
            )
        secret = form.get("client_secret") or basic_secret
        assertion = form.get("client_assertion")
        if assertion:
            failure = self._check_assertion(app, form, assertion, tenant_id, request)
            if failure is not None:
                return failure
        elif secret:
            if not secrets.compare_digest(secret.encode(), app.secret_value.encode()):
                return self._error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app.client_id}'.",
                    request,
                )
            if app.secret_expired:
                return self._error(
                    401,
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{app.client_id}' are "
                    "expired. Visit the Azure portal to create new keys for your app: "
                    "https://aka.ms/NewClientSecret, or consider using certificate credentials "
                    "for added security: https://aka.ms/certCreds.",
                    request,
                )
        else:
            return self._error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
                request,
            )
        scope = form.get("scope")
        if not scope:
            return self._missing("scope", request)
        wanted = f"{self.graph_url}/.default"
        if scope.split() != [wanted]:
            return self._error(
                400,
                "invalid_scope",
                70011,
                "The provided request must include a 'scope' input parameter. The provided value "
                f"for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
                request,
            )
        if not site.consented:
            return self._error(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{app.client_id}' named '{app.display_name}'. Send an interactive "
                "authorization request for this user and resource.",
                request,
                suberror="consent_required",
            )
        lifetime = app.token_lifetime if lifetime_override is None else lifetime_override
        token = self.tokens.issue(app.client_id, site.granted, lifetime, tenant_id)
        return _json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
            request,
        )

    def _missing(self, name: str, request: EmulatorRequest) -> EmulatorResponse:
        return self._error(
            400,
            "invalid_request",
            900144,
            f"The request body must contain the following parameter: '{name}'.",
            request,
        )

    @staticmethod
    def _basic_credentials(request: EmulatorRequest) -> tuple[str | None, str | None]:
        value = request.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None, None
        try:
            decoded = base64.b64decode(value[6:].strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return unquote_plus(client_id), unquote_plus(secret)

    def _assertion_error(self, code: int, text: str, request: EmulatorRequest) -> EmulatorResponse:
        return self._error(401, "invalid_client", code, text, request)

    def _check_assertion(  # noqa: PLR0911 - one return per documented error
        self,
        app: AppRegistration,
        form: dict[str, str],
        assertion: str,
        tenant_id: str,
        request: EmulatorRequest,
    ) -> EmulatorResponse | None:
        if form.get("client_assertion_type") != _JWT_BEARER:
            return self._error(
                400,
                "invalid_request",
                700022,
                f"The client_assertion_type parameter must be '{_JWT_BEARER}'.",
                request,
            )
        try:
            head_b64, body_b64, sig_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(head_b64))
            claims = json.loads(_b64url_decode(body_b64))
            signature = _b64url_decode(sig_b64)
        except (ValueError, binascii.Error):
            return self._assertion_error(
                700027, "Client assertion contains an invalid signature.", request
            )
        alg = header.get("alg")
        cert = None
        # msal sends the thumbprints base64url-encoded with padding; RFC 7515 omits it.
        x5t = str(header.get("x5t", "")).rstrip("=")
        x5t_s256 = str(header.get("x5t#S256", "")).rstrip("=")
        for candidate in app.certificates:
            der = candidate.public_bytes(Encoding.DER)
            sha1 = _b64url(hashlib.sha1(der).digest())  # noqa: S324 - x5t is SHA-1 by definition
            if x5t == sha1 or x5t_s256 == _b64url(hashlib.sha256(der).digest()):
                cert = candidate
                break
        if cert is None:
            return self._assertion_error(
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                "registered on application. [Reason - The key was not found.]",
                request,
            )
        key = cert.public_key()
        signed = f"{head_b64}.{body_b64}".encode()
        try:
            if not isinstance(key, rsa.RSAPublicKey):
                raise InvalidSignature
            if alg == "RS256":
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            elif alg == "PS256":
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                key.verify(signature, signed, pss, hashes.SHA256())
            else:
                raise InvalidSignature
        except InvalidSignature:
            return self._assertion_error(
                700027, "Client assertion failed signature validation.", request
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return self._assertion_error(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
                request,
            )
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(self._token_audience(str(a), tenant_id) for a in audiences):
            return self._assertion_error(
                700027,
                f"Client assertion audience claim does not match Realm issuer. Audience: "
                f"'{audience}'.",
                request,
            )
        now = time.time()
        exp = claims.get("exp")
        nbf = claims.get("nbf", 0)
        if not isinstance(exp, int | float) or exp + _CLOCK_SKEW < now or nbf - _CLOCK_SKEW > now:
            return self._assertion_error(
                700024,
                "Client assertion is not within its valid time range. Current time: "
                f"{datetime.now(UTC).isoformat()}, expiry time of assertion {exp}.",
                request,
            )
        return None

    def _token_audience(self, audience: str, tenant_id: str) -> bool:
        split = urlsplit(audience)
        if f"{split.scheme}://{split.netloc}" != self.authority_host:
            return False
        parts = [p for p in split.path.split("/") if p]
        if parts[1:] not in (["oauth2", "v2.0", "token"], ["oauth2", "token"]):
            return False
        resolved, _ = self._resolve_tenant(parts[0])
        return resolved == tenant_id
