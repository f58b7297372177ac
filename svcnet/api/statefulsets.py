"""apps/v1 StatefulSets: defaulting, the registry's preparation steps, and validation.

Theory of operation. Mirrors ``pkg/apis/apps/v1/defaults.go`` (``SetDefaults_StatefulSet``
and the generated walk that defaults the pod template and each volume claim template),
``pkg/apis/apps/validation/validation.go`` (``ValidateStatefulSet``/``...Update``/
``...StatusUpdate``, ``ValidateStatefulSetSpec``, ``ValidatePodTemplateSpecForStatefulSet``,
``ValidatePersistentVolumeClaimRetentionPolicy``) and ``pkg/registry/apps/statefulset``
(status reset on create and kept on update, spec kept on a status update).

Upstream quirks kept: the pod template of a StatefulSet is validated for its labels and
annotations only (a TODO upstream; its pod spec is checked when the pods are created), and an
update may change only ``replicas``, ``ordinals``, ``template``, ``updateStrategy``,
``persistentVolumeClaimRetentionPolicy`` and ``minReadySeconds``: any other spec difference
(``serviceName``, ``selector``, ``volumeClaimTemplates``, ``podManagementPolicy``...) is one
``spec: Forbidden`` error. Objects are JSON dicts; inputs are never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import int_of as _int, map_of as _map
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    forbidden,
    go_quote,
    invalid,
    not_supported,
    required,
)
from svcnet.api.labels import SelectorError, selector_from_label_selector, validate_label_selector
from svcnet.api.meta import validate_annotations, validate_labels, validate_object_meta_update
from svcnet.api.pods import PodValidationOptions, validate_pod_specific_annotations
from svcnet.api.workloads import (
    go_label_selector,
    go_string_map,
    nonnegative,
    prepare_for_create,
    prepare_for_status_update,
    prepare_for_update,
    semantically_equal,
    set_defaults_pod_template,
    validate_collision_count,
    validate_create_meta,
)

__all__ = [
    "ON_DELETE",
    "ORDERED_READY",
    "PARALLEL",
    "ROLLING_UPDATE",
    "prepare_statefulset_for_create",
    "prepare_statefulset_for_status_update",
    "prepare_statefulset_for_update",
    "set_defaults_statefulset",
    "validate_statefulset",
    "validate_statefulset_status_update",
    "validate_statefulset_update",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

ORDERED_READY: Final = "OrderedReady"
PARALLEL: Final = "Parallel"
ROLLING_UPDATE: Final = "RollingUpdate"
ON_DELETE: Final = "OnDelete"
RETAIN: Final = "Retain"
DELETE: Final = "Delete"
DEFAULT_REVISION_HISTORY_LIMIT: Final = 10

_SPEC: Final = Path("spec")
_STATUS: Final = Path("status")
#: The spec fields an update may change (ValidateStatefulSetUpdate).
_MUTABLE: Final = ("replicas", "template", "updateStrategy", "minReadySeconds", "ordinals",
                   "persistentVolumeClaimRetentionPolicy")
_FORBIDDEN_UPDATE: Final = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
    "forbidden")


def _default_claim_template(claim: object) -> object:
    """SetObjectDefaults_PersistentVolumeClaim: ``volumeMode: Filesystem``, phase Pending."""
    if not isinstance(claim, dict):
        return claim
    spec = claim.get("spec")
    if not isinstance(spec, dict):
        spec = claim["spec"] = {}
    if not spec.get("volumeMode"):
        spec["volumeMode"] = "Filesystem"
    status = claim.get("status")
    if not isinstance(status, dict):
        status = claim["status"] = {}
    if not status.get("phase"):
        status["phase"] = "Pending"
    return claim


def set_defaults_statefulset(obj: ObjMap) -> Obj:
    """SetDefaults_StatefulSet: podManagementPolicy ``OrderedReady``, updateStrategy
    ``RollingUpdate`` with ``partition: 0``, ``replicas: 1``, ``revisionHistoryLimit: 10``,
    persistentVolumeClaimRetentionPolicy ``Retain``/``Retain``; templates defaulted."""
    out = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = ORDERED_READY
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        strategy = spec["updateStrategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = ROLLING_UPDATE
        if not isinstance(strategy.get("rollingUpdate"), dict):
            strategy["rollingUpdate"] = {}
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == ROLLING_UPDATE and isinstance(rolling, dict) and (
            rolling.get("partition") is None):
        rolling["partition"] = 0
    policy = spec.get("persistentVolumeClaimRetentionPolicy")
    if not isinstance(policy, dict):
        policy = spec["persistentVolumeClaimRetentionPolicy"] = {}
    for key in ("whenDeleted", "whenScaled"):
        if not policy.get(key):
            policy[key] = RETAIN
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = DEFAULT_REVISION_HISTORY_LIMIT
    spec["template"] = set_defaults_pod_template(_map(spec, "template"))
    claims = spec.get("volumeClaimTemplates")
    if isinstance(claims, list):
        spec["volumeClaimTemplates"] = [_default_claim_template(c) for c in claims]
    return out


def prepare_statefulset_for_create(obj: ObjMap) -> Obj:
    """statefulSetStrategy.PrepareForCreate: status is the server's (reset)."""
    return prepare_for_create(obj)


