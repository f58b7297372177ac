"""Admission webhooks in the write pipeline: the registries' :class:`~svcnet.registry.generic.
AdmissionWebhooks` over the dispatcher and each process's view of the configurations.

Theory of operation
-------------------
kube-apiserver runs the MutatingAdmissionWebhook plugin after its in-tree mutating plugins and
the ValidatingAdmissionWebhook plugin before ResourceQuota (the order of
``pkg/kubeapiserver/options/plugins.go``). Here every registry of a served kind (built-in or
custom) holds one :class:`WebhookAdmission`, which it calls at those two points of a write
(:mod:`svcnet.registry.generic`: create, update, status update, delete). This module only
adapts: who is writing (the request's user), dry run, the served version and kind, the
configurations as this process sees them, and the lookups the dispatcher needs (a namespace's
labels; a Service and its EndpointSlices, for webhooks behind a Service, called at a ready
endpoint since the host namespace the server runs in routes pod IPs but not ClusterIPs).

The configurations come from :class:`~svcnet.apiserver.webhookconfigs.WebhookConfigurations`,
kept from this process's own watch. While that view is not ready (start-up, a broken watch),
a write that could meet a webhook reads both kinds from the store instead, so no write skips
a webhook configured before it. With the view ready and empty, which is the usual case,
:attr:`~WebhookAdmission.mutating` and :attr:`~WebhookAdmission.validating` are False and a
write awaits nothing more.

Writes the server makes itself (controllers run over the loopback and are users; only seeding
and bootstrap have none) are sent as ``system:apiserver``, as the dispatcher does for no user.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from svcnet.api.errors import StatusError
from svcnet.apiserver.auth import current_user
from svcnet.apiserver.resources import Resource
from svcnet.apiserver.webhookclient import endpoint_resolver
from svcnet.apiserver.webhookconfigs import WebhookConfigurations
from svcnet.apiserver.webhookdispatch import WebhookDispatcher
from svcnet.apiserver.webhooks import ServedEquivalents, WebhookAttributes
from svcnet.registry.generic import AdmissionAttributes, Registry

__all__ = ["WebhookAdmission"]

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class WebhookAdmission:
    """One per serving process; given to every registry (``webhooks=``)."""

    def __init__(self, configs: WebhookConfigurations, registry: Callable[[str], Registry],
                 custom_resources: Callable[[], Sequence[Resource]]) -> None:
        self._configs = configs
        #: A registry by its key in the server's table (late: built with the others).
        self._registry = registry
        #: Both kinds as last read from the store, for while the view is not ready.
        self._read: tuple[list[Obj], list[Obj]] = ([], [])
        self.dispatcher = WebhookDispatcher(
            mutating=self._mutating_configs, validating=self._validating_configs,
            namespace_labels=self._namespace_labels,
            resolve_service=endpoint_resolver(self._service, self._slices),
            equivalents=ServedEquivalents(custom_resources))

    # -- AdmissionWebhooks ----------------------------------------------------------------

    @property
    def mutating(self) -> bool:
        configs = self._configs
        return not configs.ready or (not configs.empty and bool(configs.mutating()))

    @property
    def validating(self) -> bool:
        configs = self._configs
        return not configs.ready or (not configs.empty and bool(configs.validating()))

    async def mutate(self, attrs: AdmissionAttributes, dry_run: bool) -> Obj:
        await self._read_unless_ready()
        out = await self.dispatcher.mutate(self._webhook_attributes(attrs, dry_run))
        return attrs.new if out is None else out

    async def validate(self, attrs: AdmissionAttributes, dry_run: bool) -> None:
        await self._read_unless_ready()
        await self.dispatcher.validate(self._webhook_attributes(attrs, dry_run))

    async def close(self) -> None:
        await self.dispatcher.close()

    # -- the dispatcher's inputs ----------------------------------------------------------

    @staticmethod
    def _webhook_attributes(attrs: AdmissionAttributes, dry_run: bool) -> WebhookAttributes:
        options: dict[str, Any] = {"dryRun": ["All"]} if dry_run else {}
        return WebhookAttributes.of(attrs, version=attrs.version, kind=attrs.kind,
                                    dry_run=dry_run, options=options, user=current_user())

    async def _read_unless_ready(self) -> None:
        if not self._configs.ready:
            validating = await self._registry(
                "validatingwebhookconfigurations.admissionregistration.k8s.io").list("")
            mutating = await self._registry(
                "mutatingwebhookconfigurations.admissionregistration.k8s.io").list("")
            self._read = (mutating.items, validating.items)

    def _mutating_configs(self) -> Sequence[Obj]:
        return self._configs.mutating() if self._configs.ready else self._read[0]

    def _validating_configs(self) -> Sequence[Obj]:
        return self._configs.validating() if self._configs.ready else self._read[1]

    async def _namespace_labels(self, name: str) -> Mapping[str, str] | None:
        try:
            namespace = await self._registry("namespaces").get("", name)
        except StatusError as e:
            if e.code == 404:
                return None
            raise
        return dict((namespace.get("metadata") or {}).get("labels") or {})

    async def _service(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self._registry("services").get(namespace, name)
        except StatusError as e:
            if e.code == 404:
                return None
            raise

    async def _slices(self, namespace: str, name: str) -> list[Obj]:
        page = await self._registry("endpointslices.discovery.k8s.io").list(namespace)
        return [s for s in page.items
                if ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
                == name]
