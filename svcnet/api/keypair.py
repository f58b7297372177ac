"""Whether a PEM certificate and key make a TLS key pair, in the words of Go's
``crypto/tls.X509KeyPair``: the warning kube-apiserver gives for a ``kubernetes.io/tls``
Secret whose ``tls.crt`` and ``tls.key`` do not match (pkg/registry/core/secret/strategy.go,
warningsForSecret).

Theory of operation
-------------------
Followed: crypto/tls's ``X509KeyPair`` (the order of its checks and its messages) over
encoding/pem's ``Decode`` (blocks between ``-----BEGIN TYPE-----`` and ``-----END TYPE-----``;
anything else is skipped). The certificate input must hold a ``CERTIFICATE`` block (the first
one is the leaf), the key input a block whose type ends in ``PRIVATE KEY``; the leaf is parsed,
the key parsed as PKCS#1, PKCS#8 or SEC 1 (Go's ``parsePrivateKey`` order), and the key's
public half compared with the leaf's. The parsing is the ``cryptography`` package's.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

_BEGIN = re.compile(rb"-----BEGIN ([^\r\n-]*)-----\r?\n")
_END = re.compile(rb"-----END ([^\r\n-]*)-----")


@dataclass(frozen=True, slots=True)
class PemBlock:
    """One block of encoding/pem: its type, its DER bytes, and whether it had headers."""

    type: str
    der: bytes
    has_headers: bool = False


def pem_blocks(data: bytes) -> list[PemBlock]:
    """The PEM blocks of ``data``, in order, as Go's ``pem.Decode`` finds them one after
    another (a block whose base64 is malformed is skipped, as Go's decoder skips past it)."""
    # One pass for the END lines, then each BEGIN line's END found by bisection: linear in
    # the input (a search for each BEGIN's END to the end of the input, as a lazy regular
    # expression does, took minutes for a request of many BEGIN lines without END).
    ends: dict[bytes, list[int]] = {}
    for end_line in _END.finditer(data):
        ends.setdefault(end_line.group(1), []).append(end_line.start())
    out: list[PemBlock] = []
    pos = 0
    while (m := _BEGIN.search(data, pos)) is not None:
        kind = m.group(1)
        candidates = ends.get(kind, [])
        i = bisect.bisect_left(candidates, m.end())
        if i == len(candidates):
            pos = m.start() + 1
            continue
        end = candidates[i]
        pos = end + len(b"-----END ") + len(kind) + len(b"-----")
        lines = data[m.end():end].splitlines()
        body = b"".join(line for line in lines if b":" not in line)
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            continue
        out.append(PemBlock(kind.decode("latin-1"), der,
                            any(b":" in line for line in lines)))
    return out


def _blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(type, DER) of each PEM block, in order."""
    return [(b.type, b.der) for b in pem_blocks(data)]


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def key_pair_error(cert_pem: bytes, key_pem: bytes) -> str | None:
    """Go's ``tls.X509KeyPair`` error for these inputs, or None when they are a pair."""
    blocks = _blocks(cert_pem)
    certs = [der for kind, der in blocks if kind == "CERTIFICATE"]
    if not certs:
        skipped = [kind for kind, _ in blocks]
        if not skipped:
            return "tls: failed to find any PEM data in certificate input"
        if len(skipped) == 1 and skipped[0].endswith("PRIVATE KEY"):
            return ("tls: failed to find certificate PEM data in certificate input, but did "
                    "find a private key; PEM inputs may have been switched")
        return ('tls: failed to find "CERTIFICATE" PEM block in certificate input after '
                f"skipping PEM blocks of the following types: {_go_list(skipped)}")
    skipped = []
    key_der = None
    for kind, der in _blocks(key_pem):
        if kind == "PRIVATE KEY" or kind.endswith(" PRIVATE KEY"):
            key_der = der
            break
        skipped.append(kind)
    if key_der is None:
        if not skipped:
            return "tls: failed to find any PEM data in key input"
        if skipped == ["CERTIFICATE"]:
            return "tls: found a certificate rather than a key in the PEM for the private key"
        return ('tls: failed to find PEM block with type ending in "PRIVATE KEY" in key input '
                f"after skipping PEM blocks of the following types: {_go_list(skipped)}")
    try:
        public = x509.load_der_x509_certificate(certs[0]).public_key()
    except ValueError:
        return "x509: malformed certificate"
    try:
        private = serialization.load_der_private_key(key_der, password=None)
    except (ValueError, TypeError):
        return "tls: failed to parse private key"
    return _mismatch(public, private)


def _mismatch(public: object, private: object) -> str | None:
    pairs = ((rsa.RSAPublicKey, rsa.RSAPrivateKey), (ec.EllipticCurvePublicKey,
             ec.EllipticCurvePrivateKey), (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey))
    for public_type, private_type in pairs:
        if isinstance(public, public_type):
            if not isinstance(private, private_type):
                return "tls: private key type does not match public key type"
            mine = private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            theirs = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return None if mine == theirs else "tls: private key does not match public key"
    return "tls: unknown public key algorithm"
