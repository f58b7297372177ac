"""Authentication: who a client certificate or a bearer token is.

Theory of operation
-------------------
kube-apiserver's authenticator union (staging/src/k8s.io/apiserver/pkg/authentication/request/
union): each authenticator is tried in turn and the first that recognises the request wins;
one that fails (a certificate that does not verify) is passed over. First the TLS client
certificate, if the client presented one (:mod:`svcnet.apiserver.clientcerts`: signed by the
cluster CA, the CommonName is the user and each Organization a group), then the bearer token:
the static token file (:class:`svcnet.apiserver.auth.TokenFile`: admin, nodes, the DNS
reader), then bootstrap and node tokens of joined machines (``extra``:
:mod:`svcnet.apiserver.join`), then bound ServiceAccount tokens (:mod:`svcnet.apiserver.satokens`).

A ServiceAccount token authenticates only while what it names is live, as upstream's
validator (pkg/serviceaccount/claims.go ``Validate``) checks: the ServiceAccount exists with
the uid in the token, and a pod-bound token's pod exists with its uid and was not deleted
more than 60 s ago. The user is ``system:serviceaccount:<ns>:<name>`` in the groups
``system:serviceaccounts`` and ``system:serviceaccounts:<ns>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from svcnet.api.errors import StatusError
from svcnet.apiserver.auth import TokenFile, User, set_current_user, unauthorized
from svcnet.apiserver.clientcerts import X509Authenticator
from svcnet.apiserver.satokens import (
    API_AUDIENCES,
    Claims,
    TokenIssuer,
    looks_like_jwt,
    service_account_groups,
)
from svcnet.registry.generic import Registry
from svcnet.util.clock import parse_time

__all__ = ["Authenticator", "bearer_token"]

#: How long a deleted pod's tokens keep working (upstream's grace for graceful deletion).
_POD_DELETION_GRACE = timedelta(seconds=60)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, the scheme matched without
    regard to case as upstream's bearertoken authenticator does (the official Python client's
    in-cluster config sends ``bearer``)."""
    parts = (authorization or "").strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


class Authenticator:
    """Client certificates, then the token file, joined machines' and ServiceAccount tokens."""

    def __init__(self, tokens: TokenFile, issuer: TokenIssuer,
                 registry: Callable[[str], Registry | None],
                 now: Callable[[], datetime],
                 extra: Callable[[str], Awaitable[User | None]] | None = None,
                 certificates: X509Authenticator | None = None) -> None:
        self.tokens = tokens
        self._extra = extra
        self._certificates = certificates
        self.issuer = issuer
        self._registry = registry
        self._now = now

    async def lookup(self, token: str) -> User | None:
        """Who ``token`` is, for the API server's own audience, or None."""
        user, _ = await self.review(token, API_AUDIENCES)
        return user

    async def review(self, token: str, audiences: Sequence[str],
                     ) -> tuple[User | None, list[str]]:
        """Who ``token`` is for one of ``audiences``, and which of them it is valid for
        (TokenReview). Static tokens know no audience: like upstream's audience-agnostic
        authenticators they are valid for the API server's audiences only."""
        user = self.tokens.lookup(token)
        if user is None and self._extra is not None:
            user = await self._extra(token)
        if user is not None:
            shared = [a for a in audiences if a in API_AUDIENCES]
            return (user, shared) if shared else (None, [])
        if not looks_like_jwt(token):
            return None, []
        claims = self.issuer.verify(token, tuple(audiences))
        if claims is None or not await self._live(claims):
            return None, []
        return (User(claims.username, claims.uid, service_account_groups(claims.namespace)),
                [a for a in audiences if a in claims.audiences])

    async def authenticate(self, authorization: str | None,
                           certificate: bytes | None = None) -> User:
        """The request's user (401 when there is none), remembered for admission: the
        client certificate's (DER, from the TLS handshake), else the bearer token's."""
        user = None
        if certificate is not None and self._certificates is not None:
            user = self._certificates.user(certificate)
        if user is None:
            token = bearer_token(authorization)
            user = await self.lookup(token) if token else None
        if user is None:
            raise unauthorized()
        set_current_user(user)
        return user

    async def _live(self, claims: Claims) -> bool:
        accounts, pods = self._registry("serviceaccounts"), self._registry("pods")
        if accounts is None:
            return False
        try:
            account = await accounts.get(claims.namespace, claims.name)
        except StatusError:
            return False
        if (account.get("metadata") or {}).get("uid") != claims.uid:
            return False
        if claims.secret is not None and not await self._bound_live(
                "secrets", claims.namespace, claims.secret.name, claims.secret.uid):
            return False
        if claims.pod is None:
            return True
        if pods is None:
            return False
        try:
            pod = await pods.get(claims.namespace, claims.pod.name)
        except StatusError:
            return False
        meta = pod.get("metadata") or {}
        if meta.get("uid") != claims.pod.uid:
            return False
        deleted = parse_time(meta.get("deletionTimestamp"))
        return deleted is None or self._now() < deleted + _POD_DELETION_GRACE

    async def _bound_live(self, resource: str, namespace: str, name: str, uid: str) -> bool:
        """The bound object exists with the token's uid and is not being deleted."""
        registry = self._registry(resource)
        if registry is None:
            return False
        try:
            obj = await registry.get(namespace, name)
        except StatusError:
            return False
        meta = obj.get("metadata") or {}
        return meta.get("uid") == uid and not meta.get("deletionTimestamp")
