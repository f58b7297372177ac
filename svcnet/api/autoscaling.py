"""autoscaling/v2 HorizontalPodAutoscalers: defaulting, validation and the strategy's steps.

Theory of operation, after upstream's files (Kubernetes 1.33):

* ``pkg/apis/autoscaling/v2/defaults.go``: ``minReplicas`` defaults to 1; no ``metrics`` means
  one Resource metric, ``cpu`` at 80% average utilization; a ``behavior`` that is given gets
  each of its two rules filled: scale-up from (stabilization 0, ``selectPolicy: Max``, Pods
  4/15s and Percent 100/15s), scale-down from (no stabilization: the controller's
  ``--horizontal-pod-autoscaler-downscale-stabilization`` applies, ``Max``, Percent 100/15s).
  A rule's given fields win field by field; no behavior stays no behavior.
* ``pkg/apis/autoscaling/validation/validation.go``: the name is a DNS subdomain
  (ValidateReplicationControllerName); ``minReplicas`` at least 1 (0 only with the
  HPAScaleToZero alpha gate, which svcnet does not enable; an update may keep a stored 0),
  ``maxReplicas`` at least 1 and not below ``minReplicas``; ``scaleTargetRef`` kind and name
  required and path segment names; each metric's ``type`` one of the five sources, exactly that
  source's field set, each source's required parts (metric identifiers, targets of type
  Utilization/Value/AverageValue with positive quantities and utilization >= 1, which of value,
  averageValue and averageUtilization a source needs); behavior rules (stabilization 0..3600,
  ``selectPolicy`` Max/Min/Disabled, at least one policy, each Pods or Percent with a value and
  a period of 1..1800 s); a status write checks only that the replica counts are not negative,
  upstream's paths and messages throughout.
* ``pkg/registry/autoscaling/horizontalpodautoscaler/strategy.go``: a new autoscaler starts
  with an empty status, the main endpoint never writes status, ``/status`` never writes spec,
  a spec change bumps ``metadata.generation``. The alpha HPAConfigurableTolerance gate is off,
  so a rule's ``tolerance`` is dropped unless the stored object already had one.

Bad values that are quantities are shown as their text (upstream prints the Go struct there).
autoscaling/v1 is the same object seen through :mod:`svcnet.api.autoscalingv1`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import map_of
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    forbidden,
    invalid,
    not_supported,
    required,
)
from svcnet.api.meta import IS_NEGATIVE_ERROR_MSG, validate_object_meta, validate_object_meta_update
from svcnet.api.names import name_is_dns_subdomain
from svcnet.api.pods import validate_dns1123_label
from svcnet.api.rbac import is_valid_path_segment_name
from svcnet.api.resourcelists import parse_quantity, validate_container_resource_name

__all__ = [
    "API_VERSION", "DEFAULT_CPU_UTILIZATION", "GROUP", "KIND", "METRIC_SOURCE_TYPES",
    "prepare_hpa_for_create", "prepare_hpa_for_status_update", "prepare_hpa_for_update",
    "set_defaults_hpa", "validate_hpa", "validate_hpa_status_update", "validate_hpa_update",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

GROUP: Final = "autoscaling"
API_VERSION: Final = "autoscaling/v2"
KIND: Final = "HorizontalPodAutoscaler"
#: autoscaling.DefaultCPUUtilization: the target of the default metric.
DEFAULT_CPU_UTILIZATION: Final = 80
MAX_PERIOD_SECONDS: Final = 1800
MAX_STABILIZATION_WINDOW_SECONDS: Final = 3600
#: The metric source types, sorted as upstream lists them in its NotSupported errors.
METRIC_SOURCE_TYPES: Final = ("ContainerResource", "External", "Object", "Pods", "Resource")
_SELECT_POLICIES: Final = ("Disabled", "Max", "Min")
_POLICY_TYPES: Final = ("Percent", "Pods")
_TARGET_TYPES: Final = ("Utilization", "Value", "AverageValue")
#: Each source type's field in a MetricSpec (the lower-cased type, containerResource aside).
_SOURCE_FIELDS: Final = {"Object": "object", "Pods": "pods", "Resource": "resource",
                         "External": "external", "ContainerResource": "containerResource"}

_META: Final = Path("metadata")
_SPEC: Final = Path("spec")


# -- defaulting --------------------------------------------------------------------------------


def default_cpu_metric(utilization: int = DEFAULT_CPU_UTILIZATION) -> Obj:
    """The Resource cpu Utilization metric (the default one, and v1's targetCPU...)."""
    return {"type": "Resource",
            "resource": {"name": "cpu",
                         "target": {"type": "Utilization", "averageUtilization": utilization}}}


def _default_rules(scale_up: bool) -> Obj:
    if scale_up:
        return {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                             {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    return {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100,
                                                 "periodSeconds": 15}]}


def _filled_rules(given: object, scale_up: bool) -> Obj:
    """copyHPAScalingRules over the defaults: each field given (not null) wins."""
    rules = _default_rules(scale_up)
    if isinstance(given, Mapping):
        for key in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
            if given.get(key) is not None:
                rules[key] = copy.deepcopy(given[key])
    return rules


def set_defaults_hpa(hpa: Obj) -> Obj:
    """SetDefaults_HorizontalPodAutoscaler (autoscaling/v2)."""
    spec = hpa.get("spec")
    if not isinstance(spec, dict):
        spec = hpa["spec"] = {}
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [default_cpu_metric()]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _filled_rules(behavior.get("scaleUp"), True)
        behavior["scaleDown"] = _filled_rules(behavior.get("scaleDown"), False)
    return hpa


# -- validation --------------------------------------------------------------------------------


def _quantity(value: object) -> GoRaw:
    return GoRaw(value if isinstance(value, str) else str(value))


def _positive(value: object) -> bool:
    q = parse_quantity(value)
    return q is not None and q > 0


def validate_cross_version_object_reference(ref: ObjMap, path: Path) -> list[FieldError]:
    """ValidateCrossVersionObjectReference: kind and name required, path segment names."""
    errs: list[FieldError] = []
    for key in ("kind", "name"):
        value = ref.get(key)
        if not value:
            errs.append(required(path.child(key), ""))
        elif isinstance(value, str):
            errs.extend(invalid(path.child(key), value, m)
                        for m in is_valid_path_segment_name(value))
    return errs


def _validate_metric_identifier(ident: ObjMap, path: Path) -> list[FieldError]:
    name = ident.get("name")
    if not name:
        return [required(path.child("name"), "must specify a metric name")]
    return [invalid(path.child("name"), name, m)
            for m in is_valid_path_segment_name(str(name))]


def _validate_metric_target(target: ObjMap, path: Path) -> list[FieldError]:
    """validateMetricTarget."""
    errs: list[FieldError] = []
    kind = target.get("type") or ""
    if not kind:
        errs.append(required(path.child("type"), "must specify a metric target type"))
    if kind not in _TARGET_TYPES:
        errs.append(invalid(path.child("type"), kind,
                            "must be either Utilization, Value, or AverageValue"))
    for key in ("value", "averageValue"):
        value = target.get(key)
        if value is not None and not _positive(value):
            errs.append(invalid(path.child(key), _quantity(value), "must be positive"))
    utilization = target.get("averageUtilization")
    if isinstance(utilization, int) and utilization < 1:
        errs.append(invalid(path.child("averageUtilization"), utilization,
                            "must be greater than 0"))
    return errs


def _validate_object_source(src: ObjMap, path: Path) -> list[FieldError]:
    errs = validate_cross_version_object_reference(map_of(src, "describedObject"),
                                                   path.child("describedObject"))
    errs.extend(_validate_metric_identifier(map_of(src, "metric"), path.child("metric")))
    target = map_of(src, "target")
    errs.extend(_validate_metric_target(target, path.child("target")))
    if target.get("value") is None and target.get("averageValue") is None:
        errs.append(required(path.child("target", "averageValue"),
                             "must set either a target value or averageValue"))
    return errs


def _validate_external_source(src: ObjMap, path: Path) -> list[FieldError]:
    errs = _validate_metric_identifier(map_of(src, "metric"), path.child("metric"))
    target = map_of(src, "target")
    errs.extend(_validate_metric_target(target, path.child("target")))
    value, average = target.get("value"), target.get("averageValue")
    if value is None and average is None:
        errs.append(required(path.child("target", "averageValue"),
                             "must set either a target value for metric or a per-pod target"))
    if value is not None and average is not None:
        errs.append(forbidden(path.child("target", "value"),
                              "may not set both a target value for metric and a per-pod target"))
    return errs


def _validate_pods_source(src: ObjMap, path: Path) -> list[FieldError]:
    errs = _validate_metric_identifier(map_of(src, "metric"), path.child("metric"))
    target = map_of(src, "target")
    errs.extend(_validate_metric_target(target, path.child("target")))
    if target.get("averageValue") is None:
        errs.append(required(path.child("target", "averageValue"),
                             "must specify a positive target averageValue"))
    return errs


def _validate_utilization_or_value(target: ObjMap, path: Path) -> list[FieldError]:
    """What Resource and ContainerResource sources share: one of the two averages."""
    errs: list[FieldError] = []
    utilization, average = target.get("averageUtilization"), target.get("averageValue")
    if utilization is None and average is None:
        errs.append(required(path.child("averageUtilization"),
                             "must set either a target raw value or a target utilization"))
    if utilization is not None and average is not None:
        errs.append(forbidden(path.child("averageValue"),
                              "may not set both a target raw value and a target utilization"))
    return errs


def _validate_resource_source(src: ObjMap, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if not src.get("name"):
        errs.append(required(path.child("name"), "must specify a resource name"))
    target = map_of(src, "target")
    errs.extend(_validate_metric_target(target, path.child("target")))
    errs.extend(_validate_utilization_or_value(target, path.child("target")))
    return errs


def _validate_container_resource_source(src: ObjMap, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    name = src.get("name")
    if not name:
        errs.append(required(path.child("name"), "must specify a resource name"))
    else:
        errs.extend(validate_container_resource_name(str(name), path.child("name")))
    container = src.get("container")
    if not container:
        errs.append(required(path.child("container"), "must specify a container"))
    else:
        errs.extend(validate_dns1123_label(str(container), path.child("container")))
    target = map_of(src, "target")
    errs.extend(_validate_metric_target(target, path.child("target")))
    errs.extend(_validate_utilization_or_value(target, path.child("target")))
    return errs


_SOURCE_VALIDATORS: Final = (
    ("object", _validate_object_source), ("external", _validate_external_source),
    ("pods", _validate_pods_source), ("resource", _validate_resource_source),
    ("containerResource", _validate_container_resource_source),
)


def _validate_metric_spec(spec: ObjMap, path: Path) -> list[FieldError]:
    """validateMetricSpec: the type, then only the first source present is validated; the
    type's own source must be there, and no other."""
    errs: list[FieldError] = []
    kind = spec.get("type") or ""
    if not kind:
        errs.append(required(path.child("type"), "must specify a metric source type"))
    if kind not in METRIC_SOURCE_TYPES:
        errs.append(not_supported(path.child("type"), kind, METRIC_SOURCE_TYPES))
    present: list[str] = []
    for key, validate in _SOURCE_VALIDATORS:
        if isinstance(spec.get(key), Mapping):
            present.append(key)
            if len(present) == 1:
                errs.extend(validate(spec[key], path.child(key)))
    expected = _SOURCE_FIELDS.get(kind, "")
    if expected and expected not in present:
        errs.append(required(path.child(expected),
                             "must populate information for the given metric source"))
    elif not expected:
        # The switch's default case repeats the NotSupported (the list keeps both).
        errs.append(not_supported(path.child("type"), kind, METRIC_SOURCE_TYPES))
    if len(present) != 1:
        # Go ranges over a set: the order of these is not fixed upstream; svcnet sorts them.
        errs.extend(forbidden(path.child(other), "must populate the given metric source only")
                    for other in sorted(set(present) - {expected}))
    return errs


def _validate_metrics(metrics: Sequence[Any], path: Path,
                      min_replicas: object) -> list[FieldError]:
    errs: list[FieldError] = []
    scales_to_zero = False
    for i, metric in enumerate(metrics):
        spec = metric if isinstance(metric, Mapping) else {}
        errs.extend(_validate_metric_spec(spec, path.index(i)))
        scales_to_zero = scales_to_zero or spec.get("type") in ("Object", "External")
    if min_replicas == 0 and not scales_to_zero:
        errs.append(forbidden(path, "must specify at least one Object or External metric to "
                                    "support scaling to zero replicas"))
    return errs


def _validate_scaling_policy(policy: ObjMap, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = policy.get("type") or ""
    if kind not in _POLICY_TYPES:
        errs.append(not_supported(path.child("type"), kind, _POLICY_TYPES))
    value = policy.get("value") or 0
    if isinstance(value, int) and value <= 0:
        errs.append(invalid(path.child("value"), value, "must be greater than zero"))
    period = policy.get("periodSeconds") or 0
    if isinstance(period, int):
        if period <= 0:
            errs.append(invalid(path.child("periodSeconds"), period, "must be greater than zero"))
        if period > MAX_PERIOD_SECONDS:
            errs.append(invalid(path.child("periodSeconds"), period,
                                f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs


def _validate_scaling_rules(rules: object, path: Path) -> list[FieldError]:
    if not isinstance(rules, Mapping):
        return []
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if isinstance(window, int):
        if window < 0:
            errs.append(invalid(path.child("stabilizationWindowSeconds"), window,
                                "must be greater than or equal to zero"))
        if window > MAX_STABILIZATION_WINDOW_SECONDS:
            errs.append(invalid(path.child("stabilizationWindowSeconds"), window,
                                "must be less than or equal to "
                                f"{MAX_STABILIZATION_WINDOW_SECONDS}"))
    select = rules.get("selectPolicy")
    if select is not None and select not in _SELECT_POLICIES:
        errs.append(not_supported(path.child("selectPolicy"), select, _SELECT_POLICIES))
    policies = rules.get("policies") or []
    if not policies:
        errs.append(required(path.child("policies"), "must specify at least one Policy"))
    for i, policy in enumerate(policies if isinstance(policies, list) else []):
        errs.extend(_validate_scaling_policy(policy if isinstance(policy, Mapping) else {},
                                             path.child("policies").index(i)))
    return errs


def _validate_spec(spec: ObjMap, min_replicas_lower_bound: int) -> list[FieldError]:
    """validateHorizontalPodAutoscalerSpec."""
    errs: list[FieldError] = []
    min_replicas, max_replicas = spec.get("minReplicas"), spec.get("maxReplicas") or 0
    if isinstance(min_replicas, int) and min_replicas < min_replicas_lower_bound:
        errs.append(invalid(_SPEC.child("minReplicas"), min_replicas,
                            f"must be greater than or equal to {min_replicas_lower_bound}"))
    if isinstance(max_replicas, int):
        if max_replicas < 1:
            errs.append(invalid(_SPEC.child("maxReplicas"), max_replicas,
                                "must be greater than 0"))
        if isinstance(min_replicas, int) and max_replicas < min_replicas:
            errs.append(invalid(_SPEC.child("maxReplicas"), max_replicas,
                                "must be greater than or equal to `minReplicas`"))
    errs.extend(validate_cross_version_object_reference(map_of(spec, "scaleTargetRef"),
                                                        _SPEC.child("scaleTargetRef")))
    metrics = spec.get("metrics")
    errs.extend(_validate_metrics(metrics if isinstance(metrics, list) else [],
                                  _SPEC.child("metrics"), min_replicas))
    behavior = spec.get("behavior")
    if isinstance(behavior, Mapping):
        for key in ("scaleUp", "scaleDown"):
            errs.extend(_validate_scaling_rules(behavior.get(key),
                                                _SPEC.child("behavior", key)))
    return errs


def validate_hpa(hpa: ObjMap) -> list[FieldError]:
    """ValidateHorizontalPodAutoscaler (no HPAScaleToZero: minReplicas >= 1)."""
    errs = validate_object_meta(map_of(hpa, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)
    errs.extend(_validate_spec(map_of(hpa, "spec"), 1))
    return errs


def validate_hpa_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateHorizontalPodAutoscalerUpdate: a stored minReplicas of 0 may stay 0."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    bound = 0 if map_of(old, "spec").get("minReplicas") == 0 else 1
    errs.extend(_validate_spec(map_of(new, "spec"), bound))
    return errs


def validate_hpa_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateHorizontalPodAutoscalerStatusUpdate: the replica counts are not negative."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    status = map_of(new, "status")
    for key in ("currentReplicas", "desiredReplicas"):
        value = status.get(key) or 0
        if isinstance(value, int) and value < 0:
            errs.append(invalid(Path("status", key), value, IS_NEGATIVE_ERROR_MSG))
    return errs


# -- strategy ----------------------------------------------------------------------------------


def _empty_status() -> Obj:
    """A zero HorizontalPodAutoscalerStatus as Go encodes it: currentMetrics and
    desiredReplicas are not omitempty (kubectl sends the same)."""
    return {"currentMetrics": None, "desiredReplicas": 0}


def _uses_tolerance(hpa: ObjMap) -> bool:
    behavior = map_of(map_of(hpa, "spec"), "behavior")
    return any(map_of(behavior, key).get("tolerance") is not None
               for key in ("scaleUp", "scaleDown"))


def _drop_tolerance(hpa: Obj, old: ObjMap | None) -> None:
    """dropDisabledFields: HPAConfigurableTolerance is off, so a rule's tolerance goes unless
    the stored object already uses one."""
    if old is not None and _uses_tolerance(old):
        return
    behavior = map_of(map_of(hpa, "spec"), "behavior")
    for key in ("scaleUp", "scaleDown"):
        rules = behavior.get(key)
        if isinstance(rules, dict):
            rules.pop("tolerance", None)


def prepare_hpa_for_create(hpa: ObjMap) -> Obj:
    out = copy.deepcopy(dict(hpa))
    out["status"] = _empty_status()
    _drop_tolerance(out, None)
    return out


def prepare_hpa_for_update(new: ObjMap, old: ObjMap) -> Obj:
    out = copy.deepcopy(dict(new))
    out["status"] = copy.deepcopy(old.get("status") or _empty_status())
    _drop_tolerance(out, old)
    return out


def prepare_hpa_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    out = copy.deepcopy(dict(new))
    out["spec"] = copy.deepcopy(old.get("spec") or {})
    return out
