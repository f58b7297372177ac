"""announcements: which LoadBalancer IPs a node answers ARP for (ipMode Proxy: none)."""

from __future__ import annotations

import ipaddress
from typing import Any

from svcnet.node.announcer import announcements, uplink_addresses, uplink_of

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


def test_ipv6_addresses_of_a_dual_stack_node_network_are_announced() -> None:
    six = ipaddress.IPv6Network("fd00:172:20::/64")
    services = [_lb("fd00:172:20::200", "VIP"), _lb("fd00:172:20:1::200", "VIP")]
    services[0]["status"]["loadBalancer"]["ingress"].append({"ip": "172.20.0.200"})
    # Each family's address when it lies on that family's subnet; another /64 never.
    assert announcements("n1", [SUBNET, six], services, [], [_node("n1")]) == {
        "fd00:172:20::200", "172.20.0.200"}
    assert announcements("n1", SUBNET, services, [], [_node("n1")]) == {"172.20.0.200"}


def test_uplink_addresses_of_both_families() -> None:
    lines = [
        "2: eth0    inet 172.20.0.11/24 scope global eth0",
        "2: eth0    inet 172.20.0.200/32 scope global eth0",
        "2: eth0    inet6 fd00:172:20::200/128 scope global nodad",
        "2: eth0    inet6 fd00:172:20::11/64 scope global nodad",
        "2: eth0    inet6 fe80::1/64 scope link",
    ]
    found, subnet = uplink_addresses(lines, "172.20.0.11")
    assert found == {"172.20.0.200", "fd00:172:20::200"}
    assert subnet == SUBNET
    assert uplink_addresses(lines, "fd00:172:20::11")[1] == ipaddress.IPv6Network(
        "fd00:172:20::/64")


def test_the_uplink_is_the_interface_holding_the_node_address() -> None:
    lines = [
        "1: lo    inet 127.0.0.1/8 scope host lo",
        "2: ens3    inet 10.0.0.21/24 brd 10.0.0.255 scope global ens3",
        "2: ens3    inet 10.0.0.200/32 scope global ens3",
        "5: svcnet.vx    inet 10.244.1.0/32 scope global svcnet.vx",
        "6: eth0@if9    inet6 fd00::21/64 scope global",
    ]
    assert uplink_of(lines, "10.0.0.21") == "ens3"
    assert uplink_of(lines, "fd00::21") == "eth0"
    assert uplink_of(lines, "10.0.0.22") is None
