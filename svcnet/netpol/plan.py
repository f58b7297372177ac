"""The nftables table that enforces NetworkPolicies on one node (pure).

Theory of operation
-------------------
Kubernetes leaves enforcement to the network plugin; svcnet's follows the semantics of the
NetworkPolicy API (``k8s.io/api/networking/v1`` and the upstream conformance tests in
``test/e2e/network/netpol``) in the node's network namespace, where every packet of a pod
passes:

* pods hang off the node's bridge, and the bridge hands bridged IPv4/IPv6 packets to the
  ``forward`` hook (``net.bridge.bridge-nf-call-ip{,6}tables``, on in each node namespace, as
  kube-proxy also needs it), so pod-to-pod traffic on one node, traffic between nodes and
  traffic from outside all cross the node's ``forward`` hook: on the client's node for the
  client's egress, on the server's node for the server's ingress (both on one node: both
  checks in one pass);
* the chain runs at ``filter`` priority, after the service proxy's DNAT: a connection to a
  ClusterIP, NodePort or LoadBalancer IP is checked against the *endpoint* it was sent to, as
  policies are written for pods, not Services;
* only a connection's first packet is checked (``ct state established,related accept``): the
  replies of an allowed connection pass, whatever the other side's policies say;
* a pod is *isolated for ingress* when a policy of its namespace selects it
  (``spec.podSelector``) and lists ``Ingress`` in ``policyTypes``; likewise for egress. An
  isolated pod's connections in that direction are allowed when a rule of one of those
  policies allows them (the union), and dropped otherwise. A pod no policy isolates is not
  filtered at all;
* a rule matches when a peer and a port match (no ``from``/``to``: any peer; no ``ports``: any
  port). A peer is a ``podSelector`` (pods of the policy's namespace), a ``namespaceSelector``
  (all pods of the namespaces it selects, by their labels, ``kubernetes.io/metadata.name``
  included), both (pods matching the first in namespaces matching the second), or an
  ``ipBlock`` (a CIDR less its ``except`` CIDRs). A port is a protocol with a number, a range
  (``endPort``) or a container port *name*, resolved on the pod that receives: the isolated pod
  itself for ingress, each peer pod for egress (no peer pod has it: the port matches nothing);
* traffic from the node itself (probes, the node agent) to its pods is not filtered (the
  ``output`` hook, outside this table), nor is a pod's traffic to its own node's address
  (``input``): the node is not a peer a policy names;
* svcnet's cluster DNS is not a pod but is reached like one: the addresses of the
  ``kube-system/kube-dns`` EndpointSlice the DNS server publishes count as pods of
  ``kube-system`` labelled ``k8s-app: kube-dns`` with CoreDNS's ports (``dns`` 53/UDP,
  ``dns-tcp`` 53/TCP), so the usual "allow DNS" egress rule works unchanged;
* host-network pods are never isolated and, like the node, are not peers that selectors
  match; pods that are done (Succeeded, Failed) or have no address take no part.

The table (``inet svcnet-netpol``) holds a base chain on ``forward`` that sends a local
isolated pod's packets, by source address for egress and destination address for ingress, to
the chain of its policies (``egress-<hash>``/``ingress-<hash>``, the hash of the chain's
rules: pods with the same policies and ports share one): allowed traffic ``return``s to the
base chain (so egress and then ingress are both checked), the rest is counted and dropped.
Peer addresses are named sets (``peers4-<hash>``; ``ports4-<hash>`` for address . protocol .
port triples), one per distinct content; each rule's peers and address tests are worked out
once per plan, so the plan grows with the pods and the policies, not their product. The whole
table is planned here from the cluster's state and replaced in one transaction (``table``;
``delete table``; the new table): a node without any isolated pod has no table at all.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from svcnet.api.access import labels_of, list_of, map_of, name_of, namespace_of, str_of
from svcnet.api.labels import Selector, SelectorError, selector_from_label_selector

__all__ = ["DNS_LABELS", "FAMILY", "TABLE", "PodInfo", "dns_peers", "plan_table", "pod_info"]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

FAMILY: Final = "inet"
TABLE: Final = "svcnet-netpol"
#: The labels svcnet's DNS server answers to as a peer (CoreDNS's pods carry them).
DNS_LABELS: Final = {"k8s-app": "kube-dns"}
_DNS_MANAGER: Final = "svcnet-dns"
_NAME_LABEL: Final = "kubernetes.io/metadata.name"
_PROTOCOLS: Final = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What enforcement needs of a pod (or of the DNS server standing in for one)."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    ips: tuple[str, ...]
    node: str = ""
    #: Named container ports: (name, protocol, number).
    ports: tuple[tuple[str, str, int], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_info(pod: ObjMap) -> PodInfo | None:
    """The pod as enforcement sees it; None for pods that take no part (no address yet,
    host network, done)."""
    spec, status = map_of(pod, "spec"), map_of(pod, "status")
    if spec.get("hostNetwork") or str_of(status, "phase") in ("Succeeded", "Failed"):
        return None
    ips = tuple(str(p.get("ip")) for p in list_of(status, "podIPs")
                if isinstance(p, Mapping) and p.get("ip"))
    if not ips and str_of(status, "podIP"):
        ips = (str_of(status, "podIP"),)
    if not ips:
        return None
    ports = tuple(
        (str(p["name"]), str(p.get("protocol") or "TCP"), int(p["containerPort"]))
        for c in (*list_of(spec, "initContainers"), *list_of(spec, "containers"))
        if isinstance(c, Mapping)
        for p in list_of(c, "ports")
        if isinstance(p, Mapping) and p.get("name") and isinstance(p.get("containerPort"), int))
    return PodInfo(namespace_of(pod), name_of(pod), dict(labels_of(pod)), ips,
                   str_of(spec, "nodeName"), ports)


def dns_peers(endpoint_slices: Iterable[ObjMap]) -> list[PodInfo]:
    """svcnet's DNS server as peers: the endpoints of the ``kube-system/kube-dns`` slices
    that the server itself publishes (a cluster running CoreDNS pods has real pods instead)."""
    out = []
    for eps in endpoint_slices:
        meta = map_of(eps, "metadata")
        if namespace_of(eps) != "kube-system" or map_of(meta, "labels").get(
                "endpointslice.kubernetes.io/managed-by") != _DNS_MANAGER:
            continue
        ports = tuple((str(p.get("name") or ""), str(p.get("protocol") or "TCP"),
                       int(p["port"])) for p in list_of(eps, "ports")
                      if isinstance(p, Mapping) and p.get("name") and
                      isinstance(p.get("port"), int))
        for i, ep in enumerate(list_of(eps, "endpoints")):
            addresses = tuple(str(a) for a in list_of(ep, "addresses"))
            if addresses:
                out.append(PodInfo("kube-system", f"{name_of(eps)}-{i}", dict(DNS_LABELS),
                                   addresses, ports=ports))
    return out


# -- selection -------------------------------------------------------------------------------


def _policy_types(policy: ObjMap) -> set[str]:
    spec = map_of(policy, "spec")
    types = {str(t) for t in list_of(spec, "policyTypes")}
    if not types:  # the API server defaults them; an object from elsewhere may lack them
        types = {"Ingress", "Egress"} if list_of(spec, "egress") else {"Ingress"}
    return types


@dataclass(slots=True)
class _Peers:
    """Whom one rule's ``from``/``to`` matches."""

    any: bool = False
    pods: list[PodInfo] = field(default_factory=list)
    #: (cidr, except CIDRs)
    blocks: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)


