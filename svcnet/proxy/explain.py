"""`svcnet explain`: the path a Service's packets take through one node's ruleset (pure).

Given the Service, the cluster's EndpointSlices and the Node, build the node's desired ruleset
(the same function the proxy applies) and pick out everything that mentions the Service's
frontends — ClusterIPs, external and LoadBalancer IPs with their ports, NodePorts — and the
backends they resolve to. Because the ruleset is a pure function of those objects, this is what
the node's kernel holds after its proxy synced; the CLI can also show the live map elements.

Before the rules, one line per service port says which endpoints this node uses and why
(:func:`endpoint_lines`): each endpoint with its zone and zone hints, whether the hints are
followed here (:func:`~svcnet.proxy.topology.can_use_topology`), and the cluster-policy and
local-policy lists :func:`~svcnet.proxy.topology.categorize_endpoints` picked. LoadBalancer
ingress IPs with ``ipMode: Proxy`` are listed apart: the proxy programs nothing for them.
A dual-stack Service is explained once per family (``config.family``: the ``ip`` or the
``ip6`` table, with that family's frontends and endpoints).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from svcnet.proxy import names
from svcnet.proxy.model import EndpointInfo, NodeInfo, endpoints_by_port, service_ports
from svcnet.proxy.nft.objects import Element, Ruleset
from svcnet.proxy.ruleset import ProxyConfig, build_ruleset
from svcnet.proxy.topology import categorize_endpoints

Obj = dict[str, Any]


def frontends(svc: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(addresses, node ports) by which clients reach the Service."""
    spec = svc.get("spec") or {}
    ips = {ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"}
    ips |= set(spec.get("externalIPs") or [])
    ips |= {i["ip"] for i in _ingress(svc) if i.get("ip") and i.get("ipMode") != "Proxy"}
    node_ports = {str(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    return ips, node_ports


def _ingress(svc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i for i in ingress if isinstance(i, Mapping)]


def _describe_endpoint(ep: EndpointInfo) -> str:
    text = str(ep)
    if ep.zone:
        text += f" zone={ep.zone}"
    if ep.zone_hints:
        text += f" for={','.join(sorted(ep.zone_hints))}"
    flags = [f for f, on in (("not-ready", not ep.ready), ("terminating", ep.terminating))
             if on]
    return text + (f" ({', '.join(flags)})" if flags else "")


def endpoint_lines(svc: Obj, slices: Iterable[Obj], node: NodeInfo,
                   family: str = "IPv4") -> list[str]:
    """Which endpoints each service port uses on ``node``, and whether zone hints decided."""
    by_port = endpoints_by_port(list(slices), family)
    lines: list[str] = []
    for sp in service_ports(svc, family):
        endpoints = by_port.get(sp.name, ())
        cat = categorize_endpoints(endpoints, sp, node.name, node.zone)
        hinted = any(ep.zone_hints for ep in endpoints)
        if cat.topology:
            how = f"zone hints followed for zone {node.zone}"
        elif hinted:
            how = (f"zone hints ignored (node zone {node.zone or 'unset'}: every ready "
                   "endpoint needs a hint and one must be for this zone)")
        else:
            how = "no zone hints"
        lines.append(f"  endpoints of {sp.name} ({sp.protocol.lower()}/{sp.port}), {how}:")
        lines += [f"    {_describe_endpoint(ep)}" for ep in endpoints] or ["    -"]
        if sp.uses_cluster_endpoints:
            lines.append(f"    used (cluster): {', '.join(map(str, cat.cluster)) or '-'}")
        if sp.uses_local_endpoints:
            lines.append(f"    used (local): {', '.join(map(str, cat.local)) or '-'}")
    return lines


def _mentions(element: Element, ips: set[str], node_ports: set[str], map_name: str,
              node_addresses: Iterable[str] = ()) -> bool:
    key = element.key
    if "nodeport" in map_name:
        return len(key) >= 2 and key[1] in node_ports
    # (A NodePort's address . protocol . port, as in count sets and backends.)
    return bool(key) and (key[0] in ips or (
        len(key) >= 3 and key[0] in node_addresses and key[2] in node_ports))


def explain(svc: Obj, services: Iterable[Obj], slices: Iterable[Obj], node: NodeInfo,
            config: ProxyConfig | None = None) -> list[str]:
    """Lines describing the Service's frontends, verdicts and backends on ``node``."""
    slices = list(slices)
    config = config or ProxyConfig()
    ruleset: Ruleset = build_ruleset(list(services), slices, node, config)
    ips, node_ports = frontends(svc)
    six = config.family == "IPv6"
    ips = {ip for ip in ips if (":" in ip) == six}
    addresses = [a for a in node.addresses if (":" in a) == six]
    meta = svc.get("metadata") or {}
    lines = [f"Service {meta.get('namespace')}/{meta.get('name')} on node {node.name} "
             f"(table {ruleset.table.ref}):",
             f"  frontends: {', '.join(sorted(ips)) or '-'}"
             + (f"; node ports {', '.join(sorted(node_ports))} on "
                f"{', '.join(addresses) or 'the node'}" if node_ports else "")]
    proxied = sorted(i["ip"] for i in _ingress(svc) if i.get("ip") and i.get("ipMode") == "Proxy")
    if proxied:
        lines.append(f"  load balancer IPs with ipMode Proxy (not programmed here: traffic to "
                     f"them goes through the load balancer): {', '.join(proxied)}")
    lines += endpoint_lines(svc, slices, node, config.family)
    for m in (*ruleset.maps, *ruleset.sets):
        hits = [e for e in m.elements
                if _mentions(e, ips, node_ports, m.name, node.addresses)]
        if not hits:
            continue
        lines.append(f"  @{m.name}:")
        lines += [f"    {e.render()}" for e in hits]
    chains = {e.value[0].split()[-1] for m in ruleset.maps for e in m.elements
              if _mentions(e, ips, node_ports, m.name) and e.value
              and e.value[0].startswith(("goto ", "jump "))}
    # A count set's frontends go to its lb chain (by a rule, not a verdict element).
    chains |= {target for s in ruleset.sets
               if (target := names.chain_of_count_set(s.name)) is not None
               and any(_mentions(e, ips, node_ports, s.name, node.addresses)
                       for e in s.elements)}
    for name in sorted(chains):
        chain = ruleset.chain_by_name.get(name)
        if chain is not None:
            lines.append(f"  chain {name}:")
            lines += [f"    {r.render()}" for r in chain.rules]
    return lines
