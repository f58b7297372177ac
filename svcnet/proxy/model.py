"""The proxy's model: Services, EndpointSlices and Nodes converted once, at the boundary.

Theory of operation
-------------------
The API serves Services, EndpointSlices and Nodes as JSON dicts. The proxy reads them exactly
once, here, into frozen dataclasses that hold only what the data plane needs, already filtered
and canonicalised (as kube-proxy's ``ServiceChangeTracker``/``EndpointSliceCache`` do):

* :func:`service_ports` — one :class:`ServicePortInfo` per port of a Service that this proxy
  should program. Skipped entirely: ``type: ExternalName``, headless Services (``clusterIP:
  None``), Services labelled for another proxy (``service.kubernetes.io/service-proxy-name``) or
  as headless, and Services without a ClusterIP of this proxy's family. Skipped per port: an
  unsupported protocol. External IPs, LoadBalancer ingress IPs (except ``ipMode: Proxy``, which
  a proxying load balancer handles itself) and source ranges are filtered to the family and
  re-printed canonically, so ``010.0.0.1`` and ``10.0.0.1`` are the same address downstream.
* :func:`endpoints_by_port` — all EndpointSlices merged per service port. Slices belong to a
  Service through the ``kubernetes.io/service-name`` label (never through their names); an
  endpoint present in two slices (it moves between slices now and then) counts once per
  ``ip:port``, preferring a non-terminating copy. Condition defaults are upstream's: a missing
  ``ready`` or ``serving`` means true, a missing ``terminating`` means false. Only the first
  address of an endpoint is used (the API allows exactly one for IP address types). Zone
  hints (``hints.forZones``) are kept as a set of zone names; a change of hints is a change of
  the endpoint, so the Service is re-planned (:mod:`svcnet.proxy.topology` decides their use).
* :func:`node_info` — the node's name, zone and the addresses that accept NodePorts.

Identity: a service port is ``(namespace, name, port name, protocol)`` (:class:`ServicePortName`);
an endpoint is ``ip:port`` within it. The same numbers on two protocols are two service ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from svcnet.api.access import is_mapping, mapping_of as _map
from svcnet.api.endpointslices import LABEL_TOPOLOGY_ZONE
from svcnet.api.names import parse_ip_sloppy
from svcnet.proxy.nft.objects import ipv4_value, ipv6_value

__all__ = [
    "ANNOTATION_SOURCE_RANGES",
    "DEFAULT_STICKY_MAX_AGE_SECONDS",
    "LABEL_HEADLESS",
    "LABEL_SERVICE_NAME",
    "LABEL_SERVICE_PROXY_NAME",
    "SUPPORTED_PROTOCOLS",
    "EndpointInfo",
    "NodeInfo",
    "ServicePortInfo",
    "ServicePortName",
    "endpoints_by_port",
    "node_info",
    "service_ports",
]

LABEL_SERVICE_NAME: Final = "kubernetes.io/service-name"
LABEL_SERVICE_PROXY_NAME: Final = "service.kubernetes.io/service-proxy-name"
LABEL_HEADLESS: Final = "service.kubernetes.io/headless"
LABEL_ZONE: Final = LABEL_TOPOLOGY_ZONE
ANNOTATION_SOURCE_RANGES: Final = "service.beta.kubernetes.io/load-balancer-source-ranges"
DEFAULT_STICKY_MAX_AGE_SECONDS: Final = 10800
SUPPORTED_PROTOCOLS: Final = ("TCP", "UDP", "SCTP")

Obj = Mapping[str, Any]


def _list(obj: Obj | None, key: str) -> list[Any]:
    value = obj.get(key) if obj is not None else None
    return list(value) if isinstance(value, list | tuple) else []


def _family_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return "IPv4" if address.version == 4 else "IPv6"


def _canonical_ip(value: object, family: str) -> str | None:
    """Parse like Kubernetes (leading zeros allowed) and re-print, if of ``family``."""
    if not isinstance(value, str):
        return None
    if ipv4_value(value) is not None:  # fast path: already a canonical IPv4 address
        return value if family == "IPv4" else None
    if ipv6_value(value) is not None:  # (and a canonical IPv6 one: both cached)
        return value if family == "IPv6" else None
    parsed = parse_ip_sloppy(value.strip())
    if parsed is None or _family_of(parsed) != family:
        return None
    return str(parsed)


def _canonical_cidr(value: object, family: str) -> str | None:
    """``ParseCIDRSloppy`` then the network address: "10.0.0.1/8" means 10.0.0.0/8."""
    if not isinstance(value, str):
        return None
    addr, sep, prefix = value.strip().partition("/")
    parsed = parse_ip_sloppy(addr)
    if not sep or parsed is None or not prefix.isdigit() or _family_of(parsed) != family:
        return None
    try:
        network = ipaddress.ip_network(f"{parsed}/{int(prefix)}", strict=False)
    except ValueError:
        return None
    return str(network)


def _dedupe(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v is not None))


@dataclass(frozen=True, slots=True, order=True)
class ServicePortName:
    """Identity of a service port: ``(namespace, name, port name, protocol)``."""

    namespace: str
    name: str
    port_name: str
    protocol: str

    def __str__(self) -> str:
        suffix = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.name}{suffix}"


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """Everything about one service port that the data plane needs."""

    name: ServicePortName
    cluster_ip: str
    port: int
    protocol: str = "TCP"
    node_port: int = 0
    cluster_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity: str = "None"
    sticky_max_age_seconds: int = 0
    external_policy_local: bool = False
    internal_policy_local: bool = False
    health_check_node_port: int = 0
    type: str = "ClusterIP"

    @property
    def client_ip_affinity(self) -> bool:
        return self.session_affinity == "ClientIP"

    @property
    def externally_accessible(self) -> bool:
        """Reachable other than through the ClusterIP (NodePort, LB IP, external IP)."""
        return bool(self.node_port or self.load_balancer_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        """Cluster-policy endpoints are needed for ITP Cluster, and for any external traffic
        (even with ETP Local: pods and the node itself short-circuit to all endpoints)."""
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (
            self.external_policy_local and self.externally_accessible)


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint of a service port, with the conditions the proxy acts on."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    zone: str | None = None
    zone_hints: frozenset[str] = frozenset()
    """``hints.forZones`` names: the zones whose nodes should use this endpoint."""

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"

    def is_local(self, node_name: str) -> bool:
        return bool(node_name) and self.node_name == node_name

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return ipv4_value(self.ip) or ipv6_value(self.ip) or 0, self.port, self.ip


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The node this proxy runs on: its name, zone, and the addresses serving NodePorts."""

    name: str
    addresses: tuple[str, ...] = ()
    zone: str | None = None


