"""Client-certificate (x509) authentication, as kube-apiserver's ``--client-ca-file`` does it.

Theory of operation
-------------------
Followed: staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go (the
authenticator and ``CommonNameUserConversion``), pkg/kubeapiserver/authenticator/config.go (the
union tries it before bearer tokens) and k8s.io/apiserver/pkg/server/secure_serving.go (the
TLS layer only *requests* a certificate: ``tls.RequestClientCert``).

**The TLS layer asks, the authenticator judges.** Every process that terminates TLS for the
API (the server, its ``--workers``, whichever of them takes a connection from the shared
socket: connections.py) serves with :func:`serving_context`. It asks each client for an
optional certificate. A client without one is served as before (a bearer token, or 401). A
certificate is verified in the handshake against the cluster CA without looking at its dates
(``X509_V_FLAG_NO_CHECK_TIME``), so an expired certificate of the cluster's CA reaches the
authenticator and is answered 401, as kube-apiserver answers it. Go's server only *requests*
a certificate (``tls.RequestClientCert``) and judges it in the authenticator; Python's ``ssl``
cannot ask for a certificate without verifying its chain, so a certificate of another CA
fails the handshake here (kubectl: ``Unable to connect to the server``), where kube-apiserver, which
tells Go clients the CAs it accepts, is sent none and answers the anonymous user. The
handshake (OpenSSL's ``ssl_client`` purpose) also refuses what the authenticator's usage check
would: extended key usages without client auth (one with only "any" too, which Go accepts),
or a key usage without digitalSignature and keyAgreement.

Nothing may trust the peer certificate of an API connection without :class:`X509Authenticator`:
it checks, for each request, what Go's ``x509.Verify`` checks with the cluster CA as the only
root and client auth as the usage (``DefaultVerifyOptions``): the certificate is signed by the
CA (directly: Python 3.11's ``ssl`` does not show the intermediates a client sends, so a chain
through an intermediate CA is not accepted), now is within its validity and the CA's, and its
extended key usages, if it has any, include client auth (or any). The user is then
``CommonNameUserConversion``'s: the subject's CommonName is the name, each Organization a
group, no uid (``system:authenticated`` is added by authorization, as for every user:
rbac.py's ``effective_groups``). A certificate without a CommonName authenticates nobody and
is no error. A certificate that fails a check is an error, which upstream's union authenticator
logs and passes over: the request's bearer token is tried next, and without one it is 401
Unauthorized, the user-visible answer of kube-apiserver (whose Go clients, told the acceptable
CAs, do not even send another CA's certificate). Node agents and the server's own controllers
authenticate with tokens (the controllers over the plain-HTTP loopback, which has no TLS), so
they are unaffected.

**Cost.** A request without a certificate pays one look at its transport's extra information
(:func:`peer_certificate`: about 0.35 µs). One with a certificate pays the DER encoding of it
and a cache lookup (about 2 µs): what does not depend on the time (signature, usages, the
user) is worked out once per certificate (:attr:`X509Authenticator.CACHE_SIZE` kept), the
validity window is compared with the clock on every request.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from svcnet.api import certificates
from svcnet.apiserver.auth import User

__all__ = ["CertificateRejected", "X509Authenticator", "peer_certificate", "serving_context",
           "user_of"]

log = logging.getLogger(__name__)

_X509_V_FLAG_NO_CHECK_TIME: Final = 0x200000
"""OpenSSL's flag (1.1.0 and later) to verify a chain without looking at the dates."""


