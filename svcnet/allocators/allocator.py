"""Allocators whose truth lives in the store, so several API servers can share one store.

Theory of operation
-------------------
Every allocated item (a ClusterIP, a NodePort, a LoadBalancer IP) is one key in the store,
``/registry/allocations/<kind>/<item>``, whose value names the owner. Taking an item *is*
creating its key: the store's create fails for everyone but one writer, so two processes can
never hand out the same item, whatever their caches believe. Releasing is a delete guarded by the
revision at which we read the owner, so we never release an item that meanwhile went to someone
else.

Each allocator keeps a :class:`~svcnet.allocators.bitmap.Bitmap` (for a huge IPv6 range a
:class:`~svcnet.allocators.bitmap.SparseBitmap`) of what it believes is taken, filled by one list
of its prefix and kept up to date by its own writes. The cache only decides which offset to
*try*: a create that fails marks the bit and the next candidate is tried; a full
cache is re-read from the store before "range is full" is declared, since another process may
have released items. This is also why allocations are the only place where the store is asked
to arbitrate, and why the registry follows Kubernetes' rule "leak rather than double-allocate":
allocate before the owner is written, release only after the owner is gone (see operation.py),
and let repair.py collect leaks.

A record also names its **holder**, the API server that made it: a ``server`` identity that
survives restarts (kept in the server's data directory) and the ``instance`` (one per process
start). A leak whose server is this one but whose instance is not was made by this server's
previous, dead, process: no create of it can still be in flight, so repair frees it at once
instead of waiting out the grace that protects other servers' creates. (So one data directory
serves one live server at a time, which its kubeconfig and port already require.)

What a record looks like is its allocator's :class:`RecordCodec`: by default a small JSON
document under ``/registry/allocations/<kind>/``; ClusterIPs use IPAddress objects instead
(:mod:`svcnet.allocators.ipaddresses`), so that the record *is* the API object and one store
create both takes the address and publishes it. A record the codec reports as not ``managed``
(an IPAddress a user made) holds its item like any other, but repair never frees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from svcnet.allocators.bitmap import Bitmap, SparseBitmap, new_bitmap
from svcnet.allocators.ranges import Range
from svcnet.storage.interface import Conflict, KeyExists, KeyNotFound, Store
from svcnet.util.aio import in_turns
from svcnet.util.clock import Clock, RealClock, rfc3339

ALLOCATIONS_PREFIX = "/registry/allocations/"


class AllocationError(Exception):
    """Base of allocation failures; ``str()`` is Kubernetes' message for it."""


class NotInRange(AllocationError):
    pass


class AlreadyAllocated(AllocationError):
    pass


class RangeFull(AllocationError):
    pass


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds an allocation: a Service, by namespace, name and uid."""

    namespace: str
    name: str
    uid: str = ""

    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_json(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid}


@dataclass(frozen=True, slots=True)
class Holder:
    """Which API server (``server``, stable across restarts) and which of its process starts
    (``instance``) made an allocation."""

    server: str
    instance: str

    def to_json(self) -> dict[str, str]:
        return {"server": self.server, "instance": self.instance}


@dataclass(frozen=True, slots=True)
class Allocation:
    item: str
    owner: Owner
    allocated_at: str
    revision: int
    holder: Holder | None = None
    #: False for a record the allocator did not make (repair leaves it alone).
    managed: bool = True


class RecordCodec(Protocol):
    """Where an allocator's records live and how one is written and read."""

    def prefix(self, kind: str) -> str:
        """The store prefix of the records of ``kind`` (ending in "/")."""
        ...

    def encode(self, item: str, owner: Owner, holder: Holder | None, now: datetime) -> bytes:
        ...

    def decode(self, item: str, value: bytes, revision: int) -> Allocation: ...


