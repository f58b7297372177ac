"""Builders for the proxy tests: Services, EndpointSlices and Nodes as the API serves them.

Address plan used by every proxy test (so that a reader can tell roles apart at a glance):

* ClusterIPs: 10.96.0.0/12 (``10.96.<n>.<m>``);
* pods: 10.244.0.0/16, this node (``node-1``) has 10.244.1.0/24, ``node-2`` 10.244.2.0/24;
* nodes: ``node-1`` = 172.20.0.11, ``node-2`` = 172.20.0.12;
* external IPs: 172.20.0.150-199; LoadBalancer IPs: 172.20.0.200-250;
* off-cluster clients: 192.0.2.0/24 (TEST-NET-1) and 198.51.100.0/24 (TEST-NET-2).

IPv6 (dual-stack tests): ClusterIPs fd00:10:96::/112, pods fd00:10:244::/56 (``node-1``
fd00:10:244:1::/64, ``node-2`` fd00:10:244:2::/64), nodes fd00:172:20::11 and ::12, LoadBalancer
IPs fd00:172:20::200-250, off-cluster clients 2001:db8::/32 (documentation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from svcnet.proxy.model import NodeInfo

Obj = dict[str, Any]

NODE = NodeInfo("node-1", ("172.20.0.11",))
NODE_IP = "172.20.0.11"
NODE6_IP = "fd00:172:20::11"
#: node-1 with an address of each family.
DUAL_NODE = NodeInfo("node-1", (NODE_IP, NODE6_IP))


def make_service(namespace: str, name: str, cluster_ip: str,
                 ports: Sequence[Obj] | None = None,
                 mutate: Callable[[Obj], None] | None = None) -> Obj:
    """A ClusterIP Service (already defaulted, as the API would return it)."""
    svc: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv6" if ":" in cluster_ip else "IPv4"],
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ports": list(ports) if ports is not None else [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        },
    }
    if mutate is not None:
        mutate(svc)
    return svc


def port(name: str, number: int, protocol: str = "TCP", target: int | str | None = None,
         node_port: int | None = None) -> Obj:
    result: Obj = {"name": name, "port": number, "protocol": protocol,
                   "targetPort": target if target is not None else number}
    if node_port is not None:
        result["nodePort"] = node_port
    return result


def endpoint(ip: str, *, node: str | None = "node-1", ready: bool | None = True,
             serving: bool | None = None, terminating: bool | None = None,
             zone: str | None = None, hints: Sequence[str] | None = None) -> Obj:
    conditions: Obj = {}
    if ready is not None:
        conditions["ready"] = ready
    if serving is not None:
        conditions["serving"] = serving
    if terminating is not None:
        conditions["terminating"] = terminating
    result: Obj = {"addresses": [ip], "conditions": conditions}
    if node is not None:
        result["nodeName"] = node
    if zone is not None:
        result["zone"] = zone
    if hints is not None:
        result["hints"] = {"forZones": [{"name": z} for z in hints]}
    return result


def make_slice(namespace: str, service: str, endpoints: Sequence[Obj],
               ports: Sequence[Obj] | None = None, *, suffix: str = "abcde",
               address_type: str = "IPv4") -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"namespace": namespace, "name": f"{service}-{suffix}",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": address_type,
        "endpoints": list(endpoints),
        "ports": list(ports) if ports is not None else [
            {"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def slice_port(name: str, number: int, protocol: str = "TCP") -> Obj:
    return {"name": name, "port": number, "protocol": protocol}


def node_port_service(svc: Obj, node_port: int = 30080) -> None:
    svc["spec"]["type"] = "NodePort"
    svc["spec"]["externalTrafficPolicy"] = "Cluster"
    for p in svc["spec"]["ports"]:
        p.setdefault("nodePort", node_port)
        node_port += 1


def load_balancer(ip: str, *, local: bool = False, node_port: int = 30080,
                  ranges: Sequence[str] = (), health_check: int = 32000
                  ) -> Callable[[Obj], None]:
    def mutate(svc: Obj) -> None:
        node_port_service(svc, node_port)
        svc["spec"]["type"] = "LoadBalancer"
        if local:
            svc["spec"]["externalTrafficPolicy"] = "Local"
            svc["spec"]["healthCheckNodePort"] = health_check
        if ranges:
            svc["spec"]["loadBalancerSourceRanges"] = list(ranges)
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}
    return mutate


def many_services(count: int, endpoints_per_service: int = 3, *, namespace: str = "bulk"
                  ) -> tuple[list[Obj], list[Obj]]:
    """``count`` ClusterIP services with ``endpoints_per_service`` endpoints each."""
    services: list[Obj] = []
    slices: list[Obj] = []
    for i in range(count):
        name = f"svc-{i:05d}"
        services.append(make_service(namespace, name, f"10.96.{i // 250 + 10}.{i % 250 + 1}"))
        eps = [endpoint(f"10.244.{(i * endpoints_per_service + j) // 250 % 200 + 1}."
                        f"{(i * endpoints_per_service + j) % 250 + 1}",
                        node="node-1" if j == 0 else "node-2")
               for j in range(endpoints_per_service)]
        slices.append(make_slice(namespace, name, eps))
    return services, slices


def dual_stack(cluster_ip6: str, lb_ip6: str | None = None) -> Callable[[Obj], None]:
    """Make an IPv4 Service RequireDualStack: a second ClusterIP (and LoadBalancer IP)."""
    def mutate(svc: Obj) -> None:
        spec = svc["spec"]
        spec["clusterIPs"] = [spec["clusterIP"], cluster_ip6]
        spec["ipFamilies"] = ["IPv4", "IPv6"]
        spec["ipFamilyPolicy"] = "RequireDualStack"
        if lb_ip6 is not None:
            svc["status"]["loadBalancer"]["ingress"].append({"ip": lb_ip6, "ipMode": "VIP"})
    return mutate
