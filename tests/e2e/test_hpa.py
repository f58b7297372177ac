"""HorizontalPodAutoscalers (autoscaling/v2, and v1 as a view of the same objects) through a
real `svcnet server`, the real kubectl and the official Python client.

Only the API is served (another component acts on autoscalers), so statuses stay as written.
The session cluster is shared: each test works in a namespace of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import Cluster
from tests.e2e.test_runtimeclasses import _get, _name

V2_HPA = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: NAME}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 500Mi}}
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 120}
"""

V1_HPA = """apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: NAME}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  targetCPUUtilizationPercentage: 70
"""


def _namespace(cluster: Cluster) -> str:
    name = _name("hpa")
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def api_client(cluster: Cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()


def test_discovery_lists_both_versions_v2_preferred(cluster: Cluster) -> None:
    versions = cluster.kubectl("api-versions").stdout.split()
    assert "autoscaling/v2" in versions and "autoscaling/v1" in versions
    rows = cluster.kubectl("api-resources", "--api-group=autoscaling").stdout.splitlines()
    assert rows[1].split() == ["horizontalpodautoscalers", "hpa", "autoscaling/v2", "true",
                               "HorizontalPodAutoscaler"]
    group = json.loads(cluster.kubectl("get", "--raw", "/apis/autoscaling").stdout)
    assert group["preferredVersion"]["version"] == "v2"
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]


def test_apply_v2_and_v1_get_columns_and_both_versions(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    v2, v1 = _name("v2"), _name("v1")
    out = cluster.kubectl("apply", "-n", ns, "-f", "-",
                          stdin=V2_HPA.replace("NAME", v2)).stdout
    assert out.strip() == f"horizontalpodautoscaler.autoscaling/{v2} created"
    out = cluster.kubectl("apply", "-n", ns, "-f", "-",
                          stdin=V1_HPA.replace("NAME", v1)).stdout
    assert out.strip() == f"horizontalpodautoscaler.autoscaling/{v1} created"
    lines = cluster.kubectl("get", "hpa", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                                "REPLICAS", "AGE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows[v2].split()[1:7] == ["Deployment/web", "memory:", "<unknown>/500Mi,", "cpu:",
                                     "<unknown>/60%", "2"]
    assert rows[v1].split()[1:6] == ["Deployment/web", "cpu:", "<unknown>/70%", "1", "4"]
    # Re-applying the same manifests changes nothing (client-side apply's patch is a no-op).
    again = cluster.kubectl("apply", "-n", ns, "-f", "-",
                            stdin=V1_HPA.replace("NAME", v1)).stdout
    assert again.strip() == f"horizontalpodautoscaler.autoscaling/{v1} unchanged"

    # The v2 object, read at v1: the cpu target, the rest in annotations; and back at v2.
    as_v2 = _get(cluster, "horizontalpodautoscalers.v2.autoscaling", v2, "-n", ns)
    assert as_v2["apiVersion"] == "autoscaling/v2"
    assert as_v2["metadata"]["generation"] == 1
    assert as_v2["spec"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 120, "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
    as_v1 = _get(cluster, "horizontalpodautoscalers.v1.autoscaling", v2, "-n", ns)
    assert as_v1["apiVersion"] == "autoscaling/v1"
    assert as_v1["spec"]["targetCPUUtilizationPercentage"] == 60
    annotations = as_v1["metadata"]["annotations"]
    assert yaml.safe_load(annotations["autoscaling.alpha.kubernetes.io/metrics"]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "500Mi"}}]
    assert '"ScaleDown":{"StabilizationWindowSeconds":120' in annotations[
        "autoscaling.alpha.kubernetes.io/behavior"]
    # The v1 object read at v2: one default-shaped cpu metric, no annotations left.
    v1_as_v2 = _get(cluster, "horizontalpodautoscalers.v2.autoscaling", v1, "-n", ns)
    assert v1_as_v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    assert v1_as_v2["spec"]["minReplicas"] == 1

    # Written back at v1 (replace), the v2 object loses nothing.
    as_v1["metadata"].pop("managedFields", None)
    cluster.kubectl("replace", "-n", ns, "-f", "-", stdin=yaml.safe_dump(as_v1))
    after = _get(cluster, "horizontalpodautoscalers.v2.autoscaling", v2, "-n", ns)
    assert after["spec"] == as_v2["spec"]
    assert not any(k.startswith("autoscaling.alpha.kubernetes.io/")
                   for k in after["metadata"].get("annotations", {}))
    assert after["metadata"]["generation"] == 1  # the spec did not change


