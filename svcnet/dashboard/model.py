"""The dashboard's picture of a cluster: a pure function of Nodes, Pods, Services and
EndpointSlices (and, when the node agents publish them, traffic rates).

Theory of operation
-------------------
The page draws what this module returns, as JSON: nothing is computed in the browser but the
layout. For every Service (sorted by namespace and name):

* its type, ClusterIP(s) and ports; each NodePort on every node address (a NodePort is open on
  all nodes); each LoadBalancer ingress IP with the node that answers ARP for it, computed with
  the node agents' own pure rule (:func:`svcnet.node.announcer.announcing_node`, nothing records
  it); external IPs; the traffic policies and session affinity;
* its *members*: the pods its selector picks, joined with the endpoints of its EndpointSlices
  (by ``targetRef``), so a pod that is selected but not (yet) an endpoint shows as such, and an
  endpoint without a pod (a hand-made slice) still shows. Each endpoint carries the slice's
  conditions (ready, serving, terminating), its node and zone
  (``topology.kubernetes.io/zone``, the endpoint's or its node's).

Pods no Service selects are listed apart. Rates, when given, are keyed as
:mod:`svcnet.dashboard.traffic` computes them: per Service key and per (Service key, endpoint
``ip:port``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from svcnet.api.access import as_dict, as_list, as_str, meta_of
from svcnet.api.labels import selector_from_set
from svcnet.node.announcer import announcing_node
from svcnet.proxy.service import node_info

Obj = Mapping[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _key(obj: Obj) -> str:
    meta = meta_of(obj)
    return f"{as_str(meta.get('namespace'))}/{as_str(meta.get('name'))}"


def _ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in as_list(as_dict(node.get("status")).get("conditions")))


def node_view(node: Obj) -> dict[str, Any]:
    info = node_info(dict(node))
    return {"name": info.name, "addresses": list(info.addresses), "zone": info.zone or "",
            "ready": _ready(node)}


def pod_view(pod: Obj) -> dict[str, Any]:
    meta, spec, status = meta_of(pod), as_dict(pod.get("spec")), as_dict(pod.get("status"))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in as_list(status.get("conditions")))
    phase = as_str(status.get("phase")) or "Pending"
    if meta.get("deletionTimestamp"):
        phase = "Terminating"
    return {"name": as_str(meta.get("name")), "namespace": as_str(meta.get("namespace")),
            "node": as_str(spec.get("nodeName")), "ip": as_str(status.get("podIP")),
            "phase": phase, "ready": ready}


def _endpoint_views(slices: Iterable[Obj], zones: Mapping[str, str]) -> list[dict[str, Any]]:
    """One entry per (address, port) of the slices, with the slice's conditions."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for s in slices:
        ports = [p for p in as_list(s.get("ports")) if isinstance(p, dict)] or [{}]
        for e in as_list(s.get("endpoints")):
            if not isinstance(e, dict):
                continue
            cond = as_dict(e.get("conditions"))
            ready = cond.get("ready") is not False  # unset means ready
            ref = as_dict(e.get("targetRef"))
            node = as_str(e.get("nodeName"))
            for ip in as_list(e.get("addresses"))[:1]:
                for p in ports:
                    port = str(p.get("port") or "")
                    out[(str(ip), port)] = {
                        "ip": str(ip), "port": port, "pod": as_str(ref.get("name"))
                        if ref.get("kind") in (None, "Pod") else "",
                        "node": node, "zone": as_str(e.get("zone")) or zones.get(node, ""),
                        "ready": ready,
                        "serving": cond.get("serving") is not False if "serving" in cond
                        else ready,
                        "terminating": cond.get("terminating") is True}
    return [out[k] for k in sorted(out)]


def _frontends(svc: Obj, nodes: list[dict[str, Any]], slices: list[Obj],
               all_nodes: list[Obj]) -> dict[str, Any]:
    spec, status = as_dict(svc.get("spec")), as_dict(svc.get("status"))
    ports = [{"name": as_str(p.get("name")), "port": p.get("port"),
              "protocol": as_str(p.get("protocol")) or "TCP",
              "targetPort": p.get("targetPort"), "nodePort": p.get("nodePort")}
             for p in as_list(spec.get("ports")) if isinstance(p, dict)]
    node_ports = [f"{addr}:{p['nodePort']}" for p in ports if p["nodePort"]
                  for n in nodes for addr in n["addresses"]]
    lbs = []
    for ing in as_list(as_dict(status.get("loadBalancer")).get("ingress")):
        ip = as_str(as_dict(ing).get("ip"))
        if ip:
            lbs.append({"ip": ip, "ipMode": as_str(as_dict(ing).get("ipMode")) or "VIP",
                        "announcer": announcing_node(svc, ip, slices, all_nodes) or ""})
    cluster_ips = [ip for ip in as_list(spec.get("clusterIPs")) or [spec.get("clusterIP")]
                   if ip]
    return {"clusterIPs": cluster_ips, "ports": ports, "nodePorts": node_ports,
            "loadBalancer": lbs, "externalIPs": list(as_list(spec.get("externalIPs")))}


