"""Repair: make allocations agree with the Services that are actually stored.

Kubernetes runs this at start-up and every few minutes (pkg/registry/core/service/ipallocator/
controller/repair.go and portallocator/controller/repair.go). Allocation and the Service write
are separate store writes, so a crash between them can leave

* a **leak**: an allocation whose owner was never written (or has since been deleted). It is
  released once it is older than ``leak_grace``: a younger one may belong to a create that is
  still in flight in another API server on the same store. A leak made by this server's own
  previous process (same holder server, another instance: see allocators/allocator.py) is
  released at once: that process is gone, so nothing of it is in flight (a server killed
  mid-create gets its items back at restart, not minutes later);
* a **missing record**: a stored Service holds an item that has no allocation key (for example
  state written before allocation keys existed). The record is re-created (event
  ``ClusterIPNotAllocated`` / ``PortNotAllocated``);
* a **duplicate**: two Services hold one item. This cannot be fixed automatically; it is
  reported (``ClusterIPAlreadyAllocated`` / ``PortAlreadyAllocated``);
* an **out-of-range** item (the range was reconfigured): reported (``ClusterIPOutOfRange`` /
  ``PortOutOfRange``), left alone.

ClusterIP records are IPAddress objects (pkg/registry/core/service/ipallocator/controller/
repairip.go reconciles them the same way): an orphan one is deleted, a missing one recreated.
An IPAddress without the allocator's managed-by label (a user's) is never deleted; a Service
holding its address is reported as a duplicate.

The plan is computed by a pure function (:func:`plan_repair`) and applied by :func:`repair`.
Allocations are listed *before* Services, so a Service written in between is seen with its
allocation already present, never as a leak.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from svcnet.allocators.allocator import (
    Allocation,
    AllocationError,
    Holder,
    Owner,
    StoreAllocator,
)
from svcnet.api.lbips import ingress_ips
from svcnet.registry.lb_ipam import LoadBalancerIPAM
from svcnet.registry.service_alloc import ServiceAllocators, held_cluster_ips, owner_of
from svcnet.storage.interface import KeyValue, Store
from svcnet.util import offload
from svcnet.util.clock import Clock, RealClock, parse_time

Obj = dict[str, Any]
SERVICES_PREFIX = "/registry/services/"


@dataclass(frozen=True, slots=True)
class RepairEvent:
    """An Event the repair records on a Service (``reason`` as Kubernetes names it)."""

    namespace: str
    name: str
    reason: str
    message: str


@dataclass
class RepairPlan:
    create: list[tuple[StoreAllocator, str, Owner]] = field(default_factory=list)
    release: list[tuple[StoreAllocator, Allocation]] = field(default_factory=list)
    events: list[RepairEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Holding:
    """One item a Service holds, and which allocator's kind it belongs to."""

    kind: str
    item: str
    owner: Owner


def holdings(svc: Obj) -> list[Holding]:
    owner = owner_of(svc)
    spec = svc.get("spec") or {}
    out = [Holding("clusterip", ip, owner) for ip in held_cluster_ips(svc)]
    ports = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(int(spec["healthCheckNodePort"]))
    out += [Holding("nodeport", str(p), owner) for p in sorted(ports)]
    out += [Holding("lbip", ip, owner) for ip in ingress_ips(svc)]
    return out


_EVENT_NAMES = {
    "clusterip": ("ClusterIPOutOfRange", "ClusterIPAlreadyAllocated", "ClusterIPNotAllocated",
                  "Cluster IP"),
    "nodeport": ("PortOutOfRange", "PortAlreadyAllocated", "PortNotAllocated", "Port"),
    "lbip": ("LoadBalancerIPOutOfRange", "LoadBalancerIPAlreadyAllocated",
             "LoadBalancerIPNotAllocated", "LoadBalancer IP"),
}


def made_by_previous_instance(record: Allocation, holder: Holder | None) -> bool:
    """Whether ``record`` was made by an earlier process of the server ``holder`` is."""
    return (holder is not None and record.holder is not None
            and record.holder.server == holder.server
            and record.holder.instance != holder.instance)


