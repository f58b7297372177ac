"""Admission: the NodeRestriction rules for what a node may write into objects it may write.

Theory of operation
-------------------
Authorization (auth.py) decides *which* objects a node may write: its own Node, the status of
pods bound to it. Kubernetes' NodeRestriction admission plugin
(plugin/pkg/admission/noderestriction/admission.go) then limits *what* it may write there, so
that a node cannot steer workloads or traffic to itself:

* a node may create or update only its own Node (``node "a" is not allowed to modify node
  "b"``), and may not set, change or remove labels in the ``kubernetes.io`` / ``k8s.io``
  namespaces except the kubelet's own (hostname, os, arch, zone, region, instance type, and
  anything under ``kubelet.kubernetes.io`` / ``node.kubernetes.io``), nor any
  ``node-restriction.kubernetes.io`` label: ``node-role.kubernetes.io/*`` is refused. On
  update, only *modified* labels count, so a label an administrator set stays writable-through;
* a node may not modify its Node's taints;
* through ``pods/status`` a node may update only pods bound to it, and may not change their
  labels (``node "n" cannot update labels through pod status``): Services select pods by label.

The plugin runs on every registry write (:func:`admit`, given to each
:class:`~svcnet.registry.generic.Registry`), after validation and before the store write, and
reads who is writing from the request's context (:func:`svcnet.apiserver.auth.current_user`):
writes the server makes itself (seeding, controllers in process) have no user and pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from svcnet.api.errors import StatusError, forbidden_error, go_quote
from svcnet.apiserver.auth import current_user
from svcnet.registry.generic import AdmissionAttributes

NODE_RESTRICTION_NAMESPACE = "node-restriction.kubernetes.io"
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch"})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    namespace = _label_namespace(key)
    return key in KUBELET_LABELS or any(_in_namespace(namespace, d)
                                        for d in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(modified: set[str]) -> list[str]:
    """The modified label keys a node may not set (sorted, as Go's sets.List)."""
    out = set()
    for key in modified:
        namespace = _label_namespace(key)
        if _in_namespace(namespace, NODE_RESTRICTION_NAMESPACE):
            out.add(key)
        kubernetes = _in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace,
                                                                                 "k8s.io")
        if kubernetes and not is_kubelet_label(key):
            out.add(key)
    return sorted(out)


def modified_labels(new: Mapping[str, str], old: Mapping[str, str]) -> set[str]:
    return {k for k in set(new) | set(old) if new.get(k) != old.get(k)}


def _labels(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _forbidden(resource: str, name: str, reason: str) -> StatusError:
    return forbidden_error(resource, name, reason)


def node_restriction(node: str, a: AdmissionAttributes) -> None:
    """Pure: raise 403 when node ``node`` may not make the write ``a``."""
    if a.group != "":
        return
    if a.resource == "nodes":
        if a.name != node:
            raise _forbidden("nodes", a.name,
                             f"node {go_quote(node)} is not allowed to modify node "
                             f"{go_quote(a.name)}")
        if a.operation == "create":
            bad = forbidden_labels(modified_labels(_labels(a.new), {}))
            if bad:
                raise _forbidden("nodes", a.name,
                                 f"node {go_quote(node)} is not allowed to set the following "
                                 f"labels: {', '.join(bad)}")
            return
        old_taints = ((a.old or {}).get("spec") or {}).get("taints") or []
        new_taints = (a.new.get("spec") or {}).get("taints") or []
        if old_taints != new_taints:
            raise _forbidden("nodes", a.name,
                             f"node {go_quote(node)} is not allowed to modify taints")
        bad = forbidden_labels(modified_labels(_labels(a.new), _labels(a.old)))
        if bad:
            raise _forbidden("nodes", a.name,
                             f"is not allowed to modify labels: {', '.join(bad)}")
        return
    if a.resource == "pods" and a.subresource == "status":
        if ((a.old or {}).get("spec") or {}).get("nodeName") != node:
            raise _forbidden("pods", a.name,
                             f"node {go_quote(node)} can only update pod status for pods with "
                             "spec.nodeName set to itself")
        if _labels(a.old) != _labels(a.new):
            raise _forbidden("pods", a.name,
                             f"node {go_quote(node)} cannot update labels through pod status")


def admit(a: AdmissionAttributes) -> None:
    """The registry's admission hook: NodeRestriction for requests made by a node."""
    user = current_user()
    node = user.node_name if user is not None else None
    if node is not None:
        node_restriction(node, a)
