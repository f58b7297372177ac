"""The Store contract: every backend must pass this file unchanged.

Each test takes the ``store`` fixture (or ``make_store`` when it needs options), which is
parametrised over ``BACKENDS``; adding a backend (etcd) means adding one entry there.

Conventions: keys look like ``svc/<ns>/<name>``; values are short byte strings; watches are read
through ``take()``, which fails after a timeout instead of hanging, and nothing here sleeps to
synchronise: a test that needs a task to be waiting on a watch first waits for it to receive an
event.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from svcnet.storage import open_store
from svcnet.storage.compactor import COMPACT_KEY, Compactor
from svcnet.storage.interface import (
    Compacted,
    Conflict,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    StorageError,
    Store,
    TooLarge,
    Unavailable,
    WatchClosed,
    WatchEvent,
)
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SQLiteStore
from svcnet.util.clock import FakeClock
from tests.etcd_server import EtcdServer

TIMEOUT = 5.0

Backend = Callable[[Path, int], Store]
"""(an empty directory the backend may use, watch buffer size) -> a Store."""


def _memory(_dir: Path, watch_buffer: int) -> Store:
    return MemoryStore(watch_buffer=watch_buffer)


def _sqlite(directory: Path, watch_buffer: int) -> Store:
    return SQLiteStore(directory / "state.db", watch_buffer=watch_buffer)


ETCD = EtcdServer()


@pytest.fixture(scope="module", autouse=True)
def _etcd_server() -> Iterator[None]:
    """Stops the shared test etcd (if a test started it) when this module is done."""
    try:
        yield
    finally:
        ETCD.stop()


def _etcd(_dir: Path, watch_buffer: int) -> Store:
    from svcnet.storage.etcd import EtcdStore

    return EtcdStore([ETCD.start()], ETCD.new_prefix(), watch_buffer=watch_buffer,
                     revision_base=None)


BACKENDS: dict[str, Backend] = {"memory": _memory, "sqlite": _sqlite, "etcd": _etcd}

MakeStore = Callable[..., Awaitable[Store]]


@pytest.fixture(params=sorted(BACKENDS))
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[MakeStore]:
    backend = BACKENDS[request.param]
    made: list[Store] = []

    async def make(*, watch_buffer: int = 1024) -> Store:
        directory = tmp_path / f"store{len(made)}"
        directory.mkdir()
        store = backend(directory, watch_buffer)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


# -- helpers ----------------------------------------------------------------------------------

async def take(watch: AsyncIterator[WatchEvent], n: int,
               timeout: float = TIMEOUT) -> list[WatchEvent]:
    """The next ``n`` events of ``watch``; fails the test instead of hanging."""

    async def collect() -> list[WatchEvent]:
        return [await anext(watch) for _ in range(n)]

    return await asyncio.wait_for(collect(), timeout)


async def stop(watch: AsyncIterator[WatchEvent]) -> None:
    if isinstance(watch, AsyncGenerator):
        await watch.aclose()


def brief(event: WatchEvent) -> tuple[str, str, bytes, int, bytes | None, int | None]:
    """(type, key, value, revision, prev value, prev revision): compact to compare."""
    prev = event.prev
    return (event.type.value, event.kv.key, event.kv.value, event.revision,
            prev.value if prev else None, prev.mod_revision if prev else None)


def keys(items: list[KeyValue]) -> list[str]:
    return [kv.key for kv in items]


# -- create / get / update / delete -----------------------------------------------------------

async def test_create_then_get(store: Store) -> None:
    assert await store.get("svc/default/web") is None
    assert await store.current_revision() == 0

    kv = await store.create("svc/default/web", b"v1")

    assert kv == KeyValue("svc/default/web", b"v1", mod_revision=1, create_revision=1)
    assert await store.get("svc/default/web") == kv
    assert await store.current_revision() == 1


async def test_create_existing_key_fails_and_changes_nothing(store: Store) -> None:
    first = await store.create("svc/default/web", b"v1")

    with pytest.raises(KeyExists) as err:
        await store.create("svc/default/web", b"v2")

    assert err.value.key == "svc/default/web"
    assert await store.get("svc/default/web") == first
    assert await store.current_revision() == first.mod_revision


@pytest.mark.parametrize(("op", "expected", "error"), [
    pytest.param("update", "current", None, id="update-at-current-revision"),
    pytest.param("update", "stale", Conflict, id="update-at-stale-revision"),
    pytest.param("update", "zero", Conflict, id="update-at-revision-0"),
    pytest.param("update", "missing-key", KeyNotFound, id="update-missing-key"),
    pytest.param("delete", "current", None, id="delete-at-current-revision"),
    pytest.param("delete", "zero", None, id="delete-unconditionally"),
    pytest.param("delete", "stale", Conflict, id="delete-at-stale-revision"),
    pytest.param("delete", "missing-key", KeyNotFound, id="delete-missing-key"),
])
async def test_conditional_writes(store: Store, op: str, expected: str,
                                  error: type[Exception] | None) -> None:
    v1 = await store.create("svc/default/web", b"v1")
    v2 = await store.update("svc/default/web", b"v2", v1.mod_revision)
    key = "svc/default/nope" if expected == "missing-key" else "svc/default/web"
    revision = {"current": v2.mod_revision, "stale": v1.mod_revision, "zero": 0,
                "missing-key": v2.mod_revision}[expected]
    before = await store.current_revision()

    async def run() -> KeyValue:
        if op == "update":
            return await store.update(key, b"v3", revision)
        return await store.delete(key, revision)

    if error is not None:
        with pytest.raises(error) as err:
            await run()
        if isinstance(err.value, Conflict):
            assert err.value.key == key
            assert err.value.current == v2  # what the caller needs to retry
        assert await store.get("svc/default/web") == v2
        assert await store.current_revision() == before  # a failed write takes no revision
        return

    result = await run()
    assert result.mod_revision == before + 1 == await store.current_revision()
    assert result.create_revision == v1.create_revision
    if op == "update":
        assert result.value == b"v3"
        assert await store.get(key) == result
    else:
        assert result.value == b"v2"  # the deleted value, at the deletion's revision
        assert await store.get(key) is None


async def test_recreate_after_delete_starts_a_new_life(store: Store) -> None:
    first = await store.create("svc/default/web", b"v1")
    await store.delete("svc/default/web")

    again = await store.create("svc/default/web", b"v2")

    assert again.create_revision == again.mod_revision > first.create_revision


async def test_one_revision_counter_for_all_keys(store: Store) -> None:
    revisions = [
        (await store.create("svc/a/x", b"1")).mod_revision,
        (await store.create("svc/b/y", b"1")).mod_revision,
        (await store.update("svc/a/x", b"2", 1)).mod_revision,
        (await store.delete("svc/b/y")).mod_revision,
        (await store.create("svc/c/z", b"1")).mod_revision,
    ]
    with pytest.raises(KeyExists):
        await store.create("svc/c/z", b"1")
    revisions.append((await store.create("svc/d/w", b"1")).mod_revision)

    assert revisions == sorted(set(revisions))
    assert await store.current_revision() == revisions[-1]


# -- list / count -----------------------------------------------------------------------------

LIST_KEYS = ["svc/b/2", "svc/a/1", "svc/ab/1", "svc/a", "svc/a/3", "svc/a/2", "pod/a/1",
             "svc/b/1"]


@pytest.mark.parametrize(("prefix", "expected"), [
    pytest.param("svc/a/", ["svc/a/1", "svc/a/2", "svc/a/3"], id="namespace"),
    pytest.param("svc/", ["svc/a", "svc/a/1", "svc/a/2", "svc/a/3", "svc/ab/1", "svc/b/1",
                          "svc/b/2"], id="resource"),
    pytest.param("", sorted(LIST_KEYS), id="everything"),
    pytest.param("svc/c/", [], id="empty"),
])
async def test_list_prefix_in_key_order(store: Store, prefix: str, expected: list[str]) -> None:
    for key in LIST_KEYS:
        await store.create(key, key.encode())

    result = await store.list(prefix)

    assert keys(result.items) == expected
    assert [kv.value for kv in result.items] == [k.encode() for k in expected]
    assert result.revision == await store.current_revision()
    assert result.more is False
    assert await store.count(prefix) == len(expected)


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 6, 100])
async def test_list_pages_with_limit_and_start_after(store: Store, limit: int) -> None:
    all_keys = [f"svc/ns/{i:02d}" for i in range(6)]
    for key in all_keys:
        await store.create(key, b"x")
    await store.create("svc/other/00", b"x")

    pages: list[list[str]] = []
    start_after = ""
    while True:
        page = await store.list("svc/ns/", limit=limit, start_after=start_after)
        pages.append(keys(page.items))
        if not page.more:
            break
        start_after = page.items[-1].key

    assert [k for page in pages for k in page] == all_keys
    assert all(len(page) == limit for page in pages[:-1])
    # ``more`` is exact: no trailing empty page when the keys divide evenly into pages.
    assert len(pages) == max(1, -(-len(all_keys) // limit))


async def test_paging_at_a_fixed_revision_is_a_consistent_snapshot(store: Store) -> None:
    for i in range(6):
        await store.create(f"svc/ns/{i}", b"old")
    first = await store.list("svc/ns/", limit=2)
    # Writes between pages must not show through when paging at the first page's revision.
    await store.create("svc/ns/45", b"new")
    await store.delete("svc/ns/5")
    kv4 = await store.get("svc/ns/4")
    assert kv4 is not None
    await store.update("svc/ns/4", b"new", kv4.mod_revision)

    rest = await store.list("svc/ns/", revision=first.revision,
                            start_after=first.items[-1].key)

    assert rest.revision == first.revision
    assert keys(first.items + rest.items) == [f"svc/ns/{i}" for i in range(6)]
    assert {kv.value for kv in rest.items} == {b"old"}


async def test_list_of_more_than_a_grpc_message(store: Store) -> None:
    """A list is whole however large: 3,000 values of 2 KB (6 MiB, past gRPC's default 4 MiB
    message limit, which etcd's answers are subject to: a watch cache fills with one list)."""
    value = b"x" * 2000
    for start in range(0, 3000, 200):
        await asyncio.gather(*(store.create(f"big/{i:05d}", value)
                               for i in range(start, start + 200)))
    listed = await store.list("big/")
    assert [kv.key for kv in listed.items] == [f"big/{i:05d}" for i in range(3000)]
    assert all(kv.value == value for kv in listed.items)


async def test_list_at_every_past_revision(store: Store) -> None:
    # A script of writes; after each, remember the expected full state at that revision.
    state: dict[str, bytes] = {}
    expected: dict[int, dict[str, bytes]] = {}  # (revision 0 is not "empty": it means "now")
    script: list[tuple[str, str, bytes]] = [
        ("create", "svc/a/1", b"1"), ("create", "svc/b/1", b"1"), ("update", "svc/a/1", b"2"),
        ("delete", "svc/b/1", b""), ("create", "svc/a/2", b"1"), ("create", "svc/b/1", b"3"),
        ("update", "svc/a/1", b"3"), ("delete", "svc/a/2", b""),
    ]
    for op, key, value in script:
        if op == "create":
            rev = (await store.create(key, value)).mod_revision
            state[key] = value
        elif op == "update":
            current = await store.get(key)
            assert current is not None
            rev = (await store.update(key, value, current.mod_revision)).mod_revision
            state[key] = value
        else:
            rev = (await store.delete(key)).mod_revision
            del state[key]
        expected[rev] = dict(state)

    for rev, want in expected.items():
        got = await store.list("", revision=rev)
        assert {kv.key: kv.value for kv in got.items} == want, f"at revision {rev}"
        assert keys(got.items) == sorted(want)
        assert got.revision == rev
        under_a = await store.list("svc/a/", revision=rev)
        assert keys(under_a.items) == sorted(k for k in want if k.startswith("svc/a/"))


async def test_list_at_past_revision_reports_revisions_of_that_time(store: Store) -> None:
    v1 = await store.create("svc/a/1", b"1")
    await store.update("svc/a/1", b"2", v1.mod_revision)

    past = await store.list("svc/a/", revision=v1.mod_revision)

    assert past.items == [v1]


# -- watch ------------------------------------------------------------------------------------

async def test_watch_from_zero_sees_only_new_events(store: Store) -> None:
    await store.create("svc/a/old", b"1")
    watch = store.watch("svc/", 0)
    try:
        new = await store.create("svc/a/new", b"1")
        [event] = await take(watch, 1)
        assert event == WatchEvent(EventType.ADDED, new, None)
    finally:
        await stop(watch)


async def test_watch_event_types_carry_previous_values(store: Store) -> None:
    watch = store.watch("svc/", 0)
    try:
        created = await store.create("svc/a/1", b"v1")
        updated = await store.update("svc/a/1", b"v2", created.mod_revision)
        deleted = await store.delete("svc/a/1", updated.mod_revision)

        events = await take(watch, 3)

        assert events == [
            WatchEvent(EventType.ADDED, created, None),
            WatchEvent(EventType.MODIFIED, updated, created),
            WatchEvent(EventType.DELETED, deleted, updated),
        ]
        assert deleted.value == b"v2"
    finally:
        await stop(watch)


async def test_watch_from_old_revision_replays_then_goes_live(store: Store) -> None:
    await store.create("svc/a/0", b"before")
    start = await store.current_revision()
    a1 = await store.create("svc/a/1", b"1")
    a1b = await store.update("svc/a/1", b"2", a1.mod_revision)
    await store.delete("svc/a/0")

    watch = store.watch("svc/", start)
    try:
        replayed = await take(watch, 3)
        live = await store.create("svc/a/2", b"live")
        [after] = await take(watch, 1)
    finally:
        await stop(watch)

    assert [brief(e) for e in replayed] == [
        ("ADDED", "svc/a/1", b"1", start + 1, None, None),
        ("MODIFIED", "svc/a/1", b"2", start + 2, b"1", start + 1),
        ("DELETED", "svc/a/0", b"before", start + 3, b"before", start),
    ]
    assert replayed[1].kv == a1b
    assert after == WatchEvent(EventType.ADDED, live, None)


async def test_watch_started_before_writes_replays_nothing_twice(store: Store) -> None:
    # Writes interleaved with the watch's start must each arrive exactly once.
    watch = store.watch("svc/", 0)
    try:
        for i in range(5):
            await store.create(f"svc/a/{i}", b"x")
        events = await take(watch, 5)
        late = await store.create("svc/a/late", b"x")
        [last] = await take(watch, 1)
    finally:
        await stop(watch)
    assert [e.revision for e in events] == [1, 2, 3, 4, 5]
    assert last.kv == late


async def test_watch_filters_by_prefix(store: Store) -> None:
    await store.create("svc/a/1", b"x")
    await store.create("svc/b/1", b"x")
    await store.create("svc/ab/1", b"x")
    watch = store.watch("svc/a/", 0)
    replaying = store.watch("svc/a/", 1)
    try:
        await store.create("svc/b/2", b"x")
        await store.create("svc/ab/2", b"x")
        a2 = await store.create("svc/a/2", b"x")

        [live] = await take(watch, 1)
        replayed = await take(replaying, 1)
        assert live.kv == a2
        assert replayed[0].kv == a2  # svc/b/1 and svc/ab/1 (revisions 2, 3) skipped
    finally:
        await stop(watch)
        await stop(replaying)


async def test_many_watchers_see_the_same_stream(store: Store) -> None:
    watches = [store.watch("svc/", 0) for _ in range(5)]
    try:
        for i in range(10):
            await store.create(f"svc/a/{i}", b"x")
        streams = [await take(w, 10) for w in watches]
    finally:
        for w in watches:
            await stop(w)
    assert all(s == streams[0] for s in streams)
    assert [e.revision for e in streams[0]] == list(range(1, 11))


async def test_watch_from_future_revision_waits_for_it(store: Store) -> None:
    await store.create("svc/a/0", b"x")
    watch = store.watch("svc/", 2)
    try:
        await store.create("svc/a/1", b"x")  # revision 2: not after 2
        third = await store.create("svc/a/2", b"x")
        [event] = await take(watch, 1)
    finally:
        await stop(watch)
    assert event.kv == third


async def test_slow_watcher_is_dropped_instead_of_blocking_writers(
        make_store: MakeStore) -> None:
    store = await make_store(watch_buffer=4)
    seen = await store.create("svc/a/first", b"x")
    slow = store.watch("svc/", seen.mod_revision)
    try:
        for i in range(20):  # five times the buffer, with nobody reading
            await asyncio.wait_for(store.create(f"svc/a/{i}", b"x"), TIMEOUT)
        with pytest.raises(WatchClosed):
            await take(slow, 20)
    finally:
        await stop(slow)
    # The client recovers by watching again from the last revision it saw: history is
    # replayed from the store (not through the small buffer), then live events follow.
    recovered = store.watch("svc/", seen.mod_revision)
    try:
        replayed = await take(recovered, 20)
        after = await store.create("svc/a/after", b"x")
        [event] = await take(recovered, 1)
    finally:
        await stop(recovered)
    assert [e.kv.key for e in replayed] == [f"svc/a/{i}" for i in range(20)]
    assert event.kv == after


async def test_closing_the_store_ends_watches(store: Store) -> None:
    watch = store.watch("svc/", 0)
    received: asyncio.Queue[WatchEvent] = asyncio.Queue()

    async def consume() -> None:
        async for event in watch:
            await received.put(event)

    consumer = asyncio.create_task(consume())
    await store.create("svc/a/1", b"x")
    await asyncio.wait_for(received.get(), TIMEOUT)  # the watch is live and waiting

    await store.close()

    with pytest.raises(WatchClosed):
        await asyncio.wait_for(consumer, TIMEOUT)
    with pytest.raises(WatchClosed):
        await take(store.watch("svc/", 0), 1)
    with pytest.raises(StorageError):
        await store.create("svc/a/2", b"x")


async def test_cancelling_a_watch_consumer_ends_the_watch(store: Store) -> None:
    watch = store.watch("svc/", 0)
    received: asyncio.Queue[WatchEvent] = asyncio.Queue()

    async def consume() -> None:
        async for event in watch:
            received.put_nowait(event)  # no suspension: straight back to waiting on the watch

    consumer = asyncio.create_task(consume())
    await store.create("svc/a/1", b"x")
    await asyncio.wait_for(received.get(), TIMEOUT)  # so the consumer is waiting now

    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer

    # The cancelled watch is finished; the store carries on.
    with pytest.raises(StopAsyncIteration):
        await anext(watch)
    assert (await store.create("svc/a/2", b"x")).mod_revision == 2


# -- compaction -------------------------------------------------------------------------------

async def test_compaction(store: Store) -> None:
    kept = await store.create("svc/a/kept", b"1")            # 1: written before, read after
    tmp = await store.create("svc/a/tmp", b"1")              # 2
    await store.delete("svc/a/tmp", tmp.mod_revision)        # 3
    hot = await store.create("svc/a/hot", b"1")              # 4
    hot = await store.update("svc/a/hot", b"2", hot.mod_revision)  # 5
    compact_at = hot.mod_revision
    hot = await store.update("svc/a/hot", b"3", hot.mod_revision)  # 6

    await store.compact(compact_at)

    assert await store.compact_revision() == compact_at
    # Current values survive.
    assert await store.get("svc/a/kept") == kept
    assert await store.get("svc/a/hot") == hot
    assert await store.get("svc/a/tmp") is None
    # Reads older than the compacted revision are refused...
    with pytest.raises(Compacted) as listed:
        await store.list("svc/", revision=compact_at - 1)
    assert listed.value.compact_revision == compact_at
    old_watch = store.watch("svc/", compact_at - 1)
    with pytest.raises(Compacted) as watched:
        await take(old_watch, 1)
    assert (watched.value.requested, watched.value.compact_revision) == (compact_at - 1,
                                                                          compact_at)
    # ...but the compacted revision itself still reads correctly, including a key written
    # before it and changed after it.
    at = await store.list("svc/", revision=compact_at)
    assert {kv.key: kv.value for kv in at.items} == {"svc/a/hot": b"2", "svc/a/kept": b"1"}
    # A watch exactly at the compacted revision replays what follows, then goes live.
    watch = store.watch("svc/", compact_at)
    try:
        [replayed] = await take(watch, 1)
        assert brief(replayed) == ("MODIFIED", "svc/a/hot", b"3", 6, b"2", 5)
        live = await store.create("svc/a/new", b"1")
        [event] = await take(watch, 1)
        assert event.kv == live
    finally:
        await stop(watch)


async def test_compaction_is_clamped_and_never_goes_back(store: Store) -> None:
    for i in range(3):
        await store.create(f"svc/a/{i}", b"x")

    await store.compact(100)  # beyond the current revision: compacts to now
    assert await store.compact_revision() == 3
    await store.compact(1)  # older than what is compacted: no-op
    assert await store.compact_revision() == 3

    # The store carries on: revisions continue, recreate works, watches from now work.
    watch = store.watch("svc/", 3)
    try:
        await store.delete("svc/a/0")
        again = await store.create("svc/a/0", b"y")
        assert again.mod_revision == again.create_revision == 5
        events = await take(watch, 2)
        assert [brief(e)[:4] for e in events] == [("DELETED", "svc/a/0", b"x", 4),
                                                   ("ADDED", "svc/a/0", b"y", 5)]
    finally:
        await stop(watch)
    assert await store.current_revision() == 5


async def test_compaction_keeps_the_revision_counter(store: Store) -> None:
    created = await store.create("svc/a/1", b"x")
    await store.delete("svc/a/1", created.mod_revision)  # the newest row is a tombstone
    await store.compact(await store.current_revision())

    assert await store.current_revision() == 2
    assert (await store.create("svc/a/2", b"x")).mod_revision == 3


async def test_compactors_sharing_a_store_compact_once_per_round(store: Store) -> None:
    """storage/compactor.py: two servers' compactors; whoever writes the compaction key first
    in a round compacts, to the revision it noted the round before; the other only notes."""
    a, b = Compactor(store), Compactor(store)
    assert await a.round() is None, "the first round compacts nothing (nothing noted yet)"
    assert await b.round() is None, "b lost the round"
    round1 = await store.current_revision()
    assert a.noted == b.noted == round1
    for i in range(3):
        await store.create(f"svc/a/{i}", b"1")
    assert await a.round() == round1
    assert await store.compact_revision() == round1
    assert await b.round() is None
    round2 = await store.current_revision()
    assert b.noted == round2
    await store.create("svc/a/later", b"1")
    assert await b.round() == round2, "b saw a's round, so it can take the next"
    assert await a.round() is None
    assert await store.compact_revision() == round2
    assert (await store.get("svc/a/0")) is not None, "current values stay"


async def test_a_restarted_compactor_waits_a_round_before_compacting(store: Store) -> None:
    first = Compactor(store)
    await first.round()
    await store.create("svc/a/x", b"1")
    restarted = Compactor(store)  # knows nothing of the key's last write
    assert await restarted.round() is None
    noted = restarted.noted
    await store.create("svc/a/y", b"1")
    assert await restarted.round() == noted
    assert await store.compact_revision() == noted


async def test_the_compaction_loop_runs_every_interval(store: Store) -> None:
    clock = FakeClock()
    task = asyncio.create_task(Compactor(store, 300.0, clock).run())
    try:
        for _ in range(2):
            await wait_for_sleepers(clock)
            clock.advance(300.0)
        await wait_for_sleepers(clock)
        noted = int((await store.get(COMPACT_KEY) or pytest.fail("no key")).value)
        assert noted > 0 and await store.compact_revision() == noted
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_failed_round_is_tried_again_next_interval() -> None:
    """A store that cannot serve (Unavailable) fails the round, not the loop: the next round
    goes on from what the compactor knew (a fake beside the real stores: one MemoryStore
    whose reads fail on cue)."""

    class Failing(MemoryStore):
        failing = False

        async def get(self, key: str) -> KeyValue | None:
            if self.failing:
                raise Unavailable("store down")
            return await super().get(key)

    store, clock = Failing(), FakeClock()
    task = asyncio.create_task(Compactor(store, 300.0, clock).run())
    try:
        await wait_for_sleepers(clock)
        clock.advance(300.0)  # round 1: notes the revision
        await wait_for_sleepers(clock)
        noted = await store.current_revision()
        await store.create("svc/a/x", b"1")
        store.failing = True
        clock.advance(300.0)  # round 2 fails
        await wait_for_sleepers(clock)
        assert await store.compact_revision() == 0
        store.failing = False
        clock.advance(300.0)  # round 3 compacts to what round 1 noted
        await wait_for_sleepers(clock)
        assert await store.compact_revision() == noted
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for_sleepers(clock: FakeClock) -> None:
    """Until the loop sleeps on ``clock`` again (its round is done)."""
    async with asyncio.timeout(TIMEOUT):
        while not clock.sleeping():
            await asyncio.sleep(0.01)


# -- concurrency ------------------------------------------------------------------------------

async def test_concurrent_creates_of_one_key_have_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.create("alloc/ip/10.0.0.1", str(i).encode())
                                     for i in range(20)), return_exceptions=True)

    winners = [r for r in results if isinstance(r, KeyValue)]
    losers = [r for r in results if isinstance(r, KeyExists)]
    assert len(winners) == 1 and len(losers) == 19
    assert await store.get("alloc/ip/10.0.0.1") == winners[0]


