"""Graph v1.0 directory endpoints: organization, licenses, users, groups, delta and $batch.

Behaviour follows Microsoft's documentation, with sources noted where a choice was needed:

- Collections: `$select` (unknown property -> 400, default projection when absent), `$top`
  1..999 (default page size 100), `@odata.nextLink` with an opaque `$skiptoken` plus the original
  query options, `$count` only with `ConsistencyLevel: eventual`, duplicated system query options
  -> 400. `$filter`, `$orderby`, `$search` and `$expand` are not implemented by the emulator and
  answer 501 NotImplemented rather than a silently wrong result.
- Delta (users/delta, groups/delta): see `DeltaEngine`.
- `$batch`: JSON batching per concepts/json-batching.md (max 20 requests, unique ids, dependsOn
  with 424, each item dispatched and throttled on its own).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .http import EmulatorRequest, EmulatorResponse, graph_error, json_response
from .tenant import GROUP_PROPERTIES, LICENSE_PROPERTIES, USER_PROPERTIES, Change

if TYPE_CHECKING:
    from collections.abc import Callable

    from .tenant import Tenant

# Application permissions that allow each read (Graph permission references of each API).
USER_ROLES = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
GROUP_ROLES = frozenset(
    {
        "Group.Read.All",
        "Group.ReadWrite.All",
        "GroupMember.Read.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
ORG_ROLES = frozenset(
    {
        "Organization.Read.All",
        "Organization.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
SKU_ROLES = ORG_ROLES | {"LicenseAssignment.Read.All", "LicenseAssignment.ReadWrite.All"}
REPORT_SETTINGS_ROLES = frozenset({"ReportSettings.Read.All", "ReportSettings.ReadWrite.All"})

# user-list.md: returned when no $select is given.
USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
# user-list.md: cannot be listed on the collection (501 when selected).
USER_NOT_LISTABLE = frozenset(
    {
        "aboutMe",
        "birthday",
        "hireDate",
        "interests",
        "mySite",
        "pastProjects",
        "preferredName",
        "responsibilities",
        "schools",
        "skills",
        "mailboxSettings",
    }
)
# Known properties the fake tenant never fills (always null).
USER_ALWAYS_NULL = frozenset({"passwordProfile", "authorizationInfo", "customSecurityAttributes"})
# signInActivity (https://learn.microsoft.com/graph/api/resources/signinactivity?view=graph-rest-1.0)
# needs AuditLog.Read.All and a Microsoft Entra ID P1 or P2 tenant. Without the permission Graph
# answers 403 Authentication_MSGraphPermissionMissing "Calling principal does not have required
# MSGraph permissions AuditLog.Read.All" (microsoftgraph/microsoft-graph-explorer-v4 issue 2731);
# without P1/P2, 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant (obs). The user
# resource page: "When you specify $select=signInActivity or $filter=signInActivity while listing
# users, the maximum page size for $top is 120. Requests with $top set higher than 120 return
# pages with up to 120 users" (https://learn.microsoft.com/graph/api/resources/user).
USER_NEEDS_AUDIT_LOG = "signInActivity"
SIGN_IN_ACTIVITY_PAGE_CAP = 120

# group-list.md: the default projection of a group.
GROUP_DEFAULT = (
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "creationOptions",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
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
    "theme",
    "visibility",
    "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
)
GROUP_ALWAYS_NULL = frozenset(
    {
        "allowExternalSenders",
        "autoSubscribeNewMembers",
        "hideFromAddressLists",
        "hideFromOutlookClients",
        "isSubscribedByMail",
        "unseenCount",
        "isArchived",
        "hasMembersWithLicenseErrors",
    }
)

# user-delta.md: "Changes to the licenseAssignmentStates property are currently not tracked."
UNTRACKED_IN_DELTA = frozenset({"licenseAssignmentStates"})

SYSTEM_OPTIONS = frozenset(
    {
        "$select",
        "$top",
        "$skip",
        "$skiptoken",
        "$count",
        "$filter",
        "$orderby",
        "$search",
        "$expand",
        "$format",
        "$deltatoken",
    }
)
NOT_IMPLEMENTED_OPTIONS = ("$filter", "$orderby", "$search", "$expand")
MAX_BATCH = 20


@dataclass(frozen=True)
class Collection:
    """Static facts about one directory collection."""

    name: str
    type_name: str
    roles: frozenset[str]
    stored: tuple[str, ...]
    default: tuple[str, ...]
    always_null: frozenset[str] = frozenset()
    not_listable: frozenset[str] = frozenset()
    lookup: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [*self.stored, *self.always_null, *self.not_listable]
        if self.name == "users":
            names.append(USER_NEEDS_AUDIT_LOG)
        if self.name == "groups":
            names.append("members")
        self.lookup.update({n.lower(): n for n in names})


USERS = Collection(
    "users",
    "microsoft.graph.user",
    USER_ROLES,
    USER_PROPERTIES,
    USER_DEFAULT,
    USER_ALWAYS_NULL,
    USER_NOT_LISTABLE,
)
GROUPS = Collection(
    "groups",
    "microsoft.graph.group",
    GROUP_ROLES,
    GROUP_PROPERTIES,
    GROUP_DEFAULT,
    GROUP_ALWAYS_NULL,
)


@dataclass
class PagingOptions:
    """Knobs tests turn to reproduce documented paging quirks.

    - `delta_page_size`: objects per users/groups delta page. The delta docs say `$top` is not
      supported for users and groups and that page size varies by resource
      (concepts/delta-query-overview.md, "Optional query parameters"); a docs maintainer added
      that `$top` is silently ignored there (microsoft-graph-docs issue 17516), and the
      `Prefer: odata.maxpagesize` header is documented only for Outlook resources, not for
      user/group delta. Observed pages hold up to 200 users (Microsoft Q&A answers; docs issue
      5566), so 200 is the default and `$top` / `odata.maxpagesize` are ignored.
    - `empty_page_every`: after every N non-empty pages insert an empty page that still carries
      an `@odata.nextLink` (paging.md and delta-query-overview.md say this can happen); 0 = never.
    - `delta_duplicates`: each delta page starts by repeating the last object of the previous
      page ("a single entity can be contained multiple times in the response").
    """

    delta_page_size: int = 200
    empty_page_every: int = 0
    delta_duplicates: bool = False


def _encode_token(payload: dict[str, Any]) -> str:
    raw = zlib.compress(json.dumps(payload, separators=(",", ":")).encode())
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_token(token: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(zlib.decompress(raw))
    except (ValueError, zlib.error):
        return None
    return payload if isinstance(payload, dict) else None


def _bad_request(
    message: str, request: EmulatorRequest, code: str = "Request_BadRequest"
) -> EmulatorResponse:
    return graph_error(400, code, message, request)


def _forbidden(request: EmulatorRequest) -> EmulatorResponse:
    return graph_error(
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
        request,
    )


def _not_found(object_id: str, request: EmulatorRequest) -> EmulatorResponse:
    return graph_error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
        request,
    )


def _method_not_allowed(request: EmulatorRequest) -> EmulatorResponse:
    return graph_error(
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
        request,
    )


# Large values the tenant shares between users (assignedPlans/provisionedPlans lists come from a
# cache keyed by license combination): their JSON is encoded once and spliced into pages.
_SHARED_VALUES = ("assignedPlans", "provisionedPlans")
_MARK = re.compile(r'"\\u0000(\d+)\\u0000"')


class PageEncoder:
    """Encodes collection pages fast by reusing the JSON of values shared between objects."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fragments: dict[int, tuple[object, str]] = {}

    def encode(self, body: dict[str, Any]) -> bytes:
        """JSON of a page body whose `value` holds projected objects."""
        pieces: list[str] = []
        index: dict[int, int] = {}
        values = []
        with self._lock:
            fragments = self._fragments
            if len(fragments) > 20000:
                fragments.clear()
            for item in body.get("value", ()):
                marked = None
                for key in _SHARED_VALUES:
                    value = item.get(key)
                    if not value or not isinstance(value, list):
                        continue
                    ident = id(value)
                    slot = index.get(ident)
                    if slot is None:
                        cached = fragments.get(ident)
                        if cached is None or cached[0] is not value:
                            cached = (value, json.dumps(value))
                            fragments[ident] = cached
                        slot = index[ident] = len(pieces)
                        pieces.append(cached[1])
                    if marked is None:
                        marked = dict(item)
                    marked[key] = f"\x00{slot}\x00"
                values.append(marked if marked is not None else item)
        text = json.dumps({**body, "value": values})
        if pieces:
            text = _MARK.sub(lambda m: pieces[int(m.group(1))], text)
        return text.encode()


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The decoded (name, value) pairs of a query string, in order, duplicates kept."""
    return parse_qsl(raw_query, keep_blank_values=True)


@dataclass
class _ChangeEntry:
    object_id: str
    ops: list[str] = field(default_factory=list)
    props: set[str] = field(default_factory=set)
    members: dict[str, bool] = field(default_factory=dict)  # member id -> added (else removed)


class DirectoryService:
    """Answers Graph directory requests for one tenant."""

    def __init__(
        self,
        tenant: Tenant,
        graph_url: str,
        paging: PagingOptions,
        dispatch_inner: Callable[[EmulatorRequest], EmulatorResponse],
    ) -> None:
        self.tenant = tenant
        self.graph_url = graph_url
        self.paging = paging
        self.dispatch_inner = dispatch_inner
        self._change_cache: dict[tuple[Any, ...], list[_ChangeEntry]] = {}
        self.encoder = PageEncoder()

    def page_response(
        self, body: dict[str, Any], request: EmulatorRequest, headers: dict[str, str] | None = None
    ) -> EmulatorResponse:
        """A 200 JSON page, encoded with shared-fragment reuse."""
        response = json_response(200, None, request, headers)
        response.body = self.encoder.encode(body)
        return response

    # ------------------------------------------------------------------ routing

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:  # noqa: PLR0911
        """Route a /v1.0 request (bearer already checked, `request.roles` set)."""
        parts = [p for p in request.path.split("/") if p][1:]  # drop "v1.0"
        if parts == ["$batch"]:
            if request.method != "POST":
                return _method_not_allowed(request)
            return self._batch(request)
        if request.method != "GET":
            return _method_not_allowed(request)
        problem = self._check_duplicates(request)
        if problem is not None:
            return problem
        if not parts:
            return _bad_request("Invalid request.", request, "BadRequest")
        head, rest = parts[0], parts[1:]
        if head == "organization":
            return self._singletons(
                request, ORG_ROLES, "organization", [self.tenant.organization], rest
            )
        if head == "subscribedSkus":
            return self._singletons(request, SKU_ROLES, "subscribedSkus", self.tenant.skus, rest)
        if head == "directory" and rest[:1] == ["subscriptions"]:
            return self._singletons(
                request,
                ORG_ROLES,
                "directory/subscriptions",
                self.tenant.subscriptions,
                rest[1:],
            )
        if head == "directory" and rest[:1] == ["deletedItems"] and len(rest) == 2:
            kind = {"microsoft.graph.user": USERS, "microsoft.graph.group": GROUPS}.get(rest[1])
            if kind is None:
                if "." in rest[1]:
                    return _bad_request(
                        f"Resource not found for the segment '{rest[1]}'.", request, "BadRequest"
                    )
                return self._deleted_item(request, rest[1])
            return self._deleted_items(request, kind)
        if head in ("users", "groups"):
            coll = USERS if head == "users" else GROUPS
            if not rest:
                return self._list(request, coll)
            if rest == ["$count"]:
                return self._count(request, coll)
            if rest in (["delta"], ["microsoft.graph.delta"], ["delta()"]):
                return DeltaEngine(self, coll).handle(request)
            if len(rest) == 1:
                return self._get_one(request, coll, rest[0])
            if coll is GROUPS and len(rest) == 2 and rest[1] == "members":
                return self._members(request, rest[0])
        if head == "admin" and rest == ["reportSettings"]:
            return self._report_settings(request)
        return _bad_request(f"Resource not found for the segment '{head}'.", request, "BadRequest")

    # ------------------------------------------------------------------ query options

    def _check_duplicates(self, request: EmulatorRequest) -> EmulatorResponse | None:
        seen: set[str] = set()
        for name, _ in query_pairs(request.raw_query):
            lowered = name.lower()
            if not lowered.startswith("$"):
                continue
            if lowered not in SYSTEM_OPTIONS:
                return _bad_request(f"The query parameter '{name}' is not supported.", request)
            if lowered in seen:
                return _bad_request(
                    f"Query option '{name}' was specified more than once, but it must be "
                    "specified at most once.",
                    request,
                )
            seen.add(lowered)
        return None

    @staticmethod
    def _option(request: EmulatorRequest, name: str) -> str | None:
        for key, value in query_pairs(request.raw_query):
            if key.lower() == name:
                return value
        return None

    def parse_select(  # noqa: PLR0911
        self,
        request: EmulatorRequest,
        coll: Collection,
        *,
        delta: bool = False,
        endpoint: str | None = None,
    ) -> tuple[list[str] | None, EmulatorResponse | None]:
        """The canonical $select list (None when absent), or an error response."""
        raw = self._option(request, "$select")
        if raw is None:
            return None, None
        names: list[str] = []
        endpoint = endpoint or (f"{coll.name}/delta" if delta else coll.name)
        for item in raw.split(","):
            wanted = item.strip()
            if not wanted:
                continue
            refused = self._refused(request, endpoint, wanted, coll.type_name)
            if refused is not None:
                return None, refused
            name = coll.lookup.get(wanted.lower())
            if name is None or (name == "members" and not delta):
                return None, _bad_request(
                    f"Could not find a property named '{wanted}' on type '{coll.type_name}'.",
                    request,
                )
            if name in coll.not_listable:
                return None, graph_error(
                    501, "NotImplemented", "This operation target is not yet supported.", request
                )
            if name == USER_NEEDS_AUDIT_LOG:
                if "AuditLog.Read.All" not in request.roles:
                    return None, graph_error(
                        403,
                        "Authentication_MSGraphPermissionMissing",
                        "Calling principal does not have required MSGraph permissions "
                        "AuditLog.Read.All",
                        request,
                    )
                if not getattr(self.tenant, "entra_premium", True):
                    return None, graph_error(
                        403,
                        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                        "Neither tenant is B2C or tenant doesn't have premium license",
                        request,
                    )
            if name not in names:
                names.append(name)
        return names, None

    def _refused(
        self, request: EmulatorRequest, endpoint: str, wanted: str, type_name: str
    ) -> EmulatorResponse | None:
        """Graph's 400 for a property this endpoint does not support (`Tenant.refuse_property`).

        The two bodies Graph sends: on delta, "Invalid request for delta query: for this entity
        set, $expand/$select is not supported for the following properties: birthday"
        (https://github.com/microsoftgraph/microsoft-graph-docs/issues/14141, code BadRequest);
        elsewhere "Could not find a property named 'X' on type 'microsoft.graph.user'."
        (https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/7594).
        """
        if (endpoint, wanted.lower()) not in getattr(self.tenant, "refused_properties", ()):
            return None
        if endpoint.endswith("/delta"):
            return _bad_request(
                "Invalid request for delta query: for this entity set, $expand/$select is not "
                f"supported for the following properties: {wanted}",
                request,
                "BadRequest",
            )
        return _bad_request(
            f"Could not find a property named '{wanted}' on type '{type_name}'.", request
        )

    def _not_implemented(self, request: EmulatorRequest) -> EmulatorResponse | None:
        for option in NOT_IMPLEMENTED_OPTIONS:
            if self._option(request, option) is not None:
                return graph_error(
                    501,
                    "NotImplemented",
                    f"The Graph emulator does not implement {option} on this endpoint.",
                    request,
                )
        return None

    def _top(
        self, request: EmulatorRequest, default: int = 100
    ) -> tuple[int, EmulatorResponse | None]:
        raw = self._option(request, "$top")
        if raw is None:
            return default, None
        try:
            top = int(raw)
        except ValueError:
            top = 0
        if not 1 <= top <= 999:
            return 0, _bad_request(
                f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.",
                request,
            )
        return top, None

    def context(self, path: str, select: list[str] | None = None, suffix: str = "") -> str:
        """The @odata.context URL for a collection path."""
        projection = f"({','.join(select)})" if select else ""
        return f"{self.graph_url}/v1.0/$metadata#{path}{projection}{suffix}"

    def next_link(self, request: EmulatorRequest, token_name: str, token: str) -> str:
        """The request URL with every option except state tokens, plus a new state token."""
        kept = [
            piece
            for piece in request.raw_query.split("&")
            if piece
            and unquote(piece.split("=", 1)[0]).lower() not in ("$skiptoken", "$deltatoken")
        ]
        kept.append(f"{token_name}={token}")
        return f"{self.graph_url}{quote(request.path, safe='/$(),=')}?{'&'.join(kept)}"

    def sign_in_activity(self, user: dict[str, Any]) -> dict[str, Any]:
        """A user's signInActivity, derived from the tenant seed and the user id.

        About one user in eight never signed in (every time null); the others signed in
        interactively within the last 120 days, non-interactively later or at the same time, and
        the last successful sign-in is one of the two. Every time is before today began (UTC),
        so none lies in the future whatever the hour. Request ids are GUIDs.
        """
        key = zlib.crc32(f"{self.tenant.seed}/{user.get('id')}".encode())
        nothing: dict[str, Any] = dict.fromkeys(
            (
                "lastSignInDateTime",
                "lastSignInRequestId",
                "lastNonInteractiveSignInDateTime",
                "lastNonInteractiveSignInRequestId",
                "lastSuccessfulSignInDateTime",
                "lastSuccessfulSignInRequestId",
            )
        )
        if key % 8 == 0:
            return nothing
        latest = self.tenant.today.toordinal() * 86400 - 1  # 23:59:59 yesterday
        interactive = latest - (key % 120) * 86400 - (key >> 8) % 30000
        background = min(interactive + ((key >> 4) % 3) * 86400, latest)
        ids = [str(uuid.UUID(int=(key * (n + 7919)) % (1 << 128) | (4 << 76))) for n in range(2)]

        def stamp(seconds: int) -> str:
            day = date.fromordinal(seconds // 86400)
            rest = seconds % 86400
            return f"{day.isoformat()}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}Z"

        successful_background = (key >> 12) % 2 == 0
        return {
            **nothing,
            "lastSignInDateTime": stamp(interactive),
            "lastSignInRequestId": ids[0],
            "lastNonInteractiveSignInDateTime": stamp(background),
            "lastNonInteractiveSignInRequestId": ids[1],
            "lastSuccessfulSignInDateTime": stamp(
                background if successful_background else interactive
            ),
            "lastSuccessfulSignInRequestId": ids[1] if successful_background else ids[0],
        }

    @staticmethod
    def project(obj: dict[str, Any], select: list[str] | tuple[str, ...]) -> dict[str, Any]:
        """The selected properties of an object (null where unset)."""
        get = obj.get
        return {name: get(name) for name in select}

    # ------------------------------------------------------------------ simple collections

    def _singletons(  # noqa: PLR0911
        self,
        request: EmulatorRequest,
        roles: frozenset[str],
        path: str,
        items: list[dict[str, Any]],
        rest: list[str],
    ) -> EmulatorResponse:
        if not roles & request.roles:
            return _forbidden(request)
        for option in ("$top", "$skiptoken", "$count", *NOT_IMPLEMENTED_OPTIONS):
            if self._option(request, option) is not None:
                return _bad_request(
                    f"The query specified in the URI is not valid. Query option '{option}' is "
                    "not allowed on this resource.",
                    request,
                    "Request_UnsupportedQuery",
                )
        select: list[str] | None = None
        raw = self._option(request, "$select")
        with self.tenant.lock:
            known = {k.lower(): k for item in items for k in item}
            if raw is not None:
                select = []
                type_name = {
                    "organization": "microsoft.graph.organization",
                    "subscribedSkus": "microsoft.graph.subscribedSku",
                }.get(path, "microsoft.graph.companySubscription")
                for item in raw.split(","):
                    refused = self._refused(request, path, item.strip(), type_name)
                    if refused is not None:
                        return refused
                    name = known.get(item.strip().lower())
                    if name is None and item.strip().lower() == "id":
                        name = "id"
                    if name is None:
                        return _bad_request(
                            f"Could not find a property named '{item.strip()}' on type "
                            f"'{type_name}'.",
                            request,
                        )
                    select.append(name)
            if rest:
                match = [i for i in items if str(i.get("id", "")).lower() == rest[0].lower()]
                if len(rest) > 1 or not match:
                    return _not_found(rest[0], request)
                body = dict(match[0]) if select is None else self.project(match[0], select)
                body = {"@odata.context": self.context(path, select, "/$entity"), **body}
                return json_response(200, body, request)
            values = [dict(i) if select is None else self.project(i, select) for i in items]
        return json_response(
            200, {"@odata.context": self.context(path, select), "value": values}, request
        )

    def _eventual(self, request: EmulatorRequest) -> bool:
        return request.headers.get("consistencylevel", "").strip().lower() == "eventual"

    def _list(self, request: EmulatorRequest, coll: Collection) -> EmulatorResponse:  # noqa: PLR0911
        if not coll.roles & request.roles:
            return _forbidden(request)
        problem = self._not_implemented(request)
        if problem is not None:
            return problem
        if self._option(request, "$skip") is not None:
            return _bad_request(
                "'$skip' is not supported by the service.", request, "Request_UnsupportedQuery"
            )
        select, problem = self.parse_select(request, coll)
        if problem is not None:
            return problem
        top, problem = self._top(request)
        if problem is not None:
            return problem
        if select and USER_NEEDS_AUDIT_LOG in select:
            top = min(top, SIGN_IN_ACTIVITY_PAGE_CAP)
        count = (self._option(request, "$count") or "").lower()
        if count not in ("", "true", "false"):
            return _bad_request(f"Invalid value '{count}' for $count.", request)
        if count == "true" and not self._eventual(request):
            return _bad_request("$count is not currently supported.", request)
        state = {"o": 0, "p": 0}
        raw_token = self._option(request, "$skiptoken")
        if raw_token is not None:
            decoded = _decode_token(raw_token)
            if decoded is None or decoded.get("k") != coll.name or "o" not in decoded:
                return _bad_request("The skip token is not valid.", request)
            state = decoded
        projection = list(select or coll.default)
        store = self.tenant.users if coll is USERS else self.tenant.groups
        order = self.tenant.order(coll.name)
        offset, page_no = int(state["o"]), int(state.get("p", 0))
        values: list[dict[str, Any]] = []
        with self.tenant.lock:
            total = len(store)
            if self._empty_page_due(page_no):
                end = offset
            else:
                end = len(order)
                position = offset
                while position < end and len(values) < top:
                    obj = store.get(order[position])
                    position += 1
                    if obj is not None:
                        value = self.project(obj, projection)
                        if USER_NEEDS_AUDIT_LOG in value:
                            value[USER_NEEDS_AUDIT_LOG] = self.sign_in_activity(obj)
                        values.append(value)
                # Peek whether anything remains so the last page carries no nextLink.
                while position < end and order[position] not in store:
                    position += 1
                end, offset = position, position
            more = offset < len(order)
        body: dict[str, Any] = {"@odata.context": self.context(coll.name, select)}
        if count == "true" and raw_token is None:
            body["@odata.count"] = total
        if more:
            token = _encode_token({"k": coll.name, "o": end, "p": page_no + 1})
            body["@odata.nextLink"] = self.next_link(request, "$skiptoken", token)
        body["value"] = values
        return self.page_response(body, request)

    def _empty_page_due(self, page_no: int) -> bool:
        every = self.paging.empty_page_every
        return every > 0 and page_no % (every + 1) == every

    def _count(self, request: EmulatorRequest, coll: Collection) -> EmulatorResponse:
        if not coll.roles & request.roles:
            return _forbidden(request)
        if not self._eventual(request):
            return _bad_request("Count is not currently supported.", request)
        with self.tenant.lock:
            total = len(self.tenant.users if coll is USERS else self.tenant.groups)
        response = json_response(200, None, request)
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        response.body = str(total).encode()
        return response

    def _get_one(self, request: EmulatorRequest, coll: Collection, key: str) -> EmulatorResponse:
        if not coll.roles & request.roles:
            return _forbidden(request)
        select, problem = self.parse_select(request, coll)
        if problem is not None:
            return problem
        with self.tenant.lock:
            store = self.tenant.users if coll is USERS else self.tenant.groups
            obj = store.get(key)
            if obj is None and coll is USERS:
                obj = next(
                    (u for u in store.values() if u["userPrincipalName"].lower() == key.lower()),
                    None,
                )
            if obj is None:
                return _not_found(key, request)
            body = self.project(obj, select or coll.default)
        return json_response(
            200, {"@odata.context": self.context(coll.name, select, "/$entity"), **body}, request
        )

    def _members(self, request: EmulatorRequest, group_id: str) -> EmulatorResponse:
        if not GROUP_ROLES & request.roles:
            return _forbidden(request)
        select, problem = self.parse_select(request, USERS)
        if problem is not None:
            return problem
        top, problem = self._top(request)
        if problem is not None:
            return problem
        if group_id not in self.tenant.groups:
            return _not_found(group_id, request)
        raw_token = self._option(request, "$skiptoken")
        offset = 0
        if raw_token is not None:
            decoded = _decode_token(raw_token)
            if decoded is None or decoded.get("k") != "members":
                return _bad_request("The skip token is not valid.", request)
            offset = int(decoded["o"])
        members = self.tenant.members_of(group_id)
        with self.tenant.lock:
            chunk = [
                self.tenant.users[m]
                for m in members[offset : offset + top]
                if m in self.tenant.users
            ]
            values = [
                {"@odata.type": "#microsoft.graph.user", **self.project(u, select or USERS.default)}
                for u in chunk
            ]
        body: dict[str, Any] = {"@odata.context": self.context("directoryObjects", select)}
        if offset + top < len(members):
            body["@odata.nextLink"] = self.next_link(
                request, "$skiptoken", _encode_token({"k": "members", "o": offset + top})
            )
        body["value"] = values
        return json_response(200, body, request)

    def _deleted_items(self, request: EmulatorRequest, coll: Collection) -> EmulatorResponse:
        if not coll.roles & request.roles:
            return _forbidden(request)
        select, problem = self.parse_select(request, coll)
        if problem is not None:
            return problem
        with self.tenant.lock:
            store = self.tenant.deleted_users if coll is USERS else self.tenant.deleted_groups
            projection = select or [*coll.default, "deletedDateTime"]
            values = [self.project(obj, projection) for obj in store.values()]
        return json_response(
            200,
            {
                "@odata.context": self.context(f"directory/deletedItems/{coll.type_name}", select),
                "value": values,
            },
            request,
        )

    def _deleted_item(self, request: EmulatorRequest, object_id: str) -> EmulatorResponse:
        """`GET /directory/deletedItems/{object-id}` (directory-deleteditems-get.md): one
        soft-deleted user or group, with its `@odata.type`; OData query options such as
        `$select` apply. An id not in the recycle bin (never deleted, restored or purged) is
        404 Request_ResourceNotFound."""
        with self.tenant.lock:
            found = [
                (coll, store[object_id])
                for coll, store in (
                    (USERS, self.tenant.deleted_users),
                    (GROUPS, self.tenant.deleted_groups),
                )
                if object_id in store
            ]
        if not found:
            return _not_found(object_id, request)
        coll, obj = found[0]
        if not coll.roles & request.roles:
            return _forbidden(request)
        select, problem = self.parse_select(request, coll, endpoint="directory/deletedItems")
        if problem is not None:
            return problem
        with self.tenant.lock:
            body = self.project(obj, select or [*coll.default, "deletedDateTime"])
        return json_response(
            200,
            {
                "@odata.context": self.context("directory/deletedItems", select, "/$entity"),
                "@odata.type": f"#{coll.type_name}",
                **body,
            },
            request,
        )

    def _report_settings(self, request: EmulatorRequest) -> EmulatorResponse:
        if not REPORT_SETTINGS_ROLES & request.roles:
            return _forbidden(request)
        concealed = bool(getattr(self.tenant, "display_concealed_names", True))
        return json_response(
            200,
            {
                "@odata.context": f"{self.graph_url}/v1.0/$metadata#admin/reportSettings/$entity",
                "id": "",
                "displayConcealedNames": concealed,
            },
            request,
        )

    # ------------------------------------------------------------------ $batch

    def _batch(self, request: EmulatorRequest) -> EmulatorResponse:  # noqa: PLR0911
        try:
            payload = json.loads(request.body or b"null")
        except ValueError:
            return _bad_request("Invalid batch payload format.", request, "BadRequest")
        items = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            return _bad_request("Invalid batch payload format.", request, "BadRequest")
        if len(items) > MAX_BATCH:
            return _bad_request(
                f"Number of batch requests exceeds the maximum limit of {MAX_BATCH}.",
                request,
                "BadRequest",
            )
        ids: list[str] = []
        for item in items:
            if not isinstance(item, dict) or not all(k in item for k in ("id", "method", "url")):
                return _bad_request(
                    "Each batch request must have an id, a method and a url.", request, "BadRequest"
                )
            item_id = str(item["id"])
            if item_id in ids:
                return _bad_request(
                    f"Batch request id '{item_id}' is duplicated.", request, "BadRequest"
                )
            ids.append(item_id)
            if "body" in item and not any(
                k.lower() == "content-type" for k in (item.get("headers") or {})
            ):
                return _bad_request(
                    "Content-Type header must be specified for a request with a body.",
                    request,
                    "BadRequest",
                )
        for item in items:
            for dep in item.get("dependsOn") or []:
                if str(dep) not in ids:
                    return _bad_request(
                        f"Request '{dep}' in dependsOn was not found.", request, "BadRequest"
                    )
        status_of: dict[str, int] = {}
        responses: list[dict[str, Any]] = []
        pending = list(items)
        while pending:
            progressed = False
            for item in list(pending):
                deps = [str(d) for d in item.get("dependsOn") or []]
                if any(d not in status_of for d in deps):
                    continue
                pending.remove(item)
                progressed = True
                item_id = str(item["id"])
                if any(status_of[d] >= 400 for d in deps):
                    status_of[item_id] = 424
                    responses.append(
                        {
                            "id": item_id,
                            "status": 424,
                            "headers": {"Content-Type": "application/json"},
                            "body": {
                                "error": {
                                    "code": "FailedDependency",
                                    "message": "A request this request depends on failed.",
                                }
                            },
                        }
                    )
                    continue
                inner = self._inner_request(request, item)
                result = self.dispatch_inner(inner)
                status_of[item_id] = result.status
                responses.append(self._inner_response(item_id, result))
            if not progressed:
                return _bad_request(
                    "The dependsOn graph of the batch has a cycle.", request, "BadRequest"
                )
        return json_response(200, {"responses": responses}, request)

    @staticmethod
    def _inner_request(outer: EmulatorRequest, item: dict[str, Any]) -> EmulatorRequest:
        url = str(item["url"])
        split = urlsplit(url if url.startswith("/") else "/" + url)
        headers = {k.lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        if "authorization" in outer.headers:
            headers["authorization"] = outer.headers["authorization"]
        body = item.get("body")
        raw_body = b"" if body is None else json.dumps(body).encode()
        return EmulatorRequest(
            method=str(item["method"]).upper(),
            path="/v1.0" + unquote(split.path),
            query=dict(query_pairs(split.query)),
            headers=headers,
            body=raw_body,
            raw_query=split.query,
            roles=outer.roles,
        )

    @staticmethod
    def _inner_response(item_id: str, result: EmulatorResponse) -> dict[str, Any]:
        raw = result.body if isinstance(result.body, bytes) else b"".join(result.body)
        headers = {
            k: v
            for k, v in result.headers.items()
            if k.lower() in ("content-type", "retry-after", "location", "odata-version")
        }
        content_type = headers.get("Content-Type", "")
        body: Any
        if "json" in content_type:
            body = json.loads(raw) if raw else None
        elif raw:
            body = raw.decode("utf-8", "replace")
        else:
            body = None
        entry: dict[str, Any] = {"id": item_id, "status": result.status, "headers": headers}
        if body is not None:
            entry["body"] = body
        return entry

    # ------------------------------------------------------------------ change lists for delta

    def changes(
        self,
        kind: str,
        after: int,
        upto: int,
        tracked: frozenset[str] | None,
        ids: frozenset[str] | None,
    ) -> list[_ChangeEntry]:
        """Objects changed in (after, upto], merged per object, filtered by tracked properties."""
        key = (kind, after, upto, tracked, ids)
        cached = self._change_cache.get(key)
        if cached is not None:
            return cached
        merged: dict[str, _ChangeEntry] = {}
        change: Change
        for change in self.tenant.changes_between(after, upto):
            if change.kind != kind or (ids is not None and change.object_id not in ids):
                continue
            entry = merged.get(change.object_id)
            if entry is None:
                entry = merged[change.object_id] = _ChangeEntry(change.object_id)
            entry.ops.append(change.op)
            entry.props.update(change.props)
            for uid in change.members_added:
                entry.members[uid] = True
            for uid in change.members_removed:
                entry.members[uid] = False
        result = []
        for entry in merged.values():
            structural = any(op != "update" for op in entry.ops)
            relevant = entry.props - UNTRACKED_IN_DELTA
            if tracked is not None:
                relevant &= tracked
            if structural or relevant:
                result.append(entry)
        if len(self._change_cache) > 32:
            self._change_cache.clear()
        self._change_cache[key] = result
        return result


class DeltaEngine:
    """users/delta and groups/delta as documented (user-delta.md, group-delta.md,
    concepts/delta-query-overview.md).

    - The initial round returns the objects that exist now over pages linked by `@odata.nextLink`
      (`$skiptoken`); its last page carries `@odata.deltaLink` (`$deltatoken`). Later rounds
      return the objects changed since the token, and end with a new deltaLink.
    - Query options ($select, the `id eq` $filter) are given once, on the initial request, and
      are encoded in the (opaque) tokens; `$select` together with `$skiptoken` is rejected; a new
      `$select` on a deltaLink request changes the tracked properties (documented as supported
      for Entra resources). `$top` and `Prefer: odata.maxpagesize` are ignored (see
      PagingOptions); `$expand` / `$orderby` / `$search` / `$count` answer 400 Unsupported Query.
    - Default responses carry every selected property that has ever been set (null once
      cleared); with `Prefer: return=minimal` on a deltaLink round, only changed ones plus id.
      Changes to licenseAssignmentStates alone do not surface a user (user-delta.md note).
    - Removals: `{"id", "@removed": {"reason": "changed"}}` for soft-deleted (restorable),
      `"deleted"` for permanently deleted objects. Groups carry `members@delta` when members are
      tracked (no $select, or `members` selected).
    - `$deltatoken=latest` returns only a deltaLink ("sync from now").
    - Expired tokens (older than 7 days of tenant time, or expired by a test) answer 400
      `syncStateNotFound` "The sync state generation is not found. The delta token is expired
      and data must be synchronized again." - the code and message of concepts/errors.md, with
      the BadRequest status the Microsoft 365 Developer Blog gave when delta links of identity
      resources became 7-day tokens ("Duration of change tracking tokens for identity and
      education resources", 2020-07-03). A sync reset (`tenant.expire_delta_tokens(resync=True)`)
      answers 410 Gone with a `Location` header holding the initial request URL with an empty
      `$deltatoken` (delta-query-overview.md, "Synchronization reset") and code resyncRequired.
    """

    TOKEN_DAYS = 7

    def __init__(self, service: DirectoryService, coll: Collection) -> None:
        self.service = service
        self.coll = coll
        self.tenant = service.tenant

    def _unsupported(self, request: EmulatorRequest) -> EmulatorResponse:
        return _bad_request("Unsupported Query.", request, "Request_UnsupportedQuery")

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:  # noqa: PLR0911
        service = self.service
        if not self.coll.roles & request.roles:
            return _forbidden(request)
        for option in ("$expand", "$orderby", "$search", "$count", "$skip"):
            if service._option(request, option) is not None:
                return self._unsupported(request)
        select, problem = service.parse_select(request, self.coll, delta=True)
        if problem is not None:
            return problem
        skip_raw = service._option(request, "$skiptoken")
        delta_raw = service._option(request, "$deltatoken")
        if skip_raw is not None and select is not None:
            return _bad_request(
                "Delta queries with both $select and $skipToken are not supported.", request
            )
        state: dict[str, Any]
        if skip_raw is not None or delta_raw not in (None, "", "latest"):
            state_or_none = _decode_token(skip_raw if skip_raw is not None else str(delta_raw))
            if state_or_none is None or state_or_none.get("k") != self.coll.name:
                return _bad_request("The delta token is not valid.", request)
            state = state_or_none
            verdict = self.tenant.token_state(int(state.get("n", 0)))
            if self.tenant.today.toordinal() - int(state.get("d", 0)) > self.TOKEN_DAYS:
                verdict = "expired" if verdict == "valid" else verdict
            if verdict == "expired":
                return _bad_request(
                    "The sync state generation is not found. The delta token is expired and data "
                    "must be synchronized again.",
                    request,
                    "syncStateNotFound",
                )
            if verdict == "resync":
                return self._resync(request, state)
            if delta_raw is not None and skip_raw is None:
                if select is not None:
                    state["s"] = select
                state = {**state, "m": "c", "w": self.tenant.version, "o": 0, "p": 0, "u": None}
        else:
            ids, problem = self._filter_ids(request)
            if problem is not None:
                return problem
            state = {
                "k": self.coll.name,
                "s": select,
                "f": ids,
                "m": "i",
                "v": self.tenant.version,
                "o": 0,
                "p": 0,
                "u": None,
            }
            if delta_raw == "latest":
                return self._page(request, state, [], final=True)
        minimal = "return=minimal" in request.headers.get("prefer", "").replace(" ", "").lower()
        return self._round_page(request, state, minimal=minimal and state["m"] == "c")

    def _filter_ids(
        self, request: EmulatorRequest
    ) -> tuple[list[str] | None, EmulatorResponse | None]:
        raw = self.service._option(request, "$filter")
        if raw is None:
            return None, None
        ids = []
        for clause in raw.split(" or "):
            words = clause.strip().split(None, 2)
            if len(words) != 3 or words[0] != "id" or words[1] != "eq":
                return None, self._unsupported(request)
            ids.append(words[2].strip("'\""))
        if len(ids) > 50:
            return None, _bad_request("Too many objects in the filter; the limit is 50.", request)
        return ids, None

    def _resync(self, request: EmulatorRequest, state: dict[str, Any]) -> EmulatorResponse:
        options = []
        if state.get("s"):
            options.append("$select=" + quote(",".join(state["s"]), safe=","))
        if state.get("f"):
            clause = " or ".join(f"id eq '{i}'" for i in state["f"])
            options.append("$filter=" + quote(clause, safe="'"))
        options.append("$deltatoken=")
        location = f"{self.service.graph_url}/v1.0/{self.coll.name}/delta?{'&'.join(options)}"
        return graph_error(
            410,
            "resyncRequired",
            "The delta token is no longer valid, and the app must reset the sync state.",
            request,
            {"Location": location},
        )

    def _tracked(self, state: dict[str, Any]) -> tuple[str, ...]:
        select = state.get("s")
        if select:
            return tuple(select)
        if self.coll is GROUPS:
            return (*self.coll.default, "members")
        return self.coll.default

    def _represent(
        self, obj: dict[str, Any], tracked: tuple[str, ...], only: set[str] | None
    ) -> dict[str, Any]:
        cleared = self.tenant.cleared_properties(obj["id"])
        out: dict[str, Any] = {}
        for name in tracked:
            if name in ("id", "members"):
                continue
            if only is not None and name not in only:
                continue
            value = obj.get(name)
            if value is None and only is None and name not in cleared:
                continue  # never set: omitted
            out[name] = value
        out["id"] = obj["id"]
        return out

    def _members_delta(
        self, group_id: str, changes: dict[str, bool] | None
    ) -> list[dict[str, Any]]:
        if changes is None:
            return [
                {"@odata.type": "#microsoft.graph.user", "id": uid}
                for uid in self.tenant.members_of(group_id)
            ]
        out = []
        for uid, added in changes.items():
            entry: dict[str, Any] = {"@odata.type": "#microsoft.graph.user", "id": uid}
            if not added:
                entry["@removed"] = {"reason": "deleted"}
            out.append(entry)
        return out

    def _round_page(
        self, request: EmulatorRequest, state: dict[str, Any], *, minimal: bool
    ) -> EmulatorResponse:
        paging = self.service.paging
        page_size = max(1, paging.delta_page_size)
        tracked = self._tracked(state)
        store = self.tenant.users if self.coll is USERS else self.tenant.groups
        deleted = self.tenant.deleted_users if self.coll is USERS else self.tenant.deleted_groups
        values: list[dict[str, Any]] = []
        offset, page_no = int(state["o"]), int(state.get("p", 0))
        ids = frozenset(state["f"]) if state.get("f") else None
        with self.tenant.lock:
            if self.service._empty_page_due(page_no):
                next_state = {**state, "p": page_no + 1}
                return self._page(request, state, [], next_state=next_state)
            dup = state.get("u")
            if paging.delta_duplicates and dup:
                obj = store.get(dup)
                if obj is not None:
                    values.append(self._represent(obj, tracked, None))
            last_id = None
            if state["m"] == "i":
                order = self.tenant.order(self.coll.name)
                position = offset
                while position < len(order) and len(values) < page_size:
                    oid = order[position]
                    position += 1
                    obj = store.get(oid)
                    if obj is None or (ids is not None and oid not in ids):
                        continue
                    rep = self._represent(obj, tracked, None)
                    if self.coll is GROUPS and "members" in tracked:
                        rep["members@delta"] = self._members_delta(oid, None)
                    values.append(rep)
                    last_id = oid
                while position < len(order) and (
                    order[position] not in store or (ids is not None and order[position] not in ids)
                ):
                    position += 1
                more = position < len(order)
            else:
                tracked_set = None if not state.get("s") else frozenset(tracked)
                entries = self.service.changes(
                    self.coll.name, int(state["v"]), int(state["w"]), tracked_set, ids
                )
                position = offset
                while position < len(entries) and len(values) < page_size:
                    entry = entries[position]
                    position += 1
                    values.append(
                        self._change_value(entry, store, deleted, tracked, minimal=minimal)
                    )
                    last_id = entry.object_id
                more = position < len(entries)
        if more:
            next_state = {**state, "o": position, "p": page_no + 1, "u": last_id}
            return self._page(request, state, values, next_state=next_state)
        return self._page(request, state, values, final=True)

    def _change_value(
        self,
        entry: _ChangeEntry,
        store: dict[str, dict[str, Any]],
        deleted: dict[str, dict[str, Any]],
        tracked: tuple[str, ...],
        *,
        minimal: bool,
    ) -> dict[str, Any]:
        oid = entry.object_id
        obj = store.get(oid)
        if obj is None:
            reason = "changed" if oid in deleted and entry.ops[-1] != "hard_delete" else "deleted"
            return {"id": oid, "@removed": {"reason": reason}}
        created = any(op in ("create", "restore") for op in entry.ops)
        only = None
        if minimal and not created:
            only = set(entry.props) - UNTRACKED_IN_DELTA
        rep = self._represent(obj, tracked, only)
        if self.coll is GROUPS and "members" in tracked:
            if created:
                rep["members@delta"] = self._members_delta(oid, None)
            elif entry.members:
                rep["members@delta"] = self._members_delta(oid, entry.members)
        return rep

    def _page(
        self,
        request: EmulatorRequest,
        state: dict[str, Any],
        values: list[dict[str, Any]],
        *,
        next_state: dict[str, Any] | None = None,
        final: bool = False,
    ) -> EmulatorResponse:
        body: dict[str, Any] = {
            "@odata.context": self.service.context(self.coll.name, state.get("s"))
        }
        base = f"{self.service.graph_url}/v1.0/{self.coll.name}/delta"
        stamp = {"n": self.tenant.next_token_serial(), "d": self.tenant.today.toordinal()}
        if next_state is not None:
            token = _encode_token({**next_state, **stamp})
            body["@odata.nextLink"] = f"{base}?$skiptoken={token}"
        if final:
            upto = state["v"] if state["m"] == "i" else state.get("w", state["v"])
            if values == [] and state["m"] == "i" and state["o"] == 0 and state.get("p", 0) == 0:
                upto = self.tenant.version  # $deltatoken=latest
            link_state = {
                "k": self.coll.name,
                "s": state.get("s"),
                "f": state.get("f"),
                "v": upto,
                **stamp,
            }
            body["@odata.deltaLink"] = f"{base}?$deltatoken={_encode_token(link_state)}"
        body["value"] = values
        headers = {}
        if "return=minimal" in request.headers.get("prefer", "").replace(" ", "").lower():
            headers["Preference-Applied"] = "return=minimal"
        return self.service.page_response(body, request, headers)


__all__ = [
    "GROUPS",
    "LICENSE_PROPERTIES",
    "USERS",
    "Collection",
    "DeltaEngine",
    "DirectoryService",
    "PagingOptions",
]
