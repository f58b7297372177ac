"""The DaemonSet controller: one pod of each DaemonSet on every node that should run it.

Theory of operation (after ``pkg/controller/daemon``: ``daemon_controller.go``'s ``syncDaemonSet``,
``manage``, ``podsShouldBeOnNode``, ``NodeShouldRunDaemonPod``, ``updateDaemonSetStatus``;
``update.go``'s ``rollingUpdate``; ``util/daemonset_util.go``'s ``AddOrUpdateDaemonPodTolerations``
and ``ReplaceDaemonSetPodNodeNameNodeAffinity``)
-------------------------------------------------------------------------------------------------
Three informers (DaemonSets, pods, nodes) feed one queue of DaemonSet keys: a DaemonSet's own
changes, its pods' changes (by controller reference; an orphan → every DaemonSet selecting it)
and any node change (→ every DaemonSet) enqueue it. :meth:`DaemonSetController.sync` is
level-triggered:

1. claim the namespace's pods by selector (adopt / release, as the ReplicaSet controller does);
2. :func:`plan` (pure) walks the nodes. A node *should run* the pod when the template's
   ``nodeSelector`` and required node affinity match it and every NoSchedule/NoExecute taint of
   the node is tolerated (by the template's tolerations plus the DaemonSet defaults); a pod
   already there *may continue* unless a NoExecute taint is not tolerated. Then per node: none
   and should run → create one; more than one → delete all but the oldest; Failed pods →
   delete (a new one follows); should not continue → delete them all. Pods on nodes that no
   longer exist are deleted;
3. with the ``RollingUpdate`` strategy, pods whose ``controller-revision-hash`` is not the
   template's current hash are replaced: old pods that are not available go first, then
   available ones while fewer than ``maxUnavailable`` (an int or a percentage of the desired
   count, rounded up) nodes lack an available pod. With ``maxSurge`` (upstream's surge mode,
   ``maxUnavailable`` then 0) a new pod starts beside the old one first: at once where the old
   one is unavailable, on up to ``maxSurge`` nodes at a time elsewhere, and the old pod goes
   when the new one is available; a node then keeps at most its oldest new and oldest old pod.
   ``OnDelete`` replaces nothing;
4. creations and deletions (made together, as upstream's syncNodes) wait on expectations, as
   the ReplicaSet controller's; the status
   (desired/current/ready/available/updated/misscheduled/unavailable, observedGeneration) is
   written through ``/status`` when it changed.

A daemon pod is the template's pod (``generateName: <ds>-``, a controller reference) with the
``controller-revision-hash`` and ``pod-template-generation`` labels, the default tolerations
(``not-ready``/``unreachable`` NoExecute, ``disk-pressure``/``memory-pressure``/``pid-pressure``/
``unschedulable`` NoSchedule, and ``network-unavailable`` for host-network pods) and a required
node affinity term ``matchFields: metadata.name In [<node>]``, which the scheduler
(:mod:`svcnet.controllers.scheduler`) honours: the pod is bound to its node by the scheduler, as
upstream. Each sync first brings the set's history up to date (:mod:`svcnet.controllers.history`:
a ControllerRevision per template, ``revisionHistoryLimit`` of them kept besides those pods
run), so ``kubectl rollout history`` and ``kubectl rollout undo`` work; the pods'
``controller-revision-hash`` is the current revision's hash.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
from svcnet.api.daemonsets import ROLLING_UPDATE, template_generation
from svcnet.api.errors import StatusError
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
from svcnet.client.rest import NODES, PODS
from svcnet.controllers.deployment.util import scaled_value_from_int_or_percent
from svcnet.controllers.history import (
    HASH_LABEL,
    live_names,
    owner_key,
    sync_history,
    template_hash,
)
from svcnet.controllers.ownership import (
    CONTROLLERREVISIONS,
    DAEMONSETS,
    APIClient,
    WorkloadClient,
    claim,
    controller_ref,
    label_selector,
    recheck_deletion,
    terminating as _terminating,
)
from svcnet.controllers.podcontrol import PodControl
from svcnet.controllers.replicaset import (
    ControllerExpectations,
    is_pod_available,
    is_pod_ready,
    pod_from_template,
)
from svcnet.controllers.scheduler import node_affinity_matches, tolerates
from svcnet.util.clock import Clock, RealClock

__all__ = ["COMPONENT", "DaemonSetController", "Plan", "daemon_pod", "plan", "template_hash"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "daemonset-controller"
REVISION_HASH_LABEL: Final = HASH_LABEL
TEMPLATE_GENERATION_LABEL: Final = "pod-template-generation"
DEFAULT_RESYNC: Final = 300.0
_NO_EXECUTE: Final = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_NO_SCHEDULE: Final = ("node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure",
                       "node.kubernetes.io/pid-pressure", "node.kubernetes.io/unschedulable")
_NETWORK_UNAVAILABLE: Final = "node.kubernetes.io/network-unavailable"


# =============================================================================================
# the daemon pod


def _with_default_tolerations(spec: Obj) -> None:
    """AddOrUpdateDaemonPodTolerations: the tolerations every daemon pod has."""
    tolerations = [t for t in _list(spec, "tolerations") if isinstance(t, dict)]
    wanted = [(k, "NoExecute") for k in _NO_EXECUTE] + [(k, "NoSchedule") for k in _NO_SCHEDULE]
    if spec.get("hostNetwork"):
        wanted.append((_NETWORK_UNAVAILABLE, "NoSchedule"))
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect and
                   t.get("operator") == "Exists" for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    spec["tolerations"] = tolerations


def _pinned_to(spec: Obj, node_name: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: one required term, ``metadata.name`` In
    [node] (the template's other node affinity terms are replaced, as upstream)."""
    affinity = spec.get("affinity")
    if not isinstance(affinity, dict):
        affinity = spec["affinity"] = {}
    node_affinity = affinity.get("nodeAffinity")
    if not isinstance(node_affinity, dict):
        node_affinity = affinity["nodeAffinity"] = {}
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}


