"""Zone hints: trafficDistribution PreferClose, the topology annotation's CPU-proportional
allocation with its safeguards, and how plan_slices and the controller use them.

Cases follow upstream's trafficdist and topologycache tests (their inputs, our notation): an
endpoint reads ``"10.0.0.1 zone-a ready -> zone-b"`` (address, zone or ``-``, ready or ``-``,
then the zones it is hinted for, if any).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.client.rest import EVENTS, NODES, PODS, SERVICES
from svcnet.controllers.endpointslice.hints import (
    SliceSet,
    add_topology_hints,
    cpu_ratios_by_zone,
    hints_enabled,
    reconcile_traffic_distribution,
    remove_hints,
    service_overloaded,
)
from svcnet.controllers.endpointslice.reconciler import plan_slices
from tests.unit.controllers.test_endpointslice_controller import Env
from tests.unit.controllers.test_endpointslice_helpers import (
    NODES as NODE_OBJS,
    Obj,
    make_pod,
    make_service,
    meta,
    on_node,
    spec,
)


def ep(text: str) -> Obj:
    head, _, hinted = text.partition(" -> ")
    ip, zone, ready = head.split()
    out: Obj = {"addresses": [ip], "conditions": {"ready": ready == "ready"}}
    if zone != "-":
        out["zone"] = zone
    if hinted:
        out["hints"] = {"forZones": [{"name": z} for z in hinted.split(",")]}
    return out


def eps(name: str, *endpoints: str) -> Obj:
    return {"metadata": {"name": name}, "addressType": "IPv4",
            "endpoints": [ep(e) for e in endpoints]}


def show(slices: list[Obj] | list[Any]) -> list[list[str]]:
    out = []
    for s in slices:
        rows = []
        for e in s["endpoints"]:
            zones = ",".join(z["name"] for z in (e.get("hints") or {}).get("forZones", []))
            rows.append(e["addresses"][0] + (f" -> {zones}" if zones else ""))
        out.append(rows)
    return out


# -- trafficDistribution: PreferClose ----------------------------------------------------------


def test_prefer_close_hints_every_ready_endpoint_for_its_own_zone() -> None:
    s = SliceSet([eps("new", "10.0.0.1 zone-a ready", "10.0.0.2 zone-b ready",
                      "10.0.0.3 zone-a -", "10.0.0.4 - ready -> zone-a")], [], [])
    reconcile_traffic_distribution(s)
    # Not ready: left alone; ready without a zone: its stale hint goes.
    assert show(s.create) == [["10.0.0.1 -> zone-a", "10.0.0.2 -> zone-b", "10.0.0.3",
                               "10.0.0.4"]]


def test_prefer_close_rewrites_only_unchanged_slices_with_wrong_hints() -> None:
    good = eps("good", "10.0.0.1 zone-a ready -> zone-a", "10.0.0.9 zone-b - -> zone-a")
    missing = eps("missing", "10.0.0.2 zone-b ready")
    wrong = eps("wrong", "10.0.0.3 zone-b ready -> zone-a")
    stale = eps("stale", "10.0.0.4 - ready -> zone-a")
    before = copy.deepcopy([good, missing, wrong, stale])
    s = SliceSet([], [], [good, missing, wrong, stale])
    reconcile_traffic_distribution(s)
    assert s.unchanged == [good]
    assert show(s.update) == [["10.0.0.2 -> zone-b"], ["10.0.0.3 -> zone-b"], ["10.0.0.4"]]
    assert [good, missing, wrong, stale] == before  # the caller's objects are never touched


def test_remove_hints_clears_writes_and_rewrites_hinted_unchanged_slices() -> None:
    hinted = eps("hinted", "10.0.0.1 zone-a ready -> zone-a")
    plain = eps("plain", "10.0.0.2 zone-a ready")
    s = SliceSet([eps("new", "10.0.0.3 zone-a ready -> zone-a")], [], [hinted, plain])
    remove_hints(s)
    assert s.unchanged == [plain]
    assert show(s.create) == [["10.0.0.3"]] and show(s.update) == [["10.0.0.1"]]


@pytest.mark.parametrize(("annotations", "enabled"), [
    ({}, False),
    ({"service.kubernetes.io/topology-mode": "Auto"}, True),
    ({"service.kubernetes.io/topology-mode": "auto"}, True),
    ({"service.kubernetes.io/topology-mode": "Disabled"}, False),
    ({"service.kubernetes.io/topology-aware-hints": "Auto"}, True),
    # The deprecated annotation wins.
    ({"service.kubernetes.io/topology-aware-hints": "Disabled",
      "service.kubernetes.io/topology-mode": "Auto"}, False),
])
def test_hints_enabled(annotations: dict[str, str], enabled: bool) -> None:
    assert hints_enabled({"metadata": {"annotations": annotations}}) is enabled


# -- nodes: CPU shares per zone ---------------------------------------------------------------


def node(name: str, zone: str | None, cpu: str | None, *, ready: bool = True,
         labels: dict[str, str] | None = None) -> Obj:
    lab = dict(labels or {})
    if zone:
        lab["topology.kubernetes.io/zone"] = zone
    status: Obj = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if cpu:
        status["allocatable"] = {"cpu": cpu}
    return {"metadata": {"name": name, "labels": lab}, "status": status}


def test_cpu_ratios_by_zone() -> None:
    assert cpu_ratios_by_zone([node("n1", "a", "3"), node("n2", "b", "500m"),
                               node("n3", "b", "500m")]) == {"a": 0.75, "b": 0.25}
    # Not-ready and control-plane Nodes do not count (not even without a zone).
    assert cpu_ratios_by_zone([
        node("n1", "a", "1"), node("n2", "b", "1"), node("n3", None, None, ready=False),
        node("n4", None, "8", labels={"node-role.kubernetes.io/control-plane": ""}),
    ]) == {"a": 0.5, "b": 0.5}


@pytest.mark.parametrize("nodes", [
    [node("n1", "a", "1"), node("n2", "b", "1"), node("n3", None, "1")],
    [node("n1", "a", "1"), node("n2", "b", None)],
    [node("n1", "a", "1"), node("n2", "a", "1")],
    [],
], ids=["node-without-zone", "node-without-cpu", "one-zone", "no-nodes"])
def test_cpu_ratios_insufficient(nodes: list[Obj]) -> None:
    assert cpu_ratios_by_zone(nodes) is None


# -- the topology annotation: allocation ------------------------------------------------------


@pytest.mark.parametrize(("ratios", "endpoints", "why"), [
    (None, ["10.0.0.1 zone-a ready"], "Insufficient Node information: allocatable CPU or "
     "zone not specified on one or more nodes"),
    ({"zone-a": 0.3, "zone-b": 0.4, "zone-c": 0.3},
     ["10.0.0.1 zone-a ready -> zone-a", "10.0.0.2 zone-b ready"],
     "Insufficient number of endpoints (2 endpoints, 3 zones)"),
    ({"zone-a": 0.5, "zone-b": 0.5},
     ["10.0.0.1 zone-a ready", "10.0.0.2 zone-a ready", "10.0.0.3 zone-b ready"],
     "Unable to allocate minimum required endpoints to each zone without exceeding overload "
     "threshold (3 endpoints, 2 zones)"),
    ({"zone-a": 0.5, "zone-b": 0.5}, ["10.0.0.1 zone-a ready", "10.0.0.2 - ready"],
     "One or more endpoints do not have a zone specified"),
], ids=["no-node-info", "fewer-endpoints-than-zones", "minimum-over-threshold", "no-zone"])
def test_topology_hints_removed(ratios: dict[str, float] | None, endpoints: list[str],
                                why: str) -> None:
    s = SliceSet([eps("new", *endpoints)], [], [])
    result = add_topology_hints(s, ratios, "IPv4")
    assert result.allocated is None
    assert result.warnings == (f"{why}, addressType: IPv4",)
    assert all("hints" not in e for e in s.create[0]["endpoints"])


def test_topology_hints_own_zone_when_balanced() -> None:
    s = SliceSet([eps("new", "10.0.0.1 zone-a ready", "10.0.0.2 zone-b ready",
                      "10.0.0.3 zone-a -")], [], [])
    result = add_topology_hints(s, {"zone-a": 0.45, "zone-b": 0.55}, "IPv4")
    assert show(s.create) == [["10.0.0.1 -> zone-a", "10.0.0.2 -> zone-b", "10.0.0.3"]]
    assert result.allocated == {"zone-a": 1, "zone-b": 1} and result.warnings == ()


def test_topology_hints_redistribute_to_the_zone_short_of_endpoints() -> None:
    # Equal CPU, 3 endpoints in zone-a and 1 in zone-b: zone-a gives one away.
    s = SliceSet([eps("new", "10.0.0.1 zone-a ready", "10.0.0.2 zone-a ready",
                      "10.0.0.3 zone-a ready", "10.0.0.4 zone-b ready")], [], [])
    result = add_topology_hints(s, {"zone-a": 0.5, "zone-b": 0.5}, "IPv4")
    assert show(s.create) == [["10.0.0.1 -> zone-b", "10.0.0.2 -> zone-a",
                               "10.0.0.3 -> zone-a", "10.0.0.4 -> zone-b"]]
    assert result.allocated == {"zone-a": 2, "zone-b": 2}


def test_topology_hints_three_zones_proportional_to_cpu() -> None:
    # 10 endpoints, 6 in zone-a, 2 in b, 2 in c; CPU 40/30/30 → a gives 2 (one each).
    endpoints = [f"10.0.0.{i} zone-a ready" for i in range(1, 7)] + [
        "10.0.0.7 zone-b ready", "10.0.0.8 zone-b ready",
        "10.0.0.9 zone-c ready", "10.0.0.10 zone-c ready"]
    s = SliceSet([eps("new", *endpoints)], [], [])
    result = add_topology_hints(s, {"zone-a": 0.4, "zone-b": 0.3, "zone-c": 0.3}, "IPv4")
    assert result.allocated == {"zone-a": 4, "zone-b": 3, "zone-c": 3}
    assert show(s.create)[0][:2] == ["10.0.0.1 -> zone-b", "10.0.0.2 -> zone-c"]


def test_topology_hints_keep_consistent_unchanged_slices() -> None:
    ratios = {"zone-a": 0.5, "zone-b": 0.5}
    keep = eps("keep", "10.0.0.1 zone-a ready -> zone-a", "10.0.0.2 zone-b ready -> zone-b")
    unknown_zone = eps("unknown", "10.0.0.3 zone-a ready -> zone-z",
                       "10.0.0.4 zone-b ready -> zone-b")
    s = SliceSet([], [], [keep, unknown_zone])
    result = add_topology_hints(s, ratios, "IPv4")
    assert s.unchanged == [keep]
    assert show(s.update) == [["10.0.0.3 -> zone-a", "10.0.0.4 -> zone-b"]]
    assert result.allocated == {"zone-a": 2, "zone-b": 2}


def test_service_overloaded() -> None:
    ratios = {"zone-a": 0.5, "zone-b": 0.5}
    assert not service_overloaded({"zone-a": 2, "zone-b": 2}, ratios)
    assert service_overloaded({"zone-a": 3, "zone-b": 1}, ratios)
    assert service_overloaded({"zone-a": 2}, ratios)
    assert service_overloaded({"zone-a": 1, "zone-b": 1}, None)
    assert not service_overloaded({}, ratios)


# -- plan_slices -------------------------------------------------------------------------------


def _hints(slices: tuple[Obj, ...]) -> list[list[str]]:
    return show(list(slices))


PODS_AB = [make_pod("p1", on_node("node-a")), make_pod("p2", on_node("node-b")),
           make_pod("p3", on_node("node-c"))]


def test_plan_prefer_close_then_no_churn_then_removal() -> None:
    svc = make_service(spec(trafficDistribution="PreferClose"))
    plan = plan_slices(svc, PODS_AB, NODE_OBJS, [])
    assert _hints(plan.create) == [["10.1.0.1 -> zone-a", "10.1.0.2 -> zone-b", "10.1.0.3"]]
    assert plan.topology == ()
    existing = copy.deepcopy(plan.create[0])
    existing["metadata"].update(name="web-abc", resourceVersion="5")
    assert plan_slices(svc, PODS_AB, NODE_OBJS, [existing]) == type(plan)()
    # trafficDistribution dropped: the hints go, in place.
    plain = plan_slices(make_service(), PODS_AB, NODE_OBJS, [existing])
    assert not plain.create and _hints(plain.update) == [["10.1.0.1", "10.1.0.2", "10.1.0.3"]]


def test_plan_annotation_wins_over_traffic_distribution() -> None:
    svc = make_service(spec(trafficDistribution="PreferClose"),
                       meta(annotations={"service.kubernetes.io/topology-mode": "Auto"}))
    two = PODS_AB[:2]
    plan = plan_slices(svc, two, NODE_OBJS, [], zone_cpu_ratios={"zone-a": 0.5, "zone-b": 0.5})
    assert _hints(plan.create) == [["10.1.0.1 -> zone-a", "10.1.0.2 -> zone-b"]]
    assert [r.allocated for r in plan.topology] == [{"zone-a": 1, "zone-b": 1}]
    # Without node information the annotation removes hints (PreferClose is not used).
    plan = plan_slices(svc, two, NODE_OBJS, [])
    assert _hints(plan.create) == [["10.1.0.1", "10.1.0.2"]]
    assert plan.topology[0].allocated is None


def test_plan_hints_survive_create_to_update_reuse() -> None:
    svc = make_service(spec(trafficDistribution="PreferClose"))
    old = plan_slices(svc, [make_pod("p9", on_node("node-a"))], NODE_OBJS, []).create[0]
    old["metadata"].update(name="web-old", resourceVersion="3", uid="u")
    plan = plan_slices(svc, PODS_AB[:1], NODE_OBJS, [old])
    assert not plan.create and not plan.delete
    assert _hints(plan.update) == [["10.1.0.1 -> zone-a"]]


# -- the controller: node shares and Events ---------------------------------------------------


def _cpu(obj: Obj, cpu: str) -> Obj:
    out = copy.deepcopy(obj)
    out["status"] = {"allocatable": {"cpu": cpu},
                     "conditions": [{"type": "Ready", "status": "True"}]}
    return out


async def test_controller_topology_annotation_events_and_overload() -> None:
    env = Env()
    nodes = [_cpu(NODE_OBJS["node-a"], "2"), _cpu(NODE_OBJS["node-b"], "2")]
    env.api.remove(NODES, "node-c")
    env.put(NODES, *nodes)
    handler = env.ctrl.node_handler.on_add
    assert handler is not None
    handler(nodes[0])
    assert env.ctrl.zone_cpu_ratios == {"zone-a": 0.5, "zone-b": 0.5}
    env.put(SERVICES, make_service(meta(annotations={
        "service.kubernetes.io/topology-mode": "Auto"})))
    env.put(PODS, *PODS_AB[:2])
    await env.ctrl.sync("ns/web")
    env.catch_up()
    await env.ctrl.sync("ns/web")  # a second sync: no second Event
    events = env.api.items(EVENTS)
    assert [(e["type"], e["reason"]) for e in events] == [("Normal", "TopologyAwareHintsEnabled")]
    assert env.ctrl.hinted == {"ns/web": {"IPv4": {"zone-a": 1, "zone-b": 1}}}
    # zone-b gets much more CPU: the Service is overloaded and queued again.
    await env.drain()
    bigger = _cpu(NODE_OBJS["node-b"], "20")
    env.put(NODES, bigger)
    handler(bigger)
    assert "ns/web" in await env.drain()
