"""HorizontalPodAutoscaler defaulting and validation (autoscaling/v2), with upstream's cases
(pkg/apis/autoscaling/validation/validation_test.go, pkg/apis/autoscaling/v2/defaults_test.go):
each error's field path and message."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api.autoscaling import (
    prepare_hpa_for_create,
    prepare_hpa_for_status_update,
    prepare_hpa_for_update,
    set_defaults_hpa,
    validate_hpa,
    validate_hpa_status_update,
    validate_hpa_update,
)
from svcnet.api.errors import aggregate_message

Obj = dict[str, Any]


def _hpa(**spec: Any) -> Obj:
    base: Obj = {"scaleTargetRef": {"kind": "ReplicationController", "name": "myrc"},
                 "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization",
                                               "averageUtilization": 70}}}]}
    base.update(spec)
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "myautoscaler", "namespace": "default",
                         "resourceVersion": "1"}, "spec": base}


def _errors(hpa: Obj) -> list[str]:
    return [f"{e.field}: {e.body()}" for e in validate_hpa(hpa)]


def test_defaults() -> None:
    hpa = set_defaults_hpa({"spec": {"scaleTargetRef": {"kind": "D", "name": "d"},
                                     "maxReplicas": 3}})
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert "behavior" not in hpa["spec"]  # no behavior stays none


def test_behavior_defaults_fill_each_rule() -> None:
    hpa = set_defaults_hpa({"spec": {"behavior": {"scaleDown": {
        "stabilizationWindowSeconds": 60}}}})
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"] == {
        "stabilizationWindowSeconds": 0, "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                     {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    # Scale-down keeps no stabilization of its own unless given (the controller's flag).
    assert behavior["scaleDown"] == {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                                     "policies": [{"type": "Percent", "value": 100,
                                                   "periodSeconds": 15}]}
    bare = set_defaults_hpa({"spec": {"behavior": {}}})["spec"]["behavior"]["scaleDown"]
    assert "stabilizationWindowSeconds" not in bare
    given = set_defaults_hpa({"spec": {"behavior": {"scaleUp": {
        "selectPolicy": "Disabled", "policies": [{"type": "Pods", "value": 1,
                                                  "periodSeconds": 60}]}}}})
    assert given["spec"]["behavior"]["scaleUp"] == {
        "stabilizationWindowSeconds": 0, "selectPolicy": "Disabled",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}


@pytest.mark.parametrize("spec", [
    {},
    {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "AverageValue", "averageValue": "100m"}}}]},
    {"metrics": [{"type": "Pods", "pods": {"metric": {"name": "somemetric"}, "target": {
        "type": "AverageValue", "averageValue": "100m"}}}]},
    {"metrics": [{"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "test-container",
        "target": {"type": "Utilization", "averageUtilization": 70}}}]},
    {"metrics": [{"type": "Object", "object": {
        "describedObject": {"kind": "ReplicationController", "name": "myrc"},
        "metric": {"name": "somemetric"}, "target": {"type": "Value", "value": "100m"}}}]},
    {"metrics": [{"type": "External", "external": {
        "metric": {"name": "somemetric", "selector": {"matchLabels": {"label": "value"}}},
        "target": {"type": "Value", "value": "100m"}}}]},
    {"behavior": {"scaleUp": {"stabilizationWindowSeconds": 3600, "selectPolicy": "Min",
                              "policies": [{"type": "Pods", "value": 1,
                                            "periodSeconds": 1800}]}}},
])
def test_valid(spec: Obj) -> None:
    assert validate_hpa(_hpa(**spec)) == []


@pytest.mark.parametrize(("spec", "want"), [
    ({"scaleTargetRef": {"name": "myrc"}}, ["spec.scaleTargetRef.kind: Required value"]),
    ({"scaleTargetRef": {"kind": "..", "name": "myrc"}},
     ['spec.scaleTargetRef.kind: Invalid value: "..": may not be \'..\'']),
    ({"scaleTargetRef": {"kind": "ReplicationController"}},
     ["spec.scaleTargetRef.name: Required value"]),
    ({"scaleTargetRef": {"kind": "ReplicationController", "name": "my%rc"}},
     ['spec.scaleTargetRef.name: Invalid value: "my%rc": may not contain \'%\'']),
    ({"minReplicas": -1}, ["spec.minReplicas: Invalid value: -1: must be greater than or equal "
                           "to 1"]),
    ({"minReplicas": 7}, ["spec.maxReplicas: Invalid value: 5: must be greater than or equal "
                          "to `minReplicas`"]),
    ({"maxReplicas": 0, "minReplicas": 0},
     ["spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
      "spec.maxReplicas: Invalid value: 0: must be greater than 0",
      "spec.metrics: Forbidden: must specify at least one Object or External metric to "
      "support scaling to zero replicas"]),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 70, "averageValue": "100"}}}]},
     ["spec.metrics[0].resource.target.averageValue: Forbidden: may not set both a target raw "
      "value and a target utilization"]),
    ({"metrics": [{"type": "Resource", "resource": {"target": {
        "type": "Utilization", "averageUtilization": 70}}}]},
     ["spec.metrics[0].resource.name: Required value: must specify a resource name"]),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": -10}}}]},
     ["spec.metrics[0].resource.target.averageUtilization: Invalid value: -10: must be greater "
      "than 0"]),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Value"}}}]},
     ["spec.metrics[0].resource.target.averageUtilization: Required value: must set either a "
      "target raw value or a target utilization"]),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Foo", "averageValue": "-1"}}}]},
     ['spec.metrics[0].resource.target.type: Invalid value: "Foo": must be either '
      "Utilization, Value, or AverageValue",
      "spec.metrics[0].resource.target.averageValue: Invalid value: -1: must be positive"]),
    ({"metrics": [{"type": "Pods", "pods": {"metric": {}, "target": {
        "type": "AverageValue", "averageValue": "100m"}}}]},
     ["spec.metrics[0].pods.metric.name: Required value: must specify a metric name"]),
    ({"metrics": [{"type": "Pods", "pods": {"metric": {"name": "somemetric"}, "target": {
        "type": "Value", "value": "100m"}}}]},
     ["spec.metrics[0].pods.target.averageValue: Required value: must specify a positive "
      "target averageValue"]),
    ({"metrics": [{"type": "ContainerResource", "containerResource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
     ["spec.metrics[0].containerResource.container: Required value: must specify a "
      "container"]),
    ({"metrics": [{"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "---***",
        "target": {"type": "Utilization", "averageUtilization": 70}}}]},
     ['spec.metrics[0].containerResource.container: Invalid value: "---***": a lowercase '
      "RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
      "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
      "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    ({"metrics": [{"type": "Object", "object": {
        "describedObject": {"name": "myrc"}, "metric": {"name": "somemetric"},
        "target": {"type": "Value", "value": "100m"}}}]},
     ["spec.metrics[0].object.describedObject.kind: Required value"]),
    ({"metrics": [{"type": "Object", "object": {
        "describedObject": {"kind": "ReplicationController", "name": "myrc"},
        "metric": {"name": "somemetric"}, "target": {"type": "Value"}}}]},
     ["spec.metrics[0].object.target.averageValue: Required value: must set either a target "
      "value or averageValue"]),
    ({"metrics": [{"type": "External", "external": {
        "metric": {"name": "somemetric"},
        "target": {"type": "Value", "value": "300m", "averageValue": "100m"}}}]},
     ["spec.metrics[0].external.target.value: Forbidden: may not set both a target value for "
      "metric and a per-pod target"]),
    ({"metrics": [{"type": "External", "external": {
        "metric": {"name": "somemetric"}, "target": {"type": "Value"}}}]},
     ["spec.metrics[0].external.target.averageValue: Required value: must set either a target "
      "value for metric or a per-pod target"]),
    ({"metrics": [{}]},
     ["spec.metrics[0].type: Required value: must specify a metric source type",
      'spec.metrics[0].type: Unsupported value: "": supported values: "ContainerResource", '
      '"External", "Object", "Pods", "Resource"',
      'spec.metrics[0].type: Unsupported value: "": supported values: "ContainerResource", '
      '"External", "Object", "Pods", "Resource"']),
    ({"metrics": [{"type": "Resource"}]},
     ["spec.metrics[0].resource: Required value: must populate information for the given "
      "metric source"]),
    ({"metrics": [{"type": "Resource",
                   "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                          "averageUtilization": 70}},
                   "pods": {"metric": {"name": "somemetric"},
                            "target": {"type": "AverageValue", "averageValue": "100m"}}}]},
     ["spec.metrics[0].pods: Forbidden: must populate the given metric source only"]),
    ({"behavior": {"scaleUp": {"stabilizationWindowSeconds": 3601, "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 1}]}}},
     ["spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: 3601: must be less "
      "than or equal to 3600"]),
    ({"behavior": {"scaleDown": {"stabilizationWindowSeconds": -1, "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 1}]}}},
     ["spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: -1: must be greater "
      "than or equal to zero"]),
    ({"behavior": {"scaleUp": {"selectPolicy": "foo", "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 1}]}}},
     ['spec.behavior.scaleUp.selectPolicy: Unsupported value: "foo": supported values: '
      '"Disabled", "Max", "Min"']),
    ({"behavior": {"scaleUp": {}}},
     ["spec.behavior.scaleUp.policies: Required value: must specify at least one Policy"]),
    ({"behavior": {"scaleDown": {"policies": [
        {"type": "foo", "value": 0, "periodSeconds": 1801}]}}},
     ['spec.behavior.scaleDown.policies[0].type: Unsupported value: "foo": supported values: '
      '"Percent", "Pods"',
      "spec.behavior.scaleDown.policies[0].value: Invalid value: 0: must be greater than zero",
      "spec.behavior.scaleDown.policies[0].periodSeconds: Invalid value: 1801: must be less "
      "than or equal to 1800"]),
    ({"behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 1}]}}},
     ["spec.behavior.scaleDown.policies[0].periodSeconds: Invalid value: 0: must be greater "
      "than zero"]),
])
def test_invalid(spec: Obj, want: list[str]) -> None:
    assert _errors(_hpa(**spec)) == want


def test_metadata_and_message() -> None:
    hpa = _hpa()
    hpa["metadata"]["name"] = "Bad_Name"
    errs = validate_hpa(hpa)
    assert [e.field for e in errs] == ["metadata.name"]
    assert aggregate_message(validate_hpa(_hpa(maxReplicas=0))) == (
        "[spec.maxReplicas: Invalid value: 0: must be greater than 0, spec.maxReplicas: "
        "Invalid value: 0: must be greater than or equal to `minReplicas`]")


def test_update_may_keep_a_stored_zero_min_replicas() -> None:
    old = _hpa(minReplicas=0, metrics=[{"type": "External", "external": {
        "metric": {"name": "queue"}, "target": {"type": "Value", "value": "1"}}}])
    new = copy.deepcopy(old)
    new["spec"]["maxReplicas"] = 6
    assert validate_hpa_update(new, old) == []
    assert [e.field for e in validate_hpa_update(_hpa(minReplicas=0), _hpa())] == [
        "spec.minReplicas", "spec.metrics"]


def test_status_update_checks_counts() -> None:
    old = _hpa()
    new = copy.deepcopy(old)
    new["status"] = {"currentReplicas": -1, "desiredReplicas": -2}
    assert [f"{e.field}: {e.body()}" for e in validate_hpa_status_update(new, old)] == [
        "status.currentReplicas: Invalid value: -1: must be greater than or equal to 0",
        "status.desiredReplicas: Invalid value: -2: must be greater than or equal to 0"]


def test_strategy_steps() -> None:
    hpa = _hpa(behavior={"scaleUp": {"tolerance": "0.05", "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 1}]}})
    hpa["status"] = {"desiredReplicas": 9}
    created = prepare_hpa_for_create(hpa)
    assert created["status"] == {"currentMetrics": None, "desiredReplicas": 0}
    assert "tolerance" not in created["spec"]["behavior"]["scaleUp"]  # alpha gate off
    stored = copy.deepcopy(created)
    stored["status"] = {"desiredReplicas": 3}
    new = copy.deepcopy(hpa)
    assert prepare_hpa_for_update(new, stored)["status"] == {"desiredReplicas": 3}
    status_write = copy.deepcopy(stored)
    status_write["spec"]["maxReplicas"] = 99
    status_write["status"] = {"desiredReplicas": 4}
    out = prepare_hpa_for_status_update(status_write, stored)
    assert out["spec"]["maxReplicas"] == 5 and out["status"] == {"desiredReplicas": 4}
