"""A pod's DNS settings (its resolv.conf), exactly as the kubelet forms them.

Theory of operation
-------------------
Follows the kubelet's DNS configurer (kubernetes ``pkg/kubelet/network/dns/dns.go``,
``GetPodDNS``) as a pure function of the pod, the node's "host" resolv.conf (the kubelet's
``--resolv-conf``, parsed by svcnet/util/resolvconf.py; None for ``--resolv-conf=""``), the
cluster DNS addresses (``--cluster-dns``) and the cluster domain:

1. **The base** is the host's nameservers, search domains and options.
2. **The policy** picks the kind of settings (``getPodDNSType``):

   * ``ClusterFirst`` (the default), or ``ClusterFirstWithHostNet``: *cluster*; but
     ``ClusterFirst`` on a host-network pod falls back to ``Default``;
   * ``Default``: *host*; ``None``: *none*; anything else (the API server rejects it) is
     logged and treated as ``ClusterFirst``.

3. **cluster**: nameservers = the cluster DNS only; search = ``<ns>.svc.<domain>``,
   ``svc.<domain>``, ``<domain>``, then the host's search domains, duplicates dropped;
   options = ``ndots:5`` only (the host's options are not inherited). Without a cluster DNS
   address the pod gets a ``MissingClusterDNS`` warning and *host* settings.
   **host**: the base as it is; with no host file (``--resolv-conf=""``) nameserver
   ``127.0.0.1`` (``::1`` for an IPv6 node; one per node IP) and search ``.``, which in effect
   turns DNS lookups off. **none**: empty.
4. **dnsConfig** is appended (``appendDNSConfig``): its nameservers and searches after the
   base's, duplicates dropped; its options merged by name (``mergeDNSOptions``): a name given
   again replaces the value, ``name`` alone (or an empty value) is written without a colon.
   The kubelet rebuilds the options from a Go map, so its order is random; ours keeps first
   appearance order, the same set.
5. **Limits** (``formDNSConfigFitsLimits``): at most 3 nameservers (``Nameserver limits were
   exceeded, ...``); at most 32 search domains, none longer than 253 characters, the line at
   most 2048 characters, cut from the end (``Search Line limits were exceeded, ...``): both
   Warning Events with reason ``DNSConfigForming`` on the pod, the kubelet's words.

The pod's resolv.conf (:meth:`PodDNS.resolv_conf`) is what the container runtime writes for
these settings: ``search``, ``nameserver`` lines, ``options``. The same settings go to
containerd as the sandbox's DNSConfig (svcnet/node/crispec.py).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from svcnet.node.pods import format_pod, is_host_network
from svcnet.util.resolvconf import ResolvConf

__all__ = [
    "DEFAULT_OPTIONS",
    "MAX_NAMESERVERS",
    "MAX_SEARCH_LIST_CHARS",
    "MAX_SEARCH_PATHS",
    "PodDNS",
    "merge_options",
    "pod_dns",
]

log = logging.getLogger(__name__)

Pod = Mapping[str, Any]
DEFAULT_OPTIONS: Final = ("ndots:5",)
MAX_NAMESERVERS: Final = 3
MAX_SEARCH_PATHS: Final = 32
MAX_SEARCH_LIST_CHARS: Final = 2048
MAX_SEARCH_PATH_LENGTH: Final = 253
"""DNS-1123 subdomain length: longer search paths make some resolvers (glibc 2.28) abort."""
DNS_CONFIG_FORMING: Final = "DNSConfigForming"
MISSING_CLUSTER_DNS: Final = "MissingClusterDNS"


@dataclass(frozen=True, slots=True)
class PodDNS:
    servers: tuple[str, ...]
    searches: tuple[str, ...]
    options: tuple[str, ...]
    warnings: tuple[tuple[str, str], ...] = ()
    """(reason, message) of the Warning Events the kubelet records on the pod."""

    def resolv_conf(self) -> str:
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {s}" for s in self.servers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def merge_options(existing: Sequence[str], extra: Sequence[Mapping[str, Any]]) -> list[str]:
    """The kubelet's ``mergeDNSOptions``: ``existing`` (``name`` or ``name:value``) with the
    pod's ``dnsConfig.options`` (``{name, value?}``) over them, by name."""
    merged: dict[str, str] = {}
    for option in existing:
        name, _, value = option.partition(":")
        merged[name] = value
    for op in extra:
        given = op.get("value")
        merged[str(op.get("name", ""))] = "" if given is None else str(given)
    return [f"{name}:{value}" if value else name for name, value in merged.items()]


