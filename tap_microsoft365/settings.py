"""The tap's settings: their JSON schema, how they are read from the environment, and checked.

The schema holds every rule about one setting (type, range, allowed values, URL and GUID
patterns), so `--about`, Meltano and the Hub show them. Python adds only what a schema cannot say
well: rules across settings (exactly one credential) and a date that may also be a date-time.
`problems()` turns every failure of one config into a line with the setting's name, what is
wrong and the fix, and never echoes a secret's value, whatever its type.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR

from tap_microsoft365.graph.auth import CLOUDS
from tap_microsoft365.product_names import DEFAULT_CACHE_HOURS, DEFAULT_URL

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
DOMAIN = r"(?=.{4,253}$)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}"
GUID_PATTERN = f"^{GUID}$"
TENANT_PATTERN = f"^({GUID}|{DOMAIN})$"
# A host (and port) only: the tap adds the paths (/v1.0, /<tenant>/oauth2/...) itself.
HOST_URL_PATTERN = r"^https://[^/?#\s]+/?$"
# Empty turns product names off.
HTTPS_OR_EMPTY_PATTERN = r"^(https://\S+)?$"
OVERVIEW = "Entra ID > App registrations > your app > Overview"
SECRETS = ("client_secret", "client_certificate_password")
# An object's keys are masked only from this length on: short ones are words ("value").
LONG_KEY = 16
CREDENTIAL_FIX = (
    "set client_secret (Certificates & secrets > New client secret > copy its Value) or "
    "client_certificate_path (a PEM with key and certificate)"
)

CONFIG_SCHEMA: dict[str, Any] = th.PropertiesList(
    th.Property(
        "tenant_id",
        th.StringType(pattern=TENANT_PATTERN),
        required=True,
        title="Tenant ID",
        description="Directory (tenant) ID, a GUID from Entra ID > Overview, or a verified "
        "domain such as contoso.onmicrosoft.com.",
    ),
    th.Property(
        "client_id",
        th.StringType(pattern=GUID_PATTERN),
        required=True,
        title="Client ID",
        description="Application (client) ID of the app registration, a GUID from "
        "App registrations > your app > Overview.",
    ),
    th.Property(
        "client_secret",
        th.StringType,
        secret=True,
        title="Client secret",
        description="Secret. The client secret's Value (not its Secret ID), from "
        "Certificates & secrets. Set this or client_certificate_path, not both.",
    ),
    th.Property(
        "client_certificate_path",
        th.StringType,
        title="Client certificate path",
        description="Path to a PEM file holding the private key and the certificate "
        "uploaded to the app registration (MSAL computes the thumbprint). The alternative "
        "to client_secret.",
    ),
    th.Property(
        "client_certificate_password",
        th.StringType,
        secret=True,
        title="Client certificate password",
        description="Secret. Passphrase of the private key in client_certificate_path, if "
        "it is encrypted.",
    ),
    th.Property(
        "cloud",
        th.StringType,
        default="global",
        allowed_values=list(CLOUDS),
        title="Cloud",
        description="Microsoft cloud of the tenant: global (including GCC), usgov (GCC "
        "High), usgov_dod (DoD) or china (21Vianet). Selects the Entra ID and Graph hosts.",
    ),
    th.Property(
        "authority_host",
        th.StringType(pattern=HOST_URL_PATTERN),
        title="Authority host",
        description="Override of the Entra ID host, e.g. https://login.microsoftonline.com "
        "(sovereign or custom endpoints, test emulators). Defaults to the cloud's.",
    ),
    th.Property(
        "graph_url",
        th.StringType(pattern=HOST_URL_PATTERN),
        title="Graph URL",
        description="Override of the Microsoft Graph host, e.g. https://graph.microsoft.com "
        "(without /v1.0). Defaults to the cloud's.",
    ),
    th.Property(
        "start_date",
        th.DateType,
        title="Start date",
        description="Earliest day of usage-report data to extract (YYYY-MM-DD). Graph keeps "
        "only the last 28 days, so earlier dates are clamped to that window.",
    ),
    th.Property(
        "page_size",
        th.IntegerType(minimum=1, maximum=999),
        default=999,
        title="Page size",
        description="Objects per Graph page ($top), 1 to 999. 999 makes the fewest requests.",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType(minimum=1),
        default=300,
        title="Request timeout",
        description="Seconds to wait for one HTTP response before retrying it.",
    ),
    th.Property(
        "retry_max_attempts",
        th.IntegerType(minimum=1),
        default=8,
        title="Retry attempts",
        description="Attempts per request on throttling (429) and transient faults "
        "(5xx, resets, timeouts) before the run fails.",
    ),
    th.Property(
        "retry_max_wait_seconds",
        th.IntegerType(minimum=1),
        default=900,
        title="Retry wait limit",
        description="Longest total time, in seconds, spent waiting and retrying one request.",
    ),
    th.Property(
        "skip_forbidden_streams",
        th.BooleanType,
        default=False,
        title="Skip streams the app may not read",
        description="When Graph refuses a stream for lack of an application permission "
        "(403), log one warning naming the permission and carry on with the other streams, "
        "instead of failing the run (the default).",
    ),
    th.Property(
        "concealed_names",
        th.StringType,
        default="warn",
        allowed_values=["warn", "error"],
        title="Concealed names in reports",
        description="What to do when usage reports conceal user, group and site names "
        "(the tenant default since 2021): warn logs one warning per run and extracts the "
        "hashed ids; error stops the run. Either way the message names the admin center "
        "setting that shows real names.",
    ),
    th.Property(
        "report_calls_per_window",
        th.IntegerType(minimum=1),
        default=14,
        title="Report calls per window",
        description="Calls per report function allowed in report_window_seconds. Graph "
        "allows 14 per 10 minutes per app and tenant; lower it when another tool uses the "
        "same app registration's budget.",
    ),
    th.Property(
        "report_window_seconds",
        th.NumberType(exclusive_minimum=0),
        default=600,
        title="Report pacing window",
        description="Length, in seconds, of the window report_calls_per_window applies to "
        "(Graph's is 10 minutes).",
    ),
    th.Property(
        "report_concurrency",
        th.IntegerType(minimum=1),
        default=8,
        title="Report downloads at once",
        description="Report files fetched at the same time. Each report paces its own "
        "calls; this only caps parallel transfers.",
    ),
    th.Property(
        "report_spool_limit_mb",
        th.IntegerType(minimum=1),
        default=2048,
        title="Report spool limit",
        description="Report files (gzip-compressed, in TMPDIR) fetched ahead of their "
        "stream are held to about this many megabytes; reports then wait their turn.",
    ),
    th.Property(
        "product_names_url",
        th.StringType(pattern=HTTPS_OR_EMPTY_PATTERN),
        default=DEFAULT_URL,
        title="Product names URL",
        description="Where to download Microsoft's 'Product names and service plan "
        "identifiers for licensing' CSV, which gives SKUs and service plans their names "
        "(e.g. SPE_E5 -> Microsoft 365 E5). Read at most once per run and cached. Empty: "
        "no names.",
    ),
    th.Property(
        "product_names_path",
        th.StringType,
        title="Product names file",
        description="A local copy of that CSV, for networks without internet access: read "
        "instead of downloading.",
    ),
    th.Property(
        "product_names_cache_dir",
        th.StringType,
        title="Product names cache folder",
        description="Folder keeping the downloaded CSV between runs. Defaults to "
        "$XDG_CACHE_HOME/tap-microsoft365 (~/.cache/tap-microsoft365).",
    ),
    th.Property(
        "product_names_cache_hours",
        th.IntegerType(minimum=0),
        default=DEFAULT_CACHE_HOURS,
        title="Product names cache hours",
        description="Hours a downloaded CSV is used before it is downloaded again (a "
        "failed download falls back to the older copy). 0 downloads on every run.",
    ),
).to_dict()

# What to do about a setting, added to the line that names it.
FIXES = {
    "tenant_id": f"set it to the Directory (tenant) ID shown in {OVERVIEW}, or a verified "
    "domain such as contoso.onmicrosoft.com",
    "client_id": f"copy the Application (client) ID shown in {OVERVIEW} (not the app's name "
    "or the secret's ID)",
    "client_secret": "paste the client secret's Value from Certificates & secrets as text",
    "client_certificate_password": "give the private key's passphrase as text",
    "page_size": "Graph accepts 1 to 999 (999 is fastest)",
    "authority_host": "give the Entra ID host only, such as https://login.microsoftonline.com "
    "(Entra ID speaks only TLS)",
    "graph_url": "give the Graph host only, such as https://graph.microsoft.com (Graph speaks "
    "only TLS; the tap adds /v1.0 itself)",
    "product_names_url": "give an https:// URL, or leave it empty for no names",
}
TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "string": "text",
    "object": "a JSON object",
    "array": "a JSON array",
}
MISSING = {
    "tenant_id": f"set it to the Directory (tenant) ID shown in {OVERVIEW}",
    "client_id": f"set it to the Application (client) ID shown in {OVERVIEW}",
}


def _numeric_kind(schema: Mapping[str, Any]) -> str | None:
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "integer" in types:
        return "integer"
    return "number" if "number" in types else None


def _number(text: str, kind: str) -> int | float | str:
    """A number from an environment variable's text; the text itself when it is none, so the
    schema reports it as a setting of the wrong type."""
    value = text.strip()
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    if kind == "integer":
        return int(number) if number.is_integer() else text
    return number


def environment_config(schema: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Settings from `<PREFIX><SETTING>` variables (`--config ENV`), typed by the schema.

    Unlike the SDK's reader (which stops with a ValueError traceback on `PAGE_SIZE=abc` and
    passes number settings on as text), a number that does not parse is kept as text, for the
    settings check to name.
    """
    config: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        text = os.environ.get(prefix + name.upper().replace("-", "_"))
        if text is None:
            continue
        kind = _numeric_kind(prop)
        types = prop.get("type", [])
        if kind:
            config[name] = _number(text, kind)
        elif "boolean" in types:
            config[name] = text.strip().lower() in {"true", "1", "yes", "on"}
        elif "array" in types or "object" in types:
            try:
                config[name] = json.loads(text)
            except ValueError:
                config[name] = text if "object" in types else text.split(",")
        else:
            config[name] = text
    return config