async def test_concurrent_compare_and_swap_loses_no_update(store: Store) -> None:
    await store.create("counter", b"0")
    conflicts = 0

    async def increment() -> None:
        nonlocal conflicts
        while True:
            current = await store.get("counter")
            assert current is not None
            try:
                await store.update("counter", str(int(current.value) + 1).encode(),
                                   current.mod_revision)
                return
            except Conflict:
                conflicts += 1

    await asyncio.wait_for(asyncio.gather(*(increment() for _ in range(30))), TIMEOUT * 2)

    final = await store.get("counter")
    assert final is not None and final.value == b"30"
    assert conflicts > 0  # the tasks really raced (each backend call yields to the loop)


# -- cross-backend: random histories must read the same as the reference ----------------------

@dataclass(frozen=True)
class Op:
    name: str  # create | update | delete | compact
    key: str
    value: bytes
    stale: bool  # update/delete: pass a stale revision (delete: else 0 or current at random)
    back: int  # compact: how many revisions behind "now"


OPS = st.builds(
    Op,
    name=st.sampled_from(["create", "create", "update", "update", "delete", "compact"]),
    key=st.sampled_from(["svc/a/1", "svc/a/2", "svc/b/1", "svc/ab/1"]),
    value=st.binary(min_size=0, max_size=8),
    stale=st.booleans(),
    back=st.integers(min_value=0, max_value=6),
)


