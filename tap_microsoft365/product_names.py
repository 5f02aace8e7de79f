"""Friendly names of products (SKUs) and service plans, from Microsoft's licensing reference.

Graph names a SKU by its part number (`SPE_E5`) and a service plan by its code name
(`EXCHANGE_S_ENTERPRISE`). Microsoft publishes the names people know ("Microsoft 365 E5",
"Exchange Online (Plan 2)") in "Product names and service plan identifiers for licensing", a CSV
at a stable download address
(https://learn.microsoft.com/entra/identity/users/licensing-service-plan-reference) with the
columns

    Product_Display_Name, String_Id, GUID, Service_Plan_Name, Service_Plan_Id,
    Service_Plans_Included_Friendly_Names

and one row per (product, service plan). `GUID` is subscribedSku.skuId, `Service_Plan_Id` is
servicePlanInfo.servicePlanId. The file is not tidy: cells carry stray spaces, tabs and
non-breaking spaces, and names contain quoted commas. GUIDs are matched case-insensitively and
names are trimmed, with runs of white space made one space.

Where the file comes from, once per run (`ProductNameCatalog`):

1. `product_names_path`: a local copy, for networks without internet access; nothing is downloaded.
2. Otherwise `product_names_url` (Microsoft's address by default), kept in `product_names_cache_dir`
   for `product_names_cache_hours`: within that time no download happens at all. A download that
   fails falls back to an older cached copy, if any. An empty `product_names_url` turns names off.

The download goes through the run's transport (its CA bundle, proxies and retry loop), without
the Graph token: the file is public. When
no usable file can be had, every name is null and one warning says why; an ID the file does not
list gets a null name too, and one warning per run lists such IDs. Neither stops the run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests

from tap_microsoft365.graph.transport import Retry
from tap_microsoft365.retries import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_microsoft365.graph.transport import Transport
    from tap_microsoft365.retries import GiveUpError

DEFAULT_URL = (
    "https://download.microsoft.com/download/e/3/e/e3e9faf2-f28b-490a-9ada-c6089a1fc5b0/"
    "Product%20names%20and%20service%20plan%20identifiers%20for%20licensing.csv"
)
DEFAULT_CACHE_HOURS = 168  # Microsoft updates the file every few weeks
CONNECT_TIMEOUT_SECONDS = 10.0
# Tried once more after a passing fault: the names are a convenience, a run must not wait long.
DOWNLOAD_RETRIES = RetryPolicy(max_attempts=2, max_wait_seconds=60)
READ_TIMEOUT_SECONDS = 60.0
MAX_REDIRECTS = 5
_SPACES = re.compile(r"\s+")  # str's white space includes NBSP, tabs, and the like
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


class ProductNamesUnavailableError(Exception):
    """The file could not be read or downloaded, or is not the licensing reference."""


def clean_name(value: str | None) -> str | None:
    """A name as people read it: trimmed, inner white space one space; None when empty."""
    if value is None:
        return None
    text = _SPACES.sub(" ", value.translate(_INVISIBLE)).strip()
    return text or None


def guid_key(value: Any) -> str:
    """A GUID in the form used for lookups: trimmed, no braces, lower case."""
    return str(value).translate(_INVISIBLE).strip().strip("{}").strip().lower()


@dataclass(frozen=True)
class ProductNames:
    """The names in one copy of the file, by lower-case GUID."""

    products: Mapping[str, str]  # skuId -> Product_Display_Name
    plans: Mapping[str, str]  # servicePlanId -> Service_Plans_Included_Friendly_Names
    plan_codes: Mapping[str, str]  # servicePlanId -> Service_Plan_Name
    sku_plans: Mapping[str, tuple[str, ...]]  # skuId -> its service plan ids, in file order
    source: str  # where the copy came from, for log lines

    @classmethod
    def parse(cls, text: str, source: str) -> ProductNames:
        """Read the CSV text; `ProductNamesUnavailableError` when it is not the reference file."""
        reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
        header = next(reader, None)
        names = [clean_name(cell) or "" for cell in header or []]
        index = {name.lower(): position for position, name in enumerate(names)}
        missing = [
            column for column in ("GUID", "Product_Display_Name") if column.lower() not in index
        ]
        if missing:
            msg = (
                f"{source} has no {' or '.join(missing)} column: it is not the licensing reference"
            )
            raise ProductNamesUnavailableError(msg)

        def cell(row: list[str], column: str) -> str | None:
            position = index.get(column.lower())
            return row[position] if position is not None and position < len(row) else None

        products: dict[str, str] = {}
        plans: dict[str, str] = {}
        plan_codes: dict[str, str] = {}
        sku_plans: dict[str, list[str]] = {}
        for row in reader:
            sku = guid_key(cell(row, "GUID") or "")
            if not sku:
                continue
            display = clean_name(cell(row, "Product_Display_Name"))
            if display and sku not in products:
                products[sku] = display
            plan = guid_key(cell(row, "Service_Plan_Id") or "")
            if not plan:
                continue
            listed = sku_plans.setdefault(sku, [])
            if plan not in listed:
                listed.append(plan)
            friendly = clean_name(cell(row, "Service_Plans_Included_Friendly_Names"))
            if friendly and plan not in plans:
                plans[plan] = friendly
            code = clean_name(cell(row, "Service_Plan_Name"))
            if code and plan not in plan_codes:
                plan_codes[plan] = code
        if not products:
            msg = f"{source} lists no product: it is not the licensing reference"
            raise ProductNamesUnavailableError(msg)
        return cls(
            products,
            plans,
            plan_codes,
            {sku: tuple(ids) for sku, ids in sku_plans.items()},
            source,
        )


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/tap-microsoft365`, else `~/.cache/tap-microsoft365`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tap-microsoft365"


@dataclass
class ProductNameCatalog:
    """The product and service plan names of one run: loaded on first use, at most once.

    Lookups never fail: an unknown ID, or no file at all, gives None. What was missing is said
    once per run (`warn_missing`), not per record.
    """

    config: Mapping[str, Any]
    logger: logging.Logger
    transport: Transport
    _names: ProductNames | None = field(default=None, init=False)
    _loaded: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _missing_products: set[str] = field(default_factory=set, init=False)
    _missing_plans: set[str] = field(default_factory=set, init=False)
    _warned: bool = field(default=False, init=False)

    # -- lookups -----------------------------------------------------------------------------

    @property
    def names(self) -> ProductNames | None:
        """The file's names, loading it on first use; None when it cannot be had."""
        with self._lock:
            if not self._loaded:
                self._loaded = True
                self._names = self._load()
            return self._names

    def product(self, sku_id: Any) -> str | None:
        """The product display name of a skuId, or None."""
        names = self.names
        return None if names is None else _look_up(names.products, sku_id, self._missing_products)

    def plan(self, plan_id: Any) -> str | None:
        """The friendly name of a servicePlanId, or None."""
        names = self.names
        return None if names is None else _look_up(names.plans, plan_id, self._missing_plans)

    def plan_code(self, plan_id: Any) -> str | None:
        """The Service_Plan_Name (e.g. EXCHANGE_S_ENTERPRISE) of a servicePlanId, or None."""
        names = self.names
        return None if names is None or not plan_id else names.plan_codes.get(guid_key(plan_id))

    def sku_plans(self, sku_id: Any) -> tuple[str, ...]:
        """The service plan ids the file lists for a skuId (lower case), or ()."""
        names = self.names
        return () if names is None or not sku_id else names.sku_plans.get(guid_key(sku_id), ())

    def name_sku(self, sku: dict[str, Any]) -> dict[str, Any]:
        """A subscribedSku with `productDisplayName` and `servicePlans[].servicePlanFriendlyName`.

        Graph's own properties are left as they are.
        """
        sku["productDisplayName"] = self.product(sku.get("skuId"))
        plans = sku.get("servicePlans")
        if isinstance(plans, list):
            sku["servicePlans"] = [
                {**plan, "servicePlanFriendlyName": self.plan(plan.get("servicePlanId"))}
                if isinstance(plan, dict)
                else plan
                for plan in plans
            ]
        return sku

    def warn_missing(self, logger: logging.Logger | None = None) -> None:
        """One warning per run naming the IDs the file does not list (their names are null)."""
        if (
            self._names is None
            or self._warned
            or not (self._missing_products or self._missing_plans)
        ):
            return
        self._warned = True
        parts = []
        if self._missing_products:
            parts.append(f"product(s) {', '.join(sorted(self._missing_products))}")
        if self._missing_plans:
            parts.append(f"service plan(s) {', '.join(sorted(self._missing_plans))}")
        (logger or self.logger).warning(
            "Microsoft's product names file (%s) does not list %s: their names are null. A newer "
            "copy of the file may list them (it is re-read after product_names_cache_hours)",
            self._names.source,
            " and ".join(parts),
        )

    # -- loading -----------------------------------------------------------------------------

    def _load(self) -> ProductNames | None:
        path = self.config.get("product_names_path")
        if path:
            return self._from_local_copy(Path(str(path)).expanduser())
        url = self.config.get("product_names_url", DEFAULT_URL)
        if not url:
            self.logger.info("product_names_url is empty: product and service plan names are off")
            return None
        return self._from_url(str(url))

    def _unavailable(self, why: str) -> None:
        self.logger.warning(
            "Product and service plan names are null in this run: %s. Set product_names_path "
            "to a copy of Microsoft's 'Product names and service plan identifiers for "
            "licensing' CSV where the download address cannot be reached",
            why,
        )

    def _from_local_copy(self, path: Path) -> ProductNames | None:
        try:
            names = ProductNames.parse(read_text(path.read_bytes()), str(path))
        except OSError as exc:
            self._unavailable(f"product_names_path {path} cannot be read ({exc.strerror or exc})")
            return None
        except ProductNamesUnavailableError as exc:
            self._unavailable(str(exc))
            return None
        self.logger.info("Product names: %d products read from %s", len(names.products), path)
        return names

    @property
    def cache_hours(self) -> float:
        """How long a downloaded copy is used before it is downloaded again."""
        value = self.config.get("product_names_cache_hours")
        return float(DEFAULT_CACHE_HOURS if value is None else value)

    def cache_file(self, url: str) -> Path:
        """Where the copy of `url` is kept (one file per address)."""
        directory = self.config.get("product_names_cache_dir")
        folder = Path(str(directory)).expanduser() if directory else default_cache_dir()
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return folder / f"product-names-{digest}.csv"

    def _from_url(self, url: str) -> ProductNames | None:
        cached = self.cache_file(url)
        kept: ProductNames | None = None
        age_hours = 0.0
        try:
            age_hours = (time.time() - cached.stat().st_mtime) / 3600
            kept = ProductNames.parse(read_text(cached.read_bytes()), f"{cached} (cached)")
        except (OSError, ProductNamesUnavailableError):
            kept = None
        if kept is not None and age_hours < self.cache_hours:
            self.logger.info(
                "Product names: %d products from the copy cached %.1f hours ago (%s)",
                len(kept.products),
                age_hours,
                cached,
            )
            return kept
        host = urlsplit(url).netloc or url
        try:
            body = self._download_with_retries(url, host)
            names = ProductNames.parse(read_text(body), host)
        except (requests.RequestException, ProductNamesUnavailableError) as exc:
            why = describe_failure(exc, host)
            if kept is not None:
                self.logger.warning(
                    "Product names: the download from %s failed (%s); using the copy cached "
                    "%.0f hours ago (%s)",
                    host,
                    why,
                    age_hours,
                    cached,
                )
                return kept
            self._unavailable(f"the download from {host} failed ({why})")
            return None
        self._store(cached, body)
        self.logger.info("Product names: %d products downloaded from %s", len(names.products), host)
        return names

    def _download_with_retries(self, url: str, host: str) -> bytes:
        """`download`, tried again after throttling or a passing fault (logged at INFO: the one
        warning is for names that cannot be had at all)."""

        def attempt() -> bytes:
            try:
                return download(self.transport, url)
            except requests.RequestException as exc:
                response = exc.response if isinstance(exc, requests.HTTPError) else None
                status = response.status_code if response is not None else None
                if status is not None and status != 429 and status < 500:
                    raise
                why = describe_failure(exc, host)
                line = f"Product names: the download from {host} failed ({why})"
                raise Retry(line, response=response, cause=exc, host=host) from None

        def give_up(retry: Retry, reason: GiveUpError) -> BaseException:
            return retry.cause or requests.RequestException(str(retry))

        return self.transport.retrying(
            attempt,
            give_up=give_up,
            policy=DOWNLOAD_RETRIES,
            level=logging.INFO,
            logger=self.logger,
        )

    def _store(self, cached: Path, body: bytes) -> None:
        """Keep the download for later runs (a cache that cannot be written costs a download)."""
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=cached.parent, prefix=".product-names-", delete=False
            ) as handle:
                handle.write(body)
            Path(handle.name).replace(cached)  # appears whole: a parallel run never reads half
        except OSError as exc:
            self.logger.info(
                "Product names: cannot keep a copy in %s (%s); the next run downloads again",
                cached.parent,
                exc.strerror or exc,
            )


