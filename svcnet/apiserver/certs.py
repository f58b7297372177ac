"""TLS material and credentials for `svcnet server`, generated once into the data directory.

On first start the server creates a CA, a serving certificate for every address it answers on
(its listen address; when that is a wildcard, each address of the host's interfaces, see
:func:`interface_addresses`; its advertise address; and localhost / 127.0.0.1 / the
`kubernetes` Service names and 10.96.0.1), and an admin bearer token. Later starts reuse
them, so kubeconfigs stay valid across restarts. Keys and tokens are written 0600 inside a
0700 directory.

The same CA signs what the CertificateSigningRequest signer issues (:class:`ClusterCA`) and
the client certificates :func:`issue_client` makes for users, both through
:func:`sign_public_key`; the API server authenticates them (clientcerts.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from svcnet.api.certificates import X509Usages
from svcnet.api.nodes import KUBELET_CLIENT_CN, KUBELET_CLIENT_GROUP

_VALIDITY = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class TLSFiles:
    ca_cert: Path
    cert: Path
    key: Path

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()

    @classmethod
    def of(cls, data_dir: Path) -> TLSFiles:
        """Where ``data_dir`` keeps the CA and the serving certificate."""
        pki = data_dir / "pki"
        return cls(pki / "ca.crt", pki / "apiserver.crt", pki / "apiserver.key")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_ca(data_dir: Path) -> bool:
    """The cluster CA (``pki/ca.crt``, ``pki/ca.key``), created if missing; True if it was."""
    return _ensure_ca(data_dir / "pki", "svcnet-ca")


def _ensure_ca(pki: Path, common_name: str) -> bool:
    """A CA in ``pki`` (``ca.crt``, ``ca.key``), created if missing; True if it was."""
    ensure_private_dir(pki)
    ca_cert_path, ca_key_path = pki / "ca.crt", pki / "ca.key"
    now = datetime.now(UTC) - timedelta(minutes=5)
    if not ca_cert_path.exists() or not ca_key_path.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + _VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, key_cert_sign=True, crl_sign=True,
                       content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, encipher_only=False,
                       decipher_only=False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        _write_private(ca_key_path, _key_pem(ca_key))
        ca_cert_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        return True
    return False


def ensure_tls(data_dir: Path, hosts: list[str]) -> TLSFiles:
    """The CA and serving certificate in ``data_dir/pki``, created if missing.

    A serving certificate that does not cover every name in ``hosts`` is re-issued from the
    same CA (so existing kubeconfigs, which pin the CA, keep working).
    """
    pki = data_dir / "pki"
    files = TLSFiles.of(data_dir)
    if ensure_ca(data_dir):
        for stale in (files.cert, files.key):
            stale.unlink(missing_ok=True)

    wanted = sorted(set(hosts) | {"localhost", "127.0.0.1", "kubernetes",
                                  "kubernetes.default", "kubernetes.default.svc",
                                  "kubernetes.default.svc.cluster.local", "10.96.0.1"})
    if files.cert.exists() and files.key.exists():
        current = x509.load_pem_x509_certificate(files.cert.read_bytes())
        try:
            san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            covered = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
                str(v) for v in san.get_values_for_type(x509.IPAddress)}
        except x509.ExtensionNotFound:
            covered = set()
        if set(wanted) <= covered:
            return files

    cert, key_pem = _issue(pki, "kube-apiserver", (), wanted, SERVING)
    _write_private(files.key, key_pem)
    files.cert.write_bytes(cert)
    return files


SERVING: Final = (ExtendedKeyUsageOID.SERVER_AUTH,)
CLIENT: Final = (ExtendedKeyUsageOID.CLIENT_AUTH,)
PEER: Final = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
"""Serving and client at once: an etcd member's certificates (it dials its peers, and
itself through its own client port, with them)."""


def _issue(pki: Path, common_name: str, organizations: tuple[str, ...], hosts: list[str],
           usages: tuple[ObjectIdentifier, ...]) -> tuple[bytes, bytes]:
    """(certificate, key) PEM signed by the CA in ``pki`` for ``common_name`` in groups
    ``organizations``, naming ``hosts`` (for serving), with extended key ``usages``."""
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    now = datetime.now(UTC) - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    builder = (x509.CertificateBuilder().subject_name(x509.Name(subject))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + _VALIDITY)
               .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False))
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def sign_public_key(data_dir: Path, public_key: CertificatePublicKeyTypes, subject: x509.Name,
                    *, key_usage: frozenset[str], extended_usages: Sequence[ObjectIdentifier],
                    not_before: datetime, not_after: datetime,
                    sans: x509.SubjectAlternativeName | None = None) -> bytes:
    """A certificate (PEM) for ``public_key`` and ``subject``, signed by the cluster CA of
    ``data_dir`` (``pki/ca.crt``, ``pki/ca.key``), valid from ``not_before`` to ``not_after``.

    What a CertificateSigningRequest signer issues, the way Go's ``x509.CreateCertificate``
    makes it from kube-controller-manager's template (authority.go, policies.go): a random
    serial, the CA's subject as issuer, BasicConstraints CA:false (critical), the KeyUsage
    flags ``key_usage`` names (cryptography's field names: ``digital_signature``,
    ``key_encipherment``, ...; critical; none: no extension), the ``extended_usages`` (none:
    no extension) and the request's subject alternative names (critical when the subject is
    empty). No other extension of the request is copied. The caller decides the window (the
    signing policy: :func:`svcnet.api.certificates.validity_window`). ValueError for
    ``encipher_only``/``decipher_only`` without ``key_agreement`` (which Go would encode).
    """
    pki = data_dir / "pki"
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                              critical=True))
    if key_usage:
        flags = {f: f in key_usage for f in (
            "digital_signature", "content_commitment", "key_encipherment",
            "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
            "encipher_only", "decipher_only")}
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    if extended_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_usages)),
                                        critical=False)
    if sans is not None and len(sans):
        builder = builder.add_extension(sans, critical=len(subject) == 0)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def ca_not_after(data_dir: Path) -> datetime:
    """When the cluster CA of ``data_dir`` expires (nothing it signs outlives it)."""
    cert = x509.load_pem_x509_certificate((data_dir / "pki" / "ca.crt").read_bytes())
    return cert.not_valid_after_utc


@dataclass(frozen=True, slots=True)
class ClusterCA:
    """The cluster CA of a data directory as the CSR signer uses it
    (:class:`svcnet.controllers.certificates.CertificateAuthority`)."""

    data_dir: Path

    def not_after(self) -> datetime:
        return ca_not_after(self.data_dir)

    def sign(self, request: x509.CertificateSigningRequest, usages: X509Usages,
             not_before: datetime, not_after: datetime) -> bytes:
        try:
            sans: x509.SubjectAlternativeName | None = request.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            sans = None
        return sign_public_key(self.data_dir, request.public_key(), request.subject,
                               key_usage=usages.key_usage, extended_usages=usages.extended,
                               not_before=not_before, not_after=not_after, sans=sans)


def ensure_kubelet_client(data_dir: Path) -> tuple[Path, Path]:
    """The API server's client certificate for node agents (``--kubelet-client-certificate``),
    in ``DATA_DIR/pki``, created once from the CA :func:`ensure_tls` made."""
    pki = data_dir / "pki"
    cert, key = pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key"
    if not (cert.exists() and key.exists()):
        cert_pem, key_pem = issue_client(data_dir, KUBELET_CLIENT_CN, (KUBELET_CLIENT_GROUP,))
        _write_private(key, key_pem)
        cert.write_bytes(cert_pem)
    return cert, key


def issue_client(data_dir: Path, common_name: str, groups: Sequence[str] = (), *,
                 lifetime: timedelta = _VALIDITY, not_before: datetime | None = None,
                 ) -> tuple[bytes, bytes]:
    """A client certificate and its new key (PEM) for user ``common_name`` in ``groups``,
    from the cluster CA of ``data_dir``: what kubeadm's ``kubeconfig user --client-name``
    makes, and what kube-apiserver's x509 authenticator (clientcerts.py) reads: the
    CommonName is the user, each Organization a group. Valid from ``not_before`` (default:
    five minutes ago, for clocks a little behind) for ``lifetime``, but not past the CA.
    The signing is :func:`sign_public_key`'s."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = sign_public_key(data_dir, key.public_key(), subject,
                           key_usage=frozenset({"digital_signature"}), extended_usages=CLIENT,
                           not_before=start,
                           not_after=min(start + lifetime, ca_not_after(data_dir)))
    return cert, _key_pem(key)


