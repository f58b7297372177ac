"""EndpointSlice (discovery.k8s.io/v1) defaulting and validation, as Kubernetes does it.

Mirrors:

* ``pkg/apis/discovery/v1/defaults.go`` — ``SetDefaults_EndpointPort`` (name ``""``,
  protocol ``TCP``);
* ``pkg/apis/discovery/validation/validation.go`` — ``ValidateEndpointSliceCreate``,
  ``ValidateEndpointSliceUpdate``, ``validateEndpoints``, ``validatePorts``,
  ``validateAddressType``, ``validateHints``;
* ``pkg/apis/core/validation/validation.go`` — ``ValidateEndpointIP`` (no unspecified,
  loopback or link-local endpoint addresses);
* ``staging/src/k8s.io/apimachinery/pkg/util/validation/ip.go`` — ``IsValidIPv4Address``,
  ``IsValidIPv6Address`` and ``IsFullyQualifiedDomainName``;
* ``pkg/registry/discovery/endpointslice/strategy.go`` — generation handling and
  ``dropTopologyOnV1`` (``deprecatedTopology`` cannot be written through v1).

Limits: at most 1000 endpoints, 1..100 addresses per endpoint, 16 deprecatedTopology labels,
8 zone hints, and 20000 ports. (Ports were limited to 100 until Kubernetes 1.21; upstream
raised it to 20000 in kubernetes/kubernetes#99795 because Services may have more ports. The
API reference text still says 100.)

Upstream validates neither ``zone`` nor the ``conditions`` booleans, and neither do we.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import list_of as _list, map_of as _map, str_of as _str
from svcnet.api.errors import (
    FieldError,
    Path,
    PathLike,
    duplicate,
    internal,
    invalid,
    not_supported,
    required,
    too_many,
)
from svcnet.api.meta import validate_labels, validate_object_meta, validate_object_meta_update
from svcnet.api.names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    name_is_dns_subdomain,
    parse_ip_sloppy,
)
from svcnet.util.jsoncopy import json_copy

__all__ = [
    "MAX_ADDRESSES",
    "MAX_ENDPOINTS",
    "MAX_PORTS",
    "MAX_TOPOLOGY_LABELS",
    "MAX_ZONE_HINTS",
    "SUPPORTED_ADDRESS_TYPES",
    "prepare_endpointslice_for_create",
    "prepare_endpointslice_for_update",
    "set_defaults_endpointslice",
    "validate_endpoint_ip",
    "validate_endpointslice",
    "validate_endpointslice_update",
]

SUPPORTED_ADDRESS_TYPES: Final = ("FQDN", "IPv4", "IPv6")  # sets.List order (sorted)
SUPPORTED_PORT_PROTOCOLS: Final = ("SCTP", "TCP", "UDP")
MAX_TOPOLOGY_LABELS: Final = 16
MAX_ADDRESSES: Final = 100
MAX_PORTS: Final = 20000
MAX_ENDPOINTS: Final = 1000
MAX_ZONE_HINTS: Final = 8
LABEL_TOPOLOGY_ZONE: Final = "topology.kubernetes.io/zone"


def _dicts(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [i if isinstance(i, dict) else {} for i in items]


# =============================================================================================
# defaulting and registry preparation


def set_defaults_endpointslice(eps: Mapping[str, Any]) -> dict[str, Any]:
    """v1 defaulting; returns a new dict: every port gets ``name: ""`` and ``protocol: TCP``
    when absent."""
    out = json_copy(dict(eps))
    for port in _list(out, "ports"):
        if isinstance(port, dict):
            if port.get("name") is None:
                port["name"] = ""
            if port.get("protocol") is None:
                port["protocol"] = "TCP"
    return out


def _drop_deprecated_topology(eps: dict[str, Any]) -> None:
    for ep in _list(eps, "endpoints"):
        if isinstance(ep, dict):
            ep.pop("deprecatedTopology", None)


def prepare_endpointslice_for_create(eps: Mapping[str, Any]) -> dict[str, Any]:
    """endpointSliceStrategy.PrepareForCreate: generation 1; v1 writes cannot set
    ``deprecatedTopology`` (it is silently cleared)."""
    out = json_copy(dict(eps))
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    meta["generation"] = 1
    _drop_deprecated_topology(out)
    return out


def prepare_endpointslice_for_update(new: Mapping[str, Any],
                                     old: Mapping[str, Any]) -> dict[str, Any]:
    """endpointSliceStrategy.PrepareForUpdate: the generation is bumped when anything but
    metadata changed, or the labels changed; ``deprecatedTopology`` is cleared unless the
    endpoints are unchanged."""
    out = json_copy(dict(new))
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    old_meta = _map(old, "metadata")
    body_new = {k: v for k, v in out.items() if k != "metadata"}
    body_old = {k: v for k, v in old.items() if k != "metadata"}
    old_gen = old_meta.get("generation")
    meta["generation"] = old_gen if isinstance(old_gen, int) else 0
    if body_new != body_old or (meta.get("labels") or {}) != (old_meta.get("labels") or {}):
        meta["generation"] += 1
    if _list(out, "endpoints") != _list(old, "endpoints"):
        _drop_deprecated_topology(out)
    return out


# =============================================================================================
# address checks


def _as_v4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
           ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Go's net.IP treats an IPv4-mapped IPv6 address as the IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def validate_endpoint_ip(address: str, path: PathLike) -> list[FieldError]:
    """ValidateEndpointIP: a valid IP that is not unspecified, loopback or link-local."""
    parsed = parse_ip_sloppy(address)
    if parsed is None:
        return [invalid(path, address, "must be a valid IP address")]
    ip = _as_v4(parsed)
    errs: list[FieldError] = []
    if ip.is_unspecified:
        errs.append(invalid(path, address, f"may not be unspecified ({address})"))
    if ip.is_loopback:
        errs.append(invalid(path, address, "may not be in the loopback range (127.0.0.0/8, "
                                           "::1/128)"))
    if ip.is_link_local and (ip.version == 4 or ip in ipaddress.IPv6Network("fe80::/10")):
        errs.append(invalid(path, address, "may not be in the link-local range "
                                           "(169.254.0.0/16, fe80::/10)"))
    if _is_link_local_multicast(ip):
        errs.append(invalid(path, address, "may not be in the link-local multicast range "
                                           "(224.0.0.0/24, ff02::/10)"))
    return errs


def _is_link_local_multicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """net.IP.IsLinkLocalMulticast: 224.0.0.0/24, or ffX2::/16 (any flags, scope 2)."""
    packed = ip.packed
    if ip.version == 4:
        return packed[0] == 224 and packed[1] == 0 and packed[2] == 0
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


def _validate_ipv4(address: str, path: PathLike) -> list[FieldError]:
    """IsValidIPv4Address (v1.33 line): sloppy parse, and To4() must succeed."""
    ip = parse_ip_sloppy(address)
    if ip is None or _as_v4(ip).version != 4:
        return [invalid(path, address, "must be a valid IPv4 address")]
    return []


def _validate_ipv6(address: str, path: PathLike) -> list[FieldError]:
    """IsValidIPv6Address (v1.33 line): sloppy parse, and To4() must fail."""
    ip = parse_ip_sloppy(address)
    if ip is None or _as_v4(ip).version != 6:
        return [invalid(path, address, "must be a valid IPv6 address")]
    return []


def _validate_fqdn(name: str, path: PathLike) -> list[FieldError]:
    """IsFullyQualifiedDomainName: one trailing dot allowed, at least two labels."""
    if not name:
        return [required(path)]
    if name.endswith("."):
        name = name[:-1]
    errs = is_dns1123_subdomain(name)
    if errs:
        return [invalid(path, name, ",".join(errs))]
    labels = name.split(".")
    if len(labels) < 2:
        return [invalid(path, name, "should be a domain with at least two segments separated "
                                    "by dots")]
    for label in labels:
        errs = is_dns1123_label(label)
        if errs:
            return [invalid(path, label, ",".join(errs))]
    return []


# =============================================================================================
# validation


def _validate_address_type(address_type: str) -> list[FieldError]:
    path = Path("addressType")
    if not address_type:
        return [required(path)]
    if address_type not in SUPPORTED_ADDRESS_TYPES:
        return [not_supported(path, address_type, SUPPORTED_ADDRESS_TYPES)]
    return []


def _validate_hints(hints: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateHints: at most 8 zone hints, unique, each a label value."""
    zones = _dicts(_list(hints, "forZones"))
    fz_path = path.child("forZones")
    if len(zones) > MAX_ZONE_HINTS:
        return [too_many(fz_path, len(zones), MAX_ZONE_HINTS)]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, zone in enumerate(zones):
        zp = fz_path.index(i).child("name")
        name = _str(zone, "name")
        if name in seen:
            errs.append(duplicate(zp, name))
        else:
            seen.add(name)
        errs.extend(invalid(zp, name, m) for m in is_valid_label_value(name))
    return errs


