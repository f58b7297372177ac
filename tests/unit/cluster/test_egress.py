"""`svcnet up --egress` as data (svcnet/cluster/egress.py) and the DNS settings `svcnet up`
derives from it (the nodes' resolv.conf, cluster DNS's upstreams)."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from svcnet.cluster import up as uplib
from svcnet.cluster.egress import EgressError, node_route_lines, plan_egress, ruleset
from svcnet.cluster.networks import DEFAULT, ClusterNetwork, plan_network
from svcnet.cluster.up import (
    UpOptions,
    dns_manifests,
    dns_upstreams,
    egress_line,
    node_resolv_conf,
    up,
)
from svcnet.dns.upstreams import Upstreams
from svcnet.util.resolvconf import ResolvConf

OTHER = ClusterNetwork(IPv4Network("172.20.7.0/24"), IPv4Network("10.247.0.0/16"))


def test_default_gateway_is_the_bridge() -> None:
    plan = plan_egress(OTHER, None)
    assert plan.gateway == "172.20.7.1"
    assert node_route_lines(plan) == ["route add default via 172.20.7.1 dev eth0"]


def test_ruleset_masquerades_only_what_leaves_the_cluster() -> None:
    text = ruleset(plan_egress(DEFAULT, "172.20.0.254"))
    assert text.startswith("table ip svcnet-egress {\n")
    assert ("ip saddr 10.244.0.0/16 ip daddr != { 10.244.0.0/16, 172.20.0.0/24 } "
            'oifname "eth0" masquerade') in text
    assert "type nat hook postrouting priority srcnat; policy accept;" in text


@pytest.mark.parametrize(("gateway", "why"), [
    ("example", "not an IP address"),
    ("2001:db8::1", "IPv4"),
    ("192.0.2.1", "host address of the node network"),
    ("172.20.0.0", "host address of the node network"),
    ("172.20.0.255", "host address of the node network"),
    ("172.20.0.11", "a node's own address"),
])
def test_gateway_refusals(gateway: str, why: str) -> None:
    with pytest.raises(EgressError, match=why):
        plan_egress(DEFAULT, gateway, ("172.20.0.11", "172.20.0.12"))


def test_node_resolv_conf_names_the_upstreams_with_the_hosts_search() -> None:
    host = ResolvConf(("127.0.0.53",), ("corp.example",), ("edns0", "trust-ad"))
    text = node_resolv_conf([("198.51.100.53", 53), ("198.51.100.54", 5353)], host)
    assert text.splitlines()[1:] == ["search corp.example", "nameserver 198.51.100.53",
                                     "options edns0 trust-ad"]
    # Without upstreams, no nameserver: Default pods fail at once rather than time out.
    assert "nameserver" not in node_resolv_conf([], host)


def test_dns_upstreams(monkeypatch: pytest.MonkeyPatch) -> None:
    notes: list[str] = []
    monkeypatch.setattr(uplib, "host_upstreams",
                        lambda: Upstreams((("192.0.2.53", 53),), ("skipped 127.0.0.53",)))
    assert dns_upstreams(UpOptions(), notes.append) == ()  # egress off: none
    assert dns_upstreams(UpOptions(upstreams=[("198.51.100.53", 53)]), notes.append) == (
        ("198.51.100.53", 53),)
    assert notes == []
    assert dns_upstreams(UpOptions(egress=True), notes.append) == (("192.0.2.53", 53),)
    assert notes == ["  ! skipped 127.0.0.53"]


def test_dns_pod_gets_the_upstreams_as_flags() -> None:
    pod = dns_manifests(Path("/k"), Path("/r"), [("198.51.100.53", 53), ("2001:db8::1", 5353)])[1]
    command = pod["spec"]["containers"][0]["command"]
    assert command[-4:] == ["--upstream", "198.51.100.53:53", "--upstream", "[2001:db8::1]:5353"]


def test_ipv6_cluster_dns_service_and_listener() -> None:
    network = plan_network(None, [], {}, family="ipv6")
    svc, pod = dns_manifests(Path("/k"), Path("/r"), (), network)
    assert svc["spec"]["clusterIP"] == "fd00:10:96::a"
    command = pod["spec"]["containers"][0]["command"]
    assert command[command.index("--listen") + 1] == "[::]:53"
    svc4, pod4 = dns_manifests(Path("/k"), Path("/r"))
    assert svc4["spec"]["clusterIPs"] == ["10.96.0.10"]
    command = pod4["spec"]["containers"][0]["command"]
    assert command[command.index("--listen") + 1] == "0.0.0.0:53"


async def test_egress_is_refused_on_ipv6_single_stack() -> None:
    with pytest.raises(uplib.UpError, match="IPv4 only"):
        await up(UpOptions(name="v6x", egress=True, ip_family="ipv6"), print)


def test_summary_line() -> None:
    assert egress_line(None, ()) == ("Egress: off (pods reach nothing outside the cluster); "
                                     "DNS upstreams none: other names get SERVFAIL")
    assert egress_line(plan_egress(DEFAULT, None), [("192.0.2.53", 53)]).startswith(
        "Egress: via 172.20.0.1, pod traffic masqueraded")
