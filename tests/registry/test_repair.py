"""Repair: leaks released after a grace period, missing records restored, duplicates reported."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from svcnet.allocators.allocator import Holder, Owner
from svcnet.registry import repair as repair_module
from svcnet.registry.repair import plan_repair, repair
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock


def stored_service(name: str, ip: str, node_port: int = 0) -> bytes:
    port: dict[str, object] = {"name": "http", "port": 80, "protocol": "TCP"}
    if node_port:
        port["nodePort"] = node_port
    return json.dumps({"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}"},
                       "spec": {"type": "NodePort" if node_port else "ClusterIP",
                                "clusterIP": ip, "clusterIPs": [ip], "ports": [port]}}).encode()


async def test_leak_released_only_after_grace() -> None:
    clock = FakeClock()
    store = MemoryStore()
    allocs = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099", clock=clock)
    await allocs.node_ports.allocate("30050", Owner("default", "never-written"))
    result = await repair(store, allocs, clock=clock, leak_grace=timedelta(seconds=60))
    assert result.released == [], "a young allocation may belong to a create in flight"
    clock.advance(61)
    result = await repair(store, allocs, clock=clock, leak_grace=timedelta(seconds=60))
    assert result.released == ["nodeport/30050"]
    assert await allocs.node_ports.list() == []


async def test_missing_records_restored_and_duplicates_reported() -> None:
    clock = FakeClock()
    store = MemoryStore()
    allocs = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099", clock=clock)
    # Services written without allocation records (e.g. by an older version), two sharing an IP.
    await store.create("/registry/services/default/a", stored_service("a", "10.96.0.20", 30020))
    await store.create("/registry/services/default/b", stored_service("b", "10.96.0.20"))
    await store.create("/registry/services/default/c", stored_service("c", "10.99.0.1"))
    result = await repair(store, allocs, clock=clock, leak_grace=timedelta(0))
    assert sorted(result.created) == ["clusterip/10.96.0.20", "nodeport/30020"]
    reasons = sorted((e.name, e.reason) for e in result.events)
    assert reasons == [("a", "ClusterIPNotAllocated"), ("a", "PortNotAllocated"),
                       ("b", "ClusterIPAlreadyAllocated"), ("c", "ClusterIPOutOfRange")]
    again = await repair(store, allocs, clock=clock, leak_grace=timedelta(0))
    assert (again.created, again.released) == ([], [])
    # The restored record protects the IP from being handed out again.
    got = await allocs.cluster_ips["IPv4"][0].get("10.96.0.20")
    assert got is not None and got.owner.name == "a"


async def test_leaks_of_this_servers_previous_instance_are_freed_at_once() -> None:
    clock = FakeClock()
    store = MemoryStore()
    before_crash = Holder("server-a", "instance-1")
    old = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099", clock=clock,
                                  holder=before_crash)
    other = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099", clock=clock,
                                    holder=Holder("server-b", "instance-9"))
    legacy = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099", clock=clock)
    await old.node_ports.allocate("30001", Owner("default", "never-written"))
    await old.cluster_ips["IPv4"][0].allocate("10.96.0.7", Owner("default", "never-written"))
    await other.node_ports.allocate("30002", Owner("default", "in-flight-elsewhere"))
    await legacy.node_ports.allocate("30003", Owner("default", "unknown-maker"))
    record = await old.node_ports.get("30001")
    assert record is not None and record.holder == before_crash

    # The same server starts again (a new instance), moments after the crash.
    clock.advance(1)
    restarted = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099", clock=clock,
                                        holder=Holder("server-a", "instance-2"))
    result = await repair(store, restarted, clock=clock, leak_grace=timedelta(minutes=3),
                          holder=Holder("server-a", "instance-2"))
    assert sorted(result.released) == ["clusterip/10.96.0.7", "nodeport/30001"]
    # Another server's young allocation, and one that names no maker, keep their grace.
    assert sorted(a.item for a in await restarted.node_ports.list()) == ["30002", "30003"]


async def test_young_allocations_of_the_running_instance_keep_their_grace() -> None:
    clock = FakeClock()
    store = MemoryStore()
    me = Holder("server-a", "instance-1")
    allocs = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099", clock=clock,
                                     holder=me)
    await allocs.node_ports.allocate("30001", Owner("default", "being-created"))
    result = await repair(store, allocs, clock=clock, leak_grace=timedelta(minutes=3),
                          holder=me)
    assert result.released == []


async def test_a_service_spelling_its_ip_another_way_still_holds_it() -> None:
    """A Service may store a ClusterIP non-canonically (IPv6 upper case, leading zeros): its
    record is named canonically, and repair must see that the Service holds it (else it
    would free the address, and another server could hand it out again)."""
    clock = FakeClock()
    store = MemoryStore()
    allocs = ServiceAllocators.build(store, ["fd00:10::/120"], "30000-30099", clock=clock)
    await allocs.cluster_ips["IPv6"][0].allocate("fd00:10::5", Owner("default", "v6", "u-v6"))
    await store.create("/registry/services/default/v6", stored_service("v6", "FD00:10::0005"))
    clock.advance(3600)
    result = await repair(store, allocs, clock=clock, leak_grace=timedelta(0))
    assert (result.created, result.released, result.events) == ([], [], [])
    got = await allocs.cluster_ips["IPv6"][0].get("fd00:10::5")
    assert got is not None and got.owner.name == "v6"


async def test_dual_stack_records_repaired_per_family() -> None:
    """A dual-stack Service's IPv6 address (spelled uncanonically, in a whole /64) is restored
    like its IPv4 one; an IPv6 leak is released after the grace."""
    clock = FakeClock()
    store = MemoryStore()
    allocs = ServiceAllocators.build(store, ["10.96.0.0/24", "fd00:10:96::/64"], "30000-30099",
                                     clock=clock)
    svc = json.loads(stored_service("d", "10.96.0.30"))
    svc["spec"].update(clusterIPs=["10.96.0.30", "FD00:10:96::0030"],
                       ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack")
    await store.create("/registry/services/default/d", json.dumps(svc).encode())
    await allocs.cluster_ips["IPv6"][0].allocate("fd00:10:96:0:ffff:ffff:ffff:ffff",
                                                  Owner("default", "never-written"))
    result = await repair(store, allocs, clock=clock, leak_grace=timedelta(seconds=60))
    assert sorted(result.created) == ["clusterip/10.96.0.30", "clusterip/fd00:10:96::30"]
    clock.advance(61)
    result = await repair(store, allocs, clock=clock, leak_grace=timedelta(seconds=60))
    assert result.released == ["clusterip/fd00:10:96:0:ffff:ffff:ffff:ffff"]
    got = await allocs.cluster_ips["IPv6"][0].get("fd00:10:96::30")
    assert got is not None and got.owner.name == "d"


async def test_services_are_decoded_and_compared_off_the_event_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass over every Service is work the size of the cluster (about half a second at 10k,
    a stall of every request when it ran on the loop): it runs on the CPU thread."""
    threads: list[str] = []

    def plan(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return plan_repair(*args, **kwargs)

    monkeypatch.setattr(repair_module, "plan_repair", plan)
    store = MemoryStore()
    allocs = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099", clock=FakeClock())
    await store.create("/registry/services/default/a", stored_service("a", "10.96.0.20"))
    result = await repair(store, allocs, clock=FakeClock(), leak_grace=timedelta(0))
    assert result.created == ["clusterip/10.96.0.20"]
    assert len(threads) == 1 and threads[0] != threading.current_thread().name
    assert threads[0].startswith("svcnet-cpu")
