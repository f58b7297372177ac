"""client-go's work queue, for asyncio: dedup, delayed adds, rate-limited retries.

Theory of operation
-------------------
A controller's event handlers add *keys* (``namespace/name``), never objects; workers ``get`` a
key, reconcile it, and call ``done``. Three sets make that safe and cheap, exactly as in
client-go's ``util/workqueue/queue.go``:

* ``queue``: keys waiting to be handed out, in FIFO order;
* ``dirty``: keys that need processing (queued, or re-added while being processed);
* ``processing``: keys a worker holds right now.

``add(k)`` is a no-op if ``k`` is already dirty, so a burst of events for one object collapses
into one reconcile. ``get`` moves a key from ``queue`` to ``processing`` and clears its dirty
mark. ``add(k)`` while ``k`` is processing only marks it dirty; ``done(k)`` then puts it back on
the queue. Hence **a key is never processed by two workers at once**, and a change that
arrives mid-reconcile is never lost: it causes exactly one more pass.

:class:`DelayingQueue` adds ``add_after(k, delay)``: the key waits, then is ``add``-ed. Waiting keys
are deduplicated too (the earlier deadline wins). There is no timer task: any observer (``get``,
``len``) first promotes every key whose deadline has passed on the injected :class:`Clock`, and
a ``get`` with nothing ready sleeps on the clock until the earliest deadline or the next add.
Tests therefore drive time with :meth:`FakeClock.advance` and never sleep.

:class:`RateLimitingQueue` adds ``add_rate_limited(k)`` = ``add_after(k, limiter.when(k))``,
``forget(k)`` (reset k's failure history, after a success) and ``num_requeues(k)``. The default
limiter is client-go's ``DefaultControllerRateLimiter``: the *maximum* of a per-key exponential
back-off (5 ms · 2^failures, capped at 1000 s) and an overall token bucket (10 qps, burst 100),
so one hot failing key backs off alone while a mass failure cannot exceed the global rate.

``shutdown()`` refuses further adds and wakes every ``get``; keys already queued are still
handed out (as in client-go), then ``get`` raises :class:`QueueShutDown`. Keys still waiting
for their delay are dropped: controllers are level-triggered, a restart relists anyway.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from svcnet.util.clock import Clock, RealClock

__all__ = [
    "BucketRateLimiter",
    "DelayingQueue",
    "ExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "Queue",
    "QueueShutDown",
    "RateLimiter",
    "RateLimitingQueue",
    "default_controller_rate_limiter",
]

T = TypeVar("T", bound=Hashable)


class QueueShutDown(Exception):
    """``get`` on a queue that is shut down and empty."""


class Queue(Generic[T]):
    """The dedup queue with dirty/processing sets (client-go ``Type``)."""

    def __init__(self, *, clock: Clock | None = None, name: str = "") -> None:
        self.name = name
        self._clock: Clock = clock or RealClock()
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._shutting_down = False
        self._getters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, queued={len(self._queue)}, "
                f"processing={len(self._processing)})")

    def add(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return  # done() will queue it again
        self._queue.append(item)
        self._wake()

    def __len__(self) -> int:
        """Keys ready to be handed out (not counting processing or still-delayed ones)."""
        self._promote_ready()
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def is_processing(self, item: T) -> bool:
        return item in self._processing

    async def get(self) -> T:
        """The next key; it is now *processing* until :meth:`done`. Raises QueueShutDown."""
        loop = asyncio.get_running_loop()
        while True:
            self._promote_ready()
            if self._queue:
                item = self._queue.popleft()
                self._processing.add(item)
                self._dirty.discard(item)
                return item
            if self._shutting_down:
                raise QueueShutDown(self.name)
            waiter: asyncio.Future[None] = loop.create_future()
            self._getters.append(waiter)
            deadline = self._next_deadline()
            timer: asyncio.Task[None] | None = None
            try:
                if deadline is None:
                    await waiter
                else:
                    # Sleep on the injected clock until the earliest delayed key is due, unless
                    # an add (or an earlier add_after) wakes us first.
                    timer = asyncio.ensure_future(
                        self._clock.sleep(max(0.0, deadline - self._clock.monotonic())))
                    await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if timer is not None:
                    timer.cancel()
                if not waiter.done():
                    waiter.cancel()
                if waiter in self._getters:
                    self._getters.remove(waiter)

    def done(self, item: T) -> None:
        """The worker is finished with ``item``; re-queue it if it was added meanwhile."""
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.append(item)
            self._wake()

    def shutdown(self) -> None:
        self._shutting_down = True
        self._drop_waiting()
        self._wake()

    # -- hooks for the delaying layer -------------------------------------------------------

    def _promote_ready(self) -> None:
        """Move delayed keys whose time has come onto the queue (none at this layer)."""

    def _next_deadline(self) -> float | None:
        """The monotonic time the earliest delayed key becomes ready (None if none)."""
        return None

    def _drop_waiting(self) -> None:
        """Forget delayed keys (on shutdown)."""

    def _wake(self) -> None:
        # Wake every blocked getter; each re-checks the queue. Workers are few, and waking all
        # of them keeps the bookkeeping trivial (no lost wake-ups when one getter is cancelled).
        getters, self._getters = self._getters, []
        for fut in getters:
            if not fut.done():
                fut.set_result(None)


class DelayingQueue(Queue[T]):
    """A :class:`Queue` whose keys can also be added after a delay (client-go
    ``DelayingInterface``)."""

    def __init__(self, *, clock: Clock | None = None, name: str = "") -> None:
        super().__init__(clock=clock, name=name)
        self._waiting: list[tuple[float, int, T]] = []  # heap of (ready_at, seq, item)
        self._ready_at: dict[T, float] = {}
        self._seq = itertools.count()

    def add_after(self, item: T, delay: float) -> None:
        """``add(item)`` once ``delay`` seconds have passed on the clock."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        ready_at = self._clock.monotonic() + delay
        current = self._ready_at.get(item)
        if current is not None and current <= ready_at:
            return  # already waiting, and due sooner
        # A superseded heap entry stays behind; _promote_ready skips it (lazy deletion).
        self._ready_at[item] = ready_at
        heapq.heappush(self._waiting, (ready_at, next(self._seq), item))
        self._wake()  # a blocked get may need to shorten its sleep

    @property
    def waiting(self) -> int:
        """Keys waiting for their delay."""
        return len(self._ready_at)

    def _promote_ready(self) -> None:
        now = self._clock.monotonic()
        while self._waiting and self._waiting[0][0] <= now:
            ready_at, _, item = heapq.heappop(self._waiting)
            if self._ready_at.get(item) != ready_at:
                continue  # superseded by an earlier deadline, already promoted
            del self._ready_at[item]
            self.add(item)

    def _next_deadline(self) -> float | None:
        return self._waiting[0][0] if self._waiting else None

    def _drop_waiting(self) -> None:
        self._waiting.clear()
        self._ready_at.clear()


