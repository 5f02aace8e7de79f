"""The fake Microsoft 365 tenant behind the Graph emulator.

This module is the contract between the directory part of the emulator (directory.py) and the
usage-report part (reports.py). A `Tenant` holds, as Graph JSON (camelCase dicts):

- `organization`: the one organization object;
- `skus`: subscribedSku objects, `consumedUnits` kept equal to the number of users holding each SKU;
- `subscriptions`: companySubscription objects (the units behind each SKU's `prepaidUnits`);
- `users` / `deleted_users`: user objects by id (current and soft-deleted), every listable property
  present (None where unset), including assignedLicenses, assignedPlans, licenseAssignmentStates
  and provisionedPlans;
- `groups` / `deleted_groups`: group objects by id, including assignedLicenses and
  licenseProcessingState.

Treat these dicts as read-only and change the tenant only through its mutation methods
(`add_user`, `update_user`, `assign_license`, ...): they keep license counts consistent, let
group-based licenses flow to members, and record each change for delta queries. All methods are
thread-safe (one re-entrant lock, `tenant.lock`, which readers that iterate may also hold).

SKU ids, part numbers and service plan ids are the real ones Microsoft publishes in "Product names
and service plan identifiers for licensing" (columns `GUID`, `String_Id`, `Service_Plan_Id`,
`Service_Plan_Name`); each SKU lists a representative subset of its service plans.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import random
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

# --------------------------------------------------------------------------------------------
# License catalog
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePlan:
    """One service plan (servicePlanInfo)."""

    name: str
    id: str
    service: str
    applies_to: str = "User"


@dataclass(frozen=True)
class SkuDefinition:
    """One product (subscribedSku) with its display name and service plans."""

    part_number: str
    sku_id: str
    display_name: str
    plans: tuple[ServicePlan, ...]


def _p(name: str, plan_id: str, service: str, applies_to: str = "User") -> ServicePlan:
    return ServicePlan(name, plan_id, service, applies_to)


EXCHANGE_S_ENTERPRISE = _p(
    "EXCHANGE_S_ENTERPRISE", "efb87545-963c-4e0d-99df-69c6916d9eb0", "exchange"
)
EXCHANGE_S_FOUNDATION = _p(
    "EXCHANGE_S_FOUNDATION", "113feb6c-3fe4-4440-bddc-54d774bf0318", "exchange", "Company"
)
SHAREPOINTENTERPRISE = _p(
    "SHAREPOINTENTERPRISE", "5dbe027f-2339-4123-9542-606e4d348a72", "SharePoint"
)
SHAREPOINTWAC = _p("SHAREPOINTWAC", "e95bec33-7c88-4a70-8e19-b10bd9d0c014", "SharePoint")
MCOSTANDARD = _p(
    "MCOSTANDARD", "0feaeb32-d00e-4d66-bd5a-43b5b83db82c", "MicrosoftCommunicationsOnline"
)
MCOEV = _p("MCOEV", "4828c8ec-dc2e-4779-b502-87ac9ce28ab7", "MicrosoftCommunicationsOnline")
MCOMEETADV = _p(
    "MCOMEETADV", "3e26ee1f-8a5f-4d52-aee2-b81ce45c8f40", "MicrosoftCommunicationsOnline"
)
MCO_TEAMS_IW = _p(
    "MCO_TEAMS_IW", "42a3ec34-28ba-46b6-992f-db53a675ac5b", "MicrosoftCommunicationsOnline"
)
TEAMS1 = _p("TEAMS1", "57ff2da0-773e-42df-b2af-ffb7a2317929", "TeamspaceAPI")
OFFICESUBSCRIPTION = _p(
    "OFFICESUBSCRIPTION", "43de0ff5-c92c-492b-9116-175376d08c38", "MicrosoftOffice"
)
YAMMER_ENTERPRISE = _p(
    "YAMMER_ENTERPRISE", "7547a3fe-08ee-4ccb-b430-5077c5041653", "YammerEnterprise"
)
BI_AZURE_P2 = _p("BI_AZURE_P2", "70d33638-9c74-4d01-bfd3-562de28bd4ba", "PowerBI")
ADALLOM_S_O365 = _p("ADALLOM_S_O365", "8c098270-9dd4-4350-9b30-ba4703f3b36b", "Adallom")
LOCKBOX_ENTERPRISE = _p("LOCKBOX_ENTERPRISE", "9f431833-0334-42de-a7dc-70aa40db46db", "exchange")
ATP_ENTERPRISE = _p("ATP_ENTERPRISE", "f20fedf3-f3c3-43c3-8267-2bfdd51c0939", "exchange")
THREAT_INTELLIGENCE = _p("THREAT_INTELLIGENCE", "8e0c0a52-6a6c-4d40-8370-dd62790dcd70", "exchange")
FORMS_PLAN_E3 = _p("FORMS_PLAN_E3", "2789c901-c14e-48ab-a76a-be334d9d793a", "OfficeForms")
FORMS_PLAN_E5 = _p("FORMS_PLAN_E5", "e212cbc7-0961-4c40-9825-01117710dcb1", "OfficeForms")
SWAY = _p("SWAY", "a23b959c-7ce8-4e57-9140-b90eb88a9e97", "Sway")
PROJECTWORKMANAGEMENT = _p(
    "PROJECTWORKMANAGEMENT", "b737dad2-2f6c-4c65-90e3-ca563267e8b9", "ProjectWorkManagement"
)
FLOW_O365_P2 = _p("FLOW_O365_P2", "76846ad7-7776-4c40-a281-a386362dd1b9", "ProcessSimple")
FLOW_O365_P3 = _p("FLOW_O365_P3", "07699545-9485-468e-95b6-2fca3738be01", "ProcessSimple")
FLOW_P2_VIRAL = _p("FLOW_P2_VIRAL", "50e68c76-46c6-4674-81f9-75456511b170", "ProcessSimple")
POWERAPPS_O365_P2 = _p(
    "POWERAPPS_O365_P2", "c68f8d98-5534-41c8-bf36-22fa496fa792", "PowerAppsService"
)
POWERAPPS_O365_P3 = _p(
    "POWERAPPS_O365_P3", "9c0dab89-a30c-4117-86e7-97bda240acd2", "PowerAppsService"
)
AAD_PREMIUM = _p("AAD_PREMIUM", "41781fb2-bc02-4b7c-bd55-b576c07bb09d", "AADPremiumService")
AAD_PREMIUM_P2 = _p("AAD_PREMIUM_P2", "eec0eb4f-6444-4f95-aba0-50c24d67f998", "AADPremiumService")
INTUNE_A = _p("INTUNE_A", "c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "SCO")
RMS_S_ENTERPRISE = _p("RMS_S_ENTERPRISE", "bea4c11e-220a-4e6d-8eb8-8ea15d019f90", "RMSOnline")
RMS_S_PREMIUM = _p("RMS_S_PREMIUM", "6c57d4b6-3b23-47a5-9bc9-69f17b4947b3", "RMSOnline")
MFA_PREMIUM = _p("MFA_PREMIUM", "8a256a2b-b617-496d-b51b-e76466e88db0", "MultiFactorService")
WIN10_PRO_ENT_SUB = _p(
    "WIN10_PRO_ENT_SUB", "21b439ba-a0ca-424f-a6cc-52f954a5b111", "WindowsDefenderATP"
)
VISIO_CLIENT_SUBSCRIPTION = _p(
    "VISIO_CLIENT_SUBSCRIPTION", "663a804f-1c30-4ff0-9915-9db84f0d1cea", "Visio"
)
VISIOONLINE = _p("VISIOONLINE", "2bdbaf8f-738f-4ac7-9234-3c3ee2ce7d0f", "SharePoint")
PROJECT_CLIENT_SUBSCRIPTION = _p(
    "PROJECT_CLIENT_SUBSCRIPTION", "fafd7243-e5c1-4a3a-9e40-495efcb1d3c3", "ProjectClient"
)
SHAREPOINT_PROJECT = _p("SHAREPOINT_PROJECT", "fe71d6c3-a2ea-4499-9778-da042bf08063", "SharePoint")

_O365_CORE = (
    EXCHANGE_S_ENTERPRISE,
    SHAREPOINTENTERPRISE,
    SHAREPOINTWAC,
    MCOSTANDARD,
    TEAMS1,
    OFFICESUBSCRIPTION,
    YAMMER_ENTERPRISE,
    SWAY,
    PROJECTWORKMANAGEMENT,
)
_EMS_E3 = (AAD_PREMIUM, INTUNE_A, RMS_S_ENTERPRISE, RMS_S_PREMIUM, MFA_PREMIUM)

SKU_CATALOG: tuple[SkuDefinition, ...] = (
    SkuDefinition(
        "SPE_E3",
        "05e9a617-0261-4cee-bb44-138d3ef5d965",
        "Microsoft 365 E3",
        (*_O365_CORE, *_EMS_E3, WIN10_PRO_ENT_SUB, FORMS_PLAN_E3, FLOW_O365_P2, POWERAPPS_O365_P2),
    ),
    SkuDefinition(
        "SPE_E5",
        "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
        "Microsoft 365 E5",
        (
            *_O365_CORE,
            *_EMS_E3,
            AAD_PREMIUM_P2,
            WIN10_PRO_ENT_SUB,
            MCOEV,
            MCOMEETADV,
            BI_AZURE_P2,
            ADALLOM_S_O365,
            LOCKBOX_ENTERPRISE,
            ATP_ENTERPRISE,
            THREAT_INTELLIGENCE,
            FORMS_PLAN_E5,
            FLOW_O365_P3,
            POWERAPPS_O365_P3,
        ),
    ),
    SkuDefinition(
        "ENTERPRISEPREMIUM",
        "c7df2760-2c81-4ef7-b578-5b5392b571df",
        "Office 365 E5",
        (
            *_O365_CORE,
            MCOEV,
            MCOMEETADV,
            BI_AZURE_P2,
            ADALLOM_S_O365,
            LOCKBOX_ENTERPRISE,
            ATP_ENTERPRISE,
            THREAT_INTELLIGENCE,
            FORMS_PLAN_E5,
            FLOW_O365_P3,
            POWERAPPS_O365_P3,
        ),
    ),
    SkuDefinition(
        "ENTERPRISEPACK",
        "6fd2c87f-b296-42f0-b197-1e91e994b900",
        "Office 365 E3",
        (*_O365_CORE, FORMS_PLAN_E3, FLOW_O365_P2, POWERAPPS_O365_P2),
    ),
    SkuDefinition(
        "EMS",
        "efccb6f7-5641-4e0e-bd10-b4976e1bf68e",
        "Enterprise Mobility + Security E3",
        _EMS_E3,
    ),
    SkuDefinition(
        "POWER_BI_PRO",
        "f8a1db68-be16-40ed-86d5-cb42ce701560",
        "Power BI Pro",
        (BI_AZURE_P2, EXCHANGE_S_FOUNDATION),
    ),
    SkuDefinition(
        "FLOW_FREE",
        "f30db892-07e9-47e9-837c-80727f46fd3d",
        "Microsoft Power Automate Free",
        (FLOW_P2_VIRAL, EXCHANGE_S_FOUNDATION),
    ),
    SkuDefinition(
        "TEAMS_EXPLORATORY",
        "710779e8-3d4a-4c88-adb9-386c958d1fdf",
        "Microsoft Teams Exploratory",
        (TEAMS1, MCO_TEAMS_IW, SHAREPOINTWAC, PROJECTWORKMANAGEMENT, SWAY),
    ),
    SkuDefinition(
        "VISIOCLIENT",
        "c5928f49-12ba-48f7-ada3-0d743a3601d5",
        "Visio Plan 2",
        (VISIO_CLIENT_SUBSCRIPTION, VISIOONLINE, EXCHANGE_S_FOUNDATION),
    ),
    SkuDefinition(
        "PROJECTPREMIUM",
        "09015f9f-377f-4538-bbb5-f75ceb09358a",
        "Project Plan 5",
        (PROJECT_CLIENT_SUBSCRIPTION, SHAREPOINT_PROJECT, EXCHANGE_S_FOUNDATION),
    ),
)


# Microsoft 365 Copilot (skuId and plan ids from Microsoft's product names CSV, as in
# product_names.py). Not in SKU_CATALOG: a synthetic tenant owns it only when asked
# (`Tenant.synthetic(copilot_seats=N)`), so the default tenant stays what other tests expect.
COPILOT_SKU = SkuDefinition(
    "Microsoft_365_Copilot",
    "639dec6b-bb19-468b-871c-c5c441c4b0cb",
    "Microsoft 365 Copilot",
    (
        ServicePlan("M365_COPILOT_APPS", "a62f8878-de10-42f3-b68f-6149a25ceb97", ""),
        ServicePlan("M365_COPILOT_TEAMS", "b95945de-b3bd-46db-8437-f2beb6ea2347", ""),
    ),
)
_KNOWN_SKUS = (*SKU_CATALOG, COPILOT_SKU)

SKU_BY_PART: dict[str, SkuDefinition] = {s.part_number: s for s in _KNOWN_SKUS}
SKU_BY_ID: dict[str, SkuDefinition] = {s.sku_id: s for s in _KNOWN_SKUS}
PLAN_BY_ID: dict[str, ServicePlan] = {p.id: p for s in _KNOWN_SKUS for p in s.plans}
PLAN_BY_NAME: dict[str, ServicePlan] = {p.name: p for s in _KNOWN_SKUS for p in s.plans}

# Pairs Entra refuses to hold together (their service plans conflict): a group-based assignment of
# one to a holder of the other ends in state Error, error MutuallyExclusiveViolation.
MUTUALLY_EXCLUSIVE: frozenset[frozenset[str]] = frozenset(
    {
        frozenset({SKU_BY_PART["SPE_E3"].sku_id, SKU_BY_PART["SPE_E5"].sku_id}),
        frozenset({SKU_BY_PART["ENTERPRISEPACK"].sku_id, SKU_BY_PART["ENTERPRISEPREMIUM"].sku_id}),
    }
)

_PROVISIONED_SERVICES = frozenset({"exchange", "SharePoint", "MicrosoftCommunicationsOnline"})

# --------------------------------------------------------------------------------------------
# Object shapes
# --------------------------------------------------------------------------------------------

#: Every user property the tenant stores (the listable ones of the v1.0 user resource).
USER_PROPERTIES: tuple[str, ...] = (
    "id",
    "accountEnabled",
    "ageGroup",
    "assignedLicenses",
    "assignedPlans",
    "businessPhones",
    "city",
    "companyName",
    "consentProvidedForMinor",
    "country",
    "createdDateTime",
    "creationType",
    "deletedDateTime",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeLeaveDateTime",
    "employeeId",
    "employeeOrgData",
    "employeeType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "faxNumber",
    "givenName",
    "identities",
    "imAddresses",
    "isManagementRestricted",
    "isResourceAccount",
    "jobTitle",
    "lastPasswordChangeDateTime",
    "legalAgeGroupClassification",
    "licenseAssignmentStates",
    "mail",
    "mailNickname",
    "mobilePhone",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesProvisioningErrors",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "passwordPolicies",
    "postalCode",
    "preferredDataLocation",
    "preferredLanguage",
    "provisionedPlans",
    "proxyAddresses",
    "securityIdentifier",
    "serviceProvisioningErrors",
    "showInAddressList",
    "signInSessionsValidFromDateTime",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
)
USER_COLLECTIONS = frozenset(
    {
        "assignedLicenses",
        "assignedPlans",
        "businessPhones",
        "identities",
        "imAddresses",
        "licenseAssignmentStates",
        "onPremisesProvisioningErrors",
        "otherMails",
        "provisionedPlans",
        "proxyAddresses",
        "serviceProvisioningErrors",
    }
)
LICENSE_PROPERTIES = frozenset(
    {"assignedLicenses", "assignedPlans", "licenseAssignmentStates", "provisionedPlans"}
)

#: Every group property the tenant stores.
GROUP_PROPERTIES: tuple[str, ...] = (
    "id",
    "assignedLicenses",
    "classification",
    "createdDateTime",
    "creationOptions",
    "deletedDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "isManagementRestricted",
    "licenseProcessingState",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesProvisioningErrors",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "serviceProvisioningErrors",
    "theme",
    "uniqueName",
    "visibility",
)
GROUP_COLLECTIONS = frozenset(
    {
        "assignedLicenses",
        "creationOptions",
        "groupTypes",
        "onPremisesProvisioningErrors",
        "proxyAddresses",
        "resourceBehaviorOptions",
        "resourceProvisioningOptions",
        "serviceProvisioningErrors",
    }
)

_GIVEN = [
    "Adele",
    "Alex",
    "Allan",
    "Ben",
    "Bianca",
    "Carlos",
    "Chloe",
    "Christie",
    "Debra",
    "Diego",
    "Elena",
    "Emily",
    "Enrico",
    "Fatima",
    "Grady",
    "Hana",
    "Henrietta",
    "Isaiah",
    "Ivan",
    "Jamal",
    "Johanna",
    "Joni",
    "Kenji",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Nora",
    "Olga",
    "Omar",
    "Patti",
    "Pradeep",
    "Quinn",
    "Raul",
    "Sakura",
    "Sofia",
    "Tomas",
    "Wei",
    "Yuki",
    "Zara",
]
_SURNAMES = [
    "Vance",
    "Wilber",
    "Deyoung",
    "Adams",
    "Brown",
    "Cruz",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Gates",
    "Hansen",
    "Ito",
    "Johnson",
    "Khan",
    "Kowalski",
    "Larsen",
    "Lopez",
    "Martin",
    "Mueller",
    "Nakamura",
    "Novak",
    "Okafor",
    "Patel",
    "Petrov",
    "Quispe",
    "Rossi",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Torres",
    "Ueda",
    "Varga",
    "Wagner",
    "Williams",
    "Xu",
    "Yilmaz",
    "Zhang",
]
_DEPARTMENTS = {
    "Sales": ("Account Executive", "Sales Manager", "Inside Sales Rep"),
    "Marketing": ("Marketing Manager", "Content Writer", "Brand Strategist"),
    "Engineering": ("Software Engineer", "Senior Engineer", "Engineering Manager", "SRE"),
    "Finance": ("Accountant", "Financial Analyst", "Controller"),
    "HR": ("HR Generalist", "Recruiter", "HR Manager"),
    "IT": ("IT Administrator", "Help Desk Technician", "Systems Engineer"),
    "Legal": ("Counsel", "Paralegal"),
    "Operations": ("Operations Analyst", "Logistics Coordinator", "Facilities Manager"),
    "Retail": ("Retail Manager", "Store Associate"),
    "Research": ("Research Scientist", "Data Analyst"),
}
_LOCATIONS = (
    ("US", "United States", "Redmond", "WA", "98052", "en-US"),
    ("US", "United States", "New York", "NY", "10001", "en-US"),
    ("GB", "United Kingdom", "London", None, "EC1A 1BB", "en-GB"),
    ("DE", "Germany", "Berlin", None, "10115", "de-DE"),
    ("FR", "France", "Paris", None, "75001", "fr-FR"),
    ("NL", "Netherlands", "Amsterdam", None, "1012", "nl-NL"),
    ("IN", "India", "Bengaluru", "KA", "560001", "en-IN"),
    ("JP", "Japan", "Tokyo", None, "100-0001", "ja-JP"),
    ("CA", "Canada", "Toronto", "ON", "M5H", "en-CA"),
    ("AU", "Australia", "Sydney", "NSW", "2000", "en-AU"),
    ("BR", "Brazil", "Sao Paulo", "SP", "01000", "pt-BR"),
)
_GUEST_DOMAINS = ("fabrikam.com", "northwindtraders.com", "adatum.com", "gmail.com", "outlook.com")

# --------------------------------------------------------------------------------------------
# Change log
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One recorded change to a user or group, in the order it happened (`seq` rises by one)."""

    seq: int
    kind: str  # "users" | "groups"
    object_id: str
    op: str  # "create" | "update" | "soft_delete" | "restore" | "hard_delete"
    props: frozenset[str] = frozenset()
    members_added: tuple[str, ...] = ()
    members_removed: tuple[str, ...] = ()


