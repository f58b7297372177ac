"""TLS material and credentials for `svcnet server`, generated once into the data directory.

On first start the server creates a CA, a serving certificate for every address it answers on
(its listen address; when that is a wildcard, each address of the host's interfaces, see
:func:`interface_addresses`; its advertise address; and localhost / 127.0.0.1 / the
`kubernetes` Service names and 10.96.0.1), and an admin bearer token. Later starts reuse
them, so kubeconfigs stay valid across restarts. Keys and tokens are written 0600 inside a
0700 directory.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
    pki = data_dir / "pki"
    ensure_private_dir(pki)
    ca_cert_path, ca_key_path = pki / "ca.crt", pki / "ca.key"
    now = datetime.now(UTC) - timedelta(minutes=5)
    if not ca_cert_path.exists() or not ca_key_path.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svcnet-ca")])
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

    cert, key_pem = _issue(pki, "kube-apiserver", (), wanted, server=True)
    _write_private(files.key, key_pem)
    files.cert.write_bytes(cert)
    return files


def _issue(pki: Path, common_name: str, organizations: tuple[str, ...], hosts: list[str], *,
           server: bool) -> tuple[bytes, bytes]:
    """(certificate, key) PEM signed by the CA in ``pki``: a serving certificate for
    ``hosts``, or a client certificate for ``common_name`` in groups ``organizations``."""
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
               .add_extension(x509.ExtendedKeyUsage([
                   ExtendedKeyUsageOID.SERVER_AUTH if server
                   else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
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


def issue_client(data_dir: Path, common_name: str, groups: tuple[str, ...]
                 ) -> tuple[bytes, bytes]:
    """A client certificate (PEM, with its key) for user ``common_name`` in ``groups``."""
    return _issue(data_dir / "pki", common_name, groups, [], server=False)


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
                  [node_name, *addresses], server=True)


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
