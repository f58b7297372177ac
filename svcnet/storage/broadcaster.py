"""Fan-out of watch events to many subscribers, and the replay-then-live watch stream.

Theory of operation
-------------------
A backend publishes every committed change, in revision order, to one :class:`Broadcaster`
(always from the event-loop thread). Each watch owns a :class:`Subscription`: a bounded
``asyncio.Queue`` that receives the events under the watch's prefix. Publishing never waits:
if a subscriber's queue is full, that subscriber is *dropped* (its next read raises
:class:`WatchClosed`) instead of making the writer wait for the slowest reader. A dropped client
re-watches from the last revision it saw, which is cheap because history is replayed from the
store. This is kine's broadcaster, and the same contract etcd gives a slow gRPC watcher.

:func:`watch_stream` turns a subscription into the iterator ``Store.watch`` returns, following
the kine pattern that closes the list/watch race:

1. the backend subscribes *first* and notes ``live_from``, the revision of the last event
   already published (every later event is guaranteed to land in the queue);
2. it then replays stored history in ``(after_revision, live_from]`` in batches (this is also
   where a compacted start revision raises :class:`Compacted`);
3. finally it yields live events from the queue, dropping any whose revision it has already
   delivered, so nothing is missed and nothing repeats.

Everything here runs on the event loop; nothing is thread-safe except
:meth:`Subscription.close`, which only sets flags (it may run from a GC finaliser).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence

from svcnet.storage.interface import WatchClosed, WatchEvent

DEFAULT_BUFFER = 1024
"""Events a subscriber may have queued before it is considered too slow and dropped."""

StartFn = Callable[[], Awaitable[tuple[int, int]]]
"""Returns ``(after_revision, live_from)``; ``after_revision`` already resolved from 0 to now."""

ReplayFn = Callable[[int, int, int], Awaitable[tuple[Sequence[WatchEvent], int]]]
"""``replay(after_revision, cursor, live_from)`` returns the next batch of stored events with
revision in ``(cursor, live_from]`` and the new cursor (``>= live_from`` when done). It raises
Compacted if history after ``cursor`` is gone. It is only called while ``cursor < live_from``."""


class Subscription:
    """One subscriber's bounded queue of events under ``prefix``."""

    __slots__ = ("_closed_reason", "_queue", "prefix")

    def __init__(self, prefix: str, buffer: int) -> None:
        self.prefix = prefix
        # None is a wake-up sentinel pushed on close so that a reader blocked in get() notices.
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue(maxsize=buffer)
        self._closed_reason: str | None = None

    @property
    def is_closed(self) -> bool:
        return self._closed_reason is not None

    async def get(self) -> WatchEvent:
        """The next event; raises WatchClosed once the subscription was dropped or closed."""
        # Checked before reading: a dropped subscriber must not keep consuming stale events.
        if self._closed_reason is not None:
            raise WatchClosed(self._closed_reason)
        item = await self._queue.get()
        if item is None or self._closed_reason is not None:
            raise WatchClosed(self._closed_reason or "watch closed")
        return item

    def close(self, reason: str = "watch closed") -> None:
        """Unsubscribe. Only sets a flag: the broadcaster forgets closed subscribers lazily."""
        if self._closed_reason is None:
            self._closed_reason = reason

    def _offer(self, event: WatchEvent) -> bool:
        """Queue ``event`` without waiting; False if the subscriber is too far behind."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def _terminate(self, reason: str) -> None:
        """Close from the broadcaster side: free the backlog and wake a blocked reader."""
        self.close(reason)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


class Broadcaster:
    """Publishes events to every live subscription whose prefix matches the event's key."""

    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        if buffer < 1:
            raise ValueError("watch buffer must be at least 1")
        self._buffer = buffer
        self._subscribers: set[Subscription] = set()
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        return sum(1 for sub in self._subscribers if not sub.is_closed)

    def subscribe(self, prefix: str) -> Subscription:
        """A new subscription; after :meth:`close` it is born closed (reads raise WatchClosed)."""
        sub = Subscription(prefix, self._buffer)
        if self._closed:
            sub._terminate("store closed")
        else:
            self._subscribers.add(sub)
        return sub

    def publish(self, events: Iterable[WatchEvent]) -> None:
        """Hand ``events`` (in revision order) to the matching subscribers, never blocking."""
        if self._closed:
            return
        # Forget subscriptions their owners closed (Subscription.close only sets a flag).
        live = [sub for sub in self._subscribers if not sub.is_closed]
        if len(live) != len(self._subscribers):
            self._subscribers = set(live)
        for event in events:
            key = event.kv.key
            for sub in live:
                if sub.is_closed or not key.startswith(sub.prefix) or sub._offer(event):
                    continue
                # Too slow: waiting would stall every writer, so cut this watcher loose.
                self._subscribers.discard(sub)
                sub._terminate(f"watch on {sub.prefix!r} fell more than "
                               f"{self._buffer} events behind")

    def drop_all(self, reason: str) -> None:
        """End every current subscription with WatchClosed; later subscriptions work."""
        for sub in self._subscribers:
            sub._terminate(reason)
        self._subscribers.clear()

    def close(self) -> None:
        """End every subscription with WatchClosed and refuse new ones."""
        self._closed = True
        self.drop_all("store closed")


async def watch_stream(sub: Subscription, start: StartFn,
                       replay: ReplayFn) -> AsyncGenerator[WatchEvent, None]:
    """Replay history after the start revision, then live events, without gaps or repeats.

    ``sub`` must already be subscribed (before ``live_from`` was read). The subscription is
    closed when the generator ends for any reason, including ``aclose()`` and cancellation.
    """
    try:
        if sub.is_closed:
            await sub.get()  # raises WatchClosed with the reason
        after, live_from = await start()
        # Nothing to replay when the watch starts at or after live_from: the subscription
        # already covers it, even if history has been compacted since watch() was called.
        cursor = after
        while cursor < live_from:
            events, cursor = await replay(after, cursor, live_from)
            for event in events:
                yield event
        # Every event above max(after, live_from) arrives through the queue, in order. The guard
        # also drops anything at or below it (an event published both before and after the
        # subscription started, as seen by a backend that polls).
        floor = max(after, live_from)
        while True:
            event = await sub.get()
            if event.revision <= floor:
                continue
            floor = event.revision
            yield event
    finally:
        sub.close()


def open_watch(sub: Subscription, start: StartFn,
               replay: ReplayFn) -> AsyncGenerator[WatchEvent, None]:
    """:func:`watch_stream` for a backend's ``watch()``, with a safety net for abandoned watches.

    The subscription exists from this call on (so ``after_revision=0`` means "from the call", not
    "from the first iteration"). A generator that is never iterated never runs its ``finally``;
    the finaliser closes its subscription when it is garbage-collected instead.
    """
    stream = watch_stream(sub, start, replay)
    weakref.finalize(stream, sub.close, "watch abandoned")
    return stream