def daemon_pod(ds: ObjMap, node_name: str, revision_hash: str = "") -> Obj:
    """The pod to create for ``ds`` on ``node_name``, of the revision with ``revision_hash``
    (by default the template's own hash). Pure."""
    pod = pod_from_template(ds, DAEMONSETS)
    labels = pod["metadata"].setdefault("labels", {})
    labels[REVISION_HASH_LABEL] = revision_hash or template_hash(ds)
    labels[TEMPLATE_GENERATION_LABEL] = str(template_generation(ds))
    _with_default_tolerations(pod["spec"])
    _pinned_to(pod["spec"], node_name)
    return pod


# =============================================================================================
# pure planning


def _node_of(pod: ObjMap) -> str:
    """The node a daemon pod is on, or is pinned to while it waits for the scheduler."""
    spec = _map(pod, "spec")
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    terms = _list(_map(_map(_map(spec, "affinity"), "nodeAffinity"),
                       "requiredDuringSchedulingIgnoredDuringExecution"), "nodeSelectorTerms")
    for term in terms:
        for req in _list(term if isinstance(term, dict) else {}, "matchFields"):
            values = req.get("values") if isinstance(req, dict) else None
            if req.get("key") == "metadata.name" and isinstance(values, list) and values:
                return str(values[0])
    return ""


def should_run(ds: ObjMap, node: ObjMap) -> tuple[bool, bool]:
    """NodeShouldRunDaemonPod: (should run, should continue running). Pure."""
    probe: Obj = {"spec": copy.deepcopy(_map(_map(_map(ds, "spec"), "template"), "spec"))}
    _with_default_tolerations(probe["spec"])
    wanted_node = probe["spec"].get("nodeName")
    if wanted_node and wanted_node != _name(node):
        return False, False
    if not node_affinity_matches(probe, node):
        return False, False
    taints = [t for t in _list(_map(node, "spec"), "taints") if isinstance(t, dict)]
    untolerated = [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute")
                   and not tolerates(probe, t)]
    if any(t.get("effect") == "NoExecute" for t in untolerated):
        return False, False
    return not untolerated, True


