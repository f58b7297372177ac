"""UDP conntrack cleanup plans (pure)."""

from __future__ import annotations

import pytest

from svcnet.proxy.conntrack import Deletion, Frontend, plan_cleanup, udp_frontends
from tests.unit.proxy.builders import endpoint, make_service, make_slice, node_port_service, port


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param({("10.96.0.10", 53): frozenset({"10.244.1.5", "10.244.2.6"})},
                     {("10.96.0.10", 53): frozenset({"10.244.2.6"})},
                     [Deletion(("10.96.0.10", 53), "10.244.1.5")], id="endpoint-removed"),
        pytest.param({("10.96.0.10", 53): frozenset({"10.244.1.5"})}, {},
                     [Deletion(("10.96.0.10", 53), None)], id="service-deleted"),
        pytest.param({("", 30053): frozenset({"10.244.1.5"})},
                     {("", 30053): frozenset({"10.244.1.5", "10.244.2.6"})}, [],
                     id="endpoint-added-nothing-stale"),
        pytest.param({}, {("10.96.0.10", 53): frozenset({"10.244.1.5"})}, [],
                     id="new-service"),
    ],
)
def test_plan_cleanup(before: dict[Frontend, frozenset[str]],
                      after: dict[Frontend, frozenset[str]], expected: list[Deletion]) -> None:
    assert plan_cleanup(before, after) == expected


def test_deletion_argv() -> None:
    assert Deletion(("10.96.0.10", 53), "10.244.1.5").argv() == [
        "-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53",
        "--reply-src", "10.244.1.5"]
    assert Deletion(("", 30053), None).argv() == ["-D", "-p", "udp", "--orig-port-dst",
                                                  "30053"]


def test_udp_frontends_only_udp_ports_with_serving_endpoints() -> None:
    dns = make_service("kube-system", "dns", "10.96.0.10",
                       ports=[port("dns", 53, "UDP"), port("dns-tcp", 53, "TCP")],
                       mutate=node_port_service)
    slices = [make_slice("kube-system", "dns",
                         [endpoint("10.244.1.5"), endpoint("10.244.2.6", ready=False)],
                         ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])]
    got = udp_frontends([dns], slices, "node-1")
    assert got == {("10.96.0.10", 53): frozenset({"10.244.1.5"}),
                   ("", 30080): frozenset({"10.244.1.5"})}
