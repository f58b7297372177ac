"""Custom resources against a structural schema (svcnet/api/crschema.py): kube-openapi's
validation messages at upstream's paths, pruning (apiextensions pruning/algorithm_test.go's
cases) and defaulting (defaulting/algorithm_test.go's)."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api import crschema
from svcnet.api.errors import Path, StatusError

Obj = dict[str, Any]

SCHEMA: Obj = {"type": "object", "properties": {
    "spec": {"type": "object", "required": ["size"], "properties": {
        "size": {"type": "integer", "minimum": 1, "maximum": 10},
        "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "multipleOf": 0.5},
        "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
        "name": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"},
        "when": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "maxItems": 2, "minItems": 1,
                 "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "port": {"x-kubernetes-int-or-string": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"},
                   "maxProperties": 1},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "properties": {"known": {"type": "object", "properties": {
                     "a": {"type": "string"}}}}},
        "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                     "properties": {"spec": {"type": "object"}}},
        "opt": {"type": "string", "nullable": True},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "n": {"type": "integer", "default": 7}}}},
    }},
    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
}}


def _errors(spec: Obj) -> list[str]:
    return [str(e) for e in crschema.validate({"spec": spec}, SCHEMA)]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"size": 3}, []),
    ({}, ["spec.size: Required value"]),
    ({"size": "3"}, ['spec.size: Invalid value: "string": spec.size in body must be of type '
                     'integer: "string"']),
    ({"size": 0}, ["spec.size: Invalid value: 0: spec.size in body should be greater than or "
                   "equal to 1"]),
    ({"size": 11}, ["spec.size: Invalid value: 11: spec.size in body should be less than or "
                    "equal to 10"]),
    ({"size": 1, "ratio": 0}, ["spec.ratio: Invalid value: 0: spec.ratio in body should be "
                               "greater than 0"]),
    ({"size": 1, "ratio": 0.7}, ["spec.ratio: Invalid value: 0.7: spec.ratio in body should be "
                                 "a multiple of 0.5"]),
    ({"size": 1, "color": "green"}, ['spec.color: Unsupported value: "green": supported '
                                     'values: "red", "blue"']),
    ({"size": 1, "name": "a"}, ['spec.name: Invalid value: "a": spec.name in body should be at '
                                "least 2 chars long"]),
    ({"size": 1, "name": "abcde"}, ['spec.name: Too long: may not be more than 4 bytes']),
    ({"size": 1, "name": "AB"}, ['spec.name: Invalid value: "AB": spec.name in body should '
                                 "match '^[a-z]+$'"]),
    ({"size": 1, "when": "yesterday"}, ['spec.when: Invalid value: "yesterday": spec.when in '
                                        'body must be of type date-time: "yesterday"']),
    ({"size": 1, "tags": []}, ["spec.tags: Invalid value: 0: spec.tags in body should have at "
                               "least 1 items"]),
    ({"size": 1, "tags": ["a", "b", "a"]}, ["spec.tags: Too many: 3: must have at most 2 items",
                                            'spec.tags[2]: Duplicate value: "a"']),
    ({"size": 1, "port": 80}, []),
    ({"size": 1, "port": "http"}, []),
    ({"size": 1, "port": True}, ['spec.port: Invalid value: "boolean": spec.port in body must '
                                 'be of type integer,string: "boolean"']),
    ({"size": 1, "labels": {"a": "1", "b": "2"}}, ["spec.labels: Too many: 2: must have at "
                                                   "most 1 items"]),
    ({"size": 1, "labels": {"a": 1}}, ['spec.labels.a: Invalid value: "integer": spec.labels.a '
                                       'in body must be of type string: "integer"']),
    ({"size": 1, "opt": None}, []),
    ({"size": None}, ['spec.size: Invalid value: "null": spec.size in body must be of type '
                      'integer: "null"']),
])
def test_validation(spec: Obj, expected: list[str]) -> None:
    assert _errors(spec) == expected


def test_pruning_keeps_what_the_schema_allows() -> None:
    obj: Obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"size": 1, "bogus": 1, "labels": {"any": "x"},
                    "free": {"anything": [1], "known": {"a": "x", "b": "y"}},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                 "spec": {}, "junk": 1},
                    "items": [{"n": 1, "m": 2}]},
           "status": {"ready": True, "extra": 1}, "top": 1}
    assert crschema.prune(obj, SCHEMA) == [
        "spec.bogus", "spec.free.known.b", "spec.template.junk", "spec.items[0].m",
        "status.extra", "top"]
    assert obj["spec"]["free"] == {"anything": [1], "known": {"a": "x"}}
    assert obj["spec"]["template"] == {"apiVersion": "v1", "kind": "Pod",
                                       "metadata": {"name": "p"}, "spec": {}}
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec", "status"}


def test_defaulting() -> None:
    obj: Obj = {"spec": {"size": 1, "items": [{}, {"n": 2}], "color": None, "opt": None,
                         "name": None}}
    crschema.apply_defaults(obj, SCHEMA)
    assert obj == {"spec": {"size": 1, "items": [{"n": 7}, {"n": 2}], "color": "red",
                            "opt": None}}


def test_decode_reports_metadata_and_pruned_fields() -> None:
    decoded = crschema.decode_custom_resource(
        {"apiVersion": "example.com/v1", "kind": "Widget",
         "metadata": {"name": "w", "bogus": 1}, "spec": {"size": 1, "x": 2}},
        SCHEMA, api_version="example.com/v1", kind="Widget")
    assert decoded.unknown_fields == ["metadata.bogus", "spec.x"]
    assert decoded.obj["metadata"] == {"name": "w"}
    with pytest.raises(StatusError) as err:
        crschema.decode_custom_resource({"metadata": {"name": 3}}, SCHEMA,
                                        api_version="example.com/v1", kind="Widget")
    assert err.value.code == 400


def test_a_schema_declaring_metadata_does_not_prune_it() -> None:
    """controller-gen writes `metadata: {type: object}` into every CRD (cert-manager,
    Prometheus operator, Argo CD): the object's metadata, and an embedded resource's, are
    ObjectMeta's, never pruned by the schema (upstream's pruning skips them)."""
    schema = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {"tpl": {
            "type": "object", "x-kubernetes-embedded-resource": True,
            "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}}}}}}}
    body = {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "ns", "labels": {"a": "b"},
                         "finalizers": ["example.com/f"]},
            "spec": {"tpl": {"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "p", "labels": {"x": "y"}},
                             "spec": {}}}}
    decoded = crschema.decode_custom_resource(body, schema, api_version="example.com/v1",
                                              kind="Widget")
    assert decoded.unknown_fields == []
    assert decoded.obj["metadata"] == body["metadata"]
    assert decoded.obj["spec"]["tpl"]["metadata"] == {"name": "p", "labels": {"x": "y"}}


def test_multiple_of_huge_numbers_and_list_uniqueness_without_errors_of_python() -> None:
    """No 500 on a number too large for a float; `1` and `true` are not duplicates (Go's
    DeepEqual), equal objects are; a map list refuses a repeated key."""
    even = {"type": "integer", "multipleOf": 2}
    assert [(e.field, e.detail) for e in crschema.validate(10**400 + 1, even, Path("n"))] == [
        ("n", "n in body should be a multiple of 2")]
    assert crschema.validate(10**400, even, Path("n")) == []
    as_set = {"type": "array", "x-kubernetes-list-type": "set"}
    assert crschema.validate([1, True, 1.0], as_set) == []
    assert [e.field for e in crschema.validate([{"a": 1}, {"a": 1}], as_set)] == ["[1]"]
    as_map = {"type": "array", "x-kubernetes-list-type": "map",
              "x-kubernetes-list-map-keys": ["name"],
              "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
    dup = crschema.validate([{"name": "a"}, {"name": "b"}, {"name": "a"}], as_map)
    assert [(e.field, e.value) for e in dup] == [("[2]", {"name": "a"})]


def test_a_custom_resource_nested_too_deep_is_a_400() -> None:
    deep: Obj = {}
    node = deep
    for _ in range(crschema.MAX_DEPTH + 5):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(StatusError) as info:
        crschema.decode_custom_resource({"metadata": {"name": "w"}, "spec": deep}, SCHEMA,
                                        api_version="example.com/v1", kind="Widget")
    assert info.value.code == 400 and "nested more than" in str(info.value)


def test_patterns_are_go_regular_expressions_matched_in_linear_time() -> None:
    """RE2, as Go's regexp: Unicode classes work, lookarounds are not valid, and a pattern that
    backtracks exponentially in Python's engine answers at once."""
    letters = {"type": "string", "pattern": r"^\p{L}+$"}
    assert crschema.validate("héllo", letters, Path("s")) == []
    assert [e.field for e in crschema.validate("h3llo", letters, Path("s"))] == ["s"]
    assert crschema.pattern_error("(?=a)") is not None
    assert crschema.pattern_error(r"^[a-z]([-a-z0-9]*[a-z0-9])?$") is None
    nested = {"type": "string", "pattern": r"^(a+)+$"}
    assert [e.field for e in crschema.validate("a" * 64 + "!", nested, Path("s"))] == ["s"]