def _skip_service(svc: Obj) -> bool:
    spec = _map(svc, "spec")
    labels = _map(_map(svc, "metadata"), "labels")
    if spec.get("type") == "ExternalName":
        return True
    if LABEL_SERVICE_PROXY_NAME in labels or LABEL_HEADLESS in labels:
        return True
    cluster_ip = spec.get("clusterIP")
    return cluster_ip in (None, "", "None")


def _source_ranges(svc: Obj, family: str) -> tuple[str, ...]:
    spec = _map(svc, "spec")
    raw = [r for r in _list(spec, "loadBalancerSourceRanges") if isinstance(r, str)]
    if not raw:
        annotation = _map(_map(svc, "metadata"), "annotations").get(ANNOTATION_SOURCE_RANGES)
        if isinstance(annotation, str):
            raw = [part for part in annotation.split(",") if part.strip()]
    return _dedupe(_canonical_cidr(r, family) for r in raw)


def service_ports(svc: Obj, family: str = "IPv4") -> tuple[ServicePortInfo, ...]:
    """The service ports of ``svc`` this proxy programs (empty if it programs none)."""
    if _skip_service(svc):
        return ()
    meta = _map(svc, "metadata")
    spec = _map(svc, "spec")
    namespace = str(meta.get("namespace") or "default")
    name = str(meta.get("name") or "")
    cluster_ips_raw = _list(spec, "clusterIPs") or [spec.get("clusterIP")]
    cluster_ips = _dedupe(_canonical_ip(ip, f) for ip in cluster_ips_raw for f in ("IPv4", "IPv6"))
    cluster_ip = next((ip for ip in cluster_ips if _canonical_ip(ip, family) is not None), None)
    if cluster_ip is None or not name:
        return ()
    svc_type = str(spec.get("type") or "ClusterIP")
    external_ips = _dedupe(_canonical_ip(ip, family) for ip in _list(spec, "externalIPs"))
    lb_ips = _dedupe(
        _canonical_ip(ing.get("ip"), family)
        for ing in _list(_map(_map(svc, "status"), "loadBalancer"), "ingress")
        if is_mapping(ing) and ing.get("ipMode") != "Proxy")
    external_ok = svc_type in ("NodePort", "LoadBalancer") or bool(_list(spec, "externalIPs"))
    etp_local = external_ok and spec.get("externalTrafficPolicy") == "Local"
    itp_local = spec.get("internalTrafficPolicy") == "Local"
    affinity = "ClientIP" if spec.get("sessionAffinity") == "ClientIP" else "None"
    sticky = 0
    if affinity == "ClientIP":
        timeout = _map(_map(spec, "sessionAffinityConfig"), "clientIP").get("timeoutSeconds")
        sticky = timeout if isinstance(timeout, int) and timeout > 0 else (
            DEFAULT_STICKY_MAX_AGE_SECONDS)
    hc_port = spec.get("healthCheckNodePort")
    health_check = hc_port if (svc_type == "LoadBalancer" and etp_local
                               and isinstance(hc_port, int)) else 0
    ranges = _source_ranges(svc, family)
    result: list[ServicePortInfo] = []
    for port in _list(spec, "ports"):
        if not is_mapping(port):
            continue
        protocol = str(port.get("protocol") or "TCP")
        number = port.get("port")
        if protocol not in SUPPORTED_PROTOCOLS or not isinstance(number, int):
            continue
        node_port = port.get("nodePort")
        result.append(ServicePortInfo(
            name=ServicePortName(namespace, name, str(port.get("name") or ""), protocol),
            cluster_ip=cluster_ip,
            port=number,
            protocol=protocol,
            node_port=node_port if isinstance(node_port, int) else 0,
            cluster_ips=cluster_ips,
            external_ips=external_ips,
            load_balancer_ips=lb_ips,
            load_balancer_source_ranges=ranges,
            session_affinity=affinity,
            sticky_max_age_seconds=sticky,
            external_policy_local=etp_local,
            internal_policy_local=itp_local,
            health_check_node_port=health_check,
            type=svc_type,
        ))
    return tuple(result)


