"""Controller runner: workers that drain a rate-limited work queue into ``sync(key)``.

Theory of operation (after the EndpointSlice controller's ``processNextWorkItem``/``handleErr``)
---------------------------------------------------------------------------------------------
Informer handlers put keys on :attr:`Controller.queue`. :meth:`Controller.run` first waits until
every informer it was given has synced (so a key missing from a cache means "deleted", not "not
listed yet"), then runs ``workers`` tasks, each looping:

    key = await queue.get()         # never a key another worker holds
    try:   await sync(key)          # level-triggered: re-reads everything from the caches
    ok  →  queue.forget(key)        # reset the key's back-off
    err →  queue.add_rate_limited(key) while num_requeues(key) < max_retries,
           else forget it and log: the informer's periodic resync will bring it back
    finally: queue.done(key)        # re-queues it if it changed while we worked

``sync`` signals an expected, temporary condition (a 409 conflict, a stale cache, a full pool)
by raising :class:`RequeueError`: it is retried the same way but logged in one line, without a
traceback. Any other exception is logged with its traceback.

Server outages: a sync that failed because the API server could not serve (no answer at all,
429, 502, or the 503/504 of a store outage; see :func:`server_unavailable`) says
nothing about the key, so it is retried with its back-off capped at
``UNAVAILABLE_RETRY_CAP`` and is never dropped after ``max_retries``: once the server is back,
every such key is reconciled within that cap, however long the outage lasted. (client-go
drops it after ``maxRetries`` and waits for a resync; a Service created just before an outage
would then wait for the next resync for its EndpointSlice.)

Fairness: a worker gives the event loop a turn after every key (a goroutine needs no such
thing), so that other work of the process (the API server it may share the loop with, the
other controllers) goes on while a long queue drains.

Shutdown (:meth:`stop`): the queue is shut down, each worker finishes the key it holds and exits
(keys still queued are dropped; the next start relists and re-queues everything), and ``run``
returns; if the caches never synced, the wait for them is cancelled. Cancelling the ``run`` task
also works and interrupts syncs in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from svcnet.api.errors import StatusError
from svcnet.client.informer import Informer
from svcnet.client.rest import TransportError
from svcnet.client.workqueue import QueueShutDown, RateLimitingQueue
from svcnet.util.clock import Clock, RealClock

__all__ = ["DEFAULT_MAX_RETRIES", "UNAVAILABLE_RETRY_CAP", "Controller", "ControllerStats",
           "RequeueError", "Syncable", "server_unavailable"]

log = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 15
"""With the default 5 ms base this gives up after ~164 s of doubling delays (the 15th is ~82 s),
as the EndpointSlice controller does; resync re-queues the key later."""


UNAVAILABLE_RETRY_CAP = 5.0
"""Longest back-off, in seconds, for a key whose sync failed because the server could not serve."""


class RequeueError(Exception):
    """``sync`` could not finish for an expected, temporary reason: retry with back-off."""


_UNAVAILABLE_CODES = frozenset({429, 502, 503, 504})


def server_unavailable(err: BaseException) -> bool:
    """True if ``err`` says the API server could not serve, not that the key is at fault: no
    usable answer, 429 TooManyRequests, 502, 503 ServiceUnavailable or 504 Timeout (a store
    outage). A 500 is a bug somewhere and takes the ordinary retry ladder."""
    if isinstance(err, TransportError):
        return True
    return isinstance(err, StatusError) and err.code in _UNAVAILABLE_CODES


class Syncable(Protocol):
    """An informer, as far as the runner cares."""

    def has_synced(self) -> bool: ...

    async def wait_for_sync(self) -> None: ...


@dataclass(slots=True)
class ControllerStats:
    """Counters a health check or metrics endpoint can read."""

    syncs: int = 0
    failures: int = 0
    dropped: int = 0
    last_success: float | None = None
    """Clock monotonic time of the last successful sync."""


class Controller:
    """Runs ``sync(key)`` for every key on :attr:`queue` (see the module doc)."""

    def __init__(self, name: str, sync: Callable[[str], Awaitable[None]], *,
                 informers: Sequence[Syncable] = (), workers: int = 1,
                 max_retries: int = DEFAULT_MAX_RETRIES, clock: Clock | None = None,
                 queue: RateLimitingQueue[str] | None = None) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self._sync = sync
        self._informers = list(informers)
        self.workers = workers
        self.max_retries = max_retries
        self._clock: Clock = clock or RealClock()
        # Not `queue or ...`: an empty queue is falsy (it has a __len__).
        self.queue: RateLimitingQueue[str] = (
            queue if queue is not None else RateLimitingQueue(clock=self._clock, name=name))
        self.stats = ControllerStats()
        self._task: asyncio.Task[None] | None = None
        self._workers_started = False

    def __repr__(self) -> str:
        return f"Controller({self.name!r}, workers={self.workers}, queue={self.queue!r})"

    def has_synced(self) -> bool:
        return all(i.has_synced() for i in self._informers)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"controller-{self.name}")
        return self._task

    async def stop(self) -> None:
        """Let workers finish the keys they hold, then return."""
        self.queue.shutdown()
        task, self._task = self._task, None
        if task is None:
            return
        if not self._workers_started:
            # Still waiting for caches that may never sync (API unreachable): nothing to finish.
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        try:
            # Waiting on the informers' events, not polling: start-up is as fast as the lists.
            await asyncio.gather(*(i.wait_for_sync() for i in self._informers))
            if self.queue.shutting_down:
                return
            log.info("%s: caches synced, starting %d worker(s)", self.name, self.workers)
            self._workers_started = True
            async with asyncio.TaskGroup() as tg:
                for n in range(self.workers):
                    tg.create_task(self._worker(), name=f"{self.name}-worker-{n}")
        finally:
            self.queue.shutdown()

    async def _worker(self) -> None:
        while await self.process_next_work_item():
            # A sync that needs no I/O (nothing changed) never suspends, nor does a get()
            # with keys waiting: without this a queue of 10k such keys (a resync of every
            # Service) would run on the event loop in one go, over a second in which the
            # process answers nothing else. One turn of the loop per key.
            await asyncio.sleep(0)

    # -- one item ---------------------------------------------------------------------------

    async def process_next_work_item(self) -> bool:
        """Take one key and sync it; False once the queue is shut down."""
        if self.queue.shutting_down:
            return False
        try:
            key = await self.queue.get()
        except QueueShutDown:
            return False
        try:
            await self._sync(key)
        except Exception as e:
            self.stats.failures += 1
            self._handle_error(key, e)
        else:
            self.stats.last_success = self._clock.monotonic()
            self.queue.forget(key)
        finally:
            self.stats.syncs += 1
            self.queue.done(key)
        return True

    def _handle_error(self, key: str, err: Exception) -> None:
        retries = self.queue.num_requeues(key)
        if server_unavailable(err):
            # Not the key's fault: keep it, and retry soon once the server is back.
            log.info("%s: %s: server unavailable: %s (retry %d)", self.name, key, err,
                     retries + 1)
            delay = min(self.queue.rate_limiter.when(key), UNAVAILABLE_RETRY_CAP)
            self.queue.add_after(key, delay)
            return
        if retries < self.max_retries:
            if isinstance(err, RequeueError) or (isinstance(err, StatusError)
                                                 and err.code == 409):
                log.info("%s: %s: %s (retry %d)", self.name, key, err, retries + 1)
            else:
                log.warning("%s: syncing %s failed (retry %d)", self.name, key, retries + 1,
                            exc_info=err)
            self.queue.add_rate_limited(key)
            return
        self.stats.dropped += 1
        log.warning("%s: dropping %s out of the queue after %d retries: %s", self.name, key,
                    retries, err)
        self.queue.forget(key)


class InformerController:
    """The lifecycle every informer-fed controller shares: start its informers and the runner,
    stop them in the opposite order. Subclasses set ``self.controller`` and list their
    ``informers``."""

    controller: Controller

    @property
    def informers(self) -> tuple[Informer, ...]:
        raise NotImplementedError

    @property
    def queue(self) -> RateLimitingQueue[str]:
        return self.controller.queue

    def start(self) -> None:
        """Start the informers and the workers (which wait for every cache to sync)."""
        for informer in self.informers:
            informer.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        for informer in self.informers:
            await informer.stop()

    def has_synced(self) -> bool:
        return self.controller.has_synced()
