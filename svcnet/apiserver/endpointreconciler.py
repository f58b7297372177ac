"""The endpoints of ``default/kubernetes``: every live API server, as leases say.

Theory of operation
-------------------
Follows kube-apiserver's lease endpoint reconciler (pkg/controlplane/reconcilers/lease.go,
``--endpoint-reconciler-type=lease``): each server keeps a lease saying where it serves, and
each server, on its bootstrap period (10 s), renews its own lease and then makes
``default/kubernetes``'s Endpoints and EndpointSlice list exactly the servers whose leases are
live. Upstream keeps those leases as storage keys with an etcd TTL (15 s); here they are
``coordination.k8s.io/v1`` Leases in ``kube-system`` (``apiserver-<hash of the server's
id>``, label :data:`LEASE_LABEL`, the ``IP:port`` in the :data:`ADDRESS_ANNOTATION`
annotation), renewed every period with a duration of :data:`LEASE_SECONDS`; one is live while
its ``renewTime`` plus its duration is in the future by the reconciling server's clock (so the
servers' clocks must agree to within a few seconds, as with NTP). A server that stops cleanly
deletes its lease and reconciles at once (upstream's ``RemoveEndpoints``); one that dies drops
out once its lease has expired, at the next period of any other server.

Servers listening on loopback only keep no lease (an endpoint cannot be a loopback address).
Upstream expects every server to serve on the same port; here servers may differ, so the
endpoints are grouped by port and address family: one Endpoints subset per port, and one
EndpointSlice per (family, port) group, the first named ``kubernetes`` and any other
``kubernetes-<family>-<port>``. Writes happen only when the wanted objects differ from the
stored ones, so servers that agree do not write, and all of them agree once their clocks do.

:func:`plan` is pure; :class:`EndpointReconciler` reads and writes through the registries.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from svcnet.api.errors import StatusError
from svcnet.client.leaderelection import micro_time
from svcnet.registry.generic import Registry
from svcnet.util.clock import Clock, parse_time

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-system"
LEASE_LABEL = "svcnet.io/apiserver-endpoint"
ADDRESS_ANNOTATION = "svcnet.io/advertise-address"
LEASE_SECONDS = 15
SERVICE_NAME = "kubernetes"
SERVICE_NAMESPACE = "default"


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    port: int
    ip: str

    @property
    def family(self) -> str:
        return "IPv6" if ":" in self.ip else "IPv4"

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def lease_name(server_id: str) -> str:
    return "apiserver-" + hashlib.sha256(server_id.encode()).hexdigest()[:16]


def parse_endpoint(value: str) -> Endpoint | None:
    host, _, port = value.rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
        return Endpoint(int(port), str(ip)) if not ip.is_loopback else None
    except ValueError:
        return None


def live_endpoints(leases: Sequence[Mapping[str, Any]], now: datetime) -> list[Endpoint]:
    """The endpoints of the leases that have not expired at ``now``, sorted, without
    duplicates."""
    live = set()
    for lease in leases:
        spec = lease.get("spec") or {}
        renewed = parse_time(spec.get("renewTime"))
        seconds = int(spec.get("leaseDurationSeconds") or 0)
        if renewed is None or renewed + timedelta(seconds=seconds) <= now:
            continue
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        endpoint = parse_endpoint(str(annotations.get(ADDRESS_ANNOTATION, "")))
        if endpoint is not None:
            live.add(endpoint)
    return sorted(live)


def _port(port: int) -> Obj:
    return {"name": "https", "port": port, "protocol": "TCP"}


@dataclass(frozen=True)
class Plan:
    endpoints: Obj
    slices: dict[str, Obj]
    """Wanted EndpointSlices by name; any other slice of the Service is deleted."""


def plan(endpoints: Sequence[Endpoint]) -> Plan:
    """The Endpoints and EndpointSlices of ``default/kubernetes`` for these endpoints."""
    by_port: dict[int, list[str]] = {}
    by_group: dict[tuple[str, int], list[str]] = {}
    for e in sorted(endpoints):
        by_port.setdefault(e.port, []).append(e.ip)
        by_group.setdefault((e.family, e.port), []).append(e.ip)
    meta = {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE}
    subsets = [{"addresses": [{"ip": ip} for ip in ips], "ports": [_port(port)]}
               for port, ips in by_port.items()]
    slices = {}
    for i, ((family, port), ips) in enumerate(by_group.items()):
        name = SERVICE_NAME if i == 0 else f"{SERVICE_NAME}-{family.lower()}-{port}"
        slices[name] = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": SERVICE_NAMESPACE,
                         "labels": {"kubernetes.io/service-name": SERVICE_NAME}},
            "addressType": family,
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [_port(port)]}
    return Plan({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
                 "subsets": subsets}, slices)


def _differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a stored object's content differs from the wanted one (metadata aside,
    but for labels)."""
    labels = (wanted.get("metadata") or {}).get("labels") or {}
    if any((current.get("metadata") or {}).get("labels", {}).get(k) != v
           for k, v in labels.items()):
        return True
    return any((current.get(k) or None) != (v or None) for k, v in wanted.items()
               if k not in ("metadata", "apiVersion", "kind"))


