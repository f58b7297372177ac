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

On a dual-stack cluster every one of these gets its IPv6 twin (networks.py): the bridge holds
the IPv6 gateway too, each node an IPv6 address on ``eth0``, and the host routes each node's
IPv6 pod /64 via that node's IPv6 address; between nodes the agents route the IPv6 pod /64s
as they route the IPv4 /24s, from the Nodes' podCIDRs and InternalIPs of the same family.
Addresses are added without duplicate address detection (``nodad``): the plan gives each one
to exactly one interface, and the cluster can use them at once.

An IPv6 single-stack cluster (``--ip-family ipv6``) builds exactly the dual-stack network; what
differs is what the API sees (:class:`~svcnet.util.ipfamily.IPFamilies`): the API server
listens on the bridge's IPv6 address, and each node agent is told to show only its IPv6
address and pod /64 (``--ip-family ipv6``), keeping the IPv4 ones as plumbing.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Network

from svcnet.cluster.networks import DEFAULT, ClusterNetwork
from svcnet.node.names import ClusterNames
from svcnet.util.ipfamily import IPFamilies

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
    ip6: str = ""
    """The node's IPv6 address on a dual-stack cluster ("" otherwise)."""
    pod_cidr6: str = ""
    family: str = "ipv4"
    """The cluster's ``--ip-family`` (the agent's too): which of these the API sees."""

    @property
    def api_ips(self) -> list[str]:
        """The node's addresses as its Node shows them (InternalIPs), the primary first:
        where NodePorts answer."""
        return IPFamilies(self.family).pick([self.ip, self.ip6])

    @property
    def node_ips(self) -> str:
        """``--node-ip``: the address, or the IPv4,IPv6 pair (also on an IPv6 single-stack
        cluster, whose agents keep the IPv4 one out of the API)."""
        return f"{self.ip},{self.ip6}" if self.ip6 else self.ip

    @property
    def pod_cidrs(self) -> str:
        """``--pod-cidr``: the /24, or the /24,/64 pair."""
        return f"{self.pod_cidr},{self.pod_cidr6}" if self.pod_cidr6 else self.pod_cidr


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
        """host:port of the API server: the bridge's address of the primary family."""
        return host_port(self.network.api_address, API_PORT)


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
                 network.node_ip(i), network.pod_cidr(i), network.node_ip6(i),
                 network.pod_cidr6(i), network.family)
        for i in range(1, node_count + 1))
    return Topology(cluster, names, names.node_bridge, network, nodes, owner)


def host_batch(topo: Topology) -> list[str]:
    """Root-namespace ``ip -batch`` lines: the bridge, node uplinks, routes to pod CIDRs."""
    prefix = topo.network.nodes.prefixlen
    lines = [f"link add {topo.bridge} type bridge",
             f'link set {topo.bridge} alias "{bridge_alias(topo.owner)}"',
             f"addr add {topo.gateway}/{prefix} dev {topo.bridge}",
             *_six_address(topo.network.gateway6, topo.network.nodes6, topo.bridge),
             f"link set {topo.bridge} up"]
    for n in topo.nodes:
        lines += [f"link add {n.uplink} type veth peer name eth0 netns {n.netns}",
                  f"link set {n.uplink} master {topo.bridge}",
                  f"link set {n.uplink} up"]
    for n in topo.nodes:
        lines.append(f"route add {n.pod_cidr} via {n.ip} dev {topo.bridge}")
        if n.ip6:
            lines.append(f"route add {n.pod_cidr6} via {n.ip6} dev {topo.bridge}")
    return lines


def _six_address(address: str, network: IPv6Network | None, dev: str) -> list[str]:
    if network is None or not address:
        return []
    return [f"addr add {address}/{network.prefixlen} dev {dev} nodad"]


def node_batch(topo: Topology, node: NodePlan) -> list[str]:
    """Node-namespace lines: loopback and its uplink addresses (on a dual-stack or IPv6
    cluster an IPv6 one too): what a machine has of itself. The routes to the other nodes'
    pods, both families, are its agent's (svcnet/node/nodenet.py)."""
    return ["link set lo up",
            f"addr add {node.ip}/{topo.network.nodes.prefixlen} dev eth0",
            *_six_address(node.ip6, topo.network.nodes6, "eth0"),
            "link set eth0 up"]
