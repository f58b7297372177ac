"""Cluster DNS as a component: informers on Services and EndpointSlices feed the server's zone.

Theory of operation
-------------------
:class:`DNSService` talks to the API like any other client. Two informers (an
:class:`ObjectSource` each: a real :class:`~svcnet.client.informer.Informer`, or a
:class:`StaticSource` that tests and benchmarks fill by hand) keep caches of all Services and all
EndpointSlices, the latter indexed by the Service they belong to (label
``kubernetes.io/service-name``). Their handlers only note the key ``namespace/name`` of the
Service whose records may have changed, and wake the zone loop, which

1. waits until both caches have synced, then publishes the first zone at once; until then the
   server answers SERVFAIL for the cluster zone, since an empty zone would say NXDOMAIN for
   names that exist and clients would cache that;
2. after that, on every change waits ``debounce`` seconds (50 ms by default) so that a burst (a
   Deployment rolling, a relist) becomes one update, then re-derives the records of each noted
   Service from the caches (level-triggered: the latest Service and all its slices, or its
   removal when it is gone) in a :class:`~svcnet.dns.records.ZoneBuilder`, takes an immutable
   snapshot and hands it to ``publish`` (the server's ``set_zone``, which also empties its
   answer cache). Changes that arrive meanwhile are noted for the next round.

The builder's result is by construction what the pure :func:`~svcnet.dns.records.build_zone`
gives for the same caches (the tests check it), but one change costs that Service's records plus
copying the merged maps: ~10 ms at 10k Services against ~0.5 s for a full build
(``bench/dns.py``). Big batches (the initial list) are applied in a worker thread, so the event
loop keeps answering queries from the old zone (or SERVFAIL) meanwhile; that is safe because the
objects are snapshotted on the loop first and informers replace cached objects rather than
mutate them. If an update fails (an object nobody foresaw), the last good zone stays and the
next change rebuilds everything from scratch.

:class:`ClusterDNS` wires a :class:`~svcnet.dns.server.DNSServer` and a :class:`DNSService`
together, and :func:`run_dns` runs that until SIGTERM/SIGINT: the function to call for a system
pod or a CLI subcommand.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from svcnet.client.informer import EventHandler, Indexer, Informer, object_key
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import ENDPOINTSLICES, SERVICES, RESTClient
from svcnet.dns.records import (
    DEFAULT_TTL,
    DEFAULT_ZONE,
    SERVICE_NAME_LABEL,
    Zone,
    ZoneBuilder,
)
from svcnet.dns.server import (
    DEFAULT_FORWARD_TIMEOUT,
    Address,
    DNSServer,
    parse_listen,
    read_resolv_conf,
)
from svcnet.util.clock import Clock, RealClock

__all__ = [
    "DEFAULT_DEBOUNCE",
    "SERVICE_INDEX",
    "ClusterDNS",
    "DNSService",
    "ObjectSource",
    "RebuildStats",
    "StaticSource",
    "kube_dns_endpoint_slice",
    "kube_dns_ip",
    "kube_dns_service",
    "run_dns",
    "slice_service_key",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_DEBOUNCE: Final = 0.05
THREAD_THRESHOLD: Final = 500
"""Update the zone in a worker thread when this many Services changed at once (the initial sync,
a relist): ~20 ms of work and more. Below it the thread hop costs more than it saves."""
KUBE_DNS_OFFSET: Final = 10
"""``kube-system/kube-dns``'s ClusterIP is this far into the primary service CIDR (kubeadm's
choice: ``10.96.0.10``, ``fd00:10:96::a``)."""


def kube_dns_ip(service_cidr: str) -> str:
    """The kube-dns ClusterIP of a cluster whose primary service CIDR is ``service_cidr``."""
    return str(ipaddress.ip_network(service_cidr).network_address + KUBE_DNS_OFFSET)


KUBE_DNS_IP: Final = kube_dns_ip("10.96.0.0/12")


SERVICE_INDEX: Final = "dns-service"
"""Index on EndpointSlices: ``namespace/service-name`` of the Service a slice belongs to."""


def slice_service_key(obj: Obj) -> list[str]:
    """Index function for :data:`SERVICE_INDEX` (none for slices without the label)."""
    meta = obj.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    ns = meta.get("namespace")
    return [f"{ns}/{svc}"] if svc and ns else []


class ObjectSource(Protocol):
    """What DNSService needs of an informer (:class:`~svcnet.client.informer.Informer` fits)."""

    @property
    def indexer(self) -> Indexer: ...

    def add_handler(self, handler: EventHandler) -> None: ...

    def has_synced(self) -> bool: ...

    async def wait_for_sync(self) -> None: ...

    def start(self) -> Any: ...

    async def stop(self) -> None: ...


class StaticSource:
    """An in-memory :class:`ObjectSource`: the fake beside the informer, behaving like it.

    Objects go in with :meth:`put`/:meth:`delete`, which update the indexer and notify
    handlers as an informer would; it counts as synced once :meth:`start` ran.
    """

    def __init__(self, objects: Iterable[Obj] = ()) -> None:
        self._indexer = Indexer()
        for o in objects:
            self._indexer.upsert(object_key(o), o)
        self._handlers: list[EventHandler] = []
        self._synced = asyncio.Event()

    @property
    def indexer(self) -> Indexer:
        return self._indexer

    def list(self) -> list[Obj]:
        return self._indexer.list()

    def add_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)
        if handler.on_add is not None:
            for obj in self._indexer.list():
                handler.on_add(obj)

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self) -> None:
        await self._synced.wait()

    def start(self) -> None:
        self._synced.set()

    async def stop(self) -> None:
        return None

    def put(self, obj: Obj) -> None:
        old = self._indexer.upsert(object_key(obj), obj)
        for h in self._handlers:
            if old is None and h.on_add is not None:
                h.on_add(obj)
            elif old is not None and h.on_update is not None:
                h.on_update(old, obj)

    def delete(self, key: str) -> None:
        old = self._indexer.delete(key)
        if old is None:
            return
        for h in self._handlers:
            if h.on_delete is not None:
                h.on_delete(old)


@dataclass(slots=True)
class RebuildStats:
    rebuilds: int = 0
    last_seconds: float = 0.0
    """Wall time of the last zone update (applying changes and taking the snapshot)."""
    last_changed: int = 0
    """How many Services the last update recomputed."""
    total_seconds: float = 0.0
    failures: int = 0
    services: int = 0
    names: int = 0


class DNSService:
    """Keeps ``publish``-ed zones in step with the Services and EndpointSlices (module doc)."""

    def __init__(self, services: ObjectSource, slices: ObjectSource,
                 publish: Callable[[Zone], None], *, zone: str = DEFAULT_ZONE,
                 ttl: int = DEFAULT_TTL, pods: bool = True, debounce: float = DEFAULT_DEBOUNCE,
                 clock: Clock | None = None,
                 thread_threshold: int = THREAD_THRESHOLD) -> None:
        self.services = services
        self.slices = slices
        self.debounce = debounce
        self.thread_threshold = thread_threshold
        self.builder = ZoneBuilder(zone, ttl=ttl, pods=pods)
        self._publish = publish
        self._clock: Clock = clock or RealClock()
        self._dirty: set[str] = set()
        """Keys (``namespace/name``) of Services whose records may have changed."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.zone: Zone | None = None
        """The last zone published (None before the first)."""
        self.stats = RebuildStats()
        self.published = asyncio.Event()
        """Set once the first zone is out (readiness)."""
        slices.indexer.add_index(SERVICE_INDEX, slice_service_key)
        services.add_handler(EventHandler(on_add=self._service_changed,
                                          on_update=self._service_updated,
                                          on_delete=self._service_changed))
        slices.add_handler(EventHandler(on_add=self._slice_changed,
                                        on_update=self._slice_updated,
                                        on_delete=self._slice_changed))

    @classmethod
    def from_client(cls, client: RESTClient, publish: Callable[[Zone], None], *,
                    zone: str = DEFAULT_ZONE, ttl: int = DEFAULT_TTL, pods: bool = True,
                    debounce: float = DEFAULT_DEBOUNCE,
                    clock: Clock | None = None) -> DNSService:
        """The usual wiring: informers on all Services and EndpointSlices over ``client``."""
        return cls(Informer(client, SERVICES, clock=clock, name="dns-services"),
                   Informer(client, ENDPOINTSLICES, clock=clock, name="dns-endpointslices",
                            indexers={SERVICE_INDEX: slice_service_key}),
                   publish, zone=zone, ttl=ttl, pods=pods, debounce=debounce, clock=clock)

    # -- handlers: note the Service key, nothing else ---------------------------------------

    def _mark(self, keys: Iterable[str]) -> None:
        self._dirty.update(keys)
        self._wake.set()

    def _service_changed(self, obj: Obj) -> None:
        self._mark((object_key(obj),))

    def _service_updated(self, old: Obj, new: Obj) -> None:
        # Periodic resyncs deliver (obj, obj): nothing changed, nothing to rebuild.
        if old is not new:
            self._mark((object_key(new),))

    def _slice_changed(self, obj: Obj) -> None:
        self._mark(slice_service_key(obj))

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        if old is not new:
            # Both owners: a relabelled slice leaves one Service and joins another.
            self._mark({*slice_service_key(old), *slice_service_key(new)})

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.services.start()
        self.slices.start()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dns-zone")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.services.stop()
        await self.slices.stop()

    def has_synced(self) -> bool:
        return self.services.has_synced() and self.slices.has_synced()

    async def _run(self) -> None:
        await self.services.wait_for_sync()
        await self.slices.wait_for_sync()
        while True:
            self._wake.clear()
            try:
                await self.rebuild()
            except Exception:
                # A malformed object we did not foresee: keep serving the last good zone and
                # rebuild everything on the next change, in case the builder is half-updated.
                self.stats.failures += 1
                log.exception("cluster DNS zone update failed; serving the previous zone")
                self._dirty.update(self.services.indexer.list_keys())
                self.builder = ZoneBuilder(self.builder.origin, ttl=self.builder.ttl,
                                           pods=self.builder.pods)
            await self._wake.wait()
            if self.debounce > 0:
                await self._clock.sleep(self.debounce)

    async def rebuild(self) -> Zone:
        """Apply the pending changes to the zone and publish it."""
        keys, self._dirty = self._dirty, set()
        # Snapshot the objects here, on the loop: the informers only touch their caches on
        # the loop, and replace objects rather than mutate them, so the builder may then run
        # on another thread.
        changes = [(key, self.services.indexer.get(key),
                    self.slices.indexer.by_index(SERVICE_INDEX, key)) for key in keys]
        started = time.perf_counter()
        if len(changes) >= self.thread_threshold:
            zone = await asyncio.to_thread(self._apply, changes)
        else:
            zone = self._apply(changes)
        elapsed = time.perf_counter() - started
        st = self.stats
        st.rebuilds += 1
        st.last_seconds = elapsed
        st.last_changed = len(changes)
        st.total_seconds += elapsed
        st.services = len(self.builder)
        st.names = len(zone)
        self.zone = zone
        self._publish(zone)
        self.published.set()
        log.debug("zone %d: %d Services changed, %d in all, %d names, %.1f ms", zone.serial,
                  len(changes), st.services, len(zone), elapsed * 1000)
        return zone

    def _apply(self, changes: list[tuple[str, Obj | None, list[Obj]]]) -> Zone:
        for key, svc, slices in changes:
            if svc is None:
                self.builder.remove_service(key)
            else:
                self.builder.set_service(svc, slices)
        return self.builder.zone()