# -- rendering helpers -------------------------------------------------------------------------


def _family(address: str) -> str:
    return "ip6" if ":" in address else "ip"


def _set(items: Iterable[str]) -> str:
    values = sorted(set(items), key=_sort_key)
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def _sort_key(value: str) -> tuple[int, Any, str]:
    """Addresses and networks in numeric order (golden output stays stable), else text."""
    try:
        net = ipaddress.ip_network(value.split(" ", maxsplit=1)[0], strict=False)
        return net.version, int(net.network_address), value
    except ValueError:
        return 0, 0, value


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _numbered(port: ObjMap) -> str | None:
    """A numeric port or range (``80``, ``8000-8080``); None for a name."""
    number, end = port.get("port"), port.get("endPort")
    if isinstance(number, int):
        return f"{number}-{end}" if isinstance(end, int) and end > number else str(number)
    return None


def _port_matches(ports: Sequence[Any], receiver: PodInfo | None) -> list[str] | None:
    """The port tests of a rule whose named ports resolve on ``receiver`` (ingress: the pod
    itself), grouped by protocol; ``[""]``: any port; None: no port can match."""
    if not ports:
        return [""]
    by_protocol: dict[str, list[str]] = {}
    for raw in ports:
        port: ObjMap = raw if isinstance(raw, Mapping) else {}
        protocol = str(port.get("protocol") or "TCP")
        l4 = _PROTOCOLS.get(protocol)
        if l4 is None:
            continue
        if port.get("port") is None:
            by_protocol.setdefault(l4, []).append("")
            continue
        value = _numbered(port)
        if value is None and receiver is not None:
            value = next((str(n) for name, proto, n in receiver.ports
                          if name == port.get("port") and proto == protocol), None)
        if value is not None:
            by_protocol.setdefault(l4, []).append(value)
    if not by_protocol:
        return None
    out = []
    for l4 in sorted(by_protocol):
        values = by_protocol[l4]
        out.append(f"meta l4proto {l4}" if "" in values
                   else f"meta l4proto {l4} th dport {_set(values)}")
    return out


