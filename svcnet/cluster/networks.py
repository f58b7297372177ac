"""Which node network and pod network a local cluster gets, so that several run side by side.

Theory of operation
-------------------
A cluster puts into the root namespace one bridge holding the first address of its *node
network* and one route per node to that node's pod /24 out of its *pod network* (topology.py).
Two clusters on one machine therefore need node networks and pod networks that overlap nothing
the machine routes already and nothing another cluster holds. The service CIDR is routed only
inside nodes (by their nftables rules), so every cluster keeps ``10.96.0.0/12``.

The rules, with the defaults as first choice (DESIGN §3):

* **node network**: ``--node-network CIDR`` when given (IPv4, a /24 or larger, private, clear of
  the service CIDR and of everything in use, else a one-line error); otherwise the first free
  of ``172.20.0.0/24``, ``172.20.1.0/24``, ..., ``172.20.255.0/24``;
* **pod network**: the first free /16 of ``10.244.0.0/16``, ``10.245.0.0/16``, ...,
  ``10.255.0.0/16`` (so at most 12 clusters run at once); node ``i`` gets its ``i``-th /24;
* the gateway (bridge address) is the node network's ``.1``, node ``i`` is ``.(10+i)``, the
  LoadBalancer pool ``.200``-``.250``.

**Dual stack** (``svcnet up --ip-family dual``) adds an IPv6 network of each kind, chosen by
the same rules among unique local candidates: the node network the first free of
``fd00:172:20::/64``, ``fd00:172:20:1::/64``, ... (bridge ``::1``, node ``i`` ``::(10+i)``
and the LoadBalancer pool ``::200``-``::250``, written with the digits of their IPv4
counterparts), the pod network the first free /56 of ``fd00:10:244::/56``,
``fd00:10:244:100::/56``, ... (node ``i`` gets its ``i``-th /64: ``fd00:10:244:1::/64``), and
the service CIDR ``fd00:10:96::/112`` for every cluster. None of them has a route out of the
machine.

**IPv6 single stack** (``svcnet up --ip-family ipv6``) plans the same networks as dual stack
but the API sees only the IPv6 ones (svcnet/util/ipfamily.py): the service CIDR is
``fd00:10:96::/112`` alone, the cluster CIDR the IPv6 pod network alone, the LoadBalancer pool
the IPv6 range, and the API server is on the bridge's IPv6 address. The IPv4 node and pod
networks stay as plumbing: the bridge and the nodes' uplinks keep their IPv4 addresses (the
host's one IPv4 route per node too), and pods an internal IPv4 address from which their IPv6
one is derived; none of these appears in a Node, Pod, Service or EndpointSlice.

The cluster's fixed Service addresses follow the primary service CIDR: the API server gives
``default/kubernetes`` its first address (``10.96.0.1``, ``fd00:10:96::1``) as upstream does,
and ``kube-system/kube-dns`` gets the tenth (``10.96.0.10``, ``fd00:10:96::a``), the address
kubeadm chooses (:func:`svcnet.dns.service.kube_dns_ip`).

"Free" means: no route of the machine (``ip -4 route show table all``) and no address of its
interfaces (``ip -4 -o addr``, as the subnet it sits in) overlaps it, and no other cluster's
record (``network.json`` in its state directory, written before its bridge exists) names it.
This is how Docker picks a subnet for a new bridge network (libnetwork's
``netutils.FindAvailableNetwork``: the first of its candidate pools that no host route
overlaps), with the other clusters' records added.

:func:`plan_network` is the choice as a pure function. The applier (``svcnet up``) takes
:func:`machine_lock` (``flock`` on ``/run/lock/svcnet-up.lock``, machine-wide whatever
``SVCNET_HOME`` is) before reading the machine's routes and holds it until the cluster's bridge
exists, so two ``svcnet up`` running at once never pick the same networks: the second sees the
first one's bridge route (or its record). The record stays in the state directory for ``svcnet
status`` and is removed with it by ``svcnet down``, which releases the networks.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Final

from svcnet.dns.service import kube_dns_ip
from svcnet.util.ipfamily import IPFamilies

NODE_NETWORKS: Final = tuple(IPv4Network(f"172.20.{k}.0/24") for k in range(256))
"""Candidates for the node network, in order of preference."""
POD_NETWORKS: Final = tuple(IPv4Network(f"10.{k}.0.0/16") for k in range(244, 256))
"""Candidates for the pod network, in order of preference."""
SERVICE_CIDR: Final = IPv4Network("10.96.0.0/12")
NODE_NETWORKS6: Final = tuple(IPv6Network(f"fd00:172:20:{k:x}::/64") for k in range(256))
"""Candidates for the IPv6 node network (dual stack), in order of preference."""
POD_NETWORKS6: Final = tuple(IPv6Network(f"fd00:10:244:{k:x}00::/56") for k in range(64))
"""Candidates for the IPv6 pod network (dual stack), in order of preference."""
SERVICE_CIDR6: Final = IPv6Network("fd00:10:96::/112")
LOCK_FILE: Final = Path("/run/lock/svcnet-up.lock")

_GATEWAY_OFFSET: Final = 1
_NODE_OFFSET: Final = 10
_LB_FIRST, _LB_LAST = 200, 250
_MAX_PREFIX: Final = 24
_PRIVATE: Final = tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                  "192.168.0.0/16"))
_ROUTE_TYPES: Final = frozenset({"unicast", "local", "broadcast", "multicast", "throw",
                                 "unreachable", "prohibit", "blackhole", "nat", "anycast"})


class NetworkError(ValueError):
    """A one-line reason why the cluster cannot have the network it asked for, or any."""


@dataclass(frozen=True, slots=True)
class ClusterNetwork:
    """The networks of one cluster; everything else (addresses, pool) follows from them."""

    nodes: IPv4Network
    pods: IPv4Network
    nodes6: IPv6Network | None = None
    """The IPv6 node network (dual stack), None: IPv4 only."""
    pods6: IPv6Network | None = None
    family: str = "ipv4"
    """``ipv4``, ``dual`` or ``ipv6`` (svcnet/util/ipfamily.py): the networks the API sees."""

    @property
    def dual(self) -> bool:
        """Whether the IPv6 networks exist (dual stack, or IPv6 single stack)."""
        return self.nodes6 is not None and self.pods6 is not None

    @property
    def families(self) -> IPFamilies:
        return IPFamilies(self.family)

    @property
    def api_address(self) -> str:
        """The bridge's address of the primary family: the API server listens on it."""
        return self.families.pick([self.gateway, self.gateway6])[0]

    @property
    def dns_ip(self) -> str:
        """``kube-system/kube-dns``'s ClusterIP, the pods' nameserver."""
        return kube_dns_ip(self.service_cidrs.split(",")[0])

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace: the API server listens on it."""
        return str(self.nodes.network_address + _GATEWAY_OFFSET)

    @property
    def gateway6(self) -> str:
        return _six(self.nodes6, _GATEWAY_OFFSET)

    def node_ip(self, index: int) -> str:
        return str(self.nodes.network_address + _NODE_OFFSET + index)

    def node_ip6(self, index: int) -> str:
        """Node ``index``'s IPv6 address ("" when IPv4 only): ``fd00:172:20::11`` for node 1."""
        return _six(self.nodes6, _NODE_OFFSET + index)

    def pod_cidr(self, index: int) -> str:
        """Node ``index``'s /24 of the pod network (``10.244.<index>.0/24`` by default)."""
        return str(IPv4Network((int(self.pods.network_address) + (index << 8), 24)))

    def pod_cidr6(self, index: int) -> str:
        """Node ``index``'s /64 of the IPv6 pod network ("" when IPv4 only)."""
        if self.pods6 is None:
            return ""
        return str(IPv6Network((int(self.pods6.network_address) + (index << 64), 64)))

    @property
    def lb_pool(self) -> str:
        """The server's ``--lb-pool``: a range per family the API sees."""
        base = self.nodes.network_address
        six = (f"{_six(self.nodes6, _LB_FIRST)}-{_six(self.nodes6, _LB_LAST)}"
               if self.nodes6 is not None else "")
        return ",".join(self.families.pick([f"{base + _LB_FIRST}-{base + _LB_LAST}", six]))

    @property
    def cluster_cidrs(self) -> str:
        """The pod networks as the server's and agents' ``--cluster-cidr`` (primary first)."""
        return ",".join(self.families.pick([str(self.pods), str(self.pods6 or "")]))

    @property
    def service_cidrs(self) -> str:
        """The server's ``--service-cidr``: one per family the API sees, primary first."""
        return ",".join(self.families.pick([str(SERVICE_CIDR), str(SERVICE_CIDR6)]))

    def describe(self) -> str:
        if self.family == "ipv6":
            return (f"nodes {self.nodes6} (bridge plumbing {self.nodes}), pods {self.pods6} "
                    f"(internal {self.pods}), LoadBalancer pool {self.lb_pool}")
        six = f" and {self.nodes6}, pods {self.pods6}" if self.dual else ""
        return f"nodes {self.nodes}, pods {self.pods}{six}, LoadBalancer pool {self.lb_pool}"

    def to_json(self, cluster: str) -> str:
        doc = {"cluster": cluster, "nodeNetwork": str(self.nodes),
               "podNetwork": str(self.pods), "gateway": self.gateway, "lbPool": self.lb_pool,
               "ipFamily": self.family}
        if self.dual:
            doc |= {"nodeNetwork6": str(self.nodes6), "podNetwork6": str(self.pods6)}
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterNetwork:
        doc = json.loads(text)
        six = doc.get("nodeNetwork6"), doc.get("podNetwork6")
        family = str(doc.get("ipFamily") or ("dual" if all(six) else "ipv4"))
        nodes6, pods6 = (IPv6Network(n) if n else None for n in six)
        return cls(IPv4Network(doc["nodeNetwork"]), IPv4Network(doc["podNetwork"]), nodes6,
                   pods6, family)


