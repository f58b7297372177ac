"""Strategy for policy/v1 PodDisruptionBudgets: wiring of :mod:`svcnet.api.policy` into the
generic registry (pkg/registry/policy/poddisruptionbudget/strategy.go).

A budget has a ``/status`` subresource, written by the disruption controller and by evictions
(which record the pods they are about to delete); a spec change bumps ``metadata.generation``,
and evictions wait (429) until the controller has observed it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from svcnet.api import policy
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

__all__ = ["PodDisruptionBudgetStrategy"]

Obj = dict[str, Any]


class PodDisruptionBudgetStrategy(BaseStrategy):
    kind: ClassVar[str] = "PodDisruptionBudget"
    resource: ClassVar[str] = "poddisruptionbudgets"
    group: ClassVar[str] = policy.GROUP
    api_version: ClassVar[str] = policy.API_VERSION
    has_generation: ClassVar[bool] = True

    def prepare_for_create(self, obj: Obj) -> Obj:
        return policy.prepare_pdb_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return policy.prepare_pdb_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return policy.validate_pdb(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return policy.validate_pdb_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return policy.prepare_pdb_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return policy.validate_pdb_status_update(new, old)
