"""Choosing a local cluster's node and pod networks (networks.py), and the plans built on them.

All pure or on temporary files: no root, no network namespace.
"""

from __future__ import annotations

import json
import threading
import time
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from svcnet.cluster.networks import (
    DEFAULT,
    NODE_NETWORKS,
    POD_NETWORKS,
    ClusterNetwork,
    InUse,
    NetworkError,
    machine_lock,
    machine_networks,
    parse_node_network,
    plan_network,
    read_network,
    recorded_networks,
)
from svcnet.cluster.state import cluster_dir
from svcnet.cluster.topology import host_batch, node_batch, plan_topology
from svcnet.node.announcer import uplink_addresses

# What `ip -4 route show table all` and `ip -4 -o addr show` print on a machine that runs the
# default cluster (tag b7) next to a LAN on eth0 and Docker's bridge.
ROUTES = """\
default via 192.168.1.1 dev eth0 proto dhcp src 192.168.1.20 metric 100
10.244.1.0/24 via 172.20.0.11 dev svcnet-b7
10.244.2.0/24 via 172.20.0.12 dev svcnet-b7
172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown
172.20.0.0/24 dev svcnet-b7 proto kernel scope link src 172.20.0.1
192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.20 metric 100
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
broadcast 172.20.0.255 dev svcnet-b7 table local proto kernel scope link src 172.20.0.1
unreachable default table 7
""".splitlines()
ADDRS = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 192.168.1.20/24 brd 192.168.1.255 scope global dynamic eth0\\       valid_lft 1s
5: svcnet-b7    inet 172.20.0.1/24 scope global svcnet-b7\\       valid_lft forever
""".splitlines()


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


def test_nothing_in_use_gives_the_defaults() -> None:
    assert plan_network(None, [], {}) == DEFAULT
    assert ClusterNetwork(net("172.20.0.0/24"), net("10.244.0.0/16")) == DEFAULT
    assert machine_networks([], []) == []


def test_a_running_default_cluster_pushes_the_next_one_to_the_next_networks() -> None:
    in_use = machine_networks(ROUTES, ADDRS)
    assert plan_network(None, in_use, {}) == ClusterNetwork(net("172.20.1.0/24"),
                                                            net("10.245.0.0/16"))


def test_machine_networks_reads_routes_of_every_type_and_addresses_as_subnets() -> None:
    found = {str(u.network) for u in machine_networks(ROUTES, ADDRS)}
    assert "0.0.0.0/0" not in found  # default routes overlap everything: no conflict
    assert {"10.244.1.0/24", "172.20.0.0/24", "127.0.0.0/8", "172.20.0.255/32",
            "192.168.1.0/24", "172.17.0.0/16"} <= found
    what = {u.what for u in machine_networks([], ADDRS)}
    assert what == {"the address 127.0.0.1/8 on lo", "the address 192.168.1.20/24 on eth0",
                    "the address 172.20.0.1/24 on svcnet-b7"}


def test_an_address_alone_takes_its_subnet() -> None:
    in_use = machine_networks([], ["7: br0    inet 172.20.0.77/23 scope global br0"])
    assert plan_network(None, in_use, {}).nodes == net("172.20.2.0/24")


def test_recorded_clusters_are_avoided_before_their_bridge_exists() -> None:
    others = {"a": ClusterNetwork(net("172.20.0.0/24"), net("10.244.0.0/16")),
              "b": ClusterNetwork(net("172.20.1.0/24"), net("10.246.0.0/16"))}
    assert plan_network(None, [], others) == ClusterNetwork(net("172.20.2.0/24"),
                                                            net("10.245.0.0/16"))


def test_a_requested_network_is_used_and_the_pod_network_avoids_it() -> None:
    got = plan_network(net("10.244.0.0/20"), [], {})
    assert got == ClusterNetwork(net("10.244.0.0/20"), net("10.245.0.0/16"))
    got = plan_network(net("192.168.50.0/24"), machine_networks(ROUTES, ADDRS), {})
    assert got == ClusterNetwork(net("192.168.50.0/24"), net("10.245.0.0/16"))


@pytest.mark.parametrize(("requested", "others", "message"), [
    ("172.20.0.0/24", {}, "--node-network 172.20.0.0/24 overlaps the route "
     "`172.20.0.0/24 dev svcnet-b7 proto kernel scope link src 172.20.0.1`"),
    ("192.168.0.0/16", {}, "--node-network 192.168.0.0/16 overlaps the route "
     "`192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.20 metric 100`"),
    ("172.29.0.0/24", {"mx": ClusterNetwork(net("172.29.0.0/16"), net("10.250.0.0/16"))},
     "--node-network 172.29.0.0/24 overlaps cluster 'mx''s node network 172.29.0.0/16"),
    ("10.250.0.0/24", {"mx": ClusterNetwork(net("172.29.0.0/16"), net("10.250.0.0/16"))},
     "--node-network 10.250.0.0/24 overlaps cluster 'mx''s pod network 10.250.0.0/16"),
])
def test_a_requested_network_in_use_is_refused_saying_by_what(
        requested: str, others: dict[str, ClusterNetwork], message: str) -> None:
    with pytest.raises(NetworkError) as e:
        plan_network(net(requested), machine_networks(ROUTES, ADDRS), others)
    assert str(e.value) == message


def test_running_out_of_candidates_says_what_to_do() -> None:
    pods_taken = [InUse(p, "x") for p in POD_NETWORKS]
    with pytest.raises(NetworkError, match=r"^no free pod network among 10\.244\.0\.0/16-"
                                           r"10\.255\.0\.0/16 .*`svcnet down`"):
        plan_network(None, pods_taken, {})
    with pytest.raises(NetworkError, match=r"^no free node network among 172\.20\.0\.0/24-"
                                           r"172\.20\.255\.0/24; give one with --node-network"):
        plan_network(None, [InUse(net("172.20.0.0/16"), "x")], {})
    # Twelve clusters fit; the candidates are in the documented order.
    assert [str(n) for n in NODE_NETWORKS[:3]] == ["172.20.0.0/24", "172.20.1.0/24",
                                                  "172.20.2.0/24"]
    assert len(POD_NETWORKS) == 12 and str(POD_NETWORKS[-1]) == "10.255.0.0/16"


@pytest.mark.parametrize(("text", "message"), [
    ("bogus", "--node-network bogus: not an IPv4 network in CIDR form (e.g. 172.20.5.0/24)"),
    ("fd00::/64", "--node-network fd00::/64: not an IPv4 network in CIDR form "
     "(e.g. 172.20.5.0/24)"),
    ("172.29.0.0", "--node-network 172.29.0.0: give the prefix length too "
     "(e.g. 172.29.0.0/24)"),
    ("172.29.0.1/24", "--node-network 172.29.0.1/24: host bits are set "
     "(the network is 172.29.0.0/24)"),
    ("172.29.0.0/25", "--node-network 172.29.0.0/25: must be a /24 or larger (a /25 has no "
     "room for nodes .11-.110 and the LoadBalancer pool .200-.250)"),
    ("8.8.8.0/24", "--node-network 8.8.8.0/24: must be inside a private range "
     "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"),
    ("127.0.0.0/24", "--node-network 127.0.0.0/24: must be inside a private range "
     "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"),
    ("10.100.0.0/24", "--node-network 10.100.0.0/24: overlaps the service CIDR 10.96.0.0/12"),
])
def test_node_network_validation_says_what_is_wrong_in_one_line(text: str,
                                                                message: str) -> None:
    with pytest.raises(NetworkError) as e:
        parse_node_network(text)
    assert str(e.value) == message and "\n" not in message


@pytest.mark.parametrize("text", ["172.29.0.0/24", "192.168.0.0/16", "10.200.0.0/22",
                                  " 172.20.3.0/24 "])
def test_valid_node_networks(text: str) -> None:
    assert parse_node_network(text) == net(text.strip())


def test_addresses_follow_the_networks() -> None:
    n = ClusterNetwork(net("192.168.0.0/16"), net("10.250.0.0/16"))
    assert (n.gateway, n.node_ip(1), n.node_ip(100)) == ("192.168.0.1", "192.168.0.11",
                                                         "192.168.0.110")
    assert (n.pod_cidr(1), n.pod_cidr(100)) == ("10.250.1.0/24", "10.250.100.0/24")
    assert n.lb_pool == "192.168.0.200-192.168.0.250"
    assert DEFAULT.lb_pool == "172.20.0.200-172.20.0.250"
    assert ClusterNetwork.from_json(n.to_json("mx1")) == n


def test_the_topology_uses_the_cluster_network() -> None:
    n = ClusterNetwork(net("172.20.3.0/24"), net("10.247.0.0/16"))
    topo = plan_topology("mx1", 2, n, "/root/.svcnet/mx1")
    bridge = topo.bridge
    assert [(p.ip, p.pod_cidr) for p in topo.nodes] == [("172.20.3.11", "10.247.1.0/24"),
                                                        ("172.20.3.12", "10.247.2.0/24")]
    assert topo.api_server == "172.20.3.1:6443"
    lines = host_batch(topo)
    assert lines[:3] == [f"link add {bridge} type bridge",
                         f'link set {bridge} alias "svcnet:/root/.svcnet/mx1"',
                         f"addr add 172.20.3.1/24 dev {bridge}"]
    assert lines[-2:] == [f"route add 10.247.1.0/24 via 172.20.3.11 dev {bridge}",
                          f"route add 10.247.2.0/24 via 172.20.3.12 dev {bridge}"]
    # Routes to the other nodes' pods are the agents' (svcnet/node/nodenet.py, routes mode).
    assert node_batch(topo, topo.nodes[1]) == [
        "link set lo up", "addr add 172.20.3.12/24 dev eth0", "link set eth0 up"]
    wide = plan_topology("mx1", 1, ClusterNetwork(net("10.8.0.0/16"), net("10.244.0.0/16")))
    assert "addr add 10.8.0.11/16 dev eth0" in node_batch(wide, wide.nodes[0])
    assert plan_topology("mx1", 1).network == DEFAULT
    with pytest.raises(ValueError, match="cannot be a link alias"):
        host_batch(plan_topology("mx1", 1, DEFAULT, '/tmp/a"b'))


def test_recorded_networks_reads_the_other_clusters_of_the_home(tmp_path: Path) -> None:
    a = ClusterNetwork(net("172.20.0.0/24"), net("10.244.0.0/16"))
    b = ClusterNetwork(net("172.20.1.0/24"), net("10.245.0.0/16"))
    for name, n in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "network.json").write_text(n.to_json(name))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "network.json").write_text("{")
    (tmp_path / "none").mkdir()
    assert recorded_networks(tmp_path, exclude="b") == {"a": a}
    assert recorded_networks(tmp_path / "missing", exclude="b") == {}
    assert read_network(tmp_path / "b" / "network.json") == b
    assert read_network(tmp_path / "broken" / "network.json") is None


def test_machine_lock_is_exclusive(tmp_path: Path) -> None:
    lock = tmp_path / "run" / "svcnet-up.lock"
    order: list[str] = []

    def second() -> None:
        with machine_lock(lock):
            order.append("second")

    with machine_lock(lock):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


@pytest.mark.parametrize("name", ["", "..", "a/b", "-x", "x-", "UP", "a b", "x" * 41])
def test_cluster_names_that_cannot_be_a_directory_or_an_alias_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must be 1-40 characters of a-z, 0-9 and '-'"):
        cluster_dir(name)


def test_cluster_names_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SVCNET_HOME", str(tmp_path))
    assert [cluster_dir(n) for n in ("svcnet", "e7", "mx-1a2b")] == [
        tmp_path / "svcnet", tmp_path / "e7", tmp_path / "mx-1a2b"]


def test_the_announcer_learns_its_subnet_from_the_uplink() -> None:
    lines = ["2: eth0    inet 10.8.0.11/16 scope global eth0\\  valid_lft forever",
             "2: eth0    inet 10.8.0.200/32 scope global eth0\\  valid_lft forever"]
    assert uplink_addresses(lines, "10.8.0.11") == ({"10.8.0.200"}, net("10.8.0.0/16"))
    assert uplink_addresses(lines[1:], "10.8.0.11") == ({"10.8.0.200"}, None)


def test_down_leaves_the_hosts_own_namespace_alone(tmp_path: Path) -> None:
    """`svcnet join` names the machine's own namespace svcnet-<tag>-n<i>: `svcnet down` of a
    cluster whose names match must not kill every process of the host in it."""
    from svcnet.cluster.down import is_host_netns

    (tmp_path / "svcnet-b7-p1").write_text("")  # any other namespace's name
    (tmp_path / "svcnet-b7-n1").symlink_to("/proc/self/ns/net")  # as ip netns attach binds it
    assert is_host_netns("svcnet-b7-n1", tmp_path)
    assert not is_host_netns("svcnet-b7-p1", tmp_path)
    assert not is_host_netns("svcnet-b7-n2", tmp_path)


# What `ip -6 route show table all` and `ip -6 -o addr show` add on a machine whose LAN has
# a ULA /64 (fd00::/64) and where a dual-stack cluster already holds the first candidates.
ROUTES6 = """\
fd00::/64 dev eth0 proto kernel metric 256 pref medium
fd00:172:20::/64 dev svcnet-c3 proto kernel metric 256 pref medium
fd00:10:244:1::/64 via fd00:172:20::11 dev svcnet-c3 metric 1024 pref medium
fe80::/64 dev eth0 proto kernel metric 256 pref medium
default via fd00::1 dev eth0 metric 1024 pref medium
local fd00::2 dev eth0 table local proto kernel metric 0 pref medium
multicast ff00::/8 dev eth0 table local proto kernel metric 256 pref medium
""".splitlines()
ADDRS6 = """\
4: eth0    inet6 fd00::2/64 scope global nodad \\       valid_lft forever preferred_lft forever
4: eth0    inet6 fe80::fc:ff:fe00:1/64 scope link \\       valid_lft forever preferred_lft forever
""".splitlines()


def test_dual_stack_picks_free_ipv6_networks_beside_the_ipv4_ones() -> None:
    plain = plan_network(None, [], {}, family="dual")
    assert (str(plain.nodes6), str(plain.pods6)) == ("fd00:172:20::/64", "fd00:10:244::/56")
    in_use = machine_networks([*ROUTES, *ROUTES6], [*ADDRS, *ADDRS6])
    found = {str(u.network) for u in in_use}
    assert "::/0" not in found and "fd00::/64" in found
    n = plan_network(None, in_use, {}, family="dual")
    # IPv4 as before; IPv6 skips what the other cluster routes and the LAN's fd00::/64.
    assert (str(n.nodes), str(n.pods)) == ("172.20.1.0/24", "10.245.0.0/16")
    assert (str(n.nodes6), str(n.pods6)) == ("fd00:172:20:1::/64", "fd00:10:244:100::/56")
    # A recorded dual-stack cluster's IPv6 networks are taken too.
    assert plan_network(None, [], {"a": plain}, family="dual").nodes6 == n.nodes6
    assert not plan_network(None, [], {}).dual


def test_dual_stack_addresses_and_topology() -> None:
    n = plan_network(None, [], {}, family="dual")
    assert (n.gateway6, n.node_ip6(1), n.node_ip6(12)) == (
        "fd00:172:20::1", "fd00:172:20::11", "fd00:172:20::22")
    assert (n.pod_cidr6(1), n.pod_cidr6(2)) == ("fd00:10:244:1::/64", "fd00:10:244:2::/64")
    assert n.lb_pool == "172.20.0.200-172.20.0.250,fd00:172:20::200-fd00:172:20::250"
    assert n.cluster_cidrs == "10.244.0.0/16,fd00:10:244::/56"
    assert n.service_cidrs == "10.96.0.0/12,fd00:10:96::/112"
    assert ClusterNetwork.from_json(n.to_json("dn")) == n
    assert (DEFAULT.node_ip6(1), DEFAULT.pod_cidr6(1), DEFAULT.cluster_cidrs) == (
        "", "", "10.244.0.0/16")
    topo = plan_topology("dn", 2, n, "/root/.svcnet/dn")
    bridge = topo.bridge
    assert (topo.nodes[0].node_ips, topo.nodes[0].pod_cidrs) == (
        "172.20.0.11,fd00:172:20::11", "10.244.1.0/24,fd00:10:244:1::/64")
    lines = host_batch(topo)
    assert f"addr add fd00:172:20::1/64 dev {bridge} nodad" in lines
    assert lines[-1] == f"route add fd00:10:244:2::/64 via fd00:172:20::12 dev {bridge}"
    assert node_batch(topo, topo.nodes[1]) == [
        "link set lo up", "addr add 172.20.0.12/24 dev eth0",
        # No route to node 1's pods, of either family: node 2's agent keeps them from the
        # Nodes (svcnet/node/nodenet.py).
        "addr add fd00:172:20::12/64 dev eth0 nodad", "link set eth0 up"]


def test_ipv6_single_stack_shows_only_the_ipv6_networks() -> None:
    n = plan_network(None, [], {}, family="ipv6")
    # The same networks as dual stack (the IPv4 ones as plumbing) ...
    assert (str(n.nodes), str(n.pods), str(n.nodes6), str(n.pods6)) == (
        "172.20.0.0/24", "10.244.0.0/16", "fd00:172:20::/64", "fd00:10:244::/56")
    # ... but what the control plane is given is IPv6 only.
    assert n.service_cidrs == "fd00:10:96::/112"
    assert n.cluster_cidrs == "fd00:10:244::/56"
    assert n.lb_pool == "fd00:172:20::200-fd00:172:20::250"
    assert (n.api_address, n.dns_ip) == ("fd00:172:20::1", "fd00:10:96::a")
    assert (DEFAULT.api_address, DEFAULT.dns_ip) == ("172.20.0.1", "10.96.0.10")
    assert ClusterNetwork.from_json(n.to_json("v6")) == n
    assert "internal 10.244.0.0/16" in n.describe()
    # A record written before the family was recorded reads as what it was.
    dual = plan_network(None, [], {}, family="dual")
    old = json.loads(dual.to_json("d"))
    del old["ipFamily"]
    assert ClusterNetwork.from_json(json.dumps(old)).family == "dual"
    with pytest.raises(ValueError, match="ipv7"):
        plan_network(None, [], {}, family="ipv7")


def test_ipv6_single_stack_topology() -> None:
    topo = plan_topology("v6", 2, plan_network(None, [], {}, family="ipv6"), "/root/.svcnet/v6")
    assert topo.api_server == "[fd00:172:20::1]:6443"
    node = topo.nodes[1]
    # The agent gets both addresses and pod CIDRs (the IPv4 ones for plumbing) ...
    assert (node.node_ips, node.pod_cidrs, node.family) == (
        "172.20.0.12,fd00:172:20::12", "10.244.2.0/24,fd00:10:244:2::/64", "ipv6")
    # ... and its Node shows the IPv6 address only: there NodePorts answer.
    assert node.api_ips == ["fd00:172:20::12"]
    assert plan_topology("d", 1, plan_network(None, [], {}, family="dual")).nodes[0].api_ips == [
        "172.20.0.11", "fd00:172:20::11"]
    assert host_batch(topo)[-1] == (
        f"route add fd00:10:244:2::/64 via fd00:172:20::12 dev {topo.bridge}")
