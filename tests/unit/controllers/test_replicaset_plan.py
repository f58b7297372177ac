"""The ReplicaSet controller's pure parts: deletion ranking, claiming, status, expectations,
the pod template, slow start."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.labels import parse_selector
from svcnet.controllers.ownership import REPLICASETS, adopt_patch, plan_claims, release_patch
from svcnet.controllers.replicaset import (
    ControllerExpectations,
    calculate_status,
    filter_active_pods,
    is_pod_available,
    pod_deletion_less,
    pod_from_template,
    pods_to_delete,
    rank_pods_for_deletion,
    slow_start_batches,
)
from svcnet.util.clock import FakeClock
from tests.unit.controllers.test_replicaset_helpers import T0, at

Obj = dict[str, Any]


def pod(name: str, *, node: str = "node-a", phase: str = "Running", ready: bool = True,
        ready_since: float = -3600, created: float = -7200, restarts: int = 0,
        cost: str | None = None, uid: str | None = None, labels: dict[str, str] | None = None,
        owner: str | None = None, deleting: bool = False) -> Obj:
    p: Obj = {"metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}",
                           "creationTimestamp": at(created),
                           "labels": labels if labels is not None else {"app": "web"}},
              "spec": {"nodeName": node} if node else {},
              "status": {"phase": phase,
                         "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                         "lastTransitionTime": at(ready_since)}],
                         "containerStatuses": [{"name": "app", "restartCount": restarts}]}}
    if cost is not None:
        p["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": cost}
    if owner is not None:
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                             "name": owner, "uid": f"uid-{owner}",
                                             "controller": True}]
    if deleting:
        p["metadata"]["deletionTimestamp"] = at(0)
    return p


# -- deletion ranking ------------------------------------------------------------------------

# (why, first to delete, the other): rule by rule as ActivePodsWithRanks.Less orders them.
RANKING = [
    ("unassigned before assigned", pod("a", node=""), pod("b")),
    ("pending before unknown", pod("a", phase="Pending"), pod("b", phase="Unknown")),
    ("unknown before running", pod("a", phase="Unknown"), pod("b", phase="Running")),
    ("not ready before ready", pod("a", ready=False), pod("b")),
    ("lower deletion cost first", pod("a", cost="-5"), pod("b", cost="10")),
    ("bad cost counts as 0", pod("a", cost="x"), pod("b", cost="1")),
    ("ready for less time first", pod("a", ready_since=-10), pod("b", ready_since=-100000)),
    ("more restarts first", pod("a", restarts=3), pod("b", restarts=1)),
    ("newer first", pod("a", created=-10), pod("b", created=-100000)),
    ("same log bucket: by uid", pod("a", uid="uid-1", created=-100),
     pod("b", uid="uid-2", created=-101)),
    ("unassigned wins over running", pod("a", node="", phase="Running"),
     pod("b", phase="Pending")),
]


@pytest.mark.parametrize(("why", "first", "second"), RANKING, ids=[r[0] for r in RANKING])
def test_deletion_order_rule_by_rule(why: str, first: Obj, second: Obj) -> None:
    assert pod_deletion_less(first, second, 0, 0, T0)
    assert not pod_deletion_less(second, first, 0, 0, T0)
    assert [p["metadata"]["name"] for p in rank_pods_for_deletion([second, first], [], T0)] \
        == ["a", "b"]


def test_colocated_pods_go_first() -> None:
    a, b = pod("a", node="node-a"), pod("b", node="node-b")
    related = [a, b, pod("c", node="node-a"), pod("d", node="node-a", deleting=True)]
    assert [p["metadata"]["name"] for p in rank_pods_for_deletion([b, a], related, T0)] \
        == ["a", "b"]


def test_deletion_cost_beats_colocation_and_age() -> None:
    expensive = pod("a", cost="100", created=-10)
    cheap = pod("b", cost="0", created=-100000)
    assert rank_pods_for_deletion([expensive, cheap], [], T0)[0]["metadata"]["name"] == "b"


def test_pods_to_delete_takes_the_first_of_the_ranking() -> None:
    pods = [pod("ready"), pod("pending", phase="Pending", ready=False), pod("unscheduled",
                                                                          node="")]
    assert [p["metadata"]["name"] for p in pods_to_delete(pods, pods, 2, T0)] == [
        "unscheduled", "pending"]
    assert len(pods_to_delete(pods, pods, 3, T0)) == 3


def test_without_now_times_compare_exactly() -> None:
    a, b = pod("a", created=-10, uid="z"), pod("b", created=-11, uid="a")
    assert pod_deletion_less(a, b, 0, 0, None)  # newer first, no buckets, uid irrelevant


# -- activity and availability ---------------------------------------------------------------


def test_active_pods_exclude_terminal_and_terminating() -> None:
    pods = [pod("a"), pod("b", phase="Succeeded"), pod("c", phase="Failed"),
            pod("d", deleting=True), pod("e", phase="Pending", ready=False)]
    assert [p["metadata"]["name"] for p in filter_active_pods(pods)] == ["a", "e"]


@pytest.mark.parametrize(("ready", "since", "min_ready", "available"), [
    (True, -1, 0, True),
    (False, -100, 0, False),
    (True, -5, 10, False),
    (True, -10, 10, False),   # exactly minReadySeconds is not yet "more than"
    (True, -11, 10, True),
])
def test_availability(ready: bool, since: float, min_ready: int, available: bool) -> None:
    assert is_pod_available(pod("a", ready=ready, ready_since=since), min_ready, T0) \
        is available


# -- claiming --------------------------------------------------------------------------------

OWNER: Obj = {"metadata": {"name": "rs", "namespace": "ns", "uid": "uid-rs"}}


def names(objs: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_claims() -> None:
    sel = parse_selector("app=web")
    pods = [pod("ours", owner="rs"), pod("ours-relabeled", owner="rs", labels={"app": "x"}),
            pod("orphan"), pod("orphan-other", labels={"app": "x"}),
            pod("theirs", owner="other"), pod("orphan-dying", deleting=True)]
    plan = plan_claims(OWNER, sel, pods)
    assert names(plan.owned) == ["ours"]
    assert names(plan.adopt) == ["orphan"]
    assert names(plan.release) == ["ours-relabeled"]


def test_an_owner_being_deleted_neither_adopts_nor_releases() -> None:
    owner = {"metadata": {**OWNER["metadata"], "deletionTimestamp": at(0)}}
    plan = plan_claims(owner, parse_selector("app=web"),
                       [pod("ours", owner="rs"), pod("gone", owner="rs", labels={}),
                        pod("orphan")])
    assert (names(plan.owned), plan.adopt, plan.release) == (["ours"], [], [])


def test_adopt_and_release_patches_are_guarded() -> None:
    orphan = pod("orphan")
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "uid-rs",
           "controller": True, "blockOwnerDeletion": True}
    assert adopt_patch(orphan, ref) == [
        {"op": "test", "path": "/metadata/uid", "value": "uid-orphan"},
        {"op": "test", "path": "/metadata/ownerReferences", "value": None},
        {"op": "add", "path": "/metadata/ownerReferences", "value": [ref]}]
    ours = pod("ours", owner="rs")
    assert release_patch(ours, "uid-rs")[-1] == {"op": "remove",
                                                 "path": "/metadata/ownerReferences"}


# -- the pod template ------------------------------------------------------------------------


def test_pod_from_template() -> None:
    rs: Obj = {"metadata": {"name": "web-5d4f6", "namespace": "ns", "uid": "uid-rs"},
          "spec": {"template": {"metadata": {"labels": {"app": "web"},
                                             "annotations": {"a": "b"}},
                                "spec": {"containers": [{"name": "app", "image": "x"}]}}}}
    got = pod_from_template(rs)
    assert got["metadata"] == {
        "generateName": "web-5d4f6-", "namespace": "ns", "labels": {"app": "web"},
        "annotations": {"a": "b"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": REPLICASETS.kind,
                             "name": "web-5d4f6", "uid": "uid-rs", "controller": True,
                             "blockOwnerDeletion": True}]}
    assert got["spec"] == {"containers": [{"name": "app", "image": "x"}]}
    assert pod_from_template(rs)["spec"] is not rs["spec"]["template"]["spec"]


@pytest.mark.parametrize(("count", "batches"), [
    (0, []), (1, [1]), (2, [1, 1]), (3, [1, 2]), (7, [1, 2, 4]), (10, [1, 2, 4, 3]),
    (500, [1, 2, 4, 8, 16, 32, 64, 128, 245])])
def test_slow_start_batches(count: int, batches: list[int]) -> None:
    assert slow_start_batches(count) == batches
    assert sum(batches) == count


# -- status ----------------------------------------------------------------------------------


def rs_obj(**spec: Any) -> Obj:
    return {"metadata": {"name": "rs", "namespace": "ns", "generation": 2},
            "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web",
                                                                         "tier": "x"}}},
                     **spec},
            "status": {"observedGeneration": 1}}


def test_status_counts() -> None:
    pods = [pod("a", labels={"app": "web", "tier": "x"}),
            pod("b", labels={"app": "web"}, ready_since=-5),
            pod("c", labels={"app": "web", "tier": "x", "more": "y"}, ready=False)]
    status = calculate_status(rs_obj(minReadySeconds=10), pods, None, T0)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                      "availableReplicas": 1, "observedGeneration": 1}


def test_status_of_nothing_keeps_replicas_zero() -> None:
    assert calculate_status(rs_obj(), [], None, T0) == {"replicas": 0,
                                                        "observedGeneration": 1}


def test_replica_failure_condition_comes_and_goes() -> None:
    rs = rs_obj()
    failed = calculate_status(rs, [pod("a")], RuntimeError("quota exceeded"), T0)
    assert failed["conditions"] == [{"type": "ReplicaFailure", "status": "True",
                                     "lastTransitionTime": at(0), "reason": "FailedCreate",
                                     "message": "quota exceeded"}]
    rs["status"] = failed
    again = calculate_status(rs, [pod("a")], RuntimeError("other"), T0)
    assert again["conditions"] == failed["conditions"], "an existing failure is kept as is"
    assert "conditions" not in calculate_status(rs, [pod("a")], None, T0)
    too_many = calculate_status(rs_obj(replicas=0), [pod("a")], RuntimeError("x"), T0)
    assert too_many["conditions"][0]["reason"] == "FailedDelete"


# -- expectations ----------------------------------------------------------------------------


def test_expectations() -> None:
    clock = FakeClock(T0)
    exp = ControllerExpectations(clock)
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")

    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # seen terminating, then deleted: counted once
    exp.deletion_observed("ns/rs", "ns/zzz")  # not one we asked for
    assert exp.pending("ns/rs") == (0, 1)
    assert not exp.satisfied("ns/rs")
    clock.advance(301)
    assert exp.satisfied("ns/rs"), "expectations expire after five minutes"
    exp.delete("ns/rs")
    assert exp.pending("ns/rs") == (0, 0)
