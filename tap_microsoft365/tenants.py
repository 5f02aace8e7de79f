"""The tenants of one run: their settings, their own request path, and their failures.

A run reads the tenants of the `tenants` setting, or the one top-level `tenant_id`. Whatever a
tenant leaves out comes from the top-level settings, so a multi-tenant app is the top-level
client_id and client_secret plus a list of tenant ids. Each tenant has its own `Transport` and
`GraphAuthenticator` (one MSAL token cache per tenant, so a token is never sent to another
tenant), and its records carry its GUID in `tenant_id`, even when it is configured by domain (the
GUID then comes from Entra ID's OpenID configuration for that domain).

With several tenants, one tenant's failure is its own: `TenantFailures` logs one ERROR line
naming the tenant and the cause, the tenant's remaining streams are skipped (its state keeps what
it had), the other tenants complete, and the run then ends with `TenantsFailedError`.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tap_microsoft365.errors import AuthenticationError, TenantsFailedError
from tap_microsoft365.graph.auth import CLOUDS, ClientCertificate, GraphAuthenticator
from tap_microsoft365.graph.transport import Transport
from tap_microsoft365.retries import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

LOGGER_NAME = "tap-microsoft365"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# What a `tenants` entry may set for itself; the rest comes from the top level.
CREDENTIALS = ("client_secret", "client_certificate_path", "client_certificate_password")
HOSTS = ("cloud", "authority_host", "graph_url")
INHERITED = ("client_id", *CREDENTIALS, *HOSTS)
# The state partition key of a tenant (the SDK's context: one state entry per tenant).
CONTEXT_KEY = "tenant_id"


@dataclass(frozen=True)
class TenantSettings:
    """One tenant's effective settings (its own, else the top-level ones)."""

    tenant_id: str  # as configured: a GUID or a verified domain
    name: str
    client_id: str
    client_secret: str | None = None
    client_certificate_path: str | None = None
    client_certificate_password: str | None = None
    cloud: str = "global"
    authority_host: str | None = None
    graph_url: str | None = None

    def __repr__(self) -> str:  # never show a secret
        return f"TenantSettings(tenant_id={self.tenant_id!r}, name={self.name!r})"

    @property
    def label(self) -> str:
        """'Contoso (<tenant id>)', or the tenant id alone when it has no name."""
        return f"{self.name} ({self.tenant_id})" if self.name else self.tenant_id


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def tenant_entries(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The `tenants` entries, or one made of the top-level tenant_id."""
    entries = config.get("tenants")
    if isinstance(entries, list) and entries:
        return [entry for entry in entries if isinstance(entry, dict)]
    return [{"tenant_id": config.get("tenant_id")}]


def effective(entry: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's settings with the top-level ones filling what it leaves out.

    A credential of its own (secret or certificate) replaces both top-level credentials, and a
    cloud of its own replaces the top-level host overrides.
    """
    merged: dict[str, Any] = {"tenant_id": _text(entry.get("tenant_id"))}
    own_credential = any(entry.get(key) for key in ("client_secret", "client_certificate_path"))
    own_cloud = bool(entry.get("cloud"))
    for key in INHERITED:
        value = entry.get(key)
        if value in (None, "") and not (
            (own_credential and key in CREDENTIALS) or (own_cloud and key in HOSTS[1:])
        ):
            value = config.get(key)
        merged[key] = value
    merged["name"] = _text(entry.get("name")) or ""
    return merged


def tenant_settings(config: Mapping[str, Any]) -> list[TenantSettings]:
    """Every tenant of the run, in the configured order."""
    found = []
    for entry in tenant_entries(config):
        merged = effective(entry, config)
        found.append(
            TenantSettings(
                tenant_id=merged["tenant_id"] or "",
                name=merged["name"],
                client_id=_text(merged["client_id"]) or "",
                client_secret=merged["client_secret"] or None,
                client_certificate_path=merged["client_certificate_path"] or None,
                client_certificate_password=merged["client_certificate_password"] or None,
                cloud=str(merged["cloud"] or "global"),
                authority_host=merged["authority_host"] or None,
                graph_url=merged["graph_url"] or None,
            )
        )
    return found


class Tenant:
    """One tenant of the run: its settings, its request path (built on first use), its GUID."""

    def __init__(self, settings: TenantSettings, config: Mapping[str, Any]) -> None:
        self.settings = settings
        self._config = config
        self._lock = threading.Lock()
        self._guid: str | None = None

    @property
    def key(self) -> str:
        """The tenant as configured: its state partition's key."""
        return self.settings.tenant_id

    @property
    def label(self) -> str:
        """Name and id, for log lines."""
        return self.settings.label

    @property
    def cloud(self) -> str:
        """The tenant's cloud."""
        return self.settings.cloud

    @property
    def authority_host(self) -> str:
        """The Entra ID host: the override, or the cloud's."""
        host = self.settings.authority_host or CLOUDS[self.cloud].authority_host
        return host.rstrip("/")

    @property
    def graph_url(self) -> str:
        """The Graph host: the override, or the cloud's."""
        return (self.settings.graph_url or CLOUDS[self.cloud].graph_url).rstrip("/")

    @cached_property
    def client_certificate(self) -> ClientCertificate | None:
        """The certificate credential, read and checked once; None with a client secret."""
        path = self.settings.client_certificate_path
        if not path:
            return None
        return ClientCertificate.load(path, self.settings.client_certificate_password)

    @cached_property
    def transport(self) -> Transport:
        """The tenant's request path: its sessions, its token (its own MSAL cache), retries."""
        transport = Transport(
            graph_url=self.graph_url,
            timeout=float(self._config.get("request_timeout", 300)),
            policy=RetryPolicy.from_config(self._config),
        )
        transport.authenticator = GraphAuthenticator(
            tenant_id=self.settings.tenant_id,
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            client_certificate=self.client_certificate,
            authority_host=self.authority_host,
            graph_url=self.graph_url,
            transport=transport,
        )
        return transport

    @property
    def guid(self) -> str:
        """The tenant's id as a GUID (lower case, as Entra ID writes it in tokens)."""
        with self._lock:
            if self._guid is None:
                if GUID.match(self.key):
                    self._guid = self.key.lower()
                else:
                    authenticator = self.transport.authenticator
                    assert isinstance(authenticator, GraphAuthenticator)  # noqa: S101 - built above
                    self._guid = authenticator.resolved_tenant_id()
            return self._guid


class TenantFailures:
    """Which tenants failed in this run, each said once in an ERROR line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[str, tuple[Tenant, str]] = {}
        self.logger = logging.getLogger(LOGGER_NAME)

    def fail(self, tenant: Tenant, error: BaseException, stream: str) -> None:
        """Record a tenant's failure; log it the first time."""
        with self._lock:
            if tenant.key in self._failed:
                return
            self._failed[tenant.key] = (tenant, str(error))
        what = "cannot sign in" if isinstance(error, AuthenticationError) else f"failed in {stream}"
        self.logger.error(
            "tenant %s %s: %s; its other streams are skipped and its state stays as it was "
            "(the other tenants go on)",
            tenant.label,
            what,
            error,
        )

    def failed(self, tenant: Tenant) -> bool:
        """Whether the tenant has failed in this run."""
        with self._lock:
            return tenant.key in self._failed

    def error(self, total: int) -> TenantsFailedError | None:
        """The run's closing error when any tenant failed."""
        with self._lock:
            failed = [tenant for tenant, _ in self._failed.values()]
        if not failed:
            return None
        names = ", ".join(tenant.label for tenant in failed)
        msg = (
            f"{len(failed)} of {total} tenants failed: {names}; the other tenants completed "
            "(each failure's cause is in its own ERROR line above)"
        )
        return TenantsFailedError(msg)


class Tenants:
    """The run's tenants, in the configured order, and their failures."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.partitioned = bool(config.get("tenants"))
        self._tenants = {s.tenant_id: Tenant(s, config) for s in tenant_settings(config)}
        self.failures = TenantFailures()

    def __iter__(self) -> Iterator[Tenant]:
        return iter(self._tenants.values())

    def __len__(self) -> int:
        return len(self._tenants)

    @property
    def last(self) -> Tenant:
        """The last tenant: a stream has read every tenant after its partition."""
        return next(reversed(self._tenants.values()))

    @property
    def complete(self) -> bool:
        """Whether no tenant has failed so far in this run."""
        return self.failures.error(len(self._tenants)) is None

    @property
    def first(self) -> Tenant:
        """The first tenant (its request path also fetches the product names)."""
        return next(iter(self._tenants.values()))

    def of(self, context: Mapping[str, Any] | None) -> Tenant:
        """The tenant a stream context stands for (no context: the only tenant)."""
        if context is None or CONTEXT_KEY not in context:
            return self.first
        return self._tenants[str(context[CONTEXT_KEY])]

    def contexts(self) -> list[dict[str, Any]] | None:
        """One stream context per tenant; None with the top-level tenant alone (its state then
        stays where single-tenant runs always kept it)."""
        if not self.partitioned:
            return None
        return [{CONTEXT_KEY: tenant.key} for tenant in self]

    @property
    def isolated(self) -> bool:
        """Whether one tenant's failure is its own (several tenants) or ends the run."""
        return len(self._tenants) > 1

    def closing_error(self) -> TenantsFailedError | None:
        """The error the run ends with when any tenant failed."""
        return self.failures.error(len(self._tenants))
