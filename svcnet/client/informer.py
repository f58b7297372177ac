"""Informer: a reflector that keeps an indexed cache of one resource, and notifies handlers.

The contract (after client-go's ``SharedInformer`` comment in ``tools/cache/shared_informer.go``)
---------------------------------------------------------------------------------------------
An :class:`Informer` maintains a local cache of the objects of one resource type (optionally one
namespace, optionally filtered by label/field selectors) and calls registered handlers as that
cache changes.

* The cache is **eventually consistent** with the server: if the collection stops changing and
  the informer stays connected, the cache ends up holding exactly the server's objects.
* For one object, the states the cache goes through (and the notifications handlers get) are an
  **ordered subsequence** of that object's history on the server: states can be skipped (after a
  reconnect or a relist), never reordered. There is **no ordering across objects**.
* Objects are keyed ``namespace/name`` (``name`` for cluster-scoped ones); see
  :func:`object_key`. A delete carries the **last state the informer knew**, which after a relist
  may be older than the object's real final state.
* :meth:`Informer.has_synced` turns true once the first complete list is in the cache and every
  handler has been told about it. Controllers wait for it before working, so "missing from the
  cache" really means "does not exist".
* A handler registered with a resync period (``add_handler(h, resync_period=...)``, or the
  informer's own ``resync_period`` for handlers that name none) gets every cached object again
  as ``on_update(obj, obj)`` (the *same* object) every that many seconds: a safety net for
  level-triggered controllers, not a change. Each handler keeps its own period, so controllers
  sharing one informer each resync at their own pace (client-go's per-listener resync).
* **Shared informers.** One informer can feed several controllers (client-go's
  ``SharedInformerFactory``; :class:`InformerFactory` hands out one informer per resource and
  selectors), so each change is received and decoded once, not once per controller. Its
  :meth:`Informer.start` and :meth:`Informer.stop` count their callers: it runs from the first
  start until as many stops, so each controller keeps starting and stopping "its" informers.
* Handlers run on the informer's task, in order, and **must return quickly**: they only turn
  events into work-queue keys. A handler that raises is logged and skipped; it cannot stop the
  informer. Cached objects are shared: **never mutate them** (copy first).

Theory of operation (the reflector)
-----------------------------------
1. **List** all objects (paged, one consistent snapshot) and remember the list's
   resourceVersion. Replace the cache with the result, notifying the differences: ``on_add`` for
   new keys, ``on_update`` for keys whose resourceVersion changed, ``on_delete`` for keys gone.
2. **Watch** from that resourceVersion, applying each event to the cache and to the handlers and
   advancing the resourceVersion (bookmarks advance it too, without an event).
3. When the server ends the watch (its timeoutSeconds, randomised between 1x and 2x our
   ``watch_timeout`` so a fleet of clients does not reconnect in step), watch again from the
   last resourceVersion: nothing is missed, nothing is repeated.
4. On **410 Expired/Gone** (the resourceVersion was compacted away) go back to 1 and relist
   from scratch; the diff in 1 is what tells handlers about changes missed in between.
5. On a broken connection, an error answer, or a watch the server closes at once without any
   event, sleep with exponential back-off on the injected clock (0.8 s doubling to 30 s, plus up
   to 50% jitter; reset by any progress) and resume at 2 from the last resourceVersion (or at 1
   if the list itself failed or the error was unexpected).

Store outages and dead watches (after client-go's ``Reflector.watch`` in
``tools/cache/reflector.go``): an ``ERROR`` event ends the watch. A 410 goes back to 1 (4
above); any other Status (503 while the server's store is unavailable, 500, 429) backs off and
re-watches from the last resourceVersion (5). When the Status says when to retry
(``details.retryAfterSeconds``, the ``Retry-After`` of a 503 during a store outage), that
delay plus up to 50% jitter replaces the back-off, as client-go's rest client honours
Retry-After, so an informer is back within about a second of its server. (client-go re-watches
after 429 and 500 and relists after the rest; here history is kept by the store, so a re-watch
misses nothing, and a relist would only add load to a server that is recovering.) A watch
that stays silent, not even a bookmark, for longer than the server's bookmark interval plus a
margin (the client's ``watch_idle_timeout``) is dead (a hung server-side watch, a peer gone
without FIN) and is treated as a broken connection (5). So every informer recovers by itself
after any outage: nothing waits forever.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from svcnet.api.errors import StatusError
from svcnet.client.rest import GVR, Expired, ObjectList, TransportError
from svcnet.client.watchstream import WatchEvent
from svcnet.util.aio import in_turns
from svcnet.util.clock import Clock, RealClock

__all__ = [
    "NAMESPACE_INDEX",
    "Backoff",
    "EventHandler",
    "IndexFunc",
    "Indexer",
    "Informer",
    "InformerFactory",
    "ListerWatcher",
    "namespace_index",
    "object_key",
    "split_key",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]
NAMESPACE_INDEX: Final = "namespace"
MIN_WATCH_SECONDS: Final = 1.0
"""A watch that ends sooner than this without any event counts as a failure."""


def _retry_after(err: Exception) -> float | None:
    """The delay a failure Status asks for (``details.retryAfterSeconds``, which the server
    also sends as ``Retry-After``), if any."""
    if not isinstance(err, StatusError):
        return None
    value = err.details.get("retryAfterSeconds")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 600:
        return float(value)
    return None


# -- keys and the indexed cache -------------------------------------------------------------


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects (client-go's
    MetaNamespaceKeyFunc)."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not name:
        raise ValueError("object has no metadata.name")
    ns = str(meta.get("namespace") or "")
    return f"{ns}/{name}" if ns else name


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` from a key; namespace is "" for cluster-scoped keys."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else ("", ns)


def namespace_index(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def _resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Indexer:
    """Latest object per key, plus named secondary indexes (value → keys).

    Only the informer writes it; everything else reads. Always has the ``namespace`` index.
    An index may be added again with the same function (controllers sharing an informer each
    ask for the indexes they use); a different function under a taken name is an error.
    """

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index}
        self._index_funcs.update(indexers or {})
        self._indexes: dict[str, dict[str, set[str]]] = {n: {} for n in self._index_funcs}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def list_keys(self) -> builtins.list[str]:
        return list(self._items)

    def index_keys(self, index: str, value: str) -> builtins.list[str]:
        """Keys whose ``index`` function yielded ``value``. Raises KeyError for an unknown
        index (a typo should fail loudly, not look like an empty result)."""
        return sorted(self._indexes[index].get(value, ()))

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        return [self._items[k] for k in self.index_keys(index, value)]

    def index_values(self, index: str) -> builtins.list[str]:
        """Every value ``index`` currently holds (e.g. every namespace with an object)."""
        return list(self._indexes[index])

    def add_index(self, name: str, func: IndexFunc) -> None:
        existing = self._index_funcs.get(name)
        if existing is func:
            return
        if existing is not None:
            raise ValueError(f"index {name!r} already exists with another function")
        self._index_funcs[name] = func
        self._indexes[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    # -- writes (the informer's) ------------------------------------------------------------

    def upsert(self, key: str, obj: Obj) -> Obj | None:
        """Store ``obj`` under ``key``; returns the previous object."""
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._index_funcs:
            self._index_one(name, key, obj)
        return old

    def delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index_one(self, name: str, key: str, obj: Obj) -> None:
        for value in self._index_funcs[name](obj):
            self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._index_funcs.items():
            index = self._indexes[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


# -- handlers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventHandler:
    """Callbacks for cache changes. Each must return quickly (enqueue a key and return)."""

    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None

    @classmethod
    def for_keys(cls, add: Callable[[str], None]) -> EventHandler:
        """The usual controller handler: every change enqueues the object's key."""
        return cls(on_add=lambda obj: add(object_key(obj)),
                   on_update=lambda old, new: add(object_key(new)),
                   on_delete=lambda obj: add(object_key(obj)))


