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
The server's own bookkeeping is written :func:`without_webhooks`: its lease in
``kube-system`` and the ``default/kubernetes`` endpoints (upstream writes its lease straight to
storage), the objects it seeds at start, and the node join Secrets. A webhook that fails or
hangs on such writes (a ``*/*`` rule whose pod is not back after a restart) must not keep the
server from starting, from renewing its lease, or nodes from joining; the cluster's
administrator could otherwise not reach the API to remove it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from svcnet.api import schema
from svcnet.api.errors import StatusError, internal_error
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

_internal: contextvars.ContextVar[bool] = contextvars.ContextVar("svcnet_internal_write",
                                                                default=False)


@contextlib.contextmanager
def without_webhooks() -> Iterator[None]:
    """The writes made inside (by this task and the tasks it starts) call no webhook."""
    token = _internal.set(True)
    try:
        yield
    finally:
        _internal.reset(token)


def decoded(obj: Obj, attrs: AdmissionAttributes) -> Obj:
    """A patched object of a built-in kind decoded as a request body is (unknown fields
    dropped, wrong types refused), as upstream decodes a webhook's result into its typed
    object; a result that does not decode is upstream's 500. Custom resources are kept as
    patched."""
    if not isinstance(obj, dict):
        raise internal_error("a mutating webhook's patch made the object a JSON "
                             f"{type(obj).__name__}, not an object")
    api_version = f"{attrs.group}/{attrs.version}" if attrs.group else attrs.version
    type_name = schema.schema().type_for(api_version, attrs.kind)
    if type_name is None:
        return obj
    try:
        return schema.decode_as(obj, type_name, kind=attrs.kind, api_version=api_version).obj
    except StatusError as e:
        raise internal_error(e.message) from None


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
        if configs.ready and configs.empty:
            return False
        return not _internal.get() and (not configs.ready or bool(configs.mutating()))

    @property
    def validating(self) -> bool:
        configs = self._configs
        if configs.ready and configs.empty:
            return False
        return not _internal.get() and (not configs.ready or bool(configs.validating()))

    async def mutate(self, attrs: AdmissionAttributes, dry_run: bool) -> Obj:
        await self._read_unless_ready()
        out = await self.dispatcher.mutate(self._webhook_attributes(attrs, dry_run))
        if out is None or out is attrs.new:
            return attrs.new
        return decoded(out, attrs)

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
