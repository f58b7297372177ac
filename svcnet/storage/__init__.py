"""Storage: one revisioned, watchable key space (see :mod:`svcnet.storage.interface`).

Backends: :class:`~svcnet.storage.memory.MemoryStore` (reference and unit-test fake) and
:class:`~svcnet.storage.sqlite.SQLiteStore` (kine-style, several processes may share one file) and
:class:`~svcnet.storage.etcd.EtcdStore` (an etcd v3 cluster over gRPC, under a key prefix; imported
only when an ``etcd://`` URL is opened, since grpc is slow to import).
:func:`open_store` picks one from a URL.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from svcnet.storage.etcdtls import EtcdTLS
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
    TooLarge,
    WatchClosed,
    WatchEvent,
)
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SQLiteStore

__all__ = [
    "Compacted",
    "Conflict",
    "EtcdTLS",
    "EventType",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "ListResult",
    "MemoryStore",
    "SQLiteStore",
    "StorageError",
    "Store",
    "TooLarge",
    "WatchClosed",
    "WatchEvent",
    "open_store",
]


def open_store(url: str, *, etcd_tls: EtcdTLS | None = None) -> Store:
    """A store for ``url``; no I/O happens until the first operation (or ``await open()``).

    * ``memory://`` - a fresh :class:`MemoryStore`.
    * ``sqlite:///ABS/PATH/state.db`` - a :class:`SQLiteStore` on that file, created if missing.
      Optional query parameters: ``synchronous=FULL|NORMAL`` and ``poll_interval=SECONDS``,
      e.g. ``sqlite:///var/lib/svcnet/state.db?synchronous=NORMAL``.
    * ``etcd://HOST:PORT[,HOST:PORT...]/PREFIX`` - an :class:`EtcdStore` on that etcd cluster
      (its members), every key stored under ``/PREFIX/``; the prefix is required so the store
      never spans a whole cluster by accident. Over TLS with ``etcd_tls``, plain gRPC without.
      Optional query parameter: ``timeout=SECONDS`` per request (default 10),
      e.g. ``etcd://10.0.0.1:2379,10.0.0.2:2379/svcnet?timeout=5``.

    The caller must ``await store.close()``. Raises ValueError for anything else, and for
    ``etcd_tls`` with a store that is not etcd.
    """
    parts = urlsplit(url)
    if etcd_tls is not None and parts.scheme != "etcd":
        raise ValueError(f"--etcd-cafile, --etcd-certfile and --etcd-keyfile are for an "
                         f"etcd:// store, not {url!r}")
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
        endpoints = [e.strip() for e in parts.netloc.split(",")]
        prefix = unquote(parts.path).strip("/")
        if not prefix or not all(_is_host_port(e) for e in endpoints):
            raise ValueError(f"expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX, got {url!r}")
        unknown = set(params) - {"timeout"}
        if unknown:
            raise ValueError(f"unknown etcd:// parameters {sorted(unknown)} in {url!r}")
        timeout = float(params.get("timeout", "10"))
        if not timeout > 0:
            raise ValueError(f"timeout must be positive in {url!r}")
        from svcnet.storage.etcd import EtcdStore  # lazily: grpc is slow to import

        return EtcdStore(endpoints, f"/{prefix}/", timeout=timeout, tls=etcd_tls)
    raise ValueError(f"unknown store URL scheme {parts.scheme!r} in {url!r} "
                     "(expected memory://, sqlite:///ABSOLUTE/PATH or etcd://HOST:PORT/PREFIX)")


def _is_host_port(endpoint: str) -> bool:
    host, sep, port = endpoint.rpartition(":")
    return bool(sep and host.strip("[]") and port.isdigit() and 0 < int(port) < 65536)
