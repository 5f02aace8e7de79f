"""JSON schemas of the Graph resources the tap reads, typed as Graph documents them.

Complex types Graph reuses across resources (assignedPlan, servicePlanInfo, ...) are defined once
here and composed into the resource schemas, so a nested object is typed, never a JSON string.
Sources: the Microsoft Graph v1.0 resource pages, https://learn.microsoft.com/graph/api/resources/

Resources are written here with Graph's property names; each stream's schema is their snake_case
version (`tap_microsoft365.naming.Columns`): `USER` is the users stream's schema, `USER_COLUMNS`
the mapping the stream builds `$select` from and renames Graph's records with.
"""

from __future__ import annotations

from singer_sdk import typing as th

from tap_microsoft365.naming import Columns

GUID = th.UUIDType
STRING_LIST = th.ArrayType(th.StringType)

ASSIGNED_LICENSE = th.ObjectType(
    th.Property("skuId", GUID, description="The SKU (product) assigned."),
    th.Property("disabledPlans", th.ArrayType(GUID), description="Service plans turned off."),
)

ASSIGNED_PLAN = th.ObjectType(
    th.Property("assignedDateTime", th.DateTimeType),
    th.Property(
        "capabilityStatus", th.StringType, description="Enabled, Warning, Suspended, Deleted."
    ),
    th.Property("service", th.StringType),
    th.Property("servicePlanId", GUID),
)

PROVISIONED_PLAN = th.ObjectType(
    th.Property("capabilityStatus", th.StringType),
    th.Property("provisioningStatus", th.StringType),
    th.Property("service", th.StringType),
)

LICENSE_ASSIGNMENT_STATE = th.ObjectType(
    th.Property(
        "assignedByGroup",
        GUID,
        description="The group the license is inherited from; null when assigned directly.",
    ),
    th.Property("disabledPlans", th.ArrayType(GUID)),
    th.Property(
        "error",
        th.StringType,
        description="CountViolation, MutuallyExclusiveViolation, DependencyViolation, "
        "ProhibitedInUsageLocationViolation, UniquenessViolation, Other, or None.",
    ),
    th.Property("lastUpdatedDateTime", th.DateTimeType),
    th.Property("skuId", GUID),
    th.Property("state", th.StringType, description="Active, ActiveWithError, Disabled, Error."),
)

SERVICE_PLAN_INFO = th.ObjectType(
    th.Property("servicePlanId", GUID),
    th.Property("servicePlanName", th.StringType),
    th.Property(
        "provisioningStatus",
        th.StringType,
        description="Success, Disabled, Error, PendingInput, PendingActivation, "
        "PendingProvisioning.",
    ),
    th.Property("appliesTo", th.StringType, description="User or Company."),
)

# subscribed_skus' plans also carry the name Microsoft's product names file gives them
# (tap_microsoft365.product_names); Graph's own properties are unchanged.
NAMED_SERVICE_PLAN_INFO = th.ObjectType(
    *SERVICE_PLAN_INFO.wrapped.values(),
    th.Property(
        "servicePlanFriendlyName",
        th.StringType,
        description="The plan's name in Microsoft's product names file (e.g. Exchange Online "
        "(Plan 2)); null when the file is unavailable or does not list the plan.",
    ),
)

LICENSE_UNITS_DETAIL = th.ObjectType(
    th.Property("enabled", th.IntegerType, description="Active units."),
    th.Property("suspended", th.IntegerType, description="Cancelled, can be reactivated."),
    th.Property("warning", th.IntegerType, description="Expired, in the grace period."),
    th.Property("lockedOut", th.IntegerType, description="Cancelled and locked."),
)

VERIFIED_DOMAIN = th.ObjectType(
    th.Property("capabilities", th.StringType),
    th.Property("isDefault", th.BooleanType),
    th.Property("isInitial", th.BooleanType),
    th.Property("name", th.StringType),
    th.Property("type", th.StringType),
)

ON_PREMISES_PROVISIONING_ERROR = th.ObjectType(
    th.Property("category", th.StringType),
    th.Property("occurredDateTime", th.DateTimeType),
    th.Property("propertyCausingError", th.StringType),
    th.Property("value", th.StringType),
)

EMPLOYEE_ORG_DATA = th.ObjectType(
    th.Property("costCenter", th.StringType),
    th.Property("division", th.StringType),
)

