"""announcements: which LoadBalancer IPs a node answers ARP for (ipMode Proxy: none)."""

from __future__ import annotations

import ipaddress
from typing import Any

from svcnet.node.announcer import announcements

SUBNET = ipaddress.IPv4Network("172.20.0.0/24")


def _node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def _lb(ip: str, mode: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": f"svc-{mode}"},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": mode}]}}}


def test_proxy_mode_addresses_are_never_announced() -> None:
    services = [_lb("172.20.0.200", "VIP"), _lb("172.20.0.201", "Proxy")]
    # One node: it wins every address it may announce.
    assert announcements("n1", SUBNET, services, [], [_node("n1")]) == {"172.20.0.200"}
