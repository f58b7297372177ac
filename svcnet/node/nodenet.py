"""The pod network across machines: routes to the other nodes' pods, or a VXLAN overlay.

Theory of operation
-------------------
Every node owns the pod CIDR in its ``Node.spec.podCIDR`` (given, or assigned by the control
plane's node IPAM). A pod on node A reaches a pod on node B when A's node namespace routes
B's pod CIDR to B. Two modes, chosen per agent (``svcnet join --pod-network-mode``):

* **routes** (flannel's ``host-gw`` backend, pkg/backend/hostgw): one route per other node,
  ``<its podCIDR> via <its InternalIP>``. Only a node on one of this node's own subnets can be
  a gateway (the nodes share an L2 segment); other nodes are left out and reported.
* **vxlan** (flannel's ``vxlan`` backend, pkg/backend/vxlan/vxlan_network.go): one kernel
  VXLAN device :data:`VXLAN_DEVICE` (VNI 1, UDP 8472, ``nolearning``, local address the node
  IP, MTU the uplink's minus 50 bytes of encapsulation) holding the first address of the
  node's pod CIDR as a /32 (its VTEP address), with a MAC derived from the node IP and
  published in the Node annotation :data:`VTEP_MAC_ANNOTATION`. For every other node that
  published one: a permanent neighbour entry (its VTEP address → its VTEP MAC), an FDB entry
  (its VTEP MAC → its InternalIP, where the encapsulated frame goes) and the route ``<its
  podCIDR> via <its VTEP address> dev svcnet.vx onlink``. The underlay only needs the node
  IPs to reach each other over UDP: routers in between are fine. Pods get the device's MTU
  on their veths (:func:`pod_mtu`), so nothing they send needs fragmenting.

:func:`plan` is pure: Nodes in, the desired routes, neighbours and FDB entries out.
:class:`NodeNetwork` is the thin applier: it lists what the kernel holds (routes carry the
protocol number :data:`ROUTE_PROTO`, so ours are told apart from anyone else's; neighbours and
FDB entries are ours on our own device), then adds what is missing and removes what is no
longer desired, in one ``ip -batch`` and one ``bridge -batch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, Final

from svcnet.node.netns import Batch, apply_sync, query_sync

__all__ = [
    "MODES",
    "VTEP_MAC_ANNOTATION",
    "VXLAN_DEVICE",
    "Desired",
    "NodeNetwork",
    "Peer",
    "peer_view",
    "peers_from_nodes",
    "plan",
    "pod_mtu",
    "vtep_mac",
]

log = logging.getLogger(__name__)

MODES: Final = ("routes", "vxlan")
VXLAN_DEVICE: Final = "svcnet.vx"
VXLAN_VNI: Final = 1
VXLAN_PORT: Final = 8472
VXLAN_OVERHEAD: Final = 50
"""Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) bytes."""
ROUTE_PROTO: Final = 77
"""The routing protocol number on our routes (``ip route ... proto 77``)."""
VTEP_MAC_ANNOTATION: Final = "svcnet.io/vtep-mac"


@dataclass(frozen=True, slots=True)
class Peer:
    """Another node, as the pod network needs it."""

    name: str
    node_ip: IPv4Address
    pod_cidr: IPv4Network
    vtep_mac: str | None = None

    @property
    def vtep_ip(self) -> IPv4Address:
        return self.pod_cidr.network_address


@dataclass(frozen=True, slots=True)
class Desired:
    routes: Mapping[IPv4Network, str]
    """Pod CIDR → the ``ip route`` tail after the destination (``via X`` ...)."""
    neighbours: Mapping[IPv4Address, str] = field(default_factory=dict)
    """VTEP address → VTEP MAC (vxlan only)."""
    fdb: Mapping[str, IPv4Address] = field(default_factory=dict)
    """VTEP MAC → the node IP frames for it are sent to (vxlan only)."""
    skipped: tuple[str, ...] = ()
    """Why some nodes got no route (for the log)."""


def vtep_mac(node_ip: IPv4Address) -> str:
    """A locally administered MAC from the node IP: stable across agent restarts."""
    return "0e:58:" + ":".join(f"{b:02x}" for b in node_ip.packed)


def pod_mtu(link_mtu: int, mode: str) -> int | None:
    """The pods' veth MTU: the uplink's minus the encapsulation in vxlan mode."""
    return link_mtu - VXLAN_OVERHEAD if mode == "vxlan" else None


def _internal_ip(node: Mapping[str, Any]) -> IPv4Address | None:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            try:
                return IPv4Address(a.get("address", ""))
            except ValueError:
                return None
    return None


def peer_view(node: Mapping[str, Any]) -> tuple[object, ...]:
    """What of a Node the plan reads: a change elsewhere (heartbeats) changes no route."""
    return (tuple(peers_from_nodes([node], "")), (node.get("metadata") or {}).get("name"))


def peers_from_nodes(nodes: Iterable[Mapping[str, Any]], own_name: str) -> list[Peer]:
    """The other nodes that have an IPv4 InternalIP and a pod CIDR."""
    out = []
    for node in nodes:
        meta = node.get("metadata") or {}
        if meta.get("name") == own_name:
            continue
        ip = _internal_ip(node)
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        try:
            net = IPv4Network(cidr)
        except ValueError:
            continue
        if ip is None:
            continue
        mac = (meta.get("annotations") or {}).get(VTEP_MAC_ANNOTATION)
        out.append(Peer(str(meta.get("name", "")), ip, net, mac or None))
    return sorted(out, key=lambda p: p.name)


def plan(mode: str, peers: Sequence[Peer], local_networks: Sequence[IPv4Network],
         own_pod_cidr: IPv4Network | None = None) -> Desired:
    """What the node's namespace should hold for ``peers``. Pure."""
    routes: dict[IPv4Network, str] = {}
    neighbours: dict[IPv4Address, str] = {}
    fdb: dict[str, IPv4Address] = {}
    skipped: list[str] = []
    for p in peers:
        if own_pod_cidr is not None and p.pod_cidr.overlaps(own_pod_cidr):
            skipped.append(f"{p.name}: pod CIDR {p.pod_cidr} overlaps this node's")
            continue
        if mode == "routes":
            if not any(p.node_ip in n for n in local_networks):
                skipped.append(f"{p.name}: {p.node_ip} is on none of this node's subnets "
                               f"(use --pod-network-mode vxlan)")
                continue
            routes[p.pod_cidr] = f"via {p.node_ip} proto {ROUTE_PROTO}"
        elif mode == "vxlan":
            if p.vtep_mac is None:
                skipped.append(f"{p.name}: no {VTEP_MAC_ANNOTATION} annotation yet")
                continue
            neighbours[p.vtep_ip] = p.vtep_mac
            fdb[p.vtep_mac] = p.node_ip
            routes[p.pod_cidr] = (f"via {p.vtep_ip} dev {VXLAN_DEVICE} onlink "
                                  f"proto {ROUTE_PROTO}")
        else:
            raise ValueError(f"unknown pod network mode {mode!r}")
    return Desired(routes, neighbours, fdb, tuple(skipped))


