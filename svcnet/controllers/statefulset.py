"""The StatefulSet controller: pods with a stable identity (``<set>-<ordinal>``), made, replaced
and removed in order.

Theory of operation (after ``pkg/controller/statefulset``: ``stateful_set.go``'s ``sync`` and
pod event handlers; ``stateful_set_control.go``'s ``updateStatefulSet``, ``processReplica``,
``processCondemned``, ``computeReplicaStatus`` and ``completeRollingUpdate``;
``stateful_set_utils.go``'s ``newVersionedStatefulSetPod``, ``updateIdentity``,
``updateStorage``, ``getPersistentVolumeClaims``, ``isRunningAndReady``)
-------------------------------------------------------------------------------------------------
Two informers (StatefulSets, pods) feed one queue of StatefulSet keys: a set's own changes and
its pods' changes (by controller reference; an orphan → every set selecting it) enqueue it.
:meth:`StatefulSetController.sync` is level-triggered:

1. claim the namespace's pods that are *members* of the set (their name parses as
   ``<set name>-<ordinal>``) by selector, adopting and releasing as the ReplicaSet controller;
2. :func:`plan` (pure) sorts them into the *replicas* (ordinals ``start .. start+replicas-1``,
   ``start`` being ``spec.ordinals.start``) and the *condemned* (any other ordinal), then walks
   upstream's steps, stopping at the first blocking one when the policy is ``OrderedReady``
   (*monotonic*) and doing them all at once when it is ``Parallel``:

   a. per replica slot in ascending ordinal: a Failed or Succeeded pod is deleted (a new one
      follows once it is gone); a missing pod is created (with its claims, below); a
      terminating, not Running-and-Ready or not yet available (``minReadySeconds``) pod blocks;
   b. condemned pods in descending ordinal: a terminating one blocks; one that is not healthy
      blocks unless it is the first unhealthy pod of the set; otherwise it is deleted, one at a
      time when monotonic;
   c. with ``updateStrategy`` ``RollingUpdate``, the highest-ordinal replica at an index ≥
      ``partition`` whose revision is not the update revision is deleted (to be recreated from
      the new template by a later sync), one at a time, waiting for every replica above it to be
      available again; ``OnDelete`` replaces nothing: deleted pods come back new;
3. creations and deletions wait on expectations, as the ReplicaSet controller's (deterministic
   names make a repeated creation a harmless AlreadyExists, but acting on a stale cache would
   delete twice); the status is written through ``/status`` when it changed.

A stateful pod is the template's pod (``generateName: <set>-`` and the name ``<set>-<ordinal>``,
a controller reference) with the labels ``statefulset.kubernetes.io/pod-name``,
``apps.kubernetes.io/pod-index`` and ``controller-revision-hash``, ``spec.hostname`` its name
and ``spec.subdomain`` the set's ``serviceName`` (the cluster DNS serves
``<pod>.<service>.<ns>.svc`` from the EndpointSlice hostnames of a headless Service), and one
``persistentVolumeClaim`` volume per ``volumeClaimTemplates`` entry, claim
``<template>-<set>-<ordinal>``. Those claims are created (labelled with the selector's
``matchLabels``, no owner: the ``Retain`` retention policy, svcnet's only one) just before the
pod; an existing claim is used as it is.

Revisions: each sync first brings the set's history up to date
(:mod:`svcnet.controllers.history`: a ControllerRevision ``<set>-<hash>`` per template,
``revisionHistoryLimit`` of them kept besides those pods run, the current and the update
revision). ``updateRevision`` is the current template's, ``currentRevision`` the status's until
a rolling update completes (every pod updated and Ready). A missing pod below the partition
(with ``RollingUpdate``) is made from the ``currentRevision``'s template and labelled with it,
as upstream's ``newVersionedStatefulSetPod``; the others from the set's template. Not
implemented: ``maxUnavailable`` (an alpha gate upstream), the ``Delete`` claim retention
policies (claims are always kept), repairing the identity or storage of adopted pods, and the
stale-claim check of ``PodClaimIsStale``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from svcnet.api.access import (
    int_of as _int,
    labels_of as _labels,
    list_of as _list,
    map_of as _map,
    meta_of as _meta,
    name_of as _name,
    namespace_of as _namespace,
    uid_of as _uid,
)
from svcnet.api.errors import StatusError, is_namespace_terminating
from svcnet.api.statefulsets import ON_DELETE, PARALLEL, ROLLING_UPDATE
from svcnet.client.controller import Controller, InformerController
from svcnet.client.events import EventRecorder
from svcnet.client.informer import (
    NAMESPACE_INDEX,
    EventHandler,
    Informer,
    InformerFactory,
    object_key,
    split_key,
)
from svcnet.client.rest import PERSISTENTVOLUMECLAIMS, PODS, Preconditions
from svcnet.controllers.history import (
    HASH_LABEL as REVISION_HASH_LABEL,
    live_names,
    owner_key,
    revision_name as _revision_name,
    sync_history,
    template_of,
)
from svcnet.controllers.ownership import (
    CONTROLLERREVISIONS,
    STATEFULSETS,
    APIClient,
    WorkloadClient,
    claim,
    controller_ref,
    label_selector,
    recheck_deletion,
    spec_replicas,
    terminating as _terminating,
)
from svcnet.controllers.replicaset import (
    ControllerExpectations,
    is_pod_available,
    is_pod_ready,
    pod_from_template,
)
from svcnet.util.clock import Clock, RealClock

__all__ = ["COMPONENT", "Plan", "StatefulSetController", "plan", "revision_name",
           "stateful_pod"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "statefulset-controller"
POD_NAME_LABEL: Final = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL: Final = "apps.kubernetes.io/pod-index"
DEFAULT_RESYNC: Final = 300.0
_MEMBER: Final = re.compile(r"^(.*)-([0-9]+)$")
_MAX_ORDINAL: Final = 2**31 - 1


# =============================================================================================
# identity (stateful_set_utils.go)


def parent_and_ordinal(pod: ObjMap) -> tuple[str, int]:
    """getParentNameAndOrdinal: ``("", -1)`` when the name is not ``<parent>-<ordinal>``."""
    m = _MEMBER.match(_name(pod))
    if m is None or int(m.group(2)) > _MAX_ORDINAL:
        return "", -1
    return m.group(1), int(m.group(2))


def is_member(sts: ObjMap, pod: ObjMap) -> bool:
    return parent_and_ordinal(pod)[0] == _name(sts)


def start_ordinal(sts: ObjMap) -> int:
    return _int(_map(_map(sts, "spec"), "ordinals"), "start")


def revision_name(sts: ObjMap) -> str:
    """The name of the revision of the set's current template (a ControllerRevision's name)."""
    return _revision_name(sts)


def claim_name(template: ObjMap, sts: ObjMap, ordinal: int) -> str:
    return f"{_name(template)}-{_name(sts)}-{ordinal}"


def _claim_templates(sts: ObjMap) -> list[Obj]:
    return [t for t in _list(_map(sts, "spec"), "volumeClaimTemplates") if isinstance(t, dict)]


def persistent_volume_claims(sts: ObjMap, ordinal: int) -> list[Obj]:
    """getPersistentVolumeClaims: the claims of the pod with ``ordinal``. Pure."""
    match_labels = _map(_map(_map(sts, "spec"), "selector"), "matchLabels")
    claims = []
    for template in _claim_templates(sts):
        meta = copy.deepcopy(dict(_meta(template)))
        meta.update(name=claim_name(template, sts, ordinal), namespace=_namespace(sts))
        if match_labels:
            meta["labels"] = dict(match_labels)
        else:
            meta.pop("labels", None)
        claims.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                       "spec": copy.deepcopy(dict(_map(template, "spec")))})
    return claims


def stateful_pod(sts: ObjMap, ordinal: int, revision: str = "") -> Obj:
    """newStatefulSetPod + the revision label (``revision``, by default the set's template's):
    the pod for ``ordinal``. Pure."""
    pod = pod_from_template(sts, STATEFULSETS)
    name = f"{_name(sts)}-{ordinal}"
    meta = pod["metadata"]
    meta["name"] = name
    labels = meta.setdefault("labels", {})
    labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                   REVISION_HASH_LABEL: revision or revision_name(sts)})
    spec = pod["spec"]
    spec["hostname"] = name
    service = _map(sts, "spec").get("serviceName")
    if service:
        spec["subdomain"] = service
    templates = _claim_templates(sts)
    if templates:
        names = {_name(t) for t in templates}
        volumes: list[Any] = [{"name": _name(t), "persistentVolumeClaim": {
            "claimName": claim_name(t, sts, ordinal)}} for t in templates]
        volumes.extend(v for v in _list(spec, "volumes")
                       if not (isinstance(v, dict) and v.get("name") in names))
        spec["volumes"] = volumes
    return pod


# =============================================================================================
# pod predicates


def _phase(pod: ObjMap) -> str:
    return str(_map(pod, "status").get("phase") or "")


def is_running_and_ready(pod: ObjMap) -> bool:
    return _phase(pod) == "Running" and is_pod_ready(pod)


def _healthy(pod: ObjMap) -> bool:
    return is_running_and_ready(pod) and not _terminating(pod)


def _available(pod: ObjMap, min_ready: int, now: datetime) -> bool:
    return _phase(pod) == "Running" and is_pod_available(pod, min_ready, now)


def _unavailable(pod: ObjMap | None, min_ready: int, now: datetime) -> bool:
    return pod is None or not _healthy(pod) or not _available(pod, min_ready, now)


def _revision(pod: ObjMap) -> str:
    return str(_labels(pod).get(REVISION_HASH_LABEL) or "")


# =============================================================================================
# pure planning


@dataclass
class Plan:
    """What one sync of a StatefulSet should do, and the status it observed."""

    create: list[Obj] = field(default_factory=list)
    """Pods to create, in this order (each after its claims)."""
    claims: list[Obj] = field(default_factory=list)
    """Claims to create (those that exist already are left alone)."""
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


@dataclass
class _Walk:
    """The state ``plan`` threads through its steps."""

    sts: ObjMap
    now: datetime
    monotonic: bool
    min_ready: int
    current_set: ObjMap
    """The set at its ``currentRevision`` (its template from that revision)."""
    current: str
    update: str
    out: Plan = field(default_factory=Plan)

    def new_pod(self, ordinal: int) -> Obj:
        """newVersionedStatefulSetPod: below the partition (RollingUpdate) the current
        revision's pod, else the update revision's."""
        spec = _map(self.sts, "spec")
        strategy = _map(spec, "updateStrategy")
        rolling = strategy.get("rollingUpdate")
        below = start_ordinal(self.sts) + (
            _int(rolling, "partition") if isinstance(rolling, Mapping) else
            _int(_map(self.sts, "status"), "currentReplicas")
            if strategy.get("type", ROLLING_UPDATE) == ROLLING_UPDATE else 0)
        if ordinal < below:
            return stateful_pod(self.current_set, ordinal, self.current)
        return stateful_pod(self.sts, ordinal, self.update)


def compute_status(sts: ObjMap, pods: Iterable[ObjMap], current: str, update: str,
                   now: datetime) -> Obj:
    """computeReplicaStatus + completeRollingUpdate over the set's pods. Pure."""
    min_ready = _int(_map(sts, "spec"), "minReadySeconds")
    counts = dict.fromkeys(("replicas", "readyReplicas", "availableReplicas",
                            "currentReplicas", "updatedReplicas"), 0)
    for pod in pods:
        created = bool(_phase(pod))
        counts["replicas"] += created
        if is_running_and_ready(pod):
            counts["readyReplicas"] += 1
            counts["availableReplicas"] += _available(pod, min_ready, now)
        if created and not _terminating(pod):
            counts["currentReplicas"] += _revision(pod) == current
            counts["updatedReplicas"] += _revision(pod) == update
    status: Obj = {**counts, "currentRevision": current, "updateRevision": update,
                   "collisionCount": _int(_map(sts, "status"), "collisionCount")}
    strategy = _map(_map(sts, "spec"), "updateStrategy").get("type") or ROLLING_UPDATE
    if (strategy == ROLLING_UPDATE and counts["updatedReplicas"] == counts["replicas"]
            and counts["readyReplicas"] == counts["replicas"]):
        status["currentReplicas"] = counts["updatedReplicas"]
        status["currentRevision"] = update
    return status


