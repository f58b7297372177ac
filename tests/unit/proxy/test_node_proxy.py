"""NodeProxy: per-key syncs from a source, UDP conntrack cleanup and programming latency per
changed Service, health; against the fake nft and a recording conntrack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from svcnet.proxy.changes import StaticSource
from svcnet.proxy.conntrack import Conntrack, Deletion
from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.fake import FakeNft
from svcnet.proxy.ruleset import build_ruleset
from svcnet.proxy.service import TRIGGER_TIME, NodeProxy, changed_key
from tests.unit.proxy.builders import NODE, endpoint, make_service, make_slice, port, slice_port

NODE_OBJ: dict[str, Any] = {
    "metadata": {"name": "node-1"},
    "status": {"addresses": [{"type": "InternalIP", "address": "172.20.0.11"}]},
}


class RecordingConntrack(Conntrack):
    def __init__(self) -> None:
        self.netns = "test"
        self.available = True
        self.deleted: list[Deletion] = []

    async def apply(self, deletions: Iterable[Deletion]) -> int:
        batch = list(deletions)
        self.deleted += batch
        return len(batch)


def dns(name: str, ip: str) -> dict[str, Any]:
    return make_service("ns", name, ip, ports=[port("dns", 53, "UDP", 5353)])


def dns_slice(name: str, ips: list[str], trigger: str | None = None, rv: str = "1"
              ) -> dict[str, Any]:
    s = make_slice("ns", name, [endpoint(ip) for ip in ips], [slice_port("dns", 5353, "UDP")])
    s["metadata"]["resourceVersion"] = rv
    if trigger is not None:
        s["metadata"]["annotations"] = {TRIGGER_TIME: trigger}
    return s


def test_changes_by_key_clear_only_their_stale_udp_flows_and_observe_latency() -> None:
    nft, conntrack = FakeNft(), RecordingConntrack()
    proxy = NodeProxy("test", runner=nft, conntrack=conntrack)
    services = [dns("a", "10.96.0.10"), dns("b", "10.96.0.11")]
    slices = [dns_slice("a", ["10.244.1.1", "10.244.1.2"]),
              dns_slice("b", ["10.244.1.3"])]
    asyncio.run(proxy.sync(StaticSource(services, slices), NODE_OBJ))
    assert proxy.last is not None and proxy.last.full and not conntrack.deleted

    # a loses an endpoint; b's slice is changed too but only a's key is named (b waits).
    just_now = datetime.fromtimestamp(time.time() - 0.25, UTC).isoformat()
    slices = [dns_slice("a", ["10.244.1.1"], trigger=just_now, rv="2"),
              dns_slice("b", [], rv="2")]
    proxy.note_queued()
    asyncio.run(proxy.sync(StaticSource(services, slices), NODE_OBJ, {"ns/a"}))
    assert proxy.last.fast and not proxy.last.full
    assert conntrack.deleted == [Deletion(("10.96.0.10", 53), "10.244.1.2")]
    samples = proxy.metrics.programming.collect()[0].samples
    count = next(s.value for s in samples if s.name.endswith("_count"))
    total = next(s.value for s in samples if s.name.endswith("_sum"))
    assert count == 1 and 0.25 <= total < 5
    assert proxy.healthy()

    # Now b's change is applied: its only endpoint's flows go.
    asyncio.run(proxy.sync(StaticSource(services, slices), NODE_OBJ, {"ns/b"}))
    assert conntrack.deleted[1:] == [Deletion(("10.96.0.11", 53), "10.244.1.3")]
    assert nft.dump() == build_ruleset(services, slices, NODE).render()

    # A deleted Service: every entry of its frontend goes.
    asyncio.run(proxy.sync(StaticSource(services[1:], slices), NODE_OBJ, {"ns/a"}))
    assert conntrack.deleted[2:] == [Deletion(("10.96.0.10", 53), None)]


def test_a_full_resync_adopts_and_compares_every_key() -> None:
    nft, conntrack = FakeNft(), RecordingConntrack()
    proxy = NodeProxy("test", runner=nft, conntrack=conntrack)
    services = [dns("a", "10.96.0.10")]
    asyncio.run(proxy.sync(StaticSource(services, [dns_slice("a", ["10.244.1.1"])]), NODE_OBJ))
    asyncio.run(proxy.sync(StaticSource(services, []), NODE_OBJ, full=True))
    assert proxy.last is not None and proxy.last.adopted and not proxy.last.full
    assert conntrack.deleted == [Deletion(("10.96.0.10", 53), "10.244.1.1")]


def test_changed_key_of_services_and_slices() -> None:
    assert changed_key(make_service("ns", "web", "10.96.0.1")) == "ns/web"
    assert changed_key(make_slice("ns", "web", [])) == "ns/web"
    orphan = make_slice("ns", "web", [])
    del orphan["metadata"]["labels"]
    assert changed_key(orphan) is None
    listed = make_slice("ns", "web", [])  # list items carry no kind
    del listed["kind"]
    assert changed_key(listed) == "ns/web"


DUAL_NODE_OBJ: dict[str, Any] = {
    "metadata": {"name": "node-1"},
    "status": {"addresses": [{"type": "InternalIP", "address": "172.20.0.11"},
                             {"type": "InternalIP", "address": "fd00:172:20::11"}]},
}


def test_dual_stack_programs_a_table_per_family_and_cleans_each_familys_flows() -> None:
    nft, conntrack = FakeNft(), RecordingConntrack()
    proxy = NodeProxy("test", runner=nft, conntrack=conntrack,
                      cluster_cidrs=("10.244.0.0/16", "fd00:10:244::/56"))
    assert set(proxy.proxiers) == {"IPv4", "IPv6"}
    svc = dns("a", "10.96.0.10")
    svc["spec"]["clusterIPs"] = ["10.96.0.10", "fd00:10:96::a"]
    svc["spec"]["ipFamilies"] = ["IPv4", "IPv6"]

    def six(ips: list[str], rv: str) -> dict[str, Any]:
        s = make_slice("ns", "a", [endpoint(ip) for ip in ips],
                       [slice_port("dns", 5353, "UDP")], suffix="six", address_type="IPv6")
        s["metadata"]["resourceVersion"] = rv
        return s

    slices = [dns_slice("a", ["10.244.1.1"]), six(["fd00:10:244:1::1", "fd00:10:244:1::2"], "1")]
    asyncio.run(proxy.sync(StaticSource([svc], slices), DUAL_NODE_OBJ))
    assert proxy.results["IPv4"].full and proxy.results["IPv6"].full
    v4 = build_ruleset([svc], slices, NODE)
    v6 = build_ruleset([svc], slices, NODE, proxy.proxiers["IPv6"].config)
    assert v6.table.ref == "ip6 svcnet"
    assert "fd00:10:96::a . udp . 53 . 1 : fd00:10:244:1::2 . 5353" in v6.render()
    assert nft.dump() == v4.render() + build_ruleset(
        [svc], slices, NodeInfo("node-1", ("fd00:172:20::11",)),
        proxy.proxiers["IPv6"].config).render()

    # An IPv6 endpoint goes: only the ip6 table changes (incrementally), and only its flows
    # (conntrack -f ipv6) are deleted.
    slices[1] = six(["fd00:10:244:1::1"], "2")
    asyncio.run(proxy.sync(StaticSource([svc], slices), DUAL_NODE_OBJ, {"ns/a"}))
    assert not proxy.results["IPv4"].changed
    assert proxy.results["IPv6"].fast and not proxy.results["IPv6"].full
    assert conntrack.deleted == [Deletion(("fd00:10:96::a", 53), "fd00:10:244:1::2", "IPv6")]
    assert conntrack.deleted[0].argv()[:3] == ["-D", "-f", "ipv6"]

    # The Service goes: each family's frontend is flushed in its own family.
    asyncio.run(proxy.sync(StaticSource([], slices), DUAL_NODE_OBJ, {"ns/a"}))
    assert conntrack.deleted[1:] == [Deletion(("10.96.0.10", 53), None, "IPv4"),
                                     Deletion(("fd00:10:96::a", 53), None, "IPv6")]


def test_ipv6_single_stack_programs_only_the_ip6_table() -> None:
    nft = FakeNft()
    proxy = NodeProxy("test", runner=nft, conntrack=RecordingConntrack(),
                      cluster_cidrs=("fd00:10:244::/56",))
    assert list(proxy.proxiers) == ["IPv6"]
    assert proxy.proxier.config.family == "IPv6"
    # IPv6 first when the flag says so (the primary family's proxier is ``proxier``).
    assert list(NodeProxy("t", runner=FakeNft(), conntrack=RecordingConntrack(),
                          cluster_cidrs=("fd00:10:244::/56", "10.244.0.0/16")).proxiers) == [
        "IPv6", "IPv4"]
    svc = dns("a", "fd00:10:96::a")
    svc["spec"]["ipFamilies"] = ["IPv6"]
    slices = [make_slice("ns", "a", [endpoint("fd00:10:244:1::5")],
                         [slice_port("dns", 5353, "UDP")], address_type="IPv6")]
    node = {"metadata": {"name": "node-1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "fd00:172:20::11"}]}}
    asyncio.run(proxy.sync(StaticSource([svc], slices), node))
    v6 = build_ruleset([svc], slices, NodeInfo("node-1", ("fd00:172:20::11",)),
                       proxy.proxier.config)
    assert "fd00:10:96::a . udp . 53" in v6.render() and "fd00:10:244:1::5" in v6.render()
    assert nft.dump() == v6.render()
    assert "table ip svcnet" not in nft.dump()
