"""Tables of ConfigMaps, Secrets, ServiceAccounts, RuntimeClasses, PriorityClasses and
StorageClasses: kubectl 1.33's columns and cells (printConfigMap, printSecret,
printServiceAccount, printRuntimeClass, printPriorityClass, printStorageClass in
pkg/printers/internalversion)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.apiserver.test_tables import cells, column_names, meta

Obj = dict[str, Any]


@pytest.mark.parametrize(("kind", "columns"), [
    ("ConfigMap", ["Name", "Data", "Age"]),
    ("Secret", ["Name", "Type", "Data", "Age"]),
    ("ServiceAccount", ["Name", "Secrets", "Age"]),
])
def test_columns(kind: str, columns: list[str]) -> None:
    assert column_names("v1", kind) == [(c, 0) for c in columns]


@pytest.mark.parametrize(("kind", "obj", "want"), [
    ("ConfigMap", {"metadata": meta("c")}, ["c", 0, "5m"]),
    ("ConfigMap", {"metadata": meta("c"), "data": {"a": "1", "b": "2"},
                   "binaryData": {"c": "AA=="}}, ["c", 3, "5m"]),
    ("Secret", {"metadata": meta("s"), "type": "kubernetes.io/tls",
                "data": {"tls.crt": "", "tls.key": ""}}, ["s", "kubernetes.io/tls", 2, "5m"]),
    ("Secret", {"metadata": meta("s")}, ["s", "", 0, "5m"]),
    ("ServiceAccount", {"metadata": meta("default")}, ["default", 0, "5m"]),
    ("ServiceAccount", {"metadata": meta("sa"), "secrets": [{"name": "a"}, {"name": "b"}]},
     ["sa", 2, "5m"]),
])
def test_rows(kind: str, obj: Obj, want: list[Any]) -> None:
    assert cells("v1", kind, obj) == want


def test_runtime_class_columns_and_rows() -> None:
    """printRuntimeClass (node.k8s.io/v1): NAME HANDLER AGE, none of them wide."""
    assert column_names("node.k8s.io/v1", "RuntimeClass") == [
        ("Name", 0), ("Handler", 0), ("Age", 0)]
    assert cells("node.k8s.io/v1", "RuntimeClass",
                 {"metadata": meta("runc"), "handler": "runc"}) == ["runc", "runc", "5m"]
    assert cells("node.k8s.io/v1", "RuntimeClass", {"metadata": meta("x")}) == ["x", "", "5m"]


def test_priority_class_columns_and_rows() -> None:
    """printPriorityClass (scheduling.k8s.io/v1): NAME VALUE GLOBAL-DEFAULT AGE
    PREEMPTIONPOLICY, none of them wide; an integer and a boolean cell."""
    assert column_names("scheduling.k8s.io/v1", "PriorityClass") == [
        ("Name", 0), ("Value", 0), ("Global-Default", 0), ("Age", 0), ("PreemptionPolicy", 0)]
    assert cells("scheduling.k8s.io/v1", "PriorityClass",
                 {"metadata": meta("system-node-critical"), "value": 2000001000,
                  "preemptionPolicy": "PreemptLowerPriority"}) == [
        "system-node-critical", 2000001000, False, "5m", "PreemptLowerPriority"]
    assert cells("scheduling.k8s.io/v1", "PriorityClass",
                 {"metadata": meta("d"), "value": 5, "globalDefault": True}) == [
        "d", 5, True, "5m", ""]


def test_storage_class_columns_and_rows() -> None:
    """printStorageClass (storage.k8s.io/v1): NAME PROVISIONER RECLAIMPOLICY
    VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE; ``(default)`` after a default class's name
    (GA or beta annotation, "true" exactly); unset policy and mode shown as their defaults."""
    assert column_names("storage.k8s.io/v1", "StorageClass") == [
        ("Name", 0), ("Provisioner", 0), ("ReclaimPolicy", 0), ("VolumeBindingMode", 0),
        ("AllowVolumeExpansion", 0), ("Age", 0)]
    default = {"metadata": {**meta("standard"), "annotations": {
        "storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "svcnet.io/local-path", "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"}
    assert cells("storage.k8s.io/v1", "StorageClass", default) == [
        "standard (default)", "svcnet.io/local-path", "Delete", "WaitForFirstConsumer", False,
        "5m"]
    beta = {"metadata": {**meta("old"), "annotations": {
        "storageclass.beta.kubernetes.io/is-default-class": "true"}},
        "provisioner": "p.io/x", "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True}
    assert cells("storage.k8s.io/v1", "StorageClass", beta) == [
        "old (default)", "p.io/x", "Retain", "Immediate", True, "5m"]
    not_default = {"metadata": {**meta("x"), "annotations": {
        "storageclass.kubernetes.io/is-default-class": "false"}}, "provisioner": "p.io/x"}
    assert cells("storage.k8s.io/v1", "StorageClass", not_default) == [
        "x", "p.io/x", "Delete", "Immediate", False, "5m"]
