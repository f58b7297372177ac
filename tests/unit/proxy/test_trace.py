"""Packet-flow tests: behaviour of the built ruleset, traced through a virtual packet path.

Address plan: see :mod:`tests.unit.proxy.builders`. "pod" is 10.244.1.9 (a pod on this node
that is no endpoint), "outside" is 192.0.2.1, "host" is the node itself (172.20.0.11, output
hook).
"""

from __future__ import annotations

import pytest

from svcnet.proxy.nft.objects import Ruleset
from svcnet.proxy.ruleset import ProxyConfig, build_ruleset
from tests.unit.proxy.builders import (
    NODE,
    NODE_IP,
    Obj,
    endpoint,
    load_balancer,
    make_service,
    make_slice,
    node_port_service,
    port,
    slice_port,
)
from tests.unit.proxy.tracer import Outcome, Packet, UnknownRule, trace

LOCAL_EP = "10.244.1.5"
REMOTE_EP = "10.244.2.7"
POD = "10.244.1.9"
OUTSIDE = "192.0.2.1"


def _eps(local: bool = True) -> list[Obj]:
    return [endpoint(LOCAL_EP, node="node-1" if local else "node-3"),
            endpoint(REMOTE_EP, node="node-2")]


def _itp_local(svc: Obj) -> None:
    svc["spec"]["internalTrafficPolicy"] = "Local"


def _external_ips(svc: Obj) -> None:
    svc["spec"]["externalIPs"] = ["172.20.0.150"]


def cluster(config: ProxyConfig | None = None) -> Ruleset:
    services = [
        make_service("default", "web", "10.96.0.10", mutate=node_port_service),
        make_service("default", "shop", "10.96.1.1",
                     mutate=load_balancer("172.20.0.200", local=True, node_port=30090)),
        make_service("default", "lonely", "10.96.1.2",
                     mutate=load_balancer("172.20.0.201", local=True, node_port=30091)),
        make_service("default", "cache", "10.96.2.1", mutate=_itp_local),
        make_service("default", "remote-cache", "10.96.2.2", mutate=_itp_local),
        make_service("default", "empty", "10.96.4.1",
                     mutate=load_balancer("172.20.0.202", node_port=30100)),
        make_service("default", "internal", "10.96.7.1", mutate=load_balancer(
            "172.20.0.203", node_port=30110, ranges=["192.0.2.0/24"])),
        make_service("default", "legacy", "10.96.6.1", mutate=_external_ips),
        make_service("kube-system", "dns", "10.96.0.53", [port("dns", 53, "UDP")]),
    ]
    slices = [
        make_slice("default", "web", _eps()),
        make_slice("default", "shop", _eps()),
        make_slice("default", "lonely", _eps(local=False)),
        make_slice("default", "cache", _eps()),
        make_slice("default", "remote-cache", _eps(local=False)),
        make_slice("default", "internal", _eps()),
        make_slice("default", "legacy", _eps()),
        make_slice("kube-system", "dns", _eps(), [slice_port("dns", 53, "UDP")]),
    ]
    return build_ruleset(services, slices, NODE, config)


def dnat(*endpoints: str, masq: bool = False) -> set[Outcome]:
    return {Outcome("dnat", ep, masq) for ep in endpoints}


BOTH = (f"{LOCAL_EP}:8080", f"{REMOTE_EP}:8080")
LOCAL = (f"{LOCAL_EP}:8080",)