def prepare_statefulset_for_update(new: ObjMap, old: ObjMap) -> Obj:
    """statefulSetStrategy.PrepareForUpdate: the main endpoint cannot change status."""
    return prepare_for_update(new, old)


def prepare_statefulset_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    """statefulSetStatusStrategy.PrepareForUpdate: the spec comes from the stored object."""
    return prepare_for_status_update(new, old, keep_labels=False)


def _go_rolling(rolling: object) -> GoRaw:
    if not isinstance(rolling, Mapping):
        return GoRaw("(*apps.RollingUpdateStatefulSetStrategy)(nil)")
    return GoRaw(f"&apps.RollingUpdateStatefulSetStrategy{{Partition:{_int(rolling, 'partition')}"
                 ", MaxUnavailable:(*intstr.IntOrString)(nil)}")


def _validate_update_strategy(strategy: ObjMap, path: Path) -> list[FieldError]:
    stype = str(strategy.get("type") or "")
    rolling = strategy.get("rollingUpdate")
    if stype == "":
        return [required(path)]
    if stype == ON_DELETE:
        if rolling is not None:
            return [invalid(path.child("rollingUpdate"), _go_rolling(rolling),
                            f"only allowed for updateStrategy '{ROLLING_UPDATE}'")]
        return []
    if stype == ROLLING_UPDATE:
        if isinstance(rolling, Mapping):
            return nonnegative(_int(rolling, "partition"),
                               path.child("rollingUpdate", "partition"))
        return []
    return [invalid(path, GoRaw(f"apps.StatefulSetUpdateStrategy{{Type:{go_quote(stype)}, "
                                f"RollingUpdate:{_go_rolling(rolling)}}}"),
                    f"must be '{ROLLING_UPDATE}' or '{ON_DELETE}'")]


def _validate_retention(policy: object, path: Path) -> list[FieldError]:
    """ValidatePersistentVolumeClaimRetentionPolicy."""
    if not isinstance(policy, Mapping):
        return []
    errs: list[FieldError] = []
    for key in ("whenDeleted", "whenScaled"):
        value = str(policy.get(key) or "")
        if value not in (RETAIN, DELETE):
            errs.append(not_supported(path.child(key), value, [RETAIN, DELETE]))
    return errs


def _validate_template(template: ObjMap, selector: Any, path: Path) -> list[FieldError]:
    """ValidatePodTemplateSpecForStatefulSet: the selector match, labels and annotations."""
    errs: list[FieldError] = []
    meta = _map(template, "metadata")
    labels = meta.get("labels")
    label_map = labels if isinstance(labels, Mapping) else None
    if not selector.empty() and not selector.matches(label_map or {}):
        errs.append(invalid(path.child("metadata", "labels"), go_string_map(labels),
                            "`selector` does not match template `labels`"))
    annotations = _map(meta, "annotations")
    errs.extend(validate_labels(label_map, path.child("labels")))
    errs.extend(validate_annotations(annotations, path.child("annotations")))
    errs.extend(validate_pod_specific_annotations(annotations, _map(template, "spec"),
                                                   path.child("annotations"),
                                                   PodValidationOptions()))
    return errs


