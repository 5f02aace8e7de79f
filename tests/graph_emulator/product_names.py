"""Microsoft's "Product names and service plan identifiers for licensing" CSV, on the download host.

Microsoft serves the file from download.microsoft.com, linked from
https://learn.microsoft.com/entra/identity/users/licensing-service-plan-reference. The emulator
serves a small file of the same shape at the same path on its download listener: the documented
columns in their order, one row per (product, service plan), UTF-8 with a BOM and CRLF line ends,
and the untidiness of the real file: stray trailing spaces, tabs and non-breaking spaces around
names, GUIDs in upper case, names with commas (quoted). Its rows are the tenant's catalog
(`tenant.SKU_CATALOG`) plus a few products the tenant does not own.

`PRODUCT_NAMES` and `PLAN_FRIENDLY_NAMES` hold the clean names a tap should read from it.

Knobs on `ProductNamesService` (plain attributes): `status` (answer this HTTP status instead of
the file), `body` (serve these bytes instead), `omitted_skus` (skuIds left out of the file). It
records every request in `requests` (with whether it carried an Authorization header).
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from .http import EmulatorResponse
from .tenant import SKU_CATALOG, ServicePlan, SkuDefinition

if TYPE_CHECKING:
    from .http import EmulatorRequest

# The path of Microsoft's address (percent-decoded, as the server hands paths over).
PRODUCT_NAMES_PATH: Final = (
    "/download/e/3/e/e3e9faf2-f28b-490a-9ada-c6089a1fc5b0/"
    "Product names and service plan identifiers for licensing.csv"
)
COLUMNS: Final = (
    "Product_Display_Name",
    "String_Id",
    "GUID",
    "Service_Plan_Name",
    "Service_Plan_Id",
    "Service_Plans_Included_Friendly_Names",
)

# Service_Plans_Included_Friendly_Names of the tenant's plans, as the real file words them (in
# its mixed case), one with a comma to exercise quoting.
_FRIENDLY: Final[dict[str, str]] = {
    "EXCHANGE_S_ENTERPRISE": "Exchange Online (Plan 2)",
    "EXCHANGE_S_FOUNDATION": "Exchange Foundation",
    "SHAREPOINTENTERPRISE": "SharePoint (Plan 2)",
    "SHAREPOINTWAC": "Office for the Web",
    "MCOSTANDARD": "Skype for Business Online (Plan 2)",
    "MCOEV": "Microsoft 365 Phone System",
    "MCOMEETADV": "Microsoft 365 Audio Conferencing",
    "MCO_TEAMS_IW": "Microsoft Teams (trial, Exploratory)",
    "TEAMS1": "Microsoft Teams",
    "OFFICESUBSCRIPTION": "Microsoft 365 Apps for enterprise",
    "YAMMER_ENTERPRISE": "Yammer Enterprise",
    "BI_AZURE_P2": "Power BI Pro",
    "ADALLOM_S_O365": "Office 365 Cloud App Security",
    "LOCKBOX_ENTERPRISE": "Customer Lockbox",
    "ATP_ENTERPRISE": "Microsoft Defender for Office 365 (Plan 1)",
    "THREAT_INTELLIGENCE": "Microsoft Defender for Office 365 (Plan 2)",
    "FORMS_PLAN_E3": "Microsoft Forms (Plan E3)",
    "FORMS_PLAN_E5": "Microsoft Forms (Plan E5)",
    "SWAY": "Sway",
    "PROJECTWORKMANAGEMENT": "Microsoft Planner",
    "FLOW_O365_P2": "Power Automate for Office 365",
    "FLOW_O365_P3": "Power Automate for Office 365",
    "FLOW_P2_VIRAL": "Flow Free",
    "POWERAPPS_O365_P2": "Power Apps for Office 365",
    "POWERAPPS_O365_P3": "Power Apps for Office 365 (Plan 3)",
    "AAD_PREMIUM": "Microsoft Entra ID P1",
    "AAD_PREMIUM_P2": "Microsoft Entra ID P2",
    "INTUNE_A": "Microsoft Intune Plan 1",
    "RMS_S_ENTERPRISE": "Microsoft Azure Active Directory Rights",
    "RMS_S_PREMIUM": "Azure Information Protection Premium P1",
    "MFA_PREMIUM": "Microsoft Azure Multi-Factor Authentication",
    "WIN10_PRO_ENT_SUB": "Windows 10/11 Enterprise (Original)",
    "VISIO_CLIENT_SUBSCRIPTION": "Visio Desktop App",
    "VISIOONLINE": "Visio Web App",
    "PROJECT_CLIENT_SUBSCRIPTION": "Project Online Desktop Client",
    "SHAREPOINT_PROJECT": "Project Online Service",
}


# Products in the file that the tenant does not own (names with commas among them).
_EXTRA_PRODUCTS: Final[tuple[tuple[SkuDefinition, tuple[str, ...]], ...]] = (
    (
        SkuDefinition(
            "CPC_E_2C_8GB_128GB",
            "e2aebe6c-897d-480f-9d62-fff1381581f7",
            "Windows 365 Enterprise 2 vCPU, 8 GB, 128 GB",
            (ServicePlan("CPC_E_2C_8GB_128GB", "23a25099-1b2f-4e07-84bd-b84606109438", ""),),
        ),
        ("Windows 365 Enterprise 2 vCPU, 8 GB, 128 GB",),
    ),
    (
        SkuDefinition(
            "Microsoft_365_Copilot",
            "639dec6b-bb19-468b-871c-c5c441c4b0cb",
            "Microsoft 365 Copilot",
            (
                ServicePlan("M365_COPILOT_APPS", "a62f8878-de10-42f3-b68f-6149a25ceb97", ""),
                ServicePlan("M365_COPILOT_TEAMS", "b95945de-b3bd-46db-8437-f2beb6ea2347", ""),
            ),
        ),
        ("Microsoft 365 Copilot in Productivity Apps", "Microsoft 365 Copilot in Microsoft Teams"),
    ),
    (
        SkuDefinition(
            "SPE_F1",
            "66b55226-6b4f-492c-910c-a3b7a3c9d993",
            "Microsoft 365 F3",
            (ServicePlan("EXCHANGE_S_DESKLESS", "4a82b400-a79f-41a4-b4e2-e94f5787b113", ""),),
        ),
        ("Exchange Online Kiosk",),
    ),
)

# The clean names a tap must read: skuId -> Product_Display_Name, servicePlanId -> friendly name.
PRODUCT_NAMES: Final[dict[str, str]] = {
    **{sku.sku_id: sku.display_name for sku in SKU_CATALOG},
    **{sku.sku_id: sku.display_name for sku, _ in _EXTRA_PRODUCTS},
}
PLAN_FRIENDLY_NAMES: Final[dict[str, str]] = {
    **{plan.id: _FRIENDLY[plan.name] for sku in SKU_CATALOG for plan in sku.plans},
    **{
        plan.id: friendly
        for sku, names in _EXTRA_PRODUCTS
        for plan, friendly in zip(sku.plans, names, strict=True)
    },
}

# The untidiness of the real file, applied to some cells (the names above stay clean).
_NBSP = "\u00a0"


def _messy_product(part_number: str, name: str) -> str:
    return {
        "SPE_E3": f"{name}  ",
        "VISIOCLIENT": f"{name}{_NBSP}",
        "PROJECTPREMIUM": f"\t{name}",
        "EMS": name.replace(" + ", f" +{_NBSP}"),
    }.get(part_number, name)


def _messy_guid(part_number: str, guid: str) -> str:
    if part_number in {"EMS", "POWER_BI_PRO"}:
        return guid.upper()
    if part_number == "FLOW_FREE":
        return f" {guid} "
    return guid


def _messy_friendly(plan_name: str, friendly: str) -> str:
    return {
        "TEAMS1": f"{friendly} ",
        "SWAY": f"{friendly}{_NBSP}",
        "INTUNE_A": f"{friendly}\t",
    }.get(plan_name, friendly)


def rows(omitted_skus: frozenset[str] = frozenset()) -> list[list[str]]:
    """The file's rows (without the header): one per (product, service plan)."""
    out: list[list[str]] = []
    products = [(sku, [_FRIENDLY[plan.name] for plan in sku.plans]) for sku in SKU_CATALOG]
    products += [(sku, list(names)) for sku, names in _EXTRA_PRODUCTS]
    for sku, friendly_names in products:
        if sku.sku_id in omitted_skus:
            continue
        for plan, friendly in zip(sku.plans, friendly_names, strict=True):
            out.append(
                [
                    _messy_product(sku.part_number, sku.display_name),
                    sku.part_number,
                    _messy_guid(sku.part_number, sku.sku_id),
                    plan.name,
                    plan.id,
                    _messy_friendly(plan.name, friendly),
                ]
            )
    return out


