"""The horizontal pod autoscaler controller (svcnet/controllers/podautoscaler/horizontal.py)
over the in-memory API, with a scale and a resource metrics source that behave like the
server's: what it writes to the target's scale, the HPA's status and conditions, and Events
(reconcileAutoscaler's cases in upstream's horizontal_test.go)."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.informer import InformerFactory
from svcnet.client.rest import EVENTS, GVR, PODS
from svcnet.controllers.ownership import DEPLOYMENTS
from svcnet.controllers.podautoscaler.horizontal import (
    HORIZONTALPODAUTOSCALERS,
    HorizontalController,
)
from svcnet.util.clock import FakeClock
from tests.unit.controllers.test_endpointslice_helpers import T0, FakeAPI, Obj, sync_cache
from tests.unit.controllers.test_podautoscaler_replicas import pod


class Scales:
    """The ``/scale`` of Deployments in ``api`` (ScaleTargets' surface)."""

    def __init__(self, api: FakeAPI) -> None:
        self.api = api

    async def get(self, namespace: str, ref: Any) -> tuple[Obj, GVR]:
        d = self.api.get(DEPLOYMENTS, f"{namespace}/{ref['name']}")
        if ref["kind"] != "Deployment" or d is None:
            raise StatusError(404, "NotFound", f'deployments.apps "{ref["name"]}" not found')
        return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": d["metadata"],
                "spec": {"replicas": d["spec"]["replicas"]},
                "status": {"replicas": d["spec"]["replicas"], "selector": "app=web"}}, DEPLOYMENTS

    async def update(self, gvr: GVR, scale: Obj) -> None:
        d = self.api.get(DEPLOYMENTS, f"{scale['metadata']['namespace']}/"
                                      f"{scale['metadata']['name']}")
        assert d is not None
        d["spec"]["replicas"] = scale["spec"]["replicas"]
        await self.api.update(DEPLOYMENTS, d)


class Metrics:
    """PodMetrics by pod name (millicores), or the error the metrics API gives."""

    def __init__(self) -> None:
        self.cpu: dict[str, int] = {}
        self.error: StatusError | None = None
        self.calls = 0

    async def pod_metrics(self, namespace: str, selector: str) -> list[Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return [{"metadata": {"name": n, "namespace": namespace}, "timestamp":
                 "2025-12-31T23:59:50Z", "window": "15s",
                 "containers": [{"name": "c0", "usage": {"cpu": f"{m}m"}}]}
                for n, m in self.cpu.items()]


def hpa(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "hpa-uid"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "web"},
                     "minReplicas": 1, "maxReplicas": 10,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": 50}}}], **spec}}


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.api = FakeAPI()
        self.metrics = Metrics()
        self.ctrl = HorizontalController(
            self.api, clock=self.clock,  # type: ignore[arg-type]
            informers=InformerFactory(self.api, clock=self.clock),
            targets=Scales(self.api),
            metrics=self.metrics)

    def put(self, gvr: GVR, *objs: Obj) -> None:
        for obj in objs:
            self.api.seed(gvr, obj)
        for g, informer in {HORIZONTALPODAUTOSCALERS: self.ctrl.hpas, PODS: self.ctrl.pods
                            }.items():
            sync_cache(informer, self.api.items(g))

    def deployment(self, replicas: int) -> None:
        self.put(DEPLOYMENTS, {"metadata": {"name": "web", "namespace": "ns"},
                               "spec": {"replicas": replicas}})

    def replicas(self) -> int:
        d = self.api.get(DEPLOYMENTS, "ns/web")
        assert d is not None
        return int(d["spec"]["replicas"])

    def status(self) -> Obj:
        stored = self.api.get(HORIZONTALPODAUTOSCALERS, "ns/web")
        assert stored is not None
        return dict(stored.get("status") or {})

    def condition(self, ctype: str) -> tuple[str, str, str]:
        c = next(c for c in self.status()["conditions"] if c["type"] == ctype)
        return c["status"], c["reason"], c["message"]

    def events(self) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in self.api.items(EVENTS)]


