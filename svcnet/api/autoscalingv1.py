"""autoscaling/v1 HorizontalPodAutoscalers as a view of the stored autoscaling/v2 objects.

Theory of operation, after upstream's ``pkg/apis/autoscaling/v1/conversion.go`` and
``pkg/apis/autoscaling/helpers.go`` (kube-apiserver stores v2 and converts v1 through its
internal version; svcnet converts v1 <-> v2 directly, which is the same since v2 and the
internal version have the same shape):

* v2 -> v1 (:func:`to_v1`): ``spec.targetCPUUtilizationPercentage`` is the utilization of the
  first Resource ``cpu`` metric (none when that metric targets an average value); every other
  metric goes, as a v1 ``MetricSpec`` (the v2beta1 shapes: ``targetAverageUtilization``,
  ``metricName``...), into the annotation ``autoscaling.alpha.kubernetes.io/metrics``. Status:
  ``currentCPUUtilizationPercentage`` from the cpu Resource current metrics (the last one
  wins, as upstream's loop has no break), and *all* current metrics into
  ``.../current-metrics`` (to keep the raw values too), the conditions into
  ``.../conditions``, a behavior into ``.../behavior``. Upstream marshals the *internal*
  behavior type there, which has no JSON tags: the keys are Go's field names
  (``{"ScaleUp":{"StabilizationWindowSeconds":0,...}``), nil pointers are ``null``. Any of these
  four annotations the object carried already is dropped first.
* v1 -> v2 (:func:`to_v2`): the annotation's metrics come first, then the cpu one (so a v2
  object whose cpu metric was not last comes back reordered, as upstream's does); a behavior
  annotation is read as Go's ``json.Unmarshal`` does (key names case-insensitive) and only
  when well formed and not empty; the current-metrics annotation replaces what
  ``currentCPUUtilizationPercentage`` says; no metric at all means the default cpu 80%; the
  conditions come back from theirs; then the four annotations are dropped.

Upstream's quirks kept: an Object or Pods target (or current value) that is unset becomes a
zero quantity ``"0"`` in v1 (non-pointer fields there), and comes back as ``value: "0"``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import list_of, map_of
from svcnet.api.autoscaling import (
    API_VERSION as V2,
    KIND,
    default_cpu_metric,
    set_defaults_hpa,
    validate_hpa,
)
from svcnet.api.errors import FieldError
from svcnet.api.gojson import go_dumps

__all__ = [
    "API_VERSION", "BEHAVIOR_ANNOTATION", "CONDITIONS_ANNOTATION",
    "CURRENT_METRICS_ANNOTATION", "METRICS_ANNOTATION", "ROUND_TRIP_ANNOTATIONS",
    "set_defaults_hpa_v1", "to_v1", "to_v2", "validate_hpa_v1",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

API_VERSION: Final = "autoscaling/v1"
METRICS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/behavior"
#: DropRoundTripHorizontalPodAutoscalerAnnotations' four.
ROUND_TRIP_ANNOTATIONS: Final = (METRICS_ANNOTATION, BEHAVIOR_ANNOTATION,
                                 CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION)
_ZERO: Final = "0"  # a zero resource.Quantity as JSON


def _set(out: Obj, key: str, value: object) -> None:
    """An ``omitempty`` pointer or struct field: set only when there is a value."""
    if value is not None:
        out[key] = copy.deepcopy(value)


def set_defaults_hpa_v1(hpa: Obj) -> Obj:
    """autoscaling/v1 SetDefaults_HorizontalPodAutoscaler: minReplicas 1."""
    spec = hpa.get("spec")
    if isinstance(spec, dict) and spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    return hpa


def validate_hpa_v1(hpa: Obj) -> list[FieldError]:
    """A v1 object's validation: that of the v2 object it is stored as (upstream validates
    the internal version: the field paths are v2's)."""
    return validate_hpa(set_defaults_hpa(to_v2(hpa)))


def _without_round_trip(annotations: object) -> Obj | None:
    if not isinstance(annotations, Mapping):
        return None
    return {k: v for k, v in annotations.items() if k not in ROUND_TRIP_ANNOTATIONS}


