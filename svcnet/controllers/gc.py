"""The garbage collector: deletes objects whose owners are gone.

Theory of operation (after ``pkg/controller/garbagecollector``: ``garbagecollector.go``'s
``attemptToDeleteItem``, ``classifyReferences``, ``isDangling``,
``processDeletingDependentsItem`` and ``orphanDependents``)
-------------------------------------------------------------------------------------------
An object names its owners in ``metadata.ownerReferences`` (apiVersion, kind, name, uid). When
every owner is gone, the object is garbage. Upstream builds a graph of every resource the
server has; we watch a fixed set of resources (by default pods, ReplicaSets, Deployments,
Jobs, CronJobs, DaemonSets, StatefulSets, ReplicationControllers, ControllerRevisions,
EndpointSlices and Services: the kinds svcnet's controllers create owned objects of, and their
owners; and
Namespaces, which a delete may give the ``orphan`` or ``foregroundDeletion`` finalizer) with one
informer each, indexed by uid and by owner uid, and resolve owners of other kinds (a Node, a
Namespace) with a GET. Custom resources join in: the objects of every established CRD get an
informer of their own while the CRD exists (:meth:`GarbageCollector.follow_custom_resources`),
and an owner of a kind the collector does not know is found through discovery
(:func:`svcnet.client.discovery.resource_for_kind`).

One queue of ``<resource>|<namespace>/<name>`` keys. An object is queued when it appears, or
when its owner references, deletion or finalizers change, while it has owners or GC
finalizers, and the dependents of an object are queued when
it is deleted. :meth:`GarbageCollector.sync` is level-triggered:

* **a dependent** (has ownerReferences, is not being deleted): classify each reference
  (:func:`classify_owners`): *solid* (the owner exists with that uid and is not being deleted
  in the foreground), *dangling* (404, or the name now belongs to another uid), or *waiting*
  (the owner is being deleted in the foreground: ``deletionTimestamp`` and the
  ``foregroundDeletion`` finalizer). An owner found in our caches exists; one that is not is
  confirmed with a GET before it is called dangling, because our informers may lag behind each
  other (a ReplicaSet can be seen before the Deployment that created it). Then
  (:func:`decide`):

  - some solid owner → keep the object, but remove the dangling and waiting references;
  - only waiting owners, and the object has dependents itself → delete it in the foreground;
  - otherwise → delete it, with the propagation its own finalizers ask for (``orphan``,
    ``foregroundDeletion``), else in the background.

  Deletes carry a uid precondition, so a new object of the same name is never hit.

* **an owner being deleted with the orphan finalizer** → remove the references to it from
  every dependent, then remove the finalizer (the API server then completes the deletion);
* **an owner being deleted with the foregroundDeletion finalizer** → queue its dependents
  (they classify it as waiting and are deleted); once no dependent whose reference has
  ``blockOwnerDeletion: true`` is left, remove the finalizer.

The propagation policy is the client's choice at delete time: ``Background`` (the default for
every kind we serve) deletes the owner at once and leaves the dependents to this collector;
``Foreground`` and ``Orphan`` need the API server to support finalizers on delete (it marks
the owner with ``deletionTimestamp`` and the finalizer instead of deleting it, and deletes it
when the last finalizer is removed). The collector's side of all three is here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from svcnet.api.access import (
    list_of as _list,
    meta_of as _meta,
    namespace_name_of as _namespace_name,
    namespace_of as _namespace,
    uid_of as _uid,
)
from svcnet.api.crds import established as crd_established
from svcnet.api.errors import StatusError
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.discovery import Requester, resource_for_kind
from svcnet.client.informer import (
    EventHandler,
    Informer,
    InformerFactory,
    ListerWatcher,
    object_key,
)
from svcnet.client.rest import (
    CONFIGMAPS,
    CUSTOMRESOURCEDEFINITIONS,
    ENDPOINTS,
    ENDPOINTSLICES,
    EVENTS,
    GVR,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    PatchType,
    Preconditions,
)
from svcnet.client.workqueue import RateLimitingQueue
from svcnet.controllers.crd import served_gvr
from svcnet.controllers.ownership import (
    CONTROLLERREVISIONS,
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    JOBS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    STATEFULSETS,
    APIClient,
    WorkloadClient,
)
from svcnet.util.clock import Clock, RealClock


class GCClient(APIClient, Requester, Protocol):
    """What :meth:`GarbageCollector.from_client` needs: reads, watches, writes, and discovery
    requests (RESTClient fits)."""


__all__ = [
    "COMPONENT",
    "DEFAULT_RESOURCES",
    "FINALIZER_FOREGROUND",
    "FINALIZER_ORPHAN",
    "Decision",
    "GarbageCollector",
    "OwnerClass",
    "classify_owners",
    "decide",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "garbage-collector-controller"
FINALIZER_ORPHAN: Final = "orphan"
FINALIZER_FOREGROUND: Final = "foregroundDeletion"
UID_INDEX: Final = "uid"
OWNER_UID_INDEX: Final = "ownerUID"
ABSENT_OWNER_CACHE_SIZE: Final = 500

DEFAULT_RESOURCES: Final = (PODS, REPLICASETS, DEPLOYMENTS, ENDPOINTSLICES, SERVICES,
                            CONFIGMAPS, SECRETS, SERVICEACCOUNTS, NAMESPACES, DAEMONSETS,
                            STATEFULSETS, REPLICATIONCONTROLLERS, JOBS, CRONJOBS,
                            CONTROLLERREVISIONS)
"""What the collector watches: the owned kinds svcnet creates, their owners, and the kinds
applications commonly give owners (a Deployment's ConfigMap, say); and
Namespaces, whose deletion with ``propagationPolicy: Orphan`` (or ``Foreground``) carries the
collector's finalizer."""
KNOWN_KINDS: Final = {(g.group, g.kind): g for g in (
    PODS, SERVICES, NODES, NAMESPACES, ENDPOINTS, EVENTS, ENDPOINTSLICES, LEASES,
    REPLICASETS, DEPLOYMENTS, CONFIGMAPS, SECRETS, SERVICEACCOUNTS, DAEMONSETS, STATEFULSETS,
    REPLICATIONCONTROLLERS, JOBS, CRONJOBS)}
"""Owner kinds the collector can look up by name, keyed by (group, kind)."""


# =============================================================================================
# accessors


def owner_refs(obj: ObjMap) -> list[dict[str, Any]]:
    return [r for r in _list(_meta(obj), "ownerReferences") if isinstance(r, dict)]


def finalizers(obj: ObjMap) -> list[str]:
    return [str(f) for f in _list(_meta(obj), "finalizers")]


def _deleting(obj: ObjMap) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _graph_changed(old: ObjMap, new: ObjMap) -> bool:
    """Whether an update can change what the collector decides about the object: its owner
    references, or its deletion and finalizers (graph_builder.go's ``processGraphChanges``
    acts on ``referencesDiffs`` and on deletion transitions, not on every update: an
    EndpointSlice rewritten for each change of its Service is not the collector's business)."""
    return (owner_refs(old) != owner_refs(new) or _deleting(old) != _deleting(new)
            or finalizers(old) != finalizers(new))


def waiting_for_dependents(obj: ObjMap) -> bool:
    """isDeletingDependents: being deleted in the foreground."""
    return _deleting(obj) and FINALIZER_FOREGROUND in finalizers(obj)


def uid_index(obj: Obj) -> list[str]:
    uid = _uid(obj)
    return [uid] if uid else []


def owner_uid_index(obj: Obj) -> list[str]:
    return sorted({str(r["uid"]) for r in owner_refs(obj) if r.get("uid")})


def _group_of(api_version: str) -> str:
    group, _, _ = api_version.rpartition("/")
    return group


# =============================================================================================
# pure decisions


@dataclass(frozen=True, slots=True)
class OwnerClass:
    """classifyReferences' result: the reference uids in each class."""

    solid: list[str] = field(default_factory=list)
    dangling: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def classify_owners(refs: Sequence[ObjMap], owners: Mapping[str, ObjMap | None]) -> OwnerClass:
    """Classify references given what each owner uid resolved to (None: dangling). Pure."""
    out = OwnerClass()
    for ref in refs:
        uid = str(ref.get("uid") or "")
        owner = owners.get(uid)
        if owner is None:
            out.dangling.append(uid)
        elif waiting_for_dependents(owner):
            out.waiting.append(uid)
        else:
            out.solid.append(uid)
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a dependent: nothing, drop some references, or delete it."""

    action: str
    """``keep``, ``unlink`` (remove ``uids`` from its ownerReferences) or ``delete``."""
    uids: tuple[str, ...] = ()
    policy: str = ""
    """For ``delete``: Background, Foreground or Orphan."""


def decide(obj: ObjMap, classes: OwnerClass, has_dependents: bool) -> Decision:
    """attemptToDeleteItem's decision once the owners are classified. Pure."""
    if classes.solid:
        stale = tuple(classes.dangling + classes.waiting)
        return Decision("unlink", stale) if stale else Decision("keep")
    if classes.waiting and has_dependents:
        return Decision("delete", policy="Foreground")
    own = finalizers(obj)
    if FINALIZER_ORPHAN in own:
        return Decision("delete", policy="Orphan")
    if FINALIZER_FOREGROUND in own:
        return Decision("delete", policy="Foreground")
    return Decision("delete", policy="Background")


def unlink_patch(obj: ObjMap, uids: Iterable[str]) -> list[Obj]:
    """A JSON patch removing the references to ``uids``, applied only to the object we saw."""
    drop = set(uids)
    current = _list(_meta(obj), "ownerReferences")
    rest = [r for r in current if not (isinstance(r, dict) and str(r.get("uid")) in drop)]
    ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": _uid(obj)},
                      {"op": "test", "path": "/metadata/ownerReferences", "value": current}]
    if rest:
        ops.append({"op": "replace", "path": "/metadata/ownerReferences", "value": rest})
    else:
        ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
    return ops