# -- the reflector's view of a client -------------------------------------------------------


class ListerWatcher(Protocol):
    """What the informer needs from a client; :class:`~svcnet.client.rest.RESTClient` fits."""

    async def list_all(self, gvr: GVR, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = ...) -> ObjectList: ...

    def watch(self, gvr: GVR, namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "", timeout_seconds: int = ...,
              allow_bookmarks: bool = ...
              ) -> AbstractAsyncContextManager[AsyncIterator[WatchEvent]]: ...


@dataclass(slots=True)
class _Listener:
    """A registered handler and its resync schedule (client-go's processorListener)."""

    handler: EventHandler
    resync_period: float
    next_resync: float = 0.0


@dataclass(slots=True)
class Backoff:
    """Exponential back-off: ``initial`` doubling up to ``cap``, with up to ``jitter`` of it
    added at random so many clients do not retry in step."""

    initial: float = 0.8
    cap: float = 30.0
    jitter: float = 0.0
    rng: random.Random | None = None
    _next: float = field(default=0.0, init=False, repr=False)

    def next_delay(self) -> float:
        base = self._next or self.initial
        self._next = min(self.cap, base * 2)
        extra = (self.rng or random).random() * self.jitter * base if self.jitter else 0.0
        return base + extra

    def reset(self) -> None:
        self._next = 0.0


