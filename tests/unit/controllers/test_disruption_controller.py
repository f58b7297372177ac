"""The disruption controller (svcnet/controllers/disruption.py): the status it computes for a
budget from its pods and their controllers' scales (pkg/controller/disruption's rules), and
the controller over the in-memory API (conventions of ``test_endpoints_controller``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from svcnet.client.informer import InformerFactory
from svcnet.client.rest import GVR, PODS
from svcnet.controllers.disruption import (
    PODDISRUPTIONBUDGETS,
    DisruptionController,
    NoControllers,
    compute_status,
)
from svcnet.controllers.ownership import (
    DEPLOYMENTS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    STATEFULSETS,
)
from svcnet.util.clock import FakeClock, rfc3339
from tests.unit.controllers.test_endpointslice_helpers import T0, FakeAPI, Obj, sync_cache


def budget(generation: int = 1, status: Obj | None = None, **spec: Any) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "ns", "generation": generation,
                         "uid": "pdb-uid"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
            "status": status or {}}


def pod(name: str, *, ready: bool = True, owner: Obj | None = None,
        deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "labels": {"app": "web"}, "uid": f"u-{name}"}
    if owner is not None:
        meta["ownerReferences"] = [{**owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = rfc3339(T0)
    return {"metadata": meta, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


RS_REF = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid"}
STS_REF = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "sts-uid"}


def scales(table: dict[str, tuple[str, int]]) -> Any:
    return lambda _ns, ref: table.get(ref["uid"])


def test_integer_min_available_counts_the_pods_found() -> None:
    pods = [pod("a"), pod("b"), pod("c", ready=False), pod("d", deleting=True)]
    out = compute_status(budget(minAvailable=2), pods, scales({}), T0)
    s = out.status
    assert (s["expectedPods"], s["desiredHealthy"], s["currentHealthy"],
            s["disruptionsAllowed"], s["observedGeneration"]) == (4, 2, 2, 0, 1)
    assert s["conditions"][0]["reason"] == "InsufficientPods"


def test_percentages_and_max_unavailable_use_the_controllers_scale() -> None:
    pods = [pod(n, owner=RS_REF) for n in "abc"] + [pod("s", owner=STS_REF)]
    table = scales({"rs-uid": ("deploy-uid", 5), "sts-uid": ("sts-uid", 1)})
    # 50% of 6 expected, rounded up: 3 desired; 4 healthy → 1 allowed.
    out = compute_status(budget(minAvailable="50%"), pods, table, T0).status
    assert (out["expectedPods"], out["desiredHealthy"], out["disruptionsAllowed"]) == (6, 3, 1)
    assert out["conditions"][0]["reason"] == "SufficientPods"
    # maxUnavailable 25% of 6 rounds up to 2: 4 desired, 0 allowed.
    out = compute_status(budget(maxUnavailable="25%"), pods, table, T0).status
    assert (out["desiredHealthy"], out["disruptionsAllowed"]) == (4, 0)
    out = compute_status(budget(maxUnavailable=10), pods, table, T0).status
    assert (out["desiredHealthy"], out["disruptionsAllowed"]) == (0, 4)


def test_unmanaged_pods_add_nothing_to_the_expected_scale() -> None:
    pods = [pod("a", owner=RS_REF), pod("bare")]
    out = compute_status(budget(maxUnavailable=1), pods, scales({"rs-uid": ("rs-uid", 1)}), T0)
    assert out.unmanaged == ("bare",)
    assert (out.status["expectedPods"], out.status["desiredHealthy"],
            out.status["disruptionsAllowed"]) == (1, 0, 2)


def test_a_controller_without_a_scale_fails_the_sync() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "job-uid"}
    with pytest.raises(NoControllers, match="found no controllers for pod \"a\""):
        compute_status(budget(minAvailable="10%"), [pod("a", owner=job)], scales({}), T0)


def test_disrupted_pods_count_as_gone_until_deleted_or_timed_out() -> None:
    pods = [pod("a"), pod("b"), pod("c")]
    recent = rfc3339(T0 - timedelta(seconds=30))
    stale = rfc3339(T0 - timedelta(minutes=3))
    status = {"disruptedPods": {"a": recent, "b": stale, "gone": recent}}
    out = compute_status(budget(minAvailable=1, status=status), pods, scales({}), T0)
    # a still counts as disrupted; b's entry expired (counted healthy again); gone is gone.
    assert out.status["disruptedPods"] == {"a": recent}
    assert (out.status["currentHealthy"], out.status["disruptionsAllowed"]) == (2, 1)
    assert out.recheck == T0 + timedelta(seconds=90)


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.api = FakeAPI()
        self.ctrl = DisruptionController(self.api, clock=self.clock,  # type: ignore[arg-type]
                                         informers=InformerFactory(self.api, clock=self.clock))

    def put(self, gvr: GVR, *objs: Obj) -> None:
        for obj in objs:
            self.api.seed(gvr, obj)
        informers = {PODDISRUPTIONBUDGETS: self.ctrl.budgets, PODS: self.ctrl.pods,
                     **{g: self.ctrl.workloads[g.resource] for g in (
                         REPLICATIONCONTROLLERS, REPLICASETS, DEPLOYMENTS, STATEFULSETS)}}
        for g, informer in informers.items():
            sync_cache(informer, self.api.items(g))

    def status(self) -> Obj:
        stored = self.api.get(PODDISRUPTIONBUDGETS, "ns/web")
        assert stored is not None
        return dict(stored["status"])


@pytest.fixture
def env() -> Env:
    return Env()


async def test_sync_follows_a_deployment_through_its_replica_set(env: Env) -> None:
    deployment = {"metadata": {"name": "web", "namespace": "ns", "uid": "deploy-uid"},
                  "spec": {"replicas": 4}}
    rs = {"metadata": {"name": "web-1", "namespace": "ns", "uid": "rs-uid", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "deploy-uid",
         "controller": True}]}, "spec": {"replicas": 3}}
    env.put(DEPLOYMENTS, deployment)
    env.put(REPLICASETS, rs)
    env.put(PODS, *(pod(n, owner=RS_REF) for n in "abc"))
    env.put(PODDISRUPTIONBUDGETS, budget(maxUnavailable="50%"))
    await env.ctrl.sync("ns/web")
    s = env.status()
    # The Deployment's 4, not the ReplicaSet's 3: 50% of 4 = 2 may be unavailable.
    assert (s["expectedPods"], s["desiredHealthy"], s["currentHealthy"],
            s["disruptionsAllowed"]) == (4, 2, 3, 1)
    assert s["conditions"][0]["status"] == "True"
    env.put(PODDISRUPTIONBUDGETS)  # the informer sees the write
    writes = len(env.api.actions)
    await env.ctrl.sync("ns/web")
    assert len(env.api.actions) == writes, "an unchanged status is not written again"


async def test_sync_failure_writes_the_fail_safe_status(env: Env) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "job-uid"}
    env.put(PODS, pod("a", owner=job))
    env.put(PODDISRUPTIONBUDGETS, budget(minAvailable="50%", status={"disruptionsAllowed": 3}))
    await env.ctrl.sync("ns/web")
    s = env.status()
    assert s["disruptionsAllowed"] == 0
    [cond] = s["conditions"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "SyncFailed", 'found no controllers for pod "a"')
    reasons = [e["reason"] for e in env.api.items(GVR("", "v1", "events", "Event"))]
    assert "CalculateExpectedPodCountFailed" in reasons


async def test_pod_and_scale_events_queue_the_budgets_that_select_them(env: Env) -> None:
    env.put(PODDISRUPTIONBUDGETS, budget(minAvailable=1))
    queue = env.ctrl.controller.queue
    env.ctrl._pod_changed(pod("a"))
    other = pod("x")
    other["metadata"]["labels"] = {"app": "other"}
    env.ctrl._pod_changed(other)
    assert len(queue) == 1
    key = await queue.get()
    assert key == "ns/web"
    queue.done(key)
    rs = {"metadata": {"name": "r", "namespace": "ns"}, "spec": {"replicas": 1}}
    env.ctrl._scale_changed(rs, {**rs, "status": {"readyReplicas": 1}})
    assert len(queue) == 0, "a status change of a workload is not a scale change"
    env.ctrl._scale_changed(rs, {**rs, "spec": {"replicas": 2}})
    assert len(queue) == 1
