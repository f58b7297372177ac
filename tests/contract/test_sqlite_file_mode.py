"""A database the SQLite store creates is private to its owner, wherever it lives."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.storage.sqlite import SQLiteStore


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: files 0644 unless asked otherwise
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
async def test_new_database_and_its_wal_shm_and_writelock_are_0600(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "state.db"  # not in a 0700 data directory
    db.parent.mkdir(mode=0o755)
    async with SQLiteStore(db) as store:
        await store.create("/registry/x", b"1")
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-writelock")]
        assert all(f.exists() for f in files)
        assert {f.name: oct(_mode(f)) for f in files} == {f.name: "0o600" for f in files}


@pytest.mark.usefixtures("permissive_umask")
async def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    async with SQLiteStore(db) as store:
        await store.create("/registry/x", b"1")
    os.chmod(db, 0o640)  # the owner chose to share it with a group
    async with SQLiteStore(db) as store:
        assert (await store.get("/registry/x")) is not None
    assert _mode(db) == 0o640