@dataclass
class _Direct:
    disabled: tuple[str, ...]
    assigned: str


@dataclass
class _Profile:
    guest: bool
    enabled: bool
    direct: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    license_groups: list[int] = field(default_factory=list)


_EMPTY_EXTENSION_ATTRIBUTES = {f"extensionAttribute{i}": None for i in range(1, 16)}
# New users start from this template; its empty lists and the extension-attribute dict are shared
# between users (every mutation replaces values instead of changing them in place).
_USER_TEMPLATE: dict[str, Any] = dict.fromkeys(USER_PROPERTIES)
_USER_TEMPLATE.update({prop: [] for prop in USER_COLLECTIONS})
_USER_TEMPLATE["onPremisesExtensionAttributes"] = _EMPTY_EXTENSION_ATTRIBUTES


class _FastRandom(random.Random):
    """random.Random with cheaper choice/randrange (one random() call each, no rejection loop).

    Slightly biased for huge ranges, which fake data does not mind; deterministic per seed.
    """

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))


def _iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid(rng: random.Random) -> str:
    """A random (version 4) UUID string drawn from `rng` (fast: no uuid.UUID object)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class Tenant:
    """A Microsoft 365 tenant: organization, SKUs, subscriptions, users and groups.

    Build one with `Tenant.synthetic(...)` (deterministic for the same arguments) or start empty
    with `Tenant(...)` and add objects with the mutation methods. `today` (settable) is the
    tenant's current date: reports use it to decide which days exist, and mutation timestamps fall
    on it.
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        domain: str = "contoso.onmicrosoft.com",
        seed: int = 0,
        today: dt.date | None = None,
        display_name: str = "Contoso",
    ) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        # Whether the tenant holds Microsoft Entra ID P1 or P2 (user signInActivity needs it).
        self.entra_premium = True
        # (endpoint, property lower-cased) pairs Graph refuses in $select here, as delta endpoints,
        # national clouds and older tenants do for some properties; see `refuse_property`.
        self.refused_properties: set[tuple[str, str]] = set()
        self._today: dt.date = today or dt.datetime.now(dt.UTC).date()
        self._base_seconds = self._today.toordinal() * 86400 + 9 * 3600
        self._rng: random.Random = _FastRandom(f"tenant-{seed}")
        self.tenant_id: str = tenant_id or _uuid(self._rng)
        self.domain = domain
        self.default_domain = domain.split(".", 1)[0] + ".com"
        self.display_name = display_name
        self.users: dict[str, dict[str, Any]] = {}
        self.deleted_users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.deleted_groups: dict[str, dict[str, Any]] = {}
        self.skus: list[dict[str, Any]] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.organization: dict[str, Any] = {}
        self._sku_index: dict[str, dict[str, Any]] = {}
        self._direct: dict[str, dict[str, _Direct]] = {}
        self._members: dict[str, dict[str, None]] = {}
        self._member_of: dict[str, dict[str, None]] = {}
        self._plan_history: dict[str, dict[str, dict[str, Any]]] = {}
        self._cleared: dict[str, set[str]] = {}
        self._order: dict[str, list[str]] = {"users": [], "groups": []}
        self._changes: list[Change] = []
        self._change_seqs: list[int] = []
        self.version = 0
        self._token_serial = 0
        self._expired_floor = 0
        self._resync_floor = 0
        self._plans_cache: dict[Any, tuple[list[Any], list[Any]]] = {}
        self._day_text: dict[int, str] = {}
        self._build_organization()

    def refuse_property(self, endpoint: str, name: str) -> None:
        """Make Graph refuse `$select=<name>` on `endpoint` (`users`, `users/delta`, `groups`,
        `groups/delta`, `organization`, `subscribedSkus`, `directory/subscriptions`,
        `directory/deletedItems`) with HTTP 400, as it does for properties an endpoint, cloud or
        tenant does not support."""
        with self.lock:
            self.refused_properties.add((endpoint, name.lower()))

    @property
    def today(self) -> dt.date:
        """The tenant's current date (settable: tests move time forward with it)."""
        return self._today

    @today.setter
    def today(self, value: dt.date) -> None:
        with self.lock:
            self._today = value
            self._base_seconds = value.toordinal() * 86400 + 9 * 3600

    # ---------------------------------------------------------------- construction

    @classmethod
    def several(cls, count: int, *, seed: int, **synthetic: Any) -> list[Tenant]:
        """`count` tenants alike: the first `synthetic(seed=seed)`, then `numbered` 2, 3, ..."""
        first = cls.synthetic(seed=seed, **synthetic)
        return [first] + [cls.numbered(n, seed=seed, **synthetic) for n in range(2, count + 1)]

    @classmethod
    def numbered(cls, number: int, *, seed: int, **synthetic: Any) -> Tenant:
        """Tenant `number` (2, 3, ...) of a set like the first (`seed`): its own seed
        (seed + number - 1), hence tenant id, domain tenant<number>.onmicrosoft.com and name."""
        return cls.synthetic(
            seed=seed + number - 1,
            domain=f"tenant{number}.onmicrosoft.com",
            display_name=f"Tenant {number}",
            **synthetic,
        )

    @classmethod
    def synthetic(
        cls,
        users: int = 300,
        groups: int = 20,
        seed: int = 7,
        today: dt.date | None = None,
        *,
        copilot_seats: int = 0,
        entra_premium: bool = True,
        domain: str = "contoso.onmicrosoft.com",
        display_name: str = "Contoso",
    ) -> Tenant:
        """A tenant with `users` users and `groups` groups, identical for identical arguments.

        Variety: members and guests, disabled accounts still holding licenses, direct and
        group-inherited licenses (with CountViolation / MutuallyExclusiveViolation errors),
        disabled service plans, unlicensed users, suspended/warning/locked-out units, a mix of
        cloud-only and directory-synced accounts. The first four groups assign licenses
        (Microsoft 365 E3, EMS E3, Power BI Pro, Visio Plan 2). Several tenants of one emulator
        need different seeds (the seed makes the tenant id) and domains.
        """
        tenant = cls(
            seed=seed,
            today=today or dt.date(2026, 11, 26),
            domain=domain,
            display_name=display_name,
        )
        tenant._populate(users, groups)
        tenant.entra_premium = entra_premium
        if copilot_seats:
            tenant._add_copilot(copilot_seats)
        return tenant

    def _add_copilot(self, seats: int) -> None:
        """A Microsoft 365 Copilot subscription of `seats` + 2 units (two unassigned), assigned
        directly to the first `seats` enabled members holding another license (Copilot is an
        add-on to a Microsoft 365 or Office 365 suite), on days spread over the subscription's
        life (30 to 119 days ago), so that a 90-day inactivity threshold finds seats on both
        sides."""
        self._add_subscription(COPILOT_SKU, seats + 2, "Enabled", age_days=120)
        holders = [
            uid
            for uid, user in self.users.items()
            if user.get("userType") != "Guest"
            and user.get("accountEnabled") is not False
            and user.get("assignedLicenses")
        ][:seats]
        for n, uid in enumerate(holders):
            assigned = self._days_ago(30 + (n * 37) % 90)
            self._direct.setdefault(uid, {})[COPILOT_SKU.sku_id] = _Direct((), assigned)
            self._apply_licenses(uid, self.users[uid], None)
        self.version = 0

    def _now(self) -> str:
        now = dt.datetime.now(dt.UTC)
        return _iso(dt.datetime.combine(self.today, now.time()).replace(microsecond=0))

    def _days_ago(self, days: float) -> str:
        """An ISO timestamp `days` before 09:00 UTC of `today` (fast: no strftime)."""
        seconds = self._base_seconds - int(days * 86400)
        day, rest = divmod(seconds, 86400)
        text = self._day_text.get(day)
        if text is None:
            text = dt.date.fromordinal(day).isoformat()
            self._day_text[day] = text
        hours, rest = divmod(rest, 3600)
        return f"{text}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"

    @staticmethod
    def _month_start_of(stamp: str) -> str:
        """The first day of the quarter after the one holding `stamp`, 09:00 UTC.

        Licenses are handed out in quarterly batches, which also lets many users share one
        assignedPlans list (cheaper to build and to serve).
        """
        year, month = int(stamp[:4]), (int(stamp[5:7]) - 1) // 3 * 3 + 4
        if month > 12:
            year, month = year + 1, 1
        return f"{year:04d}-{month:02d}-01T09:00:00Z"

    def _build_organization(self) -> None:
        self.organization = {
            "id": self.tenant_id,
            "deletedDateTime": None,
            "businessPhones": ["+1 425 555 0100"],
            "city": "Redmond",
            "country": None,
            "countryLetterCode": "US",
            "createdDateTime": self._days_ago(2900),
            "defaultUsageLocation": None,
            "displayName": self.display_name,
            "isMultipleDataLocationsForServicesEnabled": None,
            "marketingNotificationEmails": [],
            "onPremisesLastSyncDateTime": self._days_ago(0.02),
            "onPremisesSyncEnabled": True,
            "partnerTenantType": None,
            "postalCode": "98052",
            "preferredLanguage": "en",
            "securityComplianceNotificationMails": [],
            "securityComplianceNotificationPhones": [],
            "state": "WA",
            "street": "1 Microsoft Way",
            "technicalNotificationMails": [f"admin@{self.default_domain}"],
            "tenantType": "AAD",
            "directorySizeQuota": {"used": 0, "total": 300000},
            "privacyProfile": None,
            "assignedPlans": [],
            "provisionedPlans": [],
            "verifiedDomains": [
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": False,
                    "isInitial": True,
                    "name": self.domain,
                    "type": "Managed",
                },
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": True,
                    "isInitial": False,
                    "name": self.default_domain,
                    "type": "Managed",
                },
            ],
        }

    def _add_subscription(
        self,
        sku: SkuDefinition,
        units: int,
        status: str,
        *,
        is_trial: bool = False,
        age_days: int = 700,
    ) -> None:
        rng = self._rng
        created = self._days_ago(age_days)
        next_life = self._days_ago(-(30 + rng.randrange(330))) if status == "Enabled" else None
        if status in ("Warning", "Suspended"):
            next_life = self._days_ago(-rng.randrange(5, 60))
        sub = {
            "id": _uuid(rng),
            "commerceSubscriptionId": _uuid(rng),
            "createdDateTime": created,
            "isTrial": is_trial,
            "nextLifecycleDateTime": next_life,
            "ownerId": None,
            "ownerTenantId": None,
            "ownerType": None,
            "serviceStatus": [
                {
                    "servicePlanId": p.id,
                    "servicePlanName": p.name,
                    "provisioningStatus": "Success" if status != "Suspended" else "Disabled",
                    "appliesTo": p.applies_to,
                }
                for p in sku.plans
            ],
            "skuId": sku.sku_id,
            "skuPartNumber": sku.part_number,
            "status": status,
            "totalLicenses": units,
        }
        self.subscriptions.append(sub)
        skud = self._sku_index.get(sku.sku_id)
        if skud is None:
            skud = {
                "accountId": self.tenant_id,
                "accountName": self.display_name,
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": 0,
                "id": f"{self.tenant_id}_{sku.sku_id}",
                "prepaidUnits": {"enabled": 0, "lockedOut": 0, "suspended": 0, "warning": 0},
                "servicePlans": [
                    {
                        "servicePlanId": p.id,
                        "servicePlanName": p.name,
                        "provisioningStatus": "Success",
                        "appliesTo": p.applies_to,
                    }
                    for p in sku.plans
                ],
                "skuId": sku.sku_id,
                "skuPartNumber": sku.part_number,
                "subscriptionIds": [],
            }
            self._sku_index[sku.sku_id] = skud
            self.skus.append(skud)
        key = {
            "Enabled": "enabled",
            "Warning": "warning",
            "Suspended": "suspended",
            "LockedOut": "lockedOut",
        }[status]
        skud["prepaidUnits"][key] += units
        skud["subscriptionIds"].append(sub["commerceSubscriptionId"])
        units_of = skud["prepaidUnits"]
        for state, name in (
            ("enabled", "Enabled"),
            ("warning", "Warning"),
            ("suspended", "Suspended"),
            ("lockedOut", "LockedOut"),
        ):
            if units_of[state]:
                skud["capabilityStatus"] = name
                break
        for plan in skud["servicePlans"]:
            plan["provisioningStatus"] = (
                "Disabled" if skud["capabilityStatus"] in ("Suspended", "LockedOut") else "Success"
            )
        self._refresh_org_plans()

    def _refresh_org_plans(self) -> None:
        assigned: dict[str, dict[str, Any]] = {}
        provisioned: list[dict[str, Any]] = []
        for sub in self.subscriptions:
            sku = SKU_BY_ID[sub["skuId"]]
            status = self._sku_index[sku.sku_id]["capabilityStatus"]
            for plan in sku.plans:
                if plan.id not in assigned:
                    assigned[plan.id] = {
                        "assignedDateTime": sub["createdDateTime"],
                        "capabilityStatus": status,
                        "service": plan.service,
                        "servicePlanId": plan.id,
                    }
        for entry in assigned.values():
            if entry["service"] in _PROVISIONED_SERVICES:
                provisioned.append(
                    {
                        "capabilityStatus": entry["capabilityStatus"],
                        "provisioningStatus": "Success",
                        "service": entry["service"],
                    }
                )
        self.organization["assignedPlans"] = list(assigned.values())
        self.organization["provisionedPlans"] = provisioned

    def _populate(self, n_users: int, n_groups: int) -> None:
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of small dicts: the cyclic GC would make this quadratic
        try:
            self._populate_objects(n_users, n_groups)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _populate_objects(self, n_users: int, n_groups: int) -> None:
        rng = _FastRandom(f"users-{self.seed}-{n_users}-{n_groups}")
        profiles = [self._profile(rng) for _ in range(n_users)]
        need: dict[str, int] = dict.fromkeys(SKU_BY_PART, 0)
        license_groups = ("SPE_E3", "EMS", "POWER_BI_PRO", "VISIOCLIENT")[: max(0, n_groups)]
        for prof in profiles:
            parts = {p for p, _ in prof.direct}
            parts.update(license_groups[g] for g in prof.license_groups if g < len(license_groups))
            for part in parts:
                need[part] += 1
        catalog = SKU_BY_PART
        self._add_subscription(catalog["SPE_E3"], int(need["SPE_E3"] * 1.08) + 5, "Enabled")
        self._add_subscription(catalog["SPE_E3"], 10, "Warning", age_days=380)
        self._add_subscription(catalog["SPE_E5"], need["SPE_E5"] + 3, "Enabled")
        self._add_subscription(
            catalog["ENTERPRISEPREMIUM"], need["ENTERPRISEPREMIUM"] + 2, "Enabled"
        )
        self._add_subscription(catalog["ENTERPRISEPACK"], 25, "Suspended", age_days=1200)
        self._add_subscription(catalog["EMS"], need["EMS"] + 1, "Enabled")
        self._add_subscription(catalog["POWER_BI_PRO"], need["POWER_BI_PRO"] + 10, "Enabled")
        self._add_subscription(
            catalog["FLOW_FREE"], max(10000, need["FLOW_FREE"] * 2), "Enabled", age_days=900
        )
        self._add_subscription(
            catalog["TEAMS_EXPLORATORY"],
            max(100, need["TEAMS_EXPLORATORY"] + 5),
            "Warning",
            is_trial=True,
            age_days=200,
        )
        visio = max(1, int(need["VISIOCLIENT"] * 0.85))  # the licensing group overflows
        self._add_subscription(catalog["VISIOCLIENT"], visio, "Enabled", age_days=500)
        self._add_subscription(catalog["PROJECTPREMIUM"], need["PROJECTPREMIUM"] + 2, "Enabled")
        self._add_subscription(catalog["PROJECTPREMIUM"], 5, "LockedOut", age_days=1500)

        group_ids = [self._make_group(rng, index, n_groups) for index in range(n_groups)]
        other_groups = group_ids[len(license_groups) :]
        for index, prof in enumerate(profiles):
            uid = self._make_user(rng, index, prof)
            for g in prof.license_groups:
                if g < len(group_ids):
                    self._link(group_ids[g], uid)
            if other_groups:
                for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
                    self._link(other_groups[rng.randrange(len(other_groups))], uid)
        for uid in self.users:
            if self._direct.get(uid) or self._license_groups_of(uid):
                self._apply_licenses(uid, self.users[uid], None)
        # A few soft-deleted users and groups sit in the recycle bin.
        for uid in list(self.users)[7 :: max(50, n_users // 3 or 1)][:5]:
            self._soft_delete_user(uid, record=False, when=self._days_ago(rng.randrange(1, 25)))
        self.version = 0

    def _profile(self, rng: random.Random) -> _Profile:
        guest = rng.random() < 0.08
        prof = _Profile(guest=guest, enabled=rng.random() > 0.07)
        if guest:
            if rng.random() < 0.04:
                prof.direct.append(("FLOW_FREE", ()))
            return prof
        x = rng.random()
        if x < 0.50:
            disabled = ("YAMMER_ENTERPRISE", "SWAY") if rng.random() < 0.2 else ()
            prof.direct.append(("SPE_E3", disabled))
            if rng.random() < 0.1:
                prof.license_groups.append(0)
        elif x < 0.62:
            prof.direct.append(("SPE_E5", ("MCOEV",) if rng.random() < 0.05 else ()))
            if rng.random() < 0.03:
                prof.license_groups.append(0)  # -> MutuallyExclusiveViolation
        elif x < 0.70:
            prof.direct.append(("ENTERPRISEPREMIUM", ()))
        elif x < 0.72:
            prof.direct.append(("ENTERPRISEPACK", ()))
        elif x < 0.82:
            prof.license_groups.append(0)
        if rng.random() < 0.2:
            prof.license_groups.append(1)
        if rng.random() < 0.15:
            prof.direct.append(("POWER_BI_PRO", ()))
        elif rng.random() < 0.06:
            prof.license_groups.append(2)
        if rng.random() < 0.04:
            prof.license_groups.append(3)
        elif rng.random() < 0.01:
            prof.direct.append(("VISIOCLIENT", ()))
        if rng.random() < 0.02:
            prof.direct.append(("PROJECTPREMIUM", ()))
        if rng.random() < 0.2:
            prof.direct.append(("FLOW_FREE", ()))
        if rng.random() < 0.01:
            prof.direct.append(("TEAMS_EXPLORATORY", ()))
        return prof

    def _make_user(self, rng: random.Random, index: int, prof: _Profile) -> str:
        uid = _uuid(rng)
        given = rng.choice(_GIVEN)
        surname = rng.choice(_SURNAMES)
        nick = f"{given}.{surname}{index}".lower()
        created_days = rng.uniform(20, 2800)
        created = self._days_ago(created_days)
        licensed = bool(prof.direct or prof.license_groups)
        loc = rng.choice(_LOCATIONS)
        user = _USER_TEMPLATE.copy()
        user.update(
            id=uid,
            accountEnabled=prof.enabled,
            createdDateTime=created,
            displayName=f"{given} {surname}",
            givenName=given,
            surname=surname,
            securityIdentifier=f"S-1-12-1-{rng.getrandbits(32)}-{rng.getrandbits(32)}-"
            f"{rng.getrandbits(32)}-{rng.getrandbits(32)}",
            signInSessionsValidFromDateTime=created,
        )
        if prof.guest:
            ext = rng.choice(_GUEST_DOMAINS)
            mail = f"{given}.{surname}{index}@{ext}".lower()
            accepted = rng.random() < 0.85
            user.update(
                userType="Guest",
                mail=mail,
                mailNickname=mail.replace("@", "_"),
                userPrincipalName=f"{mail.replace('@', '_')}#EXT#@{self.domain}",
                creationType="Invitation",
                externalUserState="Accepted" if accepted else "PendingAcceptance",
                externalUserStateChangeDateTime=self._days_ago(created_days - 1),
                otherMails=[mail],
                proxyAddresses=[f"SMTP:{mail}"],
                identities=[
                    {
                        "signInType": "userPrincipalName",
                        "issuer": self.domain,
                        "issuerAssignedId": f"{mail.replace('@', '_')}#EXT#@{self.domain}",
                    }
                ],
                companyName=ext.split(".")[0].title() if rng.random() < 0.5 else None,
                usageLocation=loc[0] if licensed else None,
            )
        else:
            dept = rng.choice(list(_DEPARTMENTS))
            upn = f"{nick}@{self.default_domain}"
            synced = rng.random() < 0.45
            user.update(
                userType="Member",
                mail=upn,
                mailNickname=nick,
                userPrincipalName=upn,
                department=dept,
                jobTitle=rng.choice(_DEPARTMENTS[dept]),
                companyName="Contoso Ltd",
                officeLocation=f"{rng.randrange(1, 40)}/{rng.randrange(1000, 3999)}",
                businessPhones=[f"+1 425 555 {rng.randrange(10000):04d}"]
                if rng.random() < 0.8
                else [],
                mobilePhone=f"+1 206 555 {rng.randrange(10000):04d}"
                if rng.random() < 0.4
                else None,
                city=loc[2],
                country=loc[1],
                state=loc[3],
                postalCode=loc[4],
                streetAddress=f"{rng.randrange(1, 999)} Main Street",
                preferredLanguage=loc[5],
                usageLocation=loc[0] if licensed or rng.random() < 0.7 else None,
                employeeId=f"E{100000 + index}",
                employeeType=rng.choice(("Employee", "Employee", "Employee", "Contractor")),
                employeeHireDate=self._days_ago(created_days + rng.uniform(0, 30)),
                employeeOrgData={"division": dept, "costCenter": f"CC-{rng.randrange(100, 999)}"}
                if rng.random() < 0.6
                else None,
                lastPasswordChangeDateTime=self._days_ago(rng.uniform(0, min(created_days, 400))),
                passwordPolicies="DisablePasswordExpiration" if rng.random() < 0.1 else None,
                proxyAddresses=[f"SMTP:{upn}", f"smtp:{nick}@{self.domain}"],
                imAddresses=[upn] if licensed else [],
                identities=[
                    {
                        "signInType": "userPrincipalName",
                        "issuer": self.domain,
                        "issuerAssignedId": upn,
                    }
                ],
            )
            if synced:
                sam = nick.replace(".", "")[:20]
                user.update(
                    onPremisesSyncEnabled=True,
                    onPremisesImmutableId=f"{rng.getrandbits(64):016x}==",
                    onPremisesSamAccountName=sam,
                    onPremisesDomainName="contoso.local",
                    onPremisesUserPrincipalName=f"{sam}@contoso.local",
                    onPremisesDistinguishedName=(
                        f"CN={given} {surname},OU=Users,DC=contoso,DC=local"
                    ),
                    onPremisesSecurityIdentifier=f"S-1-5-21-{rng.getrandbits(30)}-"
                    f"{rng.getrandbits(30)}-{rng.getrandbits(30)}-{1000 + index}",
                    onPremisesLastSyncDateTime=self._days_ago(rng.uniform(0.01, 0.5)),
                )
        self.users[uid] = user
        self._order["users"].append(uid)
        if prof.direct:
            when = min(self._month_start_of(created), self._days_ago(1))
            self._direct[uid] = {
                SKU_BY_PART[part].sku_id: _Direct(
                    tuple(sorted(PLAN_BY_NAME[name].id for name in disabled)), when
                )
                for part, disabled in prof.direct
            }
        return uid

    def _make_group(self, rng: random.Random, index: int, total: int) -> str:
        gid = _uuid(rng)
        licensing = {
            0: ("SG-License-M365-E3", "SPE_E3", ()),
            1: ("SG-License-EMS-E3", "EMS", ()),
            2: ("SG-License-PowerBI-Pro", "POWER_BI_PRO", ()),
            3: ("SG-License-Visio-Plan2", "VISIOCLIENT", ("VISIOONLINE",)),
        }
        group = dict.fromkeys(GROUP_PROPERTIES)
        for prop in GROUP_COLLECTIONS:
            group[prop] = []
        created = self._days_ago(rng.uniform(30, 2500))
        group.update(id=gid, createdDateTime=created, renewedDateTime=created)
        group["securityIdentifier"] = (
            f"S-1-12-1-{rng.getrandbits(32)}-{rng.getrandbits(32)}-{rng.getrandbits(32)}-"
            f"{rng.getrandbits(32)}"
        )
        if index in licensing and index < total:
            name, part, disabled = licensing[index]
            group.update(
                displayName=name,
                description=f"Members receive {SKU_BY_PART[part].display_name}",
                mailEnabled=False,
                mailNickname=name.lower(),
                securityEnabled=True,
                assignedLicenses=[
                    {
                        "disabledPlans": sorted(PLAN_BY_NAME[d].id for d in disabled),
                        "skuId": SKU_BY_PART[part].sku_id,
                    }
                ],
                licenseProcessingState={"state": "ProcessingComplete"},
                isAssignableToRole=False,
            )
        else:
            kind = rng.random()
            word = rng.choice(
                ("Project", "Team", "Region", "Program", "Community", "Office", "Squad")
            )
            topic = rng.choice(
                ("Apollo", "Borealis", "Cascade", "Delta", "Everest", "Fjord", "Granite", "Helix")
            )
            name = f"{word} {topic} {index}"
            nick = f"{word}{topic}{index}".lower()
            if kind < 0.4:
                group.update(
                    displayName=name,
                    description=f"Microsoft 365 group for {name}",
                    groupTypes=["Unified"],
                    mail=f"{nick}@{self.default_domain}",
                    mailEnabled=True,
                    mailNickname=nick,
                    securityEnabled=False,
                    visibility=rng.choice(("Private", "Public")),
                    proxyAddresses=[f"SMTP:{nick}@{self.default_domain}"],
                    resourceProvisioningOptions=["Team"] if rng.random() < 0.6 else [],
                    expirationDateTime=None,
                )
            elif kind < 0.75:
                group.update(
                    displayName=f"SG-{name}",
                    description=None if rng.random() < 0.3 else f"Security group {name}",
                    mailEnabled=False,
                    mailNickname=nick,
                    securityEnabled=True,
                    isAssignableToRole=False,
                )
                if rng.random() < 0.4:
                    group.update(
                        onPremisesSyncEnabled=True,
                        onPremisesSamAccountName=nick[:20],
                        onPremisesDomainName="contoso.local",
                        onPremisesNetBiosName="CONTOSO",
                        onPremisesSecurityIdentifier=f"S-1-5-21-{rng.getrandbits(30)}-"
                        f"{rng.getrandbits(30)}-{rng.getrandbits(30)}-{5000 + index}",
                        onPremisesLastSyncDateTime=self._days_ago(rng.uniform(0.01, 0.5)),
                    )
            elif kind < 0.9:
                group.update(
                    displayName=f"DL-{name}",
                    description=f"Distribution list {name}",
                    mail=f"dl-{nick}@{self.default_domain}",
                    mailEnabled=True,
                    mailNickname=f"dl-{nick}",
                    securityEnabled=False,
                    proxyAddresses=[f"SMTP:dl-{nick}@{self.default_domain}"],
                )
            elif kind < 0.95:
                group.update(
                    displayName=f"MESG-{name}",
                    mail=f"mesg-{nick}@{self.default_domain}",
                    mailEnabled=True,
                    mailNickname=f"mesg-{nick}",
                    securityEnabled=True,
                    proxyAddresses=[f"SMTP:mesg-{nick}@{self.default_domain}"],
                )
            else:
                dept = rng.choice(list(_DEPARTMENTS))
                group.update(
                    displayName=f"Dyn-{dept}-{index}",
                    description=f"All {dept} staff",
                    groupTypes=["DynamicMembership"],
                    mailEnabled=False,
                    mailNickname=f"dyn-{dept.lower()}-{index}",
                    securityEnabled=True,
                    membershipRule=f'(user.department -eq "{dept}")',
                    membershipRuleProcessingState="On",
                )
        self.groups[gid] = group
        self._order["groups"].append(gid)
        self._members[gid] = {}
        return gid

    def _link(self, gid: str, uid: str) -> None:
        self._members.setdefault(gid, {})[uid] = None
        self._member_of.setdefault(uid, {})[gid] = None

    # ---------------------------------------------------------------- licensing engine

    def _available(self, sku_id: str) -> int:
        sku = self._sku_index.get(sku_id)
        if sku is None:
            return 0
        units = sku["prepaidUnits"]
        return int(units["enabled"]) + int(units["warning"]) - int(sku["consumedUnits"])

    def _license_groups_of(self, uid: str) -> list[str]:
        return [
            gid
            for gid in self._member_of.get(uid, ())
            if gid in self.groups and self.groups[gid]["assignedLicenses"]
        ]

    def _apply_licenses(self, uid: str, user: dict[str, Any], when: str | None) -> set[str]:
        """Recompute the license properties of `user`; returns the names of those that changed."""
        live = uid in self.users
        prev_states = {
            (s["skuId"], s["assignedByGroup"]): s for s in user["licenseAssignmentStates"]
        }
        prev_active = {entry["skuId"] for entry in user["assignedLicenses"]} if live else set()
        states: list[dict[str, Any]] = []
        disabled_of: dict[str, set[str]] = {}
        since: dict[str, str] = {}

        def hold(sku_id: str, disabled: Iterable[str], at: str) -> None:
            if sku_id in disabled_of:
                disabled_of[sku_id] &= set(disabled)
            else:
                disabled_of[sku_id] = set(disabled)
            since[sku_id] = min(since.get(sku_id, at), at)

        for sku_id, direct in self._direct.get(uid, {}).items():
            prev = prev_states.get((sku_id, None))
            stamp = direct.assigned
            if prev is not None and prev["disabledPlans"] == list(direct.disabled):
                stamp = prev["lastUpdatedDateTime"]
            states.append(
                {
                    "assignedByGroup": None,
                    "disabledPlans": list(direct.disabled),
                    "error": "None",
                    "lastUpdatedDateTime": stamp,
                    "skuId": sku_id,
                    "state": "Active",
                }
            )
            hold(sku_id, direct.disabled, direct.assigned)
        for gid in self._license_groups_of(uid):
            for lic in self.groups[gid]["assignedLicenses"]:
                sku_id = lic["skuId"]
                prev = prev_states.get((sku_id, gid))
                conflict = any(
                    frozenset({sku_id, other}) in MUTUALLY_EXCLUSIVE for other in disabled_of
                )
                if prev is not None and prev["state"] == "Active" and not conflict:
                    state, error = "Active", "None"
                elif conflict:
                    state, error = "Error", "MutuallyExclusiveViolation"
                elif (
                    sku_id not in disabled_of
                    and sku_id not in prev_active
                    and live
                    and self._available(sku_id) - self._pending(disabled_of, prev_active, sku_id)
                    <= 0
                ):
                    state, error = "Error", "CountViolation"
                else:
                    state, error = "Active", "None"
                stamp = when or self.groups[gid]["createdDateTime"]
                if (
                    prev is not None
                    and prev["state"] == state
                    and prev["error"] == error
                    and prev["disabledPlans"] == list(lic["disabledPlans"])
                ):
                    stamp = prev["lastUpdatedDateTime"]
                if when is None and state == "Active":
                    stamp = min(
                        max(stamp, self._month_start_of(user["createdDateTime"])),
                        self._days_ago(1),
                    )
                states.append(
                    {
                        "assignedByGroup": gid,
                        "disabledPlans": list(lic["disabledPlans"]),
                        "error": error,
                        "lastUpdatedDateTime": stamp,
                        "skuId": sku_id,
                        "state": state,
                    }
                )
                if state == "Active":
                    hold(sku_id, lic["disabledPlans"], stamp)
        assigned = [
            {"disabledPlans": sorted(disabled_of[s]), "skuId": s} for s in sorted(disabled_of)
        ]
        plans, provisioned = self._plans(uid, disabled_of, since)
        changed: set[str] = set()
        new_values = {
            "assignedLicenses": assigned,
            "assignedPlans": plans,
            "licenseAssignmentStates": states,
            "provisionedPlans": provisioned,
        }
        for prop, value in new_values.items():
            if user[prop] != value:
                user[prop] = value
                changed.add(prop)
        if live:
            now_active = set(disabled_of)
            for sku_id in now_active - prev_active:
                self._consume(sku_id, 1)
            for sku_id in prev_active - now_active:
                self._consume(sku_id, -1)
        return changed

    def _pending(self, holding: dict[str, set[str]], prev_active: set[str], sku_id: str) -> int:
        # Units this evaluation already took for `sku_id` but not yet counted: none, since each
        # SKU is counted once per user after evaluation.
        del holding, prev_active, sku_id
        return 0

    def _consume(self, sku_id: str, delta: int) -> None:
        sku = self._sku_index.get(sku_id)
        if sku is not None:
            sku["consumedUnits"] += delta

    def _plans(
        self, uid: str, disabled_of: dict[str, set[str]], since: dict[str, str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        history = self._plan_history.get(uid)
        key = (
            tuple((s, tuple(sorted(disabled_of[s])), since[s]) for s in sorted(disabled_of)),
            tuple(self._sku_index[s]["capabilityStatus"] for s in sorted(disabled_of)),
        )
        if history is None and key in self._plans_cache:
            return self._plans_cache[key]
        enabled_everywhere: dict[str, dict[str, Any]] = {}
        for sku_id in sorted(disabled_of, key=lambda s: since[s]):
            status = self._sku_index[sku_id]["capabilityStatus"]
            for plan in SKU_BY_ID[sku_id].plans:
                if plan.applies_to != "User":
                    continue
                cap = "Deleted" if plan.id in disabled_of[sku_id] else status
                current = enabled_everywhere.get(plan.id)
                if current is None or (
                    current["capabilityStatus"] != "Enabled" and cap == "Enabled"
                ):
                    enabled_everywhere[plan.id] = {
                        "assignedDateTime": since[sku_id],
                        "capabilityStatus": cap,
                        "service": plan.service,
                        "servicePlanId": plan.id,
                    }
        if history:
            for plan_id, entry in history.items():
                enabled_everywhere.setdefault(plan_id, entry)
        plans = list(enabled_everywhere.values())
        provisioned = [
            {
                "capabilityStatus": p["capabilityStatus"],
                "provisioningStatus": "Success",
                "service": p["service"],
            }
            for p in plans
            if p["service"] in _PROVISIONED_SERVICES and p["capabilityStatus"] != "Deleted"
        ]
        if history is None:
            if len(self._plans_cache) > 65536:
                self._plans_cache.clear()
            self._plans_cache[key] = (plans, provisioned)
        return plans, provisioned

    def _remember_plans(self, uid: str, user: dict[str, Any], when: str) -> None:
        """Keep plans of licenses being removed, as Entra does, with capabilityStatus Deleted."""
        history = self._plan_history.setdefault(uid, {})
        for entry in user["assignedPlans"]:
            if entry["capabilityStatus"] != "Deleted":
                history[entry["servicePlanId"]] = {
                    "assignedDateTime": when,
                    "capabilityStatus": "Deleted",
                    "service": entry["service"],
                    "servicePlanId": entry["servicePlanId"],
                }
            else:
                history.setdefault(entry["servicePlanId"], entry)

    # ---------------------------------------------------------------- change recording

    def _record(
        self,
        kind: str,
        object_id: str,
        op: str,
        props: Iterable[str] = (),
        *,
        added: Iterable[str] = (),
        removed: Iterable[str] = (),
    ) -> None:
        self.version += 1
        change = Change(
            self.version,
            kind,
            object_id,
            op,
            frozenset(props),
            tuple(added),
            tuple(removed),
        )
        self._changes.append(change)
        self._change_seqs.append(change.seq)

    def changes_between(self, after: int, upto: int) -> list[Change]:
        """Changes with `after < seq <= upto`, oldest first."""
        with self.lock:
            start = bisect.bisect_right(self._change_seqs, after)
            end = bisect.bisect_right(self._change_seqs, upto)
            return self._changes[start:end]

    def order(self, kind: str) -> list[str]:
        """Ids of every user or group ever created, in creation order (append-only)."""
        return self._order[kind]

    def cleared_properties(self, object_id: str) -> frozenset[str]:
        """Properties of an object that once held a value and were later set to null."""
        return frozenset(self._cleared.get(object_id, ()))

    def members_of(self, group_id: str) -> list[str]:
        """Current (non-deleted) member user ids of a group, in the order they joined."""
        with self.lock:
            return [uid for uid in self._members.get(group_id, ()) if uid in self.users]

    def groups_of(self, user_id: str) -> list[str]:
        """Ids of the current groups a user belongs to."""
        with self.lock:
            return [gid for gid in self._member_of.get(user_id, ()) if gid in self.groups]

    # ---------------------------------------------------------------- delta token bookkeeping

    def next_token_serial(self) -> int:
        """A fresh serial for a delta token (used to expire tokens issued before some point)."""
        with self.lock:
            self._token_serial += 1
            return self._token_serial

    def expire_delta_tokens(self, *, resync: bool = False) -> None:
        """Invalidate every delta token issued so far.

        Default: they answer as an expired token does (400 syncStateNotFound). With `resync=True`
        they answer as a sync reset does (410 Gone with a Location to restart from).
        """
        with self.lock:
            if resync:
                self._resync_floor = self._token_serial
            else:
                self._expired_floor = self._token_serial

    def token_state(self, serial: int) -> str:
        """ "valid", "expired" or "resync" for a delta token with this serial."""
        if serial <= self._resync_floor:
            return "resync"
        if serial <= self._expired_floor:
            return "expired"
        return "valid"

    # ---------------------------------------------------------------- lookups

    def sku(self, sku_id_or_part: str) -> dict[str, Any]:
        """The subscribedSku dict for a skuId or skuPartNumber (KeyError if the tenant has none)."""
        with self.lock:
            sku_id = (
                SKU_BY_PART[sku_id_or_part].sku_id
                if sku_id_or_part in SKU_BY_PART
                else (sku_id_or_part)
            )
            return self._sku_index[sku_id]

    @staticmethod
    def product_name(sku_id: str) -> str:
        """The product display name of a SKU (e.g. "Microsoft 365 E3"), or its id if unknown."""
        sku = SKU_BY_ID.get(sku_id)
        return sku.display_name if sku else sku_id

    def iter_users(self) -> Iterator[dict[str, Any]]:
        """Current users in creation order (a snapshot list, safe to iterate while mutating)."""
        with self.lock:
            return iter(list(self.users.values()))

    # ---------------------------------------------------------------- user mutations

    def _resolve_sku(self, sku_id: str) -> str:
        if sku_id in SKU_BY_PART:
            sku_id = SKU_BY_PART[sku_id].sku_id
        if sku_id not in self._sku_index:
            msg = f"the tenant has no subscription for SKU {sku_id!r}"
            raise KeyError(msg)
        return sku_id

    def _user(self, user_id: str) -> dict[str, Any]:
        user = self.users.get(user_id)
        if user is None:
            msg = f"no current user {user_id!r}"
            raise KeyError(msg)
        return user

    def _set_props(
        self, obj: dict[str, Any], props: dict[str, Any], allowed: tuple[str, ...]
    ) -> set[str]:
        changed: set[str] = set()
        for name, value in props.items():
            if name not in allowed or name == "id":
                msg = f"{name!r} is not a settable property"
                raise ValueError(msg)
            if obj.get(name) != value:
                if value is None and obj.get(name) not in (None, []):
                    self._cleared.setdefault(obj["id"], set()).add(name)
                obj[name] = value
                changed.add(name)
        return changed

    def add_user(self, **props: Any) -> str:
        """Create a user from Graph (camelCase) properties; returns its new id.

        Missing basics are filled in (displayName, userPrincipalName, mail, mailNickname,
        accountEnabled=True, userType="Member", createdDateTime=now). License properties cannot
        be given here: use `assign_license`. Recorded as a creation for delta queries.
        """
        with self.lock:
            uid = props.pop("id", None) or _uuid(self._rng)
            for name in LICENSE_PROPERTIES:
                if name in props:
                    msg = f"set licenses with assign_license, not {name!r}"
                    raise ValueError(msg)
            user = dict.fromkeys(USER_PROPERTIES)
            for prop in USER_COLLECTIONS:
                user[prop] = []
            nick = props.get("mailNickname") or f"user{len(self._order['users'])}"
            upn = props.get("userPrincipalName") or f"{nick}@{self.default_domain}"
            user.update(
                id=uid,
                accountEnabled=True,
                userType="Member",
                createdDateTime=self._now(),
                displayName=nick,
                mailNickname=nick,
                userPrincipalName=upn,
                mail=upn,
                proxyAddresses=[f"SMTP:{upn}"],
                identities=[
                    {
                        "signInType": "userPrincipalName",
                        "issuer": self.domain,
                        "issuerAssignedId": upn,
                    }
                ],
                onPremisesExtensionAttributes={
                    f"extensionAttribute{i}": None for i in range(1, 16)
                },
            )
            user["signInSessionsValidFromDateTime"] = user["createdDateTime"]
            self._set_props(user, props, USER_PROPERTIES)
            self.users[uid] = user
            self._order["users"].append(uid)
            self._record("users", uid, "create", (p for p in user if user[p] is not None))
            return uid

    def update_user(self, user_id: str, **props: Any) -> None:
        """Change user properties (camelCase); a value of None clears the property."""
        with self.lock:
            user = self._user(user_id)
            for name in LICENSE_PROPERTIES:
                if name in props:
                    msg = f"change licenses with assign_license/remove_license, not {name!r}"
                    raise ValueError(msg)
            changed = self._set_props(user, props, USER_PROPERTIES)
            if changed:
                self._record("users", user_id, "update", changed)

    def assign_license(self, user_id: str, sku_id: str, disabled_plans: Iterable[str] = ()) -> None:
        """Assign a SKU directly (skuId or skuPartNumber); `disabled_plans` are plan ids or names.

        Re-assigning an already assigned SKU replaces its disabled plans. Entra would refuse an
        assignment beyond the available units; the emulator allows it (consumedUnits then
        exceeds prepaidUnits), so tests can build over-assigned tenants.
        """
        with self.lock:
            user = self._user(user_id)
            sku_id = self._resolve_sku(sku_id)
            disabled = tuple(
                sorted(PLAN_BY_NAME[p].id if p in PLAN_BY_NAME else p for p in disabled_plans)
            )
            now = self._now()
            self._direct.setdefault(user_id, {})[sku_id] = _Direct(disabled, now)
            changed = self._apply_licenses(user_id, user, now)
            if changed:
                self._record("users", user_id, "update", changed)

    def remove_license(self, user_id: str, sku_id: str) -> None:
        """Remove a directly assigned SKU (ValueError if it is only inherited from a group)."""
        with self.lock:
            user = self._user(user_id)
            sku_id = self._resolve_sku(sku_id)
            direct = self._direct.get(user_id, {})
            if sku_id not in direct:
                msg = f"user {user_id} has no direct assignment of {sku_id}"
                raise ValueError(msg)
            now = self._now()
            self._remember_plans(user_id, user, now)
            del direct[sku_id]
            changed = self._apply_licenses(user_id, user, now)
            if changed:
                self._record("users", user_id, "update", changed)

    def _soft_delete_user(self, user_id: str, *, record: bool, when: str | None = None) -> None:
        user = self._user(user_id)
        del self.users[user_id]
        for entry in user["assignedLicenses"]:
            self._consume(entry["skuId"], -1)
        user["deletedDateTime"] = when or self._now()
        self.deleted_users[user_id] = user
        if record:
            self._record("users", user_id, "soft_delete")

    def soft_delete_user(self, user_id: str) -> None:
        """Delete a user into the recycle bin (deletedItems): its licenses stop counting."""
        with self.lock:
            self._soft_delete_user(user_id, record=True)

    def restore_user(self, user_id: str) -> None:
        """Restore a soft-deleted user with its licenses and memberships."""
        with self.lock:
            user = self.deleted_users.pop(user_id, None)
            if user is None:
                msg = f"no soft-deleted user {user_id!r}"
                raise KeyError(msg)
            user["deletedDateTime"] = None
            self.users[user_id] = user
            for entry in user["assignedLicenses"]:
                self._consume(entry["skuId"], 1)
            self._apply_licenses(user_id, user, self._now())
            self._record("users", user_id, "restore", (p for p in user if user[p] is not None))

    def hard_delete_user(self, user_id: str) -> None:
        """Delete a user permanently (a current or a soft-deleted one)."""
        with self.lock:
            if user_id in self.users:
                self._soft_delete_user(user_id, record=False)
            if self.deleted_users.pop(user_id, None) is None:
                msg = f"no user {user_id!r}"
                raise KeyError(msg)
            self._direct.pop(user_id, None)
            self._plan_history.pop(user_id, None)
            for gid in self._member_of.pop(user_id, {}):
                self._members.get(gid, {}).pop(user_id, None)
            self._record("users", user_id, "hard_delete")

    # ---------------------------------------------------------------- group mutations

    def _group(self, group_id: str) -> dict[str, Any]:
        group = self.groups.get(group_id)
        if group is None:
            msg = f"no current group {group_id!r}"
            raise KeyError(msg)
        return group

    def _relicense_members(self, group_id: str) -> None:
        now = self._now()
        for uid in list(self._members.get(group_id, ())):
            user = self.users.get(uid)
            if user is None:
                continue
            if user["assignedLicenses"]:
                self._remember_plans(uid, user, now)
            changed = self._apply_licenses(uid, user, now)
            if changed:
                self._record("users", uid, "update", changed)

    def add_group_member(self, group_id: str, user_id: str) -> None:
        """Add a user to a group; the group's licenses (if any) flow to the user."""
        with self.lock:
            self._group(group_id)
            user = self._user(user_id)
            if user_id in self._members.get(group_id, {}):
                return
            self._link(group_id, user_id)
            self._record("groups", group_id, "update", {"members"}, added=(user_id,))
            changed = self._apply_licenses(user_id, user, self._now())
            if changed:
                self._record("users", user_id, "update", changed)

    def remove_group_member(self, group_id: str, user_id: str) -> None:
        """Remove a user from a group; licenses inherited from it are removed."""
        with self.lock:
            self._group(group_id)
            if user_id not in self._members.get(group_id, {}):
                msg = f"user {user_id} is not a member of group {group_id}"
                raise ValueError(msg)
            del self._members[group_id][user_id]
            self._member_of.get(user_id, {}).pop(group_id, None)
            self._record("groups", group_id, "update", {"members"}, removed=(user_id,))
            user = self.users.get(user_id)
            if user is not None and self.groups[group_id]["assignedLicenses"]:
                now = self._now()
                self._remember_plans(user_id, user, now)
                changed = self._apply_licenses(user_id, user, now)
                if changed:
                    self._record("users", user_id, "update", changed)

    def add_group(self, **props: Any) -> str:
        """Create a group from Graph properties (security group by default); returns its id.

        `assignedLicenses` may be given ([{"skuId": ..., "disabledPlans": [...]}]) to make it a
        licensing group.
        """
        with self.lock:
            gid = props.pop("id", None) or _uuid(self._rng)
            group = dict.fromkeys(GROUP_PROPERTIES)
            for prop in GROUP_COLLECTIONS:
                group[prop] = []
            nick = props.get("mailNickname") or f"group{len(self._order['groups'])}"
            group.update(
                id=gid,
                displayName=nick,
                mailNickname=nick,
                mailEnabled=False,
                securityEnabled=True,
                createdDateTime=self._now(),
            )
            group["renewedDateTime"] = group["createdDateTime"]
            licenses = props.pop("assignedLicenses", None)
            self._set_props(group, props, GROUP_PROPERTIES)
            if licenses:
                group["assignedLicenses"] = self._normalise_group_licenses(licenses)
                group["licenseProcessingState"] = {"state": "ProcessingComplete"}
            self.groups[gid] = group
            self._members[gid] = {}
            self._order["groups"].append(gid)
            self._record("groups", gid, "create", (p for p in group if group[p] is not None))
            return gid

    def _normalise_group_licenses(self, licenses: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for lic in licenses:
            sku_id = self._resolve_sku(lic["skuId"])
            disabled = sorted(
                PLAN_BY_NAME[p].id if p in PLAN_BY_NAME else p for p in lic.get("disabledPlans", ())
            )
            out.append({"disabledPlans": disabled, "skuId": sku_id})
        return out

    def update_group(self, group_id: str, **props: Any) -> None:
        """Change group properties; None clears. `assignedLicenses` re-licenses all members."""
        with self.lock:
            group = self._group(group_id)
            licenses = props.pop("assignedLicenses", None)
            changed = self._set_props(group, props, GROUP_PROPERTIES)
            if licenses is not None:
                normal = self._normalise_group_licenses(licenses)
                if normal != group["assignedLicenses"]:
                    group["assignedLicenses"] = normal
                    changed.add("assignedLicenses")
                    if group["licenseProcessingState"] is None and normal:
                        group["licenseProcessingState"] = {"state": "ProcessingComplete"}
                        changed.add("licenseProcessingState")
            if changed:
                self._record("groups", group_id, "update", changed)
            if "assignedLicenses" in changed:
                self._relicense_members(group_id)

    def soft_delete_group(self, group_id: str) -> None:
        """Delete a group into the recycle bin.

        As in Entra only Microsoft 365 (Unified) groups are restorable: deleting any other group
        deletes it permanently (delta then reports reason "deleted"). Members lose the group's
        licenses either way.
        """
        with self.lock:
            group = self._group(group_id)
            if "Unified" not in group["groupTypes"]:
                self.hard_delete_group(group_id)
                return
            del self.groups[group_id]
            group["deletedDateTime"] = self._now()
            self.deleted_groups[group_id] = group
            self._record("groups", group_id, "soft_delete")
            if group["assignedLicenses"]:
                self._relicense_members(group_id)

    def restore_group(self, group_id: str) -> None:
        """Restore a soft-deleted Microsoft 365 group with its members."""
        with self.lock:
            group = self.deleted_groups.pop(group_id, None)
            if group is None:
                msg = f"no soft-deleted group {group_id!r}"
                raise KeyError(msg)
            group["deletedDateTime"] = None
            self.groups[group_id] = group
            self._record("groups", group_id, "restore", (p for p in group if group[p] is not None))
            if group["assignedLicenses"]:
                self._relicense_members(group_id)

    def hard_delete_group(self, group_id: str) -> None:
        """Delete a group permanently (a current or a soft-deleted one)."""
        with self.lock:
            group = self.groups.pop(group_id, None) or self.deleted_groups.pop(group_id, None)
            if group is None:
                msg = f"no group {group_id!r}"
                raise KeyError(msg)
            self._record("groups", group_id, "hard_delete")
            if group["assignedLicenses"]:
                self._relicense_members(group_id)
            for uid in self._members.pop(group_id, {}):
                self._member_of.get(uid, {}).pop(group_id, None)
