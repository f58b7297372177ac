"""The generic registry: one resource's create/get/list/update/delete over the store.

This mirrors k8s.io/apiserver's generic registry Store plus the rest.BeforeCreate/BeforeUpdate
helpers. Per write the pipeline is fixed, and each resource plugs in a :class:`Strategy`:

    create: namespace/name checks → generateName → strategy.default → begin_create (allocate)
            → prepare_for_create + system fields (uid, creationTimestamp, generation)
            → validate_create → admit → store.create → finish allocation (commit or roll back)
    update: read old → strategy.default → carry system fields → prepare_for_update
            → begin_update (allocate the difference) → validate_update → admit
            → no-op? return old unchanged : store.update(expected revision) → finish allocation
    delete: preconditions → store.delete(expected revision) → end_delete (release after commit)

``admit`` is the server's validating admission (given by the API server; the registry knows no
users): it sees the finished object and may refuse the write with a StatusError.

Objects are JSON dicts. The store holds them without ``metadata.resourceVersion``; reads set it
from the key's mod revision, so resourceVersion always equals the store revision of the object's
last write, as with etcd. Nothing is written when any step fails, and allocations taken for a
failed write are released (see allocators/operation.py). An object is stored as at most
:data:`MAX_OBJECT_BYTES` of JSON (413 past it).

The pure steps of a write (decoding, defaulting, preparing, validating, admitting, recording
managedFields, encoding) are grouped into methods that run through
:func:`svcnet.util.offload.run`: on the CPU thread for a large object (a stored object counts
towards the request's size), inline otherwise; allocations and the store stay on the loop.

Why this module is long: Upstream's generic registry Store (create, update, delete with
finalizers, graceful deletion) in one place, as store.go has it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from svcnet.allocators.operation import Operation
from svcnet.api import errors
from svcnet.api.errors import FieldError, StatusError
from svcnet.api.schema import with_status_zeros
from svcnet.registry import requestwarnings
from svcnet.registry.watchcache import WatchCache, Watcher, with_resource_version
from svcnet.storage.interface import (
    Conflict,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    Store,
)
from svcnet.util import jsonbytes, offload
from svcnet.util.clock import Clock, RealClock, rfc3339
from svcnet.util.jsoncopy import json_copy

Obj = dict[str, Any]

# generateName suffixes use Kubernetes' alphabet (no vowels, no confusable characters).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_GENERATED_NAME_LENGTH = 63
_RANDOM_LENGTH = 5


def generate_name(base: str, rng: random.Random) -> str:
    if len(base) > _MAX_GENERATED_NAME_LENGTH - _RANDOM_LENGTH:
        base = base[:_MAX_GENERATED_NAME_LENGTH - _RANDOM_LENGTH]
    return base + "".join(rng.choice(_SUFFIX_ALPHABET) for _ in range(_RANDOM_LENGTH))


class Strategy(Protocol):
    """What makes one resource different from another."""

    kind: ClassVar[str]
    resource: ClassVar[str]
    group: ClassVar[str]
    api_version: ClassVar[str]
    namespaced: ClassVar[bool]
    has_generation: ClassVar[bool]
    #: The propagation policy of a delete that names none ("": keep the object's finalizers).
    default_propagation: ClassVar[str]

    def default(self, obj: Obj) -> Obj: ...

    def prepare_for_create(self, obj: Obj) -> Obj: ...

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj: ...

    def validate_create(self, obj: Obj) -> list[FieldError]: ...

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]: ...

    def warnings_on_create(self, obj: Obj) -> list[str]:
        """What the client is warned of about a valid new object (``Warning`` headers)."""
        ...

    def warnings_on_update(self, new: Obj, old: Obj) -> list[str]: ...

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        """Whether the change bumps metadata.generation (a spec change)."""
        ...

    async def admit_create(self, op: Operation, obj: Obj) -> Obj:
        """The in-process mutating admission of a create (upstream's plugins that run before
        the mutating webhooks: a pod's ServiceAccount, LimitRanger defaults, Priority,
        RuntimeClass). Called before the webhooks when there are some; otherwise
        :meth:`begin_create` runs it (``op.admitted`` says whether it ran). Default: none."""
        ...

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        """Allocate what a new object needs (inside ``op``); default: nothing."""
        ...

    async def begin_update(self, op: Operation, new: Obj, old: Obj) -> Obj: ...

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        """A status write: everything but status comes from the stored object."""
        ...

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]: ...

    async def begin_status_update(self, op: Operation, new: Obj, old: Obj) -> Obj: ...

    def end_delete(self, op: Operation, obj: Obj) -> None:
        """Schedule releases of what a deleted object held (run after the delete commits)."""
        ...

    def deletion_grace(self, obj: Obj, requested: int | None) -> int | None:
        """Seconds of graceful deletion for this delete, or None to delete at once."""
        ...


class BaseStrategy:
    """Defaults for strategies: no defaulting, no allocation, spec changes bump generation."""

    kind: ClassVar[str]
    resource: ClassVar[str]
    group: ClassVar[str] = ""
    api_version: ClassVar[str] = "v1"
    namespaced: ClassVar[bool] = True
    has_generation: ClassVar[bool] = False
    default_propagation: ClassVar[str] = ""

    def default(self, obj: Obj) -> Obj:
        return obj

    def prepare_for_create(self, obj: Obj) -> Obj:
        return obj

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return new

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return []

    def warnings_on_create(self, obj: Obj) -> list[str]:
        return []

    def warnings_on_update(self, new: Obj, old: Obj) -> list[str]:
        return []

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")

    async def admit_create(self, op: Operation, obj: Obj) -> Obj:
        return obj

    async def begin_create(self, op: Operation, obj: Obj) -> Obj:
        return obj

    async def begin_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        return new

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = json_copy(old)
        if "status" in new:
            merged["status"] = json_copy(new["status"])
        else:
            merged.pop("status", None)
        return merged

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return []

    async def begin_status_update(self, op: Operation, new: Obj, old: Obj) -> Obj:
        return new

    def end_delete(self, op: Operation, obj: Obj) -> None:
        return None

    def deletion_grace(self, obj: Obj, requested: int | None) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class Preconditions:
    uid: str = ""
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class ListPage:
    items: list[Obj]
    resource_version: str
    continue_after: str = ""
    """Non-empty when the list was cut at ``limit``: the last key returned."""


_IDLE_WAIT = 3600.0
"""How long :meth:`Registry.watch` waits between batches before looking again."""

BeforeWrite = Callable[[Obj | None, Obj], Obj]
"""Last step before a write, given (old, new): e.g. recording managedFields."""


@dataclass(frozen=True, slots=True)
class AdmissionAttributes:
    """One write, as validating admission sees it (k8s.io/apiserver admission.Attributes)."""

    operation: str  # "create" | "update" | "delete"
    group: str
    resource: str
    subresource: str  # "status" for status updates, else ""
    namespace: str
    name: str
    old: Obj | None
    new: Obj  # for a delete, the object deleted (as ``old``)
    #: The version and kind the registry stores (webhooks are sent objects at a version).
    version: str = ""
    kind: str = ""


Admit = Callable[[AdmissionAttributes], None]
"""Validating admission: raises a StatusError to refuse a write."""

Charge = Callable[[AdmissionAttributes, bool], Awaitable[None]]
"""Validating admission that writes (the ResourceQuota admission's charge): the last step
before a create or an update (not a status update) is stored, given the write and whether it
is a dry run; raises a StatusError to refuse it."""


class AdmissionWebhooks(Protocol):
    """The server's admission webhooks, as the write pipeline calls them (the registry knows
    no users and no HTTP): ``mutate`` after defaulting, before the write is prepared and
    validated (upstream's mutating admission: the object as the client sent it, defaulted);
    ``validate`` after validation and the in-process admission, before the quota charge and
    the store. The properties say, without awaiting anything, whether any webhook of the
    kind may be called at all: with none configured a write costs nothing more."""

    @property
    def mutating(self) -> bool: ...

    @property
    def validating(self) -> bool: ...

    async def mutate(self, attrs: AdmissionAttributes, dry_run: bool) -> Obj:
        """The object the webhooks made of ``attrs.new`` (that very object when none
        changed it); raises a StatusError to refuse the write."""
        ...

    async def validate(self, attrs: AdmissionAttributes, dry_run: bool) -> None: ...


def _same_ignoring_managed_fields(a: Obj, b: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        o = dict(o)
        meta = dict(o.get("metadata") or {})
        meta.pop("managedFields", None)
        o["metadata"] = meta
        return o
    return strip(a) == strip(b)


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")


def gc_finalizers(existing: list[str], policy: str) -> list[str]:
    """deletionFinalizersForGarbageCollection: the finalizers after a delete with ``policy``
    (every kind here defaults to deleting dependents, in the background)."""
    if not policy:
        return existing
    out = [f for f in existing if f not in (FINALIZER_ORPHAN, FINALIZER_FOREGROUND)]
    if policy == "Orphan":
        out.append(FINALIZER_ORPHAN)
    elif policy == "Foreground":
        out.append(FINALIZER_FOREGROUND)
    return out


_MAX_GRACE_SECONDS = 10**10
_UPDATE_RETRIES = 5

MAX_OBJECT_BYTES = 3 * 1024 * 1024
"""The largest object stored, as JSON. Kubernetes' bound is etcd's request limit (1.5 MiB by
default, in protobuf, which kube-apiserver reckons at half the JSON: hence its 3 MiB body
limit); a write past it fails there (a 500 "etcdserver: request is too large"). Here it is
checked before the write, as a 413, and before managedFields are computed when the object
alone is already too large: defaulting and managedFields can make a 3 MiB body ten times
larger, and every watcher and list would carry that."""


def too_large_to_store(size: int) -> StatusError:
    return StatusError(413, "RequestEntityTooLarge",
                       f"Request entity too large: the object would be {size} bytes stored, "
                       f"the limit is {MAX_OBJECT_BYTES}")


class Registry:
    """CRUD for one resource over the store, with the Kubernetes write pipeline."""

    def __init__(self, store: Store, strategy: Strategy, *, clock: Clock | None = None,
                 rng: random.Random | None = None,
                 uid_factory: Callable[[], str] | None = None,
                 admit: Admit | None = None, charge: Charge | None = None,
                 webhooks: AdmissionWebhooks | None = None, subresource: str = "") -> None:
        self.store = store
        self.strategy = strategy
        #: The subresource this registry's updates write (a REST type of a subresource with
        #: its own strategy, such as ``certificatesigningrequests/approval`` or
        #: ``namespaces/finalize``; "" for the resource): what admission is told.
        self.subresource = subresource
        self.admit = admit
        self.charge = charge
        self.webhooks = webhooks
        self.clock = clock or RealClock()
        self.rng = rng or random.Random()
        self.new_uid = uid_factory or (lambda: str(uuid.uuid4()))
        group_part = f"{strategy.group}/" if strategy.group else ""
        self.prefix = f"/registry/{group_part}{strategy.resource}/"
        self.watch_cache = WatchCache(store, self.prefix, self.decode)

    # -- keys and codec ---------------------------------------------------------------------

    def key(self, namespace: str, name: str) -> str:
        if self.strategy.namespaced:
            return f"{self.prefix}{namespace}/{name}"
        return f"{self.prefix}{name}"

    def list_prefix(self, namespace: str = "") -> str:
        if self.strategy.namespaced and namespace:
            return f"{self.prefix}{namespace}/"
        return self.prefix

    @staticmethod
    def encode(obj: Obj) -> bytes:
        # apiVersion and kind first, then metadata: with_resource_version relies on it.
        meta = dict(obj.get("metadata") or {})
        meta.pop("resourceVersion", None)
        ordered: Obj = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
        ordered["metadata"] = meta
        ordered.update((k, v) for k, v in obj.items() if k not in ordered)
        return jsonbytes.dumps(ordered)

    @staticmethod
    def decode(kv: KeyValue) -> Obj:
        obj: Obj = jsonbytes.loads(kv.value)
        _meta(obj)["resourceVersion"] = str(kv.mod_revision)
        return obj

    def _name_of(self, obj: Obj) -> str:
        return str(_meta(obj).get("name") or "")

    def _not_found(self, name: str) -> StatusError:
        return errors.not_found(self.strategy.resource, name, self.strategy.group)

    def _invalid(self, obj: Obj, errs: list[FieldError]) -> StatusError:
        return errors.invalid_error(self.strategy.kind, self._name_of(obj), errs,
                                    self.strategy.group)

    def for_subresource(self, subresource: str) -> Registry:
        """The registry whose update strategy writes ``subresource`` (upstream's REST type of
        a subresource with a strategy of its own): this one, unless a resource has such a
        subresource besides ``status`` (which :meth:`update` serves with ``status_only``)."""
        return self

    # -- reads ------------------------------------------------------------------------------

    async def get(self, namespace: str, name: str) -> Obj:
        kv = await self.store.get(self.key(namespace, name))
        if kv is None:
            raise self._not_found(name)
        offload.note_size(len(kv.value))
        return await offload.run(self.decode, kv)

    async def list(self, namespace: str = "", *, limit: int = 0, start_after: str = "",
                   revision: int = 0, name_prefix: str = "") -> ListPage:
        """The objects of ``namespace`` (every namespace: ""), or only those whose name starts
        with ``name_prefix`` (a range read of the store, not a filter over everything)."""
        if name_prefix and self.strategy.namespaced and not namespace:
            raise ValueError("a name prefix needs a namespace")
        result = await self.store.list(self.list_prefix(namespace) + name_prefix, limit=limit,
                                       start_after=start_after, revision=revision)
        items = [self.decode(kv) for kv in result.items]
        cont = result.items[-1].key if result.more and result.items else ""
        return ListPage(items, str(result.revision), cont)

    async def list_raw(self, namespace: str = "", *, limit: int = 0, start_after: str = "",
                       revision: int = 0) -> tuple[Sequence[bytes], str, str]:
        """Like :meth:`list`, but each item is the stored JSON with its resourceVersion
        spliced in: no decode/encode round trip, which dominates listing 10k objects."""
        result = await self.store.list(self.list_prefix(namespace), limit=limit,
                                       start_after=start_after, revision=revision)
        items = [with_resource_version(kv.value, kv.mod_revision) for kv in result.items]
        cont = result.items[-1].key if result.more and result.items else ""
        return items, str(result.revision), cont

    async def open_watch(self, namespace: str, after_revision: int) -> Watcher:
        """A watcher of this resource's changes after ``after_revision`` (0: from now), served
        by the shared watch cache (see :mod:`svcnet.registry.watchcache`). Its events' objects
        are shared between all watchers: treat them as read-only."""
        return await self.watch_cache.watch(self.list_prefix(namespace), after_revision)

    async def watch(self, namespace: str, after_revision: int,
                    ) -> AsyncIterator[tuple[EventType, Obj, Obj | None]]:
        """(type, object, previous object) for every change after ``after_revision``, one at
        a time (:meth:`open_watch` for batches); ends by raising what ended the watch."""
        watcher = await self.open_watch(namespace, after_revision)
        try:
            while True:
                for ev in await watcher.next_batch(_IDLE_WAIT):
                    yield ev.type, ev.obj, ev.prev
        finally:
            watcher.close()

    # -- writes -----------------------------------------------------------------------------

    def _check_namespace(self, namespace: str, obj: Obj) -> None:
        meta = _meta(obj)
        if not self.strategy.namespaced:
            meta.pop("namespace", None)
            return
        given = meta.get("namespace") or ""
        if given and given != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request")
        meta["namespace"] = namespace

    async def create(self, namespace: str, obj: Obj, *, dry_run: bool = False,
                     before_write: BeforeWrite | None = None) -> Obj:
        op: Operation | None = None
        if self.webhooks is not None and self.webhooks.mutating:
            op = Operation(dry_run=dry_run, requested_name=self._name_of(obj))
            obj = await self._mutated("create", namespace, None, obj, dry_run, op=op)
        # The pure steps run through offload.run: off the event loop for a large object.
        obj, requested_name = await offload.run(self._new_object, namespace, obj)
        if op is None:
            op = Operation(dry_run=dry_run, requested_name=requested_name)
        success = False
        try:
            obj = await self.strategy.begin_create(op, obj)
            obj, encoded = await offload.run(self._checked_create, namespace, obj,
                                             before_write)
            name = self._name_of(obj)
            if self.webhooks is not None and self.webhooks.validating:
                await self.webhooks.validate(
                    self._attributes("create", namespace, name, None, obj), dry_run)
            if self.charge is not None:
                await self.charge(self._attributes("create", namespace, name, None, obj),
                                  dry_run)
            if dry_run:
                if await self.store.get(self.key(namespace, name)) is not None:
                    raise errors.already_exists(self.strategy.resource, name,
                                                self.strategy.group)
                success = True
                return obj
            try:
                kv = await self.store.create(self.key(namespace, name), encoded)
            except KeyExists:
                raise errors.already_exists(self.strategy.resource, name,
                                            self.strategy.group) from None
            except BaseException:
                # Anything else (a timeout, a connection lost after the request went out, a
                # cancelled request) leaves the write's outcome unknown: it may be stored, and
                # releasing its allocations could hand them out twice. Repair settles them.
                op.abandon()
                raise
            success = True
            return await offload.run(self.decode, kv)
        finally:
            await op.finish(success)

    def _new_object(self, namespace: str, obj: Obj) -> tuple[Obj, str | None]:
        """A copy of ``obj`` with the server's system fields, defaulted (create, pure); and
        the name the request gave (admission names the object so, before generateName)."""
        obj = json_copy(obj)
        self._check_namespace(namespace, obj)
        meta = _meta(obj)
        if meta.get("resourceVersion"):
            raise errors.bad_request(
                "resourceVersion should not be set on objects to be created")
        requested_name = str(meta.get("name") or "")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(str(meta["generateName"]), self.rng)
        # System fields are the server's: a client cannot choose them on create.
        meta["uid"] = self.new_uid()
        meta["creationTimestamp"] = rfc3339(self.clock.now())
        for system_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(system_field, None)
        if self.strategy.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        return self.strategy.default(obj), requested_name

    def _checked_create(self, namespace: str, obj: Obj,
                        before_write: BeforeWrite | None) -> tuple[Obj, bytes]:
        """Prepare, validate, admit, record (managedFields) and encode a new object (pure)."""
        obj = self.strategy.prepare_for_create(obj)
        errs = self.strategy.validate_create(obj)
        if errs:
            raise self._invalid(obj, errs)
        requestwarnings.add(*self.strategy.warnings_on_create(obj))
        self._go_zeros(obj)
        self._admit("create", "", namespace, self._name_of(obj), None, obj)
        return self._recorded(None, obj, before_write)

    def _go_zeros(self, obj: Obj) -> None:
        with_status_zeros(obj, api_version=self.strategy.api_version, kind=self.strategy.kind)

    def _recorded(self, old: Obj | None, new: Obj,
                  before_write: BeforeWrite | None) -> tuple[Obj, bytes]:
        """``before_write`` applied and the result encoded, within :data:`MAX_OBJECT_BYTES`
        (checked first without what ``before_write`` adds, which costs most)."""
        if before_write is not None:
            if (size := len(self.encode(new))) > MAX_OBJECT_BYTES:
                raise too_large_to_store(size)
            new = before_write(old, new)
        encoded = self.encode(new)
        if len(encoded) > MAX_OBJECT_BYTES:
            raise too_large_to_store(len(encoded))
        return new, encoded

    def _subresource(self, status_only: bool) -> str:
        return "status" if status_only else self.subresource

    def _attributes(self, operation: str, namespace: str, name: str, old: Obj | None,
                    new: Obj, subresource: str = "") -> AdmissionAttributes:
        strategy = self.strategy
        return AdmissionAttributes(operation, strategy.group, strategy.resource,
                                   subresource or self.subresource,
                                   namespace, name, old, new,
                                   strategy.api_version.rpartition("/")[2], strategy.kind)

    async def _mutated(self, operation: str, namespace: str, old: Obj | None, new: Obj,
                       dry_run: bool, subresource: str = "", op: Operation | None = None
                       ) -> Obj:
        """``new`` (a request's object: create, update) defaulted, admitted by the in-process
        mutating admission (a create's: ``op``), and given to the mutating webhooks; what
        they made of it. As upstream, the server's system fields, the name and generateName
        are set after this (so a create's review names no generated name), and what a
        webhook wrote is decoded and defaulted again."""
        assert self.webhooks is not None
        new = await offload.run(self._defaulted, namespace, new)
        if op is not None:
            new = await self.strategy.admit_create(op, new)
            op.admitted = True
        mutated = await self.webhooks.mutate(self._attributes(
            operation, namespace, self._name_of(new), old, new, subresource), dry_run)
        return new if mutated is new else await offload.run(self._defaulted, namespace,
                                                            mutated)

    def _defaulted(self, namespace: str, obj: Obj) -> Obj:
        obj = json_copy(obj)
        self._check_namespace(namespace, obj)
        return self.strategy.default(obj)

    def _admit(self, operation: str, subresource: str, namespace: str, name: str,
               old: Obj | None, new: Obj) -> None:
        if self.admit is not None:
            self.admit(self._attributes(operation, namespace, name, old, new, subresource))

    async def update(self, namespace: str, name: str, obj: Obj, *, dry_run: bool = False,
                     status_only: bool = False, before_write: BeforeWrite | None = None,
                     read: tuple[KeyValue, Obj] | None = None) -> Obj:
        """Replace an object. With ``metadata.resourceVersion`` set, it must be current (409).
        ``read``: the stored object just read, and its decoding (:meth:`update_from`'s read,
        not read and decoded again; the write is conditional on its revision all the same)."""
        new = json_copy(obj)
        self._check_namespace(namespace, new)
        meta = _meta(new)
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                "the name of the object "
                f"({meta['name']}) does not match the name on the URL ({name})")
        meta["name"] = name
        wanted_rv = str(meta.get("resourceVersion") or "")
        if read is not None:
            kv, old = read
        else:
            got = await self.store.get(self.key(namespace, name))
            if got is None:
                raise self._not_found(name)
            kv = got
            offload.note_size(len(kv.value))
            old = await offload.run(self.decode, kv)
        if wanted_rv and wanted_rv != str(kv.mod_revision):
            raise errors.conflict(
                self.strategy.resource, name,
                "the object has been modified; please apply your changes to the latest "
                "version and try again", self.strategy.group)
        if self.webhooks is not None and self.webhooks.mutating:
            new = await self._mutated("update", namespace, old, new, dry_run,
                                      self._subresource(status_only))
            _meta(new)["name"] = name
        op = Operation(dry_run=dry_run)
        success = False
        try:
            if status_only:
                new = await offload.run(self.strategy.prepare_for_status_update, new, old)
                new = await self.strategy.begin_status_update(op, new, old)
            else:
                new = await offload.run(self._prepared_update, new, old)
                new = await self.strategy.begin_update(op, new, old)
            checked = await offload.run(self._checked_update, namespace, name, new, old,
                                        status_only, before_write)
            if checked is None:
                success = True  # a no-op keeps the resourceVersion and writes nothing
                return old
            new, encoded = checked
            if self.webhooks is not None and self.webhooks.validating:
                await self.webhooks.validate(self._attributes(
                    "update", namespace, name, old, new, self._subresource(status_only)),
                    dry_run)
            if self.charge is not None and not status_only:
                await self.charge(self._attributes("update", namespace, name, old, new), dry_run)
            if dry_run:
                success = True
                return new
            try:
                written = await self.store.update(kv.key, encoded, kv.mod_revision)
            except (Conflict, KeyNotFound):
                raise errors.conflict(
                    self.strategy.resource, name,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again", self.strategy.group) from None
            except BaseException:
                op.abandon()  # old or new may be stored: keep both sides' allocations
                raise
            success = True
            stored = await offload.run(self.decode, written)
            deleted = await self._delete_if_finalized(old, stored, written)
            return deleted if deleted is not None else stored
        finally:
            await op.finish(success)

    def _prepared_update(self, new: Obj, old: Obj) -> Obj:
        """Default ``new``, carry ``old``'s system fields over, prepare it (pure)."""
        new = self.strategy.default(new)
        self._carry_system_fields(new, old)
        new = self.strategy.prepare_for_update(new, old)
        if self.strategy.has_generation:
            old_gen = int(_meta(old).get("generation") or 1)
            _meta(new)["generation"] = (
                old_gen + 1 if self.strategy.generation_changed(new, old) else old_gen)
        return new

    def _checked_update(self, namespace: str, name: str, new: Obj, old: Obj,
                        status_only: bool, before_write: BeforeWrite | None,
                        ) -> tuple[Obj, bytes] | None:
        """Validate, admit, record and encode an update (pure); None for a no-op."""
        errs = (self.strategy.validate_status_update(new, old) if status_only
                else self.strategy.validate_update(new, old))
        if errs:
            raise self._invalid(new, errs)
        if not status_only:
            requestwarnings.add(*self.strategy.warnings_on_update(new, old))
        self._go_zeros(new)
        self._admit("update", self._subresource(status_only), namespace, name, old, new)
        _meta(new)["resourceVersion"] = old["metadata"]["resourceVersion"]
        if _same_ignoring_managed_fields(new, old):
            return None
        return self._recorded(old, new, before_write)

    async def update_from(self, namespace: str, name: str,
                          transform: Callable[[Obj | None], Obj], *, dry_run: bool = False,
                          status_only: bool = False, before_write: BeforeWrite | None = None,
                          allow_create: bool = False,
                          before_create: Callable[[], Awaitable[None]] | None = None,
                          ) -> tuple[Obj, bool]:
        """The update of a write computed from the object it replaces, retried on races:
        Kubernetes' ``rest.Update`` with an ``UpdatedObjectInfo`` (patch, apply, scale).

        ``transform`` gets a private copy of the current object (None when there is none) and
        returns the object to write, which goes through the whole update strategy
        (:meth:`update`), or :meth:`create` when there was none and ``allow_create`` (apply's
        ``forceAllowCreate``). When someone else wrote first, the write is recomputed from the
        newer object, unless the new object names a resourceVersion other than the one it was
        computed from: that is a precondition, and the 409 stands. ``before_create`` runs
        before a create and may refuse it (admission that only applies to creates). Returns
        (object, created).
        """
        for _ in range(_UPDATE_RETRIES):
            kv = await self.store.get(self.key(namespace, name))
            if kv is None and not allow_create:
                raise self._not_found(name)
            if kv is not None:
                offload.note_size(len(kv.value))
            current, new = await offload.run(self._transformed, kv, transform)
            try:
                if current is None:
                    if before_create is not None:
                        await before_create()
                    return await self.create(namespace, new, dry_run=dry_run,
                                             before_write=before_write), True
                rv = str(current["metadata"]["resourceVersion"])
                meta = _meta(new)
                conditional = bool(meta.get("resourceVersion")) and meta["resourceVersion"] != rv
                meta["resourceVersion"] = meta.get("resourceVersion") or rv
                assert kv is not None
                return await self.update(namespace, name, new, dry_run=dry_run,
                                         status_only=status_only, before_write=before_write,
                                         read=(kv, current)), False
            except StatusError as e:
                retry = e.code == 409 and e.reason in ("Conflict", "AlreadyExists") and not (
                    e.details or {}).get("causes")
                if not retry or (current is not None and conditional):
                    raise
        raise errors.conflict(self.strategy.resource, name,
                              "the object kept changing while the update was made",
                              self.strategy.group)

    def _transformed(self, kv: KeyValue | None, transform: Callable[[Obj | None], Obj],
                     ) -> tuple[Obj | None, Obj]:
        """The stored object (None: none) and ``transform``'s result for a copy of it."""
        current = self.decode(kv) if kv is not None else None
        return current, transform(json_copy(current) if current is not None else None)

    async def guaranteed_update(self, namespace: str, name: str,
                                mutate: Callable[[Obj], Obj]) -> Obj:
        """Apply ``mutate`` to the current object and write it, retrying on races, *without*
        the update strategy: for the writes Kubernetes makes straight to storage
        (``pods/binding``'s assignPod sets spec.nodeName, which a pod update may not change).
        ``mutate`` gets a private copy; it may raise a StatusError to refuse.
        """
        key = self.key(namespace, name)
        for _ in range(10):
            kv = await self.store.get(key)
            if kv is None:
                raise self._not_found(name)
            new = mutate(self.decode(kv))
            try:
                written = await self.store.update(key, self.encode(new), kv.mod_revision)
            except (Conflict, KeyNotFound):
                continue
            return self.decode(written)
        raise errors.conflict(self.strategy.resource, name,
                              "the object kept changing during the update",
                              self.strategy.group)

    @staticmethod
    def _carry_system_fields(new: Obj, old: Obj) -> None:
        meta, old_meta = _meta(new), _meta(old)
        for f in ("uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation"):
            if f in old_meta:
                meta.setdefault(f, old_meta[f])
        if not meta.get("uid"):
            meta["uid"] = old_meta.get("uid")
        meta.pop("selfLink", None)

    async def delete_in_collection(self, namespace: str, name: str, *, dry_run: bool = False,
                                   grace_period: int | None = None,
                                   propagation_policy: str = "") -> Obj:
        """What a DELETE of the collection does to each object: this plain delete, not a
        resource's own :meth:`delete` (upstream's ``Store.DeleteCollection`` calls the
        store's ``Delete``, so e.g. the system PriorityClasses, which a DELETE of their own
        refuses, go with their collection, and come back at the next start)."""
        return await Registry.delete(self, namespace, name, dry_run=dry_run,
                                     grace_period=grace_period,
                                     propagation_policy=propagation_policy)

    async def delete(self, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False, grace_period: int | None = None,
                     propagation_policy: str = "") -> Obj:
        """Delete an object; for kinds with graceful deletion (pods on a node) the first
        delete only marks it (deletionTimestamp) and whoever runs it deletes it when done.

        Finalizers (Store.Delete's updateForGracefulDeletionAndFinalizers): the propagation
        policy sets the garbage collector's finalizer (``Orphan`` → ``orphan``, ``Foreground``
        → ``foregroundDeletion``, ``Background`` → neither; no policy keeps what the object
        has). An object left with finalizers is only marked (deletionTimestamp, and a grace
        period of 0 unless it is deleted gracefully); the update that removes its last
        finalizer deletes it.
        """
        key = self.key(namespace, name)
        admitted = False
        for _ in range(10):
            kv = await self.store.get(key)
            if kv is None:
                raise self._not_found(name)
            current = self.decode(kv)
            if preconditions is not None:
                self._check_preconditions(current, preconditions)
            admitted = admitted or await self._admit_delete(namespace, name, current, dry_run)
            meta = _meta(current)
            if meta.get("deletionTimestamp") and meta.get("finalizers"):
                # Already deleting; finalizers cannot change any more. A delete that may not
                # wait (grace 0, say the kubelet's) makes the last finalizer's removal final.
                if self.strategy.deletion_grace(current, grace_period) or meta.get(
                        "deletionGracePeriodSeconds") == 0 or dry_run:
                    return current
                now_final = json_copy(current)
                _meta(now_final)["deletionGracePeriodSeconds"] = 0
                try:
                    written = await self.store.update(key, self.encode(now_final),
                                                      kv.mod_revision)
                except (Conflict, KeyNotFound):
                    continue
                return self.decode(written)
            finalizers = gc_finalizers(list(meta.get("finalizers") or []),
                                       propagation_policy or self.strategy.default_propagation)
            grace = self.strategy.deletion_grace(current, grace_period)
            graceful = grace is not None and grace > 0
            if finalizers or graceful:
                marked = (self._mark_for_deletion(current, grace) if graceful and grace
                          else self._mark_deleting(current))
                if marked is None:
                    return current  # already terminating at least as soon
                if finalizers:
                    _meta(marked)["finalizers"] = finalizers
                if dry_run:
                    return marked
                try:
                    written = await self.store.update(key, self.encode(marked), kv.mod_revision)
                except (Conflict, KeyNotFound):
                    continue
                return self.decode(written)
            if dry_run:
                return current
            try:
                await self.store.delete(key, kv.mod_revision)
            except KeyNotFound:
                raise self._not_found(name) from None
            except Conflict:
                continue  # changed under us: re-check preconditions against the new state
            op = Operation()
            self.strategy.end_delete(op, current)
            await op.finish(True)
            return current
        raise errors.conflict(self.strategy.resource, name,
                              "the object kept changing while being deleted",
                              self.strategy.group)

    async def _admit_delete(self, namespace: str, name: str, current: Obj,
                            dry_run: bool) -> bool:
        """The admission webhooks of a delete (upstream's deleteValidation: once, after the
        preconditions, with the object as it is; a mutating webhook cannot change it).
        True: admitted."""
        webhooks = self.webhooks
        if webhooks is None or not (webhooks.mutating or webhooks.validating):
            return True
        attrs = self._attributes("delete", namespace, name, current, current)
        if webhooks.mutating:
            await webhooks.mutate(attrs, dry_run)
        if webhooks.validating:
            await webhooks.validate(attrs, dry_run)
        return True

    def _mark_deleting(self, current: Obj) -> Obj:
        """markAsDeleting: deletionTimestamp now (if unset) and a grace period of 0 (unlike a
        graceful deletion, this does not bump the generation)."""
        marked = json_copy(current)
        meta = _meta(marked)
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = rfc3339(self.clock.now())
        meta["deletionGracePeriodSeconds"] = 0
        return marked

    def should_delete_during_update(self, old: Obj, new: Obj) -> bool:
        """ShouldDeleteDuringUpdate: the update removed the last finalizer of an object
        marked for deletion without a grace period (none, or 0)."""
        if _meta(new).get("finalizers") or not _meta(old).get("deletionTimestamp"):
            return False
        return _meta(old).get("deletionGracePeriodSeconds") in (None, 0)

    async def _delete_if_finalized(self, old: Obj, new: Obj, written: KeyValue) -> Obj | None:
        """An update (``new``, stored as ``written``) after which
        :meth:`should_delete_during_update` holds deletes the object. Returns the deleted
        object."""
        if not self.should_delete_during_update(old, new):
            return None
        try:
            await self.store.delete(written.key, written.mod_revision)
        except (Conflict, KeyNotFound):
            return None  # changed again meanwhile: that write decides
        op = Operation()
        self.strategy.end_delete(op, new)
        await op.finish(True)
        return new

    def _mark_for_deletion(self, current: Obj, grace: int) -> Obj | None:
        """Set deletionTimestamp = now + grace, or shorten an existing one; None if the
        object is already due at least as soon."""
        meta = _meta(current)
        # Any int64 is a valid grace period; a date can only be so far away (Go's Duration
        # would overflow past ~292 years), so the deadline stops at ~317 years from now.
        deadline = self.clock.now() + timedelta(seconds=min(grace, _MAX_GRACE_SECONDS))
        existing = meta.get("deletionTimestamp")
        if existing:
            try:
                due = datetime.fromisoformat(str(existing).replace("Z", "+00:00"))
            except ValueError:
                due = deadline
            if due <= deadline:
                return None
        marked = json_copy(current)
        _meta(marked)["deletionTimestamp"] = rfc3339(deadline)
        _meta(marked)["deletionGracePeriodSeconds"] = grace
        if self.strategy.has_generation:
            _meta(marked)["generation"] = int(meta.get("generation") or 1) + 1
        return marked

    def _check_preconditions(self, current: Obj, pre: Preconditions) -> None:
        meta = _meta(current)
        name = self._name_of(current)
        if pre.uid and pre.uid != meta.get("uid"):
            raise errors.conflict(
                self.strategy.resource, name,
                f"Precondition failed: UID in precondition: {pre.uid}, "
                f"UID in object meta: {meta.get('uid')}", self.strategy.group)
        if pre.resource_version and pre.resource_version != meta.get("resourceVersion"):
            raise errors.conflict(
                self.strategy.resource, name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{pre.resource_version}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion')}", self.strategy.group)
