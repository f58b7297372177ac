"""``svcnet up --egress``: a way out of the cluster for pods, planned as data, inside the nodes.

Theory of operation
-------------------
On kind and k3s a pod reaches the outside through its node: the node masquerades pod traffic
that leaves the cluster to its own address (kind's ``ip-masq-agent`` rules in kindnet, k3s's
flannel ``--ip-masq``) and sends it along the node's default route. ``svcnet up`` does the same,
with every piece inside the cluster's own node namespaces:

* **a route** in each node namespace: ``default via GATEWAY dev eth0``. The gateway is
  ``--egress-gateway IP`` (an address on the node network that is not a node's), by default
  the node-network bridge's address on the host;
* **masquerade** in each node namespace, in a table of its own, ``ip svcnet-egress`` (the
  service proxy's ``ip svcnet`` table is left alone)::

      postrouting (nat, srcnat): ip saddr POD-NETWORK ip daddr != { POD-NETWORK,
                                 NODE-NETWORK } oifname "eth0" masquerade

  Traffic between pods, and from pods to the node network (the API server on the bridge,
  other nodes), keeps the pod's address as before; only what leaves the cluster takes the
  node's. Replies come back to the node address and conntrack returns them to the pod.

Nothing is added to the machine's root namespace: no NAT rule, no route, no address. What
happens to a packet that reaches the default gateway (the host's bridge address) is the host's
own forwarding and NAT setup's business (docs/EGRESS.md says how to allow it); svcnet never
writes root-namespace rules. Without ``--egress`` nodes have no default route: packets for
outside addresses fail at the node at once (network unreachable).

Teardown needs nothing: the route and the table live in node namespaces, which ``svcnet down``
deletes. :func:`plan_egress` is pure; ``svcnet up`` applies :func:`node_route_lines` with the
node's ``ip -batch`` and :func:`ruleset` with ``nft -f -`` inside each node namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address
from typing import Final

from svcnet.cluster.networks import ClusterNetwork

__all__ = ["TABLE", "EgressError", "EgressPlan", "node_route_lines", "plan_egress", "ruleset"]

TABLE: Final = "svcnet-egress"
UPLINK: Final = "eth0"
"""The node's interface on the node network (topology.py)."""


class EgressError(ValueError):
    """A one-line reason why ``--egress-gateway`` cannot be used."""


@dataclass(frozen=True, slots=True)
class EgressPlan:
    gateway: str
    pods: IPv4Network
    nodes: IPv4Network


def plan_egress(network: ClusterNetwork, gateway: str | None,
                node_ips: tuple[str, ...] = ()) -> EgressPlan:
    """The egress of a cluster on ``network``; ``gateway`` None: the bridge address. Pure."""
    if gateway is None:
        return EgressPlan(network.gateway, network.pods, network.nodes)
    flag = f"--egress-gateway {gateway}"
    try:
        addr = ip_address(gateway)
    except ValueError:
        raise EgressError(f"{flag}: not an IP address") from None
    if not isinstance(addr, IPv4Address):
        raise EgressError(f"{flag}: must be an IPv4 address (the node network is IPv4)")
    nodes = network.nodes
    if addr not in nodes or addr in (nodes.network_address, nodes.broadcast_address):
        raise EgressError(f"{flag}: must be a host address of the node network {nodes} "
                          f"(nodes reach their gateway directly)")
    if str(addr) in node_ips:
        raise EgressError(f"{flag}: is a node's own address")
    return EgressPlan(str(addr), network.pods, nodes)


def node_route_lines(plan: EgressPlan) -> list[str]:
    """``ip -batch`` lines for a node namespace: its default route."""
    return [f"route add default via {plan.gateway} dev {UPLINK}"]


def ruleset(plan: EgressPlan) -> str:
    """The node namespace's ``ip svcnet-egress`` table, for ``nft -f -`` (created whole)."""
    return (
        f"table ip {TABLE} {{\n"
        f"\tcomment \"svcnet up --egress: pod traffic leaving the cluster takes the node's "
        f"address\"\n"
        f"\tchain postrouting {{\n"
        f"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        f"\t\tip saddr {plan.pods} ip daddr != {{ {plan.pods}, {plan.nodes} }} "
        f"oifname \"{UPLINK}\" masquerade\n"
        f"\t}}\n"
        f"}}\n")
