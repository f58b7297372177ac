"""LoadBalancer IP address management from configured pools, the way MetalLB does it.

A LoadBalancer Service gets one address per entry of ``spec.ipFamilies`` from the first pool
that has a free address of that family (lowest free address first). Users steer it as MetalLB
users do:

* ``metallb.io/loadBalancerIPs: "172.20.0.210"`` (comma-separated, one per family) or the
  deprecated ``spec.loadBalancerIP`` ask for specific addresses; the annotation wins;
* ``metallb.io/address-pool: NAME`` restricts the choice to one pool.

Services with a ``spec.loadBalancerClass`` belong to another implementation and are left alone.
Allocations are store keys like every other allocation (allocator.py), so two control planes on
one store never announce one address for two Services. The controller that writes
``status.loadBalancer.ingress`` (and records an Event when a Service cannot be served) calls
:meth:`LoadBalancerIPAM.assign`; this module decides, it does not write Services.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from svcnet.allocators.allocator import (
    AlreadyAllocated,
    Holder,
    Owner,
    RangeFull,
    StoreAllocator,
)
from svcnet.allocators.ranges import AddressPool, parse_pools
from svcnet.api.lbips import (
    ANNOTATION_POOL,
    AssignmentError,
    ingress_ips,
    requested_ips,
)
from svcnet.api.names import ip_family_of
from svcnet.registry.service_alloc import owner_of
from svcnet.storage.interface import Store
from svcnet.util.clock import Clock

Obj = dict[str, Any]

@dataclass(frozen=True, slots=True)
class PoolAllocator:
    pool: AddressPool
    allocator: StoreAllocator


class LoadBalancerIPAM:
    def __init__(self, store: Store, pools: Sequence[AddressPool | str], *,
                 clock: Clock | None = None, rng: random.Random | None = None,
                 holder: Holder | None = None) -> None:
        parsed = parse_pools([p for p in pools if isinstance(p, str)]) + [
            p for p in pools if isinstance(p, AddressPool)]
        self.pools = [PoolAllocator(p, StoreAllocator(store, p, name=p.name, clock=clock,
                                                       rng=rng, holder=holder))
                      for p in parsed]

    def pool_name_of(self, ip: str) -> str | None:
        """The name of the pool ``ip`` belongs to, if any."""
        pa = self.pool_of(ip)
        return pa.pool.name if pa is not None else None

    def pool_of(self, ip: str) -> PoolAllocator | None:
        for pa in self.pools:
            if pa.allocator.contains(ip):
                return pa
        return None

    def _candidates(self, svc: Obj) -> list[PoolAllocator]:
        meta = svc.get("metadata") or {}
        wanted = (meta.get("annotations") or {}).get(ANNOTATION_POOL, "").strip()
        if not wanted:
            return self.pools
        chosen = [pa for pa in self.pools if pa.pool.name == wanted]
        if not chosen:
            raise AssignmentError("AllocationFailed", f'unknown pool "{wanted}"')
        return chosen

    async def assign(self, svc: Obj) -> list[str]:
        """The addresses ``svc`` should have, allocating what it does not hold yet.

        Addresses it holds already (in its status, allocated to it) are kept if they still
        satisfy the request; anything it held but no longer needs is *not* released here:
        call :meth:`release` after the status write that drops them has committed.
        """
        owner = owner_of(svc)
        candidates = self._candidates(svc)
        spec = svc.get("spec") or {}
        families = list(spec.get("ipFamilies") or ["IPv4"])
        held = [ip for ip in ingress_ips(svc) if await self._held_by(ip, owner)]
        requested = requested_ips(svc)
        if requested:
            out = []
            for ip in requested:
                if ip_family_of(ip) is None:
                    raise AssignmentError("AllocationFailed", f"invalid IP {ip!r} requested")
                if ip in held:
                    out.append(ip)
                    continue
                pa = self.pool_of(ip)
                if pa is None or pa not in candidates:
                    raise AssignmentError(
                        "AllocationFailed",
                        f"requested IP {ip} is not in any pool this service may use")
                try:
                    await pa.allocator.allocate(ip, owner)
                except AlreadyAllocated:
                    current = await pa.allocator.get(ip)
                    who = current.owner.key() if current else "another service"
                    raise AssignmentError("AllocationFailed",
                                          f"requested IP {ip} is already in use by {who}"
                                          ) from None
                out.append(ip)
            return out
        out = []
        for family in families:
            keep = [ip for ip in held if ip_family_of(ip) == family]
            if keep:
                out.append(keep[0])
                continue
            got = await self._next(candidates, family, owner)
            if got is None:
                if len(families) > 1 and family != families[0]:
                    continue  # PreferDualStack-style: serve the primary family at least
                raise AssignmentError(
                    "AllocationFailed",
                    f"no available {family} address in pool(s) "
                    + ", ".join(pa.pool.name for pa in candidates))
            out.append(got)
        return out

    async def _next(self, candidates: Sequence[PoolAllocator], family: str,
                    owner: Owner) -> str | None:
        for pa in candidates:
            for span in pa.pool.family_spans(family):
                try:
                    return await pa.allocator.allocate_next(owner, allowed=span)
                except RangeFull:
                    continue
        return None

    async def _held_by(self, ip: str, owner: Owner) -> bool:
        pa = self.pool_of(ip)
        if pa is None:
            return False
        current = await pa.allocator.get(ip)
        return current is not None and current.owner.key() == owner.key() and (
            not current.owner.uid or not owner.uid or current.owner.uid == owner.uid)

    async def release(self, svc: Obj, ips: Sequence[str]) -> None:
        owner = owner_of(svc)
        for ip in ips:
            pa = self.pool_of(ip)
            if pa is not None:
                await pa.allocator.release(ip, owner)

    def allocators(self) -> list[StoreAllocator]:
        return [pa.allocator for pa in self.pools]
