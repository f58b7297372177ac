"""The watch cache over a real store: shared events, bounded buffers, failures, fallbacks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from svcnet.registry.generic import Registry
from svcnet.registry.watchcache import CachedEvent, WatchCache, Watcher
from svcnet.storage.interface import (
    Compacted,
    EventType,
    KeyValue,
    Unavailable,
    WatchClosed,
    WatchEvent,
)
from svcnet.storage.memory import MemoryStore

PREFIX = "/registry/things/"


def thing(name: str, n: int = 0) -> bytes:
    return Registry.encode({"apiVersion": "v1", "kind": "Thing",
                            "metadata": {"name": name, "namespace": "ns"}, "spec": {"n": n}})


async def collect(watcher: Watcher, count: int) -> list[CachedEvent]:
    """The next ``count`` events (the pump hands them over as it gets to them)."""
    events: list[CachedEvent] = []
    while len(events) < count:
        batch = await watcher.next_batch(5)
        assert batch, f"only {len(events)} of {count} events came"
        events += batch
    return events


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    s = MemoryStore()
    yield s
    await s.close()


def cache_of(store: MemoryStore, **kw: Any) -> WatchCache:
    return WatchCache(store, PREFIX, Registry.decode, **kw)


async def write(store: MemoryStore, count: int, name: str = "a") -> list[KeyValue]:
    key = f"{PREFIX}ns/{name}"
    current = await store.get(key)
    out = []
    for i in range(count):
        if current is None:
            current = await store.create(key, thing(name, i))
        else:
            current = await store.update(key, thing(name, i), current.mod_revision)
        out.append(current)
    return out


async def test_every_watcher_gets_the_same_event_decoded_and_serialized_once(
        store: MemoryStore) -> None:
    cache = cache_of(store)
    one = await cache.watch(PREFIX, 0)
    two = await cache.watch(f"{PREFIX}ns/", 0)
    (written,) = await write(store, 1)
    (a,) = await one.next_batch(5)
    (b,) = await two.next_batch(5)
    assert a is b
    assert a.obj is b.obj and a.line("ADDED") is b.line("ADDED")
    assert json.loads(a.line("ADDED")) == {"type": "ADDED", "object": Registry.decode(written)}
    assert a.obj["metadata"]["resourceVersion"] == str(written.mod_revision)
    one.close()
    two.close()


async def test_a_watcher_only_sees_its_prefix_and_revisions_after_its_start(
        store: MemoryStore) -> None:
    cache = cache_of(store)
    everything = await cache.watch(PREFIX, 0)
    first = await write(store, 2, "a")
    await write(store, 1, "b")
    later = await cache.watch(f"{PREFIX}ns/a", first[0].mod_revision)  # served from the ring
    seen = [e.key for e in await collect(everything, 3)]
    assert seen == [f"{PREFIX}ns/a", f"{PREFIX}ns/a", f"{PREFIX}ns/b"]
    assert [e.revision for e in await collect(later, 1)] == [first[1].mod_revision]
    assert await later.next_batch(0.1) == []
    everything.close()
    later.close()


async def test_a_watcher_that_falls_behind_is_terminated_and_frees_its_buffer(
        store: MemoryStore) -> None:
    cache = cache_of(store, history=4, buffer=4)
    slow = await cache.watch(PREFIX, 0)
    fast = await cache.watch(PREFIX, 0)
    for _ in range(3):
        await write(store, 2)
        await collect(fast, 2)
    with pytest.raises(WatchClosed, match="fell more than 4 events behind"):
        await slow.next_batch(5)
    assert cache.watcher_count == 1
    fast.close()


async def test_the_store_watch_stops_when_the_last_watcher_leaves(store: MemoryStore) -> None:
    cache = cache_of(store)
    watchers = [await cache.watch(PREFIX, 0) for _ in range(3)]
    await write(store, 1)
    await collect(watchers[0], 1)
    assert store._broadcaster.subscriber_count == 1  # one store watch for all three
    for w in watchers:
        w.close()
    await write(store, 1)  # lets the cancelled pump finish
    assert cache.watcher_count == 0
    assert store._broadcaster.subscriber_count == 0


async def test_a_start_older_than_the_ring_is_replayed_from_the_store_at_the_clients_pace(
        store: MemoryStore) -> None:
    old = await write(store, 1)
    cache = cache_of(store, history=2, buffer=2)
    keep = await cache.watch(PREFIX, 0)  # the cache's window starts now
    await write(store, 6)
    direct = await cache.watch(PREFIX, old[0].mod_revision)
    revisions: list[int] = []
    while len(revisions) < 6:
        revisions += [e.revision for e in await direct.next_batch(5)]  # never terminated
    assert revisions == list(range(old[0].mod_revision + 1, old[0].mod_revision + 7))
    direct.close()
    keep.close()


async def test_a_start_older_than_the_ring_and_compacted_raises_compacted(
        store: MemoryStore) -> None:
    old = await write(store, 3)
    await store.compact(old[-1].mod_revision)
    cache = cache_of(store)
    watcher = await cache.watch(PREFIX, old[0].mod_revision)
    with pytest.raises(Compacted):
        await watcher.next_batch(5)
    watcher.close()


class FailingStore(MemoryStore):
    fail: Exception | None = None

    async def watch(self, prefix: str, after_revision: int,  # type: ignore[override]
                    ) -> AsyncIterator[WatchEvent]:
        async for event in super().watch(prefix, after_revision):
            if self.fail is not None:
                raise self.fail
            yield event


async def test_a_store_failure_reaches_every_watcher_after_the_events_before_it() -> None:
    store = FailingStore()
    cache = WatchCache(store, PREFIX, Registry.decode)
    watchers = [await cache.watch(PREFIX, 0) for _ in range(2)]
    await write(store, 1)
    for w in watchers:
        await collect(w, 1)
    store.fail = Unavailable("etcd is unreachable")
    await write(store, 1)
    for w in watchers:
        with pytest.raises(Unavailable):
            await w.next_batch(5)
    store.fail = None
    # The next store watch resumes where the failed one stopped: "now" for the cache is the
    # last event it had, so the event written during the outage comes first.
    again = await cache.watch(PREFIX, 0)
    (written,) = await write(store, 1)
    assert [e.revision for e in await collect(again, 2)] == [written.mod_revision - 1,
                                                            written.mod_revision]
    again.close()
    await store.close()


async def test_cache_start_failure_is_raised_by_watch() -> None:
    class Down(MemoryStore):
        async def current_revision(self) -> int:
            raise Unavailable("etcd is unreachable")

    store = Down()
    with pytest.raises(Unavailable):
        await WatchCache(store, PREFIX, Registry.decode).watch(PREFIX, 5)
    await store.close()


def test_cached_event_decodes_lazily_and_once() -> None:
    calls = []

    def decode(kv: KeyValue) -> dict[str, Any]:
        calls.append(kv.mod_revision)
        return Registry.decode(kv)

    kv = KeyValue(f"{PREFIX}ns/a", thing("a"), 7, 7)
    event = CachedEvent(WatchEvent(EventType.ADDED, kv, None), decode)
    event.line("ADDED")
    assert calls == []  # serializing needs no decode
    assert event.obj is event.obj
    assert calls == [7]


def test_a_cache_used_again_under_a_new_event_loop_starts_a_new_store_watch() -> None:
    store = MemoryStore()
    cache = cache_of(store)

    async def first() -> None:
        await cache.watch(PREFIX, 0)  # never closed: its loop ends under it

    async def second() -> int:
        watcher = await cache.watch(PREFIX, 0)
        (written,) = await write(store, 1)
        (event,) = await collect(watcher, 1)
        watcher.close()
        assert event.revision == written.mod_revision
        return cache.watcher_count

    asyncio.run(first())
    assert asyncio.run(second()) == 0


async def test_events_replayed_on_joining_do_not_count_against_the_buffer(
        store: MemoryStore) -> None:
    """A watcher resuming from the oldest event in the ring gets the whole ring, and the next
    event must not cut it loose for "falling behind" before it could read anything (it would
    re-watch from the same revision and be cut loose again, over and over)."""
    cache = cache_of(store, history=8, buffer=8)
    keeper = await cache.watch(PREFIX, 0)
    written = await write(store, 9)
    await collect(keeper, 9)
    resumed = await cache.watch(PREFIX, written[0].mod_revision)  # 8 events to replay
    (last,) = await write(store, 1, name="b")
    await asyncio.sleep(0.05)  # the pump offers it before the watcher reads anything
    events = await collect(resumed, 9)
    assert events[-1].revision == last.mod_revision
    keeper.close()
    resumed.close()


async def test_after_a_store_failure_the_cache_resumes_where_it_stopped() -> None:
    """Clients re-watch from the last revision they saw: the cache's next store watch resumes
    where the failed one stopped, so they are served from the ring rather than each getting a
    store watch of its own."""
    store = FailingStore()
    cache = WatchCache(store, PREFIX, Registry.decode)
    watcher = await cache.watch(PREFIX, 0)
    (seen,) = await write(store, 1)
    await collect(watcher, 1)
    store.fail = Unavailable("etcd is unreachable")
    await write(store, 1)
    with pytest.raises(Unavailable):
        await watcher.next_batch(5)
    store.fail = None
    missed = await store.list(PREFIX)
    again = await cache.watch(PREFIX, seen.mod_revision)
    assert cache.watcher_count == 1, "served by the cache, not by a store watch of its own"
    events = await collect(again, 1)
    assert [e.revision for e in events] == [missed.revision]
    again.close()
    await store.close()
