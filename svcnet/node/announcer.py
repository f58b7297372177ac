"""Layer-2 announcement of LoadBalancer IPs on the node network, the way MetalLB's L2 mode works.

Every node agent computes the same answer from the same informer data, so no coordination is
needed: for each LoadBalancer ingress IP that lies on this node's uplink subnet, the announcing
node is, among the Ready nodes that may serve it (for ``externalTrafficPolicy: Local`` only
nodes with a ready local endpoint), the one whose ``sha256(node + "#" + ip)`` is smallest. That
spreads Services over nodes, and when a node goes away (NotReady) the next one in that order
takes over on its next sync. Ingress entries with ``ipMode: Proxy`` are never announced: that
address belongs to a load balancer that proxies to the nodes (and the proxy programs no
rules for it, as kube-proxy does not).

The winner adds the IP as a /32 on its uplink (the interface holding the node's address), so
its kernel answers ARP for it (and the Service's nftables rules see a local destination), and
sends a gratuitous ARP so the host's neighbour cache moves to the new node at once after a
failover. Losers remove it. The decision
is the pure :func:`announcements`; :class:`Announcer` applies it with ``ip`` and a raw packet
socket inside the node namespace.

IPv6 LoadBalancer IPs (a dual-stack node network) work the same way with Neighbor Discovery
in place of ARP (RFC 4861): the winner adds the IP as a /128 (``nodad``: it is ours by the
election, and a tentative address would not answer), so its kernel answers neighbour
solicitations for it, and sends an unsolicited neighbour advertisement with the override flag
to all nodes (``ff02::1``), which makes the host update a stale neighbour entry at once, the
role of the gratuitous ARP (MetalLB's NDP responder does both in user space).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from svcnet.util.nsthread import NetnsThread

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _ready(obj: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _local_nodes(slices: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(namespace, service) -> nodes with a ready endpoint of it."""
    local_nodes: dict[tuple[str, str], set[str]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        for e in s.get("endpoints") or []:
            if (e.get("conditions") or {}).get("ready") is not False and e.get("nodeName"):
                local_nodes.setdefault((str(meta.get("namespace")), svc), set()).add(
                    str(e["nodeName"]))
    return local_nodes


def _candidates(svc: Mapping[str, Any], ready_nodes: list[str],
                local_nodes: Mapping[tuple[str, str], set[str]]) -> list[str]:
    key = (str(svc["metadata"].get("namespace")), str(svc["metadata"]["name"]))
    if (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local":
        return [n for n in ready_nodes if n in local_nodes.get(key, set())]
    return ready_nodes


def _canonical(ip: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(ip))
    except ValueError:
        return None


def announcing_node(svc: Mapping[str, Any], ip: str, slices: Iterable[Mapping[str, Any]],
                    nodes: Iterable[Mapping[str, Any]]) -> str | None:
    """The node that announces the Service's LoadBalancer IP ``ip`` (whatever subnet it is
    on), None when no node may: the rule :func:`announcements` applies on every node. Pure."""
    address = _canonical(ip)
    if (svc.get("spec") or {}).get("type") != "LoadBalancer" or address is None:
        return None
    candidates = _candidates(svc, sorted(str(n["metadata"]["name"]) for n in nodes
                                         if _ready(n)), _local_nodes(slices))
    return _winner(candidates, str(address)) if candidates else None


def announcements(node_name: str, subnet: Subnet | Iterable[Subnet], services: Iterable[Obj],
                  slices: Iterable[Obj], nodes: Iterable[Obj]) -> set[str]:
    """The LoadBalancer IPs this node should announce: those on ``subnet`` (the node
    network; on a dual-stack one, its IPv4 and IPv6 subnets). Pure."""
    subnets = [subnet] if isinstance(subnet, Subnet) else list(subnet)
    ready_nodes = sorted(str(n["metadata"]["name"]) for n in nodes if _ready(n))
    local_nodes = _local_nodes(slices)
    mine: set[str] = set()
    for svc in services:
        if (svc.get("spec") or {}).get("type") != "LoadBalancer":
            continue
        candidates = _candidates(svc, ready_nodes, local_nodes)
        for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if ing.get("ipMode") == "Proxy":
                continue  # a proxying load balancer owns that address, not the nodes
            address = _canonical(ing.get("ip"))
            if address is None or not any(address.version == n.version and address in n
                                          for n in subnets):
                continue
            if candidates and _winner(candidates, str(address)) == node_name:
                mine.add(str(address))
    return mine


def _winner(candidates: list[str], ip: str) -> str:
    return min(candidates, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


def _mac(s: socket.socket) -> bytes:
    """The hardware address of the interface a bound packet socket is on. (Not
    ``/sys/class/net/IF/address``: sysfs shows the interfaces of the namespace it was mounted
    in, the host's, whatever namespace the reading thread is in.)"""
    return bytes(s.getsockname()[4])


def _gratuitous_arp(ifname: str, ip: str) -> None:
    """Broadcast "ip is at my MAC" on ``ifname`` (runs inside the node netns)."""
    addr = socket.inet_aton(ip)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((ifname, 0))
        mac = _mac(s)
        frame = (b"\xff" * 6 + mac + struct.pack("!H", 0x0806)
                 + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)  # Ethernet/IPv4, reply
                 + mac + addr + b"\xff" * 6 + addr)
        s.send(frame)


def _unsolicited_na(ifname: str, ip: str) -> None:
    """Send "ip is at my MAC" (an unsolicited neighbour advertisement, override set) to all
    nodes on ``ifname`` (runs inside the node netns; the kernel fills in the checksum)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as p:
        p.bind((ifname, 0))
        mac = _mac(p)
    # Type 136, code 0, checksum 0, flags: override (0x20000000); target; option 2 (target
    # link-layer address), length 1 (8 octets).
    message = (struct.pack("!BBHI", 136, 0, 0, 0x20000000)
               + socket.inet_pton(socket.AF_INET6, ip) + struct.pack("!BB", 2, 1) + mac)
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(ifname))
        s.sendto(message, ("ff02::1", 0, 0, socket.if_nametoindex(ifname)))


def _address_line(line: str) -> tuple[str, IPInterface] | None:
    """One line of ``ip -o addr show``: its interface's name (without ``@peer``) and address;
    None for a line without one. Pure."""
    parts = line.split()
    for kind in ("inet", "inet6"):
        if kind in parts[:-1]:
            return parts[1].split("@")[0], ipaddress.ip_interface(parts[parts.index(kind) + 1])
    return None


def uplink_addresses(lines: Iterable[str], node_ip: str,
                     ) -> tuple[set[str], Subnet | None]:
    """From ``ip -o addr show dev <uplink>``: the announced host addresses (/32 and /128),
    and the subnet of the node's own address ``node_ip`` (None when it is not there). Pure."""
    found: set[str] = set()
    subnet = None
    for line in lines:
        parsed = _address_line(line)
        if parsed is None:
            continue
        iface = parsed[1]
        if iface.network.prefixlen == iface.max_prefixlen and str(iface.ip) != node_ip:
            found.add(str(iface.ip))
        elif str(iface.ip) == node_ip:
            subnet = iface.network
    return found, subnet


def uplink_of(lines: Iterable[str], node_ip: str) -> str | None:
    """From ``ip -o addr show``: the interface holding ``node_ip`` (the uplink), None when
    none does. Pure."""
    for parsed in map(_address_line, lines):
        if parsed is not None and str(parsed[1].ip) == node_ip:
            return parsed[0]
    return None


class Announcer:
    def __init__(self, netns: str, node_name: str, node_ip: str, *, ifname: str = "",
                 prefix: int = 24, node_ip6: str = "") -> None:
        self.netns = netns
        self.node_name = node_name
        self._find_uplink = not ifname
        self.ifname = ifname or "eth0"
        """The uplink: ``ifname``, else the interface holding ``node_ip`` (a joined machine's
        may be any name), found on the first sync; ``eth0`` until then."""
        self.node_ip = node_ip
        self.node_ip6 = node_ip6
        self.subnet: Subnet = ipaddress.IPv4Network(f"{node_ip}/{prefix}", strict=False)
        """The node network; ``prefix`` until the uplink's address says (a local cluster's
        node network may be larger than a /24)."""
        self.subnet6: Subnet | None = (ipaddress.IPv6Network(f"{node_ip6}/64", strict=False)
                                       if node_ip6 else None)
        """The IPv6 node network of a dual-stack node (its /64 until the uplink says)."""
        self.announced: set[str] = set()
        self._first = True
        self._thread = NetnsThread(netns)

    async def _ip(self, *args: str) -> bool:
        proc = await asyncio.create_subprocess_exec(
            "ip", "-n", self.netns, *args, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0 and b"File exists" not in err and b"Cannot assign" not in err:
            log.warning("ip -n %s %s: %s", self.netns, " ".join(args), err.decode().strip())
        return proc.returncode == 0

    async def _current(self) -> tuple[set[str], Subnet | None, Subnet | None]:
        """/32s and /128s on the uplink now (a restarted agent must learn what it announced
        before), and the subnets of the node's own addresses there."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "-n", self.netns, "-o", "addr", "show",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        lines = out.decode().splitlines()
        if self._find_uplink:
            self.ifname = uplink_of(lines, self.node_ip) or self.ifname
        lines = [line for line in lines
                 if (parsed := _address_line(line)) is not None and parsed[0] == self.ifname]
        found, subnet = uplink_addresses(lines, self.node_ip)
        _, subnet6 = uplink_addresses(lines, self.node_ip6) if self.node_ip6 else (set(), None)
        return found, subnet, subnet6

    async def sync(self, services: Iterable[Obj], slices: Iterable[Obj],
                   nodes: Iterable[Obj]) -> None:
        if self._first:
            self.announced, subnet, subnet6 = await self._current()
            self.subnet = subnet or self.subnet
            self.subnet6 = subnet6 or self.subnet6
            self._first = False
        subnets = [self.subnet, *([self.subnet6] if self.subnet6 is not None else [])]
        wanted = announcements(self.node_name, subnets, services, slices, nodes)
        for ip in sorted(wanted - self.announced):
            six = ":" in ip
            await self._ip("addr", "replace", f"{ip}/{128 if six else 32}", "dev", self.ifname,
                           *(["nodad"] if six else []))
            try:
                await self._thread.call(functools.partial(
                    _unsolicited_na if six else _gratuitous_arp, self.ifname, ip))
            except OSError as e:
                log.warning("announcing %s (%s) failed: %s", ip, "NDP" if six else "ARP", e)
            log.info("announcing %s", ip)
        for ip in sorted(self.announced - wanted):
            await self._ip("addr", "del", f"{ip}/{128 if ':' in ip else 32}", "dev",
                           self.ifname)
            log.info("no longer announcing %s", ip)
        self.announced = wanted

    def close(self) -> None:
        self._thread.close()
