"""The CertificateSigningRequest signer and cleaner of kube-controller-manager.

Theory of operation
-------------------
Signer, after pkg/controller/certificates/signer/signer.go and certificate_controller.go: the
work key is a request's name, queued on every change. ``sync`` looks at the cached request and
does nothing unless it is approved (an ``Approved`` condition, no ``Denied``), not failed, not
yet issued and for one of the built-in signers (``kubernetes.io/kube-apiserver-client``,
``kube-apiserver-client-kubelet``, ``kubelet-serving``; ``legacy-unknown`` has no signer here,
as kube-controller-manager starts none by default, and v1 refuses the name anyway). A request
that fails its signer's checks (:func:`svcnet.api.certificates.signer_check`: usages, subject,
names) gets a ``Failed`` condition (reason ``SignerValidationFailure``, the check's message);
one that passes is signed by the cluster CA (:class:`CertificateAuthority`: the API server
hands the controller manager its own CA, svcnet/apiserver/certs.py) for the requested
duration (``spec.expirationSeconds``, between 10 minutes and ``cert_ttl``, one year by default
as ``--cluster-signing-duration``), backdated five minutes, never past the CA's expiry, and the
certificate is written through ``status``. A request that does not parse, or a CA that has
expired, is an error: the key is retried with backoff.

Cleaner, after pkg/controller/certificates/cleaner/cleaner.go: a request is deleted once it is
past its deadline (:func:`cleanup_deadline`): approved and issued an hour after its
``Approved`` condition's last update, denied or failed an hour after that condition's, pending
(no condition at all) a day after its creation, and an issued certificate once it has expired.
Upstream lists every request each hour; here each request is requeued for the moment its
deadline passes (so a deletion is at most a second late, not up to an hour), and the clock is
injected, which the tests advance.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from cryptography import x509

from svcnet.api import certificates as csrs
from svcnet.api.access import map_of, name_of, str_of
from svcnet.api.errors import StatusError
from svcnet.api.keypair import pem_blocks
from svcnet.client.controller import Controller, InformerController
from svcnet.client.informer import EventHandler, Informer, InformerFactory
from svcnet.client.rest import CERTIFICATESIGNINGREQUESTS, RESTClient
from svcnet.util.clock import Clock, RealClock, parse_time, rfc3339

__all__ = ["DEFAULT_CERT_TTL", "CSRCleaner", "CSRSigner", "CertificateAuthority",
           "cleanup_deadline"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

DEFAULT_CERT_TTL: Final = timedelta(days=365)
"""kube-controller-manager's ``--cluster-signing-duration`` (8760h)."""
APPROVED_EXPIRATION: Final = timedelta(hours=1)
DENIED_EXPIRATION: Final = timedelta(hours=1)
PENDING_EXPIRATION: Final = timedelta(hours=24)


class CertificateAuthority(Protocol):
    """What the signer needs of a CA: when it expires, and a certificate it signs."""

    def not_after(self) -> datetime: ...

    def sign(self, request: x509.CertificateSigningRequest, usages: csrs.X509Usages,
             not_before: datetime, not_after: datetime) -> bytes:
        """The certificate (PEM) for the request's public key, subject and names."""
        ...


class _RequestsController(InformerController):
    """A controller of CertificateSigningRequests by name, over their informer."""

    def __init__(self, name: str, client: RESTClient, clock: Clock | None,
                 informers: InformerFactory | None) -> None:
        self._client = client
        self._clock = clock or RealClock()
        factory = InformerFactory.of(informers, client, clock=self._clock)
        self.requests = factory.informer(CERTIFICATESIGNINGREQUESTS,
                                         name="certificatesigningrequests")
        self.controller = Controller(name, self.sync, informers=[self.requests],
                                     clock=self._clock)
        self.requests.add_handler(EventHandler.for_keys(self.controller.queue.add))

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.requests,)

    async def sync(self, name: str) -> None:
        raise NotImplementedError


# -- the signer -------------------------------------------------------------------------------


