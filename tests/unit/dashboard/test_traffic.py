"""Counter samples to rates, and rates to Services (svcnet.dashboard.traffic)."""

from __future__ import annotations

import pytest

from svcnet.dashboard.traffic import (
    RateTracker,
    frontend_owners,
    parse_sample,
    rates_between,
    service_rates,
)

K1 = ("10.96.0.20", "tcp", "80", "10.244.1.3", "8080")
K2 = ("10.96.0.20", "tcp", "80", "10.244.2.3", "8080")


def test_parse_sample_sums_rows_and_skips_bad_ones() -> None:
    doc = {"connections": [[*K1, 3], [*K1, 2], ["x", "tcp"], [*K2, "7"], "junk"]}
    assert parse_sample(doc) == {K1: 5}
    assert parse_sample({}) == {}


def test_rates_between_treats_a_counter_that_went_down_as_restarted() -> None:
    assert rates_between({K1: 10, K2: 50}, {K1: 30, K2: 4}, 2.0) == {K1: 10.0, K2: 2.0}
    assert rates_between({}, {K1: 6}, 3.0) == {K1: 2.0}  # new element: counted from zero
    assert rates_between({K1: 1}, {K1: 2}, 0) == {}


def test_tracker_needs_two_samples_and_sums_nodes() -> None:
    t = RateTracker()
    t.update("node-1", 100.0, {K1: 1000})
    assert t.rates() == {}  # a first sample is only the baseline
    t.update("node-1", 102.0, {K1: 1010})
    t.update("node-2", 100.0, {K1: 0})
    t.update("node-2", 101.0, {K1: 3})
    assert t.rates() == {K1: pytest.approx(8.0)}
    t.forget(["node-2"])
    assert t.rates() == {K1: pytest.approx(3.0)}


def test_service_rates_by_frontend_owner() -> None:
    svc = {"metadata": {"namespace": "default", "name": "web"},
           "spec": {"clusterIP": "10.96.0.20", "externalIPs": ["192.0.2.1"],
                    "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "172.20.0.200"}]}}}
    nodes = [{"metadata": {"name": "node-1"},
              "status": {"addresses": [{"type": "InternalIP", "address": "172.20.0.11"}]}}]
    owners = frontend_owners([svc], nodes)
    assert set(owners) == {("10.96.0.20", "tcp", "80"), ("192.0.2.1", "tcp", "80"),
                           ("172.20.0.200", "tcp", "80"), ("172.20.0.11", "tcp", "30080")}
    rates = {K1: 1.0, ("172.20.0.11", "tcp", "30080", "10.244.1.3", "8080"): 2.0,
             ("10.96.0.99", "tcp", "80", "10.244.9.9", "80"): 5.0}
    assert service_rates(rates, owners) == {"default/web": 3.0,
                                            "default/web|10.244.1.3:8080": 3.0}
