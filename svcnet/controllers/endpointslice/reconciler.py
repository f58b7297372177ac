"""The EndpointSlice reconciler: desired slices for one Service, as a pure plan.

Theory of operation (after ``staging/src/k8s.io/endpointslice/reconciler.go``)
------------------------------------------------------------------------------
:func:`plan_slices` takes a Service, the pods and Nodes the caller knows, and the slices that
exist for the Service, and returns a :class:`SlicePlan`: full EndpointSlice objects to create,
to update (each carrying the ``resourceVersion`` it replaces) and to delete. It does no I/O,
reads no clock, never mutates its inputs, and gives the same answer for the same inputs.

1. **Which Services.** ``ExternalName`` and selectorless Services get an empty plan: their
   slices, if any, belong to someone else. (See :func:`~.util.manages_service`.)
2. **Which slices.** Only slices in the Service's namespace labelled
   ``kubernetes.io/service-name: <svc>`` and ``endpointslice.kubernetes.io/managed-by:
   endpointslice-controller.k8s.io``, and not already being deleted, are considered. Slices of
   an address type the Service no longer has are deleted. Slices carrying our labels but not
   owned by this Service (ownerReference uid mismatch: left over from a deleted Service of the
   same name) are deleted.
3. **Which pods.** Pods of the Service's namespace matching its selector, that are not terminal
   and have an IP. Terminating pods stay (``terminating: true``). A pod whose ``spec.nodeName``
   names no known Node is skipped and reported in :attr:`SlicePlan.errors` (the controller
   applies the rest and retries), unless ``publishNotReadyAddresses`` is set, in which case it
   is included without a zone.
4. **One family per slice.** For each address type of the Service (``spec.ipFamilies``, with
   upstream's fallbacks), each pod contributes its addresses of that family; a pod with none
   contributes nothing to that family.
5. **Grouped by port list.** Each pod's ports are the Service ports it resolves (named
   ``targetPort`` matched by name and protocol; a port it lacks is left out), so pods with
   different resolved port lists live in different sets of slices.
6. **Packing without churn.** Per port list: existing slices keep the endpoints that are still
   wanted (updated in place when their conditions, node, zone or target changed) and drop the
   others; a slice left empty is deleted. New endpoints fill the slices being updated anyway
   (fullest first), then the one unchanged slice that ends up closest to full and can take all
   of them, then new slices of at most ``max_per_slice``. Nothing is rebalanced.
7. **Placeholder.** An address type with no endpoints keeps exactly one empty slice
   (``endpoints: []``, ``ports: []``); an existing identical placeholder is left alone.
8. **Zone hints** (:mod:`~.hints`), per address type, on what is created or updated, before
   creates become updates: the topology annotation's CPU-proportional hints, else
   ``trafficDistribution: PreferClose``'s same-zone hints, else none. Unchanged slices whose
   hints are wrong for the regime in force are rewritten too.
8a. **Creates become updates.** When a sync would both delete an owned slice and create one of
   the same address type, the new content is written into the old slice instead (names are
   reused, watchers see a MODIFIED rather than DELETED+ADDED).
9. **Service being deleted.** No creates (garbage collection would race them).
10. **Annotation.** Every created or updated slice gets
    ``endpoints.kubernetes.io/last-change-trigger-time`` set to ``trigger_time`` (RFC 3339 with
    nanoseconds), or removed if ``trigger_time`` is None.

Determinism: upstream iterates Go maps (random order) where it does not matter to the result's
meaning. Here pods are taken in name order, existing slices in name order, port lists in a
fixed order, so the plan (and which slice an endpoint lands in) is reproducible.

Objects are plain JSON dicts as on the wire. Endpoints are identified, as upstream does, by
(addresses, hostname, target namespace, target name): anything else about an endpoint can be
updated in place.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from svcnet.api.access import (
    list_of as _list,
    mapping_of as _map,
    str_of as _str,
)
from svcnet.api.names import name_is_dns_subdomain, parse_ip_sloppy
from svcnet.controllers.endpointslice.hints import (
    SliceSet,
    TopologyResult,
    add_topology_hints,
    hints_enabled,
    reconcile_traffic_distribution,
    remove_hints,
    uses_traffic_distribution,
)
from svcnet.controllers.endpointslice.util import (
    ANNOTATION_LAST_CHANGE_TRIGGER_TIME,
    LABEL_HEADLESS,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    LABEL_ZONE,
    canonical_ip,
    find_port,
    format_rfc3339_nano,
    is_pod_ready,
    is_service_ip_set,
    is_terminating,
    manages_service,
    pod_ips,
    selector_matches,
    service_selector,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from svcnet.util.jsoncopy import json_copy

__all__ = [
    "API_VERSION",
    "CONTROLLER_NAME",
    "DEFAULT_MAX_ENDPOINTS_PER_SLICE",
    "RESERVED_LABELS",
    "SlicePlan",
    "address_types_for_service",
    "endpoint_key",
    "endpoint_ports",
    "endpoints_equal_beyond_hash",
    "owned_by",
    "plan_slices",
    "pod_to_endpoint",
    "port_map_key",
    "slice_labels",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

API_VERSION: Final = "discovery.k8s.io/v1"
CONTROLLER_NAME: Final = "endpointslice-controller.k8s.io"
"""The ``endpointslice.kubernetes.io/managed-by`` value of the slices this controller owns."""
DEFAULT_MAX_ENDPOINTS_PER_SLICE: Final = 100
MAX_ENDPOINTS_PER_SLICE_LIMIT: Final = 1000
RESERVED_LABELS: Final = frozenset({LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS})
"""Labels the controller sets itself and never copies from the Service."""

EndpointKey = tuple[tuple[str, ...], str, str, str]
PortKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SlicePlan:
    """What to write for one Service. Apply creates, then updates, then deletes."""

    create: tuple[Obj, ...] = ()
    """New slices: ``metadata.generateName`` set, no name."""
    update: tuple[Obj, ...] = ()
    """Replacements for existing slices (name and ``resourceVersion`` of the slice replaced)."""
    delete: tuple[Obj, ...] = ()
    """Existing slices to delete (copies of those given)."""
    errors: tuple[str, ...] = ()
    """Why the plan leaves something out (pods on unknown Nodes): apply it, then retry."""
    topology: tuple[TopologyResult, ...] = ()
    """Per address type, what the topology annotation's hints came to (only for a Service
    with the annotation; see :mod:`~.hints`)."""


# -- small accessors -------------------------------------------------------------------------


def _name(obj: ObjMap) -> str:
    return _str(_map(obj, "metadata"), "name")


def _dicts(items: Iterable[Any]) -> list[ObjMap]:
    return [i for i in items if isinstance(i, Mapping)]


# -- the Service's side ----------------------------------------------------------------------


def address_types_for_service(svc: ObjMap) -> list[str]:
    """The slice address types a Service gets, in ``spec.ipFamilies`` order.

    Without ``ipFamilies`` (an object from before dual-stack defaulting): the family of
    ``clusterIP``, or both families for a headless Service, as upstream assumes.
    """
    spec = _map(svc, "spec")
    types: list[str] = []
    for family in _list(spec, "ipFamilies"):
        if family in ("IPv4", "IPv6") and family not in types:
            types.append(family)
    if types:
        return types
    cip = _str(spec, "clusterIP")
    if cip and cip != "None":
        ip = parse_ip_sloppy(cip)
        return ["IPv6" if ip is not None and ip.version == 6 else "IPv4"]
    return ["IPv4", "IPv6"]


def owner_reference(svc: ObjMap) -> Obj:
    meta = _map(svc, "metadata")
    return {"apiVersion": "v1", "kind": "Service", "name": _str(meta, "name"),
            "uid": _str(meta, "uid"), "controller": True, "blockOwnerDeletion": True}


def owned_by(eps: ObjMap, svc: ObjMap) -> bool:
    uid = _str(_map(svc, "metadata"), "uid")
    return any(ref.get("uid", "") == uid and ref.get("kind") == "Service"
               and ref.get("apiVersion") == "v1"
               for ref in _dicts(_list(_map(eps, "metadata"), "ownerReferences")))


def slice_labels(current: Mapping[str, Any] | None, svc: ObjMap,
                 controller_name: str = CONTROLLER_NAME) -> tuple[Obj, bool]:
    """The labels a slice of ``svc`` should carry, and whether its non-reserved labels differ
    from the Service's (upstream ``setEndpointSliceLabels``).

    Only the copied Service labels count as a change: the reserved labels are (re)set on every
    write but, as upstream, a difference in them alone does not cause one.
    """
    ours = {k: v for k, v in (current or {}).items() if k not in RESERVED_LABELS}
    wanted: Obj = {k: v for k, v in _map(_map(svc, "metadata"), "labels").items()
                   if k not in RESERVED_LABELS}
    changed = ours != wanted
    if not is_service_ip_set(svc):
        wanted[LABEL_HEADLESS] = ""
    wanted[LABEL_SERVICE_NAME] = _name(svc)
    wanted[LABEL_MANAGED_BY] = controller_name
    return wanted, changed


def _generate_name(service_name: str) -> str:
    prefix = f"{service_name}-"
    return service_name if name_is_dns_subdomain(prefix, True) else prefix


def _new_slice(svc: ObjMap, ports: Sequence[ObjMap], address_type: str,
               controller_name: str) -> Obj:
    meta = _map(svc, "metadata")
    labels, _ = slice_labels(None, svc, controller_name)
    return {"apiVersion": API_VERSION, "kind": "EndpointSlice",
            "metadata": {"generateName": _generate_name(_str(meta, "name")),
                         "namespace": _str(meta, "namespace"), "labels": labels,
                         "ownerReferences": [owner_reference(svc)]},
            "addressType": address_type, "endpoints": [],
            "ports": [dict(p) for p in ports]}


# -- the pods' side --------------------------------------------------------------------------


def endpoint_ports(svc: ObjMap, pod: ObjMap) -> list[Obj]:
    """The slice ports for ``pod``: one per Service port the pod resolves, in Service order."""
    out: list[Obj] = []
    for sp in _dicts(_list(_map(svc, "spec"), "ports")):
        number = find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {"name": _str(sp, "name"), "protocol": _str(sp, "protocol") or "TCP",
                     "port": number}
        if sp.get("appProtocol") is not None:
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def _normal_port(port: ObjMap) -> Obj:
    out: Obj = {"name": port.get("name") or "", "protocol": port.get("protocol") or "TCP",
                "port": port.get("port")}
    if port.get("appProtocol") is not None:
        out["appProtocol"] = port["appProtocol"]
    return out


def port_map_key(ports: Iterable[ObjMap] | None) -> PortKey:
    """Identity of a port list, independent of order and of API defaulting (name ``""``,
    protocol ``TCP``): upstream's ``NewPortMapKey``."""
    return tuple(sorted(json.dumps(_normal_port(p), sort_keys=True)
                        for p in _dicts(ports or [])))


