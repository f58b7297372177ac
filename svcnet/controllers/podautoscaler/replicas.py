"""How many replicas a resource metric asks for: the HPA's replica calculator, pure.

Theory of operation, after kube-controller-manager's pkg/controller/podautoscaler
(``replica_calculator.go`` and ``metrics/client.go``, ``metrics/utilization.go``):

* **the samples** (:func:`pod_metrics_info`) come from ``metrics.k8s.io/v1beta1`` PodMetrics:
  a pod's value is the sum of its containers' usage of the resource in thousandths (rounded
  up, as ``Quantity.MilliValue``); a pod with no containers, or one container without the
  resource, has no sample. For a ``ContainerResource`` metric only the named container counts,
  and a pod whose metrics lack that container is an error;
* **the pods** (:func:`group_pods`) the target's scale selects are sorted: deleted and failed
  pods are *ignored*; pending pods are *unready*; pods without a sample are *missing*; for
  CPU, a pod is also unready if it has no Ready condition or start time, or if it is within
  its CPU initialisation period (5 minutes after start) and is not Ready or its sample was
  taken within one window of its last readiness change, or if, after that period, it is not
  Ready and has never been (it turned unready within 30 s of starting); the rest are ready;
* **utilization** (:func:`resource_replicas`): the ready pods' samples over their requests
  (every container of the pod, and sidecars: restartable init containers, must request the
  resource), as a whole percent; its ratio to the target. Within the tolerance (0.1) of 1
  nothing changes; without unready or missing pods the answer is ``ceil(ratio * ready)``.
  Otherwise the guess is made conservative before recomputing: on a scale-down, missing pods
  count as using their whole request (or the target, above 100%); on a scale-up, missing pods,
  and unready pods, count as using nothing. A recomputed ratio that is within tolerance or
  flips direction keeps the current count, as does a new count that moves the other way;
* **an average value** target (:func:`average_value_replicas`, upstream's
  ``calcPlainMetricReplicas``) is the same with the samples' mean against the target value,
  and missing pods on a scale-down counting as exactly the target.

Errors carry upstream's messages, which the controller puts in conditions and Events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from svcnet.api.access import list_of, map_of, meta_of, name_of, namespace_of, str_of
from svcnet.api.goduration import parse_go_duration
from svcnet.api.pods import pod_ready_condition
from svcnet.api.resourcelists import milli_value, parse_quantity
from svcnet.util.clock import parse_time

__all__ = ["CPU_INITIALIZATION_PERIOD", "DELAY_OF_INITIAL_READINESS_STATUS", "TOLERANCE",
           "MetricError", "PodGroups", "PodMetric", "Proposal", "average_value_replicas",
           "group_pods", "pod_metrics_info", "pod_requests", "resource_replicas"]

ObjMap = Mapping[str, Any]

#: --horizontal-pod-autoscaler-tolerance
TOLERANCE: Final = 0.1
#: --horizontal-pod-autoscaler-cpu-initialization-period
CPU_INITIALIZATION_PERIOD: Final = timedelta(minutes=5)
#: --horizontal-pod-autoscaler-initial-readiness-delay
DELAY_OF_INITIAL_READINESS_STATUS: Final = timedelta(seconds=30)


class MetricError(Exception):
    """The metric gives no answer; the message is upstream's."""


@dataclass(frozen=True, slots=True)
class PodMetric:
    value: int
    """Thousandths of the resource's unit (millicores, millibytes)."""
    timestamp: datetime | None = None
    window: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class PodGroups:
    ready: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


@dataclass(frozen=True, slots=True)
class Proposal:
    replicas: int
    utilization: int | None
    """Whole percent of the requests (utilization targets only)."""
    average: int
    """The ready pods' mean sample, in thousandths."""


def _sample_of(usage: ObjMap, resource: str) -> int | None:
    q = parse_quantity(usage.get(resource))
    return None if q is None else milli_value(q)


def pod_metrics_info(items: Sequence[ObjMap], resource: str,
                     container: str = "") -> dict[str, PodMetric]:
    """getPodMetrics / getContainerMetrics over PodMetrics ``items``, by pod name."""
    out: dict[str, PodMetric] = {}
    for item in items:
        stamp = parse_time(item.get("timestamp"))
        try:
            window = timedelta(microseconds=parse_go_duration(str_of(item, "window")) / 1000)
        except ValueError:
            window = timedelta(0)
        containers = [c for c in list_of(item, "containers") if isinstance(c, Mapping)]
        if container:
            found = next((c for c in containers if c.get("name") == container), None)
            if found is None:
                raise MetricError(f"container {container} not present in metrics for pod "
                                  f"{namespace_of(item)}/{name_of(item)}")
            value = _sample_of(map_of(found, "usage"), resource)
            if value is not None:
                out[name_of(item)] = PodMetric(value, stamp, window)
            continue
        values = [_sample_of(map_of(c, "usage"), resource) for c in containers]
        if values and all(v is not None for v in values):
            out[name_of(item)] = PodMetric(sum(v for v in values if v is not None), stamp,
                                           window)
    return out