@dataclass
class Plan:
    """What one sync of a DaemonSet should do, and the status it observed."""

    revision: str = ""
    """The current revision's hash: new pods' ``controller-revision-hash``."""
    create_on: list[str] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def _creation_order(pod: ObjMap) -> tuple[str, str]:
    return (str(_meta(pod).get("creationTimestamp") or ""), _name(pod))


def _scaled(ds: ObjMap, key: str, desired: int, default: int) -> int:
    """GetScaledValueFromIntOrPercent (rounded up) of ``rollingUpdate.<key>``."""
    raw = _map(_map(_map(ds, "spec"), "updateStrategy"), "rollingUpdate").get(key, default)
    try:
        return max(scaled_value_from_int_or_percent(raw, desired, round_up=True), 0)
    except ValueError:  # validation refuses it
        return default


def update_counts(ds: ObjMap, desired: int) -> tuple[int, int]:
    """updatedDesiredNodeCounts: (maxSurge, maxUnavailable) for ``desired`` nodes; both 0
    (which validation refuses) reads as maxUnavailable 1, so an update cannot stall."""
    if _map(_map(ds, "spec"), "updateStrategy").get("type") != ROLLING_UPDATE:
        return 0, 0
    surge, unavailable = _scaled(ds, "maxSurge", desired, 0), _scaled(
        ds, "maxUnavailable", desired, 1)
    return surge, unavailable if surge or unavailable else 1


def _max_unavailable(ds: ObjMap, desired: int) -> int:
    return update_counts(ds, desired)[1]


def _surge_survivors(alive: list[Obj], current: str, min_ready: int, now: Any,
                     delete: list[Obj]) -> list[Obj]:
    """podsShouldBeOnNode in surge mode: a node keeps its oldest new pod and its oldest old
    one, and the old one only while it is ready and the new one not yet available; the
    rest go to ``delete``. ``alive`` is oldest first."""
    new_pod, old_pod = (next((p for p in alive if (_labels(p).get(REVISION_HASH_LABEL)
                                                   == current) is new), None)
                        for new in (True, False))
    if new_pod is not None and old_pod is not None and (
            not is_pod_ready(old_pod) or is_pod_available(new_pod, min_ready, now)):
        old_pod = None  # replaced: not ready any more, or its successor is available
    delete.extend(p for p in alive if p is not new_pod and p is not old_pod)
    return [p for p in alive if p is new_pod or p is old_pod]


def _surge_update(ds: ObjMap, by_node: Mapping[str, list[Obj]], runs: Mapping[str, bool],
                  current: str, desired: int, now: Any) -> tuple[list[str], list[Obj]]:
    """rollingUpdate with maxSurge: (nodes to create a new pod on, old pods to delete). A new
    pod goes next to an old one that is unavailable at once, and next to available ones up
    to maxSurge at a time; an old pod goes once the new one beside it is available; an old
    pod on a node it should no longer run on goes only while enough others are available.
    Pure."""
    max_surge = update_counts(ds, desired)[0]
    min_ready = _int(_map(ds, "spec"), "minReadySeconds")
    delete: list[Obj] = []
    not_running_here: list[Obj] = []
    candidates: list[str] = []
    allowed: list[str] = []
    surging = available = 0
    for node in sorted(by_node):
        pods = by_node[node]
        new = [p for p in pods if _labels(p).get(REVISION_HASH_LABEL) == current]
        old = [p for p in pods if p not in new]
        if len(new) > 1 or len(old) > 1:
            surging += 1  # the manage step prunes this node first
            continue
        new_pod = new[0] if new else None
        old_pod = old[0] if old else None
        shown = old_pod if old_pod is not None else new_pod
        if shown is not None and is_pod_available(shown, min_ready, now):
            available += 1
        if old_pod is None:
            continue
        if new_pod is None:
            if not is_pod_available(old_pod, min_ready, now):
                if runs.get(node):
                    allowed.append(node)
                else:
                    delete.append(old_pod)
            elif not runs.get(node):
                not_running_here.append(old_pod)
            elif surging < max_surge:
                candidates.append(node)
        elif is_pod_available(new_pod, min_ready, now):
            delete.append(old_pod)
        else:
            surging += 1
    delete.extend(not_running_here[:max(available - desired, 0)])
    remaining = min(max(max_surge - surging, 0), len(candidates))
    return allowed + candidates[:remaining], delete