def _validate_selector(spec: ObjMap, path: Path) -> list[FieldError]:
    raw_selector = spec.get("selector")
    sel_path = path.child("selector")
    errs: list[FieldError] = []
    if not isinstance(raw_selector, Mapping):
        errs.append(required(sel_path))
    else:
        errs.extend(validate_label_selector(raw_selector, sel_path))
        if not raw_selector.get("matchLabels") and not raw_selector.get("matchExpressions"):
            errs.append(invalid(sel_path, go_label_selector(raw_selector),
                                "empty selector is invalid for statefulset"))
    try:
        selector = selector_from_label_selector(
            raw_selector if isinstance(raw_selector, Mapping) else None)
    except SelectorError:
        errs.append(invalid(sel_path, go_label_selector(raw_selector), ""))
    else:
        errs.extend(_validate_template(_map(spec, "template"), selector, path.child("template")))
    return errs


def _validate_spec(spec: ObjMap, path: Path) -> list[FieldError]:
    """ValidateStatefulSetSpec, in upstream's order."""
    errs: list[FieldError] = []
    policy = str(spec.get("podManagementPolicy") or "")
    if policy == "":
        errs.append(required(path.child("podManagementPolicy")))
    elif policy not in (ORDERED_READY, PARALLEL):
        errs.append(invalid(path.child("podManagementPolicy"), policy,
                            f"must be '{ORDERED_READY}' or '{PARALLEL}'"))
    errs.extend(_validate_update_strategy(_map(spec, "updateStrategy"),
                                          path.child("updateStrategy")))
    errs.extend(_validate_retention(spec.get("persistentVolumeClaimRetentionPolicy"),
                                    path.child("persistentVolumeClaimRetentionPolicy")))
    errs.extend(nonnegative(_int(spec, "replicas"), path.child("replicas")))
    errs.extend(nonnegative(_int(spec, "minReadySeconds"), path.child("minReadySeconds")))
    ordinals = spec.get("ordinals")
    if isinstance(ordinals, Mapping):
        errs.extend(nonnegative(_int(ordinals, "start"), path.child("ordinals.start")))
    errs.extend(_validate_selector(spec, path))
    tspec_path = path.child("template", "spec")
    tspec = _map(_map(spec, "template"), "spec")
    restart = str(tspec.get("restartPolicy") or "")
    if restart != "Always":
        errs.append(not_supported(tspec_path.child("restartPolicy"), restart, ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden(tspec_path.child("activeDeadlineSeconds"),
                              "activeDeadlineSeconds in StatefulSet is not Supported"))
    return errs


def validate_statefulset(obj: ObjMap) -> list[FieldError]:
    """ValidateStatefulSet (call after defaulting)."""
    errs = validate_create_meta(obj)
    errs.extend(_validate_spec(_map(obj, "spec"), _SPEC))
    return errs


def validate_statefulset_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateStatefulSetUpdate: the spec again, then the fields an update may not change."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                       Path("metadata"))
    new_spec, old_spec = _map(new, "spec"), _map(old, "spec")
    errs.extend(_validate_spec(new_spec, _SPEC))
    rest_new = {k: v for k, v in new_spec.items() if k not in _MUTABLE}
    rest_old = {k: v for k, v in old_spec.items() if k not in _MUTABLE}
    if not semantically_equal(rest_new, rest_old):
        errs.append(forbidden(_SPEC, _FORBIDDEN_UPDATE))
    return errs


def validate_statefulset_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateStatefulSetStatusUpdate (ValidateStatefulSetStatus + collisionCount)."""
    status = _map(new, "status")
    errs: list[FieldError] = []
    for key in ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                "availableReplicas", "observedGeneration"):
        errs.extend(nonnegative(_int(status, key), _STATUS.child(key)))
    replicas = _int(status, "replicas")
    for key in ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"):
        if _int(status, key) > replicas:
            errs.append(invalid(_STATUS.child(key), _int(status, key),
                                "cannot be greater than status.replicas"))
    if _int(status, "availableReplicas") > _int(status, "readyReplicas"):
        errs.append(invalid(_STATUS.child("availableReplicas"), _int(status, "availableReplicas"),
                            "cannot be greater than status.readyReplicas"))
    errs.extend(validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                            Path("metadata")))
    errs.extend(validate_collision_count(status, _map(old, "status")))
    return errs
