"""The service proxy as the node agent runs it: the Proxier, driven asynchronously, with
kube-proxy's metrics and health.

The agent hands over its informer caches (an :class:`InformerSource`) and the keys of the
Services whose Service or EndpointSlices changed since the last sync, collected from informer
events as kube-proxy's change trackers do (:func:`changed_key`); :meth:`NodeProxy.sync` plans
and applies in a worker thread, so that the agent's event loop keeps serving pods and
heartbeats meanwhile. Small transactions go through libnftables in-process, big ones through
an ``nft`` process (:class:`~svcnet.proxy.nft.libnft.NodeNft`).

Dual stack: one :class:`~svcnet.proxy.proxier.Proxier` per IP family of the cluster CIDRs
(kube-proxy's ``MetaProxier`` over an IPv4 and an IPv6 proxier), each with its own table
(``ip svcnet``, ``ip6 svcnet``) and its own UDP conntrack snapshot; a sync runs them one after
the other in the same worker thread.

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
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from svcnet.api.endpointslices import LABEL_TOPOLOGY_ZONE
from svcnet.client.informer import Informer
from svcnet.proxy.changes import ProxySource, service_key, slice_service_key
from svcnet.proxy.conntrack import Conntrack, Frontend, plan_cleanup, udp_frontends
from svcnet.proxy.counters import COUNTED_MAPS, FRESH, counter_rows
from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.libnft import NodeNft
from svcnet.proxy.nft.nft import NftRunner
from svcnet.proxy.proxier import Proxier, SyncResult
from svcnet.proxy.ruleset import ProxyConfig

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICE_INDEX = "service"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


def node_info(node: Obj, fallback_ip: str = "") -> NodeInfo:
    """The proxy's view of its Node: name, addresses that serve NodePorts, zone."""
    meta = node.get("metadata") or {}
    addresses = tuple(a["address"] for a in (node.get("status") or {}).get("addresses") or []
                      if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address"))
    if not addresses and fallback_ip:
        addresses = (fallback_ip,)
    zone = (meta.get("labels") or {}).get(LABEL_TOPOLOGY_ZONE)
    return NodeInfo(str(meta.get("name", "")), addresses, zone)


def slice_service_index(endpoint_slice: Obj) -> list[str]:
    """Index function for an EndpointSlice informer: the key of its Service."""
    key = slice_service_key(endpoint_slice)
    return [key] if key is not None else []


def changed_key(obj: Mapping[str, Any]) -> str | None:
    """The Service key a Service or EndpointSlice event changes (None: neither)."""
    if obj.get("kind") == "EndpointSlice" or "endpoints" in obj or "addressType" in obj:
        return slice_service_key(obj)
    return service_key(obj)


class InformerSource:
    """A :class:`~svcnet.proxy.changes.ProxySource` over the agent's informer caches; the
    EndpointSlice informer needs the :data:`SERVICE_INDEX` index (:func:`slice_service_index`)."""

    def __init__(self, services: Informer, slices: Informer) -> None:
        self._services = services
        self._slices = slices

    def service(self, key: str) -> Obj | None:
        return self._services.get(key)

    def slices(self, key: str) -> Sequence[Obj]:
        return self._slices.by_index(SERVICE_INDEX, key)

    def keys(self) -> Iterable[str]:
        return {*self._services.indexer.list_keys(),
                *self._slices.indexer.index_values(SERVICE_INDEX)}


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


def cidr_families(cidrs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The cluster CIDRs by IP family, the primary (the first CIDR's) first: an IPv6 cluster
    CIDR alone makes an IPv6-only proxy, with only the ip6 table (no CIDR at all: an IPv4-only
    proxy)."""
    by_family: dict[str, list[str]] = {}
    for cidr in cidrs:
        family = "IPv6" if ":" in cidr else "IPv4"
        by_family.setdefault(family, []).append(cidr)
    return {f: tuple(c) for f, c in by_family.items()} or {"IPv4": ()}


class NodeProxy:
    def __init__(self, netns: str, *, node_ip: str = "",
                 cluster_cidrs: Sequence[str] = ("10.244.0.0/16",),
                 health_timeout: float = 60.0, runner: NftRunner | None = None,
                 conntrack: Conntrack | None = None, traffic_counters: bool = True) -> None:
        self.netns = netns
        self.node_ip = node_ip
        self.nft = runner if runner is not None else NodeNft(netns)
        #: One proxier per IP family, the primary family's first: it is ``proxier``.
        self.proxiers = {family: Proxier(self.nft, ProxyConfig(family=family,
                                                               cluster_cidrs=cidrs,
                                                               traffic_counters=traffic_counters))
                         for family, cidrs in cidr_families(cluster_cidrs).items()}
        self.proxier = next(iter(self.proxiers.values()))
        self._counted: tuple[float, list[list[Any]]] | None = None
        #: The last sync's result of ``proxier`` (``results``: of every family).
        self.last: SyncResult | None = None
        self.results: dict[str, SyncResult] = {}
        self.metrics = ProxyMetrics()
        self.health_timeout = health_timeout
        self.conntrack = conntrack if conntrack is not None else Conntrack(netns)
        #: Per family: UDP frontends -> endpoint addresses, per Service key (None before the
        #: first sync).
        self._udp: dict[str, dict[str, dict[Frontend, frozenset[str]]]] | None = None
        self._queued_at: float | None = None
        self._synced_at: float = 0.0
        #: Service key -> its EndpointSlices' names -> resourceVersion (None: no sync yet).
        self._seen_slices: dict[str, dict[str, str]] | None = None

    def close(self) -> None:
        close = getattr(self.nft, "close", None)
        if close is not None:
            close()

    def note_queued(self) -> None:
        """A change arrived that the next sync will apply."""
        now = time.time()
        if self._queued_at is None:
            self._queued_at = now
        self.metrics.last_queued.set(now)
        self.metrics.pending.set(1)

    def metrics_text(self) -> bytes:
        return generate_latest(self.metrics.registry)

    async def connection_counts(self) -> list[list[Any]] | None:
        """The data plane's connection counters (svcnet.proxy.counters), None when off."""
        lister = getattr(self.nft, "process", self.nft)
        configs = [p.config for p in self.proxiers.values()]
        if not self.proxier.config.traffic_counters or not hasattr(lister, "list_map_json"):
            return None
        now = time.monotonic()
        if self._counted is None or now - self._counted[0] >= FRESH:
            listings = await asyncio.to_thread(lambda: [
                lister.list_map_json(c.syntax.ip, c.table, name)
                for c in configs for name in COUNTED_MAPS])
            self._counted = (now, counter_rows(listings))
        return self._counted[1]

    def healthy(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return not (self._queued_at is not None and now - self._queued_at > self.health_timeout
                    and self._synced_at < self._queued_at)

    async def sync(self, source: ProxySource, node: Obj,
                   changed: Collection[str] | None = None, full: bool = False) -> None:
        """Apply what changed: the Services ``changed`` (keys; None: any may have), or
        rewrite the whole table if ``full``."""
        info = node_info(node, self.node_ip)
        if full:
            for proxier in self.proxiers.values():
                proxier.invalidate()  # rewrite the tables from scratch (atomically)
            changed = None
        queued = self._queued_at
        try:
            results = await asyncio.to_thread(self._sync_all, source, info, changed)
        except Exception:
            self.metrics.failures.inc()
            raise
        now = time.time()
        self.results = results
        self.last = results[self.proxier.config.family]
        self._synced_at = now
        if queued is not None and self._queued_at == queued:
            self._queued_at = None
            self.metrics.pending.set(0)
        self.metrics.last_synced.set(now)
        duration = sum(r.duration for r in results.values())
        self.metrics.sync_duration.observe(duration)
        (self.metrics.full_sync_duration if any(r.full for r in results.values())
         else self.metrics.partial_sync_duration).observe(duration)
        everything = changed is None or self._udp is None
        keys = list(source.keys()) if changed is None or everything else list(changed)
        self._observe_programming(source, keys, full=everything, now=now)
        # Only after the rules changed: a deleted entry must not be re-created to the old
        # endpoint by a packet that still saw the old rules.
        await self._clean_conntrack(source, keys, info, full=everything)
        for family, result in results.items():
            if result.changed or result.adopted:
                kind = ("full" if result.full else "partial") + (
                    ", adopted the table in the kernel" if result.adopted else "") + (
                    ", fast" if result.fast else "")
                log.info("proxy sync of %s (%s) in %.1f ms: %s", family, kind,
                         result.duration * 1000, dict(result.counts))

    def _sync_all(self, source: ProxySource, info: NodeInfo,
                  changed: Collection[str] | None) -> dict[str, SyncResult]:
        """Sync every family's table; a family that fails does not keep the others from
        syncing (the first error is raised after all were tried)."""
        results: dict[str, SyncResult] = {}
        error: Exception | None = None
        for family, proxier in self.proxiers.items():
            try:
                results[family] = proxier.sync_source(source, info, changed)
            except Exception as err:
                error = error or err
        if error is not None:
            raise error
        return results

    async def _clean_conntrack(self, source: ProxySource, keys: list[str], node: NodeInfo, *,
                               full: bool) -> None:
        first = self._udp is None
        snapshots = self._udp if self._udp is not None else {}
        cleared = 0
        for family in self.proxiers:
            udp = {key: udp_frontends([svc] if (svc := source.service(key)) else [],
                                      source.slices(key), node.name, node.zone, family)
                   for key in keys}
            if first:
                snapshots[family] = {k: v for k, v in udp.items() if v}
                continue
            known = snapshots.setdefault(family, {})
            family_keys = sorted(set(keys) | set(known)) if full else keys
            before: dict[Frontend, frozenset[str]] = {}
            after: dict[Frontend, frozenset[str]] = {}
            for key in family_keys:
                before.update(known.pop(key, {}))
                if udp.get(key):
                    known[key] = udp[key]
                    after.update(udp[key])
            cleared += await self.conntrack.apply(plan_cleanup(before, after, family))
        self._udp = snapshots
        if cleared:
            log.info("cleared %d stale UDP conntrack entries", cleared)

    def _observe_programming(self, source: ProxySource, keys: list[str], *, full: bool,
                             now: float) -> None:
        """Observe network programming latency for the EndpointSlices of ``keys`` that
        changed since the last sync (none on the first: their trigger times are old)."""
        first = self._seen_slices is None
        seen = self._seen_slices or {}
        fresh: dict[str, dict[str, str]] = {} if full else seen
        for key in keys:
            old = seen.get(key, {})
            new: dict[str, str] = {}
            for s in source.slices(key):
                meta = s.get("metadata") or {}
                name, rv = str(meta.get("name")), str(meta.get("resourceVersion", ""))
                new[name] = rv
                if first or old.get(name) == rv:
                    continue
                trigger = (meta.get("annotations") or {}).get(TRIGGER_TIME)
                if trigger:
                    try:
                        at = datetime.fromisoformat(trigger.replace("Z", "+00:00")).timestamp()
                    except ValueError:
                        continue
                    self.metrics.programming.observe(max(now - at, 0.0))
            if new:
                fresh[key] = new
            else:
                fresh.pop(key, None)
        self._seen_slices = fresh
