"""Service defaulting, registry fix-ups and validation, exactly as Kubernetes does them.

Which upstream file each part mirrors:

* :func:`set_defaults_service` — ``pkg/apis/core/v1/defaults.go`` ``SetDefaults_Service``.
* :func:`prepare_for_create`, :func:`prepare_for_update`, :func:`drop_type_dependent_fields` —
  ``pkg/registry/core/service/strategy.go`` (``PrepareForCreate``/``PrepareForUpdate``,
  ``dropTypeDependentFields``).
* :func:`normalize_cluster_ips`, :func:`patch_allocated_values` —
  ``pkg/registry/core/service/storage/storage.go`` (``normalizeClusterIPs``,
  ``patchAllocatedValues``, run from the REST ``beginCreate``/``beginUpdate`` hooks).
* :func:`init_ip_family_fields` — ``pkg/registry/core/service/storage/alloc.go``
  ``initIPFamilyFields`` (ipFamilyPolicy/ipFamilies defaulting and the allocator's 422s).
* predicates — ``pkg/api/service/util.go`` (``ExternallyAccessible``, ``NeedsHealthCheck``) and
  the strategy/alloc helpers (``needsClusterIP``, ``needsNodePort``, ``shouldAllocateNodePorts``).
* :func:`validate_service`, :func:`validate_service_create`, :func:`validate_service_update`,
  :func:`validate_service_status_update` — ``pkg/apis/core/validation/validation.go``
  (``ValidateService`` and helpers, ``ValidateServiceUpdate``, ``ValidateServiceStatusUpdate``,
  ``ValidateLoadBalancerStatus``).

The upstream request pipeline (genericregistry.Store + Service REST), in this order:

* create: decode → :func:`set_defaults_service` → ``beginCreate``:
  :func:`normalize_cluster_ips` (old=None), :func:`init_ip_family_fields`, IP and node-port
  allocation → ``BeforeCreate``: :func:`prepare_for_create`, name generation,
  :func:`validate_service_create`.
* update: decode → :func:`set_defaults_service` → ``beginUpdate``:
  :func:`patch_allocated_values`, :func:`normalize_cluster_ips`, :func:`init_ip_family_fields`,
  allocation/release → ``BeforeUpdate``: :func:`prepare_for_update` (status copied, then
  :func:`drop_type_dependent_fields`), :func:`validate_service_update`.

Objects are JSON-shaped ``dict`` values (apiVersion v1, camelCase keys). Every function that
changes an object returns a new one; inputs are never mutated.

IP addresses and CIDRs are checked the "strict" way (``StrictIPCIDRValidation``: no leading
zeros, no IPv4-mapped IPv6, no host bits in CIDRs), but — like upstream — values that were
already present in the old object are tolerated on update, so stored objects never become
un-updatable.

Why this module is long: Service defaulting and validation mirror upstream's validation.go for
Services one to one, in upstream's order, so they are compared side by side.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import mapping_of, str_of as _s
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    duplicate,
    forbidden,
    go_quote,
    invalid,
    not_supported,
    required,
)
from svcnet.api.meta import (
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import (
    ip_family_of,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_cidr,
    is_valid_ip,
    is_valid_port_name,
    is_valid_port_num,
    name_is_dns1035_label,
    parse_ip_sloppy,
)
from svcnet.util.jsoncopy import object_copy

__all__ = [
    "ANNOTATION_LOAD_BALANCER_SOURCE_RANGES",
    "ANNOTATION_TOPOLOGY_MODE",
    "DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS",
    "DEPRECATED_ANNOTATION_TOPOLOGY_AWARE_HINTS",
    "MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS",
    "drop_type_dependent_fields",
    "init_ip_family_fields",
    "is_externally_accessible",
    "is_headless",
    "is_matching_prefer_dual_stack",
    "needs_cluster_ip",
    "needs_health_check_node_port",
    "needs_node_ports",
    "normalize_cluster_ips",
    "patch_allocated_values",
    "prepare_for_create",
    "prepare_for_update",
    "set_defaults_service",
    "uses_node_ports",
    "validate_legacy_cidr",
    "validate_load_balancer_status",
    "validate_service",
    "validate_service_cluster_ips_related_fields",
    "validate_service_create",
    "validate_service_external_traffic_policy",
    "validate_service_status_update",
    "validate_service_update",
]

# --------------------------------------------------------------------------------------------
# constants (pkg/apis/core/types.go, validation.go)

CLUSTER_IP_NONE: Final = "None"
TYPE_CLUSTER_IP: Final = "ClusterIP"
TYPE_NODE_PORT: Final = "NodePort"
TYPE_LOAD_BALANCER: Final = "LoadBalancer"
TYPE_EXTERNAL_NAME: Final = "ExternalName"
AFFINITY_CLIENT_IP: Final = "ClientIP"
AFFINITY_NONE: Final = "None"
POLICY_CLUSTER: Final = "Cluster"
POLICY_LOCAL: Final = "Local"
SINGLE_STACK: Final = "SingleStack"
PREFER_DUAL_STACK: Final = "PreferDualStack"
REQUIRE_DUAL_STACK: Final = "RequireDualStack"
IPV4: Final = "IPv4"
IPV6: Final = "IPv6"

DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS: Final = 10800
MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS: Final = 86400

ANNOTATION_TOPOLOGY_MODE: Final = "service.kubernetes.io/topology-mode"
DEPRECATED_ANNOTATION_TOPOLOGY_AWARE_HINTS: Final = "service.kubernetes.io/topology-aware-hints"
ANNOTATION_LOAD_BALANCER_SOURCE_RANGES: Final = (
    "service.beta.kubernetes.io/load-balancer-source-ranges")

# The "supported values" lists are printed in sets.List order, i.e. sorted.
SUPPORTED_PORT_PROTOCOLS: Final = ("SCTP", "TCP", "UDP")
SUPPORTED_SESSION_AFFINITY: Final = (AFFINITY_CLIENT_IP, AFFINITY_NONE)
SUPPORTED_SERVICE_TYPES: Final = (TYPE_CLUSTER_IP, TYPE_EXTERNAL_NAME, TYPE_LOAD_BALANCER,
                                  TYPE_NODE_PORT)
SUPPORTED_TRAFFIC_POLICIES: Final = (POLICY_CLUSTER, POLICY_LOCAL)
SUPPORTED_IP_FAMILIES: Final = (IPV4, IPV6)
SUPPORTED_IP_FAMILY_POLICIES: Final = (PREFER_DUAL_STACK, REQUIRE_DUAL_STACK, SINGLE_STACK)
SUPPORTED_LOAD_BALANCER_IP_MODES: Final = ("Proxy", "VIP")
#: The reference revision accepts only PreferClose (PreferSameZone/PreferSameNode are behind
#: the PreferSameTrafficDistribution gate in v1.33/1.34).
SUPPORTED_TRAFFIC_DISTRIBUTION: Final = ("PreferClose",)

_SPEC: Final = Path("spec")
_META: Final = Path("metadata")


# --------------------------------------------------------------------------------------------
# small accessors for JSON-shaped dicts (missing and null are the same as Go's zero value)


def _spec(svc: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping_of(svc, "spec")


def _meta(svc: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping_of(svc, "metadata")


def _i(d: Mapping[str, Any], key: str) -> int:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _strs(d: Mapping[str, Any], key: str) -> list[str]:
    v = d.get(key)
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def _ports(d: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    v = d.get("ports")
    return [p if isinstance(p, Mapping) else {} for p in v] if isinstance(v, list) else []


def _type(svc: Mapping[str, Any]) -> str:
    return _s(_spec(svc), "type")


def _go_strs(values: Sequence[str] | None, go_type: str = "string") -> GoRaw:
    """%#v of a Go string slice; nil (JSON absent/null) prints ``[]T(nil)``."""
    if values is None:
        return GoRaw(f"[]{go_type}(nil)")
    return GoRaw(f"[]{go_type}{{" + ", ".join(go_quote(v) for v in values) + "}")


