"""`kubectl top` against a real `svcnet up` cluster: the node agents' ``/metrics/resource``
scraped by the API server into ``metrics.k8s.io`` (svcnet/apiserver/metricsapi.py), and the
horizontal pod autoscaler that reads it (svcnet/controllers/podautoscaler/).

A pod that burns about half a core shows a CPU figure well above zero, an idle one near zero,
every node is listed by ``kubectl top node``, and the raw API answers PodMetrics and
NodeMetrics in metrics-server's shapes; `kubectl autoscale` of a busy Deployment scales it up
to its maximum. The cluster scrapes every second (``--metric-resolution 1``), looks at HPAs
every 2 s, and runs the process runtime (no images to pull). Needs root; the cluster is
always removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.e2e.local_clusters import LocalCluster, local_cluster, write_manifest
from tests.waiting import wait_for

pytestmark = pytest.mark.root

# Busy 50 ms, asleep 50 ms: about 500m, without taking a whole core of a shared machine.
BURN = ("import time\n"
        "while True:\n"
        "    end = time.monotonic() + 0.05\n"
        "    while time.monotonic() < end: pass\n"
        "    time.sleep(0.05)\n")
IDLE = "import time; time.sleep(100000)"


def _pod(name: str, code: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"runtimeClassName": "process", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "python",
                                     "command": ["python3", "-c", code]}]}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory, "mt", "--container-runtime", "process",
                       "--metric-resolution", "1",
                       "--horizontal-pod-autoscaler-sync-period", "2") as c:
        manifest = write_manifest(c.home, [_pod("burner", BURN), _pod("idler", IDLE)])
        c.kubectl("apply", "-f", str(manifest))
        c.kubectl("wait", "--for=condition=Ready", "pod/burner", "pod/idler", "--timeout=60s")
        yield c


def _millicores(text: str) -> float:
    """A `kubectl top` CPU column (``512m``, ``1``) in millicores."""
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def _top_pods(cluster: LocalCluster) -> dict[str, tuple[float, str]]:
    out = cluster.kubectl("top", "pod", "--no-headers")
    return {cols[0]: (_millicores(cols[1]), cols[2])
            for cols in (line.split() for line in out.splitlines()) if len(cols) >= 3}


def test_top_pod_shows_the_burner_busy_and_the_idler_idle(cluster: LocalCluster) -> None:
    def settled() -> dict[str, tuple[float, str]] | None:
        try:
            pods = _top_pods(cluster)
        except AssertionError:  # "metrics not available yet" until two scrapes
            return None
        return pods if {"burner", "idler"} <= set(pods) and pods["burner"][0] > 100 else None

    pods = wait_for(settled, "kubectl top pod to show the burner busy", timeout=60,
                    interval=1)
    assert pods["idler"][0] < 50, pods
    assert re.fullmatch(r"\d+Mi", pods["burner"][1]), pods
    only = cluster.kubectl("top", "pod", "-l", "app=burner", "--no-headers").split()
    assert only[0] == "burner" and len(only) == 3, only


def test_top_node_lists_every_node(cluster: LocalCluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]
    names = {n["metadata"]["name"] for n in nodes}

    def listed() -> dict[str, list[str]] | None:
        try:
            out = cluster.kubectl("top", "node", "--no-headers")
        except AssertionError:
            return None
        rows = {line.split()[0]: line.split() for line in out.splitlines()}
        return rows if set(rows) == names else None

    rows = wait_for(listed, "kubectl top node to list every node", timeout=60, interval=1)
    assert len(names) == 2
    for cols in rows.values():  # NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
        assert re.fullmatch(r"\d+m?", cols[1]) and re.fullmatch(r"\d+Mi", cols[3]), cols


def test_raw_pod_and_node_metrics(cluster: LocalCluster) -> None:
    def pod_list() -> dict[str, object] | None:
        doc = json.loads(cluster.kubectl(
            "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"))
        names = {i["metadata"]["name"] for i in doc["items"]}
        return doc if {"burner", "idler"} <= names else None

    doc = wait_for(pod_list, "PodMetrics of both pods", timeout=60, interval=1)
    assert doc["kind"] == "PodMetricsList" and doc["apiVersion"] == "metrics.k8s.io/v1beta1"
    item = next(i for i in doc["items"] if i["metadata"]["name"] == "burner")
    assert item["metadata"]["namespace"] == "default"
    assert item["metadata"]["labels"] == {"app": "burner"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", item["timestamp"]), item
    assert re.fullmatch(r"[0-9.]+m?s", item["window"]), item
    [container] = item["containers"]
    assert container["name"] == "main"
    assert re.fullmatch(r"\d+[num]?", container["usage"]["cpu"]), container
    assert re.fullmatch(r"\d+(Ki|Mi)", container["usage"]["memory"]), container
    one = json.loads(cluster.kubectl(
        "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burner"))
    assert one["kind"] == "PodMetrics" and one["metadata"]["name"] == "burner"
    everywhere = json.loads(cluster.kubectl("get", "--raw",
                                            "/apis/metrics.k8s.io/v1beta1/pods"))
    assert {"burner", "idler"} <= {i["metadata"]["name"] for i in everywhere["items"]}
    node = json.loads(cluster.kubectl("get", "--raw",
                                      "/apis/metrics.k8s.io/v1beta1/nodes/node-1"))
    assert node["kind"] == "NodeMetrics" and set(node["usage"]) == {"cpu", "memory"}


# Busy 20 ms, asleep 80 ms: about 200m, ten times its request of 20m.
LIGHT_BURN = ("import time\n"
              "while True:\n"
              "    end = time.monotonic() + 0.02\n"
              "    while time.monotonic() < end: pass\n"
              "    time.sleep(0.08)\n")


def test_an_hpa_scales_a_busy_deployment_to_its_maximum(cluster: LocalCluster) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "busy"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "busy"}},
                 "template": {"metadata": {"labels": {"app": "busy"}}, "spec": {
                     "runtimeClassName": "process", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "python",
                                     "command": ["python3", "-c", LIGHT_BURN],
                                     "resources": {"requests": {"cpu": "20m"}}}]}}}}
    cluster.kubectl("apply", "-f", str(write_manifest(cluster.home, [deployment])))
    try:
        cluster.kubectl("autoscale", "deployment", "busy", "--min=1", "--max=3",
                        "--cpu-percent=50")

        def scaled() -> bool:
            d = json.loads(cluster.kubectl("get", "deployment", "busy", "-o", "json"))
            return bool(d["spec"]["replicas"] == 3)

        # ~1000% of the request against 50%: the first rescale goes straight to the maximum
        # (within the scale-up limit of max(2 x 1, 4)).
        wait_for(scaled, "the HPA to scale busy to 3", timeout=90, interval=1)
        hpa = json.loads(cluster.kubectl("get", "hpa", "busy", "-o", "json"))
        status = hpa["status"]
        assert status["desiredReplicas"] == 3 and status["lastScaleTime"], status
        [metric] = status["currentMetrics"]
        assert metric["resource"]["name"] == "cpu", metric
        assert metric["resource"]["current"]["averageUtilization"] > 50, metric
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["ScalingActive"]["reason"] == "ValidMetricFound", conditions
        assert conditions["AbleToScale"]["status"] == "True", conditions
        # The same object as autoscaling/v1 carries the figure in its own field.
        v1 = json.loads(cluster.kubectl("get", "horizontalpodautoscalers.v1.autoscaling",
                                        "busy", "-o", "json"))
        assert v1["apiVersion"] == "autoscaling/v1", v1
        assert v1["status"]["currentCPUUtilizationPercentage"] > 50, v1["status"]
        table = cluster.kubectl("get", "hpa", "busy", "--no-headers").split()
        assert re.fullmatch(r"cpu: \d+%/50%", " ".join(table[2:4])), table
        events = json.loads(cluster.kubectl(
            "get", "events", "--field-selector", "involvedObject.name=busy", "-o", "json"))
        assert any(e["reason"] == "SuccessfulRescale" and e["message"].startswith(
            "New size: 3; reason: cpu resource utilization (percentage of request) above "
            "target") for e in events["items"]), [e["message"] for e in events["items"]]
    finally:
        cluster.kubectl("delete", "hpa", "busy", "--ignore-not-found")
        cluster.kubectl("delete", "deployment", "busy", "--ignore-not-found")
