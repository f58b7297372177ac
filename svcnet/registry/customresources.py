"""CustomResourceDefinitions and the custom resources they define, in the generic registry.

Theory of operation
-------------------
:class:`CustomResourceDefinitionStrategy` wires :mod:`svcnet.api.crds` into the generic
registry (``pkg/registry/customresourcedefinition/strategy.go``: cluster-scoped, with a
generation and a ``/status``). :class:`CustomResourceDefinitionRegistry` adds what upstream's
CRD ``REST.Delete`` (``etcd.go``) does: the first DELETE of a CRD adds the
:data:`~svcnet.api.crds.FINALIZER` and the ``Terminating`` condition, so the CRD stays (marked)
until the CRD controller (:mod:`svcnet.controllers.crd`) has deleted every object of its kind
through the API and removed the finalizer.

:func:`custom_resource_strategy` makes the strategy of one CRD's objects
(``pkg/registry/customresource/strategy.go`` and ``status_strategy.go``), from the CRD as
stored: at the storage version, namespaced or not, with a generation that every change but
metadata bumps (and but ``status`` when the status subresource is on: then a main write keeps
the stored status and a ``/status`` write changes only the status), ObjectMeta validated (a
DNS-subdomain name) and the object validated and defaulted against the storage version's
schema (:mod:`svcnet.api.crschema`; pruning happens when the request is decoded, where the
pruned fields are reported), then against its ``x-kubernetes-validations`` rules
(:mod:`svcnet.api.crcel`, compiled once per schema; an update's and a ``/status`` write's
transition rules see the stored object as ``oldSelf``). While its CRD is terminating, new
objects are refused (405, as upstream's ``crdHandler``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import crcel, crds, crschema
from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import FieldError, StatusError
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import name_is_dns_subdomain
from svcnet.registry.generic import BaseStrategy, Preconditions, Registry
from svcnet.util.clock import rfc3339
from svcnet.util.jsoncopy import json_copy

__all__ = ["CustomResourceDefinitionRegistry", "CustomResourceDefinitionStrategy",
           "CustomResourceStrategy", "custom_resource_strategy"]

Obj = dict[str, Any]


class CustomResourceDefinitionStrategy(BaseStrategy):
    kind: ClassVar[str] = "CustomResourceDefinition"
    resource: ClassVar[str] = "customresourcedefinitions"
    group: ClassVar[str] = crds.GROUP
    api_version: ClassVar[str] = crds.API_VERSION
    namespaced: ClassVar[bool] = False
    has_generation: ClassVar[bool] = True

    def __init__(self, built_in: Collection[tuple[str, str]] = ()) -> None:
        #: The (group, plural) pairs the server serves itself: no CRD may take one.
        self.built_in = frozenset(built_in)

    def default(self, obj: Obj) -> Obj:
        return crds.set_defaults(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return crds.prepare_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return crds.prepare_for_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return crds.prepare_for_status_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return [*crds.validate_crd(obj), *crds.validate_not_built_in(obj, self.built_in)]

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return crds.validate_crd_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return crds.validate_crd_status_update(new, old)


class CustomResourceDefinitionRegistry(Registry):
    """The CRD registry, whose DELETE first adds the cleanup finalizer (see the module doc)."""

    async def delete(self, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False, grace_period: int | None = None,
                     propagation_policy: str = "") -> Obj:
        if not dry_run:
            current = await self.get(namespace, name)
            if preconditions is not None:
                self._check_preconditions(current, preconditions)
            meta = map_of(current, "metadata")
            if not meta.get("deletionTimestamp") and crds.FINALIZER not in list_of(
                    meta, "finalizers"):
                # Admitted before anything changes (upstream's update that adds the
                # finalizer calls the delete's admission, and so does the delete after it).
                await self._admit_delete(namespace, name, current, dry_run)
                now = rfc3339(self.clock.now())

                def add_finalizer(crd: Obj) -> Obj:
                    crd_meta = crd.setdefault("metadata", {})
                    crd_meta["finalizers"] = [*list_of(crd_meta, "finalizers"), crds.FINALIZER]
                    crds.set_condition(crd, "Terminating", "True", "InstanceDeletionPending",
                                       "CustomResourceDefinition marked for deletion; "
                                       "CustomResource deletion will begin soon", now)
                    return crd

                await self.guaranteed_update(namespace, name, add_finalizer)
        return await super().delete(namespace, name, preconditions=None, dry_run=dry_run,
                                    grace_period=grace_period,
                                    propagation_policy=propagation_policy)


class CustomResourceStrategy(BaseStrategy):
    """The objects of one CRD (made by :func:`custom_resource_strategy`)."""

    has_generation: ClassVar[bool] = True

    def __init__(self, crd: Mapping[str, Any]) -> None:
        version = crds.storage_version(crd)
        self.schema: Mapping[str, Any] = crds.version_schema(crd, version)
        subresources: Mapping[str, Any] = {}
        for v in list_of(map_of(crd, "spec"), "versions"):
            if isinstance(v, Mapping) and v.get("name") == version:
                subresources = map_of(v, "subresources")
        self.status_enabled = "status" in subresources
        #: The schema's CEL rules, compiled (once per schema: crcel caches them); None: none.
        self.rules = crcel.rules_for(self.schema)
        self.terminating = bool(map_of(crd, "metadata").get("deletionTimestamp"))

    def default(self, obj: Obj) -> Obj:
        crschema.apply_defaults(obj, self.schema)
        # Stored at the storage version whatever version it came in at (conversion None).
        obj["apiVersion"] = self.api_version
        return obj

    def prepare_for_create(self, obj: Obj) -> Obj:
        if self.status_enabled:
            obj.pop("status", None)
        return obj

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        if self.status_enabled:
            if "status" in old:
                new["status"] = json_copy(old["status"])
            else:
                new.pop("status", None)
        return new

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        if self.terminating:
            raise StatusError(405, "MethodNotAllowed",
                              "create not allowed while custom resource definition is "
                              "terminating")
        return obj

    def _validate(self, errs: list[FieldError], obj: Obj,
                  old: Obj | None = None) -> list[FieldError]:
        """``errs`` (the metadata's) with the schema's errors and then the rules'."""
        errs = errs + crschema.validate(obj, self.schema)
        if self.rules is not None:
            errs.extend(crcel.validate(self.rules, obj, old, other_errors=errs))
        return errs

    def validate_create(self, obj: Obj) -> list[FieldError]:
        errs = validate_object_meta(map_of(obj, "metadata"), requires_namespace=self.namespaced,
                                    name_fn=name_is_dns_subdomain, kube_finalizers=False)
        return self._validate(errs, obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"),
                                           kube_finalizers=False)
        return self._validate(errs, new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        ignored = ("metadata", "status") if self.status_enabled else ("metadata",)

        def content(obj: Obj) -> Obj:
            return {k: v for k, v in obj.items() if k not in ignored}
        return content(new) != content(old)


def custom_resource_strategy(crd: Mapping[str, Any]) -> CustomResourceStrategy:
    """The strategy of ``crd``'s objects: a class per CRD carries the resource's names."""
    spec = map_of(crd, "spec")
    names = map_of(spec, "names")
    group = str_of(spec, "group")
    cls = type(f"{str_of(names, 'kind')}Strategy", (CustomResourceStrategy,), {
        "kind": str_of(names, "kind"), "resource": str_of(names, "plural"), "group": group,
        "api_version": f"{group}/{crds.storage_version(crd)}",
        "namespaced": spec.get("scope") == "Namespaced"})
    strategy: CustomResourceStrategy = cls(crd)
    return strategy