class CSRSigner(_RequestsController):
    """The ``csrsigning`` controllers of the built-in signers, as one."""

    def __init__(self, client: RESTClient, authority: CertificateAuthority, *,
                 cert_ttl: timedelta = DEFAULT_CERT_TTL, clock: Clock | None = None,
                 informers: InformerFactory | None = None) -> None:
        super().__init__("csrsigning", client, clock, informers)
        self._authority = authority
        self._cert_ttl = cert_ttl

    async def sync(self, name: str) -> None:
        csr = self.requests.get(name)
        if csr is None or not csrs.is_approved(csr) or csrs.has_true_condition(
                csr, csrs.FAILED) or csrs.certificate_bytes(csr):
            return
        signer_name = str_of(map_of(csr, "spec"), "signerName")
        if signer_name not in csrs.BUILT_IN_SIGNERS:
            return
        try:
            request = csrs.parse_csr(csrs.request_bytes(csr))
        except csrs.CSRError as e:
            raise ValueError(f"unable to parse csr {name!r}: {e}") from None
        usages = [str(u) for u in map_of(csr, "spec").get("usages") or []]
        _, problem = csrs.signer_check(request, usages, signer_name)
        status = dict(map_of(csr, "status"))
        if problem is not None:
            status["conditions"] = [*(status.get("conditions") or []), {
                "type": csrs.FAILED, "status": "True", "reason": "SignerValidationFailure",
                "message": problem, "lastUpdateTime": rfc3339(self._clock.now())}]
        else:
            status["certificate"] = base64.b64encode(self.sign(csr, request, usages)).decode()
        await self._client.update_status(CERTIFICATESIGNINGREQUESTS, {**csr, "status": status})

    def sign(self, csr: ObjMap, request: x509.CertificateSigningRequest,
             usages: list[str]) -> bytes:
        """signer.sign: the certificate for ``request`` under the signing policy."""
        ttl = csrs.requested_duration(map_of(csr, "spec").get("expirationSeconds"),
                                      self._cert_ttl)
        not_before, not_after = csrs.validity_window(ttl, self._clock.now(),
                                                     self._authority.not_after())
        return self._authority.sign(request, csrs.x509_usages(usages), not_before, not_after)


# -- the cleaner ------------------------------------------------------------------------------


def _condition_updates(csr: ObjMap, ctype: str) -> list[datetime]:
    return [t for c in csrs.find_conditions(csr, ctype)
            if (t := parse_time(c.get("lastUpdateTime"))) is not None]


def _certificate_not_after(pem: bytes) -> datetime | None:
    """The NotAfter of the first certificate of a PEM bundle; ValueError when it is not one
    (isExpired)."""
    blocks = pem_blocks(pem)
    if not blocks:
        raise ValueError("expected the certificate associated with the CSR to be PEM encoded")
    try:
        return x509.load_der_x509_certificate(blocks[0].der).not_valid_after_utc
    except ValueError as e:
        raise ValueError(f"unable to parse certificate data: {e}") from None


def cleanup_deadline(csr: ObjMap) -> datetime | None:
    """When ``csr`` may be deleted (it goes once the clock is past this), or None never (an
    approved request that no one signs, or one whose certificate does not parse)."""
    issued = bool(csrs.certificate_bytes(csr))
    deadlines: list[datetime] = []
    approved = csrs.find_conditions(csr, csrs.APPROVED)
    if approved and issued:
        try:
            expiry = _certificate_not_after(csrs.certificate_bytes(csr))
        except ValueError as e:
            log.info("csrcleaner: %s: %s", name_of(csr), e)
            return None
        if expiry is not None:
            deadlines.append(expiry)
        deadlines.extend(t + APPROVED_EXPIRATION
                         for t in _condition_updates(csr, csrs.APPROVED))
    deadlines.extend(t + DENIED_EXPIRATION for t in _condition_updates(csr, csrs.DENIED))
    deadlines.extend(t + DENIED_EXPIRATION for t in _condition_updates(csr, csrs.FAILED))
    if not map_of(csr, "status").get("conditions"):
        created = parse_time(map_of(csr, "metadata").get("creationTimestamp"))
        if created is not None:
            deadlines.append(created + PENDING_EXPIRATION)
    return min(deadlines, default=None)


class CSRCleaner(_RequestsController):
    """The ``csrcleaner`` controller."""

    def __init__(self, client: RESTClient, *, clock: Clock | None = None,
                 informers: InformerFactory | None = None) -> None:
        super().__init__("csrcleaner", client, clock, informers)

    async def sync(self, name: str) -> None:
        csr = self.requests.get(name)
        if csr is None:
            return
        deadline = cleanup_deadline(csr)
        if deadline is None:
            return
        now = self._clock.now()
        if now <= deadline:
            self.controller.queue.add_after(name, (deadline - now).total_seconds() + 1)
            return
        log.info("csrcleaner: deleting %s (past its deadline %s)", name, rfc3339(deadline))
        try:
            await self._client.delete(CERTIFICATESIGNINGREQUESTS, "", name)
        except StatusError as e:
            if e.code != 404:
                raise
