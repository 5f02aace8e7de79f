"""Keep secrets out of every log line, error message and exception the tap produces.

The client secret, the certificate password, access tokens and the pre-authenticated report
download URLs must never reach a log, at any level: third-party DEBUG logging (urllib3 logs every
request path, MSAL logs token traffic) would otherwise leak them. `install()` wraps the logging
record factory, so every record from every library is redacted when it is created, whatever
handler or formatter prints it later.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

_MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False

# Values that are secret by their shape, whoever logs them.
_PATTERNS = (
    # Bearer tokens in headers or reprs of headers.
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/=]{8,}"), r"\1" + _MASK),
    # OAuth fields in form bodies, JSON or dict reprs.
    (
        re.compile(
            r"(?i)((?:access_token|refresh_token|client_secret|client_assertion|passphrase|password)"
            r"['\"]?\s*[:=]\s*['\"]?)[^'\"&\s,}]+"
        ),
        r"\1" + _MASK,
    ),
    # Pre-authenticated report download URLs: everything after the download path is the key.
    (re.compile(r"(?i)(/download)([/?][^\s'\"<>]*)"), r"\1/" + _MASK),
)


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


def install() -> None:
    """Redact every log record created in this process from now on (idempotent)."""
    global _installed  # noqa: PLW0603 - one process-wide hook, installed once
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: keep the raw text, still redacted
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