class ClusterDNS:
    """A DNS server on ``listen`` serving the zone a :class:`DNSService` maintains."""

    def __init__(self, client: RESTClient, *, listen: str = "0.0.0.0:53",
                 zone: str = DEFAULT_ZONE, upstreams: Iterable[Address] = (),
                 ttl: int = DEFAULT_TTL, pods: bool = True,
                 forward_timeout: float = DEFAULT_FORWARD_TIMEOUT,
                 debounce: float = DEFAULT_DEBOUNCE) -> None:
        self.client = client
        self.listen = parse_listen(listen)
        self.server = DNSServer.create(zone, upstreams, forward_timeout=forward_timeout)
        self.service = DNSService.from_client(client, self.server.set_zone, zone=zone, ttl=ttl,
                                              pods=pods, debounce=debounce)

    @property
    def address(self) -> Address:
        return self.server.address

    async def start(self) -> Address:
        """Listen first (queries for other names work at once), then start the informers."""
        address = await self.server.start(*self.listen)
        self.service.start()
        return address

    async def stop(self) -> None:
        await self.service.stop()
        await self.server.close()


async def run_dns(kubeconfig: str | Path | None = None, listen: str = "0.0.0.0:53",
                  zone: str = DEFAULT_ZONE,
                  upstream_resolv_conf: str | Path | None = "/etc/resolv.conf", *,
                  ttl: int = DEFAULT_TTL, pods: bool = True,
                  upstreams: Iterable[Address] | None = None,
                  ready: Callable[[Address], None] | None = None) -> None:
    """Serve cluster DNS until SIGTERM/SIGINT (or cancellation).

    ``kubeconfig``: the API server to watch (kubectl's lookup when None). ``listen``:
    ``host:port``. ``upstream_resolv_conf``: where the upstream resolvers for other names are
    read from (None: no forwarding, SERVFAIL for other names); ``upstreams`` overrides it with
    explicit ``(host, port)`` pairs. ``ready`` is called with the bound address.
    """
    config = load_kubeconfig(kubeconfig)
    servers = list(upstreams) if upstreams is not None else read_resolv_conf(
        upstream_resolv_conf)
    async with RESTClient.from_kubeconfig(config, user_agent="svcnet-dns/0.1.0") as client:
        dns = ClusterDNS(client, listen=listen, zone=zone, upstreams=servers, ttl=ttl,
                         pods=pods)
        # Handlers before ``ready``: whoever is told we are up may stop us at once.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        try:
            address = await dns.start()
            if ready is not None:
                ready(address)
            await stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await dns.stop()


