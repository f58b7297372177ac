"""Bound ServiceAccount tokens: signed JWTs that name a ServiceAccount and what they are bound to.

Theory of operation
-------------------
pkg/serviceaccount/claims.go and jwt.go: a token is a JWT signed with the server's
ServiceAccount key (``DATA_DIR/pki/sa.key``, ECDSA P-256 so ES256, made on first start; the
``kid`` header is upstream's key id, the unpadded base64url SHA-256 of the DER public key).
Its claims are upstream's: ``iss`` (:data:`ISSUER`), ``sub``
(``system:serviceaccount:<ns>:<name>``), ``aud``, ``iat``/``nbf``/``exp``, ``jti``, and the
private ``kubernetes.io`` claim with the namespace, the ServiceAccount's name and uid, and the
object the token is bound to (a Pod, with its node, or a Secret).

Verifying (:meth:`TokenIssuer.verify`) checks the signature, issuer, audience and times;
whether the ServiceAccount (and the bound pod) still exist with the same uid is the caller's
part, since it needs the store (upstream's validator does the same lookups). A token whose
pod was deleted stops authenticating once the pod is gone, as upstream's does.

The key lives in each server's data directory; servers on one store share it (the
``--service-account-key-file`` of kube-apiserver) through the store, as identity.py explains.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from svcnet.api.rbac import SERVICE_ACCOUNT_PREFIX, service_account_user

__all__ = ["API_AUDIENCES", "ISSUER", "Bound", "Claims", "TokenIssuer",
           "ensure_signing_key", "service_account_groups"]

#: kube-apiserver's ``--service-account-issuer`` in kubeadm clusters, also the default audience.
ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES: tuple[str, ...] = (ISSUER,)
SA_GROUP = "system:serviceaccounts"
_ALGORITHM = "ES256"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """The groups a ServiceAccount's user is in (serviceaccount.MakeGroupNames)."""
    return (SA_GROUP, f"{SA_GROUP}:{namespace}")


@dataclass(frozen=True, slots=True)
class Bound:
    """An object a token is bound to (``spec.boundObjectRef`` of a TokenRequest)."""

    kind: str  # Pod or Secret
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: int
    pod: Bound | None = None
    node_name: str = ""
    secret: Bound | None = None

    @property
    def username(self) -> str:
        return service_account_user(self.namespace, self.name)


def ensure_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The ServiceAccount signing key at ``path``, made (0600) if missing."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: not an ECDSA key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    """keyIDFromPublicKey: unpadded base64url of the SHA-256 of the PKIX DER public key."""
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


class TokenIssuer:
    """Issues and verifies bound ServiceAccount tokens with one signing key."""

    def __init__(self, key_path: Path) -> None:
        self._key = ensure_signing_key(key_path)
        self._public = self._key.public_key()
        self.key_id = key_id(self._public)

    def issue(self, *, namespace: str, name: str, uid: str, audiences: tuple[str, ...],
              now: datetime, expiration_seconds: int, pod: Bound | None = None,
              node: Bound | None = None, secret: Bound | None = None) -> tuple[str, int]:
        """A signed token and its expiry (Unix seconds)."""
        issued = int(now.timestamp())
        expires = issued + expiration_seconds
        private: dict[str, Any] = {"namespace": namespace}
        if node is not None:
            private["node"] = {"name": node.name, "uid": node.uid}
        if pod is not None:
            private["pod"] = {"name": pod.name, "uid": pod.uid}
        if secret is not None:
            private["secret"] = {"name": secret.name, "uid": secret.uid}
        private["serviceaccount"] = {"name": name, "uid": uid}
        claims = {"aud": list(audiences), "exp": expires, "iat": issued, "iss": ISSUER,
                  "jti": str(uuid.uuid4()), "kubernetes.io": private, "nbf": issued,
                  "sub": service_account_user(namespace, name)}
        token = jwt.encode(claims, self._key, algorithm=_ALGORITHM,
                           headers={"kid": self.key_id})
        return token, expires

    def verify(self, token: str, audiences: tuple[str, ...] = API_AUDIENCES,
               ) -> Claims | None:
        """The token's claims if it is ours, current and for one of ``audiences``."""
        try:
            claims = jwt.decode(token, self._public, algorithms=[_ALGORITHM], issuer=ISSUER,
                                audience=list(audiences), leeway=0,
                                options={"require": ["exp", "iat", "sub", "aud"]})
        except jwt.PyJWTError:
            return None
        private = claims.get("kubernetes.io")
        sub = claims.get("sub")
        if not isinstance(private, dict) or not isinstance(sub, str) or \
                not sub.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        sa = private.get("serviceaccount") or {}
        namespace = str(private.get("namespace") or "")
        if sub != service_account_user(namespace, str(sa.get("name") or "")):
            return None
        aud = claims["aud"]
        return Claims(namespace=namespace, name=str(sa.get("name") or ""),
                      uid=str(sa.get("uid") or ""),
                      audiences=tuple(aud if isinstance(aud, list) else [aud]),
                      expires=int(claims["exp"]),
                      pod=_bound("Pod", private.get("pod")),
                      node_name=str((private.get("node") or {}).get("name") or ""),
                      secret=_bound("Secret", private.get("secret")))


def _bound(kind: str, ref: object) -> Bound | None:
    if not isinstance(ref, dict):
        return None
    return Bound(kind, str(ref.get("name") or ""), str(ref.get("uid") or ""))


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts: worth verifying as a ServiceAccount token."""
    return token.count(".") == 2