class EndpointReconciler:
    """Keeps this server's lease and ``default/kubernetes``'s endpoints (module docstring)."""

    def __init__(self, registries: Mapping[str, Registry], server_id: str,
                 endpoint: Endpoint | None, clock: Clock) -> None:
        self.leases = registries["leases.coordination.k8s.io"]
        self.endpoints = registries["endpoints"]
        self.slices = registries["endpointslices.discovery.k8s.io"]
        self.name = lease_name(server_id)
        self.server_id = server_id
        self.endpoint = endpoint
        self.clock = clock

    async def renew_lease(self) -> None:
        if self.endpoint is None:
            return
        spec = {"holderIdentity": self.server_id, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro_time(self.clock.now())}
        lease: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                      "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE,
                                   "labels": {LEASE_LABEL: "true"},
                                   "annotations": {ADDRESS_ANNOTATION: str(self.endpoint)}},
                      "spec": spec}
        try:
            current = await self.leases.get(LEASE_NAMESPACE, self.name)
        except StatusError as e:
            if e.code != 404:
                raise
            await self.leases.create(LEASE_NAMESPACE, lease)
            return
        lease["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await self.leases.update(LEASE_NAMESPACE, self.name, lease)

    async def remove_lease(self) -> None:
        with contextlib.suppress(StatusError):
            await self.leases.delete(LEASE_NAMESPACE, self.name)

    async def reconcile(self) -> None:
        page = await self.leases.list(LEASE_NAMESPACE)
        ours = [lease for lease in page.items
                if (lease["metadata"].get("labels") or {}).get(LEASE_LABEL) == "true"]
        wanted = plan(live_endpoints(ours, self.clock.now()))
        await self._apply(self.endpoints, wanted.endpoints, create=bool(wanted.slices))
        # Only the slices named kubernetes*: a range read, not all of default's slices.
        existing = {s["metadata"]["name"]: s for s in (await self.slices.list(
            SERVICE_NAMESPACE, name_prefix=SERVICE_NAME)).items
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
            == SERVICE_NAME}
        for name, obj in wanted.slices.items():
            await self._apply(self.slices, obj, create=True, current=existing.get(name))
        for name in existing.keys() - wanted.slices.keys():
            with contextlib.suppress(StatusError):
                await self.slices.delete(SERVICE_NAMESPACE, name)

    async def _apply(self, registry: Registry, obj: Obj, *, create: bool,
                     current: Obj | None = None) -> None:
        name = obj["metadata"]["name"]
        if current is None:
            try:
                current = await registry.get(SERVICE_NAMESPACE, name)
            except StatusError as e:
                if e.code != 404:
                    raise
        if current is None:
            if create:
                with contextlib.suppress(StatusError):  # another server made it meanwhile
                    await registry.create(SERVICE_NAMESPACE, obj)
            return
        if not _differs(current, obj):
            return
        obj = {**obj, "metadata": {**obj["metadata"],
                                   "resourceVersion": current["metadata"]["resourceVersion"]}}
        with contextlib.suppress(StatusError):  # a conflict: the next period sees it
            await registry.update(SERVICE_NAMESPACE, name, obj)
