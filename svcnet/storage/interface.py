"""The storage contract every backend (memory, SQLite, etcd) implements.

Theory of operation
-------------------
The store is a flat, ordered key space of byte values with **one monotonic revision counter for
the whole store**, as etcd has. Every successful write (create, update, delete) takes the next
revision; that revision becomes the written key's ``mod_revision`` and is what the API server
exposes as ``metadata.resourceVersion``. Reads return the store revision they were served at, so a
client can list, then watch from exactly that point without missing or repeating an event.

Writes are optimistic: ``update`` and ``delete`` name the revision the caller last saw and fail
with :class:`Conflict` if the key moved since. That single rule is what lets two API-server
processes share one store without ever handing out the same IP or port: allocations are keys
created with ``create``, which fails with :class:`KeyExists` for the loser of a race.

A watch delivers, in revision order, every event under a prefix whose revision is *greater* than
the start revision. History is kept until ``compact(rev)``; a watch or a list at a revision older
than the compacted one raises :class:`Compacted` (the API answers 410 Gone and clients relist).

Error tree::

    StorageError
    ├── KeyExists       create of a key that exists
    ├── KeyNotFound     update/delete of a key that does not exist
    ├── Conflict        update/delete with a stale expected revision (carries the current value)
    ├── Compacted       watch/list from a revision older than the compacted one
    ├── WatchClosed     the watch fell too far behind (or the store closed); re-watch
    └── Unavailable     the store cannot be reached or written now (503; 504 if timeout)

Outages: every call either finishes or raises within a bounded time (a backend puts a deadline
on every request it sends), and a failure to reach, read or write the store is
:class:`Unavailable`; a refused write changed nothing. A watch is *not* resumed behind the
consumer's back: when the store goes away under it, the watch ends with :class:`Unavailable`
after the events already delivered. The consumer (the API server's watch handler) reports that
and ends its stream; its client re-watches from the last revision it saw, and since history is
kept, nothing is missed once the store is back. (Resuming silently would leave a watcher
waiting with no sign of trouble for as long as the outage lasts.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class StorageError(Exception):
    """Base of every error a backend raises on purpose."""


class KeyExists(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class Conflict(StorageError):
    """The key's revision is not the expected one; ``current`` is what is stored now."""

    def __init__(self, key: str, current: KeyValue) -> None:
        super().__init__(f"revision conflict on {key}: now at {current.mod_revision}")
        self.key = key
        self.current = current


class Compacted(StorageError):
    """The requested revision has been compacted away (HTTP 410 Gone)."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(
            f"required revision {requested} has been compacted (compacted to {compact_revision})")
        self.requested = requested
        self.compact_revision = compact_revision


class WatchClosed(StorageError):
    """The watch ended without the caller asking (too slow a consumer, or store shut down)."""


class TooLarge(StorageError):
    """The store refused a write as larger than it takes (etcd's ``--max-request-bytes``,
    1.5 MiB by default, below the API's own 3 MiB): nothing was written (HTTP 413)."""


class Unavailable(StorageError):
    """The store cannot serve right now (etcd unreachable, a database that cannot be written:
    disk full, I/O error); the caller may retry later. A refused request changed nothing
    (HTTP 503). ``timeout`` marks one that ran out of time instead (HTTP 504): a write may or
    may not have been applied, as with etcd's own request timeouts."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For DELETED, ``kv.value`` is the last value and ``kv.mod_revision`` the
    revision of the deletion; ``prev`` is the state before the change (None for ADDED)."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int
    """The store revision the list was served at."""
    more: bool = False
    """True if ``limit`` cut the list short; continue from ``items[-1].key``."""


class Store(Protocol):
    """The narrow contract. Keys are '/'-separated strings; a prefix should end with '/'."""

    async def get(self, key: str) -> KeyValue | None:
        """The current value of one key, or None."""
        ...

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> ListResult:
        """Keys under ``prefix`` in key order, as of ``revision`` (0 = now).

        ``start_after`` skips keys up to and including it (for paging); ``limit`` 0 = all.
        Raises Compacted if ``revision`` is older than the compacted revision. The result's
        ``revision`` is the one asked for, or the current one for 0 (a revision newer than the
        current one is served, and reported, as the current one). To page consistently, pass
        the first page's ``revision`` to every later page.
        """
        ...

    async def count(self, prefix: str) -> int:
        """Number of current keys under ``prefix``."""
        ...

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Create a key that must not exist; returns it with its new revision."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        """Replace a key whose mod_revision is ``expected_revision``.

        Raises KeyNotFound or Conflict (with the current value).
        """
        ...

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Delete a key (if ``expected_revision`` is non-zero it must match).

        Returns the deleted value with ``mod_revision`` set to the deletion's revision.
        """
        ...

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[WatchEvent]:
        """Every event under ``prefix`` with revision > ``after_revision``, in order, then live.

        ``after_revision`` 0 means "from now". The watch is registered by the ``watch()`` call
        itself, so "now" is the moment of the call and nothing written after it is missed even
        if iteration starts later. Raises Compacted (on first iteration) if ``after_revision``
        is older than the compacted revision; raises WatchClosed when the consumer falls too
        far behind or the store closes, Unavailable when the store cannot be reached.
        Closing the iterator (``aclose()``; implementations return an async generator) or
        cancelling the task iterating it ends the watch.
        """
        ...

    async def current_revision(self) -> int:
        """The revision of the last write (0 for an empty store)."""
        ...

    async def compact_revision(self) -> int:
        """Revisions at or below this one are gone from history."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget history at or below ``revision`` (current values are always kept).

        What a read at any revision >= ``revision`` needs is kept, so such reads still work. A
        revision beyond the current one compacts to the current one; one at or below the
        compacted revision does nothing.
        """
        ...

    async def close(self) -> None:
        """Release resources; open watches end with WatchClosed."""
        ...