async def _apply(store: Store, op: Op, current: KeyValue | None) -> object:
    """Run ``op``; the result or the error (type and, for Conflict, its current value)."""
    revision = 0 if current is None else current.mod_revision - op.stale
    try:
        if op.name == "create":
            return await store.create(op.key, op.value)
        if op.name == "update":
            return await store.update(op.key, op.value, revision)
        if op.name == "delete":
            return await store.delete(op.key, revision if op.stale else 0)
        await store.compact(await store.current_revision() - op.back)
        return await store.compact_revision()
    except Conflict as e:
        return ("Conflict", e.current)
    except StorageError as e:
        return type(e).__name__


async def _replay_from(store: Store, start: int) -> list[WatchEvent]:
    watch = store.watch("", start)
    try:
        return await take(watch, await store.current_revision() - start)
    finally:
        await stop(watch)


@pytest.mark.parametrize("backend", sorted(set(BACKENDS) - {"memory"}))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, max_size=30))
def test_random_histories_match_the_reference(backend: str, ops: list[Op]) -> None:
    async def run(directory: Path) -> None:
        reference = MemoryStore()
        subject = BACKENDS[backend](directory, 1024)
        # Live from the very start (0 = "now", which is the beginning here).
        live = {reference: reference.watch("", 0), subject: subject.watch("", 0)}
        try:
            for op in ops:
                current = await reference.get(op.key)
                assert await _apply(subject, op, current) == await _apply(reference, op, current)
            first = await reference.compact_revision()
            last = await reference.current_revision()
            assert await subject.compact_revision() == first
            assert await subject.current_revision() == last
            for rev in range(max(first, 1), last + 1):
                for prefix in ("", "svc/a/"):
                    assert (await subject.list(prefix, revision=rev)
                            == await reference.list(prefix, revision=rev))
            assert await subject.list("") == await reference.list("")
            assert await take(live[subject], last) == await take(live[reference], last)
            # Replay from the compacted revision (0 would mean "now": start at 1 at least).
            start = max(first, 1)
            assert await _replay_from(subject, start) == await _replay_from(reference, start)
        finally:
            for watch in live.values():
                await stop(watch)
            await subject.close()
            await reference.close()

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(Path(directory)))


