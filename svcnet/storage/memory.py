"""MemoryStore: the in-memory reference backend, and the fake that unit tests use.

Theory of operation
-------------------
State is a multi-version map with one store-wide revision counter, as in etcd:

* ``_current`` maps each live key to its :class:`KeyValue`; ``_keys`` is the same key set kept
  sorted, so a prefix list is a bisect plus a slice.
* ``_history`` maps every key that still has history to its versions, oldest first, as
  ``(revision, value-or-None)`` pairs (None = deleted at that revision); ``_history_keys`` is
  that key set sorted. A list at a past revision ``R`` picks, per key, the last version at or
  below ``R``.
* ``_events`` is the change log (one :class:`WatchEvent` per revision above the compacted one),
  which watches replay from.

``compact(C)`` keeps exactly what is needed to answer any read at a revision ``>= C``: every
version above ``C``, plus each key's last version at or below ``C`` unless that version is a
deletion. (Dropping every non-current version would be wrong: a key written before ``C`` and
again after it must still show its old value in a list at ``C``.)

Concurrency: the store is used from one event loop. Every method mutates state without awaiting
in between, so each operation is atomic with respect to other tasks. Each call still yields to
the loop once on entry, like the round trip a real backend makes, so concurrent tasks really do
interleave between a ``get`` and the ``update`` that follows it: the races a caller must handle
against SQLite or etcd (Conflict, KeyExists) show up against this fake as well.

Watches follow :mod:`svcnet.storage.broadcaster`: subscribe, replay ``_events`` after the start
revision, then live events. Writes publish synchronously, so ``live_from`` is exactly the
revision current when ``watch()`` was called.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left, bisect_right, insort
from collections.abc import AsyncGenerator, Iterator, Sequence

from svcnet.storage.broadcaster import DEFAULT_BUFFER, Broadcaster, open_watch
from svcnet.storage.interface import (
    Compacted,
    Conflict,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListResult,
    StorageError,
    WatchEvent,
)

_Version = tuple[int, KeyValue | None]


def _version_rev(version: _Version) -> int:
    return version[0]


def _event_rev(event: WatchEvent) -> int:
    return event.revision


def _keys_in_range(sorted_keys: list[str], prefix: str, start_after: str) -> Iterator[str]:
    """Keys of ``sorted_keys`` under ``prefix`` and strictly after ``start_after``, in order."""
    if start_after >= prefix:
        i = bisect_right(sorted_keys, start_after)
    else:
        i = bisect_left(sorted_keys, prefix)
    for key in sorted_keys[i:]:
        if not key.startswith(prefix):
            return
        yield key


class MemoryStore:
    """The reference :class:`~svcnet.storage.interface.Store`; nothing persists.

    ``watch_buffer`` is how many events a watcher may lag behind before it is dropped.
    """

    def __init__(self, *, watch_buffer: int = DEFAULT_BUFFER) -> None:
        self._rev = 0
        self._compact_rev = 0
        self._current: dict[str, KeyValue] = {}
        self._keys: list[str] = []
        self._history: dict[str, list[_Version]] = {}
        self._history_keys: list[str] = []
        self._events: list[WatchEvent] = []
        self._broadcaster = Broadcaster(watch_buffer)
        self._closed = False

    async def _enter(self) -> None:
        # One suspension per call, modelling a backend round trip (see the module docstring).
        await asyncio.sleep(0)
        if self._closed:
            raise StorageError("store is closed")

    # -- reads --------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        await self._enter()
        return self._current.get(key)

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> ListResult:
        await self._enter()
        if revision < 0 or limit < 0:
            raise ValueError("revision and limit must not be negative")
        if revision and revision < self._compact_rev:
            raise Compacted(revision, self._compact_rev)
        items: list[KeyValue] = []
        more = False
        if revision == 0 or revision >= self._rev:
            # A revision in the future is served as "now", and reported as such.
            served_at = self._rev
            for key in _keys_in_range(self._keys, prefix, start_after):
                if limit and len(items) == limit:
                    more = True
                    break
                items.append(self._current[key])
        else:
            served_at = revision
            for key in _keys_in_range(self._history_keys, prefix, start_after):
                versions = self._history[key]
                i = bisect_right(versions, revision, key=_version_rev)
                kv = versions[i - 1][1] if i else None
                if kv is None:
                    continue  # absent at that revision: not yet created, or deleted
                if limit and len(items) == limit:
                    more = True
                    break
                items.append(kv)
        return ListResult(items=items, revision=served_at, more=more)

    async def count(self, prefix: str) -> int:
        await self._enter()
        return sum(1 for _ in _keys_in_range(self._keys, prefix, ""))

    async def current_revision(self) -> int:
        await self._enter()
        return self._rev

    async def compact_revision(self) -> int:
        await self._enter()
        return self._compact_rev

    # -- writes -------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        await self._enter()
        if key in self._current:
            raise KeyExists(key)
        rev = self._rev + 1
        kv = KeyValue(key=key, value=value, mod_revision=rev, create_revision=rev)
        self._apply(WatchEvent(EventType.ADDED, kv, None))
        return kv

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        await self._enter()
        prev = self._current.get(key)
        if prev is None:
            raise KeyNotFound(key)
        if prev.mod_revision != expected_revision:
            raise Conflict(key, prev)
        kv = KeyValue(key=key, value=value, mod_revision=self._rev + 1,
                      create_revision=prev.create_revision)
        self._apply(WatchEvent(EventType.MODIFIED, kv, prev))
        return kv

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        await self._enter()
        prev = self._current.get(key)
        if prev is None:
            raise KeyNotFound(key)
        if expected_revision and prev.mod_revision != expected_revision:
            raise Conflict(key, prev)
        kv = KeyValue(key=key, value=prev.value, mod_revision=self._rev + 1,
                      create_revision=prev.create_revision)
        self._apply(WatchEvent(EventType.DELETED, kv, prev))
        return kv

    def _apply(self, event: WatchEvent) -> None:
        """Record one change at the next revision and publish it (no await: atomic)."""
        kv = event.kv
        key = kv.key
        self._rev = event.revision
        if event.type is EventType.DELETED:
            del self._current[key]
            del self._keys[bisect_left(self._keys, key)]
            version: _Version = (event.revision, None)
        else:
            if key not in self._current:
                insort(self._keys, key)
            self._current[key] = kv
            version = (event.revision, kv)
        versions = self._history.get(key)
        if versions is None:
            self._history[key] = [version]
            insort(self._history_keys, key)
        else:
            versions.append(version)
        self._events.append(event)
        self._broadcaster.publish((event,))

    async def compact(self, revision: int) -> None:
        await self._enter()
        # Compacting past "now" would make history for revisions not yet written disappear
        # as they happen; clamp instead of failing (the caller only wants old history gone).
        target = min(revision, self._rev)
        if target <= self._compact_rev:
            return
        cut = bisect_right(self._events, target, key=_event_rev)
        touched = {event.kv.key for event in self._events[:cut]}
        del self._events[:cut]
        for key in touched:
            versions = self._history[key]
            n_old = bisect_right(versions, target, key=_version_rev)
            # Keep the last version at or below the target (a list at the target needs it)
            # unless it is a deletion, which reads the same as no history at all.
            keep_from = n_old - 1 if versions[n_old - 1][1] is not None else n_old
            del versions[:keep_from]
            if not versions:
                del self._history[key]
                del self._history_keys[bisect_left(self._history_keys, key)]
        self._compact_rev = target

    # -- watch --------------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> AsyncGenerator[WatchEvent, None]:
        if after_revision < 0:
            raise ValueError("after_revision must not be negative")
        sub = self._broadcaster.subscribe(prefix)
        live_from = self._rev

        async def start() -> tuple[int, int]:
            return (after_revision or live_from), live_from

        async def replay(after: int, cursor: int,
                         upto: int) -> tuple[Sequence[WatchEvent], int]:
            if cursor < self._compact_rev:
                raise Compacted(after, self._compact_rev)
            lo = bisect_right(self._events, cursor, key=_event_rev)
            hi = bisect_right(self._events, upto, key=_event_rev)
            # Sliced synchronously: later compactions cannot pull events out from under us.
            events = [e for e in self._events[lo:hi] if e.kv.key.startswith(prefix)]
            return events, max(cursor, upto)

        return open_watch(sub, start, replay)

    async def close(self) -> None:
        self._closed = True
        self._broadcaster.close()
