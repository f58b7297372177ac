"""The Deployment controller: rolls a Deployment's pod template out through ReplicaSets.

Theory of operation (after ``pkg/controller/deployment/``: ``deployment_controller.go``,
``sync.go``, ``rolling.go``, ``recreate.go``, ``progress.go``, ``rollback.go`` and
``util/deployment_util.go``)
-------------------------------------------------------------------------------------------
A Deployment owns ReplicaSets, one per pod template it has had. The **new** ReplicaSet is the
one whose template equals the Deployment's, ignoring the ``pod-template-hash`` label
(:func:`equal_ignore_hash`); every other owned ReplicaSet is **old**. A new ReplicaSet is named
``<deployment>-<hash>`` where the hash is :func:`compute_hash` of the template (FNV-32a, plus
``status.collisionCount`` when a name collision forced a bump), rendered with Kubernetes' safe
alphabet; the hash is also added to the ReplicaSet's labels, selector and template labels, so
its pods carry it and the ReplicaSets of one Deployment never select each other's pods.

Each ReplicaSet carries annotations: ``deployment.kubernetes.io/revision`` (1 + the highest
revision among the old ones when it becomes the new one again; a re-used ReplicaSet records its
previous revisions in ``revision-history``), ``desired-replicas`` and ``max-replicas`` (the
Deployment's replicas and replicas + maxSurge when it was last scaled: how a later scaling
event is recognised and shared out). The Deployment gets the revision annotation too.

Three informers feed a queue of Deployment keys: Deployment events; ReplicaSet events mapped
to their controller (orphans to every Deployment whose selector matches them); and, for
Recreate Deployments, the deletion of their last pod (the signal to start the new pods).

:meth:`DeploymentController.sync` follows ``syncDeployment``:

1. the Deployment from the cache (gone → nothing); an empty selector selects everything and is
   refused with a ``SelectingAll`` warning;
2. claim ReplicaSets (adopt matching orphans, release those that stopped matching, as the
   ReplicaSet controller claims pods) and map pods to them;
3. being deleted → only the status is synced; then the ``Progressing`` condition records a
   pause or resume; paused → only scaling (and history cleanup); a ``deprecated.deployment.
   rollback.to`` annotation → roll back to that revision (today ``kubectl rollout undo`` does
   the same client-side by patching the template back from an old ReplicaSet, which this
   controller then sees as an ordinary template change to an existing ReplicaSet); a
   **scaling event** (an active ReplicaSet's ``desired-replicas`` differs from
   ``spec.replicas``) → scaling only;
4. otherwise roll out with the strategy:

   * **RollingUpdate** (:func:`new_rs_new_replicas`, :func:`plan_old_scale_down`): scale the new
     ReplicaSet up as far as ``replicas + maxSurge`` total pods allow; if nothing was scaled
     up, scale old ReplicaSets down, first their unavailable pods, then as far as keeping
     ``replicas - maxUnavailable`` available allows, counting the new ReplicaSet's unavailable
     pods against the budget. maxSurge rounds up and maxUnavailable down
     (:func:`resolve_fenceposts`; if both round to 0, maxUnavailable is 1). Availability is the
     ReplicaSets' ``status.availableReplicas``, so the rollout advances as the ReplicaSet
     controller reports pods Ready for ``minReadySeconds``;
   * **Recreate**: scale every old ReplicaSet to 0, wait until none of their pods is running
     (not Succeeded/Failed), then create the new ReplicaSet at full size;

   and, once complete, delete the oldest old ReplicaSets with no pods beyond
   ``revisionHistoryLimit``;
5. write the status (:func:`calculate_status`, :func:`rollout_status`): observedGeneration,
   replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas, and the
   conditions ``Available`` (``MinimumReplicasAvailable``/``MinimumReplicasUnavailable``) and
   ``Progressing`` (``NewReplicaSetCreated``, ``FoundNewReplicaSet``, ``ReplicaSetUpdated``,
   ``NewReplicaSetAvailable``, ``ProgressDeadlineExceeded``, ``DeploymentPaused``/
   ``DeploymentResumed``). A rollout that stops progressing is looked at again when its
   ``progressDeadlineSeconds`` would expire.

Scaling (:func:`plan_proportional_scale`, ``DeploymentController.scale``): a single active
ReplicaSet (or none: the newest) is simply set to ``spec.replicas``; a saturated new one means
the old ones go to 0; during a rollout the difference to ``replicas + maxSurge`` is shared out
in proportion to each ReplicaSet's size (newer first when growing, older first when
shrinking), leftovers going to the largest.

Writes are upstream's: ReplicaSet updates are conditional on the cached resourceVersion (a 409
means the cache was stale: retry later); new ReplicaSets have deterministic names, so a
duplicate creation is an AlreadyExists that resolves to the existing one (or, if its template
differs, a hash collision that bumps ``status.collisionCount``). Status writes go through
``/status`` carrying the Deployment's annotations (the revision), which the status endpoint
accepts. Unlike upstream, the Deployment's resourceVersion is refreshed after each of its own
writes in a sync, so a second status write in the same sync does not conflict with the first.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from svcnet.api.access import (
    annotations_of as _annotations,
    int_of as _int,
    list_of as _list,
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
    normalize,
    semantically_equal,
)
from svcnet.client.controller import Controller, InformerController, RequeueError
from svcnet.client.events import EventRecorder
from svcnet.client.informer import (
    NAMESPACE_INDEX,
    EventHandler,
    Informer,
    object_key,
)
from svcnet.client.rest import PODS, Preconditions
from svcnet.controllers.ownership import (
    DEPLOYMENTS,
    REPLICASETS,
    APIClient,
    WorkloadClient,
    claim,
    controller_ref,
    is_controlled_by,
    label_selector,
    new_controller_ref,
    parse_time,
    recheck_deletion,
    spec_replicas as _replicas,
)
from svcnet.util.clock import Clock, RealClock, rfc3339

__all__ = [
    "COMPONENT",
    "DESIRED_REPLICAS_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "DeploymentController",
    "calculate_status",
    "compute_hash",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "equal_ignore_hash",
    "find_new_replica_set",
    "find_old_replica_sets",
    "fnv32a",
    "get_proportion",
    "last_revision",
    "max_revision",
    "max_surge",
    "max_unavailable",
    "new_replica_set",
    "new_rs_new_replicas",
    "plan_old_scale_down",
    "plan_proportional_scale",
    "resolve_fenceposts",
    "rollout_status",
    "safe_encode_string",
    "scaled_value_from_int_or_percent",
    "set_new_replica_set_annotations",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "deployment-controller"
DEFAULT_RESYNC: Final = 300.0
MAX_INT32: Final = 2**31 - 1

REVISION_ANNOTATION: Final = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION: Final = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION: Final = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION: Final = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO_ANNOTATION: Final = "deprecated.deployment.rollback.to"
LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
ANNOTATIONS_TO_SKIP: Final = frozenset({
    LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, ROLLBACK_TO_ANNOTATION})
"""Deployment annotations that are not copied to its ReplicaSets (nor back on rollback)."""
MAX_REV_HISTORY_LENGTH_IN_CHARS: Final = 2000

# Condition types and reasons (util/deployment_util.go).
AVAILABLE: Final = "Available"
PROGRESSING: Final = "Progressing"
REPLICA_FAILURE: Final = "ReplicaFailure"
REPLICA_SET_UPDATED: Final = "ReplicaSetUpdated"
FAILED_RS_CREATE: Final = "ReplicaSetCreateError"
NEW_REPLICA_SET: Final = "NewReplicaSetCreated"
FOUND_NEW_RS: Final = "FoundNewReplicaSet"
NEW_RS_AVAILABLE: Final = "NewReplicaSetAvailable"
TIMED_OUT: Final = "ProgressDeadlineExceeded"
PAUSED: Final = "DeploymentPaused"
RESUMED: Final = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE: Final = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE: Final = "MinimumReplicasUnavailable"
ROLLBACK_REVISION_NOT_FOUND: Final = "DeploymentRollbackRevisionNotFound"
ROLLBACK_TEMPLATE_UNCHANGED: Final = "DeploymentRollbackTemplateUnchanged"
ROLLBACK_DONE: Final = "DeploymentRollback"


# =============================================================================================
# small accessors


def _set_annotation(obj: Obj, key: str, value: str) -> None:
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[key] = value


def _strategy(d: ObjMap) -> dict[str, Any]:
    return _map(_map(d, "spec"), "strategy")


def _status_int(obj: ObjMap | None, key: str) -> int:
    return _int(_map(obj, "status"), key)


# =============================================================================================
# the template hash (controller.ComputeHash)

SAFE_ALPHANUMS: Final = "bcdfghjklmnpqrstvwxz2456789"
"""k8s.io/apimachinery/pkg/util/rand's alphabet: no vowels, no confusable characters."""
_FNV32_OFFSET: Final = 0x811C9DC5
_FNV32_PRIME: Final = 0x01000193


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bits (Go's hash/fnv New32a)."""
    h = _FNV32_OFFSET
    for byte in data:
        h ^= byte
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(s: str) -> str:
    """rand.SafeEncodeString: each character mapped into the safe alphabet by its code."""
    return "".join(SAFE_ALPHANUMS[ord(c) % len(SAFE_ALPHANUMS)] for c in s)


def _canonical_json(value: Any) -> bytes:
    return json.dumps(normalize(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def compute_hash(template: ObjMap, collision_count: int | None = None) -> str:
    """ComputeHash: FNV-32a of the template, then of ``collisionCount`` (when set) as eight
    little-endian bytes, printed in decimal and safe-encoded.

    Upstream hashes Go's ``%#v``-style dump of the struct; we hash a canonical JSON encoding
    (sorted keys, zero values dropped) instead, so the value is stable for equal templates
    and changes with any change, but is not byte-identical to a Go cluster's hash.
    """
    h = _FNV32_OFFSET
    data = _canonical_json(template)
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\x00" * 4
    for byte in data:
        h ^= byte
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return safe_encode_string(str(h))


def equal_ignore_hash(t1: ObjMap, t2: ObjMap) -> bool:
    """EqualIgnoreHash: two pod templates equal but for their ``pod-template-hash`` label."""
    def strip(t: ObjMap) -> Obj:
        out = copy.deepcopy(dict(t))
        labels = _map(_meta(out), "labels")
        labels.pop(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, None)
        return out
    return semantically_equal(strip(t1), strip(t2))


# =============================================================================================
# maxSurge / maxUnavailable


def scaled_value_from_int_or_percent(value: object, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, ``"N%"`` of ``total`` rounded up
    or down. Raises ValueError for anything else (validation forbids it)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError:
            raise ValueError(f"invalid value {value!r}") from None
        scaled = pct * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    raise ValueError(f"invalid type: {value!r} is neither int nor percentage")


def resolve_fenceposts(max_surge_value: object, max_unavailable_value: object,
                       desired: int) -> tuple[int, int]:
    """ResolveFenceposts: (surge, unavailable) for ``desired`` replicas; an absent value is 0.
    Surge rounds up, unavailable down; if both come out 0, unavailable is 1 (validation only
    forbids both being 0 as written, and rounding down may still produce it)."""
    surge = scaled_value_from_int_or_percent(
        0 if max_surge_value is None else max_surge_value, desired, True)
    unavailable = scaled_value_from_int_or_percent(
        0 if max_unavailable_value is None else max_unavailable_value, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling_update(d: ObjMap) -> bool:
    return _strategy(d).get("type") == ROLLING_UPDATE


def _fenceposts(d: ObjMap) -> tuple[int, int]:
    rolling = _map(_strategy(d), "rollingUpdate")
    return resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"),
                              _replicas(d))


def max_surge(d: ObjMap) -> int:
    """MaxSurge: 0 unless RollingUpdate."""
    if not is_rolling_update(d):
        return 0
    return _fenceposts(d)[0]


def max_unavailable(d: ObjMap) -> int:
    """MaxUnavailable: 0 unless RollingUpdate with replicas; never more than replicas."""
    if not is_rolling_update(d) or _replicas(d) == 0:
        return 0
    return min(_fenceposts(d)[1], _replicas(d))


# =============================================================================================
# ReplicaSet bookkeeping


def _creation_key(rs: ObjMap) -> tuple[str, str]:
    # RFC 3339 at second precision sorts chronologically as text; ties by name.
    return (str(_meta(rs).get("creationTimestamp") or ""), _name(rs))


def sort_by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """ReplicaSetsByCreationTimestamp."""
    return sorted(rss, key=_creation_key)


def revision(rs: ObjMap) -> int:
    """The revision annotation (0 if absent); ValueError if it is not a number."""
    value = _annotations(rs).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    return int(str(value))


def _revision_or_none(rs: ObjMap) -> int | None:
    try:
        return revision(rs)
    except ValueError:
        return None


def max_revision(rss: Iterable[ObjMap]) -> int:
    return max((v for rs in rss if (v := _revision_or_none(rs)) is not None), default=0)


def last_revision(rss: Iterable[ObjMap]) -> int:
    """LastRevision: the second highest revision."""
    first = second = 0
    for rs in rss:
        v = _revision_or_none(rs)
        if v is None:
            continue
        if v >= first:
            first, second = v, first
        elif v > second:
            second = v
    return second


def sort_by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """ReplicaSetsByRevision: by revision, ties (or unparseable) by creation."""
    def cmp(a: Obj, b: Obj) -> int:
        ra, rb = _revision_or_none(a), _revision_or_none(b)
        if ra is None or rb is None or ra == rb:
            ka, kb = _creation_key(a), _creation_key(b)
            return -1 if ka < kb else 1 if ka > kb else 0
        return -1 if ra < rb else 1
    return sorted(rss, key=functools.cmp_to_key(cmp))


def find_new_replica_set(d: ObjMap, rss: Iterable[Obj]) -> Obj | None:
    """FindNewReplicaSet: the oldest ReplicaSet whose template is the Deployment's."""
    template = _map(_map(d, "spec"), "template")
    for rs in sort_by_creation(rss):
        if equal_ignore_hash(_map(_map(rs, "spec"), "template"), template):
            return rs
    return None


def find_old_replica_sets(d: ObjMap, rss: Sequence[Obj]) -> tuple[list[Obj], list[Obj]]:
    """FindOldReplicaSets: (old ones with replicas, all old ones)."""
    new = find_new_replica_set(d, rss)
    all_old = [rs for rs in rss if new is None or _uid(rs) != _uid(new)]
    return [rs for rs in all_old if _replicas(rs) != 0], all_old


def filter_active(rss: Iterable[Obj | None]) -> list[Obj]:
    """FilterActiveReplicaSets: those with replicas."""
    return [rs for rs in rss if rs is not None and _replicas(rs) > 0]


def replica_count(rss: Iterable[ObjMap | None]) -> int:
    return sum(_replicas(rs) for rs in rss if rs is not None)


def actual_replica_count(rss: Iterable[ObjMap | None]) -> int:
    return sum(_status_int(rs, "replicas") for rs in rss if rs is not None)


def ready_replica_count(rss: Iterable[ObjMap | None]) -> int:
    return sum(_status_int(rs, "readyReplicas") for rs in rss if rs is not None)


def available_replica_count(rss: Iterable[ObjMap | None]) -> int:
    return sum(_status_int(rs, "availableReplicas") for rs in rss if rs is not None)


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    changed = False
    for key, value in ((DESIRED_REPLICAS_ANNOTATION, str(desired)),
                       (MAX_REPLICAS_ANNOTATION, str(maximum))):
        if _annotations(rs).get(key) != value:
            _set_annotation(rs, key, value)
            changed = True
    return changed


def replicas_annotations_need_update(rs: ObjMap, desired: int, maximum: int) -> bool:
    annotations = _annotations(rs)
    return (annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired)
            or annotations.get(MAX_REPLICAS_ANNOTATION) != str(maximum))


def set_new_replica_set_annotations(d: ObjMap, rs: Obj, new_revision: str, exists: bool,
                                    limit_in_chars: int = MAX_REV_HISTORY_LENGTH_IN_CHARS
                                    ) -> bool:
    """SetNewReplicaSetAnnotations: copy the Deployment's annotations (but the skipped ones),
    raise the revision to ``new_revision`` if lower (remembering the old one in the revision
    history: a rollback), and on creation record desired/max replicas. Mutates ``rs``."""
    changed = False
    for key, value in _annotations(d).items():
        if key in ANNOTATIONS_TO_SKIP or _annotations(rs).get(key) == value:
            continue
        _set_annotation(rs, key, value)
        changed = True
    old_text = _annotations(rs).get(REVISION_ANNOTATION)
    try:
        old_rev = int(str(old_text)) if old_text is not None and old_text != "" else 0
        new_rev = int(new_revision)
    except ValueError:
        return False
    if old_rev < new_rev:
        _set_annotation(rs, REVISION_ANNOTATION, new_revision)
        changed = True
        if old_text is not None:
            history = str(_annotations(rs).get(REVISION_HISTORY_ANNOTATION) or "")
            if not history:
                _set_annotation(rs, REVISION_HISTORY_ANNOTATION, str(old_text))
            else:
                entries = history.split(",")
                total = len(history) + len(str(old_text)) + 1
                start = 0
                while total > limit_in_chars and start < len(entries):
                    total -= len(entries[start]) + 1
                    start += 1
                if total <= limit_in_chars:
                    _set_annotation(rs, REVISION_HISTORY_ANNOTATION,
                                    ",".join([*entries[start:], str(old_text)]))
    if not exists and set_replicas_annotations(rs, _replicas(d), _replicas(d) + max_surge(d)):
        changed = True
    return changed


def new_rs_new_replicas(d: ObjMap, all_rss: Iterable[ObjMap | None], new_rs: ObjMap) -> int:
    """NewRSNewReplicas: the size the new ReplicaSet may grow to now.

    RollingUpdate: up to ``replicas + maxSurge`` pods in all, never beyond ``replicas``.
    Recreate: ``replicas`` at once (old ones are already gone).
    """
    stype = _strategy(d).get("type")
    if stype == ROLLING_UPDATE:
        surge = scaled_value_from_int_or_percent(
            _map(_strategy(d), "rollingUpdate").get("maxSurge", 0), _replicas(d), True)
        current = replica_count(all_rss)
        max_total = _replicas(d) + surge
        if current >= max_total:
            return _replicas(new_rs)
        scale_up = min(max_total - current, _replicas(d) - _replicas(new_rs))
        return _replicas(new_rs) + scale_up
    if stype == RECREATE:
        return _replicas(d)
    raise ValueError(f"deployment type {stype} isn't supported")


def is_saturated(d: ObjMap, rs: ObjMap | None) -> bool:
    """IsSaturated: the new ReplicaSet has all the replicas, believes so, and they are all
    available."""
    if rs is None:
        return False
    try:
        desired = int(str(_annotations(rs).get(DESIRED_REPLICAS_ANNOTATION)))
    except ValueError:
        return False
    want = _replicas(d)
    return _replicas(rs) == want and desired == want and _status_int(
        rs, "availableReplicas") == want


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """FindActiveOrLatest: the only active ReplicaSet, or the newest if none is active; None
    if several are active (they must be scaled proportionally)."""
    if new_rs is None and not old_rss:
        return None
    old_sorted = sorted(old_rss, key=_creation_key, reverse=True)
    active = filter_active([*old_sorted, new_rs])
    if not active:
        return new_rs if new_rs is not None else old_sorted[0]
    if len(active) == 1:
        return active[0]
    return None


def _round_half_away(x: float) -> int:
    """Go's math.Round (integer.RoundToInt32): halves away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _max_replicas_annotation(rs: ObjMap) -> int | None:
    try:
        return int(str(_annotations(rs).get(MAX_REPLICAS_ANNOTATION)))
    except ValueError:
        return None


def get_proportion(rs: ObjMap | None, d: ObjMap, to_add: int, added: int) -> int:
    """GetProportion: this ReplicaSet's share of ``to_add`` (capped by what is left)."""
    if rs is None or _replicas(rs) == 0 or to_add in (0, added):
        return 0
    fraction = _replica_set_fraction(rs, d)
    allowed = to_add - added
    if to_add > 0:
        return min(fraction, allowed)
    return max(fraction, allowed)


def _replica_set_fraction(rs: ObjMap, d: ObjMap) -> int:
    if _replicas(d) == 0:
        return -_replicas(rs)
    deployment_replicas = _replicas(d) + max_surge(d)
    annotated = _max_replicas_annotation(rs)
    if annotated is None:
        annotated = _status_int(d, "replicas")
    if annotated == 0:
        return 0
    new_size = _replicas(rs) * deployment_replicas / annotated
    return _round_half_away(new_size) - _replicas(rs)


def _by_size(newer_first: bool) -> Any:
    """ReplicaSetsBySizeNewer / ReplicaSetsBySizeOlder: larger first; equal sizes newer (or
    older) first."""
    def cmp(a: Obj, b: Obj) -> int:
        if _replicas(a) != _replicas(b):
            return -1 if _replicas(a) > _replicas(b) else 1
        ka, kb = _creation_key(a), _creation_key(b)
        if newer_first:
            ka, kb = kb, ka
        return -1 if ka < kb else 1 if ka > kb else 0
    return functools.cmp_to_key(cmp)


def plan_proportional_scale(d: ObjMap, new_rs: Obj | None, old_rss: Sequence[Obj]
                            ) -> list[tuple[Obj, int]]:
    """The scaling ``scale`` performs, as (ReplicaSet, new size) in write order. Pure.

    (The ``FindActiveOrLatest`` and saturation cases come first, as upstream.)
    """
    active_or_latest = find_active_or_latest(new_rs, old_rss)
    if active_or_latest is not None:
        if _replicas(active_or_latest) == _replicas(d):
            return []
        return [(active_or_latest, _replicas(d))]
    if is_saturated(d, new_rs):
        return [(rs, 0) for rs in filter_active(old_rss)]
    if not is_rolling_update(d):
        return []
    all_rss = filter_active([*old_rss, new_rs])
    allowed = _replicas(d) + max_surge(d) if _replicas(d) > 0 else 0
    to_add = allowed - replica_count(all_rss)
    if to_add > 0:
        all_rss.sort(key=_by_size(newer_first=True))
    elif to_add < 0:
        all_rss.sort(key=_by_size(newer_first=False))
    added = 0
    sizes: list[int] = []
    for rs in all_rss:
        if to_add != 0:
            proportion = get_proportion(rs, d, to_add, added)
            sizes.append(_replicas(rs) + proportion)
            added += proportion
        else:
            sizes.append(_replicas(rs))
    if all_rss and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)  # leftovers to the largest
    return list(zip(all_rss, sizes, strict=True))


def plan_old_scale_down(all_rss: Sequence[Obj | None], old_rss: Sequence[Obj],
                        new_rs: Obj, d: ObjMap) -> list[tuple[Obj, int]]:
    """reconcileOldReplicaSets: the scale-downs of active old ReplicaSets a rolling update may
    make now, as (ReplicaSet, new size) in write order. Pure.

    ``maxScaledDown = allPods - minAvailable - newRSUnavailable``: first unhealthy old replicas
    (oldest ReplicaSets first) up to that; then, counting available pods, old replicas beyond
    ``replicas - maxUnavailable``.
    """
    old_pods = replica_count(old_rss)
    if old_pods == 0:
        return []
    all_pods = replica_count(all_rss)
    min_avail = _replicas(d) - max_unavailable(d)
    new_unavailable = _replicas(new_rs) - _status_int(new_rs, "availableReplicas")
    max_scaled_down = all_pods - min_avail - new_unavailable
    if max_scaled_down <= 0:
        return []
    ops: list[tuple[Obj, int]] = []
    sizes = {_uid(rs): _replicas(rs) for rs in old_rss}
    ordered = sort_by_creation(old_rss)
    # cleanupUnhealthyReplicas
    cleaned = 0
    for rs in ordered:
        if cleaned >= max_scaled_down:
            break
        size = sizes[_uid(rs)]
        available = _status_int(rs, "availableReplicas")
        if size in (0, available):
            continue
        down = min(max_scaled_down - cleaned, size - available)
        if down < 0:
            # More available than asked for (a stale status): upstream refuses to "scale
            # down" upwards and gives up on this round.
            return ops
        sizes[_uid(rs)] = size - down
        ops.append((rs, size - down))
        cleaned += down
    # scaleDownOldReplicaSetsForRollingUpdate (availability is unchanged by the cleanup:
    # only unavailable replicas went)
    available_pods = available_replica_count([*old_rss, new_rs])
    if available_pods > min_avail:
        budget = available_pods - min_avail
        scaled = 0
        for rs in ordered:
            if scaled >= budget:
                break
            size = sizes[_uid(rs)]
            if size == 0:
                continue
            down = min(size, budget - scaled)
            sizes[_uid(rs)] = size - down
            ops.append((rs, size - down))
            scaled += down
    return ops


def cleanable_replica_sets(old_rss: Sequence[Obj], d: ObjMap) -> list[Obj]:
    """cleanupDeployment: the old ReplicaSets to delete beyond ``revisionHistoryLimit`` (the
    lowest revisions first, only those with no replicas, fully observed, not terminating)."""
    limit = _map(d, "spec").get("revisionHistoryLimit")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit == MAX_INT32:
        return []
    alive = [rs for rs in old_rss if not _meta(rs).get("deletionTimestamp")]
    diff = len(alive) - limit
    if diff <= 0:
        return []
    out = []
    for rs in sort_by_revision(alive)[:diff]:
        if _status_int(rs, "replicas") != 0 or _replicas(rs) != 0 or _int(
                _meta(rs), "generation") > _status_int(rs, "observedGeneration"):
            continue
        out.append(rs)
    return out


def new_replica_set(d: ObjMap, old_rss: Sequence[Obj], new_revision: str) -> Obj:
    """The ReplicaSet ``getNewReplicaSet`` creates: named ``<deployment>-<hash>``, the hash in
    its labels, selector and template labels, owned by the Deployment, sized by
    :func:`new_rs_new_replicas`, annotated. Pure."""
    spec = _map(d, "spec")
    template = copy.deepcopy(_map(spec, "template"))
    collision = _map(d, "status").get("collisionCount")
    pod_hash = compute_hash(template, collision if isinstance(collision, int) else None)
    tmeta = template.setdefault("metadata", {})
    labels = dict(_map(tmeta, "labels"))
    labels[DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY] = pod_hash
    tmeta["labels"] = labels
    selector = copy.deepcopy(_map(spec, "selector"))
    match_labels = dict(_map(selector, "matchLabels"))
    match_labels[DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY] = pod_hash
    selector["matchLabels"] = match_labels
    rs_spec: Obj = {"replicas": 0, "selector": selector, "template": template}
    if _int(spec, "minReadySeconds"):
        rs_spec["minReadySeconds"] = _int(spec, "minReadySeconds")
    rs: Obj = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{_name(d)}-{pod_hash}", "namespace": _namespace(d),
                     "labels": dict(labels),
                     "ownerReferences": [new_controller_ref(d, DEPLOYMENTS)]},
        "spec": rs_spec,
    }
    rs_spec["replicas"] = new_rs_new_replicas(d, [*old_rss, rs], rs)
    set_new_replica_set_annotations(d, rs, new_revision, False)
    return rs


# =============================================================================================
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
# the controller


class DeploymentController(InformerController):
    """Runs Deployments (see the module doc).

    Informers are passed in (tests use never-started ones; a process may share them);
    :meth:`from_client` builds the usual three.
    """

    def __init__(self, client: WorkloadClient, *, deployments: Informer,
                 replicasets: Informer, pods: Informer, clock: Clock | None = None,
                 workers: int = 1, recorder: EventRecorder | None = None) -> None:
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
        deployments.add_handler(self.deployment_handler)
        replicasets.add_handler(self.rs_handler)
        pods.add_handler(self.pod_handler)

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC, workers: int = 1
                    ) -> DeploymentController:
        deployments = Informer(client, DEPLOYMENTS, resync_period=resync_period, clock=clock,
                               name="deployments")
        replicasets = Informer(client, REPLICASETS, clock=clock, name="replicasets")
        pods = Informer(client, PODS, clock=clock, name="pods")
        return cls(client, deployments=deployments, replicasets=replicasets, pods=pods,
                   clock=clock, workers=workers)


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