def issue_node_serving(data_dir: Path, node_name: str, addresses: list[str],
                       out_dir: Path) -> tuple[Path, Path]:
    """A node agent's serving certificate (``system:node:<name>``, for its name and
    addresses) from the cluster CA, written to ``out_dir`` (kubelet's ``--tls-cert-file``
    and ``--tls-private-key-file``)."""
    ensure_private_dir(out_dir)
    cert_pem, key_pem = node_serving_pem(data_dir, node_name, addresses)
    cert, key = out_dir / "node.crt", out_dir / "node.key"
    _write_private(key, key_pem)
    cert.write_bytes(cert_pem)
    return cert, key


def node_serving_pem(data_dir: Path, node_name: str, addresses: list[str]
                     ) -> tuple[bytes, bytes]:
    """A node agent's serving certificate and key (PEM), for its name and addresses."""
    return _issue(data_dir / "pki", f"system:node:{node_name}", ("system:nodes",),
                  [node_name, *addresses], SERVING)


def interface_addresses(*, ipv6: bool) -> list[str]:
    """The addresses of this host's interfaces (IPv4; also IPv6 when ``ipv6``): what a server
    listening on a wildcard answers on. IPv6 link-local addresses are left out (a URL needs
    their zone, which a certificate cannot name). Read with ``ip -j address``; without
    iproute2 the list is empty and the caller's other names remain."""
    ip = shutil.which("ip")
    if ip is None:
        return []
    r = subprocess.run([ip, "-j", "address", "show"], capture_output=True, text=True,
                       check=False, timeout=10)
    if r.returncode != 0:
        return []
    out = []
    for link in json.loads(r.stdout or "[]"):
        for a in link.get("addr_info") or []:
            family, local = a.get("family"), a.get("local")
            if not local or (family == "inet6" and not ipv6) or family not in ("inet", "inet6"):
                continue
            if ipaddress.ip_address(local).is_link_local and family == "inet6":
                continue
            out.append(str(local))
    return out


