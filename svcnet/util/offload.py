"""Running a large request's CPU-bound steps off the event loop.

Theory of operation
-------------------
Everything the API server does runs on one asyncio event loop, so a step that computes for a
second (decoding, defaulting and validating a 3 MiB object, merging a patch into it, recording
its managedFields, encoding it) stalls every other client for that second: watches, node
agents, health checks. kube-apiserver, in Go, simply runs each request on its own goroutine.

The pure steps of a write (functions of the request's own objects) can run on another thread
instead. The GIL still lets one thread run Python at a time, but it hands over every
``sys.getswitchinterval()`` (5 ms), so the loop keeps serving small requests in between
while the large one computes: their latency grows by milliseconds, not by the large
request's whole run time.

* **Who goes.** A request is *heavy* once it has seen :data:`HEAVY_BYTES` of input: its body,
  or the stored object it updates (:func:`note_size`). Only heavy requests hop; a small
  write runs inline exactly as before (no thread hop, no queueing behind a heavy one).
  The mark lives in a context variable, so it belongs to the request's task and whatever
  it calls, as the user does for admission.
* **Where.** One dedicated thread (:func:`run`), not a pool: heavy requests queue behind
  each other, so however many arrive at once the loop shares the GIL with one of them, and
  the memory of one at a time is in flight. The context (user, heaviness) is carried over.
* **Background work.** :func:`off_loop` sends a step there whatever the request: the
  periodic allocation repair decodes and compares every stored Service (half a second at
  10k), which would otherwise stall every request each time it runs.
* **What.** Only functions of the request's own data: decoding, defaulting, validation,
  admission checks, patch merging, managedFields, encoding. Anything touching shared state
  (the store, allocations, watch caches) stays on the loop.
* **The collector.** A 3 MiB object is a million small containers, and Python's cyclic
  garbage collector walks every one of them on each full collection, holding the GIL for a
  few hundred milliseconds each time, whichever thread triggered it: the loop stalls as if
  the work ran on it. So a step runs with the collector paused (reference counting still
  frees everything as usual), and what it leaves alive is then frozen out of the collector's
  view (``gc.freeze``): the next steps' collections do not walk it again and again. Once no
  heavy step has run for :data:`THAW_AFTER` seconds, everything frozen goes back to the
  collector (``gc.unfreeze``), by then mostly freed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

__all__ = ["HEAVY_BYTES", "is_heavy", "note_size", "off_loop", "run"]

P = ParamSpec("P")
T = TypeVar("T")

HEAVY_BYTES: Final = 16 * 1024
"""Input from which a request's CPU-bound steps leave the event loop: about what a Pod of a
few hundred containers or a Service of a thousand ports takes, tens of milliseconds of work."""

THAW_AFTER: Final = 1.0
"""Seconds without heavy steps after which frozen objects go back to the collector."""

_heavy: contextvars.ContextVar[bool] = contextvars.ContextVar("svcnet_heavy", default=False)


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="svcnet-cpu")


def note_size(size: int) -> None:
    """The request being served has ``size`` bytes of input (a body, a stored object)."""
    if size >= HEAVY_BYTES:
        _heavy.set(True)


def is_heavy() -> bool:
    return _heavy.get()


async def run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``: inline for a light request, on the CPU thread for a heavy one
    (in a copy of the caller's context)."""
    if not _heavy.get():
        return fn(*args, **kwargs)
    return await off_loop(fn, *args, **kwargs)


async def off_loop(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the CPU thread (in a copy of the caller's context), heavy or
    not: for background work the size of the cluster (the allocation repair's pass over every
    Service), which no request waits for."""
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, _collector.paused, functools.partial(fn, *args, **kwargs))
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(_executor(), call)
    finally:
        loop.call_later(THAW_AFTER, _collector.thaw)


class _Collector:
    """The cyclic collector around heavy steps (see the module docstring)."""

    def __init__(self) -> None:
        self.last_step = 0.0  # when the last heavy step ended (monotonic)
        self.frozen = False  # whether a step froze objects that were not thawed since

    def paused(self, fn: Callable[[], T]) -> T:
        """``fn()`` with the collector paused; what it leaves alive is then frozen."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn()
        finally:
            gc.freeze()
            self.frozen = True
            self.last_step = time.monotonic()
            if enabled:
                gc.enable()

    def thaw(self) -> None:
        """Frozen objects go back to the collector once heavy steps stopped for a while.

        (``gc.unfreeze`` is constant-time; ``gc.get_freeze_count`` walks every frozen object,
        the whole heap of a server holding 10k Services: 70-130 ms on the event loop.)"""
        if time.monotonic() - self.last_step >= THAW_AFTER and self.frozen:
            self.frozen = False
            gc.unfreeze()


_collector = _Collector()