def test_a_422_names_the_field(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    bad = V2_HPA.replace("NAME", "bad").replace("minReplicas: 2", "minReplicas: 0")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=bad, check=False)
    assert r.returncode != 0
    assert r.stderr == ('The HorizontalPodAutoscaler "bad" is invalid: \n'
                        "* spec.minReplicas: Invalid value: 0: must be greater than or equal "
                        "to 1\n* spec.metrics: Forbidden: must specify at least one Object or "
                        "External metric to support scaling to zero replicas\n")
    # A v1 object is validated as the v2 object it is stored as.
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", check=False, stdin=V1_HPA.replace(
        "NAME", "badv1").replace("targetCPUUtilizationPercentage: 70",
                                 "targetCPUUtilizationPercentage: 0"))
    assert ("spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be "
            "greater than 0") in r.stderr


def test_kubectl_autoscale(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    cluster.kubectl("create", "deployment", "web", "-n", ns, "--image=busybox")
    dry = yaml.safe_load(cluster.kubectl(
        "autoscale", "deployment", "web", "-n", ns, "--min=1", "--max=5", "--cpu-percent=50",
        "--dry-run=client", "-o", "yaml").stdout)
    # kubectl 1.32 sends autoscaling/v2 (and a status of currentMetrics: null).
    assert (dry["apiVersion"], dry["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert dry["spec"]["maxReplicas"] == 5
    out = cluster.kubectl("autoscale", "deployment", "web", "-n", ns, "--min=1", "--max=5",
                          "--cpu-percent=50").stdout
    assert out.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    row = cluster.kubectl("get", "hpa", "web", "-n", ns, "--no-headers").stdout.split()
    assert row[:6] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "1", "5"]


def test_status_subresource_and_generation(cluster: Cluster,
                                           api_client: client.ApiClient) -> None:
    ns = _namespace(cluster)
    api = client.AutoscalingV2Api(api_client)
    name = _name("st")
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=V2_HPA.replace("NAME", name))
    status = {"status": {"currentReplicas": 3, "desiredReplicas": 4, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "memory", "current": {
            "averageValue": "300Mi"}}},
        {"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": 45, "averageValue": "100m"}}}]}}
    written = api.patch_namespaced_horizontal_pod_autoscaler_status(name, ns, status)
    assert written.status.desired_replicas == 4
    assert written.metadata.generation == 1
    row = cluster.kubectl("get", "hpa", name, "-n", ns, "--no-headers").stdout.split()
    assert row[1:8] == ["Deployment/web", "memory:", "300Mi/500Mi,", "cpu:", "45%/60%", "2",
                        "10"]
    assert row[8] == "3"
    v1 = client.AutoscalingV1Api(api_client).read_namespaced_horizontal_pod_autoscaler(
        name, ns)
    assert v1.status.current_cpu_utilization_percentage == 45
    assert v1.status.current_replicas == 3
    # A spec write keeps the status and bumps the generation.
    patched = api.patch_namespaced_horizontal_pod_autoscaler(name, ns,
                                                             {"spec": {"maxReplicas": 12}})
    assert patched.metadata.generation == 2 and patched.status.desired_replicas == 4


def test_python_clients_create_read_patch_delete(cluster: Cluster,
                                                 api_client: client.ApiClient) -> None:
    ns = _namespace(cluster)
    v2 = client.AutoscalingV2Api(api_client)
    body = client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="py2"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(kind="Deployment",
                                                                  name="web"),
            max_replicas=3))
    created = v2.create_namespaced_horizontal_pod_autoscaler(ns, body)
    assert created.spec.min_replicas == 1
    assert created.spec.metrics[0].resource.target.average_utilization == 80
    v1 = client.AutoscalingV1Api(api_client)
    created1 = v1.create_namespaced_horizontal_pod_autoscaler(ns, client.V1HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="py1"),
        spec=client.V1HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V1CrossVersionObjectReference(kind="Deployment",
                                                                  name="web"),
            max_replicas=3, target_cpu_utilization_percentage=40)))
    assert created1.spec.target_cpu_utilization_percentage == 40
    read = v2.read_namespaced_horizontal_pod_autoscaler("py1", ns)
    assert read.spec.metrics[0].resource.target.average_utilization == 40
    patched = v1.patch_namespaced_horizontal_pod_autoscaler(
        "py2", ns, {"spec": {"targetCPUUtilizationPercentage": 55}})
    assert patched.spec.target_cpu_utilization_percentage == 55
    listed = v1.list_namespaced_horizontal_pod_autoscaler(ns)
    assert sorted(h.metadata.name for h in listed.items) == ["py1", "py2"]
    assert {h.api_version for h in v2.list_horizontal_pod_autoscaler_for_all_namespaces(
        ).items} <= {None, "autoscaling/v2"}
    v1.delete_namespaced_horizontal_pod_autoscaler("py1", ns)
    v2.delete_namespaced_horizontal_pod_autoscaler("py2", ns)
    with pytest.raises(ApiException) as e:
        v2.read_namespaced_horizontal_pod_autoscaler("py2", ns)
    assert e.value.status == 404