CASES: list[tuple[str, Packet, set[Outcome]]] = [
    ("pod to ClusterIP", Packet(POD, "10.96.0.10", 80), dnat(*BOTH)),
    ("outside to ClusterIP is masqueraded", Packet(OUTSIDE, "10.96.0.10", 80),
     dnat(*BOTH, masq=True)),
    ("host to ClusterIP is masqueraded", Packet(NODE_IP, "10.96.0.10", 80, from_host=True),
     dnat(*BOTH, masq=True)),
    ("hairpin: an endpoint reaching itself is masqueraded", Packet(LOCAL_EP, "10.96.0.10", 80),
     {Outcome("dnat", BOTH[0], True), Outcome("dnat", BOTH[1], False)}),
    ("ClusterIP on an unknown port is rejected", Packet(POD, "10.96.0.10", 81),
     {Outcome("reject")}),
    ("UDP", Packet(POD, "10.96.0.53", 53, "udp"),
     dnat(f"{LOCAL_EP}:53", f"{REMOTE_EP}:53")),
    ("TCP to a UDP-only port is rejected", Packet(POD, "10.96.0.53", 53, "tcp"),
     {Outcome("reject")}),
    ("NodePort from outside (ETP Cluster) is masqueraded", Packet(OUTSIDE, NODE_IP, 30080),
     dnat(*BOTH, masq=True)),
    ("NodePort from a pod (ETP Cluster) is masqueraded", Packet(POD, NODE_IP, 30080),
     dnat(*BOTH, masq=True)),
    ("NodePorts are not served on loopback",
     Packet("127.0.0.1", "127.0.0.1", 30080, from_host=True), {Outcome("accept")}),
    ("LB IP, ETP Local, from outside: local endpoint, source kept",
     Packet(OUTSIDE, "172.20.0.200", 80), dnat(*LOCAL)),
    ("LB IP, ETP Local, from a pod: all endpoints (short-circuit)",
     Packet(POD, "172.20.0.200", 80), dnat(*BOTH)),
    ("LB IP, ETP Local, from the node: all endpoints, masqueraded",
     Packet(NODE_IP, "172.20.0.200", 80, from_host=True), dnat(*BOTH, masq=True)),
    ("NodePort, ETP Local, from outside: local endpoint", Packet(OUTSIDE, NODE_IP, 30090),
     dnat(*LOCAL)),
    ("ETP Local without local endpoints drops outside traffic",
     Packet(OUTSIDE, "172.20.0.201", 80), {Outcome("drop")}),
    ("... and its NodePort too", Packet(OUTSIDE, NODE_IP, 30091), {Outcome("drop")}),
    ("... but pods still reach all its endpoints", Packet(POD, "172.20.0.201", 80),
     dnat(*BOTH)),
    ("ITP Local: local endpoints only", Packet(POD, "10.96.2.1", 80), dnat(*LOCAL)),
    ("ITP Local from outside is masqueraded", Packet(OUTSIDE, "10.96.2.1", 80),
     dnat(*LOCAL, masq=True)),
    ("ITP Local without local endpoints drops", Packet(POD, "10.96.2.2", 80),
     {Outcome("drop")}),
    ("no endpoints: ClusterIP rejected", Packet(POD, "10.96.4.1", 80), {Outcome("reject")}),
    ("no endpoints: LB IP rejected", Packet(OUTSIDE, "172.20.0.202", 80), {Outcome("reject")}),
    ("no endpoints: NodePort rejected", Packet(OUTSIDE, NODE_IP, 30100), {Outcome("reject")}),
    ("source ranges: allowed client", Packet("192.0.2.77", "172.20.0.203", 80),
     dnat(*BOTH, masq=True)),
    ("source ranges: other clients dropped", Packet("198.51.100.1", "172.20.0.203", 80),
     {Outcome("drop")}),
    ("source ranges apply to the NodePort too", Packet("198.51.100.1", NODE_IP, 30110),
     {Outcome("drop")}),
    ("source ranges do not apply to the ClusterIP", Packet("198.51.100.1", "10.96.7.1", 80),
     dnat(*BOTH, masq=True)),
    ("external IP from outside", Packet(OUTSIDE, "172.20.0.150", 80), dnat(*BOTH, masq=True)),
    ("external IP from a pod is masqueraded too (ETP Cluster)",
     Packet(POD, "172.20.0.150", 80), dnat(*BOTH, masq=True)),
    ("non-service traffic is left alone", Packet(POD, "198.51.100.9", 443),
     {Outcome("accept")}),
    ("host traffic elsewhere is left alone", Packet(NODE_IP, "198.51.100.9", 443,
                                                    from_host=True), {Outcome("accept")}),
]