_GRAPH_ORGANIZATION = th.PropertiesList(
    th.Property("id", th.StringType, required=True, description="The tenant ID."),
    th.Property("displayName", th.StringType),
    th.Property("tenantType", th.StringType),
    th.Property("createdDateTime", th.DateTimeType),
    th.Property("countryLetterCode", th.StringType),
    th.Property("country", th.StringType),
    th.Property("city", th.StringType),
    th.Property("state", th.StringType),
    th.Property("street", th.StringType),
    th.Property("postalCode", th.StringType),
    th.Property("preferredLanguage", th.StringType),
    th.Property("defaultUsageLocation", th.StringType),
    th.Property("businessPhones", STRING_LIST),
    th.Property("technicalNotificationMails", STRING_LIST),
    th.Property("marketingNotificationEmails", STRING_LIST),
    th.Property("onPremisesSyncEnabled", th.BooleanType),
    th.Property("onPremisesLastSyncDateTime", th.DateTimeType),
    th.Property("partnerTenantType", th.StringType),
    th.Property("assignedPlans", th.ArrayType(ASSIGNED_PLAN)),
    th.Property("provisionedPlans", th.ArrayType(PROVISIONED_PLAN)),
    th.Property("verifiedDomains", th.ArrayType(VERIFIED_DOMAIN)),
).to_dict()
ORGANIZATION_COLUMNS = Columns(_GRAPH_ORGANIZATION)
ORGANIZATION = ORGANIZATION_COLUMNS.schema

_GRAPH_SUBSCRIBED_SKU = th.PropertiesList(
    th.Property("id", th.StringType, required=True, description="<tenant id>_<skuId>."),
    th.Property("skuId", GUID, description="The product GUID."),
    th.Property("skuPartNumber", th.StringType, description="e.g. SPE_E5, ENTERPRISEPACK."),
    th.Property(
        "productDisplayName",
        th.StringType,
        description="The product's name in Microsoft's product names file (e.g. Microsoft 365 "
        "E5); null when the file is unavailable or does not list the SKU. Not a Graph property.",
    ),
    th.Property("accountId", th.StringType),
    th.Property("accountName", th.StringType),
    th.Property("appliesTo", th.StringType, description="User or Company."),
    th.Property(
        "capabilityStatus",
        th.StringType,
        description="Enabled, Warning, Suspended, Deleted, LockedOut.",
    ),
    th.Property("consumedUnits", th.IntegerType, description="Licenses assigned."),
    th.Property("prepaidUnits", LICENSE_UNITS_DETAIL, description="Licenses bought, by state."),
    th.Property("servicePlans", th.ArrayType(NAMED_SERVICE_PLAN_INFO)),
    th.Property("subscriptionIds", STRING_LIST),
).to_dict()
SUBSCRIBED_SKU_COLUMNS = Columns(_GRAPH_SUBSCRIBED_SKU, own=frozenset({"productDisplayName"}))
SUBSCRIBED_SKU = SUBSCRIBED_SKU_COLUMNS.schema

_GRAPH_COMPANY_SUBSCRIPTION = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("commerceSubscriptionId", th.StringType),
    th.Property("createdDateTime", th.DateTimeType),
    th.Property("isTrial", th.BooleanType),
    th.Property("nextLifecycleDateTime", th.DateTimeType),
    th.Property("ownerId", th.StringType),
    th.Property("ownerTenantId", th.StringType),
    th.Property("ownerType", th.StringType),
    th.Property("serviceStatus", th.ArrayType(SERVICE_PLAN_INFO)),
    th.Property("skuId", th.StringType),
    th.Property("skuPartNumber", th.StringType),
    th.Property("status", th.StringType, description="Enabled, Deleted, Suspended, Warning..."),
    th.Property("totalLicenses", th.IntegerType, description="Seats."),
).to_dict()
COMPANY_SUBSCRIPTION_COLUMNS = Columns(_GRAPH_COMPANY_SUBSCRIPTION)
COMPANY_SUBSCRIPTION = COMPANY_SUBSCRIPTION_COLUMNS.schema

