"""networking.k8s.io/v1 NetworkPolicies: defaulting and validation, as Kubernetes 1.33 does
them.

Theory of operation
-------------------
A NetworkPolicy selects pods of its namespace (``spec.podSelector``) and lists the traffic
they may receive (``spec.ingress``: peers ``from`` and ``ports``) and send (``spec.egress``:
peers ``to`` and ``ports``); ``spec.policyTypes`` says which of the two directions the policy
isolates. Kubernetes stores and validates NetworkPolicies whatever the cluster's network
plugin does with them; so does svcnet, whose data plane does not enforce them yet (as with
flannel): they are an API contract here, kept so that manifests and charts that carry them
apply, and so that an enforcing agent can be added later without an API change.

Mirrors:

* ``pkg/apis/networking/v1/defaults.go`` — ``SetDefaults_NetworkPolicyPort`` (a port's
  ``protocol`` is TCP when unset) and ``SetDefaults_NetworkPolicy`` (no ``policyTypes``:
  ``["Ingress"]``, plus ``"Egress"`` when the policy has egress rules). They run when an object
  is decoded, so on every create and update;
* ``pkg/apis/networking/validation/validation.go`` — ``ValidateNetworkPolicy`` (core's
  ObjectMeta rules, the name a DNS subdomain, a namespace required), ``ValidateNetworkPolicySpec``
  (label selectors; each rule's ports and peers; at most two ``policyTypes``, each Ingress or
  Egress), ``ValidateNetworkPolicyPort`` (protocol TCP, UDP or SCTP; a numeric port in
  1-65535 or a port name; ``endPort`` only after a numeric ``port``, not below it and itself a
  port number), ``ValidateNetworkPolicyPeer`` (at least one of ``podSelector``,
  ``namespaceSelector`` and ``ipBlock``, and ``ipBlock`` alone), ``ValidateIPBlock`` (a CIDR,
  each ``except`` a CIDR strictly inside it) and ``ValidateNetworkPolicyUpdate``;
* ``pkg/registry/networking/networkpolicy/strategy.go`` — a generation (1 on create, bumped by
  spec changes: the generic registry's ``has_generation``), no status (v1 has none since the
  alpha NetworkPolicyStatus was dropped), and update validation: the create rules with the
  options ``ValidationOptionsForNetworking`` derives from the stored object, then the ObjectMeta
  update rules.

Two choices of svcnet's, both in the direction of the newer upstream line:

* CIDRs are checked by :func:`svcnet.api.services.validate_legacy_cidr`, the one check of every
  legacy CIDR field here: strict (no leading zeros, no bits set beyond the prefix length: an
  ambiguous CIDR in a firewall rule is a security bug, see
  :func:`svcnet.api.names.is_valid_cidr`), with the CIDRs the stored object already had
  grandfathered on update (upstream's ``AllowCIDRsEvenIfInvalid``). Kubernetes 1.33 without the
  StrictIPCIDRValidation gate accepts ``10.0.0.1/8``; svcnet answers 422;
* an update lists each spec error once. Upstream's strategy runs the spec rules twice (in
  ``ValidateNetworkPolicy`` and in ``ValidateNetworkPolicyUpdate``): its 422 message, which
  drops repeats, is the same as ours; its ``causes`` hold each spec error twice.

Messages keep upstream's quirks: ``endPort`` below ``port`` reports the *port* as the bad
value (``spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to
`port```), and too many ``policyTypes`` print as Go prints the typed slice.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Final

from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    forbidden,
    go_quote,
    invalid,
    not_supported,
    required,
)
from svcnet.api.labels import validate_label_selector
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import (
    is_valid_port_name,
    is_valid_port_num,
    name_is_dns_subdomain,
    parse_cidr_sloppy,
)
from svcnet.api.services import validate_legacy_cidr

__all__ = [
    "API_VERSION",
    "GROUP",
    "POLICY_TYPES",
    "PROTOCOLS",
    "set_defaults_network_policy",
    "validate_network_policy",
    "validate_network_policy_update",
]

Obj = dict[str, Any]
GROUP: Final = "networking.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"
#: The protocols a NetworkPolicyPort may name, in upstream's order (its NotSupported list).
PROTOCOLS: Final = ("TCP", "UDP", "SCTP")
#: The values of ``spec.policyTypes``, in upstream's order.
POLICY_TYPES: Final = ("Ingress", "Egress")

_META: Final = Path("metadata")
_SPEC: Final = Path("spec")
#: Each direction: the rules' key in the spec and the peers' key in a rule.
_DIRECTIONS: Final = (("ingress", "from"), ("egress", "to"))


def _rules(spec: Mapping[str, Any]) -> Iterator[tuple[Path, Mapping[str, Any], str]]:
    """Every rule of both directions: its path, itself and the key of its peers."""
    for key, peers_key in _DIRECTIONS:
        for i, rule in enumerate(list_of(spec, key)):
            yield _SPEC.child(key).index(i), rule if isinstance(rule, dict) else {}, peers_key


# ------------------------------------------------------------------------- defaulting


def set_defaults_network_policy(obj: Mapping[str, Any]) -> Obj:
    """SetDefaults_NetworkPolicyPort on every rule's ports, then SetDefaults_NetworkPolicy
    (a copy; the input is not changed). ``spec`` and ``spec.podSelector`` are Go structs, not
    pointers: upstream writes them back (empty) even when a client left them out."""
    out = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    if not isinstance(spec.get("podSelector"), dict):
        spec["podSelector"] = {}
    for _, rule, _ in _rules(spec):
        for port in list_of(rule, "ports"):
            if isinstance(port, dict) and port.get("protocol") is None:
                port["protocol"] = "TCP"
    if not list_of(spec, "policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if list_of(spec, "egress") else ["Ingress"]
    return out


# ------------------------------------------------------------------------- validation


def _validate_port(port: Mapping[str, Any], path: Path) -> list[FieldError]:
    """ValidateNetworkPolicyPort."""
    errs: list[FieldError] = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        errs.append(not_supported(path.child("protocol"), protocol, PROTOCOLS))
    number, end = port.get("port"), port.get("endPort")
    end_path = path.child("endPort")
    if number is None:
        if end is not None:
            errs.append(invalid(end_path, end, "may not be specified when `port` is not "
                                               "specified"))
    elif isinstance(number, int):
        errs.extend(invalid(path.child("port"), number, m) for m in is_valid_port_num(number))
        if isinstance(end, int):
            if end < number:
                # Upstream reports the port, not the endPort, as the bad value.
                errs.append(invalid(end_path, number, "must be greater than or equal to `port`"))
            errs.extend(invalid(end_path, end, m) for m in is_valid_port_num(end))
    else:
        if end is not None:
            errs.append(invalid(end_path, end, "may not be specified when `port` is "
                                               "non-numeric"))
        errs.extend(invalid(path.child("port"), str(number), m)
                    for m in is_valid_port_name(str(number)))
    return errs


def _validate_ip_block(block: Mapping[str, Any], path: Path,
                       old_cidrs: list[str]) -> list[FieldError]:
    """ValidateIPBlock: a CIDR, and ``except`` entries that are CIDRs strictly inside it."""
    cidr = str_of(block, "cidr")
    if not cidr:
        return [required(path.child("cidr"))]
    errs = validate_legacy_cidr(cidr, path.child("cidr"), old_cidrs)
    net = parse_cidr_sloppy(cidr)
    if net is None:
        return errs
    for i, raw in enumerate(list_of(block, "except")):
        text = str(raw)
        except_path = path.child("except").index(i)
        errs.extend(validate_legacy_cidr(text, except_path, old_cidrs))
        inner = parse_cidr_sloppy(text)
        if inner is None:
            continue
        inside = inner.version == net.version and inner.network_address in net
        if not inside or net.prefixlen >= inner.prefixlen:
            errs.append(invalid(except_path, text, "must be a strict subset of `cidr`"))
    return errs


def _validate_peer(peer: Mapping[str, Any], path: Path, *, allow_invalid_label_value: bool,
                   old_cidrs: list[str]) -> list[FieldError]:
    """ValidateNetworkPolicyPeer: one kind of peer, or both selectors (pods in the selected
    namespaces); an ipBlock stands alone."""
    errs: list[FieldError] = []
    count = 0
    for key in ("podSelector", "namespaceSelector"):
        selector = peer.get(key)
        if isinstance(selector, dict):
            count += 1
            errs.extend(validate_label_selector(
                selector, path.child(key), allow_invalid_label_value=allow_invalid_label_value))
    block = peer.get("ipBlock")
    if isinstance(block, dict):
        count += 1
        errs.extend(_validate_ip_block(block, path.child("ipBlock"), old_cidrs))
    if count == 0:
        errs.append(required(path, "must specify a peer"))
    elif count > 1 and isinstance(block, dict):
        errs.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def _validate_spec(spec: Mapping[str, Any], *, allow_invalid_label_value: bool = False,
                   old_cidrs: list[str] | None = None) -> list[FieldError]:
    """ValidateNetworkPolicySpec."""
    cidrs = old_cidrs or []
    errs = validate_label_selector(map_of(spec, "podSelector"), _SPEC.child("podSelector"),
                                   allow_invalid_label_value=allow_invalid_label_value)
    for rule_path, rule, peers_key in _rules(spec):
        for i, port in enumerate(list_of(rule, "ports")):
            errs.extend(_validate_port(port if isinstance(port, dict) else {},
                                       rule_path.child("ports").index(i)))
        for i, peer in enumerate(list_of(rule, peers_key)):
            errs.extend(_validate_peer(peer if isinstance(peer, dict) else {},
                                       rule_path.child(peers_key).index(i),
                                       allow_invalid_label_value=allow_invalid_label_value,
                                       old_cidrs=cidrs))
    types = list_of(spec, "policyTypes")
    types_path = _SPEC.child("policyTypes")
    if len(types) > len(POLICY_TYPES):
        shown = ", ".join(go_quote(str(t)) for t in types)
        errs.append(invalid(types_path, GoRaw(f"[]networking.PolicyType{{{shown}}}"),
                            "may not specify more than two policyTypes"))
        return errs
    errs.extend(not_supported(types_path.index(i), t, POLICY_TYPES)
                for i, t in enumerate(types) if t not in POLICY_TYPES)
    return errs


def validate_network_policy(policy: Mapping[str, Any], *,
                            allow_invalid_label_value: bool = False,
                            old_cidrs: list[str] | None = None) -> list[FieldError]:
    """ValidateNetworkPolicy; the options are an update's (a create allows nothing)."""
    errs = validate_object_meta(map_of(policy, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)
    errs.extend(_validate_spec(map_of(policy, "spec"),
                               allow_invalid_label_value=allow_invalid_label_value,
                               old_cidrs=old_cidrs))
    return errs


def _ip_block_cidrs(policy: Mapping[str, Any]) -> list[str]:
    """Every ``cidr`` and ``except`` entry of the policy's ipBlocks (what an update may keep
    even where it no longer passes)."""
    out: list[str] = []
    for _, rule, peers_key in _rules(map_of(policy, "spec")):
        for peer in list_of(rule, peers_key):
            block = peer.get("ipBlock") if isinstance(peer, dict) else None
            if isinstance(block, dict):
                out.append(str_of(block, "cidr"))
                out.extend(str(c) for c in list_of(block, "except"))
    return out


def validate_network_policy_update(new: Mapping[str, Any],
                                   old: Mapping[str, Any]) -> list[FieldError]:
    """networkPolicyStrategy.ValidateUpdate: the create rules on the new object, with label
    values in selectors allowed when the stored ``spec.podSelector`` already had a bad one
    (ValidationOptionsForNetworking) and the stored ipBlock CIDRs grandfathered, then the
    ObjectMeta update rules."""
    old_selector = map_of(map_of(old, "spec"), "podSelector")
    allow = bool(validate_label_selector(old_selector, _SPEC.child("podSelector")))
    errs = validate_network_policy(new, allow_invalid_label_value=allow,
                                   old_cidrs=_ip_block_cidrs(old))
    errs.extend(validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"),
                                            _META))
    return errs
