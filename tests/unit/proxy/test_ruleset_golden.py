"""Golden rulesets: the builder's rendering of named scenarios, checked in as .nft files.

Each scenario's rendering is compared byte for byte with ``tests/golden/nftables/<name>.nft``.
After an intended change, regenerate with::

    SVCNET_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/proxy/test_ruleset_golden.py

and review the diff like code. Every scenario is also applied to FakeNft as a full-sync
transaction, whose state must render to the same text (the transaction and the canonical
rendering describe the same table), and is checked for dangling references. The golden texts
are valid ``nft -f`` scripts; the kernel integration test loads one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.fake import FakeNft
from svcnet.proxy.nft.objects import Ruleset
from svcnet.proxy.nft.transaction import plan_sync
from svcnet.proxy.ruleset import ProxyConfig, build_ruleset
from tests.unit.proxy.builders import (
    DUAL_NODE,
    NODE,
    Obj,
    dual_stack,
    endpoint,
    load_balancer,
    make_service,
    make_slice,
    many_services,
    node_port_service,
    port,
    slice_port,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "nftables"
UPDATE = os.environ.get("SVCNET_UPDATE_GOLDEN") == "1"


@dataclass(frozen=True)
class Scenario:
    services: list[Obj]
    slices: list[Obj]
    node: NodeInfo = NODE
    config: ProxyConfig = field(default_factory=ProxyConfig)
    #: The other family's table, built from the same objects (dual stack).
    second: ProxyConfig | None = None

    def build(self) -> Ruleset:
        return build_ruleset(self.services, self.slices, self.node, self.config)

    def build_all(self) -> list[Ruleset]:
        second = [] if self.second is None else [
            build_ruleset(self.services, self.slices, self.node, self.second)]
        return [self.build(), *second]


def _set(path: str, value: object) -> Callable[[Obj], None]:
    def mutate(svc: Obj) -> None:
        target = svc
        *parents, last = path.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return mutate


def _two_eps(*, local_first: bool = True) -> list[Obj]:
    return [endpoint("10.244.1.5", node="node-1" if local_first else "node-2"),
            endpoint("10.244.2.7", node="node-2")]


SCENARIOS: dict[str, Callable[[], Scenario]] = {}


def scenario(func: Callable[[], Scenario]) -> Callable[[], Scenario]:
    SCENARIOS[func.__name__.replace("_", "-")] = func
    return func


@scenario
def clusterip_basic() -> Scenario:
    return Scenario([make_service("default", "web", "10.96.0.10")],
                    [make_slice("default", "web", _two_eps())])


@scenario
def named_target_port() -> Scenario:
    # targetPort "http" resolves to 8080 on one pod and 9090 on another: the EndpointSlice
    # controller puts them in two slices with different port numbers; both are merged.
    svc = make_service("default", "web", "10.96.0.10", [port("http", 80, target="http")])
    return Scenario([svc], [
        make_slice("default", "web", [endpoint("10.244.1.5")], [slice_port("http", 8080)],
                   suffix="aaaaa"),
        make_slice("default", "web", [endpoint("10.244.2.7", node="node-2")],
                   [slice_port("http", 9090)], suffix="bbbbb"),
    ])


@scenario
def udp_and_tcp_same_port() -> Scenario:
    svc = make_service("kube-system", "kube-dns", "10.96.0.10",
                       [port("dns", 53, "UDP"), port("dns-tcp", 53, "TCP")])
    return Scenario([svc], [make_slice(
        "kube-system", "kube-dns", [endpoint("10.244.1.3"), endpoint("10.244.2.3", node="node-2")],
        [slice_port("dns", 53, "UDP"), slice_port("dns-tcp", 53, "TCP")])])


@scenario
def sctp() -> Scenario:
    svc = make_service("telco", "diameter", "10.96.0.20", [port("diameter", 3868, "SCTP")],
                       mutate=node_port_service)
    return Scenario([svc], [make_slice("telco", "diameter", _two_eps(),
                                       [slice_port("diameter", 3868, "SCTP")])])


@scenario
def nodeport() -> Scenario:
    svc = make_service("default", "web", "10.96.0.10", mutate=node_port_service)
    return Scenario([svc], [make_slice("default", "web", _two_eps())])


@scenario
def loadbalancer_etp_local() -> Scenario:
    svc = make_service("default", "shop", "10.96.1.1",
                       mutate=load_balancer("172.20.0.200", local=True))
    return Scenario([svc], [make_slice("default", "shop", _two_eps())])


@scenario
def loadbalancer_etp_local_no_local_endpoints() -> Scenario:
    svc = make_service("default", "shop", "10.96.1.1",
                       mutate=load_balancer("172.20.0.200", local=True))
    return Scenario([svc], [make_slice("default", "shop", _two_eps(local_first=False))])


@scenario
def itp_local() -> Scenario:
    local = make_service("default", "node-cache", "10.96.2.1",
                         mutate=_set("spec.internalTrafficPolicy", "Local"))
    remote_only = make_service("default", "remote-cache", "10.96.2.2",
                               mutate=_set("spec.internalTrafficPolicy", "Local"))
    return Scenario([local, remote_only], [
        make_slice("default", "node-cache", _two_eps()),
        make_slice("default", "remote-cache", _two_eps(local_first=False)),
    ])


@scenario
def session_affinity() -> Scenario:
    def sticky(svc: Obj) -> None:
        svc["spec"]["sessionAffinity"] = "ClientIP"
        svc["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 600}}
        node_port_service(svc)
    svc = make_service("default", "sticky", "10.96.3.1", mutate=sticky)
    return Scenario([svc], [make_slice("default", "sticky", [
        endpoint("10.244.1.5"), endpoint("10.244.1.6"), endpoint("10.244.2.7", node="node-2")])])


@scenario
def session_affinity_etp_local() -> Scenario:
    def sticky(svc: Obj) -> None:
        load_balancer("172.20.0.201", local=True)(svc)
        svc["spec"]["sessionAffinity"] = "ClientIP"
        svc["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    svc = make_service("default", "sticky-lb", "10.96.3.2", mutate=sticky)
    return Scenario([svc], [make_slice("default", "sticky-lb", _two_eps())])


@scenario
def no_endpoints() -> Scenario:
    svc = make_service("default", "empty", "10.96.4.1",
                       mutate=load_balancer("172.20.0.202"))
    not_ready = make_service("default", "starting", "10.96.4.2")
    return Scenario([svc, not_ready], [
        make_slice("default", "empty", []),
        make_slice("default", "starting", [endpoint("10.244.1.9", ready=False)]),
    ])


@scenario
def terminating_fallback() -> Scenario:
    draining = make_service("default", "draining", "10.96.5.1")
    mixed = make_service("default", "mixed", "10.96.5.2")
    return Scenario([draining, mixed], [
        # No endpoint is ready: the serving, terminating ones are used; the non-serving
        # terminating one never is.
        make_slice("default", "draining", [
            endpoint("10.244.1.5", ready=False, serving=True, terminating=True),
            endpoint("10.244.2.7", node="node-2", ready=False, serving=True, terminating=True),
            endpoint("10.244.2.8", node="node-2", ready=False, serving=False, terminating=True),
        ]),
        # One ready endpoint: terminating ones are not used at all.
        make_slice("default", "mixed", [
            endpoint("10.244.1.5", ready=False, serving=True, terminating=True),
            endpoint("10.244.2.7", node="node-2"),
        ]),
    ])


@scenario
def external_ips() -> Scenario:
    svc = make_service("default", "legacy", "10.96.6.1",
                       mutate=_set("spec.externalIPs", ["172.20.0.150", "172.20.0.151"]))
    return Scenario([svc], [make_slice("default", "legacy", _two_eps())])


@scenario
def source_ranges() -> Scenario:
    # 172.20.0.0/24 contains the node's own address: the LB IP is allowed as a source too.
    svc = make_service("default", "internal-lb", "10.96.7.1", mutate=load_balancer(
        "172.20.0.203", ranges=["192.0.2.0/24", " 198.51.100.7/32 ", "172.20.0.0/24"]))
    return Scenario([svc], [make_slice("default", "internal-lb", _two_eps())])


@scenario
def many_services_clusterip() -> Scenario:
    services, slices = many_services(30, 3)
    return Scenario(services, slices)


@scenario
def masquerade_all_and_no_cluster_cidr() -> Scenario:
    web = make_service("default", "web", "10.96.0.10", mutate=load_balancer(
        "172.20.0.204", local=True))
    return Scenario([web], [make_slice("default", "web", _two_eps())],
                    config=ProxyConfig(cluster_cidrs=(), masquerade_all=True))


@scenario
def topology_hints() -> Scenario:
    # This node is in zone-a. "close": every ready endpoint hinted, one for zone-a → only it
    # (ETP/ITP Local lists are not filtered). "partial": a ready endpoint lacks a hint → all.
    # "elsewhere": no endpoint hinted for zone-a → all.
    def eps(hint_a: list[str] | None, hint_b: list[str] | None) -> list[Obj]:
        return [endpoint("10.244.1.5", zone="zone-a", hints=hint_a),
                endpoint("10.244.2.7", node="node-2", zone="zone-b", hints=hint_b),
                endpoint("10.244.2.8", node="node-2", zone="zone-b", ready=False,
                         hints=["zone-a"])]
    close = make_service("default", "close", "10.96.8.1", mutate=load_balancer(
        "172.20.0.205", local=True))
    partial = make_service("default", "partial", "10.96.8.2")
    elsewhere = make_service("default", "elsewhere", "10.96.8.3")
    return Scenario([close, partial, elsewhere], [
        make_slice("default", "close", eps(["zone-a"], ["zone-b"])),
        make_slice("default", "partial", eps(["zone-a"], None)),
        make_slice("default", "elsewhere", eps(["zone-b"], ["zone-b"])),
    ], node=NodeInfo("node-1", ("172.20.0.11",), "zone-a"))


IPV6: Final = ProxyConfig(family="IPv6", cluster_cidrs=("fd00:10:244::/56",))


def _six_eps(*, local_first: bool = True) -> list[Obj]:
    return [endpoint("fd00:10:244:1::5", node="node-1" if local_first else "node-2"),
            endpoint("fd00:10:244:2::7", node="node-2")]


@scenario
def ipv6_only() -> Scenario:
    # The ip6 table: ClusterIP + NodePort on the node's IPv6 address, an ETP=Local LB IP
    # guarded by an IPv6 source range, ClientIP affinity, a Service without endpoints.
    def sticky(svc: Obj) -> None:
        svc["spec"]["sessionAffinity"] = "ClientIP"
    web = make_service("default", "web", "fd00:10:96::a", mutate=node_port_service)
    shop = make_service("default", "shop", "fd00:10:96::1:1", mutate=load_balancer(
        "fd00:172:20::200", local=True, node_port=30090, ranges=["2001:db8::/32"]))
    sticky_svc = make_service("default", "sticky", "fd00:10:96::2:1", mutate=sticky)
    empty = make_service("default", "empty", "fd00:10:96::3:1")
    six = "IPv6"
    return Scenario([web, shop, sticky_svc, empty], [
        make_slice("default", "web", _six_eps(), address_type=six),
        make_slice("default", "shop", _six_eps(), address_type=six),
        make_slice("default", "sticky", _six_eps(), address_type=six),
        make_slice("default", "empty", [], address_type=six),
    ], node=DUAL_NODE, config=IPV6)


@scenario
def dual_stack_tables() -> Scenario:
    # Both tables from one set of objects: a RequireDualStack LoadBalancer (each family's
    # ClusterIP, LB IP, NodePort on the node's address of that family, endpoints from the
    # slice of that addressType), an IPv4-only and an IPv6-only Service.
    web = make_service("default", "web", "10.96.0.10", mutate=load_balancer("172.20.0.200"))
    dual_stack("fd00:10:96::a", "fd00:172:20::200")(web)
    legacy = make_service("default", "legacy", "10.96.0.20")
    modern = make_service("default", "modern", "fd00:10:96::14")
    return Scenario([web, legacy, modern], [
        make_slice("default", "web", _two_eps(), suffix="v4aaa"),
        make_slice("default", "web", _six_eps(), suffix="v6aaa", address_type="IPv6"),
        make_slice("default", "legacy", _two_eps()),
        make_slice("default", "modern", _six_eps(), address_type="IPv6"),
    ], node=DUAL_NODE, second=IPV6)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name: str) -> None:
    rulesets = SCENARIOS[name]().build_all()
    text = "".join(r.render() for r in rulesets)
    path = GOLDEN / f"{name}.nft"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with SVCNET_UPDATE_GOLDEN=1"
    expected = path.read_text()
    assert text == expected, f"{name}: rendering differs from {path} (SVCNET_UPDATE_GOLDEN=1)"
    for ruleset in rulesets:
        assert not ruleset.problems()
        assert not ruleset.warnings


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_full_sync_transaction_builds_the_same_table(name: str) -> None:
    rulesets = SCENARIOS[name]().build_all()
    nft = FakeNft()
    for ruleset in rulesets:
        nft.apply(plan_sync(None, ruleset).render())
    assert nft.dump() == "".join(r.render() for r in rulesets)


def test_every_golden_file_has_a_scenario() -> None:
    assert {p.stem for p in GOLDEN.glob("*.nft")} == set(SCENARIOS)
