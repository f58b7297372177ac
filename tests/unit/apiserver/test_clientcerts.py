"""Client-certificate authentication (svcnet/apiserver/clientcerts.py): the user a certificate
names (upstream's CommonNameUserConversion), what makes one not verify (x509.Verify with the
cluster CA and client auth), the TLS layer that asks for one and leaves its dates to the
authenticator, and a real server's answers over TLS: the certificate's user before the bearer
token, RBAC's 403 naming it, 401 for an expired certificate, a failed handshake for another
CA's."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from svcnet.api import certificates
from svcnet.apiserver.auth import User
from svcnet.apiserver.certs import ensure_ca, ensure_tls, issue_client, sign_public_key
from svcnet.apiserver.clientcerts import (
    CertificateRejected,
    X509Authenticator,
    serving_context,
    user_of,
)
from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.storage.memory import MemoryStore

#: Midnight tomorrow: within the validity of the CAs the tests make now.
NOW = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _go(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def _subject(cn: str | None, *orgs: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _signed_pair(data_dir: Path, subject: x509.Name,
                 usages: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
                 not_before: datetime = NOW - timedelta(days=1),
                 not_after: datetime = NOW + timedelta(days=1)) -> tuple[bytes, bytes]:
    """(certificate, key) PEM for ``subject``, whatever it is, from ``data_dir``'s CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = sign_public_key(data_dir, key.public_key(), subject,
                          key_usage=frozenset({"digital_signature"}), extended_usages=usages,
                          not_before=not_before, not_after=not_after)
    return pem, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _signed(data_dir: Path, subject: x509.Name,
            usages: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
            not_before: datetime = NOW - timedelta(days=1),
            not_after: datetime = NOW + timedelta(days=1)) -> bytes:
    return _der(_signed_pair(data_dir, subject, usages, not_before, not_after)[0])


def test_several_common_names_name_the_last_as_go_and_the_signers_read_them(
        tmp_path: Path) -> None:
    """A subject CN=admin, CN=system:node:n1 is system:node:n1 to the kubelet-client signer's
    check and to the authenticator alike (Go's pkix.Name keeps the last)."""
    ensure_ca(tmp_path)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "system:node:n1")])
    cert = x509.load_der_x509_certificate(_signed(tmp_path, subject))
    assert user_of(cert) == User("system:node:n1", "", ("system:nodes",))
    assert certificates.subject_common_name(subject) == "system:node:n1"


@pytest.mark.parametrize(("cn", "orgs", "expected"), [
    ("jane", (), User("jane")),
    ("jane", ("dev",), User("jane", "", ("dev",))),
    ("system:node:n1", ("system:nodes", "ops"),
     User("system:node:n1", "", ("system:nodes", "ops"))),
    (None, ("dev",), None),  # no CommonName: nobody (and no error)
], ids=["cn-only", "one-org", "several-orgs", "no-cn"])
def test_the_user_is_the_common_name_and_the_groups_the_organizations(
        tmp_path: Path, cn: str | None, orgs: tuple[str, ...], expected: User | None) -> None:
    ensure_ca(tmp_path)
    der = _signed(tmp_path, _subject(cn, *orgs))
    assert user_of(x509.load_der_x509_certificate(der)) == expected
    authn = X509Authenticator((tmp_path / "pki" / "ca.crt").read_bytes(), lambda: NOW)
    assert authn.verify(der) == expected
    if expected is not None:
        assert expected.node_name == ("n1" if cn == "system:node:n1" else None)


