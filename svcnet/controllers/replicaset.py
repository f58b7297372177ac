"""The ReplicaSet controller: keeps each ReplicaSet's number of pods at ``spec.replicas``.

Theory of operation (after ``pkg/controller/replicaset/replica_set.go`` and
``pkg/controller/controller_utils.go``)
-------------------------------------------------------------------------------------------
Two informers (ReplicaSets, pods) feed one work queue of ReplicaSet keys. Handlers only decide
*which* ReplicaSets an event concerns, and keep the **expectations**:

* a ReplicaSet added, updated (incl. resync) or deleted → that ReplicaSet (a delete also drops
  its expectations, so a new one of the same name starts clean);
* a pod added → its controller (an ``ownerReferences`` entry with ``controller: true`` naming a
  ReplicaSet we know, same uid), whose expected creations drop by one; an orphan pod → every
  ReplicaSet whose selector matches it (one of them may adopt it). A pod that arrives already
  terminating counts as a deletion;
* a pod updated → its controller (and the old one if the controller changed); a pod that
  becomes Ready while its ReplicaSet has ``minReadySeconds`` → again after that long, when it
  becomes available; a terminating pod counts as deleted *now*, so a replacement is created
  without waiting for the pod to go; an orphan whose labels changed → matching ReplicaSets;
* a pod deleted → its controller, whose expected deletions of that pod are observed.

**Expectations** are what make the controller safe on a stale cache: after asking for N
creations (or the deletion of pods P) a ReplicaSet does not manage its replicas again until the
informer has shown it those N new pods (or P gone), or five minutes have passed. Without them a
second sync right after the first would see the old pod count and create N more.

:meth:`ReplicaSetController.sync` is level-triggered, as upstream's ``syncReplicaSet``:

1. read the ReplicaSet from the cache (gone → forget its expectations);
2. take the active pods of its namespace (not terminating, not Succeeded/Failed) and **claim**
   them (:func:`plan_claims`, ``PodControllerRefManager.ClaimPods``): ours that still match
   stay; ours that no longer match are released (their ownerReference removed); orphans that
   match are adopted (a controller ownerReference added) after re-reading the ReplicaSet from
   the server to make sure it is not being deleted. Adoption and release are JSON patches that
   first ``test`` the pod's uid and its current ``ownerReferences``, so a concurrent change
   fails the patch instead of being overwritten;
3. if expectations are satisfied and the ReplicaSet is not being deleted, manage replicas:
   too few → create the difference (at most 500 at a time) in slow-start batches of 1, 2, 4...
   (a failing batch stops the rest, the skipped creations are un-expected); too many → delete
   the surplus chosen by upstream's ``ActivePodsWithRanks`` order (:func:`pods_to_delete`);
4. compute the status (:func:`calculate_status`: replicas, fullyLabeledReplicas, readyReplicas,
   availableReplicas, observedGeneration, and a ``ReplicaFailure`` condition while creating or
   deleting fails) and write it through ``/status`` if it changed (one retry on a conflict);
5. if everything is Ready but not yet available, look again after ``minReadySeconds``.

Pods are created from the template like ``GetPodFromTemplate``: ``generateName: <rs-name>-``
(the server adds five random characters), the template's labels, annotations and finalizers, a
controller ownerReference (``blockOwnerDeletion: true``) and the template's spec. Events
(``SuccessfulCreate``, ``FailedCreate``, ``SuccessfulDelete``, ``FailedDelete``) are recorded on
the ReplicaSet with upstream's source ``replicaset-controller``.

The helpers for controller references, claiming and expectations are shared with the
Deployment controller (which claims ReplicaSets the same way).

**ReplicationControllers** (core/v1) are run by this same class, as upstream's
``pkg/controller/replication`` runs them through the ReplicaSet controller (converting each RC to
a ReplicaSet): :meth:`ReplicaSetController.for_replication_controllers` binds it to the
``replicationcontrollers`` resource, the label-map selector (:func:`map_selector`) and the
event source ``replication-controller``. The statuses are the same.

Why this module is long: Mirrors upstream's replica_set.go and its pod ranking
(controller_utils.go) one to one.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from svcnet.api.errors import StatusError
from svcnet.api.labels import Selector
from svcnet.api.names import name_is_dns_subdomain
from svcnet.api.pods import is_pod_ready, pod_ready_condition
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
from svcnet.client.rest import GVR, PODS
from svcnet.controllers.ownership import (
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    APIClient,
    WorkloadClient,
    claim,
    controller_ref,
    controller_uid_index,
    label_selector,
    map_selector,
    new_controller_ref,
    parse_time,
    recheck_deletion,
    spec_replicas,
    terminating as _terminating,
)
from svcnet.controllers.podcontrol import PodControl, slow_start_batches
from svcnet.util.clock import Clock, RealClock, rfc3339

__all__ = [
    "BURST_REPLICAS",
    "COMPONENT",
    "CONTROLLER_UID_INDEX",
    "EXPECTATIONS_TIMEOUT",
    "RC_COMPONENT",
    "ControllerExpectations",
    "ReplicaSetController",
    "calculate_status",
    "filter_active_pods",
    "is_pod_active",
    "is_pod_available",
    "is_pod_ready",
    "pod_from_template",
    "pods_to_delete",
    "rank_pods_for_deletion",
    "slow_start_batches",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "replicaset-controller"
RC_COMPONENT: Final = "replication-controller"
BURST_REPLICAS: Final = 500
"""At most this many creations or deletions per sync (upstream's BurstReplicas)."""
EXPECTATIONS_TIMEOUT: Final = 300.0
"""Seconds after which unmet expectations are ignored (a watch event may have been lost)."""
CONTROLLER_UID_INDEX: Final = "controllerUID"
"""ReplicaSet index: the uid of its controller (for the pods of sibling ReplicaSets)."""
DEFAULT_RESYNC: Final = 300.0
POD_DELETION_COST: Final = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDINAL: Final = {"Pending": 0, "Unknown": 1, "Running": 2}


# =============================================================================================
# pod predicates (pkg/api/v1/pod, controller_utils)


def is_pod_active(pod: ObjMap) -> bool:
    """IsPodActive: not Succeeded or Failed, and not being deleted."""
    phase = _map(pod, "status").get("phase")
    return phase not in ("Succeeded", "Failed") and not _terminating(pod)


def filter_active_pods(pods: Iterable[ObjMap]) -> list[Obj]:
    return [dict(p) for p in pods if is_pod_active(p)]


def is_pod_available(pod: ObjMap, min_ready_seconds: int, now: datetime) -> bool:
    """IsPodAvailable: Ready for more than ``minReadySeconds`` (at once when it is 0)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds == 0:
        return True
    c = pod_ready_condition(pod) or {}
    since = parse_time(c.get("lastTransitionTime"))
    return since is not None and since.timestamp() + min_ready_seconds < now.timestamp()


# =============================================================================================
# expectations (ControllerExpectations + UIDTrackingControllerExpectations)


@dataclass
class _Expectation:
    add: int
    delete: int
    at: float
    deleting: set[str] = field(default_factory=set)


class ControllerExpectations:
    """What each controller key is waiting to see before it may act again.

    Creations are counted (their names are unknown until the server generates them);
    deletions are tracked by pod key, so that a pod seen first as terminating and later as
    deleted is counted once.
    """

    def __init__(self, clock: Clock | None = None, *,
                 timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._clock: Clock = clock or RealClock()
        self._timeout = timeout
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        """SatisfiedExpectations: nothing expected, all observed, or expired."""
        exp = self._items.get(key)
        if exp is None:
            return True
        if exp.add <= 0 and exp.delete <= 0:
            return True
        return self._clock.monotonic() - exp.at > self._timeout

    def pending(self, key: str) -> tuple[int, int]:
        exp = self._items.get(key)
        return (exp.add, exp.delete) if exp is not None else (0, 0)

    def expect_creations(self, key: str, count: int) -> None:
        self.expect(key, count, ())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self.expect(key, 0, pod_keys)

    def expect(self, key: str, creations: int, pod_keys: Iterable[str]) -> None:
        """SetExpectations: ``creations`` pods to see created and ``pod_keys`` deleted."""
        keys = set(pod_keys)
        self._items[key] = _Expectation(creations, len(keys), self._clock.monotonic(), keys)

    def creation_observed(self, key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._items.get(key)
        if exp is not None and pod_key in exp.deleting:
            exp.deleting.discard(pod_key)
            exp.delete -= 1

    def delete(self, key: str) -> None:
        self._items.pop(key, None)


# =============================================================================================
# deletion ranking (ActivePodsWithRanks)


def pod_deletion_cost(pod: ObjMap) -> int:
    """The ``controller.kubernetes.io/pod-deletion-cost`` annotation (0 if absent or bad)."""
    raw = _map(_meta(pod), "annotations").get(POD_DELETION_COST)
    try:
        value = int(str(raw))
    except ValueError:
        return 0
    return value if -(2**31) <= value < 2**31 else 0


def _max_restarts(pod: ObjMap) -> int:
    return max((_int(s, "restartCount") for s in _list(_map(pod, "status"), "containerStatuses")
                if isinstance(s, dict)), default=0)


def _ready_time(pod: ObjMap) -> datetime | None:
    if not is_pod_ready(pod):
        return None
    return parse_time((pod_ready_condition(pod) or {}).get("lastTransitionTime"))


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    """afterOrZero: a zero time sorts first, then the later time."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _log_rank(t: datetime, now: datetime) -> int:
    """log2 of the nanoseconds since ``t`` (truncated), -1 for "not in the past"."""
    nanos = round((now - t).total_seconds() * 1e9)
    return int(math.log2(nanos)) if nanos > 0 else -1


def _compare_times(a: ObjMap, b: ObjMap, ta: datetime | None, tb: datetime | None,
                   now: datetime | None) -> bool:
    if now is None or ta is None or tb is None:
        return _after_or_zero(ta, tb)
    diff = _log_rank(ta, now) - _log_rank(tb, now)
    if diff == 0:
        return _uid(a) < _uid(b)  # pseudo-random among equals, as upstream
    return diff < 0


def pod_deletion_less(a: ObjMap, b: ObjMap, rank_a: int, rank_b: int,
                      now: datetime | None) -> bool:
    """ActivePodsWithRanks.Less: True if ``a`` should be deleted before ``b``.

    1. unassigned < assigned; 2. Pending < Unknown < Running; 3. not ready < ready;
    4. lower pod-deletion-cost < higher; 5. more colocated siblings (rank) < fewer;
    6. ready for less time < more (logarithmic buckets); 7. more restarts < fewer;
    8. newer < older (logarithmic buckets). Equal buckets order by uid.
    """
    node_a = str(_map(a, "spec").get("nodeName") or "")
    node_b = str(_map(b, "spec").get("nodeName") or "")
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    phase_a = _PHASE_ORDINAL.get(str(_map(a, "status").get("phase")), 0)
    phase_b = _PHASE_ORDINAL.get(str(_map(b, "status").get("phase")), 0)
    if phase_a != phase_b:
        return phase_a < phase_b
    ready_a, ready_b = is_pod_ready(a), is_pod_ready(b)
    if ready_a != ready_b:
        return not ready_a
    cost_a, cost_b = pod_deletion_cost(a), pod_deletion_cost(b)
    if cost_a != cost_b:
        return cost_a < cost_b
    if rank_a != rank_b:
        return rank_a > rank_b
    if ready_a and ready_b:
        ta, tb = _ready_time(a), _ready_time(b)
        if ta != tb:
            return _compare_times(a, b, ta, tb, now)
    restarts_a, restarts_b = _max_restarts(a), _max_restarts(b)
    if restarts_a != restarts_b:
        return restarts_a > restarts_b
    ca = parse_time(_meta(a).get("creationTimestamp"))
    cb = parse_time(_meta(b).get("creationTimestamp"))
    if ca != cb:
        return _compare_times(a, b, ca, cb, now)
    return False


def rank_pods_for_deletion(pods: Sequence[ObjMap], related: Iterable[ObjMap],
                           now: datetime | None) -> list[Obj]:
    """``pods`` sorted deletion-first; a pod's rank is the number of active ``related`` pods
    on its node (getPodsRankedByRelatedPodsOnSameNode). Pure."""
    on_node: dict[str, int] = {}
    for p in related:
        if is_pod_active(p):
            node = str(_map(p, "spec").get("nodeName") or "")
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [(dict(p), on_node.get(str(_map(p, "spec").get("nodeName") or ""), 0))
              for p in pods]

    def cmp(x: tuple[Obj, int], y: tuple[Obj, int]) -> int:
        if pod_deletion_less(x[0], y[0], x[1], y[1], now):
            return -1
        if pod_deletion_less(y[0], x[0], y[1], x[1], now):
            return 1
        return 0

    ranked.sort(key=functools.cmp_to_key(cmp))
    return [p for p, _ in ranked]


def pods_to_delete(filtered: Sequence[ObjMap], related: Iterable[ObjMap], diff: int,
                   now: datetime | None) -> list[Obj]:
    """getPodsToDelete: the ``diff`` pods to delete first. Pure."""
    if diff < len(filtered):
        return rank_pods_for_deletion(filtered, related, now)[:diff]
    return [dict(p) for p in filtered[:diff]]


# =============================================================================================
# pure planning


def pod_from_template(owner: ObjMap, gvr: GVR = REPLICASETS) -> Obj:
    """GetPodFromTemplate: the pod to create for ``owner`` (a ReplicaSet)."""
    template = _map(_map(owner, "spec"), "template")
    tmeta = _map(template, "metadata")
    name = _name(owner)
    prefix = f"{name}-"
    if name_is_dns_subdomain(prefix, True):
        prefix = name  # upstream drops the dash when it would make an invalid prefix
    meta: Obj = {"generateName": prefix, "namespace": _namespace(owner)}
    for key in ("labels", "annotations"):
        if _map(tmeta, key):
            meta[key] = copy.deepcopy(_map(tmeta, key))
    if _list(tmeta, "finalizers"):
        meta["finalizers"] = list(_list(tmeta, "finalizers"))
    meta["ownerReferences"] = [new_controller_ref(owner, gvr)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(_map(template, "spec"))}


def _rs_condition(status: ObjMap, ctype: str) -> dict[str, Any] | None:
    for c in _list(status, "conditions"):
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def calculate_status(rs: ObjMap, pods: Sequence[ObjMap], manage_error: Exception | None,
                     now: datetime) -> Obj:
    """calculateStatus: the counts (zero counts left out, as Go's omitempty does; ``replicas``
    always present) and the ``ReplicaFailure`` condition. ``observedGeneration`` is set by the
    caller when it writes. Pure."""
    old = _map(rs, "status")
    template_labels = _map(_meta(_map(_map(rs, "spec"), "template")), "labels")
    min_ready = _int(_map(rs, "spec"), "minReadySeconds")
    fully_labeled = ready = available = 0
    for pod in pods:
        labels = _labels(pod)
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, now):
                available += 1
    status: Obj = {"replicas": len(pods)}
    for key, value in (("fullyLabeledReplicas", fully_labeled), ("readyReplicas", ready),
                       ("availableReplicas", available),
                       ("observedGeneration", _int(old, "observedGeneration"))):
        if value:
            status[key] = value
    conditions = [copy.deepcopy(c) for c in _list(old, "conditions") if isinstance(c, dict)]
    failure = _rs_condition(old, "ReplicaFailure")
    if manage_error is not None and failure is None:
        diff = len(pods) - spec_replicas(rs)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        conditions.append({"type": "ReplicaFailure", "status": "True",
                           "lastTransitionTime": rfc3339(now), "reason": reason,
                           "message": str(manage_error)})
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    if conditions:
        status["conditions"] = conditions
    return status