def normalized(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with identifiers' stray spaces removed (pasted from the portal)."""
    result = dict(config)
    for name in ("tenant_id", "client_id"):
        if isinstance(result.get(name), str):
            result[name] = result[name].strip()
            if not result[name]:
                del result[name]
    return result


def _shown(name: str, value: Any) -> str:
    """A value as a message may show it: never a secret's."""
    if name in SECRETS:
        return f"(a value of type {type(value).__name__}, not shown)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _range(schema: Mapping[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"use {low} to {high}"
    if schema.get("exclusiveMinimum") == 0 or low == 1:
        return "it must be a positive number"
    return f"use at least {low}" if low is not None else f"use at most {high}"


def _schema_problem(  # noqa: PLR0911 - one message per kind of rule
    name: str, validator: str, value: Any, schema: Mapping[str, Any]
) -> str:
    shown = _shown(name, value)
    fix = FIXES.get(name)
    if validator == "pattern" and name == "tenant_id":
        return f"tenant_id {shown} is neither a GUID nor a domain: {fix}"
    if validator == "pattern" and name == "client_id":
        return f"client_id {shown} is not a GUID: {fix}"
    if validator == "pattern" and isinstance(value, str) and value.startswith("https://"):
        return f"{name} {shown} has a path: remove it, {fix}"
    if validator == "pattern":
        return f"{name} {shown} must be an https:// URL: {fix}"
    if validator == "enum":
        allowed = ", ".join(str(option) for option in schema.get("enum", []))
        return f"{name} {shown} is unknown: use one of {allowed}"
    if validator in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        return f"{name} {shown} is out of range: {fix or _range(schema)}"
    if validator == "type":
        declared = schema.get("type") or []
        wanted: list[str] = [declared] if isinstance(declared, str) else list(declared)
        kinds = " or ".join(kind for kind in wanted if kind != "null")
        text = f"{name} {shown} is not of type '{kinds}'"
        if name in SECRETS and fix:
            return f"{text}: {fix}"
        wanted_text = " or ".join(TYPE_WORDS.get(kind, kind) for kind in wanted if kind != "null")
        return f"{text}: set it to {wanted_text}"
    return f"{name} is invalid ({validator}): {fix or 'see tap-microsoft365 --about'}"


def _schema_problems(schema: dict[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    validator = DEFAULT_JSONSCHEMA_VALIDATOR(schema)
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.path)):
        if error.validator == "required":
            name = str(error.message).split("'")[1]
            fix = MISSING.get(name, "set it")
            yield f"{name} is missing: {fix}"
            continue
        if not error.path:
            yield f"the config is invalid: {error.message}"
            continue
        name = ".".join(str(part) for part in error.path)
        if len(error.path) == 1:
            yield _schema_problem(name, str(error.validator), error.instance, error.schema)
        else:  # inside an object setting (stream maps, batch config): the schema's own words
            yield f"{name}: {_shown(name, error.instance)} is invalid ({error.validator})"


def check_start_date(value: Any) -> str | None:
    """start_date must be a day (YYYY-MM-DD, or an ISO date-time whose day is used)."""
    try:
        if value is not None:
            datetime.date.fromisoformat(str(value)[:10])
    except ValueError:
        return f"start_date {value!r} is not a date: use YYYY-MM-DD, such as 2026-11-01"
    return None


def _cross_field_problems(config: Mapping[str, Any]) -> Iterator[str]:
    has_secret = bool(config.get("client_secret"))
    has_certificate = bool(config.get("client_certificate_path"))
    if has_secret and has_certificate:
        yield "client_secret and client_certificate_path are both set: keep exactly one credential"
    elif not has_secret and not has_certificate:
        yield f"no credential: {CREDENTIAL_FIX}"
    if config.get("client_certificate_password") and not has_certificate:
        yield "client_certificate_password is set without client_certificate_path: remove it"
    date_problem = check_start_date(config.get("start_date"))
    if date_problem:
        yield date_problem


def problems(schema: dict[str, Any], config: Mapping[str, Any]) -> list[str]:
    """Every problem of `config`, one line each, each naming its setting and the fix."""
    found = list(_schema_problems(copy.deepcopy(schema), config))
    for problem in _cross_field_problems(config):
        if problem not in found:
            found.append(problem)
    return found


def message(found: list[str]) -> str:
    """One message for all problems of a config."""
    if len(found) == 1:
        return found[0]
    return f"{len(found)} settings problems: " + "; ".join(
        f"({number}) {problem}" for number, problem in enumerate(found, 1)
    )


def secret_strings(value: Any) -> Iterator[str]:
    """Every string inside a setting's value, whatever its type (a list, an object, a number)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and len(key) >= LONG_KEY:  # a secret pasted as a key
                yield key
            yield from secret_strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from secret_strings(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def secret_values(config: Mapping[str, Any]) -> list[str]:
    """The strings to mask: every one inside the secret settings."""
    return [text for name in SECRETS for text in secret_strings(config.get(name))]
