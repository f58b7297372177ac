"""plan_slices: table-driven cases, then multi-sync scenarios over a simulated server.

Builders, the test address plan and the ``describe`` notation are in
``test_endpointslice_helpers``: a slice reads ``("IPv4", ["http/TCP:8080"],
["10.1.0.1 p1 ready,serving zone=zone-a"])``.
"""

from __future__ import annotations

import copy
import itertools
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from svcnet.controllers.endpointslice.reconciler import (
    CONTROLLER_NAME,
    SlicePlan,
    plan_slices,
)
from svcnet.controllers.endpointslice.util import (
    ANNOTATION_LAST_CHANGE_TRIGGER_TIME,
    LABEL_HEADLESS,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
)
from tests.unit.controllers.test_endpointslice_helpers import (
    NODES,
    Obj,
    container_ports,
    describe,
    dual_stack,
    headless,
    ips,
    labels,
    make_pod,
    make_service,
    meta,
    mods,
    no_ip,
    not_ready,
    on_node,
    phase,
    pods,
    ports,
    publish_not_ready,
    spec,
    terminating,
)

HTTP_8080 = "http/TCP:8080"


def ready(name: str, ip: str, zone: str = "zone-a") -> str:
    return f"{ip} {name} ready,serving zone={zone}"


# -- from scratch: one row per rule ----------------------------------------------------------


