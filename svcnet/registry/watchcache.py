"""The watch cache: one store watch per resource, its events shared by every watcher.

Theory of operation
-------------------
This follows Kubernetes' cacher (staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go and
watch_cache.go), cut down to what a watch needs:

* **One store watch per resource.** A :class:`WatchCache` belongs to one registry. While it has
  watchers, one task (the *pump*) reads the store's watch of the resource's whole prefix, from
  the store revision current when the cache started, and keeps the last ``history`` events in a
  ring, so a watch that starts a little in the past (at the revision of a list it just made, or
  where a dropped stream left off) is served from memory.
* **One decode and one serialization per event.** Each change becomes one :class:`CachedEvent`
  shared by every watcher. Its object is decoded on first use (only selectors need it), and its
  watch line (``{"type":...,"object":...}``) is built once per event type from the stored JSON,
  the resourceVersion spliced in, with no decode/encode round trip (the same splice the raw list
  uses).
* **Bounded per-watcher buffers; a slow watcher is terminated, not waited for.** Dispatching an
  event appends it to each matching watcher's buffer and never waits. A watcher whose buffer
  holds ``buffer`` undelivered events is terminated (cacher.go's ``forget``/terminate of a
  blocked cacheWatcher): its buffer is freed and its stream ends, and the client re-watches from
  the last resourceVersion it saw, which the ring usually still holds.
* **Batches.** A watcher takes everything buffered at once (:meth:`Watcher.next_batch`), so the
  HTTP side writes one chunk per wake-up rather than one per event.

A watch that starts before the ring's oldest event, or while the cache cannot start, is served
by a :class:`Watcher` of its own fed straight from the store (history replayed from the store's
log, 410 Gone on a compacted revision), with the same interface. When the store watch fails
(store unavailable, compacted, closed), every watcher of the cache receives that error after the
events before it, and the next watch starts a fresh cache. When the last watcher leaves, the
pump stops: nothing is decoded or held for a resource nobody watches.

Everything runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from svcnet.storage.interface import (
    Compacted,
    EventType,
    KeyValue,
    Store,
    WatchClosed,
    WatchEvent,
)

Obj = dict[str, Any]

DEFAULT_HISTORY = 1024
"""Events kept for watches that start in the recent past."""
DEFAULT_BUFFER = 1024
"""Undelivered events a watcher may have before it is terminated."""

_METADATA_OPEN = b'"metadata":{'


def with_resource_version(raw: bytes, revision: int) -> bytes:
    """Splice ``metadata.resourceVersion`` into stored JSON without parsing it.

    Stored objects are written by ``Registry.encode`` with ``apiVersion`` and ``kind``
    (validated, so free of this byte sequence) before ``metadata``, so the first
    ``"metadata":{`` is the object's own.
    """
    at = raw.find(_METADATA_OPEN)
    if at < 0:
        return raw
    cut = at + len(_METADATA_OPEN)
    sep = b"" if raw[cut:cut + 1] == b"}" else b","
    return raw[:cut] + b'"resourceVersion":"%d"' % revision + sep + raw[cut:]


Decoder = Callable[[KeyValue], Obj]


class CachedEvent:
    """One change, shared read-only by every watcher that receives it."""

    __slots__ = ("_decode", "_lines", "_obj", "_prev", "event")

    def __init__(self, event: WatchEvent, decode: Decoder) -> None:
        self.event = event
        self._decode = decode
        self._obj: Obj | None = None
        self._prev: Obj | None = None
        self._lines: dict[str, bytes] = {}

    @property
    def type(self) -> EventType:
        return self.event.type

    @property
    def revision(self) -> int:
        return self.event.kv.mod_revision

    @property
    def key(self) -> str:
        return self.event.kv.key

    @property
    def obj(self) -> Obj:
        """The object after the change (for DELETED, its last state), decoded once."""
        if self._obj is None:
            self._obj = self._decode(self.event.kv)
        return self._obj

    @property
    def prev(self) -> Obj | None:
        """The object before the change (None for ADDED), decoded once."""
        if self.event.prev is None:
            return None
        if self._prev is None:
            self._prev = self._decode(self.event.prev)
        return self._prev

    def line(self, event_type: str) -> bytes:
        """``{"type":event_type,"object":<the object>}`` and a newline, built once per type."""
        line = self._lines.get(event_type)
        if line is None:
            kv = self.event.kv
            line = (b'{"type":"' + event_type.encode() + b'","object":'
                    + with_resource_version(kv.value, kv.mod_revision) + b"}\n")
            self._lines[event_type] = line
        return line

    def encoded(self, key: str, encode: Callable[[], bytes]) -> bytes:
        """Another serialization of this event (``key`` names it: a protobuf frame), built once
        for all watchers, as upstream's cacher keeps one per encoder (``cachingObject``)."""
        out = self._lines.get(key)
        if out is None:
            out = self._lines[key] = encode()
        return out


class Watcher:
    """One watch's bounded buffer of events under ``prefix`` with revision above its floor."""

    __slots__ = ("_buffer", "_closed", "_error", "_on_close", "_pending", "_replayed", "_space",
                 "_waiter", "floor", "prefix")

    def __init__(self, prefix: str, floor: int, buffer: int,
                 on_close: Callable[[Watcher], None]) -> None:
        self.prefix = prefix
        self.floor = floor
        self._buffer = buffer
        self._pending: list[CachedEvent] = []
        self._replayed = 0
        """Events replayed from the ring on joining: they do not count against the buffer."""
        self._error: BaseException | None = None
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._on_close = on_close

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, event: CachedEvent) -> None:
        """Buffer ``event`` if it is this watcher's; terminate the watcher if it is full."""
        if self._error is not None or event.revision <= self.floor \
                or not event.key.startswith(self.prefix):
            return
        if len(self._pending) - self._replayed >= self._buffer:
            # Too slow: waiting would stall every other watcher, so cut this one loose.
            self._pending = []
            self.fail(WatchClosed(f"watch on {self.prefix!r} fell more than "
                                  f"{self._buffer} events behind"))
            self._on_close(self)
            return
        self.floor = event.revision
        self._pending.append(event)
        self._wake()

    async def put(self, event: CachedEvent) -> None:
        """:meth:`offer`, but wait for room instead of terminating (a feed that can wait)."""
        while len(self._pending) >= self._buffer and self._error is None:
            self._space = asyncio.get_running_loop().create_future()
            await self._space
        self.offer(event)

    def fail(self, error: BaseException) -> None:
        """End the watch with ``error`` once the events buffered before it are taken."""
        if self._error is None:
            self._error = error
            self._wake()
            if self._space is not None:
                _set_result(self._space)

    async def next_batch(self, timeout: float) -> list[CachedEvent]:
        """Every buffered event, waiting up to ``timeout`` seconds for one ([] if none came).

        Raises the error the watch ended with (WatchClosed, Compacted, Unavailable, ...) once
        the events before it are delivered.
        """
        if not self._pending and self._error is None and timeout > 0:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _set_result, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._pending:
            batch, self._pending = self._pending, []
            self._replayed = 0
            if self._space is not None:
                _set_result(self._space)
            return batch
        if self._error is not None:
            raise self._error
        return []

    def close(self) -> None:
        """Leave the cache (or stop the store watch feeding this watcher). Idempotent."""
        if not self._closed:
            self._closed = True
            self._pending = []
            self.fail(WatchClosed("watch closed"))
            self._on_close(self)

    def _wake(self) -> None:
        if self._waiter is not None:
            _set_result(self._waiter)


