"""The tap: its settings, their validation, and its streams."""

from __future__ import annotations

import datetime
import logging
import re
import sys
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_microsoft365 import redaction
from tap_microsoft365.errors import Microsoft365Error, SettingsError
from tap_microsoft365.graph.auth import CLOUDS, ClientCertificate, GraphAuthenticator
from tap_microsoft365.graph.transport import Transport
from tap_microsoft365.product_names import DEFAULT_CACHE_HOURS, DEFAULT_URL, ProductNameCatalog
from tap_microsoft365.retries import RetryPolicy
from tap_microsoft365.streams.directory import DIRECTORY_STREAMS
from tap_microsoft365.streams.licensing import LicenseAssignmentsStream
from tap_microsoft365.streams.reports.definitions import REPORTS
from tap_microsoft365.streams.reports.fetcher import ReportFetcher
from tap_microsoft365.streams.reports.stream import ReportStream, report_streams
from tap_microsoft365.streams.sign_in_activity import UserSignInActivityStream
from tap_microsoft365.writer import GraphSingerWriter

if TYPE_CHECKING:
    from collections.abc import Mapping

    from singer_sdk.streams import Stream
    from typing_extensions import override
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

GUID_PATTERN = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
DOMAIN_PATTERN = re.compile(
    r"^(?=.{4,253}$)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$"
)
OVERVIEW = "Entra ID > App registrations > your app > Overview"


def validate_settings(config: Mapping[str, Any]) -> None:
    """Check the settings before any network call; raise one `SettingsError` line per problem.

    JSON-schema validation (types) follows in the SDK; these checks give the operator the
    setting's name, what is wrong and where in the Azure portal the right value is.
    """
    tenant_id = str(config.get("tenant_id") or "").strip()
    if not tenant_id:
        msg = f"tenant_id is missing: set it to the Directory (tenant) ID shown in {OVERVIEW}"
        raise SettingsError(msg)
    if not (GUID_PATTERN.match(tenant_id) or DOMAIN_PATTERN.match(tenant_id)):
        msg = (
            f"tenant_id '{tenant_id}' is neither a GUID nor a domain: set it to the Directory "
            f"(tenant) ID shown in {OVERVIEW}, or a verified domain such as "
            "contoso.onmicrosoft.com"
        )
        raise SettingsError(msg)
    client_id = str(config.get("client_id") or "").strip()
    if not client_id:
        msg = f"client_id is missing: set it to the Application (client) ID shown in {OVERVIEW}"
        raise SettingsError(msg)
    if not GUID_PATTERN.match(client_id):
        msg = (
            f"client_id '{client_id}' is not a GUID: copy the Application (client) ID shown in "
            f"{OVERVIEW} (not the app's name or the secret's ID)"
        )
        raise SettingsError(msg)
    has_secret = bool(config.get("client_secret"))
    has_certificate = bool(config.get("client_certificate_path"))
    if has_secret == has_certificate:
        msg = (
            "client_secret and client_certificate_path are both set: keep exactly one credential"
            if has_secret
            else "no credential: set client_secret (Certificates & secrets > New client secret "
            "> copy its Value) or client_certificate_path (a PEM with key and certificate)"
        )
        raise SettingsError(msg)
    if config.get("client_certificate_password") and not has_certificate:
        msg = "client_certificate_password is set without client_certificate_path: remove it"
        raise SettingsError(msg)
    cloud = config.get("cloud", "global")
    if cloud not in CLOUDS:
        msg = f"cloud '{cloud}' is unknown: use one of {', '.join(CLOUDS)}"
        raise SettingsError(msg)
    for setting in ("authority_host", "graph_url"):
        value = config.get(setting)
        if value and not str(value).startswith("https://"):
            msg = f"{setting} '{value}' must be an https:// URL (Entra ID and Graph speak only TLS)"
            raise SettingsError(msg)
    page_size = config.get("page_size", 999)
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= 999:
        msg = f"page_size {page_size!r} is out of range: Graph accepts 1 to 999 (999 is fastest)"
        raise SettingsError(msg)
    for setting in (
        "request_timeout",
        "retry_max_attempts",
        "retry_max_wait_seconds",
        "report_calls_per_window",
        "report_window_seconds",
        "report_concurrency",
        "report_spool_limit_mb",
    ):
        value = config.get(setting)
        # The SDK reads JSON numbers with a fraction as Decimal.
        if value is not None and (not isinstance(value, int | float | Decimal) or value <= 0):
            msg = f"{setting} {value!r} must be a positive number"
            raise SettingsError(msg)
    check_start_date(config.get("start_date"))


def check_start_date(value: Any) -> None:
    """start_date must be a day (YYYY-MM-DD, or an ISO date-time whose day is used)."""
    try:
        if value is not None:
            datetime.date.fromisoformat(str(value)[:10])
    except ValueError:
        msg = f"start_date {value!r} is not a date: use YYYY-MM-DD, such as 2026-11-01"
        raise SettingsError(msg) from None


