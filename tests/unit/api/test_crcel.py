"""CRD validation rules (svcnet/api/crcel.py, svcnet/api/cellib.py): compilation at CRD write with
upstream's paths and messages, and evaluation against custom resources: types from the schema,
property-name escaping, has(), transition rules, messageExpression, fieldPath, reason, the
Kubernetes libraries, and the bound on evaluation work. Cases learnt from apiextensions-apiserver's
schema/cel validation_test.go and compilation_test.go."""

from __future__ import annotations

import time
from typing import Any

import pytest

from svcnet.api import crcel, crds, crschema
from svcnet.api.errors import ErrorType, Path

Obj = dict[str, Any]


def _obj(rules: list[Obj], **props: Obj) -> Obj:
    return {"type": "object", "properties": props, "x-kubernetes-validations": rules}


def _errors(schema: Obj, obj: Any, old: Any = None) -> list[str]:
    tree, problems = crcel.compile_schema(schema)
    assert problems == []
    return [str(e) for e in crcel.validate(tree, obj, old)]


def _compile_errors(schema: Obj) -> list[str]:
    _, problems = crcel.compile_schema(schema, Path("spec.versions[0].schema.openAPIV3Schema"))
    return [str(e) for e in problems]


INT, NUM, STR, BOOL = ({"type": t} for t in ("integer", "number", "string", "boolean"))


# -------------------------------------------------------------------------------- types


@pytest.mark.parametrize("rule", [
    "type(self.i) == int", "type(self.n) == double", "type(self.s) == string",
    "type(self.b) == bool", "self.n == 2.0", "self.i + 1 == 3", "self.s.startsWith('a')",
    "self.l.all(x, x > 0)", "self.m['k'] == 'v'", "self.ios == 'x' || self.ios == 1",
    "self.l.exists_one(x, x == 2)", "self.l.map(x, x * 2) == [2, 4]",
    "self.l.filter(x, x > 1) == [2]", "size(self.m) == 1",
])
def test_values_are_typed_by_the_schema(rule: str) -> None:
    schema = _obj([{"rule": rule}], i=INT, n=NUM, s=STR, b=BOOL,
                  l={"type": "array", "items": INT},
                  m={"type": "object", "additionalProperties": STR},
                  ios={"x-kubernetes-int-or-string": True})
    # 2 is an integer in JSON: a `number` field is a double all the same.
    assert _errors(schema, {"i": 2, "n": 2, "s": "abc", "b": True, "l": [1, 2],
                            "m": {"k": "v"}, "ios": "x"}) == []


def test_a_false_rule_reports_the_value_or_omits_it_for_objects_and_arrays() -> None:
    schema = _obj([{"rule": "self.i < 2"}], i={**INT, "x-kubernetes-validations": [
        {"rule": "self < 1"}]}, s={**STR, "x-kubernetes-validations": [{"rule": "self == 'a'"}]})
    assert _errors({"type": "object", "properties": {"spec": schema}},
                   {"spec": {"i": 5, "s": "b"}}) == [
        "spec: Invalid value: failed rule: self.i < 2",
        "spec.i: Invalid value: 5: failed rule: self < 1",
        'spec.s: Invalid value: "b": failed rule: self == \'a\'']


def test_rules_on_the_root_report_at_nil_and_see_only_name_of_the_metadata() -> None:
    schema = _obj([{"rule": "self.metadata.name.startsWith('ok-')"},
                   {"rule": "!has(self.metadata.labels)"},
                   {"rule": "self.kind == 'Widget'"}])
    obj = {"apiVersion": "x/v1", "kind": "Widget",
           "metadata": {"name": "bad", "labels": {"a": "b"}}}
    assert _errors(schema, obj) == [
        "<nil>: Invalid value: failed rule: self.metadata.name.startsWith('ok-')"]


