"""The pod network across machines: routes to the other nodes' pods, or a VXLAN overlay.

Theory of operation
-------------------
Every node owns the pod CIDRs in its ``Node.spec.podCIDRs`` (given, or assigned by the control
plane's node IPAM): one per IP family, an IPv4 /24 and on a dual-stack or IPv6 node an IPv6
/64. A pod on node A reaches a pod on node B when A's node namespace routes B's pod CIDRs to
B. Two modes, chosen per agent (``svcnet join --pod-network-mode``):

* **routes** (flannel's ``host-gw`` backend, pkg/backend/hostgw, which adds a v6 route per
  lease the same way): per other node, one route per pod CIDR, ``<its podCIDR> via <its
  InternalIP of the same family>``. Only a node whose address of that family is on one of this
  node's own subnets of that family can be a gateway (the nodes share an L2 segment); other
  nodes (or families) are left out and reported.
* **vxlan** (flannel's ``vxlan`` backend, pkg/backend/vxlan/vxlan_network.go): one kernel
  VXLAN device :data:`VXLAN_DEVICE` (VNI 1, UDP 8472, ``nolearning``, local address the node's
  IPv4 address, MTU the uplink's minus 50 bytes of encapsulation) holding the first address of
  each of the node's pod CIDRs (a /32, and a /128 for the IPv6 one: its VTEP addresses), with
  a MAC derived from the node IP and published in the Node annotation
  :data:`VTEP_MAC_ANNOTATION`. For every other node that published one: an FDB entry (its
  VTEP MAC → its IPv4 InternalIP, where the encapsulated frame goes), and per pod CIDR a
  permanent neighbour entry (its VTEP address of that family → its VTEP MAC) and the route
  ``<its podCIDR> via <its VTEP address> dev svcnet.vx onlink``. The underlay only needs the
  node IPs to reach each other over UDP: routers in between are fine. Pods get the device's
  MTU on their veths (:func:`pod_mtu`), so nothing they send needs fragmenting.

  IPv6 pods ride the **same device over the IPv4 underlay**: an Ethernet overlay carries
  either family, so the IPv6 pod CIDRs only add a v6 VTEP address, v6 neighbour entries (to
  the same MACs) and v6 routes; the FDB is shared. Flannel instead makes a second device,
  ``flannel-v6.1``, with an IPv6 underlay (its own VTEP MAC annotation): needed only when the
  machines can reach each other over IPv6 alone. Here a node whose Node shows no IPv4
  InternalIP (an IPv6 single-stack node) has no underlay address and is left out, reported.

:func:`plan` is pure: Nodes in, the desired routes, neighbours and FDB entries out.
:class:`NodeNetwork` is the thin applier: it lists what the kernel holds (routes of both
families carry the protocol number :data:`ROUTE_PROTO`, so ours are told apart from anyone
else's; permanent neighbours and FDB entries are ours on our own device), then adds what is
missing and removes what is no longer desired, in one ``ip -batch`` and one ``bridge -batch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)
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

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

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
    node_ips: tuple[IPAddress, ...]
    """Its InternalIPs (at most one per family), as its Node lists them."""
    pod_cidrs: tuple[IPNetwork, ...]
    """Its ``spec.podCIDRs`` (at most one per family)."""
    vtep_mac: str | None = None

    def node_ip(self, version: int) -> IPAddress | None:
        """Its InternalIP of IP version ``version`` (4 or 6), if it has one."""
        return next((ip for ip in self.node_ips if ip.version == version), None)


def vtep_ip(pod_cidr: IPNetwork) -> IPAddress:
    """A node's VTEP address of a family: the first address of its pod CIDR of that family."""
    return pod_cidr.network_address


def _key(x: IPAddress | IPNetwork) -> tuple[int, Any]:
    """Sort addresses (or networks) of both families: IPv4 first."""
    return x.version, x


@dataclass(frozen=True, slots=True)
class Desired:
    routes: Mapping[IPNetwork, str]
    """Pod CIDR → the ``ip route`` tail after the destination (``via X`` ...)."""
    neighbours: Mapping[IPAddress, str] = field(default_factory=dict)
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


