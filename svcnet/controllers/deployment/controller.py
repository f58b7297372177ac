"""The Deployment controller's loop, as ``deployment_controller.go`` with ``sync.go``,
``rolling.go``, ``recreate.go`` and ``rollback.go`` (see the package docstring).

Why this module is long: The controller loop with sync, rolling, recreate and rollback, which
upstream splits over files that share one controller type.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from svcnet.api.access import (
    annotations_of as _annotations,
    int_of as _int,
    map_of as _map,
    meta_of as _meta,
    name_of as _name,
    namespace_of as _namespace,
    uid_of as _uid,
)
from svcnet.api.errors import StatusError, is_namespace_terminating
from svcnet.api.labels import Selector
from svcnet.api.workloads import (
    DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY,
    RECREATE,
    ROLLING_UPDATE,
    semantically_equal,
)
from svcnet.client.controller import Controller, InformerController, RequeueError
from svcnet.client.events import EventRecorder
from svcnet.client.informer import (
    NAMESPACE_INDEX,
    EventHandler,
    Informer,
    InformerFactory,
    object_key,
)
from svcnet.client.rest import PODS, Preconditions
from svcnet.controllers.deployment.status import (
    _rollback_to,
    calculate_status,
    deployment_complete,
    get_condition,
    has_progress_deadline,
    new_condition,
    rollout_status,
    set_condition,
)
from svcnet.controllers.deployment.util import (
    ANNOTATIONS_TO_SKIP,
    COMPONENT,
    DEFAULT_RESYNC,
    DESIRED_REPLICAS_ANNOTATION,
    FAILED_RS_CREATE,
    FOUND_NEW_RS,
    NEW_REPLICA_SET,
    PAUSED,
    PROGRESSING,
    RESUMED,
    REVISION_ANNOTATION,
    ROLLBACK_DONE,
    ROLLBACK_REVISION_NOT_FOUND,
    ROLLBACK_TEMPLATE_UNCHANGED,
    ROLLBACK_TO_ANNOTATION,
    TIMED_OUT,
    _revision_or_none,
    _set_annotation,
    _status_int,
    _strategy,
    actual_replica_count,
    cleanable_replica_sets,
    equal_ignore_hash,
    filter_active,
    find_new_replica_set,
    find_old_replica_sets,
    last_revision,
    max_revision,
    max_surge,
    new_replica_set,
    new_rs_new_replicas,
    plan_old_scale_down,
    plan_proportional_scale,
    replicas_annotations_need_update,
    set_new_replica_set_annotations,
    set_replicas_annotations,
)
from svcnet.controllers.ownership import (
    DEPLOYMENTS,
    REPLICASETS,
    APIClient,
    WorkloadClient,
    claim,
    controller_ref,
    is_controlled_by,
    label_selector,
    parse_time,
    recheck_deletion,
    spec_replicas as _replicas,
)
from svcnet.util.clock import Clock, RealClock

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]


# the controller


class DeploymentController(InformerController):
    """Runs Deployments (see the module doc).

    Informers are passed in (tests use never-started ones; a process may share them);
    :meth:`from_client` builds the usual three.
    """

    def __init__(self, client: WorkloadClient, *, deployments: Informer,
                 replicasets: Informer, pods: Informer, clock: Clock | None = None,
                 workers: int = 1, recorder: EventRecorder | None = None,
                 resync_period: float | None = None) -> None:
        self._client = client
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        self._clock: Clock = clock or RealClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[deployments, replicasets, pods],
                                     workers=workers, clock=self._clock)
        self.deployment_handler = EventHandler.for_keys(self.queue.add)
        self.rs_handler = EventHandler(on_add=self._add_rs, on_update=self._update_rs,
                                       on_delete=self._delete_rs)
        self.pod_handler = EventHandler(on_delete=self._delete_pod)
        deployments.add_handler(self.deployment_handler, resync_period=resync_period)
        replicasets.add_handler(self.rs_handler)
        pods.add_handler(self.pod_handler)

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC, workers: int = 1,
                    informers: InformerFactory | None = None) -> DeploymentController:
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, deployments=factory.informer(DEPLOYMENTS, name="deployments"),
                   replicasets=factory.informer(REPLICASETS, name="replicasets"),
                   pods=factory.informer(PODS, name="pods"), clock=clock, workers=workers,
                   resync_period=resync_period)


    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.deployments, self.replicasets, self.pods)


    # -- event handlers ---------------------------------------------------------------------

    def _resolve(self, namespace: str, ref: ObjMap) -> Obj | None:
        if ref.get("kind") != DEPLOYMENTS.kind:
            return None
        d = self.deployments.get(f"{namespace}/{ref.get('name')}")
        if d is None or _uid(d) != ref.get("uid"):
            return None
        return d

    def _deployments_for_orphan(self, rs: ObjMap) -> list[Obj]:
        """GetDeploymentsForReplicaSet: Deployments whose (non-empty) selector matches."""
        labels = _map(_meta(rs), "labels")
        if not labels:
            return []
        out = []
        for d in self.deployments.by_index(NAMESPACE_INDEX, _namespace(rs)):
            sel = label_selector(d)
            if sel is not None and not sel.empty() and sel.matches(labels):
                out.append(d)
        return out

    def _add_rs(self, rs: Obj) -> None:
        if _meta(rs).get("deletionTimestamp"):
            self._delete_rs(rs)
            return
        ref = controller_ref(rs)
        if ref is not None:
            d = self._resolve(_namespace(rs), ref)
            if d is not None:
                self.queue.add(object_key(d))
            return
        for d in self._deployments_for_orphan(rs):
            self.queue.add(object_key(d))

    def _update_rs(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        new_ref, old_ref = controller_ref(new), controller_ref(old)
        ref_changed = new_ref != old_ref
        if ref_changed and old_ref is not None:
            d = self._resolve(_namespace(old), old_ref)
            if d is not None:
                self.queue.add(object_key(d))
        if new_ref is not None:
            d = self._resolve(_namespace(new), new_ref)
            if d is not None:
                self.queue.add(object_key(d))
            return
        if _map(_meta(old), "labels") != _map(_meta(new), "labels") or ref_changed:
            for d in self._deployments_for_orphan(new):
                self.queue.add(object_key(d))

    def _delete_rs(self, rs: Obj) -> None:
        ref = controller_ref(rs)
        if ref is None:
            return
        d = self._resolve(_namespace(rs), ref)
        if d is not None:
            self.queue.add(object_key(d))

    def _delete_pod(self, pod: Obj) -> None:
        """A Recreate Deployment waits for its old pods to be gone: wake it at the last one."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != REPLICASETS.kind:
            return
        rs = self.replicasets.get(f"{_namespace(pod)}/{ref.get('name')}")
        if rs is None or _uid(rs) != ref.get("uid"):
            return
        rs_ref = controller_ref(rs)
        d = self._resolve(_namespace(rs), rs_ref) if rs_ref is not None else None
        if d is None or _strategy(d).get("type") != RECREATE:
            return
        rss = [r for r in self.replicasets.by_index(NAMESPACE_INDEX, _namespace(d))
               if is_controlled_by(r, d)]
        if not any(self._pod_map(d, rss).values()):
            self.queue.add(object_key(d))

    # -- reading ----------------------------------------------------------------------------

    def _pod_map(self, d: ObjMap, rss: Sequence[ObjMap]) -> dict[str, list[Obj]]:
        """getPodMapForDeployment: the Deployment's pods grouped by their ReplicaSet's uid."""
        sel = label_selector(d)
        out: dict[str, list[Obj]] = {_uid(rs): [] for rs in rss}
        if sel is None:
            return out
        for pod in self.pods.by_index(NAMESPACE_INDEX, _namespace(d)):
            if not sel.matches(_map(_meta(pod), "labels")):
                continue
            ref = controller_ref(pod)
            if ref is not None and str(ref.get("uid")) in out:
                out[str(ref.get("uid"))].append(pod)
        return out

    async def _replica_sets_for(self, d: Obj, selector: Selector) -> list[Obj]:
        """getReplicaSetsForDeployment: claim the namespace's ReplicaSets."""
        candidates = self.replicasets.by_index(NAMESPACE_INDEX, _namespace(d))
        claimed = await claim(self._client, REPLICASETS, d, DEPLOYMENTS, selector, candidates,
                              recheck_deletion(self._client, DEPLOYMENTS, d))
        return [copy.deepcopy(rs) for rs in claimed]

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        raw_selector = _map(d, "spec").get("selector")
        if isinstance(raw_selector, dict) and not raw_selector.get(
                "matchLabels") and not raw_selector.get("matchExpressions"):
            await self.recorder.warning(d, "SelectingAll", "This deployment is selecting all "
                                        "pods. A non-empty selector is required.")
            if _status_int(d, "observedGeneration") < _int(_meta(d), "generation"):
                d.setdefault("status", {})["observedGeneration"] = _int(_meta(d), "generation")
                await self._write_status(d)
            return
        selector = label_selector(d)
        if selector is None:
            log.warning("%s: %s has an invalid selector", COMPONENT, key)
            return
        rss = await self._replica_sets_for(d, selector)
        pod_map = self._pod_map(d, rss)
        if _meta(d).get("deletionTimestamp"):
            await self._sync_status_only(d, rss)
            return
        await self._check_paused_conditions(d)
        if _map(d, "spec").get("paused"):
            await self._sync(d, rss)
            return
        if _rollback_to(d) is not None:
            await self._rollback(d, rss)
            return
        if await self._is_scaling_event(d, rss):
            await self._sync(d, rss)
            return
        stype = _strategy(d).get("type")
        if stype == RECREATE:
            await self._rollout_recreate(d, rss, pod_map)
        elif stype == ROLLING_UPDATE:
            await self._rollout_rolling(d, rss)
        else:
            raise RequeueError(f"unexpected deployment strategy type: {stype}")

    # -- writes -----------------------------------------------------------------------------

    async def _write_status(self, d: Obj) -> None:
        """UpdateStatus(d), keeping ``d``'s resourceVersion current for later writes."""
        written = await self._client.update(DEPLOYMENTS, d, subresource="status")
        d.setdefault("metadata", {})["resourceVersion"] = _meta(written).get("resourceVersion")

    async def _update_deployment(self, d: Obj) -> None:
        written = await self._client.update(DEPLOYMENTS, d)
        d.setdefault("metadata", {})["resourceVersion"] = _meta(written).get("resourceVersion")

    async def _scale_rs(self, rs: Obj, new_scale: int, d: Obj, operation: str
                        ) -> tuple[bool, Obj]:
        """scaleReplicaSet: set the size and the desired/max annotations (conditional on the
        cached resourceVersion)."""
        size_changed = _replicas(rs) != new_scale
        desired, maximum = _replicas(d), _replicas(d) + max_surge(d)
        if not size_changed and not replicas_annotations_need_update(rs, desired, maximum):
            return False, rs
        old_scale = _replicas(rs)
        updated = copy.deepcopy(rs)
        updated.setdefault("spec", {})["replicas"] = new_scale
        set_replicas_annotations(updated, desired, maximum)
        written = await self._client.update(REPLICASETS, updated)
        if size_changed:
            await self.recorder.normal(
                d, "ScalingReplicaSet",
                f"Scaled {operation} replica set {_name(written)} to {new_scale} from "
                f"{old_scale}")
        return size_changed, written

    async def _scale_rs_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if _replicas(rs) == new_scale:
            return False, rs
        operation = "up" if _replicas(rs) < new_scale else "down"
        return await self._scale_rs(rs, new_scale, d, operation)

    # -- revisions and the new ReplicaSet ---------------------------------------------------

    async def _all_rss_and_sync_revision(self, d: Obj, rss: list[Obj], create: bool
                                         ) -> tuple[Obj | None, list[Obj]]:
        _, all_old = find_old_replica_sets(d, rss)
        new_rs = await self._new_replica_set(d, rss, all_old, create)
        return new_rs, all_old

    async def _new_replica_set(self, d: Obj, rss: list[Obj], old_rss: list[Obj],  # noqa: C901
                               create: bool) -> Obj | None:
        """getNewReplicaSet: find (and re-annotate) or create the new ReplicaSet."""
        existing = find_new_replica_set(d, rss)
        new_revision = str(max_revision(old_rss) + 1)
        now = self._clock.now()
        if existing is not None:
            rs = copy.deepcopy(existing)
            annotations_changed = set_new_replica_set_annotations(d, rs, new_revision, True)
            min_ready = _int(_map(d, "spec"), "minReadySeconds")
            if annotations_changed or _int(_map(rs, "spec"), "minReadySeconds") != min_ready:
                if min_ready:
                    rs["spec"]["minReadySeconds"] = min_ready
                else:
                    rs["spec"].pop("minReadySeconds", None)
                written = await self._client.update(REPLICASETS, rs)
                # Later steps of this sync read the list: let them see what we wrote.
                for i, item in enumerate(rss):
                    if _uid(item) == _uid(written):
                        rss[i] = written
                return written
            needs_update = self._set_deployment_revision(
                d, str(_annotations(rs).get(REVISION_ANNOTATION, "")))
            status = d.setdefault("status", {})
            if has_progress_deadline(d) and get_condition(status, PROGRESSING) is None:
                set_condition(status, new_condition(
                    PROGRESSING, "True", FOUND_NEW_RS, f'Found new replica set "{_name(rs)}"',
                    now))
                needs_update = True
            if needs_update:
                await self._write_status(d)
            return rs
        if not create:
            return None
        rs = new_replica_set(d, old_rss, new_revision)
        already_exists = False
        try:
            created = await self._client.create(REPLICASETS, rs, namespace=_namespace(d))
        except StatusError as e:
            if e.code == 409 and e.reason == "AlreadyExists":
                already_exists = True
                found = self.replicasets.get(f"{_namespace(d)}/{_name(rs)}")
                if found is None:
                    raise RequeueError(f"ReplicaSet {_name(rs)} exists but is not in the "
                                       "cache yet") from e
                if is_controlled_by(found, d) and equal_ignore_hash(
                        _map(_map(d, "spec"), "template"),
                        _map(_map(found, "spec"), "template")):
                    created = copy.deepcopy(found)
                else:
                    # A hash collision: bump collisionCount so the next hash differs.
                    status = d.setdefault("status", {})
                    before = _int(status, "collisionCount")
                    status["collisionCount"] = before + 1
                    try:
                        await self._write_status(d)
                        log.info("%s: %s: hash collision, collisionCount %d -> %d",
                                 COMPONENT, object_key(d), before, before + 1)
                    except StatusError:
                        pass
                    raise RequeueError(f"hash collision for ReplicaSet {_name(rs)}") from e
            elif is_namespace_terminating(e):
                raise
            else:
                msg = f'Failed to create new replica set "{_name(rs)}": {e}'
                if has_progress_deadline(d):
                    set_condition(d.setdefault("status", {}), new_condition(
                        PROGRESSING, "False", FAILED_RS_CREATE, msg, now))
                    # The creation failure is the bigger issue to report.
                    with contextlib.suppress(StatusError):
                        await self._write_status(d)
                await self.recorder.warning(d, FAILED_RS_CREATE, msg)
                raise
        if not already_exists and _replicas(created) > 0:
            await self.recorder.normal(d, "ScalingReplicaSet", f"Scaled up replica set "
                                       f"{_name(created)} to {_replicas(created)}")
        needs_update = self._set_deployment_revision(d, new_revision)
        if not already_exists and has_progress_deadline(d):
            set_condition(d.setdefault("status", {}), new_condition(
                PROGRESSING, "True", NEW_REPLICA_SET,
                f'Created new replica set "{_name(created)}"', now))
            needs_update = True
        if needs_update:
            await self._write_status(d)
        return created

    @staticmethod
    def _set_deployment_revision(d: Obj, value: str) -> bool:
        if _annotations(d).get(REVISION_ANNOTATION) == value:
            return False
        _set_annotation(d, REVISION_ANNOTATION, value)
        return True

    # -- status -----------------------------------------------------------------------------

    async def _sync_deployment_status(self, all_rss: Sequence[Obj | None], new_rs: Obj | None,
                                      d: Obj) -> None:
        status = calculate_status(all_rss, new_rs, d, self._clock.now())
        if semantically_equal(_map(d, "status"), status):
            return
        d["status"] = status
        await self._write_status(d)

    async def _sync_rollout_status(self, all_rss: Sequence[Obj | None], new_rs: Obj | None,
                                   d: Obj) -> None:
        now = self._clock.now()
        status = rollout_status(all_rss, new_rs, d, now)
        if semantically_equal(_map(d, "status"), status):
            self._requeue_stuck(d, status, now)
            return
        d["status"] = status
        await self._write_status(d)

    def _requeue_stuck(self, d: Obj, status: ObjMap, now: datetime) -> None:
        """requeueStuckDeployment: look again when the progress deadline would expire."""
        cond = get_condition(_map(d, "status"), PROGRESSING)
        if not has_progress_deadline(d) or cond is None:
            return
        if deployment_complete(d, status) or cond.get("reason") == TIMED_OUT:
            return
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return
        deadline = _int(_map(d, "spec"), "progressDeadlineSeconds")
        after = since.timestamp() + deadline - now.timestamp()
        if after < 1:
            self.queue.add_rate_limited(object_key(d))
        else:
            self.queue.add_after(object_key(d), after + 1)

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = get_condition(status, PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return  # a reported lack of progress is not overwritten by a pause
        paused_cond = cond is not None and cond.get("reason") == PAUSED
        paused = bool(_map(d, "spec").get("paused"))
        now = self._clock.now()
        if paused and not paused_cond:
            set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED,
                                                "Deployment is paused", now))
        elif not paused and paused_cond:
            set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED,
                                                "Deployment is resumed", now))
        else:
            return
        await self._write_status(d)

    # -- the sync flavours ------------------------------------------------------------------

    async def _sync_status_only(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, old_rss = await self._all_rss_and_sync_revision(d, rss, False)
        await self._sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def _sync(self, d: Obj, rss: list[Obj]) -> None:
        """Scaling events and paused Deployments: scale, clean up, sync status."""
        new_rs, old_rss = await self._all_rss_and_sync_revision(d, rss, False)
        new_rs, old_rss = await self._scale(d, new_rs, old_rss)
        if _map(d, "spec").get("paused") and _rollback_to(d) is None:
            await self._cleanup(old_rss, d)
        await self._sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def _scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]
                     ) -> tuple[Obj | None, list[Obj]]:
        ops = plan_proportional_scale(d, new_rs, old_rss)
        written: dict[str, Obj] = {}
        for rs, size in ops:
            if _replicas(rs) == size and not replicas_annotations_need_update(
                    rs, _replicas(d), _replicas(d) + max_surge(d)):
                continue
            operation = "up" if _replicas(rs) < size else "down"
            _, out = await self._scale_rs(rs, size, d, operation)
            written[_uid(rs)] = out
        if new_rs is not None:
            new_rs = written.get(_uid(new_rs), new_rs)
        return new_rs, [written.get(_uid(rs), rs) for rs in old_rss]

    async def _is_scaling_event(self, d: Obj, rss: list[Obj]) -> bool:
        new_rs, old_rss = await self._all_rss_and_sync_revision(d, rss, False)
        for rs in filter_active([*old_rss, new_rs]):
            try:
                desired = int(str(_annotations(rs).get(DESIRED_REPLICAS_ANNOTATION)))
            except ValueError:
                continue
            if desired != _replicas(d):
                return True
        return False

    async def _cleanup(self, old_rss: Sequence[Obj], d: Obj) -> None:
        """cleanupDeployment: delete old ReplicaSets beyond revisionHistoryLimit."""
        for rs in cleanable_replica_sets(old_rss, d):
            try:
                await self._client.delete(REPLICASETS, _namespace(rs), _name(rs),
                                          preconditions=Preconditions(uid=_uid(rs)))
            except StatusError as e:
                if e.code != 404:
                    raise

    async def _rollout_rolling(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, old_rss = await self._all_rss_and_sync_revision(d, rss, True)
        assert new_rs is not None
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        # Scale up, if we can.
        if _replicas(new_rs) != _replicas(d):
            if _replicas(new_rs) > _replicas(d):
                scaled, _ = await self._scale_rs_and_record(new_rs, _replicas(d), d)
            else:
                scaled, _ = await self._scale_rs_and_record(
                    new_rs, new_rs_new_replicas(d, all_rss, new_rs), d)
            if scaled:
                await self._sync_rollout_status(all_rss, new_rs, d)
                return
        # Scale down, if we can.
        ops = plan_old_scale_down(all_rss, filter_active(old_rss), new_rs, d)
        failure: Exception | None = None
        scaled_down = False
        for rs, size in ops:
            try:
                scaled, _ = await self._scale_rs_and_record(rs, size, d)
            except StatusError as e:
                failure = e  # upstream swallows this and syncs status; we also retry later
                break
            scaled_down = scaled_down or scaled
        if scaled_down or failure is not None:
            await self._sync_rollout_status(all_rss, new_rs, d)
            if failure is not None:
                raise RequeueError(f"scaling down old ReplicaSets: {failure}") from failure
            return
        if deployment_complete(d, _map(d, "status")):
            await self._cleanup(old_rss, d)
        await self._sync_rollout_status(all_rss, new_rs, d)

    async def _rollout_recreate(self, d: Obj, rss: list[Obj],
                                pod_map: Mapping[str, Sequence[Obj]]) -> None:
        # Do not create the new ReplicaSet yet: scale down before scaling up.
        new_rs, old_rss = await self._all_rss_and_sync_revision(d, rss, False)
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        scaled_down = False
        for i, rs in enumerate(old_rss):
            if _replicas(rs) == 0:
                continue
            scaled, written = await self._scale_rs_and_record(rs, 0, d)
            if scaled:
                old_rss[i] = written
                scaled_down = True
        if scaled_down:
            await self._sync_rollout_status([*old_rss, new_rs], new_rs, d)
            return
        if _old_pods_running(new_rs, old_rss, pod_map):
            await self._sync_rollout_status(all_rss, new_rs, d)
            return
        if new_rs is None:
            new_rs, old_rss = await self._all_rss_and_sync_revision(d, rss, True)
            all_rss = [*old_rss, new_rs]
        assert new_rs is not None
        await self._scale_rs_and_record(new_rs, _replicas(d), d)
        if deployment_complete(d, _map(d, "status")):
            await self._cleanup(old_rss, d)
        await self._sync_rollout_status(all_rss, new_rs, d)

    async def _rollback(self, d: Obj, rss: list[Obj]) -> None:
        """rollback: the deprecated ``rollbackTo`` (as an annotation) → that revision's
        template; 0 means the previous revision."""
        new_rs, old_rss = await self._all_rss_and_sync_revision(d, rss, True)
        all_rss = [rs for rs in [*old_rss, new_rs] if rs is not None]
        target = _rollback_to(d) or 0
        if target == 0:
            target = last_revision(all_rss)
            if target == 0:
                await self.recorder.warning(d, ROLLBACK_REVISION_NOT_FOUND,
                                            "Unable to find last revision.")
                await self._clear_rollback_to(d)
                return
        for rs in all_rss:
            if _revision_or_none(rs) != target:
                continue
            template = _map(_map(rs, "spec"), "template")
            if not equal_ignore_hash(_map(_map(d, "spec"), "template"), template):
                restored = copy.deepcopy(template)
                labels = _map(_meta(restored), "labels")
                labels.pop(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, None)
                d["spec"]["template"] = restored
                kept = {k: v for k, v in _annotations(d).items() if k in ANNOTATIONS_TO_SKIP}
                kept.update({k: v for k, v in _annotations(rs).items()
                             if k not in ANNOTATIONS_TO_SKIP})
                d["metadata"]["annotations"] = kept
                await self._clear_rollback_to(d)
                await self.recorder.normal(d, ROLLBACK_DONE, f'Rolled back deployment '
                                           f'"{_name(d)}" to revision {target}')
            else:
                await self.recorder.warning(
                    d, ROLLBACK_TEMPLATE_UNCHANGED, "The rollback revision contains the same "
                    f'template as current deployment "{_name(d)}"')
                await self._clear_rollback_to(d)
            return
        await self.recorder.warning(d, ROLLBACK_REVISION_NOT_FOUND,
                                    "Unable to find the revision to rollback to.")
        await self._clear_rollback_to(d)

    async def _clear_rollback_to(self, d: Obj) -> None:
        annotations = _map(_meta(d), "annotations")
        annotations.pop(ROLLBACK_TO_ANNOTATION, None)
        await self._update_deployment(d)


def _old_pods_running(new_rs: Obj | None, old_rss: Sequence[Obj],
                      pod_map: Mapping[str, Sequence[Obj]]) -> bool:
    """oldPodsRunning: an old ReplicaSet still reports pods, or one of its pods is not in a
    terminal phase."""
    if actual_replica_count(old_rss) > 0:
        return True
    for uid, pods in pod_map.items():
        if new_rs is not None and uid == _uid(new_rs):
            continue
        for pod in pods:
            if _map(pod, "status").get("phase") not in ("Succeeded", "Failed"):
                return True
    return False