_SET_TYPES: Final = {("ip", False): "ipv4_addr", ("ip6", False): "ipv6_addr",
                     ("ip", True): "ipv4_addr . inet_proto . inet_service",
                     ("ip6", True): "ipv6_addr . inet_proto . inet_service"}


class _Planner:
    """One plan: the cluster's state, and what is worked out once and shared by every pod's
    chains (parsed selectors, each rule's peers, named sets of peer addresses)."""

    def __init__(self, peers: Sequence[PodInfo],
                 namespaces: Mapping[str, Mapping[str, str]]) -> None:
        self.peers = peers
        self.namespaces = namespaces
        self._selectors: dict[str, Selector | None] = {}
        self._rule_peers: dict[tuple[str, str, int, bool], _Peers] = {}
        self._rule_parts: dict[tuple[str, str, int, bool], _RuleParts] = {}
        #: name → (type, elements): sets of several addresses, one per distinct content.
        self.sets: dict[str, tuple[str, tuple[str, ...]]] = {}

    def selects(self, raw: object, labels: Mapping[str, str]) -> bool:
        """A label selector of a (validated) policy; one that does not parse, or is missing,
        selects nothing. Parsed once per distinct selector."""
        key = json.dumps(raw, sort_keys=True)
        if key not in self._selectors:
            try:
                self._selectors[key] = selector_from_label_selector(
                    raw if isinstance(raw, Mapping) else None)
            except SelectorError:
                self._selectors[key] = None
        selector = self._selectors[key]
        return selector is not None and selector.matches(labels)

    def rule_peers(self, policy: ObjMap, direction: str, index: int,
                   raw_peers: Sequence[Any]) -> _Peers:
        """Whom rule ``index`` of ``policy`` matches, worked out once per plan."""
        key = (namespace_of(policy), name_of(policy), index, direction == "egress")
        if key not in self._rule_peers:
            self._rule_peers[key] = self._peers(namespace_of(policy), raw_peers)
        return self._rule_peers[key]

    def _peers(self, own_ns: str, raw_peers: Sequence[Any]) -> _Peers:
        if not raw_peers:
            return _Peers(any=True)
        out = _Peers()
        seen: set[str] = set()
        for raw in raw_peers:
            peer: ObjMap = raw if isinstance(raw, Mapping) else {}
            block = peer.get("ipBlock")
            if isinstance(block, Mapping):
                out.blocks.append((str_of(block, "cidr"),
                                   tuple(str(c) for c in list_of(block, "except"))))
                continue
            pod_sel, ns_sel = peer.get("podSelector"), peer.get("namespaceSelector")
            for pod in self.peers:
                if ns_sel is None:
                    if pod.namespace != own_ns:
                        continue
                elif not self.selects(ns_sel, {**self.namespaces.get(pod.namespace, {}),
                                               _NAME_LABEL: pod.namespace}):
                    continue
                if pod_sel is not None and not self.selects(pod_sel, pod.labels):
                    continue
                if pod.key not in seen:
                    seen.add(pod.key)
                    out.pods.append(pod)
        return out

    def _ref(self, family: str, values: Iterable[str], *, triples: bool = False) -> str:
        """One address (or triple) as itself, several as a named set shared by every rule
        that names the same ones."""
        ordered = sorted(set(values), key=_sort_key)
        if len(ordered) == 1:
            return ordered[0] if not triples else "{ " + ordered[0] + " }"
        name = f"{'peers' if not triples else 'ports'}{'6' if family == 'ip6' else '4'}-" \
               f"{_digest(*ordered)}"
        self.sets[name] = (_SET_TYPES[family, triples], tuple(ordered))
        return f"@{name}"

    def address_matches(self, peers: _Peers, field_: str) -> list[str]:
        """The address tests of a rule (``[""]``: any address); empty when nothing matches."""
        if peers.any:
            return [""]
        out = []
        for family in ("ip", "ip6"):
            addresses = [ip for pod in peers.pods for ip in pod.ips if _family(ip) == family]
            if addresses:
                out.append(f"{family} {field_} {self._ref(family, addresses)}")
        for cidr, excepts in peers.blocks:
            family = _family(cidr)
            test = f"{family} {field_} {cidr}"
            if excepts:
                test += f" {family} {field_} != {_set(excepts)}"
            out.append(test)
        return out

    def named_egress(self, ports: Sequence[Any], peers: _Peers) -> list[str]:
        """Egress to named ports: (address . protocol . port) of each peer pod that has one."""
        candidates = self.peers if peers.any else peers.pods
        triples: dict[str, list[str]] = {"ip": [], "ip6": []}
        for raw in ports:
            port: ObjMap = raw if isinstance(raw, Mapping) else {}
            name, protocol = port.get("port"), str(port.get("protocol") or "TCP")
            l4 = _PROTOCOLS.get(protocol)
            if not isinstance(name, str) or l4 is None:
                continue
            for pod in candidates:
                for pname, proto, number in pod.ports:
                    if pname != name or proto != protocol:
                        continue
                    for ip in pod.ips:
                        triples[_family(ip)].append(f"{ip} . {l4} . {number}")
        return [f"{family} daddr . meta l4proto . th dport "
                f"{self._ref(family, items, triples=True)}"
                for family, items in triples.items() if items]

    def rule_lines(self, direction: str, index: int, rule: ObjMap, policy: ObjMap,
                   pod: PodInfo) -> list[str]:
        """The ``return`` rules of one ingress or egress rule, for ``pod``'s chain. All but an
        ingress rule's named ports are the same for every pod: worked out once per plan."""
        key = (namespace_of(policy), name_of(policy), index, direction == "egress")
        parts = self._rule_parts.get(key)
        if parts is None:
            parts = self._rule_parts[key] = self._parts(direction, rule, self.rule_peers(
                policy, direction, index,
                list_of(rule, "from" if direction == "ingress" else "to")))
        port_tests = (_port_matches(list_of(rule, "ports"), pod) if parts.per_pod
                      else parts.ports)
        if port_tests is None:
            return list(parts.fixed)
        return [*parts.fixed, *(" ".join(t for t in (address, port_test, "return") if t)
                                for address in parts.addresses for port_test in port_tests)]

    def _parts(self, direction: str, rule: ObjMap, peers: _Peers) -> _RuleParts:
        """A rule's pod-independent parts (see :class:`_RuleParts`)."""
        ports = list_of(rule, "ports")
        field_ = "saddr" if direction == "ingress" else "daddr"
        addresses = self.address_matches(peers, field_)
        named = [p for p in ports if isinstance(p, Mapping) and isinstance(p.get("port"), str)]
        if direction == "ingress":
            return _RuleParts([], addresses, None if named else _port_matches(ports, None),
                              per_pod=bool(named))
        numeric = [p for p in ports if p not in named]
        fixed = [f"{test} return" for test in self.named_egress(named, peers)]
        if named and not numeric:
            return _RuleParts(fixed, addresses, None)
        return _RuleParts(fixed, addresses, _port_matches(numeric, None))


