"""Tables of Ingresses, IngressClasses and NetworkPolicies: kubectl 1.33's columns and cells
(printIngress, formatHosts, formatPorts, ingressLoadBalancerStatusStringer, printIngressClass,
printNetworkPolicy in pkg/printers/internalversion)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.apiserver.test_tables import cells, column_names, meta

Obj = dict[str, Any]
V1 = "networking.k8s.io/v1"


def test_columns() -> None:
    assert column_names(V1, "Ingress") == [
        ("Name", 0), ("Class", 0), ("Hosts", 0), ("Address", 0), ("Ports", 0), ("Age", 0)]
    assert column_names(V1, "IngressClass") == [
        ("Name", 0), ("Controller", 0), ("Parameters", 0), ("Age", 0)]
    assert column_names(V1, "NetworkPolicy") == [("Name", 0), ("Pod-Selector", 0), ("Age", 0)]


@pytest.mark.parametrize(("spec", "status", "want"), [
    ({"defaultBackend": {}}, {}, ["<none>", "*", "", "80"]),
    ({"ingressClassName": "nginx", "rules": [{"host": "a.com"}, {}],
      "tls": [{"hosts": ["a.com"]}]}, {}, ["nginx", "a.com", "", "80, 443"]),
    # Three hosts at most; hostless rules count among the "more".
    ({"rules": [{"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}]}, {},
     ["<none>", "a,b,c + 2 more...", "", "80"]),
    ({"rules": [{"host": "a"}, {"host": "b"}, {"host": "c"}]},
     {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example.com"},
                                   {"ip": "10.0.0.1", "hostname": "x"}, {"ip": "10.0.0.2"}]}},
     ["<none>", "a,b,c", "10.0.0.1,10.0.0.2,lb.example.com", "80"]),
])
def test_ingress_rows(spec: Obj, status: Obj, want: list[Any]) -> None:
    obj = {"metadata": meta("web"), "spec": spec, "status": status}
    assert cells(V1, "Ingress", obj) == ["web", *want, "5m"]


@pytest.mark.parametrize(("spec", "parameters"), [
    ({"controller": "k8s.io/ingress-nginx"}, "<none>"),
    ({"controller": "k8s.io/ingress-nginx",
      "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters",
                     "name": "external-lb"}}, "IngressParameters.k8s.example.com/external-lb"),
    ({"controller": "k8s.io/ingress-nginx",
      "parameters": {"kind": "ConfigMap", "name": "cfg", "scope": "Namespace"}},
     "ConfigMap/cfg"),
])
def test_ingress_class_rows(spec: Obj, parameters: str) -> None:
    obj = {"metadata": meta("nginx", None), "spec": spec}
    assert cells(V1, "IngressClass", obj) == ["nginx", "k8s.io/ingress-nginx", parameters, "5m"]


@pytest.mark.parametrize(("spec", "pod_selector"), [
    # An empty selector (all pods of the namespace), or none at all, prints as <none>.
    ({"podSelector": {}, "policyTypes": ["Ingress"]}, "<none>"),
    ({}, "<none>"),
    ({"podSelector": {"matchLabels": {"role": "db", "app": "shop"}}}, "app=shop,role=db"),
    ({"podSelector": {"matchLabels": {"app": "shop"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "canary", "operator": "DoesNotExist"}]}},
     "app=shop,!canary,tier in (api,web)"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}, "<error>"),
])
def test_network_policy_rows(spec: Obj, pod_selector: str) -> None:
    obj = {"metadata": meta("deny-all"), "spec": spec}
    assert cells(V1, "NetworkPolicy", obj) == ["deny-all", pod_selector, "5m"]
