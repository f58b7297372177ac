"""apps/v1 Deployments and ReplicaSets, and their ``autoscaling/v1`` Scale: defaulting, the
registry's preparation steps, and validation.

Mirrors:

* ``pkg/apis/apps/v1/defaults.go`` (``SetDefaults_Deployment``, ``SetDefaults_ReplicaSet``)
  plus the generated walk that defaults the pod template's spec like a pod's
  (``SetDefaults_PodSpec`` and the container defaults, but not ``SetDefaults_Pod``: a template
  gets no ``enableServiceLinks``, no requests copied from limits);
* ``pkg/apis/apps/validation/validation.go`` — ``ValidateDeployment``/``...Update``/
  ``...StatusUpdate``, ``ValidateReplicaSet``/``...Update``/``...StatusUpdate``,
  ``ValidatePodTemplateSpecForReplicaSet`` (which calls core's ``ValidatePodTemplateSpec``),
  ``ValidateDeploymentStrategy``, ``ValidateRollingUpdateDeployment``,
  ``ValidatePositiveIntOrPercent`` and ``IsNotMoreThan100Percent``;
* ``pkg/registry/apps/{deployment,replicaset}/strategy.go`` — status reset on create, status
  kept on update, spec (and a Deployment's labels) kept on a status update, a Deployment's
  generation bumped by spec *or annotation* changes (annotations are copied to its
  ReplicaSets), and the apps/v1 rule that ``spec.selector`` is immutable;
* ``pkg/registry/apps/deployment/storage`` ``ScaleREST`` and ``ValidateScale`` — the
  ``/scale`` subresource as an ``autoscaling/v1`` Scale.

Objects are JSON dicts as on the wire; inputs are never mutated. Field paths and messages are
upstream's, quirks included: the template's labels are reported at ``spec.template.labels``
(core's ``ValidatePodTemplateSpec`` passes the ObjectMeta path without ``metadata``) while the
selector mismatch is reported at ``spec.template.metadata.labels``; a missing selector yields
both ``spec.selector: Required value`` and the mismatch (a nil selector selects nothing); a
ReplicaSet with an empty selector is told it is "invalid for deployment".

Equality where upstream uses ``apiequality.Semantic.DeepEqual`` on Go structs is
:func:`semantically_equal`: absent, ``null`` and zero values compare equal, because Go's
``omitempty`` makes them indistinguishable on the wire.

Why this module is long: Deployment and ReplicaSet defaulting and validation mirror upstream's
apps validation one to one.
"""

from __future__ import annotations

import copy
import re
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
from svcnet.api.labels import (
    SelectorError,
    selector_from_label_selector,
    selector_from_set,
    validate_label_selector,
)
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    IS_NEGATIVE_ERROR_MSG,
    validate_annotations,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import name_is_dns_subdomain, regex_error
from svcnet.api.pods import (
    PodValidationOptions,
    set_defaults_pod,
    validate_pod_spec,
    validate_pod_specific_annotations,
)

