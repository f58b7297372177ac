"""certificates.k8s.io/v1 CertificateSigningRequests: the three strategies and the registry
that serves ``approval`` beside ``status``.

Theory of operation
-------------------
After pkg/registry/certificates/certificates/{strategy.go,storage/storage.go}: one object,
three ways to write it, each with its own strategy and validation
(:mod:`svcnet.api.certificates`):

* the resource itself: cluster-scoped, no generation; on create the requestor fields are the
  creating user's whatever the client sent, and the status is empty; an update may change
  metadata only (spec and status are the stored ones);
* ``status`` (the signer's write): the certificate and non-approval conditions;
* ``approval`` (``kubectl certificate approve|deny``): the conditions only. It is served by
  :attr:`CertificateSigningRequestRegistry.approval`, a registry of its own on the same keys,
  which the API handlers pick with :meth:`~svcnet.registry.generic.Registry.for_subresource`.

The admission plugins of the ``certificates.k8s.io`` group run in the strategies' async
steps, because they need the authorizer, which only the API server has: it is given as
``authorize(verb, signerName) -> bool`` for the writing user (True for the server's own
writes). CertificateApproval: an update through ``approval`` needs ``approve`` on the
``signers`` resource named by the stored request's signer, or on ``<domain>/*``;
CertificateSigning: a ``status`` write that changes the certificate or the conditions needs
``sign`` likewise; CertificateSubjectRestriction: a new ``kube-apiserver-client`` request may
not name the ``system:masters`` group. Upstream runs them after validation; here they run
before it (an unauthorized invalid write is refused with the 403, not the 422).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import certificates as csrs
from svcnet.api.access import map_of, str_of
from svcnet.api.errors import FieldError, StatusError, forbidden_error
from svcnet.registry.generic import BaseStrategy, Registry
from svcnet.storage.interface import Store
from svcnet.util.clock import Clock, RealClock

__all__ = ["CertificateSigningRequestRegistry", "CertificateSigningRequestStrategy",
           "SignerAuthorizer"]

Obj = dict[str, Any]
RESOURCE = "certificatesigningrequests"

#: Whether the writing user may ``verb`` (approve, sign) the ``signers`` resource of a name.
SignerAuthorizer = Callable[[str, str], Awaitable[bool]]
#: Who is writing (None: the server itself).
RequestorLookup = Callable[[], csrs.Requestor | None]


async def _allow_all(_verb: str, _signer: str) -> bool:
    return True


class CertificateSigningRequestStrategy(BaseStrategy):
    """csrStrategy, with csrStatusStrategy's status steps."""

    kind: ClassVar[str] = csrs.KIND
    resource: ClassVar[str] = RESOURCE
    group: ClassVar[str] = csrs.GROUP
    api_version: ClassVar[str] = csrs.API_VERSION
    namespaced: ClassVar[bool] = False

    def __init__(self, requestor: RequestorLookup | None = None,
                 authorize: SignerAuthorizer | None = None, clock: Clock | None = None) -> None:
        self.requestor = requestor or (lambda: None)
        self.authorize = authorize or _allow_all
        self.clock = clock or RealClock()

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        """CertificateSubjectRestriction."""
        reason = csrs.subject_restriction_error(obj)
        if reason is not None:
            raise forbidden_error(RESOURCE, str_of(map_of(obj, "metadata"), "name"), reason,
                                  csrs.GROUP)
        return obj

    def prepare_for_create(self, obj: Obj) -> Obj:
        return csrs.prepare_for_create(obj, self.requestor())

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return csrs.prepare_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return csrs.validate_csr(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return csrs.validate_csr_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return csrs.prepare_for_status_update(super().prepare_for_status_update(new, old), old,
                                              self.clock.now())

    async def begin_status_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        """CertificateSigning: setting the certificate or conditions needs ``sign``."""
        if csrs.certificate_bytes(new) != csrs.certificate_bytes(old) or \
                map_of(new, "status").get("conditions") != map_of(old, "status").get(
                    "conditions"):
            await self.require(old, "sign")
        return new

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return csrs.validate_csr_status_update(new, old)

    async def require(self, old: Obj, verb: str) -> None:
        """IsAuthorizedForSignerName: ``verb`` on the stored request's signer, or on every
        signer of its domain (``example.com/*``); 403 otherwise."""
        signer = str_of(map_of(old, "spec"), "signerName")
        if await self.authorize(verb, signer) or await self.authorize(
                verb, signer.split("/")[0] + "/*"):
            return
        raise _not_permitted(old, verb, signer)


def _not_permitted(old: Obj, verb: str, signer: str) -> StatusError:
    return forbidden_error(RESOURCE, str_of(map_of(old, "metadata"), "name"),
                           f'user not permitted to {verb} requests with signerName "{signer}"',
                           csrs.GROUP)


class CertificateSigningRequestApprovalStrategy(CertificateSigningRequestStrategy):
    """csrApprovalStrategy: the update of ``approval``."""

    def __init__(self, main: CertificateSigningRequestStrategy) -> None:
        super().__init__(main.requestor, main.authorize, main.clock)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return csrs.prepare_for_approval_update(new, old, self.clock.now())

    async def begin_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        """CertificateApproval: any write through ``approval`` needs ``approve``."""
        await self.require(old, "approve")
        return new

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return csrs.validate_csr_approval_update(new, old)


class CertificateSigningRequestRegistry(Registry):
    """CSRs: :class:`Registry` with :attr:`approval` for ``.../approval``."""

    def __init__(self, store: Store, strategy: CertificateSigningRequestStrategy,
                 **kwargs: Any) -> None:
        super().__init__(store, strategy, **kwargs)
        self.approval = Registry(store, CertificateSigningRequestApprovalStrategy(strategy),
                                 subresource="approval", **kwargs)

    def for_subresource(self, subresource: str) -> Registry:
        return self.approval if subresource == "approval" else self