USER_PROPERTIES = (
    th.Property("id", th.StringType, required=True),
    th.Property("userPrincipalName", th.StringType),
    th.Property("displayName", th.StringType),
    th.Property("givenName", th.StringType),
    th.Property("surname", th.StringType),
    th.Property("mail", th.StringType),
    th.Property("mailNickname", th.StringType),
    th.Property("otherMails", STRING_LIST),
    th.Property("proxyAddresses", STRING_LIST),
    th.Property("accountEnabled", th.BooleanType),
    th.Property("userType", th.StringType, description="Member or Guest."),
    th.Property("creationType", th.StringType),
    th.Property("createdDateTime", th.DateTimeType),
    th.Property("deletedDateTime", th.DateTimeType),
    th.Property("department", th.StringType),
    th.Property("jobTitle", th.StringType),
    th.Property("companyName", th.StringType),
    th.Property("officeLocation", th.StringType),
    th.Property("city", th.StringType),
    th.Property("state", th.StringType),
    th.Property("country", th.StringType),
    th.Property("postalCode", th.StringType),
    th.Property("streetAddress", th.StringType),
    th.Property("businessPhones", STRING_LIST),
    th.Property("mobilePhone", th.StringType),
    th.Property("preferredLanguage", th.StringType),
    th.Property(
        "usageLocation", th.StringType, description="Two-letter country code; needed to license."
    ),
    th.Property("employeeId", th.StringType),
    th.Property("employeeType", th.StringType),
    th.Property("employeeHireDate", th.DateTimeType),
    th.Property("employeeOrgData", EMPLOYEE_ORG_DATA),
    th.Property("externalUserState", th.StringType, description="PendingAcceptance or Accepted."),
    th.Property("externalUserStateChangeDateTime", th.DateTimeType),
    th.Property("onPremisesSyncEnabled", th.BooleanType),
    th.Property("onPremisesImmutableId", th.StringType),
    th.Property("onPremisesSamAccountName", th.StringType),
    th.Property("onPremisesUserPrincipalName", th.StringType),
    th.Property("onPremisesDomainName", th.StringType),
    th.Property("onPremisesLastSyncDateTime", th.DateTimeType),
    th.Property("onPremisesProvisioningErrors", th.ArrayType(ON_PREMISES_PROVISIONING_ERROR)),
    th.Property("lastPasswordChangeDateTime", th.DateTimeType),
    th.Property(
        "assignedLicenses",
        th.ArrayType(ASSIGNED_LICENSE),
        description="Licenses held, direct and group-inherited.",
    ),
    th.Property("assignedPlans", th.ArrayType(ASSIGNED_PLAN)),
    th.Property(
        "licenseAssignmentStates",
        th.ArrayType(LICENSE_ASSIGNMENT_STATE),
        description="Per license: direct or inherited from which group, state and error.",
    ),
    th.Property("provisionedPlans", th.ArrayType(PROVISIONED_PLAN)),
)

GROUP_PROPERTIES = (
    th.Property("id", th.StringType, required=True),
    th.Property("displayName", th.StringType),
    th.Property("description", th.StringType),
    th.Property("mail", th.StringType),
    th.Property("mailEnabled", th.BooleanType),
    th.Property("mailNickname", th.StringType),
    th.Property("securityEnabled", th.BooleanType),
    th.Property("groupTypes", STRING_LIST, description="'Unified' for Microsoft 365 groups."),
    th.Property("visibility", th.StringType),
    th.Property("createdDateTime", th.DateTimeType),
    th.Property("deletedDateTime", th.DateTimeType),
    th.Property("onPremisesSyncEnabled", th.BooleanType),
    th.Property("membershipRule", th.StringType),
    th.Property(
        "assignedLicenses",
        th.ArrayType(ASSIGNED_LICENSE),
        description="Licenses the group gives its members (group-based licensing).",
    ),
    th.Property(
        "licenseProcessingState",
        th.ObjectType(th.Property("state", th.StringType)),
        description="QueuedForProcessing, ProcessingInProgress, ProcessingComplete.",
    ),
)

# Streams read through Graph delta query also report removals
# (https://learn.microsoft.com/graph/delta-query-overview). Names starting with `_` are the tap's
# own and never go into `$select`.
REMOVAL_PROPERTIES = (
    th.Property(
        "_sdc_deleted_at",
        th.DateTimeType,
        description="When the sync saw Graph report the object removed; null while it exists. "
        "SDK targets use it to mark (or delete) the row.",
    ),
    th.Property(
        "_removed_reason",
        th.StringType,
        description="Graph's removal reason: 'changed' = soft-deleted (restorable for 30 days "
        "from Deleted items), 'deleted' = permanently deleted; null while the object exists.",
    ),
)

USER_COLUMNS = Columns(th.PropertiesList(*USER_PROPERTIES, *REMOVAL_PROPERTIES).to_dict())
USER = USER_COLUMNS.schema
GROUP_COLUMNS = Columns(th.PropertiesList(*GROUP_PROPERTIES, *REMOVAL_PROPERTIES).to_dict())
GROUP = GROUP_COLUMNS.schema
