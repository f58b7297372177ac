"""svcnet/api/keypair.py: Go's tls.X509KeyPair verdicts, on keys and certificates made here."""

from __future__ import annotations

import base64
import datetime as dt
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from svcnet.api.configs import secret_warnings
from svcnet.api.keypair import key_pair_error, pem_blocks

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _cert(key: PrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svcnet-test")])
    now = dt.datetime.now(dt.UTC)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, algorithm))
    return cert.public_bytes(serialization.Encoding.PEM)


def _key(key: PrivateKey, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8
         ) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_pairs_of_every_key_type(rsa_key: rsa.RSAPrivateKey,
                                 ec_key: ec.EllipticCurvePrivateKey) -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    assert key_pair_error(_cert(rsa_key), _key(rsa_key)) is None
    assert key_pair_error(_cert(rsa_key),
                          _key(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL)) is None
    assert key_pair_error(_cert(ec_key),
                          _key(ec_key, serialization.PrivateFormat.TraditionalOpenSSL)) is None
    assert key_pair_error(_cert(ed), _key(ed)) is None


def test_mismatches(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert key_pair_error(_cert(rsa_key), _key(other)) == (
        "tls: private key does not match public key")
    assert key_pair_error(_cert(rsa_key), _key(ec_key)) == (
        "tls: private key type does not match public key type")


def test_missing_or_switched_pem(rsa_key: rsa.RSAPrivateKey) -> None:
    cert, key = _cert(rsa_key), _key(rsa_key)
    assert key_pair_error(b"", key) == "tls: failed to find any PEM data in certificate input"
    assert key_pair_error(key, cert) == (
        "tls: failed to find certificate PEM data in certificate input, but did find a "
        "private key; PEM inputs may have been switched")
    assert key_pair_error(cert, b"junk") == "tls: failed to find any PEM data in key input"
    assert key_pair_error(cert, cert) == (
        "tls: found a certificate rather than a key in the PEM for the private key")
    other = b"-----BEGIN OTHER-----\nAAAA\n-----END OTHER-----\n"
    assert key_pair_error(other + other, key) == (
        'tls: failed to find "CERTIFICATE" PEM block in certificate input after skipping PEM '
        "blocks of the following types: [OTHER OTHER]")
    assert key_pair_error(cert, other + cert) == (
        'tls: failed to find PEM block with type ending in "PRIVATE KEY" in key input after '
        "skipping PEM blocks of the following types: [OTHER CERTIFICATE]")
    broken_key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    assert key_pair_error(cert, broken_key) == "tls: failed to parse private key"


def test_secret_warnings(rsa_key: rsa.RSAPrivateKey) -> None:
    import base64

    def secret(kind: str, crt: bytes, key: bytes) -> dict[str, object]:
        return {"type": kind, "data": {"tls.crt": base64.b64encode(crt).decode(),
                                       "tls.key": base64.b64encode(key).decode()}}

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert secret_warnings(secret("kubernetes.io/tls", _cert(rsa_key), _key(rsa_key))) == []
    assert secret_warnings(secret("kubernetes.io/tls", _cert(rsa_key), _key(other))) == [
        "tls: private key does not match public key"]
    assert secret_warnings(secret("Opaque", b"", b"")) == []


def test_begin_lines_without_end_cost_linear_time() -> None:
    """Each BEGIN's END is found without a search to the end of the input per BEGIN (a lazy
    regular expression took 11 s for 8,000 such lines, and a request of 3 MiB could hold a
    server for most of an hour): 200,000 of them, several types, in well under a second."""
    data = b"".join(b"-----BEGIN T%d-----\n" % (i % 7) for i in range(200_000))
    block = b"-----BEGIN X-----\n" + base64.b64encode(b"der") + b"\n-----END X-----\n"
    started = time.monotonic()
    blocks = pem_blocks(data + block)
    assert time.monotonic() - started < 5
    assert [(b.type, b.der) for b in blocks] == [("X", b"der")]


def test_blocks_in_order_and_a_begin_without_end_skipped() -> None:
    def pem(kind: str, der: bytes) -> bytes:
        return (f"-----BEGIN {kind}-----\n".encode() + base64.b64encode(der)
                + f"\n-----END {kind}-----\n".encode())
    data = b"-----BEGIN LOST-----\n" + pem("A", b"a") + pem("B", b"b") + pem("A", b"c")
    assert [(b.type, b.der) for b in pem_blocks(data)] == [("A", b"a"), ("B", b"b"),
                                                            ("A", b"c")]
