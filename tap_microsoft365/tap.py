"""The tap: its settings, their validation, and its streams."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from functools import cached_property
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.logging import ConsoleFormatter

from tap_microsoft365 import redaction, settings, state_check
from tap_microsoft365.errors import (
    InterruptedRunError,
    KnownFailureFilter,
    Microsoft365Error,
    SettingsError,
    TargetStoppedError,
    TemporarySpaceError,
    describe_os_error,
)
from tap_microsoft365.graph.auth import CLOUDS
from tap_microsoft365.product_names import ProductNameCatalog
from tap_microsoft365.sdk_compat import CompatTap
from tap_microsoft365.streams.directory import DIRECTORY_STREAMS
from tap_microsoft365.streams.licensing import LicenseAssignmentsStream
from tap_microsoft365.streams.reports.definitions import REPORTS
from tap_microsoft365.streams.reports.fetcher import (
    ReportFetcher,
    SpoolBudget,
    stop_all_workers,
)
from tap_microsoft365.streams.reports.stream import ReportStream, report_streams
from tap_microsoft365.streams.sign_in_activity import UserSignInActivityStream
from tap_microsoft365.tenants import CONTEXT_KEY, Tenant, Tenants
from tap_microsoft365.writer import GraphSingerWriter

if TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.streams import Stream
    from typing_extensions import override

    from tap_microsoft365.graph.transport import Transport
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override


def _ca_bundle_problems() -> list[str]:
    """REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE must name a file (or folder) that exists."""
    found = []
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        path = os.environ.get(variable)
        if path and not os.path.exists(path):
            found.append(
                f"{variable} names '{path}', which does not exist: point it at the CA bundle "
                "(PEM) of the proxy that inspects TLS, or unset it"
            )
    return found


class TapMicrosoft365(CompatTap):
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
        state = kwargs.get("state")
        if isinstance(state, str | PurePath):  # a path: the SDK reads it
            state = None
        if state is not None:
            state_check.check_state(state)  # before the SDK reads it
        super().__init__(*args, **kwargs)
        if state is not None:
            # Before any record is emitted, not when the first bookmark is compared.
            state_check.check_replication_keys(
                state, ((name, stream.replication_key) for name, stream in self.streams.items())
            )
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, KnownFailureFilter) for f in handler.filters):
                handler.addFilter(KnownFailureFilter())
        if threading.current_thread() is threading.main_thread():
            # The SDK's handlers exit 0 and write the state as it is at that moment; an
            # interrupted run must fail, and its last STATE is the last one written at a safe
            # point (after the records it covers).
            signal.signal(signal.SIGINT, self._interrupted)
            signal.signal(signal.SIGTERM, self._interrupted)

    @staticmethod
    def _interrupted(signum: int, frame: FrameType | None) -> None:
        raise InterruptedRunError(signum)

    #: report_spool_limit_mb of the run, for the line about a full TMPDIR.
    spool_limit_mb: ClassVar[float | None] = None

    @classmethod
    @override
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        try:
            super().invoke(*args, **kwargs)
            # Every other tenant has completed: the run still fails, naming the failed ones
            # (the SDK's sync_all is final, so the check follows it here).
            error = cls.run_tenants.closing_error() if cls.run_tenants is not None else None
            if error is not None:
                raise error
        except BrokenPipeError:
            # click would turn a broken pipe into a silent exit 1.
            msg = (
                "the target stopped reading the tap's output (broken pipe): it has exited or "
                "crashed; see the target's own log for why, then run again (the state it last "
                "confirmed is where the next run resumes)"
            )
            raise TargetStoppedError(msg) from None

    @override
    def check_config(self, *, raise_errors: bool) -> list[str]:
        """Every problem of the config, reported in one line (sdk_compat routes the SDK's
        constructor-time check here)."""
        for secret in settings.secret_values(self.config):
            redaction.register_secret(secret)
        schema = {
            **self.config_jsonschema,
            "properties": dict(self.config_jsonschema["properties"]),
        }
        self.append_builtin_config(schema)
        self.logger.debug("Validating config using jsonschema: %s", schema)  # as the SDK does
        found = settings.problems(schema, self.config)
        if raise_errors:
            found += _ca_bundle_problems()
            TapMicrosoft365.spool_limit_mb = self.config.get("report_spool_limit_mb")
        if found and raise_errors:
            raise SettingsError(settings.message(found))
        if raise_errors:
            for tenant in self.tenants:
                if tenant.settings.client_certificate_path:
                    # An unreadable file is a settings error too, before any stream starts.
                    _ = tenant.client_certificate
        return found

    @cached_property
    def tenants(self) -> Tenants:
        """The run's tenants: the `tenants` setting's, or the top-level one alone."""
        tenants = Tenants(self.config)
        TapMicrosoft365.run_tenants = tenants
        return tenants

    @property
    def transport(self) -> Transport:
        """The first tenant's request path (the product names file is fetched on it)."""
        return self.tenants.first.transport

    @cached_property
    def product_names(self) -> ProductNameCatalog:
        """Microsoft's product and service plan names: loaded on first use, once per run."""
        return ProductNameCatalog(self.config, self.logger, self.transport)

    @cached_property
    def _report_fetchers(self) -> dict[str, ReportFetcher]:
        return {}

    @cached_property
    def _report_slots(self) -> threading.BoundedSemaphore:
        # report_concurrency caps the report transfers of every tenant together.
        return threading.BoundedSemaphore(int(self.config.get("report_concurrency") or 8))

    @cached_property
    def _report_spool(self) -> SpoolBudget:
        # report_spool_limit_mb holds the spooled files of every tenant together.
        return SpoolBudget(int(self.config.get("report_spool_limit_mb") or 2048) * 1024 * 1024)

    def report_fetcher(self, tenant: Tenant) -> ReportFetcher:
        """One fetcher per tenant for every report stream: it fetches their days concurrently,
        each report paced on the tenant's own budget (Graph counts per app and tenant).

        The first call starts every tenant's fetcher (but a failed tenant's): the SDK reads a
        stream's tenants one after another, and a tenant's backfill waits on its own budget, so
        fetching a tenant's reports only when its turn comes would add up every tenant's wait.
        """
        with self._fetchers_lock:
            first = not self._report_fetchers
            fetcher = self._tenant_report_fetcher(tenant)
            if first:
                for other in self.tenants:
                    if not self.tenants.failures.failed(other):
                        self._tenant_report_fetcher(other).start()
            return fetcher

    def _tenant_report_fetcher(self, tenant: Tenant) -> ReportFetcher:
        """The tenant's fetcher, made on first use (under `_fetchers_lock`)."""
        fetcher = self._report_fetchers.get(tenant.key)
        if fetcher is None:
            context = {CONTEXT_KEY: tenant.key} if self.tenants.partitioned else None
            fetcher = ReportFetcher(
                self.config,
                tenant.transport,
                has_usage_reports=CLOUDS[tenant.cloud].has_usage_reports,
                cloud=tenant.cloud,
                streams=lambda: [
                    s.source(context) for s in self.streams.values() if isinstance(s, ReportStream)
                ],
                slots=self._report_slots,
                spool=self._report_spool,
            )
            self._report_fetchers[tenant.key] = fetcher
        return fetcher

    _fetchers_lock = threading.Lock()
    #: The tenants of the run `invoke` started, for its closing line.
    run_tenants: ClassVar[Tenants | None] = None

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


