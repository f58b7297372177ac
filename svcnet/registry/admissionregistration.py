"""Strategies for admissionregistration.k8s.io/v1 ValidatingWebhookConfigurations and
MutatingWebhookConfigurations: wiring of :mod:`svcnet.api.admissionregistration` into the
generic registry.

After pkg/registry/admissionregistration/{validating,mutating}webhookconfiguration/strategy.go:
cluster-scoped, defaulted on create and update (as decoding defaults them upstream),
generation 1 on create and bumped when ``webhooks`` change, no status. Serving the
configurations is all this does; calling the webhooks they name is the admission
dispatcher's job, which reads them through :mod:`svcnet.apiserver.webhookconfigs`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from svcnet.api import admissionregistration as admreg
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

__all__ = ["MutatingWebhookConfigurationStrategy", "ValidatingWebhookConfigurationStrategy"]

Obj = dict[str, Any]


class _WebhookConfigurationStrategy(BaseStrategy):
    group: ClassVar[str] = admreg.GROUP
    api_version: ClassVar[str] = admreg.API_VERSION
    namespaced: ClassVar[bool] = False
    has_generation: ClassVar[bool] = True

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return admreg.webhooks_changed(new, old)


class ValidatingWebhookConfigurationStrategy(_WebhookConfigurationStrategy):
    kind: ClassVar[str] = admreg.VALIDATING_KIND
    resource: ClassVar[str] = "validatingwebhookconfigurations"

    def default(self, obj: Obj) -> Obj:
        return admreg.set_defaults_validating_webhook_configuration(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return admreg.validate_validating_webhook_configuration(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return admreg.validate_validating_webhook_configuration_update(new, old)


class MutatingWebhookConfigurationStrategy(_WebhookConfigurationStrategy):
    kind: ClassVar[str] = admreg.MUTATING_KIND
    resource: ClassVar[str] = "mutatingwebhookconfigurations"

    def default(self, obj: Obj) -> Obj:
        return admreg.set_defaults_mutating_webhook_configuration(obj)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return admreg.validate_mutating_webhook_configuration(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return admreg.validate_mutating_webhook_configuration_update(new, old)