def plan_vxlan_device(node_ip: IPv4Address, pod_cidr: IPv4Network, mtu: int) -> list[str]:
    """``ip -batch`` lines creating the VXLAN device (``link add`` fails if it exists: the
    applier runs them only when it does not)."""
    return [f"link add {VXLAN_DEVICE} type vxlan id {VXLAN_VNI} local {node_ip} "
            f"dstport {VXLAN_PORT} nolearning",
            f"link set {VXLAN_DEVICE} address {vtep_mac(node_ip)} mtu {mtu}",
            f"addr add {pod_cidr.network_address}/32 dev {VXLAN_DEVICE}",
            f"link set {VXLAN_DEVICE} up"]


def diff(desired: Desired, routes: Mapping[IPv4Network, str],
         neighbours: Mapping[IPv4Address, str], fdb: Mapping[str, IPv4Address]
         ) -> tuple[list[str], list[str]]:
    """(``ip -batch`` lines, ``bridge -batch`` lines) turning the current state into the
    desired one. ``routes`` maps our routes to their gateway, in ``desired.routes``' form."""
    ip_lines = [f"route del {cidr} proto {ROUTE_PROTO}" for cidr in sorted(routes)
                if cidr not in desired.routes]
    ip_lines += [f"neigh del {addr} dev {VXLAN_DEVICE}" for addr in sorted(neighbours)
                 if addr not in desired.neighbours]
    bridge_lines = [f"fdb del {mac} dev {VXLAN_DEVICE} dst {dst}"
                    for mac, dst in sorted(fdb.items()) if desired.fdb.get(mac) != dst]
    bridge_lines += [f"fdb append {mac} dev {VXLAN_DEVICE} dst {dst} self permanent"
                     for mac, dst in sorted(desired.fdb.items()) if fdb.get(mac) != dst]
    ip_lines += [f"neigh replace {addr} lladdr {mac} dev {VXLAN_DEVICE} nud permanent"
                 for addr, mac in sorted(desired.neighbours.items())
                 if neighbours.get(addr) != mac]
    ip_lines += [f"route replace {cidr} {tail}" for cidr, tail in sorted(desired.routes.items())
                 if routes.get(cidr) != tail]
    return ip_lines, bridge_lines