def ensure_token(path: Path) -> str:
    """A random bearer token stored at ``path`` (0600), created on first use."""
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    _write_private(path, (token + "\n").encode())
    return token


ETCD_CLIENT_CN: Final = "svcnet-apiserver-etcd-client"
"""The common name of the API servers' etcd client certificate (kubeadm's is
``kube-apiserver-etcd-client``)."""


@dataclass(frozen=True, slots=True)
class EtcdMember:
    """An etcd member to issue certificates for: its name and the addresses (or DNS names)
    clients and peers reach it at."""

    name: str
    hosts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> EtcdMember:
        """``NAME=HOST[,HOST...]``, as ``svcnet etcd-certs --member`` takes it."""
        name, sep, hosts = text.partition("=")
        names = tuple(h.strip() for h in hosts.split(",") if h.strip())
        if not sep or not name.strip() or not names or "/" in name:
            raise ValueError(f"expected NAME=HOST[,HOST...], got {text!r}")
        return cls(name.strip(), names)


def ensure_etcd_pki(out_dir: Path, members: list[EtcdMember]) -> list[Path]:
    """An etcd cluster's TLS material in ``out_dir``, as kubeadm lays out its ``etcd/`` PKI;
    what exists is kept, what is missing is created (so a member can be added later):

    * ``ca.crt``, ``ca.key``: the etcd CA (its own, not the cluster CA: whoever holds a
      certificate of it may read and write every key);
    * ``NAME/server.crt|key`` and ``NAME/peer.crt|key`` per member, for its client and peer
      URLs: serving and client usage (a member dials its peers, and itself through its client
      port), naming the member's hosts, ``localhost``, 127.0.0.1 and ::1;
    * ``apiserver-etcd-client.crt|key``: the API servers' client certificate
      (``--etcd-certfile``, ``--etcd-keyfile``; ``--etcd-cafile`` is ``ca.crt``).

    Returns the files created.
    """
    created: list[Path] = []
    if _ensure_ca(out_dir, "svcnet-etcd-ca"):
        created.append(out_dir / "ca.crt")
    wanted: list[tuple[Path, str, list[str], tuple[ObjectIdentifier, ...]]] = [
        (out_dir / "apiserver-etcd-client", ETCD_CLIENT_CN, [], CLIENT)]
    for member in members:
        hosts = list(dict.fromkeys([*member.hosts, "localhost", "127.0.0.1", "::1"]))
        for kind in ("server", "peer"):
            wanted.append((out_dir / member.name / kind, member.name, hosts, PEER))
    for stem, common_name, hosts, usages in wanted:
        cert, key = stem.with_name(stem.name + ".crt"), stem.with_name(stem.name + ".key")
        if cert.exists() and key.exists():
            continue
        ensure_private_dir(stem.parent)
        cert_pem, key_pem = _issue(out_dir, common_name, (), hosts, usages)
        _write_private(key, key_pem)
        cert.write_bytes(cert_pem)
        created.append(cert)
    return created