def kube_dns_service(cluster_ip: str = KUBE_DNS_IP, *,
                     selector: Mapping[str, str] | None = None) -> Obj:
    """The ``kube-system/kube-dns`` Service that pods' resolv.conf points at (kubeadm's,
    ports and labels included). Without ``selector`` it is selectorless: whoever runs the DNS
    server writes its EndpointSlice."""
    spec: Obj = {
        "type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                  {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}],
    }
    if selector:
        spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                    "kubernetes.io/cluster-service": "true"}},
            "spec": spec}


def kube_dns_endpoint_slice(address: str, *, port: int = 53, node_name: str = "") -> Obj:
    """An EndpointSlice putting the DNS server at ``address:port`` behind the selectorless
    :func:`kube_dns_service`, so kube-proxy sends 10.96.0.10:53 (UDP and TCP) there. Write it
    only once the server answers (``ClusterDNS.service.published``), so that pods are not sent
    to a server that still says SERVFAIL."""
    endpoint: Obj = {"addresses": [address], "conditions": {"ready": True}}
    if node_name:
        endpoint["nodeName"] = node_name
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {SERVICE_NAME_LABEL: "kube-dns",
                                    "endpointslice.kubernetes.io/managed-by": "svcnet-dns",
                                    "k8s-app": "kube-dns"}},
            "addressType": "IPv6" if ":" in address else "IPv4",
            "endpoints": [endpoint],
            "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                      {"name": "dns-tcp", "port": port, "protocol": "TCP"}]}