CASES: list[Any] = [
    pytest.param(make_service(), [make_pod("p1"), make_pod("p2")],
                 [("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1"), ready("p2", "10.1.0.2")])],
                 id="two-ready-pods"),
    pytest.param(make_service(),
                 [make_pod("p1"), make_pod("p2", labels(app="other")),
                  make_pod("p3", labels(app="web", tier="x")), make_pod("p4", ns="other"),
                  make_pod("p5", labels())],
                 [("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1"), ready("p3", "10.1.0.3")])],
                 id="selection-by-namespace-and-selector"),
    pytest.param(make_service(),
                 [make_pod("p1"), make_pod("p2", phase("Succeeded")),
                  make_pod("p3", phase("Failed"))],
                 [("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1")])],
                 id="terminal-pods-skipped"),
    pytest.param(make_service(), [make_pod("p1"), make_pod("p2", no_ip, phase("Pending"))],
                 [("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1")])],
                 id="pods-without-ip-skipped"),
    pytest.param(make_service(), [make_pod("p1", not_ready)],
                 [("IPv4", [HTTP_8080], ["10.1.0.1 p1 - zone=zone-a"])],
                 id="not-ready-pod"),
    pytest.param(make_service(), [make_pod("p1", terminating)],
                 [("IPv4", [HTTP_8080], ["10.1.0.1 p1 serving,terminating zone=zone-a"])],
                 id="terminating-pod-kept-not-ready"),
    pytest.param(make_service(), [make_pod("p1", terminating, not_ready)],
                 [("IPv4", [HTTP_8080], ["10.1.0.1 p1 terminating zone=zone-a"])],
                 id="terminating-unready-pod"),
    pytest.param(make_service(publish_not_ready),
                 [make_pod("p1", not_ready), make_pod("p2", terminating)],
                 [("IPv4", [HTTP_8080], ["10.1.0.1 p1 ready zone=zone-a",
                                         "10.1.0.2 p2 ready,serving,terminating zone=zone-a"])],
                 id="publish-not-ready-forces-ready"),
    pytest.param(make_service(),
                 [make_pod("p1"), make_pod("p2", container_ports(
                     {"name": "http", "containerPort": 9090, "protocol": "TCP"}))],
                 [("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1")]),
                  ("IPv4", ["http/TCP:9090"], [ready("p2", "10.1.0.2")])],
                 id="named-port-resolved-per-pod"),
    pytest.param(make_service(),
                 [make_pod("p1", container_ports(
                     {"name": "http", "containerPort": 8080, "protocol": "UDP"},
                     {"name": "http", "containerPort": 8081, "protocol": "TCP"}))],
                 [("IPv4", ["http/TCP:8081"], [ready("p1", "10.1.0.1")])],
                 id="named-port-protocol-must-match"),
    pytest.param(make_service(),
                 [make_pod("p1"), make_pod("p2", container_ports(
                     {"name": "metrics", "containerPort": 9100}))],
                 [("IPv4", [], [ready("p2", "10.1.0.2")]),
                  ("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1")])],
                 id="pod-lacking-named-port-gets-portless-slice"),
    pytest.param(make_service(ports({"name": "http", "port": 80, "protocol": "TCP",
                                     "targetPort": "http"},
                                    {"name": "dns", "port": 53, "protocol": "UDP",
                                     "targetPort": "dns"})),
                 [make_pod("p1", container_ports(
                     {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                     {"name": "dns", "containerPort": 5353, "protocol": "UDP"})),
                  make_pod("p2")],
                 [("IPv4", [HTTP_8080], [ready("p2", "10.1.0.2")]),
                  ("IPv4", [HTTP_8080, "dns/UDP:5353"], [ready("p1", "10.1.0.1")])],
                 id="multiple-port-lists-separate-slices"),
    pytest.param(make_service(ports({"port": 80, "protocol": "TCP", "targetPort": 8080})),
                 [make_pod("p1", container_ports())],
                 [("IPv4", ["-/TCP:8080"], [ready("p1", "10.1.0.1")])],
                 id="numeric-target-port-not-checked"),
    pytest.param(make_service(ports({"name": "http", "port": 80, "protocol": "TCP"})),
                 [make_pod("p1")],
                 [("IPv4", ["http/TCP:80"], [ready("p1", "10.1.0.1")])],
                 id="missing-target-port-means-port"),
    pytest.param(make_service(ports({"name": "http", "port": 80, "protocol": "TCP",
                                     "targetPort": "http", "appProtocol": "kubernetes.io/h2c"})),
                 [make_pod("p1")],
                 [("IPv4", ["http/TCP:8080(kubernetes.io/h2c)"], [ready("p1", "10.1.0.1")])],
                 id="app-protocol-copied"),
    pytest.param(make_service(),
                 [make_pod("p1", container_ports(), spec(initContainers=[
                     {"name": "proxy", "image": "p", "restartPolicy": "Always",
                      "ports": [{"name": "http", "containerPort": 15001, "protocol": "TCP"}]}])),
                  make_pod("p2", container_ports(), spec(initContainers=[
                      {"name": "init", "image": "i",
                       "ports": [{"name": "http", "containerPort": 15002, "protocol": "TCP"}]}]))],
                 [("IPv4", [], [ready("p2", "10.1.0.2")]),
                  ("IPv4", ["http/TCP:15001"], [ready("p1", "10.1.0.1")])],
                 id="sidecar-ports-count-init-containers-do-not"),
    pytest.param(make_service(), [],
                 [("IPv4", [], [])], id="no-pods-placeholder"),
    pytest.param(make_service(), [make_pod("p1", phase("Failed"))],
                 [("IPv4", [], [])], id="only-terminal-pods-placeholder"),
    pytest.param(make_service(spec(ipFamilies=["IPv6"], clusterIP="fd00:96::10",
                                   clusterIPs=["fd00:96::10"])),
                 [make_pod("p1", ips("10.1.0.1", "fd00:10:1::1"))],
                 [("IPv6", [HTTP_8080], [ready("p1", "fd00:10:1::1")])],
                 id="ipv6-service"),
    pytest.param(make_service(dual_stack),
                 [make_pod("p1", ips("10.1.0.1", "fd00:10:1:0::0001"))],
                 [("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1")]),
                  ("IPv6", [HTTP_8080], [ready("p1", "fd00:10:1::1")])],
                 id="dual-stack-one-slice-per-family-canonical-addresses"),
    pytest.param(make_service(), [make_pod("p1", ips("fd00:10:1::1"))],
                 [("IPv4", [], [])], id="pod-without-address-of-family-placeholder"),
    pytest.param(make_service(spec(ipFamilies=[], clusterIP="None")),
                 [make_pod("p1", ips("10.1.0.1", "fd00:10:1::1"))],
                 [("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1")]),
                  ("IPv6", [HTTP_8080], [ready("p1", "fd00:10:1::1")])],
                 id="headless-without-ip-families-assumes-both"),
    pytest.param(make_service(headless, ports()), [make_pod("p1")],
                 [("IPv4", [], [ready("p1", "10.1.0.1")])], id="headless-without-ports"),
    pytest.param(make_service(),
                 [make_pod("p1", spec(hostname="db-0", subdomain="web")),
                  make_pod("p2", spec(hostname="db-1", subdomain="other")),
                  make_pod("p3", spec(subdomain="web"))],
                 [("IPv4", [HTTP_8080], ["10.1.0.1 p1 ready,serving host=db-0 zone=zone-a",
                                         ready("p2", "10.1.0.2"), ready("p3", "10.1.0.3")])],
                 id="hostname-only-with-matching-subdomain"),
    pytest.param(make_service(),
                 [make_pod("p1", on_node("node-b")), make_pod("p2", on_node("node-c"))],
                 [("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1", "zone-b"),
                                         "10.1.0.2 p2 ready,serving"])],
                 id="zone-from-node-label"),
    pytest.param(make_service(spec(selector={})), [make_pod("p1")], None,
                 id="empty-selector-is-selectorless"),
    pytest.param(make_service(spec(selector=None)), [make_pod("p1")], None,
                 id="selectorless-left-alone"),
    pytest.param(make_service(spec(type="ExternalName", externalName="example.com")),
                 [make_pod("p1")], None, id="external-name-left-alone"),
]