def _validate_endpoints(endpoints: Sequence[Any], address_type: str,
                        path: Path) -> list[FieldError]:
    if len(endpoints) > MAX_ENDPOINTS:
        return [too_many(path, len(endpoints), MAX_ENDPOINTS)]
    errs: list[FieldError] = []
    for i, ep in enumerate(_dicts(endpoints)):
        p = path.index(i)
        addr_path = p.child("addresses")
        addresses = [a if isinstance(a, str) else "" for a in _list(ep, "addresses")]
        if not addresses:
            errs.append(required(addr_path, "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            errs.append(too_many(addr_path, len(addresses), MAX_ADDRESSES))
        for j, address in enumerate(addresses):
            ap = addr_path.index(j)
            # Unknown address types fall through unvalidated (the type itself is reported).
            if address_type == "IPv4":
                errs.extend(_validate_ipv4(address, ap))
                errs.extend(validate_endpoint_ip(address, ap))
            elif address_type == "IPv6":
                errs.extend(_validate_ipv6(address, ap))
                errs.extend(validate_endpoint_ip(address, ap))
            elif address_type == "FQDN":
                errs.extend(_validate_fqdn(address, ap))
        node_name = ep.get("nodeName")
        if isinstance(node_name, str):
            errs.extend(invalid(p.child("nodeName"), node_name, m)
                        for m in name_is_dns_subdomain(node_name, False))
        topology = _map(ep, "deprecatedTopology")
        topology_path = p.child("deprecatedTopology")
        if len(topology) > MAX_TOPOLOGY_LABELS:
            errs.append(too_many(topology_path, len(topology), MAX_TOPOLOGY_LABELS))
        errs.extend(validate_labels(topology, topology_path))
        if LABEL_TOPOLOGY_ZONE in topology:
            errs.append(internal(topology_path.key(LABEL_TOPOLOGY_ZONE),
                                 "reserved key was not removed in conversion"))
        hostname = ep.get("hostname")
        if isinstance(hostname, str):
            errs.extend(invalid(p.child("hostname"), hostname, m)
                        for m in is_dns1123_label(hostname))
        if ep.get("hints") is not None:
            errs.extend(_validate_hints(_map(ep, "hints"), p.child("hints")))
    return errs


def _validate_ports(ports: Sequence[Any], path: Path) -> list[FieldError]:
    if len(ports) > MAX_PORTS:
        return [too_many(path, len(ports), MAX_PORTS)]
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(_dicts(ports)):
        p = path.index(i)
        name = _str(port, "name")  # defaulted to ""; a nil name would crash upstream
        if name:
            errs.extend(invalid(p.child("name"), name, m) for m in is_dns1123_label(name))
        if name in names:
            errs.append(duplicate(p.child("name"), name))
        else:
            names.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(required(p.child("protocol")))
        elif protocol not in SUPPORTED_PORT_PROTOCOLS:
            errs.append(not_supported(p.child("protocol"), protocol, SUPPORTED_PORT_PROTOCOLS))
        app_protocol = port.get("appProtocol")
        if isinstance(app_protocol, str):
            errs.extend(invalid(p.child("appProtocol"), app_protocol, m)
                        for m in is_qualified_name(app_protocol))
    return errs


def validate_endpointslice(eps: Mapping[str, Any]) -> list[FieldError]:
    """ValidateEndpointSliceCreate: metadata (name a DNS subdomain, namespaced), addressType,
    endpoints and ports. Call after :func:`set_defaults_endpointslice`."""
    errs = validate_object_meta(_map(eps, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=Path("metadata"))
    address_type = _str(eps, "addressType")
    errs.extend(_validate_address_type(address_type))
    errs.extend(_validate_endpoints(_list(eps, "endpoints"), address_type, Path("endpoints")))
    errs.extend(_validate_ports(_list(eps, "ports"), Path("ports")))
    return errs


def validate_endpointslice_update(new: Mapping[str, Any],
                                  old: Mapping[str, Any]) -> list[FieldError]:
    """Metadata update rules, then ValidateEndpointSliceUpdate: the full create validation
    of ``new`` plus ``addressType`` immutability.

    ValidateEndpointSliceUpdate itself has no metadata update rules: upstream gets them from
    the generic registry (``rest.BeforeUpdate``'s validateCommonFields runs
    ValidateObjectMetaAccessorUpdate before the strategy). They are included here, first, so
    this function reports what the API server reports.
    """
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                       Path("metadata"))
    errs.extend(validate_endpointslice(new))
    new_type, old_type = _str(new, "addressType"), _str(old, "addressType")
    if new_type != old_type:
        errs.append(invalid(Path("addressType"), new_type, "field is immutable"))
    return errs