@pytest.fixture
def env() -> Env:
    return Env()


def web_pods(env: Env, *loads: int) -> None:
    names = [f"web-{i}" for i in range(len(loads))]
    env.put(PODS, *({**pod(n, "1"), "metadata": {"name": n, "namespace": "ns",
                                                   "labels": {"app": "web"}}} for n in names))
    env.metrics.cpu = dict(zip(names, loads, strict=True))


async def test_scales_up_from_cpu_utilization(env: Env) -> None:
    env.deployment(2)
    web_pods(env, 900, 900)
    env.put(HORIZONTALPODAUTOSCALERS, hpa())
    await env.ctrl.sync("ns/web")
    assert env.replicas() == 4  # 90% of requests against 50%: ceil(1.8 * 2)
    s = env.status()
    assert (s["currentReplicas"], s["desiredReplicas"]) == (2, 4)
    assert s["lastScaleTime"] == "2026-01-01T00:00:00Z"
    assert s["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageValue": "900m", "averageUtilization": 90}}}]
    assert env.condition("AbleToScale") == (
        "True", "SucceededRescale", "the HPA controller was able to update the target scale "
                                    "to 4")
    assert env.condition("ScalingActive") == (
        "True", "ValidMetricFound", "the HPA was able to successfully calculate a replica "
                                    "count from cpu resource utilization (percentage of "
                                    "request)")
    assert env.condition("ScalingLimited")[:2] == ("False", "DesiredWithinRange")
    assert ("Normal", "SuccessfulRescale", "New size: 4; reason: cpu resource utilization "
            "(percentage of request) above target") in env.events()


async def test_scale_down_is_stabilized_and_an_unchanged_status_is_not_rewritten(
        env: Env) -> None:
    env.deployment(4)
    web_pods(env, 100, 100, 100, 100)
    env.put(HORIZONTALPODAUTOSCALERS, hpa())
    await env.ctrl.sync("ns/web")
    assert env.replicas() == 4, "the first recommendation (4) holds for five minutes"
    assert env.condition("AbleToScale")[1] == "ScaleDownStabilized"
    assert env.status()["desiredReplicas"] == 4
    env.put(HORIZONTALPODAUTOSCALERS)  # the informer sees the status write
    writes = len(env.api.writes("horizontalpodautoscalers"))
    await env.ctrl.sync("ns/web")
    assert len(env.api.writes("horizontalpodautoscalers")) == writes
    # 10% against 50%: ceil(0.2 * 4) = 1, once the window holds no higher recommendation.
    env.clock.advance(301)
    await env.ctrl.sync("ns/web")
    assert env.replicas() == 1
    assert env.condition("AbleToScale")[1] == "SucceededRescale"


async def test_without_metrics_nothing_changes_and_the_condition_says_why(env: Env) -> None:
    env.deployment(3)
    web_pods(env, 900, 900, 900)
    env.metrics.error = StatusError(404, "NotFound", "the server could not find the requested "
                                                     "resource (get pods.metrics.k8s.io)")
    env.put(HORIZONTALPODAUTOSCALERS, hpa())
    await env.ctrl.sync("ns/web")
    assert env.replicas() == 3
    s = env.status()
    assert (s["currentReplicas"], s["desiredReplicas"]) == (3, 0)
    assert s["currentMetrics"] == [{"type": ""}]
    error = ("failed to get cpu utilization: unable to get metrics for resource cpu: unable "
             "to fetch metrics from resource metrics API: the server could not find the "
             "requested resource (get pods.metrics.k8s.io)")
    assert env.condition("ScalingActive") == (
        "False", "FailedGetResourceMetric", f"the HPA was unable to compute the replica count: "
                                            f"{error}")
    assert env.condition("AbleToScale")[:2] == ("True", "SucceededGetScale")
    assert ("Warning", "FailedGetResourceMetric", error) in env.events()
    assert ("Warning", "FailedComputeMetricsReplicas",
            f"invalid metrics (1 invalid out of 1), first error is: {error}") in env.events()


