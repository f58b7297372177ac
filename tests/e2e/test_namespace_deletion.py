"""Deleting a namespace as Kubernetes 1.33 does, through the real kubectl and the official
Python client: it turns Terminating, the namespace controller empties it through the API
(Services release their ClusterIPs, NodePorts and LoadBalancer IPs; pods on a node stop
gracefully), shows its progress in conditions, and the namespace goes once it is empty.

No node agent runs here: the Deployment's pods are bound to a node name (so their deletion is
graceful and waits for the node), and the test deletes them with grace 0 as the kubelet would.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from svcnet.api.errors import NAMESPACE_TERMINATING_CAUSE
from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request
from tests.waiting import wait_for

NS = "nsdel-e2e"
OTHER = "nsdel-e2e-b"
NODE = "svcnet-nsdel-node"
LB_IPS = "metallb.io/loadBalancerIPs"
MANIFEST = f"""apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Service
metadata: {{name: cip, namespace: {NS}}}
spec: {{selector: {{app: web}}, ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: np, namespace: {NS}}}
spec: {{type: NodePort, selector: {{app: web}}, ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: lb, namespace: {NS}}}
spec: {{type: LoadBalancer, selector: {{app: web}}, ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: manual, namespace: {NS}}}
addressType: IPv4
endpoints: [{{addresses: [10.1.2.3]}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeName: {NODE}
      terminationGracePeriodSeconds: 8
      containers: [{{name: app, image: app:1}}]
"""


@pytest.fixture
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def names(cluster: Cluster, kinds: str, namespace: str = NS) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}"
            for o in get_json(cluster, kinds, "-n", namespace)["items"]]


def condition(ns: client.V1Namespace, ctype: str) -> client.V1NamespaceCondition | None:
    return next((c for c in ns.status.conditions or [] if c.type == ctype), None)


def service_spec(svc: dict[str, Any]) -> tuple[str, int | None]:
    return svc["spec"]["clusterIP"], svc["spec"]["ports"][0].get("nodePort")


def cleanup(cluster: Cluster, core: client.CoreV1Api) -> None:
    for ns in (NS, OTHER):
        try:
            pods = core.list_namespaced_pod(ns).items
        except ApiException:
            continue
        for pod in pods:
            with contextlib.suppress(ApiException):
                core.delete_namespaced_pod(pod.metadata.name, ns, grace_period_seconds=0)
        cluster.kubectl("delete", "ns", ns, "--ignore-not-found", "--wait=false", check=False)


def test_deleting_a_namespace_empties_it_and_frees_what_it_held(
        cluster: Cluster, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    try:
        held, lb_ip = populate(cluster)
        delete_and_see_it_terminating(cluster, core)
        pods = see_the_first_pass(cluster, core)
        reuse_what_was_held(cluster, core, held, lb_ip)
        # The node stops the pods and deletes them; `kubectl delete --wait` returns once the
        # namespace is gone.
        for pod in pods:
            core.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)
        started = time.monotonic()
        r = cluster.kubectl("delete", "namespace", NS, "--wait", timeout=90)
        assert r.returncode == 0 and f'namespace "{NS}" deleted' in r.stdout
        assert time.monotonic() - started < 60
        with pytest.raises(ApiException) as e:
            core.read_namespace(NS)
        assert e.value.status == 404
        # Created again, it is empty: nothing came back.
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        assert names(cluster, "all,endpointslices,endpoints,events") == []
    finally:
        cleanup(cluster, core)


def populate(cluster: Cluster) -> tuple[dict[str, tuple[str, int | None]], str]:
    """The namespace and its content; what its Services hold, and the LoadBalancer IP."""
    cluster.kubectl("apply", "-f", "-", stdin=MANIFEST)
    lb = wait_for(lambda: (s := get_json(cluster, "service", "lb", "-n", NS))["status"].get(
        "loadBalancer", {}).get("ingress") and s, "the LoadBalancer IP", timeout=20)
    lb_ip = lb["status"]["loadBalancer"]["ingress"][0]["ip"]
    held = {name: service_spec(get_json(cluster, "service", name, "-n", NS))
            for name in ("cip", "np", "lb")}
    wait_for(lambda: len(names(cluster, "pods")) == 2, "the Deployment's pods", timeout=20)
    wait_for(lambda: len(names(cluster, "endpointslices")) == 4, "the EndpointSlices",
             timeout=20)
    return held, lb_ip


def delete_and_see_it_terminating(cluster: Cluster, core: client.CoreV1Api) -> None:
    r = cluster.kubectl("delete", "namespace", NS, "--wait=false")
    assert r.stdout.strip() == f'namespace "{NS}" deleted'
    ns = core.read_namespace(NS)
    assert ns.metadata.deletion_timestamp is not None
    assert ns.status.phase == "Terminating"
    assert ns.spec.finalizers == ["kubernetes"]
    assert cluster.kubectl("get", "ns", NS, "--no-headers").stdout.split()[1] == "Terminating"

    # NamespaceLifecycle: nothing new may be created in it.
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service(NS, client.V1Service(
            metadata=client.V1ObjectMeta(name="late"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
    assert e.value.status == 403
    status = json.loads(e.value.body)
    assert status["message"] == (f'services "late" is forbidden: unable to create new content '
                                 f"in namespace {NS} because it is being terminated")
    assert status["details"]["causes"] == [{"reason": NAMESPACE_TERMINATING_CAUSE,
                                            "message": f"namespace {NS} is being terminated",
                                            "field": "metadata.namespace"}]


def see_the_first_pass(cluster: Cluster, core: client.CoreV1Api) -> list[client.V1Pod]:
    """The controller's first pass removes everything; the pods wait for their node."""
    def pods_hold_it() -> client.V1Namespace | None:
        ns = core.read_namespace(NS)
        c = condition(ns, "NamespaceContentRemaining")
        return ns if c is not None and c.status == "True" else None
    ns = wait_for(pods_hold_it, "the namespace controller's first pass", timeout=30)
    remaining = condition(ns, "NamespaceContentRemaining")
    assert remaining is not None
    assert (remaining.reason, remaining.message) == (
        "SomeResourcesRemain", "Some resources are remaining: pods. has 2 resource instances")
    discovered = condition(ns, "NamespaceDeletionDiscoveryFailure")
    assert discovered is not None
    assert (discovered.status, discovered.reason) == ("False", "ResourcesDiscovered")
    assert {c.type for c in ns.status.conditions} == {
        "NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure", "NamespaceContentRemaining",
        "NamespaceFinalizersRemaining"}
    assert names(cluster, "services,deployments,replicasets,endpointslices,endpoints") == []
    pods: list[client.V1Pod] = core.list_namespaced_pod(NS).items
    assert len(pods) == 2 and all(p.metadata.deletion_timestamp for p in pods)
    described = cluster.kubectl("describe", "namespace", NS).stdout
    assert "Terminating" in described and "SomeResourcesRemain" in described
    return pods


def reuse_what_was_held(cluster: Cluster, core: client.CoreV1Api,
                        held: dict[str, tuple[str, int | None]], lb_ip: str) -> None:
    """What the Services held is free already: another namespace may have it."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=OTHER)))
    for name, (cluster_ip, node_port) in held.items():
        svc: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": OTHER},
            "spec": {"type": {"cip": "ClusterIP", "np": "NodePort", "lb": "LoadBalancer"}[name],
                     "clusterIP": cluster_ip, "ports": [{"port": 80}]}}
        if node_port is not None:
            svc["spec"]["ports"][0]["nodePort"] = node_port
        if name == "lb":
            svc["metadata"]["annotations"] = {LB_IPS: lb_ip}
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(svc))
        assert service_spec(get_json(cluster, "service", name, "-n", OTHER)) == (
            cluster_ip, node_port)
    wait_for(lambda: [i["ip"] for i in get_json(cluster, "service", "lb", "-n", OTHER)[
        "status"].get("loadBalancer", {}).get("ingress", [])] == [lb_ip],
        "the same LoadBalancer IP in another namespace", timeout=20)


def test_system_namespaces_may_not_be_deleted(cluster: Cluster) -> None:
    for name in ("default", "kube-system", "kube-public"):
        r = cluster.kubectl("delete", "namespace", name, check=False)
        assert r.returncode == 1
        assert r.stderr.strip() == (f'Error from server (Forbidden): namespaces "{name}" is '
                                    "forbidden: this namespace may not be deleted")
    assert get_json(cluster, "namespace", "default")["status"]["phase"] == "Active"


def test_a_namespace_that_does_not_exist(cluster: Cluster, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service("nsdel-nowhere", client.V1Service(
            metadata=client.V1ObjectMeta(name="s"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
    assert e.value.status == 404
    assert json.loads(e.value.body)["message"] == 'namespaces "nsdel-nowhere" not found'
    # Deleting in it is the object's own 404, as upstream (NamespaceLifecycle allows deletes).
    r = cluster.kubectl("delete", "service", "s", "-n", "nsdel-nowhere", check=False)
    assert r.stderr.strip() == 'Error from server (NotFound): services "s" not found'


def test_orphan_cascade_still_deletes_the_namespace(cluster: Cluster) -> None:
    """``propagationPolicy: Orphan`` (kubectl's ``--cascade=orphan``) gives the namespace the ``orphan`` finalizer, which the garbage
    collector removes (after orphaning what names the namespace as its owner)."""
    name = "nsdel-orphan"
    cluster.kubectl("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\n"
                                               f"metadata: {{name: {name}}}\n")
    code, marked = request(cluster, "DELETE", f"/api/v1/namespaces/{name}", json.dumps(
        {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Orphan"}).encode())
    assert code == 200 and marked["metadata"]["finalizers"] == ["orphan"], marked
    assert marked["status"]["phase"] == "Terminating"
    r = cluster.kubectl("wait", "--for=delete", f"namespace/{name}", "--timeout=60s")
    assert r.returncode == 0


def test_the_finalize_subresource(cluster: Cluster) -> None:
    name = "nsdel-finalize"
    path = f"/api/v1/namespaces/{name}"
    assert request(cluster, "POST", "/api/v1/namespaces", json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).encode())[0] == 201
    try:
        code, ns = request(cluster, "GET", path)
        ns["spec"]["finalizers"] = ["example.com/mine", "kubernetes"]
        ns["status"] = {"phase": "Terminating"}  # not the finalize endpoint's to change
        code, written = request(cluster, "PUT", f"{path}/finalize", json.dumps(ns).encode())
        assert code == 200, written
        assert written["spec"]["finalizers"] == ["example.com/mine", "kubernetes"]
        assert written["status"]["phase"] == "Active"
        code, status = request(cluster, "PATCH", f"{path}/finalize", b"{}",
                               "application/merge-patch+json")
        assert (code, status["reason"]) == (405, "MethodNotAllowed")
        # The controller removes only its own finalizer: the namespace waits for the other.
        assert request(cluster, "DELETE", path)[0] == 200
        wait_for(lambda: request(cluster, "GET", path)[1]["spec"].get("finalizers") == [
            "example.com/mine"], "the namespace controller's finalize", timeout=30)
        code, ns = request(cluster, "GET", path)
        ns["spec"]["finalizers"] = []
        assert request(cluster, "PUT", f"{path}/finalize", json.dumps(ns).encode())[0] == 200
        assert request(cluster, "GET", path)[0] == 404
    finally:
        cluster.kubectl("delete", "ns", name, "--ignore-not-found", "--wait=false", check=False)
