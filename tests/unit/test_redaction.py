"""redaction.py: secrets registered by the tap, and secret-shaped values, never reach a log line.

`register_secret` is process-wide: every value registered here is unique to this module, so other
tests' log lines are unaffected.
"""

from __future__ import annotations

import pytest

from tap_microsoft365.redaction import redact, register_secret

SECRET = "unit~Q8Q~redaction-client-secret-0001"
PASSWORD = "unit-cert-password-0002"
SECRET_PREFIX = "unit-prefix-0003"


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    register_secret(SECRET)
    register_secret(PASSWORD)
    register_secret(SECRET_PREFIX)
    register_secret(SECRET_PREFIX + "-and-longer")
    register_secret("abc")  # too short to mask: would garble ordinary text
    register_secret("")
    register_secret(None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"secret is {SECRET}.", "secret is ***."),
        (f"{SECRET}{SECRET}", "******"),
        (f"cert ({PASSWORD}) failed", "cert (***) failed"),
        # The longest secret first: no tail of it is left.
        (f"x {SECRET_PREFIX}-and-longer y", "x *** y"),
        (f"x {SECRET_PREFIX} y", "x *** y"),
        ("abc is not masked", "abc is not masked"),
        ("nothing secret here", "nothing secret here"),
        ("", ""),
    ],
)
def test_registered_secrets(text: str, expected: str) -> None:
    assert redact(text) == expected


TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ***"),
        (f"{{'Authorization': 'bearer {TOKEN}'}}", "{'Authorization': 'bearer ***'}"),
        ("Bearer short", "Bearer short"),  # fewer than 8 characters: not a token
        (
            "grant_type=client_credentials&client_secret=s3cr3t&scope=x",
            "grant_type=client_credentials&client_secret=***&scope=x",
        ),
        (
            f'{{"token_type": "Bearer", "access_token": "{TOKEN}", "expires_in": 3599}}',
            '{"token_type": "Bearer", "access_token": "***", "expires_in": 3599}',
        ),
        ("{'refresh_token': 'r-1', 'x': 1}", "{'refresh_token': '***', 'x': 1}"),
        ("client_assertion=eyJh.eyJi.c2ln&x=1", "client_assertion=***&x=1"),
        ("PASSWORD: hunter2 rest", "PASSWORD: *** rest"),
        ("{'passphrase': 'pem-pass'}", "{'passphrase': '***'}"),
        (
            "GET https://reports.office.com/data/download/JDFKx8?sv=2024&sig=abc%3D HTTP/1.1",
            "GET https://reports.office.com/data/download/*** HTTP/1.1",
        ),
        (
            "Location: 'https://x.blob.core.windows.net/download?token=zzz'",
            "Location: 'https://x.blob.core.windows.net/download/***'",
        ),
        ("the download failed", "the download failed"),
        (
            "/v1.0/reports/getEmailActivityUserDetail(date=2026-11-01)",
            "/v1.0/reports/getEmailActivityUserDetail(date=2026-11-01)",
        ),
    ],
)
def test_secret_shaped_values(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_registered_secret_inside_a_pattern() -> None:
    text = f"POST /token body=client_secret={SECRET}&grant_type=client_credentials"
    assert redact(text) == "POST /token body=client_secret=***&grant_type=client_credentials"
    assert SECRET not in redact(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A password is free text: a quoted one is masked up to its closing quote, whatever it
        # holds, or its tail is logged.
        ("{'passphrase': 'correct horse battery'}", "{'passphrase': '***'}"),
        ('{"password": "pa ss, word}"}', '{"password": "***"}'),
        ("{'client_secret': 'a,b'}", "{'client_secret': '***'}"),
    ],
)
def test_a_quoted_unregistered_secret_is_masked_whole(text: str, expected: str) -> None:
    assert redact(text) == expected
