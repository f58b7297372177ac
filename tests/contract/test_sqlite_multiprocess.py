"""SQLiteStore across OS processes: what "several svcnet servers on one file" relies on.

Children are separate Python interpreters (``python -c SCRIPT``) using the real store. They
print one line per fact ("ready", "ack ...", "won ..."), flushed, and the parent reads those
lines instead of sleeping: the pipe is the synchronisation.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from svcnet.storage.interface import EventType, Unavailable, WatchEvent
from svcnet.storage.sqlite import SQLiteStore

TIMEOUT = 30.0

# Every child starts with these imports and ends by running main(*sys.argv[1:]).
PRELUDE = """
import asyncio, sys
from svcnet.storage.interface import Conflict, KeyExists
from svcnet.storage.sqlite import SQLiteStore

def say(*words):
    print(*words, flush=True)
"""

HAMMER = PRELUDE + """
async def main(path, name, increments, claims, tasks):
    increments, claims, tasks = int(increments), int(claims), int(tasks)
    async with SQLiteStore(path) as store:
        say("ready")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        won, conflicts = [], 0

        async def worker(t):
            nonlocal conflicts
            for i in range(t, max(increments, claims), tasks):
                if i < claims:
                    try:
                        await store.create(f"claim/{i:04d}", name.encode())
                        won.append(i)
                    except KeyExists:
                        pass
                if i < increments:
                    while True:
                        kv = await store.get("counter")
                        try:
                            await store.update("counter", str(int(kv.value) + 1).encode(),
                                               kv.mod_revision)
                            break
                        except Conflict:
                            conflicts += 1

        await asyncio.gather(*(worker(t) for t in range(tasks)))
        say("won", *won)
        say("conflicts", conflicts)

asyncio.run(main(*sys.argv[1:]))
"""

WRITER = PRELUDE + """
async def main(path, prefix, count):
    async with SQLiteStore(path) as store:
        say("ready")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        for i in range(int(count)):
            kv = await store.create(f"{prefix}{i:04d}", b"v1")
            if i == 0:
                kv = await store.update(kv.key, b"v2", kv.mod_revision)
                await store.delete(kv.key, kv.mod_revision)
        say("done")

asyncio.run(main(*sys.argv[1:]))
"""

CRASHER = PRELUDE + """
async def main(path):
    store = SQLiteStore(path)  # synchronous=FULL, the default
    i = 0
    while True:
        kv = await store.create(f"crash/{i:08d}", b"x" * 600)
        say("ack", kv.key, kv.mod_revision)  # only after create() returned
        i += 1

asyncio.run(main(*sys.argv[1:]))
"""


async def spawn(script: str, *args: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *(str(a) for a in args),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2])


async def read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
    if not line:
        raise AssertionError(f"child exited early with status {await proc.wait()}")
    return line.decode().rstrip("\n")


async def start_together(procs: list[asyncio.subprocess.Process]) -> None:
    """Wait until every child has opened the store, then release them at once."""
    for proc in procs:
        assert await read_line(proc) == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()


async def finish(proc: asyncio.subprocess.Process) -> list[str]:
    """The child's remaining output lines; the child must exit cleanly."""
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, out.decode()
    return out.decode().splitlines()