def _console_logging() -> None:
    """The SDK's console log format, for a failure found before the SDK set up logging."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ConsoleFormatter())
        handler.addFilter(redaction.RedactionFilter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def _check_command_line(argv: list[str]) -> None:
    """The config and state files named on the command line, before the SDK reads them (it
    stops with a traceback on a missing or malformed file)."""
    for path in state_check.command_line_files(argv, "--config"):
        if path != "ENV":
            state_check.check_config_file(path)
    for path in state_check.command_line_files(argv, "--state"):
        state_check.check_state_file(path)


def main() -> None:
    """The `tap-microsoft365` command: the SDK's CLI, with every way a run can fail as one
    line and an exit code from README's failure table."""
    redaction.install()
    logger = logging.getLogger(TapMicrosoft365.name)
    # Until the tap replaces them again after the SDK's (see TapMicrosoft365.__init__).
    signal.signal(signal.SIGINT, TapMicrosoft365._interrupted)
    signal.signal(signal.SIGTERM, TapMicrosoft365._interrupted)
    # The modules and objects built so far live as long as the process: out of the garbage
    # collector's full passes, during the run and at exit (where collecting them again cost
    # about 0.2 s of every run's end). Frozen again at the end for what the run built.
    gc.freeze()
    try:
        _check_command_line(sys.argv[1:])
        TapMicrosoft365.cli()
    except Microsoft365Error as exc:
        stop_all_workers()
        _console_logging()
        logger.error("%s", exc)
        if isinstance(exc, TargetStoppedError):
            # Nothing more can reach the target: later flushes would only print a traceback.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(exc.exit_code)
    except InterruptedRunError as exc:
        stop_all_workers()
        _console_logging()
        logger.error("%s", exc)
        sys.exit(exc.exit_code)
    except OSError as exc:
        line = describe_os_error(exc, TapMicrosoft365.spool_limit_mb)
        if line is None:
            raise
        stop_all_workers()
        _console_logging()
        logger.error("%s", line)
        sys.exit(TemporarySpaceError.exit_code)
    finally:
        gc.freeze()