def plan_repair(services: Iterable[Obj], allocators: Sequence[StoreAllocator],  # noqa: C901
                allocations: dict[str, list[Allocation]], *, now: datetime,
                leak_grace: timedelta, holder: Holder | None = None) -> RepairPlan:
    """Pure: what to create, release and report, given Services and allocation records.

    ``allocations`` maps an allocator kind ("clusterip", "nodeport", "lbip") to its records;
    ``holder`` is the server running the repair (its previous instance's leaks skip the grace).
    """
    plan = RepairPlan()
    by_kind: dict[str, list[StoreAllocator]] = {}
    for a in allocators:
        by_kind.setdefault(a.range.kind, []).append(a)
    held: dict[tuple[str, str], list[Owner]] = {}
    for svc in services:
        for h in holdings(svc):
            owners = held.setdefault((h.kind, h.item), [])
            if h.owner not in owners:
                owners.append(h.owner)
    records = {(kind, a.item): a for kind, recs in allocations.items() for a in recs}

    for (kind, item), owners in sorted(held.items()):
        out_of_range, dup, missing, label = _EVENT_NAMES[kind]
        alloc = next((a for a in by_kind.get(kind, []) if a.contains(item)), None)
        if alloc is None:
            if kind == "lbip" and not by_kind.get("lbip"):
                continue  # no pools configured: addresses come from elsewhere
            for o in owners:
                plan.events.append(RepairEvent(
                    o.namespace, o.name, out_of_range,
                    f"{label} {item} is not within the configured range; please recreate"))
            continue
        if len(owners) > 1:
            for o in owners[1:]:
                plan.events.append(RepairEvent(
                    o.namespace, o.name, dup,
                    f"{label} {item} was assigned to multiple services; please recreate"))
        record = records.get((kind, item))
        if record is None:
            plan.create.append((alloc, item, owners[0]))
            plan.events.append(RepairEvent(
                owners[0].namespace, owners[0].name, missing,
                f"{label} {item} is not allocated; repairing"))
        elif all(record.owner.key() != o.key() for o in owners) and not record.managed:
            for o in owners:
                plan.events.append(RepairEvent(
                    o.namespace, o.name, dup,
                    f"{label} {item} was assigned to multiple services; please recreate"))
        elif all(record.owner.key() != o.key() for o in owners):
            # The record names an owner that does not hold the item, but a Service does:
            # the record is stale. Hand it to the holder.
            plan.release.append((alloc, record))
            plan.create.append((alloc, item, owners[0]))

    for (kind, item), record in sorted(records.items()):
        if (kind, item) in held or not record.managed:
            continue
        allocated_at = parse_time(record.allocated_at)
        young = allocated_at is not None and now - allocated_at < leak_grace
        if young and not made_by_previous_instance(record, holder):
            continue  # maybe a create still in flight
        kind_allocs = by_kind.get(kind, [])
        # Any allocator of the kind can delete the record, even one out of every range now.
        alloc = next((a for a in kind_allocs if a.contains(item)),
                     kind_allocs[0] if kind_allocs else None)
        if alloc is not None:
            plan.release.append((alloc, record))
    return plan


def _plan_listed(listed: Sequence[KeyValue], allocators: Sequence[StoreAllocator],
                 allocations: dict[str, list[Allocation]], *, now: datetime,
                 leak_grace: timedelta, holder: Holder | None) -> RepairPlan:
    """:func:`plan_repair` over stored Services as the store lists them."""
    return plan_repair((json.loads(kv.value) for kv in listed), allocators, allocations,
                       now=now, leak_grace=leak_grace, holder=holder)


@dataclass
class RepairResult:
    created: list[str]
    released: list[str]
    events: list[RepairEvent]


async def repair(store: Store, service_allocators: ServiceAllocators,
                 lb: LoadBalancerIPAM | None = None, *, clock: Clock | None = None,
                 leak_grace: timedelta = timedelta(seconds=60),
                 holder: Holder | None = None) -> RepairResult:
    """Bring the allocation records in line with the stored Services (one pass), as
    ``holder`` (the server running it, if known)."""
    clock = clock or RealClock()
    allocators = service_allocators.all() + (lb.allocators() if lb else [])
    allocations: dict[str, list[Allocation]] = {}
    seen_prefixes: set[str] = set()
    for a in allocators:
        if a.prefix in seen_prefixes:
            continue
        seen_prefixes.add(a.prefix)
        allocations[a.range.kind] = await a.list()
    listed = (await store.list(SERVICES_PREFIX)).items
    # Decoding and comparing every Service is work the size of the cluster (half a second at
    # 10k Services): off the event loop, which goes on serving meanwhile (util/offload.py).
    plan = await offload.off_loop(_plan_listed, listed, allocators, allocations,
                                  now=clock.now(), leak_grace=leak_grace, holder=holder)
    released = []
    for alloc, record in plan.release:
        if await alloc.release(record.item, record.owner):
            released.append(f"{alloc.range.kind}/{record.item}")
    created = []
    for alloc, item, owner in plan.create:
        try:
            await alloc.allocate(item, owner)
        except AllocationError:
            continue  # taken meanwhile by a racing writer: the next pass looks again
        created.append(f"{alloc.range.kind}/{item}")
    for a in allocators:
        await a.refresh()
    return RepairResult(created, released, plan.events)
