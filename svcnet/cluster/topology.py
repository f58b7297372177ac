"""The local cluster's network, planned as data (DESIGN §3), then applied by ``ip -batch``.

::

    host (root netns)                      node i netns  svcnet-<tag>-n<i>
    ┌──────────────────────────┐           ┌───────────────────────────────────────┐
    │ bridge svcnet-<tag>      │  veth     │ eth0 172.20.0.(10+i)/24               │
    │   172.20.0.1/24  ────────┼───────────┤ svcnet0 (pod bridge) 10.244.i.1/24    │
    │ routes 10.244.i.0/24     │           │ routes 10.244.j.0/24 via 172.20.0.1xj │
    │   via 172.20.0.(10+i)    │           │ ip_forward=1, table ip svcnet (proxy) │
    └──────────────────────────┘           └───────────────────────────────────────┘

The host gets exactly one bridge with the node network's first address and one route per node's
pod CIDR (traffic to our own namespaces): nothing else in the root namespace, and no namespace
gets a default route, so no packet of the cluster can leave the machine. Node ``i`` reaches node
``j``'s pods through node ``j``'s address on the node network. The service CIDR is routed only
inside nodes (by their nftables rules).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from svcnet.node.names import ClusterNames

NODE_NETWORK = ipaddress.IPv4Network("172.20.0.0/24")
POD_NETWORK = ipaddress.IPv4Network("10.244.0.0/16")
SERVICE_CIDR = "10.96.0.0/12"
DNS_IP = "10.96.0.10"
LB_POOL = "172.20.0.200-172.20.0.250"
API_PORT = 6443


@dataclass(frozen=True, slots=True)
class NodePlan:
    index: int
    name: str
    netns: str
    uplink: str
    ip: str
    pod_cidr: str


@dataclass(frozen=True, slots=True)
class Topology:
    cluster: str
    names: ClusterNames
    bridge: str
    gateway: str
    nodes: tuple[NodePlan, ...]

    @property
    def api_server(self) -> str:
        return f"{self.gateway}:{API_PORT}"


def plan_topology(cluster: str, node_count: int) -> Topology:
    if not 1 <= node_count <= 100:
        raise ValueError("--nodes must be between 1 and 100")
    names = ClusterNames.for_cluster(cluster)
    nodes = tuple(
        NodePlan(i, f"node-{i}", names.node_netns(i), names.node_uplink_host(i),
                 str(NODE_NETWORK.network_address + 10 + i),
                 str(ipaddress.IPv4Network(f"10.244.{i}.0/24")))
        for i in range(1, node_count + 1))
    return Topology(cluster, names, names.node_bridge, str(NODE_NETWORK.network_address + 1),
                    nodes)


def host_batch(topo: Topology) -> list[str]:
    """Root-namespace ``ip -batch`` lines: the bridge, node uplinks, routes to pod CIDRs."""
    prefix = NODE_NETWORK.prefixlen
    lines = [f"link add {topo.bridge} type bridge",
             f"addr add {topo.gateway}/{prefix} dev {topo.bridge}",
             f"link set {topo.bridge} up"]
    for n in topo.nodes:
        lines += [f"link add {n.uplink} type veth peer name eth0 netns {n.netns}",
                  f"link set {n.uplink} master {topo.bridge}",
                  f"link set {n.uplink} up"]
    for n in topo.nodes:
        lines.append(f"route add {n.pod_cidr} via {n.ip} dev {topo.bridge}")
    return lines


def node_batch(topo: Topology, node: NodePlan) -> list[str]:
    """Node-namespace lines: its uplink address, loopback, routes to the other nodes' pods."""
    lines = ["link set lo up",
             f"addr add {node.ip}/{NODE_NETWORK.prefixlen} dev eth0",
             "link set eth0 up"]
    for other in topo.nodes:
        if other.index != node.index:
            lines.append(f"route add {other.pod_cidr} via {other.ip} dev eth0")
    return lines


def overlapping_routes(route_lines: list[str], bridge: str) -> list[str]:
    """Routes already on the host (``ip -4 route`` lines) that collide with the node network
    or the pod network, other than our own bridge's."""
    clashes = []
    for line in route_lines:
        parts = line.split()
        if not parts or parts[0] == "default":
            continue
        try:
            net = ipaddress.IPv4Network(parts[0], strict=False)
        except ValueError:
            continue
        if f"dev {bridge}" in line or (" dev " not in line and " via " not in line):
            continue
        if net.overlaps(NODE_NETWORK) or net.overlaps(POD_NETWORK):
            clashes.append(line.strip())
    return clashes
