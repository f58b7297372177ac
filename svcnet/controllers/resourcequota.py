"""The resource quota controller: every ResourceQuota's ``status.hard`` and ``status.used``.

Theory of operation, after ``pkg/controller/resourcequota/resource_quota_controller.go``
(with ``replenishment`` from its monitors):

* **sync** of a quota: its usage is recalculated from the namespace's objects of each
  resource its ``spec.hard`` counts (:func:`svcnet.api.resourcequotas.calculate_status`) and
  written to ``/status`` with the quota's resourceVersion as a precondition (a conflict, e.g.
  with the ResourceQuota admission charging a write, retries the sync), only when it
  changed. Pods, Services, claims, ConfigMaps, Secrets, ReplicationControllers and
  ResourceQuotas are read from shared informers; any other ``count/<resource>.<group>``
  lists its resource over the API (found through discovery);
* **when**: a new quota, and one whose ``spec.hard`` is not yet its ``status.hard`` or whose
  ``status.used`` lacks a hard resource, at once; every quota again each ``sync_period``
  (kube-controller-manager's ``--resource-quota-sync-period``, 5 minutes by default);
* **replenishment**: a tracked object deleted, or updated so that it counts differently (a
  pod that finished, a Service whose type changed, a claim that grew), queues the quotas of
  its namespace, so that freed quota is usable again without waiting for the period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import map_of, meta_of, namespace_of
from svcnet.api.errors import StatusError
from svcnet.api.resourcelists import quantities_equal
from svcnet.api.resourcequotas import calculate_status, tracked_resources, usage
from svcnet.client.controller import Controller, InformerController, RequeueError
from svcnet.client.discovery import server_preferred_namespaced_resources, to_gvr
from svcnet.client.informer import (
    NAMESPACE_INDEX,
    EventHandler,
    Informer,
    InformerFactory,
    object_key,
)
from svcnet.client.rest import (
    CONFIGMAPS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    RESOURCEQUOTAS,
    SECRETS,
    SERVICES,
    RESTClient,
)
from svcnet.controllers.ownership import REPLICATIONCONTROLLERS
from svcnet.util.clock import Clock, RealClock

__all__ = ["SYNC_PERIOD", "ResourceQuotaController"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SYNC_PERIOD: Final = 300.0
"""--resource-quota-sync-period (5m)."""


class ResourceQuotaController(InformerController):
    def __init__(self, client: RESTClient, *, clock: Clock | None = None,
                 informers: InformerFactory | None = None,
                 sync_period: float = SYNC_PERIOD) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        self.sync_period = sync_period
        factory = InformerFactory.of(informers, client, clock=self._clock)
        self.quotas = factory.informer(RESOURCEQUOTAS, name="resourcequotas")
        #: The informers of the tracked resources, by (group, resource).
        self.tracked: dict[tuple[str, str], Informer] = {
            (gvr.group, gvr.resource): factory.informer(gvr, name=gvr.resource)
            for gvr in (PODS, SERVICES, PERSISTENTVOLUMECLAIMS, CONFIGMAPS, SECRETS,
                        REPLICATIONCONTROLLERS)}
        self.tracked[("", "resourcequotas")] = self.quotas
        self.controller = Controller("resourcequota", self.sync, clock=self._clock,
                                     informers=self.informers)
        queue = self.controller.queue
        self.quotas.add_handler(EventHandler(
            on_add=lambda q: queue.add(object_key(q)),
            on_update=self._quota_changed))
        for pair, informer in self.tracked.items():
            informer.add_handler(EventHandler(
                on_update=self._on_update(pair),
                on_delete=lambda obj: self._replenish(namespace_of(obj))))

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None,
                    sync_period: float = SYNC_PERIOD) -> ResourceQuotaController:
        return cls(client, clock=clock, informers=informers, sync_period=sync_period)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return tuple(dict.fromkeys([self.quotas, *self.tracked.values()]))

    def _quota_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """A quota whose spec changed or whose status lags its spec is synced now (a status
        the admission charged is not: its periodic sync comes)."""
        spec_hard = map_of(map_of(new, "spec"), "hard")
        status = map_of(new, "status")
        if (not quantities_equal(spec_hard, map_of(map_of(old, "spec"), "hard"))
                or not quantities_equal(spec_hard, map_of(status, "hard"))
                or any(k not in map_of(status, "used") for k in spec_hard)):
            self.controller.queue.add(object_key(new))

    def _on_update(self, pair: tuple[str, str]) -> Callable[[Obj, Obj], None]:
        """An update of a tracked object replenishes when it counts differently now."""
        def changed(old: Obj, new: Obj) -> None:
            if not self.quotas.by_index(NAMESPACE_INDEX, namespace_of(new)):
                return  # no quota to replenish: skip the usage (every Service patch comes here)
            now = self._clock.now()
            if usage(*pair, old, now) != usage(*pair, new, now):
                self._replenish(namespace_of(new))
        return changed

    def _replenish(self, namespace: str) -> None:
        for quota in self.quotas.by_index(NAMESPACE_INDEX, namespace):
            self.controller.queue.add(object_key(quota))

    async def _objects(self, namespace: str, pairs: Sequence[tuple[str, str]]
                       ) -> dict[tuple[str, str], list[Obj]]:
        out: dict[tuple[str, str], list[Obj]] = {}
        missing = []
        for pair in pairs:
            informer = self.tracked.get(pair)
            if informer is not None:
                out[pair] = informer.by_index(NAMESPACE_INDEX, namespace)
            else:
                missing.append(pair)
        if missing:
            resources, _failed = await server_preferred_namespaced_resources(self._client)
            served = {(gvr.group, gvr.resource): gvr for gvr in map(to_gvr, resources)}
            for pair in missing:
                if pair in served:
                    listed = await self._client.list_all(served[pair], namespace)
                    out[pair] = list(listed.items)
        return out

    async def sync(self, key: str) -> None:
        quota = self.quotas.get(key)
        if quota is None:
            return
        try:
            await self._sync(quota)
        finally:
            self.controller.queue.add_after(key, self.sync_period)

    async def _sync(self, quota: Obj) -> None:
        namespace = namespace_of(quota)
        objects = await self._objects(namespace, tracked_resources(quota))
        status = calculate_status(quota, objects, self._clock.now())
        current = map_of(quota, "status")
        if (quantities_equal(status["hard"], map_of(current, "hard"))
                and quantities_equal(status["used"], map_of(current, "used"))):
            return
        updated = dict(quota)
        updated["status"] = status
        updated["metadata"] = dict(meta_of(quota))
        try:
            await self._client.update_status(RESOURCEQUOTAS, updated)
        except StatusError as e:
            if e.code == 409:
                raise RequeueError(f"quota {namespace}/{meta_of(quota).get('name')} changed "
                                   f"while synced") from None
            if e.code != 404:
                raise