def test_what_does_not_verify_is_rejected_with_gos_reason(tmp_path: Path) -> None:
    ensure_ca(tmp_path / "cluster")
    ensure_ca(tmp_path / "other")
    authn = X509Authenticator((tmp_path / "cluster" / "pki" / "ca.crt").read_bytes(),
                              lambda: NOW)
    jane = _subject("jane", "dev")
    cases = {
        "x509: certificate signed by unknown authority": _signed(tmp_path / "other", jane),
        "x509: certificate specifies an incompatible key usage": _signed(
            tmp_path / "cluster", jane, usages=(ExtendedKeyUsageOID.SERVER_AUTH,)),
        "x509: certificate has expired or is not yet valid: current time "
        f"{_go(NOW)} is after {_go(NOW - timedelta(days=1))}": _signed(
            tmp_path / "cluster", jane, not_before=NOW - timedelta(days=2),
            not_after=NOW - timedelta(days=1)),
        "x509: certificate has expired or is not yet valid: current time "
        f"{_go(NOW)} is before {_go(NOW + timedelta(days=1))}": _signed(
            tmp_path / "cluster", jane, not_before=NOW + timedelta(days=1),
            not_after=NOW + timedelta(days=2)),
    }
    for reason, der in cases.items():
        with pytest.raises(CertificateRejected) as e:
            authn.verify(der)
        assert str(e.value) == reason
        assert authn.user(der) is None  # the union passes over it
    with pytest.raises(CertificateRejected, match="malformed"):
        authn.verify(b"\x30\x03\x02\x01\x00")
    # Without extended key usages a certificate is good for any (Go's rule); "any" is too.
    assert authn.verify(_signed(tmp_path / "cluster", jane, usages=())) == \
        User("jane", "", ("dev",))
    assert authn.verify(_signed(tmp_path / "cluster", jane, usages=(
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,))) is not None


def test_the_time_is_checked_on_every_use_of_a_remembered_certificate(
        tmp_path: Path) -> None:
    ensure_ca(tmp_path)
    now = [NOW]
    authn = X509Authenticator((tmp_path / "pki" / "ca.crt").read_bytes(), lambda: now[0])
    der = _signed(tmp_path, _subject("jane"), not_after=NOW + timedelta(hours=1))
    assert authn.verify(der) == User("jane")
    now[0] = NOW + timedelta(hours=2)
    with pytest.raises(CertificateRejected, match="is after"):
        authn.verify(der)
    # A certificate outliving the CA ends with it.
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.crt").read_bytes())
    long_lived = _signed(tmp_path, _subject("jane"), not_before=ca.not_valid_before_utc,
                         not_after=ca.not_valid_after_utc + timedelta(days=30))
    now[0] = ca.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(CertificateRejected, match="is after"):
        authn.verify(long_lived)


def test_the_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_ca(tmp_path)
    monkeypatch.setattr(X509Authenticator, "CACHE_SIZE", 2)
    authn = X509Authenticator((tmp_path / "pki" / "ca.crt").read_bytes(), lambda: NOW)
    ders = [_signed(tmp_path, _subject(f"u{i}")) for i in range(3)]
    assert [authn.verify(d) for d in ders] == [User("u0"), User("u1"), User("u2")]
    assert len(authn._checked) == 2 and ders[0] not in authn._checked


def test_issue_client_makes_a_client_certificate_of_the_cluster_ca(tmp_path: Path) -> None:
    ensure_ca(tmp_path)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    cert_pem, key_pem = issue_client(tmp_path, "jane", ["dev", "ops"],
                                     lifetime=timedelta(hours=3), not_before=start)
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=jane,O=ops,O=dev"
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (
        start, start + timedelta(hours=3))
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert b"PRIVATE KEY" in key_pem
    authn = X509Authenticator((tmp_path / "pki" / "ca.crt").read_bytes(),
                              lambda: datetime.now(UTC))
    assert authn.verify(_der(cert_pem)) == User("jane", "", ("dev", "ops"))


def _write_pair(directory: Path, name: str, pair: tuple[bytes, bytes]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(pair[0])
    key.write_bytes(pair[1])
    return cert, key


def _client_context(ca: Path, pair: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if pair is not None:
        ctx.load_cert_chain(*pair)
    return ctx


async def test_the_tls_layer_asks_for_a_certificate_and_leaves_its_dates_to_judge(
        tmp_path: Path) -> None:
    """No certificate, or one of the cluster's CA, expired or not, gets through the handshake
    (the authenticator judges the dates); another CA's does not."""
    tls = ensure_tls(tmp_path / "cluster", ["127.0.0.1"])
    ensure_ca(tmp_path / "other")
    old = datetime.now(UTC) - timedelta(days=2)
    pairs = {
        "none": None,
        "cluster": _write_pair(tmp_path, "jane", issue_client(tmp_path / "cluster", "jane")),
        "expired": _write_pair(tmp_path, "old", issue_client(
            tmp_path / "cluster", "jane", not_before=old, lifetime=timedelta(days=1))),
        "other": _write_pair(tmp_path, "eve", issue_client(tmp_path / "other", "eve")),
    }
    seen: list[bytes | None] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sslobj = writer.get_extra_info("ssl_object")
        seen.append(sslobj.getpeercert(binary_form=True))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=serving_context(
        tls.cert, tls.key, tls.ca_cert))
    port = server.sockets[0].getsockname()[1]
    outcome: dict[str, str] = {}
    try:
        for name, pair in pairs.items():
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=_client_context(tls.ca_cert, pair),
                    server_hostname="127.0.0.1")
                # TLS 1.3: a refused certificate is an alert after the client's handshake.
                outcome[name] = (await reader.read()).decode() or "refused"
                writer.close()
            except (ssl.SSLError, ConnectionError):
                outcome[name] = "refused"
    finally:
        server.close()
        await server.wait_closed()
    assert outcome == {"none": "ok", "cluster": "ok", "expired": "ok", "other": "refused"}
    assert seen[0] is None and all(seen[1:])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    srv = APIServer(ServerConfig(data_dir=tmp_path / "server", listen="127.0.0.1:0"),
                    store=MemoryStore())
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


