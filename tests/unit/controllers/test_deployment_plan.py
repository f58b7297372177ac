"""The Deployment controller's pure parts: the template hash, maxSurge/maxUnavailable, the
rolling-update and scaling arithmetic, revisions, status and conditions.

The scaling and rolling tables are upstream's cases (``sync_test.go`` TestScale,
``rolling_test.go`` reconcileNewReplicaSet/reconcileOldReplicaSets, ``deployment_util_test.go``
ResolveFenceposts/NewRSNewReplicas), rebuilt on JSON objects.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from svcnet.controllers.deployment import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    calculate_status,
    cleanable_replica_sets,
    compute_hash,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    equal_ignore_hash,
    find_new_replica_set,
    find_old_replica_sets,
    fnv32a,
    get_proportion,
    last_revision,
    max_revision,
    max_surge,
    max_unavailable,
    new_replica_set,
    new_rs_new_replicas,
    plan_old_scale_down,
    plan_proportional_scale,
    resolve_fenceposts,
    rollout_status,
    safe_encode_string,
    scaled_value_from_int_or_percent,
    set_new_replica_set_annotations,
)
from tests.unit.controllers.test_replicaset_helpers import T0, at

Obj = dict[str, Any]

TEMPLATE: Obj = {"metadata": {"labels": {"app": "web"}},
                 "spec": {"containers": [{"name": "app", "image": "app:1"}],
                          "restartPolicy": "Always"}}


def deployment(replicas: int = 10, *, surge: Any = 0, unavailable: Any = 0,
               strategy: str = "RollingUpdate", generation: int = 1, **spec: Any) -> Obj:
    strat: Obj = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "foo", "namespace": "ns", "uid": "uid-foo",
                         "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": TEMPLATE, "strategy": strat, "progressDeadlineSeconds": 600,
                     "revisionHistoryLimit": 10, **spec},
            "status": {}}


def rs(name: str, replicas: int, created: float = 0, *, available: int = 0,
       annotations: dict[str, str] | None = None, image: str = "app:1", **status: int) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                         "creationTimestamp": at(created),
                         "annotations": dict(annotations or {})},
            "spec": {"replicas": replicas,
                     "template": {"metadata": {"labels": {"app": "web",
                                                          "pod-template-hash": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}],
                                           "restartPolicy": "Always"}}},
            "status": {"replicas": replicas, "availableReplicas": available, **status}}


def sizes(ops: list[tuple[Obj, int]]) -> dict[str, int]:
    return {r["metadata"]["name"]: n for r, n in ops}


# -- hashing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "want"), [
    (b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foobar", 0xBF9CF968)])
def test_fnv32a_reference_vectors(data: bytes, want: int) -> None:
    assert fnv32a(data) == want


def test_safe_encoding_of_digits() -> None:
    assert safe_encode_string("0123456789") == "456789bcdf"


def test_hash_is_stable_safe_and_sensitive() -> None:
    h = compute_hash(TEMPLATE)
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{1,10}", h)
    same = {"spec": {"restartPolicy": "Always", "containers": [{"image": "app:1",
                                                                "name": "app"}]},
            "metadata": {"labels": {"app": "web"}, "annotations": {}}}
    assert compute_hash(same) == h, "key order and empty maps do not matter"
    changed = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "containers": [
        {"name": "app", "image": "app:2"}]}}
    assert compute_hash(changed) != h
    assert compute_hash(TEMPLATE, 0) != h, "a collision count, even 0, changes the hash"
    assert compute_hash(TEMPLATE, 1) not in (h, compute_hash(TEMPLATE, 0))


def test_equal_ignore_hash() -> None:
    with_hash = {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                 "spec": TEMPLATE["spec"]}
    assert equal_ignore_hash(with_hash, TEMPLATE)
    assert not equal_ignore_hash(with_hash, {**TEMPLATE, "spec": {"containers": []}})


# -- fenceposts ------------------------------------------------------------------------------


@pytest.mark.parametrize(("surge", "unavailable", "desired", "want"), [
    ("0%", "0%", 0, (0, 1)),
    ("39%", "39%", 10, (4, 3)),
    (None, "39%", 10, (0, 3)),
    ("39%", None, 10, (4, 0)),
    (None, None, 10, (0, 1)),
    ("25%", "25%", 3, (1, 0)),
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 1, (1, 0)),
    ("25%", "25%", 0, (0, 1)),
    (1, 0, 5, (1, 0)),
    (0, 1, 5, (0, 1)),
    ("100%", "100%", 7, (7, 7)),
    ("1%", "1%", 2, (1, 0)),
    ("0%", "1%", 2, (0, 1)),
])
def test_resolve_fenceposts(surge: Any, unavailable: Any, desired: int,
                            want: tuple[int, int]) -> None:
    assert resolve_fenceposts(surge, unavailable, desired) == want


@pytest.mark.parametrize(("surge", "unavailable"), [("oops", "39%"), ("55%", "urg"),
                                                    ("5", "1")])
def test_resolve_fenceposts_refuses_non_percent_strings(surge: str, unavailable: str) -> None:
    with pytest.raises(ValueError):
        resolve_fenceposts(surge, unavailable, 10)


def test_scaled_values_round_surge_up_and_unavailable_down() -> None:
    assert scaled_value_from_int_or_percent("25%", 5, True) == 2
    assert scaled_value_from_int_or_percent("25%", 5, False) == 1
    assert scaled_value_from_int_or_percent(3, 5, False) == 3


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "want_surge",
                          "want_unavailable"), [
    (10, "25%", "25%", 3, 2),
    (3, "25%", "25%", 1, 0),
    (0, "25%", "25%", 0, 0),  # no replicas: nothing may be unavailable
    (2, 5, 5, 5, 2),          # maxUnavailable is capped at replicas
])
def test_max_surge_and_unavailable(replicas: int, surge: Any, unavailable: Any,
                                   want_surge: int, want_unavailable: int) -> None:
    d = deployment(replicas, surge=surge, unavailable=unavailable)
    assert (max_surge(d), max_unavailable(d)) == (want_surge, want_unavailable)
    recreate = deployment(replicas, strategy="Recreate")
    assert (max_surge(recreate), max_unavailable(recreate)) == (0, 0)


# -- rolling update: the new ReplicaSet ------------------------------------------------------


@pytest.mark.parametrize(("strategy", "replicas", "surge", "new", "old", "want"), [
    ("RollingUpdate", 1, 1, 5, 5, 5),     # cannot scale up: already above
    ("RollingUpdate", 6, 10, 2, 5, 6),    # up to replicas, not replicas + surge
    ("RollingUpdate", 10, 0, 0, 10, 0),   # no surge, nothing may be added
    ("RollingUpdate", 10, 2, 0, 10, 2),
    ("RollingUpdate", 10, 2, 0, 5, 7),
    ("RollingUpdate", 10, 2, 2, 10, 2),
    ("RollingUpdate", 3, "25%", 0, 3, 1),
    ("Recreate", 3, 1, 1, 1, 3),
])
def test_new_rs_new_replicas(strategy: str, replicas: int, surge: Any, new: int, old: int,
                             want: int) -> None:
    d = deployment(replicas, surge=surge, unavailable=0 if surge else 1, strategy=strategy)
    new_rs, old_rs = rs("new", new, 10), rs("old", old)
    assert new_rs_new_replicas(d, [old_rs, new_rs], new_rs) == want


# -- rolling update: old ReplicaSets ---------------------------------------------------------


@pytest.mark.parametrize(("replicas", "unavailable", "old", "new", "old_ready", "new_ready",
                          "want_old"), [
    (10, 0, 10, 0, 10, 0, 9),     # maxUnavailable 0 and maxSurge 0 resolve to 1 unavailable
    (10, 2, 10, 0, 10, 0, 8),
    (10, 2, 10, 0, 8, 0, 8),      # two unhealthy old replicas are cleaned up first
    (10, 2, 10, 0, 9, 0, 8),      # one unhealthy cleaned up, one ready scaled down
    (10, 2, 8, 2, 8, 0, None),    # the new RS's unavailable pods block further scale-down
    (10, 2, 8, 2, 8, 2, 6),
    (3, 0, 3, 1, 3, 0, None),     # default 25%/25% of 3: surge 1, nothing unavailable
])
def test_old_replica_sets_scale_down(replicas: int, unavailable: int, old: int, new: int,
                                     old_ready: int, new_ready: int,
                                     want_old: int | None) -> None:
    d = deployment(replicas, surge=0 if replicas != 3 else "25%",
                   unavailable=unavailable if replicas != 3 else "25%")
    old_rs = rs("old", old, available=old_ready)
    new_rs = rs("new", new, 10, available=new_ready)
    ops = plan_old_scale_down([old_rs, new_rs], [old_rs], new_rs, d)
    if want_old is None:
        assert ops == []
    else:
        assert ops[-1][1] == want_old
        assert all(r["metadata"]["name"] == "old" for r, _ in ops)


def test_scale_down_takes_the_oldest_first() -> None:
    d = deployment(4, surge=0, unavailable=2)
    older, old = rs("older", 2, 0, available=2), rs("old", 2, 5, available=2)
    new_rs = rs("new", 0, 10)
    assert sizes(plan_old_scale_down([older, old, new_rs], [old, older], new_rs, d)) == {
        "older": 0}


# -- scaling (proportional) ------------------------------------------------------------------


def scaled(d: Obj, old_replicas: int, old_surge: int, new: Obj | None,
           olds: list[Obj]) -> dict[str, int]:
    for r in [*olds, *([new] if new else [])]:
        r["metadata"]["annotations"].update({
            DESIRED_REPLICAS_ANNOTATION: str(old_replicas),
            MAX_REPLICAS_ANNOTATION: str(old_replicas + old_surge)})
    return sizes(plan_proportional_scale(d, new, olds))


@pytest.mark.parametrize(("case", "replicas", "surge", "before", "old_surge", "new", "olds",
                          "want"), [
    ("5 -> 10", 10, 0, 5, 0, ("v2", 2, 5), [("v1", 3, 0)], {"v1": 6, "v2": 4}),
    ("5 -> 3", 3, 0, 5, 0, ("v2", 2, 5), [("v1", 3, 0)], {"v1": 2, "v2": 1}),
    ("9 -> 4", 4, 0, 9, 0, ("v2", 8, 5), [("v1", 1, 0)], {"v2": 4, "v1": 0}),
    ("7 -> 10", 10, 0, 7, 0, ("v3", 2, 9), [("v2", 3, 5), ("v1", 2, 0)],
     {"v2": 4, "v3": 3, "v1": 3}),
    ("13 -> 8", 8, 0, 13, 0, ("v3", 2, 9), [("v2", 8, 5), ("v1", 3, 0)],
     {"v2": 5, "v1": 2, "v3": 1}),
    ("leftover up: 3 -> 4", 4, 0, 3, 0, ("v3", 1, 9), [("v2", 1, 5), ("v1", 1, 0)],
     {"v3": 2, "v2": 1, "v1": 1}),
    ("leftover down: 3 -> 2", 2, 0, 3, 0, ("v3", 1, 9), [("v2", 1, 5), ("v1", 1, 0)],
     {"v1": 0, "v2": 1, "v3": 1}),
    ("no new rs: 4 -> 5 (rounds half away from zero)", 5, 0, 4, 0, None,
     [("v2", 2, 5), ("v1", 2, 0)], {"v2": 3, "v1": 2}),
    ("6 -> 0", 0, 0, 6, 0, ("v3", 3, 9), [("v2", 2, 5), ("v1", 1, 0)],
     {"v3": 0, "v2": 0, "v1": 0}),
    ("with surge pods: 10 -> 20", 20, 2, 10, 2, ("v2", 6, 5), [("v1", 6, 0)],
     {"v2": 11, "v1": 11}),
    ("surge and size change: 10 -> 50", 50, 6, 10, 3, ("v2", 5, 5), [("v1", 8, 0)],
     {"v1": 34, "v2": 22}),
])
def test_proportional_scaling(case: str, replicas: int, surge: int, before: int,
                              old_surge: int, new: tuple[str, int, int] | None,
                              olds: list[tuple[str, int, int]], want: dict[str, int]) -> None:
    d = deployment(replicas, surge=surge, unavailable=0 if surge else 1)
    new_rs = rs(new[0], new[1], new[2]) if new else None
    old_rss = [rs(n, r, c) for n, r, c in olds]
    got = scaled(d, before, old_surge, new_rs, old_rss)
    assert got == want


def test_scaling_a_single_active_replica_set_sets_it_to_replicas() -> None:
    d = deployment(5, surge=1, unavailable=0)
    only = rs("v1", 3)
    assert sizes(plan_proportional_scale(d, only, [rs("v0", 0)])) == {"v1": 5}
    assert plan_proportional_scale(deployment(3, surge=1), rs("v1", 3), []) == []
    fresh = rs("v2", 0, 9)
    assert sizes(plan_proportional_scale(d, fresh, [rs("v1", 0)])) == {"v2": 5}


def test_a_saturated_new_replica_set_scales_the_old_ones_to_zero() -> None:
    d = deployment(3, surge=1, unavailable=0)
    new_rs = rs("v2", 3, 9, available=3, annotations={DESIRED_REPLICAS_ANNOTATION: "3"})
    assert sizes(plan_proportional_scale(d, new_rs, [rs("v1", 2), rs("v0", 1)])) == {
        "v1": 0, "v0": 0}


def test_get_proportion_edges() -> None:
    d = deployment(10)
    assert get_proportion(None, d, 5, 0) == 0
    assert get_proportion(rs("a", 0), d, 5, 0) == 0
    assert get_proportion(rs("a", 3), d, 5, 5) == 0


# -- revisions -------------------------------------------------------------------------------


def test_revisions() -> None:
    rss = [rs("a", 0, annotations={REVISION_ANNOTATION: "3"}),
           rs("b", 0, annotations={REVISION_ANNOTATION: "7"}),
           rs("c", 0, annotations={REVISION_ANNOTATION: "x"}), rs("d", 0)]
    assert (max_revision(rss), last_revision(rss)) == (7, 3)
    assert (max_revision([]), last_revision([rss[1]])) == (0, 0)


def test_new_replica_set_annotations_and_rollback_history() -> None:
    d = deployment(3, surge="25%", unavailable="25%")
    d["metadata"]["annotations"] = {"team": "a", REVISION_ANNOTATION: "9",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    fresh: Obj = {"metadata": {}}
    assert set_new_replica_set_annotations(d, fresh, "1", False)
    assert fresh["metadata"]["annotations"] == {
        "team": "a", REVISION_ANNOTATION: "1", DESIRED_REPLICAS_ANNOTATION: "3",
        MAX_REPLICAS_ANNOTATION: "4"}
    assert not set_new_replica_set_annotations(d, fresh, "1", True), "nothing new"
    # Rolled back to: its revision moves up and the old one is remembered.
    assert set_new_replica_set_annotations(d, fresh, "4", True)
    assert fresh["metadata"]["annotations"][REVISION_ANNOTATION] == "4"
    assert fresh["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "1"
    set_new_replica_set_annotations(d, fresh, "6", True)
    assert fresh["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "1,4"
    assert not set_new_replica_set_annotations(d, fresh, "5", True), "never lowered"


def test_history_is_capped_in_length() -> None:
    rs_obj: Obj = {"metadata": {"annotations": {REVISION_ANNOTATION: "99",
                                                REVISION_HISTORY_ANNOTATION: "1,22,333"}}}
    set_new_replica_set_annotations(deployment(1), rs_obj, "100", True, limit_in_chars=8)
    assert rs_obj["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "333,99"


def test_new_and_old_replica_sets() -> None:
    d = deployment(3)
    new_rs, other = rs("match", 1, 5), rs("other", 2, 0, image="app:0")
    twin = rs("match-later", 0, 9)
    assert find_new_replica_set(d, [twin, other, new_rs]) is new_rs, "the oldest match"
    with_replicas, all_old = find_old_replica_sets(d, [new_rs, other, rs("idle", 0, 1,
                                                                          image="x")])
    assert [r["metadata"]["name"] for r in with_replicas] == ["other"]
    assert [r["metadata"]["name"] for r in all_old] == ["other", "idle"]


def test_the_new_replica_set_object() -> None:
    d = deployment(3, surge="25%", unavailable="25%", minReadySeconds=5)
    created = new_replica_set(d, [rs("old", 3)], "2")
    h = compute_hash(TEMPLATE)
    assert created["metadata"]["name"] == f"foo-{h}"
    assert created["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert created["spec"]["selector"] == {"matchLabels": {"app": "web",
                                                           "pod-template-hash": h}}
    assert created["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == h
    assert created["spec"]["replicas"] == 1 and created["spec"]["minReadySeconds"] == 5
    assert created["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert created["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    d["status"]["collisionCount"] = 1
    assert new_replica_set(d, [], "1")["metadata"]["name"] != f"foo-{h}"


def test_history_cleanup_candidates() -> None:
    d = deployment(1, revisionHistoryLimit=1)
    olds = [rs("r1", 0, 0, annotations={REVISION_ANNOTATION: "1"}),
            rs("r2", 0, 1, annotations={REVISION_ANNOTATION: "2"}),
            rs("r3", 0, 2, annotations={REVISION_ANNOTATION: "3"})]
    busy = rs("r0", 1, annotations={REVISION_ANNOTATION: "0"})
    got = [r["metadata"]["name"] for r in cleanable_replica_sets([*olds, busy], d)]
    assert got == ["r1", "r2"], "oldest revisions first, never one with pods"
    assert cleanable_replica_sets(olds, deployment(1, revisionHistoryLimit=2**31 - 1)) == []


# -- status and conditions -------------------------------------------------------------------


def test_status_counts_and_availability() -> None:
    d = deployment(3, surge=1, unavailable=1, generation=4)
    new_rs = rs("new", 2, 5, available=1, readyReplicas=1)
    old_rs = rs("old", 2, 0, available=2, readyReplicas=2)
    status = calculate_status([old_rs, new_rs], new_rs, d, T0)
    conditions = status.pop("conditions")
    assert status == {"observedGeneration": 4, "replicas": 4, "updatedReplicas": 2,
                      "readyReplicas": 3, "availableReplicas": 3, "unavailableReplicas": 1}
    assert conditions == [{"type": "Available", "status": "True",
                           "reason": "MinimumReplicasAvailable",
                           "message": "Deployment has minimum availability.",
                           "lastUpdateTime": at(0), "lastTransitionTime": at(0)}]
    d["status"] = {"conditions": conditions}
    worse = calculate_status([rs("new", 3, 5)], None, d, T0)
    (avail,) = worse["conditions"]
    assert (avail["status"], avail["reason"]) == ("False", "MinimumReplicasUnavailable")


def test_progress_complete_progressing_and_timed_out() -> None:
    d = deployment(2, surge=1, unavailable=0)
    new_rs = rs("new", 2, 5, available=2)
    done = rollout_status([new_rs], new_rs, d, T0)
    assert deployment_complete(d, done)
    progressing = {c["type"]: c for c in done["conditions"]}["Progressing"]
    assert (progressing["reason"], progressing["message"]) == (
        "NewReplicaSetAvailable", 'ReplicaSet "new" has successfully progressed.')

    d["status"] = {"replicas": 2, "updatedReplicas": 0, "conditions": [
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated",
         "lastUpdateTime": at(-100), "lastTransitionTime": at(-100), "message": "x"}]}
    moving = rollout_status([rs("old", 1), rs("new", 1, 5)], rs("new", 1, 5), d, T0)
    assert deployment_progressing(d, moving)
    cond = {c["type"]: c for c in moving["conditions"]}["Progressing"]
    assert (cond["reason"], cond["lastUpdateTime"], cond["lastTransitionTime"]) == (
        "ReplicaSetUpdated", at(0), at(-100))

    d["spec"]["progressDeadlineSeconds"] = 60
    stuck = rollout_status([rs("old", 2), rs("new", 0, 5)], rs("new", 0, 5), d, T0)
    assert deployment_timed_out(d, stuck, T0)
    cond = {c["type"]: c for c in stuck["conditions"]}["Progressing"]
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_no_progress_deadline_means_no_progressing_condition() -> None:
    d = deployment(1, surge=1, unavailable=0, progressDeadlineSeconds=2**31 - 1)
    d["status"] = {"conditions": [{"type": "Progressing", "status": "True",
                                   "reason": "NewReplicaSetCreated"}]}
    status = rollout_status([rs("new", 1, 5)], rs("new", 1, 5), d, T0)
    assert [c["type"] for c in status["conditions"]] == ["Available"]


def test_replica_failures_become_a_deployment_condition() -> None:
    d = deployment(1, surge=1, unavailable=0)
    failing = rs("new", 1, 5)
    failing["status"]["conditions"] = [{"type": "ReplicaFailure", "status": "True",
                                        "reason": "FailedCreate", "message": "quota",
                                        "lastTransitionTime": at(-5)}]
    status = rollout_status([failing], failing, d, T0)
    failure = {c["type"]: c for c in status["conditions"]}["ReplicaFailure"]
    assert (failure["reason"], failure["message"]) == ("FailedCreate", "quota")


def test_a_stale_status_never_scales_an_old_replica_set_up() -> None:
    """Spec lowered, status not yet: more available than asked for. Upstream refuses the
    "scale down" to a larger size and stops for this round."""
    d = deployment(10, surge=3, unavailable=1)
    old_rs = rs("old", 1, available=2)
    new_rs = rs("new", 10, 5, available=10)
    assert plan_old_scale_down([old_rs, new_rs], [old_rs], new_rs, d) == []
