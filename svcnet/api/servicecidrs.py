"""networking.k8s.io/v1 ServiceCIDRs and IPAddresses: constants, validation and the shapes the
ClusterIP allocator and the ServiceCIDR controller write.

Theory of operation
-------------------
With the MultiCIDRServiceAllocator (GA in Kubernetes 1.33) the ranges ClusterIPs come from are
objects, ServiceCIDRs (cluster-scoped, ``spec.cidrs`` one per IP family), and every allocated
ClusterIP is an IPAddress object named after the address, whose ``parentRef`` names the Service
holding it. An IPAddress that exists means its address is taken, whoever made it.

Mirrors ``pkg/apis/networking/validation/validation.go``:

* ``ValidateServiceCIDR``: apimachinery's ObjectMeta rules with a DNS-subdomain name; ``spec.cidrs``
  required ("at least one CIDR required"), at most two ("may only hold up to 2 values"), two
  only if one per family, each a valid CIDR (the strict IsValidCIDR messages of
  :func:`svcnet.api.names.is_valid_cidr`); ``ValidateServiceCIDRUpdate``: immutable
  ``spec.cidrs``; a status write checks the ObjectMeta update rules only;
* ``ValidateIPAddress``: the name an IP address (IsValidIP's messages) in canonical form
  (``must be a canonical format IP address`` otherwise: ``10.0.0.010`` or ``2001:DB8::1`` cannot
  name an address, since two names would then take one address), ``spec.parentRef`` required
  with ``resource`` and ``name`` required, ``group`` a DNS subdomain when set, ``resource``,
  ``name`` and ``namespace`` valid path segments; ``ValidateIPAddressUpdate``: immutable
  ``spec.parentRef``.

The bad value of the spec-level cidrs errors is the Go spec struct, printed as ``%#v`` prints
``networking.ServiceCIDRSpec``. Neither kind has defaulting in networking/v1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import FieldError, GoRaw, Path, go_quote, invalid, required
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import (
    is_dns1123_subdomain,
    is_valid_cidr,
    is_valid_ip,
    name_is_dns_subdomain,
    parse_cidr_sloppy,
)
from svcnet.api.rbac import is_valid_path_segment_name

__all__ = [
    "API_VERSION",
    "DEFAULT_SERVICE_CIDR",
    "GROUP",
    "IPALLOCATOR_MANAGER",
    "LABEL_IP_FAMILY",
    "LABEL_MANAGED_BY",
    "SERVICE_CIDR_FINALIZER",
    "default_service_cidr",
    "ip_address_object",
    "service_cidr_object",
    "validate_ip_address",
    "validate_ip_address_update",
    "validate_service_cidr",
    "validate_service_cidr_status_update",
    "validate_service_cidr_update",
]

Obj = dict[str, Any]
GROUP: Final = "networking.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"
#: The ServiceCIDR the API server keeps from its --service-cidr flag.
DEFAULT_SERVICE_CIDR: Final = "kubernetes"
SERVICE_CIDR_FINALIZER: Final = "networking.k8s.io/service-cidr-finalizer"
LABEL_MANAGED_BY: Final = "ipaddress.kubernetes.io/managed-by"
LABEL_IP_FAMILY: Final = "ipaddress.kubernetes.io/ip-family"
#: The value of LABEL_MANAGED_BY on the IPAddresses the ClusterIP allocator makes.
IPALLOCATOR_MANAGER: Final = "ipallocator.k8s.io"
_META: Final = Path("metadata")
_CIDRS: Final = Path("spec", "cidrs")
_PARENT: Final = Path("spec", "parentRef")


def service_cidr_object(name: str, cidrs: Sequence[str]) -> Obj:
    return {"apiVersion": API_VERSION, "kind": "ServiceCIDR", "metadata": {"name": name},
            "spec": {"cidrs": list(cidrs)}}


def default_service_cidr(flags: Sequence[str]) -> Obj:
    """The ``kubernetes`` ServiceCIDR of --service-cidr flags: the first CIDR of each family
    (a ServiceCIDR holds one per family)."""
    by_family: dict[int, str] = {}
    for text in flags:
        net = parse_cidr_sloppy(text.strip())
        if net is not None:
            by_family.setdefault(net.version, str(net))
    return service_cidr_object(DEFAULT_SERVICE_CIDR, list(by_family.values()))


def ip_address_object(ip: str, namespace: str, service: str, *, family: str,
                      annotations: Mapping[str, str] | None = None) -> Obj:
    """The IPAddress the ClusterIP allocator makes for ``namespace/service`` (no system
    fields: the caller adds uid and creationTimestamp)."""
    meta: Obj = {"name": ip, "labels": {LABEL_IP_FAMILY: family,
                                         LABEL_MANAGED_BY: IPALLOCATOR_MANAGER}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": "IPAddress", "metadata": meta,
            "spec": {"parentRef": {"group": "", "resource": "services",
                                   "namespace": namespace, "name": service}}}


# -- ServiceCIDR ------------------------------------------------------------------------------

def _go_spec(spec: Mapping[str, Any]) -> GoRaw:
    cidrs = spec.get("cidrs")
    text = ("[]string(nil)" if not isinstance(cidrs, list)
            else "[]string{" + ", ".join(go_quote(str(c)) for c in cidrs) + "}")
    return GoRaw(f"networking.ServiceCIDRSpec{{CIDRs:{text}}}")


def _families(cidrs: Sequence[Any]) -> list[int | None]:
    out: list[int | None] = []
    for c in cidrs:
        net = parse_cidr_sloppy(c) if isinstance(c, str) else None
        out.append(net.version if net is not None else None)
    return out


def validate_service_cidr(obj: Mapping[str, Any]) -> list[FieldError]:
    """ValidateServiceCIDR."""
    errs = validate_object_meta(map_of(obj, "metadata"), requires_namespace=False,
                                name_fn=name_is_dns_subdomain, path=_META,
                                kube_finalizers=False)
    spec = map_of(obj, "spec")
    cidrs = list_of(spec, "cidrs")
    if not cidrs:
        errs.append(required(_CIDRS, "at least one CIDR required"))
        return errs
    if len(cidrs) > 2:
        errs.append(invalid(_CIDRS, _go_spec(spec), "may only hold up to 2 values"))
        return errs
    if len(cidrs) == 2:
        families = _families(cidrs)
        if None in families or families[0] == families[1]:
            errs.append(invalid(_CIDRS, _go_spec(spec),
                                "may specify no more than one IP for each IP family, "
                                "i.e 192.168.0.0/24 and 2001:db8::/64"))
            return errs
    for i, cidr in enumerate(cidrs):
        text = str(cidr)
        errs.extend(invalid(_CIDRS.index(i), text, m) for m in is_valid_cidr(text))
    return errs


def validate_service_cidr_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                 ) -> list[FieldError]:
    """The strategy's ValidateUpdate: ValidateServiceCIDR, then ValidateServiceCIDRUpdate.

    ``spec.cidrs`` is immutable but for one change (kubernetes/kubernetes#131261): a
    single-CIDR ServiceCIDR may gain a second CIDR, keeping its first (ValidateServiceCIDR
    makes sure the second is of the other family) — how the default ServiceCIDR becomes
    dual-stack when the server's flags do."""
    errs = validate_service_cidr(new)
    errs.extend(validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"),
                                            _META, kube_finalizers=False))
    new_cidrs = list_of(map_of(new, "spec"), "cidrs")
    old_cidrs = list_of(map_of(old, "spec"), "cidrs")
    if len(old_cidrs) == 1 and len(new_cidrs) == 2:
        if new_cidrs[0] != old_cidrs[0]:
            errs.append(invalid(_CIDRS.index(0), str(new_cidrs[0]), FIELD_IMMUTABLE_ERROR_MSG))
    elif new_cidrs != old_cidrs:
        errs.append(invalid(_CIDRS, GoRaw("[]string{" + ", ".join(
            go_quote(str(c)) for c in new_cidrs) + "}"), FIELD_IMMUTABLE_ERROR_MSG))
    return errs


