"""The pod network across machines as a pure plan (svcnet/node/nodenet.py), and the pods' MTU
on their veths."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import pytest

from svcnet.node.cni.config import BridgeConf, conflist, netconf_from_conflist
from svcnet.node.netns import VethSpec, plan_veth
from svcnet.node.nodenet import (
    ROUTE_PROTO,
    VTEP_MAC_ANNOTATION,
    VXLAN_DEVICE,
    Desired,
    diff,
    local_networks,
    peers_from_nodes,
    plan,
    plan_vtep_addresses,
    plan_vxlan_device,
    pod_mtu,
    vtep_mac,
)

LAN = [IPv4Network("192.168.50.0/24")]
OWN = [IPv4Network("10.244.1.0/24")]


def node(name: str, ip: str | None, cidr: str | None, mac: str | None = None) -> dict[str, Any]:
    """A Node; ``ip`` and ``cidr`` may be comma-separated pairs (dual stack, API order)."""
    n: dict[str, Any] = {"metadata": {"name": name}, "spec": {}, "status": {}}
    if ip:
        n["status"]["addresses"] = [{"type": "Hostname", "address": name},
                                    *({"type": "InternalIP", "address": a}
                                      for a in ip.split(","))]
    if cidr:
        n["spec"]["podCIDR"] = cidr.split(",")[0]
        if "," in cidr:
            n["spec"]["podCIDRs"] = cidr.split(",")
    if mac:
        n["metadata"]["annotations"] = {VTEP_MAC_ANNOTATION: mac}
    return n


NODES = [node("m1", "192.168.50.11", "10.244.1.0/24", "0e:58:c0:a8:32:0b"),
         node("m2", "192.168.50.12", "10.244.2.0/24", "0e:58:c0:a8:32:0c"),
         node("m3", "192.168.60.13", "10.244.3.0/24", "0e:58:c0:a8:3c:0d"),
         node("m4", "192.168.50.14", None),  # no pod CIDR yet
         node("m5", None, "10.244.5.0/24")]  # no address yet


def test_peers_are_the_other_nodes_with_address_and_cidr() -> None:
    peers = peers_from_nodes(NODES, "m1")
    assert [p.name for p in peers] == ["m2", "m3"]
    assert peers[0].pod_cidrs == (IPv4Network("10.244.2.0/24"),)
    assert peers[0].node_ip(4) == IPv4Address("192.168.50.12") and peers[0].node_ip(6) is None


def test_routes_mode_routes_via_neighbours_on_the_lan_only() -> None:
    desired = plan("routes", peers_from_nodes(NODES, "m1"), LAN, OWN)
    assert desired.routes == {IPv4Network("10.244.2.0/24"):
                              f"via 192.168.50.12 proto {ROUTE_PROTO}"}
    assert not desired.fdb and not desired.neighbours
    assert len(desired.skipped) == 1 and desired.skipped[0].startswith("m3: 192.168.60.13")


def test_vxlan_mode_reaches_every_node_with_a_vtep() -> None:
    nodes = [*NODES, node("m6", "192.168.70.16", "10.244.6.0/24")]  # no VTEP MAC published
    desired = plan("vxlan", peers_from_nodes(nodes, "m1"), LAN, OWN)
    assert desired.routes == {
        IPv4Network("10.244.2.0/24"):
            f"via 10.244.2.0 dev {VXLAN_DEVICE} onlink proto {ROUTE_PROTO}",
        IPv4Network("10.244.3.0/24"):
            f"via 10.244.3.0 dev {VXLAN_DEVICE} onlink proto {ROUTE_PROTO}"}
    assert desired.neighbours == {IPv4Address("10.244.2.0"): "0e:58:c0:a8:32:0c",
                                  IPv4Address("10.244.3.0"): "0e:58:c0:a8:3c:0d"}
    assert desired.fdb == {"0e:58:c0:a8:32:0c": IPv4Address("192.168.50.12"),
                           "0e:58:c0:a8:3c:0d": IPv4Address("192.168.60.13")}
    assert [s.split(":")[0] for s in desired.skipped] == ["m6"]


def test_a_peer_overlapping_our_pod_cidr_gets_no_route() -> None:
    nodes = [node("x", "192.168.50.20", "10.244.1.0/24", "0e:00:00:00:00:01")]
    desired = plan("vxlan", peers_from_nodes(nodes, "m1"), LAN, OWN)
    assert not desired.routes and "overlaps" in desired.skipped[0]
    with pytest.raises(ValueError):
        plan("bgp", peers_from_nodes(NODES, "m1"), LAN)


def test_diff_adds_changes_and_removes_only_what_differs() -> None:
    desired = plan("vxlan", peers_from_nodes(NODES, "m1"), LAN, OWN)
    assert diff(desired, desired.routes, desired.neighbours, desired.fdb) == ([], [])
    ip_lines, bridge_lines = diff(desired, {}, {}, {})
    assert ip_lines == [
        f"neigh replace 10.244.2.0 lladdr 0e:58:c0:a8:32:0c dev {VXLAN_DEVICE} nud permanent",
        f"neigh replace 10.244.3.0 lladdr 0e:58:c0:a8:3c:0d dev {VXLAN_DEVICE} nud permanent",
        f"route replace 10.244.2.0/24 via 10.244.2.0 dev {VXLAN_DEVICE} onlink proto 77",
        f"route replace 10.244.3.0/24 via 10.244.3.0 dev {VXLAN_DEVICE} onlink proto 77"]
    assert bridge_lines == [
        f"fdb append 0e:58:c0:a8:32:0c dev {VXLAN_DEVICE} dst 192.168.50.12 self permanent",
        f"fdb append 0e:58:c0:a8:3c:0d dev {VXLAN_DEVICE} dst 192.168.60.13 self permanent"]
    # A node gone, another moved to a new address.
    gone = Desired({}, {}, {"0e:58:c0:a8:32:0c": IPv4Address("192.168.50.99")})
    ip_lines, bridge_lines = diff(gone, desired.routes, desired.neighbours, desired.fdb)
    assert ip_lines == ["route del 10.244.2.0/24 proto 77", "route del 10.244.3.0/24 proto 77",
                        f"neigh del 10.244.2.0 dev {VXLAN_DEVICE}",
                        f"neigh del 10.244.3.0 dev {VXLAN_DEVICE}"]
    assert bridge_lines == [
        f"fdb del 0e:58:c0:a8:32:0c dev {VXLAN_DEVICE} dst 192.168.50.12",
        f"fdb del 0e:58:c0:a8:3c:0d dev {VXLAN_DEVICE} dst 192.168.60.13",
        f"fdb append 0e:58:c0:a8:32:0c dev {VXLAN_DEVICE} dst 192.168.50.99 self permanent"]


def test_vxlan_device_and_mtu() -> None:
    ip = IPv4Address("192.168.50.11")
    assert vtep_mac(ip) == "0e:58:c0:a8:32:0b"
    assert plan_vxlan_device(ip, OWN, 1450) == [
        f"link add {VXLAN_DEVICE} type vxlan id 1 local 192.168.50.11 dstport 8472 nolearning",
        f"link set {VXLAN_DEVICE} address 0e:58:c0:a8:32:0b mtu 1450",
        f"addr add 10.244.1.0/32 dev {VXLAN_DEVICE}",
        f"link set {VXLAN_DEVICE} up"]
    assert pod_mtu(1500, "vxlan") == 1450
    assert pod_mtu(1500, "routes") is None


def test_pod_veths_take_the_conflists_mtu(tmp_path: Any) -> None:
    text = conflist("svcnet", "10.244.1.0/24", None, "svcnet0", tmp_path, None, mtu=1450)
    conf = netconf_from_conflist(text)
    assert isinstance(conf, BridgeConf) and conf.mtu == 1450
    spec = VethSpec("svcnet-t1-n1", "vethabc", "svcnet-t1-pabc", "eth0",
                    IPv4Interface("10.244.1.5/24"), mtu=conf.mtu)
    host, _ = plan_veth(spec)
    assert host.commands[0] == ("link add vethabc mtu 1450 type veth peer name eth0 mtu 1450 "
                                "netns svcnet-t1-pabc")
    assert "mtu" not in plan_veth(VethSpec("n", "v", "p", "eth0",
                                           IPv4Interface("10.0.0.2/24")))[0].commands[0]
    with pytest.raises(Exception, match="mtu"):
        conflist("svcnet", "10.244.1.0/24", None, "svcnet0", tmp_path, None, mtu=20)


def test_heartbeats_change_no_peer_view() -> None:
    from svcnet.node.nodenet import peer_view

    before = node("m2", "192.168.50.12", "10.244.2.0/24", "0e:58:c0:a8:32:0c")
    beat = {**before, "status": {**before["status"], "conditions": [{"type": "Ready"}]}}
    assert peer_view(before) == peer_view(beat)
    moved = node("m2", "192.168.50.99", "10.244.2.0/24", "0e:58:c0:a8:32:0c")
    assert peer_view(before) != peer_view(moved)
    assert peer_view(before) != peer_view(node("m2", "192.168.50.12", "10.244.2.0/24"))
    # A second family's pod CIDR or address is a change too.
    assert peer_view(before) != peer_view(node("m2", "192.168.50.12",
                                               "10.244.2.0/24,fd00:10:244:2::/64",
                                               "0e:58:c0:a8:32:0c"))


# A dual-stack node network as `svcnet up --ip-family dual` builds it: each node's InternalIPs
# and pod CIDRs are an IPv4,IPv6 pair.
LAN46: list[IPv4Network | IPv6Network] = [IPv4Network("172.20.0.0/24"),
                                           IPv6Network("fd00:172:20::/64")]
OWN46: list[IPv4Network | IPv6Network] = [IPv4Network("10.244.1.0/24"),
                                          IPv6Network("fd00:10:244:1::/64")]
DUAL = [node("node-1", "172.20.0.11,fd00:172:20::11", "10.244.1.0/24,fd00:10:244:1::/64",
             "0e:58:ac:14:00:0b"),
        node("node-2", "172.20.0.12,fd00:172:20::12", "10.244.2.0/24,fd00:10:244:2::/64",
             "0e:58:ac:14:00:0c"),
        # An IPv6 address off this node's IPv6 subnet: its IPv6 pods are out of reach.
        node("node-3", "172.20.0.13,fd00:99::13", "10.244.3.0/24,fd00:10:244:3::/64",
             "0e:58:ac:14:00:0d")]


def test_peers_read_both_families() -> None:
    p = peers_from_nodes(DUAL, "node-1")[0]
    assert p.node_ips == (IPv4Address("172.20.0.12"), IPv6Address("fd00:172:20::12"))
    assert p.pod_cidrs == (IPv4Network("10.244.2.0/24"), IPv6Network("fd00:10:244:2::/64"))
    # podCIDR alone (a Node written without podCIDRs) still counts.
    assert peers_from_nodes([node("x", "fd00:172:20::99", "fd00:10:244:9::/64")], "")[
        0].pod_cidrs == (IPv6Network("fd00:10:244:9::/64"),)


def test_routes_mode_dual_stack_routes_each_family_via_that_familys_address() -> None:
    desired = plan("routes", peers_from_nodes(DUAL, "node-1"), LAN46, OWN46)
    assert desired.routes == {
        IPv4Network("10.244.2.0/24"): "via 172.20.0.12 proto 77",
        IPv6Network("fd00:10:244:2::/64"): "via fd00:172:20::12 proto 77",
        IPv4Network("10.244.3.0/24"): "via 172.20.0.13 proto 77"}
    assert desired.skipped == ("node-3: fd00:99::13 is on none of this node's subnets "
                               "(use --pod-network-mode vxlan)",)
    # An IPv4-only uplink: the IPv6 pod CIDRs have no gateway on any subnet.
    v4_only = plan("routes", peers_from_nodes(DUAL, "node-1"), LAN46[:1], OWN46)
    assert set(v4_only.routes) == {IPv4Network("10.244.2.0/24"), IPv4Network("10.244.3.0/24")}
    # A peer without an IPv6 address gets no IPv6 route, and says why.
    half = node("node-4", "172.20.0.14", "10.244.4.0/24,fd00:10:244:4::/64")
    desired = plan("routes", peers_from_nodes([half], "node-1"), LAN46, OWN46)
    assert list(desired.routes) == [IPv4Network("10.244.4.0/24")]
    assert desired.skipped == ("node-4: no IPv6 InternalIP for its pod CIDR "
                               "fd00:10:244:4::/64",)


def test_routes_mode_ipv6_only_nodes() -> None:
    """`--ip-family ipv6`: the Nodes show only their IPv6 address and pod /64."""
    nodes = [node(f"node-{i}", f"fd00:172:20::1{i}", f"fd00:10:244:{i}::/64") for i in (1, 2, 3)]
    desired = plan("routes", peers_from_nodes(nodes, "node-1"), LAN46, OWN46)
    assert desired.routes == {
        IPv6Network("fd00:10:244:2::/64"): "via fd00:172:20::12 proto 77",
        IPv6Network("fd00:10:244:3::/64"): "via fd00:172:20::13 proto 77"}
    assert not desired.skipped
    ip_lines, bridge_lines = diff(desired, {}, {}, {})
    assert ip_lines == ["route replace fd00:10:244:2::/64 via fd00:172:20::12 proto 77",
                        "route replace fd00:10:244:3::/64 via fd00:172:20::13 proto 77"]
    assert not bridge_lines
    # A peer overlapping our IPv6 pod CIDR is left out (the IPv4 one does not matter).
    clash = node("x", "fd00:172:20::20", "fd00:10:244:1::/64")
    desired = plan("routes", peers_from_nodes([clash], "node-1"), LAN46, OWN46)
    assert not desired.routes and desired.skipped == (
        "x: pod CIDR fd00:10:244:1::/64 overlaps this node's",)


def test_vxlan_mode_dual_stack_carries_ipv6_over_the_same_device() -> None:
    desired = plan("vxlan", peers_from_nodes(DUAL, "node-1"), LAN46, OWN46)
    vx = f"dev {VXLAN_DEVICE} onlink proto 77"
    assert desired.routes == {
        IPv4Network("10.244.2.0/24"): f"via 10.244.2.0 {vx}",
        IPv6Network("fd00:10:244:2::/64"): f"via fd00:10:244:2:: {vx}",
        IPv4Network("10.244.3.0/24"): f"via 10.244.3.0 {vx}",
        IPv6Network("fd00:10:244:3::/64"): f"via fd00:10:244:3:: {vx}"}
    # One VTEP MAC per node, reached over its IPv4 address; a neighbour entry per family.
    assert desired.fdb == {"0e:58:ac:14:00:0c": IPv4Address("172.20.0.12"),
                           "0e:58:ac:14:00:0d": IPv4Address("172.20.0.13")}
    assert desired.neighbours == {IPv4Address("10.244.2.0"): "0e:58:ac:14:00:0c",
                                  IPv6Address("fd00:10:244:2::"): "0e:58:ac:14:00:0c",
                                  IPv4Address("10.244.3.0"): "0e:58:ac:14:00:0d",
                                  IPv6Address("fd00:10:244:3::"): "0e:58:ac:14:00:0d"}
    assert not desired.skipped
    ip_lines, _ = diff(desired, {}, {}, {})
    assert ip_lines[:4] == [  # IPv4 first, then IPv6
        f"neigh replace 10.244.2.0 lladdr 0e:58:ac:14:00:0c dev {VXLAN_DEVICE} nud permanent",
        f"neigh replace 10.244.3.0 lladdr 0e:58:ac:14:00:0d dev {VXLAN_DEVICE} nud permanent",
        f"neigh replace fd00:10:244:2:: lladdr 0e:58:ac:14:00:0c dev {VXLAN_DEVICE} "
        f"nud permanent",
        f"neigh replace fd00:10:244:3:: lladdr 0e:58:ac:14:00:0d dev {VXLAN_DEVICE} "
        f"nud permanent"]
    assert ip_lines[-1] == f"route replace fd00:10:244:3::/64 via fd00:10:244:3:: {vx}"
    # Removing a node removes both families' routes and neighbours.
    gone = plan("vxlan", peers_from_nodes(DUAL[:2], "node-1"), LAN46, OWN46)
    ip_lines, bridge_lines = diff(gone, desired.routes, desired.neighbours, desired.fdb)
    assert ip_lines == ["route del 10.244.3.0/24 proto 77",
                        "route del fd00:10:244:3::/64 proto 77",
                        f"neigh del 10.244.3.0 dev {VXLAN_DEVICE}",
                        f"neigh del fd00:10:244:3:: dev {VXLAN_DEVICE}"]
    assert bridge_lines == [f"fdb del 0e:58:ac:14:00:0d dev {VXLAN_DEVICE} dst 172.20.0.13"]


def test_vxlan_mode_needs_an_ipv4_underlay() -> None:
    """An IPv6 single-stack Node shows no IPv4 address: nothing to send its frames to."""
    v6 = node("node-2", "fd00:172:20::12", "fd00:10:244:2::/64", "0e:58:ac:14:00:0c")
    desired = plan("vxlan", peers_from_nodes([v6], "node-1"), LAN46, OWN46)
    assert not desired.routes and not desired.fdb and not desired.neighbours
    assert desired.skipped == ("node-2: no IPv4 InternalIP (the VXLAN underlay is IPv4)",)


def test_the_vxlan_device_holds_a_vtep_address_per_family() -> None:
    assert plan_vxlan_device(IPv4Address("172.20.0.11"), OWN46[::-1], 1450)[2:] == [
        f"addr add 10.244.1.0/32 dev {VXLAN_DEVICE}",
        f"addr add fd00:10:244:1::/128 dev {VXLAN_DEVICE} nodad",
        f"link set {VXLAN_DEVICE} up"]


def test_an_existing_device_gets_only_the_missing_vtep_addresses() -> None:
    """A device an IPv4-only agent made gains the IPv6 VTEP address; nothing is added twice."""
    assert plan_vtep_addresses(OWN46, {IPv4Address("10.244.1.0")}) == [
        f"addr add fd00:10:244:1::/128 dev {VXLAN_DEVICE} nodad"]
    assert plan_vtep_addresses(OWN46, {IPv4Address("10.244.1.0"),
                                       IPv6Address("fd00:10:244:1::")}) == []


def test_local_networks_of_both_families() -> None:
    """``ip -j addr show`` of a dual-stack node: loopback, link-local and the VXLAN device's
    VTEP addresses are no subnets to route via."""
    def addr(family: str, local: str, prefixlen: int) -> dict[str, Any]:
        return {"family": family, "local": local, "prefixlen": prefixlen}

    links = [{"ifname": "lo", "addr_info": [addr("inet", "127.0.0.1", 8),
                                            addr("inet6", "::1", 128)]},
             {"ifname": "eth0", "addr_info": [addr("inet", "172.20.0.11", 24),
                                              addr("inet6", "fd00:172:20::11", 64),
                                              addr("inet6", "fe80::1", 64)]},
             {"ifname": VXLAN_DEVICE, "addr_info": [addr("inet", "10.244.1.0", 32),
                                                    addr("inet6", "fd00:10:244:1::", 128)]}]
    assert local_networks(links) == [IPv4Network("172.20.0.0/24"),
                                     IPv6Network("fd00:172:20::/64")]
