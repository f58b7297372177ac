"""A bounded-frequency runner for proxy syncs (kube-proxy's BoundedFrequencyRunner, async).

Change notifications call :meth:`BoundedFrequencyRunner.request`, which never blocks; requests
that arrive while a sync is pending or running coalesce into one more sync. The loop keeps

* at least ``min_interval`` between the starts of two syncs (a burst of Service changes costs
  one ``nft`` transaction, not one per change);
* at most ``max_interval`` without a sync: that periodic sync is a *full* one, rewriting the
  table from scratch, the safety net against anything having changed the table behind us;
* after a failed sync, a retry after ``retry_interval``, also full.

Time comes from an injected :class:`~svcnet.util.clock.Clock`, so tests drive it without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from svcnet.util.clock import Clock, RealClock

log = logging.getLogger(__name__)

SyncFn = Callable[[bool], Awaitable[None]]
"""The sync; its argument says whether it must be a full one."""


class BoundedFrequencyRunner:
    def __init__(self, fn: SyncFn, *, min_interval: float = 0.05,
                 max_interval: float = 3600.0, retry_interval: float = 1.0,
                 clock: Clock | None = None, name: str = "proxy") -> None:
        if not 0 <= min_interval <= max_interval:
            raise ValueError("need 0 <= min_interval <= max_interval")
        self.fn = fn
        #: What the syncs are of, for the log (``proxy``, ``network policy``).
        self.name = name
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retry_interval = retry_interval
        self.clock: Clock = clock or RealClock()
        self._pending = asyncio.Event()
        self.runs = 0
        self.failures = 0

    def request(self) -> None:
        """Ask for a sync soon (coalesced with any other request)."""
        self._pending.set()

    async def _wait(self, timeout: float) -> bool:
        """Wait for a request or ``timeout``; True if a request came."""
        if self._pending.is_set():
            return True
        waiter = asyncio.ensure_future(self._pending.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(max(timeout, 0.0)))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, sleeper):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        return self._pending.is_set()

    async def run_forever(self) -> None:
        last_start: float | None = None
        full = True  # the first sync writes everything
        retry_at: float | None = None
        while True:
            now = self.clock.monotonic()
            if retry_at is not None:
                await self._wait(retry_at - now)
                if self.clock.monotonic() < retry_at:
                    await self.clock.sleep(retry_at - self.clock.monotonic())
            elif last_start is not None:
                requested = await self._wait(last_start + self.max_interval - now)
                if not requested:
                    full = True  # the periodic safety-net sync
                gap = last_start + self.min_interval - self.clock.monotonic()
                if gap > 0:
                    await self.clock.sleep(gap)
            self._pending.clear()
            last_start = self.clock.monotonic()
            try:
                await self.fn(full)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("%s sync failed; retrying in %.1fs with a full sync",
                              self.name, self.retry_interval)
                retry_at = self.clock.monotonic() + self.retry_interval
                full = True
                continue
            self.runs += 1
            retry_at = None
            full = False
