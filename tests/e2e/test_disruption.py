"""PodDisruptionBudgets (policy/v1) and the eviction API through a real `svcnet server`, the
real kubectl (create, get, apply, drain) and the official Python client.

No node agent runs here: the test writes a Node, and the pods' Running/Ready status, as an
agent would (through ``/status``), so that the disruption controller has healthy pods to count.
Each test makes its own namespace and Node (random names) in the shared server.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request
from tests.waiting import wait_for

Obj = dict[str, Any]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _node(cluster: Cluster) -> str:
    name = _name("pdb-node")
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
    node = cluster.get_json("node", name)
    node["status"] = {"conditions": [{"type": "Ready", "status": "True",
                                      "reason": "KubeletReady", "lastHeartbeatTime": _now()}]}
    cluster.kubectl("replace", "--subresource=status", "-f", "-", stdin=json.dumps(node))
    return name


def _running_pod(cluster: Cluster, ns: str, name: str, node: str, *, ready: bool = True,
                 labels: Obj | None = None) -> None:
    """A pod bound to ``node``, then Running (Ready or not) as its agent would report it."""
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": {"nodeName": node, "containers": [
            {"name": "c", "image": "none", "command": ["sleep", "3600"]}]}}))
    pod = cluster.get_json("pod", "-n", ns, name)
    status = "True" if ready else "False"
    pod["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": status, "lastTransitionTime": _now()}]}
    cluster.kubectl("replace", "-n", ns, "--subresource=status", "-f", "-",
                    stdin=json.dumps(pod))


def _pdb_status(cluster: Cluster, ns: str, name: str, **wanted: int) -> Obj:
    """The budget's status once the controller shows ``wanted`` (and its generation)."""
    def current() -> Obj | None:
        pdb = cluster.get_json("pdb", "-n", ns, name)
        status: Obj = pdb.get("status") or {}
        if status.get("observedGeneration") != pdb["metadata"]["generation"]:
            return None
        return status if all(status.get(k) == v for k, v in wanted.items()) else None
    got: Obj = wait_for(current, f"budget {name} with {wanted}",
                        detail=lambda: json.dumps(cluster.get_json("pdb", "-n", ns, name)
                                                  .get("status")))
    return got


def _evict(cluster: Cluster, ns: str, pod: str, *, dry_run: bool = False) -> tuple[int, Obj]:
    """POST pods/<pod>/eviction as kubectl drain does; (HTTP status, body)."""
    body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction",
                 "metadata": {"name": pod, "namespace": ns}}
    if dry_run:
        body["deleteOptions"] = {"dryRun": ["All"]}
    return request(cluster, "POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction",
                   json.dumps(body).encode())


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = _name("pdb")
    cluster.kubectl("create", "namespace", name)
    return name


def test_create_get_and_refuse_invalid_budgets(cluster: Cluster, ns: str) -> None:
    out = cluster.kubectl("create", "pdb", "web", "-n", ns, "--selector=app=web",
                          "--min-available=50%").stdout
    assert out.strip() == "poddisruptionbudget.policy/web created"
    lines = cluster.kubectl("get", "pdb", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED",
                                "DISRUPTIONS", "AGE"]
    assert lines[1].split()[:-1] == ["web", "50%", "N/A", "0"]
    pdb = cluster.get_json("pdb", "-n", ns, "web")
    assert pdb["metadata"]["generation"] == 1
    # No pods: nothing expected, nothing allowed, and the condition says so.
    status = _pdb_status(cluster, ns, "web", expectedPods=0, disruptionsAllowed=0)
    [cond] = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "DisruptionAllowed", "False", "InsufficientPods")
    both = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "both"},
            "spec": {"minAvailable": 1, "maxUnavailable": "120%",
                     "unhealthyPodEvictionPolicy": "Sometimes",
                     "selector": {"matchLabels": {"app": "-bad-"}}}}
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(both), check=False)
    assert r.returncode != 0
    assert 'The PodDisruptionBudget "both" is invalid' in r.stderr
    for message in (
            "spec: Invalid value: minAvailable and maxUnavailable cannot be both set",
            "spec.maxUnavailable: Invalid value: 120%: must not be greater than 100%",
            'spec.selector.matchLabels: Invalid value: "-bad-"',
            'spec.unhealthyPodEvictionPolicy: Unsupported value: "Sometimes": supported '
            'values: "AlwaysAllow", "IfHealthyBudget"'):
        assert message in r.stderr, r.stderr
    # A spec change bumps the generation; the status endpoint cannot change the spec.
    cluster.kubectl("patch", "pdb", "web", "-n", ns, "--type=merge", "-p",
                    '{"spec": {"minAvailable": 2}}')
    assert cluster.get_json("pdb", "-n", ns, "web")["metadata"]["generation"] == 2
    cluster.kubectl("patch", "pdb", "web", "-n", ns, "--subresource=status", "--type=merge",
                    "-p", '{"spec": {"minAvailable": 7}}')
    assert cluster.get_json("pdb", "-n", ns, "web")["spec"]["minAvailable"] == 2


