"""The join token's format, shared by the server that writes it and ``svcnet join``.

Theory of operation
-------------------
k3s's "secure" token format (k3s pkg/clientaccess/token.go), with a Kubernetes bootstrap token
as its credentials, as ``k3s token create`` prints it::

    K10<sha256 of the cluster CA certificate (PEM), hex>::<token-id>.<token-secret>

* the hash pins the CA: a joining machine fetches the CA over a connection it does not yet
  trust and uses it only if its digest is the token's (kubeadm's
  ``--discovery-token-ca-cert-hash`` plays the same part), so a machine in the middle cannot
  hand it another CA;
* ``<token-id>.<token-secret>`` is a bootstrap token (6 and 16 characters of ``[a-z0-9]``,
  upstream's ``bootstraputil`` pattern): the Secret ``kube-system/bootstrap-token-<id>`` holds
  it, and the API server authenticates it as user ``system:bootstrap:<id>``.

What a joined node then authenticates with is a *node token*, ``node:<node name>:<secret>``
(svcnet's own form, modelled on k3s's per-node passwords): the name says which Secret to
check, the secret is compared by digest.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BOOTSTRAP_SECRET_PREFIX",
    "BOOTSTRAP_TOKEN_TYPE",
    "JoinToken",
    "NodeToken",
    "TokenFormatError",
    "ca_hash",
    "new_bootstrap_token",
    "new_secret",
    "parse_join_token",
    "parse_node_token",
]

TOKEN_PREFIX: Final = "K10"
BOOTSTRAP_SECRET_PREFIX: Final = "bootstrap-token-"
BOOTSTRAP_TOKEN_TYPE: Final = "bootstrap.kubernetes.io/token"
_BOOTSTRAP_RE: Final = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
_NODE_PREFIX: Final = "node:"
_ALPHABET: Final = string.ascii_lowercase + string.digits


class TokenFormatError(ValueError):
    """A one-line reason why a string is not a join (or node) token."""


@dataclass(frozen=True, slots=True)
class JoinToken:
    ca_hash: str
    """SHA-256 of the CA certificate's PEM, lowercase hex."""
    token_id: str
    secret: str

    @property
    def bootstrap(self) -> str:
        """The credentials part, ``<id>.<secret>``: the bearer token for ``/svcnet/join``."""
        return f"{self.token_id}.{self.secret}"

    def __str__(self) -> str:
        return f"{TOKEN_PREFIX}{self.ca_hash}::{self.bootstrap}"


@dataclass(frozen=True, slots=True)
class NodeToken:
    node_name: str
    secret: str

    def __str__(self) -> str:
        return f"{_NODE_PREFIX}{self.node_name}:{self.secret}"


def ca_hash(ca_pem: bytes | str) -> str:
    data = ca_pem.encode() if isinstance(ca_pem, str) else ca_pem
    return hashlib.sha256(data).hexdigest()


def new_secret(length: int = 16) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_bootstrap_token(ca_pem: bytes | str) -> JoinToken:
    return JoinToken(ca_hash(ca_pem), new_secret(6), new_secret(16))


def parse_bootstrap(text: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a bootstrap token, None if ``text`` is not one."""
    m = _BOOTSTRAP_RE.fullmatch(text)
    return (m[1], m[2]) if m else None


def parse_join_token(text: str) -> JoinToken:
    text = text.strip()
    if not text.startswith(TOKEN_PREFIX) or "::" not in text:
        raise TokenFormatError("not a join token: expected K10<CA hash>::<id>.<secret> "
                               "(DATA_DIR/join-token on the server)")
    digest, _, creds = text[len(TOKEN_PREFIX):].partition("::")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise TokenFormatError("join token: the CA hash is not 64 hex digits")
    parsed = parse_bootstrap(creds)
    if parsed is None:
        raise TokenFormatError("join token: the credentials are not a bootstrap token "
                               "(6 and 16 characters of [a-z0-9], joined by a dot)")
    return JoinToken(digest, *parsed)


def parse_node_token(text: str) -> NodeToken | None:
    """A node token's parts, None if ``text`` is not one."""
    if not text.startswith(_NODE_PREFIX):
        return None
    name, sep, secret = text[len(_NODE_PREFIX):].rpartition(":")
    if not sep or not name or len(secret) < 16:
        return None
    return NodeToken(name, secret)
