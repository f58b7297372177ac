"""Topology hints on EndpointSlices (``endpoints[].hints.forZones``): pure functions.

Theory of operation (after ``staging/src/k8s.io/endpointslice/trafficdist/trafficdist.go`` and
``staging/src/k8s.io/endpointslice/topologycache/``, Kubernetes 1.33)
------------------------------------------------------------------------------------------
Hints are decided per Service and address type, after the reconciler has decided which slices
to create and update and which stay unchanged (:class:`SliceSet`), and before creates are
turned into updates. Three regimes, chosen by :func:`hints_enabled` and the Service's
``spec.trafficDistribution``:

* **Topology annotation** (``service.kubernetes.io/topology-mode: Auto``, or the deprecated
  ``service.kubernetes.io/topology-aware-hints``, which wins when both are set; ``auto`` also
  accepted): :func:`add_topology_hints`. Endpoints are shared out among zones in proportion to
  the allocatable CPU of the ready Nodes in each zone (:func:`cpu_ratios_by_zone`: Nodes
  labelled ``node-role.kubernetes.io/control-plane`` or ``.../master`` are ignored; a single
  ready Node without a zone or without allocatable CPU disables hints for every Service; so do
  fewer than two zones). With ``n`` ready endpoints a zone of CPU ratio ``r`` *desires*
  ``r·n`` and needs at least ``ceil(r·n / 1.2)`` (the 20 % overload threshold); when there are
  fewer endpoints than zones, or the minimums add up to more than ``n``, hints are removed.
  Otherwise each ready endpoint first gets a hint for its own zone (an endpoint without a zone
  removes all hints), then zones holding more than they desire give endpoints, one at a time,
  to zones holding less (while at least half an endpoint is owed both ways). Unchanged slices
  keep their hints when they are still consistent with the allocations, else they are
  rewritten. Every outcome is reported (:class:`TopologyResult`) so the controller can record
  ``TopologyAwareHintsEnabled`` / ``TopologyAwareHintsDisabled`` Events and find overloaded
  Services when Nodes change (:func:`service_overloaded`).
* **``trafficDistribution: PreferClose``** (without the annotation):
  :func:`reconcile_traffic_distribution`: every ready endpoint with a zone is hinted for its
  own zone, one without a zone gets no hint. Unchanged slices whose ready endpoints' hints
  differ from that are rewritten.
* **Neither**: :func:`remove_hints` — every hint goes, rewriting unchanged slices that had one.

Only ready endpoints (``conditions.ready`` explicitly true) are hinted; the hints of other
endpoints are left as they are (as upstream, whose loops over copies leave them untouched).
Upstream iterates Go maps where zones are chosen; here zones are taken in name order, so the
result is deterministic.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from svcnet.api.access import list_of as _list, mapping_of as _map, str_of as _str
from svcnet.api.resourcelists import parse_quantity
from svcnet.api.services import (
    ANNOTATION_TOPOLOGY_MODE,
    DEPRECATED_ANNOTATION_TOPOLOGY_AWARE_HINTS,
)
from svcnet.controllers.endpointslice.util import LABEL_ZONE
from svcnet.controllers.scheduler import node_ready

__all__ = [
    "OVERLOAD_THRESHOLD",
    "SliceSet",
    "TopologyResult",
    "add_topology_hints",
    "cpu_ratios_by_zone",
    "hints_enabled",
    "reconcile_traffic_distribution",
    "remove_hints",
    "service_overloaded",
    "zone_hints",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

OVERLOAD_THRESHOLD: Final = 0.2
"""The most overload any endpoint should see (upstream ``overloadThreshold``)."""
PREFER_CLOSE: Final = "PreferClose"
_EXCLUDED_NODE_LABELS: Final = ("node-role.kubernetes.io/control-plane",
                                "node-role.kubernetes.io/master")

# Event messages (upstream topologycache/event.go).
NO_ZONE_SPECIFIED: Final = "One or more endpoints do not have a zone specified"
NO_ALLOCATED_HINTS_FOR_ZONES: Final = "No hints allocated for zones"
HINTS_ENABLED: Final = "Topology Aware Hints has been enabled"
HINTS_DISABLED: Final = "Topology Aware Hints has been disabled"
INSUFFICIENT_NODE_INFO: Final = ("Insufficient Node information: allocatable CPU or zone not "
                                 "specified on one or more nodes")
NODES_READY_IN_ONE_ZONE_ONLY: Final = "Nodes only ready in one zone"
INSUFFICIENT_ENDPOINTS: Final = "Insufficient number of endpoints"
MIN_ALLOCATION_EXCEEDS_THRESHOLD: Final = ("Unable to allocate minimum required endpoints to "
                                           "each zone without exceeding overload threshold")


def hints_enabled(svc: ObjMap) -> bool:
    """Whether the topology annotation asks for hints (the deprecated key wins)."""
    annotations = _map(_map(svc, "metadata"), "annotations")
    value = annotations.get(DEPRECATED_ANNOTATION_TOPOLOGY_AWARE_HINTS)
    if value is None:
        value = annotations.get(ANNOTATION_TOPOLOGY_MODE)
    return value in ("Auto", "auto")


def uses_traffic_distribution(svc: ObjMap) -> bool:
    """``trafficDistribution`` is honoured: set to a value 1.33 knows, and no annotation."""
    return (_map(svc, "spec").get("trafficDistribution") == PREFER_CLOSE
            and not hints_enabled(svc))


def zone_hints(ep: ObjMap) -> tuple[str, ...]:
    """The zone names an endpoint is hinted for."""
    return tuple(_str(z, "name") for z in _list(_map(ep, "hints"), "forZones")
                 if isinstance(z, Mapping))


def _ready(ep: ObjMap) -> bool:
    return _map(ep, "conditions").get("ready") is True


def _set_zone_hint(ep: Obj, zone: str | None) -> None:
    if zone:
        ep["hints"] = {"forZones": [{"name": zone}]}
    else:
        ep.pop("hints", None)


@dataclass(slots=True)
class SliceSet:
    """One address type's slices being planned. ``create`` and ``update`` are the planner's
    own objects (mutated in place); ``unchanged`` are the caller's (copied before a change,
    then moved to ``update``)."""

    create: list[Obj]
    update: list[Obj]
    unchanged: list[ObjMap]

    def rewrite_unchanged(self, needs_update: Callable[[ObjMap], bool]) -> None:
        """Move (copies of) the unchanged slices ``needs_update`` picks to ``update``."""
        kept: list[ObjMap] = []
        for eps in self.unchanged:
            if needs_update(eps):
                self.update.append(copy.deepcopy(dict(eps)))
            else:
                kept.append(eps)
        self.unchanged = kept

    def writable(self) -> list[Obj]:
        return [*self.create, *self.update]


def _endpoints(eps: ObjMap) -> list[Obj]:
    return [e for e in _list(eps, "endpoints") if isinstance(e, dict)]


def remove_hints(slices: SliceSet) -> None:
    """Upstream ``RemoveHintsFromSlices``: no endpoint keeps a hint."""
    slices.rewrite_unchanged(
        lambda eps: any("hints" in e for e in _list(eps, "endpoints") if isinstance(e, Mapping)))
    for eps in slices.writable():
        for ep in _endpoints(eps):
            ep.pop("hints", None)


def _prefer_close_wrong(eps: ObjMap) -> bool:
    for ep in _list(eps, "endpoints"):
        if not isinstance(ep, Mapping) or not _ready(ep):
            continue
        zone = _str(ep, "zone")
        if zone and zone_hints(ep) != (zone,):
            return True
        if not zone and zone_hints(ep):
            return True
    return False


def reconcile_traffic_distribution(slices: SliceSet) -> None:
    """Upstream ``trafficdist.ReconcileHints`` for ``PreferClose``: same-zone hints."""
    slices.rewrite_unchanged(_prefer_close_wrong)
    for eps in slices.writable():
        for ep in _endpoints(eps):
            if _ready(ep):
                _set_zone_hint(ep, _str(ep, "zone") or None)


# -- nodes -----------------------------------------------------------------------------------


def _milli_cpu(node: ObjMap) -> int:
    q = parse_quantity(_map(_map(node, "status"), "allocatable").get("cpu"))
    return math.ceil(q * 1000) if q is not None and q > 0 else 0


def cpu_ratios_by_zone(nodes: Iterable[ObjMap]) -> dict[str, float] | None:
    """Each zone's share of the ready Nodes' allocatable CPU (upstream ``SetNodes``); None
    when hints cannot be allocated: a ready Node without zone or CPU, or under two zones."""
    cpu: dict[str, int] = {}
    for node in nodes:
        labels = _map(_map(node, "metadata"), "labels")
        if any(k in labels for k in _EXCLUDED_NODE_LABELS) or not node_ready(node):
            continue
        zone, milli = _str(labels, LABEL_ZONE), _milli_cpu(node)
        if not zone or not milli:
            return None
        cpu[zone] = cpu.get(zone, 0) + milli
    total = sum(cpu.values())
    if not total or len(cpu) < 2:
        return None
    return {zone: milli / total for zone, milli in sorted(cpu.items())}


# -- allocation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Allocation:
    minimum: int
    maximum: int
    desired: float


def _allocations(total: int, ratios: Mapping[str, float] | None
                 ) -> tuple[dict[str, _Allocation], str]:
    """Per-zone allocations for ``total`` ready endpoints, or why there are none."""
    if ratios is None:
        return {}, INSUFFICIENT_NODE_INFO
    if len(ratios) < 2:
        return {}, NODES_READY_IN_ONE_ZONE_ONLY
    if len(ratios) > total:
        return {}, f"{INSUFFICIENT_ENDPOINTS} ({total} endpoints, {len(ratios)} zones)"
    minimums: dict[str, tuple[int, float]] = {}
    remaining = total
    for zone, ratio in sorted(ratios.items()):
        desired = ratio * total
        minimum = math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD)))
        minimums[zone] = (minimum, max(desired, float(minimum)))
        remaining -= minimum
        if remaining < 0:
            return {}, (f"{MIN_ALLOCATION_EXCEEDS_THRESHOLD} ({total} endpoints, "
                        f"{len(ratios)} zones)")
    spare = remaining  # total minus the sum of the minimums
    return {zone: _Allocation(m, m + spare, d) for zone, (m, d) in minimums.items()}, ""


def _hints_by_zone(eps: ObjMap, allocated: Mapping[str, int],
                   allocations: Mapping[str, _Allocation]) -> dict[str, int] | None:
    """An unchanged slice's hints per zone; None if they no longer fit (upstream
    ``getHintsByZone``)."""
    counts: dict[str, int] = {}
    for ep in _list(eps, "endpoints"):
        if not isinstance(ep, Mapping) or not _ready(ep):
            continue
        zones = zone_hints(ep)
        if not zones:
            return None
        for zone in zones:
            if zone not in allocations:
                return None
            counts[zone] = counts.get(zone, 0) + 1
    for zone, n in counts.items():
        if n + allocated.get(zone, 0) > allocations[zone].maximum:
            return None
    return counts


def _most(owed: Mapping[str, float]) -> tuple[str, float]:
    zone, most = "", 0.0
    for z in sorted(owed):
        if owed[z] > most:
            zone, most = z, owed[z]
    return zone, most


def _giving_and_receiving(allocations: Mapping[str, _Allocation], allocated: Mapping[str, int]
                          ) -> tuple[dict[str, int], dict[str, int]]:
    give_f: dict[str, float] = {}
    take_f: dict[str, float] = {}
    for zone, alloc in sorted(allocations.items()):
        have = float(allocated.get(zone, 0))
        if have > alloc.desired:
            give_f[zone] = have - alloc.desired
        elif have < alloc.desired:
            take_f[zone] = alloc.desired - have
    give: dict[str, int] = {}
    take: dict[str, int] = {}
    while True:
        giver, n_give = _most(give_f)
        taker, n_take = _most(take_f)
        if (not giver or not taker or (n_give < 1.0 and n_take < 1.0)
                or n_give < 0.5 or n_take < 0.5):
            return give, take
        give[giver] = give.get(giver, 0) + 1
        give_f[giver] -= 1
        take[taker] = take.get(taker, 0) + 1
        take_f[taker] -= 1


def _redistribute(slices: Iterable[Obj], give: dict[str, int], take: dict[str, int]
                  ) -> dict[str, int]:
    diffs: dict[str, int] = {}
    for eps in slices:
        for ep in _endpoints(eps):
            if not _ready(ep):
                continue
            if not give or not take:
                return diffs
            zone = _str(ep, "zone")
            if not zone or give.get(zone, 0) <= 0:
                continue
            receiver = sorted(take)[0]
            _set_zone_hint(ep, receiver)
            for counts, z in ((give, zone), (take, receiver)):
                counts[z] -= 1
                if not counts[z]:
                    del counts[z]
            diffs[receiver] = diffs.get(receiver, 0) + 1
            diffs[zone] = diffs.get(zone, 0) - 1
    return diffs


@dataclass(frozen=True, slots=True)
class TopologyResult:
    """What :func:`add_topology_hints` did for one address type."""

    address_type: str
    allocated: Mapping[str, int] | None = None
    """Hinted endpoints per zone; None when hints were removed."""
    warnings: tuple[str, ...] = field(default=())
    """``TopologyAwareHintsDisabled`` Event messages (with the address type)."""


def _disabled(slices: SliceSet, address_type: str, why: str) -> TopologyResult:
    remove_hints(slices)
    return TopologyResult(address_type, None, (f"{why}, addressType: {address_type}",))


def add_topology_hints(slices: SliceSet, ratios: Mapping[str, float] | None,
                       address_type: str) -> TopologyResult:
    """Upstream ``TopologyCache.AddHints``: CPU-proportional zone hints, or none."""
    total = sum(1 for eps in (*slices.writable(), *slices.unchanged)
                for ep in _list(eps, "endpoints") if isinstance(ep, Mapping) and _ready(ep))
    allocations, why = _allocations(total, ratios)
    if why:
        return _disabled(slices, address_type, why)

    allocated: dict[str, int] = {}

    def stale(eps: ObjMap) -> bool:
        counts = _hints_by_zone(eps, allocated, allocations)
        for zone, n in (counts or {}).items():
            allocated[zone] = allocated.get(zone, 0) + n
        return counts is None

    slices.rewrite_unchanged(stale)

    writable = slices.writable()
    for eps in writable:
        for ep in _endpoints(eps):
            if not _ready(ep):
                continue
            zone = _str(ep, "zone")
            if not zone:
                return _disabled(slices, address_type, NO_ZONE_SPECIFIED)
            allocated[zone] = allocated.get(zone, 0) + 1
            _set_zone_hint(ep, zone)
    give, take = _giving_and_receiving(allocations, allocated)
    for zone, diff in _redistribute(writable, give, take).items():
        allocated[zone] = allocated.get(zone, 0) + diff
    if not allocated:
        return _disabled(slices, address_type, NO_ALLOCATED_HINTS_FOR_ZONES)
    return TopologyResult(address_type, dict(sorted(allocated.items())))


def service_overloaded(allocated: Mapping[str, int], ratios: Mapping[str, float] | None
                       ) -> bool:
    """Upstream ``serviceOverloaded``: some zone holds fewer hinted endpoints than its minimum
    under the current Node distribution."""
    if not allocated:
        return False
    if not ratios:
        return True
    total = float(sum(allocated.values()))
    for zone, ratio in ratios.items():
        if zone not in allocated:
            return True
        if allocated[zone] < math.ceil(total * ratio * (1 / (1 + OVERLOAD_THRESHOLD))):
            return True
    return False
