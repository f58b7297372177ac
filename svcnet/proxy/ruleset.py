"""The desired nftables ruleset: a pure function of (Services, EndpointSlices, Node, config).

Layout (table ``ip svcnet``)
----------------------------
The layout is built for scale: per-packet work is a handful of hash lookups whatever the number
of Services, the table holds a few dozen chains instead of a few per Service, and a change to a
Service or its endpoints is a change of *map elements*, not of chains. kube-proxy's own layout
(a chain and an anonymous verdict map per service port, a chain per endpoint) loads
quadratically in the kernel: 165 s for 10k Services (measured in the project's dependency
evaluation, §2). This one is the measured "grouped" layout, extended with Kubernetes'
policies::

  prerouting ──► nat-prerouting ─┐  (type nat, priority -100 = dstnat)
  output ──────► nat-output ─────┴──► services
     1  @firewall-ips: destination has loadBalancerSourceRanges and the source is not in
        @firewall-allow ─────────────────────────────────────────────────────────► drop
     2  source off-cluster and not this host (externalTrafficPolicy Local, "from outside"):
        jump external-local: @external-local-ips / @external-local-nodeports
        ──► sticky-local-… | drop; @lb-local-count-<k> ──► lb-local-<k>
     3  @masq-ips / @masq-nodeports (external IPs of ETP=Cluster services) ──► mark-for-masq
     4  @service-ips [daddr . proto . dport] and, for @nodeport-ips destinations,
        @service-nodeports [proto . dport]                  ──► sticky-… | drop
        @lb-count-<k> [daddr . proto . dport], k = 1, 2, ... ──► lb-<k>
        @no-endpoints [daddr . proto . dport]               ──► reject
     5  @cluster-ips: a ClusterIP on a port no service has ─────────────────────► reject

  lb-<k>          [source off-cluster ► mark-for-masq]
                  dnat to @backends[daddr . proto . dport . numgen random mod k]
  lb-local-<k>    dnat to @local-backends[daddr . proto . dport . numgen random mod k]
  sticky-<svc>    [source off-cluster ► mark-for-masq]; ClientIP affinity (below)
  sticky-local-<svc>  [off-cluster source to a ClusterIP ► mark-for-masq]; affinity, local eps

  postrouting ─► nat-postrouting (priority 100 = srcnat) ─► masquerading
                  @hairpin [saddr . daddr] after DNAT (a pod reached itself) ► mark-for-masq
                  marked ► clear the mark, masquerade fully-random

Dispatch (steps 2–4) is a handful of hash lookups whatever the number of Services, on the first
packet of a connection only (conntrack handles the rest). A service port with k endpoints has
its frontends (ClusterIP, external and LoadBalancer IPs with their port, and for a NodePort each
node address with it: ``daddr . proto . dport``) in the set ``@lb-count-<k>``, whose rule goes
to the *shared* chain ``lb-<k>``, which draws ``numgen random mod k`` and DNATs through the data
map ``@backends``, keyed by the packet's own destination plus that number: one element per
(frontend, endpoint), e.g. ``10.96.0.10 . udp . 53 . 1 : 10.244.1.7 . 53``. Only a few rules
reference the big sets and maps (the kernel revalidates a map per referencing rule when
elements change, which made a per-service DNAT rule quadratic). Adding an endpoint is a handful
of element commands: the frontend moves from ``@lb-count-2`` to ``@lb-count-3``, one new backend
element, and the backends after it in sort order moving up one slot.

Chain references: whenever a transaction adds a ``goto``/``jump`` *element* to a verdict map,
the kernel re-checks every chain reachable from the base chains, including every verdict
element of every map: 2.2 ms at 10k Services and 4.8 ms at 30k for a one-element change
(measured; 0.3 ms flat for set and data map elements). So the usual case keeps its state in
sets and data maps — endpoint counts in ``@lb-count-<k>``, no endpoints in ``@no-endpoints`` —
and the verdict maps hold only what needs its own chain (ClientIP affinity) or a terminal
verdict (``drop``). Who owns a frontend is recorded in claims that are compared but never
rendered (``CLAIM``), so two service ports on one frontend still conflict as before.

Chains that never change: ``lb-<k>`` and ``lb-local-<k>`` exist for every k from 1 to 8, or to
the next power of two of the largest endpoint count, whether used or not. Their rules are the
only ones that use ``@backends`` maps, and nft 1.0.6 can add such rules only in the transaction
that creates the maps (see ``Map.rules_need_full_sync``): so they are written by full syncs,
and an incremental sync that would need a new one (a service growing past 8, 16, 32...
endpoints) becomes a full one instead — atomic all the same, and rare.

Kubernetes semantics on top of the layout:

* **No endpoints** (none ready, none serving-and-terminating): every frontend is in
  ``@no-endpoints``, whose rule rejects. This happens in the nat hook at dstnat, before
  routing, so it needs a kernel that allows ``reject`` in prerouting (5.x+; kube-proxy's
  filter-hook placement dates from older kernels).
* **internalTrafficPolicy Local**: the ClusterIP's backends are the node-local endpoints; none
  local but some elsewhere ⇒ ``drop`` (not reject: that is Kubernetes' rule).
* **externalTrafficPolicy Local**: the external frontends get two entries. The ordinary one
  (``@lb-count-<k>``, or ``@service-ips``/``@service-nodeports`` for affinity) points at *all*
  endpoints and is what pods and the node itself use (kube-proxy's short-circuit: pod traffic
  to an LB IP behaves like Cluster policy, traffic from the node is masqueraded). Traffic from
  outside the cluster is caught first (step 2, chain ``external-local``) by
  ``@lb-local-count-<k>`` → ``lb-local-<k>`` and ``@local-backends`` (node-local endpoints
  only, never masqueraded: the client's source address is preserved), or ``drop`` in
  ``@external-local-*`` when this node has none.
* **Masquerade** (mark ``0x4000`` set before DNAT, SNAT in postrouting, mark cleared so it does
  not leak): traffic reaching a service from outside the cluster CIDR(s) (``lb-<k>`` and
  ``sticky-…`` mark ``ip saddr != @cluster-cidrs``; for ETP Local frontends this is exactly
  "from the node itself", since outside traffic never reaches them), all external traffic of
  ETP Cluster services (step 3, from anywhere), and hairpin connections (a pod reaching itself
  through a Service; also needs hairpin mode on its bridge port). ``@hairpin`` holds a pair
  ``ip . ip`` for every endpoint on this node (or without a node name) — only those can loop
  back through this node — so endpoint churn elsewhere in the cluster does not touch it.
  ``masquerade_all`` marks all service traffic. Without cluster CIDRs (no local-traffic
  detector), only traffic from the node itself is marked in ``lb-<k>``, and step 2 applies to
  every non-host source, as in kube-proxy.
* **ClientIP affinity**: per endpoint, a set of client addresses with the Service's timeout
  (``flags dynamic,timeout``); the service port's ``sticky-…`` chain first sends a client found
  in an endpoint's set to that endpoint (refreshing the timeout), otherwise picks uniformly
  with a ``numgen`` cascade (1/n, then 1/(n-1), ...) and records the choice. Exactly kube-proxy's
  semantics (affinity per service port, whatever address was used; an endpoint's removal
  removes only its clients' affinity), but with one chain per *affinity* service port instead
  of one per endpoint. Services without affinity never get per-service chains.
* **loadBalancerSourceRanges**: checked on LoadBalancer IPs and — deliberately, unlike upstream
  nftables kube-proxy — on the NodePorts of the same service, which would otherwise be an open
  side door past the ranges (``ProxyConfig.source_ranges_on_nodeports``). When the node's own
  address is inside a range, the LB IPs are allowed as sources too (traffic from the node to a
  VIP that is local loops back with the VIP as source).
* **Terminating endpoints** are used only as a fallback, see :mod:`svcnet.proxy.topology`.
* **Traffic counters** (``ProxyConfig.traffic_counters``, on by default; ``svcnet node
  --no-traffic-counters``): ``@backends`` and ``@local-backends`` are declared with
  ``counter``, so every element counts the lookups that found it. Those lookups happen once per
  new connection (the nat hook sees a connection's first packet only) and are made anyway to
  pick the endpoint, so the count costs no extra rule, lookup or per-packet work, and the
  elements the incremental planner writes stay the same (a new element starts at zero). The
  node agent reads them (:mod:`svcnet.proxy.counters`). Connections of ClientIP-affinity
  Services are DNATed by their sticky chains, not through the maps, and are not counted.

**Dual stack** (as kube-proxy's nftables proxier, pkg/proxy/nftables/proxier.go, which runs
one proxier per family): an IPv6 table ``ip6 svcnet`` with exactly this layout, built from
the Services' IPv6 ClusterIP, IPv6 external and LoadBalancer IPs, EndpointSlices of
``addressType: IPv6``, the node's IPv6 addresses and the IPv6 cluster CIDR
(``ProxyConfig.family``; :class:`FamilySyntax` spells ``ip6 daddr``, ``ipv6_addr``,
``dnat ip6 to [addr]:port``). ``reject`` in the ``ip6`` family answers with ICMPv6 port
unreachable. Two tables rather than one ``inet`` table: every set and map is typed by its
address family, so an ``inet`` table would hold two copies of each anyway, and every rule
would need a family match; separate tables leave the IPv4 table byte-identical and let each
family sync (and fail) on its own.

Conflicts (two services claiming the same IP, protocol and port, e.g. a duplicated external IP)
are resolved deterministically — the first service port in (namespace, name, port, protocol)
order wins — and reported in :attr:`Ruleset.warnings`. Output is sorted throughout, so equal
inputs give byte-identical renderings (the golden tests rely on it).

Why this module is long: The pure nftables ruleset builder: every chain and map of the layout,
in the order the golden rulesets show them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final

from svcnet.proxy import names
from svcnet.proxy.model import (
    EndpointInfo,
    NodeInfo,
    ServicePortInfo,
    ServicePortName,
    endpoints_by_port,
    service_ports,
)
from svcnet.proxy.nft.adopt import FINGERPRINT_PREFIX
from svcnet.proxy.nft.objects import (
    Chain,
    Element,
    Map,
    Rule,
    Ruleset,
    Set,
    Table,
    ipv4_value,
    ipv6_value,
)
from svcnet.proxy.topology import categorize_endpoints

__all__ = ["Contribution", "ProxyConfig", "assemble_contributions", "build_ruleset",
           "contribution", "skeleton"]

TABLE_COMMENT: Final = "svcnet service proxy; generated, do not edit"

# Chains
NAT_PREROUTING: Final = "nat-prerouting"
NAT_OUTPUT: Final = "nat-output"
NAT_POSTROUTING: Final = "nat-postrouting"
SERVICES: Final = "services"
MARK_FOR_MASQ: Final = "mark-for-masq"
FROM_OUTSIDE: Final = "external-local"
MASQUERADING: Final = "masquerading"
# Sets
CLUSTER_CIDRS: Final = "cluster-cidrs"
CLUSTER_IPS: Final = "cluster-ips"
NODEPORT_IPS: Final = "nodeport-ips"
FIREWALL_IPS: Final = "firewall-ips"
FIREWALL_ALLOW: Final = "firewall-allow"
MASQ_IPS: Final = "masq-ips"
MASQ_NODEPORTS: Final = "masq-nodeports"
HAIRPIN: Final = "hairpin"
NO_ENDPOINTS: Final = "no-endpoints"
# Maps
SERVICE_IPS: Final = "service-ips"
SERVICE_NODEPORTS: Final = "service-nodeports"
EXTERNAL_LOCAL_IPS: Final = "external-local-ips"
EXTERNAL_LOCAL_NODEPORTS: Final = "external-local-nodeports"
BACKENDS: Final = "backends"
LOCAL_BACKENDS: Final = "local-backends"

DSTNAT: Final = -100
SRCNAT: Final = 100
PORT_TYPE: Final = "inet_proto . inet_service"
#: lb-<k> chains always exist for k = 1..MIN_LB_CHAINS, and beyond that up to the next power
#: of two of the largest endpoint count (see "Chains that never change" in the docstring).
MIN_LB_CHAINS: Final = 8
REJECT: Final = "reject"  # (a state, not a verdict: such frontends go to @no-endpoints)
DROP: Final = "drop"
#: Claims of a frontend by a service port (see _Builder._frontend): element sets that are
#: never rendered, only compared, so two service ports on one frontend conflict.
CLAIM: Final = "#"


@dataclass(frozen=True, slots=True)
class FamilySyntax:
    """How one IP family is spelled in its table: the ``ip`` table and the ``ip6`` table
    have the same layout, with these words and types (kube-proxy's nftables proxier also
    runs one table per family)."""

    #: The table's family and the match keyword (``ip daddr`` / ``ip6 daddr``).
    ip: str
    addr_type: str
    host_bits: int

    @property
    def frontend(self) -> str:
        return f"{self.ip} daddr . meta l4proto . th dport"

    @property
    def nodeport_frontend(self) -> str:
        return f"{self.ip} daddr @{NODEPORT_IPS} meta l4proto . th dport"

    @property
    def ip_port_type(self) -> str:
        return f"{self.addr_type} . inet_proto . inet_service"

    @property
    def backends_key(self) -> str:
        # The backends maps need `typeof` (numgen's integer has no fixed-size named type).
        return f"{self.frontend} . numgen random mod 1"

    @property
    def backends_value(self) -> str:
        return f"{self.ip} daddr . th dport"

    def network(self, cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The CIDR, which must be of this family (raises ValueError otherwise)."""
        net = ipaddress.ip_network(cidr)
        if net.max_prefixlen != self.host_bits:
            raise ValueError(f"{cidr} is not an {self.ip} network")
        return net

    def collapse(self, cidrs: Iterable[str]) -> list[str]:
        nets = [self.network(c) for c in cidrs]
        if self.host_bits == 32:
            return [str(n) for n in ipaddress.collapse_addresses(
                n for n in nets if isinstance(n, ipaddress.IPv4Network))]
        return [str(n) for n in ipaddress.collapse_addresses(
            n for n in nets if isinstance(n, ipaddress.IPv6Network))]

    def host(self, ip: str) -> str:
        """A source range of exactly ``ip``."""
        return f"{ip}/{self.host_bits}"

    def target(self, ip: str, port: int) -> str:
        """A ``dnat to`` address and port."""
        return f"{ip}:{port}" if self.host_bits == 32 else f"[{ip}]:{port}"


