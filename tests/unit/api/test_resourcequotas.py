"""ResourceQuota validation, the core evaluators' usage, the admission's check (upstream's
TestValidateResourceQuota, pkg/quota/v1/evaluator/core tests and the resourcequota admission
tests), the controller's calculation, the Table, and the store-arbitrated charge through two
registries on one store (two API processes)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.api.resourcequotas import (
    calculate_status,
    charge,
    matches_scopes,
    tracked_resources,
    usage,
    validate_resource_quota,
    validate_resource_quota_status_update,
    validate_resource_quota_update,
)
from svcnet.api.schema import decode
from svcnet.apiserver.quota import QuotaAdmission
from svcnet.apiserver.tables import table_for
from svcnet.registry.generic import Registry
from svcnet.registry.quotas import ResourceQuotaStrategy
from svcnet.registry.strategies import PodStrategy
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import RealClock, rfc3339

Obj = dict[str, Any]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _quota(hard: Obj, *, scopes: list[str] | None = None, selector: Obj | None = None,
           used: Obj | None = None) -> Obj:
    spec: Obj = {"hard": hard}
    if scopes is not None:
        spec["scopes"] = scopes
    if selector is not None:
        spec["scopeSelector"] = selector
    q: Obj = {"metadata": {"name": "quota", "namespace": "foo", "resourceVersion": "3"},
              "spec": spec}
    if used is not None:
        q["status"] = {"hard": dict(hard), "used": used}
    return q


def _errors(obj: Obj) -> list[str]:
    return [str(e) for e in validate_resource_quota(obj)]


def test_valid_quotas() -> None:
    assert _errors(_quota({"cpu": "100", "memory": "10000", "requests.cpu": "100",
                           "limits.memory": "1Gi", "pods": "5", "services": "10",
                           "replicationcontrollers": "10", "resourcequotas": "1",
                           "configmaps": "1", "persistentvolumeclaims": "2",
                           "requests.storage": "10Gi", "services.nodeports": "0",
                           "gold.storageclass.storage.k8s.io/requests.storage": "1Gi",
                           "count/deployments.apps": "3",
                           "requests.example.com/gpu": "2"})) == []
    assert _errors(_quota({"pods": "1", "cpu": "1"}, scopes=["NotBestEffort",
                                                               "Terminating"])) == []
    assert _errors(_quota({"pods": "1"}, selector={"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]})) == []


@pytest.mark.parametrize(("quota", "want"), [
    (_quota({"pods": "-1"}),
     ['spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0']),
    (_quota({"pods": "1.5"}), ["spec.hard[pods]: Invalid value: 1.5: must be an integer"]),
    (_quota({"foo": "1"}),
     ['spec.hard[foo]: Invalid value: "foo": must be a standard resource type or fully '
      'qualified',
      'spec.hard[foo]: Invalid value: "foo": must be a standard resource for quota']),
    (_quota({"services": "1"}, scopes=["BestEffort"]),
     ['spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort"}: unsupported scope applied to resource']),
    (_quota({"pods": "1"}, scopes=["BestEffort", "NotBestEffort"]),
     ['spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", '
      '"NotBestEffort"}: conflicting scopes']),
    (_quota({"pods": "1"}, scopes=["Bogus"]),
     ['spec.scopes: Invalid value: []core.ResourceQuotaScope{"Bogus"}: unsupported scope']),
    (_quota({"pods": "1"}, selector={"matchExpressions": [
        {"scopeName": "Terminating", "operator": "In", "values": ["x"]}]}),
     ['spec.scopeSelector.matchExpressions.operator: Invalid value: "In": must be \'Exist\' '
      'when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, '
      'ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or '
      'ResourceQuotaScopeCrossNamespacePodAffinity']),
    (_quota({"pods": "1"}, selector={"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In"}]}),
     ["spec.scopeSelector.matchExpressions.values: Required value: must be at least one "
      "value when `operator` is 'In' or 'NotIn' for scope selector"]),
    (_quota({"pods": "1"}, selector={"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "Exists", "values": ["a"]}]}),
     ['spec.scopeSelector.matchExpressions.values: Invalid value: []string{"a"}: must be no value '
      "when `operator` is 'Exist' or 'DoesNotExist' for scope selector"]),
])
def test_invalid_quotas(quota: Obj, want: list[str]) -> None:
    assert _errors(quota) == want


def test_scopes_are_immutable() -> None:
    old = _quota({"pods": "1"}, scopes=["BestEffort"])
    new = _quota({"pods": "2"}, scopes=["NotBestEffort"])
    assert [str(e) for e in validate_resource_quota_update(new, old)] == [
        'spec.scopes: Invalid value: []core.ResourceQuotaScope{"NotBestEffort"}: field is immutable']


def _pod(*containers: Obj, **spec: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": "foo"},
            "spec": {"containers": list(containers), **spec}}


def _c(name: str = "c1", requests: Obj | None = None, limits: Obj | None = None) -> Obj:
    res: Obj = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": name, "resources": res}


def test_pod_usage() -> None:
    pod = _pod(_c(requests={"cpu": "100m", "memory": "1Gi", "example.com/gpu": "1"},
                  limits={"cpu": "200m"}),
               _c("c2", requests={"cpu": "150m"}),
               initContainers=[_c("i", requests={"cpu": "1"})], overhead={"cpu": "10m"})
    assert usage("", "pods", pod, NOW) == {
        "count/pods": 1, "pods": 1, "cpu": Fraction("1.01"), "requests.cpu": Fraction("1.01"),
        "limits.cpu": Fraction("0.21"), "memory": 1024**3, "requests.memory": 1024**3,
        "requests.example.com/gpu": 1}
    finished = _pod(_c(requests={"cpu": "1"}), )
    finished["status"] = {"phase": "Succeeded"}
    assert usage("", "pods", finished, NOW) == {"count/pods": 1}
    gone = _pod(_c(requests={"cpu": "1"}))
    gone["metadata"].update(deletionTimestamp=rfc3339(NOW - timedelta(seconds=40)),
                            deletionGracePeriodSeconds=30)
    assert usage("", "pods", gone, NOW) == {"count/pods": 1}


def test_service_claim_and_count_usage() -> None:
    lb: Obj = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert usage("", "services", lb, NOW) == {
        "count/services": 1, "services": 1, "services.loadbalancers": 1,
        "services.nodeports": 2}
    lb["spec"]["allocateLoadBalancerNodePorts"] = False
    lb["spec"]["ports"][0]["nodePort"] = 30080
    assert usage("", "services", lb, NOW)["services.nodeports"] == 1
    claim = {"spec": {"storageClassName": "gold",
                      "resources": {"requests": {"storage": "1Gi"}}}}
    assert usage("", "persistentvolumeclaims", claim, NOW) == {
        "count/persistentvolumeclaims": 1, "persistentvolumeclaims": 1,
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": 1,
        "requests.storage": 1024**3, "gold.storageclass.storage.k8s.io/requests.storage":
            1024**3}
    assert usage("", "configmaps", {}, NOW) == {"count/configmaps": 1, "configmaps": 1}
    assert usage("apps", "deployments", {}, NOW) == {"count/deployments.apps": 1}


def test_pod_scopes() -> None:
    best_effort = _pod(_c())
    burstable = _pod(_c(requests={"cpu": "1"}), activeDeadlineSeconds=10,
                     priorityClassName="high")
    assert matches_scopes(_quota({"pods": "1"}, scopes=["BestEffort"]), "", "pods",
                          best_effort)
    assert not matches_scopes(_quota({"pods": "1"}, scopes=["BestEffort"]), "", "pods",
                              burstable)
    assert matches_scopes(_quota({"pods": "1"}, scopes=["NotBestEffort", "Terminating"]), "",
                          "pods", burstable)
    assert not matches_scopes(_quota({"pods": "1"}, scopes=["Terminating"]), "", "pods",
                              best_effort)
    high = _quota({"pods": "1"}, selector={"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]})
    assert matches_scopes(high, "", "pods", burstable)
    assert not matches_scopes(high, "", "pods", best_effort)
    # Nothing but a pod matches a scoped quota.
    assert not matches_scopes(_quota({"pods": "1"}, scopes=["NotTerminating"]), "",
                              "services", {})


def test_charge_adds_usage_and_refuses_past_hard() -> None:
    quota = _quota({"pods": "2", "requests.memory": "1Gi"},
                   used={"pods": "1", "requests.memory": "512Mi"})
    pod = _pod(_c(requests={"memory": "256Mi"}))
    assert charge([quota], "", "pods", "p", pod, None, NOW).used == {
        "quota": {"pods": "2", "requests.memory": "768Mi"}}
    big = _pod(_c(requests={"memory": "1Gi"}))
    with pytest.raises(StatusError) as e:
        charge([quota], "", "pods", "p", big, None, NOW)
    assert e.value.code == 403
    assert e.value.message == ('pods "p" is forbidden: exceeded quota: quota, requested: '
                               'requests.memory=1Gi, used: requests.memory=512Mi, limited: '
                               'requests.memory=1Gi')


def test_charge_wants_requests_for_restricted_compute_resources() -> None:
    quota = _quota({"limits.cpu": "2", "requests.cpu": "1"},
                   used={"limits.cpu": "0", "requests.cpu": "0"})
    with pytest.raises(StatusError) as e:
        charge([quota], "", "pods", "p", _pod(_c(), _c("c2", requests={"cpu": "1"})),
               None, NOW)
    assert e.value.message == ('pods "p" is forbidden: failed quota: quota: must specify '
                               'limits.cpu for: c1,c2; requests.cpu for: c1')


def test_charge_needs_the_controllers_usage_and_ignores_unsynced_quotas() -> None:
    unsynced = _quota({"pods": "1"})
    assert charge([unsynced], "", "pods", "p", _pod(_c()), None, NOW).used == {}
    lagging = _quota({"pods": "1", "services": "1"}, used={"services": "0"})
    with pytest.raises(StatusError, match="status unknown for quota: quota, resources: pods"):
        charge([lagging], "", "pods", "p", _pod(_c()), None, NOW)


def test_updates_are_charged_by_their_increase() -> None:
    quota = _quota({"services.loadbalancers": "1"}, used={"services.loadbalancers": "1"})
    old = {"metadata": {"name": "s", "resourceVersion": "7"}, "spec": {"type": "LoadBalancer"}}
    assert charge([quota], "", "services", "s", old, old, NOW).used == {}
    cluster_ip = {"metadata": {"name": "s", "resourceVersion": "7"}, "spec": {}}
    with pytest.raises(StatusError, match=r"exceeded quota: quota, requested: "
                                          r"services\.loadbalancers=1"):
        charge([quota], "", "services", "s", old, cluster_ip, NOW)


def test_the_controller_calculation() -> None:
    quota = _quota({"pods": "3", "requests.cpu": "2", "count/deployments.apps": "1",
                    "configmaps": "4"}, scopes=None)
    pods = [_pod(_c(requests={"cpu": "500m"})), _pod(_c(requests={"cpu": "250m"}))]
    done = _pod(_c(requests={"cpu": "1"}))
    done["status"] = {"phase": "Failed"}
    assert tracked_resources(quota) == [("", "pods"), ("", "configmaps"),
                                        ("apps", "deployments")]
    status = calculate_status(quota, {("", "pods"): [*pods, done],
                                      ("apps", "deployments"): [{}], ("", "configmaps"): []},
                              NOW)
    assert status == {"hard": quota["spec"]["hard"],
                      "used": {"configmaps": "0", "count/deployments.apps": "1", "pods": "2",
                               "requests.cpu": "750m"}}


def test_quota_table() -> None:
    quota = _quota({"pods": "2", "limits.memory": "1Gi", "requests.cpu": "1"},
                   used={"pods": "1", "requests.cpu": "500m"})
    quota["metadata"]["creationTimestamp"] = rfc3339(NOW)
    table = table_for([quota], api_version="v1", kind="ResourceQuota",
                      now=NOW + timedelta(minutes=3), resource_version="3")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age", "Request",
                                                                "Limit"]
    assert table["rows"][0]["cells"] == ["quota", "3m", "pods: 1/2, requests.cpu: 500m/1",
                                         "limits.memory: 0/1Gi"]


async def test_two_processes_never_overcommit_a_quota() -> None:
    """Two API processes (two registries over one store) create pods at once: the quota's
    resourceVersion precondition makes exactly its `hard` of them pass."""
    store = MemoryStore()
    quotas = Registry(store, ResourceQuotaStrategy())
    await quotas.create("foo", {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "3"}}})
    current = await quotas.get("foo", "q")
    current["status"] = {"hard": {"pods": "3"}, "used": {"pods": "0"}}
    await quotas.update("foo", "q", current, status_only=True)
    processes = [Registry(store, PodStrategy(), rng=random.Random(i),
                          charge=QuotaAdmission(lambda: quotas, RealClock()).charge)
                 for i in range(2)]

    async def create(i: int) -> bool:
        try:
            await processes[i % 2].create("foo", {"metadata": {"name": f"p{i}"}, "spec": {
                "containers": [{"name": "c", "image": "busybox"}]}})
        except StatusError as e:
            assert "exceeded quota: q, requested: pods=1, used: pods=3, limited: pods=3" in str(e)
            return False
        return True

    results = await asyncio.gather(*(create(i) for i in range(8)))
    assert sum(results) == 3
    assert (await quotas.get("foo", "q"))["status"]["used"] == {"pods": "3"}


def test_quantities_decode_as_quantities_bare_numbers_included() -> None:
    """``hard``/``used`` and a LimitRange item's bounds are ResourceLists: a YAML number is a
    quantity (upstream accepts ``pods: 10``) and text that is not one is refused on decode."""
    quota = decode({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                    "spec": {"hard": {"pods": 10, "requests.cpu": 1.5}}},
                   api_version="v1", kind="ResourceQuota")
    assert quota.obj["spec"]["hard"] == {"pods": "10", "requests.cpu": "1.5"}
    limits = decode({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
                     "spec": {"limits": [{"type": "Container", "default": {"cpu": 1},
                                          "max": {"memory": "1Gi"}}]}},
                    api_version="v1", kind="LimitRange")
    assert limits.obj["spec"]["limits"][0]["default"] == {"cpu": "1"}
    for bad in ({"spec": {"hard": {"pods": "abc"}}},
                {"spec": {"limits": [{"type": "Container", "default": {"cpu": "lots"}}]}}):
        kind = "ResourceQuota" if "hard" in bad["spec"] else "LimitRange"
        try:
            decode({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, **bad},
                   api_version="v1", kind=kind)
        except StatusError as e:
            assert e.code == 400 and "resource.Quantity" in str(e), str(e)
        else:
            raise AssertionError(f"{bad} decoded")


async def test_a_conflict_on_one_quota_does_not_charge_the_others_twice() -> None:
    """Quota a takes the charge, b's write conflicts once (another writer charged it): only b
    is read and charged again (upstream's updatedFailedQuotas)."""
    store = MemoryStore()
    quotas = Registry(store, ResourceQuotaStrategy())
    for name in ("a", "b"):
        await quotas.create("foo", {"metadata": {"name": name},
                                    "spec": {"hard": {"pods": "5"}}})
        current = await quotas.get("foo", name)
        current["status"] = {"hard": {"pods": "5"}, "used": {"pods": "0"}}
        await quotas.update("foo", name, current, status_only=True)
    real_update = quotas.update
    conflicts = {"b": 1}

    async def update(namespace: str, name: str, obj: Obj, **kw: Any) -> Obj:
        if conflicts.get(name):
            conflicts[name] -= 1
            other = await quotas.get(namespace, name)  # someone else charges b meanwhile
            other["status"]["used"] = {"pods": "1"}
            await real_update(namespace, name, other, status_only=True)
        return await real_update(namespace, name, obj, **kw)

    quotas.update = update  # type: ignore[method-assign]
    pods = Registry(store, PodStrategy(),
                    charge=QuotaAdmission(lambda: quotas, RealClock()).charge)
    await pods.create("foo", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})
    used = {n: (await quotas.get("foo", n))["status"]["used"] for n in ("a", "b")}
    assert used == {"a": {"pods": "1"}, "b": {"pods": "2"}}


