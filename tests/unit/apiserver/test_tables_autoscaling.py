"""Tables of HorizontalPodAutoscalers: kubectl's columns and the TARGETS cell as upstream's
formatHPAMetrics writes it (pkg/printers/internalversion/printers.go); v1 objects print as the
v2 objects they are."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.autoscalingv1 import to_v1
from tests.unit.apiserver.test_tables import cells, column_names, meta

V2 = "autoscaling/v2"
KIND = "HorizontalPodAutoscaler"
CPU = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 80}}}
CPU_NOW = {"type": "Resource", "resource": {"name": "cpu", "current": {
    "averageUtilization": 45, "averageValue": "120m"}}}
MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {
    "type": "AverageValue", "averageValue": "500Mi"}}}
PODS = {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {
    "type": "AverageValue", "averageValue": "10"}}}
EXTERNAL = {"type": "External", "external": {"metric": {"name": "q"}, "target": {
    "type": "Value", "value": "30"}}}
OBJECT_AVG = {"type": "Object", "object": {
    "describedObject": {"kind": "Ingress", "name": "main"}, "metric": {"name": "hits"},
    "target": {"type": "AverageValue", "averageValue": "2k"}}}


def _hpa(metrics: list[Any], current: list[Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V2, "kind": KIND, "metadata": meta("web"),
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5, "metrics": metrics, **spec},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                       "currentMetrics": current}}


def test_columns() -> None:
    assert column_names(V2, KIND) == [
        ("Name", 0), ("Reference", 0), ("Targets", 0), ("MinPods", 0), ("MaxPods", 0),
        ("Replicas", 0), ("Age", 0)]


@pytest.mark.parametrize(("metrics", "current", "want"), [
    ([CPU], None, "cpu: <unknown>/80%"),
    ([CPU], [CPU_NOW], "cpu: 45%/80%"),
    ([MEMORY, CPU], [{"type": "Resource", "resource": {"name": "memory", "current": {
        "averageValue": "300Mi"}}}, CPU_NOW], "memory: 300Mi/500Mi, cpu: 45%/80%"),
    ([PODS], None, "<unknown>/10"),
    ([EXTERNAL], [{"type": "External", "external": {"metric": {"name": "q"}, "current": {
        "value": "12"}}}], "12/30"),
    ([OBJECT_AVG], None, "<unknown>/2k (avg)"),
    ([CPU, MEMORY, PODS, EXTERNAL], None,
     "cpu: <unknown>/80%, memory: <unknown>/500Mi + 2 more..."),
    ([], None, "<none>"),
    ([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}],
     None, "cpu: <unknown>/<auto>"),
    ([{"type": "Weird"}], None, "<unknown type>"),
])
def test_targets(metrics: list[Any], current: list[Any] | None, want: str) -> None:
    row = cells(V2, KIND, _hpa(metrics, current))
    assert row == ["web", "Deployment/web", want, "1", 5, 2, "5m"]


def test_unset_min_pods_and_v1_objects() -> None:
    hpa = _hpa([CPU], [CPU_NOW])
    del hpa["spec"]["minReplicas"]
    assert cells(V2, KIND, hpa)[3] == "<unset>"
    v1 = to_v1(_hpa([MEMORY, CPU], [CPU_NOW]))
    # Status i goes with spec i, whatever its name (as upstream's formatHPAMetrics pairs them).
    assert cells("autoscaling/v1", KIND, v1)[2] == "memory: 120m/500Mi, cpu: <unknown>/80%"