def _route_tail(r: Mapping[str, Any]) -> str:
    if r.get("dev") == VXLAN_DEVICE:
        return f"via {r.get('gateway')} dev {VXLAN_DEVICE} onlink proto {ROUTE_PROTO}"
    return f"via {r.get('gateway')} proto {ROUTE_PROTO}"


class NodeNetwork:
    """The applier, for the node namespace ``netns``."""

    def __init__(self, netns: str, mode: str, node_ip: str) -> None:
        if mode not in MODES:
            raise ValueError(f"--pod-network-mode must be one of {', '.join(MODES)}")
        self.netns, self.mode, self.node_ip = netns, mode, IPv4Address(node_ip)
        self._lock = asyncio.Lock()
        self._told: tuple[str, ...] = ()

    def _query(self, *commands: str) -> list[Any]:
        return query_sync(self.netns, commands)

    def uplink(self) -> tuple[list[IPv4Network], int]:
        """The node's subnets and the MTU of the link holding the node IP."""
        (links,) = self._query("addr show")
        nets: list[IPv4Network] = []
        mtu = 1500
        for link in links:
            for a in link.get("addr_info") or []:
                if a.get("family") != "inet" or link.get("ifname") == VXLAN_DEVICE:
                    continue
                iface = IPv4Interface(f"{a['local']}/{a['prefixlen']}")
                if iface.ip.is_loopback:
                    continue
                nets.append(iface.network)
                if iface.ip == self.node_ip:
                    mtu = int(link.get("mtu", mtu))
        return nets, mtu

    def _ensure_device(self, pod_cidr: IPv4Network, mtu: int) -> None:
        (links,) = self._query("link show")
        if any(link.get("ifname") == VXLAN_DEVICE for link in links):
            return
        apply_sync([Batch(self.netns, tuple(plan_vxlan_device(self.node_ip, pod_cidr, mtu)))])

    def _current(self) -> tuple[dict[IPv4Network, str], dict[IPv4Address, str],
                                dict[str, IPv4Address]]:
        (routes,) = self._query(f"route show proto {ROUTE_PROTO}")
        current_routes = {IPv4Network(r["dst"]): _route_tail(r) for r in routes
                          if r.get("dst") and r.get("gateway")}
        neighbours: dict[IPv4Address, str] = {}
        fdb: dict[str, IPv4Address] = {}
        if self.mode == "vxlan":
            (neigh,) = self._query(f"neigh show dev {VXLAN_DEVICE}")
            neighbours = {IPv4Address(n["dst"]): str(n.get("lladdr", "")) for n in neigh
                          if n.get("lladdr")}
            out = _bridge(self.netns, ["-j", "fdb", "show", "dev", VXLAN_DEVICE])
            for entry in json.loads(out or "[]"):
                with contextlib.suppress(KeyError, ValueError):
                    fdb[str(entry["mac"])] = IPv4Address(entry["dst"])
        return current_routes, neighbours, fdb

    def sync_blocking(self, nodes: Iterable[Mapping[str, Any]], own_name: str,
                      own_pod_cidr: IPv4Network) -> Desired:
        nets, mtu = self.uplink()
        if self.mode == "vxlan":
            self._ensure_device(own_pod_cidr, mtu)
        desired = plan(self.mode, peers_from_nodes(nodes, own_name), nets, own_pod_cidr)
        ip_lines, bridge_lines = diff(desired, *self._current())
        if bridge_lines:
            _bridge(self.netns, ["-batch", "-"], "\n".join(bridge_lines) + "\n")
        if ip_lines:
            apply_sync([Batch(self.netns, tuple(ip_lines))])
        if desired.skipped != self._told and desired.skipped:
            log.warning("pod network (%s): no route to %s", self.mode,
                        "; ".join(desired.skipped))
        self._told = desired.skipped
        return desired

    async def sync(self, nodes: Iterable[Mapping[str, Any]], own_name: str,
                   own_pod_cidr: IPv4Network) -> Desired:
        async with self._lock:
            return await asyncio.to_thread(self.sync_blocking, list(nodes), own_name,
                                           own_pod_cidr)


def _bridge(netns: str, args: list[str], stdin: str | None = None) -> str:
    """``bridge -n NETNS ARGS`` (the FDB is not ``ip``'s); its stdout."""
    argv = ["bridge", "-n", netns, *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or 'failed'}")
    return proc.stdout
