"""CustomResourceDefinitions (svcnet/api/crds.py): defaulting, validation with upstream's paths
and messages (apiextensions validation_test.go's cases), structural schemas, the naming
controller's accepted names and conditions, printer-column paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api import crds
from svcnet.api.errors import Path

Obj = dict[str, Any]
NOW = "2026-01-01T00:00:00Z"


def _crd(**spec: Any) -> Obj:
    base: Obj = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    base["spec"].update(spec)
    return crds.set_defaults(base)


def _messages(crd: Obj) -> list[str]:
    return [str(e) for e in crds.validate_crd(crd)]


def test_defaults() -> None:
    crd = _crd()
    assert crd["spec"]["names"] == {"plural": "widgets", "kind": "Widget", "singular": "widget",
                                    "listKind": "WidgetList"}
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    prepared = crds.prepare_for_create(copy.deepcopy(crd) | {"status": {"x": 1}})
    assert prepared["status"] == {"storedVersions": ["v1"],
                                  "acceptedNames": {"plural": "", "kind": ""},
                                  "conditions": []}
    assert _messages(crd) == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"metadata": {"name": "widgets.other.com"}},
     ['metadata.name: Invalid value: "widgets.other.com": must be '
      'spec.names.plural+"."+spec.group']),
    ({"spec": {"group": ""}},
     ["spec.group: Required value",
      'metadata.name: Invalid value: "widgets.example.com": must be '
      'spec.names.plural+"."+spec.group']),
    ({"spec": {"group": "example"}},
     ['spec.group: Invalid value: "example": should be a domain with at least one dot',
      'metadata.name: Invalid value: "widgets.example.com": must be '
      'spec.names.plural+"."+spec.group']),
    ({"spec": {"scope": "Global"}},
     ['spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"']),
    ({"spec": {"names": {"plural": "Widgets", "kind": "Widget", "singular": "widget",
                         "listKind": "Widget", "shortNames": ["w_d"],
                         "categories": ["All"]}}},
     None),
    ({"spec": {"conversion": {"strategy": "Webhook"}}},
     ["spec.conversion.strategy: Forbidden: conversion webhooks are not supported by this "
      "server: use strategy None"]),
])
def test_validation_cases(change: Obj, expected: list[str] | None) -> None:
    crd = _crd()
    for key, value in change.items():
        crd[key].update(value)
    got = _messages(crd)
    if expected is not None:
        assert sorted(got) == sorted(expected)
    else:  # the names case: each name's own message
        assert "spec.names.plural: Invalid value: \"Widgets\": a DNS-1035 label must consist " \
               "of lower case alphanumeric characters or '-', start with an alphabetic " \
               "character, and end with an alphanumeric character (e.g. 'my-name',  or " \
               "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')" in got
        assert 'spec.names.listKind: Invalid value: "Widget": kind and listKind may not be ' \
               'the same' in got
        assert any(m.startswith('spec.names.shortNames[0]: Invalid value: "w_d"') for m in got)
        assert any(m.startswith('spec.names.categories[0]: Invalid value: "All"') for m in got)


def test_versions() -> None:
    two = [{"name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object"}}},
           {"name": "v1", "served": False, "storage": True}]
    assert sorted(_messages(_crd(versions=two))) == [
        "spec.versions: Invalid value: must contain unique version names",
        "spec.versions: Invalid value: must have exactly one version marked as storage version",
        "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required"]
    assert _messages(_crd(versions=[{"name": "V1", "served": False, "storage": True,
                                     "schema": {"openAPIV3Schema": {"type": "object"}}}])) == [
        'spec.versions[0].name: Invalid value: "V1": a DNS-1035 label must consist of lower '
        "case alphanumeric characters or '-', start with an alphabetic character, and end "
        "with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
        "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
    assert _messages(_crd(versions=[])) == [
        "spec.versions: Invalid value: must have exactly one version marked as storage version"]


def test_structural_schema() -> None:
    path = Path("s")
    schema = {"type": "object", "properties": {
        "a": {"description": "no type"},
        "b": {"type": "array"},
        "c": {"type": "string", "x-kubernetes-int-or-string": True},
        "d": {"type": "object", "x-kubernetes-preserve-unknown-fields": False},
        "e": {"type": "object", "properties": {"x": {"type": "string"}},
              "additionalProperties": {"type": "string"}},
        "f": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "g": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "map"},
        "h": {"type": "string", "x-kubernetes-embedded-resource": True},
        "i": {"x-kubernetes-int-or-string": True,
              "anyOf": [{"type": "integer"}, {"type": "string"}]},
    }}
    assert sorted(str(e) for e in crds.validate_structural(schema, path)) == sorted([
        "s.properties[a].type: Required value: must not be empty for specified object fields",
        "s.properties[b].items: Required value: must be specified",
        's.properties[c].type: Invalid value: "string": must be empty if '
        "x-kubernetes-int-or-string is true",
        "s.properties[d].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be "
        "true or undefined",
        "s.properties[e].additionalProperties: Forbidden: additionalProperties and properties "
        "are mutual exclusive",
        "s.properties[f].uniqueItems: Forbidden: uniqueItems cannot be set to true since the "
        "runtime complexity becomes quadratic",
        "s.properties[g].x-kubernetes-list-map-keys: Required value: must not be empty if "
        "x-kubernetes-list-type is map",
        's.properties[h].type: Invalid value: "string": must be object if '
        "x-kubernetes-embedded-resource is true",
        "s.properties[h].properties: Required value: must not be empty if "
        "x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
    ])
    assert [str(e) for e in crds.validate_structural({"type": "string"}, path)] == [
        's.type: Invalid value: "string": must be object at the root']
    assert [str(e) for e in crds.validate_structural({}, path)] == [
        "s.type: Required value: must not be empty at the root"]


def test_update_rules() -> None:
    old = crds.prepare_for_create(_crd())
    old["metadata"]["resourceVersion"] = "1"
    old = crds.with_naming_status(old, [], NOW)
    assert crds.established(old)
    new = copy.deepcopy(old)
    new["spec"]["scope"] = "Cluster"
    new["spec"]["names"]["kind"] = "Gadget"
    new["spec"]["names"]["listKind"] = "GadgetList"
    new["spec"]["group"] = "other.com"
    new["status"]["storedVersions"] = ["v1", "v0"]
    assert [str(e) for e in crds.validate_crd_update(new, old)] == [
        'spec.scope: Invalid value: "Cluster": field is immutable',
        'spec.names.kind: Invalid value: "Gadget": field is immutable',
        'spec.group: Invalid value: "other.com": field is immutable',
        'status.storedVersions[1]: Invalid value: "v0": must appear in spec.versions']


def test_naming_controller_conflicts() -> None:
    first = crds.with_naming_status(crds.prepare_for_create(_crd()), [], NOW)
    status = first["status"]
    assert status["acceptedNames"] == {"plural": "widgets", "singular": "widget",
                                       "kind": "Widget", "listKind": "WidgetList"}
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("NamesAccepted", "True", "NoConflicts"), ("Established", "True", "InitialNamesAccepted")]
    rival = crds.prepare_for_create(_crd(names={"plural": "things", "kind": "Widget",
                                                "shortNames": ["widget"]}))
    rival["metadata"]["name"] = "things.example.com"
    got = crds.with_naming_status(rival, [first], NOW)["status"]
    assert got["conditions"][0] == {
        "type": "NamesAccepted", "status": "False", "lastTransitionTime": NOW,
        # Each conflict overwrites the condition: the last one found is reported.
        "reason": "ListKindConflict", "message": '"WidgetList" is already in use'}
    assert got["conditions"][1]["reason"] == "NotAccepted"
    assert got["acceptedNames"]["kind"] == "" and got["acceptedNames"]["plural"] == "things"
    other_group = copy.deepcopy(rival)
    other_group["spec"]["group"] = "else.com"
    assert crds.accepted_names(other_group, [first])[1:] == ("True", "NoConflicts",
                                                             "no conflicts found")


@pytest.mark.parametrize(("path", "expected"), [
    (".spec.size", [3]),
    (".spec.items[1].name", ["b"]),
    (".spec.items[*].name", ["a", "b"]),
    ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
    (".spec.missing", []),
    ("spec", []),
])
def test_json_path(path: str, expected: list[Any]) -> None:
    obj = {"spec": {"size": 3, "items": [{"name": "a"}, {"name": "b"}]},
           "status": {"conditions": [{"type": "Synced", "status": "False"},
                                     {"type": "Ready", "status": "True"}]}}
    assert crds.json_path_results(obj, path) == expected


def test_scale_subresource() -> None:
    crd = _crd(versions=[{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object"}},
                          "subresources": {"scale": {
                              "specReplicasPath": ".spec.replicas",
                              "statusReplicasPath": ".spec.count",
                              "labelSelectorPath": ".status.selector"}}}])
    assert [str(e) for e in crds.validate_crd(crd)] == [
        'spec.versions[0].subresources.scale.statusReplicasPath: Invalid value: ".spec.count": '
        "should be a json path under .status"]
    paths = crds.scale_paths(crd, "v1")
    assert paths == (".spec.replicas", ".spec.count", ".status.selector")
    assert crds.scale_paths(_crd(), "v1") is None
    obj = {"metadata": {"name": "w", "namespace": "ns", "resourceVersion": "7", "labels": {}},
           "spec": {"replicas": 2}, "status": {"selector": "app=w"}}
    assert crds.scale_of(obj, (".spec.replicas", ".status.replicas", ".status.selector")) == {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "w", "namespace": "ns", "resourceVersion": "7"},
        "spec": {"replicas": 2}, "status": {"replicas": 0, "selector": "app=w"}}
    scaled = crds.with_scale({"metadata": {"name": "w"}}, {"spec": {"replicas": 5},
                                                          "metadata": {"resourceVersion": "9"}},
                             (".spec.nested.replicas", ".status.replicas", ""))
    assert scaled == {"metadata": {"name": "w", "resourceVersion": "9"},
                      "spec": {"nested": {"replicas": 5}}}


def test_protected_groups_need_the_api_approval_annotation() -> None:
    crd = _crd(group="rbac.authorization.k8s.io", names={"plural": "widgets", "kind": "Widget"})
    crd["metadata"]["name"] = "widgets.rbac.authorization.k8s.io"
    key = 'metadata.annotations[api-approved.kubernetes.io]'
    assert _messages(crd) == [
        f'{key}: Required value: protected groups must have approval annotation '
        '"api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111']
    crd["metadata"]["annotations"] = {"api-approved.kubernetes.io": "soon"}
    assert [e.field for e in crds.validate_crd(crd)] == [key]
    for ok in ("unapproved, experimental", "https://github.com/kubernetes/kubernetes/pull/1"):
        crd["metadata"]["annotations"] = {"api-approved.kubernetes.io": ok}
        assert _messages(crd) == []
    old = copy.deepcopy(crd)
    del old["metadata"]["annotations"]
    del crd["metadata"]["annotations"]
    assert crds.validate_api_approval(crd, old) == [], "an unchanged state is never refused"
    assert crds.validate_api_approval(_crd(), None) == [], "example.com is not protected"


def test_a_crd_may_not_take_a_built_in_resource() -> None:
    crd = _crd(group="example.com", names={"plural": "widgets", "kind": "Widget"})
    assert crds.validate_not_built_in(crd, {("apps", "deployments")}) == []
    assert [str(e) for e in crds.validate_not_built_in(crd, {("example.com", "widgets")})] == [
        'spec.names.plural: Forbidden: "widgets.example.com" is a resource this API server '
        "serves itself"]