def _six(network: IPv6Network | None, offset: int) -> str:
    """The address ``offset`` into ``network``, written with the decimal digits of ``offset``
    (node 1 is ``::11`` as it is ``.11`` in IPv4)."""
    if network is None:
        return ""
    return str(network.network_address + int(str(offset), 16))


DEFAULT: Final = ClusterNetwork(NODE_NETWORKS[0], POD_NETWORKS[0])


@dataclass(frozen=True, slots=True)
class InUse:
    """A network something on the machine already holds, and what (for error messages)."""

    network: IPv4Network | IPv6Network
    what: str


def parse_node_network(text: str) -> IPv4Network:
    """``--node-network``'s value, checked; :class:`NetworkError` says what is wrong."""
    flag = f"--node-network {text}"
    try:
        net = IPv4Network(text.strip(), strict=False)
    except ValueError:
        raise NetworkError(f"{flag}: not an IPv4 network in CIDR form "
                           f"(e.g. 172.20.5.0/24)") from None
    if "/" not in text:
        raise NetworkError(f"{flag}: give the prefix length too (e.g. {net.network_address}/24)")
    if str(net) != text.strip():
        raise NetworkError(f"{flag}: host bits are set (the network is {net})")
    if net.prefixlen > _MAX_PREFIX:
        raise NetworkError(f"{flag}: must be a /24 or larger (a /{net.prefixlen} has no room "
                           f"for nodes .11-.110 and the LoadBalancer pool .200-.250)")
    if not any(net.subnet_of(p) for p in _PRIVATE):
        raise NetworkError(f"{flag}: must be inside a private range "
                           f"({', '.join(map(str, _PRIVATE))})")
    if net.overlaps(SERVICE_CIDR):
        raise NetworkError(f"{flag}: overlaps the service CIDR {SERVICE_CIDR}")
    return net


