"""Strategies of the four RBAC kinds: pure rules from :mod:`svcnet.api.rbac`, plus the
escalation check (pkg/registry/rbac/*/policybased) on every create and update.

The check needs to know who writes and what they may do, which only the API server knows: it
is given to each strategy as an async callable (``check(resource, namespace, obj, old)``), raising
a 403 StatusError. Without one (tests of the pure pipeline), writes are not checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from svcnet.allocators.operation import Operation
from svcnet.api import rbac
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

Obj = dict[str, Any]
EscalationCheck = Callable[[str, str, Mapping[str, Any], Mapping[str, Any] | None],
                           Awaitable[None]]


class _RBACStrategy(BaseStrategy):
    group: ClassVar[str] = rbac.GROUP
    api_version: ClassVar[str] = f"{rbac.GROUP}/v1"
    is_binding: ClassVar[bool] = False

    def __init__(self, check: EscalationCheck | None = None) -> None:
        self._check = check

    def default(self, obj: Obj) -> Obj:
        return rbac.set_defaults_binding(obj) if self.is_binding else obj

    def validate_create(self, obj: Obj) -> list[FieldError]:
        if self.is_binding:
            return rbac.validate_binding(obj, self.namespaced)
        return rbac.validate_role(obj, self.namespaced)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        if self.is_binding:
            return rbac.validate_binding_update(new, old, self.namespaced)
        return rbac.validate_role_update(new, old, self.namespaced)

    async def _escalation(self, obj: Obj, old: Obj | None) -> None:
        if self._check is not None:
            namespace = str((obj.get("metadata") or {}).get("namespace") or "")
            await self._check(self.resource, namespace, obj, old)

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        await self._escalation(obj, None)
        return obj

    async def begin_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        await self._escalation(new, old)
        return new


class RoleStrategy(_RBACStrategy):
    kind: ClassVar[str] = "Role"
    resource: ClassVar[str] = "roles"


class ClusterRoleStrategy(_RBACStrategy):
    kind: ClassVar[str] = "ClusterRole"
    resource: ClassVar[str] = "clusterroles"
    namespaced: ClassVar[bool] = False


class RoleBindingStrategy(_RBACStrategy):
    kind: ClassVar[str] = "RoleBinding"
    resource: ClassVar[str] = "rolebindings"
    is_binding: ClassVar[bool] = True


class ClusterRoleBindingStrategy(_RBACStrategy):
    kind: ClassVar[str] = "ClusterRoleBinding"
    resource: ClassVar[str] = "clusterrolebindings"
    namespaced: ClassVar[bool] = False
    is_binding: ClassVar[bool] = True
