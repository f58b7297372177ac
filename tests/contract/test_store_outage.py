"""Store outages: a backend that cannot reach or write its store raises Unavailable, in bounded
time, with nothing half-written; a watch ends with Unavailable instead of hanging; and
everything works again once the store is back.

Real stores only: an etcd process killed (SIGKILL) or frozen (SIGSTOP) by its pid, and an SQLite
file that is full (``PRAGMA max_page_count``, SQLite's own size limit: the same SQLITE_FULL a
full disk gives; the full file system itself is in tests/e2e/test_store_outage.py) or locked by
another connection beyond the busy timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from svcnet.storage.etcd import EtcdStore
from svcnet.storage.interface import EventType, StorageError, Store, Unavailable, WatchEvent
from svcnet.storage.sqlite import SQLiteStore
from tests.etcd_server import EtcdCluster, EtcdServer

TIMEOUT = 10.0


async def take(watch: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        return [await anext(watch) for _ in range(n)]
    return await asyncio.wait_for(collect(), TIMEOUT)


async def back(store: Store) -> int:
    """The store's revision, once it answers again."""
    while True:
        try:
            return await store.current_revision()
        except Unavailable:
            await asyncio.sleep(0.1)


# -- etcd -----------------------------------------------------------------------------------


@pytest.fixture
async def etcd_store(etcd: EtcdServer) -> AsyncIterator[EtcdStore]:
    store = EtcdStore([etcd.endpoint], etcd.new_prefix(), revision_base=None, timeout=2.0)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_etcd_down_reads_writes_and_watches_fail_unavailable_then_recover(
        etcd: EtcdServer, etcd_store: EtcdStore) -> None:
    store = etcd_store
    first = await store.create("svc/a", b"1")
    watch = store.watch("svc/", first.mod_revision)
    await store.create("svc/b", b"2")
    assert [e.kv.key for e in await take(watch, 1)] == ["svc/b"]

    etcd.kill()
    # The open watch ends with Unavailable (it does not hang, and is not silently resumed).
    with pytest.raises(Unavailable):
        await take(watch, 1)
    for call in (store.get("svc/a"), store.list("svc/"), store.create("svc/c", b"3"),
                 store.update("svc/a", b"x", first.mod_revision), store.delete("svc/b")):
        with pytest.raises(Unavailable) as info:
            await asyncio.wait_for(call, TIMEOUT)
        assert not info.value.timeout  # refused at once: nothing was written
    # A watch made during the outage ends the same way.
    with pytest.raises(Unavailable):
        await take(store.watch("svc/", first.mod_revision), 1)

    etcd.restart()

    revision = await asyncio.wait_for(back(store), TIMEOUT)
    # Nothing the outage refused was stored; the store works again, and a re-watch from the
    # last revision seen delivers what was written after it.
    assert await store.get("svc/c") is None
    assert (await store.get("svc/a")) == first
    rewatch = store.watch("svc/", revision)
    await store.create("svc/c", b"3")
    [event] = await take(rewatch, 1)
    assert (event.type, event.kv.key, event.kv.value) == (EventType.ADDED, "svc/c", b"3")
    await rewatch.aclose()


async def test_etcd_frozen_calls_time_out_as_unavailable_with_timeout(
        etcd: EtcdServer, etcd_store: EtcdStore) -> None:
    etcd.freeze()
    try:
        with pytest.raises(Unavailable) as info:
            await asyncio.wait_for(etcd_store.create("svc/frozen", b"1"), TIMEOUT)
        assert info.value.timeout  # the deadline passed: the write's outcome is unknown
    finally:
        etcd.thaw()
    created = await etcd_store.create("svc/thawed", b"1")
    assert (await etcd_store.get("svc/thawed")) == created


async def test_etcd_unreachable_at_open_is_unavailable(etcd: EtcdServer) -> None:
    endpoint = etcd.endpoint
    etcd.kill()
    store = EtcdStore([endpoint], "/svcnet-ho/", revision_base=None, timeout=1.0)
    try:
        with pytest.raises(Unavailable):
            await asyncio.wait_for(store.open(), TIMEOUT)
    finally:
        await store.close()


async def test_etcd_watch_ends_when_its_member_loses_the_leader() -> None:
    """A watch on a member cut off from its peers ends (kube-apiserver's require-leader
    watches) instead of staying open with no events while the others go on: here the two
    other members are frozen, so the store's member has no leader (three election timeouts
    of 0.5 s before etcd ends the stream). Once they are back the store reads and watches
    again."""
    cluster = EtcdCluster(3)
    cluster.start()
    store = EtcdStore(cluster.endpoints.split(","), "/svcnet-leader/", timeout=2.0)
    try:
        first = await store.create("svc/a", b"1")
        watch = store.watch("svc/", first.mod_revision)
        await store.create("svc/b", b"2")
        assert [e.kv.key for e in await take(watch, 1)] == ["svc/b"]
        cluster.freeze(1, 2)  # the store's member (the first) is alone
        try:
            with pytest.raises(Unavailable, match="no leader"):
                await take(watch, 1)
        finally:
            cluster.thaw(1, 2)

        revision = await asyncio.wait_for(back(store), TIMEOUT * 2)
        rewatch = store.watch("svc/", revision)
        await store.create("svc/c", b"3")
        assert [e.kv.key for e in await take(rewatch, 1)] == ["svc/c"]
        await rewatch.aclose()
    finally:
        await store.close()
        cluster.stop()


# -- SQLite ---------------------------------------------------------------------------------


async def _limit_pages(store: SQLiteStore, pages: int) -> None:
    """Cap the database file (SQLite's max_page_count) on the store's own connection."""
    def limit() -> None:
        store._db.execute(f"PRAGMA max_page_count={pages}")
    await store._call(limit)


async def test_sqlite_full_database_refuses_writes_whole_then_recovers(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "state.db") as store:
        kept = await store.create("svc/kept", b"x")
        revision = await store.current_revision()
        watch = store.watch("svc/", revision)
        (page_count,) = await store._call(
            lambda: store._db.execute("PRAGMA page_count").fetchone())
        await _limit_pages(store, page_count)
        big = b"v" * 200_000
        # Concurrent writes share one group-commit transaction: each fails whole.
        results = await asyncio.gather(
            *(store.create(f"svc/big{i}", big) for i in range(5)),
            store.update("svc/kept", big, kept.mod_revision), return_exceptions=True)
        assert all(isinstance(r, Unavailable) and not r.timeout for r in results), results
        assert "full" in str(results[0])
        # Nothing half-written: no key, no revision taken, no event published.
        assert await store.current_revision() == revision
        assert [kv.key for kv in (await store.list("svc/")).items] == ["svc/kept"]
        assert await store.get("svc/kept") == kept

        await _limit_pages(store, 1_000_000)
        created = await store.create("svc/after", big)
        [event] = await take(watch, 1)
        assert (event.kv.key, event.revision) == ("svc/after", created.mod_revision)
        assert created.mod_revision == revision + 1
        await watch.aclose()


async def test_sqlite_locked_beyond_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(path, busy_timeout=0.1) as store:
        await store.create("svc/a", b"1")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(Unavailable, match="locked"):
                await asyncio.wait_for(store.create("svc/b", b"2"), TIMEOUT)
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert (await store.create("svc/b", b"2")).mod_revision == 2


async def test_sqlite_programming_errors_stay_plain_storage_errors(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "state.db") as store:
        def broken() -> None:
            store._db.execute("SELECT * FROM no_such_table")
        with pytest.raises(StorageError) as info:
            await store._call(broken)
        assert not isinstance(info.value, Unavailable)