def validate_service_cidr_status_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                        ) -> list[FieldError]:
    return validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"),
                                       _META, kube_finalizers=False)


# -- IPAddress --------------------------------------------------------------------------------

def _ip_address_name(name: str, prefix: bool) -> list[str]:
    """ValidateIPAddressName (``prefix`` is ignored: IPAddresses have no generated names)."""
    errs = is_valid_ip(name)
    if errs:
        return errs
    if str(ipaddress.ip_address(name)) != name:
        return ["must be a canonical format IP address"]
    return []


def _validate_parent_ref(ref: Any) -> list[FieldError]:
    if not isinstance(ref, Mapping):
        return [required(_PARENT)]
    errs: list[FieldError] = []
    group = str_of(ref, "group")
    if group:
        errs.extend(invalid(_PARENT.child("group"), group, m)
                    for m in is_dns1123_subdomain(group))
    for key in ("resource", "name"):
        value = str_of(ref, key)
        if not value:
            errs.append(required(_PARENT.child(key)))
        else:
            errs.extend(invalid(_PARENT.child(key), value, m)
                        for m in is_valid_path_segment_name(value))
    namespace = str_of(ref, "namespace")
    if namespace:
        errs.extend(invalid(_PARENT.child("namespace"), namespace, m)
                    for m in is_valid_path_segment_name(namespace))
    return errs


def validate_ip_address(obj: Mapping[str, Any]) -> list[FieldError]:
    """ValidateIPAddress."""
    errs = validate_object_meta(map_of(obj, "metadata"), requires_namespace=False,
                                name_fn=_ip_address_name, path=_META, kube_finalizers=False)
    errs.extend(_validate_parent_ref(map_of(obj, "spec").get("parentRef")))
    return errs


def _go_parent_ref(ref: Any) -> GoRaw:
    if not isinstance(ref, Mapping):
        return GoRaw("(*networking.ParentReference)(nil)")
    fields = ", ".join(f"{go}:{go_quote(str_of(ref, key))}" for go, key in (
        ("Group", "group"), ("Resource", "resource"), ("Namespace", "namespace"),
        ("Name", "name")))
    return GoRaw(f"&networking.ParentReference{{{fields}}}")


def validate_ip_address_update(new: Mapping[str, Any], old: Mapping[str, Any],
                               ) -> list[FieldError]:
    """The strategy's ValidateUpdate: ValidateIPAddress, then ValidateIPAddressUpdate."""
    errs = validate_ip_address(new)
    errs.extend(validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"),
                                            _META, kube_finalizers=False))
    new_ref = map_of(new, "spec").get("parentRef")
    if new_ref != map_of(old, "spec").get("parentRef"):
        errs.append(invalid(_PARENT, _go_parent_ref(new_ref), FIELD_IMMUTABLE_ERROR_MSG))
    return errs