def _set_result(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class WatchCache:
    """The shared watch of one resource (see the module docstring)."""

    def __init__(self, store: Store, prefix: str, decode: Decoder, *,
                 history: int = DEFAULT_HISTORY, buffer: int = DEFAULT_BUFFER) -> None:
        self.store = store
        self.prefix = prefix
        self._decode = decode
        if buffer < history:
            raise ValueError("a watcher's buffer must hold the whole history it is replayed")
        self._history: deque[CachedEvent] = deque(maxlen=history)
        self._buffer = buffer
        self._watchers: set[Watcher] = set()
        self._known_from = -1  # every event above this revision is in the ring or coming
        self._pump: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock = asyncio.Lock()
        self._resume_at: int | None = None
        """Where a store watch that failed stopped (its events are still in the ring): the next
        one resumes there, so watchers re-watching after a store blip are served by the cache
        instead of each getting a store watch of its own."""

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    async def watch(self, prefix: str, after_revision: int) -> Watcher:
        """A watcher of events under ``prefix`` (within the cache's) after ``after_revision``.

        ``after_revision`` 0 means "from now". Errors reaching the store before the watch
        exists (Unavailable) are raised here; later ones arrive through the watcher.
        """
        if self._pump is not None and (self._pump.done() or self._pump.get_loop()
                                       is not asyncio.get_running_loop()):
            # A pump of an event loop that is gone (a registry used again under a new loop).
            self._pump = None
            self._watchers = set()
        if self._pump is None:
            async with self._starting:
                if self._pump is None:
                    if self._resume_at is not None:
                        revision = self._resume_at
                    else:
                        revision = await self.store.current_revision()
                        self._known_from = revision
                        self._history.clear()
                    self._resume_at = None
                    self._pump = asyncio.get_running_loop().create_task(
                        self._run(self.store.watch(self.prefix, revision)),
                        name=f"watch cache {self.prefix}")
        if after_revision == 0:
            after_revision = max(self._known_from,
                                 self._history[-1].revision if self._history else 0)
        if after_revision < self._known_from:
            return self._direct(prefix, after_revision)
        watcher = Watcher(prefix, after_revision, self._buffer, self._forget)
        for event in self._history:
            watcher.offer(event)
        watcher._replayed = len(watcher._pending)
        self._watchers.add(watcher)
        return watcher

    def _direct(self, prefix: str, after_revision: int) -> Watcher:
        """A watcher fed by a store watch of its own (history older than the ring)."""
        task: asyncio.Task[None] | None = None

        def stop(_: Watcher) -> None:
            if task is not None:
                task.cancel()

        watcher = Watcher(prefix, after_revision, self._buffer, stop)
        events = self.store.watch(prefix, after_revision)

        async def feed() -> None:
            try:
                async for event in events:
                    # Replayed history may be long: wait for the client rather than drop it.
                    await watcher.put(CachedEvent(event, self._decode))
                    if watcher.closed:
                        return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                watcher.fail(e)
            else:
                watcher.fail(WatchClosed("watch ended"))
            finally:
                closer = getattr(events, "aclose", None)
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await closer()

        task = asyncio.get_running_loop().create_task(feed(), name=f"watch {prefix}")
        return watcher

    async def _run(self, events: AsyncIterator[WatchEvent]) -> None:
        error: BaseException
        try:
            async for event in events:
                cached = CachedEvent(event, self._decode)
                if len(self._history) == self._history.maxlen:
                    self._known_from = self._history[0].revision
                self._history.append(cached)
                for watcher in tuple(self._watchers):  # offer() may remove one
                    watcher.offer(cached)
            error = WatchClosed("watch ended")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            error = e
        finally:
            closer = getattr(events, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        # The store watch failed: hand the error to everyone; the next store watch resumes
        # where this one stopped, unless the store no longer has that history.
        watchers, self._watchers = self._watchers, set()
        self._pump = None
        if isinstance(error, Compacted):
            self._history.clear()
            self._resume_at = None
        else:
            self._resume_at = self._history[-1].revision if self._history else self._known_from
        for watcher in watchers:
            watcher.fail(error)

    def _forget(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        if not self._watchers and self._pump is not None:
            self._pump.cancel()
            self._pump = None
            self._history.clear()
            self._resume_at = None

    async def close(self) -> None:
        """Stop the pump and end every watcher (for shutdown and tests)."""
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        watchers, self._watchers = self._watchers, set()
        for watcher in watchers:
            watcher.fail(WatchClosed("watch cache closed"))
