"""`svcnet explain`'s pure core: a Service's frontends, verdicts and backends on a node."""

from __future__ import annotations

from svcnet.proxy.explain import explain, frontends
from tests.unit.proxy.builders import NODE, endpoint, make_service, make_slice, node_port_service


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
