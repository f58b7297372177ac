"""The HPA's replica calculator and normalization (svcnet/controllers/podautoscaler/replicas.py
and normalize.py), with cases after upstream's replica_calculator_test.go and
horizontal_test.go: utilization, average values, unready and missing pods, tolerance, the
stabilization windows and the behavior policies."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from svcnet.controllers.podautoscaler.normalize import Recommender, convert_with_rules
from svcnet.controllers.podautoscaler.replicas import (
    MetricError,
    PodMetric,
    average_value_replicas,
    group_pods,
    pod_metrics_info,
    pod_requests,
    resource_replicas,
)
from svcnet.util.clock import rfc3339
from tests.unit.controllers.test_endpointslice_helpers import T0, Obj


def pod(name: str, cpu: str = "1", *, phase: str = "Running", ready: str | None = "True",
        started: datetime | None = None, transition: datetime | None = None,
        containers: int = 1, deleting: bool = False) -> Obj:
    started = started or T0 - timedelta(minutes=10)
    status: Obj = {"phase": phase, "startTime": rfc3339(started)}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready, "lastTransitionTime":
                                 rfc3339(transition or started + timedelta(seconds=5))}]
    meta: Obj = {"name": name, "namespace": "ns"}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(T0)
    return {"metadata": meta, "status": status, "spec": {"containers": [
        {"name": f"c{i}", "resources": {"requests": {"cpu": cpu}}} for i in range(containers)]}}


def samples(**values: int) -> dict[str, PodMetric]:
    return {name: PodMetric(v, T0 - timedelta(seconds=10), timedelta(seconds=15))
            for name, v in values.items()}


# -- the samples and the requests -------------------------------------------------------------


def test_pod_metrics_sum_containers_in_thousandths_rounded_up() -> None:
    items: list[Obj] = [{"metadata": {"name": "a", "namespace": "ns"}, "timestamp": "2026-01-01T00:00:00Z",
              "window": "15.002s", "containers": [
                  {"name": "c0", "usage": {"cpu": "250m", "memory": "10Mi"}},
                  {"name": "c1", "usage": {"cpu": "12345n", "memory": "1Ki"}}]},
             {"metadata": {"name": "b", "namespace": "ns"}, "containers": [
                 {"name": "c0", "usage": {"memory": "1Ki"}}]},
             {"metadata": {"name": "empty", "namespace": "ns"}, "containers": []}]
    got = pod_metrics_info(items, "cpu")
    assert list(got) == ["a"], "a container without the resource, or none, has no sample"
    assert got["a"].value == 251  # 250m + 12345n rounded up to 1m
    assert got["a"].window == timedelta(seconds=15, milliseconds=2)
    assert pod_metrics_info(items[:1], "memory", "c1")["a"].value == 1024_000
    with pytest.raises(MetricError, match="container c1 not present in metrics for pod ns/b"):
        pod_metrics_info(items, "memory", "c1")


def test_requests_cover_sidecars_and_name_the_container_without_one() -> None:
    p = pod("a", "500m", containers=2)
    p["spec"]["initContainers"] = [
        {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
        {"name": "init", "resources": {}}]
    assert pod_requests([p], "cpu") == {"a": 1100}
    assert pod_requests([p], "cpu", "c1") == {"a": 500}
    p["spec"]["containers"][1]["resources"] = {}
    with pytest.raises(MetricError, match="missing request for cpu in container c1 of Pod a"):
        pod_requests([p], "cpu")


def test_pods_are_grouped_as_upstream_does() -> None:
    fresh = T0 - timedelta(minutes=1)  # within the CPU initialisation period
    pods = [pod("ready"), pod("failed", phase="Failed"), pod("deleting", deleting=True),
            pod("pending", phase="Pending"), pod("nosample"),
            pod("unready", ready="False"),
            pod("never-ready", ready="False", transition=T0 - timedelta(minutes=10)),
            pod("young-unready", ready="False", started=fresh),
            pod("young-stale", started=fresh, transition=T0 - timedelta(seconds=20)),
            pod("young-ok", started=fresh, transition=T0 - timedelta(seconds=40)),
            pod("no-condition", ready=None)]
    metrics = samples(**{p["metadata"]["name"]: 100 for p in pods
                         if p["metadata"]["name"] != "nosample"})
    g = group_pods(pods, metrics, "cpu", T0)
    assert g.ignored == {"failed", "deleting"}
    assert g.missing == {"nosample"}
    # Unready after the initialisation period only if it never was ready (it turned unready
    # within 30 s of starting): "unready" became so 5 s after start; "never-ready" 0 s.
    assert g.unready == {"pending", "unready", "never-ready", "young-unready", "young-stale",
                         "no-condition"}
    assert g.ready == 2  # ready, young-ok
    # Memory ignores readiness: all but the ignored, the pending and the missing.
    assert group_pods(pods, metrics, "memory", T0).ready == 7


# -- the counts -----------------------------------------------------------------------------


def test_utilization_scales_up_and_down_with_the_ratio() -> None:
    pods = [pod(n, "1") for n in "abc"]  # 1000m requested each
    up = resource_replicas(3, 50, "cpu", pods, samples(a=900, b=900, c=900), T0)
    assert (up.replicas, up.utilization, up.average) == (6, 90, 900)  # ceil(1.8 * 3)
    down = resource_replicas(3, 50, "cpu", pods, samples(a=100, b=200, c=300), T0)
    assert (down.replicas, down.utilization, down.average) == (2, 20, 200)  # ceil(0.4*3)=2
    within = resource_replicas(3, 50, "cpu", pods, samples(a=520, b=540, c=500), T0)
    assert within.replicas == 3, "within the tolerance of 0.1 nothing changes"


def test_missing_pods_make_the_guess_conservative() -> None:
    pods = [pod(n, "1") for n in "abcd"]
    # Scale-down with d missing: d counts as using its whole request: (100+100+100+1000)/4000
    # = 32% against 50%: ratio .65 → ceil(.65*4) = 3, not ceil(.2*3) = 1.
    assert resource_replicas(4, 50, "cpu", pods, samples(a=100, b=100, c=100), T0
                             ).replicas == 3
    # Scale-up with d missing: d counts as using nothing: 2700/4000 = 67% of 50 → 1.34 →
    # ceil(5.36) = 6 (the load spread over 4 pods, not 3 pods at 90%).
    assert resource_replicas(4, 50, "cpu", pods, samples(a=900, b=900, c=900), T0
                             ).replicas == 6
    # A guess that flips direction keeps the count: 600*3/3000 = 60% → up 1.2, but with d at
    # 0: 1800/4000 = 45% → down: keep 4.
    assert resource_replicas(4, 50, "cpu", pods, samples(a=600, b=600, c=600), T0
                             ).replicas == 4


def test_unready_pods_count_as_idle_only_when_scaling_up() -> None:
    pods = [pod("a"), pod("b"), pod("slow", ready="False")]
    # Up: the unready pod counts as 0: (1000+1000+0)/3000 = 66% of 50 → 1.32 → ceil(3.96)=4.
    assert resource_replicas(3, 50, "cpu", pods, samples(a=1000, b=1000, slow=1000), T0
                             ).replicas == 4
    # Down: it is left out: 200/2000 = 10% → ceil(.2*2) = 1.
    assert resource_replicas(3, 50, "cpu", pods, samples(a=100, b=100, slow=1000), T0
                             ).replicas == 1


def test_errors_carry_upstreams_messages() -> None:
    with pytest.raises(MetricError, match="no pods returned by selector"):
        resource_replicas(1, 50, "cpu", [], samples(), T0)
    with pytest.raises(MetricError, match=r"did not receive metrics for targeted pods \(pods "
                                          r"might be unready\)"):
        resource_replicas(1, 50, "cpu", [pod("a", ready="False")], samples(a=1), T0)
    with pytest.raises(MetricError, match="no metrics returned matched known pods"):
        resource_replicas(1, 50, "cpu", [pod("a", "0")], samples(a=1), T0)


def test_average_value_targets() -> None:
    pods = [pod(n) for n in "ab"]
    got = average_value_replicas(2, 200, "cpu", pods, samples(a=500, b=300), T0)
    assert (got.replicas, got.utilization, got.average) == (4, None, 400)
    assert average_value_replicas(2, 400, "cpu", pods, samples(a=410, b=400), T0
                                  ).replicas == 2


# -- normalization --------------------------------------------------------------------------


def test_rules_bound_by_min_max_and_the_scale_up_limit() -> None:
    assert convert_with_rules(2, 10, 1, 20) == (4, ("ScaleUpLimit", "the desired replica count "
                                                   "is increasing faster than the maximum "
                                                   "scale rate"))
    assert convert_with_rules(3, 10, 1, 20)[0] == 6
    assert convert_with_rules(3, 10, 1, 5)[0] == 5
    assert convert_with_rules(3, 0, 2, 5) == (2, ("TooFewReplicas", "the desired replica count "
                                                  "is less than the minimum replica count"))
    assert convert_with_rules(3, 4, 1, 5)[1][0] == "DesiredWithinRange"


def test_scale_down_waits_for_the_stabilization_window() -> None:
    r = Recommender(timedelta(minutes=5))
    r.record_initial("k", 5, T0)
    got = r.normalize("k", 5, 2, 1, 10, T0 + timedelta(seconds=15))
    assert (got.replicas, got.able[0]) == (5, "ScaleDownStabilized")
    got = r.normalize("k", 5, 2, 1, 10, T0 + timedelta(minutes=4))
    assert got.replicas == 5
    # Past the window, only the recent recommendations of 2 remain.
    got = r.normalize("k", 5, 2, 1, 10, T0 + timedelta(minutes=9, seconds=30))
    assert (got.replicas, got.able[0], got.limited) == (2, "ReadyForNewScale", False)


def test_behavior_policies_limit_the_rate() -> None:
    behavior: Obj = {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                 "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
                     "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [
                         {"type": "Percent", "value": 50, "periodSeconds": 60}]}}
    r = Recommender()
    got = r.normalize_with_behavior("k", behavior, 2, 10, 1, 20, T0)
    assert (got.replicas, got.limited, got.limit[0]) == (4, True, "ScaleUpLimit")
    r.store_scale_event("k", behavior, 2, 4, T0)
    # Within the period, the 2 already added count: the period started at 2, so 4 is the cap.
    got = r.normalize_with_behavior("k", behavior, 4, 10, 1, 20, T0 + timedelta(seconds=30))
    assert got.replicas == 4
    got = r.normalize_with_behavior("k", behavior, 4, 10, 1, 20, T0 + timedelta(seconds=61))
    assert got.replicas == 6
    # Down by at most half per minute.
    got = r.normalize_with_behavior("k", behavior, 8, 1, 1, 20, T0 + timedelta(minutes=5))
    assert (got.replicas, got.limit[0]) == (4, "ScaleDownLimit")
    disabled = {**behavior, "scaleDown": {"selectPolicy": "Disabled"}}
    assert r.normalize_with_behavior("j", disabled, 8, 1, 1, 20, T0).replicas == 8


def test_behavior_stabilization_keeps_the_count_between_recent_recommendations() -> None:
    behavior: Obj = {"scaleUp": {"stabilizationWindowSeconds": 60},
                     "scaleDown": {"stabilizationWindowSeconds": 120}}
    r = Recommender()
    r.normalize_with_behavior("k", behavior, 3, 3, 1, 20, T0)
    got = r.normalize_with_behavior("k", behavior, 3, 8, 1, 20, T0 + timedelta(seconds=30))
    assert (got.replicas, got.able[0]) == (3, "ScaleUpStabilized")
    got = r.normalize_with_behavior("k", behavior, 3, 8, 1, 20, T0 + timedelta(seconds=95))
    # The window's lowest is now 8; the default policies allow 3 + 4 (Pods 4, more than
    # Percent 100's 6, and selectPolicy Max takes the larger).
    assert (got.replicas, got.limit[0]) == (7, "ScaleUpLimit")
