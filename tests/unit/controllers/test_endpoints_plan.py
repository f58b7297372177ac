"""Legacy Endpoints: the pure plan (subsets, repacking, truncation, when to write).

Builders and the address plan are in ``test_endpointslice_helpers``. Subsets are summarised as
``(ready addresses, not-ready addresses, ports)`` with an address written ``"<ip> <pod>"`` and
a port ``"<name>/<protocol>:<port>"``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from svcnet.controllers.endpoints import (
    MAX_CAPACITY,
    Create,
    Skip,
    Update,
    desired_subsets,
    plan_endpoints,
    repack_subsets,
    truncate_subsets,
)
from svcnet.controllers.endpointslice.util import (
    ANNOTATION_LAST_CHANGE_TRIGGER_TIME,
    ANNOTATION_OVER_CAPACITY,
    LABEL_HEADLESS,
)
from tests.unit.controllers.test_endpointslice_helpers import (
    Obj,
    container_ports,
    dual_stack,
    headless,
    ips,
    labels,
    make_pod,
    make_service,
    meta,
    no_ip,
    not_ready,
    phase,
    pods,
    ports,
    publish_not_ready,
    spec,
    terminating,
)

Summary = tuple[list[str], list[str], list[str]]


def summarize(subsets: list[Obj]) -> list[Summary]:
    def addr(a: Obj) -> str:
        text = f"{a['ip']} {a['targetRef']['name']}"
        return text + (f" host={a['hostname']}" if a.get("hostname") else "")

    return [([addr(a) for a in s.get("addresses", [])],
             [addr(a) for a in s.get("notReadyAddresses", [])],
             [f"{p.get('name', '-')}/{p['protocol']}:{p['port']}" for p in s.get("ports", [])])
            for s in subsets]


HTTP = "http/TCP:8080"
TWO_PORTS = ports({"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                  {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100})

CASES: list[Any] = [
    pytest.param(make_service(), [make_pod("p2"), make_pod("p1")],
                 [(["10.1.0.1 p1", "10.1.0.2 p2"], [], [HTTP])], id="ready-pods-sorted"),
    pytest.param(make_service(), [make_pod("p10"), make_pod("p2")],
                 [(["10.1.0.10 p10", "10.1.0.2 p2"], [], [HTTP])],
                 id="addresses-sorted-as-bytes"),
    pytest.param(make_service(), [make_pod("p1"), make_pod("p2", not_ready)],
                 [(["10.1.0.1 p1"], ["10.1.0.2 p2"], [HTTP])], id="not-ready-pods"),
    pytest.param(make_service(), [make_pod("p1"), make_pod("p2", terminating)],
                 [(["10.1.0.1 p1"], [], [HTTP])], id="terminating-pods-excluded"),
    pytest.param(make_service(publish_not_ready),
                 [make_pod("p1", not_ready), make_pod("p2", terminating)],
                 [(["10.1.0.1 p1", "10.1.0.2 p2"], [], [HTTP])],
                 id="publish-not-ready-includes-all-as-ready"),
    pytest.param(make_service(),
                 [make_pod("p1"), make_pod("p2", phase("Failed")), make_pod("p3", no_ip),
                  make_pod("p4", labels(app="x")), make_pod("p5", ns="other")],
                 [(["10.1.0.1 p1"], [], [HTTP])], id="selection-terminal-and-ipless"),
    pytest.param(make_service(),
                 [make_pod("p1"), make_pod("p2", container_ports(
                     {"name": "http", "containerPort": 9090, "protocol": "TCP"})),
                  make_pod("p3", container_ports())],
                 [(["10.1.0.1 p1"], [], [HTTP]), (["10.1.0.2 p2"], [], ["http/TCP:9090"])],
                 id="named-port-per-pod-and-pod-without-it-left-out"),
    pytest.param(make_service(TWO_PORTS),
                 [make_pod("p1"), make_pod("p2", container_ports())],
                 [(["10.1.0.1 p1", "10.1.0.2 p2"], [], ["metrics/TCP:9100"]),
                  (["10.1.0.1 p1"], [], [HTTP])],
                 id="repacked-addresses-sharing-a-port-set"),
    pytest.param(make_service(ports({"port": 80, "protocol": "UDP", "targetPort": 53})),
                 [make_pod("p1")], [(["10.1.0.1 p1"], [], ["-/UDP:53"])],
                 id="unnamed-port"),
    pytest.param(make_service(headless, ports()), [make_pod("p1"), make_pod("p2", not_ready)],
                 [(["10.1.0.1 p1"], ["10.1.0.2 p2"], [])], id="headless-without-ports"),
    pytest.param(make_service(ports()), [make_pod("p1")], [],
                 id="headful-without-ports-gets-nothing"),
    pytest.param(make_service(),
                 [make_pod("p1", spec(hostname="db-0", subdomain="web")),
                  make_pod("p2", spec(hostname="db-1", subdomain="db"))],
                 [(["10.1.0.1 p1 host=db-0", "10.1.0.2 p2"], [], [HTTP])],
                 id="hostname-with-matching-subdomain"),
    pytest.param(make_service(dual_stack),
                 [make_pod("p1", ips("10.1.0.1", "fd00:10:1::1"))],
                 [(["10.1.0.1 p1"], [], [HTTP])], id="dual-stack-primary-family-only"),
    pytest.param(make_service(spec(ipFamilies=["IPv6", "IPv4"])),
                 [make_pod("p1", ips("10.1.0.1", "fd00:10:1::1")), make_pod("p2")],
                 [(["fd00:10:1::1 p1"], [], [HTTP])],
                 id="ipv6-primary-pods-without-v6-left-out"),
    pytest.param(make_service(spec(ipFamilies=[], clusterIP="None")),
                 [make_pod("p1", ips("fd00:10:1::1", "10.1.0.1"))],
                 [(["fd00:10:1::1 p1"], [], [HTTP])],
                 id="headless-without-families-uses-pod-ip-family"),
]


@pytest.mark.parametrize(("svc", "pod_list", "expected"), CASES)
def test_desired_subsets(svc: Obj, pod_list: list[Obj], expected: list[Summary]) -> None:
    before = copy.deepcopy((svc, pod_list))
    assert summarize(desired_subsets(svc, pod_list)) == expected
    assert (svc, pod_list) == before


def test_address_fields() -> None:
    (subset,) = desired_subsets(make_service(), [make_pod("p1", spec(hostname="h",
                                                                      subdomain="web"))])
    assert subset == {
        "addresses": [{"ip": "10.1.0.1", "hostname": "h", "nodeName": "node-a",
                       "targetRef": {"kind": "Pod", "namespace": "ns", "name": "p1",
                                     "uid": "uid-p1"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def test_repack_not_ready_wins_and_duplicates_merge() -> None:
    a = {"ip": "10.1.0.1", "targetRef": {"kind": "Pod", "name": "p1", "uid": "u1"}}
    b = {"ip": "10.1.0.2", "targetRef": {"kind": "Pod", "name": "p2", "uid": "u2"}}
    p80 = {"name": "a", "port": 80, "protocol": "TCP"}
    p81 = {"name": "b", "port": 81, "protocol": "TCP"}
    packed = repack_subsets([
        {"addresses": [a, b], "ports": [p80]},
        {"notReadyAddresses": [a], "ports": [p80]},
        {"addresses": [a, b], "ports": [p81]},
        {"addresses": [b], "ports": [p81]},
    ])
    assert summarize(packed) == [(["10.1.0.1 p1", "10.1.0.2 p2"], [], ["b/TCP:81"]),
                                 (["10.1.0.2 p2"], ["10.1.0.1 p1"], ["a/TCP:80"])]


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        pytest.param([(600, 0), (600, 0)], [(500, 0), (500, 0)], id="ready-over-capacity"),
        pytest.param([(700, 100), (100, 300)], [(700, 50), (100, 150)],
                     id="only-not-ready-cut-in-proportion"),
        pytest.param([(1, 0), (1, 0), (1100, 0)], [(1, 0), (1, 0), (998, 0)],
                     id="rounding-up-leaves-the-last-short"),
        pytest.param([(500, 500)], [(500, 500)], id="at-capacity-untouched"),
    ],
)
def test_truncate_subsets(sizes: list[tuple[int, int]], expected: list[tuple[int, int]]) -> None:
    n = iter(range(10**6))

    def addrs(count: int) -> list[Obj]:
        return [{"ip": f"10.{(i := next(n)) // 65536}.{i // 256 % 256}.{i % 256}"}
                for _ in range(count)]

    subsets = [{"addresses": addrs(r), "notReadyAddresses": addrs(nr)} for r, nr in sizes]
    out, truncated = truncate_subsets(subsets)
    got = [(len(s.get("addresses", [])), len(s.get("notReadyAddresses", []))) for s in out]
    assert got == expected
    assert truncated == (sum(r + nr for r, nr in sizes) > MAX_CAPACITY)
    assert sum(r + nr for r, nr in got) <= MAX_CAPACITY


# -- the decision ----------------------------------------------------------------------------


def test_create_for_a_new_service() -> None:
    svc = make_service(labels(app="web", team="a"), headless)
    action = plan_endpoints(svc, [make_pod("p1")], None,
                            trigger_time=datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(action, Create)
    ep = action.endpoints
    assert ep["apiVersion"] == "v1" and ep["kind"] == "Endpoints"
    assert ep["metadata"] == {"name": "web", "namespace": "ns",
                              "labels": {"app": "web", "team": "a", LABEL_HEADLESS: ""},
                              "annotations": {ANNOTATION_LAST_CHANGE_TRIGGER_TIME:
                                              "2026-01-01T00:00:00Z"}}
    assert summarize(ep["subsets"]) == [(["10.1.0.1 p1"], [], [HTTP])]


def stored(action: Create | Update | Skip) -> Obj:
    """What the server would hold after the write."""
    assert isinstance(action, (Create, Update))
    obj = copy.deepcopy(action.endpoints)
    obj["metadata"].update(uid="uid-ep", resourceVersion="50")
    return obj


def test_nothing_changed_is_skipped() -> None:
    svc = make_service(headless)
    pod_list = [make_pod("p1"), make_pod("p2", not_ready)]
    current = stored(plan_endpoints(svc, pod_list, None))
    # A changed pod resourceVersion (in targetRef) or trigger time is no reason to write.
    current["subsets"][0]["addresses"][0]["targetRef"]["resourceVersion"] = "7"
    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert plan_endpoints(svc, pod_list, current, trigger_time=later) == Skip("up to date")


def test_update_keeps_metadata_and_replaces_content() -> None:
    svc = make_service()
    current = stored(plan_endpoints(svc, [make_pod("p1")], None))
    current["metadata"]["annotations"] = {"keep": "me"}
    action = plan_endpoints(make_service(labels(team="b")), [make_pod("p1", not_ready)],
                            current)
    assert isinstance(action, Update)
    ep = action.endpoints
    assert ep["metadata"] == {"name": "web", "namespace": "ns", "uid": "uid-ep",
                              "resourceVersion": "50", "labels": {"team": "b"},
                              "annotations": {"keep": "me"}}
    assert summarize(ep["subsets"]) == [([], ["10.1.0.1 p1"], [HTTP])]


def test_headless_label_alone_is_no_difference() -> None:
    svc = make_service()
    current = stored(plan_endpoints(svc, [make_pod("p1")], None))
    current["metadata"]["labels"][LABEL_HEADLESS] = ""
    assert plan_endpoints(svc, [make_pod("p1")], current) == Skip("up to date")


def test_over_capacity_is_truncated_and_annotated_then_cleared() -> None:
    svc = make_service()
    many = pods(1200)
    for p in many[1000:]:
        not_ready(p)
    action = plan_endpoints(svc, many, None)
    assert isinstance(action, Create)
    (subset,) = action.endpoints["subsets"]
    assert len(subset["addresses"]) == 1000 and "notReadyAddresses" not in subset
    assert action.endpoints["metadata"]["annotations"] == {ANNOTATION_OVER_CAPACITY:
                                                           "truncated"}
    current = stored(action)
    # Still over capacity: upstream rewrites every time (the stored subsets never match).
    assert isinstance(plan_endpoints(svc, many, current), Update)
    shrunk = plan_endpoints(svc, many[:10], current)
    assert isinstance(shrunk, Update)
    assert "annotations" not in shrunk.endpoints["metadata"]


@pytest.mark.parametrize("svc", [
    pytest.param(make_service(spec(selector=None)), id="selectorless"),
    pytest.param(make_service(spec(selector={})), id="empty-selector"),
    pytest.param(make_service(spec(type="ExternalName", externalName="x.example")),
                 id="external-name"),
])
def test_unmanaged_services_are_skipped(svc: Obj) -> None:
    action = plan_endpoints(svc, [make_pod("p1")], None)
    assert isinstance(action, Skip)


def test_trigger_time_cleared_when_unknown() -> None:
    svc = make_service()
    current = stored(plan_endpoints(svc, [make_pod("p1")], None,
                                    trigger_time=datetime(2026, 1, 1, tzinfo=UTC)))
    action = plan_endpoints(svc, [make_pod("p1", meta(uid="other"))], current)
    assert isinstance(action, Update)
    assert "annotations" not in action.endpoints["metadata"]
