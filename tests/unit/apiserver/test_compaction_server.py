"""The server compacts its store's history every --compaction-interval (storage/compactor.py);
0 turns it off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.storage.memory import MemoryStore


@pytest.mark.parametrize("interval", [0.2, 0.0])
async def test_the_server_compacts_every_interval(tmp_path: Path, interval: float) -> None:
    store = MemoryStore()
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0",
                                    compaction_interval=interval), store=store)
    await server.start()
    try:
        started = await store.current_revision()
        # The second round compacts to the revision noted at the first.
        async with asyncio.timeout(10):
            while interval and await store.compact_revision() < started:
                await asyncio.sleep(0.05)
        if not interval:
            await asyncio.sleep(0.5)
            assert await store.compact_revision() == 0
    finally:
        await server.stop()
