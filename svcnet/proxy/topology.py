"""Which endpoints a service port uses on this node: :func:`categorize_endpoints` (pure).

Mirrors kube-proxy's ``CategorizeEndpoints`` (pkg/proxy/topology.go), without topology hints
(svcnet does not publish them):

* **Cluster-policy endpoints** (used unless ``internalTrafficPolicy: Local`` and the port is not
  externally reachable): every *ready* endpoint; if none is ready anywhere, every endpoint that
  is *serving and terminating* — the graceful-termination fallback (KEP-1669), so a rolling
  update whose old pods are still draining never drops to "no endpoints".
* **Local-policy endpoints** (used with ``internalTrafficPolicy: Local`` or, for externally
  reachable ports, ``externalTrafficPolicy: Local``): ready endpoints on this node; if none,
  serving-and-terminating endpoints on this node. The fallback is decided independently of the
  cluster one.
* **has_any**: some endpoint anywhere is ready, or serving and terminating. A port without any
  is *rejected* (ICMP port unreachable); one with endpoints elsewhere but none usable under a
  Local policy is *dropped* (the client cannot tell this node apart from a dead one).

Endpoint order is preserved (callers pass them sorted), so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from svcnet.proxy.model import EndpointInfo, ServicePortInfo

__all__ = ["CategorizedEndpoints", "categorize_endpoints"]


@dataclass(frozen=True, slots=True)
class CategorizedEndpoints:
    """The endpoint lists one service port uses on one node."""

    cluster: tuple[EndpointInfo, ...] = ()
    local: tuple[EndpointInfo, ...] = ()
    all_reachable: tuple[EndpointInfo, ...] = ()
    has_any: bool = False


def categorize_endpoints(endpoints: Sequence[EndpointInfo], svc: ServicePortInfo,
                         node_name: str) -> CategorizedEndpoints:
    """Split ``endpoints`` into cluster-policy and local-policy endpoints for ``node_name``."""
    if not endpoints:
        return CategorizedEndpoints()
    cluster: tuple[EndpointInfo, ...] = ()
    local: tuple[EndpointInfo, ...] = ()
    has_any = False
    if svc.uses_cluster_endpoints:
        cluster = tuple(ep for ep in endpoints if ep.ready)
        if not cluster:
            cluster = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
        has_any = bool(cluster)
    if not svc.uses_local_endpoints:
        return CategorizedEndpoints(cluster, (), cluster, has_any)
    if any(ep.ready or (ep.serving and ep.terminating) for ep in endpoints):
        has_any = True
    local = tuple(ep for ep in endpoints if ep.is_local(node_name) and ep.ready)
    if not local:
        local = tuple(ep for ep in endpoints
                      if ep.is_local(node_name) and ep.serving and ep.terminating)
    if not svc.uses_cluster_endpoints:
        return CategorizedEndpoints((), local, local, has_any)
    reachable = cluster + tuple(ep for ep in local if ep not in cluster)
    return CategorizedEndpoints(cluster, local, reachable, has_any)
