"""Directory streams: the organization, what it bought, and who holds it.

Each stream is data only: its Graph path, key, schema and the application permissions that allow
reading it. Paging, `$select`, `$top`, retries and errors come from `GraphStream`; users and
groups are read incrementally through delta query (`DeltaStream`).
"""

from __future__ import annotations

from typing import ClassVar

from tap_microsoft365 import schemas
from tap_microsoft365.streams.base import GraphStream
from tap_microsoft365.streams.delta import DeltaStream
from tap_microsoft365.streams.licensing import NamedSkusStream


class OrganizationStream(GraphStream):
    """The tenant itself: one record (`GET /organization`)."""

    name = "organization"
    path = "/organization"
    schema: ClassVar[dict] = schemas.ORGANIZATION
    columns = schemas.ORGANIZATION_COLUMNS
    required_permissions = ("Organization.Read.All", "Directory.Read.All")
    supports_top = False


class SubscribedSkusStream(NamedSkusStream):
    """The products the tenant bought, with purchased, consumed and suspended units.

    `NamedSkusStream` adds Microsoft's product and service plan names (product_display_name,
    service_plans[].servicePlanFriendlyName).
    """

    name = "subscribed_skus"
    path = "/subscribedSkus"
    schema: ClassVar[dict] = schemas.SUBSCRIBED_SKU
    columns = schemas.SUBSCRIBED_SKU_COLUMNS
    required_permissions = ("Organization.Read.All", "Directory.Read.All")
    supports_top = False  # subscribedSkus supports only $select


class SubscriptionsStream(GraphStream):
    """The commerce subscriptions behind the SKUs: seats, trial, renewal dates."""

    name = "subscriptions"
    path = "/directory/subscriptions"
    schema: ClassVar[dict] = schemas.COMPANY_SUBSCRIPTION
    columns = schemas.COMPANY_SUBSCRIPTION_COLUMNS
    required_permissions = ("Organization.Read.All", "Directory.Read.All")
    supports_top = False


class UsersStream(DeltaStream):
    """Every user with their license assignments, direct and group-inherited; incremental.

    Blind spots of user delta (Graph documents them): changes to `licenseAssignmentStates`
    alone, and to properties outside `$select`, do not surface a user.
    """

    name = "users"
    path = "/users/delta"
    list_path = "/users"
    count_path = "/users/$count"
    schema: ClassVar[dict] = schemas.USER
    columns = schemas.USER_COLUMNS
    required_permissions = ("User.Read.All", "Directory.Read.All")


class GroupsStream(DeltaStream):
    """Every group, with the licenses it gives its members (group-based licensing); incremental."""

    name = "groups"
    path = "/groups/delta"
    list_path = "/groups"
    count_path = "/groups/$count"
    schema: ClassVar[dict] = schemas.GROUP
    columns = schemas.GROUP_COLUMNS
    required_permissions = ("Group.Read.All", "Directory.Read.All")


DIRECTORY_STREAMS: tuple[type[GraphStream], ...] = (
    OrganizationStream,
    SubscribedSkusStream,
    SubscriptionsStream,
    UsersStream,
    GroupsStream,
)
