"""The CronJob controller: creates a CronJob's Jobs on its schedule.

Theory of operation (after ``pkg/controller/cronjob/cronjob_controllerv2.go``'s
``syncCronJob`` and ``utils.go``)
-------------------------------------------------------------------------------------------
Two informers (CronJobs, Jobs) feed one queue of CronJob keys; a Job event queues the CronJob
named by its controller ownerReference. :func:`plan_cronjob` decides one sync, purely, from
the CronJob, the Jobs it controls and the time:

1. ``status.active`` becomes the references of its unfinished Jobs (a finished one leaves it,
   and a ``Complete`` one moves ``lastSuccessfulTime`` forward: Event ``SawCompletedJob``);
2. finished Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` are deleted,
   oldest first (``cleanupFinishedJobs``);
3. a CronJob being deleted or suspended schedules nothing; otherwise the most recent
   activation not after now is found from ``lastScheduleTime`` (else its creation), never
   earlier than ``startingDeadlineSeconds`` ago (``mostRecentScheduleTime``, with the schedule
   evaluated on ``spec.timeZone``'s clock, UTC when unset; more than 100 missed activations
   give a ``TooManyMissedTimes`` warning). An activation older than the starting deadline is
   missed (``MissSchedule``);
4. ``concurrencyPolicy``: ``Forbid`` skips the activation while a Job is active
   (``JobAlreadyActive``); ``Replace`` deletes the active Jobs first; ``Allow`` runs them side by
   side;
5. the Job is named ``<cronjob>-<activation in minutes since the epoch>``, so an activation
   cannot create two Jobs; it gets the job template's labels, annotations and spec, the
   ``batch.kubernetes.io/cronjob-scheduled-timestamp`` annotation (RFC 3339 on the CronJob's
   clock) and a controller ownerReference; ``lastScheduleTime`` becomes the activation;
6. the CronJob is looked at again at its next activation (the injectable clock decides when
   that is, so tests move time instead of sleeping).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from svcnet.api.access import (
    map_of as _map,
    meta_of as _meta,
    name_of as _name,
    namespace_of as _namespace,
    uid_of as _uid,
)
from svcnet.api.batch import job_condition_true
from svcnet.api.cronschedule import ScheduleError, load_zone, parse_schedule
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
from svcnet.client.rest import Preconditions
from svcnet.controllers.ownership import (
    CRONJOBS,
    JOBS,
    APIClient,
    WorkloadClient,
    controller_ref,
    new_controller_ref,
    parse_time,
    terminating as _terminating,
)
from svcnet.util.clock import Clock, RealClock, rfc3339

__all__ = ["COMPONENT", "CronJobController", "CronJobPlan", "job_name", "plan_cronjob"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "cronjob-controller"
SCHEDULED_TIMESTAMP_ANNOTATION: Final = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED: Final = 100
DEFAULT_RESYNC: Final = 300.0


@dataclass
class CronJobPlan:
    """What one sync of a CronJob does (see the module doc)."""

    status: Obj
    create: Obj | None = None
    delete: list[Obj] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


def job_name(cronjob: ObjMap, scheduled: datetime) -> str:
    """getJobName: ``<cronjob>-<minutes since the epoch>``."""
    return f"{_name(cronjob)}-{int(scheduled.timestamp()) // 60}"


def _finished(job: ObjMap) -> bool:
    return job_condition_true(job, "Complete") or job_condition_true(job, "Failed")


def _ref(job: ObjMap) -> Obj:
    meta = _meta(job)
    return {"kind": JOBS.kind, "namespace": _namespace(job), "name": _name(job),
            "uid": _uid(job), "apiVersion": JOBS.api_version,
            "resourceVersion": str(meta.get("resourceVersion") or "")}


def _started(job: ObjMap) -> datetime:
    return (parse_time(_map(job, "status").get("startTime"))
            or parse_time(_meta(job).get("creationTimestamp")) or datetime.min.replace(tzinfo=UTC))


def _history(jobs: Sequence[ObjMap], limit: object, ctype: str) -> list[Obj]:
    """The finished Jobs of one kind past the history limit, oldest first."""
    if not isinstance(limit, int):
        return []
    done = sorted((j for j in jobs if job_condition_true(j, ctype)), key=_started)
    return [dict(j) for j in done[:max(0, len(done) - limit)]]


def _zone(cronjob: ObjMap) -> tzinfo:
    tz = _map(cronjob, "spec").get("timeZone")
    return UTC if tz is None else load_zone(str(tz))


def _most_recent(cronjob: ObjMap, schedule: Any, zone: tzinfo,
                 now: datetime) -> tuple[datetime | None, int, datetime | None]:
    """mostRecentScheduleTime: (the latest activation not after now, how many were missed,
    the next activation after now)."""
    spec, status = _map(cronjob, "spec"), _map(cronjob, "status")
    earliest = (parse_time(status.get("lastScheduleTime"))
                or parse_time(_meta(cronjob).get("creationTimestamp")) or now)
    deadline = spec.get("startingDeadlineSeconds")
    if isinstance(deadline, int):
        earliest = max(earliest, now - timedelta(seconds=deadline))
    latest, missed = None, 0
    t = schedule.next_after(earliest, zone)
    while t is not None and t <= now:
        latest, missed = t, missed + 1
        t = schedule.next_after(t, zone)
    return latest, missed, t


def _job_from_template(cronjob: ObjMap, scheduled: datetime, zone: tzinfo) -> Obj:
    """getJobFromTemplate2."""
    template = _map(_map(cronjob, "spec"), "jobTemplate")
    tmeta = _map(template, "metadata")
    annotations = dict(_map(tmeta, "annotations"))
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = scheduled.astimezone(zone).isoformat(
        ).replace("+00:00", "Z")
    meta: Obj = {"name": job_name(cronjob, scheduled), "namespace": _namespace(cronjob),
                 "annotations": annotations,
                 "ownerReferences": [new_controller_ref(cronjob, CRONJOBS)]}
    if _map(tmeta, "labels"):
        meta["labels"] = dict(_map(tmeta, "labels"))
    return {"apiVersion": JOBS.api_version, "kind": JOBS.kind, "metadata": meta,
            "spec": copy.deepcopy(_map(template, "spec"))}


def plan_cronjob(cronjob: ObjMap, jobs: Sequence[ObjMap], now: datetime) -> CronJobPlan:
    """The decision of one sync (see the module doc). Pure."""
    spec, old = _map(cronjob, "spec"), _map(cronjob, "status")
    status: Obj = copy.deepcopy(dict(old))
    plan = CronJobPlan(status)
    was_active = {r.get("uid") for r in old.get("active") or [] if isinstance(r, dict)}
    last_success = parse_time(old.get("lastSuccessfulTime"))
    for job in jobs:
        if _uid(job) in was_active and job_condition_true(job, "Complete"):
            plan.events.append(("Normal", "SawCompletedJob",
                                f"Saw completed job: {_name(job)}, condition: Complete"))
            done = parse_time(_map(job, "status").get("completionTime"))
            if done is not None and (last_success is None or done > last_success):
                last_success = done
    if last_success is not None:
        status["lastSuccessfulTime"] = rfc3339(last_success)
    active = [j for j in jobs if not _finished(j)]
    plan.delete = (_history(jobs, spec.get("successfulJobsHistoryLimit"), "Complete")
                   + _history(jobs, spec.get("failedJobsHistoryLimit"), "Failed"))
    if _terminating(cronjob) or spec.get("suspend") is True:
        return _with_active(plan, active)
    try:
        zone = _zone(cronjob)
        schedule = parse_schedule(str(spec.get("schedule") or ""))
    except ScheduleError as e:
        plan.events.append(("Warning", "UnparseableSchedule", f"unparseable schedule: {e}"))
        return _with_active(plan, active)
    scheduled, missed, following = _most_recent(cronjob, schedule, zone, now)
    if following is not None:
        plan.requeue_after = (following - now).total_seconds()
    if missed > MAX_MISSED:
        plan.events.append(("Warning", "TooManyMissedTimes",
                            "too many missed start times. Set or decrease "
                            ".spec.startingDeadlineSeconds or check clock skew"))
    names = {_name(j) for j in jobs}
    if scheduled is None or job_name(cronjob, scheduled) in names:
        return _with_active(plan, active)
    deadline = spec.get("startingDeadlineSeconds")
    if isinstance(deadline, int) and scheduled + timedelta(seconds=deadline) < now:
        plan.events.append(("Warning", "MissSchedule",
                            f"Missed scheduled time to start a job: {rfc3339(scheduled)}"))
        return _with_active(plan, active)
    policy = spec.get("concurrencyPolicy")
    if policy == "Forbid" and active:
        plan.events.append(("Normal", "JobAlreadyActive", "Not starting job because prior "
                            "execution is running and concurrency policy is Forbid"))
        return _with_active(plan, active)
    if policy == "Replace" and active:
        plan.delete.extend(dict(j) for j in active)
        active = []
    plan.create = _job_from_template(cronjob, scheduled, zone)
    status["lastScheduleTime"] = rfc3339(scheduled)
    return _with_active(plan, active)


def _with_active(plan: CronJobPlan, active: Sequence[ObjMap]) -> CronJobPlan:
    refs = [_ref(j) for j in sorted(active, key=_name)]
    if refs:
        plan.status["active"] = refs
    else:
        plan.status.pop("active", None)
    return plan


class CronJobController(InformerController):
    """Runs CronJobs (see the module doc)."""

    def __init__(self, client: WorkloadClient, *, cronjobs: Informer, jobs: Informer,
                 clock: Clock | None = None, workers: int = 1,
                 recorder: EventRecorder | None = None,
                 resync_period: float | None = None) -> None:
        self._client = client
        self.cronjobs = cronjobs
        self.jobs = jobs
        self._clock: Clock = clock or RealClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.controller = Controller(COMPONENT, self.sync, informers=[cronjobs, jobs],
                                     workers=workers, clock=self._clock)
        cronjobs.add_handler(EventHandler(on_add=self._queue_obj,
                                          on_update=lambda _o, n: self._queue_obj(n)),
                              resync_period=resync_period)
        jobs.add_handler(EventHandler(on_add=self._queue_owner,
                                      on_update=lambda _o, n: self._queue_owner(n),
                                      on_delete=self._queue_owner))

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC,
                    informers: InformerFactory | None = None) -> CronJobController:
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, cronjobs=factory.informer(CRONJOBS, name="cronjobs"),
                   jobs=factory.informer(JOBS, name="jobs"), clock=clock,
                   resync_period=resync_period)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.cronjobs, self.jobs)

    def _queue_obj(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _queue_owner(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == CRONJOBS.kind:
            self.queue.add(f"{_namespace(job)}/{ref.get('name')}")

    def owned_jobs(self, cronjob: ObjMap) -> list[Obj]:
        uid = _uid(cronjob)
        return [j for j in self.jobs.by_index(NAMESPACE_INDEX, _namespace(cronjob))
                if (controller_ref(j) or {}).get("uid") == uid]

    async def sync(self, key: str) -> None:
        cached = self.cronjobs.get(key)
        if cached is None:
            return
        cronjob = copy.deepcopy(cached)
        plan = plan_cronjob(cronjob, self.owned_jobs(cronjob), self._clock.now())
        for job in plan.delete:
            try:
                await self._client.delete(JOBS, _namespace(job), _name(job),
                                          preconditions=Preconditions(uid=_uid(job)),
                                          propagation_policy="Background")
            except StatusError as e:
                if e.code != 404:
                    raise
                continue
            plan.events.append(("Normal", "SuccessfulDelete", f"Deleted job {_name(job)}"))
        if plan.create is not None:
            await self._create(cronjob, plan)
        if plan.status != _map(cronjob, "status"):
            cronjob["status"] = plan.status
            try:
                await self._client.update(CRONJOBS, cronjob, subresource="status")
            except StatusError as e:
                if e.code != 404:
                    raise
        for etype, reason, message in plan.events:
            if etype == "Warning":
                await self.recorder.warning(cronjob, reason, message)
            else:
                await self.recorder.normal(cronjob, reason, message)
        if plan.requeue_after is not None:
            self.queue.add_after(key, max(plan.requeue_after, 0.0) + 0.1)

    async def _create(self, cronjob: Obj, plan: CronJobPlan) -> None:
        job = plan.create or {}
        try:
            created = await self._client.create(JOBS, job, namespace=_namespace(cronjob))
        except StatusError as e:
            if e.code != 409:
                await self.recorder.warning(cronjob, "FailedCreate",
                                            f"Error creating job: {e}")
                raise
            created = await self._client.get(JOBS, _namespace(cronjob), _name(job))
            if (controller_ref(created) or {}).get("uid") != _uid(cronjob):
                return
        plan.status["active"] = sorted([*plan.status.get("active", []), _ref(created)],
                                       key=lambda r: str(r.get("name")))
        plan.events.append(("Normal", "SuccessfulCreate", f"Created job {_name(created)}"))