def status_needs_update(rs: ObjMap, new_status: ObjMap) -> bool:
    """updateReplicaSetStatus's steady-state check."""
    old = _map(rs, "status")
    return any(_int(old, k) != _int(new_status, k) for k in
               ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")) or (
        _int(_meta(rs), "generation") != _int(old, "observedGeneration")) or (
        _list(old, "conditions") != _list(new_status, "conditions"))


# =============================================================================================
# the controller


class ReplicaSetController(InformerController):
    """Runs ReplicaSets (see the module doc).

    The informers are passed in so tests can use never-started ones (fill their caches, call
    :meth:`sync`) and so a process may share them; :meth:`from_client` builds the usual pair.
    """

    def __init__(self, client: WorkloadClient, *, replicasets: Informer, pods: Informer,
                 clock: Clock | None = None, workers: int = 1,
                 burst_replicas: int = BURST_REPLICAS,
                 recorder: EventRecorder | None = None, gvr: GVR = REPLICASETS,
                 selector_of: Callable[[ObjMap], Selector | None] = label_selector,
                 component: str = COMPONENT, resync_period: float | None = None) -> None:
        self._client = client
        #: What this instance runs: ReplicaSets, or ReplicationControllers (see the module doc).
        self.gvr = gvr
        self._selector_of = selector_of
        self.component = component
        self.replicasets = replicasets
        self.pods = pods
        self._clock: Clock = clock or RealClock()
        self.burst_replicas = burst_replicas
        self.recorder = recorder or EventRecorder(client, component, clock=self._clock)
        self.expectations = ControllerExpectations(self._clock)
        self.pod_control = PodControl(client, self.recorder, self.expectations)
        self.controller = Controller(component, self.sync, informers=[replicasets, pods],
                                     workers=workers, clock=self._clock)
        replicasets.indexer.add_index(CONTROLLER_UID_INDEX, controller_uid_index)
        self.rs_handler = EventHandler(on_add=self._add_rs, on_update=self._update_rs,
                                       on_delete=self._delete_rs)
        self.pod_handler = EventHandler(on_add=self._add_pod, on_update=self._update_pod,
                                        on_delete=self._delete_pod)
        replicasets.add_handler(self.rs_handler, resync_period=resync_period)
        pods.add_handler(self.pod_handler)

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC, workers: int = 1,
                    informers: InformerFactory | None = None) -> ReplicaSetController:
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, replicasets=factory.informer(REPLICASETS, name="replicasets"),
                   pods=factory.informer(PODS, name="pods"), clock=clock, workers=workers,
                   resync_period=resync_period)

    @classmethod
    def for_replication_controllers(cls, client: APIClient, *, clock: Clock | None = None,
                                    resync_period: float = DEFAULT_RESYNC, workers: int = 1,
                                    informers: InformerFactory | None = None
                                    ) -> ReplicaSetController:
        """The ReplicationController manager (NewReplicationManager)."""
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, replicasets=factory.informer(REPLICATIONCONTROLLERS,
                                                        name="replicationcontrollers"),
                   pods=factory.informer(PODS, name="pods"), clock=clock, workers=workers,
                   gvr=REPLICATIONCONTROLLERS, selector_of=map_selector,
                   component=RC_COMPONENT, resync_period=resync_period)


    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.replicasets, self.pods)


    # -- event handlers ---------------------------------------------------------------------

    def _resolve(self, namespace: str, ref: ObjMap) -> Obj | None:
        """resolveControllerRef: the ReplicaSet a controller reference names, if it is the
        same object (uid) we have in the cache."""
        if ref.get("kind") != self.gvr.kind:
            return None
        rs = self.replicasets.get(f"{namespace}/{ref.get('name')}")
        if rs is None or _uid(rs) != ref.get("uid"):
            return None
        return rs

    def _replicasets_for_orphan(self, pod: ObjMap) -> list[Obj]:
        """GetPodReplicaSets: the ReplicaSets whose (non-empty) selector matches the pod."""
        out = []
        for rs in self.replicasets.by_index(NAMESPACE_INDEX, _namespace(pod)):
            sel = self._selector_of(rs)
            if sel is not None and not sel.empty() and sel.matches(_labels(pod)):
                out.append(rs)
        if len(out) > 1:
            log.warning("%s: more than one controller selects pod %s: %s", self.component,
                        object_key(pod), ", ".join(_name(r) for r in out))
        return out

    def _add_rs(self, rs: Obj) -> None:
        self.queue.add(object_key(rs))

    def _update_rs(self, old: Obj, new: Obj) -> None:
        if _uid(old) != _uid(new):
            self._delete_rs(old)  # replaced under the same name
        self.queue.add(object_key(new))

    def _delete_rs(self, rs: Obj) -> None:
        key = object_key(rs)
        self.expectations.delete(key)
        self.queue.add(key)

    def _add_pod(self, pod: Obj) -> None:
        if _terminating(pod):
            # A pod that shows up already terminating (after a restart, say) is a deletion.
            self._delete_pod(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            rs = self._resolve(_namespace(pod), ref)
            if rs is None:
                return
            key = object_key(rs)
            self.expectations.creation_observed(key)
            self.queue.add(key)
            return
        for rs in self._replicasets_for_orphan(pod):
            self.queue.add(object_key(rs))

    def _update_pod(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return  # a resync: nothing changed
        label_changed = _labels(old) != _labels(new)
        if _terminating(new):
            # Count it as deleted now, so the replacement does not wait for the grace period.
            self._delete_pod(new)
            if label_changed:
                self._delete_pod(old)
            return
        new_ref, old_ref = controller_ref(new), controller_ref(old)
        ref_changed = new_ref != old_ref
        if ref_changed and old_ref is not None:
            rs = self._resolve(_namespace(old), old_ref)
            if rs is not None:
                self.queue.add(object_key(rs))
        if new_ref is not None:
            rs = self._resolve(_namespace(new), new_ref)
            if rs is None:
                return
            key = object_key(rs)
            self.queue.add(key)
            min_ready = _int(_map(rs, "spec"), "minReadySeconds")
            if not is_pod_ready(old) and is_pod_ready(new) and min_ready > 0:
                # It becomes available after minReadySeconds: look again then (+1 s of skew).
                self.queue.add_after(key, min_ready + 1)
            return
        if label_changed or ref_changed:
            for rs in self._replicasets_for_orphan(new):
                self.queue.add(object_key(rs))

    def _delete_pod(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is None:
            return
        rs = self._resolve(_namespace(pod), ref)
        if rs is None:
            return
        key = object_key(rs)
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.replicasets.get(key)
        if cached is None:
            self.expectations.delete(key)
            return
        rs = copy.deepcopy(cached)
        needs_sync = self.expectations.satisfied(key)
        selector = self._selector_of(rs)
        if selector is None:
            log.warning("%s: %s has an invalid selector", self.component, key)
            return
        ns, _ = split_key(key)
        active = filter_active_pods(self.pods.by_index(NAMESPACE_INDEX, ns))
        pods = await claim(self._client, PODS, rs, self.gvr, selector, active,
                           recheck_deletion(self._client, self.gvr, rs))
        manage_error: Exception | None = None
        if needs_sync and not _terminating(rs):
            try:
                await self.manage_replicas(key, rs, pods)
            except Exception as e:
                manage_error = e
        new_status = calculate_status(rs, pods, manage_error, self._clock.now())
        updated = await self._update_status(rs, new_status)
        spec = _map(updated, "spec")
        status = _map(updated, "status")
        min_ready = _int(spec, "minReadySeconds")
        if manage_error is None and min_ready > 0 and (
                _int(status, "readyReplicas") == spec_replicas(updated)
                and _int(status, "availableReplicas") != spec_replicas(updated)):
            # A last line of defence against clock skew: look again once they may be available.
            self.queue.add_after(key, min_ready)
        if manage_error is not None:
            raise manage_error

    async def manage_replicas(self, key: str, rs: Obj, pods: Sequence[Obj]) -> None:
        """Create or delete pods so that ``len(pods) == spec.replicas`` (manageReplicas)."""
        diff = len(pods) - spec_replicas(rs)
        if diff < 0:
            await self._create_pods(key, rs, min(-diff, self.burst_replicas))
        elif diff > 0:
            await self._delete_pods(key, rs, pods, min(diff, self.burst_replicas))

    async def _create_pods(self, key: str, rs: Obj, count: int) -> None:
        log.info("%s: %s: too few replicas (need %d), creating %d", self.component, key,
                 spec_replicas(rs), count)
        await self.pod_control.create_many(key, rs, count,
                                           lambda: pod_from_template(rs, self.gvr))

    async def _delete_pods(self, key: str, rs: Obj, pods: Sequence[Obj], count: int) -> None:
        related = self._indirectly_related_pods(rs)
        doomed = pods_to_delete(pods, related, count, self._clock.now())
        log.info("%s: %s: too many replicas (need %d), deleting %d", self.component, key,
                 spec_replicas(rs), count)
        await self.pod_control.delete_many(key, rs, doomed)

    def _indirectly_related_pods(self, rs: ObjMap) -> list[Obj]:
        """getIndirectlyRelatedPods: the pods of every ReplicaSet with the same controller
        (a Deployment's old and new ReplicaSets), for the colocation rank."""
        ref = controller_ref(rs)
        if ref is None:
            return []
        seen: set[str] = set()
        out: list[Obj] = []
        ns = _namespace(rs)
        pods = self.pods.by_index(NAMESPACE_INDEX, ns)
        for sibling in self.replicasets.by_index(CONTROLLER_UID_INDEX, str(ref.get("uid"))):
            sel = self._selector_of(sibling)
            if sel is None:
                continue
            for pod in pods:
                if sel.matches(_labels(pod)) and _uid(pod) not in seen:
                    seen.add(_uid(pod))
                    out.append(pod)
        return out

    async def _update_status(self, rs: Obj, new_status: Obj) -> Obj:
        """updateReplicaSetStatus: write if changed, retrying once on a conflict."""
        if not status_needs_update(rs, new_status):
            return rs
        current = rs
        for attempt in range(2):
            obj = copy.deepcopy(current)
            status = copy.deepcopy(new_status)
            generation = _int(_meta(obj), "generation")
            if generation:
                status["observedGeneration"] = generation
            obj["status"] = status
            try:
                return await self._client.update(self.gvr, obj, subresource="status")
            except StatusError as e:
                if e.code == 404:
                    return rs  # deleted meanwhile: its deletion event ends the story
                if e.code != 409 or attempt == 1:
                    raise
                current = await self._client.get(self.gvr, _namespace(rs), _name(rs))
        return current  # unreachable
