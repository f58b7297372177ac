"""The SQLite store's checkpoints (storage/sqlite.py, "Checkpoints"): commits never copy the
WAL back themselves; the store's checkpointer does, and under a steady write load it still
gets the WAL started over, so the WAL does not grow without bound.

SQLite counts WAL restarts in the WAL file's header (bytes 12-15, big-endian: the checkpoint
sequence number), which is what these tests read."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from svcnet.storage import sqlite as sqlite_store
from svcnet.storage.sqlite import SQLiteStore

VALUE = b"x" * 2000


def restarts(db: Path) -> int:
    with open(f"{db}-wal", "rb") as f:
        header = f.read(16)
    return int(struct.unpack(">I", header[12:16])[0])


async def steady_writes(store: SQLiteStore, count: int, clients: int = 8,
                        prefix: str = "svc") -> None:
    async def client(k: int) -> None:
        for i in range(count // clients):
            await store.create(f"{prefix}/{k}/{i}", VALUE)
            await asyncio.sleep(0)
    await asyncio.gather(*(client(k) for k in range(clients)))


async def test_commits_leave_the_wal_to_the_checkpointer(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 3600.0)  # never, in this test
    db = tmp_path / "state.db"
    async with SQLiteStore(db) as store:
        await store.create("svc/first", VALUE)
        before = restarts(db)
        await steady_writes(store, 2400)  # several thousand pages: SQLite's own would run
        assert restarts(db) == before
        assert Path(f"{db}-wal").stat().st_size > 1000 * 4096


async def test_a_steady_load_still_gets_the_wal_started_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.01)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_FRAMES", 100)
    db = tmp_path / "state.db"
    async with SQLiteStore(db) as store:
        await store.create("svc/first", VALUE)
        before = restarts(db)
        await steady_writes(store, 2400)
        assert restarts(db) >= before + 2
        # Every write is there, and reads back.
        assert await store.count("svc/") == 2401
        got = await store.get("svc/3/7")
        assert got is not None and got.value == VALUE


async def test_two_processes_checkpointers_share_the_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two stores on one file (as a server and its API worker): both check-point, one at a
    time, and neither loses or blocks the other's writes."""
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.01)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_FRAMES", 100)
    db = tmp_path / "state.db"
    async with SQLiteStore(db) as one, SQLiteStore(db) as two:
        await one.create("svc/first", VALUE)
        before = restarts(db)
        await asyncio.gather(steady_writes(one, 1200),
                             steady_writes(two, 1200, clients=4, prefix="other"))
        assert restarts(db) >= before + 2
        assert (await one.count("svc/"), await two.count("other/")) == (1201, 1200)
