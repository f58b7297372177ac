"""`svcnet explain`'s pure core: a Service's frontends, verdicts and backends on a node."""

from __future__ import annotations

from dataclasses import replace

from svcnet.proxy.explain import explain, frontends
from svcnet.proxy.ruleset import ProxyConfig
from tests.unit.proxy.builders import (
    DUAL_NODE,
    NODE,
    endpoint,
    load_balancer,
    make_service,
    make_slice,
    node_port_service,
)


def test_explain_nodeport_service_shows_verdicts_backends_and_chain() -> None:
    svc = make_service("default", "web", "10.96.0.20", mutate=node_port_service)
    other = make_service("default", "other", "10.96.0.30")
    slices = [make_slice("default", "web", [endpoint("10.244.1.5"), endpoint("10.244.2.6")]),
              make_slice("default", "other", [endpoint("10.244.1.9")])]
    lines = explain(svc, [svc, other], slices, NODE)
    text = "\n".join(lines)
    assert lines[0] == "Service default/web on node node-1 (table ip svcnet):"
    assert "frontends: 10.96.0.20; node ports 30080 on 172.20.0.11" in text
    # Two endpoints: the frontends are in @lb-count-2, whose rule goes to chain lb-2.
    assert "@lb-count-2:" in text
    assert '10.96.0.20 . tcp . 80 comment "default/web/tcp/http"' in text
    assert '172.20.0.11 . tcp . 30080 comment "default/web/tcp/http"' in text
    assert "10.96.0.20 . tcp . 80 . 0 : 10.244.1.5 . 8080" in text
    assert "10.96.0.20 . tcp . 80 . 1 : 10.244.2.6 . 8080" in text
    assert "chain lb-2:" in text
    assert "10.96.0.30" not in text, "other Services are left out"


def test_explain_service_without_endpoints_rejects() -> None:
    svc = make_service("default", "empty", "10.96.0.40")
    text = "\n".join(explain(svc, [svc], [], NODE))
    assert '@no-endpoints:\n    10.96.0.40 . tcp . 80 comment "default/empty/tcp/http"' in text


def test_frontends_include_external_and_lb_ips() -> None:
    svc = make_service("default", "lb", "10.96.0.50")
    svc["spec"]["externalIPs"] = ["192.0.2.7"]
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "172.20.0.200"}]}}
    assert frontends(svc) == ({"10.96.0.50", "192.0.2.7", "172.20.0.200"}, set())


def test_explain_shows_zone_hints_and_the_endpoints_used() -> None:
    svc = make_service("default", "close", "10.96.0.60")
    eps = [endpoint("10.244.1.5", zone="a", hints=["a"]),
           endpoint("10.244.2.6", node="node-2", zone="b", hints=["b"])]
    node_a = replace(NODE, zone="a")
    lines = explain(svc, [svc], [make_slice("default", "close", eps)], node_a)
    assert lines[2:5] == [
        "  endpoints of default/close:http (tcp/80), zone hints followed for zone a:",
        "    10.244.1.5:8080 zone=a for=a",
        "    10.244.2.6:8080 zone=b for=b"]
    assert lines[5] == "    used (cluster): 10.244.1.5:8080"
    # A node in a zone no endpoint is hinted for uses every endpoint.
    lines = explain(svc, [svc], [make_slice("default", "close", eps)], replace(NODE, zone="c"))
    assert "zone hints ignored (node zone c" in lines[2]
    assert lines[5] == "    used (cluster): 10.244.1.5:8080, 10.244.2.6:8080"


def test_explain_proxy_mode_lb_ip_is_not_a_frontend() -> None:
    svc = make_service("default", "lb", "10.96.0.70", mutate=load_balancer("172.20.0.210"))
    svc["status"]["loadBalancer"]["ingress"] = [{"ip": "172.20.0.210", "ipMode": "Proxy"}]
    text = "\n".join(explain(svc, [svc], [make_slice("default", "lb", [endpoint("10.244.1.5")])],
                             NODE))
    assert "ipMode Proxy (not programmed here" in text and "172.20.0.210 . tcp" not in text
    assert frontends(svc)[0] == {"10.96.0.70"}


def test_explain_a_dual_stack_service_per_family() -> None:
    svc = make_service("default", "web", "10.96.0.20", mutate=node_port_service)
    svc["spec"]["clusterIPs"].append("fd00:10:96::14")
    slices = [make_slice("default", "web", [endpoint("10.244.1.5")]),
              make_slice("default", "web", [endpoint("fd00:10:244:1::5")], suffix="six",
                         address_type="IPv6")]
    six = explain(svc, [svc], slices, DUAL_NODE,
                  ProxyConfig(family="IPv6", cluster_cidrs=("fd00:10:244::/56",)))
    text = "\n".join(six)
    assert six[0] == "Service default/web on node node-1 (table ip6 svcnet):"
    assert "frontends: fd00:10:96::14; node ports 30080 on fd00:172:20::11" in text
    assert "fd00:10:96::14 . tcp . 80 . 0 : fd00:10:244:1::5 . 8080" in text
    assert "fd00:172:20::11 . tcp . 30080 . 0 : fd00:10:244:1::5 . 8080" in text
    assert "10.96.0.20" not in text and "10.244.1.5" not in text
    four = "\n".join(explain(svc, [svc], slices, DUAL_NODE))
    assert "table ip svcnet" in four and "fd00" not in four
