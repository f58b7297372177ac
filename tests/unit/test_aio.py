"""wait_event: an Event with a timeout that never loses the caller's cancellation."""

from __future__ import annotations

import asyncio

import pytest

from svcnet.util.aio import wait_event


async def test_set_and_timeout() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True


async def test_a_cancellation_at_the_timeout_is_raised() -> None:
    """The race of CPython gh-86296: cancel the waiter just as its timeout fires, many times;
    every time the waiter must end with CancelledError (asyncio.wait_for in 3.11 sometimes
    returned TimeoutError, which a wake-up loop swallowed and so never ended)."""
    event = asyncio.Event()
    cancelled = 0
    for _ in range(300):
        waiter = asyncio.create_task(wait_event(event, 0.001))
        await asyncio.sleep(0.001)
        if waiter.done():
            # Its timeout ran (and it returned) before this task resumed, which a busy loop
            # may do: then there was no cancellation to lose.
            assert waiter.result() is False
            continue
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        cancelled += 1
    assert cancelled >= 30, "the race was hardly ever run"
