"""One kind served at two versions: the stored version's registry seen through a converter.

Theory of operation (k8s.io/apiserver's versioning codecs: a request decodes into the
internal/storage form, answers are encoded to the version the request named): a kind is
stored at one version, its *storage version*, by one :class:`~svcnet.registry.generic.Registry`
with one strategy, one watch cache and one key prefix. Each other version it is served at is a
:class:`VersionedRegistry` over that registry and a :class:`Converter` (two pure functions,
e.g. :mod:`svcnet.api.autoscalingv1`). The request handlers, the watch server and the
subresources use it like any registry, in the served version:

* writes (create, update, update_from's transform, apply) convert the request's object to the
  storage version before the write pipeline (defaulting, validation, admission with the
  storage strategy: upstream validates the internal version, so field paths are the storage
  version's), and the written object back;
* managedFields are computed in the served version (the manager's apiVersion and its field
  set), as upstream's field manager converts to the manager's version;
* reads, lists (raw lists too: each stored item is decoded, converted and encoded again) and
  watch events (a watcher over the shared watch cache whose events carry the converted
  object; the shared pre-serialized lines are the storage version's) answer in the served
  version.

Nothing is stored at the served version, and discovery reports the storage version's hash for
both (:attr:`svcnet.apiserver.resources.Resource.storage_group_version`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from svcnet.api import autoscaling, autoscalingv1
from svcnet.registry.generic import BeforeWrite, ListPage, Preconditions, Registry
from svcnet.registry.watchcache import CachedEvent, Watcher
from svcnet.storage.interface import KeyValue, WatchEvent
from svcnet.util import jsonbytes

__all__ = ["CONVERTERS", "Converter", "VersionedRegistry"]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Converter:
    """How one served version maps onto the storage version of the same kind."""

    api_version: str
    to_storage: Callable[[Obj], Obj]
    from_storage: Callable[[Obj], Obj]

    def out(self, obj: Obj) -> Obj:
        """A stored object (or a Status a delete answers) in the served version."""
        if obj.get("kind") == "Status":
            return obj
        return self.from_storage(obj)


class _ConvertedWatcher(Watcher):
    """A watcher of the shared cache whose events carry the object in the served version."""

    __slots__ = ("_convert", "_inner")

    def __init__(self, inner: Watcher, convert: Converter) -> None:
        super().__init__(inner.prefix, inner.floor, 0, lambda _: None)
        self._inner = inner
        self._convert = convert

    @property
    def closed(self) -> bool:
        return self._inner.closed

    def _kv(self, kv: KeyValue) -> KeyValue:
        obj = self._convert.from_storage(Registry.decode(kv))
        return KeyValue(kv.key, Registry.encode(obj), kv.mod_revision, kv.create_revision)

    async def next_batch(self, timeout: float) -> list[CachedEvent]:
        batch = await self._inner.next_batch(timeout)
        return [CachedEvent(WatchEvent(ev.type, self._kv(ev.event.kv),
                                       None if ev.event.prev is None else
                                       self._kv(ev.event.prev)), Registry.decode)
                for ev in batch]

    def close(self) -> None:
        self._inner.close()


class VersionedRegistry(Registry):
    """``inner`` (the storage version's registry) served at ``convert.api_version``.

    It shares the inner registry's store, strategy, keys and watch cache, and delegates every
    operation to it (never to its own inherited pipeline, which would run on the served
    version's objects).
    """

    def __init__(self, inner: Registry, convert: Converter) -> None:
        # No Registry.__init__: that would make a second watch cache over the same keys.
        self.inner = inner
        self.convert = convert
        self.store = inner.store
        self.strategy = inner.strategy
        self.admit = inner.admit
        self.clock = inner.clock
        self.rng = inner.rng
        self.new_uid = inner.new_uid
        self.prefix = inner.prefix
        self.watch_cache = inner.watch_cache

    def _before_write(self, before_write: BeforeWrite | None) -> BeforeWrite | None:
        """managedFields computed on the served version's objects, kept on the stored one."""
        if before_write is None:
            return None
        convert = self.convert

        def record(old: Obj | None, new: Obj) -> Obj:
            seen = before_write(None if old is None else convert.from_storage(old),
                                convert.from_storage(new))
            managed = (seen.get("metadata") or {}).get("managedFields")
            meta = new.setdefault("metadata", {})
            if managed is None:
                meta.pop("managedFields", None)
            else:
                meta["managedFields"] = managed
            return new
        return record

    # -- reads ------------------------------------------------------------------------------

    async def get(self, namespace: str, name: str) -> Obj:
        return self.convert.out(await self.inner.get(namespace, name))

    async def list(self, namespace: str = "", *, limit: int = 0, start_after: str = "",
                   revision: int = 0, name_prefix: str = "") -> ListPage:
        page = await self.inner.list(namespace, limit=limit, start_after=start_after,
                                     revision=revision, name_prefix=name_prefix)
        return ListPage([self.convert.out(obj) for obj in page.items], page.resource_version,
                        page.continue_after)

    async def list_raw(self, namespace: str = "", *, limit: int = 0, start_after: str = "",
                       revision: int = 0) -> tuple[Sequence[bytes], str, str]:
        raw, rv, cont = await self.inner.list_raw(namespace, limit=limit,
                                                  start_after=start_after, revision=revision)
        return ([jsonbytes.dumps(self.convert.out(jsonbytes.loads(item))) for item in raw],
                rv, cont)

    async def open_watch(self, namespace: str, after_revision: int) -> Watcher:
        return _ConvertedWatcher(await self.inner.open_watch(namespace, after_revision),
                                 self.convert)

    # -- writes -----------------------------------------------------------------------------

    async def create(self, namespace: str, obj: Obj, *, dry_run: bool = False,
                     before_write: BeforeWrite | None = None) -> Obj:
        created = await self.inner.create(namespace, self.convert.to_storage(obj),
                                          dry_run=dry_run,
                                          before_write=self._before_write(before_write))
        return self.convert.out(created)

    async def update(self, namespace: str, name: str, obj: Obj, *, dry_run: bool = False,
                     status_only: bool = False, before_write: BeforeWrite | None = None,
                     read: tuple[KeyValue, Obj] | None = None) -> Obj:
        # ``read``: what the caller read, as a KeyValue and its object (in the served version,
        # as this registry answers it); the stored form is what the inner update compares.
        stored_read = None if read is None else (read[0], self.convert.to_storage(read[1]))
        updated = await self.inner.update(namespace, name, self.convert.to_storage(obj),
                                          dry_run=dry_run, status_only=status_only,
                                          before_write=self._before_write(before_write),
                                          read=stored_read)
        return self.convert.out(updated)

    async def update_from(self, namespace: str, name: str,
                          transform: Callable[[Obj | None], Obj], *, dry_run: bool = False,
                          status_only: bool = False, before_write: BeforeWrite | None = None,
                          allow_create: bool = False,
                          before_create: Callable[[], Awaitable[None]] | None = None,
                          ) -> tuple[Obj, bool]:
        convert = self.convert

        def converted(current: Obj | None) -> Obj:
            return convert.to_storage(transform(None if current is None else
                                                convert.from_storage(current)))
        written, created = await self.inner.update_from(
            namespace, name, converted, dry_run=dry_run, status_only=status_only,
            before_write=self._before_write(before_write), allow_create=allow_create,
            before_create=before_create)
        return convert.out(written), created

    async def guaranteed_update(self, namespace: str, name: str,
                                mutate: Callable[[Obj], Obj]) -> Obj:
        convert = self.convert
        written = await self.inner.guaranteed_update(
            namespace, name, lambda current: convert.to_storage(mutate(
                convert.from_storage(current))))
        return convert.out(written)

    async def delete(self, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False, grace_period: int | None = None,
                     propagation_policy: str = "") -> Obj:
        return self.convert.out(await self.inner.delete(
            namespace, name, preconditions=preconditions, dry_run=dry_run,
            grace_period=grace_period, propagation_policy=propagation_policy))

    async def delete_in_collection(self, namespace: str, name: str, *, dry_run: bool = False,
                                   grace_period: int | None = None,
                                   propagation_policy: str = "") -> Obj:
        return self.convert.out(await self.inner.delete_in_collection(
            namespace, name, dry_run=dry_run, grace_period=grace_period,
            propagation_policy=propagation_policy))


#: The served versions that are not their kind's storage version, by (apiVersion, kind).
CONVERTERS: dict[tuple[str, str], Converter] = {
    (autoscalingv1.API_VERSION, autoscaling.KIND): Converter(
        autoscalingv1.API_VERSION, autoscalingv1.to_v2, autoscalingv1.to_v1),
}
