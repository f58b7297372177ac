"""Kubernetes' service environment variables (pkg/kubelet/envvars), as the agent injects them."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.node.agent import service_env


def svc(name: str, ns: str = "default", ip: str = "10.96.0.20",
        ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports if ports is not None else [
                {"name": "http", "port": 80, "protocol": "TCP"}]}}


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        pytest.param([svc("backend")], {
            "BACKEND_SERVICE_HOST": "10.96.0.20", "BACKEND_SERVICE_PORT": "80",
            "BACKEND_SERVICE_PORT_HTTP": "80", "BACKEND_PORT": "tcp://10.96.0.20:80",
            "BACKEND_PORT_80_TCP": "tcp://10.96.0.20:80", "BACKEND_PORT_80_TCP_PROTO": "tcp",
            "BACKEND_PORT_80_TCP_PORT": "80", "BACKEND_PORT_80_TCP_ADDR": "10.96.0.20"},
            id="one-named-port"),
        pytest.param([svc("my-db", ports=[{"port": 5432, "protocol": "TCP"},
                                          {"name": "metrics", "port": 9100, "protocol": "UDP"}])],
                     {"MY_DB_SERVICE_HOST": "10.96.0.20", "MY_DB_SERVICE_PORT": "5432",
                      "MY_DB_SERVICE_PORT_METRICS": "9100",
                      "MY_DB_PORT": "tcp://10.96.0.20:5432",
                      "MY_DB_PORT_5432_TCP": "tcp://10.96.0.20:5432",
                      "MY_DB_PORT_5432_TCP_PROTO": "tcp", "MY_DB_PORT_5432_TCP_PORT": "5432",
                      "MY_DB_PORT_5432_TCP_ADDR": "10.96.0.20",
                      "MY_DB_PORT_9100_UDP": "udp://10.96.0.20:9100",
                      "MY_DB_PORT_9100_UDP_PROTO": "udp", "MY_DB_PORT_9100_UDP_PORT": "9100",
                      "MY_DB_PORT_9100_UDP_ADDR": "10.96.0.20"},
                     id="dashes-and-two-protocols"),
        pytest.param([svc("headless", ip="None")], {}, id="headless-has-none"),
        pytest.param([svc("elsewhere", ns="other")], {}, id="other-namespace"),
        pytest.param([svc("noports", ports=[])], {}, id="no-ports"),
    ],
)
def test_service_env(services: list[dict[str, Any]], expected: dict[str, str]) -> None:
    assert service_env(services, "default") == expected