def remove_finalizer_patch(obj: ObjMap, finalizer: str) -> Obj:
    """removeFinalizer's merge patch: the finalizers without ``finalizer``, conditional on the
    resourceVersion we read."""
    rest = [f for f in finalizers(obj) if f != finalizer]
    return {"metadata": {"resourceVersion": str(_meta(obj).get("resourceVersion") or ""),
                         "finalizers": rest or None}}


# =============================================================================================
# the collector


class GarbageCollector:
    """Deletes dependents of deleted owners (see the module doc)."""

    def __init__(self, client: WorkloadClient, informers: Mapping[GVR, Informer], *,
                 clock: Clock | None = None, workers: int = 1,
                 discovery: Requester | None = None) -> None:
        self._client = client
        #: How owners of kinds outside :data:`KNOWN_KINDS` (custom resources) are found.
        self._discovery = discovery
        self._lister: ListerWatcher | None = None
        self._crds: Informer | None = None
        self._started = False
        self._stopping: set[asyncio.Task[None]] = set()
        self._clock: Clock = clock or RealClock()
        self.informers: dict[str, tuple[GVR, Informer]] = {
            str(gvr): (gvr, informer) for gvr, informer in informers.items()}
        self._absent: OrderedDict[str, None] = OrderedDict()
        self.controller = Controller(COMPONENT, self.sync, informers=list(informers.values()),
                                     workers=workers, clock=self._clock)
        for rid, (_, informer) in self.informers.items():
            informer.indexer.add_index(UID_INDEX, uid_index)
            informer.indexer.add_index(OWNER_UID_INDEX, owner_uid_index)
            informer.add_handler(self._handler(rid))

    @classmethod
    def from_client(cls, client: GCClient, *, resources: Sequence[GVR] = DEFAULT_RESOURCES,
                    clock: Clock | None = None, workers: int = 1,
                    informers: InformerFactory | None = None) -> GarbageCollector:
        factory = InformerFactory.of(informers, client, clock=clock)
        gc = cls(client, {gvr: factory.informer(gvr, name=str(gvr)) for gvr in resources},
                 clock=clock, workers=workers, discovery=client)
        gc.follow_custom_resources(factory.informer(CUSTOMRESOURCEDEFINITIONS,
                                                    name="customresourcedefinitions"), client)
        return gc

    def follow_custom_resources(self, crds: Informer, lister: ListerWatcher) -> None:
        """Watch the objects of every established CRD too (upstream's GC monitors every
        deletable resource discovery lists), each with an informer of its own, started when
        its CRD is seen and stopped when the CRD is gone."""
        self._crds, self._lister = crds, lister
        crds.add_handler(EventHandler(on_add=self._crd_changed,
                                      on_update=lambda _old, new: self._crd_changed(new),
                                      on_delete=self._crd_gone))

    def _crd_changed(self, crd: Obj) -> None:
        gvr = served_gvr(crd) if crd_established(crd) else None
        if gvr is None or str(gvr) in self.informers or self._lister is None:
            return
        rid = str(gvr)
        informer = Informer(self._lister, gvr, clock=self._clock, name=rid)
        informer.indexer.add_index(UID_INDEX, uid_index)
        informer.indexer.add_index(OWNER_UID_INDEX, owner_uid_index)
        informer.add_handler(self._handler(rid))
        self.informers[rid] = (gvr, informer)
        if self._started:
            informer.start()

    def _crd_gone(self, crd: Obj) -> None:
        gvr = served_gvr(crd)
        entry = self.informers.pop(str(gvr), None) if gvr is not None else None
        if entry is not None and self._started:
            task = asyncio.get_running_loop().create_task(entry[1].stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    @property
    def queue(self) -> RateLimitingQueue[str]:
        return self.controller.queue

    def start(self) -> None:
        self._started = True
        if self._crds is not None:
            self._crds.start()
        for _, informer in list(self.informers.values()):
            informer.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        if self._crds is not None:
            await self._crds.stop()
        for _, informer in list(self.informers.values()):
            await informer.stop()

    def has_synced(self) -> bool:
        return self.controller.has_synced()

    # -- lookups ----------------------------------------------------------------------------

    def _by_uid(self, uid: str) -> tuple[str, Obj] | None:
        for rid, (_, informer) in self.informers.items():
            found = informer.by_index(UID_INDEX, uid)
            if found:
                return rid, found[0]
        return None

    def _dependents(self, uid: str) -> list[tuple[str, Obj]]:
        out: list[tuple[str, Obj]] = []
        for rid, (_, informer) in self.informers.items():
            out.extend((rid, obj) for obj in informer.by_index(OWNER_UID_INDEX, uid))
        return out

    def _key(self, rid: str, obj: ObjMap) -> str:
        return f"{rid}|{object_key(obj)}"

    # -- handlers ---------------------------------------------------------------------------

    def _handler(self, rid: str) -> EventHandler:
        def on_add(obj: Obj) -> None:
            if owner_refs(obj) or (_deleting(obj) and self._gc_finalizer(obj)):
                self.queue.add(self._key(rid, obj))

        def on_delete(obj: Obj) -> None:
            for dep_rid, dep in self._dependents(_uid(obj)):
                self.queue.add(self._key(dep_rid, dep))
            self._wake_waiting_owners(owner_uid_index(obj))

        def on_update(old: Obj, new: Obj) -> None:
            if _uid(old) != _uid(new):
                # Deleted and re-created between two looks (a relist): the old object's
                # dependents lost their owner.
                on_delete(old)
                on_add(new)
            elif _graph_changed(old, new):
                on_add(new)
            # References that went away may have been the last blocking one of an owner that
            # waits for its dependents.
            gone = set(owner_uid_index(old)) - set(owner_uid_index(new))
            self._wake_waiting_owners(gone)

        return EventHandler(on_add=on_add, on_update=on_update, on_delete=on_delete)

    def _wake_waiting_owners(self, uids: Iterable[str]) -> None:
        for uid in uids:
            found = self._by_uid(uid)
            if found is not None and _deleting(found[1]) and self._gc_finalizer(found[1]):
                self.queue.add(self._key(*found))

    @staticmethod
    def _gc_finalizer(obj: ObjMap) -> bool:
        own = finalizers(obj)
        return FINALIZER_ORPHAN in own or FINALIZER_FOREGROUND in own

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        rid, _, obj_key = key.partition("|")
        entry = self.informers.get(rid)
        if entry is None:
            return
        gvr, informer = entry
        obj = informer.get(obj_key)
        if obj is None:
            return
        if _deleting(obj):
            own = finalizers(obj)
            if FINALIZER_ORPHAN in own:
                await self._orphan_dependents(gvr, obj)
            elif FINALIZER_FOREGROUND in own:
                await self._process_deleting_dependents(gvr, obj)
            return  # otherwise already on its way out
        refs = owner_refs(obj)
        if not refs:
            return
        owners: dict[str, ObjMap | None] = {}
        for ref in refs:
            owners[str(ref.get("uid") or "")] = await self._resolve_owner(obj, ref)
        classes = classify_owners(refs, owners)
        decision = decide(obj, classes, bool(self._dependents(_uid(obj))))
        ns, name = _namespace_name(obj)
        if decision.action == "unlink":
            try:
                await self._client.patch(gvr, ns, name, unlink_patch(obj, decision.uids),
                                         patch_type=PatchType.JSON)
            except StatusError as e:
                if e.code not in (404, 422):
                    raise
            return
        if decision.action == "delete":
            log.info("%s: deleting %s %s (owners gone), propagation %s", COMPONENT, gvr,
                     obj_key, decision.policy)
            try:
                await self._client.delete(gvr, ns, name, preconditions=Preconditions(
                    uid=_uid(obj)), propagation_policy=decision.policy)
            except StatusError as e:
                if e.code == 404:
                    return
                if e.code == 409:
                    raise RequeueError(f"{gvr} {obj_key} changed meanwhile: {e}") from e
                raise

    async def _resolve_owner(self, obj: ObjMap, ref: ObjMap) -> ObjMap | None:
        """isDangling, inverted: the owner object if it exists with the referenced uid (from
        a cache, else read from the server), None if it is gone. Owners we cannot look up
        count as existing: never delete on a guess."""
        uid = str(ref.get("uid") or "")
        if uid in self._absent:
            return None
        found = self._by_uid(uid)
        if found is not None:
            return found[1]
        gvr = KNOWN_KINDS.get((_group_of(str(ref.get("apiVersion") or "")),
                               str(ref.get("kind") or "")))
        if gvr is None and self._discovery is not None:  # a custom resource, say
            gvr = await resource_for_kind(self._discovery, str(ref.get("apiVersion") or ""),
                                          str(ref.get("kind") or ""))
        if gvr is None:
            log.debug("%s: cannot look up owner kind %s/%s", COMPONENT, ref.get("apiVersion"),
                      ref.get("kind"))
            return {"metadata": {"uid": uid}}
        ns = _namespace(obj)
        if gvr.namespaced and not ns:
            self._remember_absent(uid)  # a cluster-scoped object cannot have one
            return None
        name = str(ref.get("name") or "")
        try:
            owner = await self._client.get(gvr, ns if gvr.namespaced else "", name)
        except StatusError as e:
            # Only "that object is not there" is an answer; a resource the server does not
            # serve (a 404 without details) must not make every dependent garbage.
            if e.code == 404 and (e.details or {}).get("name") == name:
                self._remember_absent(uid)
                return None
            raise
        if _uid(owner) != uid:
            self._remember_absent(uid)
            return None
        return owner

    def _remember_absent(self, uid: str) -> None:
        # A uid never comes back: remembering it saves a GET per sibling dependent.
        self._absent[uid] = None
        while len(self._absent) > ABSENT_OWNER_CACHE_SIZE:
            self._absent.popitem(last=False)

    async def _orphan_dependents(self, gvr: GVR, owner: Obj) -> None:
        """orphanDependents, then remove the ``orphan`` finalizer."""
        uid = _uid(owner)
        for dep_rid, dep in self._dependents(uid):
            dep_gvr = self.informers[dep_rid][0]
            ns, name = _namespace_name(dep)
            try:
                await self._client.patch(dep_gvr, ns, name, unlink_patch(dep, [uid]),
                                         patch_type=PatchType.JSON)
            except StatusError as e:
                if e.code == 404:
                    continue
                if e.code == 422:
                    raise RequeueError(f"{dep_gvr} {object_key(dep)} changed while being "
                                       "orphaned") from e
                raise
        await self._remove_finalizer(gvr, owner, FINALIZER_ORPHAN)

    async def _process_deleting_dependents(self, gvr: GVR, owner: Obj) -> None:
        """processDeletingDependentsItem: delete dependents; drop the finalizer when no
        blocking one is left."""
        uid = _uid(owner)
        dependents = self._dependents(uid)
        blocking = [(rid, dep) for rid, dep in dependents if any(
            str(r.get("uid")) == uid and r.get("blockOwnerDeletion") is True
            for r in owner_refs(dep))]
        if not blocking:
            await self._remove_finalizer(gvr, owner, FINALIZER_FOREGROUND)
            return
        for rid, dep in dependents:
            if not waiting_for_dependents(dep):
                self.queue.add(self._key(rid, dep))

    async def _remove_finalizer(self, gvr: GVR, obj: ObjMap, finalizer: str) -> None:
        ns, name = _namespace_name(obj)
        try:
            await self._client.patch(gvr, ns, name, remove_finalizer_patch(obj, finalizer),
                                     patch_type=PatchType.MERGE)
        except StatusError as e:
            if e.code == 404:
                return
            if e.code == 409:
                raise RequeueError(f"{gvr} {object_key(obj)} changed meanwhile") from e
            raise