@pytest.mark.parametrize(("svc", "pod_list", "expected"), CASES)
def test_plan_from_scratch(svc: Obj, pod_list: list[Obj],
                           expected: list[tuple[str, list[str], list[str]]] | None) -> None:
    before = copy.deepcopy((svc, pod_list, NODES))
    plan = plan_slices(svc, pod_list, NODES, [])
    assert (svc, pod_list, NODES) == before, "plan_slices must not mutate its inputs"
    if expected is None:
        assert plan == SlicePlan()
        return
    assert plan.update == () and plan.delete == () and plan.errors == ()
    got = sorted(describe(s) for s in plan.create)
    assert got == sorted(expected)


def test_pod_on_unknown_node_is_skipped_and_reported() -> None:
    plan = plan_slices(make_service(), [make_pod("p1"), make_pod("p2", on_node("gone"))],
                       NODES, [])
    assert [describe(s) for s in plan.create] == [("IPv4", [HTTP_8080],
                                                  [ready("p1", "10.1.0.1")])]
    assert plan.errors == ("skipping Pod p2 for Service ns/web: Node gone Not Found",)


def test_pod_on_unknown_node_is_published_without_zone_with_publish_not_ready() -> None:
    plan = plan_slices(make_service(publish_not_ready, dual_stack),
                       [make_pod("p1", on_node("gone"), ips("10.1.0.1", "fd00:10:1::1"))],
                       NODES, [])
    assert plan.errors == ()
    assert [describe(s) for s in plan.create] == [
        ("IPv4", [HTTP_8080], ["10.1.0.1 p1 ready,serving"]),
        ("IPv6", [HTTP_8080], ["fd00:10:1::1 p1 ready,serving"])]


def test_created_slice_metadata() -> None:
    svc = make_service(labels(app="web", team="a", **{LABEL_SERVICE_NAME: "spoof",
                                                       LABEL_MANAGED_BY: "me"}))
    trigger = datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)
    plan = plan_slices(svc, [make_pod("p1", spec(hostname="h", subdomain="web"))], NODES, [],
                       trigger_time=trigger)
    (eps,) = plan.create
    assert eps == {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "generateName": "web-", "namespace": "ns",
            "labels": {"app": "web", "team": "a", LABEL_SERVICE_NAME: "web",
                       LABEL_MANAGED_BY: CONTROLLER_NAME},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                 "uid": "uid-web", "controller": True,
                                 "blockOwnerDeletion": True}],
            "annotations": {ANNOTATION_LAST_CHANGE_TRIGGER_TIME: "2026-01-01T12:00:00.5Z"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.1"],
                       "conditions": {"ready": True, "serving": True, "terminating": False},
                       "hostname": "h",
                       "targetRef": {"kind": "Pod", "namespace": "ns", "name": "p1",
                                     "uid": "uid-p1"},
                       "nodeName": "node-a", "zone": "zone-a"}],
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    }