def _fit_searches(searches: list[str]) -> tuple[list[str], bool]:
    """``formDNSSearchFitsLimits``: the searches within the limits, and whether any went."""
    exceeded = False
    if len(searches) > MAX_SEARCH_PATHS:
        searches, exceeded = searches[:MAX_SEARCH_PATHS], True
    kept = [s for s in searches if len(s) <= MAX_SEARCH_PATH_LENGTH]
    exceeded = exceeded or len(kept) != len(searches)
    length = len(" ".join(kept))
    if length > MAX_SEARCH_LIST_CHARS:
        cut = 0
        while kept[: len(kept) - cut] and length > MAX_SEARCH_LIST_CHARS:
            length -= len(kept[len(kept) - 1 - cut]) + 1
            cut += 1
        kept, exceeded = kept[: len(kept) - cut], True
    return kept, exceeded


def _policy_kind(pod: Pod) -> str:
    """``getPodDNSType``: ``cluster``, ``host`` or ``none``."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    match policy:
        case "None":
            return "none"
        case "ClusterFirstWithHostNet":
            return "cluster"
        case "ClusterFirst":
            return "host" if is_host_network(pod) else "cluster"
        case "Default":
            return "host"
    log.error("invalid DNSPolicy=%s for pod %s; falling back to ClusterFirst", policy,
              format_pod(pod))
    return "cluster"


def _loopback_for(node_ips: Sequence[str]) -> list[str]:
    out = []
    for ip in node_ips:
        try:
            out.append("::1" if ipaddress.ip_address(ip).version == 6 else "127.0.0.1")
        except ValueError:
            continue
    return out or ["127.0.0.1"]


def pod_dns(pod: Pod, *, host: ResolvConf | None, cluster_dns: Sequence[str],
            cluster_domain: str = "cluster.local", node_ips: Sequence[str] = ()) -> PodDNS:
    """The pod's DNS settings (module doc). ``host`` None: the kubelet's ``--resolv-conf=""``."""
    base = host or ResolvConf()
    servers, searches, options = (list(base.nameservers), list(base.searches),
                                  list(base.options))
    warnings: list[tuple[str, str]] = []
    kind = _policy_kind(pod)
    if kind == "none":
        servers, searches, options = [], [], []
    elif kind == "cluster" and cluster_dns:
        servers = list(cluster_dns)
        if cluster_domain:
            ns = (pod.get("metadata") or {}).get("namespace") or "default"
            searches = _unique([f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}",
                                cluster_domain, *searches])
        options = list(DEFAULT_OPTIONS)
    else:
        if kind == "cluster":
            message = ('kubelet does not have ClusterDNS IP configured and cannot create Pod '
                       'using "ClusterFirst" policy. Falling back to "Default" policy.')
            warnings.append((MISSING_CLUSTER_DNS, f'pod: "{format_pod(pod)}". {message}'))
        if host is None:
            servers, searches = _loopback_for(node_ips), ["."]
    config = (pod.get("spec") or {}).get("dnsConfig")
    if isinstance(config, Mapping):
        servers = _unique([*servers, *(config.get("nameservers") or [])])
        searches = _unique([*searches, *(config.get("searches") or [])])
        options = merge_options(options, config.get("options") or [])
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append((DNS_CONFIG_FORMING, "Nameserver limits were exceeded, some "
                         "nameservers have been omitted, the applied nameserver line is: "
                         + " ".join(servers)))
    searches, exceeded = _fit_searches(searches)
    if exceeded:
        warnings.append((DNS_CONFIG_FORMING, "Search Line limits were exceeded, some search "
                         "paths have been omitted, the applied search line is: "
                         + " ".join(searches)))
    return PodDNS(tuple(servers), tuple(searches), tuple(options), tuple(warnings))