@pytest.mark.parametrize(("packet", "expected"), [(p, e) for _, p, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_packet_flow(packet: Packet, expected: set[Outcome]) -> None:
    assert trace(cluster(), packet) == expected


def test_masquerade_all() -> None:
    ruleset = cluster(ProxyConfig(masquerade_all=True))
    assert trace(ruleset, Packet(POD, "10.96.0.10", 80)) == dnat(*BOTH, masq=True)


def test_without_cluster_cidrs_only_host_and_external_traffic_is_masqueraded() -> None:
    ruleset = cluster(ProxyConfig(cluster_cidrs=()))
    assert trace(ruleset, Packet(OUTSIDE, "10.96.0.10", 80)) == dnat(*BOTH)
    # Without a local-traffic detector, pods count as "outside" for ETP Local...
    assert trace(ruleset, Packet(POD, "172.20.0.200", 80)) == dnat(*LOCAL)
    # ... while the node itself still short-circuits, masqueraded.
    assert trace(ruleset, Packet(NODE_IP, "172.20.0.200", 80, from_host=True)) == dnat(
        *BOTH, masq=True)


def _sticky(svc: Obj) -> None:
    svc["spec"]["sessionAffinity"] = "ClientIP"
    load_balancer("172.20.0.210", local=True)(svc)


def test_session_affinity() -> None:
    eps = [endpoint(LOCAL_EP), endpoint("10.244.1.6"), endpoint(REMOTE_EP, node="node-2")]
    ruleset = build_ruleset([make_service("default", "s", "10.96.3.1", mutate=_sticky)],
                            [make_slice("default", "s", eps)], NODE)
    everyone = (f"{LOCAL_EP}:8080", "10.244.1.6:8080", f"{REMOTE_EP}:8080")
    # A first connection may go anywhere (the numgen cascade covers every endpoint)...
    assert trace(ruleset, Packet(POD, "10.96.3.1", 80)) == dnat(*everyone)
    # ... a known client sticks to its endpoint, whichever address it uses.
    sets = sorted(s.name for s in ruleset.sets if s.name.startswith("affinity-")
                  and s.name.endswith("__10.244.1.6/8080"))
    known = {sets[0]: {POD, OUTSIDE}}
    assert trace(ruleset, Packet(POD, "10.96.3.1", 80), affinity=known) == dnat(
        "10.244.1.6:8080")
    assert trace(ruleset, Packet(POD, "172.20.0.210", 80), affinity=known) == dnat(
        "10.244.1.6:8080")
    # From outside under ETP Local, only local endpoints are candidates (and sticky ones).
    assert trace(ruleset, Packet(OUTSIDE, "172.20.0.210", 80)) == dnat(
        f"{LOCAL_EP}:8080", "10.244.1.6:8080")
    assert trace(ruleset, Packet(OUTSIDE, "172.20.0.210", 80), affinity=known) == dnat(
        "10.244.1.6:8080")
    # Every endpoint's timed set has the Service's timeout (default 3 hours).
    assert {s.timeout for s in ruleset.sets if s.name.startswith("affinity-")} == {10800}


def test_tracer_rejects_rules_it_does_not_understand() -> None:
    ruleset = build_ruleset([], [], NODE)
    chains = tuple(c if c.name != "services" else c.__class__(
        "services", (c.rules[0].__class__("tcp dport 22 counter accept"),))
        for c in ruleset.chains)
    odd = ruleset.__class__(ruleset.table, chains, ruleset.sets, ruleset.maps)
    with pytest.raises(UnknownRule):
        trace(odd, Packet(POD, "10.96.0.10", 80))
