"""Label and field selectors; cases ported from apimachinery's labels/selector_test.go,
fields/selector_test.go and meta/v1/validation tests, plus exact error texts."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.errors import ErrorType, Path
from svcnet.api.labels import (
    EVERYTHING,
    NOTHING,
    FieldSelector,
    Operator,
    Requirement,
    Selector,
    SelectorError,
    Token,
    escape_field_value,
    field_value,
    lex,
    new_requirement,
    normalize_field_selector,
    parse_field_selector,
    parse_selector,
    selectable_fields,
    selector_from_label_selector,
    selector_from_set,
    unescape_field_value,
    validate_field_selector,
    validate_label_selector,
)

T = Token
R = ErrorType.REQUIRED
I = ErrorType.INVALID  # noqa: E741
F = ErrorType.FORBIDDEN

# ----------------------------------------------------------------------------------- lexer


@pytest.mark.parametrize(("text", "token"), [
    ("", T.END_OF_STRING),
    (",", T.COMMA),
    ("notin", T.NOT_IN),
    ("in", T.IN),
    ("=", T.EQUALS),
    ("==", T.DOUBLE_EQUALS),
    (">", T.GREATER_THAN),
    ("<", T.LESS_THAN),
    ("!", T.DOES_NOT_EXIST),  # the lexer returns the longest valid token
    ("!=", T.NOT_EQUALS),
    ("(", T.OPEN_PAR),
    (")", T.CLOSED_PAR),
    ("~", T.IDENTIFIER),  # non-special characters are part of an identifier
    ("||", T.IDENTIFIER),
], ids=lambda v: repr(v) if isinstance(v, str) else v.name)
def test_lexer_single_token(text: str, token: Token) -> None:
    tok, lit = lex(text)[0]
    assert tok is token
    assert lit == text


@pytest.mark.parametrize(("text", "tokens"), [
    ("key in ( value )", [T.IDENTIFIER, T.IN, T.OPEN_PAR, T.IDENTIFIER, T.CLOSED_PAR]),
    ("key notin ( value )", [T.IDENTIFIER, T.NOT_IN, T.OPEN_PAR, T.IDENTIFIER, T.CLOSED_PAR]),
    ("key in ( value1, value2 )",
     [T.IDENTIFIER, T.IN, T.OPEN_PAR, T.IDENTIFIER, T.COMMA, T.IDENTIFIER, T.CLOSED_PAR]),
    ("key", [T.IDENTIFIER]),
    ("!key", [T.DOES_NOT_EXIST, T.IDENTIFIER]),
    ("()", [T.OPEN_PAR, T.CLOSED_PAR]),
    ("x in (),y", [T.IDENTIFIER, T.IN, T.OPEN_PAR, T.CLOSED_PAR, T.COMMA, T.IDENTIFIER]),
    ("== != (), = notin",
     [T.DOUBLE_EQUALS, T.NOT_EQUALS, T.OPEN_PAR, T.CLOSED_PAR, T.COMMA, T.EQUALS, T.NOT_IN]),
    ("key>2", [T.IDENTIFIER, T.GREATER_THAN, T.IDENTIFIER]),
    ("key<1", [T.IDENTIFIER, T.LESS_THAN, T.IDENTIFIER]),
    ("a=!b", [T.IDENTIFIER, T.EQUALS, T.DOES_NOT_EXIST, T.IDENTIFIER]),
    ("\tk\r\n==\nv ", [T.IDENTIFIER, T.DOUBLE_EQUALS, T.IDENTIFIER]),
], ids=[
    "in", "notin", "in-two-values", "key", "not-key", "parens", "empty-set-then-key",
    "operators-only", "gt", "lt", "equals-then-bang", "all-whitespace-kinds",
])
def test_lexer_sequence(text: str, tokens: list[Token]) -> None:
    got = lex(text)
    assert got[-1][0] is T.END_OF_STRING
    assert [t for t, _ in got[:-1]] == tokens


# ----------------------------------------------------------------------------------- parse


@pytest.mark.parametrize("text", [
    "x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5",
])
def test_parse_restring(text: str) -> None:
    # TestSelectorParse: the canonical String() is the input without spaces.
    assert str(parse_selector(text)) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["x=a||y=b", "x==a==b", "!x=a", "x<a"])
def test_parse_bad(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(text)


def test_deterministic_parse() -> None:
    assert str(parse_selector("x=a,a=x")) == str(parse_selector("a=x,x=a")) == "a=x,x=a"


def _req(key: str, op: Operator, *values: str) -> Requirement:
    return Requirement(key, op, tuple(values))


@pytest.mark.parametrize(("text", "expected"), [
    ("", []),
    ("\rx", [_req("x", Operator.EXISTS)]),
    ("this-is-a-dns.domain.com/key-with-dash",
     [_req("this-is-a-dns.domain.com/key-with-dash", Operator.EXISTS)]),
    ("this-is-another-dns.domain.com/key-with-dash in (so,what)",
     [_req("this-is-another-dns.domain.com/key-with-dash", Operator.IN, "so", "what")]),
    ("0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
     [_req("0.1.2.domain/99", Operator.NOT_IN, "10.10.100.1", "tick.tack.clock")]),
    ("foo  in\t (abc)", [_req("foo", Operator.IN, "abc")]),
    ("x notin\n (abc)", [_req("x", Operator.NOT_IN, "abc")]),
    ("x  notin\t\t\t(abc,def)", [_req("x", Operator.NOT_IN, "abc", "def")]),
    ("x in (abc,def)", [_req("x", Operator.IN, "abc", "def")]),
    ("x in (abc,)", [_req("x", Operator.IN, "", "abc")]),
    ("x in ()", [_req("x", Operator.IN, "")]),
    ("x notin (abc,def),bar,z in (),w", [
        _req("bar", Operator.EXISTS), _req("w", Operator.EXISTS),
        _req("x", Operator.NOT_IN, "abc", "def"), _req("z", Operator.IN, "")]),
    ("x=a", [_req("x", Operator.EQUALS, "a")]),
    ("x>1", [_req("x", Operator.GREATER_THAN, "1")]),
    ("x<7", [_req("x", Operator.LESS_THAN, "7")]),
    ("x=a,y!=b", [_req("x", Operator.EQUALS, "a"), _req("y", Operator.NOT_EQUALS, "b")]),
    ("x=a,y!=b,z in (h,i,j)", [
        _req("x", Operator.EQUALS, "a"), _req("y", Operator.NOT_EQUALS, "b"),
        _req("z", Operator.IN, "h", "i", "j")]),
    ("x notin ( )", [_req("x", Operator.NOT_IN, "")]),
    ("x notin (, a)", [_req("x", Operator.NOT_IN, "", "a")]),
    ("a ", [_req("a", Operator.EXISTS)]),
    ("a in (x,y,notin, z,in)", [_req("a", Operator.IN, "in", "notin", "x", "y", "z")]),
    ("x==a", [_req("x", Operator.DOUBLE_EQUALS, "a")]),
    ("notin=in", [_req("notin", Operator.EQUALS, "in")]),
    ("x in (a,a,a)", [_req("x", Operator.IN, "a")]),
    ("x in (b,,a)", [_req("x", Operator.IN, "", "a", "b")]),
], ids=lambda v: repr(v) if isinstance(v, str) else "")
def test_set_selector_parser(text: str, expected: list[Requirement]) -> None:
    assert parse_selector(text).requirements == tuple(expected)


@pytest.mark.parametrize(("text", "message"), [
    ("x,,y", "found ',', expected: identifier after ','"),
    (",x,y", "found ',', expected: !, identifier, or 'end of string'"),
    ("x nott in (y)",
     "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt"),
    ("a in (xyz),", "found '', expected: identifier after ','"),
    ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'"),
    ("a in (xyz abc)", "unable to parse requirement: found 'abc', expected: ',' or ')'"),
    ("a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
    ("a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
    ("(", "found '(', expected: !, identifier, or 'end of string'"),
    ("x in", "unable to parse requirement: found '' expected: '('"),
    ("x in (a,", "unable to parse requirement: found '', expected: ',', or identifier"),
    ("x=(", "unable to parse requirement: found '(', expected: identifier"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("x==a==b", "found '==', expected: ',' or 'end of string'"),
    ("!x=a", "found '=', expected: ',' or 'end of string'"),
    ("x<a", "unable to parse requirement: values[0]: Invalid value: \"a\": "
            "for 'Gt', 'Lt' operators, the value must be an integer"),
    ("x>1.5", "unable to parse requirement: values[0]: Invalid value: \"1.5\": "
              "for 'Gt', 'Lt' operators, the value must be an integer"),
], ids=repr)
def test_parse_error_messages(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as exc:
        parse_selector(text)
    assert str(exc.value) == message


def test_parse_invalid_key_reports_nil_path() -> None:
    # Upstream validates the key against a nil *field.Path, which Go prints as "<nil>".
    with pytest.raises(SelectorError) as exc:
        parse_selector("a/b/c=x")
    assert str(exc.value).startswith('unable to parse requirement: <nil>: Invalid value: "a/b/c": '
                                     "a valid label key must consist of")


def test_parse_invalid_value_reports_keyed_path() -> None:
    with pytest.raises(SelectorError) as exc:
        parse_selector("x=a/b")
    assert str(exc.value).startswith(
        'unable to parse requirement: values[0][x]: Invalid value: "a/b": a valid label must '
        "be an empty string")
    assert [(e.field, e.type) for e in exc.value.errors] == [("values[0][x]", I)]


def test_parse_with_path_prefix() -> None:
    with pytest.raises(SelectorError) as exc:
        parse_selector("-x", path=Path("labelSelector"))
    assert str(exc.value).startswith("unable to parse requirement: labelSelector: Invalid value")


# ----------------------------------------------------------------------------------- matching

_FOO_BAZ = {"foo": "bar", "baz": "blah"}


@pytest.mark.parametrize(("text", "labels", "want"), [
    ("", {"x": "y"}, True),
    ("x=y", {"x": "y"}, True),
    ("x=y,z=w", {"x": "y", "z": "w"}, True),
    ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
    ("notin=in", {"notin": "in"}, True),
    ("x", {"x": "z"}, True),
    ("!x", {"y": "z"}, True),
    ("x>1", {"x": "2"}, True),
    ("x<1", {"x": "0"}, True),
    ("x=z", {}, False),
    ("x=y", {"x": "z"}, False),
    ("x=y,z=w", {"x": "w", "z": "w"}, False),
    ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
    ("x", {"y": "z"}, False),
    ("!x", {"x": "z"}, False),
    ("x>1", {"x": "0"}, False),
    ("x<1", {"x": "2"}, False),
    ("x>1", {"x": "v2"}, False),
    ("x>1", {}, False),
    ("x>10", {"x": "9"}, False),
    ("x<10", {"x": "+9"}, True),
    ("foo=bar", _FOO_BAZ, True),
    ("baz=blah", _FOO_BAZ, True),
    ("foo=bar,baz=blah", _FOO_BAZ, True),
    ("foo=blah", _FOO_BAZ, False),
    ("baz=bar", _FOO_BAZ, False),
    ("foo=bar,foobar=bar,baz=blah", _FOO_BAZ, False),
    ("x notin (a)", {}, True),
    ("x in (a,b)", {"x": "b"}, True),
    ("x in ()", {"x": ""}, True),
    ("x=", {}, False),
    ("x!=", {}, True),
], ids=lambda v: repr(v) if isinstance(v, str) else None)
def test_selector_matches(text: str, labels: dict[str, str], want: bool) -> None:
    assert parse_selector(text).matches(labels) is want


@pytest.mark.parametrize(("selector", "labels", "want"), [
    (Selector((Requirement("x", Operator.IN, ("foo",)), Requirement("y", Operator.NOT_IN,
                                                                     ("alpha",)))),
     {"x": "foo", "y": "baz"}, True),
    (Selector((Requirement("x", Operator.IN, ("foo",)), Requirement("y", Operator.IN,
                                                                     ("alpha",)))),
     {"x": "foo", "y": "baz"}, False),
    (Selector((Requirement("x", Operator.NOT_IN, ("",)), Requirement("y", Operator.EXISTS))),
     {"y": ""}, True),
    (Selector((Requirement("x", Operator.DOES_NOT_EXIST), Requirement("y", Operator.EXISTS))),
     {"y": ""}, True),
    (Selector((Requirement("x", Operator.NOT_IN, ("",)),
               Requirement("y", Operator.DOES_NOT_EXIST))), {"y": ""}, False),
    (Selector((Requirement("x", Operator.IN, ("",)),)), {"y": "baz"}, False),
    (EVERYTHING, {"x": "y"}, True),
    (NOTHING, {"x": "y"}, False),
], ids=["in-notin", "in-in", "notin-empty-exists", "dne-exists", "notin-dne", "in-empty",
        "everything", "nothing"])
def test_requirement_selector_matching(selector: Selector, labels: dict[str, str],
                                       want: bool) -> None:
    assert selector.matches(labels) is want


@pytest.mark.parametrize(("key", "op", "values", "ok"), [
    ("x", Operator.IN, [], False),
    ("x", Operator.NOT_IN, [], False),
    ("x", Operator.IN, ["foo"], True),
    ("x", Operator.NOT_IN, ["foo"], True),
    ("x", Operator.EXISTS, [], True),
    ("x", Operator.DOES_NOT_EXIST, [], True),
    ("1foo", Operator.IN, ["bar"], True),
    ("1234", Operator.IN, ["bar"], True),
    ("y", Operator.GREATER_THAN, ["1"], True),
    ("z", Operator.LESS_THAN, ["6"], True),
    ("foo", Operator.GREATER_THAN, ["bar"], False),
    ("barz", Operator.LESS_THAN, ["blah"], False),
    ("a" * 254, Operator.EXISTS, [], False),  # breaks the 253-byte subdomain prefix rule
    ("x", Operator.EQUALS, ["a", "b"], False),
    ("x", Operator.EXISTS, ["a"], False),
    ("x", "like", ["a"], False),
], ids=lambda v: None)
def test_requirement_constructor(key: str, op: Operator | str, values: list[str],
                                 ok: bool) -> None:
    if ok:
        new_requirement(key, op, values)
    else:
        with pytest.raises(SelectorError):
            new_requirement(key, op, values)


def test_requirement_constructor_error_fields() -> None:
    with pytest.raises(SelectorError) as exc:
        new_requirement("-k", Operator.IN, [])
    assert [(e.field, e.type) for e in exc.value.errors] == [("key", I), ("values", I)]
    assert str(exc.value).endswith(
        'values: Invalid value: []string{}: for \'in\', \'notin\' operators, values set '
        "can't be empty]")
    with pytest.raises(SelectorError) as exc:
        new_requirement("k", "like", ["a"])
    assert [(e.field, e.type) for e in exc.value.errors] == [
        ("operator", ErrorType.NOT_SUPPORTED)]


@pytest.mark.parametrize(("selector", "text"), [
    (Selector((_req("x", Operator.IN, "abc", "def"), _req("y", Operator.NOT_IN, "jkl"),
               _req("z", Operator.EXISTS))), "x in (abc,def),y notin (jkl),z"),
    (Selector((_req("x", Operator.NOT_IN, "abc", "def"), _req("y", Operator.NOT_EQUALS, "jkl"),
               _req("z", Operator.DOES_NOT_EXIST))), "x notin (abc,def),y!=jkl,!z"),
    (Selector((_req("x", Operator.NOT_IN, "abc"), _req("y", Operator.IN, "jkl", "mno"),
               _req("z", Operator.NOT_IN, ""))), "x notin (abc),y in (jkl,mno),z notin ()"),
    (Selector((_req("x", Operator.EQUALS, "abc"), _req("y", Operator.DOUBLE_EQUALS, "jkl"),
               _req("z", Operator.NOT_EQUALS, "a"), _req("z", Operator.EXISTS))),
     "x=abc,y==jkl,z!=a,z"),
    (Selector((_req("x", Operator.GREATER_THAN, "2"), _req("y", Operator.LESS_THAN, "8"),
               _req("z", Operator.EXISTS))), "x>2,y<8,z"),
    (Selector((_req("x", Operator.IN, "b", "a"),)), "x in (a,b)"),
], ids=["in-notin-exists", "notin-ne-dne", "empty-value", "equals-family", "gt-lt",
        "sorted-on-output"])
def test_to_string(selector: Selector, text: str) -> None:
    assert str(selector) == text


def test_selector_from_set() -> None:
    sel = selector_from_set({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"})
    assert not sel.matches({"a": "1"})
    assert selector_from_set({}).empty()
    assert selector_from_set(None).matches({"anything": "x"})
    assert sel.requires_exact_match("a") == "1"
    assert sel.requires_exact_match("c") is None
    assert parse_selector("x in (a,b)").requires_exact_match("x") is None
    assert parse_selector("x in (a)").requires_exact_match("x") == "a"


# ------------------------------------------------------------------------ metav1.LabelSelector


@pytest.mark.parametrize(("label_selector", "text", "labels", "want"), [
    (None, "", {"a": "b"}, False),
    ({}, "", {"a": "b"}, True),
    ({"matchLabels": {}, "matchExpressions": []}, "", {}, True),
    ({"matchLabels": {"app": "web", "tier": "fe"}}, "app=web,tier=fe",
     {"app": "web", "tier": "fe", "x": "y"}, True),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
     "env in (dev,prod)", {"env": "dev"}, True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
     "env notin (prod)", {}, True),
    ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, "env", {"env": ""}, True),
    ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, "!env",
     {"env": "x"}, False),
    ({"matchLabels": {"z": "1"}, "matchExpressions": [{"key": "a", "operator": "Exists"}]},
     "a,z=1", {"a": "", "z": "1"}, True),
], ids=["nil-is-nothing", "empty-is-everything", "empty-lists", "match-labels", "in", "notin",
        "exists", "does-not-exist", "sorted-by-key"])
def test_selector_from_label_selector(label_selector: dict[str, Any] | None, text: str,
                                      labels: dict[str, str], want: bool) -> None:
    sel = selector_from_label_selector(label_selector)
    assert str(sel) == text
    assert sel.matches(labels) is want


@pytest.mark.parametrize(("label_selector", "message"), [
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     '"Gt" is not a valid pod selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be "
     "empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     'values: Invalid value: []string{"x"}: values set must be empty for exists and does not '
     "exist"),
], ids=["bad-operator", "in-without-values", "exists-with-values"])
def test_selector_from_label_selector_errors(label_selector: dict[str, Any],
                                             message: str) -> None:
    with pytest.raises(SelectorError) as exc:
        selector_from_label_selector(label_selector)
    assert str(exc.value) == message


@pytest.mark.parametrize(("label_selector", "expected"), [
    (None, set()),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "k", "operator": "In", "values": ["a"]}]}, set()),
    ({"matchLabels": {"-bad": "v"}}, {("sel.matchLabels", I)}),
    ({"matchLabels": {"k": "bad value"}}, {("sel.matchLabels", I)}),
    ({"matchExpressions": [{"key": "k", "operator": "In"}]},
     {("sel.matchExpressions[0].values", R)}),
    ({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": []}]},
     {("sel.matchExpressions[0].values", R)}),
    ({"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["a"]}]},
     {("sel.matchExpressions[0].values", F)}),
    ({"matchExpressions": [{"key": "k", "operator": "DoesNotExist", "values": ["a"]}]},
     {("sel.matchExpressions[0].values", F)}),
    ({"matchExpressions": [{"key": "k", "operator": "Like"}]},
     {("sel.matchExpressions[0].operator", I)}),
    ({"matchExpressions": [{"key": "", "operator": "Exists"}]},
     {("sel.matchExpressions[0].key", I)}),
    ({"matchExpressions": [{"key": "k", "operator": "In", "values": ["ok", "not ok"]}]},
     {("sel.matchExpressions[0].values[1]", I)}),
], ids=["nil", "valid", "bad-label-key", "bad-label-value", "in-missing-values",
        "notin-empty-values", "exists-with-values", "dne-with-values", "bad-operator",
        "empty-key", "bad-expression-value"])
def test_validate_label_selector(label_selector: dict[str, Any] | None,
                                 expected: set[tuple[str, ErrorType]]) -> None:
    errs = validate_label_selector(label_selector, Path("sel"))
    assert {(e.field, e.type) for e in errs} == expected


def test_validate_label_selector_allow_invalid_values() -> None:
    sel = {"matchExpressions": [{"key": "k", "operator": "In", "values": ["not ok"]}]}
    assert validate_label_selector(sel, Path("s"), allow_invalid_label_value=True) == []


# ----------------------------------------------------------------------------- field selectors


@pytest.mark.parametrize(("text", "canonical"), [
    ("", ""),
    ("metadata.name=foo", "metadata.name=foo"),
    ("metadata.name==foo", "metadata.name=foo"),
    ("spec.nodeName!=n1", "spec.nodeName!=n1"),
    ("status.phase=Running,metadata.namespace=default",
     "metadata.namespace=default,status.phase=Running"),
    ("spec.nodeName=", "spec.nodeName="),
    ("a=b,,c=d", "a=b,c=d"),
    (r"x=a\,b", r"x=a\,b"),
    (r"x=a\=b\\c", r"x=a\=b\\c"),
], ids=repr)
def test_field_selector_parse(text: str, canonical: str) -> None:
    assert str(parse_field_selector(text)) == canonical


@pytest.mark.parametrize(("text", "message"), [
    ("foo", "invalid selector: 'foo'; can't understand 'foo'"),
    ("a=b,foo", "invalid selector: 'a=b,foo'; can't understand 'foo'"),
    ("x=a=b", "invalid field selector: unescaped character in value: 61"),
    ("x!==y", "invalid field selector: unescaped character in value: 61"),
    (r"x=a\b", r"invalid field selector: invalid escape sequence: \b"),
    ("x=a\\", "invalid field selector: invalid escape sequence: \\"),
], ids=["no-operator", "second-term", "unescaped-equals", "not-equals-then-equals",
        "bad-escape", "trailing-backslash"])
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as exc:
        parse_field_selector(text)
    assert str(exc.value) == message


def test_field_value_escaping_roundtrip() -> None:
    raw = "a,b=c\\d"
    assert unescape_field_value(escape_field_value(raw)) == raw
    sel = parse_field_selector("metadata.name=" + escape_field_value(raw))
    assert sel.requires_exact_match("metadata.name") == raw


_POD: dict[str, Any] = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default"},
    "status": {"phase": "Running", "podIP": "10.0.0.9",
               "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}]},
}


@pytest.mark.parametrize(("text", "want"), [
    ("metadata.name=web-1", True),
    ("metadata.name=web-2", False),
    ("metadata.namespace!=kube-system", True),
    ("spec.nodeName=n1,status.phase=Running", True),
    ("spec.nodeName=n1,status.phase=Pending", False),
    ("spec.nodeName!=", True),
    ("spec.hostNetwork=false", True),
    ("status.podIP=10.0.0.9", True),
    ("status.nominatedNodeName=", True),
    ("", True),
], ids=lambda v: repr(v) if isinstance(v, str) else None)
def test_field_selector_matches_pod(text: str, want: bool) -> None:
    sel = parse_field_selector(text)
    assert sel.matches_object(_POD, "Pod") is want
    assert sel.matches(selectable_fields("Pod", _POD)) is want


def test_field_selector_generic_dotted_paths() -> None:
    obj = {"spec": {"unschedulable": True, "n": 3}, "metadata": {"name": "x"}}
    assert field_value(obj, "spec.unschedulable") == "true"
    assert field_value(obj, "spec.n") == "3"
    assert field_value(obj, "spec.missing") == ""
    assert field_value(obj, "spec") == ""
    assert parse_field_selector("spec.unschedulable=true").matches_object(obj)
    assert parse_field_selector("spec.unschedulable=true").matches_object(obj, "Node")
    assert parse_field_selector("metadata.name=x").matches_object(obj, "Node")
    assert not parse_field_selector("spec.unschedulable=false").matches_object({}, "Other")


def test_selectable_fields_by_kind() -> None:
    ns = {"metadata": {"name": "prod"}, "status": {"phase": "Active"}}
    assert selectable_fields("Namespace", ns) == {
        "metadata.name": "prod", "status.phase": "Active", "name": "prod"}
    assert selectable_fields("Node", {"metadata": {"name": "n"}}) == {
        "metadata.name": "n", "spec.unschedulable": "false"}
    svc = {"metadata": {"name": "s", "namespace": "d"},
           "spec": {"clusterIP": "10.96.0.1", "type": "ClusterIP"}}
    assert selectable_fields("Service", svc)["spec.clusterIP"] == "10.96.0.1"
    assert selectable_fields("EndpointSlice", svc) == {"metadata.name": "s",
                                                       "metadata.namespace": "d"}


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("Pod", "spec.nodeName=n,status.phase=Running", None),
    ("Pod", "spec.host=n", None),
    ("Pod", "spec.containers=x", "field label not supported: spec.containers"),
    ("Node", "spec.unschedulable=true", None),
    ("Node", "spec.podCIDR=x", "field label not supported: spec.podCIDR"),
    ("Namespace", "status.phase=Active", None),
    ("EndpointSlice", "metadata.namespace=default", None),
    ("EndpointSlice", "addressType=IPv4", "field label not supported: addressType"),
    ("ConfigMap", "data=x",
     '"data" is not a known field selector: only "metadata.name", "metadata.namespace"'),
], ids=["pod-ok", "pod-alias", "pod-bad", "node-ok", "node-bad", "ns-ok", "eps-ok", "eps-bad",
        "default-conversion"])
def test_validate_field_selector(kind: str, text: str, message: str | None) -> None:
    sel = parse_field_selector(text)
    if message is None:
        validate_field_selector(sel, kind)
    else:
        with pytest.raises(SelectorError) as exc:
            validate_field_selector(sel, kind)
        assert str(exc.value) == message


def test_normalize_field_selector_spec_host_alias() -> None:
    sel = normalize_field_selector(parse_field_selector("spec.host=n1"), "Pod")
    assert str(sel) == "spec.nodeName=n1"
    assert sel.matches_object(_POD, "Pod")
    assert normalize_field_selector(parse_field_selector("spec.host=n1"), "Node").fields() == [
        "spec.host"]
    assert FieldSelector().empty()
