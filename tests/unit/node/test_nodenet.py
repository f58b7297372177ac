"""The pod network across machines as a pure plan (svcnet/node/nodenet.py), and the pods' MTU
on their veths."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
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
    peers_from_nodes,
    plan,
    plan_vxlan_device,
    pod_mtu,
    vtep_mac,
)

LAN = [IPv4Network("192.168.50.0/24")]


def node(name: str, ip: str | None, cidr: str | None, mac: str | None = None) -> dict[str, Any]:
    n: dict[str, Any] = {"metadata": {"name": name}, "spec": {}, "status": {}}
    if ip:
        n["status"]["addresses"] = [{"type": "Hostname", "address": name},
                                    {"type": "InternalIP", "address": ip}]
    if cidr:
        n["spec"]["podCIDR"] = cidr
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
    assert peers[0].vtep_ip == IPv4Address("10.244.2.0")


def test_routes_mode_routes_via_neighbours_on_the_lan_only() -> None:
    desired = plan("routes", peers_from_nodes(NODES, "m1"), LAN, IPv4Network("10.244.1.0/24"))
    assert desired.routes == {IPv4Network("10.244.2.0/24"):
                              f"via 192.168.50.12 proto {ROUTE_PROTO}"}
    assert not desired.fdb and not desired.neighbours
    assert len(desired.skipped) == 1 and desired.skipped[0].startswith("m3: 192.168.60.13")


def test_vxlan_mode_reaches_every_node_with_a_vtep() -> None:
    nodes = [*NODES, node("m6", "192.168.70.16", "10.244.6.0/24")]  # no VTEP MAC published
    desired = plan("vxlan", peers_from_nodes(nodes, "m1"), LAN, IPv4Network("10.244.1.0/24"))
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
    desired = plan("vxlan", peers_from_nodes(nodes, "m1"), LAN, IPv4Network("10.244.1.0/24"))
    assert not desired.routes and "overlaps" in desired.skipped[0]
    with pytest.raises(ValueError):
        plan("bgp", peers_from_nodes(NODES, "m1"), LAN)


def test_diff_adds_changes_and_removes_only_what_differs() -> None:
    desired = plan("vxlan", peers_from_nodes(NODES, "m1"), LAN, IPv4Network("10.244.1.0/24"))
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
    assert plan_vxlan_device(ip, IPv4Network("10.244.1.0/24"), 1450) == [
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