async def test_bounds_apply_before_metrics(env: Env) -> None:
    env.deployment(12)
    env.put(HORIZONTALPODAUTOSCALERS, hpa())
    await env.ctrl.sync("ns/web")
    assert env.replicas() == 10
    assert env.metrics.calls == 0
    assert ("Normal", "SuccessfulRescale",
            "New size: 10; reason: Current number of replicas above Spec.MaxReplicas"
            ) in env.events()


async def test_a_target_at_zero_is_left_alone(env: Env) -> None:
    env.deployment(0)
    env.put(HORIZONTALPODAUTOSCALERS, hpa())
    await env.ctrl.sync("ns/web")
    assert env.replicas() == 0
    assert env.condition("ScalingActive") == (
        "False", "ScalingDisabled", "scaling is disabled since the replica count of the target "
                                    "is zero")


async def test_a_missing_target_is_reported(env: Env) -> None:
    env.put(HORIZONTALPODAUTOSCALERS, hpa())
    await env.ctrl.sync("ns/web")
    assert env.condition("AbleToScale") == (
        "False", "FailedGetScale", "the HPA controller was unable to get the target's current "
                                   'scale: deployments.apps "web" not found')


async def test_custom_metrics_fail_but_a_working_metric_still_scales_up(env: Env) -> None:
    env.deployment(2)
    web_pods(env, 900, 900)
    pods_metric = {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {
        "type": "AverageValue", "averageValue": "10"}}}
    env.put(HORIZONTALPODAUTOSCALERS, hpa(metrics=[pods_metric, *hpa()["spec"]["metrics"]]))
    await env.ctrl.sync("ns/web")
    assert env.replicas() == 4
    s = env.status()
    assert s["currentMetrics"][0] == {"type": ""}
    assert ("Warning", "FailedGetPodsMetric",
            "unable to get metric qps: unable to fetch metrics from custom metrics API: no "
            "custom metrics API (custom.metrics.k8s.io) registered") in env.events()


async def test_a_new_hpa_is_looked_at_at_once_then_every_period(env: Env) -> None:
    queue = env.ctrl.controller.queue
    env.deployment(1)
    env.put(HORIZONTALPODAUTOSCALERS, hpa())
    env.ctrl.hpas._notify_add(hpa())
    assert (len(queue), queue.waiting) == (1, 0)
    assert await queue.get() == "ns/web"
    await env.ctrl.sync("ns/web")
    queue.done("ns/web")
    assert (len(queue), queue.waiting) == (0, 1)
    # Its own status write (an update) does not bring the next look forward.
    env.ctrl.hpas._notify_update(hpa(), hpa(maxReplicas=5))
    assert (len(queue), queue.waiting) == (0, 1)
    env.clock.advance(15)
    assert await queue.get() == "ns/web"


async def test_two_hpas_over_the_same_pods_are_refused(env: Env) -> None:
    env.deployment(2)
    web_pods(env, 900, 900)
    second = hpa()
    second["metadata"] = {"name": "web2", "namespace": "ns", "uid": "hpa2-uid"}
    env.put(HORIZONTALPODAUTOSCALERS, hpa(), second)
    await env.ctrl.sync("ns/web")
    assert env.replicas() == 4, "alone, the first scales"
    await env.ctrl.sync("ns/web2")
    stored = env.api.get(HORIZONTALPODAUTOSCALERS, "ns/web2")
    assert stored is not None
    [active] = [c for c in stored["status"]["conditions"] if c["type"] == "ScalingActive"]
    message = "pods by selector app=web are controlled by multiple HPAs: [ns/web ns/web2]"
    assert (active["status"], active["reason"], active["message"]) == (
        "False", "AmbiguousSelector", message)
    assert ("Warning", "AmbiguousSelector", message) in env.events()
    env.put(HORIZONTALPODAUTOSCALERS)
    await env.ctrl.sync("ns/web")
    assert env.condition("ScalingActive")[1] == "AmbiguousSelector", "the first stops too"
    assert env.replicas() == 4