class JSONRecords:
    """The default record: ``{"owner": ..., "allocatedAt": ..., "holder": ...}``."""

    def prefix(self, kind: str) -> str:
        return f"{ALLOCATIONS_PREFIX}{kind}/"

    def encode(self, item: str, owner: Owner, holder: Holder | None, now: datetime) -> bytes:
        record: dict[str, Any] = {"owner": owner.to_json(), "allocatedAt": rfc3339(now)}
        if holder is not None:
            record["holder"] = holder.to_json()
        return json.dumps(record).encode()

    def decode(self, item: str, value: bytes, revision: int) -> Allocation:
        rec = _decode(value)
        return Allocation(item, rec.owner, rec.allocated_at, revision, rec.holder)


def _messages(kind: str) -> tuple[str, str]:
    if kind == "nodeport":
        return ("provided port is not in the valid range. The range of valid ports is {range}",
                "provided port is already allocated")
    return ("the provided IP ({item}) is not in the valid range. "
            "The range of valid IPs is {range}",
            "provided IP is already allocated")


class StoreAllocator:
    """Allocates items of one :class:`Range`, arbitrated by the store."""

    def __init__(self, store: Store, space: Range, *, name: str | None = None,
                 clock: Clock | None = None, rng: random.Random | None = None,
                 holder: Holder | None = None, codec: RecordCodec | None = None) -> None:
        self.store = store
        self.range = space
        self.holder = holder
        self.name = name or space.kind
        self.codec: RecordCodec = codec or JSONRecords()
        self.prefix = self.codec.prefix(space.kind)
        self._clock = clock or RealClock()
        self._rng = rng or random.Random()
        self._bitmap: Bitmap | SparseBitmap | None = None
        self._lock = asyncio.Lock()

    # -- cache ------------------------------------------------------------------------------

    async def _cache(self) -> Bitmap | SparseBitmap:
        if self._bitmap is None:
            await self.refresh()
        assert self._bitmap is not None
        return self._bitmap

    async def refresh(self) -> None:
        """Re-read which items are taken from the store."""
        bitmap = new_bitmap(self.range.size)
        # (At 10k records a pass takes a few hundred ms: the loop serves requests meanwhile.)
        async for kv in in_turns((await self.store.list(self.prefix)).items):
            offset = self.range.offset_of(kv.key[len(self.prefix):])
            if offset is not None:
                bitmap.set(offset)
        self._bitmap = bitmap

    def _record(self, item: str, owner: Owner) -> bytes:
        return self.codec.encode(item, owner, self.holder, self._clock.now())

    # -- operations -------------------------------------------------------------------------

    def contains(self, item: str) -> bool:
        return self.range.offset_of(item) is not None

    async def allocate(self, item: str, owner: Owner) -> None:
        """Take a specific item (a user-requested IP or port)."""
        not_in_range, taken = _messages(self.range.kind)
        offset = self.range.offset_of(item)
        if offset is None:
            raise NotInRange(not_in_range.format(item=item, range=self.range.describe()))
        try:
            canonical = self.range.item_at(offset)
            await self.store.create(self.prefix + canonical, self._record(canonical, owner))
        except KeyExists:
            (await self._cache()).set(offset)
            raise AlreadyAllocated(taken) from None
        (await self._cache()).set(offset)

    async def _free_offsets(self, allowed: range | None, *,
                            reserve: bool) -> AsyncGenerator[int, None]:
        """Offsets worth trying, random in the dynamic band, else the static band; each is
        marked taken in the bitmap it came from (the cache itself when ``reserve``, so
        concurrent tasks here try other offsets; else a copy). When none is left the cache is
        re-read from the store once (another process may have released items); after that,
        ``RangeFull``."""
        def bitmap_now(cached: Bitmap | SparseBitmap) -> Bitmap | SparseBitmap:
            return cached if reserve else cached.copy()

        bitmap = bitmap_now(await self._cache())
        refreshed = False
        while True:
            offset = bitmap.next_free(self.range.static_size, self._rng,
                                      lowest_first=self.range.lowest_first, allowed=allowed)
            if offset is None:
                if refreshed:
                    raise RangeFull("range is full")
                async with self._lock:
                    await self.refresh()
                bitmap = bitmap_now(await self._cache())
                refreshed = True
                continue
            bitmap.set(offset)
            yield offset

    async def allocate_next(self, owner: Owner, *, allowed: range | None = None) -> str:
        """Take a free item: random in the dynamic band, else the static band, else full."""
        async with contextlib.aclosing(self._free_offsets(allowed, reserve=True)) as offsets:
            async for offset in offsets:
                item = self.range.item_at(offset)
                try:
                    await self.store.create(self.prefix + item, self._record(item, owner))
                except KeyExists:
                    continue  # someone else holds it; the bit stays set
                except BaseException:
                    (await self._cache()).clear(offset)
                    raise
                return item
        raise AssertionError("unreachable: the offsets end only in RangeFull")

    # -- dry runs: the same answers, nothing written (upstream's dry-run allocator) --------

    async def check(self, item: str) -> None:
        """What :meth:`allocate` would raise for ``item``, without taking it."""
        not_in_range, taken = _messages(self.range.kind)
        offset = self.range.offset_of(item)
        if offset is None:
            raise NotInRange(not_in_range.format(item=item, range=self.range.describe()))
        if await self.store.get(self.prefix + self.range.item_at(offset)) is not None:
            raise AlreadyAllocated(taken)

    async def peek_next(self, *, allowed: range | None = None) -> str:
        """An item :meth:`allocate_next` could take now (``RangeFull`` if none), not taken."""
        async with contextlib.aclosing(self._free_offsets(allowed, reserve=False)) as offsets:
            async for offset in offsets:
                item = self.range.item_at(offset)
                if await self.store.get(self.prefix + item) is None:
                    return item
        raise AssertionError("unreachable: the offsets end only in RangeFull")

    async def release(self, item: str, owner: Owner | None = None) -> bool:
        """Give an item back. With ``owner``, only if that owner still holds it."""
        offset = self.range.offset_of(item)
        # Out of range (the range was reconfigured) still releases the record by its name.
        key = self.prefix + (item if offset is None else self.range.item_at(offset))
        for _ in range(5):
            kv = await self.store.get(key)
            if kv is None:
                if offset is not None:
                    (await self._cache()).clear(offset)
                return False
            held = self.codec.decode(item, kv.value, kv.mod_revision)
            if owner is not None and not _same_owner(held.owner, owner):
                return False
            try:
                await self.store.delete(key, kv.mod_revision)
            except KeyNotFound:
                pass
            except Conflict:
                continue
            if offset is not None:
                (await self._cache()).clear(offset)
            return True
        return False

    async def get(self, item: str) -> Allocation | None:
        offset = self.range.offset_of(item)
        if offset is None:
            return None
        kv = await self.store.get(self.prefix + self.range.item_at(offset))
        if kv is None:
            return None
        return self.codec.decode(kv.key[len(self.prefix):], kv.value, kv.mod_revision)

    async def list(self) -> list[Allocation]:
        """Every allocation of this kind in the store (including items outside the range)."""
        out = []
        async for kv in in_turns((await self.store.list(self.prefix)).items):
            out.append(self.codec.decode(kv.key[len(self.prefix):], kv.value, kv.mod_revision))
        return out

    async def free(self) -> int:
        return (await self._cache()).free()


@dataclass(frozen=True, slots=True)
class _Record:
    owner: Owner
    allocated_at: str
    holder: Holder | None = None


def _decode(value: bytes) -> _Record:
    try:
        raw: Any = json.loads(value)
        o = raw.get("owner") or {}
        h = raw.get("holder")
        holder = (Holder(str(h.get("server", "")), str(h.get("instance", "")))
                  if isinstance(h, dict) else None)
        return _Record(Owner(str(o.get("namespace", "")), str(o.get("name", "")),
                             str(o.get("uid", ""))), str(raw.get("allocatedAt", "")), holder)
    except (ValueError, AttributeError):
        return _Record(Owner("", ""), "")


def _same_owner(a: Owner, b: Owner) -> bool:
    if a.key() != b.key():
        return False
    return not a.uid or not b.uid or a.uid == b.uid