# -- open_store -------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "kind"), [
    pytest.param("memory://", MemoryStore, id="memory"),
    pytest.param("sqlite:///{tmp}/state.db", SQLiteStore, id="sqlite"),
    pytest.param("sqlite:///{tmp}/state.db?synchronous=NORMAL", SQLiteStore, id="sqlite-normal"),
])
async def test_open_store(tmp_path: Path, url: str, kind: type) -> None:
    store = open_store(url.format(tmp=tmp_path))
    try:
        assert isinstance(store, kind)
        await store.create("svc/a/1", b"x")
        assert (await store.list("svc/")).revision == 1
    finally:
        await store.close()


async def test_etcd_refuses_a_value_past_its_request_limit_whole() -> None:
    """etcd takes requests up to its --max-request-bytes (1.5 MiB by default; the API's own
    limit is 3 MiB): a larger value is TooLarge (the API's 413), and nothing is written."""
    from svcnet.storage.etcd import EtcdStore

    store = EtcdStore([ETCD.start()], ETCD.new_prefix(), revision_base=None)
    try:
        kept = await store.create("cm/kept", b"small")
        revision = await store.current_revision()
        big = b"x" * 2_000_000
        with pytest.raises(TooLarge, match="--max-request-bytes"):
            await store.create("cm/big", big)
        with pytest.raises(TooLarge):
            await store.update("cm/kept", big, kept.mod_revision)
        assert await store.get("cm/big") is None
        assert await store.get("cm/kept") == kept
        assert await store.current_revision() == revision
        assert (await store.create("cm/after", b"x" * 1_000_000)).mod_revision == revision + 1
    finally:
        await store.close()