def group_pods(pods: Sequence[ObjMap], metrics: Mapping[str, PodMetric], resource: str,
               now: datetime, *,
               cpu_initialization_period: timedelta = CPU_INITIALIZATION_PERIOD,
               delay_of_initial_readiness: timedelta = DELAY_OF_INITIAL_READINESS_STATUS
               ) -> PodGroups:
    """groupPods: ready count, and the unready, missing and ignored pods' names."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = name_of(pod)
        phase = str_of(map_of(pod, "status"), "phase")
        if meta_of(pod).get("deletionTimestamp") or phase == "Failed":
            ignored.add(name)
            continue
        if phase == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu" and _cpu_unready(pod, metric, now, cpu_initialization_period,
                                              delay_of_initial_readiness):
            unready.add(name)
            continue
        ready += 1
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def _cpu_unready(pod: ObjMap, metric: PodMetric, now: datetime, init_period: timedelta,
                 initial_delay: timedelta) -> bool:
    condition = pod_ready_condition(pod)
    started = parse_time(map_of(pod, "status").get("startTime"))
    if condition is None or started is None:
        return True
    not_ready = condition.get("status") == "False"
    transition = parse_time(condition.get("lastTransitionTime"))  # None: Go's zero time
    if started + init_period > now:
        return not_ready or (metric.timestamp is not None and transition is not None
                             and metric.timestamp < transition + metric.window)
    return not_ready and (transition is None or started + initial_delay > transition)


def _containers_counted(pod: ObjMap) -> list[ObjMap]:
    """The pod's containers and its restartable init containers (sidecars)."""
    spec = map_of(pod, "spec")
    out = [c for c in list_of(spec, "containers") if isinstance(c, Mapping)]
    out += [c for c in list_of(spec, "initContainers")
            if isinstance(c, Mapping) and c.get("restartPolicy") == "Always"]
    return out


def pod_requests(pods: Sequence[ObjMap], resource: str, container: str = "") -> dict[str, int]:
    """calculateRequests: each pod's request of ``resource`` in thousandths."""
    out: dict[str, int] = {}
    for pod in pods:
        total = 0
        for c in _containers_counted(pod):
            if container and c.get("name") != container:
                continue
            q = parse_quantity(map_of(map_of(c, "resources"), "requests").get(resource))
            if q is None:
                raise MetricError(f"missing request for {resource} in container "
                                  f"{str_of(c, 'name')} of Pod {name_of(pod)}")
            total += milli_value(q)
        out[name_of(pod)] = total
    return out


def _utilization_ratio(metrics: Mapping[str, PodMetric], requests: Mapping[str, int],
                       target: int) -> tuple[float, int, int]:
    """GetResourceUtilizationRatio: (ratio to target, whole percent, mean sample)."""
    used = requested = entries = 0
    for name, metric in metrics.items():
        if name not in requests:
            continue  # a sample of a pod not listed: extraneous
        used += metric.value
        requested += requests[name]
        entries += 1
    if requested == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = used * 100 // requested
    return utilization / target, utilization, used // entries


def _usage_ratio(metrics: Mapping[str, PodMetric], target: int) -> tuple[float, int]:
    """GetMetricUsageRatio: (ratio to target, mean sample)."""
    mean = sum(m.value for m in metrics.values()) // len(metrics)
    return mean / target, mean


def _grouped(pods: Sequence[ObjMap], metrics: Mapping[str, PodMetric], resource: str,
             now: datetime) -> tuple[PodGroups, dict[str, PodMetric]]:
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, metrics, resource, now)
    kept = {name: m for name, m in metrics.items()
            if name not in groups.ignored and name not in groups.unready}
    if not kept:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    return groups, kept


def _settle(current: int, ratio: float, new_ratio: float, counted: int) -> int:
    """The count after the conservative recomputation, or ``current`` where upstream keeps
    it (within tolerance, or the direction changed)."""
    if (abs(1.0 - new_ratio) <= TOLERANCE or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)):
        return current
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def resource_replicas(current: int, target_utilization: int, resource: str,
                      pods: Sequence[ObjMap], metrics: Mapping[str, PodMetric], now: datetime,
                      container: str = "") -> Proposal:
    """GetResourceReplicas: the count for a utilization target (percent of requests)."""
    groups, kept = _grouped(pods, metrics, resource, now)
    requests = pod_requests(pods, resource, container)
    ratio, utilization, average = _utilization_ratio(kept, requests, target_utilization)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if abs(1.0 - ratio) <= TOLERANCE:
            return Proposal(current, utilization, average)
        return Proposal(math.ceil(ratio * groups.ready), utilization, average)
    guessed = dict(kept)
    if groups.missing:
        if ratio < 1.0:
            fallback = max(100, target_utilization)
            for name in groups.missing:
                guessed[name] = PodMetric(requests.get(name, 0) * fallback // 100)
        elif ratio > 1.0:
            for name in groups.missing:
                guessed[name] = PodMetric(0)
    if scale_up_with_unready:
        for name in groups.unready:
            guessed[name] = PodMetric(0)
    new_ratio, _, _ = _utilization_ratio(guessed, requests, target_utilization)
    return Proposal(_settle(current, ratio, new_ratio, len(guessed)), utilization, average)


def average_value_replicas(current: int, target_milli: int, resource: str,
                           pods: Sequence[ObjMap], metrics: Mapping[str, PodMetric],
                           now: datetime) -> Proposal:
    """calcPlainMetricReplicas: the count for an average value target (thousandths)."""
    groups, kept = _grouped(pods, metrics, resource, now)
    ratio, average = _usage_ratio(kept, target_milli)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if abs(1.0 - ratio) <= TOLERANCE:
            return Proposal(current, None, average)
        return Proposal(math.ceil(ratio * groups.ready), None, average)
    guessed = dict(kept)
    for name in groups.missing:
        guessed[name] = PodMetric(target_milli if ratio < 1.0 else 0)
    if scale_up_with_unready:
        for name in groups.unready:
            guessed[name] = PodMetric(0)
    new_ratio, _ = _usage_ratio(guessed, target_milli)
    return Proposal(_settle(current, ratio, new_ratio, len(guessed)), None, average)