def _is_cpu(metric: ObjMap) -> bool:
    return metric.get("type") == "Resource" and map_of(metric, "resource").get("name") == "cpu"


def _ref(ref: ObjMap) -> Obj:
    """A CrossVersionObjectReference (kind, name, apiVersion omitempty)."""
    out: Obj = {"kind": ref.get("kind", ""), "name": ref.get("name", "")}
    if ref.get("apiVersion"):
        out["apiVersion"] = ref["apiVersion"]
    return out


# -- metric specs ------------------------------------------------------------------------------


def _spec_to_v1(metric: ObjMap) -> Obj:
    """Convert_autoscaling_MetricSpec_To_v1_MetricSpec."""
    out: Obj = {"type": metric.get("type", "")}
    obj, pods = map_of(metric, "object"), map_of(metric, "pods")
    if "object" in metric and isinstance(metric["object"], Mapping):
        target, ident = map_of(obj, "target"), map_of(obj, "metric")
        o: Obj = {"target": _ref(map_of(obj, "describedObject")),
                  "metricName": ident.get("name", ""),
                  "targetValue": target.get("value", _ZERO)}
        _set(o, "selector", ident.get("selector"))
        _set(o, "averageValue", target.get("averageValue"))
        out["object"] = o
    if "pods" in metric and isinstance(metric["pods"], Mapping):
        target, ident = map_of(pods, "target"), map_of(pods, "metric")
        p: Obj = {"metricName": ident.get("name", ""),
                  "targetAverageValue": target.get("averageValue", _ZERO)}
        _set(p, "selector", ident.get("selector"))
        out["pods"] = p
    for key in ("resource", "containerResource"):
        if isinstance(metric.get(key), Mapping):
            src = metric[key]
            target = map_of(src, "target")
            r: Obj = {"name": src.get("name", "")}
            _set(r, "targetAverageUtilization", target.get("averageUtilization"))
            _set(r, "targetAverageValue", target.get("averageValue"))
            if key == "containerResource":
                r["container"] = src.get("container", "")
            out[key] = r
    if isinstance(metric.get("external"), Mapping):
        ext = metric["external"]
        target, ident = map_of(ext, "target"), map_of(ext, "metric")
        e: Obj = {"metricName": ident.get("name", "")}
        _set(e, "metricSelector", ident.get("selector"))
        _set(e, "targetValue", target.get("value"))
        _set(e, "targetAverageValue", target.get("averageValue"))
        out["external"] = e
    return out


def _identifier(name: object, selector: object) -> Obj:
    out: Obj = {"name": name if isinstance(name, str) else ""}
    _set(out, "selector", selector)
    return out


def _spec_to_v2(metric: ObjMap) -> Obj:
    """Convert_v1_MetricSpec_To_autoscaling_MetricSpec."""
    out: Obj = {"type": metric.get("type", "")}
    if isinstance(metric.get("object"), Mapping):
        src = metric["object"]
        average = src.get("averageValue")
        target: Obj = {"type": "Value" if average is None else "AverageValue",
                       "value": copy.deepcopy(src.get("targetValue", _ZERO))}
        _set(target, "averageValue", average)
        out["object"] = {"describedObject": _ref(map_of(src, "target")),
                         "target": target,
                         "metric": _identifier(src.get("metricName"), src.get("selector"))}
    if isinstance(metric.get("pods"), Mapping):
        src = metric["pods"]
        out["pods"] = {"metric": _identifier(src.get("metricName"), src.get("selector")),
                       "target": {"type": "AverageValue", "averageValue": copy.deepcopy(
                           src.get("targetAverageValue", _ZERO))}}
    for key in ("resource", "containerResource"):
        if isinstance(metric.get(key), Mapping):
            src = metric[key]
            utilization = src.get("targetAverageUtilization")
            target = {"type": "AverageValue" if utilization is None else "Utilization"}
            _set(target, "averageUtilization", utilization)
            _set(target, "averageValue", src.get("targetAverageValue"))
            r: Obj = {"name": src.get("name", ""), "target": target}
            if key == "containerResource":
                r["container"] = src.get("container", "")
            out[key] = r
    if isinstance(metric.get("external"), Mapping):
        src = metric["external"]
        value = src.get("targetValue")
        target = {"type": "AverageValue" if value is None else "Value"}
        _set(target, "value", value)
        _set(target, "averageValue", src.get("targetAverageValue"))
        out["external"] = {"metric": _identifier(src.get("metricName"),
                                                 src.get("metricSelector")),
                           "target": target}
    return out


