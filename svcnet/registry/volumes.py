"""Strategies for core/v1 PersistentVolumes and PersistentVolumeClaims and storage.k8s.io/v1
StorageClasses: wiring of :mod:`svcnet.api.volumes` and :mod:`svcnet.api.storageclasses` into
the generic registry.

None of the kinds has a generation. A new claim goes through the DefaultStorageClass admission
(``plugin/pkg/admission/storage/storageclass/setdefault``: a claim that asks for no class gets
the default one; the strategy is handed a lister of the stored classes, as the plugin is handed
an informer, and lists only for a claim without a class), then, as every new claim or volume,
the StorageObjectInUseProtection one (the protection finalizer, which the binder's protection
half removes once the object is no longer in use: :mod:`svcnet.controllers.volumebinder`),
kube-apiserver's plugin order. StorageClasses (``pkg/registry/storage/storageclass``) are
cluster-scoped, defaulted on create and update, and validated on update by the create rules
and the update rules both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import limitranges, storageclasses, volumes
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy
from svcnet.registry.quotas import LimitRangeLister

__all__ = ["PersistentVolumeClaimStrategy", "PersistentVolumeStrategy", "StorageClassLister",
           "StorageClassStrategy"]

Obj = dict[str, Any]
#: Every stored StorageClass (for the DefaultStorageClass admission).
StorageClassLister = Callable[[], Awaitable[list[Obj]]]


class _VolumeStrategy(BaseStrategy):
    finalizer: ClassVar[str]

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        return volumes.add_protection_finalizer(obj, self.finalizer)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return volumes.prepare_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return volumes.prepare_for_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return volumes.prepare_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return volumes.validate_status_update(new, old)


class PersistentVolumeStrategy(_VolumeStrategy):
    kind: ClassVar[str] = "PersistentVolume"
    resource: ClassVar[str] = "persistentvolumes"
    namespaced: ClassVar[bool] = False
    finalizer: ClassVar[str] = volumes.PROTECTION_PV

    def default(self, obj: Obj) -> Obj:
        return volumes.set_defaults_persistent_volume(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return volumes.validate_persistent_volume(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return volumes.validate_persistent_volume_update(new, old)


class PersistentVolumeClaimStrategy(_VolumeStrategy):
    kind: ClassVar[str] = "PersistentVolumeClaim"
    resource: ClassVar[str] = "persistentvolumeclaims"
    finalizer: ClassVar[str] = volumes.PROTECTION_PVC

    def __init__(self, storage_classes: StorageClassLister | None = None,
                 limit_ranges: LimitRangeLister | None = None) -> None:
        #: How the DefaultStorageClass admission lists classes (None: no admission).
        self._storage_classes = storage_classes
        #: How the LimitRanger admission lists a namespace's LimitRanges (None: none).
        self._limit_ranges = limit_ranges

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        """LimitRanger (its checks: claims get no defaults), DefaultStorageClass, then
        StorageObjectInUseProtection."""
        if self._limit_ranges is not None:
            meta = obj.get("metadata") or {}
            requested = meta.get("name") if op.requested_name is None else op.requested_name
            limitranges.admit_claim_limits(
                obj, await self._limit_ranges(str(meta.get("namespace") or "")),
                str(requested or meta.get("generateName") or "Unknown"))
        if self._storage_classes is not None and not storageclasses.claim_has_class(obj):
            obj = storageclasses.admit_claim_default_class(obj, await self._storage_classes())
        return await super().begin_create(op, obj)

    def default(self, obj: Obj) -> Obj:
        return volumes.set_defaults_persistent_volume_claim(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return volumes.validate_persistent_volume_claim(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return volumes.validate_persistent_volume_claim_update(new, old)


class StorageClassStrategy(BaseStrategy):
    kind: ClassVar[str] = "StorageClass"
    resource: ClassVar[str] = "storageclasses"
    group: ClassVar[str] = storageclasses.GROUP
    api_version: ClassVar[str] = storageclasses.API_VERSION
    namespaced: ClassVar[bool] = False

    def default(self, obj: Obj) -> Obj:
        return storageclasses.set_defaults_storage_class(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return storageclasses.validate_storage_class(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return storageclasses.validate_storage_class_update(new, old)