def _rolling_deletions(ds: ObjMap, by_node: Mapping[str, list[Obj]], runnable: Sequence[str],
                       current: str, now: Any) -> list[Obj]:
    """rollingUpdate: old-hash pods to delete now (see the module doc). Pure."""
    min_ready = _int(_map(ds, "spec"), "minReadySeconds")
    unavailable = 0
    old_available: list[Obj] = []
    doomed: list[Obj] = []
    for node in runnable:
        pods = by_node.get(node, [])
        available = [p for p in pods if is_pod_available(p, min_ready, now)]
        if not available:
            unavailable += 1
        for pod in pods:
            if _labels(pod).get(REVISION_HASH_LABEL) == current:
                continue
            if pod in available:
                old_available.append(pod)
            else:
                doomed.append(pod)  # not available anyway: replacing it costs nothing
    budget = _max_unavailable(ds, len(runnable)) - unavailable
    old_available.sort(key=_creation_order)
    doomed.extend(old_available[:max(budget, 0)])
    return doomed


def plan(ds: ObjMap, nodes: Iterable[ObjMap], pods: Iterable[ObjMap], now: Any,
         revision_hash: str = "") -> Plan:
    """podsShouldBeOnNode over every node, the rolling update, and the status, for the
    current revision ``revision_hash`` (the one the history chose; by default the template's
    own hash). Pure."""
    out = Plan(revision=revision_hash or template_hash(ds))
    by_node: dict[str, list[Obj]] = {}
    for pod in pods:
        if not _terminating(pod):
            by_node.setdefault(_node_of(pod), []).append(dict(pod))
    current = out.revision
    min_ready = _int(_map(ds, "spec"), "minReadySeconds")
    decided = [(node, *should_run(ds, node)) for node in sorted(nodes, key=_name)]
    surge = update_counts(ds, sum(1 for _node, run, _keep in decided if run))[0] > 0
    runnable: list[str] = []
    runs: dict[str, bool] = {}
    counts = dict.fromkeys(("desiredNumberScheduled", "currentNumberScheduled",
                            "numberMisscheduled", "numberReady", "numberAvailable",
                            "updatedNumberScheduled"), 0)
    known: set[str] = set()
    for node, run, keep in decided:
        name = _name(node)
        known.add(name)
        runs[name] = run
        here = sorted(by_node.get(name, []), key=_creation_order)
        if run:
            counts["desiredNumberScheduled"] += 1
            if here:
                counts["currentNumberScheduled"] += 1
                runnable.append(name)
        elif here:
            counts["numberMisscheduled"] += 1
        failed = [p for p in here if _map(p, "status").get("phase") == "Failed"]
        alive = [p for p in here if p not in failed]
        out.delete.extend(failed)
        if not keep:
            out.delete.extend(alive)
            continue
        if run and not alive:
            out.create_on.append(name)
        if surge:
            alive = _surge_survivors(alive, current, min_ready, now, out.delete)
        else:
            out.delete.extend(alive[1:])  # duplicates: keep the oldest
        if alive and run:
            pod = alive[0]
            counts["numberReady"] += is_pod_ready(pod)
            counts["numberAvailable"] += is_pod_available(pod, min_ready, now)
            counts["updatedNumberScheduled"] += _labels(pod).get(REVISION_HASH_LABEL) == current
    for node_name, orphaned in by_node.items():
        if node_name not in known:
            out.delete.extend(orphaned)  # the node is gone (or the pod was never pinned)
    strategy = _map(_map(ds, "spec"), "updateStrategy")
    if strategy.get("type") == ROLLING_UPDATE and not out.create_on and not out.delete:
        if surge:
            placed = {n: pods for n, pods in by_node.items() if n in known}
            out.create_on, out.delete = _surge_update(
                ds, placed, runs, current, counts["desiredNumberScheduled"], now)
        else:
            live = {n: by_node.get(n, []) for n in runnable}
            out.delete.extend(_rolling_deletions(ds, live, runnable, current, now))
    counts["numberUnavailable"] = counts["desiredNumberScheduled"] - counts["numberAvailable"]
    out.status = {k: v for k, v in counts.items() if v}
    return out