def machine_networks(route_lines: Iterable[str], addr_lines: Iterable[str]) -> list[InUse]:
    """What the machine holds, from ``ip -4 route show table all`` and ``ip -4 -o addr``
    lines. Default routes are skipped (they overlap everything and are no conflict)."""
    out: list[InUse] = []
    for line in route_lines:
        parts = line.split()
        if parts and parts[0] in _ROUTE_TYPES:
            parts = parts[1:]
        if not parts or parts[0] == "default":
            continue
        with contextlib.suppress(ValueError):
            out.append(InUse(ipaddress.ip_network(parts[0], strict=False),
                             f"the route `{line.strip()}`"))
    for line in addr_lines:
        parts = line.split()
        kind = "inet" if "inet" in parts else "inet6"
        if kind not in parts or parts.index(kind) + 1 >= len(parts):
            continue
        addr = parts[parts.index(kind) + 1]
        dev = parts[1].rstrip(":") if len(parts) > 1 else "?"
        with contextlib.suppress(ValueError):
            iface = ipaddress.ip_interface(addr)
            if not iface.ip.is_link_local:  # (every interface has one: no conflict)
                out.append(InUse(iface.network, f"the address {addr} on {dev}"))
    return out


def plan_network(requested: IPv4Network | None, in_use: Sequence[InUse],
                 others: Mapping[str, ClusterNetwork], *, family: str = "ipv4"
                 ) -> ClusterNetwork:
    """The cluster's networks: ``requested`` (``--node-network``) or the first free candidate
    node network, and the first free candidate pod network; with ``family`` ``dual`` or
    ``ipv6``, an IPv6 network of each kind too. Pure."""
    IPFamilies(family)  # (a ValueError for an unknown one)
    taken = [*in_use,
             *(InUse(net, f"cluster {c!r}'s {kind} network {net}")
               for c, n in sorted(others.items())
               for kind, net in (("node", n.nodes), ("pod", n.pods), ("node", n.nodes6),
                                 ("pod", n.pods6)) if net is not None)]

    def clash(net: IPv4Network | IPv6Network) -> str | None:
        return next((t.what for t in taken
                     if t.network.version == net.version and t.network.overlaps(net)), None)

    if requested is not None:
        why = clash(requested)
        if why is not None:
            raise NetworkError(f"--node-network {requested} overlaps {why}")
        nodes = requested
    else:
        free = [n for n in NODE_NETWORKS if clash(n) is None]
        if not free:
            raise NetworkError(f"no free node network among {NODE_NETWORKS[0]}-"
                               f"{NODE_NETWORKS[-1]}; give one with --node-network CIDR")
        nodes = free[0]
    pods = [p for p in POD_NETWORKS if clash(p) is None and not p.overlaps(nodes)]
    if not pods:
        raise NetworkError(f"no free pod network among {POD_NETWORKS[0]}-{POD_NETWORKS[-1]} "
                           f"(each running cluster holds one; `svcnet down` one of them)")
    if family == "ipv4":
        return ClusterNetwork(nodes, pods[0])
    nodes6 = next((n for n in NODE_NETWORKS6 if clash(n) is None), None)
    pods6 = next((p for p in POD_NETWORKS6 if clash(p) is None), None)
    if nodes6 is None or pods6 is None:
        raise NetworkError(f"no free IPv6 {'node' if nodes6 is None else 'pod'} network "
                           f"among the candidates (fd00:172:20::/48, fd00:10:244::/48)")
    return ClusterNetwork(nodes, pods[0], nodes6, pods6, family)


