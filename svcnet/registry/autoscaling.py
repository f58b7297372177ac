"""Strategy for autoscaling HorizontalPodAutoscalers: wiring of :mod:`svcnet.api.autoscaling`
into the generic registry (pkg/registry/autoscaling/horizontalpodautoscaler/strategy.go).

Stored at autoscaling/v2 (the storage version, as kube-apiserver's); autoscaling/v1 is the same
registry seen through :mod:`svcnet.registry.versions`. An autoscaler has a ``/status``
subresource (written by the autoscaling controller), a spec change bumps
``metadata.generation``, and the decoding defaults apply on create and update.
"""

from __future__ import annotations

from typing import Any, ClassVar

from svcnet.api import autoscaling
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

__all__ = ["HorizontalPodAutoscalerStrategy"]

Obj = dict[str, Any]


class HorizontalPodAutoscalerStrategy(BaseStrategy):
    kind: ClassVar[str] = autoscaling.KIND
    resource: ClassVar[str] = "horizontalpodautoscalers"
    group: ClassVar[str] = autoscaling.GROUP
    api_version: ClassVar[str] = autoscaling.API_VERSION
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return autoscaling.set_defaults_hpa(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return autoscaling.prepare_hpa_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return autoscaling.prepare_hpa_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return autoscaling.validate_hpa(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return autoscaling.validate_hpa_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return autoscaling.prepare_hpa_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return autoscaling.validate_hpa_status_update(new, old)
