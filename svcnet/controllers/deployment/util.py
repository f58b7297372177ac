"""Deployment utilities, as ``pkg/controller/deployment/util/deployment_util.go``: the template
hash, maxSurge/maxUnavailable, and the bookkeeping of a Deployment's ReplicaSets.

Why this module is long: Mirrors util/deployment_util.go one to one.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import (
    annotations_of as _annotations,
    int_of as _int,
    map_of as _map,
    meta_of as _meta,
    name_of as _name,
    namespace_of as _namespace,
    uid_of as _uid,
)
from svcnet.api.workloads import (
    DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY,
    RECREATE,
    ROLLING_UPDATE,
    normalize,
    semantically_equal,
)
from svcnet.controllers.ownership import (
    DEPLOYMENTS,
    new_controller_ref,
    spec_replicas as _replicas,
)

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