def _process_replica(walk: _Walk, ordinal: int, pod: ObjMap | None) -> bool:
    """processReplica: True to stop the walk (monotonic) here."""
    if pod is None:
        walk.out.claims.extend(persistent_volume_claims(walk.sts, ordinal))
        walk.out.create.append(walk.new_pod(ordinal))
        return walk.monotonic
    if _phase(pod) in ("Failed", "Succeeded"):
        if not _terminating(pod):
            walk.out.delete.append(dict(pod))
        return True  # recreated once it is gone
    if not walk.monotonic:
        return False
    return (_terminating(pod) or not is_running_and_ready(pod)
            or not _available(pod, walk.min_ready, walk.now))


def _process_condemned(walk: _Walk, pod: ObjMap, first_unhealthy: ObjMap | None) -> bool:
    """processCondemned: True to stop the walk (monotonic) here."""
    if _terminating(pod):
        return walk.monotonic
    if walk.monotonic and pod is not first_unhealthy and (
            not is_running_and_ready(pod) or not _available(pod, walk.min_ready, walk.now)):
        return True
    walk.out.delete.append(dict(pod))
    return True


def _rolling_update(walk: _Walk, replicas: Sequence[ObjMap | None], update: str) -> None:
    """The tail of updateStatefulSet: replace the highest outdated replica ≥ partition."""
    partition = _int(_map(_map(_map(walk.sts, "spec"), "updateStrategy"), "rollingUpdate"),
                     "partition")
    for index in range(len(replicas) - 1, partition - 1, -1):
        pod = replicas[index]
        if pod is not None and _revision(pod) != update and not _terminating(pod):
            walk.out.delete.append(dict(pod))
            walk.out.status["currentReplicas"] -= 1
            return
        if _unavailable(pod, walk.min_ready, walk.now):
            return


