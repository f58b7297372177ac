"""The CustomResourceDefinition controller: names, establishing, and cleanup on delete.

Theory of operation (after apiextensions-apiserver's ``pkg/controller/status``
(naming_controller.go), ``pkg/controller/establish`` and ``pkg/controller/finalizer``
(crd_finalizer.go))
-----------------------------------------------------------------------------------------------
One informer on CRDs, one queue of CRD names, over the API like any client:

* **naming and establishing**: a CRD that is not being deleted gets the status
  :func:`svcnet.api.crds.with_naming_status` computes against the other CRDs in the cache
  (``acceptedNames``, ``NamesAccepted``, ``Established``), written through ``/status`` when it
  changed. When a CRD goes, the others of its group are looked at again (a name it held may
  be free now). Every API process serves a CRD once it reads ``Established`` from the store
  (:mod:`svcnet.apiserver.customresources`).
* **cleanup**: a CRD being deleted with the ``customresourcecleanup.apiextensions.k8s.io``
  finalizer (added by the first DELETE: :mod:`svcnet.registry.customresources`) gets the
  ``Terminating`` condition (``InstanceDeletionInProgress``), then every object of its kind is
  deleted through the API, in every namespace; while some remain (they have finalizers of
  their own) the CRD is looked at again every second, for as long as that takes. Once none
  is left the finalizer is removed, and the server deletes the CRD
  (``InstanceDeletionCompleted`` is not written: the object is gone). A CRD that serves no
  version cannot reach its objects through the API: its finalizer is removed at once and
  its stored objects stay (upstream deletes them from storage directly).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from svcnet.api import crds
from svcnet.api.access import list_of, map_of, meta_of, name_of, str_of
from svcnet.api.errors import StatusError
from svcnet.client.controller import Controller, InformerController, RequeueError
from svcnet.client.informer import EventHandler, Informer, InformerFactory
from svcnet.client.rest import CUSTOMRESOURCEDEFINITIONS, GVR, RESTClient
from svcnet.util.clock import Clock, RealClock, rfc3339

__all__ = ["CustomResourceDefinitionController", "served_gvr"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
#: Seconds between looks at a deleted CRD's objects that are still going.
_CLEANUP_RECHECK = 1.0


def served_gvr(crd: Mapping[str, Any]) -> GVR | None:
    """The resource to reach ``crd``'s objects at: its storage version if served, else the
    first served version (None when it serves none)."""
    spec = map_of(crd, "spec")
    names = map_of(map_of(crd, "status"), "acceptedNames")
    served = [str_of(v, "name") for v in list_of(spec, "versions")
              if isinstance(v, Mapping) and v.get("served") is True]
    if not served or not str_of(names, "plural"):
        return None
    storage = crds.storage_version(crd)
    version = storage if storage in served else served[0]
    return GVR(str_of(spec, "group"), version, str_of(names, "plural"),
               str_of(names, "kind"), namespaced=spec.get("scope") == "Namespaced")


class CustomResourceDefinitionController(InformerController):
    def __init__(self, client: RESTClient, *, clock: Clock | None = None,
                 informers: InformerFactory | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        factory = InformerFactory.of(informers, client, clock=self._clock)
        self.crds = factory.informer(CUSTOMRESOURCEDEFINITIONS,
                                     name="customresourcedefinitions")
        self.controller = Controller("customresourcedefinitions", self.sync,
                                     clock=self._clock, informers=[self.crds])
        queue = self.controller.queue
        self.crds.add_handler(EventHandler(
            on_add=lambda crd: queue.add(name_of(crd)),
            on_update=lambda _old, crd: queue.add(name_of(crd)),
            on_delete=self._deleted))

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None
                    ) -> CustomResourceDefinitionController:
        return cls(client, clock=clock, informers=informers)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.crds,)

    def _deleted(self, crd: Obj) -> None:
        group = str_of(map_of(crd, "spec"), "group")
        for other in self.crds.list():
            if str_of(map_of(other, "spec"), "group") == group:
                self.controller.queue.add(name_of(other))

    async def sync(self, key: str) -> None:
        crd = self.crds.get(key)
        if crd is None:
            return
        if meta_of(crd).get("deletionTimestamp"):
            if crds.FINALIZER in list_of(meta_of(crd), "finalizers"):
                await self._clean_up(crd)
            return
        now = rfc3339(self._clock.now())
        wanted = crds.with_naming_status(crd, self.crds.list(), now)
        if wanted.get("status") != crd.get("status"):
            await self._write(wanted, subresource="status")

    async def _write(self, crd: Obj, *, subresource: str = "") -> None:
        """PUT ``crd`` (or its ``subresource``); a conflict retries the key, a CRD gone is
        done."""
        try:
            await self._client.update(CUSTOMRESOURCEDEFINITIONS, crd, subresource=subresource)
        except StatusError as e:
            if e.code == 409:
                raise RequeueError(f"{name_of(crd)} changed meanwhile") from e
            if e.code != 404:
                raise

    async def _clean_up(self, crd: Obj) -> None:
        if not crds.condition_true(crd, "Terminating") or not any(
                c.get("reason") == "InstanceDeletionInProgress"
                for c in list_of(map_of(crd, "status"), "conditions") if isinstance(c, dict)):
            marked = dict(crd)
            marked["status"] = dict(map_of(crd, "status"))
            marked["status"]["conditions"] = [dict(c) for c in list_of(marked["status"],
                                                                        "conditions")]
            crds.set_condition(marked, "Terminating", "True", "InstanceDeletionInProgress",
                               "CustomResource deletion is in progress",
                               rfc3339(self._clock.now()))
            await self._write(marked, subresource="status")
            return  # the update brings the key back
        gvr = served_gvr(crd)
        if gvr is not None:
            remaining = 0
            try:
                objects = (await self._client.list_all(gvr)).items
            except StatusError as e:
                if e.code != 404:
                    raise
                objects = []
            for obj in objects:
                remaining += 1
                if meta_of(obj).get("deletionTimestamp"):
                    continue
                try:
                    await self._client.delete(gvr, str_of(meta_of(obj), "namespace"),
                                              name_of(obj))
                except StatusError as e:
                    if e.code != 404:
                        raise
                    remaining -= 1
            if remaining:
                # Objects with finalizers of their own may take long: look again in a while,
                # however long (a retry budget would give up on the CRD).
                log.info("%s: %d custom resources still being deleted", name_of(crd),
                         remaining)
                self.controller.queue.add_after(name_of(crd), _CLEANUP_RECHECK)
                return
        done = dict(crd)
        done["metadata"] = dict(meta_of(crd))
        done["metadata"]["finalizers"] = [f for f in list_of(meta_of(crd), "finalizers")
                                          if f != crds.FINALIZER]
        await self._write(done)