def _look_up(table: Mapping[str, str], guid: Any, missing: set[str]) -> str | None:
    """`table[guid]` matched case-insensitively; an id it lacks is noted for the one warning."""
    if not guid:
        return None
    key = guid_key(guid)
    found = table.get(key)
    if found is None:
        missing.add(key)
    return found


def read_text(body: bytes) -> str:
    """The file's text: UTF-8 (with or without BOM), else Windows-1252."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def download(transport: Transport, url: str) -> bytes:
    """GET the file through the transport: no Graph token, proxies and CA bundle from the
    environment; redirects followed (the address may move to a mirror)."""
    for _ in range(MAX_REDIRECTS + 1):
        response = transport.get(
            url,
            headers={"Accept": "text/csv, */*"},
            kind="download",
            timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
        )
        with response:
            if response.is_redirect and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                continue
            response.raise_for_status()
            return response.content
    msg = f"too many redirects downloading {urlsplit(url).netloc}"
    raise requests.TooManyRedirects(msg)


def describe_failure(exc: Exception, host: str) -> str:
    """A short cause for the one warning line."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.exceptions.SSLError):
        return (
            f"TLS verification failed for {host}; a TLS-inspecting proxy needs REQUESTS_CA_BUNDLE"
        )
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return f"{type(exc).__name__}: {host} is unreachable from here"
    return str(exc) if isinstance(exc, ProductNamesUnavailableError) else type(exc).__name__