@dataclass(frozen=True, slots=True)
class _RuleParts:
    """What one rule contributes to every chain that has it, worked out once per plan."""

    #: Finished lines (egress to named ports: address, protocol and port together).
    fixed: list[str]
    #: The address tests the port tests combine with (``[""]``: any address).
    addresses: list[str]
    #: The port tests (None: no more lines), unless ``per_pod``.
    ports: list[str] | None
    #: An ingress rule naming ports: they resolve on each pod receiving.
    per_pod: bool = False


def _vmap(family: str, field_: str, entries: Mapping[str, str]) -> str:
    items = ", ".join(f"{ip} : jump {chain}" for ip, chain in sorted(
        entries.items(), key=lambda kv: _sort_key(kv[0])))
    return f"\t\t{family} {field_} vmap {{ {items} }}"


def plan_table(policies: Iterable[ObjMap], pods: Iterable[ObjMap],
               namespaces: Mapping[str, Mapping[str, str]], node: str, *,
               extra_peers: Sequence[PodInfo] = ()) -> str:
    """The ``nft -f`` script that makes ``node``'s table what the policies ask: the table
    replaced whole in one transaction, or removed when no pod of the node is isolated.
    ``namespaces`` maps each namespace to its labels; ``extra_peers`` are peers that are not
    pods (svcnet's DNS server, :func:`dns_peers`).

    Pods whose chains would be the same (same policies, same resolved ports) share one chain,
    named by its content; peer addresses go in named sets, one per distinct content, so the
    script grows with the pods and policies, not with their product."""
    infos = [i for i in (pod_info(p) for p in pods) if i is not None]
    planner = _Planner([*infos, *extra_peers], namespaces)
    by_namespace: dict[str, list[ObjMap]] = {}
    for policy in sorted(policies, key=lambda p: (namespace_of(p), name_of(p))):
        by_namespace.setdefault(namespace_of(policy), []).append(policy)
    chains: dict[str, list[str]] = {}
    dispatch: dict[tuple[str, str], dict[str, str]] = {}
    for pod in sorted((i for i in infos if i.node == node), key=lambda i: i.key):
        for direction, type_name, field_ in (("egress", "Egress", "saddr"),
                                             ("ingress", "Ingress", "daddr")):
            selecting = [p for p in by_namespace.get(pod.namespace, ())
                         if type_name in _policy_types(p)
                         and planner.selects(map_of(p, "spec").get("podSelector", {}),
                                             pod.labels)]
            if not selecting:
                continue
            body = [line for policy in selecting
                    for index, rule in enumerate(list_of(map_of(policy, "spec"), direction))
                    if isinstance(rule, Mapping)
                    for line in planner.rule_lines(direction, index, rule, policy, pod)]
            names = " ".join(f"{namespace_of(p)}/{name_of(p)}" for p in selecting)
            body.append(f'counter drop comment "{names}"')
            name = f"{direction}-{_digest(*body)}"
            chains[name] = body
            for ip in pod.ips:
                dispatch.setdefault((_family(ip), field_), {})[ip] = name
    header = f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n"
    if not chains:
        return header
    lines = [f"table {FAMILY} {TABLE} {{"]
    for name in sorted(planner.sets):
        kind, elements = planner.sets[name]
        lines += [f"\tset {name} {{", f"\t\ttype {kind}",
                  f"\t\telements = {{ {', '.join(elements)} }}", "\t}"]
    lines += ["\tchain forward {",
              "\t\ttype filter hook forward priority filter; policy accept;",
              "\t\tct state established,related accept"]
    for key in (("ip", "saddr"), ("ip6", "saddr"), ("ip", "daddr"), ("ip6", "daddr")):
        if key in dispatch:
            lines.append(_vmap(key[0], key[1], dispatch[key]))
    lines.append("\t}")
    for name in sorted(chains):
        lines += [f"\tchain {name} {{", *(f"\t\t{line}" for line in chains[name]), "\t}"]
    return header + "\n".join(lines) + "\n}\n"