def service_view(svc: Obj, pods: list[Obj], slices: list[Obj], nodes: list[dict[str, Any]],
                 all_nodes: list[Obj], rates: Mapping[str, float]) -> dict[str, Any]:
    """One Service: frontends, policies, members (pods and endpoints), rates."""
    meta, spec = meta_of(svc), as_dict(svc.get("spec"))
    key = _key(svc)
    zones = {n["name"]: n["zone"] for n in nodes}
    endpoints = _endpoint_views(slices, zones)
    selector = as_dict(spec.get("selector"))
    selected = ([p for p in pods if selector_from_set(
        {str(k): str(v) for k, v in selector.items()}).matches(
        {str(k): str(v) for k, v in as_dict(meta_of(p).get("labels")).items()})]
        if selector else [])
    by_pod: dict[str, list[dict[str, Any]]] = {}
    for ep in endpoints:
        ep["rate"] = rates.get(f"{key}|{ep['ip']}:{ep['port']}")
        by_pod.setdefault(ep["pod"] or f"{ep['ip']}", []).append(ep)
    members = []
    for pod in sorted((pod_view(p) for p in selected), key=lambda p: p["name"]):
        members.append({**pod, "zone": zones.get(pod["node"], ""),
                        "endpoints": by_pod.pop(pod["name"], [])})
    for name, eps in sorted(by_pod.items()):  # endpoints of pods the selector does not pick
        members.append({"name": name, "namespace": as_str(meta.get("namespace")),
                        "node": eps[0]["node"], "ip": eps[0]["ip"], "phase": "",
                        "ready": eps[0]["ready"], "zone": eps[0]["zone"], "endpoints": eps})
    return {
        "key": key, "namespace": as_str(meta.get("namespace")), "name": as_str(meta.get("name")),
        "type": as_str(spec.get("type")) or "ClusterIP",
        **_frontends(svc, nodes, slices, all_nodes),
        "externalTrafficPolicy": as_str(spec.get("externalTrafficPolicy")),
        "internalTrafficPolicy": as_str(spec.get("internalTrafficPolicy")) or "Cluster",
        "sessionAffinity": as_str(spec.get("sessionAffinity")) or "None",
        "headless": spec.get("clusterIP") == "None",
        "members": members, "rate": rates.get(key)}


def build_view(nodes: Iterable[Obj], pods: Iterable[Obj], services: Iterable[Obj],
               slices: Iterable[Obj], rates: Mapping[str, float] | None = None,
               ) -> dict[str, Any]:
    """The whole picture (JSON-ready). Pure."""
    all_nodes = sorted(nodes, key=lambda n: as_str(meta_of(n).get("name")))
    node_views = [node_view(n) for n in all_nodes]
    pods = list(pods)
    slices_by_service: dict[str, list[Obj]] = {}
    for s in slices:
        meta = meta_of(s)
        svc_name = as_str(as_dict(meta.get("labels")).get(SERVICE_NAME_LABEL))
        if svc_name:
            slices_by_service.setdefault(
                f"{as_str(meta.get('namespace'))}/{svc_name}", []).append(s)
    pods_by_ns: dict[str, list[Obj]] = {}
    for p in pods:
        pods_by_ns.setdefault(as_str(meta_of(p).get("namespace")), []).append(p)
    views = []
    for svc in sorted(services, key=_key):
        ns = as_str(meta_of(svc).get("namespace"))
        views.append(service_view(svc, pods_by_ns.get(ns, []),
                                  slices_by_service.get(_key(svc), []), node_views, all_nodes,
                                  rates or {}))
    grouped = {(m["namespace"], m["name"]) for v in views for m in v["members"]}
    others = sorted((pod_view(p) for p in pods), key=lambda p: (p["namespace"], p["name"]))
    return {"nodes": node_views, "services": views,
            "otherPods": [p for p in others if (p["namespace"], p["name"]) not in grouped]}
