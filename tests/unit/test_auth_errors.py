"""auth.py: Entra ID token errors as one line with the fix, the certificate file's checks, and the
ids Microsoft support asks for.

AADSTS codes: https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tap_microsoft365.errors import SettingsError
from tap_microsoft365.graph.auth import (
    _AADSTS_FIXES,
    ClientCertificate,
    describe_token_error,
    entra_ids,
)
from tests.unit.responses import response

if TYPE_CHECKING:
    from pathlib import Path

AUTHORITY = "https://login.microsoftonline.com/contoso.onmicrosoft.com"

# --------------------------------------------------------------------------------------------
# describe_token_error
# --------------------------------------------------------------------------------------------

# Each handled code and a piece of the fix it must name (the setting or the portal step).
FIXES: dict[int, str] = {
    7000215: "set client_secret to the secret's Value",
    7000222: "the client secret has expired: create a new secret",
    7000218: "set client_secret or client_certificate_path",
    700016: "copy the Application (client) ID",
    7000229: "Grant admin consent",
    90002: "set tenant_id to the Directory (tenant) ID",
    900023: "tenant_id is neither a tenant GUID nor a domain",
    90038: "set cloud to that tenant's cloud",
    900432: "set cloud to that tenant's cloud",
    700027: "upload its public certificate",
    7000112: "re-enable it",
    53003: "exclude this workload identity from the policy",
    70011: "check the cloud, graph_url and authority_host settings",
    500011: "check the cloud setting",
    65001: "Grant admin consent",
}


def test_every_handled_code_is_tested() -> None:
    assert set(FIXES) == set(_AADSTS_FIXES)


@pytest.mark.parametrize(("code", "fix"), sorted(FIXES.items()))
def test_each_handled_code_gives_its_fix(code: int, fix: str) -> None:
    result = {
        "error": "invalid_client",
        "error_description": f"AADSTS{code}: Entra ID's own words.\r\nTrace ID: abc\r\n",
        "error_codes": [code],
        "trace_id": "0d1e2f30-0000-4000-8000-000000000001",
        "correlation_id": "0d1e2f30-0000-4000-8000-000000000002",
    }
    line = describe_token_error(result, AUTHORITY)
    assert line.startswith(f"Entra ID refused a token for {AUTHORITY} (AADSTS{code}): ")
    assert fix in line
    assert "Entra ID's own words" not in line  # the fix replaces Entra's description
    assert line.endswith(
        " [trace id 0d1e2f30-0000-4000-8000-000000000001; "
        "correlation id 0d1e2f30-0000-4000-8000-000000000002]"
    )
    assert "\n" not in line
    assert "\r" not in line


def test_an_unknown_code_shows_the_first_line_of_entras_description() -> None:
    result = {
        "error": "invalid_request",
        "error_description": "  AADSTS50049: Unknown or invalid instance.  \r\nTrace ID: x\r\n",
        "error_codes": [50049],
    }
    assert describe_token_error(result, AUTHORITY) == (
        f"Entra ID refused a token for {AUTHORITY} (AADSTS50049): "
        "AADSTS50049: Unknown or invalid instance."
    )


def test_codes_given_as_strings() -> None:
    line = describe_token_error({"error": "invalid_client", "error_codes": ["7000222"]}, AUTHORITY)
    assert "(AADSTS7000222)" in line
    assert "the client secret has expired" in line


def test_without_codes_the_error_name_is_shown() -> None:
    result = {"error": "invalid_scope", "error_description": "The scope is not valid."}
    assert describe_token_error(result, AUTHORITY) == (
        f"Entra ID refused a token for {AUTHORITY} (invalid_scope): The scope is not valid."
    )


def test_an_empty_result() -> None:
    assert describe_token_error({}, AUTHORITY) == (
        f"Entra ID refused a token for {AUTHORITY} (error): no description"
    )


def test_only_the_ids_present_are_named() -> None:
    result = {"error": "x", "error_codes": [90002], "correlation_id": "c-1", "trace_id": ""}
    line = describe_token_error(result, AUTHORITY)
    assert line.endswith(
        "Overview (or a verified domain), and check the cloud setting [correlation id c-1]"
    )


# --------------------------------------------------------------------------------------------
# ClientCertificate.load
# --------------------------------------------------------------------------------------------

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def key_and_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    """An RSA key and a self-signed certificate for it, as an app registration would hold."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tap-microsoft365 unit test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey, password: str | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "cert.pem"
    path.write_bytes(data)
    return str(path)


