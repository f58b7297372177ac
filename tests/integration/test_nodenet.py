"""The pod network's applier (svcnet/node/nodenet.py) on real kernels, both IP families.

Two node-like namespaces ``svcnet-<tag>-n1`` and ``-n2`` share a veth "LAN" with an IPv4 and an
IPv6 address each; each has a pod bridge stand-in ``svcnet0`` holding the gateway addresses
(``.1``, ``::1``) of its pod CIDRs (an IPv4 /24 and an IPv6 /64). Both agents' appliers sync from the same dual-stack
Nodes; then node 1's pod-side address reaches node 2's over each family, through a route of
the agent's (``routes``: via node 2's address of that family; ``vxlan``: over ``svcnet.vx``
and its IPv4 underlay). A second sync changes nothing; a VTEP address missing from the device
is added back; a Node gone takes its routes along.

Nothing touches the root namespace; the fixture deletes both namespaces even on failure.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any

import pytest

from svcnet.node.names import ClusterNames
from svcnet.node.nodenet import VTEP_MAC_ANNOTATION, NodeNetwork, diff, vtep_mac
from tests.conftest import require_binary
from tests.e2e.local_clusters import unique_name

pytestmark = pytest.mark.root


def _node(i: int) -> dict[str, Any]:
    mac = vtep_mac(IPv4Address(f"192.168.77.{i}"))
    return {"metadata": {"name": f"node-{i}", "annotations": {VTEP_MAC_ANNOTATION: mac}},
            "spec": {"podCIDR": f"10.244.{i}.0/24",
                     "podCIDRs": [f"10.244.{i}.0/24", f"fd00:10:244:{i}::/64"]},
            "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.77.{i}"},
                                     {"type": "InternalIP", "address": f"fd00:77::{i}"}]}}


def _ip(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def nodes() -> Iterator[list[str]]:
    require_binary("bridge")
    names = ClusterNames.for_cluster(unique_name("nn"))
    netns = [names.node_netns(1), names.node_netns(2)]
    try:
        for ns in netns:
            subprocess.run(["ip", "netns", "add", ns], check=True)
        _ip(netns[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            netns[1])
        for i, ns in enumerate(netns, 1):
            _ip(ns, "link", "set", "lo", "up")
            _ip(ns, "addr", "add", f"192.168.77.{i}/24", "dev", "eth0")
            _ip(ns, "addr", "add", f"fd00:77::{i}/64", "dev", "eth0", "nodad")
            _ip(ns, "link", "set", "eth0", "up")
            _ip(ns, "link", "add", "svcnet0", "type", "veth", "peer", "name", "p0")
            _ip(ns, "addr", "add", f"10.244.{i}.1/24", "dev", "svcnet0")
            _ip(ns, "addr", "add", f"fd00:10:244:{i}::1/64", "dev", "svcnet0", "nodad")
            _ip(ns, "link", "set", "svcnet0", "up")
            _ip(ns, "link", "set", "p0", "up")
        yield netns
    finally:
        for ns in netns:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def _ping(netns: str, source: str, target: str) -> bool:
    """Any answer of three (the first may wait for neighbour discovery on fresh links)."""
    argv = ["ip", "netns", "exec", netns, "ping", "-c3", "-i0.3", "-W2", "-I", source, target]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("mode", ["routes", "vxlan"])
def test_dual_stack_pods_reach_each_other_over_the_agents_routes(nodes: list[str],
                                                                 mode: str) -> None:
    everyone = [_node(1), _node(2)]
    appliers = [NodeNetwork(ns, mode, f"192.168.77.{i}") for i, ns in enumerate(nodes, 1)]
    own: list[list[IPv4Network | IPv6Network]] = [
        [IPv4Network(f"10.244.{i}.0/24"), IPv6Network(f"fd00:10:244:{i}::/64")] for i in (1, 2)]
    for i, applier in enumerate(appliers):
        desired = applier.sync_blocking(everyone, f"node-{i + 1}", own[i])
        assert not desired.skipped and len(desired.routes) == 2
        # What the kernel now holds reads back as desired: a second sync changes nothing.
        assert diff(desired, *applier._current()) == ([], [])
    assert _ping(nodes[0], "10.244.1.1", "10.244.2.1")
    assert _ping(nodes[0], "fd00:10:244:1::1", "fd00:10:244:2::1")
    gateway = "fd00:10:244:2:: dev svcnet.vx" if mode == "vxlan" else "fd00:77::2 dev eth0"
    assert f"fd00:10:244:2::/64 via {gateway}" in _ip(nodes[0], "-6", "route", "show",
                                                       "proto", "77")
    if mode == "vxlan":  # a device without its IPv6 VTEP address (an IPv4-only agent's) gains it
        _ip(nodes[0], "addr", "del", "fd00:10:244:1::/128", "dev", "svcnet.vx")
        appliers[0].sync_blocking(everyone, "node-1", own[0])
        assert "fd00:10:244:1::/128" in _ip(nodes[0], "-6", "addr", "show", "dev", "svcnet.vx")
    # Node 2 gone: node 1 drops its routes (and neighbours), both families.
    appliers[0].sync_blocking(everyone[:1], "node-1", own[0])
    routes, neighbours, _ = appliers[0]._current()
    assert routes == {} and neighbours == {}
    assert not _ping(nodes[0], "fd00:10:244:1::1", "fd00:10:244:2::1")
