"""`user_sign_in_activity`: each user's last sign-in times, from `signInActivity`.

`GET /v1.0/users?$select=id,userPrincipalName,signInActivity` (List users,
https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0). The property
(https://learn.microsoft.com/graph/api/resources/signinactivity?view=graph-rest-1.0) holds the
last interactive, last non-interactive and last successful sign-in, each with its request id;
`lastSuccessfulSignInDateTime` exists from December 2023 and is not backfilled.

Requirements Graph enforces, which the tap's four base permissions do not meet:

- the application permission AuditLog.Read.All (with User.Read.All); without it Graph answers
  403 `Authentication_MSGraphPermissionMissing`;
- a Microsoft Entra ID P1 or P2 license in the tenant; without it, 403
  `Authentication_RequestFromNonPremiumTenantOrB2CTenant`.

So the stream is off unless selected, and either 403 is one WARNING and no records: the run goes
on and exits 0. With signInActivity selected, a page holds at most 120 users whatever `$top`
asks (the user resource page: "the maximum page size for $top is 120"), so the stream asks for
120: about 84 requests per 10,000 users.

Not incremental: user delta does not track signInActivity, and a `$filter` on
`signInActivity/lastSignInDateTime ge ...` would return only users who signed in since, never
telling a user who stopped signing in from one who was deleted, nor covering the other two
times. A full read each run is the honest and, at 120 users a request, still cheap choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError

from tap_microsoft365.errors import Microsoft365Error
from tap_microsoft365.graph.transport import error_line, graph_error_fields
from tap_microsoft365.naming import snake_case
from tap_microsoft365.streams.base import GraphStream

if TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context, Record
    from typing_extensions import override
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

# Graph's cap on a page of users when signInActivity is selected.
PAGE_CAP = 120
# signInActivity property -> column (snake_case, like every column of the tap).
FIELDS = {
    field: snake_case(field)
    for field in (
        "lastSignInDateTime",
        "lastSignInRequestId",
        "lastNonInteractiveSignInDateTime",
        "lastNonInteractiveSignInRequestId",
        "lastSuccessfulSignInDateTime",
        "lastSuccessfulSignInRequestId",
    )
}
NOT_PREMIUM = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
HOW_TO_ENABLE = (
    "it needs the application permission AuditLog.Read.All (Entra ID > App registrations > "
    "your app > API permissions > Add a permission > Microsoft Graph > Application permissions "
    "> AuditLog.Read.All, then Grant admin consent) and a Microsoft Entra ID P1 or P2 license "
    "in the tenant (Entra admin center > Overview shows the tenant's license; P1 comes with "
    "Microsoft 365 E3/E5, Business Premium and EMS); deselect user_sign_in_activity to silence "
    "this warning"
)


class SignInActivityUnavailableError(Microsoft365Error, FatalAPIError):
    """Graph refused signInActivity: no AuditLog.Read.All, or no Entra ID P1/P2.

    Not a PermissionDeniedError: that one fails the run (or is skipped with a generic warning);
    this one is always a warning of its own (see `handle_sync_error`)."""


class UserSignInActivityStream(GraphStream):
    """Per user: last interactive, non-interactive and successful sign-in, with request ids."""

    name = "user_sign_in_activity"
    path = "/users"
    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    selected_by_default = False
    required_permissions = ("AuditLog.Read.All",)
    select_from_schema = False
    # Read whole every run: ACTIVATE_VERSION at the end retires the rows of deleted users.
    full_table_snapshot = True
    schema: ClassVar[dict] = th.PropertiesList(
        th.Property("id", th.StringType, required=True, description="The user's object id."),
        th.Property("user_principal_name", th.StringType),
        th.Property(
            "last_sign_in_date_time",
            th.DateTimeType,
            description="Last interactive sign-in attempt, successful or not (UTC).",
        ),
        th.Property("last_sign_in_request_id", th.StringType),
        th.Property(
            "last_non_interactive_sign_in_date_time",
            th.DateTimeType,
            description="Last non-interactive sign-in attempt (a client on the user's behalf).",
        ),
        th.Property("last_non_interactive_sign_in_request_id", th.StringType),
        th.Property(
            "last_successful_sign_in_date_time",
            th.DateTimeType,
            description="Last successful sign-in of either kind (recorded since 2023-12-01).",
        ),
        th.Property("last_successful_sign_in_request_id", th.StringType),
    ).to_dict()

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        return {
            "$select": "id,userPrincipalName,signInActivity",
            "$top": min(int(self.config.get("page_size", PAGE_CAP)), PAGE_CAP),
        }

    @override
    def validate_response(self, response: requests.Response) -> None:
        if response.status_code == 403:
            code, message = graph_error_fields(response)
            raise SignInActivityUnavailableError(
                f"{error_line(self.name, response, code, message)}"
                + (" (the tenant has no Entra ID P1/P2)" if code == NOT_PREMIUM else "")
            )
        super().validate_response(response)

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        activity = row.get("signInActivity") or {}
        record: dict[str, Any] = {
            "tenant_id": row.get("tenant_id"),  # set by GraphStream.get_records
            "id": row.get("id"),
            "user_principal_name": row.get("userPrincipalName"),
        }
        for field, column in FIELDS.items():
            record[column] = activity.get(field)
        return record

    @override
    def handle_sync_error(self, error: Exception) -> bool:
        # A refusal of this optional stream is a warning, never a failed run.
        if isinstance(error, SignInActivityUnavailableError):
            self.logger.warning("%s: skipped, no records; %s", error, HOW_TO_ENABLE)
            return True
        return super().handle_sync_error(error)
