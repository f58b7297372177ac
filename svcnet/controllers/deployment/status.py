"""A Deployment's status and conditions, as ``sync.go``'s calculateStatus and ``progress.go``."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from svcnet.api.access import (
    annotations_of as _annotations,
    int_of as _int,
    list_of as _list,
    map_of as _map,
    meta_of as _meta,
    name_of as _name,
    uid_of as _uid,
)
from svcnet.controllers.deployment.util import (
    AVAILABLE,
    MAX_INT32,
    MINIMUM_REPLICAS_AVAILABLE,
    MINIMUM_REPLICAS_UNAVAILABLE,
    NEW_RS_AVAILABLE,
    PROGRESSING,
    REPLICA_FAILURE,
    REPLICA_SET_UPDATED,
    ROLLBACK_TO_ANNOTATION,
    TIMED_OUT,
    actual_replica_count,
    available_replica_count,
    max_unavailable,
    ready_replica_count,
    replica_count,
)
from svcnet.controllers.ownership import (
    parse_time,
    spec_replicas as _replicas,
)
from svcnet.util.clock import rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]


# status and conditions


def new_condition(ctype: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    ts = rfc3339(now)
    return {"type": ctype, "status": status, "lastUpdateTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def get_condition(status: ObjMap, ctype: str) -> dict[str, Any] | None:
    for c in _list(status, "conditions"):
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def set_condition(status: Obj, condition: Obj) -> None:
    """SetDeploymentCondition: no change if the same status and reason are there already;
    keep lastTransitionTime if only the reason changes. Mutates ``status``."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] and current.get(
            "reason") == condition["reason"]:
        return
    condition = dict(condition)
    if current is not None and current.get("status") == condition["status"]:
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: Obj, ctype: str) -> None:
    kept = [c for c in _list(status, "conditions") if not (isinstance(c, dict)
                                                           and c.get("type") == ctype)]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: ObjMap) -> bool:
    value = _map(d, "spec").get("progressDeadlineSeconds")
    return isinstance(value, int) and not isinstance(value, bool) and value != MAX_INT32


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, d: ObjMap,
                     now: datetime) -> Obj:
    """calculateStatus: the counts from the ReplicaSets and the Available condition. Pure.

    Zero counts are left out (Go's omitempty); ``collisionCount`` is carried over.
    """
    available = available_replica_count(all_rss)
    unavailable = max(0, replica_count(all_rss) - available)
    status: Obj = {}
    for key, value in (("observedGeneration", _int(_meta(d), "generation")),
                       ("replicas", actual_replica_count(all_rss)),
                       ("updatedReplicas", actual_replica_count([new_rs])),
                       ("readyReplicas", ready_replica_count(all_rss)),
                       ("availableReplicas", available),
                       ("unavailableReplicas", unavailable)):
        if value:
            status[key] = value
    conditions = [copy.deepcopy(c) for c in _list(_map(d, "status"), "conditions")]
    if conditions:
        status["conditions"] = conditions
    if available >= _replicas(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            now))
    collision = _map(d, "status").get("collisionCount")
    if isinstance(collision, int):
        status["collisionCount"] = collision
    return status


def deployment_complete(d: ObjMap, status: ObjMap) -> bool:
    """DeploymentComplete: every replica updated and available, nothing old left, observed."""
    want = _replicas(d)
    return (_int(status, "updatedReplicas") == want and _int(status, "replicas") == want
            and _int(status, "availableReplicas") == want
            and _int(status, "observedGeneration") >= _int(_meta(d), "generation"))


def deployment_progressing(d: ObjMap, status: ObjMap) -> bool:
    """DeploymentProgressing: more updated, fewer old, more ready or more available pods."""
    old = _map(d, "status")
    old_old = _int(old, "replicas") - _int(old, "updatedReplicas")
    new_old = _int(status, "replicas") - _int(status, "updatedReplicas")
    return (_int(status, "updatedReplicas") > _int(old, "updatedReplicas")
            or new_old < old_old
            or _int(status, "readyReplicas") > _int(old, "readyReplicas")
            or _int(status, "availableReplicas") > _int(old, "availableReplicas"))


def deployment_timed_out(d: ObjMap, status: ObjMap, now: datetime) -> bool:
    """DeploymentTimedOut: no progress for ``progressDeadlineSeconds`` since the Progressing
    condition was last updated."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    deadline = _int(_map(d, "spec"), "progressDeadlineSeconds")
    return since.timestamp() + deadline < now.timestamp()


def rollout_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, d: ObjMap,
                   now: datetime) -> Obj:
    """The status syncRolloutStatus writes: :func:`calculate_status` plus the Progressing
    condition (complete / progressing / timed out) and any ReplicaFailure. Pure."""
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(_map(d, "status"), PROGRESSING)
    complete_before = (_int(status, "replicas") == _int(status, "updatedReplicas")
                       and current is not None and current.get("reason") == NEW_RS_AVAILABLE)
    if has_progress_deadline(d) and not complete_before:
        rs_name = _name(new_rs) if new_rs is not None else ""
        if deployment_complete(d, status):
            msg = (f'ReplicaSet "{rs_name}" has successfully progressed.' if new_rs is not None
                   else f'Deployment "{_name(d)}" has successfully progressed.')
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now))
        elif deployment_progressing(d, status):
            msg = (f'ReplicaSet "{rs_name}" is progressing.' if new_rs is not None
                   else f'Deployment "{_name(d)}" is progressing.')
            cond = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, msg, now)
            # Progress with the same reason still refreshes lastUpdateTime: that is what the
            # deadline is measured from.
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            msg = (f'ReplicaSet "{rs_name}" has timed out progressing.' if new_rs is not None
                   else f'Deployment "{_name(d)}" has timed out progressing.')
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now))
    failures = _replica_failures(all_rss, new_rs)
    if failures:
        set_condition(status, failures[0])
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def _replica_failures(all_rss: Sequence[Obj | None], new_rs: Obj | None) -> list[Obj]:
    """getReplicaFailures: the new ReplicaSet's ReplicaFailure condition, else an old one's."""
    candidates: list[Obj] = [new_rs] if new_rs is not None else []
    candidates.extend(rs for rs in all_rss if rs is not None and (
        new_rs is None or _uid(rs) != _uid(new_rs)))
    for rs in candidates:
        for c in _list(_map(rs, "status"), "conditions"):
            if isinstance(c, dict) and c.get("type") == REPLICA_FAILURE:
                ts = c.get("lastTransitionTime")
                return [{"type": REPLICA_FAILURE, "status": c.get("status"),
                         "lastUpdateTime": ts, "lastTransitionTime": ts,
                         "reason": c.get("reason"), "message": c.get("message")}]
    return []


def _rollback_to(d: ObjMap) -> int | None:
    value = _annotations(d).get(ROLLBACK_TO_ANNOTATION)
    if not value:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


# =============================================================================================
