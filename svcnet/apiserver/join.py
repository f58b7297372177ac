"""Joining machines as nodes: the join token, bootstrap and node tokens, ``/svcnet/join``.

Theory of operation
-------------------
How k3s lets an agent join (k3s pkg/clientaccess, pkg/server/router.go, pkg/nodepassword),
with kubeadm's bootstrap tokens as the shared secret (svcnet/api/jointokens.py has the format):

1. **The join token.** On start the server makes sure a bootstrap token exists: the Secret
   ``kube-system/bootstrap-token-<id>`` (type ``bootstrap.kubernetes.io/token``, labelled
   ``svcnet.io/join-token=default``), and writes ``K10<CA hash>::<id>.<secret>`` to
   ``DATA_DIR/join-token`` (0600). The token lives in the store, so every server of the
   cluster adopts the same one; a token file of an earlier start is kept if it still matches
   the CA (a deleted Secret is created again from it).
2. **``GET /cacerts``** answers the cluster CA to anyone (k3s's ``/cacerts``): the joining
   machine checks its SHA-256 against the token before trusting it.
3. **Bootstrap authentication** (upstream's plugin/pkg/auth/authenticator/token/bootstrap):
   ``<id>.<secret>`` is user ``system:bootstrap:<id>`` in ``system:bootstrappers`` and the
   Secret's ``auth-extra-groups``, if the Secret exists, is not being deleted, has
   ``usage-bootstrap-authentication: "true"``, holds that secret (compared in constant time)
   and its ``expiration`` has not passed. Such a user may do nothing through the resource API
   (no rule in auth.py names it); it may POST ``/svcnet/join``.
4. **``POST /svcnet/join``** ``{"nodeName", "password", "addresses"}`` answers the node's
   credential and the node server's certificate. The credential is a bearer token
   ``node:<name>:<secret>`` for ``system:node:<name>`` in ``system:nodes`` (so the Node
   authorizer and NodeRestriction hold it to its own Node and pods); its SHA-256 is kept in
   the Secret ``kube-system/<name>.node-token.svcnet`` with the SHA-256 of the machine's node
   password. As in k3s's node-password check, a second join under a registered name must bring
   the same password (the same machine, e.g. after a reinstall of svcnet with its state
   kept), else 403: a machine cannot take over another's node. Each join rotates the token.
   The token lives in the store, so it authenticates on every server.
5. **Node token authentication** looks the Secret up by the name in the token; a success is
   cached for 10 s (kube-apiserver caches token authentications the same way), so an agent's
   requests cost no store read each.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from svcnet.api.errors import StatusError
from svcnet.api.jointokens import (
    BOOTSTRAP_SECRET_PREFIX,
    BOOTSTRAP_TOKEN_TYPE,
    JoinToken,
    TokenFormatError,
    new_bootstrap_token,
    new_secret,
    parse_bootstrap,
    parse_join_token,
    parse_node_token,
)
from svcnet.api.names import is_dns1123_subdomain
from svcnet.apiserver.auth import NODE_USER_PREFIX, NODES_GROUP, User
from svcnet.apiserver.authn import bearer_token
from svcnet.apiserver.certs import node_serving_pem
from svcnet.apiserver.common import status_response
from svcnet.apiserver.webhookadmission import without_webhooks
from svcnet.registry.generic import Registry
from svcnet.util.clock import parse_time

__all__ = ["JoinService", "ensure_join_token"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACE: Final = "kube-system"
BOOTSTRAP_USER_PREFIX: Final = "system:bootstrap:"
BOOTSTRAPPERS_GROUP: Final = "system:bootstrappers"
JOIN_GROUP: Final = "system:bootstrappers:svcnet:join"
DEFAULT_LABEL: Final = "svcnet.io/join-token"
NODE_TOKEN_TYPE: Final = "svcnet.io/node-token"
NODE_TOKEN_SUFFIX: Final = ".node-token.svcnet"
CACHE_TTL: Final = 10.0
_MAX_NODE_NAME: Final = 253 - len(NODE_TOKEN_SUFFIX)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _data(secret: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bootstrap_secret(token: JoinToken) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "type": BOOTSTRAP_TOKEN_TYPE,
            "metadata": {"name": BOOTSTRAP_SECRET_PREFIX + token.token_id,
                         "namespace": NAMESPACE, "labels": {DEFAULT_LABEL: "default"}},
            "data": {"token-id": _b64(token.token_id), "token-secret": _b64(token.secret),
                     "usage-bootstrap-authentication": _b64("true"),
                     "auth-extra-groups": _b64(JOIN_GROUP),
                     "description": _b64("svcnet join token (svcnet server)")}}


async def ensure_join_token(secrets: Registry, path: Path, ca_pem: str) -> JoinToken:
    """The cluster's default join token: the file's if it matches this CA, else the one in
    the store, else a new one; its Secret exists and the file holds it when this returns."""
    token: JoinToken | None = None
    try:
        token = parse_join_token(path.read_text())
    except (OSError, TokenFormatError):
        token = None
    if token is not None and token.ca_hash != new_bootstrap_token(ca_pem).ca_hash:
        token = None  # another CA: a stale file
    if token is None:
        page = await secrets.list(NAMESPACE)
        for s in page.items:
            if (s["metadata"].get("labels") or {}).get(DEFAULT_LABEL) == "default" and \
                    s.get("type") == BOOTSTRAP_TOKEN_TYPE:
                data = _data(s)
                fresh = new_bootstrap_token(ca_pem)
                token = JoinToken(fresh.ca_hash, data.get("token-id", ""),
                                  data.get("token-secret", ""))
                if parse_bootstrap(token.bootstrap) is not None:
                    break
                token = None
    if token is None:
        token = new_bootstrap_token(ca_pem)
    try:
        await secrets.get(NAMESPACE, BOOTSTRAP_SECRET_PREFIX + token.token_id)
    except StatusError as e:
        if e.code != 404:
            raise
        try:
            await secrets.create(NAMESPACE, bootstrap_secret(token))
        except StatusError as e2:
            if e2.code != 409:  # another server made it meanwhile
                raise
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{token}\n")
    return token


def bootstrap_user(secret: Mapping[str, Any] | None, token_id: str, token_secret: str,
                   now: datetime) -> User | None:
    """Who a bootstrap token is, given its Secret (upstream's bootstrap authenticator)."""
    if secret is None or secret.get("type") != BOOTSTRAP_TOKEN_TYPE or \
            (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    data = _data(secret)
    if data.get("usage-bootstrap-authentication") != "true" or \
            data.get("token-id") != token_id or \
            not hmac.compare_digest(data.get("token-secret", ""), token_secret):
        return None
    expires = parse_time(data.get("expiration"))
    if expires is not None and now >= expires:
        return None
    extra = tuple(g for g in (x.strip() for x in data.get("auth-extra-groups", "").split(","))
                  if g.startswith(BOOTSTRAPPERS_GROUP + ":"))
    return User(BOOTSTRAP_USER_PREFIX + token_id, "", (BOOTSTRAPPERS_GROUP, *extra))


def node_user(secret: Mapping[str, Any] | None, node_name: str, token_secret: str
              ) -> User | None:
    """Who a node token is, given its Secret."""
    if secret is None or secret.get("type") != NODE_TOKEN_TYPE:
        return None
    data = _data(secret)
    if data.get("node-name") != node_name or not hmac.compare_digest(
            data.get("token-hash", ""), _sha(token_secret)):
        return None
    return User(NODE_USER_PREFIX + node_name, "", (NODES_GROUP,))


def node_secret_name(node_name: str) -> str:
    return node_name + NODE_TOKEN_SUFFIX


class JoinService:
    """Bootstrap and node token authentication, ``/cacerts`` and ``/svcnet/join``."""

    def __init__(self, secrets: Registry, data_dir: Path, ca_pem: str,
                 now: Callable[[], datetime], monotonic: Callable[[], float] = time.monotonic
                 ) -> None:
        self._secrets = secrets
        self._data_dir = data_dir
        self._ca_pem = ca_pem
        self._now = now
        self._monotonic = monotonic
        self._cache: dict[str, tuple[User, float]] = {}

    async def _secret(self, name: str) -> Obj | None:
        try:
            return await self._secrets.get(NAMESPACE, name)
        except StatusError:
            return None

    async def lookup(self, token: str) -> User | None:
        """Who a bootstrap or node token is (None for any other token)."""
        boot = parse_bootstrap(token)
        if boot is not None:
            secret = await self._secret(BOOTSTRAP_SECRET_PREFIX + boot[0])
            return bootstrap_user(secret, boot[0], boot[1], self._now())
        node = parse_node_token(token)
        if node is None:
            return None
        key = _sha(token)
        hit = self._cache.get(key)
        if hit is not None and hit[1] > self._monotonic():
            return hit[0]
        user = node_user(await self._secret(node_secret_name(node.node_name)), node.node_name,
                         node.secret)
        if user is not None:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = (user, self._monotonic() + CACHE_TTL)
        return user

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/cacerts", self._cacerts)
        router.add_post("/svcnet/join", self._join)

    async def _cacerts(self, _request: web.Request) -> web.Response:
        return web.Response(text=self._ca_pem, content_type="application/x-pem-file")

    async def _join(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(await self.join(request.headers.get("Authorization"),
                                                     await request.read()))
        except StatusError as err:
            return status_response(err, request)

    async def join(self, authorization: str | None, body: bytes) -> Obj:
        """The join itself: who asks, what for, the node's new credential."""
        token = bearer_token(authorization) or ""
        boot = parse_bootstrap(token)
        user = await self.lookup(token) if boot is not None else None
        if user is None:
            raise StatusError(401, "Unauthorized", "Unauthorized")
        try:
            req = json.loads(body)
        except ValueError:
            raise StatusError(400, "BadRequest", "the join request is not JSON") from None
        name, password, addresses = _join_request(req)
        existing = await self._secret(node_secret_name(name))
        hashed = _sha(password)
        if existing is not None and not hmac.compare_digest(
                _data(existing).get("password-hash", ""), hashed):
            raise StatusError(403, "Forbidden", f"node {name!r} was joined by another machine "
                              f"(its node password differs); choose another --node-name")
        secret = new_secret(32)
        doc: Obj = {"apiVersion": "v1", "kind": "Secret", "type": NODE_TOKEN_TYPE,
                    "metadata": {"name": node_secret_name(name), "namespace": NAMESPACE,
                                 "labels": {"svcnet.io/node": name[:63]}},
                    "data": {"node-name": _b64(name), "password-hash": _b64(hashed),
                             "token-hash": _b64(_sha(secret))}}
        with without_webhooks():  # the server's own records (webhookadmission.py)
            if existing is None:
                await self._secrets.create(NAMESPACE, doc)
            else:
                doc["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                await self._secrets.update(NAMESPACE, doc["metadata"]["name"], doc)
        self._cache.clear()  # the old token of this node is no longer valid
        cert, key = node_serving_pem(self._data_dir, name, addresses)
        log.info("%s joined node %s (%s)", user.name, name, ", ".join(addresses))
        return {"token": f"node:{name}:{secret}", "servingCertificate": cert.decode(),
                "servingKey": key.decode(), "ca": self._ca_pem}


def _join_request(req: object) -> tuple[str, str, list[str]]:
    if not isinstance(req, dict):
        raise StatusError(400, "BadRequest", "the join request must be an object")
    name, password = req.get("nodeName"), req.get("password")
    addresses = req.get("addresses") or []
    if not isinstance(name, str) or is_dns1123_subdomain(name) or len(name) > _MAX_NODE_NAME:
        raise StatusError(422, "Invalid", f"nodeName {name!r}: must be a DNS subdomain of at "
                          f"most {_MAX_NODE_NAME} characters")
    if not isinstance(password, str) or len(password) < 16:
        raise StatusError(422, "Invalid", "password: at least 16 characters")
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise StatusError(422, "Invalid", "addresses: a list of IP addresses")
    for a in addresses:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise StatusError(422, "Invalid", f"addresses: {a!r} is not an IP address") from None
    return name, password, list(addresses)