async def _call(server: APIServer, method: str, path: str, *,
                pair: tuple[Path, Path] | None = None, token: str | None = None,
                body: dict[str, Any] | None = None) -> Answer:
    ca = server.config.data_dir / "pki" / "ca.crt"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.request(
            method, server.url + path, json=body, headers=headers,
            ssl=_client_context(ca, pair)) as r:
        text = await r.text()
        return Answer(r.status, json.loads(text) if text.startswith("{") else {})


async def _whoami(server: APIServer, **kwargs: Any) -> Answer:
    return await _call(server, "POST",
                       "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                       body={"apiVersion": "authentication.k8s.io/v1",
                             "kind": "SelfSubjectReview"}, **kwargs)


async def test_a_server_authenticates_its_cas_client_certificates(
        server: APIServer, tmp_path: Path) -> None:
    data = server.config.data_dir
    admin = (data / "admin.token").read_text().strip()
    jane = _write_pair(tmp_path, "jane", issue_client(data, "jane", ["dev"]))
    ensure_ca(tmp_path / "other")
    eve = _write_pair(tmp_path, "eve", issue_client(tmp_path / "other", "jane", ["dev"]))
    expired = _write_pair(tmp_path, "old", issue_client(
        data, "jane", ["dev"], not_before=datetime.now(UTC) - timedelta(days=2),
        lifetime=timedelta(days=1)))
    now = datetime.now(UTC)
    nameless = _write_pair(tmp_path, "nameless", _signed_pair(
        data, _subject(None, "dev"), not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(hours=1)))

    who = await _whoami(server, pair=jane)
    assert who.status == 201, who.body
    assert who.body["status"]["userInfo"] == {
        "username": "jane", "groups": ["dev", "system:authenticated"]}
    pods = await _call(server, "GET", "/api/v1/namespaces/default/pods", pair=jane)
    assert pods.status == 403
    assert pods.body["message"] == ('pods is forbidden: User "jane" cannot list resource '
                                      '"pods" in API group "" in the namespace "default"')
    # The certificate is tried before the token (upstream's union order).
    both = await _whoami(server, pair=jane, token=admin)
    assert both.body["status"]["userInfo"]["username"] == "jane"

    # Another CA's certificate fails the handshake (see clientcerts' module doc).
    with pytest.raises(aiohttp.ClientError):
        await _whoami(server, pair=eve)
    for refused in (expired, nameless):
        answer = await _whoami(server, pair=refused)
        assert answer.status == 401, answer.body
        assert answer.body["reason"] == "Unauthorized"
        # ...and passed over: the bearer token is tried next.
        admin_too = await _whoami(server, pair=refused, token=admin)
        assert admin_too.body["status"]["userInfo"]["username"] == "admin"

    # Without a certificate nothing changes: the token, or 401.
    assert (await _call(server, "GET", "/api/v1/namespaces/default/pods",
                        token=admin)).status == 200
    assert (await _call(server, "GET", "/api/v1/namespaces/default/pods")).status == 401
    # /metrics authenticates the same way.
    assert (await _call(server, "GET", "/metrics", pair=jane)).status == 200
    assert (await _call(server, "GET", "/metrics", pair=expired)).status == 401
