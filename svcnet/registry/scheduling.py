"""scheduling.k8s.io/v1 PriorityClasses in the generic registry: the strategy, the Priority
admission of class writes, and the refusal to delete a system class.

Theory of operation
-------------------
pkg/registry/scheduling/priorityclass (strategy.go, storage/storage.go) over
:mod:`svcnet.api.priorityclasses`:

* cluster-scoped; defaulted (``preemptionPolicy``) on create and update; generation 1 on
  create, never bumped (the kind has no spec);
* a create or update that makes a class ``globalDefault`` goes through the Priority
  admission's class half (:func:`svcnet.api.podpriority.admit_priority_class`), which needs
  every stored class: the strategy is handed a lister for them, as the plugin is handed an
  informer. Upstream admits after validation, so a write that is invalid gets its 422 first:
  the admission step here (which runs before validation, where the registry can still await
  the store) steps aside for an invalid object and lets validation refuse it;
* ``DELETE`` of ``system-node-critical`` or ``system-cluster-critical`` is 403 (``this is a
  system priority class and cannot be deleted``). The server creates them when missing at
  every start (api/priorityclasses.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import errors, priorityclasses
from svcnet.api.errors import FieldError
from svcnet.api.podpriority import admit_priority_class
from svcnet.registry.generic import BaseStrategy, Preconditions, Registry

__all__ = ["PriorityClassLister", "PriorityClassRegistry", "PriorityClassStrategy"]

Obj = dict[str, Any]
#: Every stored PriorityClass (for the Priority admission).
PriorityClassLister = Callable[[], Awaitable[list[Obj]]]


class PriorityClassStrategy(BaseStrategy):
    kind: ClassVar[str] = "PriorityClass"
    resource: ClassVar[str] = "priorityclasses"
    group: ClassVar[str] = priorityclasses.GROUP
    api_version: ClassVar[str] = priorityclasses.API_VERSION
    namespaced: ClassVar[bool] = False
    has_generation: ClassVar[bool] = True

    def __init__(self, classes: PriorityClassLister | None = None) -> None:
        #: How the admission lists PriorityClasses (None: no admission).
        self._classes = classes

    def default(self, obj: Obj) -> Obj:
        return priorityclasses.set_defaults_priority_class(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return priorityclasses.validate_priority_class(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return priorityclasses.validate_priority_class_update(new, old)

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        if self._classes is not None and not self.validate_create(obj):
            admit_priority_class(obj, await self._classes(), update=False)
        return obj

    async def begin_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        if self._classes is not None and not self.validate_update(new, old):
            admit_priority_class(new, await self._classes(), update=True)
        return new


class PriorityClassRegistry(Registry):
    """PriorityClasses: :class:`Registry` that will not delete a system class."""

    async def delete(self, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False, grace_period: int | None = None,
                     propagation_policy: str = "") -> Obj:
        if priorityclasses.is_system_priority_class(name):
            raise errors.forbidden_error(self.strategy.resource, name,
                                         priorityclasses.SYSTEM_CLASS_DELETE_REFUSAL,
                                         self.strategy.group)
        return await super().delete(namespace, name, preconditions=preconditions,
                                    dry_run=dry_run, grace_period=grace_period,
                                    propagation_policy=propagation_policy)
