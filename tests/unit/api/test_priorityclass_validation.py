"""PriorityClass defaulting and validation (pkg/apis/scheduling/v1/defaults.go,
pkg/apis/scheduling/validation's TestValidatePriorityClass and TestValidatePriorityClassUpdate),
the system classes, and the class half of the Priority admission."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api import kinds
from svcnet.api.errors import StatusError
from svcnet.api.podpriority import admit_priority_class
from svcnet.api.priorityclasses import (
    HIGHEST_USER_DEFINABLE_PRIORITY,
    SYSTEM_PRIORITY_CLASSES,
    default_priority_class,
    is_system_priority_class,
    set_defaults_priority_class,
    validate_priority_class,
    validate_priority_class_update,
)

Obj = dict[str, Any]

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
RESERVED = ("metadata.name: Forbidden: priority class names with 'system-' prefix are reserved "
            "for system use only. error: ")


def pc(name: str = "tier1", **fields: Any) -> Obj:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": 100, **fields}


CASES: list[tuple[str, Obj, list[str]]] = [
    # (id, object, every error as "path: message")
    ("no description", pc(), []),
    ("with description", pc(value=200, globalDefault=False,
                            description="Used for the highest priority pods."), []),
    ("system node critical", pc("system-node-critical", value=2_000_001_000,
                                description="system priority class 0"), []),
    ("system cluster critical", pc("system-cluster-critical", value=2_000_000_000), []),
    ("with namespace", pc(metadata={"name": "tier1", "namespace": "foo"}),
     ["metadata.namespace: Forbidden: not allowed on this type"]),
    ("invalid name", pc("tier&1"), [f'metadata.name: Invalid value: "tier&1": {SUBDOMAIN_MSG}']),
    ("missing name", {"metadata": {}, "value": 1},
     ["metadata.name: Required value: name or generateName is required"]),
    ("incorrect system class value", pc("system-node-critical", value=0),
     [RESERVED + "value of system-node-critical PriorityClass must be 2000001000"]),
    ("unknown system class", pc("system-something", value=2_000_001_000),
     [RESERVED + "system-something is not a known system priority class"]),
    # A user class with a system- name is refused whatever its value.
    ("system prefix with a small value", pc("system-mine", value=5),
     [RESERVED + "system-mine is not a known system priority class"]),
    ("system class as the global default", pc("system-cluster-critical", value=2_000_000_000,
                                              globalDefault=True),
     [RESERVED + "globalDefault of system-cluster-critical PriorityClass must be false"]),
    ("largest user value", pc(value=HIGHEST_USER_DEFINABLE_PRIORITY), []),
    ("user value too large", pc(value=HIGHEST_USER_DEFINABLE_PRIORITY + 1),
     ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]),
    ("negative value", pc(value=-5), []),
    ("preempt never", pc(preemptionPolicy="Never"), []),
    ("unknown preemption policy", pc(preemptionPolicy="Sometimes"),
     ['preemptionPolicy: Unsupported value: "Sometimes": supported values: '
      '"PreemptLowerPriority", "Never"']),
    ("empty preemption policy", pc(preemptionPolicy=""),
     ["preemptionPolicy: Required value"]),
    # Core's ObjectMeta rules (not apimachinery's): finalizer names are checked.
    ("bare finalizer", pc(metadata={"name": "tier1", "finalizers": ["foo"]}),
     ['metadata.finalizers[0]: Invalid value: "foo": name is neither a standard finalizer name '
      "nor is it fully qualified"]),
]


@pytest.mark.parametrize(("obj", "want"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_validate_priority_class(obj: Obj, want: list[str]) -> None:
    assert [str(e) for e in validate_priority_class(obj)] == want


def test_the_system_classes_are_valid_and_exact() -> None:
    assert [(c["metadata"]["name"], c["value"]) for c in SYSTEM_PRIORITY_CLASSES] == [
        ("system-node-critical", 2_000_001_000), ("system-cluster-critical", 2_000_000_000)]
    for obj in SYSTEM_PRIORITY_CLASSES:
        assert validate_priority_class(obj) == []
        assert obj["preemptionPolicy"] == "PreemptLowerPriority"
        assert not obj.get("globalDefault")
    assert SYSTEM_PRIORITY_CLASSES[0]["description"] == (
        "Used for system critical pods that must not be moved from their current node.")
    assert is_system_priority_class("system-node-critical")
    assert not is_system_priority_class("system-other")


def test_defaults() -> None:
    obj = pc()
    del obj["value"]
    out = set_defaults_priority_class(obj)
    assert out["preemptionPolicy"] == "PreemptLowerPriority" and out["value"] == 0
    assert "preemptionPolicy" not in obj, "a copy"
    assert set_defaults_priority_class(pc(preemptionPolicy="Never"))["preemptionPolicy"] == \
        "Never"


def _stored(**fields: Any) -> Obj:
    obj = pc(preemptionPolicy="PreemptLowerPriority", **fields)
    obj["metadata"].update(resourceVersion="1", uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    return obj


def _changed(**fields: Any) -> Obj:
    obj = _stored()
    obj.update(fields)
    obj["metadata"]["resourceVersion"] = "2"
    return obj


@pytest.mark.parametrize("new", [
    pytest.param(_changed(description="Used for the highest priority pods."), id="no change"),
    pytest.param(_changed(description="A different description."), id="change description"),
    pytest.param(_changed(globalDefault=True), id="change globalDefault"),
])
def test_allowed_updates(new: Obj) -> None:
    assert validate_priority_class_update(new, _stored()) == []


def test_update_errors() -> None:
    old = _stored()

    def errs(new: Obj) -> list[str]:
        return [str(e) for e in validate_priority_class_update(new, old)]

    moved = _changed()
    moved["metadata"]["namespace"] = "foo"
    assert errs(moved) == ['metadata.namespace: Invalid value: "foo": field is immutable']
    renamed = _changed()
    renamed["metadata"]["name"] = "tier2"
    assert errs(renamed) == ['metadata.name: Invalid value: "tier2": field is immutable']
    no_value = _changed()
    del no_value["value"]
    assert errs(no_value) == ["value: Forbidden: may not be changed in an update."]
    assert errs(_changed(value=101)) == ["value: Forbidden: may not be changed in an update."]
    assert errs(_changed(preemptionPolicy="Never")) == [
        'preemptionPolicy: Invalid value: "Never": field is immutable']


def test_update_does_not_repeat_the_create_rules() -> None:
    # Upstream's strategy validates an update with ValidatePriorityClassUpdate only.
    old = _stored(name="tier1")
    old["value"] = HIGHEST_USER_DEFINABLE_PRIORITY + 5  # as stored before a rule tightened
    new = copy.deepcopy(old)
    new["description"] = "still fine"
    assert validate_priority_class_update(new, old) == []


def test_kind_catalogue_defaults_and_validates() -> None:
    kind = kinds.KINDS[("scheduling.k8s.io/v1", "PriorityClass")]
    assert (kind.resource, kind.namespaced) == ("priorityclasses", False)
    assert kind.default(pc())["preemptionPolicy"] == "PreemptLowerPriority"
    assert [str(e) for e in kind.validate_create(pc(value=2_000_000_000))] == [
        "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]


def test_the_global_default_is_the_lowest_marked_class() -> None:
    classes = [pc("a", value=10, globalDefault=True), pc("b", value=5, globalDefault=True),
               pc("c", value=1)]
    found = default_priority_class(classes)
    assert found is not None and found["metadata"]["name"] == "b"
    assert default_priority_class([pc("c")]) is None


def test_admission_allows_one_global_default_only() -> None:
    existing = [pc("low", value=1, globalDefault=True), *SYSTEM_PRIORITY_CLASSES]
    with pytest.raises(StatusError) as err:
        admit_priority_class(pc("high", globalDefault=True), existing, update=False)
    assert err.value.code == 403
    assert err.value.message == (
        'priorityclasses.scheduling.k8s.io "high" is forbidden: PriorityClass low is already '
        "marked as default. Only one default can exist")
    # Marking another existing class as the default is refused as well.
    with pytest.raises(StatusError):
        admit_priority_class(pc("high", globalDefault=True), [*existing, pc("high")],
                             update=True)
    # The default class itself may be updated; classes that are not defaults always pass.
    admit_priority_class(pc("low", value=1, globalDefault=True), existing, update=True)
    admit_priority_class(pc("other"), existing, update=False)
    admit_priority_class(pc("first", globalDefault=True), SYSTEM_PRIORITY_CLASSES,
                         update=False)