@pytest.fixture
async def children() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Children started by a test; any still running at the end are killed (by pid)."""
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    """A database file with a counter at 0, created before any child opens it."""
    path = tmp_path / "state.db"
    async with SQLiteStore(path) as store:
        await store.create("counter", b"0")
    return path


async def take(watch: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        return [await anext(watch) for _ in range(n)]

    return await asyncio.wait_for(collect(), TIMEOUT)


async def test_two_processes_never_lose_an_update_or_double_create(
        db: Path, children: list[asyncio.subprocess.Process]) -> None:
    increments, claims = 150, 150
    children += [await spawn(HAMMER, db, name, increments, claims, 4) for name in ("A", "B")]
    await start_together(children)
    outputs = [await finish(proc) for proc in children]

    won = [{int(i) for i in out[0].split()[1:]} for out in outputs]
    conflicts = [int(out[1].split()[1]) for out in outputs]
    async with SQLiteStore(db) as store:
        counter = await store.get("counter")
        claimed = await store.list("claim/")
    assert counter is not None and int(counter.value) == 2 * increments
    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == set(range(claims))
    # Each claim is owned by the process that was told it won, and was created exactly once.
    owner = {kv.key: kv.value.decode() for kv in claimed.items}
    assert owner == {f"claim/{i:04d}": name for name, ids in zip("AB", won, strict=True)
                     for i in ids}
    with sqlite3.connect(db) as conn:
        creates = conn.execute("SELECT count(*), count(DISTINCT key) FROM log"
                               " WHERE key LIKE 'claim/%' AND created = 1").fetchone()
    conn.close()
    assert creates == (claims, claims)
    assert sum(conflicts) > 0  # the processes really raced


async def test_watch_sees_other_processes_writes_in_order(
        db: Path, children: list[asyncio.subprocess.Process]) -> None:
    async with SQLiteStore(db, poll_interval=0.01) as store:
        start = await store.current_revision()
        watch = store.watch("", 0)
        try:
            # Phase 1: only another process writes; the poll loop must deliver its events.
            children.append(await spawn(WRITER, db, "remote/a/", 20))
            await start_together(children[-1:])
            alone = await take(watch, 22)
            assert await finish(children[-1]) == ["done"]
            # Phase 2: local writes race with the other process's, so local commits find remote
            # rows not yet published and must publish them first (the in-transaction catch-up).
            children.append(await spawn(WRITER, db, "remote/b/", 50))
            await start_together(children[-1:])
            for i in range(50):
                await store.create(f"local/{i:04d}", b"v1")
            assert await finish(children[-1]) == ["done"]
            raced = await take(watch, 102)
        finally:
            await watch.aclose()

        events = alone + raced
        assert [e.revision for e in events] == list(range(start + 1, start + 125))
        for prefix, n in (("remote/a/", 20), ("remote/b/", 50)):
            remote = [(e.type, e.kv.key) for e in events if e.kv.key.startswith(prefix)]
            first = f"{prefix}0000"
            assert remote[:3] == [(EventType.ADDED, first), (EventType.MODIFIED, first),
                                  (EventType.DELETED, first)]
            assert [key for _, key in remote[3:]] == [f"{prefix}{i:04d}" for i in range(1, n)]
        assert [e.kv.key for e in events if e.kv.key.startswith("local/")] == [
            f"local/{i:04d}" for i in range(50)]
        # A watch replaying from the start sees the same history, read back from the log.
        replay = store.watch("", start)
        try:
            assert await take(replay, 124) == events
        finally:
            await replay.aclose()


async def test_sigkill_loses_no_acknowledged_write(
        tmp_path: Path, children: list[asyncio.subprocess.Process]) -> None:
    db = tmp_path / "state.db"
    proc = await spawn(CRASHER, db)
    children.append(proc)

    acked: dict[str, int] = {}
    while len(acked) < 300:
        word, key, rev = (await read_line(proc)).split()
        assert word == "ack"
        acked[key] = int(rev)
    proc.send_signal(signal.SIGKILL)  # this child only; it is mid-loop, likely mid-write
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    for line in out.decode().splitlines():  # acks already in the pipe count too
        word, key, rev = line.split()
        assert word == "ack"
        acked[key] = int(rev)

    async with SQLiteStore(db) as store:
        stored = {kv.key: kv.mod_revision for kv in (await store.list("crash/")).items}
        current = await store.current_revision()
        after = await store.create("after-crash", b"x")
    assert {k: stored.get(k) for k in acked} == acked
    assert current >= max(acked.values())
    assert after.mod_revision == current + 1  # the counter continues: no revision reused


async def test_reopening_keeps_state_history_and_the_revision_counter(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SQLiteStore(path) as store:
        a = await store.create("svc/a/1", b"1")
        a = await store.update("svc/a/1", b"2", a.mod_revision)
        b = await store.create("svc/a/2", b"1")
        await store.delete("svc/a/2", b.mod_revision)
        await store.compact(a.mod_revision)
        before = await store.list("svc/")

    async with SQLiteStore(path) as store:
        assert await store.list("svc/") == before
        assert await store.current_revision() == 4
        assert await store.compact_revision() == a.mod_revision
        history = store.watch("svc/", a.mod_revision)  # replays from the log, then live
        try:
            again = await store.create("svc/a/2", b"again")
            events = await take(history, 3)
        finally:
            await history.aclose()
    assert [(e.type, e.revision) for e in events] == [
        (EventType.ADDED, 3), (EventType.DELETED, 4), (EventType.ADDED, 5)]
    assert again.mod_revision == again.create_revision == 5


async def test_a_writer_waits_its_turn_behind_another_for_at_most_busy_timeout(
        tmp_path: Path) -> None:
    """Writers take turns through a flock on the file's ``-writelock`` companion (held here
    through an open file description of its own, as another process holds it)."""
    path = tmp_path / "state.db"
    async with SQLiteStore(path, busy_timeout=0.5) as store:
        await store.create("a", b"1")
        other = os.open(f"{path}-writelock", os.O_RDWR)
        try:
            fcntl.flock(other, fcntl.LOCK_EX)
            started = time.monotonic()
            with pytest.raises(Unavailable, match="locked"):
                await store.create("b", b"1")
            assert 0.5 <= time.monotonic() - started < 3
            assert await store.get("b") is None  # nothing half written

            waiting = asyncio.create_task(store.create("c", b"1"))
            await asyncio.sleep(0.2)
            assert not waiting.done()
        finally:
            fcntl.flock(other, fcntl.LOCK_UN)
            os.close(other)
        # The turn comes within a millisecond or so of the other writer's release.
        started = time.monotonic()
        kv = await asyncio.wait_for(waiting, 2)
        assert time.monotonic() - started < 0.1
        assert (await store.get("c")) == kv