def status_changed(ds: ObjMap, status: ObjMap) -> bool:
    old = _map(ds, "status")
    keys = set(status) | {k for k in old if k not in ("observedGeneration", "conditions",
                                                        "collisionCount")}
    return any(_int(old, k) != _int(status, k) for k in keys) or (
        _int(old, "observedGeneration") != _int(_meta(ds), "generation"))


# =============================================================================================
# the controller


def node_update_ignorable(old: ObjMap, new: ObjMap) -> bool:
    """shouldIgnoreNodeUpdate: nothing a daemon pod's placement depends on changed, only
    the resourceVersion and the conditions' times (a heartbeat)."""

    def placement(node: ObjMap) -> Obj:
        out = copy.deepcopy(dict(node))
        out.setdefault("metadata", {}).pop("resourceVersion", None)
        status = out.setdefault("status", {})
        status["conditions"] = sorted(
            (str(c.get("type")), str(c.get("status")))
            for c in status.get("conditions") or [] if isinstance(c, Mapping))
        return out

    return placement(old) == placement(new)


class DaemonSetController(InformerController):
    """Runs DaemonSets (see the module doc)."""

    def __init__(self, client: WorkloadClient, *, daemonsets: Informer, pods: Informer,
                 nodes: Informer, revisions: Informer, clock: Clock | None = None,
                 recorder: EventRecorder | None = None,
                 resync_period: float | None = None) -> None:
        self._client = client
        self.daemonsets, self.pods, self.nodes = daemonsets, pods, nodes
        self.revisions = revisions
        self._clock: Clock = clock or RealClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.expectations = ControllerExpectations(self._clock)
        self.pod_control = PodControl(client, self.recorder, self.expectations)
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[daemonsets, pods, nodes, revisions],
                                     clock=self._clock)
        daemonsets.add_handler(EventHandler(
            on_add=self._enqueue, on_update=lambda _o, n: self._enqueue(n),
            on_delete=self._delete_ds), resync_period=resync_period)
        pods.add_handler(EventHandler(on_add=self._on_pod,
                                      on_update=lambda _o, n: self._on_pod(n, created=False),
                                      on_delete=self._on_pod_deleted))
        nodes.add_handler(EventHandler(on_add=self._on_node,
                                       on_update=self._on_node_update,
                                       on_delete=self._on_node))
        revisions.add_handler(EventHandler(on_add=self._on_revision,
                                           on_update=lambda _o, n: self._on_revision(n),
                                           on_delete=self._on_revision))

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC,
                    informers: InformerFactory | None = None) -> DaemonSetController:
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, daemonsets=factory.informer(DAEMONSETS, name="daemonsets"),
                   pods=factory.informer(PODS, name="pods"),
                   nodes=factory.informer(NODES, name="nodes"),
                   revisions=factory.informer(CONTROLLERREVISIONS, name="controllerrevisions"),
                   clock=clock, resync_period=resync_period)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.daemonsets, self.pods, self.nodes, self.revisions)

    # -- event handlers ---------------------------------------------------------------------

    def _enqueue(self, ds: Obj) -> None:
        self.queue.add(object_key(ds))

    def _on_revision(self, revision: Obj) -> None:
        key = owner_key(revision, DAEMONSETS.kind)
        if key is not None and self.daemonsets.get(key) is not None:
            self.queue.add(key)

    def _delete_ds(self, ds: Obj) -> None:
        self.expectations.delete(object_key(ds))
        self.queue.add(object_key(ds))

    def _owner_key(self, pod: ObjMap) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != DAEMONSETS.kind:
            return None
        ds = self.daemonsets.get(f"{_namespace(pod)}/{ref.get('name')}")
        return object_key(ds) if ds is not None and _uid(ds) == ref.get("uid") else None

    def _on_pod(self, pod: Obj, created: bool = True) -> None:
        """A pod added, or (``created=False``) updated: only an add is a creation observed
        (counting updates would let a sync act on a cache without its own creations)."""
        if _terminating(pod):
            self._on_pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            if created:
                self.expectations.creation_observed(key)
            self.queue.add(key)
            return
        if controller_ref(pod) is None:
            for ds in self.daemonsets.by_index(NAMESPACE_INDEX, _namespace(pod)):
                sel = label_selector(ds)
                if sel is not None and not sel.empty() and sel.matches(_labels(pod)):
                    self.queue.add(object_key(ds))

    def _on_pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    def _on_node(self, _node: Obj) -> None:
        for ds in self.daemonsets.list():
            self.queue.add(object_key(ds))

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if not node_update_ignorable(old, new):  # heartbeats would wake every set
            self._on_node(new)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.daemonsets.get(key)
        if cached is None:
            self.expectations.delete(key)
            return
        ds = copy.deepcopy(cached)
        selector = label_selector(ds)
        if selector is None or selector.empty():
            log.warning("%s: %s has an invalid or empty selector", COMPONENT, key)
            return
        ns, _ = split_key(key)
        candidates = self.pods.by_index(NAMESPACE_INDEX, ns)
        pods = await claim(self._client, PODS, ds, DAEMONSETS, selector, candidates,
                           recheck_deletion(self._client, DAEMONSETS, ds))
        revision_hash = ""
        if not _terminating(ds):
            # The current revision, whose hash the pods carry (made now, or an older equal
            # one: a rollback); may raise ds's status.collisionCount.
            history = await sync_history(self._client, self.revisions, ds, DAEMONSETS,
                                         live_names(ds, pods, label_is_name=False))
            revision_hash = str(_labels(history.current).get(HASH_LABEL) or "")
        the_plan = plan(ds, self.nodes.list(), pods, self._clock.now(), revision_hash)
        if self.expectations.satisfied(key) and not _terminating(ds):
            await self._apply(key, ds, the_plan)
        await self._update_status(ds, the_plan.status,
                                  _int(_map(cached, "status"), "collisionCount"))

    async def _apply(self, key: str, ds: Obj, the_plan: Plan) -> None:
        if not (the_plan.create_on or the_plan.delete):
            return
        self.expectations.expect(key, len(the_plan.create_on),
                                 [object_key(p) for p in the_plan.delete])
        results = await asyncio.gather(
            *(self.pod_control.create(key, ds, daemon_pod(ds, n, the_plan.revision))
              for n in the_plan.create_on),
            *(self.pod_control.delete(key, ds, p) for p in the_plan.delete),
            return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                raise r

    async def _update_status(self, ds: Obj, status: Obj, stored_collisions: int) -> None:
        if not status_changed(ds, status) and (
                _int(_map(ds, "status"), "collisionCount") == stored_collisions):
            return
        obj = copy.deepcopy(ds)
        new_status = dict(status)
        generation = _int(_meta(obj), "generation")
        if generation:
            new_status["observedGeneration"] = generation
        for keep in ("collisionCount", "conditions"):
            if keep in _map(ds, "status"):
                new_status[keep] = _map(ds, "status")[keep]
        obj["status"] = new_status
        try:
            await self._client.update(DAEMONSETS, obj, subresource="status")
        except StatusError as e:
            if e.code not in (404, 409):
                raise
            if e.code == 409:
                self.queue.add(object_key(ds))  # a newer version is coming: sync it again