def render(omitted_skus: frozenset[str] = frozenset()) -> bytes:
    """The file as served: UTF-8 with BOM, CRLF, minimal quoting (commas quoted)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(omitted_skus))
    return b"\xef\xbb\xbf" + text.getvalue().encode()


@dataclass(frozen=True)
class ProductNamesRequest:
    """One request for the file."""

    method: str
    authorized: bool  # whether it carried an Authorization header (it never should)


@dataclass
class ProductNamesService:
    """Answers `GET <PRODUCT_NAMES_PATH>` on the download host."""

    status: int = 200
    fail_next: int = 0  # answer 503 to this many requests first (a passing fault)
    body: bytes | None = None
    omitted_skus: set[str] = field(default_factory=set)
    requests: list[ProductNamesRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        """The file, or the configured failure."""
        with self._lock:
            self.requests.append(
                ProductNamesRequest(request.method, "authorization" in request.headers)
            )
        if request.method not in ("GET", "HEAD"):
            return EmulatorResponse(405, {"Content-Type": "text/plain"}, b"Method Not Allowed")
        status = self.status
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                status = 503
        if status != 200:
            return EmulatorResponse(
                status, {"Content-Type": "text/html"}, b"<html><body>Error</body></html>"
            )
        body = self.body if self.body is not None else render(frozenset(self.omitted_skus))
        return EmulatorResponse(
            200,
            {"Content-Type": "application/octet-stream", "Content-Disposition": "attachment"},
            b"" if request.method == "HEAD" else body,
        )

    @property
    def downloads(self) -> int:
        """How many times the file was requested."""
        with self._lock:
            return len(self.requests)
