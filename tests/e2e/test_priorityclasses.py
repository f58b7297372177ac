"""PriorityClasses (scheduling.k8s.io/v1) through a real `svcnet server`, the real kubectl and
the official Python client; the Priority admission of pods.

The server seeds ``system-node-critical`` and ``system-cluster-critical`` at start; the session
cluster is shared, so each test makes classes and namespaces of its own (random names), and the
one test that makes a global default class removes it before it ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import Cluster
from tests.e2e.test_runtimeclasses import _get, _name, _namespace


def _class(name: str, value: int, extra: str = "") -> str:
    return (f"apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: {name}}}\n"
            f"value: {value}\ndescription: made by a test\n{extra}")


def _pod(name: str, extra: str = "") -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n"
            f"  containers: [{{name: c, image: busybox, command: [sleep, '60']}}]\n{extra}")


@pytest.fixture(scope="module")
def scheduling_api(cluster: Cluster) -> Iterator[client.SchedulingV1Api]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        yield client.SchedulingV1Api(api)
    finally:
        api.close()


def test_the_system_classes_exist_after_start(cluster: Cluster) -> None:
    lines = cluster.kubectl("get", "priorityclasses").stdout.splitlines()
    assert lines[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["system-cluster-critical"][1:3] == ["2000000000", "false"]
    assert rows["system-node-critical"][1:3] == ["2000001000", "false"]
    assert rows["system-node-critical"][-1] == "PreemptLowerPriority"
    resources = cluster.kubectl("api-resources",
                                "--api-group=scheduling.k8s.io").stdout.splitlines()
    assert resources[1].split() == ["priorityclasses", "pc", "scheduling.k8s.io/v1", "false",
                                    "PriorityClass"]
    seeded = _get(cluster, "pc", "system-cluster-critical")
    assert seeded["description"] == ("Used for system critical pods that must run in the "
                                     "cluster, but can be moved to another node if necessary.")
    r = cluster.kubectl("delete", "pc", "system-node-critical", check=False)
    assert r.returncode != 0
    assert ('priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a '
            "system priority class and cannot be deleted") in r.stderr


def test_apply_get_and_validation(cluster: Cluster) -> None:
    name = _name("batch")
    out = cluster.kubectl("apply", "-f", "-", stdin=_class(name, 1000,
                                                           "preemptionPolicy: Never\n")).stdout
    assert out.strip() == f"priorityclass.scheduling.k8s.io/{name} created"
    row = cluster.kubectl("get", "pc", name, "--no-headers").stdout.split()
    assert row[:3] == [name, "1000", "false"] and row[-1] == "Never"
    # value is immutable; description is not.
    r = cluster.kubectl("apply", "-f", "-", stdin=_class(name, 2000, "preemptionPolicy: Never\n"),
                        check=False)
    assert f'The PriorityClass "{name}" is invalid: value: Forbidden: may not be changed in an ' \
           "update." in r.stderr
    too_high = cluster.kubectl("create", "-f", "-", stdin=_class(_name("big"), 1_000_000_001),
                               check=False)
    assert "value: Forbidden: maximum allowed value of a user defined priority is 1000000000" \
        in too_high.stderr
    reserved = cluster.kubectl("create", "-f", "-", stdin=_class("system-mine", 5), check=False)
    assert ("metadata.name: Forbidden: priority class names with 'system-' prefix are reserved "
            "for system use only. error: system-mine is not a known system priority class") \
        in reserved.stderr
    cluster.kubectl("delete", "pc", name)


def test_pods_take_their_class_priority(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    cluster.kubectl("create", "-n", ns, "-f", "-",
                    stdin=_pod("critical", "  priorityClassName: system-cluster-critical\n"))
    spec = _get(cluster, "pod", "critical", "-n", ns)["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (2_000_000_000,
                                                            "PreemptLowerPriority")
    # An unknown class is refused with upstream's message.
    r = cluster.kubectl("create", "-n", ns, "-f", "-",
                        stdin=_pod("lost", "  priorityClassName: foo\n"), check=False)
    assert r.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": '
                                'pods "lost" is forbidden: no PriorityClass with name foo was '
                                "found")
    # A pod may not choose its own priority.
    r = cluster.kubectl("create", "-n", ns, "-f", "-",
                        stdin=_pod("cheat", "  priorityClassName: system-node-critical\n"
                                           "  priority: 5\n"), check=False)
    assert ('pods "cheat" is forbidden: the integer value of priority (5) must not be provided '
            "in pod spec; priority admission controller computed 2000001000 from the given "
            "PriorityClass name") in r.stderr
    # Priority cannot change afterwards, whatever the client sends.
    r = cluster.kubectl("patch", "pod", "critical", "-n", ns, "--type=merge", "-p",
                        '{"spec": {"priority": 1}}', check=False)
    assert r.returncode != 0 and "Forbidden: pod updates may not change fields" in r.stderr
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_a_global_default_class_applies_to_new_pods(cluster: Cluster) -> None:
    ns, name = _namespace(cluster), _name("default")
    try:
        cluster.kubectl("create", "-f", "-", stdin=_class(name, 42, "globalDefault: true\n"))
        second = cluster.kubectl("create", "-f", "-",
                                 stdin=_class(_name("second"), 1, "globalDefault: true\n"),
                                 check=False)
        assert (f"PriorityClass {name} is already marked as default. Only one default can "
                "exist") in second.stderr
        row = cluster.kubectl("get", "pc", name, "--no-headers").stdout.split()
        assert row[1:3] == ["42", "true"]
        cluster.kubectl("create", "-n", ns, "-f", "-", stdin=_pod("plain"))
        spec = _get(cluster, "pod", "plain", "-n", ns)["spec"]
        assert (spec["priorityClassName"], spec["priority"]) == (name, 42)
    finally:
        cluster.kubectl("delete", "pc", name, "--ignore-not-found")
    cluster.kubectl("create", "-n", ns, "-f", "-", stdin=_pod("later"))
    spec = _get(cluster, "pod", "later", "-n", ns)["spec"]
    assert spec["priority"] == 0 and "priorityClassName" not in spec
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_python_client_scheduling_v1_api(scheduling_api: client.SchedulingV1Api) -> None:
    names = {pc.metadata.name: pc.value for pc in scheduling_api.list_priority_class().items}
    assert names["system-node-critical"] == 2_000_001_000
    name = _name("py")
    made = scheduling_api.create_priority_class(client.V1PriorityClass(
        metadata=client.V1ObjectMeta(name=name), value=7, description="from python"))
    assert (made.value, made.preemption_policy, made.global_default) == (
        7, "PreemptLowerPriority", None)
    read = scheduling_api.read_priority_class(name)
    assert read.description == "from python" and read.metadata.generation == 1
    with pytest.raises(ApiException) as err:
        scheduling_api.patch_priority_class(name, {"preemptionPolicy": "Never"})
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": 'Invalid value: "Never": field is immutable',
         "field": "preemptionPolicy"}]
    scheduling_api.delete_priority_class(name)
    with pytest.raises(ApiException) as err:
        scheduling_api.read_priority_class(name)
    assert err.value.status == 404