def plan(sts: ObjMap, pods: Iterable[ObjMap], now: datetime,
         current_template: ObjMap | None = None, update_revision: str = "") -> Plan:
    """updateStatefulSet over the set's member pods (see the module doc); ``current_template``
    is the ``currentRevision``'s (None: the set's own), ``update_revision`` the name of the
    revision the history chose for the set's template (by default :func:`revision_name`).
    Pure."""
    spec = _map(sts, "spec")
    update = update_revision or revision_name(sts)
    current = str(_map(sts, "status").get("currentRevision") or update)
    current_set = sts if current_template is None else {
        **sts, "spec": {**spec, "template": current_template}}
    walk = _Walk(sts, now, spec.get("podManagementPolicy") != PARALLEL,
                 _int(spec, "minReadySeconds"), current_set,
                 current if current_template is not None else update, update)
    start, count = start_ordinal(sts), spec_replicas(sts)
    replicas: list[ObjMap | None] = [None] * count
    condemned: list[ObjMap] = []
    members = [p for p in pods if is_member(sts, p)]
    for pod in members:
        ordinal = parent_and_ordinal(pod)[1]
        if start <= ordinal < start + count:
            replicas[ordinal - start] = pod
        else:
            condemned.append(pod)
    condemned.sort(key=lambda p: parent_and_ordinal(p)[1], reverse=True)
    walk.out.status = compute_status(sts, members, current, update, now)
    first_unhealthy = next((p for p in [*replicas, *reversed(condemned)]
                            if p is not None and _unavailable(p, walk.min_ready, now)), None)
    if _terminating(sts):
        return walk.out
    for index, slot in enumerate(replicas):
        if _process_replica(walk, start + index, slot) and walk.monotonic:
            return walk.out
    for doomed in condemned:
        if _process_condemned(walk, doomed, first_unhealthy) and walk.monotonic:
            return walk.out
    if _map(spec, "updateStrategy").get("type") != ON_DELETE and not (
            walk.out.create or walk.out.delete):
        _rolling_update(walk, replicas, update)
    return walk.out