@pytest.mark.parametrize("svc", [
    pytest.param(make_service(headless), id="clusterIP-None"),
    pytest.param(make_service(spec(clusterIP="")), id="clusterIP-empty"),
])
def test_headless_label(svc: Obj) -> None:
    (eps,) = plan_slices(svc, [make_pod("p1")], NODES, []).create
    assert eps["metadata"]["labels"][LABEL_HEADLESS] == ""


def test_250_pods_make_three_slices_of_at_most_100() -> None:
    plan = plan_slices(make_service(), pods(250), NODES, [])
    assert [len(s["endpoints"]) for s in plan.create] == [100, 100, 50]
    addresses = [e["addresses"][0] for s in plan.create for e in s["endpoints"]]
    assert len(set(addresses)) == 250


def test_max_per_slice_is_configurable_and_bounded() -> None:
    plan = plan_slices(make_service(), pods(5), NODES, [], max_per_slice=2)
    assert [len(s["endpoints"]) for s in plan.create] == [2, 2, 1]
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="max_per_slice"):
            plan_slices(make_service(), [], NODES, [], max_per_slice=bad)


def test_plan_is_deterministic() -> None:
    pod_list = pods(30)
    first = plan_slices(make_service(), pod_list, NODES, [], max_per_slice=7)
    shuffled = list(pod_list)
    random.Random(4).shuffle(shuffled)
    assert plan_slices(make_service(), shuffled, NODES, [], max_per_slice=7) == first


def test_service_being_deleted_gets_no_new_slices() -> None:
    assert plan_slices(make_service(terminating), [make_pod("p1")], NODES, []) == SlicePlan()


# -- over several syncs: a simulated server --------------------------------------------------


