"""Connection rates per Service and per endpoint, from the node agents' data-plane counters.

Theory of operation
-------------------
Each node agent publishes the counters of its proxy table (``GET /stats/services`` on its
HTTPS server, reached through the API server's ``nodes/{name}/proxy``; see
:mod:`svcnet.proxy.counters`): new connections per (frontend address, protocol, port, endpoint
address, port), counted by the kernel in the one lookup that picks the endpoint. A counter
only grows, except when its element is rewritten (the endpoint moved to another slot, the
Service was recreated) or the table was reloaded: then it starts again from zero.

:class:`RateTracker` keeps each node's previous sample and turns two samples into rates
(connections per second): a counter that went down restarted, so its whole value is new. A key
missing from the previous sample is new, counted from zero... except on a node's first sample,
which only sets the baseline. :func:`service_rates` then attributes each (frontend, endpoint)
to the Service owning the frontend — a ClusterIP or external/LoadBalancer IP with its port, or a
node address with a NodePort — summing over nodes. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api.access import as_dict, as_list, as_str, meta_of

Key = tuple[str, str, str, str, str]
"""(frontend address, protocol, frontend port, endpoint address, endpoint port)."""
Sample = dict[Key, int]


def parse_sample(doc: Mapping[str, Any]) -> Sample:
    """A node agent's ``/stats/services`` answer as a :data:`Sample` (bad rows skipped)."""
    out: Sample = {}
    for row in as_list(doc.get("connections")):
        if not isinstance(row, list) or len(row) != 6 or not isinstance(row[5], int):
            continue
        key: Key = (str(row[0]), str(row[1]).lower(), str(row[2]), str(row[3]), str(row[4]))
        out[key] = out.get(key, 0) + row[5]
    return out


def rates_between(before: Sample, after: Sample, seconds: float) -> dict[Key, float]:
    """Connections per second per key from two samples ``seconds`` apart."""
    if seconds <= 0:
        return {}
    out: dict[Key, float] = {}
    for key, now in after.items():
        then = before.get(key, 0)
        delta = now - then if now >= then else now  # went down: the counter restarted
        out[key] = delta / seconds
    return out


@dataclass
class RateTracker:
    """Per node: the last sample and its time, and the rates it gave."""

    _last: dict[str, tuple[float, Sample]] = field(default_factory=dict)
    _rates: dict[str, dict[Key, float]] = field(default_factory=dict)

    def update(self, node: str, when: float, sample: Sample) -> None:
        previous = self._last.get(node)
        self._last[node] = (when, sample)
        if previous is not None:
            self._rates[node] = rates_between(previous[1], sample, when - previous[0])

    def forget(self, nodes_left: Iterable[str]) -> None:
        """Drop nodes not in ``nodes_left``."""
        keep = set(nodes_left)
        for node in [n for n in self._last if n not in keep]:
            self._last.pop(node, None)
            self._rates.pop(node, None)

    def rates(self) -> dict[Key, float]:
        """Summed over nodes."""
        out: dict[Key, float] = {}
        for per_node in self._rates.values():
            for key, rate in per_node.items():
                out[key] = out.get(key, 0.0) + rate
        return out


def frontend_owners(services: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]],
                    ) -> dict[tuple[str, str, str], str]:
    """(address, protocol, port) -> ``namespace/name`` of the Service it reaches."""
    node_ips = [str(a.get("address")) for n in nodes
                for a in as_list(as_dict(n.get("status")).get("addresses"))
                if isinstance(a, dict) and a.get("type") in ("InternalIP", "ExternalIP")]
    owners: dict[tuple[str, str, str], str] = {}
    for svc in services:
        meta, spec = meta_of(svc), as_dict(svc.get("spec"))
        key = f"{as_str(meta.get('namespace'))}/{as_str(meta.get('name'))}"
        ips = [ip for ip in as_list(spec.get("clusterIPs")) or [spec.get("clusterIP")]
               if ip and ip != "None"]
        ips += as_list(spec.get("externalIPs"))
        ips += [as_str(as_dict(i).get("ip")) for i in as_list(
            as_dict(as_dict(svc.get("status")).get("loadBalancer")).get("ingress"))]
        for p in as_list(spec.get("ports")):
            if not isinstance(p, dict):
                continue
            proto = (as_str(p.get("protocol")) or "TCP").lower()
            for ip in ips:
                if ip:
                    owners[(str(ip), proto, str(p.get("port")))] = key
            if p.get("nodePort"):
                for ip in node_ips:
                    owners[(ip, proto, str(p["nodePort"]))] = key
    return owners


def service_rates(rates: Mapping[Key, float], owners: Mapping[tuple[str, str, str], str],
                  ) -> dict[str, float]:
    """Rates by ``namespace/name`` and by ``namespace/name|endpoint-ip:port``."""
    out: dict[str, float] = {}
    for (fip, proto, fport, eip, eport), rate in rates.items():
        owner = owners.get((fip, proto, fport))
        if owner is None:
            continue
        out[owner] = out.get(owner, 0.0) + rate
        ep = f"{owner}|{eip}:{eport}"
        out[ep] = out.get(ep, 0.0) + rate
    return out
