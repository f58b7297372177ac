"""The EndpointSlice controller: keeps each selector Service's EndpointSlices in step with its pods.

Theory of operation (after ``pkg/controller/endpointslice/endpointslice_controller.go``)
-------------------------------------------------------------------------------------
Four informers feed one work queue of Service keys (``namespace/name``); handlers do nothing
but decide *which* Services an event concerns:

* Service added, updated (incl. resync) or deleted → that Service;
* Pod added or deleted → the Services whose selector matches it; Pod updated → only if the
  change can matter (readiness, IPs, deletionTimestamp, terminal phase, labels, hostname or
  subdomain), and then the Services it belongs to, joined or left
  (:func:`~.util.services_to_update_on_pod_change`). Pod events are delayed by
  ``batch_period`` (default 0) so a rollout's many pod changes collapse into fewer syncs;
* Node added or deleted, or its ``topology.kubernetes.io/zone`` label changed → the Services of
  the pods on that Node (their endpoints' ``zone``; and pods skipped because their Node was
  unknown get their chance). Also, as upstream's ``checkNodeTopologyDistribution`` (and on a
  readiness change): the zones' shares of allocatable CPU are recomputed
  (:func:`~.hints.cpu_ratios_by_zone`) and Services whose topology-annotation hints no longer
  meet a zone's minimum are queued;
* EndpointSlice (only those labelled ``managed-by: endpointslice-controller.k8s.io``) changed or
  deleted by someone else → its Service, after at least 1 s (so the controller reverts foreign
  edits without fighting a burst of them). Our own writes are recognised by the
  :class:`~.tracker.EndpointSliceTracker` and cause no sync.

:meth:`EndpointSliceController.sync` is level-triggered:

1. read the Service from the cache. Gone → delete the slices this controller manages for it
   (they also carry a controller ownerReference, so svcnet's garbage collector removes them
   too; deleting them here keeps this controller complete on its own) and forget what we
   tracked. ``ExternalName`` or selectorless →
   nothing (their slices are someone else's);
2. list its pods (namespace + selector) and its managed slices from the caches, dropping slices
   already being deleted;
3. if the slice cache is older than our own last writes, raise :class:`RequeueError`
   (stale-cache guard) instead of acting;
4. compute the trigger time (:class:`~.util.TriggerTimeTracker`) and the pure
   :func:`~.reconciler.plan_slices` (zone hints included, :mod:`~.hints`); remember which
   Services the topology annotation hinted, and record ``TopologyAwareHintsEnabled`` (the
   first time) or ``TopologyAwareHintsDisabled`` (with the reason) Events, as upstream;
5. apply it: creates (``generateName: <svc>-``), then updates (conditional on the
   ``resourceVersion`` they replace), then deletes (conditional on the slice's uid); remember
   each answer's generation, or the expected deletion, in the tracker. A 404/409 means the
   world moved: retry. A failure records a ``FailedToUpdateEndpointSlices`` Warning Event on the
   Service, as upstream does;
6. if the plan skipped pods whose Node is unknown, raise :class:`RequeueError` after applying
   the rest, so they are retried with back-off.

Retries use upstream's limiter for this controller: 1 s doubling to 1000 s per key, and 10 qps
/ 100 burst overall.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

from svcnet.api.errors import StatusError, is_namespace_terminating
from svcnet.client.controller import Controller, InformerController, RequeueError
from svcnet.client.events import EventRecorder, EventSink
from svcnet.client.informer import (
    NAMESPACE_INDEX,
    EventHandler,
    Informer,
    InformerFactory,
    ListerWatcher,
    object_key,
    split_key,
)
from svcnet.client.rest import (
    ENDPOINTSLICES,
    GVR,
    NODES,
    PODS,
    SERVICES,
    Preconditions,
)
from svcnet.client.workqueue import (
    BucketRateLimiter,
    ExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimitingQueue,
)
from svcnet.controllers.endpointslice.hints import (
    HINTS_DISABLED,
    HINTS_ENABLED,
    cpu_ratios_by_zone,
    hints_enabled,
    service_overloaded,
)
from svcnet.controllers.endpointslice.reconciler import (
    CONTROLLER_NAME,
    DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    SlicePlan,
    address_types_for_service,
    plan_slices,
)
from svcnet.controllers.endpointslice.tracker import EndpointSliceTracker, service_key_for_slice
from svcnet.controllers.endpointslice.util import (
    LABEL_MANAGED_BY,
    LABEL_ZONE,
    TriggerTimeTracker,
    is_terminating,
    manages_service,
    selector_matches,
    service_selector,
    services_for_pod,
    services_to_update_on_pod_change,
)
from svcnet.controllers.scheduler import node_ready
from svcnet.util.clock import Clock, RealClock

__all__ = [
    "COMPONENT",
    "EVENT_SOURCE",
    "NODE_INDEX",
    "SERVICE_INDEX",
    "APIClient",
    "EndpointSliceController",
    "SliceClient",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT: Final = "endpointslice-controller"
EVENT_SOURCE: Final = "endpoint-slice-controller"
"""``source.component`` of our Events, as upstream's."""
DEFAULT_RESYNC: Final = 300.0
SLICE_CHANGE_MIN_DELAY: Final = 1.0
"""Upstream ``endpointSliceChangeMinSyncDelay``."""
NODE_INDEX: Final = "nodeName"
"""Pod index: ``spec.nodeName``."""
SERVICE_INDEX: Final = "service"
"""EndpointSlice index: ``namespace/<kubernetes.io/service-name>``."""


