"""The service proxy as the node agent runs it: the Proxier, driven asynchronously, with
kube-proxy's metrics and health.

The agent hands over its informer caches on every change (level-triggered, coalesced by the
agent); :meth:`NodeProxy.sync` builds and applies in a worker thread, because ``nft -f`` is a
subprocess and the agent's event loop must keep serving pods and heartbeats meanwhile.

Health follows kube-proxy's ``ProxierHealthServer``: the proxy is unhealthy when a change has
been queued for longer than ``health_timeout`` without a successful sync since. Metrics use
kube-proxy's names, so dashboards built for it read ours: sync duration (full/partial), the
last-synced and last-queued timestamps, sync failures, pending changes, and network
programming latency, measured from each changed EndpointSlice's
``endpoints.kubernetes.io/last-change-trigger-time`` to the sync that applied it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from svcnet.proxy.conntrack import Conntrack, Frontend, plan_cleanup, udp_frontends
from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.nft import SubprocessNft
from svcnet.proxy.proxier import Proxier, SyncResult
from svcnet.proxy.ruleset import ProxyConfig

log = logging.getLogger(__name__)

Obj = dict[str, Any]
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


def node_info(node: Obj, fallback_ip: str = "") -> NodeInfo:
    """The proxy's view of its Node: name, addresses that serve NodePorts, zone."""
    meta = node.get("metadata") or {}
    addresses = tuple(a["address"] for a in (node.get("status") or {}).get("addresses") or []
                      if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address"))
    if not addresses and fallback_ip:
        addresses = (fallback_ip,)
    zone = (meta.get("labels") or {}).get("topology.kubernetes.io/zone")
    return NodeInfo(str(meta.get("name", "")), addresses, zone)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sync_duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds", buckets=_BUCKETS, registry=r)
        self.full_sync_duration = Histogram(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs", buckets=_BUCKETS,
            registry=r)
        self.partial_sync_duration = Histogram(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs", buckets=_BUCKETS,
            registry=r)
        self.programming = Histogram(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds", buckets=_BUCKETS, registry=r)
        self.last_synced = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                                 "The last time proxy rules were successfully synced",
                                 registry=r)
        self.last_queued = Gauge("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                                 "The last time a sync of proxy rules was queued", registry=r)
        self.failures = Counter("kubeproxy_sync_proxy_rules_nftables_sync_failures",
                                "Cumulative proxy nftables sync failures", registry=r)
        self.pending = Gauge("kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                             "Pending proxy rules changes (1 while a sync is queued)",
                             registry=r)


class NodeProxy:
    def __init__(self, netns: str, *, node_ip: str = "",
                 cluster_cidrs: Sequence[str] = ("10.244.0.0/16",),
                 health_timeout: float = 60.0) -> None:
        self.netns = netns
        self.node_ip = node_ip
        self.proxier = Proxier(SubprocessNft(netns),
                               ProxyConfig(cluster_cidrs=tuple(cluster_cidrs)))
        self.last: SyncResult | None = None
        self.metrics = ProxyMetrics()
        self.health_timeout = health_timeout
        self.conntrack = Conntrack(netns)
        self._udp: dict[Frontend, frozenset[str]] | None = None
        self._queued_at: float | None = None
        self._synced_at: float = 0.0
        self._seen_slices: dict[str, str] = {}

    def note_queued(self) -> None:
        """A change arrived that the next sync will apply."""
        now = time.time()
        if self._queued_at is None:
            self._queued_at = now
        self.metrics.last_queued.set(now)
        self.metrics.pending.set(1)

    def metrics_text(self) -> bytes:
        return generate_latest(self.metrics.registry)

    def healthy(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return not (self._queued_at is not None and now - self._queued_at > self.health_timeout
                    and self._synced_at < self._queued_at)

    async def sync(self, services: list[Obj], endpoint_slices: list[Obj], node: Obj,
                   full: bool = False) -> None:
        info = node_info(node, self.node_ip)
        if full:
            self.proxier.applied = None  # rewrite the table from scratch (atomically)
        queued = self._queued_at
        try:
            result = await asyncio.to_thread(self.proxier.sync, services, endpoint_slices,
                                             info)
        except Exception:
            self.metrics.failures.inc()
            raise
        now = time.time()
        self.last = result
        self._synced_at = now
        if queued is not None and self._queued_at == queued:
            self._queued_at = None
            self.metrics.pending.set(0)
        self.metrics.last_synced.set(now)
        self.metrics.sync_duration.observe(result.duration)
        (self.metrics.full_sync_duration if result.full
         else self.metrics.partial_sync_duration).observe(result.duration)
        self._observe_programming(endpoint_slices, now)
        # Only after the rules changed: a deleted entry must not be re-created to the old
        # endpoint by a packet that still saw the old rules.
        udp = udp_frontends(services, endpoint_slices, info.name)
        if self._udp is not None:
            cleared = await self.conntrack.apply(plan_cleanup(self._udp, udp))
            if cleared:
                log.info("cleared %d stale UDP conntrack entries", cleared)
        self._udp = udp
        if result.changed:
            log.info("proxy sync (%s) in %.1f ms: %s", "full" if result.full else "partial",
                     result.duration * 1000, dict(result.counts))

    def _observe_programming(self, slices: list[Obj], now: float) -> None:
        seen: dict[str, str] = {}
        for s in slices:
            meta = s.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            rv = str(meta.get("resourceVersion", ""))
            seen[key] = rv
            if self._seen_slices.get(key) == rv or not self._seen_slices:
                continue
            trigger = (meta.get("annotations") or {}).get(TRIGGER_TIME)
            if trigger:
                try:
                    at = datetime.fromisoformat(trigger.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    continue
                self.metrics.programming.observe(max(now - at, 0.0))
        self._seen_slices = seen
