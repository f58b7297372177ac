"""Strategies for networking.k8s.io/v1 Ingresses, IngressClasses, NetworkPolicies,
ServiceCIDRs and IPAddresses: wiring of :mod:`svcnet.api.ingresses`,
:mod:`svcnet.api.networkpolicies` and :mod:`svcnet.api.servicecidrs` into the generic registry.

NetworkPolicies (pkg/registry/networking/networkpolicy/strategy.go) are defaulted (ports' TCP,
``policyTypes``) on create and update, as decoding defaults them upstream, have a generation
that spec changes bump, and no status.

ServiceCIDRs (pkg/registry/networking/servicecidr/strategy.go) have a status subresource: a
create starts with an empty status, a spec write keeps the stored status, a status write keeps
everything else; no generation. IPAddresses (pkg/registry/networking/ipaddress/strategy.go)
are spec only. Both are cluster-scoped.

Both kinds have a generation that spec changes bump (upstream's strategies). A new Ingress
goes through the DefaultIngressClass admission first (mutating, so before validation), which
needs the IngressClasses: the strategy is handed a lister for them, as the admission plugin
is handed an informer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import ingresses, networkpolicies, servicecidrs
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

__all__ = ["ClassLister", "IPAddressStrategy", "IngressClassStrategy", "IngressStrategy",
           "NetworkPolicyStrategy", "ServiceCIDRStrategy"]

Obj = dict[str, Any]
#: Every IngressClass (for the DefaultIngressClass admission).
ClassLister = Callable[[], Awaitable[list[Obj]]]


class IngressStrategy(BaseStrategy):
    kind: ClassVar[str] = "Ingress"
    resource: ClassVar[str] = "ingresses"
    group: ClassVar[str] = ingresses.GROUP
    api_version: ClassVar[str] = ingresses.API_VERSION
    has_generation: ClassVar[bool] = True

    def __init__(self, classes: ClassLister | None = None) -> None:
        #: How the admission lists IngressClasses (None: no admission).
        self._classes = classes

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        if self._classes is None:
            return obj
        return ingresses.admit_default_ingress_class(obj, await self._classes())

    def prepare_for_create(self, obj: Obj) -> Obj:
        return ingresses.prepare_ingress_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return ingresses.prepare_ingress_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return ingresses.validate_ingress(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return ingresses.validate_ingress_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return ingresses.prepare_ingress_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return ingresses.validate_ingress_status_update(new, old)


class IngressClassStrategy(BaseStrategy):
    kind: ClassVar[str] = "IngressClass"
    resource: ClassVar[str] = "ingressclasses"
    group: ClassVar[str] = ingresses.GROUP
    api_version: ClassVar[str] = ingresses.API_VERSION
    namespaced: ClassVar[bool] = False
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return ingresses.set_defaults_ingress_class(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return ingresses.validate_ingress_class(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return ingresses.validate_ingress_class_update(new, old)


class NetworkPolicyStrategy(BaseStrategy):
    kind: ClassVar[str] = "NetworkPolicy"
    resource: ClassVar[str] = "networkpolicies"
    group: ClassVar[str] = networkpolicies.GROUP
    api_version: ClassVar[str] = networkpolicies.API_VERSION
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return networkpolicies.set_defaults_network_policy(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return networkpolicies.validate_network_policy(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return networkpolicies.validate_network_policy_update(new, old)


class ServiceCIDRStrategy(BaseStrategy):
    kind: ClassVar[str] = "ServiceCIDR"
    resource: ClassVar[str] = "servicecidrs"
    group: ClassVar[str] = servicecidrs.GROUP
    api_version: ClassVar[str] = servicecidrs.API_VERSION
    namespaced: ClassVar[bool] = False

    def prepare_for_create(self, obj: Obj) -> Obj:
        obj["status"] = {}
        return obj

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        new["status"] = old.get("status") or {}
        return new

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return servicecidrs.validate_service_cidr(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return servicecidrs.validate_service_cidr_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return servicecidrs.validate_service_cidr_status_update(new, old)


class IPAddressStrategy(BaseStrategy):
    kind: ClassVar[str] = "IPAddress"
    resource: ClassVar[str] = "ipaddresses"
    group: ClassVar[str] = servicecidrs.GROUP
    api_version: ClassVar[str] = servicecidrs.API_VERSION
    namespaced: ClassVar[bool] = False

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return servicecidrs.validate_ip_address(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return servicecidrs.validate_ip_address_update(new, old)
