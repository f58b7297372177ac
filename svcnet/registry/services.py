"""The Service strategy: Kubernetes' Service write pipeline with allocation around the write.

create: v1 defaults → normalise clusterIPs → IP families → allocate ClusterIPs, NodePorts and
        healthCheckNodePort → PrepareForCreate → ValidateServiceCreate → write
update: v1 defaults → PrepareForUpdate (status kept, dropTypeDependentFields) →
        patchAllocatedValues (omitted clusterIPs / nodePorts carried over) → normalise → IP
        families → allocate the difference → ValidateServiceUpdate → write → release what the
        Service gave up (ClusterIPs, NodePorts, and LoadBalancer IPs dropped from its status)
delete: write → release everything it held.

The rules themselves live in :mod:`svcnet.api.services` (pure); what to allocate lives in
:mod:`svcnet.registry.service_alloc`; this module only wires them into the generic registry.
"""

from __future__ import annotations

from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import services as api
from svcnet.api.errors import FieldError, invalid_error
from svcnet.api.lbips import ingress_ips
from svcnet.registry.generic import BaseStrategy, Registry
from svcnet.registry.lb_ipam import LoadBalancerIPAM
from svcnet.registry.service_alloc import ServiceAllocators, owner_of
from svcnet.storage.interface import Store
from svcnet.util import offload
from svcnet.util.clock import Clock

Obj = dict[str, Any]


class ServiceStrategy(BaseStrategy):
    kind: ClassVar[str] = "Service"
    resource: ClassVar[str] = "services"

    def __init__(self, allocators: ServiceAllocators,
                 lb: LoadBalancerIPAM | None = None) -> None:
        self.allocators = allocators
        self.lb = lb

    def default(self, obj: Obj) -> Obj:
        return api.set_defaults_service(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return api.prepare_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return api.prepare_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return api.validate_service_create(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return api.validate_service_update(new, old)

    def _families(self, svc: Obj, old: Obj | None) -> Obj:
        svc, errs = api.init_ip_family_fields(svc, old,
                                              cluster_families=self.allocators.families)
        if errs:
            raise invalid_error("Service", (svc.get("metadata") or {}).get("name", ""), errs)
        return svc

    def _normalized(self, svc: Obj, old: Obj | None) -> Obj:
        """The allocation-free part of begin_create/begin_update (pure: it copies a large
        Service off the event loop, see svcnet.util.offload)."""
        if old is not None:
            svc = api.patch_allocated_values(svc, old)
        svc = api.normalize_cluster_ips(svc, old)
        return self._families(svc, old)

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        obj = await offload.run(self._normalized, obj, None)
        return await self.allocators.allocate_create(op, obj)

    async def begin_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        new = await offload.run(self._normalized, new, old)
        new = await self.allocators.allocate_update(op, new, old)
        self._release_lb_ips(op, old, keep=set(ingress_ips(new)))
        return new

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return api.validate_service_status_update(new, old)

    async def begin_status_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        # The LoadBalancer controller drops an address from status: give it back afterwards.
        self._release_lb_ips(op, old, keep=set(ingress_ips(new)))
        return new

    def end_delete(self, op: Operation, obj: Obj) -> None:
        self.allocators.release_all(op, obj)
        self._release_lb_ips(op, obj, keep=set())

    def _release_lb_ips(self, op: Operation, old: Obj, keep: set[str]) -> None:
        if self.lb is None:
            return
        for ip in ingress_ips(old):
            pa = self.lb.pool_of(ip)
            if ip not in keep and pa is not None:
                op.release_after_commit(pa.allocator, ip, owner_of(old))


def service_registry(store: Store, allocators: ServiceAllocators,
                     lb: LoadBalancerIPAM | None = None, *,
                     clock: Clock | None = None) -> Registry:
    return Registry(store, ServiceStrategy(allocators, lb), clock=clock)
