"""Node and Namespace defaulting and validation; cases follow upstream's TestValidateNode,
TestValidateNodeUpdate, TestValidateNamespace, TestValidateNamespaceUpdate,
TestValidateNamespaceStatusUpdate and TestValidateNamespaceFinalizeUpdate."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from svcnet.api.errors import ErrorType, FieldError
from svcnet.api.namespaces import (
    canonicalize_namespace,
    prepare_namespace_for_create,
    prepare_namespace_for_finalize_update,
    prepare_namespace_for_status_update,
    prepare_namespace_for_update,
    set_defaults_namespace,
    validate_namespace,
    validate_namespace_finalize_update,
    validate_namespace_status_update,
    validate_namespace_update,
)
from svcnet.api.nodes import (
    prepare_node_for_create,
    prepare_node_for_status_update,
    prepare_node_for_update,
    set_defaults_node,
    validate_node,
    validate_node_status_update,
    validate_node_update,
)

R = ErrorType.REQUIRED
I = ErrorType.INVALID  # noqa: E741
D = ErrorType.DUPLICATE
NS = ErrorType.NOT_SUPPORTED
F = ErrorType.FORBIDDEN
IE = ErrorType.INTERNAL

Obj = dict[str, Any]
Mutator = Callable[[Obj], object]


def _errset(errs: list[FieldError]) -> set[tuple[str, ErrorType]]:
    return {(e.field, e.type) for e in errs}


# =============================================================================== nodes


def _node() -> Obj:
    return set_defaults_node({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "addresses": [{"type": "InternalIP", "address": "192.168.0.2"},
                                 {"type": "Hostname", "address": "node-1"}]},
    })


def _taints(n: Obj, *taints: dict[str, str]) -> None:
    n["spec"]["taints"] = list(taints)


NODE_CASES: list[tuple[str, Mutator, set[tuple[str, ErrorType]]]] = [
    ("valid", lambda n: None, set()),
    ("valid-pod-cidr", lambda n: n["spec"].update(podCIDRs=["10.244.1.0/24"]), set()),
    ("valid-dual-stack-pod-cidrs",
     lambda n: n["spec"].update(podCIDRs=["10.244.1.0/24", "fd00:10:244:1::/64"]), set()),
    ("valid-taints",
     lambda n: _taints(n, {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                       {"key": "dedicated", "value": "db", "effect": "NoExecute"}), set()),
    ("name-missing", lambda n: n["metadata"].pop("name"), {("metadata.name", R)}),
    ("name-not-subdomain", lambda n: n["metadata"].update(name="Node_1"),
     {("metadata.name", I)}),
    ("name-may-have-dots", lambda n: n["metadata"].update(name="node-1.example.com"), set()),
    ("namespace-forbidden", lambda n: n["metadata"].update(namespace="default"),
     {("metadata.namespace", F)}),
    ("invalid-label",
     lambda n: n["metadata"].update(labels={"NoUppercaseOrSpecialCharsLike=Equals": "bar"}),
     {("metadata.labels", I)}),
    ("pod-cidr-bad-prefix", lambda n: n["spec"].update(podCIDRs=["10.244.1.0/33"]),
     {("spec.podCIDRs[0]", I)}),
    ("pod-cidr-not-cidr", lambda n: n["spec"].update(podCIDRs=["10.244.1.1"]),
     {("spec.podCIDRs[0]", I)}),
    ("pod-cidrs-same-family",
     lambda n: n["spec"].update(podCIDRs=["10.244.1.0/24", "10.245.1.0/24"]),
     {("spec.podCIDRs", I)}),
    ("pod-cidrs-duplicate",
     lambda n: n["spec"].update(podCIDRs=["10.244.1.0/24", "10.244.1.0/24"]),
     {("spec.podCIDRs", I), ("spec.podCIDRs[1]", D)}),
    ("pod-cidrs-three",
     lambda n: n["spec"].update(podCIDRs=["10.244.1.0/24", "fd00::/64", "fd01::/64"]),
     {("spec.podCIDRs", I)}),
    ("pod-cidrs-bad-in-pair", lambda n: n["spec"].update(podCIDRs=["nope", "fd00::/64"]),
     {("spec.podCIDRs[0]", I), ("spec.podCIDRs", IE), ("spec.podCIDRs", I)}),
    # upstream reports spec.taints under metadata.taints
    ("taint-effect-missing", lambda n: _taints(n, {"key": "k"}),
     {("metadata.taints[0].effect", R)}),
    ("taint-effect-bad", lambda n: _taints(n, {"key": "k", "effect": "NoRun"}),
     {("metadata.taints[0].effect", NS)}),
    ("taint-key-bad", lambda n: _taints(n, {"key": "-k", "effect": "NoSchedule"}),
     {("metadata.taints[0].key", I)}),
    ("taint-key-empty", lambda n: _taints(n, {"effect": "NoSchedule"}),
     {("metadata.taints[0].key", I)}),
    ("taint-value-bad", lambda n: _taints(n, {"key": "k", "value": "a b",
                                              "effect": "NoSchedule"}),
     {("metadata.taints[0].value", I)}),
    ("taint-duplicate",
     lambda n: _taints(n, {"key": "k", "value": "a", "effect": "NoSchedule"},
                       {"key": "k", "value": "b", "effect": "NoSchedule"}),
     {("metadata.taints[1]", D)}),
    ("capacity-negative", lambda n: n["status"]["capacity"].update(cpu="-1"),
     {("status.capacity.cpu", I)}),
    ("pods-fractional", lambda n: n["status"].update(allocatable={"pods": "1500m"}),
     {("status.allocatable.pods", I)}),
    ("extended-resource-fractional",
     lambda n: n["status"].update(allocatable={"example.com/gpu": "0.5"}),
     {("status.allocatable.example.com/gpu", I)}),
    ("cpu-fractional-ok", lambda n: n["status"].update(allocatable={"cpu": "3500m"}), set()),
    ("address-types-not-validated",
     lambda n: n["status"].update(addresses=[{"type": "Whatever", "address": "x"}]), set()),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in NODE_CASES],
                         ids=[c[0] for c in NODE_CASES])
def test_validate_node(mutate: Mutator, expected: set[tuple[str, ErrorType]]) -> None:
    node = _node()
    mutate(node)
    node = set_defaults_node(node)
    assert _errset(validate_node(node)) == expected


def test_node_taint_duplicate_message() -> None:
    node = _node()
    _taints(node, {"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"})
    (err,) = validate_node(node)
    assert str(err) == (
        'metadata.taints[1]: Duplicate value: core.Taint{Key:"k", Value:"", '
        'Effect:"NoSchedule", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and '
        "effect pair")


def _stored_node() -> Obj:
    node = prepare_node_for_create(_node())
    node["metadata"].update(resourceVersion="3", uid="u-n1",
                            creationTimestamp="2024-01-01T00:00:00Z")
    return node


NODE_UPDATE_CASES: list[tuple[str, Mutator, Mutator, set[tuple[str, ErrorType]]]] = [
    ("no-change", lambda o: None, lambda n: None, set()),
    ("pod-cidr-assigned", lambda o: None,
     lambda n: n["spec"].update(podCIDRs=["10.244.1.0/24"]), set()),
    ("pod-cidr-changed", lambda o: o["spec"].update(podCIDRs=["10.244.1.0/24"]),
     lambda n: n["spec"].update(podCIDRs=["10.244.2.0/24"]), {("spec.podCIDRs", F)}),
    ("pod-cidr-second-family-added", lambda o: o["spec"].update(podCIDRs=["10.244.1.0/24"]),
     lambda n: n["spec"].update(podCIDRs=["10.244.1.0/24", "fd00::/64"]),
     {("spec.podCIDRs", F)}),
    ("pod-cidr-removed", lambda o: o["spec"].update(podCIDRs=["10.244.1.0/24"]),
     lambda n: n["spec"].pop("podCIDRs"), {("spec.podCIDRs", F)}),
    ("provider-id-assigned", lambda o: None,
     lambda n: n["spec"].update(providerID="kind://docker/n1"), set()),
    ("provider-id-changed", lambda o: o["spec"].update(providerID="a://1"),
     lambda n: n["spec"].update(providerID="a://2"), {("spec.providerID", F)}),
    ("external-id-changed", lambda o: None, lambda n: n["spec"].update(externalID="x"),
     {("spec.externalID", F)}),
    ("unschedulable-and-taints", lambda o: None,
     lambda n: n["spec"].update(unschedulable=True, taints=[
         {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]), set()),
    ("labels-changed", lambda o: None, lambda n: n["metadata"]["labels"].update(zone="a"),
     set()),
    ("duplicate-address", lambda o: None,
     lambda n: n["status"]["addresses"].append({"type": "InternalIP", "address": "192.168.0.2"}),
     {("status.addresses[2]", D)}),
    ("resource-version-missing", lambda o: None,
     lambda n: n["metadata"].pop("resourceVersion"), {("metadata.resourceVersion", I)}),
    ("name-changed", lambda o: None, lambda n: n["metadata"].update(name="node-2"),
     {("metadata.name", I)}),
]


@pytest.mark.parametrize(("old_mut", "new_mut", "expected"),
                         [(o, n, e) for _, o, n, e in NODE_UPDATE_CASES],
                         ids=[c[0] for c in NODE_UPDATE_CASES])
def test_validate_node_update(old_mut: Mutator, new_mut: Mutator,
                              expected: set[tuple[str, ErrorType]]) -> None:
    old = _stored_node()
    old_mut(old)
    new = copy.deepcopy(old)
    new_mut(new)
    assert _errset(validate_node_update(new, old)) == expected
    assert _errset(validate_node_status_update(new, old)) <= expected


def test_node_update_pod_cidr_message_and_duplicate_taint_errors() -> None:
    old = _stored_node()
    old["spec"]["podCIDRs"] = ["10.244.1.0/24"]
    new = copy.deepcopy(old)
    new["spec"]["podCIDRs"] = ["10.244.9.0/24"]
    new["spec"]["taints"] = [{"key": "k"}]
    errs = validate_node_update(new, old)
    assert 'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to ' \
           "valid" in [str(e) for e in errs]
    # ValidateNode and ValidateNodeUpdate both check taints: upstream reports it twice.
    assert Counter((e.field, e.type) for e in errs)[("metadata.taints[0].effect", R)] == 2


@pytest.mark.parametrize(("spec", "expected"), [
    ({"podCIDR": "10.244.1.0/24"}, {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}),
    ({"podCIDRs": ["10.244.1.0/24", "fd00::/64"]},
     {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00::/64"]}),
    ({"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.1.0/24"]},
     {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]}),
    ({}, {}),
], ids=["singular-only", "list-only", "singular-wins", "none"])
def test_node_pod_cidr_reconciliation(spec: Obj, expected: Obj) -> None:
    assert set_defaults_node({"spec": spec})["spec"] == expected


def test_node_defaults_and_preparation() -> None:
    raw = {"metadata": {"name": "n"}, "spec": {"configSource": {"configMap": {}}},
           "status": {"capacity": {"cpu": "2"}, "config": {}}}
    before = copy.deepcopy(raw)
    node = set_defaults_node(raw)
    assert node["status"]["allocatable"] == {"cpu": "2"}
    assert set_defaults_node({"status": {"capacity": {"cpu": "2"}, "allocatable": {}}})[
        "status"]["allocatable"] == {}
    created = prepare_node_for_create(node)
    assert "configSource" not in created["spec"]
    assert "config" not in created["status"]
    assert raw == before
    new = copy.deepcopy(created)
    new["status"] = {"phase": "Running"}
    new["spec"]["unschedulable"] = True
    assert prepare_node_for_update(new, created)["status"] == created["status"]
    assert prepare_node_for_status_update(new, created)["spec"] == created["spec"]


# =============================================================================== namespaces


def _ns(name: str = "prod") -> Obj:
    return set_defaults_namespace({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name}})


NAMESPACE_CASES: list[tuple[str, Mutator, set[tuple[str, ErrorType]]]] = [
    ("valid-abc", lambda n: None, set()),
    ("valid-abc-123", lambda n: n["metadata"].update(name="abc-123"), set()),
    ("valid-leading-digit", lambda n: n["metadata"].update(name="1abc"), set()),
    ("zero-length-name", lambda n: n["metadata"].update(name=""), {("metadata.name", R)}),
    ("defined-namespace", lambda n: n["metadata"].update(namespace="makesnosense"),
     {("metadata.namespace", F)}),
    ("invalid-label",
     lambda n: n["metadata"].update(labels={"NoUppercaseOrSpecialCharsLike=Equals": "bar"}),
     {("metadata.labels", I)}),
    ("name-with-dots", lambda n: n["metadata"].update(name="a.b"), {("metadata.name", I)}),
    ("name-uppercase", lambda n: n["metadata"].update(name="Prod"), {("metadata.name", I)}),
    ("name-too-long", lambda n: n["metadata"].update(name="a" * 64), {("metadata.name", I)}),
    ("spec-finalizers-ok",
     lambda n: n.setdefault("spec", {}).update(finalizers=["kubernetes", "example.com/x"]),
     set()),
    ("spec-finalizer-not-standard", lambda n: n.setdefault("spec", {}).update(finalizers=["foo"]),
     {("spec.finalizers", I)}),
    ("spec-finalizer-not-qualified",
     lambda n: n.setdefault("spec", {}).update(finalizers=["a/b/c"]), {("spec.finalizers", I)}),
    ("metadata-finalizer-not-standard",
     lambda n: n["metadata"].update(finalizers=["foo"]), {("metadata.finalizers[0]", I)}),
    ("annotation-key-bad", lambda n: n["metadata"].update(annotations={"a b": "x"}),
     {("metadata.annotations", I)}),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in NAMESPACE_CASES],
                         ids=[c[0] for c in NAMESPACE_CASES])
def test_validate_namespace(mutate: Mutator, expected: set[tuple[str, ErrorType]]) -> None:
    ns = _ns("abc")
    mutate(ns)
    assert _errset(validate_namespace(ns)) == expected


def test_namespace_name_message() -> None:
    ns = _ns("a.b")
    assert [str(e) for e in validate_namespace(ns)] == [
        'metadata.name: Invalid value: "a.b": must not contain dots']


def _stored_ns() -> Obj:
    ns = canonicalize_namespace(prepare_namespace_for_create(_ns()))
    ns["metadata"].update(resourceVersion="5", uid="u-ns",
                          creationTimestamp="2024-01-01T00:00:00Z")
    return ns


NAMESPACE_UPDATE_CASES: list[tuple[str, Mutator, set[tuple[str, ErrorType]]]] = [
    ("no-change", lambda n: None, set()),
    ("labels-change", lambda n: n["metadata"]["labels"].update(team="a"), set()),
    ("name-change", lambda n: n["metadata"].update(name="staging"), {("metadata.name", I)}),
    ("resource-version-missing", lambda n: n["metadata"].pop("resourceVersion"),
     {("metadata.resourceVersion", I)}),
    ("uid-change", lambda n: n["metadata"].update(uid="other"), {("metadata.uid", I)}),
    ("bad-spec-finalizer", lambda n: n["spec"].update(finalizers=["nope"]),
     {("spec.finalizers", I)}),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in NAMESPACE_UPDATE_CASES],
                         ids=[c[0] for c in NAMESPACE_UPDATE_CASES])
def test_validate_namespace_update(mutate: Mutator,
                                   expected: set[tuple[str, ErrorType]]) -> None:
    old = _stored_ns()
    new = copy.deepcopy(old)
    mutate(new)
    assert _errset(validate_namespace_update(new, old)) == expected


@pytest.mark.parametrize(("deleting", "phase", "expected"), [
    (False, "Active", set()),
    (False, "Terminating", {("status.Phase", I)}),
    (True, "Terminating", set()),
    (True, "Active", {("status.Phase", I)}),
    (False, "", {("status.Phase", I)}),
], ids=["active", "terminating-without-deletion", "terminating", "active-while-deleting",
        "empty-phase"])
def test_validate_namespace_status_update(deleting: bool, phase: str,
                                          expected: set[tuple[str, ErrorType]]) -> None:
    old = _stored_ns()
    if deleting:
        old["metadata"]["deletionTimestamp"] = "2024-02-01T00:00:00Z"
    new = copy.deepcopy(old)
    new["status"]["phase"] = phase
    assert _errset(validate_namespace_status_update(new, old)) == expected


@pytest.mark.parametrize(("finalizers", "expected"), [
    ([], set()),
    (["kubernetes"], set()),
    (["example.com/cleanup", "kubernetes"], set()),
    (["kubernetes", "bogus"], {("spec.finalizers[1]", I)}),
], ids=["removed", "kept", "qualified", "bogus"])
def test_validate_namespace_finalize_update(finalizers: list[str],
                                            expected: set[tuple[str, ErrorType]]) -> None:
    old = _stored_ns()
    new = prepare_namespace_for_finalize_update(copy.deepcopy(old), old)
    new["spec"]["finalizers"] = finalizers
    assert _errset(validate_namespace_finalize_update(new, old)) == expected


def test_namespace_defaults_and_preparation() -> None:
    raw: Obj = {"metadata": {"name": "prod"}}
    ns = set_defaults_namespace(raw)
    assert raw == {"metadata": {"name": "prod"}}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "prod"}
    assert ns["status"] == {"phase": "Active"}
    assert "labels" not in set_defaults_namespace({"metadata": {"generateName": "p-"}})[
        "metadata"]
    created = prepare_namespace_for_create(ns)
    assert created["spec"]["finalizers"] == ["kubernetes"]
    assert prepare_namespace_for_create({"spec": {"finalizers": ["example.com/a"]}})["spec"][
        "finalizers"] == ["example.com/a", "kubernetes"]
    # The user cannot change finalizers or status through the main endpoint...
    new = copy.deepcopy(created)
    new["spec"]["finalizers"] = []
    new["status"]["phase"] = "Terminating"
    updated = prepare_namespace_for_update(new, created)
    assert updated["spec"]["finalizers"] == ["kubernetes"]
    assert updated["status"] == {"phase": "Active"}
    # ...nor the spec through /status.
    assert prepare_namespace_for_status_update(new, created)["spec"] == created["spec"]
    # Canonicalize forces the label to the (possibly generated) name.
    generated = canonicalize_namespace({"metadata": {"name": "p-x7k2q",
                                                     "labels": {"kubernetes.io/metadata.name":
                                                                "spoofed"}}})
    assert generated["metadata"]["labels"]["kubernetes.io/metadata.name"] == "p-x7k2q"
