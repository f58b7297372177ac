"""Which endpoints a service port uses on this node: :func:`categorize_endpoints` (pure).

Mirrors kube-proxy's ``CategorizeEndpoints`` (pkg/proxy/topology.go, Kubernetes 1.33):

* **Topology** (:func:`can_use_topology`, upstream ``canUseTopology``): zone hints
  (``endpoints[].hints.forZones``, written by the EndpointSlice controller for
  ``trafficDistribution: PreferClose`` or the ``topology-mode: Auto`` annotation) are used only
  if this node has a zone, *every* ready endpoint has a hint, and at least one ready endpoint is
  hinted for this node's zone. Anything less (a hint missing while the controller catches up,
  this zone's endpoints all gone) ignores hints altogether, so traffic falls back to every
  endpoint rather than to none. The Service's annotation is not consulted (1.33: the
  ``ServiceTrafficDistribution`` gate is GA, so the proxy follows the hints alone).
* **Cluster-policy endpoints** (used unless ``internalTrafficPolicy: Local`` and the port is not
  externally reachable): every *ready* endpoint (with topology: every ready endpoint hinted for
  this node's zone); if none is ready anywhere, every endpoint that is *serving and
  terminating* — the graceful-termination fallback (KEP-1669), so a rolling update whose old
  pods are still draining never drops to "no endpoints". Hints play no part in the fallback.
* **Local-policy endpoints** (never filtered by topology; used with ``internalTrafficPolicy:
  Local`` or, for externally reachable ports, ``externalTrafficPolicy: Local``): ready
  endpoints on this node; if none, serving-and-terminating endpoints on this node. The fallback
  is decided independently of the cluster one.
* **has_any**: some endpoint anywhere is ready, or serving and terminating. A port without any
  is *rejected* (ICMP port unreachable); one with endpoints elsewhere but none usable under a
  Local policy is *dropped* (the client cannot tell this node apart from a dead one).

Endpoint order is preserved (callers pass them sorted), so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from svcnet.proxy.model import EndpointInfo, ServicePortInfo

__all__ = ["CategorizedEndpoints", "can_use_topology", "categorize_endpoints"]


@dataclass(frozen=True, slots=True)
class CategorizedEndpoints:
    """The endpoint lists one service port uses on one node."""

    cluster: tuple[EndpointInfo, ...] = ()
    local: tuple[EndpointInfo, ...] = ()
    all_reachable: tuple[EndpointInfo, ...] = ()
    has_any: bool = False
    topology: bool = False
    """Zone hints chose ``cluster`` (only ready endpoints hinted for this node's zone)."""


def can_use_topology(endpoints: Sequence[EndpointInfo], zone: str | None) -> bool:
    """Whether the zone hints apply on a node in ``zone`` (see the module doc)."""
    has_endpoint_for_zone = False
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.zone_hints or not zone:
            return False
        if zone in ep.zone_hints:
            has_endpoint_for_zone = True
    return has_endpoint_for_zone


def categorize_endpoints(endpoints: Sequence[EndpointInfo], svc: ServicePortInfo,
                         node_name: str, zone: str | None = None) -> CategorizedEndpoints:
    """Split ``endpoints`` into cluster-policy and local-policy endpoints for ``node_name``
    (in ``zone``)."""
    if not endpoints:
        return CategorizedEndpoints()
    cluster: tuple[EndpointInfo, ...] = ()
    local: tuple[EndpointInfo, ...] = ()
    has_any = topology = False
    if svc.uses_cluster_endpoints:
        topology = can_use_topology(endpoints, zone)
        cluster = tuple(ep for ep in endpoints
                        if ep.ready and (not topology or zone in ep.zone_hints))
        if not cluster:
            cluster = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
        has_any = bool(cluster)
    if not svc.uses_local_endpoints:
        return CategorizedEndpoints(cluster, (), cluster, has_any, topology)
    if any(ep.ready or (ep.serving and ep.terminating) for ep in endpoints):
        has_any = True
    local = tuple(ep for ep in endpoints if ep.is_local(node_name) and ep.ready)
    if not local:
        local = tuple(ep for ep in endpoints
                      if ep.is_local(node_name) and ep.serving and ep.terminating)
    if not svc.uses_cluster_endpoints:
        return CategorizedEndpoints((), local, local, has_any, topology)
    reachable = cluster + tuple(ep for ep in local if ep not in cluster)
    return CategorizedEndpoints(cluster, local, reachable, has_any, topology)