class Server:
    """Applies plans the way the API server would (names, uids, generations, RVs)."""

    def __init__(self) -> None:
        self.slices: dict[str, Obj] = {}
        self._n = itertools.count(1)

    def apply(self, plan: SlicePlan) -> None:
        for obj in plan.create:
            n = next(self._n)
            new = copy.deepcopy(obj)
            new["metadata"].update(name=f"{obj['metadata']['generateName']}{n:05d}",
                                   uid=f"uid-slice-{n}", generation=1, resourceVersion=str(n))
            self.slices[new["metadata"]["name"]] = new
        for obj in plan.update:
            name = obj["metadata"]["name"]
            current = self.slices[name]
            assert obj["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
            assert obj["metadata"]["uid"] == current["metadata"]["uid"]
            new = copy.deepcopy(obj)
            new["metadata"].update(generation=current["metadata"]["generation"] + 1,
                                   resourceVersion=str(next(self._n)))
            self.slices[name] = new
        for obj in plan.delete:
            del self.slices[obj["metadata"]["name"]]

    def current(self) -> list[Obj]:
        return [copy.deepcopy(s) for _, s in sorted(self.slices.items())]

    def sync(self, svc: Obj, pod_list: list[Obj], **kw: Any) -> SlicePlan:
        existing = self.current()
        before = copy.deepcopy((svc, pod_list, existing))
        plan = plan_slices(svc, pod_list, NODES, existing, **kw)
        assert (svc, pod_list, existing) == before, "plan_slices must not mutate its inputs"
        self.apply(plan)
        return plan


def counts(plan: SlicePlan) -> tuple[int, int, int]:
    return len(plan.create), len(plan.update), len(plan.delete)


def test_nothing_changed_means_empty_plan() -> None:
    server = Server()
    svc = make_service(dual_stack)
    pod_list = [make_pod("p1", ips("10.1.0.1", "fd00:10:1::1")), make_pod("p2", not_ready)]
    assert counts(server.sync(svc, pod_list)) == (2, 0, 0)
    # The pods' resourceVersions change all the time; that is no reason to write.
    for p in pod_list:
        p["metadata"]["resourceVersion"] = "999"
    assert server.sync(svc, pod_list) == SlicePlan()
    assert server.sync(svc, pod_list, trigger_time=datetime(2027, 1, 1, tzinfo=UTC)) == (
        SlicePlan())


def test_existing_placeholder_is_kept() -> None:
    server = Server()
    assert counts(server.sync(make_service(), [])) == (1, 0, 0)
    assert server.sync(make_service(), []) == SlicePlan()


def test_readiness_flip_updates_slice_in_place() -> None:
    server = Server()
    pod_list = [make_pod("p1"), make_pod("p2")]
    server.sync(make_service(), pod_list)
    (name,) = server.slices
    old_rv = server.slices[name]["metadata"]["resourceVersion"]
    not_ready(pod_list[1])
    plan = server.sync(make_service(), pod_list)
    assert counts(plan) == (0, 1, 0)
    assert plan.update[0]["metadata"]["name"] == name
    assert plan.update[0]["metadata"]["resourceVersion"] == old_rv
    assert describe(server.slices[name])[2] == [ready("p1", "10.1.0.1"),
                                                "10.1.0.2 p2 - zone=zone-a"]


def test_last_pod_gone_turns_slice_into_placeholder_under_same_name() -> None:
    server = Server()
    server.sync(make_service(), [make_pod("p1")])
    (name,) = server.slices
    plan = server.sync(make_service(), [])
    assert counts(plan) == (0, 1, 0)
    assert describe(server.slices[name]) == ("IPv4", [], [])


def test_pods_appearing_fill_the_placeholder() -> None:
    server = Server()
    server.sync(make_service(), [])
    (name,) = server.slices
    plan = server.sync(make_service(), [make_pod("p1")])
    assert counts(plan) == (0, 1, 0)
    assert list(server.slices) == [name]
    assert describe(server.slices[name]) == ("IPv4", [HTTP_8080], [ready("p1", "10.1.0.1")])


def test_removed_pod_leaves_other_slices_alone() -> None:
    server = Server()
    pod_list = pods(150)
    server.sync(make_service(), pod_list)
    full, half = sorted(server.slices, key=lambda n: -len(server.slices[n]["endpoints"]))
    victim = server.slices[half]["endpoints"][0]["targetRef"]["name"]
    plan = server.sync(make_service(), [p for p in pod_list if p["metadata"]["name"] != victim])
    assert [u["metadata"]["name"] for u in plan.update] == [half]
    assert len(server.slices[half]["endpoints"]) == 49
    assert len(server.slices[full]["endpoints"]) == 100


@pytest.mark.parametrize(
    ("added", "expected_sizes", "expected_counts"),
    [
        # Existing slices hold 90 and 50 endpoints and do not change otherwise.
        pytest.param(5, [95, 50], (0, 1, 0), id="few-go-to-slice-closest-to-full"),
        pytest.param(15, [90, 65], (0, 1, 0), id="more-go-to-slice-that-can-take-all"),
        pytest.param(120, [90, 70, 100], (1, 1, 0), id="many-fill-new-slice-then-fit-rest"),
    ],
)
def test_new_endpoints_packing(added: int, expected_sizes: list[int],
                               expected_counts: tuple[int, int, int]) -> None:
    server = Server()
    existing = pods(140)
    server.sync(make_service(), existing, max_per_slice=90)
    assert [len(s["endpoints"]) for s in server.slices.values()] == [90, 50]
    plan = server.sync(make_service(), existing + pods(added, start=1000))
    assert counts(plan) == expected_counts
    sizes = [len(s["endpoints"]) for s in server.slices.values()]
    assert sizes == expected_sizes


def test_new_endpoints_go_first_into_slices_being_updated_anyway() -> None:
    server = Server()
    a, b = pods(60), pods(60, start=100)
    server.sync(make_service(), a + b)  # 100 + 20
    sizes = {n: len(s["endpoints"]) for n, s in server.slices.items()}
    small = min(sizes, key=lambda n: sizes[n])
    victim = next(e["targetRef"]["name"] for e in server.slices[small]["endpoints"])
    for p in a + b:
        if p["metadata"]["name"] == victim:
            not_ready(p)
    plan = server.sync(make_service(), [*a, *b, *pods(5, start=300)])
    assert counts(plan) == (0, 1, 0)
    assert plan.update[0]["metadata"]["name"] == small
    assert len(server.slices[small]["endpoints"]) == 25


def test_service_label_change_updates_labels_only() -> None:
    server = Server()
    server.sync(make_service(), [make_pod("p1")])
    plan = server.sync(make_service(labels(team="b")), [make_pod("p1")])
    assert counts(plan) == (0, 1, 0)
    (eps,) = server.slices.values()
    assert eps["metadata"]["labels"] == {"team": "b", LABEL_SERVICE_NAME: "web",
                                         LABEL_MANAGED_BY: CONTROLLER_NAME}
    assert describe(eps)[2] == [ready("p1", "10.1.0.1")]


def test_slices_of_an_old_service_with_the_same_name_are_replaced() -> None:
    server = Server()
    server.sync(make_service(meta(uid="uid-old")), [make_pod("p1")])
    (old,) = server.slices
    plan = server.sync(make_service(), [make_pod("p1")])
    assert counts(plan) == (1, 0, 1), "not owned: never reused, deleted"
    assert plan.delete[0]["metadata"]["name"] == old
    (eps,) = server.slices.values()
    assert eps["metadata"]["ownerReferences"][0]["uid"] == "uid-web"


def test_family_the_service_no_longer_has_is_deleted() -> None:
    server = Server()
    pod_list = [make_pod("p1", ips("10.1.0.1", "fd00:10:1::1"))]
    server.sync(make_service(dual_stack), pod_list)
    v6 = next(n for n, s in server.slices.items() if s["addressType"] == "IPv6")
    plan = server.sync(make_service(), pod_list)
    assert counts(plan) == (0, 0, 1)
    assert plan.delete[0]["metadata"]["name"] == v6


def test_foreign_and_deleting_slices_are_ignored() -> None:
    svc = make_service()
    other_manager = plan_slices(svc, [make_pod("p1")], NODES, [], controller_name="me").create[0]
    other_manager["metadata"]["name"] = "web-mine"
    other_service = plan_slices(make_service(name="api"), [make_pod("p1")], NODES, []).create[0]
    other_service["metadata"]["name"] = "api-x"
    server = Server()
    server.sync(svc, [make_pod("p1")])
    (ours,) = server.current()
    dying = copy.deepcopy(ours)
    dying["metadata"].update(name="web-dying", deletionTimestamp="2026-01-01T00:00:00Z")
    existing = [ours, other_manager, other_service, dying]
    assert plan_slices(svc, [make_pod("p1")], NODES, existing) == SlicePlan()


def test_duplicate_endpoint_in_existing_slice_is_dropped() -> None:
    server = Server()
    server.sync(make_service(), [make_pod("p1")])
    (name,) = server.slices
    server.slices[name]["endpoints"].append(copy.deepcopy(server.slices[name]["endpoints"][0]))
    plan = server.sync(make_service(), [make_pod("p1")])
    assert counts(plan) == (0, 1, 0)
    assert len(server.slices[name]["endpoints"]) == 1


def test_trigger_time_is_set_on_writes_and_cleared_when_unknown() -> None:
    server = Server()
    t1 = datetime(2026, 1, 1, tzinfo=UTC)
    server.sync(make_service(), [make_pod("p1")], trigger_time=t1)
    (name,) = server.slices
    assert server.slices[name]["metadata"]["annotations"] == {
        ANNOTATION_LAST_CHANGE_TRIGGER_TIME: "2026-01-01T00:00:00Z"}
    moved = make_pod("p1", on_node("node-b"))
    server.sync(make_service(), [moved])  # a zone change: no tracked trigger
    assert "annotations" not in server.slices[name]["metadata"]


def test_mods_helper_composes() -> None:
    # (keeps the builders honest: a composed modifier applies every part)
    pod = make_pod("p1", mods(not_ready, on_node("node-b")))
    assert describe(plan_slices(make_service(), [pod], NODES, []).create[0])[2] == [
        "10.1.0.1 p1 - zone=zone-b"]