__all__ = [
    "DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY",
    "RECREATE",
    "ROLLING_UPDATE",
    "apply_scale",
    "deployment_generation_changed",
    "go_label_selector",
    "go_string_map",
    "normalize",
    "prepare_deployment_for_create",
    "prepare_deployment_for_status_update",
    "prepare_deployment_for_update",
    "prepare_replicaset_for_create",
    "prepare_replicaset_for_status_update",
    "prepare_replicaset_for_update",
    "replicaset_generation_changed",
    "scale_from_object",
    "semantically_equal",
    "set_defaults_deployment",
    "set_defaults_pod_template",
    "set_defaults_replicaset",
    "validate_deployment",
    "validate_deployment_status_update",
    "validate_deployment_update",
    "validate_pod_template_spec",
    "validate_replicaset",
    "validate_replicaset_status_update",
    "validate_replicaset_update",
    "validate_scale",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY: Final = "pod-template-hash"
ROLLING_UPDATE: Final = "RollingUpdate"
RECREATE: Final = "Recreate"
_STRATEGY_TYPES: Final = (RECREATE, ROLLING_UPDATE)
DEFAULT_MAX_SURGE: Final = "25%"
DEFAULT_MAX_UNAVAILABLE: Final = "25%"
DEFAULT_REVISION_HISTORY_LIMIT: Final = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS: Final = 600

_PERCENT_RE: Final = re.compile(r"[0-9]+%")
_PERCENT_ERR: Final = regex_error(
    "a valid percent string must be a numeric string followed by an ending '%'", "[0-9]+%",
    "1%", "93%")

_META: Final = Path("metadata")
_SPEC: Final = Path("spec")
_STATUS: Final = Path("status")


# =============================================================================================
# small accessors: absent or null reads as Go's zero value


def opt_int(d: ObjMap | None, key: str) -> int | None:
    v = d.get(key) if d else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def meta_of_mut(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _zeroish(value: object) -> bool:
    return value is None or value in (0, "", [], {})  # False == 0: booleans too


def normalize(value: Any) -> Any:
    """``value`` with every absent-equivalent member dropped (None, 0, "", [], {}, False),
    recursively: what two JSON encodings of the same Go struct have in common."""
    if isinstance(value, dict):
        return {k: n for k, v in value.items() if not _zeroish(n := normalize(v))}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def semantically_equal(a: Any, b: Any) -> bool:
    """apiequality.Semantic.DeepEqual over JSON (see the module doc)."""
    return bool(normalize(a) == normalize(b))


# =============================================================================================
# defaulting


def set_defaults_pod_template(template: ObjMap | None) -> Obj:
    """The generated defaulting of a PodTemplateSpec: its spec as a pod's spec, minus what only
    ``SetDefaults_Pod`` does (``enableServiceLinks``, requests from limits, and hostPort from
    containerPort under hostNetwork, which upstream no longer applies to templates)."""
    out = copy.deepcopy(dict(template or {}))
    raw_spec = out.get("spec")
    spec: Obj = raw_spec if isinstance(raw_spec, dict) else {}
    defaulted = set_defaults_pod({"spec": spec})["spec"]
    if "enableServiceLinks" not in spec:
        defaulted.pop("enableServiceLinks", None)
    for key in ("containers", "initContainers"):
        for before, after in zip(spec.get(key) or [], defaulted.get(key) or [], strict=False):
            if not isinstance(before, dict) or not isinstance(after, dict):
                continue
            if "resources" in before:
                after["resources"] = copy.deepcopy(before["resources"])
            else:
                after.pop("resources", None)
            for p_before, p_after in zip(before.get("ports") or [], after.get("ports") or [],
                                         strict=False):
                if isinstance(p_before, dict) and isinstance(p_after, dict) and (
                        "hostPort" not in p_before):
                    p_after.pop("hostPort", None)
    out["spec"] = defaulted
    return out


def _set_defaults_workload(obj: ObjMap) -> tuple[Obj, Obj]:
    out = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    spec["template"] = set_defaults_pod_template(_map(spec, "template"))
    return out, spec


def set_defaults_replicaset(obj: ObjMap) -> Obj:
    """SetDefaults_ReplicaSet: ``replicas: 1``; the template as a pod template."""
    return _set_defaults_workload(obj)[0]


def set_defaults_deployment(obj: ObjMap) -> Obj:
    """SetDefaults_Deployment: ``replicas: 1``, strategy ``RollingUpdate`` with
    ``maxUnavailable``/``maxSurge`` ``25%`` (only for that type), ``revisionHistoryLimit: 10``,
    ``progressDeadlineSeconds: 600``; the template as a pod template."""
    out, spec = _set_defaults_workload(obj)
    strategy = spec.get("strategy")
    if not isinstance(strategy, dict):
        strategy = spec["strategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = ROLLING_UPDATE
    if strategy["type"] == ROLLING_UPDATE:
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            rolling = strategy["rollingUpdate"] = {}
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = DEFAULT_MAX_UNAVAILABLE
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = DEFAULT_MAX_SURGE
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = DEFAULT_REVISION_HISTORY_LIMIT
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = DEFAULT_PROGRESS_DEADLINE_SECONDS
    return out


# =============================================================================================
# registry strategy steps


def prepare_for_create(obj: ObjMap) -> Obj:
    out = copy.deepcopy(dict(obj))
    out["status"] = {}
    return out


def prepare_for_update(new: ObjMap, old: ObjMap) -> Obj:
    out = copy.deepcopy(dict(new))
    out["status"] = copy.deepcopy(old.get("status") or {})
    _fill_resource_version(out, old)
    return out


def _fill_resource_version(new: Obj, old: ObjMap) -> None:
    # AllowUnconditionalUpdate: a write without a resourceVersion applies to the current one.
    meta = meta_of_mut(new)
    if not meta.get("resourceVersion"):
        meta["resourceVersion"] = _map(old, "metadata").get("resourceVersion", "")


_SYSTEM_META: Final = ("uid", "creationTimestamp", "deletionTimestamp",
                       "deletionGracePeriodSeconds", "generation")


def prepare_for_status_update(new: ObjMap, old: ObjMap, *, keep_labels: bool) -> Obj:
    """The status endpoint: spec (and for a Deployment its labels) come from the stored object;
    the rest of metadata may change, which is how the Deployment controller records the
    ``deployment.kubernetes.io/revision`` annotation with its status writes."""
    out = copy.deepcopy(dict(new))
    out["spec"] = copy.deepcopy(old.get("spec") or {})
    meta, old_meta = meta_of_mut(out), _map(old, "metadata")
    for key in _SYSTEM_META:
        if key in old_meta:
            meta[key] = copy.deepcopy(old_meta[key])
        else:
            meta.pop(key, None)
    if keep_labels:
        if "labels" in old_meta:
            meta["labels"] = copy.deepcopy(old_meta["labels"])
        else:
            meta.pop("labels", None)
    _fill_resource_version(out, old)
    if not isinstance(out.get("status"), dict):
        out["status"] = {}
    return out


def prepare_deployment_for_create(obj: ObjMap) -> Obj:
    """deploymentStrategy.PrepareForCreate: status is the server's (reset)."""
    return prepare_for_create(obj)


def prepare_deployment_for_update(new: ObjMap, old: ObjMap) -> Obj:
    """deploymentStrategy.PrepareForUpdate: the main endpoint cannot change status."""
    return prepare_for_update(new, old)


def prepare_deployment_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    """deploymentStatusStrategy.PrepareForUpdate: spec and labels come from the stored object."""
    return prepare_for_status_update(new, old, keep_labels=True)


def prepare_replicaset_for_create(obj: ObjMap) -> Obj:
    """rsStrategy.PrepareForCreate: status is the server's (reset)."""
    return prepare_for_create(obj)


def prepare_replicaset_for_update(new: ObjMap, old: ObjMap) -> Obj:
    """rsStrategy.PrepareForUpdate: the main endpoint cannot change status."""
    return prepare_for_update(new, old)


def prepare_replicaset_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    """rsStatusStrategy.PrepareForUpdate: spec comes from the stored object."""
    return prepare_for_status_update(new, old, keep_labels=False)


def deployment_generation_changed(new: ObjMap, old: ObjMap) -> bool:
    """Spec updates bump the generation, and so do annotation updates, because a Deployment's
    annotations are copied to its ReplicaSets."""
    return not semantically_equal(new.get("spec"), old.get("spec")) or not semantically_equal(
        _map(new, "metadata").get("annotations"), _map(old, "metadata").get("annotations"))


def replicaset_generation_changed(new: ObjMap, old: ObjMap) -> bool:
    return not semantically_equal(new.get("spec"), old.get("spec"))


# =============================================================================================
# validation helpers: Go renderings of bad values


def go_int_or_string(value: object) -> GoRaw:
    """An intstr.IntOrString as field.Error prints it: through its String() method, bare."""
    if isinstance(value, bool):
        return GoRaw("0")
    if isinstance(value, int):
        return GoRaw(str(value))
    return GoRaw(value if isinstance(value, str) else "0")


def go_string_map(value: object) -> GoRaw:
    if not isinstance(value, Mapping):
        return GoRaw("map[string]string(nil)")
    items = ", ".join(f"{go_quote(str(k))}:{go_quote(str(v))}" for k, v in sorted(value.items()))
    return GoRaw("map[string]string{" + items + "}")


def go_label_selector(selector: object) -> GoRaw | str:
    """A *metav1.LabelSelector as field.Error prints it (``%#v`` of the struct; nil → "null")."""
    if not isinstance(selector, Mapping):
        return GoRaw('"null"')
    match_labels = selector.get("matchLabels")
    exprs = selector.get("matchExpressions")
    if isinstance(exprs, list):
        parts = []
        for item in exprs:
            e: ObjMap = item if isinstance(item, Mapping) else {}
            values = e.get("values")
            vals = ("[]string{" + ", ".join(go_quote(str(v)) for v in values) + "}"
                    if isinstance(values, list) else "[]string(nil)")
            parts.append("v1.LabelSelectorRequirement{"
                         f"Key:{go_quote(str(e.get('key') or ''))}, "
                         f"Operator:{go_quote(str(e.get('operator') or ''))}, Values:{vals}}}")
        exprs_text = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        exprs_text = "[]v1.LabelSelectorRequirement(nil)"
    return GoRaw(f"v1.LabelSelector{{MatchLabels:{go_string_map(match_labels)}, "
                 f"MatchExpressions:{exprs_text}}}")


def nonnegative(value: int, path: Path) -> list[FieldError]:
    return [invalid(path, value, IS_NEGATIVE_ERROR_MSG)] if value < 0 else []


# =============================================================================================
# int-or-percent fields


def _percent_value(value: object) -> int | None:
    """getPercentValue: the number of a valid percent string, else None."""
    if isinstance(value, str) and _PERCENT_RE.fullmatch(value):
        return int(value[:-1])
    return None


def int_or_percent_value(value: object) -> int:
    """getIntOrPercentValue: a percent's number, or IntValue() (Atoi of a string, 0 on error)."""
    pct = _percent_value(value)
    if pct is not None:
        return pct
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def validate_positive_int_or_percent(value: object, path: Path) -> list[FieldError]:
    """ValidatePositiveIntOrPercent (an absent value is the integer 0)."""
    if isinstance(value, str):
        return [] if _PERCENT_RE.fullmatch(value) else [
            invalid(path, go_int_or_string(value), _PERCENT_ERR)]
    return nonnegative(int_or_percent_value(value), path)


def not_more_than_100_percent(value: object, path: Path) -> list[FieldError]:
    pct = _percent_value(value)
    if pct is None or pct <= 100:
        return []
    return [invalid(path, go_int_or_string(value), "must not be greater than 100%")]


# =============================================================================================
# validation: the template and the specs


def validate_pod_template_spec(template: ObjMap, path: Path) -> list[FieldError]:
    """core's ValidatePodTemplateSpec: the template's labels (reported at ``<path>.labels``),
    annotations and pod spec; ephemeral containers are forbidden."""
    meta = _map(template, "metadata")
    labels = meta.get("labels")
    annotations = _map(meta, "annotations")
    spec = _map(template, "spec")
    opts = PodValidationOptions()
    errs = validate_labels(labels if isinstance(labels, Mapping) else None, path.child("labels"))
    errs.extend(validate_annotations(annotations, path.child("annotations")))
    errs.extend(validate_pod_specific_annotations(annotations, spec, path.child("annotations"),
                                                   opts))
    spec_path = path.child("spec")
    errs.extend(validate_pod_spec(spec, spec_path, opts))
    if spec.get("ephemeralContainers"):
        errs.append(forbidden(spec_path.child("ephemeralContainers"),
                              "ephemeral containers not allowed in pod template"))
    return errs


def validate_pod_template(template: ObjMap, selector_ok: bool, selector: Any,
                           path: Path, kind: str) -> list[FieldError]:
    """ValidatePodTemplateSpecForReplicaSet (+ core's ValidatePodTemplateSpec)."""
    errs: list[FieldError] = []
    meta = _map(template, "metadata")
    labels = meta.get("labels")
    if selector_ok and not selector.empty() and not selector.matches(
            labels if isinstance(labels, Mapping) else {}):
        errs.append(invalid(path.child("metadata", "labels"), go_string_map(labels),
                            "`selector` does not match template `labels`"))
    errs.extend(validate_pod_template_spec(template, path))
    spec = _map(template, "spec")
    spec_path = path.child("spec")
    restart = spec.get("restartPolicy") or ""
    if restart != "Always":
        errs.append(not_supported(spec_path.child("restartPolicy"), restart, ["Always"]))
    if spec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden(spec_path.child("activeDeadlineSeconds"),
                              f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def _validate_selector_and_template(spec: ObjMap, path: Path, kind: str) -> list[FieldError]:
    errs: list[FieldError] = []
    raw_selector = spec.get("selector")
    sel_path = path.child("selector")
    if not isinstance(raw_selector, Mapping):
        errs.append(required(sel_path))
    else:
        errs.extend(validate_label_selector(raw_selector, sel_path))
        if not raw_selector.get("matchLabels") and not raw_selector.get("matchExpressions"):
            # Upstream says "deployment" for ReplicaSets too.
            errs.append(invalid(sel_path, go_label_selector(raw_selector),
                                "empty selector is invalid for deployment"))
    try:
        selector = selector_from_label_selector(
            raw_selector if isinstance(raw_selector, Mapping) else None)
    except SelectorError:
        errs.append(invalid(sel_path, go_label_selector(raw_selector), "invalid label selector"))
        return errs
    errs.extend(validate_pod_template(_map(spec, "template"), True, selector,
                                       path.child("template"), kind))
    return errs


def _validate_strategy(strategy: ObjMap, path: Path) -> list[FieldError]:
    """ValidateDeploymentStrategy + ValidateRollingUpdateDeployment."""
    errs: list[FieldError] = []
    stype = strategy.get("type") or ""
    rolling = strategy.get("rollingUpdate")
    if stype == RECREATE:
        if rolling is not None:
            errs.append(forbidden(path.child("rollingUpdate"),
                                  "may not be specified when strategy `type` is 'Recreate'"))
    elif stype == ROLLING_UPDATE:
        rpath = path.child("rollingUpdate")
        if not isinstance(rolling, Mapping):
            errs.append(required(rpath, "this should be defaulted and never be nil"))
        else:
            unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
            errs.extend(validate_positive_int_or_percent(unavailable,
                                                         rpath.child("maxUnavailable")))
            errs.extend(validate_positive_int_or_percent(surge, rpath.child("maxSurge")))
            if int_or_percent_value(unavailable) == 0 and int_or_percent_value(surge) == 0:
                errs.append(invalid(rpath.child("maxUnavailable"),
                                    go_int_or_string(unavailable),
                                    "may not be 0 when `maxSurge` is 0"))
            errs.extend(not_more_than_100_percent(unavailable, rpath.child("maxUnavailable")))
    else:
        rolling_text = "(*apps.RollingUpdateDeployment)(nil)" if rolling is None else (
            "&apps.RollingUpdateDeployment{...}")
        errs.append(not_supported(
            path, GoRaw(f"apps.DeploymentStrategy{{Type:{go_quote(str(stype))}, "
                        f"RollingUpdate:{rolling_text}}}"), _STRATEGY_TYPES))
    return errs


def _validate_deployment_spec(spec: ObjMap, path: Path) -> list[FieldError]:
    """ValidateDeploymentSpec, in upstream's order."""
    errs = nonnegative(_int(spec, "replicas"), path.child("replicas"))
    errs.extend(_validate_selector_and_template(spec, path, "ReplicaSet"))
    errs.extend(_validate_strategy(_map(spec, "strategy"), path.child("strategy")))
    min_ready = _int(spec, "minReadySeconds")
    errs.extend(nonnegative(min_ready, path.child("minReadySeconds")))
    history = opt_int(spec, "revisionHistoryLimit")
    if history is not None:
        errs.extend(nonnegative(history, path.child("revisionHistoryLimit")))
    deadline = opt_int(spec, "progressDeadlineSeconds")
    if deadline is not None:
        dpath = path.child("progressDeadlineSeconds")
        errs.extend(nonnegative(deadline, dpath))
        if deadline <= min_ready:
            errs.append(invalid(dpath, deadline, "must be greater than minReadySeconds"))
    return errs


def _validate_replicaset_spec(spec: ObjMap, path: Path) -> list[FieldError]:
    """ValidateReplicaSetSpec, in upstream's order."""
    errs = nonnegative(_int(spec, "replicas"), path.child("replicas"))
    errs.extend(nonnegative(_int(spec, "minReadySeconds"), path.child("minReadySeconds")))
    errs.extend(_validate_selector_and_template(spec, path, "ReplicaSet"))
    return errs


def immutable_selector(new: ObjMap, old: ObjMap) -> list[FieldError]:
    new_sel, old_sel = _map(new, "spec").get("selector"), _map(old, "spec").get("selector")
    if semantically_equal(new_sel, old_sel):
        return []
    return [invalid(_SPEC.child("selector"), go_label_selector(new_sel),
                    FIELD_IMMUTABLE_ERROR_MSG)]


def validate_create_meta(obj: ObjMap) -> list[FieldError]:
    return validate_object_meta(_map(obj, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)


def validate_deployment(obj: ObjMap) -> list[FieldError]:
    """ValidateDeployment (call after defaulting)."""
    errs = validate_create_meta(obj)
    errs.extend(_validate_deployment_spec(_map(obj, "spec"), _SPEC))
    return errs


def validate_deployment_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateDeploymentUpdate, plus apps/v1's immutable selector (deploymentStrategy)."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), _META)
    errs.extend(_validate_deployment_spec(_map(new, "spec"), _SPEC))
    errs.extend(immutable_selector(new, old))
    return errs


def validate_replicaset(obj: ObjMap) -> list[FieldError]:
    """ValidateReplicaSet (call after defaulting)."""
    errs = validate_create_meta(obj)
    errs.extend(_validate_replicaset_spec(_map(obj, "spec"), _SPEC))
    return errs


def validate_replicaset_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateReplicaSetUpdate, plus apps/v1's immutable selector.

    (Upstream's rsStrategy also re-runs the create validation first, which repeats every spec
    error; the repeats are left out.)
    """
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), _META)
    errs.extend(_validate_replicaset_spec(_map(new, "spec"), _SPEC))
    errs.extend(immutable_selector(new, old))
    return errs


_DEPLOYMENT_STATUS_COUNTS: Final = ("observedGeneration", "replicas", "updatedReplicas",
                                    "readyReplicas", "availableReplicas",
                                    "unavailableReplicas")
_RS_STATUS_COUNTS: Final = ("replicas", "fullyLabeledReplicas", "readyReplicas",
                            "availableReplicas", "observedGeneration")
_NOT_ABOVE_REPLICAS: Final = "cannot be greater than status.replicas"


def validate_collision_count(new: ObjMap, old: ObjMap) -> list[FieldError]:
    new_cc, old_cc = opt_int(new, "collisionCount"), opt_int(old, "collisionCount")
    errs: list[FieldError] = []
    if new_cc is not None:
        errs.extend(nonnegative(new_cc, _STATUS.child("collisionCount")))
    if old_cc is not None and (new_cc is None or new_cc < old_cc):
        errs.append(invalid(_STATUS.child("collisionCount"), new_cc or 0,
                            "cannot be decremented"))
    return errs


# The two status validators below are alike in shape, as upstream's are
# (ValidateDeploymentStatus / ValidateReplicaSetStatus): kept apart to compare them one to one.
def validate_deployment_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateDeploymentStatusUpdate."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), _META)
    status = _map(new, "status")
    for key in _DEPLOYMENT_STATUS_COUNTS:
        errs.extend(nonnegative(_int(status, key), _STATUS.child(key)))
    replicas = _int(status, "replicas")
    for key in ("updatedReplicas", "readyReplicas", "availableReplicas"):
        if _int(status, key) > replicas:
            errs.append(invalid(_STATUS.child(key), _int(status, key), _NOT_ABOVE_REPLICAS))
    if _int(status, "availableReplicas") > _int(status, "readyReplicas"):
        errs.append(invalid(_STATUS.child("availableReplicas"), _int(status, "availableReplicas"),
                            "cannot be greater than readyReplicas"))
    errs.extend(validate_collision_count(status, _map(old, "status")))
    return errs


def validate_replicaset_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateReplicaSetStatusUpdate."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), _META)
    status = _map(new, "status")
    for key in _RS_STATUS_COUNTS:
        errs.extend(nonnegative(_int(status, key), _STATUS.child(key)))
    replicas = _int(status, "replicas")
    for key in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
        if _int(status, key) > replicas:
            errs.append(invalid(_STATUS.child(key), _int(status, key), _NOT_ABOVE_REPLICAS))
    if _int(status, "availableReplicas") > _int(status, "readyReplicas"):
        errs.append(invalid(_STATUS.child("availableReplicas"), _int(status, "availableReplicas"),
                            "cannot be greater than readyReplicas"))
    return errs


# =============================================================================================
# the scale subresource


def scale_from_object(obj: ObjMap, *, map_selector: bool = False) -> Obj:
    """scaleFromDeployment / scaleFromReplicaSet / scaleFromRC: the ``autoscaling/v1`` Scale of
    an object.

    ``status.selector`` is the selector in label-query form (``app=web``), as the HPA and
    ``kubectl scale`` read it. ``map_selector``: ``spec.selector`` is a plain label map (a
    core/v1 ReplicationController's), not a LabelSelector.
    """
    meta = _map(obj, "metadata")
    raw = _map(obj, "spec").get("selector")
    try:
        selector = str(selector_from_set(raw if isinstance(raw, Mapping) else None)
                       if map_selector else selector_from_label_selector(raw))
    except SelectorError:
        selector = ""
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp") if k in meta}
    status: Obj = {"replicas": _int(_map(obj, "status"), "replicas")}
    if selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": _int(_map(obj, "spec"), "replicas")}, "status": status}


def validate_scale(scale: ObjMap) -> list[FieldError]:
    """ValidateScale: ObjectMeta, and a non-negative ``spec.replicas``.

    Report errors as ``invalid_error("Scale", name, errs, "autoscaling")``.
    """
    errs = validate_create_meta(scale)
    replicas = _int(_map(scale, "spec"), "replicas")
    if replicas < 0:
        errs.append(invalid(_SPEC.child("replicas"), replicas, IS_NEGATIVE_ERROR_MSG))
    return errs


def apply_scale(obj: ObjMap, scale: ObjMap) -> Obj:
    """scaleUpdatedObjectInfo.UpdatedObject: the object with the Scale's replicas; a Scale that
    names a resourceVersion makes the write conditional on it."""
    out = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    spec["replicas"] = _int(_map(scale, "spec"), "replicas")
    rv = _map(scale, "metadata").get("resourceVersion")
    if rv:
        meta_of_mut(out)["resourceVersion"] = str(rv)
    return out