def test_evictions_take_disruptions_until_the_budget_is_spent(cluster: Cluster,
                                                              ns: str) -> None:
    node = _node(cluster)
    for i in range(3):
        _running_pod(cluster, ns, f"web-{i}", node)
    cluster.kubectl("create", "pdb", "web", "-n", ns, "--selector=app=web",
                    "--min-available=2")
    _pdb_status(cluster, ns, "web", currentHealthy=3, desiredHealthy=2, expectedPods=3,
                disruptionsAllowed=1)
    # A dry run passes every check and changes nothing.
    code, body = _evict(cluster, ns, "web-0", dry_run=True)
    assert (code, body["status"]) == (201, "Success")
    assert not cluster.get_json("pod", "-n", ns, "web-0")["metadata"].get("deletionTimestamp")
    assert cluster.get_json("pdb", "-n", ns, "web")["status"]["disruptionsAllowed"] == 1

    code, body = _evict(cluster, ns, "web-0")
    assert (code, body["status"], body["code"]) == (201, "Success", 201)
    # Graceful deletion on a node: marked, left to the (absent) agent to finish.
    assert cluster.get_json("pod", "-n", ns, "web-0")["metadata"]["deletionTimestamp"]
    status = _pdb_status(cluster, ns, "web", currentHealthy=2, disruptionsAllowed=0)
    assert "web-0" not in (status.get("disruptedPods") or {}), \
        "a pod being deleted is no longer a pending disruption"
    assert status["conditions"][0]["reason"] == "InsufficientPods"

    code, body = _evict(cluster, ns, "web-1")
    assert code == 429, body
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == ("Cannot evict pod as it would violate the pod's disruption "
                               "budget.")
    assert body["details"]["causes"] == [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]
    assert not cluster.get_json("pod", "-n", ns, "web-1")["metadata"].get("deletionTimestamp")

    # A Pending pod (never scheduled) costs no disruption: it is just deleted.
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-new",
                                                        "labels": {"app": "web"}},
        "spec": {"nodeSelector": {"pool": "none-such"},
                 "containers": [{"name": "c", "image": "none"}]}}))
    code, _ = _evict(cluster, ns, "web-new")
    assert code == 201
    wait_for(lambda: cluster.kubectl("get", "pod", "-n", ns, "web-new",
                                     check=False).returncode != 0, "web-new deleted")

    # An unready pod goes without a disruption while the budget is met (IfHealthyBudget).
    _running_pod(cluster, ns, "web-sick", node, ready=False)
    # expectedPods (minAvailable an integer): the pods selected, the one being deleted too.
    _pdb_status(cluster, ns, "web", currentHealthy=2, expectedPods=4, disruptionsAllowed=0)
    code, _ = _evict(cluster, ns, "web-sick")
    assert code == 201
    assert cluster.get_json("pod", "-n", ns, "web-sick")["metadata"]["deletionTimestamp"]

    # Two budgets over one pod: upstream refuses (a Failure Status with code 500).
    cluster.kubectl("create", "pdb", "web-too", "-n", ns, "--selector=app=web",
                    "--max-unavailable=1")
    code, body = _evict(cluster, ns, "web-2")
    assert body["message"] == ("This pod has more than one PodDisruptionBudget, which the "
                               "eviction subresource does not support.")
    assert body["code"] == 500


