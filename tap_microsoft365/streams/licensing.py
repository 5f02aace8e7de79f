"""License assignments: who holds which product, how it was assigned, and since when.

`license_assignments` has one row per (user, SKU) the user holds or was meant to hold, built from
three user properties (https://learn.microsoft.com/graph/api/resources/user):

- `licenseAssignmentStates`: one entry per assignment *path*: a direct assignment
  (`assignedByGroup` null) or one per group the license is inherited from, each with its state
  (Active, ActiveWithError, Disabled, Error), error (CountViolation, MutuallyExclusiveViolation,
  DependencyViolation, ...), disabled plans and last update. A user can hold the same SKU directly
  *and* through several groups: the row keeps every path in `assignments`, and summarises them in
  `assigned_directly`, `assigned_by_groups`, `state` and `error`.
- `assignedLicenses`: the SKUs the user actually holds (those consume a unit of the SKU), with the
  plans disabled across all paths. A SKU whose every path failed (say a group assignment with
  CountViolation) is not in it: its row has `consumes_unit` false and state Error.
- `assignedPlans`: when each service plan reached the user; `assigned_date_time` is read from the
  plans that only this SKU gives the user (see `assigned_since`).

Graph's user delta does not report changes of `licenseAssignmentStates`, so the stream reads the
license properties of every user on every run (`GET /users?$select=...&$top=999`, about 100
requests for 100,000 users) plus `GET /subscribedSkus` once (part numbers and each SKU's plans).
Rows of assignments that disappeared (a license removed, a user deleted) are not sent again: the
stream ends with ACTIVATE_VERSION (on by default; `emit_activate_version_messages: false` turns it
off), and SDK targets such as target-postgres then retire every row of an older version (they set
`_sdc_deleted_at`, or delete it with `hard_delete`). The message is sent only after the last
record, so a run that fails half way retires nothing.

Product and service plan names come from Microsoft's product names file
(`tap_microsoft365.product_names`); `NamedSkusStream` adds them to the subscribed_skus stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th

from tap_microsoft365 import schemas
from tap_microsoft365.errors import PermissionDeniedError
from tap_microsoft365.graph.transport import graph_json
from tap_microsoft365.product_names import guid_key
from tap_microsoft365.sdk_compat import set_stream_version, write_activate_version
from tap_microsoft365.streams.base import GraphStream

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context, Record
    from typing_extensions import override

    from tap_microsoft365.product_names import ProductNameCatalog
else:
    try:
        from typing import override
    except ImportError:  # Python 3.11
        from typing_extensions import override

# The user properties the stream reads (and nothing else: 999 users per page stay small).
USER_SELECT = (
    "id",
    "userPrincipalName",
    "accountEnabled",
    "userType",
    "assignedLicenses",
    "licenseAssignmentStates",
    "assignedPlans",
)
TABLE_VERSION = "table_version"
# Graph's per-path states, best first: the row's state when no path failed.
_ACTIVE = "Active"
_NO_ERROR = frozenset({"", "None"})

ASSIGNMENT_PATH = th.ObjectType(
    th.Property(
        "assignedByGroup",
        schemas.GUID,
        description="The group the license is inherited from; null for the direct assignment.",
    ),
    th.Property("state", th.StringType, description="Active, ActiveWithError, Disabled, Error."),
    th.Property(
        "error",
        th.StringType,
        description="None, CountViolation, MutuallyExclusiveViolation, DependencyViolation, "
        "ProhibitedInUsageLocationViolation, UniquenessViolation or Other.",
    ),
    th.Property("disabledPlans", th.ArrayType(schemas.GUID)),
    th.Property("lastUpdatedDateTime", th.DateTimeType),
)

NAMED_PLAN = th.ObjectType(
    th.Property("servicePlanId", schemas.GUID),
    th.Property(
        "servicePlanName",
        th.StringType,
        description="Graph's code name (e.g. EXCHANGE_S_ENTERPRISE), from subscribedSkus or "
        "the product names file.",
    ),
    th.Property(
        "servicePlanFriendlyName",
        th.StringType,
        description="The name in Microsoft's product names file (e.g. Exchange Online (Plan 2)); "
        "null when the file is unavailable or does not list the plan.",
    ),
)

LICENSE_ASSIGNMENT = th.PropertiesList(
    th.Property("user_id", th.StringType, required=True, description="The user's object id."),
    th.Property("sku_id", schemas.GUID, required=True, description="The product (skuId)."),
    th.Property(
        "sku_part_number",
        th.StringType,
        description="e.g. SPE_E5, from subscribedSkus; null if the tenant no longer lists the SKU.",
    ),
    th.Property(
        "product_display_name",
        th.StringType,
        description="e.g. Microsoft 365 E5, from Microsoft's product names file; null when the "
        "file is unavailable or does not list the SKU.",
    ),
    th.Property("user_principal_name", th.StringType),
    th.Property("account_enabled", th.BooleanType, description="False: a disabled account."),
    th.Property("user_type", th.StringType, description="Member or Guest."),
    th.Property(
        "consumes_unit",
        th.BooleanType,
        description="True when the user holds the SKU (it is in assignedLicenses and counts in "
        "the SKU's consumedUnits); false when every assignment of it failed.",
    ),
    th.Property(
        "assigned_directly",
        th.BooleanType,
        description="True when the SKU is assigned to the user directly (it may also be "
        "inherited from groups at the same time).",
    ),
    th.Property(
        "assigned_by_groups",
        th.ArrayType(th.StringType),
        description="Ids of the groups the SKU is inherited from (group-based licensing), "
        "sorted; empty when none.",
    ),
    th.Property(
        "state",
        th.StringType,
        description="Active: every assignment is active. ActiveWithError: the user holds the "
        "SKU but an assignment of it failed (e.g. a group's CountViolation next to a working "
        "direct assignment). Error: no assignment works, the user does not hold it. Otherwise "
        "Graph's own state (e.g. Disabled).",
    ),
    th.Property(
        "error",
        th.StringType,
        description="The error(s) of failed assignments (CountViolation, "
        "MutuallyExclusiveViolation, ...; several are joined with ', '); null when none.",
    ),
    th.Property(
        "disabled_plans",
        th.ArrayType(schemas.GUID),
        description="Service plans of the SKU turned off for the user (across all assignments).",
    ),
    th.Property(
        "disabled_service_plans",
        th.ArrayType(NAMED_PLAN),
        description="The disabled plans with their names.",
    ),
    th.Property(
        "assigned_date_time",
        th.DateTimeType,
        description="When the SKU reached the user, from assignedPlans: the earliest assignment "
        "of the service plans only this SKU gives the user. Null when the user does not hold "
        "it, or every plan of it also comes with another license the user holds.",
    ),
    th.Property(
        "last_updated_date_time",
        th.DateTimeType,
        description="The latest lastUpdatedDateTime of the SKU's assignments.",
    ),
    th.Property(
        "assignments",
        th.ArrayType(ASSIGNMENT_PATH),
        description="Every assignment of the SKU to the user as Graph reports it "
        "(licenseAssignmentStates): the direct one first, then one per group.",
    ),
).to_dict()


@dataclass(frozen=True)
class SkuInfo:
    """What the tenant's subscribedSkus (or the product names file) say about one SKU."""

    part_number: str | None
    plans: frozenset[str]  # lower-case servicePlanIds
    plan_names: Mapping[str, str]  # lower-case servicePlanId -> servicePlanName