def _condition(conditions: Obj, key: str, default: bool) -> bool:
    value = conditions.get(key)
    return default if value is None else bool(value)


def endpoints_by_port(slices: Iterable[Obj], family: str = "IPv4"
                      ) -> dict[ServicePortName, tuple[EndpointInfo, ...]]:
    """Merge EndpointSlices into endpoints per service port (deduplicated, sorted)."""
    address_type = "IPv4" if family == "IPv4" else "IPv6"
    by_port: dict[ServicePortName, dict[tuple[str, int], EndpointInfo]] = {}

    def slice_key(s: Obj) -> tuple[str, str]:
        meta = _map(s, "metadata")
        return str(meta.get("namespace") or ""), str(meta.get("name") or "")

    for eps in sorted(slices, key=slice_key):
        meta = _map(eps, "metadata")
        service = _map(meta, "labels").get(LABEL_SERVICE_NAME)
        if not service or eps.get("addressType") != address_type:
            continue
        namespace = str(meta.get("namespace") or "default")
        endpoints = [e for e in _list(eps, "endpoints") if is_mapping(e)]
        for port in _list(eps, "ports"):
            if not is_mapping(port):
                continue
            number = port.get("port")
            if not isinstance(number, int) or not 0 < number < 65536:
                continue  # upstream: "TODO: handle nil ports to mean all"
            # The API defaults a port's name to "" and its protocol to TCP; an object that
            # skipped defaulting (hand-written) is read the same way.
            spn = ServicePortName(namespace, str(service), str(port.get("name") or ""),
                                  str(port.get("protocol") or "TCP"))
            found = by_port.setdefault(spn, {})
            for endpoint in endpoints:
                addresses = _list(endpoint, "addresses")
                ip = _canonical_ip(addresses[0], family) if addresses else None
                if ip is None:
                    continue
                conditions = _map(endpoint, "conditions")
                node = endpoint.get("nodeName")
                zone = endpoint.get("zone")
                hinted = frozenset(
                    z["name"] for z in _list(_map(endpoint, "hints"), "forZones")
                    if is_mapping(z) and isinstance(z.get("name"), str) and z["name"])
                info = EndpointInfo(
                    ip=ip,
                    port=number,
                    ready=_condition(conditions, "ready", True),
                    serving=_condition(conditions, "serving", True),
                    terminating=_condition(conditions, "terminating", False),
                    node_name=node if isinstance(node, str) and node else None,
                    zone=zone if isinstance(zone, str) and zone else None,
                    zone_hints=hinted,
                )
                # Prefer a running copy over a terminating one (a reused pod IP, or an
                # endpoint caught mid-move between slices).
                if (ip, number) not in found or not info.terminating:
                    found[(ip, number)] = info
    return {spn: tuple(sorted(eps.values(), key=lambda e: e.sort_key))
            for spn, eps in by_port.items() if eps}


def node_info(node: Obj, family: str = "IPv4") -> NodeInfo:
    """Name, zone and NodePort addresses (InternalIP and ExternalIP, never loopback)."""
    meta = _map(node, "metadata")
    addresses: list[str | None] = []
    for address in _list(_map(node, "status"), "addresses"):
        if isinstance(address, Mapping) and address.get("type") in ("InternalIP", "ExternalIP"):
            ip = _canonical_ip(address.get("address"), family)
            if ip is not None and not ipaddress.ip_address(ip).is_loopback:
                addresses.append(ip)
    zone = _map(meta, "labels").get(LABEL_ZONE)
    return NodeInfo(str(meta.get("name") or ""), _dedupe(addresses),
                    zone if isinstance(zone, str) and zone else None)