def _addresses(pod: ObjMap, address_type: str) -> list[str]:
    out = []
    for ip in pod_ips(pod):
        parsed = canonical_ip(ip)
        if parsed is not None and parsed[0] == address_type:
            out.append(parsed[1])
    return out


def pod_to_endpoint(pod: ObjMap, node: ObjMap | None, svc: ObjMap, address_type: str) -> Obj:
    """The Endpoint for ``pod`` in a slice of ``address_type`` (upstream ``podToEndpoint``).

    ``serving`` is readiness; ``terminating`` is a deletionTimestamp; ``ready`` is
    ``serving and not terminating``, forced true by ``publishNotReadyAddresses``.
    """
    pod_meta, pod_spec = _map(pod, "metadata"), _map(pod, "spec")
    serving = is_pod_ready(pod)
    terminating = is_terminating(pod)
    ready = bool(_map(svc, "spec").get("publishNotReadyAddresses")) or (
        serving and not terminating)
    ep: Obj = {"addresses": _addresses(pod, address_type),
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if should_set_hostname(pod, svc):
        ep["hostname"] = _str(pod_spec, "hostname")
    ref: Obj = {"kind": "Pod"}
    for field_name in ("namespace", "name", "uid"):
        if _str(pod_meta, field_name):
            ref[field_name] = _str(pod_meta, field_name)
    ep["targetRef"] = ref
    if _str(pod_spec, "nodeName"):
        ep["nodeName"] = _str(pod_spec, "nodeName")
    zone = _str(_map(_map(node, "metadata"), "labels"), LABEL_ZONE) if node else ""
    if zone:
        ep["zone"] = zone
    return ep


def endpoint_key(ep: ObjMap) -> EndpointKey:
    """What makes an endpoint "the same endpoint" across syncs (upstream ``hashEndpoint``)."""
    ref = _map(ep, "targetRef")
    return (tuple(sorted(str(a) for a in _list(ep, "addresses"))), _str(ep, "hostname"),
            _str(ref, "namespace"), _str(ref, "name"))


def _ref_ignoring_rv(ref: ObjMap) -> Obj:
    # Go compares the struct: "" and absent are the same zero value; resourceVersion ignored.
    return {k: v for k, v in ref.items() if k != "resourceVersion" and v not in ("", None)}


def endpoints_equal_beyond_hash(a: ObjMap, b: ObjMap) -> bool:
    """Equal in everything :func:`endpoint_key` does not cover (upstream
    ``EndpointsEqualBeyondHash``): node, zone, the three conditions, and the target
    (ignoring its resourceVersion). Absent and false conditions differ, as nil and false
    pointers do."""
    if a.get("nodeName") != b.get("nodeName") or a.get("zone") != b.get("zone"):
        return False
    ca, cb = _map(a, "conditions"), _map(b, "conditions")
    if any(ca.get(c) != cb.get(c) for c in ("ready", "serving", "terminating")):
        return False
    ra, rb = a.get("targetRef"), b.get("targetRef")
    if (ra is None) != (rb is None):
        return False
    return ra is None or _ref_ignoring_rv(_map(a, "targetRef")) == _ref_ignoring_rv(
        _map(b, "targetRef"))


# -- planning --------------------------------------------------------------------------------


@dataclass(slots=True)
class _TypePlan:
    create: list[Obj]
    update: list[Obj]
    delete: list[ObjMap]


def plan_slices(service: ObjMap, pods: Iterable[ObjMap], nodes_by_name: Mapping[str, ObjMap],
                existing_slices: Iterable[ObjMap], *,
                max_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
                trigger_time: datetime | None = None,
                controller_name: str = CONTROLLER_NAME,
                zone_cpu_ratios: Mapping[str, float] | None = None) -> SlicePlan:
    """The slices to create, update and delete for ``service`` (see the module doc).

    ``pods`` may include pods the Service does not select (other namespaces, other labels):
    they are ignored. ``existing_slices`` likewise may include slices of other Services or
    other managers. ``trigger_time`` is the value for the last-change-trigger-time annotation
    on everything written (see :class:`~.util.TriggerTimeTracker`). ``zone_cpu_ratios`` is
    :func:`~.hints.cpu_ratios_by_zone` of the Nodes, for the topology annotation's hints.
    """
    if not 1 <= max_per_slice <= MAX_ENDPOINTS_PER_SLICE_LIMIT:
        raise ValueError(f"max_per_slice must be within 1..{MAX_ENDPOINTS_PER_SLICE_LIMIT}")
    if not manages_service(service):
        return SlicePlan()
    meta = _map(service, "metadata")
    namespace, name = _str(meta, "namespace"), _str(meta, "name")
    selector = service_selector(service) or {}

    slices = sorted((s for s in existing_slices
                     if _str(_map(s, "metadata"), "namespace") == namespace
                     and _str(_map(_map(s, "metadata"), "labels"), LABEL_SERVICE_NAME) == name
                     and _str(_map(_map(s, "metadata"), "labels"),
                              LABEL_MANAGED_BY) == controller_name
                     and not is_terminating(s)),
                    key=_name)
    selected = sorted((p for p in pods
                       if _str(_map(p, "metadata"), "namespace") == namespace
                       and selector_matches(selector, _map(_map(p, "metadata"), "labels"))),
                      key=_name)

    address_types = address_types_for_service(service)
    create: list[Obj] = []
    update: list[Obj] = []
    delete: list[ObjMap] = []
    errors: dict[str, None] = {}  # ordered set: dual-stack reports a pod once
    topology: list[TopologyResult] = []
    for address_type in address_types:
        of_type = [s for s in slices if s.get("addressType") == address_type]
        plan = _plan_address_type(service, selected, nodes_by_name, of_type, address_type,
                                  max_per_slice, controller_name, errors)
        result = _plan_hints(service, of_type, plan, address_type, zone_cpu_ratios)
        if result is not None:
            topology.append(result)
        _reuse_deleted(service, plan, address_type)
        create += plan.create
        update += plan.update
        delete += plan.delete
    # A family the Service no longer has: its slices go (never reused for another family).
    delete += [s for s in slices if s.get("addressType") not in address_types]

    if is_terminating(service):
        create = []  # the garbage collector is deleting our slices; do not race it
    for obj in (*create, *update):
        _set_trigger_time(obj, trigger_time)
    return SlicePlan(tuple(create), tuple(sorted(update, key=_name)),
                     tuple(json_copy(dict(s)) for s in sorted(delete, key=_name)),
                     tuple(errors), tuple(topology))


def _plan_address_type(svc: ObjMap, pods: Sequence[ObjMap], nodes: Mapping[str, ObjMap],
                       slices: Sequence[ObjMap], address_type: str, max_per_slice: int,
                       controller_name: str, errors: dict[str, None]) -> _TypePlan:
    """Upstream ``reconcileByAddressType`` up to the hints."""
    delete: list[ObjMap] = []
    existing_by_ports: dict[PortKey, list[ObjMap]] = {}
    for eps in slices:
        if owned_by(eps, svc):
            existing_by_ports.setdefault(port_map_key(_list(eps, "ports")), []).append(eps)
        else:
            delete.append(eps)

    publish_not_ready = bool(_map(svc, "spec").get("publishNotReadyAddresses"))
    svc_meta = _map(svc, "metadata")
    desired: dict[PortKey, dict[EndpointKey, Obj]] = {}
    desired_ports: dict[PortKey, list[Obj]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = endpoint_ports(svc, pod)
        key = port_map_key(ports)
        # The group exists even if no endpoint lands in it (no address of this family): as
        # upstream, its existing slices are then emptied rather than left behind.
        group = desired.setdefault(key, {})
        desired_ports.setdefault(key, ports)
        node_name = _str(_map(pod, "spec"), "nodeName")
        node = nodes.get(node_name)
        if node is None and not publish_not_ready:
            errors[f"skipping Pod {_name(pod)} for Service {_str(svc_meta, 'namespace')}/"
                   f"{_str(svc_meta, 'name')}: Node {node_name} Not Found"] = None
            continue
        ep = pod_to_endpoint(pod, node, svc, address_type)
        if ep["addresses"]:
            group[endpoint_key(ep)] = ep

    create: list[Obj] = []
    update: list[Obj] = []
    for key in sorted(desired):
        c, u, d = _plan_port_group(svc, existing_by_ports.get(key, []), desired[key],
                                   desired_ports[key], address_type, max_per_slice,
                                   controller_name)
        create += c
        update += u
        delete += d
    for key in sorted(existing_by_ports):
        if key not in desired:
            delete += existing_by_ports[key]

    if len(slices) == len(delete) and not create:
        # Nothing would be left for this family: keep (or make) one empty placeholder.
        placeholder = _new_slice(svc, [], address_type, controller_name)
        if len(delete) == 1 and _same_placeholder(delete[0], placeholder):
            delete = []
        else:
            create.append(placeholder)
    return _TypePlan(create, update, delete)


def _plan_hints(svc: ObjMap, slices: Sequence[ObjMap], plan: _TypePlan, address_type: str,
                ratios: Mapping[str, float] | None) -> TopologyResult | None:
    """Zone hints on what the plan writes, rewriting unchanged slices whose hints are wrong
    (see :mod:`~.hints`). Returns the topology annotation's outcome, if it is set."""
    changed = {_name(s) for s in (*plan.update, *plan.delete)}
    sliceset = SliceSet(plan.create, plan.update,
                        [s for s in slices if _name(s) not in changed])
    result = None
    if hints_enabled(svc):
        result = add_topology_hints(sliceset, ratios, address_type)
    elif uses_traffic_distribution(svc):
        reconcile_traffic_distribution(sliceset)
    else:
        remove_hints(sliceset)
    plan.create, plan.update = sliceset.create, sliceset.update
    return result


def _reuse_deleted(svc: ObjMap, plan: _TypePlan, address_type: str) -> None:
    """Reuse slices about to be deleted for slices about to be created (upstream finalize):
    only our own, and only of the same address type (addressType is immutable)."""
    kept: list[ObjMap] = []
    for eps in plan.delete:
        if plan.create and owned_by(eps, svc) and eps.get("addressType") == address_type:
            plan.update.append(_replace_content(eps, plan.create.pop()))
        else:
            kept.append(eps)
    plan.delete = kept


def _plan_port_group(svc: ObjMap, existing: Sequence[ObjMap], desired: dict[EndpointKey, Obj],  # noqa: C901
                     ports: Sequence[ObjMap], address_type: str, max_per_slice: int,
                     controller_name: str) -> tuple[list[Obj], list[Obj], list[ObjMap]]:
    """Upstream ``reconcileByPortMapping``: keep, update in place, fill, then create."""
    desired = dict(desired)  # consumed below; the caller's stays intact
    by_name: dict[str, ObjMap] = {}
    changed: dict[str, Obj] = {}  # name → new content, for slices being updated
    unchanged: list[str] = []
    to_delete: list[ObjMap] = []

    # 1. Drop endpoints no longer wanted; refresh those that changed.
    for eps in existing:
        name = _name(eps)
        by_name[name] = eps
        kept: list[Obj] = []
        endpoint_changed = False
        old_endpoints = _dicts(_list(eps, "endpoints"))
        for ep in old_endpoints:
            want = desired.pop(endpoint_key(ep), None)
            if want is None:
                continue  # gone (or a duplicate of one already kept)
            kept.append(want)
            if not endpoints_equal_beyond_hash(want, ep):
                endpoint_changed = True
        labels, labels_changed = slice_labels(_map(_map(eps, "metadata"), "labels"), svc,
                                              controller_name)
        if endpoint_changed or len(kept) != len(old_endpoints):
            if not kept:
                to_delete.append(eps)
            else:
                changed[name] = _with(eps, endpoints=kept, labels=labels)
        elif labels_changed:
            changed[name] = _with(eps, endpoints=kept, labels=labels)
        else:
            unchanged.append(name)

    # 2. New endpoints first go into slices that are being written anyway, fullest first.
    if desired and changed:
        for name in sorted(changed, key=lambda n: (-len(changed[n]["endpoints"]), n)):
            endpoints = changed[name]["endpoints"]
            while desired and len(endpoints) < max_per_slice:
                endpoints.append(_pop_first(desired))

    # 3. Then into the one unchanged slice that can take them all and ends closest to full;
    #    otherwise into new slices.
    create: list[Obj] = []
    while desired:
        target: Obj | None = None
        if len(desired) < max_per_slice and unchanged:
            chosen = _slice_to_fill([by_name[n] for n in unchanged], len(desired),
                                    max_per_slice)
            if chosen is not None:
                labels, _ = slice_labels(_map(_map(chosen, "metadata"), "labels"), svc,
                                         controller_name)
                target = _with(chosen, endpoints=_dicts(_list(chosen, "endpoints")),
                               labels=labels)
                unchanged.remove(_name(chosen))
                changed[_name(chosen)] = target
        if target is None:
            target = _new_slice(svc, ports, address_type, controller_name)
            create.append(target)
        endpoints = target["endpoints"]
        while desired and len(endpoints) < max_per_slice:
            endpoints.append(_pop_first(desired))
    return create, [changed[n] for n in sorted(changed)], to_delete


def _pop_first(desired: dict[EndpointKey, Obj]) -> Obj:
    key = next(iter(desired))
    return desired.pop(key)


def _slice_to_fill(candidates: Sequence[ObjMap], count: int, max_per_slice: int
                   ) -> ObjMap | None:
    """Upstream ``getSliceToFill``: the slice left closest to full after adding ``count``."""
    best: ObjMap | None = None
    best_gap = max_per_slice
    for eps in sorted(candidates, key=_name):
        gap = max_per_slice - (count + len(_list(eps, "endpoints")))
        if 0 <= gap < best_gap:
            best, best_gap = eps, gap
            if gap == 0:
                break
    return best


def _with(eps: ObjMap, *, endpoints: Sequence[ObjMap], labels: Obj) -> Obj:
    """A deep copy of ``eps`` with new endpoints and labels."""
    out = json_copy(dict(eps))
    out["endpoints"] = [copy.deepcopy(dict(e)) for e in endpoints]
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    meta["labels"] = labels
    return out


def _replace_content(old: ObjMap, new: Obj) -> Obj:
    """``new``'s content written over ``old`` (its name, uid, resourceVersion)."""
    out = json_copy(dict(old))
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    new_meta = _map(new, "metadata")
    meta["labels"] = copy.deepcopy(dict(_map(new_meta, "labels")))
    meta["ownerReferences"] = copy.deepcopy(_list(new_meta, "ownerReferences"))
    # Upstream writes a fresh object under the old name: the old annotations go.
    meta.pop("annotations", None)
    for field_name in ("apiVersion", "kind", "addressType", "endpoints", "ports"):
        out[field_name] = copy.deepcopy(new[field_name])
    return out


def _owner_fields(ref: ObjMap) -> tuple[Any, ...]:
    return tuple(ref.get(f) for f in ("apiVersion", "kind", "name", "uid", "controller",
                                      "blockOwnerDeletion"))


def _same_placeholder(eps: ObjMap, placeholder: ObjMap) -> bool:
    """Upstream ``placeholderSliceCompare``: metadata compared by namespace and labels only,
    owner references, address type, and no endpoints or ports."""
    m1, m2 = _map(eps, "metadata"), _map(placeholder, "metadata")
    return (_str(m1, "namespace") == _str(m2, "namespace")
            and dict(_map(m1, "labels")) == dict(_map(m2, "labels"))
            and [_owner_fields(r) for r in _dicts(_list(m1, "ownerReferences"))]
            == [_owner_fields(r) for r in _dicts(_list(m2, "ownerReferences"))]
            and eps.get("addressType") == placeholder.get("addressType")
            and not _list(eps, "endpoints") and not _list(eps, "ports"))


def _set_trigger_time(eps: Obj, trigger_time: datetime | None) -> None:
    meta = eps.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    if trigger_time is not None:
        annotations[ANNOTATION_LAST_CHANGE_TRIGGER_TIME] = format_rfc3339_nano(trigger_time)
    else:
        annotations.pop(ANNOTATION_LAST_CHANGE_TRIGGER_TIME, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
