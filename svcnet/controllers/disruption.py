"""The disruption controller: each PodDisruptionBudget's status, which evictions obey.

Theory of operation, after kube-controller-manager's ``disruption`` controller
(pkg/controller/disruption/disruption.go):

* **keys** are budgets (``namespace/name``), queued when a budget changes, when a pod that a
  budget selects is added, changed or deleted, and when a workload's ``spec.replicas`` changes
  (for percentages the expected count is the workloads' scale);
* **the pods** of a budget are its namespace's pods that its selector matches (an empty
  selector: all of them; a missing one: none);
* **expected and desired** (:func:`expected_and_desired`): ``minAvailable`` as an integer wants
  that many healthy pods out of the pods found; a percentage ``minAvailable`` or any
  ``maxUnavailable`` is taken of the *expected* count, the sum of the scales of the pods'
  controllers (each counted once): a ReplicationController's, a Deployment's (through its
  ReplicaSet), a ReplicaSet's (not owned by a Deployment), a StatefulSet's ``spec.replicas``.
  Percentages round up; ``maxUnavailable`` leaves ``expected - max`` desired (at least 0). A pod
  without a controller is *unmanaged*: it adds nothing to the expected count and is reported
  in an ``UnmanagedPods`` Event (the budget cannot know the intended scale); a controller that
  is not one of those (a Job, a DaemonSet) makes the sync fail;
* **healthy** (:func:`count_healthy`): Ready pods that are not being deleted and not in
  ``status.disruptedPods`` - the pods an eviction has just been granted, which count as gone
  for two minutes (the deletion timeout) and are dropped from the map when they are gone or the
  time is up (the budget is looked at again then);
* ``disruptionsAllowed = healthy - desired`` (0 when negative or nothing is expected), the
  ``DisruptionAllowed`` condition, ``observedGeneration``: written through ``/status`` when any
  of it changed (an eviction refuses to act on a budget whose generation is not observed yet).
  A failed sync writes the fail-safe status: no disruption allowed, condition False with reason
  ``SyncFailed`` and the error as its message.

The status is a pure function (:func:`compute_status`) of the budget, its pods, the workloads'
scales and the time, tested on its own; the controller around it only reads caches and writes.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from svcnet.api import policy
from svcnet.api.access import (
    labels_of,
    map_of,
    meta_of,
    name_of,
    namespace_of,
    str_of,
)
from svcnet.api.errors import StatusError, go_quote
from svcnet.api.labels import SelectorError, selector_from_label_selector
from svcnet.api.pods import is_pod_ready
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.events import EventRecorder
from svcnet.client.informer import NAMESPACE_INDEX, EventHandler, InformerFactory
from svcnet.client.rest import GVR, PODS, RESTClient
from svcnet.controllers.ownership import (
    DEPLOYMENTS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    STATEFULSETS,
    controller_ref,
    label_selector,
    spec_replicas,
)
from svcnet.util.clock import Clock, RealClock, parse_time, rfc3339

__all__ = ["COMPONENT", "DELETION_TIMEOUT", "PODDISRUPTIONBUDGETS", "DisruptionController",
           "ScaleLookup", "compute_status", "count_healthy", "expected_and_desired"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "controllermanager"
PODDISRUPTIONBUDGETS: Final = GVR(policy.GROUP, "v1", "poddisruptionbudgets",
                                  "PodDisruptionBudget")
#: How long a pod granted an eviction counts as disrupted (upstream's DeletionTimeout).
DELETION_TIMEOUT: Final = timedelta(minutes=2)

#: (namespace, ownerReference) → (controller uid, scale), or None if no finder knows it.
ScaleLookup = Callable[[str, ObjMap], "tuple[str, int] | None"]


class NoControllers(Exception):
    """A selected pod's controller has no known scale (upstream's "found no controllers")."""


@dataclass(frozen=True, slots=True)
class Computed:
    """What one sync works out for a budget."""

    status: Obj
    unmanaged: tuple[str, ...] = ()
    #: When the oldest live entry of ``disruptedPods`` expires (look again then).
    recheck: datetime | None = None


# -- pure parts ------------------------------------------------------------------------------


def _scaled(value: object, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with rounding up."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _expected_scale(pods: Sequence[ObjMap], scale_of: ScaleLookup) -> tuple[int, list[str]]:
    """getExpectedScale: the sum of the pods' controllers' scales, each controller once (keyed
    by the controller found: the pods of two ReplicaSets of one Deployment count it once)."""
    scale_by_controller: dict[str, int] = {}
    unmanaged: list[str] = []
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            unmanaged.append(name_of(pod))
            continue
        if ref.get("uid") in scale_by_controller:
            continue
        found = scale_of(namespace_of(pod), ref)
        if found is None:
            raise NoControllers(f"found no controllers for pod {go_quote(name_of(pod))}")
        uid, scale = found
        scale_by_controller[uid] = scale
    return sum(scale_by_controller.values()), unmanaged


def expected_and_desired(pdb: ObjMap, pods: Sequence[ObjMap],
                         scale_of: ScaleLookup) -> tuple[int, int, list[str]]:
    """getExpectedPodCount: (expected pods, desired healthy pods, unmanaged pod names)."""
    spec = map_of(pdb, "spec")
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        expected, unmanaged = _expected_scale(pods, scale_of)
        return expected, max(0, expected - _scaled(max_unavailable, expected)), unmanaged
    if isinstance(min_available, str):
        expected, unmanaged = _expected_scale(pods, scale_of)
        return expected, _scaled(min_available, expected), unmanaged
    if isinstance(min_available, int) and not isinstance(min_available, bool):
        return len(pods), min_available, []
    return 0, 0, []


def _disrupted(pdb: ObjMap, pods: Sequence[ObjMap],
               now: datetime) -> tuple[dict[str, str], datetime | None]:
    """buildDisruptedPodMap: the entries still pending (pod present, not deleting, within the
    deletion timeout), and the earliest time one of them expires."""
    recorded = map_of(map_of(pdb, "status"), "disruptedPods")
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    for pod in pods:
        name = name_of(pod)
        if meta_of(pod).get("deletionTimestamp") or name not in recorded:
            continue
        since = parse_time(recorded[name])
        if since is None:
            continue
        expires = since + DELETION_TIMEOUT
        if expires < now:
            log.info("pod %s/%s was expected to be deleted at %s but it has not been",
                     namespace_of(pod), name, rfc3339(since))
            continue
        kept[name] = str(recorded[name])
        recheck = expires if recheck is None else min(recheck, expires)
    return kept, recheck


def count_healthy(pods: Sequence[ObjMap], disrupted: Mapping[str, str], now: datetime) -> int:
    """countHealthyPods: Ready, not being deleted, not granted an eviction lately."""
    healthy = 0
    for pod in pods:
        if meta_of(pod).get("deletionTimestamp"):
            continue
        since = parse_time(disrupted.get(name_of(pod)))
        if since is not None and since + DELETION_TIMEOUT > now:
            continue
        if is_pod_ready(pod):
            healthy += 1
    return healthy


def compute_status(pdb: ObjMap, pods: Sequence[ObjMap], scale_of: ScaleLookup,
                   now: datetime) -> Computed:
    """The budget's new status (trySync + updatePdbStatus). Raises :class:`NoControllers`."""
    expected, desired, unmanaged = expected_and_desired(pdb, pods, scale_of)
    disrupted, recheck = _disrupted(pdb, pods, now)
    healthy = count_healthy(pods, disrupted, now)
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status: Obj = copy.deepcopy(dict(map_of(pdb, "status")))
    status.update({"observedGeneration": int(meta_of(pdb).get("generation") or 0),
                   "disruptionsAllowed": allowed, "currentHealthy": healthy,
                   "desiredHealthy": desired, "expectedPods": expected})
    if disrupted:
        status["disruptedPods"] = disrupted
    else:
        status.pop("disruptedPods", None)
    policy.set_disruption_allowed_condition(status, now)
    return Computed(status, tuple(unmanaged), recheck)


