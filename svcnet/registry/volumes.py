"""Strategies for core/v1 PersistentVolumes and PersistentVolumeClaims: wiring of
:mod:`svcnet.api.volumes` into the generic registry.

Neither kind has a generation. A new object goes through the StorageObjectInUseProtection
admission first (the protection finalizer, which the binder's protection half removes once the
object is no longer in use: :mod:`svcnet.controllers.volumebinder`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import volumes
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

__all__ = ["PersistentVolumeClaimStrategy", "PersistentVolumeStrategy"]

Obj = dict[str, Any]


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

    def default(self, obj: Obj) -> Obj:
        return volumes.set_defaults_persistent_volume_claim(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return volumes.validate_persistent_volume_claim(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return volumes.validate_persistent_volume_claim_update(new, old)