def _internal_ips(node: Mapping[str, Any]) -> tuple[IPAddress, ...]:
    """The Node's InternalIPs, the first of each family."""
    out: dict[int, IPAddress] = {}
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            with contextlib.suppress(ValueError):
                ip = ip_address(a.get("address", ""))
                out.setdefault(ip.version, ip)
    return tuple(out.values())


def _pod_cidrs(spec: Mapping[str, Any]) -> tuple[IPNetwork, ...]:
    """``spec.podCIDRs`` (``spec.podCIDR`` on a Node written without it), one per family."""
    out: dict[int, IPNetwork] = {}
    for text in spec.get("podCIDRs") or [spec.get("podCIDR") or ""]:
        with contextlib.suppress(ValueError):
            net = ip_network(text)
            out.setdefault(net.version, net)
    return tuple(out.values())


def peer_view(node: Mapping[str, Any]) -> tuple[object, ...]:
    """What of a Node the plan reads: a change elsewhere (heartbeats) changes no route."""
    return (tuple(peers_from_nodes([node], "")), (node.get("metadata") or {}).get("name"))


def peers_from_nodes(nodes: Iterable[Mapping[str, Any]], own_name: str) -> list[Peer]:
    """The other nodes that have an InternalIP and a pod CIDR (of any family)."""
    out = []
    for node in nodes:
        meta = node.get("metadata") or {}
        if meta.get("name") == own_name:
            continue
        ips = _internal_ips(node)
        cidrs = _pod_cidrs(node.get("spec") or {})
        if not ips or not cidrs:
            continue
        mac = (meta.get("annotations") or {}).get(VTEP_MAC_ANNOTATION)
        out.append(Peer(str(meta.get("name", "")), ips, cidrs, mac or None))
    return sorted(out, key=lambda p: p.name)


def _family(version: int) -> str:
    return f"IPv{version}"


def _plan_route(p: Peer, cidr: IPNetwork, local_networks: Sequence[IPNetwork]) -> str:
    """The routes-mode tail for ``cidr`` of ``p``; ValueError saying why there is none."""
    gateway = p.node_ip(cidr.version)
    if gateway is None:
        raise ValueError(f"{p.name}: no {_family(cidr.version)} InternalIP for its pod CIDR "
                         f"{cidr}")
    if not any(gateway in n for n in local_networks if n.version == gateway.version):
        raise ValueError(f"{p.name}: {gateway} is on none of this node's subnets "
                         f"(use --pod-network-mode vxlan)")
    return f"via {gateway} proto {ROUTE_PROTO}"


def plan(mode: str, peers: Sequence[Peer], local_networks: Sequence[IPNetwork],
         own_pod_cidrs: Sequence[IPNetwork] = ()) -> Desired:
    """What the node's namespace should hold for ``peers``. Pure."""
    if mode not in MODES:
        raise ValueError(f"unknown pod network mode {mode!r}")
    routes: dict[IPNetwork, str] = {}
    neighbours: dict[IPAddress, str] = {}
    fdb: dict[str, IPv4Address] = {}
    skipped: list[str] = []
    for p in peers:
        underlay = p.node_ip(4)
        if mode == "vxlan" and p.vtep_mac is None:
            skipped.append(f"{p.name}: no {VTEP_MAC_ANNOTATION} annotation yet")
            continue
        if mode == "vxlan" and not isinstance(underlay, IPv4Address):
            skipped.append(f"{p.name}: no IPv4 InternalIP (the VXLAN underlay is IPv4)")
            continue
        for cidr in p.pod_cidrs:
            if any(cidr.overlaps(own) for own in own_pod_cidrs if own.version == cidr.version):
                skipped.append(f"{p.name}: pod CIDR {cidr} overlaps this node's")
                continue
            if mode == "routes":
                try:
                    routes[cidr] = _plan_route(p, cidr, local_networks)
                except ValueError as e:
                    skipped.append(str(e))
                continue
            assert p.vtep_mac is not None and isinstance(underlay, IPv4Address)
            neighbours[vtep_ip(cidr)] = p.vtep_mac
            fdb[p.vtep_mac] = underlay
            routes[cidr] = (f"via {vtep_ip(cidr)} dev {VXLAN_DEVICE} onlink "
                            f"proto {ROUTE_PROTO}")
    return Desired(routes, neighbours, fdb, tuple(skipped))


