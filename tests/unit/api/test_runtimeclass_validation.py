"""RuntimeClass validation (pkg/apis/node/validation), resource lists (overheads), and a pod's
``runtimeClassName`` and ``overhead`` (ValidatePodSpec)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api import kinds
from svcnet.api.errors import Path, StatusError
from svcnet.api.pods import set_defaults_pod, validate_pod
from svcnet.api.resourcelists import (
    is_integer_resource_name,
    quantities_equal,
    validate_container_resource_name,
)
from svcnet.api.runtimeclasses import (
    DEFAULT_RUNTIME_CLASSES,
    HANDLER_PROCESS,
    HANDLER_RUNC,
    validate_runtime_class,
    validate_runtime_class_update,
)

Obj = dict[str, Any]

LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
             "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
             "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                 "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                 "or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
NO_SCHEDULE_EXISTS = {"key": "valid", "operator": "Exists", "effect": "NoSchedule"}


def rc(**fields: Any) -> Obj:
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": "foo"}, "handler": "bar", **fields}


CASES: list[tuple[str, Obj, list[str]]] = [
    # (id, object, every error as "path: message")
    ("valid handler", rc(handler="bar-baz"), []),
    ("invalid name", rc(metadata={"name": "&!@#"}),
     [f'metadata.name: Invalid value: "&!@#": {SUBDOMAIN_MSG}']),
    ("name is a subdomain", rc(metadata={"name": "sandboxed.example.com"}), []),
    ("invalid handler", rc(handler="&@#$"), [f'handler: Invalid value: "&@#$": {LABEL_MSG}']),
    # An empty handler is an invalid label, not a missing field.
    ("empty RuntimeClass", {"metadata": {"name": "empty"}},
     [f'handler: Invalid value: "": {LABEL_MSG}']),
    ("handler with dots", rc(handler="a.b"), ['handler: Invalid value: "a.b": must not contain '
                                              'dots']),
    ("handler too long", rc(handler="x" * 64),
     [f'handler: Invalid value: "{"x" * 64}": must be no more than 63 characters']),
    ("upper-case handler", rc(handler="Runc"), [f'handler: Invalid value: "Runc": {LABEL_MSG}']),
    ("namespace is forbidden", rc(metadata={"name": "foo", "namespace": "default"}),
     ["metadata.namespace: Forbidden: not allowed on this type"]),
    # apimachinery's ObjectMeta rules only: no core finalizer-name check.
    ("bare finalizer", rc(metadata={"name": "foo", "finalizers": ["foo"]}), []),
    ("valid overhead", rc(overhead={"podFixed": {"cpu": "10", "memory": "10G"}}), []),
    ("empty overhead", rc(overhead={}), []),
    ("non-standard resource", rc(overhead={"podFixed": {"my.org": "10m"}}),
     ['overhead.limits[my.org]: Invalid value: "my.org": must be a standard resource type or '
      'fully qualified',
      'overhead.limits[my.org]: Invalid value: "my.org": must be a standard resource for '
      'containers']),
    ("negative quantity", rc(overhead={"podFixed": {"cpu": "-1", "memory": "1Gi"}}),
     ['overhead.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0']),
    ("standard but not for containers", rc(overhead={"podFixed": {"pods": "1"}}),
     ['overhead.limits[pods]: Invalid value: "pods": must be a standard resource for '
      'containers']),
    ("extended resource must be whole", rc(overhead={"podFixed": {"example.com/dongle": "1500m"}}),
     ["overhead.limits[example.com/dongle]: Invalid value: 1500m: must be an integer"]),
    ("extended resource", rc(overhead={"podFixed": {"example.com/dongle": "2"}}), []),
    ("bad extended resource name", rc(overhead={"podFixed": {"example.com/a/b": "1"}}),
     ['overhead.limits[example.com/a/b]: Invalid value: "example.com/a/b": a valid label key '
      "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
      "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
      "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
      "subdomain prefix and '/' (e.g. 'example.com/MyName')"]),
    ("huge pages alone", rc(overhead={"podFixed": {"hugepages-2Mi": "4Mi"}}),
     ["overhead: Forbidden: HugePages require cpu or memory"]),
    ("huge pages not a multiple", rc(overhead={"podFixed": {"hugepages-2Mi": "3Mi",
                                                            "memory": "1Gi"}}),
     ['overhead.limits[hugepages-2Mi]: Invalid value: "3Mi": 3Mi is not positive integer '
      "multiple of hugepages-2Mi"]),
    ("valid scheduling", rc(scheduling={"nodeSelector": {"valid": "yes"},
                                        "tolerations": [NO_SCHEDULE_EXISTS]}), []),
    ("empty scheduling", rc(scheduling={}), []),
    ("invalid nodeSelector", rc(scheduling={"nodeSelector": {"not a valid key!!!": "nope"}}),
     [f'scheduling.nodeSelector: Invalid value: "not a valid key!!!": {NAME_PART_MSG}']),
    ("invalid toleration", rc(scheduling={"tolerations": [
        NO_SCHEDULE_EXISTS, {"key": "not a valid key!!!", "operator": "Exists",
                             "effect": "NoSchedule"}]}),
     [f'scheduling.tolerations[1].key: Invalid value: "not a valid key!!!": {NAME_PART_MSG}']),
    ("invalid scheduling", rc(scheduling={
        "nodeSelector": {"not a valid key!!!": "nope"},
        "tolerations": [NO_SCHEDULE_EXISTS, {"key": "not a valid toleration key!!!",
                                             "operator": "Exists", "effect": "NoSchedule"}]}),
     [f'scheduling.nodeSelector: Invalid value: "not a valid key!!!": {NAME_PART_MSG}',
      'scheduling.tolerations[1].key: Invalid value: "not a valid toleration key!!!": '
      f"{NAME_PART_MSG}"]),
    ("toleration operator", rc(scheduling={"tolerations": [{"key": "k", "operator": "In"}]}),
     ['scheduling.tolerations[0].operator: Unsupported value: "In": supported values: '
      '"Equal", "Exists"']),
    ("duplicate tolerations", rc(scheduling={"tolerations": [
        NO_SCHEDULE_EXISTS, {"key": "other", "operator": "Exists"}, dict(NO_SCHEDULE_EXISTS)]}),
     ['scheduling.tolerations[2]: Duplicate value: core.Toleration{Key:"valid", '
      'Operator:"Exists", Value:"", Effect:"NoSchedule", TolerationSeconds:(*int64)(nil)}']),
    ("tolerations differing in seconds only are duplicates", rc(scheduling={"tolerations": [
        {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        {"key": "k", "operator": "Exists", "effect": "NoExecute"}]}),
     ['scheduling.tolerations[1]: Duplicate value: core.Toleration{Key:"k", '
      'Operator:"Exists", Value:"", Effect:"NoExecute", TolerationSeconds:(*int64)(nil)}']),
]


@pytest.mark.parametrize(("obj", "want"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_validate_runtime_class(obj: Obj, want: list[str]) -> None:
    assert [str(e) for e in validate_runtime_class(obj)] == want


def _stored(**fields: Any) -> Obj:
    obj = rc(**fields)
    obj["metadata"].update(resourceVersion="1", uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    return obj


def test_update_keeps_the_handler() -> None:
    old = _stored()
    assert validate_runtime_class_update(copy.deepcopy(old), old) == []
    labelled = copy.deepcopy(old)
    labelled["metadata"]["labels"] = {"foo": "bar"}
    labelled["overhead"] = {"podFixed": {"cpu": "100m"}}
    assert validate_runtime_class_update(labelled, old) == [], "only the handler is immutable"
    changed = copy.deepcopy(old)
    changed["handler"] = "somethingelse"
    assert [str(e) for e in validate_runtime_class_update(changed, old)] == [
        'handler: Invalid value: "somethingelse": field is immutable']


def test_update_validates_the_new_object_first() -> None:
    old = _stored()
    new = copy.deepcopy(old)
    new["handler"] = "Bad"
    new["metadata"]["uid"] = "other"
    assert [str(e) for e in validate_runtime_class_update(new, old)] == [
        f'handler: Invalid value: "Bad": {LABEL_MSG}',
        'metadata.uid: Invalid value: "other": field is immutable',
        'handler: Invalid value: "Bad": field is immutable']


def test_the_seeded_classes_are_valid() -> None:
    assert [(o["metadata"]["name"], o["handler"]) for o in DEFAULT_RUNTIME_CLASSES] == [
        (HANDLER_PROCESS, "process"), (HANDLER_RUNC, "runc")]
    for obj in DEFAULT_RUNTIME_CLASSES:
        assert validate_runtime_class(obj) == []


def test_offline_check_knows_the_kind() -> None:
    assert kinds.check_object(rc())["handler"] == "bar"
    with pytest.raises(StatusError) as err:
        kinds.check_object(rc(handler="Nope"))
    assert err.value.code == 422
    assert err.value.message.startswith('RuntimeClass.node.k8s.io "foo" is invalid: handler: '
                                        'Invalid value: "Nope"')


# ------------------------------------------------------------------------ resource lists


@pytest.mark.parametrize(("name", "integer"), [
    ("pods", True), ("services.nodeports", True), ("example.com/dongle", True),
    ("cpu", False), ("memory", False), ("kubernetes.io/x", False), ("requests.example.com/x",
                                                                   False)])
def test_integer_resource_names(name: str, integer: bool) -> None:
    assert is_integer_resource_name(name) is integer


@pytest.mark.parametrize(("name", "errors"), [
    ("cpu", 0), ("memory", 0), ("ephemeral-storage", 0), ("hugepages-1Gi", 0),
    ("kubernetes.io/anything", 0), ("example.com/gpu", 0),
    ("storage", 1), ("requests.cpu", 1), ("foo", 2), ("example.com/a b", 1),
])
def test_container_resource_names(name: str, errors: int) -> None:
    assert len(validate_container_resource_name(name, Path("limits").key(name))) == errors


def test_quantities_compare_by_value() -> None:
    assert quantities_equal({"cpu": "1", "memory": "1Gi"}, {"cpu": "1000m",
                                                            "memory": "1073741824"})
    assert quantities_equal(None, {})
    assert not quantities_equal({"cpu": "1"}, {"cpu": "1", "memory": "1"})
    assert not quantities_equal({"cpu": "1"}, {"cpu": "1001m"})


# ---------------------------------------------------------------------------- pod fields


def pod(**spec: Any) -> Obj:
    return set_defaults_pod({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "p", "namespace": "ns"},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                      **spec}})


def test_pod_runtime_class_name_is_a_subdomain() -> None:
    assert validate_pod(pod(runtimeClassName="kata.example")) == []
    assert [str(e) for e in validate_pod(pod(runtimeClassName="Kata_1"))] == [
        f'spec.runtimeClassName: Invalid value: "Kata_1": {SUBDOMAIN_MSG}']
    # Set but empty is a name too (the field is a pointer).
    assert [str(e) for e in validate_pod(pod(runtimeClassName=""))] == [
        f'spec.runtimeClassName: Invalid value: "": {SUBDOMAIN_MSG}']


def test_pod_overhead_is_validated_as_limits() -> None:
    assert validate_pod(pod(overhead={"cpu": "250m", "memory": "120Mi"})) == []
    assert [str(e) for e in validate_pod(pod(overhead={"cpu": "-250m"}))] == [
        'spec.overhead.limits[cpu]: Invalid value: "-250m": must be greater than or equal to 0']