def _raw_list(d: Mapping[str, Any], key: str) -> list[str] | None:
    v = d.get(key)
    if not isinstance(v, list):
        return None
    return [x for x in v if isinstance(x, str)]


def _opt(d: Mapping[str, Any], key: str) -> str | None:
    """A pointer-to-string field: None when absent/null."""
    v = d.get(key)
    return v if isinstance(v, str) else None


def _other_family(fam: str) -> str:
    return IPV6 if fam == IPV4 else IPV4


# --------------------------------------------------------------------------------------------
# predicates


def needs_cluster_ip(svc: Mapping[str, Any]) -> bool:
    """strategy.needsClusterIP: every type but ExternalName (even "None" counts as a value)."""
    return _type(svc) != TYPE_EXTERNAL_NAME


def uses_node_ports(svc: Mapping[str, Any]) -> bool:
    """strategy.needsNodePort: NodePort and LoadBalancer services carry node ports."""
    return _type(svc) in (TYPE_NODE_PORT, TYPE_LOAD_BALANCER)


def needs_node_ports(svc: Mapping[str, Any]) -> list[int]:
    """Indexes of ``spec.ports`` that get (or keep) a node port (alloc.go initNodePorts).

    NodePort: every port. LoadBalancer: every port when ``allocateLoadBalancerNodePorts`` is
    true (defaulting makes an absent value true), otherwise only ports where the user set a
    nodePort explicitly. ClusterIP/ExternalName: none.
    """
    spec = _spec(svc)
    t = _type(svc)
    ports = _ports(spec)
    if t == TYPE_NODE_PORT:
        return list(range(len(ports)))
    if t == TYPE_LOAD_BALANCER:
        if spec.get("allocateLoadBalancerNodePorts") is False:
            return [i for i, p in enumerate(ports) if _i(p, "nodePort") != 0]
        return list(range(len(ports)))
    return []


def needs_health_check_node_port(svc: Mapping[str, Any]) -> bool:
    """apiservice.NeedsHealthCheck: type LoadBalancer with externalTrafficPolicy Local."""
    spec = _spec(svc)
    return _type(svc) == TYPE_LOAD_BALANCER and _s(spec, "externalTrafficPolicy") == POLICY_LOCAL


def is_headless(svc: Mapping[str, Any]) -> bool:
    """A headless Service: ``clusterIPs == ["None"]`` (or, un-normalized, clusterIP "None").

    Validation itself looks only at the plural field (see ``_is_headless_plural``); after the
    registry's normalization both fields agree.
    """
    spec = _spec(svc)
    ips = _strs(spec, "clusterIPs")
    if ips:
        return ips == [CLUSTER_IP_NONE]
    return _s(spec, "clusterIP") == CLUSTER_IP_NONE


def _is_headless_plural(svc: Mapping[str, Any] | None) -> bool:
    """validation.go isHeadlessService: exactly ``clusterIPs: ["None"]``."""
    return svc is not None and _strs(_spec(svc), "clusterIPs") == [CLUSTER_IP_NONE]


def is_externally_accessible(svc: Mapping[str, Any]) -> bool:
    """apiservice.ExternallyAccessible: LoadBalancer, NodePort, or ClusterIP with externalIPs."""
    t = _type(svc)
    return (t in (TYPE_LOAD_BALANCER, TYPE_NODE_PORT)
            or (t == TYPE_CLUSTER_IP and bool(_strs(_spec(svc), "externalIPs"))))


# --------------------------------------------------------------------------------------------
# v1 defaulting


