"""DNSService: informer events → debounced, incremental zone updates.

The informers are :class:`StaticSource` fakes fed by hand and the debounce runs on a
:class:`FakeClock`, so the tests decide exactly when a debounce period ends; ``settle`` lets the
zone task run until it blocks again.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from svcnet.dns.records import Rcode, RType, Zone, answer, build_zone
from svcnet.dns.service import DNSService, StaticSource, kube_dns_service
from svcnet.util.clock import FakeClock
from tests.unit.dns.world import Obj, cluster_ip, endpoint_slice, ep, headless, world

SVC = "default.svc.cluster.local."


@dataclass
class Harness:
    services: StaticSource
    slices: StaticSource
    clock: FakeClock
    dns: DNSService
    zones: list[Zone] = field(default_factory=list)

    @property
    def zone(self) -> Zone:
        return self.zones[-1]

    def addresses(self, name: str, rtype: RType = RType.A) -> list[str]:
        got = answer(self.zone, name, rtype)
        return [getattr(r.data, "address", "") for r in got.answers]

    async def tick(self) -> None:
        """End the debounce period and let the update run."""
        await settle()
        self.clock.advance(self.dns.debounce)
        await settle()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    svcs, sls = world()
    services, slices, clock = StaticSource(svcs), StaticSource(sls), FakeClock()
    zones: list[Zone] = []
    dns = DNSService(services, slices, zones.append, clock=clock)
    harness = Harness(services, slices, clock, dns, zones)
    dns.start()
    await settle()
    yield harness
    await harness.dns.stop()


async def test_nothing_is_published_until_both_sources_sync() -> None:
    services, slices = StaticSource(), StaticSource()
    zones: list[Zone] = []
    dns = DNSService(services, slices, zones.append, clock=FakeClock())
    try:
        dns.start()
        await settle()
        assert len(zones) == 1  # StaticSource syncs on start: both at once
        assert dns.published.is_set() and dns.has_synced()
    finally:
        await dns.stop()

    class Slow(StaticSource):
        def start(self) -> None:
            pass  # never syncs

    zones.clear()
    dns = DNSService(StaticSource(), Slow(), zones.append, clock=FakeClock())
    try:
        dns.start()
        await settle()
        assert zones == [] and not dns.published.is_set() and not dns.has_synced()
    finally:
        await dns.stop()


async def test_first_zone_is_the_whole_world(h: Harness) -> None:
    services, slices = world()
    assert len(h.zones) == 1
    want = build_zone(services, slices, serial=h.zone.serial)
    assert dict(h.zone.rrsets) == dict(want.rrsets)
    assert set(h.zone.names) == set(want.names)
    assert h.dns.stats.services == len(services)


async def test_changes_are_debounced_into_one_update(h: Harness) -> None:
    for i in range(5):
        h.services.put(cluster_ip("default", f"new{i}", f"10.96.5.{i + 1}"))
    await settle()
    assert len(h.zones) == 1  # still waiting out the debounce period
    await h.tick()
    assert len(h.zones) == 2
    assert h.dns.stats.last_changed == 5
    assert h.addresses(f"new4.{SVC}") == ["10.96.5.5"]
    assert h.zone.serial == h.zones[0].serial + 1


async def test_service_update_and_delete(h: Harness) -> None:
    h.services.put(cluster_ip("default", "web", "10.96.0.99"))
    await h.tick()
    assert h.addresses(f"web.{SVC}") == ["10.96.0.99"]
    h.services.delete("default/web")
    await h.tick()
    assert answer(h.zone, f"web.{SVC}", RType.A).rcode == Rcode.NXDOMAIN
    assert answer(h.zone, "99.0.96.10.in-addr.arpa.", RType.PTR).in_zone is False


async def test_endpoint_changes_reach_headless_records(h: Harness) -> None:
    assert answer(h.zone, f"empty.{SVC}", RType.A).rcode == Rcode.NXDOMAIN
    h.slices.put(endpoint_slice("default", "empty", "empty-1",
                                [ep("10.244.8.1", hostname="e-0")]))
    await h.tick()
    assert h.addresses(f"empty.{SVC}") == ["10.244.8.1"]
    assert h.addresses(f"e-0.empty.{SVC}") == ["10.244.8.1"]
    # The pod stops being ready: gone from DNS.
    h.slices.put(endpoint_slice("default", "empty", "empty-1",
                                [ep("10.244.8.1", hostname="e-0", ready=False)]))
    await h.tick()
    assert answer(h.zone, f"empty.{SVC}", RType.A).rcode == Rcode.NXDOMAIN
    h.slices.delete("default/empty-1")
    await h.tick()
    assert answer(h.zone, f"empty.{SVC}", RType.A).rcode == Rcode.NXDOMAIN


async def test_relabelled_slice_moves_between_services(h: Harness) -> None:
    moved = copy.deepcopy(h.slices.indexer.get("default/notready-abcde"))
    assert moved is not None
    moved["metadata"]["labels"]["kubernetes.io/service-name"] = "empty"
    moved["endpoints"] = [ep("10.244.3.1")]
    h.slices.put(moved)
    await h.tick()
    assert h.addresses(f"empty.{SVC}") == ["10.244.3.1"]
    assert answer(h.zone, f"notready.{SVC}", RType.A).rcode == Rcode.NXDOMAIN
    assert h.dns.stats.last_changed == 2  # both Services were recomputed


async def test_resync_of_unchanged_objects_does_not_rebuild(h: Harness) -> None:
    obj = h.services.indexer.get("default/web")
    assert obj is not None
    for handler in h.services._handlers:
        assert handler.on_update is not None
        handler.on_update(obj, obj)  # what an informer's periodic resync delivers
    await h.tick()
    assert len(h.zones) == 1


async def test_failed_update_keeps_the_old_zone_and_recovers(h: Harness) -> None:
    bad: Obj = {"metadata": {"namespace": "default", "name": "bad"}, "spec": "not an object"}
    h.services.put(bad)
    await h.tick()
    assert len(h.zones) == 1 and h.dns.stats.failures == 1
    h.services.put(cluster_ip("default", "bad", "10.96.0.55"))
    await h.tick()
    assert len(h.zones) == 2
    assert h.addresses(f"bad.{SVC}") == ["10.96.0.55"]
    assert h.addresses(f"web.{SVC}") == ["10.96.0.11"]  # rebuilt from scratch: all still there


async def test_incremental_zone_matches_a_full_build_after_many_changes(h: Harness) -> None:
    for i in range(30):
        h.services.put(headless("default", f"h{i % 7}"))
        h.slices.put(endpoint_slice("default", f"h{i % 7}", f"h{i % 7}-s{i % 3}",
                                    [ep(f"10.244.20.{i}", hostname=f"p{i % 2}")]))
        if i % 5 == 0:
            h.services.delete(f"default/h{(i + 3) % 7}")
        if i % 4 == 0:
            await h.tick()
    await h.tick()
    want = build_zone(h.services.list(), h.slices.list(), serial=h.zone.serial)
    assert dict(h.zone.rrsets) == dict(want.rrsets)
    assert set(h.zone.names) == set(want.names)


async def test_big_batches_are_built_off_the_event_loop() -> None:
    services = [cluster_ip("bulk", f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}")
                for i in range(40)]
    zones: list[Zone] = []
    dns = DNSService(StaticSource(services), StaticSource(), zones.append,
                     thread_threshold=10)
    try:
        dns.start()
        await until(lambda: bool(zones))
        assert answer(zones[0], "s39.bulk.svc.cluster.local.", RType.A).answers
        assert dns.stats.last_changed == 40
    finally:
        await dns.stop()


def test_kube_dns_service_manifest() -> None:
    svc = kube_dns_service()
    assert svc["metadata"] == {"name": "kube-dns", "namespace": "kube-system",
                               "labels": {"k8s-app": "kube-dns",
                                          "kubernetes.io/name": "CoreDNS",
                                          "kubernetes.io/cluster-service": "true"}}
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    assert "selector" not in svc["spec"]
    assert kube_dns_service("10.43.0.10", selector={"app": "dns"})["spec"]["selector"] == {
        "app": "dns"}
    # Its own zone names the server: ns.dns.<zone> → the Service's address.
    z = build_zone([svc], [])
    assert [getattr(r.data, "address", "") for r in
            answer(z, "ns.dns.cluster.local", RType.A).answers] == ["10.96.0.10"]
