"""Small asyncio helpers that the standard library gets subtly wrong in Python 3.11.

``asyncio.wait_for(event.wait(), timeout)`` loses a cancellation that arrives as the timeout
fires: it raises TimeoutError instead (CPython gh-86296, fixed in 3.12 by rebuilding
``wait_for`` on ``asyncio.timeout``). A loop that waits for a wake-up with a timeout and
treats TimeoutError as "no news" then never ends when it is cancelled, and whoever awaits
the cancelled task waits forever: a node agent did not exit on SIGTERM this way.
``asyncio.timeout`` tells its own cancellation from another's (``Task.uncancel``), so
:func:`wait_event` is built on it.

A coroutine gives the event loop back only where it suspends, and one that does no I/O never
does: a pass over a cluster-sized collection (10k Services, allocation records) held the loop
for its whole length, and the process answered nothing meanwhile. :func:`in_turns` walks a
collection and gives the loop a turn every :data:`TURN_EVERY` items.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Final, TypeVar

__all__ = ["TURN_EVERY", "in_turns", "wait_event"]

T = TypeVar("T")

TURN_EVERY: Final = 500
"""Items :func:`in_turns` hands out between two turns of the event loop."""


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; whether it is set. A
    cancellation of the caller is always raised, never taken for the timeout."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def in_turns(items: Iterable[T], every: int = TURN_EVERY) -> AsyncIterator[T]:
    """``items``, one by one, with a turn of the event loop after every ``every`` of them."""
    for i, item in enumerate(items, 1):
        yield item
        if i % every == 0:
            await asyncio.sleep(0)