def test_compile_errors_are_cel_go_s_at_upstream_paths() -> None:
    errs = _compile_errors(_obj([{"rule": "'a'"}, {"rule": "self.nope("},
                                 {"rule": "nothing == 1"}],
                                i={**INT, "x-kubernetes-validations": [
                                    {"rule": "self + 1.0 > 2.0"}]}))
    base = "spec.versions[0].schema.openAPIV3Schema"
    assert errs[0] == (
        f"{base}.properties[i].x-kubernetes-validations[0].rule: Invalid value: "
        'apiextensions.ValidationRule{Rule:"self + 1.0 > 2.0", Message:"", MessageExpression:"", '
        'Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", '
        "OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:6: found no "
        "matching overload for '_+_' applied to '(int, double)'\n"
        " | self + 1.0 > 2.0\n"
        " | .....^")
    assert errs[1].startswith(f"{base}.x-kubernetes-validations[0].rule: Invalid value: ")
    assert errs[1].endswith(": cel expression must evaluate to a bool")
    assert "compilation failed: ERROR: <input>:1:11: Syntax error" in errs[2]
    assert "undeclared reference to 'nothing' (in container '')" in errs[3]
    assert len(errs) == 4


def test_numbers_of_different_types_are_ordered_as_kubernetes_does() -> None:
    # Kubernetes' environment allows <, <=, >, >= across int and double (cel-go's
    # CrossTypeNumericComparisons); == and != across them stay compile errors, as in cel-go.
    schema = _obj([], w={**NUM, "x-kubernetes-validations": [{"rule": "self <= 1"}]},
                  n={**INT, "x-kubernetes-validations": [{"rule": "self > 0.5"}]},
                  l={"type": "array", "items": NUM,
                     "x-kubernetes-validations": [{"rule": "self.all(x, x >= 0)"}]})
    assert _errors(schema, {"w": 0.5, "n": 1, "l": [0, 2.5]}) == []
    assert _errors(schema, {"w": 2, "n": 0, "l": [-1]}) == [
        "w: Invalid value: 2: failed rule: self <= 1",
        "n: Invalid value: 0: failed rule: self > 0.5",
        "l: Invalid value: failed rule: self.all(x, x >= 0)"]
    [error] = _compile_errors(_obj([], w={**NUM, "x-kubernetes-validations": [
        {"rule": "self <= 1 && self != 3"}]}))
    assert "found no matching overload for '_!=_' applied to '(double, int)'" in error


def test_static_checks_of_rule_objects() -> None:
    base = "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations"
    errs = _compile_errors(_obj([
        {"rule": " "}, {"rule": "true", "message": " "}, {"rule": "true", "message": "a\nb"},
        {"rule": "true ||\nfalse"}, {"rule": "true", "messageExpression": " "},
        {"rule": "true", "reason": "FieldValueNope"}, {"rule": "true", "fieldPath": ".nope"},
        {"rule": "true", "fieldPath": ".i"}, {"rule": "true", "optionalOldSelf": True},
        {"rule": "true", "messageExpression": "42"}], i=INT))
    assert errs == [
        f"{base}[0].rule: Required value: rule is not specified",
        f'{base}[1].message: Invalid value: " ": message must be non-empty if specified',
        f'{base}[2].message: Invalid value: "a\\nb": message must not contain line breaks',
        f"{base}[3].message: Required value: message must be specified if rule contains line "
        "breaks",
        f"{base}[4].messageExpression: Required value: messageExpression must be non-empty if "
        "specified",
        f'{base}[5].reason: Unsupported value: "FieldValueNope": supported values: '
        '"FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", '
        '"FieldValueRequired"',
        f'{base}[6].fieldPath: Invalid value: ".nope": fieldPath must be a valid path',
        f"{base}[8].optionalOldSelf: Invalid value: true: may not be set if rule does not use "
        "oldSelf",
        f'{base}[9].messageExpression: Invalid value: apiextensions.ValidationRule{{Rule:"true", '
        'Message:"", MessageExpression:"42", Reason:(*apiextensions.FieldValueErrorReason)(nil), '
        'FieldPath:"", OptionalOldSelf:(*bool)(nil)}: messageExpression must evaluate to a '
        "string"]


