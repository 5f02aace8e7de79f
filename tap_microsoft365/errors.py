"""Errors an operator can act on.

Each one carries a single line: what failed, Graph's or Entra ID's own code and correlation ids
where there are some, and the fix (which setting, which permission, which Azure portal step). The
command line prints that line without a traceback and exits with the class's exit code, so a
scheduler's alert says what to do.
"""

from __future__ import annotations

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
