"""The tap: its settings, their validation, and its streams."""

from __future__ import annotations

import logging
import os
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk import Tap

from tap_microsoft365 import redaction, settings
from tap_microsoft365.auth import CLOUDS, ClientCertificate, GraphAuthenticator
from tap_microsoft365.errors import Microsoft365Error, SettingsError
from tap_microsoft365.product_names import ProductNameCatalog
from tap_microsoft365.report_scheduler import ReportScheduler
from tap_microsoft365.retries import RetryPolicy
from tap_microsoft365.streams.directory import DIRECTORY_STREAMS
from tap_microsoft365.streams.licensing import LicenseAssignmentsStream
from tap_microsoft365.streams.reports import report_streams
from tap_microsoft365.writer import GraphSingerWriter

if TYPE_CHECKING:
    from singer_sdk.streams import Stream
    from typing_extensions import override
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override


class TapMicrosoft365(Tap):
    """Microsoft 365 licensing and usage from Microsoft Graph."""

    name = "tap-microsoft365"
    package_name = "tap-microsoft365"
    # The SDK's JSON lines, written faster (writer.py).
    message_writer_class = GraphSingerWriter

    # Every rule about one setting is in this schema (settings.py), so --about shows it.
    config_jsonschema = settings.CONFIG_SCHEMA

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        redaction.install()
        redaction.protect_handlers()  # the handlers the SDK's CLI set up, for `extra=` fields
        config = kwargs.get("config")
        if isinstance(config, dict):
            if kwargs.get("parse_env_config"):
                # Read TAP_MICROSOFT365_* here, not in the SDK: its reader stops with a
                # traceback on a number that does not parse and leaves number settings as text.
                prefix = f"{self.name.upper().replace('-', '_')}_"
                env = settings.environment_config(self.config_jsonschema, prefix)
                config = {**config, **env}
                kwargs["parse_env_config"] = False
                self.logger.info("Read settings from %s* environment variables", prefix)
            kwargs["config"] = config = settings.normalized(config)
            # Secrets (of any type) are registered before the SDK can log anything about them.
            for secret in settings.secret_values(config):
                redaction.register_secret(secret)
        super().__init__(*args, **kwargs)

    # `_validate_config` is the SDK's private hook (singer-sdk 0.54.9) run by the constructor:
    # the only place to check settings before anything else runs and to report every problem of
    # the config in one line (the SDK logs one line per schema error, values included, exit 1).
    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        for secret in settings.secret_values(self.config):
            redaction.register_secret(secret)
        schema = {
            **self.config_jsonschema,
            "properties": dict(self.config_jsonschema["properties"]),
        }
        self.append_builtin_config(schema)
        found = settings.problems(schema, self.config)
        if found and raise_errors:
            raise SettingsError(settings.message(found))
        if raise_errors and self.config.get("client_certificate_path"):
            _ = self.client_certificate  # an unreadable file is a settings error too
        return found

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
    def authenticator(self) -> GraphAuthenticator:
        """One authenticator (one MSAL app, one token cache) for every stream of the run."""
        return GraphAuthenticator(
            tenant_id=self.config["tenant_id"].strip(),
            client_id=self.config["client_id"].strip(),
            client_secret=self.config.get("client_secret"),
            client_certificate=self.client_certificate,
            authority_host=self.authority_host,
            graph_url=self.graph_url,
            timeout=float(self.config.get("request_timeout", 300)),
            retry_policy=RetryPolicy.from_config(self.config),
        )

    @cached_property
    def graph_session(self) -> requests.Session:
        """One HTTP session for all Graph calls of the run.

        The SDK sends with `Session.send`, which skips requests' environment merge, so the CA
        bundle named by REQUESTS_CA_BUNDLE (corporate TLS inspection) must be set here
        (sdk-notes G2). Proxy variables are honoured by `send` itself.
        """
        session = requests.Session()
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        return session

    @cached_property
    def product_names(self) -> ProductNameCatalog:
        """Microsoft's product and service plan names: loaded on first use, once per run."""
        return ProductNameCatalog(self.config, self.logger)

    @cached_property
    def report_scheduler(self) -> ReportScheduler:
        """One scheduler for every report stream of the run: fetches their days concurrently."""
        return ReportScheduler(self)

    @override
    def discover_streams(self) -> list[Stream]:
        return [
            *(stream_class(tap=self) for stream_class in DIRECTORY_STREAMS),
            LicenseAssignmentsStream(tap=self),
            *report_streams(self),
        ]


def main() -> None:
    """The `tap-microsoft365` command: the SDK's CLI, with operator errors as one line."""
    redaction.install()
    try:
        TapMicrosoft365.cli()
    except Microsoft365Error as exc:
        logging.getLogger(TapMicrosoft365.name).error("%s", exc)
        sys.exit(exc.exit_code)