def test_load_a_key_and_certificate(
    tmp_path: Path, key_and_cert: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    key, cert_pem = key_and_cert
    data = _key_pem(key, None) + cert_pem
    loaded = ClientCertificate.load(_write(tmp_path, data), None)
    assert loaded.private_key_pem == data.decode()
    assert loaded.certificate_pem == cert_pem.decode()
    assert loaded.password is None
    assert loaded.as_msal_credential() == {
        "private_key": data.decode(),
        "public_certificate": cert_pem.decode(),
    }


def test_load_an_encrypted_key_with_its_password(
    tmp_path: Path, key_and_cert: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    key, cert_pem = key_and_cert
    # The certificate first: the order in the file does not matter.
    path = _write(tmp_path, cert_pem + _key_pem(key, PASSWORD))
    loaded = ClientCertificate.load(path, PASSWORD)
    assert loaded.certificate_pem == cert_pem.decode()
    assert loaded.as_msal_credential()["passphrase"] == PASSWORD


@pytest.mark.parametrize(
    ("contents", "password", "message"),
    [
        (
            "encrypted-key+cert",
            None,
            "client_certificate_password is needed: the private key in client_certificate_path "
            "is encrypted",
        ),
        (
            "key+cert",
            PASSWORD,
            "client_certificate_password is set but the private key is not encrypted: remove "
            "client_certificate_password",
        ),
        ("encrypted-key+cert", "wrong password", "no readable private key in the PEM file"),
        ("cert", None, "no readable private key in the PEM file"),
        ("garbage", None, "no readable private key in the PEM file"),
        ("key", None, "the PEM file has no certificate: append the public certificate"),
    ],
)
def test_load_errors_name_the_setting_and_the_fix(
    tmp_path: Path,
    key_and_cert: tuple[rsa.RSAPrivateKey, bytes],
    contents: str,
    password: str | None,
    message: str,
) -> None:
    key, cert_pem = key_and_cert
    data = {
        "encrypted-key+cert": _key_pem(key, PASSWORD) + cert_pem,
        "key+cert": _key_pem(key, None) + cert_pem,
        "cert": cert_pem,
        "garbage": b"this is not PEM\n",
        "key": _key_pem(key, None),
    }[contents]
    with pytest.raises(SettingsError) as raised:
        ClientCertificate.load(_write(tmp_path, data), password)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text
    if password:
        assert password not in text  # never echo the secret


def test_load_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "cert.pem"
    with pytest.raises(SettingsError) as raised:
        ClientCertificate.load(str(missing), None)
    assert str(raised.value) == (
        f"client_certificate_path: cannot read '{missing}' (No such file or directory): point it "
        "at a PEM file holding the private key and the certificate"
    )


def test_load_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"client_certificate_path: cannot read"):
        ClientCertificate.load(str(tmp_path), None)


# --------------------------------------------------------------------------------------------
# entra_ids
# --------------------------------------------------------------------------------------------


def test_entra_ids_from_the_body() -> None:
    answer = response(
        400,
        body={"error": "invalid_client", "trace_id": "t-body", "correlation_id": "c-body"},
        headers={"x-ms-request-id": "t-header", "client-request-id": "c-header"},
    )
    assert entra_ids(answer) == "trace id t-body, correlation id c-body"


def test_entra_ids_from_the_headers() -> None:
    answer = response(
        503,
        content=b"Service Unavailable",
        headers={"x-ms-request-id": "t-h", "client-request-id": "c-h"},
    )
    assert entra_ids(answer) == "trace id t-h, correlation id c-h"


def test_entra_ids_falls_back_to_the_id_the_request_sent() -> None:
    answer = response(
        502, body=["not", "an", "object"], request_headers={"client-request-id": "c-r"}
    )
    assert entra_ids(answer) == "trace id none, correlation id c-r"


def test_entra_ids_when_nothing_names_the_call() -> None:
    assert entra_ids(response(500, content=b"")) == "trace id none, correlation id none"


def test_entra_ids_without_an_answer() -> None:
    assert entra_ids(None) == "no answer"
