"""healthCheckNodePort answers (pure part): per node, local ready endpoints of ETP=Local LBs."""

from __future__ import annotations

from typing import Any

from svcnet.node.healthcheck import HealthCheck, health_checks


def lb(name: str, etp: str = "Local", port: int = 31000) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp,
                     "healthCheckNodePort": port if etp == "Local" else None}}


def eps(name: str, *endpoints: tuple[str, str, bool]) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": f"{name}-x",
                         "labels": {"kubernetes.io/service-name": name}},
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ok}}
                          for ip, node, ok in endpoints]}


def test_health_checks_per_node() -> None:
    services = [lb("web"), lb("cluster-policy", etp="Cluster"), lb("idle", port=31001)]
    slices = [eps("web", ("10.244.1.2", "node-1", True), ("10.244.1.3", "node-1", False),
                  ("10.244.2.2", "node-2", True))]
    assert health_checks("node-1", services, slices) == {
        31000: HealthCheck("default", "web", 31000, 1),
        31001: HealthCheck("default", "idle", 31001, 0)}
    assert health_checks("node-3", services, slices)[31000].local_endpoints == 0


def test_responses() -> None:
    ok, body = HealthCheck("default", "web", 31000, 2).response()
    assert ok == 200
    assert body == (b'{"service": {"namespace": "default", "name": "web"}, '
                    b'"localEndpoints": 2, "serviceProxyHealthy": true}')
    assert HealthCheck("default", "web", 31000, 0).response()[0] == 503