# -- metric statuses ---------------------------------------------------------------------------


def _status_to_v1(metric: ObjMap) -> Obj:
    """Convert_autoscaling_MetricStatus_To_v1_MetricStatus."""
    out: Obj = {"type": metric.get("type", "")}
    if isinstance(metric.get("object"), Mapping):
        src = metric["object"]
        current, ident = map_of(src, "current"), map_of(src, "metric")
        o: Obj = {"target": _ref(map_of(src, "describedObject")),
                  "metricName": ident.get("name", ""),
                  "currentValue": current.get("value", _ZERO)}
        _set(o, "selector", ident.get("selector"))
        _set(o, "averageValue", current.get("averageValue"))
        out["object"] = o
    if isinstance(metric.get("pods"), Mapping):
        src = metric["pods"]
        current, ident = map_of(src, "current"), map_of(src, "metric")
        p: Obj = {"metricName": ident.get("name", ""),
                  "currentAverageValue": current.get("averageValue", _ZERO)}
        _set(p, "selector", ident.get("selector"))
        out["pods"] = p
    for key in ("resource", "containerResource"):
        if isinstance(metric.get(key), Mapping):
            src = metric[key]
            current = map_of(src, "current")
            r: Obj = {"name": src.get("name", "")}
            _set(r, "currentAverageUtilization", current.get("averageUtilization"))
            r["currentAverageValue"] = current.get("averageValue", _ZERO)
            if key == "containerResource":
                r["container"] = src.get("container", "")
            out[key] = r
    if isinstance(metric.get("external"), Mapping):
        src = metric["external"]
        current, ident = map_of(src, "current"), map_of(src, "metric")
        e: Obj = {"metricName": ident.get("name", "")}
        _set(e, "metricSelector", ident.get("selector"))
        e["currentValue"] = current.get("value", _ZERO)
        _set(e, "currentAverageValue", current.get("averageValue"))
        out["external"] = e
    return out


def _status_to_v2(metric: ObjMap) -> Obj:
    """Convert_v1_MetricStatus_To_autoscaling_MetricStatus."""
    out: Obj = {"type": metric.get("type", "")}
    if isinstance(metric.get("object"), Mapping):
        src = metric["object"]
        current: Obj = {"value": copy.deepcopy(src.get("currentValue", _ZERO))}
        _set(current, "averageValue", src.get("averageValue"))
        out["object"] = {"metric": _identifier(src.get("metricName"), src.get("selector")),
                         "current": current,
                         "describedObject": _ref(map_of(src, "target"))}
    if isinstance(metric.get("pods"), Mapping):
        src = metric["pods"]
        out["pods"] = {"metric": _identifier(src.get("metricName"), src.get("selector")),
                       "current": {"averageValue": copy.deepcopy(
                           src.get("currentAverageValue", _ZERO))}}
    for key in ("resource", "containerResource"):
        if isinstance(metric.get(key), Mapping):
            src = metric[key]
            current = {"averageValue": copy.deepcopy(src.get("currentAverageValue", _ZERO))}
            _set(current, "averageUtilization", src.get("currentAverageUtilization"))
            r: Obj = {"name": src.get("name", ""), "current": current}
            if key == "containerResource":
                r["container"] = src.get("container", "")
            out[key] = r
    if isinstance(metric.get("external"), Mapping):
        src = metric["external"]
        current = {"value": copy.deepcopy(src.get("currentValue", _ZERO))}
        _set(current, "averageValue", src.get("currentAverageValue"))
        out["external"] = {"metric": _identifier(src.get("metricName"),
                                                 src.get("metricSelector")),
                           "current": current}
    return out


