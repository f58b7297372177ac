"""The Job controller: runs each Job's pods to completion, or to failure.

Theory of operation (after ``pkg/controller/job/job_controller.go``'s ``syncJob`` and
``manageJob``, for NonIndexed Jobs)
-------------------------------------------------------------------------------------------
Two informers (Jobs, pods) feed one work queue of Job keys, as the ReplicaSet controller's do
(:mod:`svcnet.controllers.replicaset`, whose expectations and pod template code are reused):
a pod event queues the Job named by its controller ownerReference, and a pod seen created or
deleted settles that Job's expectations.

:func:`plan_job` is the pure decision of one sync, from the Job, its pods (claimed by the
selector, terminated ones included) and the time:

1. a Job already ``Complete`` or ``Failed`` is left alone;
2. counting: ``active`` (neither Succeeded nor Failed, not terminating), ``ready`` (active and
   Ready), ``terminating``, and ``succeeded``/``failed``. Upstream counts finished pods exactly
   once through a pod finalizer and ``status.uncountedTerminatedPods``; svcnet counts the
   finished pods it sees and never lets a counter go down (so a deleted finished pod is not
   "uncounted"; ``uncountedTerminatedPods`` stays empty);
3. failure: more failed pods than ``backoffLimit``, or (``restartPolicy: OnFailure``) container
   restarts of the active pods reaching it → reason ``BackoffLimitExceeded``; running longer
   than ``activeDeadlineSeconds`` since ``startTime`` → ``DeadlineExceeded``. The active pods
   are deleted and the conditions ``FailureTarget`` and ``Failed`` set (with the same reason);
4. success: ``succeeded >= completions`` (or, with no ``completions``, some pod succeeded and
   none is active) → active pods deleted, ``SuccessCriteriaMet`` and ``Complete`` (reason
   ``CompletionsReached``) with ``completionTime``;
5. a suspended Job has its active pods deleted and a ``Suspended=True`` condition (``False``,
   reason ``JobResumed``, and a fresh ``startTime`` when it resumes);
6. otherwise the wanted active pods are ``min(parallelism, completions - succeeded)`` (with no
   ``completions``: ``parallelism`` until one succeeds); too few → create the difference, after
   the pod-failure back-off (10 s doubled per failure, at most 6 minutes, from the last
   failure); too many → delete the least valuable (the ReplicaSet controller's ranking).

The controller applies the plan: pods created from the template (``generateName:
<job>-``, a controller ownerReference) in slow-start batches under expectations, pods deleted
with a uid precondition, the status written through ``/status`` when it changed, and Events
with upstream's reasons (``SuccessfulCreate``, ``SuccessfulDelete``, ``Completed``,
``BackoffLimitExceeded``, ``DeadlineExceeded``, ``Suspended``, ``Resumed``). It requeues a Job
when its back-off or deadline will have passed. ``ttlSecondsAfterFinished``, Indexed Jobs,
``podFailurePolicy`` and ``successPolicy`` are not acted upon yet (an Indexed Job is left
alone, with a warning in the log).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from svcnet.api.access import (
    int_of as _int,
    list_of as _list,
    map_of as _map,
    meta_of as _meta,
    namespace_of as _namespace,
    uid_of as _uid,
)
from svcnet.api.batch import job_condition_true
from svcnet.api.errors import StatusError
from svcnet.client.controller import Controller, InformerController
from svcnet.client.events import EventRecorder
from svcnet.client.informer import (
    NAMESPACE_INDEX,
    EventHandler,
    Informer,
    InformerFactory,
    object_key,
)
from svcnet.client.rest import PODS
from svcnet.controllers.ownership import (
    JOBS,
    APIClient,
    WorkloadClient,
    claim,
    controller_ref,
    label_selector,
    parse_time,
    recheck_deletion,
    terminating as _terminating,
)
from svcnet.controllers.podcontrol import PodControl
from svcnet.controllers.replicaset import (
    BURST_REPLICAS,
    ControllerExpectations,
    is_pod_ready,
    pod_from_template,
    pods_to_delete,
)
from svcnet.util.clock import Clock, RealClock, rfc3339

__all__ = ["COMPONENT", "JobController", "JobPlan", "plan_job"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "job-controller"
DEFAULT_BACKOFF: Final = 10.0
MAX_BACKOFF: Final = 360.0
DEFAULT_RESYNC: Final = 300.0


@dataclass
class JobPlan:
    """What one sync of a Job does (see the module doc)."""

    status: Obj
    create: int = 0
    delete: list[Obj] = field(default_factory=list)
    #: (type, reason, message) of the Events to record.
    events: list[tuple[str, str, str]] = field(default_factory=list)
    #: Seconds after which to look again (a back-off or a deadline), if any.
    requeue_after: float | None = None


def _finished_at(pod: ObjMap) -> datetime | None:
    """When a finished pod finished: its containers' latest finishedAt, else its creation."""
    times = [parse_time(_map(_map(s, "state"), "terminated").get("finishedAt"))
             for s in _list(_map(pod, "status"), "containerStatuses") if isinstance(s, dict)]
    known = [t for t in times if t is not None]
    return max(known) if known else parse_time(_meta(pod).get("creationTimestamp"))