async def test_open_store_etcd() -> None:
    from svcnet.storage.etcd import EtcdStore

    endpoint = ETCD.start()
    prefix = ETCD.new_prefix().strip("/")
    store = open_store(f"etcd://{endpoint}/{prefix}?timeout=5")
    raw = EtcdStore([endpoint], "")  # the whole key space, with the default revision base
    try:
        assert isinstance(store, EtcdStore)
        kv = await store.create("svc/a/1", b"x")
        assert await store.get("svc/a/1") == kv
        listed = await store.list("svc/")
        assert listed.items == [kv]
        assert listed.revision == await store.current_revision() == kv.mod_revision
        # Stored under /PREFIX/; every store on the cluster reads the same revisions.
        [raw_kv] = (await raw.list(f"/{prefix}/")).items
        assert raw_kv == KeyValue(f"/{prefix}/svc/a/1", b"x", kv.mod_revision, kv.create_revision)
    finally:
        await store.close()
        await raw.close()


@pytest.mark.parametrize(("url", "targets", "prefix"), [
    ("etcd://127.0.0.1:2379/svcnet", ["127.0.0.1:2379"], "/svcnet/"),
    ("etcd://etcd.kube-system:2379/a/b/", ["etcd.kube-system:2379"], "/a/b/"),
    ("etcd://10.0.0.1:2379,10.0.0.2:2379/svcnet?timeout=2.5",
     ["10.0.0.1:2379", "10.0.0.2:2379"], "/svcnet/"),
    ("etcd://[fd00::1]:2379,[fd00::2]:2379/svcnet", ["[fd00::1]:2379", "[fd00::2]:2379"],
     "/svcnet/"),
    # A channel per member (storage/etcd.py, "Endpoints"): names and mixed families too.
    ("etcd://a:2379,b:2379/svcnet", ["a:2379", "b:2379"], "/svcnet/"),
    ("etcd://10.0.0.1:2379,[fd00::1]:2379/svcnet", ["10.0.0.1:2379", "[fd00::1]:2379"],
     "/svcnet/"),
])
def test_open_store_parses_etcd_urls(url: str, targets: list[str], prefix: str) -> None:
    from svcnet.storage.etcd import EtcdStore

    store = open_store(url)  # no I/O until the first operation
    assert isinstance(store, EtcdStore)
    assert (list(store._targets), store._prefix) == (targets, prefix.encode())


@pytest.mark.parametrize("url", [
    "etcd://127.0.0.1:2379", "etcd://127.0.0.1:2379/", "etcd:///svcnet", "etcd://127.0.0.1/svcnet",
    "etcd://127.0.0.1:0/svcnet", "etcd://127.0.0.1:2379/svcnet?tls=1",
    "etcd://127.0.0.1:2379/svcnet?timeout=0", "postgres://db/x", "sqlite://relative/state.db", "sqlite:///",
    "sqlite:///tmp/x.db?synchronous=OFF", "sqlite:///tmp/x.db?cache=big", "memory://x", "",
])
def test_open_store_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)
