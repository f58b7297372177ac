"""The horizontal pod autoscaler: each HPA sets its target's scale from its pods' metrics.

Theory of operation, after kube-controller-manager's pkg/controller/podautoscaler
(``horizontal.go``: ``reconcileAutoscaler``, ``computeReplicasForMetrics``, ``setStatus``,
``setCondition``; ``metrics/client.go``'s resource metrics client):

* **when**: every HPA is looked at every sync period (``--horizontal-pod-autoscaler-sync-period``,
  15 s). Upstream delays even a new HPA's first look by one period; here a new HPA is looked
  at once, then every period, so ``kubectl get hpa`` shows its first figures sooner. A change
  to an HPA (including this controller's own status writes) does not bring its next look
  forward;
* **the target** is found from ``spec.scaleTargetRef``: its group's resource of that kind,
  from discovery (upstream's RESTMapper; remembered until a request with it fails), and its
  ``/scale`` subresource, which gives the current count and the pods' selector, and is what
  a rescale writes;
* **the count**: a target at 0 replicas with ``minReplicas`` above 0 is left alone (scaling
  disabled); a count above ``maxReplicas`` or below ``minReplicas`` is brought within them;
  otherwise each metric proposes a count (:mod:`.replicas`, from the ``metrics.k8s.io``
  PodMetrics of the selected pods and the pods from the shared informer) and the highest
  proposal wins. If every metric failed, or some failed and the rest would scale down,
  nothing changes and ``ScalingActive`` says why. The winner is normalized (:mod:`.normalize`)
  and, if it differs, written to the scale with a ``SuccessfulRescale`` Event;
* **metrics served here** are ``Resource`` and ``ContainerResource`` (CPU and memory, as
  utilization of requests or average value): what ``metrics.k8s.io`` serves. ``Pods``,
  ``Object`` and ``External`` metrics need the custom and external metrics APIs, which svcnet
  does not serve: such a metric fails, as upstream's does without an adapter;
* **status**: ``currentReplicas``, ``desiredReplicas``, ``currentMetrics`` (a failed metric
  leaves an entry with an empty type, as upstream's), ``lastScaleTime`` on a rescale, and the
  ``AbleToScale``, ``ScalingActive`` and ``ScalingLimited`` conditions (a condition's
  ``lastTransitionTime`` moves only when its status does); written through ``/status`` only
  when it changed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from svcnet.api.access import (
    int_of,
    labels_of,
    list_of,
    map_of,
    name_of,
    namespace_of,
    str_of,
)
from svcnet.api.conditions import set_status_condition
from svcnet.api.errors import StatusError
from svcnet.api.labels import Selector, SelectorError, parse_selector
from svcnet.api.resourcelists import milli_value, parse_quantity, quantity_decimal
from svcnet.client.controller import Controller, InformerController
from svcnet.client.discovery import parse_group_version
from svcnet.client.events import EventRecorder
from svcnet.client.informer import (
    NAMESPACE_INDEX,
    EventHandler,
    Informer,
    InformerFactory,
    object_key,
)
from svcnet.client.rest import GVR, PODS, RESTClient, TransportError
from svcnet.controllers.podautoscaler.normalize import DOWNSCALE_STABILIZATION, Recommender
from svcnet.controllers.podautoscaler.replicas import (
    MetricError,
    PodMetric,
    Proposal,
    average_value_replicas,
    pod_metrics_info,
    resource_replicas,
)
from svcnet.util.clock import Clock, RealClock, rfc3339

__all__ = ["HORIZONTALPODAUTOSCALERS", "SYNC_PERIOD", "HorizontalController", "ResourceMetrics",
           "ScaleTargets", "set_condition"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "horizontal-pod-autoscaler"
HORIZONTALPODAUTOSCALERS: Final = GVR("autoscaling", "v2", "horizontalpodautoscalers",
                                      "HorizontalPodAutoscaler")
#: --horizontal-pod-autoscaler-sync-period
SYNC_PERIOD: Final = 15.0
RESOURCE_METRICS_PATH: Final = "/apis/metrics.k8s.io/v1beta1"
_DEFAULT_METRICS: Final = ({"type": "Resource", "resource": {
    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},)


def set_condition(status: Obj, ctype: str, value: str, reason: str, message: str,
                  now: datetime) -> None:
    """setConditionInList: api.conditions' rule for the autoscaler's conditions."""
    set_status_condition(status, {"type": ctype, "status": value, "reason": reason,
                                  "message": message}, now)


class ScaleClient(Protocol):
    """The target's ``/scale``: read it (with the resource that answered), write it."""

    async def get(self, namespace: str, ref: ObjMap) -> tuple[Obj, GVR]: ...

    async def update(self, gvr: GVR, scale: Obj) -> None: ...