def _plan_dates(user: Mapping[str, Any]) -> dict[str, str]:
    """Service plan id -> the earliest assignedDateTime of a plan the user has (not Deleted)."""
    dates: dict[str, str] = {}
    for plan in user.get("assignedPlans") or []:
        plan_id = guid_key(plan.get("servicePlanId") or "")
        when = plan.get("assignedDateTime")
        if not plan_id or not when or plan.get("capabilityStatus") == "Deleted":
            continue
        if plan_id not in dates or str(when) < dates[plan_id]:
            dates[plan_id] = str(when)
    return dates


def assigned_since(
    sku: str, enabled: Mapping[str, frozenset[str]], plan_dates: Mapping[str, str]
) -> str | None:
    """When a held SKU reached the user, from the plans only it gives them.

    assignedPlans lists service plans, not SKUs, and a plan two licenses share (Exchange is in E3
    and E5) carries the date of whichever came first. The plans of `sku` that no other license of
    the user enables date it exactly; when there is none, the date is unknown (None).
    """
    others: set[str] = set()
    for other, plans in enabled.items():
        if other != sku:
            others |= plans
    own = [
        plan_dates[plan] for plan in enabled.get(sku, frozenset()) - others if plan in plan_dates
    ]
    return min(own) if own else None


def _summary(paths: list[Mapping[str, Any]], held: bool) -> tuple[str, str | None]:
    """The row's state and error from its assignment paths."""
    errors = sorted(
        {str(path.get("error")) for path in paths if str(path.get("error") or "") not in _NO_ERROR}
    )
    states = [str(path.get("state") or "") for path in paths]
    if all(state == _ACTIVE for state in states) and not errors:
        state = _ACTIVE
    elif held:
        state = "ActiveWithError"
    elif "Error" in states or errors:
        state = "Error"
    else:
        state = next((s for s in states if s), "Error")
    return state, ", ".join(errors) or None