# -- conditions and behavior -------------------------------------------------------------------


def _condition(cond: ObjMap) -> Obj:
    """A HorizontalPodAutoscalerCondition (the same fields in v1 and v2)."""
    out: Obj = {"type": cond.get("type", ""), "status": cond.get("status", "")}
    for key in ("lastTransitionTime", "reason", "message"):
        if cond.get(key):
            out[key] = cond[key]
    return out


_RULE_FIELDS: Final = (("StabilizationWindowSeconds", "stabilizationWindowSeconds"),
                       ("SelectPolicy", "selectPolicy"), ("Policies", "policies"),
                       ("Tolerance", "tolerance"))
_POLICY_FIELDS: Final = (("Type", "type"), ("Value", "value"),
                         ("PeriodSeconds", "periodSeconds"))


def _go_rules(rules: object) -> Obj | None:
    """An internal HPAScalingRules as Go marshals it: field names, nulls included."""
    if not isinstance(rules, Mapping):
        return None
    out: Obj = {}
    for go_name, name in _RULE_FIELDS:
        value = rules.get(name)
        if name == "policies" and isinstance(value, list):
            value = [{g: p.get(n, "" if n == "type" else 0) for g, n in _POLICY_FIELDS}
                     for p in value if isinstance(p, Mapping)]
        out[go_name] = value
    return out


def _behavior_annotation(behavior: ObjMap) -> str:
    return go_dumps({"ScaleUp": _go_rules(behavior.get("scaleUp")),
                     "ScaleDown": _go_rules(behavior.get("scaleDown"))})


def _field(obj: ObjMap, go_name: str) -> Any:
    """encoding/json's field lookup: the exact name, else the first case-insensitive match."""
    if go_name in obj:
        return obj[go_name]
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == go_name.lower():
            return value
    return None


def _from_go_rules(rules: object) -> Obj | None:
    if not isinstance(rules, Mapping):
        return None
    out: Obj = {}
    for go_name, name in _RULE_FIELDS:
        value = _field(rules, go_name)
        if value is None:
            continue
        if name == "policies" and isinstance(value, list):
            value = [{n: _field(p, g) for g, n in _POLICY_FIELDS if _field(p, g) is not None}
                     for p in value if isinstance(p, Mapping)]
        out[name] = value
    return out