class MetricsClient(Protocol):
    """The PodMetrics of a namespace's pods that a selector matches."""

    async def pod_metrics(self, namespace: str, selector: str) -> list[ObjMap]: ...


class ScaleTargets:
    """The ``/scale`` of what ``scaleTargetRef`` names: kind → resource by discovery."""

    def __init__(self, client: RESTClient) -> None:
        self._client = client
        self._mapped: dict[tuple[str, str], list[GVR]] = {}

    async def _mappings(self, group: str, kind: str) -> list[GVR]:
        found = self._mapped.get((group, kind))
        if found is not None:
            return found
        if group:
            doc = await self._client.request("GET", f"/apis/{group}")
            versions = [str(v.get("version") or "") for v in list_of(doc, "versions")
                        if isinstance(v, Mapping)]
            preferred = str_of(map_of(doc, "preferredVersion"), "version")
            versions.sort(key=lambda v: v != preferred)
        else:
            versions = ["v1"]
        found = []
        for version in versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            resources = await self._client.request("GET", path)
            for r in list_of(resources, "resources"):
                if (isinstance(r, Mapping) and r.get("kind") == kind
                        and "/" not in str_of(r, "name")):
                    found.append(GVR(group, version, str_of(r, "name"), kind,
                                     namespaced=bool(r.get("namespaced"))))
        if not found:
            raise MetricError(f'no matches for kind "{kind}" in group "{group}"')
        self._mapped[(group, kind)] = found
        return found

    async def get(self, namespace: str, ref: ObjMap) -> tuple[Obj, GVR]:
        """scaleForResourceMappings: the first mapping whose scale answers (else the first
        error)."""
        group, _ = parse_group_version(str_of(ref, "apiVersion"))
        mappings = await self._mappings(group, str_of(ref, "kind"))
        first: Exception | None = None
        for gvr in mappings:
            try:
                return await self._client.get(gvr, namespace, str_of(ref, "name"),
                                              subresource="scale"), gvr
            except StatusError as e:
                first = first or e
        self._mapped.pop((group, str_of(ref, "kind")), None)
        assert first is not None
        raise first

    async def update(self, gvr: GVR, scale: Obj) -> None:
        await self._client.update(gvr, scale, subresource="scale")


class ResourceMetrics:
    """The resource metrics API as the autoscaler reads it (upstream's resourceMetricsClient):
    the PodMetrics of a namespace's pods that a selector matches."""

    def __init__(self, client: RESTClient) -> None:
        self._client = client

    async def pod_metrics(self, namespace: str, selector: str) -> list[ObjMap]:
        doc = await self._client.request(
            "GET", f"{RESOURCE_METRICS_PATH}/namespaces/{namespace}/pods",
            params={"labelSelector": selector})
        return [i for i in list_of(doc, "items") if isinstance(i, Mapping)]


