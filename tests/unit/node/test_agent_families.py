"""What of its addresses and pod CIDRs a node agent shows the API, per IP family."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest

from svcnet.node.agent import AgentConfig, node_pod_cidrs

V4, V6 = "10.244.1.0/24", "fd00:10:244:1::/64"


def config(family: str) -> AgentConfig:
    return AgentConfig(Path("/k"), "node-1", node_ip="172.20.0.11",
                       node_ip6="fd00:172:20::11", pod_cidr=f"{V4}, {V6}", ip_family=family)


def test_node_addresses_and_pod_cidrs_per_family() -> None:
    assert config("dual").api_ips == ["172.20.0.11", "fd00:172:20::11"]
    assert config("ipv6").api_ips == ["fd00:172:20::11"]
    assert config("ipv4").api_ips == ["172.20.0.11"]
    six = config("ipv6")
    assert six.families.pick(six.given_pod_cidrs) == [V6]
    # A node given only an IPv4 address keeps it whatever the family says.
    assert AgentConfig(Path("/k"), "n", node_ip="127.0.0.1", ip_family="ipv6").api_ips == [
        "127.0.0.1"]


def test_pod_runner_subnets() -> None:
    # IPv6 single stack: the Node shows the /64 alone; the IPv4 subnet comes from the flag.
    assert node_pod_cidrs([V6], [V4, V6]) == (IPv4Network(V4), IPv6Network(V6))
    assert node_pod_cidrs([V4, V6], []) == (IPv4Network(V4), IPv6Network(V6))
    assert node_pod_cidrs([V4], [V4]) == (IPv4Network(V4), None)
    with pytest.raises(ValueError, match="needs an IPv4 --pod-cidr"):
        node_pod_cidrs([V6], [V6])