def _condition(ctype: str, reason: str, message: str, now: datetime,
               status: str = "True") -> Obj:
    stamp = rfc3339(now)
    return {"type": ctype, "status": status, "lastProbeTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def _set_condition(conditions: list[Obj], cond: Obj) -> bool:
    """Add ``cond`` or update the condition of its type; False when nothing changed."""
    for i, c in enumerate(conditions):
        if c.get("type") == cond["type"]:
            if c.get("status") == cond["status"]:
                return False
            conditions[i] = cond
            return True
    conditions.append(cond)
    return True


def _backoff_remaining(failed_pods: Sequence[ObjMap], failed: int, now: datetime) -> float:
    """Seconds still to wait before replacing failed pods (upstream's pod-failure back-off)."""
    if failed <= 0:
        return 0.0
    delay = min(DEFAULT_BACKOFF * 2 ** (failed - 1), MAX_BACKOFF)
    finished = [t for t in (_finished_at(p) for p in failed_pods) if t is not None]
    if not finished:
        return 0.0
    return max(0.0, (max(finished) + timedelta(seconds=delay) - now).total_seconds())


def _restarts(pods: Sequence[ObjMap]) -> int:
    return sum(_int(s, "restartCount") for p in pods for key in ("initContainerStatuses",
                                                                  "containerStatuses")
               for s in _list(_map(p, "status"), key) if isinstance(s, dict))


def _failure(job: ObjMap, active: Sequence[ObjMap], failed: int, new_failure: bool,
             now: datetime) -> tuple[str, str] | None:
    spec, status = _map(job, "spec"), _map(job, "status")
    limit = _int(spec, "backoffLimit")
    on_failure = _map(_map(spec, "template"), "spec").get("restartPolicy") == "OnFailure"
    message = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    if new_failure and failed > limit:
        return message
    if on_failure and active:
        # pastBackoffLimitOnFailure: container restarts of the active pods count as failures.
        restarts = _restarts(active)
        if (restarts > 0) if limit == 0 else (restarts >= limit):
            return message
    deadline = spec.get("activeDeadlineSeconds")
    start = parse_time(status.get("startTime"))
    if isinstance(deadline, int) and start is not None and (
            now - start).total_seconds() >= deadline:
        return "DeadlineExceeded", "Job was active longer than specified deadline"
    return None


def _wanted_active(spec: ObjMap, succeeded: int, active: int) -> int:
    parallelism = _int(spec, "parallelism")
    completions = spec.get("completions")
    if not isinstance(completions, int):
        return active if succeeded > 0 else parallelism
    return max(0, min(parallelism, completions - succeeded))


def _is_complete(spec: ObjMap, succeeded: int, active: int) -> bool:
    completions = spec.get("completions")
    if isinstance(completions, int):
        return succeeded >= completions
    return succeeded > 0 and active == 0


def plan_job(job: ObjMap, pods: Sequence[ObjMap], now: datetime) -> JobPlan:  # noqa: C901
    """The decision of one sync (see the module doc). Pure."""
    spec, old = _map(job, "spec"), _map(job, "status")
    status: Obj = copy.deepcopy(dict(old))
    conditions: list[Obj] = [copy.deepcopy(c) for c in _list(old, "conditions")
                             if isinstance(c, dict)]
    plan = JobPlan(status)
    if job_condition_true(job, "Complete") or job_condition_true(job, "Failed"):
        return plan
    live = [p for p in pods if not _terminating(p)]
    active = [p for p in live if _map(p, "status").get("phase") not in ("Succeeded", "Failed")]
    failed_pods = [p for p in pods if _map(p, "status").get("phase") == "Failed"]
    succeeded = max(_int(old, "succeeded"),
                    sum(1 for p in pods if _map(p, "status").get("phase") == "Succeeded"))
    failed = max(_int(old, "failed"), len(failed_pods))
    suspended = spec.get("suspend") is True
    if not suspended and not status.get("startTime"):
        status["startTime"] = rfc3339(now)
    outcome = _failure(job, active, failed, failed > _int(old, "failed"), now)
    done = outcome is None and _is_complete(spec, succeeded, len(active))
    if outcome is not None or done or suspended:
        plan.delete = [dict(p) for p in active]
    if outcome is not None:
        reason, message = outcome
        _set_condition(conditions, _condition("FailureTarget", reason, message, now))
        _set_condition(conditions, _condition("Failed", reason, message, now))
        plan.events.append(("Warning", reason, message))
    elif done:
        reason, message = "CompletionsReached", "Reached expected number of succeeded pods"
        _set_condition(conditions, _condition("SuccessCriteriaMet", reason, message, now))
        _set_condition(conditions, _condition("Complete", reason, message, now))
        status["completionTime"] = rfc3339(now)
        plan.events.append(("Normal", "Completed", "Job completed"))
    elif suspended:
        if _set_condition(conditions, _condition("Suspended", "JobSuspended", "Job suspended",
                                                 now)):
            plan.events.append(("Normal", "Suspended", "Job suspended"))
    else:
        if _set_condition(conditions, _condition("Suspended", "JobResumed", "Job resumed", now,
                                                 "False")) and job_condition_true(job,
                                                                                  "Suspended"):
            status["startTime"] = rfc3339(now)
            plan.events.append(("Normal", "Resumed", "Job resumed"))
        if not any(c.get("type") == "Suspended" for c in _list(old, "conditions")):
            conditions = [c for c in conditions if c.get("type") != "Suspended"]
        diff = len(active) - _wanted_active(spec, succeeded, len(active))
        if diff < 0:
            wait = _backoff_remaining(failed_pods, failed, now)
            if wait > 0:
                plan.requeue_after = wait
            else:
                plan.create = min(-diff, BURST_REPLICAS)
        elif diff > 0:
            plan.delete = pods_to_delete(active, [], diff, now)
        deadline = spec.get("activeDeadlineSeconds")
        start = parse_time(status.get("startTime"))
        if isinstance(deadline, int) and start is not None:
            left = (start + timedelta(seconds=deadline) - now).total_seconds()
            plan.requeue_after = min(left, plan.requeue_after or left)
    status.update(active=len(active) - len(plan.delete) + plan.create, succeeded=succeeded,
                  failed=failed,
                  ready=sum(1 for p in active if is_pod_ready(p) and p not in plan.delete),
                  terminating=sum(1 for p in pods if _terminating(p)) + len(plan.delete),
                  uncountedTerminatedPods={})
    for key in ("active", "succeeded", "failed"):
        if not status[key]:
            del status[key]  # omitempty
    if conditions:
        status["conditions"] = conditions
    return plan


class JobController(InformerController):
    """Runs Jobs (see the module doc). Informers are passed in, as the ReplicaSet
    controller's are, so tests can fill never-started ones and call :meth:`sync`."""

    def __init__(self, client: WorkloadClient, *, jobs: Informer, pods: Informer,
                 clock: Clock | None = None, workers: int = 1,
                 recorder: EventRecorder | None = None,
                 resync_period: float | None = None) -> None:
        self._client = client
        self.jobs = jobs
        self.pods = pods
        self._clock: Clock = clock or RealClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.expectations = ControllerExpectations(self._clock)
        self.pod_control = PodControl(client, self.recorder, self.expectations)
        self.controller = Controller(COMPONENT, self.sync, informers=[jobs, pods],
                                     workers=workers, clock=self._clock)
        jobs.add_handler(EventHandler(on_add=self._add_job, on_update=self._update_job,
                                      on_delete=self._delete_job), resync_period=resync_period)
        pods.add_handler(EventHandler(on_add=self._add_pod, on_update=self._update_pod,
                                      on_delete=self._delete_pod))

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC,
                    informers: InformerFactory | None = None) -> JobController:
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, jobs=factory.informer(JOBS, name="jobs"),
                   pods=factory.informer(PODS, name="pods"), clock=clock,
                   resync_period=resync_period)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.jobs, self.pods)

    # -- event handlers ---------------------------------------------------------------------

    def _job_of(self, pod: ObjMap) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != JOBS.kind:
            return None
        key = f"{_namespace(pod)}/{ref.get('name')}"
        job = self.jobs.get(key)
        return key if job is not None and _uid(job) == ref.get("uid") else None

    def _add_job(self, job: Obj) -> None:
        self.queue.add(object_key(job))

    def _update_job(self, old: Obj, new: Obj) -> None:
        if _uid(old) != _uid(new):
            self.expectations.delete(object_key(old))
        self.queue.add(object_key(new))

    def _delete_job(self, job: Obj) -> None:
        self.expectations.delete(object_key(job))

    def _add_pod(self, pod: Obj) -> None:
        key = self._job_of(pod)
        if key is not None:
            if _terminating(pod):
                self.expectations.deletion_observed(key, object_key(pod))
            else:
                self.expectations.creation_observed(key)
            self.queue.add(key)

    def _update_pod(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        key = self._job_of(new)
        if key is not None:
            if _terminating(new):
                self.expectations.deletion_observed(key, object_key(new))
            self.queue.add(key)

    def _delete_pod(self, pod: Obj) -> None:
        key = self._job_of(pod)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.jobs.get(key)
        if cached is None:
            self.expectations.delete(key)
            return
        job = copy.deepcopy(cached)
        if _map(job, "spec").get("completionMode") == "Indexed":
            log.warning("%s: %s: Indexed Jobs are not run yet", COMPONENT, key)
            return
        selector = label_selector(job)
        if selector is None:
            log.warning("%s: %s has an invalid selector", COMPONENT, key)
            return
        candidates = self.pods.by_index(NAMESPACE_INDEX, _namespace(job))
        pods = await claim(self._client, PODS, job, JOBS, selector, candidates,
                           recheck_deletion(self._client, JOBS, job))
        if not self.expectations.satisfied(key) or _terminating(job):
            return  # the pod events still awaited queue the Job again
        plan = plan_job(job, pods, self._clock.now())
        error: Exception | None = None
        try:
            await self.pod_control.delete_many(key, job, plan.delete)
            await self.pod_control.create_many(key, job, plan.create,
                                               lambda: pod_from_template(job, JOBS))
        except Exception as e:
            error = e
        if plan.status != _map(job, "status"):
            await self._update_status(job, plan.status)
        for etype, reason, message in plan.events:
            if etype == "Warning":
                await self.recorder.warning(job, reason, message)
            else:
                await self.recorder.normal(job, reason, message)
        if plan.requeue_after is not None:
            self.queue.add_after(key, max(plan.requeue_after, 0.0) + 0.5)
        if error is not None:
            raise error

    async def _update_status(self, job: Obj, status: Obj) -> None:
        obj = copy.deepcopy(job)
        obj["status"] = status
        try:
            await self._client.update(JOBS, obj, subresource="status")
        except StatusError as e:
            if e.code != 404:
                raise  # a conflict: the next sync starts from the fresh Job
