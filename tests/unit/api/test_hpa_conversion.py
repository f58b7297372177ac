"""autoscaling/v1 <-> autoscaling/v2 HorizontalPodAutoscalers (pkg/apis/autoscaling/v1/
conversion.go): what v1 shows of a v2 object, the round-trip annotations, and that a v2 object
read as v1 and written back loses nothing."""

from __future__ import annotations

import copy
import json
from typing import Any

from svcnet.api.autoscaling import set_defaults_hpa
from svcnet.api.autoscalingv1 import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    METRICS_ANNOTATION,
    set_defaults_hpa_v1,
    to_v1,
    to_v2,
    validate_hpa_v1,
)

Obj = dict[str, Any]

CPU = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 50}}}


def _v2(metrics: list[Obj], **extra: Any) -> Obj:
    hpa: Obj = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                             "annotations": {"team": "a"}},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": "web"},
                         "minReplicas": 2, "maxReplicas": 9, "metrics": metrics, **extra},
                "status": {"currentMetrics": None, "desiredReplicas": 0}}
    return set_defaults_hpa(hpa)


EVERY_METRIC = [
    {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "500Mi"}}},
    {"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "app",
        "target": {"type": "Utilization", "averageUtilization": 60}}},
    {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {
        "matchLabels": {"a": "b"}}}, "target": {"type": "AverageValue", "averageValue": "10"}}},
    {"type": "Object", "object": {
        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                            "name": "main"},
        "metric": {"name": "hits"}, "target": {"type": "Value", "value": "2k"}}},
    {"type": "External", "external": {"metric": {"name": "queue"},
                                      "target": {"type": "AverageValue",
                                                 "averageValue": "30"}}},
    CPU,
]


def test_cpu_metric_and_status_in_v1_fields() -> None:
    hpa = _v2([CPU])
    hpa["status"] = {"currentReplicas": 3, "desiredReplicas": 4, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": 45, "averageValue": "200m"}}}]}
    v1 = to_v1(hpa)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web",
                                             "apiVersion": "apps/v1"},
                          "minReplicas": 2, "maxReplicas": 9,
                          "targetCPUUtilizationPercentage": 50}
    assert v1["status"] == {"currentReplicas": 3, "desiredReplicas": 4,
                            "currentCPUUtilizationPercentage": 45}
    annotations = v1["metadata"]["annotations"]
    assert METRICS_ANNOTATION not in annotations  # the cpu metric is the v1 field
    # Every current metric is kept, for its raw value too.
    assert json.loads(annotations[CURRENT_METRICS_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 45,
                                          "currentAverageValue": "200m"}}]
    assert to_v2(v1) == hpa


def test_other_metrics_behavior_and_conditions_go_to_annotations() -> None:
    hpa = _v2(EVERY_METRIC, behavior={"scaleDown": {"stabilizationWindowSeconds": 60}})
    hpa["status"]["conditions"] = [{"type": "AbleToScale", "status": "True",
                                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                                    "reason": "ReadyForNewScale", "message": "ok"}]
    v1 = to_v1(hpa)
    annotations = v1["metadata"]["annotations"]
    assert annotations["team"] == "a"
    assert json.loads(annotations[METRICS_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "500Mi"}},
        {"type": "ContainerResource", "containerResource": {
            "name": "cpu", "targetAverageUtilization": 60, "container": "app"}},
        {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10",
                                  "selector": {"matchLabels": {"a": "b"}}}},
        {"type": "Object", "object": {
            "target": {"kind": "Ingress", "name": "main", "apiVersion": "networking.k8s.io/v1"},
            "metricName": "hits", "targetValue": "2k"}},
        {"type": "External", "external": {"metricName": "queue",
                                          "targetAverageValue": "30"}}]
    # The internal type's Go field names, nulls included.
    assert annotations[BEHAVIOR_ANNOTATION] == (
        '{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":['
        '{"Type":"Pods","Value":4,"PeriodSeconds":15},'
        '{"Type":"Percent","Value":100,"PeriodSeconds":15}],"Tolerance":null},'
        '"ScaleDown":{"StabilizationWindowSeconds":60,"SelectPolicy":"Max","Policies":['
        '{"Type":"Percent","Value":100,"PeriodSeconds":15}],"Tolerance":null}}')
    assert json.loads(annotations[CONDITIONS_ANNOTATION]) == hpa["status"]["conditions"]
    back = to_v2(v1)
    assert back == hpa
    assert back["metadata"]["annotations"] == {"team": "a"}


def test_round_trip_loses_nothing_and_is_stable() -> None:
    hpa = _v2(EVERY_METRIC, behavior={"scaleUp": {"selectPolicy": "Disabled"}})
    hpa["status"] = {"observedGeneration": 3, "lastScaleTime": "2025-01-01T00:00:00Z",
                     "currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
                         {"type": "Pods", "pods": {"metric": {"name": "qps"},
                                                   "current": {"averageValue": "7"}}},
                         {"type": "External", "external": {"metric": {"name": "queue"},
                                                           "current": {"value": "3",
                                                                       "averageValue": "1"}}}]}
    original = copy.deepcopy(hpa)
    v1 = to_v1(hpa)
    assert hpa == original  # the input is not changed
    assert to_v2(v1) == original
    assert to_v1(to_v2(v1)) == v1


def test_annotations_already_there_are_replaced_not_kept() -> None:
    hpa = _v2([CPU])
    hpa["metadata"]["annotations"][METRICS_ANNOTATION] = "stale"
    v1 = to_v1(hpa)
    assert METRICS_ANNOTATION not in v1["metadata"]["annotations"]


def test_upstream_order_cpu_metric_last_and_quirks() -> None:
    # The cpu metric is the v1 field: it comes back after the annotation's metrics.
    hpa = _v2([CPU, EVERY_METRIC[0]])
    assert to_v2(to_v1(hpa))["spec"]["metrics"] == [EVERY_METRIC[0], CPU]
    # An Object target of averageValue comes back with v1's zero targetValue.
    obj = {"type": "Object", "object": {
        "describedObject": {"kind": "Ingress", "name": "main"}, "metric": {"name": "hits"},
        "target": {"type": "AverageValue", "averageValue": "5"}}}
    back = to_v2(to_v1(_v2([obj])))["spec"]["metrics"][0]["object"]["target"]
    assert back == {"type": "AverageValue", "value": "0", "averageValue": "5"}


def test_v1_object_to_v2() -> None:
    v1: Obj = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                        "maxReplicas": 4}}
    set_defaults_hpa_v1(v1)
    assert v1["spec"]["minReplicas"] == 1
    v2 = to_v2(v1)
    # No targetCPUUtilizationPercentage and no metrics: the default cpu 80%.
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert "annotations" not in v2["metadata"]
    v1["spec"]["targetCPUUtilizationPercentage"] = 0
    assert [e.field for e in validate_hpa_v1(v1)] == [
        "spec.metrics[0].resource.target.averageUtilization"]


def test_behavior_annotation_read_as_go_does() -> None:
    v1: Obj = {"metadata": {"name": "web", "annotations": {
        BEHAVIOR_ANNOTATION: '{"scaleDown":{"stabilizationWindowSeconds":30}}'}},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 2}}
    assert to_v2(v1)["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 30}}
    for ignored in ("not json", "{}", '{"ScaleUp":null}'):
        v1["metadata"]["annotations"][BEHAVIOR_ANNOTATION] = ignored
        out = to_v2(v1)
        assert "behavior" not in out["spec"] and "annotations" not in out["metadata"]
