"""The local cluster's network, planned as data (DESIGN §3), then applied by ``ip -batch``.

::

    host (root netns)                      node i netns  svcnet-<tag>-n<i>
    ┌──────────────────────────┐           ┌───────────────────────────────────────┐
    │ bridge svcnet-<tag>      │  veth     │ eth0 172.20.0.(10+i)/24               │
    │   172.20.0.1/24  ────────┼───────────┤ svcnet0 (pod bridge) 10.244.i.1/24    │
    │ routes 10.244.i.0/24     │           │ routes 10.244.j.0/24 via 172.20.0.1xj │
    │   via 172.20.0.(10+i)    │           │   (the agent's, from the Nodes)       │
    │                          │           │ ip_forward=1, table ip svcnet (proxy) │
    └──────────────────────────┘           └───────────────────────────────────────┘

(the addresses of the default networks; a cluster's own come from networks.py). The host gets
exactly one bridge with the node network's first address and one route per node's pod CIDR
(traffic to our own namespaces): nothing else in the root namespace, and no namespace gets a
default route, so no packet of the cluster can leave the machine. The bridge's alias
(``svcnet:<state directory>``) says which cluster owns the names of its tag: another cluster
with the same name under another ``SVCNET_HOME``, or whose name hashes to the same 2-character
tag (names.py), is refused rather than allowed to take (or remove) those names. Node
``i`` reaches node ``j``'s pods through node ``j``'s address on the node network: a route its
agent keeps from the Node objects (``--pod-network-mode routes``, svcnet/node/nodenet.py), as
on machines that joined a cluster, so one piece of code routes pods between nodes. The service
CIDR is routed only inside nodes (by their nftables rules).
"""

from __future__ import annotations

from dataclasses import dataclass

from svcnet.cluster.networks import DEFAULT, ClusterNetwork
from svcnet.node.names import ClusterNames

DNS_IP = "10.96.0.10"
API_PORT = 6443
BRIDGE_ALIAS_PREFIX = "svcnet:"


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
    network: ClusterNetwork
    nodes: tuple[NodePlan, ...]
    owner: str
    """The cluster's state directory, in the bridge's alias."""

    @property
    def gateway(self) -> str:
        return self.network.gateway

    @property
    def api_server(self) -> str:
        return f"{self.gateway}:{API_PORT}"


def bridge_alias(owner: str) -> str:
    """The alias of a cluster's bridge: whose are the host-global names of its tag."""
    if '"' in owner or "\n" in owner or len(owner) > 240:
        raise ValueError(f"state directory {owner!r} cannot be a link alias (quotes, newlines "
                         f"or over 240 characters)")
    return f"{BRIDGE_ALIAS_PREFIX}{owner}"


def plan_topology(cluster: str, node_count: int, network: ClusterNetwork = DEFAULT,
                  owner: str = "") -> Topology:
    if not 1 <= node_count <= 100:
        raise ValueError("--nodes must be between 1 and 100")
    names = ClusterNames.for_cluster(cluster)
    nodes = tuple(
        NodePlan(i, f"node-{i}", names.node_netns(i), names.node_uplink_host(i),
                 network.node_ip(i), network.pod_cidr(i))
        for i in range(1, node_count + 1))
    return Topology(cluster, names, names.node_bridge, network, nodes, owner)


def host_batch(topo: Topology) -> list[str]:
    """Root-namespace ``ip -batch`` lines: the bridge, node uplinks, routes to pod CIDRs."""
    prefix = topo.network.nodes.prefixlen
    lines = [f"link add {topo.bridge} type bridge",
             f'link set {topo.bridge} alias "{bridge_alias(topo.owner)}"',
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
    """Node-namespace lines: loopback, its uplink address (what a machine has of itself; the
    routes to the other nodes' pods are its agent's)."""
    return ["link set lo up", f"addr add {node.ip}/{topo.network.nodes.prefixlen} dev eth0",
            "link set eth0 up"]
