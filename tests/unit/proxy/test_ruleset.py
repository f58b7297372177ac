"""build_ruleset: properties of the layout beyond single golden scenarios."""

from __future__ import annotations

import copy
import random

import pytest

from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.objects import Element, Ruleset
from svcnet.proxy.ruleset import MIN_LB_CHAINS, ProxyConfig, build_ruleset, lb_chain_count
from tests.unit.proxy.builders import (
    NODE,
    Obj,
    endpoint,
    load_balancer,
    make_service,
    make_slice,
    many_services,
)


def _elements(ruleset: Ruleset, name: str) -> dict[tuple[str, ...], tuple[str, ...]]:
    return {e.key: e.value for e in ruleset.set_by_name[name].elements}


def test_deterministic_whatever_the_input_order() -> None:
    services, slices = many_services(40, 4)
    for s in slices:
        s["endpoints"].reverse()
    shuffled_services, shuffled_slices = copy.deepcopy(services), copy.deepcopy(slices)
    random.Random(1).shuffle(shuffled_services)
    random.Random(2).shuffle(shuffled_slices)
    a = build_ruleset(services, slices, NODE)
    b = build_ruleset(shuffled_services, shuffled_slices, NODE)
    assert a == b and a.render() == b.render()


def test_chain_count_does_not_grow_with_services() -> None:
    small = build_ruleset(*many_services(10, 3), NODE)
    large = build_ruleset(*many_services(2000, 3), NODE)
    assert len(small.chains) == len(large.chains) == 7 + 2 * MIN_LB_CHAINS
    assert large.stats()["elements"] > 100 * small.stats()["elements"] // 10


@pytest.mark.parametrize(("largest", "chains"), [(0, 8), (1, 8), (8, 8), (9, 16), (16, 16),
                                                 (17, 32), (100, 128)])
def test_lb_chain_count(largest: int, chains: int) -> None:
    assert lb_chain_count(largest) == chains


def test_a_big_service_brings_more_lb_chains() -> None:
    eps = [endpoint(f"10.244.3.{i}", node="node-2") for i in range(1, 12)]
    ruleset = build_ruleset([make_service("ns", "big", "10.96.0.1")],
                            [make_slice("ns", "big", eps)], NODE)
    assert "lb-16" in ruleset.chain_by_name and "lb-local-16" in ruleset.chain_by_name
    assert ("10.96.0.1", "tcp", "80") in _elements(ruleset, "lb-count-11")
    assert not _elements(ruleset, "service-ips")  # counts are sets: no verdict elements


def test_conflicting_frontends_first_service_wins() -> None:
    def ext(svc: Obj) -> None:
        svc["spec"]["externalIPs"] = ["172.20.0.150"]
    services = [make_service("b", "second", "10.96.0.2", mutate=ext),
                make_service("a", "first", "10.96.0.1", mutate=ext)]
    slices = [make_slice("a", "first", [endpoint("10.244.1.1")]),
              make_slice("b", "second", [endpoint("10.244.1.2")])]
    ruleset = build_ruleset(services, slices, NODE)
    backends = _elements(ruleset, "backends")
    assert backends[("172.20.0.150", "tcp", "80", "0")] == ("10.244.1.1", "8080")
    assert ruleset.warnings == (
        "b/second/tcp/http: service-ips 172.20.0.150 . tcp . 80 already used by "
        "a/first/tcp/http; ignored",)
    assert not ruleset.problems()


def test_duplicate_service_objects_are_ignored() -> None:
    svc = make_service("ns", "web", "10.96.0.1")
    ruleset = build_ruleset([svc, copy.deepcopy(svc)], [], NODE)
    assert ruleset.warnings == ("ns/web:http: duplicate service port; ignored",)


