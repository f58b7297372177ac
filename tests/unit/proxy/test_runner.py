"""The bounded-frequency runner, driven by a FakeClock (no real sleeping)."""

from __future__ import annotations

import asyncio

from svcnet.proxy.runner import BoundedFrequencyRunner
from svcnet.util.clock import FakeClock


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_coalesces_respects_min_interval_and_resyncs_fully() -> None:
    clock = FakeClock()
    calls: list[tuple[float, bool]] = []
    fail_next = [False]

    async def sync(full: bool) -> None:
        calls.append((clock.monotonic() - 1000.0, full))
        if fail_next[0]:
            fail_next[0] = False
            raise RuntimeError("nft failed")

    runner = BoundedFrequencyRunner(sync, min_interval=1.0, max_interval=60.0,
                                    retry_interval=5.0, clock=clock)
    task = asyncio.create_task(runner.run_forever())
    try:
        await settle()
        assert calls == [(0.0, True)], "the first sync is full and immediate"
        for _ in range(5):
            runner.request()  # a burst of changes
        await settle()
        assert len(calls) == 1, "not before min_interval"
        clock.advance(1.0)
        await settle()
        assert calls[-1] == (1.0, False) and len(calls) == 2, "one partial sync for the burst"
        clock.advance(59.9)
        await settle()
        assert len(calls) == 2
        clock.advance(0.2)
        await settle()
        assert calls[-1][1] is True and len(calls) == 3, "periodic full resync at max_interval"
        fail_next[0] = True
        clock.advance(1.0)
        runner.request()
        await settle()
        assert len(calls) == 4 and runner.failures == 1
        clock.advance(4.9)
        await settle()
        assert len(calls) == 4, "the retry waits retry_interval"
        clock.advance(0.2)
        await settle()
        assert calls[-1][1] is True and len(calls) == 5, "the retry is a full sync"
        assert runner.runs == 4
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
