"""The dashboard's view model: a pure function of Nodes, Pods, Services and EndpointSlices."""

from __future__ import annotations

from typing import Any

from svcnet.dashboard.model import build_view


def node(name: str, ip: str, zone: str = "", ready: bool = True) -> dict[str, Any]:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"metadata": {"name": name, "labels": labels},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name: str, node_name: str, ip: str, labels: dict[str, str], *, ready: bool = True,
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node_name},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def service(name: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": selector, "clusterIP": spec.pop("clusterIP", "10.96.0.20"),
                     "ports": spec.pop("ports", [{"port": 80, "protocol": "TCP",
                                                  "targetPort": 8080}]), **spec},
            "status": status}


def slice_(svc: str, *endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": f"{svc}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": list(endpoints)}


def endpoint(pod_name: str, ip: str, node_name: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node_name, "conditions": conditions,
            "targetRef": {"kind": "Pod", "name": pod_name, "namespace": "default"}}


NODES = [node("node-2", "172.20.0.12", "b"), node("node-1", "172.20.0.11", "a")]


def test_members_are_the_selected_pods_with_their_endpoint_states() -> None:
    pods = [pod("web-1", "node-1", "10.244.1.3", {"app": "web"}),
            pod("web-2", "node-2", "10.244.2.3", {"app": "web"}, ready=False),
            pod("web-3", "node-2", "10.244.2.4", {"app": "web"}, deleting=True),
            pod("other", "node-1", "10.244.1.9", {"app": "other"})]
    slices = [slice_("web",
                     endpoint("web-1", "10.244.1.3", "node-1", ready=True),
                     endpoint("web-2", "10.244.2.3", "node-2", ready=False, serving=False),
                     endpoint("web-3", "10.244.2.4", "node-2", ready=False, serving=True,
                              terminating=True))]
    view = build_view(NODES, pods, [service("web", {"app": "web"})], slices)
    assert [n["name"] for n in view["nodes"]] == ["node-1", "node-2"]
    assert view["nodes"][0]["zone"] == "a"
    (web,) = view["services"]
    members = {m["name"]: m for m in web["members"]}
    assert sorted(members) == ["web-1", "web-2", "web-3"]
    ep1, = members["web-1"]["endpoints"]
    assert (ep1["ready"], ep1["serving"], ep1["terminating"], ep1["zone"]) == (
        True, True, False, "a")
    ep2, = members["web-2"]["endpoints"]
    assert (ep2["ready"], ep2["serving"]) == (False, False)
    ep3, = members["web-3"]["endpoints"]
    assert (ep3["serving"], ep3["terminating"]) == (True, True)
    assert members["web-3"]["phase"] == "Terminating"
    assert [p["name"] for p in view["otherPods"]] == ["other"]


def test_selected_pod_without_endpoint_and_endpoint_without_pod() -> None:
    pods = [pod("new", "node-1", "", {"app": "web"}, ready=False)]
    manual = {"addresses": ["192.0.2.7"], "conditions": {}}
    view = build_view(NODES, pods, [service("web", {"app": "web"})], [slice_("web", manual)])
    members = {m["name"]: m for m in view["services"][0]["members"]}
    assert members["new"]["endpoints"] == []
    assert members["192.0.2.7"]["endpoints"][0]["ready"] is True  # unset means ready


def test_frontends_nodeports_on_every_node_and_the_lb_announcer() -> None:
    svc = service("lb", {"app": "x"}, type="LoadBalancer", externalTrafficPolicy="Local",
                  ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}],
                  status={"loadBalancer": {"ingress": [{"ip": "172.20.0.200"}]}})
    slices = [slice_("lb", endpoint("x-1", "10.244.2.3", "node-2", ready=True))]
    view = build_view(NODES, [], [svc], slices)
    (lb,) = view["services"]
    assert lb["nodePorts"] == ["172.20.0.11:30080", "172.20.0.12:30080"]
    # Under ETP Local only node-2 (the one with a ready endpoint) may announce it.
    assert lb["loadBalancer"] == [{"ip": "172.20.0.200", "ipMode": "VIP",
                                   "announcer": "node-2"}]
    assert lb["externalTrafficPolicy"] == "Local"
    assert lb["internalTrafficPolicy"] == "Cluster"


def test_rates_attach_to_services_and_endpoints() -> None:
    slices = [slice_("web", endpoint("web-1", "10.244.1.3", "node-1", ready=True))]
    view = build_view(NODES, [pod("web-1", "node-1", "10.244.1.3", {"app": "web"})],
                      [service("web", {"app": "web"})], slices,
                      {"default/web": 4.5, "default/web|10.244.1.3:8080": 4.5})
    (web,) = view["services"]
    assert web["rate"] == 4.5
    assert web["members"][0]["endpoints"][0]["rate"] == 4.5