def _path_order(path: Mapping[str, Any]) -> tuple[bool, str]:
    group = path.get("assignedByGroup")
    return (group is not None, guid_key(group) if group else "")


def assignment_rows(
    user: Mapping[str, Any], skus: Mapping[str, SkuInfo], catalog: ProductNameCatalog
) -> Iterator[dict[str, Any]]:
    """The license_assignments rows of one user (one per SKU), in skuId order."""
    held = {
        guid_key(lic["skuId"]): lic
        for lic in user.get("assignedLicenses") or []
        if isinstance(lic, dict) and lic.get("skuId")
    }
    paths: dict[str, list[Mapping[str, Any]]] = {}
    for path in user.get("licenseAssignmentStates") or []:
        if isinstance(path, dict) and path.get("skuId"):
            paths.setdefault(guid_key(path["skuId"]), []).append(path)

    def plans_of(sku: str) -> frozenset[str]:
        info = skus.get(sku)
        return info.plans if info is not None else frozenset(catalog.sku_plans(sku))

    enabled = {
        sku: plans_of(sku) - {guid_key(p) for p in lic.get("disabledPlans") or []}
        for sku, lic in held.items()
    }
    plan_dates = _plan_dates(user)
    for sku in sorted(set(held) | set(paths)):
        sku_paths = sorted(paths.get(sku, []), key=_path_order)
        is_held = sku in held
        if is_held:
            disabled = sorted({guid_key(p) for p in held[sku].get("disabledPlans") or []})
        else:
            sets = [{guid_key(p) for p in path.get("disabledPlans") or []} for path in sku_paths]
            disabled = sorted(set.intersection(*sets)) if sets else []
        state, error = _summary(sku_paths, is_held)
        info = skus.get(sku)
        updated = [str(p["lastUpdatedDateTime"]) for p in sku_paths if p.get("lastUpdatedDateTime")]
        yield {
            "user_id": user["id"],
            "sku_id": sku,
            "sku_part_number": info.part_number if info else None,
            "product_display_name": catalog.product(sku),
            "user_principal_name": user.get("userPrincipalName"),
            "account_enabled": user.get("accountEnabled"),
            "user_type": user.get("userType"),
            "consumes_unit": is_held,
            "assigned_directly": (
                any(p.get("assignedByGroup") is None for p in sku_paths) if sku_paths else None
            ),
            "assigned_by_groups": sorted(
                {str(p["assignedByGroup"]) for p in sku_paths if p.get("assignedByGroup")}
            ),
            "state": state,
            "error": error,
            "disabled_plans": disabled,
            "disabled_service_plans": [
                {
                    "servicePlanId": plan,
                    "servicePlanName": (info.plan_names.get(plan) if info else None)
                    or catalog.plan_code(plan),
                    "servicePlanFriendlyName": catalog.plan(plan),
                }
                for plan in disabled
            ],
            "assigned_date_time": assigned_since(sku, enabled, plan_dates) if is_held else None,
            "last_updated_date_time": max(updated) if updated else None,
            "assignments": [
                {
                    "assignedByGroup": path.get("assignedByGroup"),
                    "state": path.get("state"),
                    "error": path.get("error"),
                    "disabledPlans": list(path.get("disabledPlans") or []),
                    "lastUpdatedDateTime": path.get("lastUpdatedDateTime"),
                }
                for path in sku_paths
            ],
        }