def serving_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """The API's TLS context: serves ``cert``/``key`` and asks clients for an optional
    certificate, which :class:`X509Authenticator` judges (see the module doc)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(client_ca)
    ctx.verify_flags |= _X509_V_FLAG_NO_CHECK_TIME
    # Go's server never renegotiates; a renegotiation would change the peer certificate
    # under a connection whose requests were authenticated by the first one.
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    return ctx


def peer_certificate(request: web.BaseRequest) -> bytes | None:
    """The DER certificate the client of ``request`` presented in the TLS handshake, if any
    (None on the plain-HTTP loopback)."""
    transport = request.transport
    if transport is None or transport.get_extra_info("peercert") is None:
        return None  # asyncio's "peercert" is None when the client sent none
    sslobj = transport.get_extra_info("ssl_object")
    return sslobj.getpeercert(binary_form=True) if sslobj is not None else None


class CertificateRejected(Exception):
    """A client certificate that does not verify (the message is Go's x509 error)."""


def user_of(cert: x509.Certificate) -> User | None:
    """``CommonNameUserConversion``: CommonName the name, each Organization a group; None
    without a CommonName."""
    name = certificates.subject_common_name(cert.subject)
    if not name:
        return None
    return User(name, "", tuple(certificates.subject_organizations(cert.subject)))


_CLIENT_USAGES: Final = frozenset({ExtendedKeyUsageOID.CLIENT_AUTH,
                                   ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE})


def _check_issued_for_clients(cert: x509.Certificate, ca: x509.Certificate) -> None:
    """What ``x509.Verify`` checks that does not depend on the time: signed by ``ca``, and
    usable for client auth. CertificateRejected with Go's message otherwise."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateRejected("x509: certificate signed by unknown authority") from None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # Go: a certificate without extended key usages is good for any
    if not _CLIENT_USAGES & set(usages):
        raise CertificateRejected("x509: certificate specifies an incompatible key usage")


@dataclass(frozen=True, slots=True)
class _Verified:
    """A certificate that verifies while now is in [not_before, not_after]."""

    user: User | None
    not_before: datetime
    not_after: datetime


def _go_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class X509Authenticator:
    """Who a client certificate says the client is, if the cluster CA signed it."""

    CACHE_SIZE: Final = 1024
    """Certificates whose time-independent checks are remembered (oldest dropped first)."""

    def __init__(self, ca_pem: bytes, now: Callable[[], datetime]) -> None:
        self._ca = x509.load_pem_x509_certificate(ca_pem)
        self._now = now
        #: By DER: the verified certificate, or why it does not verify.
        self._checked: dict[bytes, _Verified | str] = {}

    def verify(self, der: bytes) -> User | None:
        """The user of certificate ``der`` (None: it names nobody), or CertificateRejected."""
        checked = self._checked.get(der)
        if checked is None:
            checked = self._check(der)
            if len(self._checked) >= self.CACHE_SIZE:
                del self._checked[next(iter(self._checked))]
            self._checked[der] = checked
        if isinstance(checked, str):
            raise CertificateRejected(checked)
        now = self._now()
        if now > checked.not_after:
            raise CertificateRejected(
                "x509: certificate has expired or is not yet valid: current time "
                f"{_go_time(now)} is after {_go_time(checked.not_after)}")
        if now < checked.not_before:
            raise CertificateRejected(
                "x509: certificate has expired or is not yet valid: current time "
                f"{_go_time(now)} is before {_go_time(checked.not_before)}")
        return checked.user

    def user(self, der: bytes) -> User | None:
        """:meth:`verify`, with a rejection logged (as upstream's union logs it) as None."""
        try:
            return self.verify(der)
        except CertificateRejected as e:
            log.debug("client certificate not accepted: %s", e)
            return None

    def _check(self, der: bytes) -> _Verified | str:
        try:
            cert = x509.load_der_x509_certificate(der)
            _check_issued_for_clients(cert, self._ca)
            user = user_of(cert)
        except CertificateRejected as e:
            return str(e)
        except Exception as e:  # undecodable: OpenSSL took it, cryptography does not
            return f"x509: malformed certificate: {e}"
        return _Verified(user, max(cert.not_valid_before_utc, self._ca.not_valid_before_utc),
                         min(cert.not_valid_after_utc, self._ca.not_valid_after_utc))