def fail_safe_status(pdb: ObjMap, message: str, now: datetime) -> Obj:
    """failSafe: nothing may be disrupted, and the condition says why."""
    status: Obj = copy.deepcopy(dict(map_of(pdb, "status")))
    status["disruptionsAllowed"] = 0
    policy.set_disruption_allowed_condition(status, now, reason="SyncFailed", message=message)
    return status


# -- the controller --------------------------------------------------------------------------


def _pdb_selects(pdb: ObjMap, pod: ObjMap) -> bool:
    selector = label_selector(pdb)
    return selector is not None and selector.matches(labels_of(pod))


class DisruptionController:
    def __init__(self, client: RESTClient, *, clock: Clock | None = None,
                 informers: InformerFactory | None = None,
                 recorder: EventRecorder | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        factory = InformerFactory.of(informers, client, clock=self._clock)
        self.budgets = factory.informer(PODDISRUPTIONBUDGETS, name="poddisruptionbudgets")
        self.pods = factory.informer(PODS, name="pods")
        self.workloads = {gvr.resource: factory.informer(gvr, name=gvr.resource)
                          for gvr in (REPLICATIONCONTROLLERS, REPLICASETS, DEPLOYMENTS,
                                      STATEFULSETS)}
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.controller = Controller("disruption", self.sync, clock=self._clock,
                                     informers=[self.budgets, self.pods,
                                                *self.workloads.values()])
        queue = self.controller.queue
        self.budgets.add_handler(EventHandler.for_keys(queue.add))
        self.pods.add_handler(EventHandler(
            on_add=self._pod_changed, on_update=self._pod_changed,
            on_delete=self._pod_changed))
        for informer in self.workloads.values():
            informer.add_handler(EventHandler(on_update=self._scale_changed))

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None) -> DisruptionController:
        return cls(client, clock=clock, informers=informers)

    def start(self) -> None:
        for informer in (self.budgets, self.pods, *self.workloads.values()):
            informer.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        for informer in (*self.workloads.values(), self.pods, self.budgets):
            await informer.stop()

    # -- event handlers ---------------------------------------------------------------------

    def _enqueue_selecting(self, pod: ObjMap) -> None:
        for pdb in self.budgets.by_index(NAMESPACE_INDEX, namespace_of(pod)):
            if _pdb_selects(pdb, pod):
                self.controller.queue.add(f"{namespace_of(pdb)}/{name_of(pdb)}")

    def _pod_changed(self, *pods: Obj) -> None:
        for pod in pods:  # the old and the new pod: a label change may leave a budget
            self._enqueue_selecting(pod)

    def _scale_changed(self, old: Obj, new: Obj) -> None:
        if spec_replicas(old) == spec_replicas(new):
            return
        for pdb in self.budgets.by_index(NAMESPACE_INDEX, namespace_of(new)):
            self.controller.queue.add(f"{namespace_of(pdb)}/{name_of(pdb)}")

    # -- scales -----------------------------------------------------------------------------

    def _owned(self, resource: str, namespace: str, ref: ObjMap) -> Obj | None:
        obj = self.workloads[resource].get(f"{namespace}/{str_of(ref, 'name')}")
        if obj is None or meta_of(obj).get("uid") != ref.get("uid"):
            return None
        return obj

    def scale_of(self, namespace: str, ref: ObjMap) -> tuple[str, int] | None:
        """The finders: ReplicationController, Deployment (through its ReplicaSet),
        ReplicaSet, StatefulSet."""
        kind, group = str_of(ref, "kind"), str_of(ref, "apiVersion").rpartition("/")[0]
        if kind == "ReplicationController" and group == "":
            rc = self._owned("replicationcontrollers", namespace, ref)
            return None if rc is None else (str(ref.get("uid")), spec_replicas(rc))
        if kind == "StatefulSet" and group == "apps":
            sts = self._owned("statefulsets", namespace, ref)
            return None if sts is None else (str(ref.get("uid")), spec_replicas(sts))
        if kind != "ReplicaSet" or group != "apps":
            return None
        rs = self._owned("replicasets", namespace, ref)
        if rs is None:
            return None
        owner = controller_ref(rs)
        if owner is not None and owner.get("kind") == "Deployment":
            deployment = self._owned("deployments", namespace, owner)
            return None if deployment is None else (str(owner.get("uid")),
                                                     spec_replicas(deployment))
        return str(ref.get("uid")), spec_replicas(rs)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        pdb = self.budgets.get(key)
        if pdb is None:
            return
        namespace = namespace_of(pdb)
        raw = map_of(pdb, "spec").get("selector")
        try:
            selector = selector_from_label_selector(raw if isinstance(raw, Mapping) else None)
        except SelectorError as e:
            await self.recorder.warning(pdb, "NoPods", f"Failed to get pods: {e}")
            await self._write(pdb, fail_safe_status(pdb, str(e), self._clock.now()))
            return
        pods = [p for p in self.pods.by_index(NAMESPACE_INDEX, namespace)
                if selector.matches(labels_of(p))]
        if not pods:
            await self.recorder.normal(pdb, "NoPods", "No matching pods found")
        now = self._clock.now()
        try:
            computed = compute_status(pdb, pods, self.scale_of, now)
        except NoControllers as e:
            await self.recorder.warning(
                pdb, "CalculateExpectedPodCountFailed",
                f"Failed to calculate the number of expected pods: {e}")
            await self._write(pdb, fail_safe_status(pdb, str(e), now))
            return
        if computed.unmanaged:
            await self.recorder.warning(
                pdb, "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget (selector: "
                f"{selector}) were found to be unmanaged. As a result, the status of the PDB "
                "cannot be calculated correctly, which may result in undefined behavior. To "
                "account for these pods please set \".spec.minAvailable\" field of the PDB to "
                "an integer value.")
        await self._write(pdb, computed.status)
        if computed.recheck is not None:
            delay = (computed.recheck - now).total_seconds()
            self.controller.queue.add_after(key, max(delay, 0.0) + 0.001)

    async def _write(self, pdb: ObjMap, status: Obj) -> None:
        if status == map_of(pdb, "status"):
            return
        try:
            await self._client.update(PODDISRUPTIONBUDGETS, {**pdb, "status": status},
                                      subresource="status")
        except StatusError as e:
            if e.code == 404:
                return
            if e.code == 409:
                raise RequeueError("the budget changed meanwhile") from None
            raise
