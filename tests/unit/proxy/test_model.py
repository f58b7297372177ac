"""Conversion at the boundary: Services, EndpointSlices and Nodes into the proxy's model."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.proxy.model import (
    EndpointInfo,
    NodeInfo,
    ServicePortInfo,
    ServicePortName,
    endpoints_by_port,
    node_info,
    service_ports,
)
from tests.unit.proxy.builders import (
    Obj,
    endpoint,
    load_balancer,
    make_service,
    make_slice,
    node_port_service,
    port,
    slice_port,
)


def _spec(**fields: Any) -> Any:
    def mutate(svc: Obj) -> None:
        svc["spec"].update(fields)
    return mutate


def _meta(**fields: Any) -> Any:
    def mutate(svc: Obj) -> None:
        svc["metadata"].update(fields)
    return mutate


@pytest.mark.parametrize(("svc", "why"), [
    (make_service("ns", "ext", "", mutate=_spec(type="ExternalName",
                                                externalName="example.com")), "ExternalName"),
    (make_service("ns", "headless", "None", mutate=_spec(clusterIPs=["None"])), "headless"),
    (make_service("ns", "other-proxy", "10.96.0.1", mutate=_meta(
        labels={"service.kubernetes.io/service-proxy-name": "someone-else"})), "other proxy"),
    (make_service("ns", "headless-label", "10.96.0.1", mutate=_meta(
        labels={"service.kubernetes.io/headless": ""})), "headless label"),
    (make_service("ns", "v6", "fd00::10", mutate=_spec(clusterIPs=["fd00::10"])), "IPv6 only"),
    (make_service("ns", "weird", "10.96.0.1", [port("x", 80, "ICMP")]), "no supported port"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_skipped_services(svc: Obj, why: str) -> None:
    assert service_ports(svc) == (), why


def test_basic_service_port() -> None:
    svc = make_service("ns", "web", "10.96.0.10", [port("http", 80), port("dns", 53, "UDP")])
    http, dns = service_ports(svc)
    assert http == ServicePortInfo(
        name=ServicePortName("ns", "web", "http", "TCP"), cluster_ip="10.96.0.10", port=80,
        protocol="TCP", cluster_ips=("10.96.0.10",))
    assert dns.name == ServicePortName("ns", "web", "dns", "UDP")
    assert str(http.name) == "ns/web:http"
    assert str(ServicePortName("ns", "web", "", "TCP")) == "ns/web"


def test_dual_stack_picks_the_family() -> None:
    svc = make_service("ns", "dual", "fd00::10",
                       mutate=_spec(clusterIPs=["fd00::10", "10.96.0.10"]))
    [sp] = service_ports(svc)
    assert sp.cluster_ip == "10.96.0.10"
    assert sp.cluster_ips == ("fd00::10", "10.96.0.10")


def test_addresses_are_canonical_and_filtered_by_family() -> None:
    def mutate(svc: Obj) -> None:
        load_balancer("172.20.0.200", ranges=[" 10.1.2.3/8", "fd00::/64", "192.0.2.0/24",
                                               "bogus"])(svc)
        svc["spec"]["externalIPs"] = ["010.000.000.001", "fd00::1", "10.0.0.1", "nope"]
        svc["status"]["loadBalancer"]["ingress"] += [
            {"ip": "172.20.0.201", "ipMode": "Proxy"},  # a proxying LB handles it itself
            {"hostname": "lb.example.com"},
            {"ip": "fd00::200"},
        ]
    [sp] = service_ports(make_service("ns", "lb", "10.96.0.1", mutate=mutate))
    assert sp.external_ips == ("10.0.0.1",)  # deduplicated after canonicalisation
    assert sp.load_balancer_ips == ("172.20.0.200",)
    assert sp.load_balancer_source_ranges == ("10.0.0.0/8", "192.0.2.0/24")
    assert sp.node_port == 30080 and sp.type == "LoadBalancer"


def test_source_ranges_annotation_is_the_fallback() -> None:
    annotation = {"service.beta.kubernetes.io/load-balancer-source-ranges":
                  "192.0.2.0/24, 198.51.100.0/24"}
    def mutate(svc: Obj) -> None:
        load_balancer("172.20.0.200")(svc)
        svc["metadata"]["annotations"] = annotation
    svc = make_service("ns", "lb", "10.96.0.1", mutate=mutate)
    [sp] = service_ports(svc)
    assert sp.load_balancer_source_ranges == ("192.0.2.0/24", "198.51.100.0/24")
    svc["spec"]["loadBalancerSourceRanges"] = ["203.0.113.0/24"]
    [sp] = service_ports(svc)
    assert sp.load_balancer_source_ranges == ("203.0.113.0/24",)


@pytest.mark.parametrize(("spec", "affinity", "timeout"), [
    ({}, "None", 0),
    ({"sessionAffinity": "ClientIP"}, "ClientIP", 10800),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}, "ClientIP", 60),
])
def test_session_affinity(spec: Obj, affinity: str, timeout: int) -> None:
    [sp] = service_ports(make_service("ns", "s", "10.96.0.1", mutate=_spec(**spec)))
    assert (sp.session_affinity, sp.sticky_max_age_seconds) == (affinity, timeout)
    assert sp.client_ip_affinity == (affinity == "ClientIP")


@pytest.mark.parametrize(("mutate", "etp_local", "itp_local", "health"), [
    (_spec(externalTrafficPolicy="Local"), False, False, 0),  # ClusterIP: ETP is moot
    (_spec(externalTrafficPolicy="Local", externalIPs=["10.0.0.1"]), True, False, 0),
    (load_balancer("172.20.0.200", local=True, health_check=32123), True, False, 32123),
    (load_balancer("172.20.0.200"), False, False, 0),
    (_spec(internalTrafficPolicy="Local"), False, True, 0),
])
def test_traffic_policies(mutate: Any, etp_local: bool, itp_local: bool, health: int) -> None:
    [sp] = service_ports(make_service("ns", "s", "10.96.0.1", mutate=mutate))
    assert (sp.external_policy_local, sp.internal_policy_local,
            sp.health_check_node_port) == (etp_local, itp_local, health)


@pytest.mark.parametrize(("itp", "reachable", "etp", "cluster", "local"), [
    (False, False, False, True, False),
    (True, False, False, False, True),
    (True, True, False, True, True),    # external traffic still uses cluster endpoints
    (False, True, True, True, True),    # ETP Local: local for outside, cluster to short-circuit
    (True, True, True, True, True),
])
def test_which_endpoints_a_port_uses(itp: bool, reachable: bool, etp: bool, cluster: bool,
                                     local: bool) -> None:
    sp = ServicePortInfo(ServicePortName("ns", "s", "", "TCP"), "10.96.0.1", 80,
                         node_port=30000 if reachable else 0, internal_policy_local=itp,
                         external_policy_local=etp)
    assert (sp.uses_cluster_endpoints, sp.uses_local_endpoints) == (cluster, local)


# -- EndpointSlices ---------------------------------------------------------------------------

WEB_HTTP = ServicePortName("ns", "web", "http", "TCP")


def test_slices_are_merged_and_deduplicated() -> None:
    slices = [
        make_slice("ns", "web", [endpoint("10.244.1.5"), endpoint("10.244.2.7", node="node-2")],
                   suffix="aaaaa"),
        # The same endpoint caught moving between slices, terminating in the old one.
        make_slice("ns", "web", [endpoint("10.244.1.5", ready=False, terminating=True),
                                 endpoint("10.244.1.20")], suffix="bbbbb"),
    ]
    eps = endpoints_by_port(slices)[WEB_HTTP]
    assert [str(e) for e in eps] == ["10.244.1.5:8080", "10.244.1.20:8080", "10.244.2.7:8080"]
    assert eps[0].ready and not eps[0].terminating  # the running copy wins
    assert eps[2].node_name == "node-2"


def test_condition_defaults_follow_upstream() -> None:
    [ep] = endpoints_by_port([make_slice("ns", "web", [endpoint("10.244.1.5", ready=None)])]
                             )[WEB_HTTP]
    assert (ep.ready, ep.serving, ep.terminating) == (True, True, False)
    [ep] = endpoints_by_port([make_slice("ns", "web", [endpoint(
        "10.244.1.5", ready=False, serving=True, terminating=True)])])[WEB_HTTP]
    assert (ep.ready, ep.serving, ep.terminating) == (False, True, True)


def test_slices_that_do_not_count() -> None:
    unlabelled = make_slice("ns", "web", [endpoint("10.244.1.1")])
    del unlabelled["metadata"]["labels"]
    slices = [
        unlabelled,
        make_slice("ns", "web", [endpoint("fd00::1")], address_type="IPv6"),
        make_slice("ns", "web", [endpoint("example.com")], address_type="FQDN"),
        make_slice("ns", "web", [endpoint("10.244.1.2")], [{"name": "http", "port": 0}]),
        make_slice("ns", "web", [{"addresses": [], "conditions": {}}]),
    ]
    assert endpoints_by_port(slices) == {}


def test_ports_are_per_name_and_protocol() -> None:
    slices = [make_slice("kube-system", "dns", [endpoint("10.244.1.3", zone="z1")],
                         [slice_port("dns", 53, "UDP"), slice_port("dns-tcp", 53, "TCP"),
                          {"port": 9153}])]
    eps = endpoints_by_port(slices)
    assert set(eps) == {ServicePortName("kube-system", "dns", "dns", "UDP"),
                        ServicePortName("kube-system", "dns", "dns-tcp", "TCP"),
                        ServicePortName("kube-system", "dns", "", "TCP")}
    assert eps[ServicePortName("kube-system", "dns", "", "TCP")][0] == EndpointInfo(
        "10.244.1.3", 9153, node_name="node-1", zone="z1")


def test_endpoint_order_is_numeric_and_input_independent() -> None:
    ips = ["10.244.1.10", "10.244.1.9", "10.244.10.1", "10.244.2.1"]
    forward = endpoints_by_port([make_slice("ns", "web", [endpoint(ip) for ip in ips])])
    backward = endpoints_by_port([make_slice("ns", "web", [endpoint(ip) for ip in ips[::-1]])])
    assert forward == backward
    assert [e.ip for e in forward[WEB_HTTP]] == [
        "10.244.1.9", "10.244.1.10", "10.244.2.1", "10.244.10.1"]


def test_zone_hints_are_read() -> None:
    odd = endpoint("10.244.1.7")
    odd["hints"] = {"forZones": [{"name": ""}, "junk", {}]}
    eps = endpoints_by_port([make_slice("ns", "web", [
        endpoint("10.244.1.5", zone="a", hints=["a", "b"]), endpoint("10.244.1.6"), odd])])
    assert [e.zone_hints for e in eps[WEB_HTTP]] == [frozenset({"a", "b"}), frozenset(),
                                                      frozenset()]


def test_endpoint_locality() -> None:
    ep = EndpointInfo("10.244.1.5", 80, node_name="node-1")
    assert ep.is_local("node-1") and not ep.is_local("node-2") and not ep.is_local("")
    assert not EndpointInfo("10.244.1.5", 80).is_local("node-1")


# -- Nodes ------------------------------------------------------------------------------------

def test_node_info() -> None:
    node = {"metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "z1"}},
            "status": {"addresses": [
                {"type": "Hostname", "address": "node-1"},
                {"type": "InternalIP", "address": "172.20.0.11"},
                {"type": "InternalIP", "address": "fd00::11"},
                {"type": "ExternalIP", "address": "198.51.100.11"},
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "ExternalIP", "address": "172.20.0.11"},
            ]}}
    assert node_info(node) == NodeInfo("node-1", ("172.20.0.11", "198.51.100.11"), "z1")
    assert node_info({"metadata": {"name": "bare"}}) == NodeInfo("bare")


def test_node_port_service_builder_sanity() -> None:
    [sp] = service_ports(make_service("ns", "np", "10.96.0.1", mutate=node_port_service))
    assert sp.node_port == 30080 and sp.externally_accessible