def plan_vxlan_device(node_ip: IPv4Address, pod_cidrs: Sequence[IPNetwork],
                      mtu: int) -> list[str]:
    """``ip -batch`` lines creating the VXLAN device (``link add`` fails if it exists: the
    applier runs them only when it does not), with a VTEP address per pod CIDR."""
    return [f"link add {VXLAN_DEVICE} type vxlan id {VXLAN_VNI} local {node_ip} "
            f"dstport {VXLAN_PORT} nolearning",
            f"link set {VXLAN_DEVICE} address {vtep_mac(node_ip)} mtu {mtu}",
            *plan_vtep_addresses(pod_cidrs, set()),
            f"link set {VXLAN_DEVICE} up"]


def plan_vtep_addresses(pod_cidrs: Sequence[IPNetwork], present: set[IPAddress]) -> list[str]:
    """``ip -batch`` lines adding the device's VTEP addresses not ``present`` (a device made
    before this node had an IPv6 pod CIDR, or by an agent that routed IPv4 only)."""
    lines = []
    for cidr in sorted(pod_cidrs, key=_key):
        if vtep_ip(cidr) in present:
            continue
        if cidr.version == 4:
            lines.append(f"addr add {vtep_ip(cidr)}/32 dev {VXLAN_DEVICE}")
        else:
            lines.append(f"addr add {vtep_ip(cidr)}/128 dev {VXLAN_DEVICE} nodad")
    return lines


def diff(desired: Desired, routes: Mapping[IPNetwork, str],
         neighbours: Mapping[IPAddress, str], fdb: Mapping[str, IPv4Address]
         ) -> tuple[list[str], list[str]]:
    """(``ip -batch`` lines, ``bridge -batch`` lines) turning the current state into the
    desired one. ``routes`` maps our routes to their gateway, in ``desired.routes``' form."""
    ip_lines = [f"route del {cidr} proto {ROUTE_PROTO}" for cidr in sorted(routes, key=_key)
                if cidr not in desired.routes]
    ip_lines += [f"neigh del {addr} dev {VXLAN_DEVICE}"
                 for addr in sorted(neighbours, key=_key) if addr not in desired.neighbours]
    bridge_lines = [f"fdb del {mac} dev {VXLAN_DEVICE} dst {dst}"
                    for mac, dst in sorted(fdb.items()) if desired.fdb.get(mac) != dst]
    bridge_lines += [f"fdb append {mac} dev {VXLAN_DEVICE} dst {dst} self permanent"
                     for mac, dst in sorted(desired.fdb.items()) if fdb.get(mac) != dst]
    ip_lines += [f"neigh replace {addr} lladdr {mac} dev {VXLAN_DEVICE} nud permanent"
                 for addr, mac in sorted(desired.neighbours.items(), key=lambda i: _key(i[0]))
                 if neighbours.get(addr) != mac]
    ip_lines += [f"route replace {cidr} {tail}"
                 for cidr, tail in sorted(desired.routes.items(), key=lambda i: _key(i[0]))
                 if routes.get(cidr) != tail]
    return ip_lines, bridge_lines


def _route_tail(r: Mapping[str, Any]) -> str:
    if r.get("dev") == VXLAN_DEVICE:
        return f"via {r.get('gateway')} dev {VXLAN_DEVICE} onlink proto {ROUTE_PROTO}"
    return f"via {r.get('gateway')} proto {ROUTE_PROTO}"