def set_defaults_service(svc: Mapping[str, Any]) -> dict[str, Any]:  # noqa: C901
    """SetDefaults_Service (v1), applied in upstream's order.

    1. sessionAffinity "" → None; 2. None ⇒ sessionAffinityConfig dropped (silently);
    3. ClientIP with an incomplete config ⇒ ``{clientIP: {timeoutSeconds: 10800}}``;
    4. type "" → ClusterIP; 5. per port: protocol "" → TCP, targetPort 0/"" → port;
    6. externally accessible ⇒ externalTrafficPolicy "" → Cluster;
    7. internalTrafficPolicy nil → Cluster for ClusterIP/NodePort/LoadBalancer;
    8. LoadBalancer ⇒ allocateLoadBalancerNodePorts nil → true;
    9. LoadBalancer ⇒ status ingress entries with an ip get ipMode VIP (LoadBalancerIPMode).
    Nothing IP/port-allocation related is defaulted here.
    """
    out: dict[str, Any] = object_copy(dict(svc))
    spec_v = out.get("spec")
    spec: dict[str, Any] = spec_v if isinstance(spec_v, dict) else {}
    out["spec"] = spec

    if not _s(spec, "sessionAffinity"):
        spec["sessionAffinity"] = AFFINITY_NONE
    if spec["sessionAffinity"] == AFFINITY_NONE:
        # A config given together with affinity None is dropped here, so through the API it
        # is never rejected (only a direct validator call would see it).
        spec.pop("sessionAffinityConfig", None)
    if spec["sessionAffinity"] == AFFINITY_CLIENT_IP:
        cfg = spec.get("sessionAffinityConfig")
        client_ip = cfg.get("clientIP") if isinstance(cfg, Mapping) else None
        timeout = client_ip.get("timeoutSeconds") if isinstance(client_ip, Mapping) else None
        if timeout is None:
            # Upstream replaces the whole config object, not just the missing leaf.
            spec["sessionAffinityConfig"] = {
                "clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS}}

    if not _s(spec, "type"):
        spec["type"] = TYPE_CLUSTER_IP

    ports = spec.get("ports")
    if isinstance(ports, list):
        for port in ports:
            if not isinstance(port, dict):
                continue
            if not _s(port, "protocol"):
                port["protocol"] = "TCP"
            tp = port.get("targetPort")
            if tp is None or tp in (0, ""):
                port["targetPort"] = _i(port, "port")

    if is_externally_accessible(out) and not _s(spec, "externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = POLICY_CLUSTER

    if spec.get("internalTrafficPolicy") is None and spec["type"] in (
            TYPE_NODE_PORT, TYPE_LOAD_BALANCER, TYPE_CLUSTER_IP):
        spec["internalTrafficPolicy"] = POLICY_CLUSTER

    if spec["type"] == TYPE_LOAD_BALANCER:
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        status = out.get("status")
        lb = status.get("loadBalancer") if isinstance(status, dict) else None
        ingress = lb.get("ingress") if isinstance(lb, dict) else None
        if isinstance(ingress, list):
            for ing in ingress:
                if isinstance(ing, dict) and _s(ing, "ip") and ing.get("ipMode") is None:
                    ing["ipMode"] = "VIP"
    return out


# --------------------------------------------------------------------------------------------
# registry fix-ups


def prepare_for_create(svc: Mapping[str, Any]) -> dict[str, Any]:
    """strategy.PrepareForCreate: the status a client sends is discarded."""
    out: dict[str, Any] = object_copy(dict(svc))
    out["status"] = {"loadBalancer": {}}
    return out


def prepare_for_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """strategy.PrepareForUpdate: status comes from the stored object, then type fix-ups."""
    out: dict[str, Any] = dict(new)  # drop_type_dependent_fields copies it all, once
    old_status = old.get("status")
    out["status"] = dict(old_status) if isinstance(old_status, Mapping) else {"loadBalancer": {}}
    return drop_type_dependent_fields(out, old)


def _same_str_list(a: Sequence[str], b: Sequence[str]) -> bool:
    return list(a) == list(b)


def _node_port_set(svc: Mapping[str, Any]) -> set[int]:
    return {_i(p, "nodePort") for p in _ports(_spec(svc)) if _i(p, "nodePort") != 0}


def drop_type_dependent_fields(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """strategy.dropTypeDependentFields (update only).

    A field that no longer applies after a type change is wiped only if the user did not
    also change it — if they did, validation must see (and reject) their value.
    """
    out: dict[str, Any] = object_copy(dict(new))
    spec_v = out.get("spec")
    spec: dict[str, Any] = spec_v if isinstance(spec_v, dict) else {}
    out["spec"] = spec
    ospec = _spec(old)

    if needs_cluster_ip(old) and not needs_cluster_ip(out):
        if (_s(ospec, "clusterIP") == _s(spec, "clusterIP")
                and _same_str_list(_strs(ospec, "clusterIPs"), _strs(spec, "clusterIPs"))):
            # Released by the allocator afterwards.
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        # reflect.DeepEqual: nil and [] differ for ipFamilies.
        if ospec.get("ipFamilies") == spec.get("ipFamilies"):
            spec.pop("ipFamilies", None)
        if _s(ospec, "ipFamilyPolicy") == _s(spec, "ipFamilyPolicy"):
            spec.pop("ipFamilyPolicy", None)

    # Users may remove or modify ports while switching, but not add net-new node ports.
    if (uses_node_ports(old) and not uses_node_ports(out)
            and _node_port_set(out) <= _node_port_set(old)):
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                # nodePort 0 is omitted on the wire (omitempty).
                port.pop("nodePort", None)

    if (needs_health_check_node_port(old) and not needs_health_check_node_port(out)
            and _i(ospec, "healthCheckNodePort") == _i(spec, "healthCheckNodePort")):
        spec.pop("healthCheckNodePort", None)

    if _type(old) == TYPE_LOAD_BALANCER and _type(out) != TYPE_LOAD_BALANCER:
        new_alloc = spec.get("allocateLoadBalancerNodePorts")
        old_alloc = ospec.get("allocateLoadBalancerNodePorts")
        if new_alloc is not None and old_alloc is not None and new_alloc == old_alloc:
            spec.pop("allocateLoadBalancerNodePorts", None)
        if _opt(ospec, "loadBalancerClass") == _opt(spec, "loadBalancerClass"):
            spec.pop("loadBalancerClass", None)

    if (is_externally_accessible(old) and not is_externally_accessible(out)
            and _s(ospec, "externalTrafficPolicy") == _s(spec, "externalTrafficPolicy")):
        spec.pop("externalTrafficPolicy", None)

    # selector is deliberately never wiped (not allocated from a pool).

    if _type(out) != TYPE_LOAD_BALANCER:
        status_v = out.get("status")
        status: dict[str, Any] = status_v if isinstance(status_v, dict) else {}
        status["loadBalancer"] = {}
        out["status"] = status
    return out


def normalize_cluster_ips(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """storage.normalizeClusterIPs: keep clusterIP and clusterIPs in sync.

    Create: ``clusterIP`` alone initializes ``clusterIPs`` (old clients); the reverse is never
    done — new clients must send both. Update: plural omitted with singular unchanged → old
    plural; singular cleared with plural unchanged → plural cleared; singular changed with
    plural unchanged → plural := [singular] (so validation reports the immutability error).
    """
    out: dict[str, Any] = object_copy(dict(new))
    spec_v = out.get("spec")
    spec: dict[str, Any] = spec_v if isinstance(spec_v, dict) else {}
    out["spec"] = spec
    cip = _s(spec, "clusterIP")
    if old is None:
        if cip and not _strs(spec, "clusterIPs"):
            spec["clusterIPs"] = [cip]
        return out
    ospec = _spec(old)
    ocip = _s(ospec, "clusterIP")
    oips = _strs(ospec, "clusterIPs")
    if oips and not _strs(spec, "clusterIPs") and ocip == cip:
        spec["clusterIPs"] = list(oips)
    if ocip != cip:
        if ocip and not cip:
            if _same_str_list(oips, _strs(spec, "clusterIPs")):
                spec.pop("clusterIPs", None)
        elif _same_str_list(oips, _strs(spec, "clusterIPs")):
            spec["clusterIPs"] = [cip]
    return out


def patch_allocated_values(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """storage.patchAllocatedValues: re-submitting a manifest without allocated values works.

    When old and new both need them: an empty clusterIP/clusterIPs is copied from old; a zero
    nodePort is filled from the old port *with the same name* unless that value is in use by
    another port in both objects; a zero healthCheckNodePort is copied.
    """
    out: dict[str, Any] = object_copy(dict(new))
    spec_v = out.get("spec")
    spec: dict[str, Any] = spec_v if isinstance(spec_v, dict) else {}
    out["spec"] = spec
    ospec = _spec(old)

    if needs_cluster_ip(old) and needs_cluster_ip(out):
        if not _s(spec, "clusterIP") and _s(ospec, "clusterIP"):
            spec["clusterIP"] = _s(ospec, "clusterIP")
        if not _strs(spec, "clusterIPs") and _strs(ospec, "clusterIPs"):
            spec["clusterIPs"] = list(_strs(ospec, "clusterIPs"))

    if uses_node_ports(old) and uses_node_ports(out):
        used = _node_port_set(old) & _node_port_set(out)
        by_name: dict[str, int] = {}
        for p in _ports(ospec):
            by_name[_s(p, "name")] = _i(p, "nodePort")
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and _i(port, "nodePort") == 0:
                old_val = by_name.get(_s(port, "name"), 0)
                if old_val and old_val not in used:
                    port["nodePort"] = old_val

    if (needs_health_check_node_port(old) and needs_health_check_node_port(out)
            and _i(spec, "healthCheckNodePort") == 0 and _i(ospec, "healthCheckNodePort")):
        spec["healthCheckNodePort"] = _i(ospec, "healthCheckNodePort")
    return out


def is_matching_prefer_dual_stack(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """alloc.go isMatchingPreferDualStackClusterIPFields: an update of a PreferDualStack
    Service that keeps its type, clusterIPs and ipFamilies is left alone (neither defaulted
    nor up- or downgraded when the cluster's dual-stackness changed)."""
    if old is None:
        return False
    spec, ospec = _spec(new), _spec(old)
    policy = _opt(spec, "ipFamilyPolicy")
    if policy is None or _type(old) != _type(new):
        return False
    if _type(new) not in (TYPE_CLUSTER_IP, TYPE_NODE_PORT, TYPE_LOAD_BALANCER):
        return False
    if policy != PREFER_DUAL_STACK:
        return False
    opolicy = _opt(ospec, "ipFamilyPolicy")
    if opolicy is not None and opolicy != PREFER_DUAL_STACK:
        return False
    return (_strs(ospec, "clusterIPs") == _strs(spec, "clusterIPs")
            and _strs(ospec, "ipFamilies") == _strs(spec, "ipFamilies"))


def init_ip_family_fields(  # noqa: C901 (mirrors initIPFamilyFields)
    svc: Mapping[str, Any],
    old: Mapping[str, Any] | None = None,
    *,
    cluster_families: Sequence[str] = (IPV4,),
) -> tuple[dict[str, Any], list[FieldError]]:
    """alloc.go initIPFamilyFields: default ipFamilyPolicy/ipFamilies for this cluster.

    ``cluster_families`` lists the service-CIDR families, primary first (``("IPv4",)`` for a
    single-stack IPv4 cluster, ``("IPv4", "IPv6")`` for dual-stack). Returns the fixed-up copy
    and the errors upstream would answer with 422 (empty when fine). Run after
    :func:`normalize_cluster_ips` (and on update after :func:`patch_allocated_values`).
    """
    out: dict[str, Any] = object_copy(dict(svc))
    spec_v = out.get("spec")
    spec: dict[str, Any] = spec_v if isinstance(spec_v, dict) else {}
    out["spec"] = spec
    if _type(out) == TYPE_EXTERNAL_NAME:
        return out, []
    if is_matching_prefer_dual_stack(out, old):
        return out, []
    configured = list(cluster_families)
    default_family = configured[0] if configured else IPV4
    headless_selectorless = (_s(spec, "clusterIP") == CLUSTER_IP_NONE
                             and not spec.get("selector"))

    if _opt(spec, "ipFamilyPolicy") is None:
        old_policy = _opt(_spec(old), "ipFamilyPolicy") if old is not None else None
        if old_policy is not None:
            spec["ipFamilyPolicy"] = old_policy
        elif headless_selectorless:
            spec["ipFamilyPolicy"] = REQUIRE_DUAL_STACK
        else:
            spec["ipFamilyPolicy"] = SINGLE_STACK

    # Loose pre-validation, so that the code below never sees malformed IPs.
    pre = validate_service_cluster_ips_related_fields(out, old)
    if pre:
        return out, pre

    errs: list[FieldError] = []
    policy = _s(spec, "ipFamilyPolicy")
    policy_path = _SPEC.child("ipFamilyPolicy")
    if old is not None:
        ospec = _spec(old)
        if policy == SINGLE_STACK:
            # Setting SingleStack with unchanged lists is clear intent to downgrade.
            if _strs(ospec, "clusterIPs") == _strs(spec, "clusterIPs") and len(
                    _strs(spec, "clusterIPs")) > 1:
                spec["clusterIPs"] = _strs(spec, "clusterIPs")[:1]
            if _strs(ospec, "ipFamilies") == _strs(spec, "ipFamilies") and len(
                    _strs(spec, "ipFamilies")) > 1:
                spec["ipFamilies"] = _strs(spec, "ipFamilies")[:1]
        else:
            new_ips, old_ips = _strs(spec, "clusterIPs"), _strs(ospec, "clusterIPs")
            if new_ips and len(new_ips) < len(old_ips):
                errs.append(invalid(policy_path, policy,
                                    "must be 'SingleStack' to release the secondary cluster IP"))
            new_fams, old_fams = _strs(spec, "ipFamilies"), _strs(ospec, "ipFamilies")
            if new_fams and len(new_fams) < len(old_fams):
                errs.append(invalid(policy_path, policy,
                                    "must be 'SingleStack' to release the secondary IP family"))

    if policy == SINGLE_STACK:
        if len(_strs(spec, "clusterIPs")) == 2:
            errs.append(invalid(policy_path, policy,
                                "must be 'RequireDualStack' or 'PreferDualStack' when multiple "
                                "cluster IPs are specified"))
        if len(_strs(spec, "ipFamilies")) == 2:
            errs.append(invalid(policy_path, policy,
                                "must be 'RequireDualStack' or 'PreferDualStack' when multiple "
                                "IP families are specified"))

    # Infer families from the given IPs.
    families = _strs(spec, "ipFamilies")
    ips = _strs(spec, "clusterIPs")
    for i, ip in enumerate(ips):
        if ip == CLUSTER_IP_NONE:
            break
        fam = ip_family_of(ip) or "unknown"
        if i >= len(families):
            if fam not in configured:
                errs.append(invalid(_SPEC.child("clusterIPs").index(i), _go_strs(ips),
                                    f"{fam} is not configured on this cluster"))
            else:
                families.append(fam)
                spec["ipFamilies"] = list(families)
    if errs:
        return out, errs

    # Headless + selectorless may carry families the cluster does not have (the endpoints
    # are managed by someone else), so this special case comes before the checks below.
    if headless_selectorless:
        if not families:
            families = [default_family]
        if len(families) < 2 and policy != SINGLE_STACK:
            families.append(_other_family(families[0]))
        spec["ipFamilies"] = families
        return out, []

    if policy == REQUIRE_DUAL_STACK and len(configured) < 2:
        errs.append(invalid(policy_path, policy,
                            "this cluster is not configured for dual-stack services"))
    for i, fam in enumerate(families):
        if fam not in configured:
            errs.append(invalid(_SPEC.child("ipFamilies").index(i), fam,
                                "not configured on this cluster"))
    if errs:
        return out, errs

    if not families:
        families = [default_family]
    if policy != SINGLE_STACK and len(families) == 1 and len(configured) == 2:
        families.append(_other_family(families[0]))
    spec["ipFamilies"] = families
    return out, []


# --------------------------------------------------------------------------------------------
# validation helpers


def _validate_non_special_ip(ip_text: str, path: Path) -> list[FieldError]:
    """ValidateNonSpecialIP (externalIPs): no unspecified, loopback or link-local addresses."""
    ip = parse_ip_sloppy(ip_text)
    if ip is None:
        return [invalid(path, ip_text, "must be a valid IP address")]
    # Go's net.IP predicates look through IPv4-mapped IPv6 addresses.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    errs: list[FieldError] = []
    if ip.is_unspecified:
        errs.append(invalid(path, ip_text, f"may not be unspecified ({ip_text})"))
    if ip.is_loopback:
        errs.append(invalid(path, ip_text,
                            "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    packed = ip.packed
    if isinstance(ip, ipaddress.IPv4Address):
        link_local = packed[0] == 169 and packed[1] == 254
        ll_multicast = packed[0] == 224 and packed[1] == 0 and packed[2] == 0
    else:
        link_local = packed[0] == 0xFE and (packed[1] & 0xC0) == 0x80
        ll_multicast = packed[0] == 0xFF and (packed[1] & 0x0F) == 0x02
    if link_local:
        errs.append(invalid(path, ip_text,
                            "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if ll_multicast:
        errs.append(invalid(path, ip_text, "may not be in the link-local multicast range "
                                           "(224.0.0.0/24, ff02::/10)"))
    return errs


def _validate_legacy_ip(value: str, path: Path, valid_old: Sequence[str]) -> list[FieldError]:
    """IsValidIPForLegacyField: values already stored in the old object are grandfathered."""
    if value in valid_old:
        return []
    return [invalid(path, value, msg) for msg in is_valid_ip(value)]


def validate_legacy_cidr(value: str, path: Path, valid_old: Sequence[str]) -> list[FieldError]:
    """IsValidCIDRForLegacyField (strict, see :func:`~svcnet.api.names.is_valid_cidr`): values
    already stored in the old object are grandfathered. Also NetworkPolicies' ipBlocks."""
    if value in valid_old:
        return []
    return [invalid(path, value, msg) for msg in is_valid_cidr(value)]


def _go_service_port_key(protocol: str, port: int) -> GoRaw:
    """%#v of the internal core.ServicePort{Protocol, Port} used as the duplicate key."""
    return GoRaw(
        f"core.ServicePort{{Name:\"\", Protocol:{go_quote(protocol)}, "
        f"AppProtocol:(*string)(nil), Port:{port}, "
        "TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}")


def _validate_service_port(port: Mapping[str, Any], require_name: bool, all_names: set[str],
                           path: Path) -> list[FieldError]:
    """validateServicePort."""
    errs: list[FieldError] = []
    name = _s(port, "name")
    if require_name and not name:
        errs.append(required(path.child("name")))
    elif name:
        errs.extend(invalid(path.child("name"), name, m) for m in is_dns1123_label(name))
        if name in all_names:
            errs.append(duplicate(path.child("name"), name))
        else:
            all_names.add(name)

    num = _i(port, "port")
    errs.extend(invalid(path.child("port"), num, m) for m in is_valid_port_num(num))

    protocol = _s(port, "protocol")
    if not protocol:
        errs.append(required(path.child("protocol")))
    elif protocol not in SUPPORTED_PORT_PROTOCOLS:
        errs.append(not_supported(path.child("protocol"), protocol, SUPPORTED_PORT_PROTOCOLS))

    # ValidatePortNumOrName. An absent targetPort is the zero IntOrString (int 0).
    tp = port.get("targetPort")
    tp_path = path.child("targetPort")
    if isinstance(tp, str):
        errs.extend(invalid(tp_path, tp, m) for m in is_valid_port_name(tp))
    else:
        tp_num = tp if isinstance(tp, int) and not isinstance(tp, bool) else 0
        errs.extend(invalid(tp_path, tp_num, m) for m in is_valid_port_num(tp_num))

    app_protocol = _opt(port, "appProtocol")
    if app_protocol is not None:
        errs.extend(invalid(path.child("appProtocol"), app_protocol, m)
                    for m in is_qualified_name(app_protocol))
    # In the v1 API, targetPorts on headless services were tolerated, so they are not
    # compared with port (upstream keeps that check commented out for compatibility).
    return errs


def _validate_client_ip_affinity_config(cfg: object, path: Path) -> list[FieldError]:
    """validateClientIPAffinityConfig + validateAffinityTimeout (each missing level stops)."""
    detail = f"when session affinity type is {AFFINITY_CLIENT_IP}"
    if not isinstance(cfg, Mapping):
        return [required(path, detail)]
    client_ip = cfg.get("clientIP")
    if not isinstance(client_ip, Mapping):
        return [required(path.child("clientIP"), detail)]
    timeout = client_ip.get("timeoutSeconds")
    t_path = path.child("clientIP", "timeoutSeconds")
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        return [required(t_path, detail)]
    if timeout <= 0 or timeout > MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS:
        return [invalid(t_path, timeout, "must be greater than 0 and less than "
                                         f"{MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS}")]
    return []


def validate_service_cluster_ips_related_fields(  # noqa: C901 (mirrors upstream)
        svc: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[FieldError]:
    """ValidateServiceClusterIPsRelatedFields (skipped entirely for ExternalName).

    Not checked here (the allocator's job, see :func:`init_ip_family_fields`): SingleStack
    with two IPs/families, RequireDualStack on a single-stack cluster, unconfigured families.
    """
    if _type(svc) == TYPE_EXTERNAL_NAME:
        return []
    spec = _spec(svc)
    errs: list[FieldError] = []
    ips_path = _SPEC.child("clusterIPs")
    fam_path = _SPEC.child("ipFamilies")
    cip = _s(spec, "clusterIP")
    ips = _strs(spec, "clusterIPs")
    raw_ips = _raw_list(spec, "clusterIPs")

    if cip:
        if not ips:
            errs.append(required(ips_path))
        elif ips[0] != cip:
            errs.append(invalid(ips_path, _go_strs(raw_ips), "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid(ips_path, _go_strs(raw_ips),
                            "must be empty when `clusterIP` is not specified"))

    seen: set[str] = set()
    for i, fam in enumerate(_strs(spec, "ipFamilies")):
        if fam not in SUPPORTED_IP_FAMILIES:
            errs.append(not_supported(fam_path.index(i), fam, SUPPORTED_IP_FAMILIES))
        # Checking for duplicates also ensures a two-entry list is dual-stack.
        if fam in seen:
            errs.append(duplicate(fam_path.index(i), fam))
        seen.add(fam)

    policy = _opt(spec, "ipFamilyPolicy")
    if policy is not None and policy not in SUPPORTED_IP_FAMILY_POLICIES:
        errs.append(not_supported(_SPEC.child("ipFamilyPolicy"), policy,
                                  SUPPORTED_IP_FAMILY_POLICIES))

    old_ips = _strs(_spec(old), "clusterIPs") if old is not None else []
    has_invalid = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == CLUSTER_IP_NONE:
            if len(ips) > 1:
                has_invalid = True
                errs.append(invalid(ips_path, _go_strs(raw_ips),
                                    "'None' must be the first and only value"))
            continue
        ip_errs = _validate_legacy_ip(ip, ips_path.index(i), old_ips)
        has_invalid = has_invalid or bool(ip_errs)
        errs.extend(ip_errs)

    if len(ips) > 2:
        errs.append(invalid(ips_path, _go_strs(raw_ips), "may only hold up to 2 values"))

    # A bad IP or a misplaced "None" would only skew the checks below.
    if has_invalid:
        return errs

    if len(ips) > 1:
        fams = [ip_family_of(ip) for ip in ips]
        if not (IPV4 in fams and IPV6 in fams):  # netutils.IsDualStackIPStrings
            errs.append(invalid(ips_path, _go_strs(raw_ips),
                                "may specify no more than one IP for each IP family"))

    families = _strs(spec, "ipFamilies")
    if not _is_headless_plural(svc) and ips and families:
        for i, ip in enumerate(ips):
            if i > len(families) - 1:
                break
            is_v6 = ip_family_of(ip) == IPV6
            if families[i] == IPV4 and is_v6:
                errs.append(invalid(ips_path.index(i), ip,
                                    f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"))
            if families[i] == IPV6 and not is_v6:
                errs.append(invalid(ips_path.index(i), ip,
                                    f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"))
    return errs


def validate_service_external_traffic_policy(svc: Mapping[str, Any]) -> list[FieldError]:
    """validateServiceExternalTrafficPolicy (+ healthCheckNodePort)."""
    spec = _spec(svc)
    errs: list[FieldError] = []
    etp = _s(spec, "externalTrafficPolicy")
    etp_path = _SPEC.child("externalTrafficPolicy")
    if not is_externally_accessible(svc):
        if etp:
            errs.append(invalid(etp_path, etp,
                                "may only be set for externally-accessible services"))
    elif not etp:
        errs.append(required(etp_path))
    elif etp not in SUPPORTED_TRAFFIC_POLICIES:
        errs.append(not_supported(etp_path, etp, SUPPORTED_TRAFFIC_POLICIES))

    hc = _i(spec, "healthCheckNodePort")
    hc_path = _SPEC.child("healthCheckNodePort")
    if not needs_health_check_node_port(svc):
        if hc != 0:
            errs.append(invalid(hc_path, hc, "may only be set when `type` is 'LoadBalancer' "
                                             "and `externalTrafficPolicy` is 'Local'"))
    elif hc == 0:
        errs.append(required(hc_path))
    else:
        errs.extend(invalid(hc_path, hc, m) for m in is_valid_port_num(hc))
    return errs


def _validate_load_balancer_class_field(old: Mapping[str, Any] | None,
                                        svc: Mapping[str, Any]) -> list[FieldError]:
    """validateLoadBalancerClassField. Called twice on update (quirk: errors duplicate)."""
    errs: list[FieldError] = []
    lbc_path = _SPEC.child("loadBalancerClass")
    lbc = _opt(_spec(svc), "loadBalancerClass")
    if (old is not None and _type(old) == TYPE_LOAD_BALANCER
            and _type(svc) == TYPE_LOAD_BALANCER
            and _opt(_spec(old), "loadBalancerClass") != lbc):
        errs.append(invalid(lbc_path, lbc, "may not change once set"))
    if _type(svc) == TYPE_LOAD_BALANCER:
        if lbc is not None:
            errs.extend(invalid(lbc_path, lbc, m) for m in is_qualified_name(lbc))
    elif lbc is not None:
        errs.append(forbidden(lbc_path, "may only be used when `type` is 'LoadBalancer'"))
    return errs


# --------------------------------------------------------------------------------------------
# ValidateService


def validate_service(svc: Mapping[str, Any], *,  # noqa: C901 (mirrors ValidateService)
                     old: Mapping[str, Any] | None = None) -> list[FieldError]:
    """ValidateService: every rule, in upstream's evaluation order; all errors accumulate.

    ``old`` (set by :func:`validate_service_update`) only grandfathers IPs/CIDRs that were
    already stored, as upstream does for its strict IP parsing.
    """
    meta = _meta(svc)
    spec = _spec(svc)
    ospec = _spec(old) if old is not None else {}
    errs = validate_object_meta(meta, requires_namespace=True, name_fn=name_is_dns1035_label,
                                path=_META)

    annotations_v = meta.get("annotations")
    annotations: Mapping[str, Any] = annotations_v if isinstance(annotations_v, Mapping) else {}
    if (ANNOTATION_TOPOLOGY_MODE in annotations
            and DEPRECATED_ANNOTATION_TOPOLOGY_AWARE_HINTS in annotations
            and annotations[ANNOTATION_TOPOLOGY_MODE]
            != annotations[DEPRECATED_ANNOTATION_TOPOLOGY_AWARE_HINTS]):
        errs.append(invalid(
            _META.child("annotations").key(ANNOTATION_TOPOLOGY_MODE),
            annotations[ANNOTATION_TOPOLOGY_MODE],
            f"must match annotations[{DEPRECATED_ANNOTATION_TOPOLOGY_AWARE_HINTS}] when both "
            "are specified"))

    stype = _s(spec, "type")
    ports = _ports(spec)
    headless = _is_headless_plural(svc)
    if not ports and not headless and stype != TYPE_EXTERNAL_NAME:
        errs.append(required(_SPEC.child("ports")))

    ips_path = _SPEC.child("clusterIPs")
    if stype == TYPE_LOAD_BALANCER and headless:
        errs.append(invalid(ips_path.index(0), CLUSTER_IP_NONE,
                            "may not be set to 'None' for LoadBalancer services"))
    elif stype == TYPE_NODE_PORT and headless:
        errs.append(invalid(ips_path.index(0), CLUSTER_IP_NONE,
                            "may not be set to 'None' for NodePort services"))
    elif stype == TYPE_EXTERNAL_NAME:
        # The strategy has already copied clusterIP into clusterIPs, so a set clusterIP is
        # reported on the plural field.
        if _strs(spec, "clusterIPs"):
            errs.append(forbidden(ips_path, "may not be set for ExternalName services"))
        if _strs(spec, "ipFamilies"):
            errs.append(forbidden(_SPEC.child("ipFamilies"),
                                  "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden(_SPEC.child("ipFamilyPolicy"),
                                  "may not be set for ExternalName services"))
        # A CNAME may carry one trailing dot to mark it fully qualified.
        external_name = _s(spec, "externalName")
        cname = external_name[:-1] if external_name.endswith(".") else external_name
        if cname:
            errs.extend(invalid(_SPEC.child("externalName"), cname, m)
                        for m in is_dns1123_subdomain(cname))
        else:
            errs.append(required(_SPEC.child("externalName")))

    all_names: set[str] = set()
    ports_path = _SPEC.child("ports")
    for i, port in enumerate(ports):
        errs.extend(_validate_service_port(port, len(ports) > 1, all_names, ports_path.index(i)))

    selector = spec.get("selector")
    if isinstance(selector, Mapping):
        errs.extend(validate_labels(selector, _SPEC.child("selector")))

    affinity = _s(spec, "sessionAffinity")
    if not affinity:
        errs.append(required(_SPEC.child("sessionAffinity")))
    elif affinity not in SUPPORTED_SESSION_AFFINITY:
        errs.append(not_supported(_SPEC.child("sessionAffinity"), affinity,
                                  SUPPORTED_SESSION_AFFINITY))
    if affinity == AFFINITY_CLIENT_IP:
        errs.extend(_validate_client_ip_affinity_config(spec.get("sessionAffinityConfig"),
                                                        _SPEC.child("sessionAffinityConfig")))
    elif affinity == AFFINITY_NONE and spec.get("sessionAffinityConfig") is not None:
        errs.append(forbidden(_SPEC.child("sessionAffinityConfig"),
                              f"must not be set when session affinity is {AFFINITY_NONE}"))

    errs.extend(validate_service_cluster_ips_related_fields(svc, old))

    ext_path = _SPEC.child("externalIPs")
    old_ext = _strs(ospec, "externalIPs")
    for i, ip in enumerate(_strs(spec, "externalIPs")):
        ip_errs = _validate_legacy_ip(ip, ext_path.index(i), old_ext)
        if ip_errs:
            errs.extend(ip_errs)
        else:
            errs.extend(_validate_non_special_ip(ip, ext_path.index(i)))

    if not stype:
        errs.append(required(_SPEC.child("type")))
    elif stype not in SUPPORTED_SERVICE_TYPES:
        errs.append(not_supported(_SPEC.child("type"), stype, SUPPORTED_SERVICE_TYPES))

    if stype == TYPE_CLUSTER_IP:
        for i, port in enumerate(ports):
            if _i(port, "nodePort") != 0:
                errs.append(forbidden(ports_path.index(i).child("nodePort"),
                                      "may not be used when `type` is 'ClusterIP'"))
    # No range check on nodePort here: that is the allocator's job.

    seen_node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        np = _i(port, "nodePort")
        if np == 0:
            continue
        key = (_s(port, "protocol"), np)
        if key in seen_node_ports:
            errs.append(duplicate(ports_path.index(i).child("nodePort"), np))
        seen_node_ports.add(key)

    seen_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        pkey = (_s(port, "protocol"), _i(port, "port"))
        if pkey in seen_ports:
            errs.append(duplicate(ports_path.index(i), _go_service_port_key(*pkey)))
        seen_ports.add(pkey)

    source_ranges = _strs(spec, "loadBalancerSourceRanges")
    if source_ranges:
        # Upstream quirk: the path really is spelled with a capital L.
        sr_path = _SPEC.child("LoadBalancerSourceRanges")
        if stype != TYPE_LOAD_BALANCER:
            errs.append(forbidden(sr_path, "may only be used when `type` is 'LoadBalancer'"))
        old_ranges = [v.strip() for v in _strs(ospec, "loadBalancerSourceRanges")]
        for idx, value in enumerate(source_ranges):
            # Historical accident: entries may be space-padded (copied from the annotation).
            errs.extend(validate_legacy_cidr(value.strip(), sr_path.index(idx), old_ranges))
    elif ANNOTATION_LOAD_BALANCER_SOURCE_RANGES in annotations:
        ann_path = _META.child("annotations").key(ANNOTATION_LOAD_BALANCER_SOURCE_RANGES)
        if stype != TYPE_LOAD_BALANCER:
            errs.append(forbidden(ann_path, "may only be used when `type` is 'LoadBalancer'"))
        raw = annotations[ANNOTATION_LOAD_BALANCER_SOURCE_RANGES]
        val = raw if isinstance(raw, str) else ""
        old_ann_v = _meta(old).get("annotations") if old is not None else None
        old_val = (old_ann_v.get(ANNOTATION_LOAD_BALANCER_SOURCE_RANGES)
                   if isinstance(old_ann_v, Mapping) else None)
        val = val.strip()
        if val and old_val != raw:
            for part in val.split(","):
                errs.extend(validate_legacy_cidr(part.strip(), ann_path, []))

    alloc = spec.get("allocateLoadBalancerNodePorts")
    if alloc is not None and stype != TYPE_LOAD_BALANCER:
        errs.append(forbidden(_SPEC.child("allocateLoadBalancerNodePorts"),
                              "may only be used when `type` is 'LoadBalancer'"))
    if stype == TYPE_LOAD_BALANCER and alloc is None:
        # Upstream quirk: the path has no "spec." prefix.
        errs.append(required(Path("allocateLoadBalancerNodePorts")))

    errs.extend(_validate_load_balancer_class_field(None, svc))
    errs.extend(validate_service_external_traffic_policy(svc))

    itp = _opt(spec, "internalTrafficPolicy")
    if itp is None:
        # Not forbidden on ExternalName: older clusters stored it there.
        if stype in (TYPE_NODE_PORT, TYPE_LOAD_BALANCER, TYPE_CLUSTER_IP):
            errs.append(required(_SPEC.child("internalTrafficPolicy")))
    elif itp not in SUPPORTED_TRAFFIC_POLICIES:
        errs.append(not_supported(_SPEC.child("internalTrafficPolicy"), itp,
                                  SUPPORTED_TRAFFIC_POLICIES))

    td = _opt(spec, "trafficDistribution")
    if td is not None and td not in SUPPORTED_TRAFFIC_DISTRIBUTION:
        errs.append(not_supported(_SPEC.child("trafficDistribution"), td,
                                  SUPPORTED_TRAFFIC_DISTRIBUTION))
    return errs


def validate_service_create(svc: Mapping[str, Any]) -> list[FieldError]:
    """ValidateServiceCreate is exactly ValidateService."""
    return validate_service(svc)


# --------------------------------------------------------------------------------------------
# ValidateServiceUpdate


def _validate_upgrade_downgrade_cluster_ips(old: Mapping[str, Any],
                                            new: Mapping[str, Any]) -> list[FieldError]:
    """validateUpgradeDowngradeClusterIPs."""
    if TYPE_EXTERNAL_NAME in (_type(new), _type(old)):
        return []
    if _is_headless_plural(old) and _is_headless_plural(new):
        return []
    spec, ospec = _spec(new), _spec(old)
    ips, old_ips = _strs(spec, "clusterIPs"), _strs(ospec, "clusterIPs")
    value = _go_strs(_raw_list(spec, "clusterIPs"))
    ips_path = _SPEC.child("clusterIPs")
    errs: list[FieldError] = []
    if len(old_ips) == len(ips):
        errs.extend(invalid(ips_path.index(i), value, "may not change once set")
                    for i, ip in enumerate(old_ips) if ip != ips[i])
    elif len(old_ips) > len(ips):
        if not ips:
            errs.append(invalid(ips_path.index(0), value, "primary clusterIP can not be unset"))
        if old_ips and ips and ips[0] != old_ips[0]:
            errs.append(invalid(ips_path.index(0), value, "may not change once set"))
        if len(ips) == 1 and _opt(spec, "ipFamilyPolicy") != SINGLE_STACK:
            errs.append(invalid(_SPEC.child("ipFamilyPolicy"), _opt(spec, "ipFamilyPolicy"),
                                "must be set to 'SingleStack' when releasing the secondary "
                                "clusterIP"))
    elif old_ips and ips[0] != old_ips[0]:
        errs.append(invalid(ips_path.index(0), value, "may not change once set"))
    return errs


def _validate_upgrade_downgrade_ip_families(old: Mapping[str, Any],
                                            new: Mapping[str, Any]) -> list[FieldError]:
    """validateUpgradeDowngradeIPFamilies, quirks included.

    Quirks: every changed entry is reported on ``spec.ipFamilies[0]``; "primary ipFamily can
    not be unset" fires when the new *clusterIPs* is empty; the primary-changed errors carry
    the clusterIPs list as their value.
    """
    if TYPE_EXTERNAL_NAME in (_type(new), _type(old)):
        return []
    if _is_headless_plural(new) != _is_headless_plural(old) or _is_headless_plural(new):
        return []
    spec, ospec = _spec(new), _spec(old)
    fams, old_fams = _strs(spec, "ipFamilies"), _strs(ospec, "ipFamilies")
    fam0 = _SPEC.child("ipFamilies").index(0)
    fams_value = _go_strs(_raw_list(spec, "ipFamilies"), "core.IPFamily")
    ips_value = _go_strs(_raw_list(spec, "clusterIPs"))
    errs: list[FieldError] = []
    if len(old_fams) == len(fams):
        errs.extend(invalid(fam0, fams_value, "may not change once set")
                    for i, fam in enumerate(old_fams) if fam != fams[i])
    elif len(old_fams) > len(fams):
        if not _strs(spec, "clusterIPs"):
            errs.append(invalid(fam0, fams_value, "primary ipFamily can not be unset"))
        if fams and fams[0] != old_fams[0]:
            errs.append(invalid(fam0, ips_value, "may not change once set"))
        if len(fams) == 1 and _opt(spec, "ipFamilyPolicy") != SINGLE_STACK:
            errs.append(invalid(_SPEC.child("ipFamilyPolicy"), _opt(spec, "ipFamilyPolicy"),
                                "must be set to 'SingleStack' when releasing the secondary "
                                "ipFamily"))
    elif old_fams and fams and fams[0] != old_fams[0]:
        errs.append(invalid(fam0, ips_value, "may not change once set"))
    return errs


def validate_service_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """ValidateServiceUpdate: update-only checks first, then the full ValidateService(new).

    Because validateLoadBalancerClassField runs here and again inside ValidateService, its
    format/Forbidden errors appear twice on update (as upstream); labels and annotations are
    likewise checked by both the create- and update-style metadata validation.
    """
    errs = validate_object_meta_update(_meta(new), _meta(old), _META)
    errs.extend(_validate_upgrade_downgrade_cluster_ips(old, new))
    errs.extend(_validate_upgrade_downgrade_ip_families(old, new))
    errs.extend(_validate_load_balancer_class_field(old, new))
    if (needs_health_check_node_port(old) and needs_health_check_node_port(new)
            and _i(_spec(new), "healthCheckNodePort") != _i(_spec(old), "healthCheckNodePort")):
        errs.append(forbidden(_SPEC.child("healthCheckNodePort"), "field is immutable"))
    errs.extend(validate_service(new, old=old))
    return errs


# --------------------------------------------------------------------------------------------
# status


def validate_load_balancer_status(status: Mapping[str, Any] | None, path: Path,
                                  svc: Mapping[str, Any],
                                  old_status: Mapping[str, Any] | None = None
                                  ) -> list[FieldError]:
    """ValidateLoadBalancerStatus (``status.loadBalancer``)."""
    lb: Mapping[str, Any] = status or {}
    ingress_v = lb.get("ingress")
    ingress = [i if isinstance(i, Mapping) else {} for i in ingress_v] if isinstance(
        ingress_v, list) else []
    ingr_path = path.child("ingress")
    if _type(svc) != TYPE_LOAD_BALANCER and ingress:
        # (AllowServiceLBStatusOnNonLB gate off, its default.)
        return [forbidden(ingr_path, "may only be used when `spec.type` is 'LoadBalancer'")]
    old_ips: list[str] = []
    if old_status:
        old_ing = old_status.get("ingress")
        if isinstance(old_ing, list):
            old_ips = [_s(i, "ip") for i in old_ing if isinstance(i, Mapping) and _s(i, "ip")]
    errs: list[FieldError] = []
    for i, ing in enumerate(ingress):
        ip_path = ingr_path.index(i)
        ip = _s(ing, "ip")
        if ip:
            errs.extend(_validate_legacy_ip(ip, ip_path.child("ip"), old_ips))
        mode = _opt(ing, "ipMode")
        if mode is None:
            if ip:
                errs.append(required(ip_path.child("ipMode"), "must be specified when `ip` is set"))
        elif not ip:
            errs.append(forbidden(ip_path.child("ipMode"),
                                  "may not be specified when `ip` is not set"))
        elif mode not in SUPPORTED_LOAD_BALANCER_IP_MODES:
            errs.append(not_supported(ip_path.child("ipMode"), mode,
                                      SUPPORTED_LOAD_BALANCER_IP_MODES))
        hostname = _s(ing, "hostname")
        if hostname:
            errs.extend(invalid(ip_path.child("hostname"), hostname, m)
                        for m in is_dns1123_subdomain(hostname))
            if parse_ip_sloppy(hostname) is not None:
                errs.append(invalid(ip_path.child("hostname"), hostname,
                                    "must be a DNS name, not an IP address"))
    return errs


def validate_service_status_update(new: Mapping[str, Any],
                                   old: Mapping[str, Any]) -> list[FieldError]:
    """ValidateServiceStatusUpdate: metadata update rules plus the load-balancer status."""
    errs = validate_object_meta_update(_meta(new), _meta(old), _META)

    def lb(svc: Mapping[str, Any]) -> Mapping[str, Any] | None:
        st = svc.get("status")
        v = st.get("loadBalancer") if isinstance(st, Mapping) else None
        return v if isinstance(v, Mapping) else None

    errs.extend(validate_load_balancer_status(lb(new), Path("status", "loadBalancer"), new,
                                              lb(old)))
    return errs