def test_a_crd_whose_rule_does_not_compile_is_refused() -> None:
    schema = {"type": "object", "properties": {"spec": _obj(
        [{"rule": "self.replicas >"}], replicas=INT)}}
    crd = crds.set_defaults({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": schema}}]}})
    errs = crds.validate_crd(crd)
    assert [e.field for e in errs] == [
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]"
        ".rule"]
    assert errs[0].type is ErrorType.INVALID
    assert "compilation failed: ERROR: <input>:1:16: Syntax error" in errs[0].detail
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"] = [{"rule": "self.replicas > 0"}]
    assert crds.validate_crd(crd) == []


# ---------------------------------------------------------------------------- escaping


@pytest.mark.parametrize(("name", "escaped"), [
    ("foo-bar", "foo__dash__bar"), ("a.b", "a__dot__b"), ("a/b", "a__slash__b"),
    ("a__b", "a__underscores__b"), ("namespace", "__namespace__"), ("if", "__if__"),
    ("plain", "plain"), ("1abc", None), ("a b", None), ("a:b", None),
])
def test_property_names_are_escaped(name: str, escaped: str | None) -> None:
    assert crcel.escape(name) == escaped


def test_escaped_properties_are_selectable_and_has_tests_presence() -> None:
    schema = _obj([{"rule": "self.foo__dash__bar == 1 && self.__namespace__ == 'n'"},
                   {"rule": "has(self.a__dot__b) == false"},
                   {"rule": "!has(self.optional) || self.optional > 0"}],
                  **{"foo-bar": INT, "namespace": STR, "a.b": STR, "optional": INT})
    assert _errors(schema, {"foo-bar": 1, "namespace": "n"}) == []
    assert _errors(schema, {"foo-bar": 1, "namespace": "n", "a.b": "x", "optional": 0}) == [
        "<nil>: Invalid value: failed rule: has(self.a__dot__b) == false",
        "<nil>: Invalid value: failed rule: !has(self.optional) || self.optional > 0"]


def test_an_evaluation_error_is_reported_as_upstream() -> None:
    schema = {"type": "object", "properties": {"spec": _obj(
        [{"rule": "self.missing == 1"}, {"rule": "self.l[3] == 1"}, {"rule": "1 / self.i == 1"}],
        missing=INT, i=INT, l={"type": "array", "items": INT})}}
    assert _errors(schema, {"spec": {"i": 0, "l": []}}) == [
        'spec: Invalid value: "object": no such key: missing evaluating rule: self.missing == 1',
        'spec: Invalid value: "object": index out of bounds: 3 evaluating rule: self.l[3] == 1',
        'spec: Invalid value: "object": division by zero evaluating rule: 1 / self.i == 1']


# ----------------------------------------------------------------------- transition rules


IMMUTABLE: Obj = {"rule": "self == oldSelf", "message": "is immutable"}


def test_transition_rules_run_on_update_only_where_the_old_value_correlates() -> None:
    item = {"type": "object", "properties": {"name": STR, "size": {
        **INT, "x-kubernetes-validations": [IMMUTABLE]}}}
    schema = {"type": "object", "properties": {
        "mode": {**STR, "x-kubernetes-validations": [IMMUTABLE]},
        "labels": {"type": "object", "additionalProperties": {
            **STR, "x-kubernetes-validations": [IMMUTABLE]}},
        "items": {"type": "array", "items": item, "x-kubernetes-list-type": "map",
                  "x-kubernetes-list-map-keys": ["name"]}}}
    new = {"mode": "b", "labels": {"a": "2", "new": "x"},
           "items": [{"name": "y", "size": 1}, {"name": "x", "size": 3}]}
    assert _errors(schema, new) == []  # a create has no oldSelf
    old = {"mode": "a", "labels": {"a": "1"}, "items": [{"name": "x", "size": 2}]}
    assert _errors(schema, new, old) == [
        'mode: Invalid value: "b": is immutable',
        'labels[a]: Invalid value: "2": is immutable',
        "items[1].size: Invalid value: 3: is immutable"]


def test_old_self_is_refused_under_a_list_that_does_not_correlate() -> None:
    schema = {"type": "object", "properties": {"l": {"type": "array", "items": {
        **STR, "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}
    assert _compile_errors(schema) == [
        "spec.versions[0].schema.openAPIV3Schema.properties[l].items.x-kubernetes-validations[0]"
        '.rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable '
        "portion of the schema within spec.versions[0].schema.openAPIV3Schema.properties[l]"
        ".items"]


def test_optional_old_self_runs_on_create_too() -> None:
    rule = {"rule": "!oldSelf.hasValue() || self >= oldSelf.value()", "optionalOldSelf": True,
            "message": "may only grow"}
    schema = _obj([], size={**INT, "x-kubernetes-validations": [
        rule, {"rule": "oldSelf.hasValue() || self < 10", "optionalOldSelf": True}]})
    assert _errors(schema, {"size": 3}) == []
    assert _errors(schema, {"size": 30}) == [
        "size: Invalid value: 30: failed rule: oldSelf.hasValue() || self < 10"]
    assert _errors(schema, {"size": 2}, {"size": 3}) == ["size: Invalid value: 2: may only grow"]


def test_unchanged_values_ratchet_on_update() -> None:
    small = {**INT, "x-kubernetes-validations": [{"rule": "self < 10"}]}
    schema = {"type": "object", "properties": {
        "a": small, "b": small,
        "tags": {"type": "array", "items": {**STR, "x-kubernetes-validations": [
            {"rule": "self.size() < 3"}]}}}}
    old = {"a": 50, "b": 1, "tags": ["long"]}
    # a rule added after the object was stored does not block updates of other fields
    assert _errors(schema, {"a": 50, "b": 2, "tags": ["long"]}, old) == []
    assert _errors(schema, {"a": 51, "b": 2, "tags": ["long", "x"]}, old) == [
        "a: Invalid value: 51: failed rule: self < 10",
        'tags[0]: Invalid value: "long": failed rule: self.size() < 3']
    assert _errors(schema, {"a": 50, "b": 2, "tags": ["long"]}) == [
        "a: Invalid value: 50: failed rule: self < 10",
        'tags[0]: Invalid value: "long": failed rule: self.size() < 3']


# ------------------------------------------------- messages, fieldPath, reason


def test_message_expression_field_path_and_reason() -> None:
    schema = {"type": "object", "properties": {"spec": _obj([
        {"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + "
         "' exceeds max ' + string(self.max)", "fieldPath": ".min"},
        {"rule": "self.max < 100", "reason": "FieldValueForbidden", "message": "too many"},
        {"rule": "has(self.name)", "reason": "FieldValueRequired", "fieldPath": ".name",
         "message": "name is required"},
        {"rule": "self.max != 7", "reason": "FieldValueDuplicate"},
        {"rule": "self.max != 200", "messageExpression": "''"},
        {"rule": "self.labels['a'] == 'x'", "fieldPath": "['labels']['a']"},
    ], min=INT, max=INT, name=STR, labels={"type": "object", "additionalProperties": STR})}}
    assert _errors(schema, {"spec": {"min": 300, "max": 200, "labels": {"a": "y"}}}) == [
        "spec.min: Invalid value: min 300 exceeds max 200",
        "spec: Forbidden: too many",
        "spec.name: Required value: name is required",
        # an empty message expression falls back to the default message
        "spec: Invalid value: failed rule: self.max != 200",
        "spec.labels[a]: Invalid value: failed rule: self.labels['a'] == 'x'"]
    assert _errors(schema, {"spec": {"min": 1, "max": 7, "name": "n",
                                     "labels": {"a": "x"}}}) == ["spec: Duplicate value"]


# ------------------------------------------------------------------- libraries


@pytest.mark.parametrize("rule", [
    "self.l.isSorted() && self.l.sum() == 6 && self.l.min() == 1 && self.l.max() == 3",
    "self.l.indexOf(2) == 1 && [1, 2, 1].lastIndexOf(1) == 2",
    "self.s.find('[0-9]+') == '42' && self.s.findAll('[a-z]') == ['a', 'b']",
    "self.s.matches('^a[0-9]+b$') && !self.s.matches('^[0-9]')",
    "self.s.lowerAscii() == 'a42b' && self.s.upperAscii() == 'A42B'",
    "' x '.trim() == 'x' && 'a,b'.split(',') == ['a', 'b'] && ['a', 'b'].join('-') == 'a-b'",
    "self.s.substring(1, 3) == '42' && self.s.indexOf('4') == 1 && 'aXa'.replace('a', 'b') "
    "== 'bXb'",
    "isURL(self.u) && url(self.u).getScheme() == 'https' && url(self.u).getHostname() == "
    "'example.com' && url(self.u).getPort() == '8443' && url(self.u).getEscapedPath() == "
    "'/p' && url(self.u).getQuery()['q'] == ['1'] && !isURL('no url')",
    "isQuantity(self.q) && quantity(self.q).isGreaterThan(quantity('1G')) && "
    "quantity(self.q).compareTo(quantity('1024Mi')) == 0 && quantity('1.5').isInteger() == "
    "false && quantity('2k').asInteger() == 2000 && quantity('1').add(1) == quantity('2') && "
    "quantity('500m').sign() == 1",
    "isIP(self.ip) && ip(self.ip).family() == 4 && cidr('10.0.0.0/8').containsIP(self.ip) && "
    "!ip('127.0.0.1').isGlobalUnicast() && ip('127.0.0.1').isLoopback() && "
    "cidr('10.1.2.0/8').masked() == cidr('10.0.0.0/8') && "
    "cidr('10.0.0.0/8').prefixLength() == 8 && !isCIDR('10.0.0.0')",
    "'%s has %d'.format([self.s, 2]) == 'a42b has 2'",
    "cel.bind(x, self.l.size(), x == 3)",
])
def test_kubernetes_libraries(rule: str) -> None:
    schema = _obj([{"rule": rule}], l={"type": "array", "items": INT}, s=STR, u=STR, q=STR,
                  ip=STR)
    assert _errors(schema, {"l": [1, 2, 3], "s": "a42b", "u": "https://example.com:8443/p?q=1",
                            "q": "1Gi", "ip": "10.1.2.3"}) == []


def test_a_library_error_is_an_evaluation_error() -> None:
    schema = _obj([{"rule": "url(self.u).getHost() == ''"}], u=STR)
    [err] = _errors(schema, {"u": "not a url"})
    assert err.startswith('<nil>: Invalid value: "object": URL parse error during conversion')
    assert err.endswith(" evaluating rule: url(self.u).getHost() == ''")


def test_rules_do_not_run_beside_blocking_schema_errors() -> None:
    schema = _obj([{"rule": "self.s.size() > 100"}],
                  s={**STR, "maxLength": 3}, n={**INT, "minimum": 5})
    tree = crcel.rules_for(schema)
    too_long = crschema.validate({"s": "abcd"}, schema)
    assert [e.type for e in too_long] == [ErrorType.TOO_LONG]
    assert [str(e) for e in crcel.validate(tree, {"s": "abcd"}, other_errors=too_long)] == [
        '<nil>: Invalid value: "null": some validation rules were not checked because the '
        "object was invalid; correct the existing errors to complete validation"]
    mistyped = crschema.validate({"s": 1}, schema)
    assert [e.type for e in mistyped] == [ErrorType.TYPE_INVALID]
    assert len(crcel.validate(tree, {"s": 1}, other_errors=mistyped)) == 1
    # a plain Invalid (minimum) does not block
    below = crschema.validate({"s": "ab", "n": 1}, schema)
    assert [e.type for e in below] == [ErrorType.INVALID]
    assert [str(e) for e in crcel.validate(tree, {"s": "ab", "n": 1}, other_errors=below)] == [
        "<nil>: Invalid value: failed rule: self.s.size() > 100"]


# ----------------------------------------------------------------------- bounds


def test_evaluation_work_is_bounded_and_stops_further_rules() -> None:
    schema = _obj([{"rule": "self.l.all(x, self.l.all(y, x + y >= 0))"},
                   {"rule": "self.l.size() == 0"}],
                  l={"type": "array", "items": INT})
    started = time.monotonic()
    errs = _errors(schema, {"l": list(range(5000))})
    assert time.monotonic() - started < 2
    assert errs == [
        "<nil>: Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': "
        "no further validation rules will be run due to call cost exceeds limit for rule: "
        "self.l.all(x, self.l.all(y, x + y >= 0))"]
    assert _errors(schema, {"l": list(range(50))}) == [
        "<nil>: Invalid value: failed rule: self.l.size() == 0"]


def test_rules_compile_once_per_schema_and_a_schema_without_rules_has_no_tree() -> None:
    schema = _obj([{"rule": "self.i > 0"}], i=INT)
    assert crcel.rules_for(schema) is crcel.rules_for(dict(schema))
    assert crcel.rules_for({"type": "object", "properties": {"i": INT}}) is None


# ------------------------------------------------------------------ review mends (H1-H4, M1, M2)


def test_dates_and_durations_inside_objects_and_lists_are_typed() -> None:
    stamp, span = {**STR, "format": "date-time"}, {**STR, "format": "duration"}
    schema = _obj([{"rule": "self.a < self.b && self.d > duration('1s') && "
                            "self.l.all(x, x > timestamp('2020-01-01T00:00:00Z'))"}],
                  a=stamp, b=stamp, d=span, l={"type": "array", "items": stamp})
    ok = {"a": "2024-01-01T00:00:00Z", "b": "2024-06-01T00:00:00Z", "d": "90s",
          "l": ["2021-01-01T00:00:00Z"]}
    assert _errors(schema, ok) == []
    assert len(_errors(schema, {**ok, "d": "500ms"})) == 1
    assert len(_errors(schema, {**ok, "l": ["2019-01-01T00:00:00Z"]})) == 1


def test_a_duration_beyond_go_s_range_is_an_evaluation_error_not_a_crash() -> None:
    schema = _obj([{"rule": "self.d > duration('1s')"}], d={**STR, "format": "duration"})
    # Not a duration (Go's time.ParseDuration refuses it too): the string reaches the rule.
    assert _errors(schema, {"d": "99999999999999h"}) == [
        "<nil>: Invalid value: \"object\": 'no such overload': call arguments did not match a "
        "supported operator, function or macro signature for rule: self.d > duration('1s')"]


def test_an_embedded_resource_shows_its_kind_and_name() -> None:
    template = {"type": "object", "x-kubernetes-embedded-resource": True,
                "properties": {"spec": {"type": "object"}},
                "x-kubernetes-validations": [
                    {"rule": "self.kind == 'Pod' && self.metadata.name == 'a' && "
                             "!has(self.metadata.labels)"}]}
    schema = _obj([], template=template)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"x": "y"}},
           "spec": {}}
    assert _errors(schema, {"template": pod}) == []
    assert len(_errors(schema, {"template": {**pod, "kind": "Job"}})) == 1


def test_a_null_property_is_absent() -> None:
    schema = _obj([{"rule": "!has(self.x) || self.x.size() > 0"}],
                  x={**STR, "nullable": True})
    assert _errors(schema, {"x": None}) == []
    assert len(_errors(schema, {"x": ""})) == 1


def test_the_rules_of_one_object_share_a_cpu_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = _obj([{"rule": "self.i > 5"}, {"rule": "self.i > 6"}], i=INT)
    monkeypatch.setattr(crcel, "OBJECT_CPU_BUDGET", -1.0)  # spent before the first rule
    assert _errors(schema, {"i": 1}) == [
        '<nil>: Invalid value: "object": validation failed due to running out of cost budget, '
        "no further validation rules will be run"]


def test_a_stored_rule_that_does_not_compile_does_not_block_updates_of_its_crd() -> None:
    def crd(*rules: str) -> Obj:
        schema = {"type": "object", "properties": {"spec": _obj(
            [{"rule": r} for r in rules], replicas=INT)}}
        return crds.set_defaults({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com", "resourceVersion": "1"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}}]}})
    stored = crd("sets.contains([1], [1])")  # a library svcnet lacks
    assert crds.validate_crd(stored) != []  # refused as a new CRD
    assert crds.validate_crd_update(crd("sets.contains([1], [1])"), stored) == []
    [error] = crds.validate_crd_update(crd("sets.contains([1], [1])", "self.nope("), stored)
    assert "compilation failed" in error.detail