def test_a_status_update_names_the_version_it_replaces() -> None:
    old = _quota({"pods": "2"}, used={"pods": "0"})
    new = _quota({"pods": "2"}, used={"pods": "1"})
    assert validate_resource_quota_status_update(new, old) == []
    del new["metadata"]["resourceVersion"]
    assert [str(e) for e in validate_resource_quota_status_update(new, old)] == [
        'metadata.resourceVersion: Invalid value: "": must be specified for an update',
        "resourceVersion: Required value"]


async def test_namespaces_without_quotas_are_not_read_once_the_index_is_known() -> None:
    """QuotaAdmission.run keeps the count of quotas per namespace from a watch: a write in a
    namespace without quotas reads nothing; a quota created later is seen and charged."""
    store = MemoryStore()
    quotas = Registry(store, ResourceQuotaStrategy())
    admission = QuotaAdmission(lambda: quotas, RealClock())
    reads: list[str] = []
    real_list = quotas.list

    async def counting_list(namespace: str = "", **kw: Any) -> Any:
        reads.append(namespace)
        return await real_list(namespace, **kw)

    quotas.list = counting_list  # type: ignore[method-assign]
    pods = Registry(store, PodStrategy(), charge=admission.charge)
    pod = {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await pods.create("foo", {"metadata": {"name": "before"}, **pod})
    assert reads == ["foo"], "no index yet: the quotas are read"
    task = asyncio.create_task(admission.run())
    try:
        for _ in range(100):
            if admission._counts is not None:
                break
            await asyncio.sleep(0.01)
        reads.clear()
        await pods.create("foo", {"metadata": {"name": "p0"}, **pod})
        assert reads == [], "no quota in foo: nothing read"
        await quotas.create("foo", {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}},
                                    "status": {}})
        current = await quotas.get("foo", "q")
        current["status"] = {"hard": {"pods": "1"}, "used": {"pods": "0"}}
        await quotas.update("foo", "q", current, status_only=True)
        for _ in range(100):
            if admission._counts is not None and admission._counts["foo"]:
                break
            await asyncio.sleep(0.01)
        await pods.create("foo", {"metadata": {"name": "p1"}, **pod})
        with pytest.raises(StatusError, match="exceeded quota"):
            await pods.create("foo", {"metadata": {"name": "p2"}, **pod})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
