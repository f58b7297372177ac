"""Python's cyclic garbage collector, for processes that hold large heaps.

Reference counting frees nearly all of our garbage (decoded JSON is acyclic) the moment it is
dropped; the cyclic collector only looks for reference cycles. It walks a generation each time
enough container objects were allocated, and its oldest generation, which holds every cached
object, about every 70,000 net allocations once that generation grew by a quarter. So:

* :func:`gc_paused`: building a large table allocates hundreds of thousands of small objects
  that all stay alive; each allocation burst makes the collector walk the growing heap again
  for cycles that are not there (a third of a 10k-Service build, measured). The collector is
  off for the block and resumes afterwards.
* :func:`tune_for_large_heaps`: a long-running daemon (``svcnet server``, the node agent)
  caches every object it follows, millions of containers for 10k Services (the watch cache,
  the controllers' informers). With CPython's thresholds (700, 10, 10), a server filled with
  5,000 Services and then given 2,000 label patches spent 7.3 s in the collector (15 full
  collections of up to 0.9-2.2 s each, stalling every request meanwhile): about a fifth of its
  CPU time, and its latency tail. With (10,000, 10, 100) the same run spent 0.9 s and made no
  full collection, with the same peak memory (bench/write_cpu.py; docs/BENCHMARKS.md). The
  youngest generation is walked every 10,000 net allocations (milliseconds), the middle one
  every 100,000, and the oldest is considered after 100 of those (10 million net allocations,
  CPython's 25% growth rule still applying): cycles are still collected, later.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LARGE_HEAP_THRESHOLDS", "PauseWatch", "gc_paused", "tune_for_large_heaps"]

LARGE_HEAP_THRESHOLDS = (10_000, 10, 100)
"""``gc.set_threshold`` for daemons holding large caches (module doc)."""


def tune_for_large_heaps() -> None:
    """Set the collector's thresholds for a long-running daemon (module doc). Process-wide:
    only a command's entry point calls it."""
    gc.set_threshold(*LARGE_HEAP_THRESHOLDS)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block (re-enabled only if it was enabled)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class PauseWatch:
    """Reports each collection's generation and duration to ``observe`` (a metric), from
    :meth:`start` until :meth:`stop`; the collector's callbacks are process-wide, so a
    process may hold several, each removed on its own stop.

    A collection runs in whichever thread allocated at the wrong moment, possibly while that
    thread holds the metrics library's lock (prometheus_client's multiprocess mode has one
    lock for every value, and a collection can start inside an update): observing from the
    collector's callback could then wait on a lock its own thread holds, forever. So the
    callback only notes the pause, and :meth:`drain` reports what was noted: call it before
    each update of the metrics and before reading them."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self._observe = observe
        self._started = 0.0
        self._noted: deque[tuple[int, float]] = deque()  # thread-safe appends and pops

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self._noted.append((int(info.get("generation", 0)),
                                time.perf_counter() - self._started))

    def drain(self) -> None:
        """Report the collections noted since the last call."""
        while self._noted:
            self._observe(*self._noted.popleft())

    def start(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
