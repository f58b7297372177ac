"""Node defaulting and validation, as Kubernetes does it.

Mirrors:

* ``pkg/apis/core/v1/defaults.go`` — ``SetDefaults_NodeStatus`` (allocatable defaults to
  capacity) and ``pkg/apis/core/v1/conversion.go``'s ``podCIDR``/``podCIDRs`` reconciliation;
* ``pkg/apis/core/validation/validation.go`` — ``ValidateNode``, ``ValidateNodeUpdate``,
  ``validateNodeTaints``, ``ValidateNodeResources``;
* ``pkg/registry/core/node/strategy.go`` — create/update/status preparation, and the
  composition "update = ValidateNode(new) + ValidateNodeUpdate(new, old)".

Note what upstream does *not* check, and neither do we: the ``type`` of ``status.addresses``
entries (only exact duplicates are rejected, and only on update), conditions, node info.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import list_of as _list, map_of as _map, str_of as _str
from svcnet.api.errors import (
    ErrorType,
    FieldError,
    GoRaw,
    Path,
    forbidden,
    go_quote,
    internal,
    invalid,
)
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import (
    is_valid_cidr,
    is_valid_label_value,
    name_is_dns_subdomain,
    parse_cidr_sloppy,
)
from svcnet.api.pods import validate_qualified_name, validate_taint_effect
from svcnet.api.resourcelists import validate_resource_quantity_value

#: The labels a svcnet node agent puts on its Node: the cluster and the node's index, from which
#: ``svcnet exec`` and ``svcnet explain`` find the node's and its pods' network namespaces.
LABEL_CLUSTER: Final = "svcnet.io/cluster"
LABEL_NODE_INDEX: Final = "svcnet.io/node-index"

__all__ = [
    "LABEL_CLUSTER",
    "LABEL_NODE_INDEX",
    "prepare_node_for_create",
    "prepare_node_for_status_update",
    "prepare_node_for_update",
    "set_defaults_node",
    "validate_node",
    "validate_node_status_update",
    "validate_node_update",
]

POD_CIDR_IMMUTABLE_MSG: Final = "node updates may not change podCIDR except from \"\" to valid"
PROVIDER_ID_IMMUTABLE_MSG: Final = (
    "node updates may not change providerID except from \"\" to valid")


def _strs(values: Sequence[Any]) -> list[str]:
    return [v if isinstance(v, str) else "" for v in values]


# =============================================================================================
# defaulting and registry preparation


def set_defaults_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """v1 defaulting of a Node; returns a new dict.

    * ``spec.podCIDR`` and ``spec.podCIDRs`` are reconciled as the v1 conversion does:
      ``podCIDR`` is authoritative when both are set and differ (or the list is empty), and
      ``podCIDR`` then mirrors ``podCIDRs[0]``;
    * ``status.allocatable`` defaults to ``status.capacity``.
    """
    out = copy.deepcopy(dict(node))
    spec = out.get("spec")
    if isinstance(spec, dict):
        one = _str(spec, "podCIDR")
        many = _strs(_list(spec, "podCIDRs"))
        if one and (not many or many[0] != one):
            spec["podCIDRs"] = [one]
        elif many and many[0]:
            spec["podCIDR"] = many[0]
    status = out.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None \
            and isinstance(status.get("capacity"), dict):
        status["allocatable"] = copy.deepcopy(status["capacity"])
    return out


def prepare_node_for_create(node: Mapping[str, Any]) -> dict[str, Any]:
    """nodeStrategy.PrepareForCreate: nodes may set status on create; the retired dynamic
    kubelet config fields are dropped."""
    out = copy.deepcopy(dict(node))
    _map(out, "spec").pop("configSource", None)
    _map(out, "status").pop("config", None)
    return out


def prepare_node_for_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """nodeStrategy.PrepareForUpdate: the main endpoint keeps the old status."""
    out = copy.deepcopy(dict(new))
    out["status"] = copy.deepcopy(old.get("status") or {})
    if _map(old, "spec").get("configSource") is None:
        _map(out, "spec").pop("configSource", None)
    return out


def prepare_node_for_status_update(new: Mapping[str, Any],
                                   old: Mapping[str, Any]) -> dict[str, Any]:
    """nodeStatusStrategy.PrepareForUpdate: the status endpoint keeps the old spec."""
    out = copy.deepcopy(dict(new))
    out["spec"] = copy.deepcopy(old.get("spec") or {})
    return out


# =============================================================================================
# validation


def _go_taint(taint: Mapping[str, Any]) -> GoRaw:
    """%#v of a core.Taint (a set timeAdded is printed as its text: Go would print an
    address)."""
    added = taint.get("timeAdded")
    added_text = "(*v1.Time)(nil)" if added is None else f"(*v1.Time)({added})"
    return GoRaw(f"core.Taint{{Key:{go_quote(_str(taint, 'key'))}, "
                 f"Value:{go_quote(_str(taint, 'value'))}, "
                 f"Effect:{go_quote(_str(taint, 'effect'))}, TimeAdded:{added_text}}}")


def _validate_taints(taints: Sequence[Any], path: Path) -> list[FieldError]:
    """validateNodeTaints: valid key/value/effect, unique by (key, effect)."""
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(taints):
        taint = raw if isinstance(raw, dict) else {}
        p = path.index(i)
        key, value, effect = _str(taint, "key"), _str(taint, "value"), _str(taint, "effect")
        errs.extend(validate_qualified_name(key, p.child("key")))
        msgs = is_valid_label_value(value)
        if msgs:
            errs.append(invalid(p.child("value"), value, ";".join(msgs)))
        errs.extend(validate_taint_effect(effect, False, p.child("effect")))
        if (key, effect) in seen:
            errs.append(FieldError(ErrorType.DUPLICATE, str(p), _go_taint(taint),
                                   "taints must be unique by key and effect pair"))
            continue
        seen.add((key, effect))
    return errs


def _validate_resources(node: Mapping[str, Any]) -> list[FieldError]:
    """ValidateNodeResources: ValidateResourceQuantityValue of every capacity and allocatable.

    The paths are ``status.capacity.<name>`` (a child, not a key), as upstream builds them.
    """
    errs: list[FieldError] = []
    status = _map(node, "status")
    for field in ("capacity", "allocatable"):
        for name, raw in _map(status, field).items():
            errs.extend(validate_resource_quantity_value(name, raw, Path("status", field, name)))
    return errs


def _dual_stack_cidr_error(cidrs: Sequence[str]) -> tuple[bool, str]:
    """netutils.IsDualStackCIDRStrings: (dual stack?, error text or "")."""
    v4 = v6 = False
    for c in cidrs:
        net = parse_cidr_sloppy(c)
        if net is None:
            return False, (f"failed to parse cidr value:{go_quote(c)} with error:"
                           f"invalid CIDR address: {c}")
        addr = net.network_address
        mapped = isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None
        if addr.version == 6 and not mapped:
            v6 = True
        else:
            v4 = True
    return v4 and v6, ""


def _validate_pod_cidrs(spec: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    cidrs = _strs(_list(spec, "podCIDRs"))
    if not cidrs:
        return errs
    path = Path("spec", "podCIDRs")
    for i, cidr in enumerate(cidrs):
        # validation.IsValidCIDR of the v1.33 line: the sloppy (legacy) parser.
        errs.extend(invalid(path.index(i), cidr, m) for m in is_valid_cidr(cidr, strict=False))
    if len(cidrs) > 1:
        dual, err = _dual_stack_cidr_error(cidrs)
        if err:
            errs.append(internal(path, "invalid PodCIDRs. failed to check with dual stack with "
                                       f"error:{err}"))
        if not dual or len(cidrs) > 2:
            errs.append(invalid(path, cidrs, "may specify no more than one CIDR for each IP "
                                             "family"))
        seen: set[str] = set()
        for i, cidr in enumerate(cidrs):
            if cidr in seen:
                errs.append(FieldError(ErrorType.DUPLICATE, str(path.index(i)), cidr))
            seen.add(cidr)
    return errs


def validate_node(node: Mapping[str, Any]) -> list[FieldError]:
    """ValidateNode (create): name is a DNS subdomain, no namespace, taints, resources,
    podCIDRs (valid, at most one per family, no duplicates)."""
    meta_path = Path("metadata")
    errs = validate_object_meta(_map(node, "metadata"), requires_namespace=False,
                                name_fn=name_is_dns_subdomain, path=meta_path)
    spec = _map(node, "spec")
    # Upstream reports spec.taints under "metadata.taints[i]" (sic).
    errs.extend(_validate_taints(_list(spec, "taints"), meta_path.child("taints")))
    errs.extend(_validate_resources(node))
    errs.extend(_validate_pod_cidrs(spec))
    return errs


def _go_address(addr: Mapping[str, Any]) -> GoRaw:
    return GoRaw(f"core.NodeAddress{{Type:{go_quote(_str(addr, 'type'))}, "
                 f"Address:{go_quote(_str(addr, 'address'))}}}")


def _validate_node_update_only(new: Mapping[str, Any], old: Mapping[str, Any],
                               ) -> list[FieldError]:
    """ValidateNodeUpdate proper."""
    meta_path = Path("metadata")
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), meta_path)
    errs.extend(_validate_resources(new))
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(_list(_map(new, "status"), "addresses")):
        addr = raw if isinstance(raw, dict) else {}
        key = (_str(addr, "type"), _str(addr, "address"))
        if key in seen:
            errs.append(FieldError(ErrorType.DUPLICATE,
                                   str(Path("status", "addresses").index(i)), _go_address(addr)))
        seen.add(key)
    new_spec, old_spec = _map(new, "spec"), _map(old, "spec")
    old_cidrs = _strs(_list(old_spec, "podCIDRs"))
    new_cidrs = _strs(_list(new_spec, "podCIDRs"))
    cidr_path = Path("spec", "podCIDRs")
    if old_cidrs:
        # Once assigned, podCIDRs are immutable (one error per changed entry, as upstream).
        if len(old_cidrs) != len(new_cidrs):
            errs.append(forbidden(cidr_path, POD_CIDR_IMMUTABLE_MSG))
        else:
            errs.extend(forbidden(cidr_path, POD_CIDR_IMMUTABLE_MSG)
                        for o, n in zip(old_cidrs, new_cidrs, strict=True) if o != n)
    old_provider = _str(old_spec, "providerID")
    if old_provider and old_provider != _str(new_spec, "providerID"):
        errs.append(forbidden(Path("spec", "providerID"), PROVIDER_ID_IMMUTABLE_MSG))
    errs.extend(_validate_taints(_list(new_spec, "taints"), meta_path.child("taints")))
    if _str(new_spec, "externalID") != _str(old_spec, "externalID"):
        errs.append(forbidden(Path("spec", "externalID"), "may not be updated"))
    return errs


def validate_node_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """nodeStrategy.ValidateUpdate: ValidateNode(new) followed by ValidateNodeUpdate.

    Because both halves check taints and resources, a bad taint is reported twice, exactly
    as a real API server reports it.
    """
    return validate_node(new) + _validate_node_update_only(new, old)


def validate_node_status_update(new: Mapping[str, Any],
                                old: Mapping[str, Any]) -> list[FieldError]:
    """nodeStatusStrategy.ValidateUpdate: ValidateNodeUpdate only."""
    return _validate_node_update_only(new, old)


# -- how the API server reaches a node's agent (kubelet) ------------------------------------

KUBELET_CLIENT_CN: Final = "kube-apiserver-kubelet-client"
"""The API server's client-certificate identity towards node agents (kubeadm's
apiserver-kubelet-client), in group :data:`KUBELET_CLIENT_GROUP`."""
KUBELET_CLIENT_GROUP: Final = "system:masters"


def kubelet_endpoint(node: Mapping[str, Any]) -> tuple[str, int] | None:
    """(InternalIP, kubelet port) the API server dials for ``node``, as kube-apiserver's
    node connection info does (``status.daemonEndpoints.kubeletEndpoint.Port``); None when
    the node advertises neither."""
    status = _map(node, "status")
    port = _map(_map(status, "daemonEndpoints"), "kubeletEndpoint").get("Port")
    addresses = {str(a.get("type")): str(a.get("address"))
                 for a in _list(status, "addresses") if isinstance(a, Mapping)}
    address = addresses.get("InternalIP") or addresses.get("ExternalIP")
    if not isinstance(port, int) or not 0 < port < 65536 or not address:
        return None
    return address, port
