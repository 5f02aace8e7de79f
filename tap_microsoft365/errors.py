"""Errors an operator can act on.

Each one carries a single line: what failed, Graph's or Entra ID's own code and correlation ids
where there are some, and the fix (which setting, which permission, which Azure portal step). The
command line prints that line without a traceback and exits with the class's exit code, so a
scheduler's alert says what to do.
"""

from __future__ import annotations

import errno
import logging
import shutil
import signal
import sys
import tempfile

from singer_sdk.exceptions import FatalAPIError


class Microsoft365Error(Exception):
    """An error with a one-line cause and fix; the run stops."""

    exit_code = 1


class SettingsError(Microsoft365Error):
    """A setting is missing or invalid; raised before any network call."""

    exit_code = 2


class AuthenticationError(Microsoft365Error):
    """Entra ID refused or could not issue a token."""

    exit_code = 3


class PermissionDeniedError(Microsoft365Error, FatalAPIError):
    """Graph refused a call for lack of an application permission or admin consent."""

    exit_code = 4


class GraphAPIError(Microsoft365Error, FatalAPIError):
    """Graph (or something in front of it) answered with an error the tap cannot recover from."""

    exit_code = 5


class ConcealedNamesError(Microsoft365Error):
    """Usage reports conceal user, group and site names and `concealed_names` is `error`."""

    exit_code = 6


class StateError(Microsoft365Error):
    """The state given with --state is not one the tap can resume from; raised before any
    record is emitted."""

    exit_code = 7


class TemporarySpaceError(Microsoft365Error):
    """The disk of TMPDIR, where report files are spooled, is full."""

    exit_code = 8


class TenantsFailedError(Microsoft365Error):
    """Some tenants of a run of several failed (each named in an ERROR line of its own); the
    others completed."""

    exit_code = 9


class TargetStoppedError(Microsoft365Error):
    """The target stopped reading the tap's output (a broken pipe): it has died or exited."""

    exit_code = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away


class InterruptedRunError(BaseException):
    """SIGTERM or SIGINT stopped the run.

    A BaseException, as KeyboardInterrupt is: raised by the signal handler wherever the run is,
    it must pass every `except Exception` on its way out, and nothing may write another STATE.
    """

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as a shell reports
        super().__init__(
            f"interrupted by {self.signal_name}: the run stopped before its end; the last STATE "
            "it wrote covers only records it had emitted, so the next run resumes from there"
        )


def describe_os_error(exc: BaseException | None, spool_limit_mb: float | None = None) -> str | None:
    """One line for an OSError the operator can fix (a full TMPDIR), or None."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        tmpdir = tempfile.gettempdir()
        try:
            free_mb = shutil.disk_usage(tmpdir).free / 2**20
            free = f"{free_mb:.0f} MB free"
        except OSError:
            free = "free space unknown"
        limit = f"{spool_limit_mb:g}" if spool_limit_mb else "2048"
        return (
            f"no space left in TMPDIR ({tmpdir}, {free}): report files are kept there, up to "
            f"report_spool_limit_mb ({limit} MB) at a time plus the file being downloaded "
            "and the RECORD lines of the day being read; "
            "free that much space, point TMPDIR at a larger disk, or lower report_spool_limit_mb"
        )
    return None


class KnownFailureFilter(logging.Filter):
    """Drop the SDK's "An unhandled error occurred while syncing ..." line when the error is one
    the command reports itself in one line (a broken pipe, a full TMPDIR, an interruption)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the SDK's line about an error `main` describes."""
        if record.levelno < logging.ERROR or not str(record.msg).startswith(
            "An unhandled error occurred while syncing"
        ):
            return True
        current = sys.exc_info()[1]
        return not (isinstance(current, BrokenPipeError) or describe_os_error(current) is not None)