# --- the thin applier's I/O


def machine_in_use() -> list[InUse]:
    """What this machine's root namespace routes and addresses (:func:`machine_networks`)."""
    def lines(*args: str) -> list[str]:
        return subprocess.run(["ip", *args], capture_output=True, text=True,
                              check=False).stdout.splitlines()

    return machine_networks([*lines("-4", "route", "show", "table", "all"),
                             *lines("-6", "route", "show", "table", "all")],
                            [*lines("-4", "-o", "addr", "show"),
                             *lines("-6", "-o", "addr", "show")])


def recorded_networks(home: Path, exclude: str) -> dict[str, ClusterNetwork]:
    """The networks the clusters under ``home`` (``SVCNET_HOME``) recorded, but ``exclude``'s."""
    out: dict[str, ClusterNetwork] = {}
    for f in sorted(home.glob("*/network.json")) if home.is_dir() else []:
        if f.parent.name == exclude:
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            out[f.parent.name] = ClusterNetwork.from_json(f.read_text())
    return out


def read_network(record: Path) -> ClusterNetwork | None:
    """A cluster's recorded networks, None when there is no (readable) record."""
    try:
        return ClusterNetwork.from_json(record.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def machine_lock(path: Path = LOCK_FILE) -> Iterator[None]:
    """Held while a cluster chooses its networks and creates its bridge (blocks meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