#: The spelling of each family (keys: Kubernetes' IPFamily names).
SYNTAX: Final = {"IPv4": FamilySyntax("ip", "ipv4_addr", 32),
                 "IPv6": FamilySyntax("ip6", "ipv6_addr", 128)}


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Node-level settings of the data plane (a change means a full sync)."""

    table: str = "svcnet"
    #: The IP family this table serves ("IPv4": table ``ip svcnet``, "IPv6": ``ip6 svcnet``).
    family: str = "IPv4"
    #: Pod CIDRs: the local-traffic detector ("from a pod" vs "from outside the cluster").
    cluster_cidrs: tuple[str, ...] = ("10.244.0.0/16",)
    #: Masquerade all service traffic, not only off-cluster, external and hairpin traffic.
    masquerade_all: bool = False
    #: The mark bit that flags a packet for masquerade (kube-proxy's default is 14: 0x4000).
    masquerade_bit: int = 14
    #: If set, NodePorts are served only on node addresses inside these CIDRs.
    nodeport_cidrs: tuple[str, ...] = ()
    #: Apply loadBalancerSourceRanges to the service's NodePorts as well as its LB IPs.
    source_ranges_on_nodeports: bool = True
    #: Count new connections per (frontend, endpoint): a counter on each backends element.
    traffic_counters: bool = True

    def __post_init__(self) -> None:
        if self.family not in SYNTAX:
            raise ValueError(f"unknown IP family {self.family!r}")
        for cidr in (*self.cluster_cidrs, *self.nodeport_cidrs):
            self.syntax.network(cidr)  # raises on anything malformed or of another family
        if not 0 <= self.masquerade_bit <= 31:
            raise ValueError(f"masquerade_bit {self.masquerade_bit} out of range 0..31")

    @property
    def syntax(self) -> FamilySyntax:
        return SYNTAX[self.family]

    @property
    def mark(self) -> str:
        return f"0x{1 << self.masquerade_bit:08x}"


def lb_chain_count(largest: int) -> int:
    """How many lb-<k> chains exist: MIN_LB_CHAINS, or the next power of two of ``largest``."""
    count = MIN_LB_CHAINS
    while count < largest:
        count *= 2
    return count


@dataclass(frozen=True)
class _Context:
    """What the node and the configuration fix for every service port (computed once)."""

    node: NodeInfo
    config: ProxyConfig
    cluster_cidrs: tuple[str, ...]
    nodeport_ips: tuple[str, ...]

    @property
    def syntax(self) -> FamilySyntax:
        return self.config.syntax

    def off_cluster(self) -> str:
        """Match "source outside the cluster CIDRs" (empty text when there are none)."""
        return f"{self.syntax.ip} saddr != @{CLUSTER_CIDRS} " if self.cluster_cidrs else ""

    def cluster_prologue(self) -> list[Rule]:
        """Masquerade for pickers reached through @service-ips/@service-nodeports."""
        mark = f"jump {MARK_FOR_MASQ}"
        if self.config.masquerade_all:
            return [Rule(mark)]
        if self.cluster_cidrs:
            return [Rule(f"{self.off_cluster()}{mark}")]
        # No local-traffic detector: only host-originated traffic (to ETP Local frontends;
        # everything else external is marked in `services`) needs marking.
        return [Rule(f"fib saddr type local {mark}")]

    def local_prologue(self) -> list[Rule]:
        """Masquerade for sticky-local chains, which serve ClusterIPs under ITP Local (mark
        off-cluster sources) and outside traffic under ETP Local (never mark)."""
        mark = f"jump {MARK_FOR_MASQ}"
        if self.config.masquerade_all:
            return [Rule(f"{self.syntax.ip} daddr @{CLUSTER_IPS} {mark}")]
        if self.cluster_cidrs:
            return [Rule(f"{self.off_cluster()}{self.syntax.ip} daddr @{CLUSTER_IPS} {mark}")]
        return []


@lru_cache(maxsize=8)
def _context(node: NodeInfo, config: ProxyConfig) -> _Context:
    # Only addresses of the table's family are its business (one of the other family, or a
    # malformed one from a hand-made NodeInfo, is ignored rather than fatal).
    canonical = ipv4_value if config.family == "IPv4" else ipv6_value
    node = replace(node, addresses=tuple(
        ip for ip in node.addresses if canonical(ip) is not None))
    syntax = config.syntax
    nets = [syntax.network(c) for c in config.nodeport_cidrs]
    nodeport_ips = []
    for ip in node.addresses:
        addr = ipaddress.ip_address(ip)
        if addr.is_loopback or (nets and not any(addr in n for n in nets)):
            continue  # NodePorts are never served on 127.0.0.1 (or ::1) in nftables mode
        nodeport_ips.append(ip)
    return _Context(node, config, tuple(syntax.collapse(config.cluster_cidrs)),
                    tuple(nodeport_ips))


class _Builder:
    """Accumulates elements and chains of service ports; :meth:`ruleset` freezes them."""

    def __init__(self, node: NodeInfo, config: ProxyConfig) -> None:
        self.ctx = _context(node, config)
        self.node = self.ctx.node
        self.config = config
        self.nodeport_ips = self.ctx.nodeport_ips
        self.elements: dict[str, dict[tuple[str, ...], Element]] = {}
        self.owners: dict[tuple[str, tuple[str, ...]], str] = {}
        self.lb_counts: set[int] = set()
        self.lb_local_counts: set[int] = set()
        self.sticky_chains: dict[str, Chain] = {}
        self.affinity_sets: dict[str, Set] = {}
        self.warnings: list[str] = []

    # -- element bookkeeping --------------------------------------------------------------

    def _put(self, target: str, element: Element, owner: str) -> bool:
        """Add ``element`` unless its key is taken (then warn; the first owner keeps it)."""
        bucket = self.elements.setdefault(target, {})
        previous = bucket.get(element.key)
        if previous is not None:
            if previous != element:
                first = self.owners[(target, element.key)]
                self.warnings.append(
                    f"{owner}: {target.removeprefix(CLAIM)} {' . '.join(element.key)} "
                    f"already used by {first}; "
                    "ignored")
                return False
            return True
        bucket[element.key] = element
        self.owners[(target, element.key)] = owner
        return True

    # -- pickers -------------------------------------------------------------------------

    def _sticky(self, sp: ServicePortInfo, endpoints: Sequence[EndpointInfo], *,
                local: bool) -> str:
        name = (names.sticky_local_chain if local else names.sticky_chain)(sp.name)
        if name not in self.sticky_chains:
            proto = sp.protocol.lower()
            syntax = self.ctx.syntax
            ip = syntax.ip
            rules = self.ctx.local_prologue() if local else self.ctx.cluster_prologue()
            targets: list[tuple[str, str]] = []
            for ep in endpoints:
                aff = names.affinity_set(sp.name, ep)
                if aff not in self.affinity_sets:
                    self.affinity_sets[aff] = Set(
                        aff, syntax.addr_type, flags=("dynamic", "timeout"),
                        timeout=sp.sticky_max_age_seconds)
                targets.append((aff, f"update @{aff} {{ {ip} saddr }} meta l4proto {proto} "
                                     f"dnat {ip} to {syntax.target(ep.ip, ep.port)}"))
            rules += [Rule(f"{ip} saddr @{aff} {action}") for aff, action in targets]
            for i, (_, action) in enumerate(targets):
                remaining = len(targets) - i
                pick = f"numgen random mod {remaining} == 0 " if remaining > 1 else ""
                rules.append(Rule(pick + action))
            self.sticky_chains[name] = Chain(name, tuple(rules))
        return f"goto {name}"

    def _backends(self, target: str, frontend: tuple[str, str, str],
                  endpoints: Sequence[EndpointInfo], owner: str) -> None:
        for i, ep in enumerate(endpoints):
            self._put(target, Element((*frontend, str(i)), (ep.ip, str(ep.port))), owner)

    def _frontend(self, sp: ServicePortInfo, frontend: tuple[str, str, str], verdict: str,
                  endpoints: Sequence[EndpointInfo], *, outside: bool = False,
                  local_eps: bool = False, nodeport: bool = False) -> bool:
        """Point one frontend at ``endpoints`` (or a terminal ``verdict``)."""
        owner = names.service_port_id(sp.name)
        if outside:
            dispatch = EXTERNAL_LOCAL_NODEPORTS if nodeport else EXTERNAL_LOCAL_IPS
        else:
            dispatch = SERVICE_NODEPORTS if nodeport else SERVICE_IPS
        key = frontend[1:] if nodeport else frontend
        # The frontend is this service port's (the first to claim it wins).
        if not self._put(CLAIM + dispatch, Element(key, (), owner), owner):
            return False
        addresses = self.nodeport_ips if nodeport else [frontend[0]]
        if verdict == REJECT:
            for ip in addresses:
                self._put(NO_ENDPOINTS, Element((ip, *frontend[1:]), (), owner), owner)
        elif endpoints and verdict == "" and not sp.client_ip_affinity:
            # The usual case writes set and data map elements only, never a chain reference
            # (see "Chain references" in the module docstring).
            count = len(endpoints)
            (self.lb_local_counts if outside else self.lb_counts).add(count)
            count_set = (names.lb_local_count_set if outside else names.lb_count_set)(count)
            target = LOCAL_BACKENDS if outside else BACKENDS
            for ip in addresses:
                self._put(count_set, Element((ip, *frontend[1:]), (), owner), owner)
                self._backends(target, (ip, *frontend[1:]), endpoints, owner)
        else:
            if endpoints and verdict == "":
                verdict = self._sticky(sp, endpoints, local=local_eps or outside)
            self._put(dispatch, Element(key, (verdict,), owner), owner)
        return True

    # -- one service port ----------------------------------------------------------------

    def add(self, sp: ServicePortInfo, endpoints: Sequence[EndpointInfo]) -> None:
        cat = categorize_endpoints(endpoints, sp, self.node.name, self.node.zone)
        proto, port = sp.protocol.lower(), str(sp.port)
        owner = names.service_port_id(sp.name)
        self._put(CLUSTER_IPS, Element((sp.cluster_ip,)), owner)
        for ep in cat.all_reachable:
            if ep.node_name in (None, self.node.name):
                self._put(HAIRPIN, Element((ep.ip, ep.ip)), owner)

        # ClusterIP: the internal policy's endpoints.
        internal = cat.local if sp.internal_policy_local else cat.cluster
        cluster_ip = (sp.cluster_ip, proto, port)
        if not cat.has_any:
            self._frontend(sp, cluster_ip, REJECT, ())
        elif not internal:
            self._frontend(sp, cluster_ip, DROP, ())
        else:
            self._frontend(sp, cluster_ip, "", internal, local_eps=sp.internal_policy_local)

        # External frontends: external IPs, LoadBalancer IPs, the NodePort.
        frontends: list[tuple[tuple[str, str, str], bool]] = [
            ((ip, proto, port), False) for ip in (*sp.external_ips, *sp.load_balancer_ips)]
        if sp.node_port and self.nodeport_ips:
            frontends.append((("", proto, str(sp.node_port)), True))
        for frontend, nodeport in frontends:
            if not cat.has_any or not cat.cluster:
                self._frontend(sp, frontend, REJECT, (), nodeport=nodeport)
                continue
            if not self._frontend(sp, frontend, "", cat.cluster, nodeport=nodeport):
                continue
            if sp.external_policy_local:
                self._frontend(sp, frontend, "" if cat.local else DROP, cat.local,
                               outside=True, nodeport=nodeport)
            elif nodeport:
                self._put(MASQ_NODEPORTS, Element(frontend[1:]), owner)
            else:
                self._put(MASQ_IPS, Element(frontend), owner)
        self._firewall(sp, owner)

    def _firewall(self, sp: ServicePortInfo, owner: str) -> None:
        if not sp.load_balancer_source_ranges:
            return
        proto = sp.protocol.lower()
        guarded = [(ip, proto, str(sp.port)) for ip in sp.load_balancer_ips]
        if sp.node_port and self.config.source_ranges_on_nodeports:
            guarded += [(ip, proto, str(sp.node_port)) for ip in self.nodeport_ips]
        if not guarded:
            return
        syntax = self.ctx.syntax
        ranges = syntax.collapse(sp.load_balancer_source_ranges)
        nets = [syntax.network(r) for r in ranges]
        sources = list(ranges)
        if any(ipaddress.ip_address(ip) in n for ip in self.node.addresses for n in nets):
            sources += [syntax.host(ip) for ip in sp.load_balancer_ips
                        if not any(ipaddress.ip_address(ip) in n for n in nets)]
        for frontend in guarded:
            if self._put(FIREWALL_IPS, Element(frontend), owner):
                for source in sources:
                    self._put(FIREWALL_ALLOW, Element((*frontend, source)), owner)

    # -- the whole table -----------------------------------------------------------------

    def add_ports(self, ports: Iterable[ServicePortInfo],
                  endpoints: Mapping[ServicePortName, Sequence[EndpointInfo]]) -> None:
        """Add service ports in their canonical order (first claim of a key wins)."""
        seen: set[ServicePortName] = set()
        for sp in sorted(ports, key=lambda sp: sp.name):
            if sp.name in seen:
                self.warnings.append(f"{sp.name}: duplicate service port; ignored")
                continue
            seen.add(sp.name)
            self.add(sp, endpoints.get(sp.name, ()))

    def ruleset(self) -> Ruleset:
        return assemble(self.ctx, self.elements, self.sticky_chains.values(),
                        self.affinity_sets.values(),
                        max(self.lb_counts | self.lb_local_counts, default=0), self.warnings)


def assemble(ctx: _Context, elements: Mapping[str, Mapping[tuple[str, ...], Element]],
             sticky_chains: Iterable[Chain], affinity_sets: Iterable[Set], largest: int,
             warnings: Iterable[str]) -> Ruleset:
    """The table from the service ports' elements and chains (fixed chains, sets and maps
    around them); ``largest`` is the largest endpoint count behind an ``lb-<k>`` chain."""

    def of(name: str) -> tuple[Element, ...]:
        return tuple(elements.get(name, {}).values())

    counts = range(1, lb_chain_count(largest) + 1)
    chains = _fixed_chains(ctx, counts)
    sets = _sets(ctx, of, counts, affinity_sets)
    maps = _maps(ctx, of)
    # The fixed part's fingerprint, readable from the kernel (see svcnet.proxy.nft.adopt).
    fingerprint = layout_fingerprint(chains, (*sets, *maps))
    chains[0] = replace(chains[0], rules=(
        Rule(f"jump {SERVICES}", f"{FINGERPRINT_PREFIX}{fingerprint}"),))
    return Ruleset(Table(ctx.syntax.ip, ctx.config.table, TABLE_COMMENT), (*chains, *sticky_chains),
                   tuple(sets), tuple(maps), tuple(warnings))


def _fixed_chains(ctx: _Context, counts: range) -> list[Chain]:
    """The base chains, the dispatch and masquerading chains, and one ``lb-<k>`` (and
    ``lb-local-<k>``) chain per endpoint count in use."""
    mark = ctx.config.mark
    syntax = ctx.syntax
    ip, frontend, nodeport_frontend = syntax.ip, syntax.frontend, syntax.nodeport_frontend
    outside = f"{ctx.off_cluster()}fib saddr type != local "
    chains = [
        Chain(NAT_PREROUTING, (Rule(f"jump {SERVICES}"),), "nat", "prerouting", DSTNAT,
              "accept"),
        Chain(NAT_OUTPUT, (Rule(f"jump {SERVICES}"),), "nat", "output", DSTNAT, "accept"),
        Chain(NAT_POSTROUTING, (Rule(f"jump {MASQUERADING}"),), "nat", "postrouting",
              SRCNAT, "accept"),
        Chain(SERVICES, (
            Rule(f"{frontend} @{FIREWALL_IPS} {frontend} . {ip} saddr != @{FIREWALL_ALLOW} "
                 "drop", "loadBalancerSourceRanges"),
            Rule(f"{outside}jump {FROM_OUTSIDE}", "externalTrafficPolicy Local, from outside"),
            Rule(f"{frontend} @{MASQ_IPS} jump {MARK_FOR_MASQ}",
                 "externalTrafficPolicy Cluster"),
            Rule(f"{nodeport_frontend} @{MASQ_NODEPORTS} jump {MARK_FOR_MASQ}",
                 "externalTrafficPolicy Cluster"),
            Rule(f"{frontend} vmap @{SERVICE_IPS}"),
            Rule(f"{nodeport_frontend} vmap @{SERVICE_NODEPORTS}"),
            *(Rule(f"{frontend} @{names.lb_count_set(k)} goto {names.lb_chain(k)}")
              for k in counts),
            Rule(f"{frontend} @{NO_ENDPOINTS} reject", "services without endpoints"),
            Rule(f"{ip} daddr @{CLUSTER_IPS} reject", "ClusterIP, unknown port"),
        )),
        Chain(FROM_OUTSIDE, (
            Rule(f"{frontend} vmap @{EXTERNAL_LOCAL_IPS}"),
            Rule(f"{nodeport_frontend} vmap @{EXTERNAL_LOCAL_NODEPORTS}"),
            *(Rule(f"{frontend} @{names.lb_local_count_set(k)} goto {names.lb_local_chain(k)}")
              for k in counts),
        )),
        Chain(MARK_FOR_MASQ, (Rule(f"meta mark set meta mark | {mark}"),)),
        Chain(MASQUERADING, (
            Rule(f"ct status dnat {ip} saddr . {ip} daddr @{HAIRPIN} jump {MARK_FOR_MASQ}",
                 "hairpin"),
            Rule(f"meta mark & {mark} == 0x00000000 return"),
            Rule(f"meta mark set meta mark ^ {mark}"),
            Rule("masquerade fully-random"),
        )),
    ]
    cluster_prologue = ctx.cluster_prologue()
    for k in counts:
        chains.append(Chain(names.lb_chain(k), (
            *cluster_prologue,
            Rule(f"dnat {ip} to {frontend} . numgen random mod {k} map @{BACKENDS}"),
        )))
        chains.append(Chain(names.lb_local_chain(k), (
            Rule(f"dnat {ip} to {frontend} . numgen random mod {k} map @{LOCAL_BACKENDS}"),
        )))
    return chains


def _sets(ctx: _Context, of: Callable[[str], tuple[Element, ...]], counts: range,
          affinity_sets: Iterable[Set]) -> list[Set]:
    addr_type, ip_port_type = ctx.syntax.addr_type, ctx.syntax.ip_port_type
    sets = [
        Set(CLUSTER_IPS, addr_type, comment="ClusterIPs of programmed services",
            elements=of(CLUSTER_IPS)),
        Set(NODEPORT_IPS, addr_type, comment="node addresses serving NodePorts",
            elements=tuple(Element((ip,)) for ip in ctx.nodeport_ips)),
        Set(FIREWALL_IPS, ip_port_type, comment="frontends with loadBalancerSourceRanges",
            elements=of(FIREWALL_IPS)),
        Set(FIREWALL_ALLOW, f"{ip_port_type} . {addr_type}", flags=("interval",),
            comment="frontend . allowed source range", elements=of(FIREWALL_ALLOW)),
        Set(MASQ_IPS, ip_port_type, comment="external IPs of ETP=Cluster services",
            elements=of(MASQ_IPS)),
        Set(MASQ_NODEPORTS, PORT_TYPE, comment="NodePorts of ETP=Cluster services",
            elements=of(MASQ_NODEPORTS)),
        Set(HAIRPIN, f"{addr_type} . {addr_type}", comment="local endpoint . itself",
            elements=of(HAIRPIN)),
        Set(NO_ENDPOINTS, ip_port_type, comment="frontends of services without endpoints",
            elements=of(NO_ENDPOINTS)),
        *(Set(names.lb_count_set(k), ip_port_type, comment=f"frontends with {k} endpoints",
              elements=of(names.lb_count_set(k))) for k in counts),
        *(Set(names.lb_local_count_set(k), ip_port_type,
              comment=f"ETP=Local frontends with {k} local endpoints",
              elements=of(names.lb_local_count_set(k))) for k in counts),
        *affinity_sets,
    ]
    if ctx.cluster_cidrs:
        sets.append(Set(CLUSTER_CIDRS, addr_type, flags=("interval",),
                        comment="pod CIDRs (local traffic)",
                        elements=tuple(Element((c,)) for c in ctx.cluster_cidrs)))
    return sets


def _maps(ctx: _Context, of: Callable[[str], tuple[Element, ...]]) -> list[Map]:
    syntax = ctx.syntax
    ip_port_type, backends_key = syntax.ip_port_type, syntax.backends_key
    maps = [
        Map(SERVICE_IPS, ip_port_type, comment="ClusterIPs, external IPs, LB IPs",
            elements=of(SERVICE_IPS)),
        Map(SERVICE_NODEPORTS, PORT_TYPE, comment="NodePorts",
            elements=of(SERVICE_NODEPORTS)),
        Map(EXTERNAL_LOCAL_IPS, ip_port_type, comment="ETP=Local, from outside",
            elements=of(EXTERNAL_LOCAL_IPS)),
        Map(EXTERNAL_LOCAL_NODEPORTS, PORT_TYPE, comment="ETP=Local NodePorts, from outside",
            elements=of(EXTERNAL_LOCAL_NODEPORTS)),
        Map(BACKENDS, backends_key, typeof=True, value=syntax.backends_value,
            comment="frontend . slot -> endpoint", elements=of(BACKENDS),
            counter=ctx.config.traffic_counters),
        Map(LOCAL_BACKENDS, backends_key, typeof=True, value=syntax.backends_value,
            comment="frontend . slot -> node-local endpoint", elements=of(LOCAL_BACKENDS),
            counter=ctx.config.traffic_counters),
    ]
    return maps


def layout_fingerprint(chains: Iterable[Chain], sets: Iterable[Set | Map]) -> str:
    """A short hash of fixed chains and set definitions (not elements, not sticky chains)."""
    digest = hashlib.sha256()
    for chain in sorted(chains, key=lambda c: c.name):
        digest.update("\n".join(chain.render_block()).encode())
    for s in sorted(sets, key=lambda s: s.name):
        if not s.dynamic:
            digest.update(f"{s.kind} {s.name} {s.spec()}\n".encode())
    return digest.hexdigest()[:16]


def build_ruleset(services: Iterable[Mapping[str, Any]],
                  endpoint_slices: Iterable[Mapping[str, Any]],
                  node: NodeInfo, config: ProxyConfig | None = None) -> Ruleset:
    """The table the node's data plane should hold: pure and deterministic."""
    config = config or ProxyConfig()
    builder = _Builder(node, config)
    builder.add_ports((sp for svc in services for sp in service_ports(svc, config.family)),
                      endpoints_by_port(endpoint_slices, config.family))
    return builder.ruleset()


