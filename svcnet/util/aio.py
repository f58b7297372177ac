"""Small asyncio helpers that the standard library gets subtly wrong in Python 3.11.

``asyncio.wait_for(event.wait(), timeout)`` loses a cancellation that arrives as the timeout
fires: it raises TimeoutError instead (CPython gh-86296, fixed in 3.12 by rebuilding
``wait_for`` on ``asyncio.timeout``). A loop that waits for a wake-up with a timeout and
treats TimeoutError as "no news" then never ends when it is cancelled, and whoever awaits
the cancelled task waits forever: a node agent did not exit on SIGTERM this way.
``asyncio.timeout`` tells its own cancellation from another's (``Task.uncancel``), so
:func:`wait_event` is built on it.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; whether it is set. A
    cancellation of the caller is always raised, never taken for the timeout."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
