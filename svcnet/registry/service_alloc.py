"""What a Service write allocates and releases (pkg/registry/core/service/storage/alloc.go).

The registry calls :meth:`ServiceAllocators.allocate_create` / ``allocate_update`` inside an
:class:`~svcnet.allocators.operation.Operation`, *before* the object is validated and written,
exactly where Kubernetes' BeginCreate/BeginUpdate hooks run; the operation is then finished with
the write's outcome. Failures come back the way kube-apiserver reports them: a requested IP or
port that is out of range or taken is a 422 with a single cause on the field; an exhausted range
(and, upstream's quirk, a bad requested healthCheckNodePort) is a 500.

Rules reproduced here:
* ClusterIPs: one per entry of ``spec.ipFamilies``; a requested ``clusterIPs[i]`` is honoured or
  refused, an empty one is allocated (dynamic band first). Headless and ExternalName allocate none.
* NodePorts: every port of a NodePort Service, every port of a LoadBalancer Service when
  ``allocateLoadBalancerNodePorts`` (else only the ports that ask for one). Ports that share a
  port *number* (53/TCP + 53/UDP) share one nodePort unless the user gave them different ones.
* healthCheckNodePort: for LoadBalancer with ``externalTrafficPolicy: Local``, from the same pool.
* On update only the difference is allocated; what the new object no longer holds is released
  after the write commits. For ClusterIPs the difference is upstream's four cases
  (updateClusterIPs): to/from ExternalName, and the dual-stack upgrade (the secondary is
  allocated, the primary never moves) and downgrade (the secondary is released).

ClusterIP ranges are ServiceCIDR objects (pkg/registry/core/service/ipallocator/
cidrallocator.go, the MetaAllocator): :meth:`ServiceAllocators.sync_service_cidrs` keeps one
allocator per CIDR of the stored ServiceCIDRs (the server calls it on every ServiceCIDR change;
until the first call, the --service-cidr flags' ranges serve). A CIDR is *ready* unless every
ServiceCIDR naming it is being deleted or reports Ready=False. A new address comes from the
first ready *top-level* CIDR of the family (one no other CIDR of the set contains), in address
order, that is not full; a requested address belongs to the largest CIDR containing it and is
refused ("allocator not ready") if that CIDR is not ready. Every ClusterIP record is an
IPAddress object (allocators/ipaddresses.py), whichever CIDR it came from.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from svcnet.allocators.allocator import (
    AllocationError,
    Holder,
    NotInRange,
    Owner,
    RangeFull,
    StoreAllocator,
)
from svcnet.allocators.ipaddresses import IPAddressRecords
from svcnet.allocators.operation import Operation
from svcnet.allocators.ranges import PortRange, ServiceCIDR
from svcnet.api.errors import FieldError, StatusError, internal_error, invalid, invalid_error
from svcnet.api.names import ip_family_of, parse_ip_sloppy
from svcnet.api.services import is_headless, is_matching_prefer_dual_stack
from svcnet.storage.interface import Store
from svcnet.util import offload
from svcnet.util.clock import Clock
from svcnet.util.jsoncopy import object_copy

Obj = dict[str, Any]


def owner_of(svc: Obj) -> Owner:
    meta = svc.get("metadata") or {}
    return Owner(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""))


def _spec(svc: Obj) -> Obj:
    spec: Obj = svc.setdefault("spec", {})
    return spec


def needs_cluster_ip(svc: Obj) -> bool:
    return bool((svc.get("spec") or {}).get("type", "ClusterIP") != "ExternalName")


def node_ports_wanted(svc: Obj) -> tuple[bool, bool]:
    """(any port may hold a nodePort, every port must get one)."""
    spec = svc.get("spec") or {}
    t = spec.get("type", "ClusterIP")
    if t == "NodePort":
        return True, True
    if t == "LoadBalancer":
        return True, spec.get("allocateLoadBalancerNodePorts", True) is not False
    return False, False


def needs_health_check_node_port(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return bool(spec.get("type") == "LoadBalancer"
                and spec.get("externalTrafficPolicy") == "Local")


def held_node_ports(svc: Obj) -> set[int]:
    return {int(p["nodePort"]) for p in (svc.get("spec") or {}).get("ports") or []
            if p.get("nodePort")}


def held_cluster_ips(svc: Obj) -> list[str]:
    """The ClusterIPs the Service holds, in canonical form (``fd00:10::5`` for a stored
    ``FD00:10::0005``): the form allocation records and IPAddress objects are named by, so
    repair matches them however the Service spelled them."""
    spec = svc.get("spec") or {}
    return [canonical_ip(ip) for ip in spec.get("clusterIPs") or [] if ip and ip != "None"]


def canonical_ip(text: str) -> str:
    """``text`` as :mod:`ipaddress` writes it (IPv4 with legacy leading zeros read as
    decimal, as Kubernetes' ParseIPSloppy does); unparsable text is kept as it is."""
    ip = parse_ip_sloppy(text)
    return str(ip) if ip is not None else text


def _reject(svc: Obj, errors: Sequence[FieldError]) -> StatusError:
    return invalid_error("Service", (svc.get("metadata") or {}).get("name", ""), errors)


def cidr_readiness(service_cidrs: Sequence[Obj]) -> dict[str, bool]:
    """Each CIDR of the ServiceCIDRs (canonical text) and whether it is ready (pure).

    A ServiceCIDR is ready unless it is being deleted or its Ready condition is False (no
    condition yet counts as ready, as upstream assumes when no controller has run)."""
    out: dict[str, bool] = {}
    for obj in service_cidrs:
        meta = obj.get("metadata") or {}
        conditions = (obj.get("status") or {}).get("conditions") or []
        ready = not meta.get("deletionTimestamp") and all(
            c.get("status") != "False" for c in conditions if c.get("type") == "Ready")
        for text in (obj.get("spec") or {}).get("cidrs") or []:
            try:
                key = str(ipaddress.ip_network(str(text), strict=True))
            except ValueError:
                continue
            out[key] = out.get(key, False) or ready
    return out


def _top_level(allocs: Sequence[StoreAllocator]) -> list[StoreAllocator]:
    nets = [_network(a) for a in allocs]
    return [a for a, net in zip(allocs, nets, strict=True)
            if not any(other != net and other.version == net.version
                       and net.subnet_of(other) for other in nets)]  # type: ignore[arg-type]


def _network(alloc: StoreAllocator) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    space = alloc.range
    assert isinstance(space, ServiceCIDR)
    return space.network


@dataclass
class ServiceAllocators:
    """The ClusterIP (per family, one or more CIDRs each) and NodePort allocators."""

    cluster_ips: dict[str, list[StoreAllocator]]
    node_ports: StoreAllocator
    families: tuple[str, ...] = field(init=False)
    #: How new ClusterIP allocators are made (set by build; None: the set is fixed).
    make_ip_allocator: Callable[[ServiceCIDR], StoreAllocator] | None = None
    #: The CIDRs (canonical text) that take no new addresses (their ServiceCIDRs terminate).
    not_ready: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.families = tuple(self.cluster_ips)
        for family, allocs in self.cluster_ips.items():
            self.cluster_ips[family] = sorted(allocs, key=_order)

    @classmethod
    def build(cls, store: Store, service_cidrs: Sequence[str], node_port_range: str,
              *, clock: Clock | None = None, rng: random.Random | None = None,
              holder: Holder | None = None) -> ServiceAllocators:
        def make(cidr: ServiceCIDR) -> StoreAllocator:
            return StoreAllocator(store, cidr, clock=clock, rng=rng, holder=holder,
                                  codec=IPAddressRecords())

        by_family: dict[str, list[StoreAllocator]] = {}
        for text in service_cidrs:
            cidr = ServiceCIDR.parse(text)
            by_family.setdefault(cidr.family, []).append(make(cidr))
        if not by_family:
            raise ValueError("at least one service CIDR is required")
        ports = StoreAllocator(store, PortRange.parse(node_port_range), clock=clock, rng=rng,
                               holder=holder)
        return cls(by_family, ports, make_ip_allocator=make)

    def sync_service_cidrs(self, service_cidrs: Sequence[Obj]) -> None:
        """Serve exactly the CIDRs of ``service_cidrs`` (the stored ServiceCIDRs), keeping
        the allocators (and their caches) of CIDRs already served."""
        if self.make_ip_allocator is None:
            return
        readiness = cidr_readiness(service_cidrs)
        current = {a.range.describe(): a for allocs in self.cluster_ips.values()
                   for a in allocs}
        by_family: dict[str, list[StoreAllocator]] = {f: [] for f in self.families}
        for text in readiness:
            alloc = current.get(text)
            if alloc is None:
                try:
                    alloc = self.make_ip_allocator(ServiceCIDR.parse(text))
                except ValueError:
                    continue  # too small to hold an address
            by_family.setdefault(ip_family_of(text.split("/")[0]) or "IPv4", []).append(alloc)
        self.cluster_ips = {f: sorted(allocs, key=_order) for f, allocs in by_family.items()}
        self.not_ready = {text for text, ready in readiness.items() if not ready}

    def all(self) -> list[StoreAllocator]:
        return [a for allocs in self.cluster_ips.values() for a in allocs] + [self.node_ports]

    def ip_allocator_for(self, ip: str) -> StoreAllocator | None:
        """The allocator of the largest served CIDR that contains ``ip``."""
        family = ip_family_of(ip)
        containing = [a for a in self.cluster_ips.get(family or "", []) if a.contains(ip)]
        return min(containing, key=lambda a: _network(a).prefixlen, default=None)

    def ip_releaser_for(self, ip: str) -> StoreAllocator | None:
        """An allocator that can free ``ip``'s record: its own, else any ClusterIP one (a
        record is deleted by its name, whether its CIDR is still served or not)."""
        alloc = self.ip_allocator_for(ip)
        if alloc is not None:
            return alloc
        return next((a for allocs in self.cluster_ips.values() for a in allocs), None)

    def _ready(self, alloc: StoreAllocator) -> bool:
        return alloc.range.describe() not in self.not_ready

    # -- ClusterIPs -------------------------------------------------------------------------

    async def _allocate_ip(self, op: Operation, svc: Obj, family: str, requested: str,
                           owner: Owner) -> str:
        allocs = self.cluster_ips.get(family, [])
        spec = _spec(svc)
        if requested:
            alloc = self.ip_allocator_for(requested)
            if alloc is not None and not self._ready(alloc):
                raise _reject(svc, [invalid(
                    "spec.clusterIPs", list(spec.get("clusterIPs") or []),
                    f"failed to allocate IP {requested}: allocator not ready")])
            if alloc is None:
                ranges = ",".join(a.range.describe() for a in allocs) or "(none)"
                err: AllocationError = NotInRange(
                    f"the provided IP ({requested}) is not in the valid range. "
                    f"The range of valid IPs is {ranges}")
            else:
                try:
                    await op.allocate(alloc, requested, owner)
                    return requested
                except AllocationError as e:
                    err = e
            raise _reject(svc, [invalid("spec.clusterIPs", list(spec.get("clusterIPs") or []),
                                        f"failed to allocate IP {requested}: {err}")])
        for alloc in _top_level(allocs):
            if not self._ready(alloc):
                continue
            try:
                return await op.allocate_next(alloc, owner)
            except RangeFull:
                continue
        raise internal_error("failed to allocate a serviceIP: range is full")

    async def _allocate_cluster_ips(self, op: Operation, svc: Obj, owner: Owner) -> None:
        """allocClusterIPs: one address per family, the requested one or a free one."""
        spec = _spec(svc)
        families = list(spec.get("ipFamilies") or self.families[:1])
        requested = list(spec.get("clusterIPs") or [])
        out: list[str] = []
        for i, family in enumerate(families):
            want = requested[i] if i < len(requested) else ""
            out.append(await self._allocate_ip(op, svc, family, want, owner))
        spec["clusterIPs"] = out
        spec["clusterIP"] = out[0] if out else ""

    def _release_ips(self, op: Operation, ips: Sequence[str], owner: Owner) -> None:
        for ip in ips:
            alloc = self.ip_releaser_for(ip)
            if alloc is not None:
                op.release_after_commit(alloc, ip, owner)

    async def _update_cluster_ips(self, op: Operation, new: Obj, old: Obj,
                                  owner: Owner) -> None:
        """updateClusterIPs: only four updates touch addresses. From ExternalName: allocate
        them all; to ExternalName: release them all; an upgrade (one family to two): allocate
        the secondary, the primary stays; a downgrade (two to one): release the secondary.
        Anything else keeps what the Service holds, so a changed address is left for
        validation to refuse ("may not change once set"), never allocated."""
        if is_matching_prefer_dual_stack(new, old):
            return
        if not needs_cluster_ip(old):
            if needs_cluster_ip(new) and not is_headless(new):
                await self._allocate_cluster_ips(op, new, owner)
            return
        if is_headless(old):
            return
        old_ips = held_cluster_ips(old)
        if not needs_cluster_ip(new):
            self._release_ips(op, old_ips, owner)
            return
        spec = _spec(new)
        old_families = list(_spec(old).get("ipFamilies") or [])
        families = list(spec.get("ipFamilies") or [])
        if len(old_families) == 1 and len(families) == 2:
            ips = list(spec.get("clusterIPs") or [])
            ips += [""] * (2 - len(ips))
            ips[1] = await self._allocate_ip(op, new, families[1], ips[1], owner)
            spec["clusterIPs"] = ips
        elif len(old_families) == 2 and len(families) == 1:
            self._release_ips(op, old_ips[1:2], owner)

    # -- NodePorts --------------------------------------------------------------------------

    async def _allocate_node_ports(self, op: Operation, svc: Obj, owner: Owner,
                                   held: set[int]) -> None:
        spec = _spec(svc)
        any_port, every_port = node_ports_wanted(svc)
        ports: list[Obj] = spec.get("ports") or []
        if not any_port:
            return
        # Ports sharing a port number share a nodePort: the first explicit one wins.
        by_number: dict[int, int] = {}
        for p in ports:
            if p.get("nodePort") and p.get("port") not in by_number:
                by_number[int(p.get("port", 0))] = int(p["nodePort"])
        taken_here: set[int] = set()
        for i, p in enumerate(ports):
            number = int(p.get("port", 0))
            want = int(p.get("nodePort") or 0)
            if not want and not every_port:
                continue
            if not want:
                want = by_number.get(number, 0)
            if want and (want in taken_here or want in held):
                p["nodePort"] = want
                continue
            if want:
                try:
                    await op.allocate(self.node_ports, str(want), owner)
                except AllocationError as e:
                    raise _reject(svc, [invalid(f"spec.ports[{i}].nodePort", want, str(e))]
                                  ) from None
            else:
                try:
                    want = int(await op.allocate_next(self.node_ports, owner))
                except RangeFull:
                    raise internal_error("failed to allocate a nodePort: range is full"
                                         ) from None
                by_number[number] = want
            p["nodePort"] = want
            taken_here.add(want)

    async def _allocate_health_check(self, op: Operation, svc: Obj, owner: Owner,
                                     held: int) -> None:
        spec = _spec(svc)
        want = int(spec.get("healthCheckNodePort") or 0)
        if want and want == held:
            return
        if want:
            try:
                await op.allocate(self.node_ports, str(want), owner)
            except AllocationError as e:
                # Kubernetes answers this 500 InternalError (alloc.go); it is the client's
                # value, so a 422 on the field, as for an unavailable nodePort.
                raise _reject(svc, [invalid(
                    "spec.healthCheckNodePort", want,
                    f"failed to allocate requested HealthCheck NodePort {want}: {e}")]) from None
            return
        try:
            spec["healthCheckNodePort"] = int(
                await op.allocate_next(self.node_ports, owner))
        except RangeFull:
            raise internal_error("failed to allocate a nodePort: range is full") from None

    # -- entry points -----------------------------------------------------------------------

    async def allocate_create(self, op: Operation, svc: Obj) -> Obj:
        """Allocate everything a new Service needs; returns the Service with values filled."""
        svc = await offload.run(object_copy, svc)
        owner = owner_of(svc)
        if needs_cluster_ip(svc) and not is_headless(svc):
            await self._allocate_cluster_ips(op, svc, owner)
        await self._allocate_node_ports(op, svc, owner, set())
        if needs_health_check_node_port(svc):
            await self._allocate_health_check(op, svc, owner, 0)
        return svc

    async def allocate_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        """Allocate what ``new`` holds beyond ``old``; release what it gave up after commit.

        ``new`` has already been through patch_allocated_values and dropTypeDependentFields,
        so values it still carries over from ``old`` are recognised as already held.
        """
        new = await offload.run(object_copy, new)
        owner = owner_of(old)
        await self._update_cluster_ips(op, new, old, owner)

        old_ports = held_node_ports(old)
        old_hc = int((old.get("spec") or {}).get("healthCheckNodePort") or 0)
        await self._allocate_node_ports(op, new, owner, old_ports | ({old_hc} - {0}))
        new_hc = 0
        if needs_health_check_node_port(new):
            await self._allocate_health_check(op, new, owner, old_hc)
            new_hc = int(_spec(new).get("healthCheckNodePort") or 0)
        still_held = held_node_ports(new) | ({new_hc} - {0})
        for port in sorted((old_ports | ({old_hc} - {0})) - still_held):
            op.release_after_commit(self.node_ports, str(port), owner)
        return new

    def release_all(self, op: Operation, svc: Obj) -> None:
        """Everything a deleted Service held, released once the delete has committed."""
        owner = owner_of(svc)
        self._release_ips(op, held_cluster_ips(svc), owner)
        spec = svc.get("spec") or {}
        ports = held_node_ports(svc)
        if spec.get("healthCheckNodePort"):
            ports.add(int(spec["healthCheckNodePort"]))
        for port in sorted(ports):
            op.release_after_commit(self.node_ports, str(port), owner)


def _order(alloc: StoreAllocator) -> tuple[int, int]:
    """Address order, the larger of two CIDRs at one address first (the IP tree's walk)."""
    net = _network(alloc)
    return int(net.network_address), net.prefixlen