# -- rate limiters --------------------------------------------------------------------------


class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float:
        """Seconds ``item`` should wait before its next try (records one more failure)."""
        ...

    def forget(self, item: Hashable) -> None:
        """``item`` succeeded: reset its history."""
        ...

    def num_requeues(self, item: Hashable) -> int:
        """How many failures ``item`` has had since it was last forgotten."""
        ...


class ExponentialFailureRateLimiter:
    """``base · 2^failures`` per key, capped at ``max_delay`` (client-go's per-item limiter)."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp >= 64:  # past any sane cap, and 2.0**exp would overflow a float soon after
            return self.max_delay
        return min(self.max_delay, self.base_delay * 2.0 ** exp)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket (``qps`` refill, ``burst`` capacity), like x/time/rate's
    ``Limiter.Reserve().Delay()``: every call takes a token, possibly one not yet refilled,
    and is told how long to wait for it."""

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock | None = None
                 ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be positive and burst at least 1")
        self.qps = qps
        self.burst = burst
        self._clock: Clock = clock or RealClock()
        self._tokens = float(burst)
        self._last = self._clock.monotonic()

    def when(self, item: Hashable) -> float:
        now = self._clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of the limiters asks for."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        # Every limiter must see every failure (each keeps its own state), so no short-cut.
        return max([limiter.when(item) for limiter in self.limiters])

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock | None = None) -> MaxOfRateLimiter:
    """client-go's DefaultControllerRateLimiter: 5 ms…1000 s per key, 10 qps / 100 burst."""
    return MaxOfRateLimiter(ExponentialFailureRateLimiter(0.005, 1000.0),
                            BucketRateLimiter(10.0, 100, clock=clock))


class RateLimitingQueue(DelayingQueue[T]):
    """A :class:`DelayingQueue` with per-key back-off for retries (client-go
    ``RateLimitingInterface``)."""

    def __init__(self, rate_limiter: RateLimiter | None = None, *, clock: Clock | None = None,
                 name: str = "") -> None:
        super().__init__(clock=clock, name=name)
        self.rate_limiter: RateLimiter = rate_limiter or default_controller_rate_limiter(
            self._clock)

    def add_rate_limited(self, item: T) -> None:
        """Retry ``item`` after the limiter's delay (counts as one more failure)."""
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """Stop tracking ``item``'s failures (it succeeded, or we gave up on it)."""
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)
