"""Reading the backends maps' counters (svcnet.proxy.counters)."""

from __future__ import annotations

import json

from svcnet.proxy.counters import counter_rows, parse_map_counters


def listing(*elements: tuple[list[object], list[object], int | None]) -> str:
    elem = []
    for key, value, packets in elements:
        inner: dict[str, object] = {"val": {"concat": key}}
        if packets is not None:
            inner["counter"] = {"packets": packets, "bytes": packets * 60}
        elem.append([{"elem": inner}, {"concat": value}])
    return json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"map": {"family": "ip", "name": "backends", "table": "svcnet",
                 "map": "ipv4_addr . inet_service", "elem": elem,
                 "stmt": [{"counter": None}]}}]})


def test_slots_of_one_endpoint_fold_together_and_uncounted_elements_are_skipped() -> None:
    text = listing((["10.96.0.10", "udp", 53, 0], ["10.244.1.2", 53], 4),
                   (["10.96.0.10", "udp", 53, 1], ["10.244.1.2", 53], 1),
                   (["10.96.0.10", "udp", 53, 2], ["10.244.2.2", 53], 0),
                   (["172.20.0.11", "tcp", 30080, 0], ["10.244.2.2", 8080], None))
    assert parse_map_counters(text) == {
        ("10.96.0.10", "udp", "53", "10.244.1.2", "53"): 5,
        ("10.96.0.10", "udp", "53", "10.244.2.2", "53"): 0}


def test_rows_sum_the_maps_and_sort() -> None:
    a = listing((["10.96.0.20", "tcp", 80, 0], ["10.244.1.3", 8080], 2))
    b = listing((["10.96.0.20", "tcp", 80, 0], ["10.244.1.3", 8080], 3),
                (["10.96.0.1", "tcp", 443, 0], ["172.20.0.1", 6443], 1))
    assert counter_rows([a, b]) == [["10.96.0.1", "tcp", "443", "172.20.0.1", "6443", 1],
                                    ["10.96.0.20", "tcp", "80", "10.244.1.3", "8080", 5]]
    assert counter_rows([json.dumps({"nftables": []})]) == []


def test_the_switch_declares_the_counters_and_changes_the_layout() -> None:
    from svcnet.proxy.model import NodeInfo
    from svcnet.proxy.ruleset import BACKENDS, LOCAL_BACKENDS, ProxyConfig, build_ruleset

    node = NodeInfo("node-1", ("172.20.0.11",), None)
    on = build_ruleset([], [], node, ProxyConfig())
    off = build_ruleset([], [], node, ProxyConfig(traffic_counters=False))
    for name in (BACKENDS, LOCAL_BACKENDS):
        assert on.set_by_name[name].counter and not off.set_by_name[name].counter
    assert "\t\tcounter\n" in on.render() and "\t\tcounter\n" not in off.render()
    # The fingerprint in nat-prerouting differs: switching re-creates the table.
    assert on.chain_by_name["nat-prerouting"] != off.chain_by_name["nat-prerouting"]