class TapMicrosoft365(Tap):
    """Microsoft 365 licensing and usage from Microsoft Graph."""

    name = "tap-microsoft365"
    package_name = "tap-microsoft365"
    # The SDK's JSON lines, written faster (writer.py).
    message_writer_class = GraphSingerWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "tenant_id",
            th.StringType,
            required=True,
            title="Tenant ID",
            description="Directory (tenant) ID, a GUID from Entra ID > Overview, or a verified "
            "domain such as contoso.onmicrosoft.com.",
        ),
        th.Property(
            "client_id",
            th.StringType,
            required=True,
            title="Client ID",
            description="Application (client) ID of the app registration, a GUID from "
            "App registrations > your app > Overview.",
        ),
        th.Property(
            "client_secret",
            th.StringType,
            secret=True,
            title="Client secret",
            description="Secret. The client secret's Value (not its Secret ID), from "
            "Certificates & secrets. Set this or client_certificate_path, not both.",
        ),
        th.Property(
            "client_certificate_path",
            th.StringType,
            title="Client certificate path",
            description="Path to a PEM file holding the private key and the certificate "
            "uploaded to the app registration (MSAL computes the thumbprint). The alternative "
            "to client_secret.",
        ),
        th.Property(
            "client_certificate_password",
            th.StringType,
            secret=True,
            title="Client certificate password",
            description="Secret. Passphrase of the private key in client_certificate_path, if "
            "it is encrypted.",
        ),
        th.Property(
            "cloud",
            th.StringType,
            default="global",
            allowed_values=list(CLOUDS),
            title="Cloud",
            description="Microsoft cloud of the tenant: global (including GCC), usgov (GCC "
            "High), usgov_dod (DoD) or china (21Vianet). Selects the Entra ID and Graph hosts.",
        ),
        th.Property(
            "authority_host",
            th.StringType,
            title="Authority host",
            description="Override of the Entra ID host, e.g. https://login.microsoftonline.com "
            "(sovereign or custom endpoints, test emulators). Defaults to the cloud's.",
        ),
        th.Property(
            "graph_url",
            th.StringType,
            title="Graph URL",
            description="Override of the Microsoft Graph host, e.g. https://graph.microsoft.com "
            "(without /v1.0). Defaults to the cloud's.",
        ),
        th.Property(
            "start_date",
            th.DateType,
            title="Start date",
            description="Earliest day of usage-report data to extract (YYYY-MM-DD). Graph keeps "
            "only the last 28 days, so earlier dates are clamped to that window.",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            default=999,
            title="Page size",
            description="Objects per Graph page ($top), 1 to 999. 999 makes the fewest requests.",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType,
            default=300,
            title="Request timeout",
            description="Seconds to wait for one HTTP response before retrying it.",
        ),
        th.Property(
            "retry_max_attempts",
            th.IntegerType,
            default=8,
            title="Retry attempts",
            description="Attempts per request on throttling (429) and transient faults "
            "(5xx, resets, timeouts) before the run fails.",
        ),
        th.Property(
            "retry_max_wait_seconds",
            th.IntegerType,
            default=900,
            title="Retry wait limit",
            description="Longest total time, in seconds, spent waiting and retrying one request.",
        ),
        th.Property(
            "skip_forbidden_streams",
            th.BooleanType,
            default=False,
            title="Skip streams the app may not read",
            description="When Graph refuses a stream for lack of an application permission "
            "(403), log one warning naming the permission and carry on with the other streams, "
            "instead of failing the run (the default).",
        ),
        th.Property(
            "concealed_names",
            th.StringType,
            default="warn",
            allowed_values=["warn", "error"],
            title="Concealed names in reports",
            description="What to do when usage reports conceal user, group and site names "
            "(the tenant default since 2021): warn logs one warning per run and extracts the "
            "hashed ids; error stops the run. Either way the message names the admin center "
            "setting that shows real names.",
        ),
        th.Property(
            "report_calls_per_window",
            th.IntegerType,
            default=14,
            title="Report calls per window",
            description="Calls per report function allowed in report_window_seconds. Graph "
            "allows 14 per 10 minutes per app and tenant; lower it when another tool uses the "
            "same app registration's budget.",
        ),
        th.Property(
            "report_window_seconds",
            th.NumberType,
            default=600,
            title="Report pacing window",
            description="Length, in seconds, of the window report_calls_per_window applies to "
            "(Graph's is 10 minutes).",
        ),
        th.Property(
            "report_concurrency",
            th.IntegerType,
            default=8,
            title="Report downloads at once",
            description="Report files fetched at the same time. Each report paces its own "
            "calls; this only caps parallel transfers.",
        ),
        th.Property(
            "report_spool_limit_mb",
            th.IntegerType,
            default=2048,
            title="Report spool limit",
            description="Report files (gzip-compressed, in TMPDIR) fetched ahead of their "
            "stream are held to about this many megabytes; reports then wait their turn.",
        ),
        th.Property(
            "product_names_url",
            th.StringType,
            default=DEFAULT_URL,
            title="Product names URL",
            description="Where to download Microsoft's 'Product names and service plan "
            "identifiers for licensing' CSV, which gives SKUs and service plans their names "
            "(e.g. SPE_E5 -> Microsoft 365 E5). Read at most once per run and cached. Empty: "
            "no names.",
        ),
        th.Property(
            "product_names_path",
            th.StringType,
            title="Product names file",
            description="A local copy of that CSV, for networks without internet access: read "
            "instead of downloading.",
        ),
        th.Property(
            "product_names_cache_dir",
            th.StringType,
            title="Product names cache folder",
            description="Folder keeping the downloaded CSV between runs. Defaults to "
            "$XDG_CACHE_HOME/tap-microsoft365 (~/.cache/tap-microsoft365).",
        ),
        th.Property(
            "product_names_cache_hours",
            th.IntegerType,
            default=DEFAULT_CACHE_HOURS,
            title="Product names cache hours",
            description="Hours a downloaded CSV is used before it is downloaded again (a "
            "failed download falls back to the older copy). 0 downloads on every run.",
        ),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        redaction.install()
        config = kwargs.get("config")
        if kwargs.get("validate_config", True) and isinstance(config, dict):
            # Secrets are registered before the SDK can log anything about this config.
            redaction.register_secret(config.get("client_secret"))
            redaction.register_secret(config.get("client_certificate_password"))
        super().__init__(*args, **kwargs)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        redaction.register_secret(self.config.get("client_secret"))
        redaction.register_secret(self.config.get("client_certificate_password"))
        if raise_errors:
            validate_settings(self.config)
            if self.config.get("client_certificate_path"):
                _ = self.client_certificate  # an unreadable file is a settings error too
        try:
            return super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            # A setting of the wrong JSON type: one line (exit 2), not the SDK's two (exit 1).
            problems = "; ".join(str(error) for error in exc.errors) or str(exc)
            msg = f"invalid settings: {problems}"
            raise SettingsError(msg) from None

    @property
    def cloud(self) -> str:
        """The configured cloud's name."""
        return str(self.config.get("cloud") or "global")

    @property
    def authority_host(self) -> str:
        """The Entra ID host: the override, or the cloud's."""
        host = self.config.get("authority_host") or CLOUDS[self.cloud].authority_host
        return str(host).rstrip("/")

    @property
    def graph_url(self) -> str:
        """The Graph host: the override, or the cloud's."""
        return str(self.config.get("graph_url") or CLOUDS[self.cloud].graph_url).rstrip("/")

    @cached_property
    def client_certificate(self) -> ClientCertificate | None:
        """The certificate credential, read and checked once; None with a client secret."""
        path = self.config.get("client_certificate_path")
        if not path:
            return None
        return ClientCertificate.load(path, self.config.get("client_certificate_password"))

    @cached_property
    def transport(self) -> Transport:
        """The run's one request path: sessions, bearer header, retries, Graph's errors."""
        transport = Transport(
            graph_url=self.graph_url,
            timeout=float(self.config.get("request_timeout", 300)),
            policy=RetryPolicy.from_config(self.config),
        )
        transport.authenticator = GraphAuthenticator(
            tenant_id=self.config["tenant_id"].strip(),
            client_id=self.config["client_id"].strip(),
            client_secret=self.config.get("client_secret"),
            client_certificate=self.client_certificate,
            authority_host=self.authority_host,
            graph_url=self.graph_url,
            transport=transport,
        )
        return transport

    @cached_property
    def product_names(self) -> ProductNameCatalog:
        """Microsoft's product and service plan names: loaded on first use, once per run."""
        return ProductNameCatalog(self.config, self.logger, self.transport)

    @cached_property
    def report_fetcher(self) -> ReportFetcher:
        """One fetcher for every report stream of the run: fetches their days concurrently."""
        return ReportFetcher(
            self.config,
            self.transport,
            has_usage_reports=CLOUDS[self.cloud].has_usage_reports,
            cloud=self.cloud,
            streams=lambda: [s for s in self.streams.values() if isinstance(s, ReportStream)],
        )

    @override
    def discover_streams(self) -> list[Stream]:
        # The tap itself provides the streams' shared services (transport, product names,
        # report fetcher), each built on first use.
        return [
            *(stream_class(tap=self, services=self) for stream_class in DIRECTORY_STREAMS),
            LicenseAssignmentsStream(tap=self, services=self),
            *report_streams(self, self, REPORTS),
            UserSignInActivityStream(tap=self, services=self),
        ]


def main() -> None:
    """The `tap-microsoft365` command: the SDK's CLI, with operator errors as one line."""
    redaction.install()
    try:
        TapMicrosoft365.cli()
    except Microsoft365Error as exc:
        logging.getLogger(TapMicrosoft365.name).error("%s", exc)
        sys.exit(exc.exit_code)