def pod_node_index(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if isinstance(node, str) and node else []


def slice_service_index(eps: Obj) -> list[str]:
    key = service_key_for_slice(eps)
    return [key] if key is not None else []


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def _managed_by_us(eps: Mapping[str, Any]) -> bool:
    return _labels(eps).get(LABEL_MANAGED_BY) == CONTROLLER_NAME


class SliceClient(EventSink, Protocol):
    """The writes the controller makes (RESTClient fits)."""

    async def update(self, gvr: GVR, obj: Obj, *, subresource: str = "",
                     dry_run: bool = False, field_manager: str = "") -> Obj: ...

    async def delete(self, gvr: GVR, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     propagation_policy: str = "", dry_run: bool = False) -> Obj: ...


class APIClient(SliceClient, ListerWatcher, Protocol):
    """Reads and writes: what :meth:`EndpointSliceController.from_client` needs (RESTClient
    fits)."""


class _CacheView(Mapping[str, Obj]):
    """An informer's cache as a read-only mapping (Nodes by name, for the planner)."""

    def __init__(self, informer: Informer) -> None:
        self._informer = informer

    def __getitem__(self, key: str) -> Obj:
        obj = self._informer.get(key)
        if obj is None:
            raise KeyError(key)
        return obj

    def __iter__(self) -> Iterator[str]:
        return iter(self._informer.indexer.list_keys())

    def __len__(self) -> int:
        return len(self._informer.indexer)


class EndpointSliceController(InformerController):
    """Maintains EndpointSlices for selector Services (see the module doc).

    The informers are passed in so tests can use ones that are never started (fill their
    indexers, call :meth:`sync`) and so a process may share them between controllers; the
    EndpointSlice informer should select ``endpointslice.kubernetes.io/managed-by=
    endpointslice-controller.k8s.io``. :meth:`from_client` builds the usual set.
    """

    def __init__(self, client: SliceClient, *, services: Informer, pods: Informer,
                 nodes: Informer, slices: Informer, clock: Clock | None = None,
                 workers: int = 1,
                 max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
                 batch_period: float = 0.0, recorder: EventRecorder | None = None,
                 resync_period: float | None = None) -> None:
        if not 1 <= max_endpoints_per_slice <= 1000:
            raise ValueError("max_endpoints_per_slice must be within 1..1000")
        self._client = client
        self.services = services
        self.pods = pods
        self.nodes = nodes
        self.slices = slices
        self._clock: Clock = clock or RealClock()
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.batch_period = batch_period
        self.recorder = recorder or EventRecorder(client, EVENT_SOURCE, clock=self._clock)
        self.tracker = EndpointSliceTracker()
        self.trigger_times = TriggerTimeTracker()
        self.zone_cpu_ratios: dict[str, float] | None = None
        """:func:`~.hints.cpu_ratios_by_zone` of the Nodes, kept current by Node events."""
        self.hinted: dict[str, dict[str, Mapping[str, int]]] = {}
        """Service key → address type → endpoints hinted per zone, for Services whose
        topology annotation produced hints (upstream TopologyCache's endpointsByService)."""
        queue: RateLimitingQueue[str] = RateLimitingQueue(
            MaxOfRateLimiter(ExponentialFailureRateLimiter(1.0, 1000.0),
                             BucketRateLimiter(10.0, 100, clock=self._clock)),
            clock=self._clock, name=COMPONENT)
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[services, pods, nodes, slices],
                                     workers=workers, clock=self._clock, queue=queue)
        pods.indexer.add_index(NODE_INDEX, pod_node_index)
        slices.indexer.add_index(SERVICE_INDEX, slice_service_index)
        self._node_view = _CacheView(nodes)

        # Handlers (tests call them directly).
        self.service_handler = EventHandler.for_keys(self.queue.add)
        self.pod_handler = EventHandler(on_add=self._on_pod, on_update=self._on_pod_update,
                                        on_delete=self._on_pod)
        self.node_handler = EventHandler(on_add=self._on_node, on_update=self._on_node_update,
                                         on_delete=self._on_node)
        self.slice_handler = EventHandler(on_add=self._on_slice_add,
                                          on_update=self._on_slice_update,
                                          on_delete=self._on_slice_delete)
        services.add_handler(self.service_handler, resync_period=resync_period)
        pods.add_handler(self.pod_handler)
        nodes.add_handler(self.node_handler)
        slices.add_handler(self.slice_handler)

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC, workers: int = 1,
                    max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
                    batch_period: float = 0.0,
                    informers: InformerFactory | None = None) -> EndpointSliceController:
        """The usual wiring: four informers over ``client``, which also does the writes.

        Only the Service informer resyncs (every ``resync_period`` seconds): re-syncing every
        Service is the safety net; pod, node and slice resyncs would add nothing to it.
        """
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, services=factory.informer(SERVICES, name="services"),
                   pods=factory.informer(PODS, name="pods"),
                   nodes=factory.informer(NODES, name="nodes"),
                   slices=factory.informer(
                       ENDPOINTSLICES, name="endpointslices",
                       label_selector=f"{LABEL_MANAGED_BY}={CONTROLLER_NAME}"),
                   clock=clock, workers=workers, max_endpoints_per_slice=max_endpoints_per_slice,
                   batch_period=batch_period, resync_period=resync_period)


    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.services, self.pods, self.nodes, self.slices)


    # -- event handlers: keys only ----------------------------------------------------------

    def _services_in(self, namespace: str) -> list[Obj]:
        return self.services.by_index(NAMESPACE_INDEX, namespace)

    def _add_pod_keys(self, keys: set[str]) -> None:
        for key in sorted(keys):
            self.queue.add_after(key, self.batch_period)

    def _on_pod(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        ns = str(meta.get("namespace") or "")
        self._add_pod_keys(services_for_pod(self._services_in(ns), ns, meta.get("labels")))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        ns = str((new.get("metadata") or {}).get("namespace") or "")
        self._add_pod_keys(services_to_update_on_pod_change(self._services_in(ns), old, new))

    def _services_on_node(self, node_name: str) -> set[str]:
        keys: set[str] = set()
        for pod in self.pods.by_index(NODE_INDEX, node_name):
            meta = pod.get("metadata") or {}
            ns = str(meta.get("namespace") or "")
            keys |= services_for_pod(self._services_in(ns), ns, meta.get("labels"))
        return keys

    def _on_node(self, node: Obj) -> None:
        for key in sorted(self._services_on_node(object_key(node))):
            self.queue.add(key)
        self._check_node_topology()

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        # The zone label reaches endpoints; readiness and zone reach the topology hints.
        if _labels(old).get(LABEL_ZONE) != _labels(new).get(LABEL_ZONE):
            self._on_node(new)
        elif node_ready(old) != node_ready(new):
            self._check_node_topology()

    def _check_node_topology(self) -> None:
        """Upstream ``checkNodeTopologyDistribution``: recompute the zones' CPU shares and
        resync the hinted Services that no longer fit them."""
        self.zone_cpu_ratios = cpu_ratios_by_zone(self.nodes.indexer.list())
        for key, by_type in sorted(self.hinted.items()):
            if any(service_overloaded(a, self.zone_cpu_ratios) for a in by_type.values()):
                self.queue.add(key)

    def _queue_for_slice(self, eps: Obj) -> None:
        key = service_key_for_slice(eps)
        if key is not None:
            self.queue.add_after(key, max(SLICE_CHANGE_MIN_DELAY, self.batch_period))

    def _on_slice_add(self, eps: Obj) -> None:
        if _managed_by_us(eps) and self.tracker.should_sync(eps):
            self._queue_for_slice(eps)

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        if service_key_for_slice(old) != service_key_for_slice(new):
            # Someone relabelled it: both Services may have lost or gained a slice.
            self._queue_for_slice(new)
            self._queue_for_slice(old)
            return
        if _managed_by_us(old) != _managed_by_us(new) or (
                _managed_by_us(new) and self.tracker.should_sync(new)):
            self._queue_for_slice(new)

    def _on_slice_delete(self, eps: Obj) -> None:
        # Deletions we did not cause are reverted, whether or not we wrote that slice since
        # we started (upstream only reacts for slices it tracks). A slice that merely left
        # our label selection also arrives here.
        if not self.tracker.handle_deletion(eps):
            self._queue_for_slice(eps)

    # -- sync -------------------------------------------------------------------------------

    def _managed_slices(self, key: str) -> list[Obj]:
        return [s for s in self.slices.by_index(SERVICE_INDEX, key) if _managed_by_us(s)]

    async def sync(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None:
            await self._delete_slices_of_deleted_service(key)
            return
        if not manages_service(svc):
            return
        ns, _ = split_key(key)
        selector = service_selector(svc) or {}
        pods = [p for p in self.pods.by_index(NAMESPACE_INDEX, ns)
                if selector_matches(selector, _labels(p))]
        slices = [s for s in self._managed_slices(key) if not is_terminating(s)]
        if self.tracker.stale_slices(svc, slices):
            raise RequeueError("EndpointSlice informer cache is out of date")
        trigger_time = self.trigger_times.compute(svc, pods)
        plan = plan_slices(svc, pods, self._node_view, slices,
                           max_per_slice=self.max_endpoints_per_slice, trigger_time=trigger_time,
                           zone_cpu_ratios=self.zone_cpu_ratios)
        events = self._topology_events(key, svc, plan)
        try:
            await self._apply(key, plan)
            if plan.errors:
                raise RequeueError("; ".join(plan.errors))
        except Exception as e:
            await self.recorder.warning(
                svc, "FailedToUpdateEndpointSlices",
                f"Error updating Endpoint Slices for Service {key}: {e}")
            raise
        finally:
            for event_type, message in events:
                reason = ("TopologyAwareHintsEnabled" if event_type == "Normal"
                          else "TopologyAwareHintsDisabled")
                await self.recorder.event(svc, event_type, reason, message)

    def _topology_events(self, key: str, svc: Obj, plan: SlicePlan) -> list[tuple[str, str]]:
        """Remember the topology annotation's outcome; the Events it calls for."""
        events: list[tuple[str, str]] = []
        if not hints_enabled(svc):
            for address_type in address_types_for_service(svc):
                if self.hinted.pop(key, None) is not None:
                    events.append(("Warning", f"{HINTS_DISABLED}, addressType: {address_type}"))
            return events
        for result in plan.topology:
            by_type = self.hinted.get(key)
            if result.allocated is None:
                events += [("Warning", w) for w in result.warnings]
                if by_type is not None:
                    by_type.pop(result.address_type, None)
                    if not by_type:
                        del self.hinted[key]
                continue
            if by_type is None:
                events.append(("Normal",
                               f"{HINTS_ENABLED}, addressType: {result.address_type}"))
            self.hinted.setdefault(key, {})[result.address_type] = result.allocated
        return events

    async def _apply(self, key: str, plan: SlicePlan) -> None:
        ns, _ = split_key(key)
        for obj in plan.create:
            try:
                created = await self._client.create(ENDPOINTSLICES, obj, namespace=ns)
            except StatusError as e:
                if is_namespace_terminating(e):
                    return  # every create will fail until the namespace is gone: drop it
                raise
            self.tracker.update(created)
            log.debug("%s: created EndpointSlice %s", key, created["metadata"].get("name"))
        for obj in plan.update:
            try:
                updated = await self._client.update(ENDPOINTSLICES, obj)
            except StatusError as e:
                if e.code in (404, 409):
                    raise RequeueError(f"EndpointSlice {obj['metadata']['name']} changed "
                                       f"meanwhile: {e}") from e
                raise
            self.tracker.update(updated)
            log.debug("%s: updated EndpointSlice %s", key, obj["metadata"]["name"])
        for obj in plan.delete:
            await self._delete(key, obj)

    async def _delete(self, key: str, eps: Mapping[str, Any]) -> None:
        meta = eps.get("metadata") or {}
        name = str(meta.get("name") or "")
        uid = str(meta.get("uid") or "")
        try:
            await self._client.delete(ENDPOINTSLICES, str(meta.get("namespace") or ""), name,
                                      preconditions=Preconditions(uid=uid) if uid else None)
        except StatusError as e:
            if e.code == 404:
                return  # already gone: that is what we wanted
            if e.code == 409:
                raise RequeueError(f"EndpointSlice {name} was replaced meanwhile: {e}") from e
            raise
        self.tracker.expect_deletion(eps)
        log.debug("%s: deleted EndpointSlice %s", key, name)

    async def _delete_slices_of_deleted_service(self, key: str) -> None:
        """The Service is gone: remove the slices we manage for it.

        Upstream leaves this to the garbage collector (the slices carry a controller
        ownerReference). svcnet's garbage collector (:mod:`svcnet.controllers.gc`) does it
        too; whichever comes first wins and the other finds nothing (404s are ignored).
        """
        ns, name = split_key(key)
        self.trigger_times.delete_service(ns, name)
        self.hinted.pop(key, None)
        slices = self._managed_slices(key)
        if not slices:
            # Keep the tracker while deletions are pending: it recognises their events.
            self.tracker.delete_service(ns, name)
            return
        for eps in slices:
            if not is_terminating(eps):
                await self._delete(key, eps)