class Informer:
    """List + watch one resource into an :class:`Indexer`, notifying handlers (module doc)."""

    def __init__(self, client: ListerWatcher, gvr: GVR, *, namespace: str = "",
                 label_selector: str = "", field_selector: str = "",
                 resync_period: float = 0.0, clock: Clock | None = None,
                 indexers: Mapping[str, IndexFunc] | None = None, page_size: int = 500,
                 watch_timeout: int = 300, backoff: Backoff | None = None,
                 rng: random.Random | None = None, name: str = "") -> None:
        self.gvr = gvr
        self.name = name or str(gvr)
        self.indexer = Indexer(indexers)
        self._client = client
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._resync_period = resync_period
        self._clock: Clock = clock or RealClock()
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._rng = rng or random.Random()
        self._backoff = backoff or Backoff(jitter=0.5, rng=self._rng)
        self._listeners: list[_Listener] = []
        self._resync_changed = asyncio.Event()
        self._users = 0
        self._synced = asyncio.Event()
        self._resource_version = ""
        self._progressed_since_list = False
        self._task: asyncio.Task[None] | None = None
        self.relists = 0
        """How many times the reflector listed (1 after the initial list): for tests, metrics."""
        self.watches = 0
        """How many watch requests the reflector made."""

    def __repr__(self) -> str:
        return f"Informer({self.name!r}, items={len(self.indexer)}, synced={self.has_synced()})"

    # -- reading ----------------------------------------------------------------------------

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self) -> None:
        await self._synced.wait()

    @property
    def last_sync_resource_version(self) -> str:
        return self._resource_version

    def get(self, key: str) -> Obj | None:
        return self.indexer.get(key)

    def list(self) -> list[Obj]:
        return self.indexer.list()

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        return self.indexer.by_index(index, value)

    # -- handlers ---------------------------------------------------------------------------

    def add_handler(self, handler: EventHandler, *, resync_period: float | None = None) -> None:
        """Register ``handler``, resynced every ``resync_period`` seconds (none: the
        informer's own period; 0: never); if the cache is already filled it first gets
        ``on_add`` for every cached object, so late handlers see the same world as early
        ones."""
        period = self._resync_period if resync_period is None else resync_period
        self._listeners.append(_Listener(handler, period, self._clock.monotonic() + period))
        if period > 0:
            self._resync_changed.set()
        if handler.on_add is not None:
            for obj in self.indexer.list():
                self._call(handler.on_add, obj)

    def _call(self, fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: event handler failed", self.name)

    def _notify_add(self, obj: Obj) -> None:
        for listener in self._listeners:
            if listener.handler.on_add is not None:
                self._call(listener.handler.on_add, obj)

    def _notify_update(self, old: Obj, new: Obj) -> None:
        for listener in self._listeners:
            if listener.handler.on_update is not None:
                self._call(listener.handler.on_update, old, new)

    def _notify_delete(self, obj: Obj) -> None:
        for listener in self._listeners:
            if listener.handler.on_delete is not None:
                self._call(listener.handler.on_delete, obj)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run (if not running yet) until every caller of start has called :meth:`stop`."""
        self._users += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.name}")
        return self._task

    async def stop(self) -> None:
        """One caller is done; the last one stops the informer."""
        self._users = max(0, self._users - 1)
        if self._users:
            return
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Reflect (and resync) until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._reflect())
            tg.create_task(self._resync_loop())

    # -- the reflector ----------------------------------------------------------------------

    async def _reflect(self) -> None:
        need_list = True
        while True:
            listing = need_list
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list = listing = False
                started = self._clock.monotonic()
                progressed = await self._watch_once()
            except Expired as e:
                # The resourceVersion is compacted away: only a fresh list can resync us.
                need_list = True
                log.info("%s: %s; relisting", self.name, e)
                if listing or not self._progressed_since_list:
                    # Expired straight after (or during) a list: do not hammer the server.
                    await self._clock.sleep(self._backoff.next_delay())
                continue
            except (TransportError, StatusError) as e:
                delay = self._backoff.next_delay()
                retry_after = _retry_after(e)
                if retry_after is not None:
                    # The server said when to come back (a 503/504/429 with Retry-After): do
                    # so, with jitter, rather than sit out a back-off grown during an outage.
                    delay = retry_after * (1 + self._rng.random() * 0.5)
                log.warning("%s: %s; retrying in %.1fs", self.name, e, delay)
                await self._clock.sleep(delay)
                continue
            except Exception:
                # A bug or a malformed object: the cache may be half-updated, so relist.
                delay = self._backoff.next_delay()
                log.exception("%s: unexpected error; relisting in %.1fs", self.name, delay)
                need_list = True
                await self._clock.sleep(delay)
                continue
            if progressed:
                self._backoff.reset()
            elif self._clock.monotonic() - started < MIN_WATCH_SECONDS:
                # Closed at once with nothing to say (client-go's "very short watch"): a server
                # or proxy in trouble; reconnecting at full speed would only add to it.
                delay = self._backoff.next_delay()
                log.warning("%s: watch closed at once without events; retrying in %.1fs",
                            self.name, delay)
                await self._clock.sleep(delay)

    async def _list_and_replace(self) -> None:
        result = await self._client.list_all(
            self.gvr, self._namespace, label_selector=self._label_selector,
            field_selector=self._field_selector, page_size=self._page_size)
        self.relists += 1
        self._replace(result.items)
        self._resource_version = result.resource_version
        self._progressed_since_list = False
        self._backoff.reset()
        if not self._synced.is_set():
            log.info("%s: synced %d objects at resourceVersion %s", self.name,
                     len(self.indexer), self._resource_version)
            self._synced.set()

    def _replace(self, items: Iterable[Obj]) -> None:
        """Make the cache equal ``items``, notifying exactly the differences."""
        fresh: dict[str, Obj] = {}
        for obj in items:
            fresh[object_key(obj)] = obj
        for key, obj in fresh.items():
            old = self.indexer.get(key)
            if old is None:
                self.indexer.upsert(key, obj)
                self._notify_add(obj)
            elif _resource_version(old) != _resource_version(obj):
                self.indexer.upsert(key, obj)
                self._notify_update(old, obj)
        for key in [k for k in self.indexer.list_keys() if k not in fresh]:
            old = self.indexer.delete(key)
            if old is not None:
                self._notify_delete(old)

    async def _watch_once(self) -> bool:
        """One watch request until the server ends it; True if anything arrived."""
        timeout = int(self._watch_timeout * (1 + self._rng.random()))
        progressed = False
        self.watches += 1
        async with self._client.watch(
                self.gvr, self._namespace, resource_version=self._resource_version,
                label_selector=self._label_selector, field_selector=self._field_selector,
                timeout_seconds=timeout, allow_bookmarks=True) as events:
            async for etype, obj in events:
                self._apply(etype, obj)
                progressed = self._progressed_since_list = True
                self._backoff.reset()
        return progressed

    def _apply(self, etype: str, obj: Obj) -> None:
        rv = _resource_version(obj)
        if etype == "BOOKMARK":
            if rv:
                self._resource_version = rv
            return
        key = object_key(obj)
        if etype in ("ADDED", "MODIFIED"):
            old = self.indexer.upsert(key, obj)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)
        elif etype == "DELETED" and self.indexer.delete(key) is not None:
            # (Deleting something we never saw is a no-op: it came and went between relists.)
            self._notify_delete(obj)
        if rv:
            self._resource_version = rv

    async def _resync_loop(self) -> None:
        """Every handler with a resync period gets the whole cache again once its period is
        over (client-go wakes at the shortest period and resyncs the listeners that are due)."""
        while True:
            periods = [lsn.resync_period for lsn in self._listeners if lsn.resync_period > 0]
            if not periods:
                self._resync_changed.clear()
                await self._resync_changed.wait()
                continue
            step = min(periods)
            await self._clock.sleep(step)
            # (A timer may fire a hair early: a listener that is due within 1% of the step is
            # due now, rather than a whole step late.)
            now = self._clock.monotonic() + step / 100
            due = [lsn for lsn in self._listeners
                   if lsn.resync_period > 0 and now >= lsn.next_resync]
            if not due or not self.has_synced():
                continue
            for lsn in due:
                lsn.next_resync = self._clock.monotonic() + lsn.resync_period
            async for obj in in_turns(self.indexer.list()):  # the loop's other work goes on
                for lsn in due:
                    if lsn.handler.on_update is not None:
                        self._call(lsn.handler.on_update, obj, obj)


class InformerFactory:
    """One shared :class:`Informer` per resource, namespace and selectors, over one client.

    After client-go's ``SharedInformerFactory`` (``informers/factory.go``): every controller
    of a process asks the factory for the informers it reads, so a change is listed, watched
    and decoded once however many controllers follow the resource, and the caches hold each
    object once. Controllers register their own handlers (with their own resync periods,
    :meth:`Informer.add_handler`) and indexes, and start and stop the informers they use as if
    they were their own (starts and stops are counted, module doc).
    """

    def __init__(self, client: ListerWatcher, *, clock: Clock | None = None) -> None:
        self._client = client
        self._clock = clock
        self._informers: dict[tuple[GVR, str, str, str], Informer] = {}

    @classmethod
    def of(cls, informers: InformerFactory | None, client: ListerWatcher, *,
           clock: Clock | None = None) -> InformerFactory:
        """``informers``, or a factory of one's own over ``client`` (a controller built alone)."""
        return informers if informers is not None else cls(client, clock=clock)

    def informer(self, gvr: GVR, *, namespace: str = "", label_selector: str = "",
                 field_selector: str = "", name: str = "") -> Informer:
        """The informer of ``gvr`` (in ``namespace``, "" for all) with these selectors, made
        on first use. ``name`` only labels its log lines (the first caller's wins)."""
        key = (gvr, namespace, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self._client, gvr, namespace=namespace,
                                label_selector=label_selector, field_selector=field_selector,
                                clock=self._clock, name=name)
            self._informers[key] = informer
        return informer
