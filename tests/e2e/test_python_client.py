"""The official `kubernetes` Python client against a real `svcnet server`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import Cluster


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def body(name: str, **spec: Any) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1ServiceSpec(selector={"app": name}, ports=[
            client.V1ServicePort(name="http", port=80, target_port=8080)], **spec))


def test_create_read_list_patch_replace_delete(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service("default", body("py", type="NodePort"))
    assert created.spec.cluster_ip.startswith("10.")
    assert 30000 <= created.spec.ports[0].node_port <= 32767
    got = core.read_namespaced_service("py", "default")
    assert got.metadata.uid == created.metadata.uid
    names = [s.metadata.name for s in core.list_namespaced_service(
        "default", label_selector="app=py").items]
    assert names == ["py"]
    patched = core.patch_namespaced_service("py", "default",
                                            {"metadata": {"labels": {"x": "1"}}})
    assert patched.metadata.labels == {"app": "py", "x": "1"}
    patched.spec.ports[0].target_port = 9090
    replaced = core.replace_namespaced_service("py", "default", patched)
    assert replaced.spec.ports[0].target_port == 9090
    assert replaced.spec.ports[0].node_port == created.spec.ports[0].node_port
    core.delete_namespaced_service("py", "default")
    with pytest.raises(ApiException) as e:
        core.read_namespaced_service("py", "default")
    assert e.value.status == 404


def test_invalid_create_is_422_with_causes(core: client.CoreV1Api) -> None:
    svc = body("bad-py")
    svc.spec.session_affinity = "Sticky"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service("default", svc)
    assert e.value.status == 422
    assert '"field":"spec.sessionAffinity"' in e.value.body.replace(" ", "")


def test_watch_sees_added_modified_deleted(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_service("default").metadata.resource_version
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    done = threading.Event()

    def consume() -> None:
        for ev in w.stream(core.list_namespaced_service, "default", resource_version=rv,
                           timeout_seconds=20):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED" and ev["object"].metadata.name == "pyw":
                break
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_service("default", body("pyw"))
    core.patch_namespaced_service("pyw", "default", {"metadata": {"labels": {"y": "2"}}})
    core.delete_namespaced_service("pyw", "default")
    assert done.wait(20)
    w.stop()
    t.join(5)
    assert [s for s in seen if s[1] == "pyw"] == [
        ("ADDED", "pyw"), ("MODIFIED", "pyw"), ("DELETED", "pyw")]


def test_create_and_list_endpointslices(cluster: Cluster) -> None:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        api = client.DiscoveryV1Api(api_client)
        api.create_namespaced_endpoint_slice("default", client.V1EndpointSlice(
            metadata=client.V1ObjectMeta(name="manual-1",
                                         labels={"kubernetes.io/service-name": "manual"}),
            address_type="IPv4",
            endpoints=[client.V1Endpoint(addresses=["10.244.1.5"],
                                         conditions=client.V1EndpointConditions(ready=True))],
            ports=[client.DiscoveryV1EndpointPort(name="http", port=8080, protocol="TCP")]))
        slices = api.list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=manual")
        assert [s.metadata.name for s in slices.items] == ["manual-1"]
        assert slices.items[0].endpoints[0].addresses == ["10.244.1.5"]
        assert slices.items[0].ports[0].port == 8080
    finally:
        api_client.close()
