"""Authentication (bearer tokens) and authorization (admin, node), as small pure rules.

Tokens live in ``DATA_DIR/tokens.csv`` in kube-apiserver's ``--token-auth-file`` format:
``token,user,uid,"group1,group2"``. The admin token is created on first start; node tokens are
added by whoever provisions a node (``svcnet up`` does). The file is re-read when it changes, so
adding a node needs no restart. Tokens are held and looked up by their SHA-256 digest, never
compared as strings: a lookup's time then depends on the digest of what the client sent, which
tells it nothing about any valid token (kube-apiserver compares tokens in constant time).

Authorization mirrors the Node authorizer (NodeRestriction admission, which limits what a node
writes into those objects, is in admission.py; :func:`current_user` tells it who asks):

* every authenticated user may review its own access (``kubectl auth can-i``, ``whoami``) and
  get the discovery, health and version URLs (:data:`BASIC_USER_RULES`, :data:`PUBLIC_URLS`);
* ``system:masters`` may do anything;
* ``system:nodes`` members (user ``system:node:<name>``) may read everything but ConfigMaps,
  Secrets, PersistentVolumeClaims and PersistentVolumes, and write only their own Node (and
  its status), the status of pods bound to them, pod deletion for pods bound to them
  (finishing graceful deletion), their own Lease in ``kube-node-lease``, and Events.
  Everything else is 403.
* ConfigMaps, Secrets, PersistentVolumeClaims and PersistentVolumes, as the Node authorizer's
  graph has it (plugin/pkg/auth/authorizer/node/node_authorizer.go, graph.go): a node may get,
  list and watch one only when a pod bound to it names it (a ConfigMap or Secret its
  containers or volumes name, a claim its ``persistentVolumeClaim`` volumes name:
  svcnet/api/podrefs.py) or, for a PersistentVolume, when its ``spec.claimRef`` names such a
  claim (``node <- pod <- pvc <- pv``); and list/watch only one object at a time
  (``fieldSelector=metadata.name=<name>``), never a subresource; the handler works out that
  relationship (``node_related``). Otherwise 403, with the authorizer's reason ``no
  relationship found between node '<node>' and this object``. Upstream lets a node only
  *get* claims and volumes (the kubelet gets them again on each pass of its volume
  populator); svcnet's node agent watches the one object instead (svcnet/node/objects.py),
  which shows it nothing a get would not.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcnet.api.errors import StatusError, go_quote
from svcnet.api.rbac import Attributes

ADMIN_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
READERS_GROUP = "svcnet:readers"
"""Read-only users (the cluster DNS pod): get, list and watch everything, write nothing."""
READ_VERBS = frozenset({"get", "list", "watch"})
NODE_GRAPH_RESOURCES = frozenset({"configmaps", "secrets", "persistentvolumeclaims",
                                  "persistentvolumes"})
"""Core resources a node reads only when a pod bound to it names the object (for a
PersistentVolume: names the claim the volume's ``claimRef`` names)."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()

    @property
    def node_name(self) -> str | None:
        if NODES_GROUP in self.groups and self.name.startswith(NODE_USER_PREFIX):
            return self.name[len(NODE_USER_PREFIX):]
        return None


_current_user: ContextVar[User | None] = ContextVar("svcnet_request_user", default=None)


def current_user() -> User | None:
    """Who the request being served authenticated as (None outside a request: the server's
    own writes). Each request runs in its own task, so this is per request."""
    return _current_user.get()


def set_current_user(user: User) -> None:
    """Remember who the request being served is (for admission, later in the request)."""
    _current_user.set(user)


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class TokenFile:
    """Bearer tokens from a token-auth CSV file, re-read when its mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = -1.0
        self._users: dict[bytes, User] = {}  # by the token's SHA-256 digest

    def _reload(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            self._users = {}
            return
        if mtime == self._mtime:
            return
        users: dict[bytes, User] = {}
        for row in csv.reader(io.StringIO(self.path.read_text())):
            if len(row) < 2 or row[0].startswith("#"):
                continue
            groups = tuple(g for g in (row[3] if len(row) > 3 else "").split(",") if g)
            uid = row[2].strip() if len(row) > 2 else ""
            users[_digest(row[0].strip())] = User(row[1].strip(), uid, groups)
        self._users, self._mtime = users, mtime

    def lookup(self, token: str) -> User | None:
        """Who ``token`` is, or None (TokenReview asks this about someone else's token)."""
        self._reload()
        return self._users.get(_digest(token))


    def add(self, token: str, user: User) -> None:
        """Append a token (0600 file). Used when provisioning nodes."""
        line = io.StringIO()
        csv.writer(line).writerow([token, user.name, user.uid, ",".join(user.groups)])
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line.getvalue())


def forbidden(user: User, verb: str, resource: str, group: str, namespace: str, name: str,
              subresource: str = "", reason: str = "") -> StatusError:
    res = f"{resource}/{subresource}" if subresource else resource
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    # apierrors.NewForbidden names the group resource: "runtimeclasses.node.k8s.io".
    qualified = f"{resource}.{group}" if group else resource
    target = f"{qualified} {go_quote(name)}" if name else qualified
    message = (f'{target} is forbidden: User "{user.name}" cannot {verb} resource '
               f'"{res}" in API group "{group}"{where}' + (f": {reason}" if reason else ""))
    details: dict[str, Any] = {"kind": resource}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return StatusError(403, "Forbidden", message, details)


#: What every authenticated user may do (upstream's ``system:basic-user`` ClusterRole, and
#: ``selfsubjectreviews`` for ``kubectl auth whoami``), in SelfSubjectRulesReview's shape.
BASIC_USER_RULES: tuple[dict[str, list[str]], ...] = (
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
    {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
     "resources": ["selfsubjectreviews"]},
)
#: The URLs outside the resource API that every authenticated user may get: upstream's
#: ``system:discovery`` and ``system:public-info-viewer``, and ``/metrics``, which svcnet
#: serves to any authenticated user (the server module says why).
PUBLIC_URLS: tuple[str, ...] = (
    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/metrics", "/openapi",
    "/openapi/*", "/readyz", "/version", "/version/")
_ALL_RESOURCES = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
_READ_ALL = {"verbs": sorted(READ_VERBS), "apiGroups": ["*"], "resources": ["*"]}
#: The Node authorizer's answer to a rules review (it decides per object, so cannot list).
NODE_RULES_INCOMPLETE = "node authorizer does not support user rule resolution"


@dataclass(frozen=True, slots=True)
class Rules:
    """What a user may do in a namespace, as SelfSubjectRulesReview reports it."""

    resource_rules: list[dict[str, list[str]]]
    non_resource_rules: list[dict[str, list[str]]]
    incomplete: bool = False
    evaluation_error: str = ""


def rules_for(user: User) -> Rules:
    """The rules :func:`authorize` applies to ``user``, listed (the same in every namespace).

    A node's writes depend on the object (its own Node, pods bound to it), which a rule list
    cannot say: like the Node authorizer, the answer is marked incomplete.
    """
    public = {"verbs": ["get"], "nonResourceURLs": list(PUBLIC_URLS)}
    basic = [dict(r) for r in BASIC_USER_RULES]
    if ADMIN_GROUP in user.groups:
        return Rules([dict(_ALL_RESOURCES), *basic],
                     [{"verbs": ["*"], "nonResourceURLs": ["*"]}, public])
    if READERS_GROUP in user.groups:
        return Rules([dict(_READ_ALL), *basic], [public])
    if user.node_name is not None:
        return Rules([dict(_READ_ALL), *basic], [public], incomplete=True,
                     evaluation_error=NODE_RULES_INCOMPLETE)
    return Rules(basic, [public])


def authorize_url(user: User, verb: str, path: str) -> bool:
    """Whether ``user`` may ``verb`` a non-resource URL (``/healthz``, ``/apis/...``)."""
    if ADMIN_GROUP in user.groups:
        return True
    return verb == "get" and any(
        path == url or (url.endswith("*") and path.startswith(url[:-1])) for url in PUBLIC_URLS)


def _basic_user(verb: str, group: str, resource: str) -> bool:
    return verb == "create" and any(
        group in r["apiGroups"] and resource in r["resources"] for r in BASIC_USER_RULES)


def authorize(user: User, verb: str, *, group: str, resource: str, namespace: str, name: str,
              subresource: str, pod_node: str | None = None, node_related: bool = False
              ) -> bool:
    """Whether ``user`` may do ``verb``. ``pod_node`` is the nodeName of the pod addressed
    (for node users writing pod status or deleting a pod); ``node_related`` whether a pod
    bound to the node names the ConfigMap, Secret or claim addressed, or the claim of the
    PersistentVolume addressed (for node users reading one)."""
    if ADMIN_GROUP in user.groups or _basic_user(verb, group, resource):
        return True
    if group == "" and resource == "nodes" and subresource == "proxy":
        return False  # the node agents' API (logs of any pod): admins, or RBAC, only
    if READERS_GROUP in user.groups:
        return verb in READ_VERBS
    node = user.node_name
    if node is None:
        return False
    if group == "" and resource in NODE_GRAPH_RESOURCES:
        return verb in READ_VERBS and not subresource and node_related
    if group == "" and resource == "pods" and subresource == "log":
        return verb == "get" and pod_node == node  # logs may hold secrets: own pods only
    if verb in READ_VERBS:
        return True
    # For create, ``name`` is the name in the request body.
    if group == "" and resource == "nodes":
        return name == node
    if group == "" and resource == "pods":
        if subresource == "status" and verb in ("update", "patch"):
            return pod_node == node
        if subresource == "" and verb == "delete":
            return pod_node == node
        return False
    if resource == "events" and group in ("", "events.k8s.io"):
        return verb in ("create", "update", "patch")
    if group == "coordination.k8s.io" and resource == "leases":
        return namespace == "kube-node-lease" and name == node
    return False


def fixed_allows(user: User, attrs: Attributes) -> bool:
    """:func:`authorize` or :func:`authorize_url` for one request's attributes."""
    if not attrs.is_resource:
        return authorize_url(user, attrs.verb, attrs.path)
    return authorize(user, attrs.verb, group=attrs.group, resource=attrs.resource,
                     namespace=attrs.namespace, name=attrs.name, subresource=attrs.subresource)
