"""A dual-stack control plane, in process: ``svcnet server`` with an IPv4,IPv6 pair of service
CIDRs and of cluster CIDRs, its own controllers, reached through :class:`RESTClient`.

Test address plan: service CIDRs 10.96.0.0/24 (primary) and fd00:10:96::/112; cluster CIDRs
10.244.0.0/16 (a /24 per node) and fd00:10:244::/56 (a /64 per node); pods 10.244.1.x and
fd00:10:244:1::x on node-a.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import (
    ENDPOINTS,
    ENDPOINTSLICES,
    GVR,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    RESTClient,
)
from svcnet.storage.memory import MemoryStore
from tests.waiting import eventually

Obj = dict[str, Any]
SERVICECIDRS = GVR("networking.k8s.io", "v1", "servicecidrs", "ServiceCIDR", namespaced=False)
IPADDRESSES = GVR("networking.k8s.io", "v1", "ipaddresses", "IPAddress", namespaced=False)
V4, V6 = ipaddress.ip_network("10.96.0.0/24"), ipaddress.ip_network("fd00:10:96::/112")


@pytest.fixture
async def rest(tmp_path: Path) -> AsyncIterator[RESTClient]:
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0",
                                    service_cidrs=(f"{V4},{V6}",),
                                    cluster_cidr="10.244.0.0/16,fd00:10:244::/56"),
                       store=MemoryStore())
    await server.start()
    client = RESTClient.from_kubeconfig(load_kubeconfig(server.kubeconfig_path))
    try:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": "ns"}})
        yield client
    finally:
        await client.close()
        await server.stop()


def service(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}


def in_family(ip: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return ipaddress.ip_address(ip) in net


async def ip_addresses(rest: RESTClient) -> dict[str, str]:
    return {o["metadata"]["name"]: o["spec"]["parentRef"]["name"]
            for o in (await rest.list(IPADDRESSES, "")).items}


async def test_default_service_cidr_and_kubernetes_service(rest: RESTClient) -> None:
    cidr = await rest.get(SERVICECIDRS, "", "kubernetes")
    assert cidr["spec"]["cidrs"] == [str(V4), str(V6)]
    kube = (await rest.get(SERVICES, "default", "kubernetes"))["spec"]
    # The kubernetes Service stays single-stack in the primary family (upstream's bootstrap).
    assert (kube["clusterIPs"], kube["ipFamilies"], kube["ipFamilyPolicy"]) == (
        ["10.96.0.1"], ["IPv4"], "SingleStack")


async def test_dual_stack_services_allocate_one_ip_address_per_family(rest: RESTClient
                                                                      ) -> None:
    single = (await rest.create(SERVICES, service("single")))["spec"]
    assert single["ipFamilies"] == ["IPv4"] and single["ipFamilyPolicy"] == "SingleStack"
    v6 = (await rest.create(SERVICES, service("v6", ipFamilies=["IPv6"])))["spec"]
    assert in_family(v6["clusterIP"], V6) and v6["clusterIPs"] == [v6["clusterIP"]]
    dual = (await rest.create(SERVICES, service("dual", ipFamilyPolicy="RequireDualStack")))
    spec = dual["spec"]
    assert spec["ipFamilies"] == ["IPv4", "IPv6"]
    assert in_family(spec["clusterIPs"][0], V4) and in_family(spec["clusterIPs"][1], V6)
    assert spec["clusterIP"] == spec["clusterIPs"][0]
    prefer6 = (await rest.create(SERVICES, service(
        "prefer6", ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv6"],
        clusterIP="fd00:10:96::53", clusterIPs=["fd00:10:96::53"])))["spec"]
    assert prefer6["ipFamilies"] == ["IPv6", "IPv4"]
    assert prefer6["clusterIPs"][0] == "fd00:10:96::53" and in_family(prefer6["clusterIPs"][1], V4)
    owners = await ip_addresses(rest)
    for name, s in (("single", single), ("v6", v6), ("dual", spec), ("prefer6", prefer6)):
        assert all(owners[ip] == name for ip in s["clusterIPs"])
    assert len(owners) == 1 + 1 + 1 + 2 + 2  # kubernetes + the Services' IPs

    # Upgrade keeps the primary and adds the secondary; downgrade drops it (and its object).
    single_obj = await rest.get(SERVICES, "ns", "single")
    single_obj["spec"]["ipFamilyPolicy"] = "PreferDualStack"
    up = (await rest.update(SERVICES, single_obj))["spec"]
    assert up["clusterIPs"][0] == single["clusterIP"] and in_family(up["clusterIPs"][1], V6)
    assert up["ipFamilies"] == ["IPv4", "IPv6"]
    assert (await ip_addresses(rest))[up["clusterIPs"][1]] == "single"
    down_obj = await rest.get(SERVICES, "ns", "single")
    down_obj["spec"]["ipFamilyPolicy"] = "SingleStack"
    down = (await rest.update(SERVICES, down_obj))["spec"]
    assert down["clusterIPs"] == [single["clusterIP"]] and down["ipFamilies"] == ["IPv4"]

    async def released() -> bool:
        return up["clusterIPs"][1] not in await ip_addresses(rest)

    await eventually(released)

    # The primary family never changes: the allocator's loose pre-validation already finds
    # the kept clusterIPs against the flipped families (as upstream's initIPFamilyFields).
    flip = await rest.get(SERVICES, "ns", "dual")
    flip["spec"]["ipFamilies"] = ["IPv6", "IPv4"]
    with pytest.raises(StatusError) as e:
        await rest.update(SERVICES, flip)
    assert e.value.code == 422
    assert [c["field"] for c in e.value.details["causes"]] == [
        "spec.clusterIPs[0]", "spec.clusterIPs[1]"]

    await rest.delete(SERVICES, "ns", "dual")

    async def dual_released() -> bool:
        held = await ip_addresses(rest)
        return not any(ip in held for ip in spec["clusterIPs"])

    await eventually(dual_released)


async def test_nodes_get_a_pod_cidr_per_family(rest: RESTClient) -> None:
    await rest.create(NODES, {"apiVersion": "v1", "kind": "Node",
                              "metadata": {"name": "node-a"}})

    async def assigned() -> list[str]:
        return list((await rest.get(NODES, "", "node-a")).get("spec", {}).get("podCIDRs") or [])

    await eventually(assigned)
    node = (await rest.get(NODES, "", "node-a"))["spec"]
    v4, v6 = node["podCIDRs"]
    assert node["podCIDR"] == v4
    assert ipaddress.IPv4Network(v4).subnet_of(ipaddress.IPv4Network("10.244.0.0/16"))
    assert ipaddress.IPv4Network(v4).prefixlen == 24
    assert ipaddress.IPv6Network(v6).subnet_of(ipaddress.IPv6Network("fd00:10:244::/56"))
    assert ipaddress.IPv6Network(v6).prefixlen == 64


async def test_slices_per_family_and_endpoints_of_the_primary(rest: RESTClient) -> None:
    await rest.create(NODES, {"apiVersion": "v1", "kind": "Node",
                              "metadata": {"name": "node-a"}})
    await rest.create(SERVICES, service("web", ipFamilyPolicy="RequireDualStack",
                                        ipFamilies=["IPv6", "IPv4"]))
    pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p1", "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"nodeName": "node-a",
                         "containers": [{"name": "app", "image": "app:1"}]}}
    created = await rest.create(PODS, pod)
    created["status"] = {"phase": "Running", "podIP": "10.244.1.5",
                         "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00:10:244:1::5"}],
                         "conditions": [{"type": "Ready", "status": "True"}]}
    await rest.update_status(PODS, created)

    async def slices() -> dict[str, list[str]]:
        return {s["addressType"]: [a for e in s.get("endpoints") or []
                                   for a in e["addresses"]]
                for s in (await rest.list(ENDPOINTSLICES, "ns")).items}

    async def settled() -> bool:
        return await slices() == {"IPv4": ["10.244.1.5"], "IPv6": ["fd00:10:244:1::5"]}

    await eventually(settled)

    async def endpoints() -> list[str]:
        try:
            ep = await rest.get(ENDPOINTS, "ns", "web")
        except StatusError:
            return []
        return [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]

    async def primary_only() -> bool:
        return await endpoints() == ["fd00:10:244:1::5"]  # the Service's primary: IPv6

    await eventually(primary_only)
