"""Store-backed allocators over the in-memory reference store.

Two StoreAllocator instances over one store stand for two API servers: their caches are
independent, only the store arbitrates.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from svcnet.allocators.allocator import (
    AlreadyAllocated,
    NotInRange,
    Owner,
    RangeFull,
    StoreAllocator,
)
from svcnet.allocators.operation import Operation
from svcnet.allocators.ranges import PortRange, ServiceCIDR
from svcnet.storage.memory import MemoryStore
from tests.waiting import LoopTurns

A = Owner("default", "a", "uid-a")
B = Owner("default", "b", "uid-b")


async def test_requested_and_next() -> None:
    store = MemoryStore()
    alloc = StoreAllocator(store, ServiceCIDR.parse("10.96.0.0/24"), rng=random.Random(3))
    await alloc.allocate("10.96.0.1", A)
    with pytest.raises(AlreadyAllocated, match=r"^provided IP is already allocated$"):
        await alloc.allocate("10.96.0.1", B)
    with pytest.raises(NotInRange) as e:
        await alloc.allocate("10.97.0.1", B)
    assert str(e.value) == ("the provided IP (10.97.0.1) is not in the valid range. "
                            "The range of valid IPs is 10.96.0.0/24")
    ip = await alloc.allocate_next(B)
    assert alloc.range.offset_of(ip) is not None
    assert alloc.range.offset_of(ip) >= 16, "dynamic band first"  # type: ignore[operator]
    got = await alloc.get(ip)
    assert got is not None and got.owner == B


async def test_port_messages() -> None:
    alloc = StoreAllocator(MemoryStore(), PortRange())
    with pytest.raises(NotInRange) as e:
        await alloc.allocate("29999", A)
    assert str(e.value) == ("provided port is not in the valid range. "
                            "The range of valid ports is 30000-32767")
    await alloc.allocate("30080", A)
    with pytest.raises(AlreadyAllocated, match=r"^provided port is already allocated$"):
        await alloc.allocate("30080", B)


async def test_release_checks_owner() -> None:
    alloc = StoreAllocator(MemoryStore(), PortRange())
    await alloc.allocate("30080", A)
    assert not await alloc.release("30080", B), "someone else's allocation stays"
    assert await alloc.get("30080") is not None
    assert await alloc.release("30080", A)
    assert await alloc.get("30080") is None
    assert not await alloc.release("30080", A), "second release is a no-op"


async def test_exhaustion_then_release_across_instances() -> None:
    store = MemoryStore()
    cidr = ServiceCIDR.parse("10.0.0.0/29")  # 6 usable, no static band
    one = StoreAllocator(store, cidr, rng=random.Random(1))
    two = StoreAllocator(store, cidr, rng=random.Random(1))  # same random sequence on purpose
    got = [await one.allocate_next(A) for _ in range(3)] + [
        await two.allocate_next(B) for _ in range(3)]
    assert len(set(got)) == 6, "two caches, one store: no item twice"
    with pytest.raises(RangeFull):
        await one.allocate_next(A)
    assert await two.release(got[0], A)
    # one's cache still believes got[0] is taken; a full cache is re-read before giving up.
    assert await one.allocate_next(A) == got[0]


async def test_concurrent_allocators_never_share() -> None:
    store = MemoryStore()
    ports = PortRange(30000, 30199)
    allocs = [StoreAllocator(store, ports, rng=random.Random(0)) for _ in range(4)]

    async def grab(a: StoreAllocator, n: int) -> list[str]:
        return [await a.allocate_next(Owner("ns", f"s{n}-{i}")) for i in range(50)]

    results = await asyncio.gather(*(grab(a, i) for i, a in enumerate(allocs)))
    flat = [p for r in results for p in r]
    assert len(flat) == 200 and len(set(flat)) == 200
    with pytest.raises(RangeFull):
        await allocs[0].allocate_next(A)


@pytest.mark.parametrize("success", [True, False], ids=["commit", "rollback"])
async def test_operation(success: bool) -> None:
    alloc = StoreAllocator(MemoryStore(), PortRange())
    await alloc.allocate("30001", A)
    op = Operation()
    await op.allocate(alloc, "30002", A)
    op.release_after_commit(alloc, "30001", A)
    await op.finish(success)
    held = {a.item for a in await alloc.list()}
    assert held == ({"30002"} if success else {"30001"})


async def test_dry_run_operation_leaves_nothing() -> None:
    alloc = StoreAllocator(MemoryStore(), PortRange())
    await alloc.allocate("30001", A)
    op = Operation(dry_run=True)
    await op.allocate(alloc, "30002", A)
    op.release_after_commit(alloc, "30001", A)
    await op.finish(True)
    assert {a.item for a in await alloc.list()} == {"30001"}


async def test_reading_every_record_gives_the_loop_turns() -> None:
    """The repair reads every record (10k ClusterIPs: a few hundred ms of decoding); the
    event loop, which serves requests, gets a turn every aio.TURN_EVERY records."""
    alloc = StoreAllocator(MemoryStore(), PortRange())
    for i in range(30000, 31200):
        await alloc.allocate(str(i), Owner("ns", f"s{i}"))
    async with LoopTurns() as turns:
        before = turns.count
        records = await alloc.list()
        listed = turns.count - before
        before = turns.count
        await alloc.refresh()
        refreshed = turns.count - before
    assert len(records) == 1200 and await alloc.free() == PortRange().size - 1200
    assert listed >= 2 and refreshed >= 2, (listed, refreshed)  # 1,200 records: 2 turns
