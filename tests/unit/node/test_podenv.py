"""A container's environment as the kubelet's makeEnvironmentVariables computes it, and the
downward API's values (pure; objects come from a dict)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from svcnet.node.podenv import (
    ConfigError,
    ObjectUnavailable,
    container_env,
    pod_field_value,
    resource_field_value,
)

Obj = dict[str, Any]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OBJECTS: dict[tuple[str, str, str], Obj] = {
    ("ConfigMap", "ns", "cm"): {"data": {"A": "from-cm", "B": "b", "bad key": "x",
                                         "1st": "y"}},
    ("Secret", "ns", "sec"): {"data": {"PASSWORD": b64("s3cret"), "A": b64("from-secret")}},
}


def lookup(kind: str, namespace: str, name: str) -> Obj | None:
    return OBJECTS.get((kind, namespace, name))


POD: Obj = {
    "metadata": {"name": "web-1", "namespace": "ns", "uid": "u-1",
                 "labels": {"app": "web", "tier": 'fr"ont'},
                 "annotations": {"example.com/a": "1"}},
    "spec": {"nodeName": "node-1", "serviceAccountName": "robot",
             "containers": [{"name": "app", "resources": {
                 "limits": {"memory": "256Mi"}, "requests": {"cpu": "250m",
                                                             "memory": "128Mi"}}},
                            {"name": "side", "resources": {"limits": {"cpu": "2"}}}]},
}
ALLOCATABLE = {"cpu": "4", "memory": "8Gi"}


def env_of(container: Obj, service: dict[str, str] | None = None) -> dict[str, str]:
    return container_env(POD, container, lookup, pod_ip="10.244.1.5", host_ip="172.20.0.11",
                         node_name="node-1", service_env=service,
                         allocatable=ALLOCATABLE).env


def test_env_from_then_env_then_service_variables_in_kubelet_order() -> None:
    result = container_env(POD, {"name": "app", "envFrom": [
        {"configMapRef": {"name": "cm"}},
        {"secretRef": {"name": "sec"}, "prefix": "S_"},
        {"configMapRef": {"name": "absent", "optional": True}},
    ], "env": [
        {"name": "B", "value": "$(A)+$(S_PASSWORD)+$(SVC_HOST)+$(NOPE)"},
        {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "C", "value": "$(FROM_FIELD)/$$(A)"},
        {"name": "SVC_HOST", "value": "mine"},
    ]}, lookup, pod_ip="10.244.1.5", host_ip="172.20.0.11", node_name="node-1",
        service_env={"SVC_HOST": "10.96.0.1", "SVC_PORT": "80"})
    env = result.env
    assert env["A"] == "from-cm"          # envFrom: the ConfigMap
    assert env["S_A"] == "from-secret"    # a prefixed, decoded Secret key
    assert env["B"] == "from-cm+s3cret+10.96.0.1+$(NOPE)"  # env overrides envFrom
    assert env["C"] == "web-1/$(A)"
    assert env["SVC_HOST"] == "mine"      # the container's own wins over the Service's
    assert env["SVC_PORT"] == "80"
    assert "bad key" not in env and "1st" not in env
    assert result.warnings == ((
        "InvalidEnvironmentVariableNames",
        "Keys [1st, bad key] from the EnvFrom configMap ns/cm were skipped since they are "
        "considered invalid environment variable names."),)


def test_value_from_values_are_not_expanded() -> None:
    objects = {("ConfigMap", "ns", "raw"): {"data": {"k": "$(A)"}}}
    env = container_env(POD, {"name": "app", "env": [
        {"name": "A", "value": "a"},
        {"name": "R", "valueFrom": {"configMapKeyRef": {"name": "raw", "key": "k"}}},
    ]}, lambda k, ns, n: objects.get((k, ns, n)), pod_ip="", host_ip="", node_name="").env
    assert env["R"] == "$(A)"


@pytest.mark.parametrize(("env", "message"), [
    pytest.param([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}],
                 'configmap "x" not found', id="configmap-missing"),
    pytest.param([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                 "couldn't find key k in ConfigMap ns/cm", id="configmap-key-missing"),
    pytest.param([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}],
                 'secret "nope" not found', id="secret-missing"),
    pytest.param([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}],
                 "couldn't find key k in Secret ns/sec", id="secret-key-missing"),
    pytest.param([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}],
                 "unsupported fieldPath: spec.bogus", id="bad-field"),
    pytest.param([{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}],
                 "unsupported container resource : limits.gpu", id="bad-resource"),
])
def test_errors_carry_the_kubelets_messages(env: list[Obj], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        env_of({"name": "app", "env": env})
    assert str(err.value) == message


def test_env_from_missing_object_is_an_error_unless_optional() -> None:
    with pytest.raises(ConfigError, match='secret "gone" not found'):
        env_of({"name": "app", "envFrom": [{"secretRef": {"name": "gone"}}]})


def test_optional_references_leave_the_variable_out() -> None:
    env = env_of({"name": "app", "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k",
                                                        "optional": True}}},
        {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k",
                                                     "optional": True}}},
    ]})
    assert "X" not in env and "Y" not in env


def test_an_unknown_object_is_an_error_that_says_so() -> None:
    def unavailable(kind: str, namespace: str, name: str) -> Obj | None:
        raise ObjectUnavailable("not known yet")
    with pytest.raises(ConfigError, match="not known yet"):
        container_env(POD, {"name": "app", "envFrom": [{"configMapRef": {"name": "cm"}}]},
                      unavailable, pod_ip="", host_ip="", node_name="")


@pytest.mark.parametrize(("path", "value"), [
    ("metadata.name", "web-1"), ("metadata.namespace", "ns"), ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"), ("metadata.labels['none']", ""),
    ("metadata.annotations['example.com/a']", "1"),
    ("metadata.labels", 'app="web"\ntier="fr\\"ont"'),
    ("spec.nodeName", "node-1"), ("spec.host", "node-1"),
    ("spec.serviceAccountName", "robot"),
    ("status.podIP", "10.244.1.5"), ("status.podIPs", "10.244.1.5"),
    ("status.hostIP", "172.20.0.11"), ("status.hostIPs", "172.20.0.11"),
])
def test_field_refs(path: str, value: str) -> None:
    assert pod_field_value(POD, {"fieldPath": path}, pod_ip="10.244.1.5",
                           host_ip="172.20.0.11", node_name="node-x") == value


def test_field_ref_api_version() -> None:
    with pytest.raises(ConfigError, match="unsupported pod version: v2"):
        pod_field_value(POD, {"apiVersion": "v2", "fieldPath": "metadata.name"},
                        pod_ip="", host_ip="", node_name="")


APP = POD["spec"]["containers"][0]


@pytest.mark.parametrize(("ref", "value"), [
    ({"resource": "requests.cpu"}, "1"),                       # 250m rounds up to 1 core
    ({"resource": "requests.cpu", "divisor": "1m"}, "250"),
    ({"resource": "requests.cpu", "divisor": "100m"}, "3"),    # ceil(250 / 100)
    ({"resource": "limits.cpu"}, "4"),                         # unset: node allocatable
    ({"resource": "limits.memory"}, str(256 * 1024 * 1024)),
    ({"resource": "limits.memory", "divisor": "1Mi"}, "256"),
    ({"resource": "requests.memory", "divisor": "1M"}, "135"),  # ceil(134217728 / 10^6)
    ({"resource": "limits.ephemeral-storage"}, "0"),
    ({"resource": "requests.hugepages-2Mi"}, "0"),
])
def test_resource_field_refs(ref: Obj, value: str) -> None:
    assert resource_field_value(ref, APP, ALLOCATABLE) == value


def test_resource_field_ref_of_another_container_in_env() -> None:
    env = env_of({"name": "app", "env": [
        {"name": "SIDE_CPU", "valueFrom": {"resourceFieldRef": {
            "containerName": "side", "resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                           "divisor": "1Gi"}}}]})
    assert env["SIDE_CPU"] == "2000"
    assert env["MEM"] == "8"  # the env's own container has no limits: node allocatable
