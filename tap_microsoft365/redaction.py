"""Keep secrets out of every log line, error message and exception the tap produces.

The client secret, the certificate password, access tokens and the pre-authenticated report
download URLs must never reach a log, at any level: third-party DEBUG logging (urllib3 logs every
request path, MSAL logs token traffic) would otherwise leak them. `install()` wraps the logging
record factory, so every record from every library is redacted when it is created, whatever
handler or formatter prints it later, and `protect_handlers` adds the same as a filter on the
handlers that print them. Records stay records: a METRIC record keeps its metric point (the SDK's
metric filter and JSON log format read it), and a record without a secret is left as it was.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from singer_sdk.metrics import Point

_MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False

# Values that are secret by their shape, whoever logs them.
_PATTERNS = (
    # Bearer tokens in headers or reprs of headers.
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/=]{8,}"), r"\1" + _MASK),
    # OAuth fields in form bodies, JSON or dict reprs.
    # A quoted value is masked up to its closing quote (it may hold spaces, commas, braces);
    # a bare one (a form body) up to the next separator.
    (
        re.compile(
            r"(?i)((?:access_token|refresh_token|client_secret|client_assertion|passphrase|password)"
            r"['\"]?\s*[:=]\s*)(?:'[^']*'|\"[^\"]*\"|[^'\"&\s,}]+)"
        ),
        lambda match: f"{match.group(1)}{_quote(match)}{_MASK}{_quote(match)}",
    ),
    # Pre-authenticated report download URLs: everything after the download path is the key.
    (re.compile(r"(?i)(/download)([/?][^\s'\"<>]*)"), r"\1/" + _MASK),
)


def _quote(match: re.Match[str]) -> str:
    """The quote around a masked value, kept so the masked text still reads as JSON or repr."""
    value = match.group(0)[len(match.group(1)) :]
    return value[0] if value[:1] in {"'", '"'} else ""


def register_secret(value: str | None) -> None:
    """Mask `value` wherever it appears from now on (ignored when empty or very short)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return `text` with every registered secret and secret-shaped value masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# A LogRecord's own attributes; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(
    [*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime"]
)


def _clean(value: Any) -> Any:
    """`value`, or its redacted text when its text holds a secret."""
    text = value if isinstance(value, str) else str(value)
    clean = redact(text)
    return value if clean == text else clean


def _metric_point(record: logging.LogRecord) -> Point[Any] | None:
    """The SDK's metric point a METRIC record carries (`metrics.log`), if it is one."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], Point):
        return args[0]
    return None


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask every secret in `record`, leaving it as it was when it holds none.

    A METRIC record keeps its point (a copy with masked tags: endpoints may hold a download
    URL), so the SDK's metric filters and its JSON formatter still read `args[0]`. Any other
    record keeps its `msg` and `args` unless its text holds a secret; then its text is masked and
    its args dropped. Extras (`extra=`) and the exception are masked too; an exception whose text
    holds a secret is kept only as masked text (`exc_text`), which the plain format prints.
    """
    point = _metric_point(record)
    if point is not None:
        tags = {key: _clean(value) for key, value in point.tags.items()}
        record.args = (Point(point.metric_type, point.metric, point.value, tags),)
    else:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: keep the raw text, still masked
            message = str(record.msg)
            record.msg, record.args = message, None
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
    for key, value in list(record.__dict__.items()):
        if key not in _RECORD_FIELDS:
            record.__dict__[key] = _clean(value)
    if record.exc_info and record.exc_info[0] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = redact(text)
        if record.exc_text != text:
            record.exc_info = None  # the JSON format would print the exception's own text
    return record


class RedactionFilter(logging.Filter):
    """A logging filter that masks secrets in every record it sees and drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask `record` in place; always pass it on."""
        redact_record(record)
        return True


def protect_handlers(logger: logging.Logger | None = None) -> None:
    """Add the redaction filter to every handler of `logger` (the root's by default), so what
    `extra=` adds after a record is created is masked too (idempotent)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactionFilter) for f in handler.filters):
            handler.addFilter(RedactionFilter())


def install() -> None:
    """Mask every log record created in this process from now on (idempotent).

    The record factory sees every record of every library, whatever handler prints it later;
    `protect_handlers` adds the same masking where records are printed, for `extra=` fields.
    """
    global _installed  # noqa: PLW0603 - one process-wide hook, installed once
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
