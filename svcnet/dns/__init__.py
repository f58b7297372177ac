"""Cluster DNS: the Kubernetes DNS specification (schema 1.0.1) served from the API's state.

Layers, each usable alone:

* :mod:`~svcnet.dns.records`: pure. Services + EndpointSlices → :class:`Zone`
  (:func:`build_zone`); a question → :class:`Answer` (:func:`answer`).
* :mod:`~svcnet.dns.server`: :class:`DNSCore`, the sans-IO message protocol (wire cache,
  FORMERR/NOTIMP/REFUSED, forwarding decisions) over dnslib; :class:`DNSServer`, its asyncio
  UDP + TCP shell; :class:`Upstream`, the forwarder.
* :mod:`~svcnet.dns.cache`: pure. The forward cache (upstream answers kept for their TTLs).
* :mod:`~svcnet.dns.upstreams`: pure. ``--upstream`` values, or the host's resolvers without
  loopback stubs (docs/EGRESS.md).
* :mod:`~svcnet.dns.service`: :class:`DNSService` (informers → debounced zone rebuilds),
  :class:`ClusterDNS` (server + service) and :func:`run_dns` (run until SIGTERM), which is also
  ``python -m svcnet.dns``.
"""

from svcnet.dns.records import Answer, Rcode, RType, Zone, answer, build_zone
from svcnet.dns.server import DNSCore, DNSServer, Upstream, parse_resolv_conf
from svcnet.dns.service import (
    ClusterDNS,
    DNSService,
    StaticSource,
    kube_dns_endpoint_slice,
    kube_dns_service,
    run_dns,
)

__all__ = [
    "Answer",
    "ClusterDNS",
    "DNSCore",
    "DNSServer",
    "DNSService",
    "RType",
    "Rcode",
    "StaticSource",
    "Upstream",
    "Zone",
    "answer",
    "build_zone",
    "kube_dns_endpoint_slice",
    "kube_dns_service",
    "parse_resolv_conf",
    "run_dns",
]