def test_kubectl_drain_waits_for_the_budget(cluster: Cluster, ns: str) -> None:
    """kubectl drain evicts through pods/eviction (it finds it in discovery) and retries every
    5 s while the budget refuses, until its --timeout."""
    node = _node(cluster)
    for i in range(2):
        _running_pod(cluster, ns, f"db-{i}", node, labels={"app": "db"})
    cluster.kubectl("create", "pdb", "db", "-n", ns, "--selector=app=db",
                    "--max-unavailable=1")
    # Bare pods have no controller: a percentage or maxUnavailable has no scale to use.
    status = _pdb_status(cluster, ns, "db", expectedPods=0, currentHealthy=2)
    assert status["disruptionsAllowed"] == 0
    cluster.kubectl("patch", "pdb", "db", "-n", ns, "--type=json", "-p", json.dumps([
        {"op": "remove", "path": "/spec/maxUnavailable"},
        {"op": "add", "path": "/spec/minAvailable", "value": 1}]))
    _pdb_status(cluster, ns, "db", expectedPods=2, currentHealthy=2, disruptionsAllowed=1)
    r = cluster.kubectl("drain", node, "--force", "--pod-selector=app=db", "--timeout=12s",
                        "--skip-wait-for-delete-timeout=1", check=False, timeout=60)
    assert r.returncode != 0, r.stdout
    assert f"node/{node} cordoned" in r.stdout + r.stderr
    assert "evicting pod" in r.stdout
    assert "Cannot evict pod as it would violate the pod's disruption budget." in r.stderr
    pods = cluster.get_json("pods", "-n", ns)["items"]
    deleting = [p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp")]
    assert len(deleting) == 1, "exactly one of the two pods was evicted"
    assert cluster.get_json("node", node)["spec"].get("unschedulable") is True
    cluster.kubectl("uncordon", node)


def test_python_client_reads_budgets_and_evicts(cluster: Cluster, ns: str) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    policy_api = client.PolicyV1Api(api_client)
    core = client.CoreV1Api(api_client)
    node = _node(cluster)
    _running_pod(cluster, ns, "solo", node, labels={"app": "solo"})
    policy_api.create_namespaced_pod_disruption_budget(ns, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "solo"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "solo"}}}})
    _pdb_status(cluster, ns, "solo", currentHealthy=1, desiredHealthy=1, disruptionsAllowed=0)
    pdb = policy_api.read_namespaced_pod_disruption_budget("solo", ns)
    assert pdb.status.current_healthy == 1 and pdb.spec.min_available == 1
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="solo", namespace=ns))
    with pytest.raises(kubernetes.client.exceptions.ApiException) as e:
        core.create_namespaced_pod_eviction("solo", ns, eviction)
    assert e.value.status == 429
    # With AlwaysAllow an unready pod may always go.
    policy_api.patch_namespaced_pod_disruption_budget(
        "solo", ns, {"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}})
    pod = core.read_namespaced_pod("solo", ns)
    pod.status.conditions = [client.V1PodCondition(type="Ready", status="False")]
    core.replace_namespaced_pod_status("solo", ns, pod)
    _pdb_status(cluster, ns, "solo", currentHealthy=0, disruptionsAllowed=0)
    core.create_namespaced_pod_eviction("solo", ns, eviction)
    assert core.read_namespaced_pod("solo", ns).metadata.deletion_timestamp is not None


def test_concurrent_evictions_grant_only_what_the_budget_allows(cluster: Cluster,
                                                                 ns: str) -> None:
    """kubectl drain evicts a node's pods in parallel: the budget's status write is
    conditional, so of simultaneous evictions only ``disruptionsAllowed`` succeed."""
    node = _node(cluster)
    for i in range(4):
        _running_pod(cluster, ns, f"par-{i}", node, labels={"app": "par"})
    cluster.kubectl("create", "pdb", "par", "-n", ns, "--selector=app=par",
                    "--min-available=2")
    _pdb_status(cluster, ns, "par", currentHealthy=4, disruptionsAllowed=2)
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(code for code, _ in pool.map(
            lambda i: _evict(cluster, ns, f"par-{i}"), range(4)))
    assert codes == [201, 201, 429, 429]
    pods = cluster.get_json("pods", "-n", ns, "-l", "app=par")["items"]
    assert sum(1 for p in pods if p["metadata"].get("deletionTimestamp")) == 2