class NamedSkusStream(GraphStream):
    """subscribedSku records with Microsoft's names added: `productDisplayName` on the SKU and
    `servicePlanFriendlyName` on each of its `servicePlans` (Graph's own names are kept)."""

    # The tap's own properties: not Graph's, so never in `$select`.
    added_properties: ClassVar[frozenset[str]] = frozenset({"productDisplayName"})

    @property
    @override
    def select(self) -> list[str]:
        return [name for name in super().select if name not in self.added_properties]

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        yield from super().get_records(context)
        self.services.product_names.warn_missing(self.logger)

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        # Named while the record still has Graph's names, then renamed to columns.
        return super().post_process(self.services.product_names.name_sku(row), context)


class LicenseAssignmentsStream(GraphStream):
    """One row per (user, SKU): how the license was assigned, its state and error, since when."""

    name = "license_assignments"
    path = "/users"
    primary_keys: ClassVar[tuple[str, ...]] = ("user_id", "sku_id")
    schema: ClassVar[dict] = LICENSE_ASSIGNMENT
    required_permissions = ("User.Read.All", "Directory.Read.All")
    select_from_schema = False  # rows are built from USER_SELECT, not selected as they are

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        # The SDK's own switch sends ACTIVATE_VERSION before the first record, so a target would
        # retire every row while the run is still reading users (and for good if it fails). This
        # stream sends it itself, after the last record (see `get_records`).
        return False

    @property
    def retires_vanished_rows(self) -> bool:
        """Whether the run ends with ACTIVATE_VERSION (default on for this stream)."""
        return self.config.get("emit_activate_version_messages") is not False

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        params["$select"] = ",".join(USER_SELECT)
        return params

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        catalog = self.services.product_names
        skus = self.subscribed_skus()
        state = self.stream_state
        version: int | None = None
        if self.retires_vanished_rows:
            # Above every earlier version, in seconds as the SDK's own (an integer column).
            previous = state.get(TABLE_VERSION)
            version = max(int(time.time()), int(previous) + 1 if isinstance(previous, int) else 0)
        # The SDK puts this on every RECORD message (`version`).
        set_stream_version(self, version)
        users = rows = problems = 0
        for user in self.request_records(context):
            users += 1
            for row in assignment_rows(user, skus, catalog):
                rows += 1
                problems += row["state"] != _ACTIVE
                yield row
        catalog.warn_missing(self.logger)
        if version is not None:
            # Every row has been emitted: now a target may retire what was not re-sent.
            write_activate_version(self, version)
            state[TABLE_VERSION] = version
        self.logger.info(
            "%s: %d assignment(s) of %d user(s), %d not fully active%s",
            self.name,
            rows,
            users,
            problems,
            f"; ACTIVATE_VERSION {version} retires the rest" if version is not None else "",
        )

    def subscribed_skus(self) -> dict[str, SkuInfo]:
        """skuId -> part number and service plans, from one `GET /subscribedSkus`.

        Without permission to read it, rows lack part numbers and plans come from the product
        names file; the run goes on.
        """
        url: str | None = f"{self.url_base}/subscribedSkus"
        params: dict[str, str] | None = {"$select": "skuId,skuPartNumber,servicePlans"}
        skus: dict[str, SkuInfo] = {}
        while url:
            prepared = self.build_prepared_request(
                method="GET",
                url=url,
                params=params,
                headers={**self.http_headers, "client-request-id": self.transport.request_id()},
            )
            try:
                response = self.send(prepared, None)
            except PermissionDeniedError:
                self.logger.warning(
                    "%s: Graph refused GET /subscribedSkus (403): sku_part_number is null and "
                    "assignment dates use the plan lists of the product names file. Grant the "
                    "application permission Organization.Read.All (or LicenseAssignment.Read.All) "
                    "and admin consent to read it",
                    self.name,
                )
                return {}
            body = graph_json(response, "/subscribedSkus")
            for sku in body.get("value", []):
                if not isinstance(sku, dict) or not sku.get("skuId"):
                    continue
                plans = {
                    guid_key(plan["servicePlanId"]): str(plan.get("servicePlanName") or "")
                    for plan in sku.get("servicePlans") or []
                    if isinstance(plan, dict) and plan.get("servicePlanId")
                }
                skus[guid_key(sku["skuId"])] = SkuInfo(
                    sku.get("skuPartNumber"),
                    frozenset(plans),
                    {plan: name for plan, name in plans.items() if name},
                )
            link = body.get("@odata.nextLink")
            url, params = (str(link), None) if link else (None, None)
        return skus
