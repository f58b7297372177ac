"""apps/v1 Deployment and ReplicaSet defaulting and validation, their registry strategies, and
the autoscaling/v1 Scale. Messages are checked whole where kubectl prints them."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

from svcnet.api.errors import StatusError, aggregate_message
from svcnet.api.workloads import (
    apply_scale,
    scale_from_object,
    semantically_equal,
    set_defaults_deployment,
    set_defaults_pod_template,
    set_defaults_replicaset,
    validate_deployment,
    validate_deployment_status_update,
    validate_deployment_update,
    validate_replicaset,
    validate_replicaset_update,
    validate_scale,
)
from svcnet.registry.generic import Registry
from svcnet.registry.workloads import DeploymentStrategy, ReplicaSetStrategy
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]


def raw_deployment(**spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app",
                                                           "image": "nginx:1.27"}]}},
                     **spec}}


def deployment(**spec: Any) -> Obj:
    return set_defaults_deployment(raw_deployment(**spec))


def messages(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


# -- defaulting ------------------------------------------------------------------------------


def test_deployment_defaults() -> None:
    d = deployment()
    spec = d["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    tspec = spec["template"]["spec"]
    assert (tspec["restartPolicy"], tspec["dnsPolicy"], tspec["schedulerName"],
            tspec["terminationGracePeriodSeconds"], tspec["securityContext"]) == (
        "Always", "ClusterFirst", "default-scheduler", 30, {})
    assert tspec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "enableServiceLinks" not in tspec, "a template is not a pod"
    assert validate_deployment(d) == []


def test_defaults_keep_what_is_given() -> None:
    d = deployment(replicas=0, revisionHistoryLimit=0, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2}})
    assert d["spec"]["replicas"] == 0 and d["spec"]["revisionHistoryLimit"] == 0
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": "25%"}
    recreate = deployment(strategy={"type": "Recreate"})
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_template_defaults_leave_pod_only_defaults_out() -> None:
    template: Obj = {"spec": {"hostNetwork": True, "containers": [
        {"name": "a", "image": "x:1", "ports": [{"containerPort": 80}],
         "resources": {"limits": {"cpu": "1"}}}]}}
    out = set_defaults_pod_template(template)
    c = out["spec"]["containers"][0]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["resources"] == {"limits": {"cpu": "1"}}
    assert template["spec"]["containers"][0]["ports"] == [{"containerPort": 80}], "no mutation"


def test_replicaset_defaults() -> None:
    rs = set_defaults_replicaset({"spec": {"template": {"spec": {"containers": []}}}})
    assert rs["spec"]["replicas"] == 1 and "strategy" not in rs["spec"]


# -- validation ------------------------------------------------------------------------------

Mutator = Callable[[Obj], object]

CASES: list[tuple[str, Mutator, list[str]]] = [
    ("no selector", lambda d: d["spec"].pop("selector"), [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]),
    ("selector mismatch", lambda d: d["spec"]["selector"].update(matchLabels={"app": "x"}), [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]),
    ("empty selector", lambda d: d["spec"].update(selector={}), [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "deployment"]),
    ("negative replicas", lambda d: d["spec"].update(replicas=-1), [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
    ("bad template label", lambda d: d["spec"]["template"]["metadata"]["labels"].update(
        {"bad key": "x"}), [
        'spec.template.labels: Invalid value: "bad key": name part must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
        "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]),
    ("restart policy", lambda d: d["spec"]["template"]["spec"].update(restartPolicy="Never"), [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: '
        '"Always"']),
    ("active deadline", lambda d: d["spec"]["template"]["spec"].update(
        activeDeadlineSeconds=5), [
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in "
        "ReplicaSet is not Supported"]),
    ("no containers", lambda d: d["spec"]["template"]["spec"].update(containers=[]), [
        "spec.template.spec.containers: Required value"]),
    ("both zero", lambda d: d["spec"]["strategy"].update(
        rollingUpdate={"maxSurge": 0, "maxUnavailable": "0%"}), [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0%: may not be 0 when "
        "`maxSurge` is 0"]),
    ("bad percent", lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge="50"), [
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: 50: a valid percent string must "
        "be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
        "validation is '[0-9]+%')"]),
    ("negative surge", lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge=-1), [
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or "
        "equal to 0"]),
    ("more than 100%", lambda d: d["spec"]["strategy"]["rollingUpdate"].update(
        maxUnavailable="150%"), [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 150%: must not be greater "
        "than 100%"]),
    ("recreate with rolling params", lambda d: d["spec"]["strategy"].update(type="Recreate"), [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
        "'Recreate'"]),
    ("unknown strategy", lambda d: d["spec"].update(strategy={"type": "Blue"}), [
        'spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"Blue", '
        'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", '
        '"RollingUpdate"']),
    ("negative minReadySeconds", lambda d: d["spec"].update(minReadySeconds=-1), [
        "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0"]),
    ("negative history", lambda d: d["spec"].update(revisionHistoryLimit=-1), [
        "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"]),
    ("deadline not above minReadySeconds", lambda d: d["spec"].update(
        minReadySeconds=600), [
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than "
        "minReadySeconds"]),
    ("bad selector operator", lambda d: d["spec"]["selector"].update(matchExpressions=[
        {"key": "app", "operator": "Near", "values": ["x"]}]), [
        'spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid '
        "selector operator",
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"
        '"app":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelector'
        'Requirement{Key:"app", Operator:"Near", Values:[]string{"x"}}}}: invalid label '
        "selector"]),
    ("bad name", lambda d: d["metadata"].update(name="Web"), [
        'metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of '
        "lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
]


@pytest.mark.parametrize(("why", "mutate", "want"), CASES, ids=[c[0] for c in CASES])
def test_deployment_validation(why: str, mutate: Mutator, want: list[str]) -> None:
    d = deployment()
    mutate(d)
    assert messages(validate_deployment(d)) == want


def test_the_invalid_message_kubectl_prints() -> None:
    d = deployment()
    d["spec"]["selector"]["matchLabels"] = {"app": "x"}
    d["spec"]["replicas"] = -2
    assert aggregate_message(validate_deployment(d)) == (
        "[spec.replicas: Invalid value: -2: must be greater than or equal to 0, "
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`]")


def test_replicaset_validation() -> None:
    rs = set_defaults_replicaset({"metadata": {"name": "rs", "namespace": "default"},
                                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                                           "template": raw_deployment()["spec"]["template"]}})
    assert validate_replicaset(rs) == []
    rs["spec"]["minReadySeconds"] = -1
    rs["spec"]["selector"] = {"matchLabels": {}}
    assert messages(validate_replicaset(rs)) == [
        "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "deployment"]


# -- updates ---------------------------------------------------------------------------------


def stored(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"].update(uid="u1", resourceVersion="5", generation=1,
                           creationTimestamp="2026-01-01T00:00:00Z")
    return out


def test_the_selector_is_immutable() -> None:
    old = stored(deployment())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert messages(validate_deployment_update(new, old)) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"
        '"app":"web", "tier":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "field is immutable"]
    same = copy.deepcopy(old)
    same["spec"]["selector"]["matchExpressions"] = []  # semantically equal
    assert validate_deployment_update(same, old) == []
    rs_old = stored(set_defaults_replicaset({
        "metadata": {"name": "rs", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": raw_deployment()["spec"]["template"]}}))
    rs_new = copy.deepcopy(rs_old)
    rs_new["spec"]["selector"] = {"matchLabels": {"app": "web", "x": "y"}}
    rs_new["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    assert [e.field for e in validate_replicaset_update(rs_new, rs_old)] == ["spec.selector"]


def test_status_validation() -> None:
    old = stored(deployment())
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 1, "readyReplicas": 2, "availableReplicas": 2,
                     "collisionCount": 0}
    old["status"] = {"collisionCount": 1}
    assert messages(validate_deployment_status_update(new, old)) == [
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
        "status.availableReplicas: Invalid value: 2: cannot be greater than status.replicas",
        "status.collisionCount: Invalid value: 0: cannot be decremented"]


def test_semantic_equality() -> None:
    assert semantically_equal({"a": [], "b": None, "c": {"d": ""}}, {})
    assert not semantically_equal({"a": 1}, {"a": 2})


# -- the registry strategies -----------------------------------------------------------------


@pytest.fixture
def registries() -> tuple[Registry, Registry]:
    store, clock = MemoryStore(), FakeClock()
    return (Registry(store, DeploymentStrategy(), clock=clock, rng=random.Random(1)),
            Registry(store, ReplicaSetStrategy(), clock=clock, rng=random.Random(1)))


async def test_deployment_strategy(registries: tuple[Registry, Registry]) -> None:
    deployments, _ = registries
    created = await deployments.create("default", raw_deployment())
    assert created["metadata"]["generation"] == 1
    assert created["status"] == {}
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"

    # Status from the main endpoint is ignored; spec changes bump the generation.
    new = copy.deepcopy(created)
    new["spec"]["replicas"] = 4
    new["status"] = {"replicas": 9}
    updated = await deployments.update("default", "web", new)
    assert (updated["metadata"]["generation"], updated["status"]) == (2, {})

    # An annotation change is a new generation too (annotations reach the ReplicaSets).
    new = copy.deepcopy(updated)
    new["metadata"]["annotations"] = {"note": "x"}
    assert (await deployments.update("default", "web", new))["metadata"]["generation"] == 3

    # A status write keeps spec and labels, takes the status and the other metadata.
    current = await deployments.get("default", "web")
    st = copy.deepcopy(current)
    st["spec"]["replicas"] = 100
    st["metadata"]["labels"] = {"hijack": "y"}
    st["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    st["status"] = {"observedGeneration": 3, "replicas": 0}
    written = await deployments.update("default", "web", st, status_only=True)
    assert written["spec"]["replicas"] == 4 and "labels" not in written["metadata"]
    assert written["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert written["metadata"]["generation"] == 3
    assert written["status"]["observedGeneration"] == 3

    # A write without a resourceVersion applies to the current object.
    unconditional = copy.deepcopy(written)
    del unconditional["metadata"]["resourceVersion"]
    unconditional["spec"]["paused"] = True
    assert (await deployments.update("default", "web", unconditional))["spec"]["paused"]

    bad = copy.deepcopy(await deployments.get("default", "web"))
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(StatusError) as e:
        await deployments.update("default", "web", bad)
    assert e.value.code == 422
    assert e.value.message.startswith('Deployment.apps "web" is invalid: [spec.template')


async def test_replicaset_strategy(registries: tuple[Registry, Registry]) -> None:
    _, replicasets = registries
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "rs", "namespace": "default"},
          "spec": {"selector": {"matchLabels": {"app": "web"}},
                   "template": raw_deployment()["spec"]["template"]}}
    created = await replicasets.create("default", rs)
    assert created["spec"]["replicas"] == 1 and created["metadata"]["generation"] == 1
    annotated = copy.deepcopy(created)
    annotated["metadata"]["annotations"] = {"a": "b"}
    assert (await replicasets.update("default", "rs", annotated))["metadata"][
        "generation"] == 1, "only spec changes count for a ReplicaSet"


# -- scale -----------------------------------------------------------------------------------


def test_scale_roundtrip() -> None:
    d = stored(deployment(replicas=3))
    d["status"] = {"replicas": 2}
    scale = scale_from_object(d)
    assert scale == {"kind": "Scale", "apiVersion": "autoscaling/v1",
                     "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                                  "resourceVersion": "5",
                                  "creationTimestamp": "2026-01-01T00:00:00Z"},
                     "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=web"}}
    scale["spec"]["replicas"] = 7
    assert validate_scale(scale) == []
    scaled = apply_scale(d, scale)
    assert scaled["spec"]["replicas"] == 7 and scaled["metadata"]["resourceVersion"] == "5"
    assert d["spec"]["replicas"] == 3, "no mutation"
    scale["spec"]["replicas"] = -1
    assert messages(validate_scale(scale)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