@dataclass(frozen=True)
class Contribution:
    """What one Service puts into the table, computed on its own (see
    :mod:`svcnet.proxy.changes`): elements by set or map name, its sticky chains and affinity
    sets, the endpoint counts behind its ``lb-<k>`` chains, and its warnings."""

    elements: Mapping[str, Mapping[tuple[str, ...], Element]]
    chains: Mapping[str, Chain]
    sets: Mapping[str, Set]
    lb_counts: frozenset[int]
    warnings: tuple[str, ...]


EMPTY_CONTRIBUTION: Final = Contribution({}, {}, {}, frozenset(), ())


def contribution(service: Mapping[str, Any] | None, endpoint_slices: Iterable[Mapping[str, Any]],
                 node: NodeInfo, config: ProxyConfig) -> Contribution:
    """One Service's part of :func:`build_ruleset`'s table (its EndpointSlices given)."""
    if service is None:
        return EMPTY_CONTRIBUTION
    builder = _Builder(node, config)
    builder.add_ports(service_ports(service, config.family),
                      endpoints_by_port(endpoint_slices, config.family))
    return Contribution(builder.elements, builder.sticky_chains, builder.affinity_sets,
                        frozenset(builder.lb_counts | builder.lb_local_counts),
                        tuple(builder.warnings))


def assemble_contributions(contributions: Iterable[Contribution], node: NodeInfo,
                           config: ProxyConfig) -> Ruleset:
    """The table from Services' contributions, given in (namespace, name) order.

    Equal to :func:`build_ruleset` when no two Services claim one key with different values
    (a conflict: the first claim wins and the loser's dependent elements are skipped, which
    only the whole-cluster builder can decide).
    """
    elements: dict[str, dict[tuple[str, ...], Element]] = {}
    chains: list[Chain] = []
    sets: list[Set] = []
    counts: set[int] = set()
    warnings: list[str] = []
    for c in contributions:
        for target, bucket in c.elements.items():
            elements.setdefault(target, {}).update(bucket)
        chains.extend(c.chains.values())
        sets.extend(c.sets.values())
        counts |= c.lb_counts
        warnings.extend(c.warnings)
    return assemble(_context(node, config), elements, chains, sets, max(counts, default=0),
                    warnings)


def skeleton(node: NodeInfo, config: ProxyConfig, largest: int) -> Ruleset:
    """The table without any Service: the fixed chains, and every set and map's definition."""
    return assemble(_context(node, config), {}, (), (), largest, ())
