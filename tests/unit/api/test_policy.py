"""policy/v1: PodDisruptionBudget validation and strategy, the DisruptionAllowed condition, and
the eviction's decision (svcnet/api/policy.py), against upstream's rules and messages."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from svcnet.api import policy
from svcnet.api.errors import StatusError
from svcnet.api.meta import validate_conditions

Obj = dict[str, Any]
NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def pdb(**spec: Any) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


def messages(obj: Obj) -> list[str]:
    return [str(e) for e in policy.validate_pdb(obj)]


@pytest.mark.parametrize("spec", [
    {"minAvailable": 0}, {"minAvailable": 3}, {"minAvailable": "0%"}, {"minAvailable": "100%"},
    {"maxUnavailable": 1}, {"maxUnavailable": "25%"},
    {"unhealthyPodEvictionPolicy": "AlwaysAllow"},
    {"unhealthyPodEvictionPolicy": "IfHealthyBudget", "maxUnavailable": 0},
    {},  # neither: allowed (nothing is expected, nothing may be disrupted)
])
def test_valid_budgets(spec: Obj) -> None:
    assert messages(pdb(**spec)) == []


@pytest.mark.parametrize(("spec", "expected"), [
    ({"minAvailable": 1, "maxUnavailable": 1},
     ["spec: Invalid value: minAvailable and maxUnavailable cannot be both set"]),
    ({"minAvailable": -1}, ["spec.minAvailable: Invalid value: -1: must be greater than or "
                            "equal to 0"]),
    ({"maxUnavailable": "101%"},
     ["spec.maxUnavailable: Invalid value: 101%: must not be greater than 100%"]),
    ({"minAvailable": "five"},
     ["spec.minAvailable: Invalid value: five: a valid percent string must be a numeric "
      "string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is "
      "'[0-9]+%')"]),
    ({"unhealthyPodEvictionPolicy": "Never"},
     ['spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: '
      '"AlwaysAllow", "IfHealthyBudget"']),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
     ["spec.selector.matchExpressions[0].values: Required value: must be specified when "
      "`operator` is 'In' or 'NotIn'"]),
])
def test_invalid_budgets(spec: Obj, expected: list[str]) -> None:
    assert messages(pdb(**spec)) == expected


def test_metadata_is_validated() -> None:
    bad = pdb(minAvailable=1)
    bad["metadata"]["name"] = "Web_1"
    assert messages(bad)[0].startswith('metadata.name: Invalid value: "Web_1": a lowercase '
                                       "RFC 1123 subdomain")


def test_strategy_keeps_status_and_spec_to_their_endpoints() -> None:
    created = policy.prepare_pdb_for_create({**pdb(minAvailable=1), "status": {
        "disruptionsAllowed": 9}})
    assert created["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0,
                                 "desiredHealthy": 0, "expectedPods": 0}
    stored = {**created, "status": {**created["status"], "currentHealthy": 3}}
    updated = policy.prepare_pdb_for_update({**stored, "status": {}}, stored)
    assert updated["status"]["currentHealthy"] == 3
    status_write = policy.prepare_pdb_for_status_update(
        {**stored, "spec": {"minAvailable": 7}}, stored)
    assert status_write["spec"] == stored["spec"]


def test_status_update_validation() -> None:
    old = policy.prepare_pdb_for_create(pdb(minAvailable=1))
    old["metadata"]["resourceVersion"] = "7"
    new = copy.deepcopy(old)
    new["status"] = {"disruptionsAllowed": -1, "currentHealthy": 0, "desiredHealthy": 0,
                     "expectedPods": -2, "conditions": [
                         {"type": "DisruptionAllowed", "status": "Maybe", "reason": "",
                          "lastTransitionTime": "2026-12-07T12:00:00Z"}]}
    assert [str(e) for e in policy.validate_pdb_status_update(new, old)] == [
        'status.conditions[0].status: Unsupported value: "Maybe": supported values: "False", '
        '"True", "Unknown"',
        "status.conditions[0].reason: Required value: must be set",
        "status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0",
        "status.expectedPods: Invalid value: -2: must be greater than or equal to 0"]


def test_metav1_conditions() -> None:
    good = {"type": "Ready", "status": "True", "reason": "AllGood",
            "lastTransitionTime": "2026-12-07T12:00:00Z", "observedGeneration": 1}
    assert validate_conditions([good], "status.conditions") == []
    errs = [str(e) for e in validate_conditions(
        [good, {**good, "reason": "bad reason", "observedGeneration": -1,
                "lastTransitionTime": None}], "status.conditions")]
    assert errs[0] == 'status.conditions[1].type: Duplicate value: "Ready"'
    assert errs[1] == ("status.conditions[1].observedGeneration: Invalid value: -1: must be "
                       "greater than or equal to zero")
    assert errs[2] == "status.conditions[1].lastTransitionTime: Required value: must be set"
    assert errs[3].startswith('status.conditions[1].reason: Invalid value: "bad reason": a '
                              "condition reason must start with alphabetic character")


def test_disruption_allowed_condition_moves_its_time_only_on_a_change() -> None:
    status: Obj = {"disruptionsAllowed": 1, "observedGeneration": 2}
    policy.set_disruption_allowed_condition(status, NOW)
    assert status["conditions"] == [{
        "type": "DisruptionAllowed", "status": "True", "observedGeneration": 2,
        "reason": "SufficientPods", "message": "", "lastTransitionTime": "2026-12-07T12:00:00Z"}]
    later = datetime(2026, 12, 7, 13, 0, 0, tzinfo=UTC)
    status["observedGeneration"] = 3
    policy.set_disruption_allowed_condition(status, later)
    assert status["conditions"][0]["lastTransitionTime"] == "2026-12-07T12:00:00Z"
    assert status["conditions"][0]["observedGeneration"] == 3
    status["disruptionsAllowed"] = 0
    policy.set_disruption_allowed_condition(status, later)
    [cond] = status["conditions"]
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == (
        "False", "InsufficientPods", "2026-12-07T13:00:00Z")


def pod(name: str, *, phase: str = "Running", ready: bool = True, labels: Obj | None = None,
        deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-07T11:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize(("p", "ignore"), [
    (pod("a"), False), (pod("a", phase="Pending"), True), (pod("a", phase="Succeeded"), True),
    (pod("a", phase="Failed"), True), (pod("a", deleting=True), True),
    (pod("a", ready=False), False),
])
def test_which_pods_need_no_budget(p: Obj, ignore: bool) -> None:
    assert policy.can_ignore_budgets(p) is ignore


def test_covering_budgets() -> None:
    web = pdb(minAvailable=1)
    everything = {**pdb(), "spec": {"selector": {}}}
    none = {**pdb(), "spec": {}}
    other_ns = {**pdb(), "metadata": {"name": "x", "namespace": "other"}}
    broken = {**pdb(), "spec": {"selector": {"matchExpressions": [
        {"key": "app", "operator": "Near", "values": ["x"]}]}}}
    assert policy.covering_budgets([web, everything, none, other_ns, broken],
                                   pod("a")) == [web]
    assert policy.covering_budgets([web], pod("a", labels={"app": "db"})) == []


def budget_with(**status: Any) -> Obj:
    return {**pdb(minAvailable=2), "status": {"observedGeneration": 1, **status}}


def test_take_disruption_decrements_and_records_the_pod() -> None:
    granted = policy.take_disruption(budget_with(disruptionsAllowed=2, currentHealthy=4,
                                                 desiredHealthy=2), "a", NOW, dry_run=False)
    assert granted["status"]["disruptionsAllowed"] == 1
    assert granted["status"]["disruptedPods"] == {"a": "2026-12-07T12:00:00Z"}
    assert "conditions" not in granted["status"]
    last = policy.take_disruption(granted, "b", NOW, dry_run=False)
    assert last["status"]["disruptionsAllowed"] == 0
    assert set(last["status"]["disruptedPods"]) == {"a", "b"}
    assert last["status"]["conditions"][0]["reason"] == "InsufficientPods"
    dry = policy.take_disruption(budget_with(disruptionsAllowed=1), "c", NOW, dry_run=True)
    assert "disruptedPods" not in dry["status"]


def test_take_disruption_refusals() -> None:
    with pytest.raises(StatusError) as e:
        policy.take_disruption(budget_with(disruptionsAllowed=0, currentHealthy=2,
                                           desiredHealthy=2), "a", NOW, dry_run=False)
    assert e.value.to_status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests", "details": {"causes": [{
            "reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]},
        "code": 429}
    stale = budget_with(disruptionsAllowed=5)
    stale["metadata"]["generation"] = 2
    with pytest.raises(StatusError) as e:
        policy.take_disruption(stale, "a", NOW, dry_run=False)
    assert e.value.code == 429 and e.value.details["retryAfterSeconds"] == 10
    assert e.value.details["causes"][0]["message"] == (
        "The disruption budget web is still being processed by the server.")
    with pytest.raises(StatusError) as e:
        policy.take_disruption(budget_with(disruptionsAllowed=-1), "a", NOW, dry_run=False)
    assert (e.value.code, e.value.message) == (
        403, 'poddisruptionbudget.policy "web" is forbidden: pdb disruptions allowed is '
             "negative")
    crowded = budget_with(disruptionsAllowed=1, disruptedPods={
        f"p{i}": "2026-12-07T12:00:00Z" for i in range(policy.MAX_DISRUPTED_POD_SIZE + 1)})
    with pytest.raises(StatusError) as e:
        policy.take_disruption(crowded, "a", NOW, dry_run=False)
    assert e.value.code == 403 and "DisruptedPods map too big" in e.value.message


@pytest.mark.parametrize(("eviction_policy", "healthy", "desired", "may"), [
    (None, 2, 2, True), (None, 1, 2, False), (None, 0, 0, False),
    ("IfHealthyBudget", 3, 2, True), ("AlwaysAllow", 0, 2, True),
])
def test_unready_pods(eviction_policy: str | None, healthy: int, desired: int,
                      may: bool) -> None:
    budget = budget_with(currentHealthy=healthy, desiredHealthy=desired)
    if eviction_policy:
        budget["spec"]["unhealthyPodEvictionPolicy"] = eviction_policy
    assert policy.may_evict_unready(budget, pod("a", ready=False)) is may
    assert policy.may_evict_unready(budget, pod("a")) is False, "a ready pod takes a disruption"
