"""Storage: one revisioned, watchable key space (see :mod:`svcnet.storage.interface`).

Backends: :class:`~svcnet.storage.memory.MemoryStore` (reference and unit-test fake) and
:class:`~svcnet.storage.sqlite.SQLiteStore` (kine-style, several processes may share one file).
:func:`open_store` picks one from a URL.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from svcnet.storage.interface import (
    Compacted,
    Conflict,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListResult,
    StorageError,
    Store,
    WatchClosed,
    WatchEvent,
)
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SQLiteStore

__all__ = [
    "Compacted",
    "Conflict",
    "EventType",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "ListResult",
    "MemoryStore",
    "SQLiteStore",
    "StorageError",
    "Store",
    "WatchClosed",
    "WatchEvent",
    "open_store",
]


def open_store(url: str) -> Store:
    """A store for ``url``; no I/O happens until the first operation (or ``await open()``).

    * ``memory://`` - a fresh :class:`MemoryStore`.
    * ``sqlite:///ABS/PATH/state.db`` - a :class:`SQLiteStore` on that file, created if missing.
      Optional query parameters: ``synchronous=FULL|NORMAL`` and ``poll_interval=SECONDS``,
      e.g. ``sqlite:///var/lib/svcnet/state.db?synchronous=NORMAL``.

    The caller must ``await store.close()``. Raises ValueError for anything else (``etcd://``
    is not implemented yet).
    """
    parts = urlsplit(url)
    params = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=bool(parts.query)).items()}
    if parts.scheme == "memory":
        if parts.netloc or parts.path or params:
            raise ValueError(f"memory:// takes no path or parameters: {url!r}")
        return MemoryStore()
    if parts.scheme == "sqlite":
        path = PurePosixPath(unquote(parts.path))
        if parts.netloc or not path.is_absolute() or path == PurePosixPath("/"):
            raise ValueError(f"expected sqlite:///ABSOLUTE/PATH/state.db, got {url!r}")
        unknown = set(params) - {"synchronous", "poll_interval"}
        if unknown:
            raise ValueError(f"unknown sqlite:// parameters {sorted(unknown)} in {url!r}")
        synchronous = params.get("synchronous", "FULL").upper()
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL in {url!r}")
        poll_interval = float(params.get("poll_interval", "0.02"))
        return SQLiteStore(str(path), synchronous="FULL" if synchronous == "FULL" else "NORMAL",
                           poll_interval=poll_interval)
    if parts.scheme == "etcd":
        raise ValueError(f"the etcd backend is not implemented yet: {url!r}")
    raise ValueError(f"unknown store URL scheme {parts.scheme!r} in {url!r} "
                     "(expected memory:// or sqlite:///ABSOLUTE/PATH)")
