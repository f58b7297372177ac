"""Returning freed memory to the OS: at most one pending release per event loop."""

from __future__ import annotations

import asyncio

import pytest

from svcnet.util import memory


def recorder(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace malloc_trim by a recorder of its calls."""
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    monkeypatch.setattr(memory, "_trim", trim)
    return calls


async def test_release_soon_coalesces_a_burst_into_one_trim(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    calls = recorder(monkeypatch)
    release = memory._Releaser().request
    for _ in range(100):
        release(0.05)
    await asyncio.sleep(0.2)
    assert calls == [0]
    release(0.05)  # a later burst gets its own
    await asyncio.sleep(0.2)
    assert calls == [0, 0]


def test_a_pending_release_of_a_closed_loop_does_not_block_the_next_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = recorder(monkeypatch)
    releaser = memory._Releaser()

    async def request_then_leave() -> None:
        releaser.request(10)  # never fires: the loop ends first

    async def request_and_wait() -> None:
        releaser.request(0.05)
        await asyncio.sleep(0.2)

    asyncio.run(request_then_leave())
    asyncio.run(request_and_wait())
    assert calls == [0]


def test_release_free_memory_uses_glibc_where_there_is_one() -> None:
    assert memory.release_free_memory() is (memory._trim is not None)
