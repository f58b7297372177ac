"""Strategies for ConfigMaps, Secrets and ServiceAccounts: wiring of :mod:`svcnet.api.configs`
and :mod:`svcnet.api.serviceaccounts` into the generic registry.

Theory of operation: upstream's ``pkg/registry/core/{configmap,secret,serviceaccount}/
strategy.go``. None of the three kinds has a spec, a status or a generation; deletion is
immediate. A Secret's ``stringData`` is folded into ``data`` by :meth:`SecretStrategy.default`,
which runs on every create and update (where upstream's v1 → internal conversion does it), so
a patch or an apply that sets ``stringData`` works as it does upstream.
"""

from __future__ import annotations

from typing import Any, ClassVar

from svcnet.api import configs, serviceaccounts
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

Obj = dict[str, Any]

__all__ = ["ConfigMapStrategy", "SecretStrategy", "ServiceAccountStrategy"]


class ConfigMapStrategy(BaseStrategy):
    kind: ClassVar[str] = "ConfigMap"
    resource: ClassVar[str] = "configmaps"

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return configs.validate_config_map(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return configs.validate_config_map_update(new, old)


class SecretStrategy(BaseStrategy):
    kind: ClassVar[str] = "Secret"
    resource: ClassVar[str] = "secrets"

    def default(self, obj: Obj) -> Obj:
        return configs.set_defaults_secret(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return configs.prepare_secret_for_update(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return configs.validate_secret(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return configs.validate_secret_update(new, old)

    def warnings_on_create(self, obj: Obj) -> list[str]:
        return configs.secret_warnings(obj)

    def warnings_on_update(self, new: Obj, old: Obj) -> list[str]:
        return configs.secret_warnings(new)


class ServiceAccountStrategy(BaseStrategy):
    kind: ClassVar[str] = "ServiceAccount"
    resource: ClassVar[str] = "serviceaccounts"

    def prepare_for_create(self, obj: Obj) -> Obj:
        return serviceaccounts.prepare_service_account(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return serviceaccounts.prepare_service_account(new)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return serviceaccounts.validate_service_account(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return serviceaccounts.validate_service_account_update(new, old)