def local_networks(links: Iterable[Mapping[str, Any]]) -> list[IPNetwork]:
    """The subnets of the addresses in ``ip -j addr show`` output (both families; not
    loopback, IPv6 link-local or our VXLAN device's)."""
    nets: list[IPNetwork] = []
    for link in links:
        if link.get("ifname") == VXLAN_DEVICE:
            continue
        for a in link.get("addr_info") or []:
            if a.get("family") not in ("inet", "inet6"):
                continue
            iface = ip_interface(f"{a['local']}/{a['prefixlen']}")
            if not (iface.ip.is_loopback or (iface.version == 6 and iface.ip.is_link_local)):
                nets.append(iface.network)
    return nets


class NodeNetwork:
    """The applier, for the node namespace ``netns``."""

    def __init__(self, netns: str, mode: str, node_ip: str) -> None:
        if mode not in MODES:
            raise ValueError(f"--pod-network-mode must be one of {', '.join(MODES)}")
        self.netns, self.mode, self.node_ip = netns, mode, IPv4Address(node_ip)
        self._lock = asyncio.Lock()
        self._told: tuple[str, ...] = ()

    def _query(self, *commands: str, ipv6: bool = False) -> list[Any]:
        return query_sync(self.netns, commands, ipv6=ipv6)

    def uplink(self) -> tuple[list[IPNetwork], int]:
        """The node's subnets and the MTU of the link holding the node IP."""
        (links,) = self._query("addr show")
        mtu = 1500
        for link in links:
            if any(a.get("local") == str(self.node_ip) for a in link.get("addr_info") or []):
                mtu = int(link.get("mtu", mtu))
        return local_networks(links), mtu

    def _ensure_device(self, pod_cidrs: Sequence[IPNetwork], mtu: int) -> None:
        (links,) = self._query("addr show")
        device = next((link for link in links if link.get("ifname") == VXLAN_DEVICE), None)
        if device is None:
            lines = plan_vxlan_device(self.node_ip, pod_cidrs, mtu)
        else:
            present = {ip_address(a["local"]) for a in device.get("addr_info") or []
                       if a.get("local")}
            lines = plan_vtep_addresses(pod_cidrs, present)
        if lines:
            apply_sync([Batch(self.netns, tuple(lines))])

    def _current(self) -> tuple[dict[IPNetwork, str], dict[IPAddress, str],
                                dict[str, IPv4Address]]:
        (routes4,) = self._query(f"route show proto {ROUTE_PROTO}")
        (routes6,) = self._query(f"route show proto {ROUTE_PROTO}", ipv6=True)
        current_routes = {ip_network(r["dst"]): _route_tail(r) for r in [*routes4, *routes6]
                          if r.get("dst") and r.get("gateway")}
        neighbours: dict[IPAddress, str] = {}
        fdb: dict[str, IPv4Address] = {}
        if self.mode == "vxlan":
            (neigh,) = self._query(f"neigh show dev {VXLAN_DEVICE}")
            neighbours = {ip_address(n["dst"]): str(n["lladdr"]) for n in neigh
                          if n.get("lladdr") and "PERMANENT" in (n.get("state") or [])}
            out = _bridge(self.netns, ["-j", "fdb", "show", "dev", VXLAN_DEVICE])
            for entry in json.loads(out or "[]"):
                with contextlib.suppress(KeyError, ValueError):
                    fdb[str(entry["mac"])] = IPv4Address(entry["dst"])
        return current_routes, neighbours, fdb

    def sync_blocking(self, nodes: Iterable[Mapping[str, Any]], own_name: str,
                      own_pod_cidrs: Sequence[IPNetwork]) -> Desired:
        nets, mtu = self.uplink()
        if self.mode == "vxlan":
            self._ensure_device(own_pod_cidrs, mtu)
        desired = plan(self.mode, peers_from_nodes(nodes, own_name), nets, own_pod_cidrs)
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
                   own_pod_cidrs: Sequence[IPNetwork]) -> Desired:
        async with self._lock:
            return await asyncio.to_thread(self.sync_blocking, list(nodes), own_name,
                                           list(own_pod_cidrs))


def _bridge(netns: str, args: list[str], stdin: str | None = None) -> str:
    """``bridge -n NETNS ARGS`` (the FDB is not ``ip``'s); its stdout."""
    argv = ["bridge", "-n", netns, *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or 'failed'}")
    return proc.stdout