_STATUS_KEYS: Final = ("replicas", "readyReplicas", "availableReplicas", "currentReplicas",
                       "updatedReplicas", "currentRevision", "updateRevision", "collisionCount")


def status_changed(sts: ObjMap, status: ObjMap) -> bool:
    """inconsistentStatus: does the stored status differ from the computed one?"""
    old = _map(sts, "status")
    if _int(old, "observedGeneration") != _int(_meta(sts), "generation"):
        return True
    return any((old.get(k) or 0) != (status.get(k) or 0) for k in _STATUS_KEYS)


def status_object(sts: ObjMap, status: ObjMap) -> Obj:
    """The status to write: zero counts left out as Go's ``omitempty`` does (``replicas``,
    ``availableReplicas`` and ``collisionCount`` always written)."""
    out: Obj = {k: v for k, v in status.items()
                if v or k in ("replicas", "availableReplicas", "collisionCount")}
    generation = _int(_meta(sts), "generation")
    if generation:
        out["observedGeneration"] = generation
    if "conditions" in _map(sts, "status"):
        out["conditions"] = _map(sts, "status")["conditions"]
    return out


# =============================================================================================
# the controller


class StatefulSetController(InformerController):
    """Runs StatefulSets (see the module doc)."""

    def __init__(self, client: WorkloadClient, *, statefulsets: Informer, pods: Informer,
                 revisions: Informer, clock: Clock | None = None,
                 recorder: EventRecorder | None = None,
                 resync_period: float | None = None) -> None:
        self._client = client
        self.statefulsets, self.pods, self.revisions = statefulsets, pods, revisions
        self._clock: Clock = clock or RealClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.expectations = ControllerExpectations(self._clock)
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[statefulsets, pods, revisions],
                                     clock=self._clock)
        statefulsets.add_handler(EventHandler(
            on_add=self._enqueue, on_update=lambda _o, n: self._enqueue(n),
            on_delete=self._delete_sts), resync_period=resync_period)
        pods.add_handler(EventHandler(on_add=self._on_pod, on_update=self._on_pod_update,
                                      on_delete=self._on_pod_deleted))
        revisions.add_handler(EventHandler(on_add=self._on_revision,
                                           on_update=lambda _o, n: self._on_revision(n),
                                           on_delete=self._on_revision))

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC,
                    informers: InformerFactory | None = None) -> StatefulSetController:
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, statefulsets=factory.informer(STATEFULSETS, name="statefulsets"),
                   pods=factory.informer(PODS, name="pods"),
                   revisions=factory.informer(CONTROLLERREVISIONS, name="controllerrevisions"),
                   clock=clock, resync_period=resync_period)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.statefulsets, self.pods, self.revisions)

    # -- event handlers ---------------------------------------------------------------------

    def _enqueue(self, sts: Obj) -> None:
        self.queue.add(object_key(sts))

    def _on_revision(self, revision: Obj) -> None:
        key = owner_key(revision, STATEFULSETS.kind)
        if key is not None and self.statefulsets.get(key) is not None:
            self.queue.add(key)

    def _delete_sts(self, sts: Obj) -> None:
        self.expectations.delete(object_key(sts))
        self.queue.add(object_key(sts))

    def _owner(self, pod: ObjMap) -> Obj | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != STATEFULSETS.kind:
            return None
        sts = self.statefulsets.get(f"{_namespace(pod)}/{ref.get('name')}")
        return sts if sts is not None and _uid(sts) == ref.get("uid") else None

    def _on_pod(self, pod: Obj) -> None:
        if _terminating(pod):
            self._on_pod_deleted(pod)
            return
        sts = self._owner(pod)
        if sts is not None:
            self.expectations.creation_observed(object_key(sts))
        self._enqueue_for(pod, sts)

    def _enqueue_for(self, pod: Obj, sts: Obj | None) -> None:
        """The pod's controller, or (an orphan) every set in its namespace selecting it."""
        if sts is not None:
            self.queue.add(object_key(sts))
            return
        if controller_ref(pod) is None:
            for candidate in self.statefulsets.by_index(NAMESPACE_INDEX, _namespace(pod)):
                sel = label_selector(candidate)
                if sel is not None and not sel.empty() and sel.matches(_labels(pod)):
                    self.queue.add(object_key(candidate))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if _terminating(new):
            self._on_pod_deleted(new)
            return
        sts = self._owner(new)
        self._enqueue_for(new, sts)
        if sts is None:
            return
        min_ready = _int(_map(sts, "spec"), "minReadySeconds")
        if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(new):
            # It becomes available after minReadySeconds: look again then (+1 s of skew).
            self.queue.add_after(object_key(sts), min_ready + 1)

    def _on_pod_deleted(self, pod: Obj) -> None:
        sts = self._owner(pod)
        if sts is not None:
            self.expectations.deletion_observed(object_key(sts), object_key(pod))
            self.queue.add(object_key(sts))

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.statefulsets.get(key)
        if cached is None:
            self.expectations.delete(key)
            return
        sts = copy.deepcopy(cached)
        selector = label_selector(sts)
        if selector is None or selector.empty():
            log.warning("%s: %s has an invalid or empty selector", COMPONENT, key)
            return
        ns, _ = split_key(key)
        candidates = [p for p in self.pods.by_index(NAMESPACE_INDEX, ns) if is_member(sts, p)]
        pods = await claim(self._client, PODS, sts, STATEFULSETS, selector, candidates,
                           recheck_deletion(self._client, STATEFULSETS, sts))
        current_template, update = None, ""
        if not _terminating(sts):
            current = str(_map(sts, "status").get("currentRevision") or "")
            # The update revision (made now, or an older equal one: a rollback); may raise
            # sts's status.collisionCount.
            history = await sync_history(self._client, self.revisions, sts, STATEFULSETS,
                                         live_names(sts, pods, label_is_name=True) | {current})
            update = _name(history.current)
            found = next((r for r in history.revisions if _name(r) == current), None)
            if found is not None and current != update:
                current_template = template_of(found)
        the_plan = plan(sts, pods, self._clock.now(), current_template, update)
        if self.expectations.satisfied(key):
            await self._apply(key, sts, the_plan)
        await self._update_status(sts, the_plan.status, cached)

    async def _apply(self, key: str, sts: Obj, the_plan: Plan) -> None:
        if the_plan.create:
            self.expectations.expect_creations(key, len(the_plan.create))
        elif the_plan.delete:
            self.expectations.expect_deletions(key, [object_key(p) for p in the_plan.delete])
        else:
            return
        for pvc in the_plan.claims:
            await self._create_claim(sts, pvc)
        results = await asyncio.gather(
            *(self._create(key, sts, p) for p in the_plan.create),
            *(self._delete(key, sts, p) for p in the_plan.delete), return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                raise r

    async def _create_claim(self, sts: Obj, pvc: Obj) -> None:
        what = f"Claim {_name(pvc)} in StatefulSet {_name(sts)}"
        try:
            await self._client.create(PERSISTENTVOLUMECLAIMS, pvc, namespace=_namespace(sts))
        except StatusError as e:
            if e.code == 409:
                return  # it exists: the pod uses it as it is
            await self.recorder.warning(sts, "FailedCreate", f"create {what} failed error: {e}")
            raise
        await self.recorder.normal(sts, "SuccessfulCreate", f"create {what} success")

    async def _create(self, key: str, sts: Obj, pod: Obj) -> None:
        what = f"Pod {_name(pod)} in StatefulSet {_name(sts)}"
        try:
            await self._client.create(PODS, pod, namespace=_namespace(sts))
        except StatusError as e:
            self.expectations.creation_observed(key)
            if is_namespace_terminating(e) or e.code == 409:
                return  # (409: it exists already; the cache has not caught up)
            await self.recorder.warning(sts, "FailedCreate", f"create {what} failed error: {e}")
            raise
        await self.recorder.normal(sts, "SuccessfulCreate", f"create {what} successful")

    async def _delete(self, key: str, sts: Obj, pod: Obj) -> None:
        what = f"Pod {_name(pod)} in StatefulSet {_name(sts)}"
        try:
            await self._client.delete(PODS, _namespace(pod), _name(pod),
                                      preconditions=Preconditions(uid=_uid(pod)))
        except StatusError as e:
            self.expectations.deletion_observed(key, object_key(pod))
            if e.code == 404:
                return
            await self.recorder.warning(sts, "FailedDelete", f"delete {what} failed error: {e}")
            raise
        await self.recorder.normal(sts, "SuccessfulDelete", f"delete {what} successful")

    async def _update_status(self, sts: Obj, status: Obj, stored: ObjMap) -> None:
        """Write ``status`` unless ``stored`` (the set as the cache has it: ``sts`` may carry
        a raised collisionCount) has it already."""
        if not status_changed(stored, status):
            return
        obj = copy.deepcopy(sts)
        obj["status"] = status_object(sts, status)
        try:
            await self._client.update(STATEFULSETS, obj, subresource="status")
        except StatusError as e:
            if e.code not in (404, 409):
                raise
            if e.code == 409:
                self.queue.add(object_key(sts))  # a newer version is coming: sync it again