def test_node_addresses() -> None:
    svc = make_service("ns", "np", "10.96.0.1", mutate=load_balancer("172.20.0.200"))
    node = NodeInfo("node-1", ("172.20.0.11", "fd00::11", "127.0.0.1", "198.51.100.11",
                               "bogus"))
    ruleset = build_ruleset([svc], [make_slice("ns", "np", [endpoint("10.244.1.1")])], node)
    assert set(_elements(ruleset, "nodeport-ips")) == {("172.20.0.11",), ("198.51.100.11",)}
    restricted = build_ruleset([svc], [make_slice("ns", "np", [endpoint("10.244.1.1")])],
                               node, ProxyConfig(nodeport_cidrs=("172.20.0.0/24",)))
    assert set(_elements(restricted, "nodeport-ips")) == {("172.20.0.11",)}
    backends = _elements(restricted, "backends")
    assert ("172.20.0.11", "tcp", "30080", "0") in backends
    assert ("198.51.100.11", "tcp", "30080", "0") not in backends
    # Without any address the NodePort is simply not served.
    bare = build_ruleset([svc], [], NodeInfo("node-1"))
    assert _elements(bare, "service-nodeports") == {}


def test_source_ranges_allow_the_vip_when_the_node_is_inside() -> None:
    def svc(ranges: list[str]) -> Obj:
        return make_service("ns", "lb", "10.96.0.1", mutate=load_balancer(
            "172.20.0.200", ranges=ranges))
    eps = [make_slice("ns", "lb", [endpoint("10.244.1.1")])]
    outside = build_ruleset([svc(["192.0.2.0/24"])], eps, NODE)
    assert {k[3] for k in _elements(outside, "firewall-allow")} == {"192.0.2.0/24"}
    inside = build_ruleset([svc(["172.20.0.0/16", "172.20.0.0/24"])], eps, NODE)
    # overlapping ranges are merged (interval sets refuse overlaps); the LB IP is inside
    assert {k[3] for k in _elements(inside, "firewall-allow")} == {"172.20.0.0/16"}
    inside2 = build_ruleset([svc(["172.20.0.0/28"])], eps, NODE)
    assert {k[3] for k in _elements(inside2, "firewall-allow")} == {
        "172.20.0.0/28", "172.20.0.200/32"}
    no_nodeports = build_ruleset([svc(["192.0.2.0/24"])], eps, NODE,
                                 ProxyConfig(source_ranges_on_nodeports=False))
    assert set(_elements(no_nodeports, "firewall-ips")) == {("172.20.0.200", "tcp", "80")}


def test_hairpin_pairs_cover_this_nodes_endpoints() -> None:
    slices = [make_slice("ns", "web", [endpoint("10.244.1.1"), endpoint("10.244.2.1",
                                                                        node="node-2"),
                                       endpoint("10.244.1.2", node=None)])]
    ruleset = build_ruleset([make_service("ns", "web", "10.96.0.1")], slices, NODE)
    assert set(_elements(ruleset, "hairpin")) == {("10.244.1.1", "10.244.1.1"),
                                                  ("10.244.1.2", "10.244.1.2")}


def test_the_same_endpoint_in_two_services_is_fine() -> None:
    services = [make_service("ns", "a", "10.96.0.1"), make_service("ns", "b", "10.96.0.2")]
    slices = [make_slice("ns", name, [endpoint("10.244.1.1")]) for name in ("a", "b")]
    ruleset = build_ruleset(services, slices, NODE)
    assert not ruleset.warnings and not ruleset.problems()
    assert len(ruleset.set_by_name["hairpin"].elements) == 1


def test_masquerade_mark_bit_is_configurable() -> None:
    ruleset = build_ruleset([], [], NODE, ProxyConfig(masquerade_bit=5))
    assert ruleset.chain_by_name["mark-for-masq"].rules[0].text == (
        "meta mark set meta mark | 0x00000020")
    with pytest.raises(ValueError, match="out of range"):
        ProxyConfig(masquerade_bit=32)
    with pytest.raises(ValueError):
        ProxyConfig(cluster_cidrs=("10.244.0.1/16",))


def test_elements_render_with_comments() -> None:
    ruleset = build_ruleset([make_service("ns", "web", "10.96.0.1")],
                            [make_slice("ns", "web", [endpoint("10.244.1.1")])], NODE)
    [element] = ruleset.set_by_name["lb-count-1"].elements
    assert element == Element(("10.96.0.1", "tcp", "80"), (), "ns/web/tcp/http")
