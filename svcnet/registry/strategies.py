"""Strategies for the kinds other than Service: wiring of pure api/ rules into the registry.

Each class only names the kind and points at its defaulting, preparation and validation
functions in :mod:`svcnet.api`. Kinds whose validation svcnet does not model in depth (Events,
Leases, Endpoints) still get Kubernetes' ObjectMeta validation, so a bad name is a 422 as it is
upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import endpointslices, namespaces, nodes, pods, runtimeclasses
from svcnet.api.errors import FieldError, Path
from svcnet.api.limitranges import check_pod_limits, default_pod_limits
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import name_is_dns_subdomain
from svcnet.api.podaccount import admit_pod_service_account
from svcnet.api.podpriority import admit_pod_priority, keep_pod_priority
from svcnet.api.podruntimeclass import admit_pod_runtime_class
from svcnet.registry.generic import BaseStrategy
from svcnet.registry.quotas import LimitRangeLister
from svcnet.registry.scheduling import PriorityClassLister
from svcnet.util import offload

#: A ServiceAccount by namespace and name, or None when there is none.
AccountLookup = Callable[[str, str], Awaitable[dict[str, Any] | None]]
#: A RuntimeClass by name, or None when there is none.
RuntimeClassLookup = Callable[[str], Awaitable[dict[str, Any] | None]]

Obj = dict[str, Any]
_META = Path("metadata")


class PodStrategy(BaseStrategy):
    kind: ClassVar[str] = "Pod"
    resource: ClassVar[str] = "pods"
    has_generation: ClassVar[bool] = True

    def __init__(self, service_account: AccountLookup | None = None,
                 runtime_class: RuntimeClassLookup | None = None,
                 priority_classes: PriorityClassLister | None = None,
                 limit_ranges: LimitRangeLister | None = None) -> None:
        #: How the ServiceAccount admission finds a pod's account (None: no admission).
        self._service_account = service_account
        #: How the RuntimeClass admission finds a pod's class (None: no admission).
        self._runtime_class = runtime_class
        #: How the Priority admission lists PriorityClasses (None: no admission).
        self._priority_classes = priority_classes
        #: How the LimitRanger admission lists a namespace's LimitRanges (None: no admission).
        self._limit_ranges = limit_ranges

    def default(self, obj: Obj) -> Obj:
        return pods.set_defaults_pod(obj)

    async def admit_create(self, op: Operation, obj: Obj) -> Obj:
        return (await self._admit(op, obj))[0]

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        """The LimitRanger, ServiceAccount, Priority and RuntimeClass admissions (mutating, so
        before validation, and before the webhooks when there are some: :meth:`admit_create`),
        in kube-apiserver's plugin order, then the LimitRanger's validating half (which
        upstream runs after the pod's validation)."""
        if op.admitted:
            limit_ranges = await self._limit_ranges_of(obj)
        else:
            obj, limit_ranges = await self._admit(op, obj)
        check_pod_limits(obj, limit_ranges, self._pod_name(op, obj))
        return obj

    @staticmethod
    def _pod_name(op: Operation, obj: Obj) -> str:
        # Admission names the pod as its request did (upstream admits before generateName).
        meta = obj.get("metadata") or {}
        requested = meta.get("name") if op.requested_name is None else op.requested_name
        return str(requested or meta.get("generateName") or "Unknown")

    async def _limit_ranges_of(self, obj: Obj) -> list[Obj]:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        return (await self._limit_ranges(namespace)
                if self._limit_ranges is not None else [])

    async def _admit(self, op: Operation, obj: Obj) -> tuple[Obj, list[Obj]]:
        meta = obj.get("metadata") or {}
        pod_name = self._pod_name(op, obj)
        limit_ranges = await self._limit_ranges_of(obj)
        obj = default_pod_limits(obj, limit_ranges)
        spec = obj.get("spec") or {}
        if self._service_account is not None:
            name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
            account = await self._service_account(str(meta.get("namespace") or ""), str(name))
            obj = await offload.run(admit_pod_service_account, obj, account)
        if self._priority_classes is not None:
            obj = await offload.run(admit_pod_priority, obj, await self._priority_classes(),
                                    pod_name)
        if self._runtime_class is not None:
            class_name = spec.get("runtimeClassName")
            found = None if class_name is None else await self._runtime_class(str(class_name))
            obj = admit_pod_runtime_class(obj, found, pod_name)
        return obj, limit_ranges

    async def begin_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        """The Priority admission of an update: a pod keeps its priority."""
        if self._priority_classes is None:
            return new
        return keep_pod_priority(new, old)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return pods.prepare_pod_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return pods.prepare_pod_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return pods.validate_pod(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return pods.validate_pod_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return pods.prepare_pod_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return pods.validate_pod_status_update(new, old)

    def deletion_grace(self, obj: Obj, requested: int | None) -> int | None:
        """podStrategy.CheckGracefulDelete: a pod bound to a node that has not finished is
        deleted gracefully (its node stops it, then deletes it with grace 0); an unscheduled
        or finished pod goes at once."""
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return None
        if requested is not None:
            return max(requested, 0)
        grace = spec.get("terminationGracePeriodSeconds")
        return 30 if grace is None else max(int(grace), 0)


class NodeStrategy(BaseStrategy):
    kind: ClassVar[str] = "Node"
    resource: ClassVar[str] = "nodes"
    namespaced: ClassVar[bool] = False

    def default(self, obj: Obj) -> Obj:
        return nodes.set_defaults_node(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return nodes.prepare_node_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return nodes.prepare_node_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return nodes.validate_node(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return nodes.validate_node_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return nodes.prepare_node_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return nodes.validate_node_status_update(new, old)


class NamespaceStrategy(BaseStrategy):
    kind: ClassVar[str] = "Namespace"
    resource: ClassVar[str] = "namespaces"
    namespaced: ClassVar[bool] = False

    def default(self, obj: Obj) -> Obj:
        return namespaces.set_defaults_namespace(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return namespaces.canonicalize_namespace(namespaces.prepare_namespace_for_create(obj))

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return namespaces.canonicalize_namespace(namespaces.prepare_namespace_for_update(new,
                                                                                         old))

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return namespaces.validate_namespace(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return namespaces.validate_namespace_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return namespaces.prepare_namespace_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return namespaces.validate_namespace_status_update(new, old)


class NamespaceFinalizeStrategy(NamespaceStrategy):
    """namespaceFinalizeStrategy (``namespaces/finalize``): the update keeps the stored status
    and takes the rest, ``spec.finalizers`` included, from the request."""

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return namespaces.canonicalize_namespace(
            namespaces.prepare_namespace_for_finalize_update(new, old))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return namespaces.validate_namespace_finalize_update(new, old)


class EndpointSliceStrategy(BaseStrategy):
    kind: ClassVar[str] = "EndpointSlice"
    resource: ClassVar[str] = "endpointslices"
    group: ClassVar[str] = "discovery.k8s.io"
    api_version: ClassVar[str] = "discovery.k8s.io/v1"
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return endpointslices.set_defaults_endpointslice(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return endpointslices.prepare_endpointslice_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return endpointslices.prepare_endpointslice_for_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        # An EndpointSlice has no spec: any change of its content is a new generation.
        return {k: v for k, v in new.items() if k != "metadata"} != {
            k: v for k, v in old.items() if k != "metadata"}

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return endpointslices.validate_endpointslice(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return endpointslices.validate_endpointslice_update(new, old)


class RuntimeClassStrategy(BaseStrategy):
    kind: ClassVar[str] = "RuntimeClass"
    resource: ClassVar[str] = "runtimeclasses"
    group: ClassVar[str] = runtimeclasses.GROUP
    api_version: ClassVar[str] = runtimeclasses.API_VERSION
    namespaced: ClassVar[bool] = False

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return runtimeclasses.validate_runtime_class(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return runtimeclasses.validate_runtime_class_update(new, old)


class MetaOnlyStrategy(BaseStrategy):
    """Kinds validated for ObjectMeta only (names are DNS subdomains)."""

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return validate_object_meta(obj.get("metadata"), requires_namespace=self.namespaced,
                                    name_fn=name_is_dns_subdomain, path=_META)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_object_meta_update(new.get("metadata"), old.get("metadata"), _META)


class EndpointsStrategy(MetaOnlyStrategy):
    kind: ClassVar[str] = "Endpoints"
    resource: ClassVar[str] = "endpoints"


class EventStrategy(MetaOnlyStrategy):
    kind: ClassVar[str] = "Event"
    resource: ClassVar[str] = "events"


class LeaseStrategy(MetaOnlyStrategy):
    kind: ClassVar[str] = "Lease"
    resource: ClassVar[str] = "leases"
    group: ClassVar[str] = "coordination.k8s.io"
    api_version: ClassVar[str] = "coordination.k8s.io/v1"