def _behavior_from_annotation(text: str) -> Obj | None:
    """The annotation's behavior, only when it parses and is not empty (upstream ignores a
    malformed one)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, Mapping):
        return None
    behavior: Obj = {}
    for go_name, name in (("ScaleUp", "scaleUp"), ("ScaleDown", "scaleDown")):
        rules = _from_go_rules(_field(raw, go_name))
        if rules is not None:
            behavior[name] = rules
    return behavior or None


def _json_list(annotations: ObjMap, key: str) -> list[Any] | None:
    text = annotations.get(key)
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


# -- the objects -------------------------------------------------------------------------------


def to_v1(hpa: ObjMap) -> Obj:
    """The autoscaling/v2 object ``hpa`` as autoscaling/v1."""
    out: Obj = {"apiVersion": API_VERSION, "kind": KIND}
    meta = copy.deepcopy(dict(map_of(hpa, "metadata")))
    spec, status = map_of(hpa, "spec"), map_of(hpa, "status")
    metrics = [m for m in list_of(spec, "metrics") if isinstance(m, Mapping)]
    current = [m for m in list_of(status, "currentMetrics") if isinstance(m, Mapping)]
    conditions = [c for c in list_of(status, "conditions") if isinstance(c, Mapping)]

    v1_spec: Obj = {"scaleTargetRef": _ref(map_of(spec, "scaleTargetRef"))}
    _set(v1_spec, "minReplicas", spec.get("minReplicas"))
    v1_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    for metric in metrics:
        if _is_cpu(metric):
            utilization = map_of(map_of(metric, "resource"), "target").get("averageUtilization")
            _set(v1_spec, "targetCPUUtilizationPercentage", utilization)
            break
    v1_status: Obj = {}
    _set(v1_status, "observedGeneration", status.get("observedGeneration"))
    _set(v1_status, "lastScaleTime", status.get("lastScaleTime"))
    v1_status["currentReplicas"] = status.get("currentReplicas", 0)
    v1_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    for metric in current:
        if _is_cpu(metric):
            _set(v1_status, "currentCPUUtilizationPercentage",
                 map_of(map_of(metric, "resource"), "current").get("averageUtilization"))

    annotations = _without_round_trip(meta.get("annotations"))
    others = [_spec_to_v1(m) for m in metrics if not (
        _is_cpu(m) and map_of(map_of(m, "resource"), "target").get("averageUtilization")
        is not None)]
    extra: Obj = {}
    if others:
        extra[METRICS_ANNOTATION] = go_dumps(others)
    if current:
        extra[CURRENT_METRICS_ANNOTATION] = go_dumps([_status_to_v1(m) for m in current])
    behavior = spec.get("behavior")
    if isinstance(behavior, Mapping):
        extra[BEHAVIOR_ANNOTATION] = _behavior_annotation(behavior)
    if conditions:
        extra[CONDITIONS_ANNOTATION] = go_dumps([_condition(c) for c in conditions])
    if extra:
        annotations = {**(annotations or {}), **extra}
    if annotations is not None:
        meta["annotations"] = annotations
    out["metadata"] = meta
    out["spec"] = v1_spec
    out["status"] = v1_status
    return out


def to_v2(hpa: ObjMap) -> Obj:
    """The autoscaling/v1 object ``hpa`` as autoscaling/v2 (what is stored)."""
    out: Obj = {"apiVersion": V2, "kind": KIND}
    meta = copy.deepcopy(dict(map_of(hpa, "metadata")))
    spec, status = map_of(hpa, "spec"), map_of(hpa, "status")
    annotations = map_of(meta, "annotations")

    v2_spec: Obj = {"scaleTargetRef": _ref(map_of(spec, "scaleTargetRef"))}
    _set(v2_spec, "minReplicas", spec.get("minReplicas"))
    v2_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    metrics: list[Obj] = []
    cpu = spec.get("targetCPUUtilizationPercentage")
    if cpu is not None:
        metrics.append(default_cpu_metric(cpu))
    others = _json_list(annotations, METRICS_ANNOTATION)
    if others is not None:
        metrics = [_spec_to_v2(m) for m in others if isinstance(m, Mapping)] + metrics
    behavior_text = annotations.get(BEHAVIOR_ANNOTATION)
    if isinstance(behavior_text, str):
        behavior = _behavior_from_annotation(behavior_text)
        if behavior is not None:
            v2_spec["behavior"] = behavior

    v2_status: Obj = {}
    _set(v2_status, "observedGeneration", status.get("observedGeneration"))
    _set(v2_status, "lastScaleTime", status.get("lastScaleTime"))
    if status.get("currentReplicas"):
        v2_status["currentReplicas"] = status["currentReplicas"]
    v2_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    current: list[Obj] = []
    cpu_now = status.get("currentCPUUtilizationPercentage")
    if cpu_now is not None:
        current = [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization": cpu_now}}}]
    saved = _json_list(annotations, CURRENT_METRICS_ANNOTATION)
    if saved is not None:
        current = [_status_to_v2(m) for m in saved if isinstance(m, Mapping)]
    v2_status["currentMetrics"] = current or None  # not omitempty in v2
    if not metrics:
        metrics = [default_cpu_metric()]
    v2_spec["metrics"] = metrics
    conditions = _json_list(annotations, CONDITIONS_ANNOTATION)
    if conditions:
        v2_status["conditions"] = [_condition(c) for c in conditions if isinstance(c, Mapping)]

    if "annotations" in meta:
        kept = _without_round_trip(meta["annotations"])
        if kept:
            meta["annotations"] = kept
        else:
            del meta["annotations"]
    out["metadata"] = meta
    out["spec"] = v2_spec
    out["status"] = v2_status
    return out
