"""Serving custom resources: what the stored CustomResourceDefinitions say, in every process.

Theory of operation (after apiextensions-apiserver's ``crdHandler`` and its discovery
controller)
-----------------------------------------------------------------------------------------------
Every serving process (a server, each of its ``--workers``, every server on a shared etcd)
learns of CRDs from its own watch of the store (the CRD registry's watch cache), never from a
call made in another process, so a CRD written through any of them is served by all of them.
:class:`CustomResources` lists the CRDs, then follows their watch (relisting after a failed
watch); for each CRD it keeps one :class:`~svcnet.registry.generic.Registry` (keyed under
``/registry/<group>/<plural>/``, as upstream's storage) whose strategy is rebuilt from the CRD
at each change (:func:`svcnet.registry.customresources.custom_resource_strategy`), and it
publishes, in the handlers' table of served resources, one entry per served version while the
CRD is ``Established``, under its accepted names. Objects are stored at the storage version
and served at any served version with that version's ``apiVersion`` (conversion ``None``).
Requests for a CRD that is not established, or for a version it does not serve, are 404s.

Discovery reads :attr:`CustomResources.resources` (names, short names, categories, verbs, the
``status`` and ``scale`` subresources), ``/openapi/v3`` their documents
(:meth:`openapi_documents`: the schemas ``kubectl explain`` reads); Tables use the
version's ``additionalPrinterColumns`` (:func:`svcnet.apiserver.tables.set_custom_columns`).
The body of a request is decoded by the version's schema: ``metadata`` as ObjectMeta, the
rest pruned (:func:`svcnet.api.crschema.decode_custom_resource`), so unknown fields are
reported as fieldValidation asks. ``/scale``, when declared, reads and writes the replicas at
the paths the CRD names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from svcnet.api import crds
from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.crschema import decode_custom_resource
from svcnet.api.schema import Decoded
from svcnet.apiserver import openapi, tables
from svcnet.apiserver.common import Served
from svcnet.apiserver.resources import ALL_VERBS, Resource, Subresource, scale_subresource
from svcnet.registry.customresources import custom_resource_strategy
from svcnet.registry.generic import AdmissionWebhooks, Admit, Charge, Registry
from svcnet.storage.interface import EventType, Store
from svcnet.util.clock import Clock

__all__ = ["CustomResources"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_STATUS_VERBS = ("get", "patch", "update")
_RETRY_SECONDS = 1.0


def _resources_of(crd: Mapping[str, Any]) -> list[Resource]:
    """The discovery entries of an established CRD: one per served version."""
    spec = map_of(crd, "spec")
    names = map_of(map_of(crd, "status"), "acceptedNames")
    group = str_of(spec, "group")
    out = []
    for version in list_of(spec, "versions"):
        if not isinstance(version, Mapping) or version.get("served") is not True:
            continue
        subresources = map_of(version, "subresources")
        subs = ((*((scale_subresource(),) if "scale" in subresources else ()),
                 *((Subresource("status", str_of(names, "kind"), _STATUS_VERBS),)
                   if "status" in subresources else ())))
        out.append(Resource(group, str_of(version, "name"), str_of(names, "kind"),
                            str_of(names, "plural"), str_of(names, "singular"),
                            spec.get("scope") == "Namespaced",
                            short_names=tuple(str(s) for s in list_of(names, "shortNames")),
                            categories=tuple(str(c) for c in list_of(names, "categories")),
                            verbs=ALL_VERBS, subresources=subs,
                            storage_group_version=f"{group}/{crds.storage_version(crd)}"))
    return out


class CustomResources:
    """The custom resources this process serves (see the module doc)."""

    def __init__(self, store: Store, crd_registry: Registry,
                 served: dict[tuple[str, str, str], Served], *, clock: Clock,
                 admit: Admit | None = None, charge: Charge | None = None,
                 webhooks: AdmissionWebhooks | None = None) -> None:
        self._store = store
        self._crds = crd_registry
        self._served = served
        #: The built-in resources' keys: never taken over, never removed (a CRD stored
        #: before the strategy refused such names stays unserved).
        self._built_in = frozenset((group, resource) for group, _v, resource in served)
        self._clock = clock
        self._admit = admit
        #: The ResourceQuota admission's charge (``count/<plural>.<group>``), for namespaced
        #: custom resources.
        self._charge = charge
        self._webhooks = webhooks
        self._registries: dict[str, Registry] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._by_crd: dict[str, list[Resource]] = {}
        self._schemas: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        self._openapi: dict[str, openapi.OpenAPIDocument] | None = None
        #: What discovery lists besides the built-in catalogue.
        self.resources: tuple[Resource, ...] = ()

    def registry(self, crd_name: str) -> Registry | None:
        return self._registries.get(crd_name)

    async def load(self) -> int:
        """Serve every stored CRD now; the revision to watch from."""
        page = await self._crds.list("")
        names = set()
        for crd in page.items:
            names.add(str_of(map_of(crd, "metadata"), "name"))
            self.apply(crd)
        for gone in set(self._by_crd) - names:
            self.remove(gone)
        return int(page.resource_version)

    async def run(self) -> None:
        """Follow the CRDs until cancelled."""
        revision = 0
        while True:
            try:
                if not revision:
                    revision = await self.load()
                async for event, obj, _prev in self._crds.watch("", revision):
                    revision = int(str_of(map_of(obj, "metadata"), "resourceVersion") or
                                   revision)
                    if event == EventType.DELETED:
                        self.remove(str_of(map_of(obj, "metadata"), "name"))
                    else:
                        self.apply(obj)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a failed watch: list again
                log.info("watch of customresourcedefinitions ended (%s); listing again", e)
                revision = 0
                await self._clock.sleep(_RETRY_SECONDS)

    def apply(self, crd: Mapping[str, Any]) -> None:
        """Serve ``crd`` as it is now (or stop serving it when it is not established)."""
        name = str_of(map_of(crd, "metadata"), "name")
        self.remove(name, keep_registry=True)
        if not crds.established(crd):
            return
        strategy = custom_resource_strategy(crd)
        registry = self._registries.get(name)
        if registry is None:  # group and plural are immutable: the same keys for good
            registry = Registry(self._store, strategy, clock=self._clock, admit=self._admit,
                                charge=self._charge if strategy.namespaced else None,
                                webhooks=self._webhooks)
            self._registries[name] = registry
        else:
            registry.strategy = strategy
        resources = [r for r in _resources_of(crd) if (r.group, r.resource) not in self._built_in]
        for res in resources:
            schema = crds.version_schema(crd, res.version)

            def decoder(body: Obj, schema: Mapping[str, Any] = schema,
                        res: Resource = res) -> Decoded:
                return decode_custom_resource(body, schema, api_version=res.api_version,
                                              kind=res.kind)

            self._served[(res.group, res.version, res.resource)] = Served(
                res.group, res.version, res.resource, res.kind, res.namespaced, registry,
                {s.name: frozenset(s.verbs) for s in res.subresources}, decoder=decoder,
                scale_paths=crds.scale_paths(crd, res.version))
            tables.set_custom_columns(res.api_version, res.kind,
                                      crds.printer_columns(crd, res.version))
            self._schemas[(res.group, res.version, res.resource)] = schema
        self._by_crd[name] = resources
        self._publish()

    def remove(self, name: str, *, keep_registry: bool = False) -> None:
        for res in self._by_crd.pop(name, []):
            self._served.pop((res.group, res.version, res.resource), None)
            self._schemas.pop((res.group, res.version, res.resource), None)
            tables.set_custom_columns(res.api_version, res.kind, None)
        if not keep_registry:
            registry = self._registries.pop(name, None)
            if registry is not None:
                # Its open watches end (upstream destroys the CRD's storage): a client
                # watching the resource of a deleted CRD must not receive a new one's events.
                task = asyncio.get_running_loop().create_task(registry.watch_cache.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self._publish()

    def _publish(self) -> None:
        self.resources = tuple(r for rs in self._by_crd.values() for r in rs)
        self._openapi = None

    def openapi_documents(self) -> dict[str, openapi.OpenAPIDocument]:
        """The OpenAPI v3 documents of the custom resources' group versions (built on first
        use after a change)."""
        if self._openapi is None:
            self._openapi = openapi.custom_documents(
                [(r, dict(self._schemas.get((r.group, r.version, r.resource)) or {}))
                 for r in self.resources])
        return self._openapi