class _Failed(Exception):
    """No count from the metrics: the condition's reason, the error (as the computation
    returns it), its cause (as the metric's Event and condition say it: the same, except for
    Pods, Object and External metrics, whose calculator's error the computation wraps once
    more), and the metrics' statuses so far (for the whole computation's failure)."""

    def __init__(self, reason: str, message: str, statuses: list[Obj] | None = None, *,
                 cause: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.statuses = statuses
        self.cause = cause or message


class HorizontalController(InformerController):
    def __init__(self, client: RESTClient, *, clock: Clock | None = None,
                 informers: InformerFactory | None = None,
                 recorder: EventRecorder | None = None, sync_period: float = SYNC_PERIOD,
                 downscale_stabilization: timedelta = DOWNSCALE_STABILIZATION,
                 targets: ScaleClient | None = None,
                 metrics: MetricsClient | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        self.sync_period = sync_period
        factory = InformerFactory.of(informers, client, clock=self._clock)
        self.hpas = factory.informer(HORIZONTALPODAUTOSCALERS, name="horizontalpodautoscalers")
        self.pods = factory.informer(PODS, name="pods")
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.targets: ScaleClient = targets or ScaleTargets(client)
        self.metrics: MetricsClient = metrics or ResourceMetrics(client)
        self.recommender = Recommender(downscale_stabilization)
        #: Each HPA's target selector as last seen (upstream's hpaSelectors), to refuse two
        #: HPAs over the same pods.
        self._selectors: dict[str, Selector] = {}
        self.controller = Controller("horizontal-pod-autoscaler", self.sync, clock=self._clock,
                                     informers=[self.hpas, self.pods])
        self.hpas.add_handler(EventHandler(
            on_add=lambda obj: self.controller.queue.add(object_key(obj)),
            on_update=lambda _old, new: self.controller.queue.add_after(object_key(new),
                                                                        self.sync_period),
            on_delete=lambda obj: self._forget(object_key(obj))))

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None, sync_period: float = SYNC_PERIOD,
                    downscale_stabilization: timedelta = DOWNSCALE_STABILIZATION
                    ) -> HorizontalController:
        return cls(client, clock=clock, informers=informers, sync_period=sync_period,
                   downscale_stabilization=downscale_stabilization)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.hpas, self.pods)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        hpa = self.hpas.get(key)
        if hpa is None:
            self._forget(key)
            return
        try:
            await self.reconcile(key, hpa)
        finally:
            self.controller.queue.add_after(key, self.sync_period)

    def _forget(self, key: str) -> None:
        self.recommender.forget(key)
        self._selectors.pop(key, None)

    async def reconcile(self, key: str, hpa: ObjMap) -> None:
        """reconcileAutoscaler."""
        now = self._clock.now()
        spec = map_of(hpa, "spec")
        ref = map_of(spec, "scaleTargetRef")
        original = map_of(hpa, "status")
        status: Obj = copy.deepcopy(dict(original))
        reference = f"{str_of(ref, 'kind')}/{namespace_of(hpa)}/{str_of(ref, 'name')}"
        try:
            scale, gvr = await self.targets.get(namespace_of(hpa), ref)
        except (StatusError, MetricError, ValueError) as e:
            await self.recorder.warning(hpa, "FailedGetScale", str(e))
            set_condition(status, "AbleToScale", "False", "FailedGetScale",
                          f"the HPA controller was unable to get the target's current scale: "
                          f"{e}", now)
            await self._write(hpa, original, status)
            log.info("failed to query scale subresource for %s: %s", reference, e)
            return
        set_condition(status, "AbleToScale", "True", "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale", now)
        current = int_of(map_of(scale, "spec"), "replicas")
        self.recommender.record_initial(key, current, now)
        minimum = spec.get("minReplicas")
        minimum = minimum if isinstance(minimum, int) else 1
        maximum = int_of(spec, "maxReplicas")
        metric_statuses: list[Obj] | None = None
        desired, reason, rescale = 0, "", True
        if current == 0 and minimum != 0:
            rescale = False
            set_condition(status, "ScalingActive", "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero",
                          now)
        elif current > maximum:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", maximum
        elif current < minimum:
            reason, desired = "Current number of replicas below Spec.MinReplicas", minimum
        else:
            try:
                proposed, metric_name, metric_statuses = await self._compute(
                    hpa, scale, status, now)
            except _Failed as e:
                self._set_status(status, current, int_of(original, "desiredReplicas"),
                                 e.statuses)
                await self._write(hpa, original, status)
                await self.recorder.warning(hpa, "FailedComputeMetricsReplicas", str(e))
                log.info("failed to compute desired number of replicas based on listed "
                         "metrics for %s: %s", reference, e)
                return
            desired = proposed
            if desired > current:
                reason = f"{metric_name} above target"
            elif desired < current:
                reason = "All metrics below target"
            behavior = spec.get("behavior")
            if isinstance(behavior, Mapping):
                limited = self.recommender.normalize_with_behavior(
                    key, behavior, current, desired, minimum, maximum, now)
            else:
                limited = self.recommender.normalize(key, current, desired, minimum, maximum,
                                                     now)
            set_condition(status, "AbleToScale", "True", *limited.able, now)
            set_condition(status, "ScalingLimited", "True" if limited.limited else "False",
                          *limited.limit, now)
            desired = limited.replicas
            rescale = desired != current
        if rescale:
            try:
                await self.targets.update(gvr, {**scale, "spec": {**map_of(scale, "spec"),
                                                                  "replicas": desired}})
            except (StatusError, TransportError) as e:
                await self.recorder.warning(
                    hpa, "FailedRescale", f"New size: {desired}; reason: {reason}; error: {e}")
                set_condition(status, "AbleToScale", "False", "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: {e}",
                              now)
                self._set_status(status, current, int_of(original, "desiredReplicas"),
                                 metric_statuses)
                await self._write(hpa, original, status)
                log.info("failed to rescale %s: %s", reference, e)
                return
            set_condition(status, "AbleToScale", "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to "
                          f"{desired}", now)
            await self.recorder.normal(hpa, "SuccessfulRescale",
                                       f"New size: {desired}; reason: {reason}")
            behavior = spec.get("behavior")
            self.recommender.store_scale_event(
                key, behavior if isinstance(behavior, Mapping) else None, current, desired,
                now)
            log.info("successful rescale of %s, old size: %d, new size: %d, reason: %s",
                     name_of(hpa), current, desired, reason)
            status["lastScaleTime"] = rfc3339(now)
        else:
            desired = current
        self._set_status(status, current, desired, metric_statuses)
        await self._write(hpa, original, status)

    @staticmethod
    def _set_status(status: Obj, current: int, desired: int,
                    metric_statuses: list[Obj] | None) -> None:
        """setStatus / setCurrentReplicasAndMetricsInStatus."""
        status.pop("observedGeneration", None)
        status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        if metric_statuses:
            status["currentMetrics"] = metric_statuses
        else:
            status.pop("currentMetrics", None)

    async def _compute(self, hpa: ObjMap, scale: ObjMap, status: Obj,
                       now: datetime) -> tuple[int, str, list[Obj]]:
        """computeReplicasForMetrics: the highest proposal, its metric's name, the metrics'
        statuses; :class:`_Failed` (message, statuses) when nothing may be proposed."""
        selector_text = str_of(map_of(scale, "status"), "selector")
        if not selector_text:
            await self.recorder.warning(hpa, "SelectorRequired", "selector is required")
            set_condition(status, "ScalingActive", "False", "InvalidSelector",
                          "the HPA target's scale is missing a selector", now)
            raise _Failed("InvalidSelector", "selector is required")
        try:
            selector = parse_selector(selector_text)
        except SelectorError as e:
            message = ("couldn't convert selector into a corresponding internal selector "
                       f"object: {e}")
            await self.recorder.warning(hpa, "InvalidSelector", message)
            set_condition(status, "ScalingActive", "False", "InvalidSelector", message, now)
            raise _Failed("InvalidSelector", message) from None
        key = f"{namespace_of(hpa)}/{name_of(hpa)}"
        self._selectors[key] = selector
        pods = [p for p in self.pods.by_index(NAMESPACE_INDEX, namespace_of(hpa))
                if selector.matches(labels_of(p))]
        selecting = sorted({other for p in pods for other, sel in self._selectors.items()
                            if other.split("/", 1)[0] == namespace_of(hpa)
                            and sel.matches(labels_of(p))})
        if len(selecting) > 1:
            message = (f"pods by selector {selector_text} are controlled by multiple HPAs: "
                       f"[{' '.join(selecting)}]")
            await self.recorder.warning(hpa, "AmbiguousSelector", message)
            set_condition(status, "ScalingActive", "False", "AmbiguousSelector", message, now)
            raise _Failed("AmbiguousSelector", message)
        current = int_of(map_of(scale, "spec"), "replicas")
        specs = [m for m in list_of(map_of(hpa, "spec"), "metrics") if isinstance(m, Mapping)]
        specs = specs or list(_DEFAULT_METRICS)
        statuses: list[Obj] = [{"type": ""} for _ in specs]
        best, best_name = 0, ""
        failures: list[_Failed] = []
        for i, metric in enumerate(specs):
            try:
                proposal, name, statuses[i] = await self._one_metric(
                    namespace_of(hpa), selector_text, metric, current, pods, now)
            except _Failed as e:
                await self.recorder.warning(hpa, e.reason, e.cause)
                failures.append(e)
                continue
            if best == 0 or proposal > best:
                best, best_name = proposal, name
        if failures and (len(failures) >= len(specs) or best < current):
            first = failures[0]
            set_condition(status, "ScalingActive", "False", first.reason,
                          f"the HPA was unable to compute the replica count: {first.cause}",
                          now)
            raise _Failed(first.reason, f"invalid metrics ({len(failures)} invalid out of "
                          f"{len(specs)}), first error is: {first}", statuses)
        set_condition(status, "ScalingActive", "True", "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from "
                      f"{best_name}", now)
        return best, best_name, statuses

    async def _one_metric(self, namespace: str, selector: str, metric: ObjMap, current: int,
                          pods: Sequence[ObjMap], now: datetime) -> tuple[int, str, Obj]:
        """computeReplicasForMetric for one metric spec: (count, name, status)."""
        mtype = str_of(metric, "type")
        if mtype in ("Resource", "ContainerResource"):
            source_key = "resource" if mtype == "Resource" else "containerResource"
            source = map_of(metric, source_key)
            return await self._resource_metric(namespace, selector, mtype, source_key, source,
                                               current, pods, now)
        if mtype in ("Pods", "Object"):
            name = str_of(map_of(map_of(metric, mtype.lower()), "metric"), "name")
            cause = (f"unable to get metric {name}: unable to fetch metrics from custom metrics "
                     "API: no custom metrics API (custom.metrics.k8s.io) registered")
            raise _Failed(f"FailedGet{mtype}Metric",
                          f"failed to get {mtype.lower()} metric value: {cause}", cause=cause)
        if mtype == "External":
            name = str_of(map_of(map_of(metric, "external"), "metric"), "name")
            cause = (f"unable to get external metric {namespace}/{name}: unable to fetch "
                     "metrics from external metrics API: no external metrics API "
                     "(external.metrics.k8s.io) registered")
            raise _Failed("FailedGetExternalMetric",
                          f"failed to get {name} external metric: {cause}", cause=cause)
        raise _Failed("InvalidMetricSourceType", f'unknown metric source type "{mtype}"')

    async def _resource_metric(self, namespace: str, selector: str, mtype: str,
                               source_key: str, source: ObjMap, current: int,
                               pods: Sequence[ObjMap], now: datetime) -> tuple[int, str, Obj]:
        resource = str_of(source, "name")
        container = str_of(source, "container") if mtype == "ContainerResource" else ""
        target = map_of(source, "target")
        failed = f"FailedGet{mtype}Metric"
        identity: Obj = {"name": resource, **({"container": container} if container else {})}
        average = parse_quantity(target.get("averageValue"))
        raw_utilization = target.get("averageUtilization")
        utilization = raw_utilization if isinstance(raw_utilization, int) else None
        if average is None and utilization is None:
            raise _Failed(failed, "invalid resource metric source: neither an average "
                          "utilization target nor an average value (usage) target was set")
        try:
            metrics = await self._pod_metrics(namespace, selector, resource, container)
            if average is not None:
                proposal: Proposal = average_value_replicas(
                    current, milli_value(average), resource, pods, metrics, now)
                name = f"{resource} resource"
            else:
                assert utilization is not None
                proposal = resource_replicas(current, utilization, resource, pods, metrics,
                                             now, container)
                kind = "container resource" if container else "resource"
                name = f"{resource} {kind} utilization (percentage of request)"
        except MetricError as e:
            what = "usage" if average is not None else "utilization"
            raise _Failed(failed, f"failed to get {resource} {what}: {e}") from None
        current_value: Obj = {"averageValue": quantity_decimal(proposal.average, -3)}
        if proposal.utilization is not None:
            current_value["averageUtilization"] = proposal.utilization
        return proposal.replicas, name, {"type": mtype, source_key: {
            **identity, "current": current_value}}

    async def _pod_metrics(self, namespace: str, selector: str, resource: str,
                           container: str) -> dict[str, PodMetric]:
        """GetResourceMetric of the resource metrics API."""
        try:
            items = await self.metrics.pod_metrics(namespace, selector)
        except (StatusError, TransportError) as e:
            raise MetricError(f"unable to get metrics for resource {resource}: unable to fetch "
                              f"metrics from resource metrics API: {e}") from None
        if not items:
            raise MetricError(f"unable to get metrics for resource {resource}: no metrics "
                              "returned from resource metrics API")
        try:
            return pod_metrics_info(items, resource, container)
        except MetricError as e:
            raise MetricError(f"unable to get metrics for resource {resource}: failed to get "
                              f"container metrics: {e}") from None

    async def _write(self, hpa: ObjMap, original: ObjMap, status: Obj) -> None:
        """updateStatusIfNeeded."""
        if status == original:
            return
        try:
            await self._client.update(HORIZONTALPODAUTOSCALERS, {**hpa, "status": status},
                                      subresource="status")
        except StatusError as e:
            if e.code == 404:
                return
            await self.recorder.warning(hpa, "FailedUpdateStatus", str(e))
            raise
