"""Strategies for core/v1 LimitRanges and ResourceQuotas (``pkg/registry/core/limitrange``
and ``pkg/registry/core/resourcequota``): wiring of :mod:`svcnet.api.limitranges` and
:mod:`svcnet.api.resourcequotas` into the generic registry.

Neither kind has a generation. A LimitRange is defaulted and validated on create and update.
A ResourceQuota's ``status`` is the quota controller's and the ResourceQuota admission's: a
create starts with none, an update of the main resource keeps the stored one, and
``/status`` keeps the stored ``spec``. The admissions themselves run elsewhere: the
LimitRanger in the pod and claim strategies, the quota's charge as the registry's last step
before a write (:mod:`svcnet.apiserver.quota`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from svcnet.api import limitranges, resourcequotas, volumes
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

__all__ = ["LimitRangeLister", "LimitRangeStrategy", "ResourceQuotaStrategy"]

Obj = dict[str, Any]
#: The LimitRanges of a namespace (for the LimitRanger admission).
LimitRangeLister = Callable[[str], Awaitable[list[Obj]]]


class LimitRangeStrategy(BaseStrategy):
    kind: ClassVar[str] = "LimitRange"
    resource: ClassVar[str] = "limitranges"

    def default(self, obj: Obj) -> Obj:
        return limitranges.set_defaults_limit_range(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return limitranges.validate_limit_range(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return limitranges.validate_limit_range_update(new, old)


class ResourceQuotaStrategy(BaseStrategy):
    kind: ClassVar[str] = "ResourceQuota"
    resource: ClassVar[str] = "resourcequotas"

    def prepare_for_create(self, obj: Obj) -> Obj:
        obj["status"] = {}
        return obj

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return volumes.prepare_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return resourcequotas.validate_resource_quota(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return resourcequotas.validate_resource_quota_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return volumes.prepare_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return resourcequotas.validate_resource_quota_status_update(new, old)
