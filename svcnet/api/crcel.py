"""CRD validation rules (``x-kubernetes-validations``, CEL): compiled at CRD write, evaluated on
every write of a custom resource, with upstream's field paths and messages.

Theory of operation
-------------------
Follows apiextensions-apiserver ``pkg/apiserver/schema/cel`` (``compilation.go``,
``validation.go``), ``pkg/apis/apiextensions/validation/validation.go`` (the checks of the rule
objects) and ``k8s.io/apiserver/pkg/cel`` (``types.go``, ``escaping.go``, ``library/*``: here
:mod:`svcnet.api.cellib`). The CEL runtime is cel-expr-python, the CEL C++ implementation.

* :func:`compile_schema` walks a structural schema once and compiles every rule of every node
  into a :class:`RuleTree` that mirrors the schema where rules are. A rule object is checked
  first (``rule is not specified``, ``message must not contain line breaks``, an unsupported
  ``reason``, a ``fieldPath`` that names no field of the schema...), then compiled with
  ``self`` (and ``oldSelf``) typed from the node's schema: ``integer`` is ``int``, ``number``
  ``double``, ``string`` ``string`` (``format: byte`` ``bytes``, ``date-time``/``date``
  ``timestamp``, ``duration`` ``duration``), ``boolean`` ``bool``, ``array`` a list of its
  items' type, ``additionalProperties`` a map, and an object with ``properties``,
  int-or-string and preserved-unknown values ``dyn`` maps / ``dyn``. A compile error is
  upstream's ``compilation failed: ERROR: <input>:1:3: ...`` (the C++ checker's text is
  cel-go's) at ``...x-kubernetes-validations[i].rule``; the result must be a bool (``dyn``
  passes), a ``messageExpression`` a string. Kubernetes' environment orders numbers across
  types (``self <= 1`` on a ``number``: cel-go's CrossTypeNumericComparisons), the C++ checker
  does not: a rule whose only compile errors are such orderings is compiled again with the
  node's values typed ``dyn``, which the runtime orders across types. A rule that names
  ``oldSelf`` is a transition rule, refused under the items of a list that is not
  ``x-kubernetes-list-type: map``.
  Compiled trees are cached by the schema's JSON text (:func:`rules_for`), so a CRD's rules
  compile once, whatever number of writes; a schema without rules costs one walk at CRD write.
* :func:`validate` walks a custom resource beside its tree. At each node with rules it turns
  the value into CEL data following the schema: object properties under their escaped names
  (``foo-bar`` is ``self.foo__dash__bar``, ``namespace`` ``self.__namespace__``, names that
  cannot be escaped are not visible; at the resource root ``metadata`` holds only ``name``
  and ``generateName``), numbers as the schema's type. Transition rules run only on update
  where the old value correlates (object properties, map keys, ``x-kubernetes-list-type: map``
  items by key), or, with ``optionalOldSelf``, always with ``oldSelf`` an optional. A false
  rule is a field error at the node (or at its ``fieldPath``): ``Invalid`` with the value
  (omitted for objects and arrays) and ``message``, the ``messageExpression``'s result or
  ``failed rule: <rule>``; ``reason`` makes it Forbidden, Required or Duplicate. An
  evaluation error is ``Invalid value: "<type>": no such key: x evaluating rule: <rule>``.
  Rules do not run when the object's other validations found a missing, unsupported, too long,
  too many or mistyped value (upstream's ``hasBlockingErr``): one error says so instead, and
  values outside the schema's bounds never reach a rule.

Bounds: the runtime stops a rule after 10,000 comprehension iterations (upstream's per-call
cost limit is in cost units: a different measure); that is reported as upstream reports an
exceeded cost limit, and no further rule runs for that object. The rules of one object get
:data:`OBJECT_CPU_BUDGET` of CPU in all (upstream's per-object budget, in time rather than cost
units, so the same object could pass on an idle machine and not on a loaded one, though CPU
time moves far less with load than wall time): no further rule starts past it. What neither
bounds is the work of one rule that builds large values in each iteration
(``self.l.map(x, self.l + self.l)``): upstream refuses such a rule at CRD write from its
estimated cost unless ``maxItems``/``maxLength`` bound the values, which is not done here, so
a CRD author can write a rule whose evaluation on a large object takes seconds of the
server's event loop. Ratcheting (upstream's
CRDValidationRatcheting, on by default): on update, a rule without ``oldSelf`` that fails on a
value equal to its correlated old value (or, for list items that do not correlate, inside an
unchanged ancestor) is no error (upstream makes it a warning; these are dropped). Not done:
upstream's static cost estimation at CRD write (``estimated rule cost exceeds budget``), its
per-object runtime budget, ratcheting of the schema's other validations (crschema), a
warning for a ratcheted failure, ``x-kubernetes-list-type: set``/``map`` equality semantics,
compile-time checks of field names under an object (``self.nosuchfield`` fails when evaluated,
not when the CRD is written), and column numbers of compile errors in ``optionalOldSelf`` rules
(which are compiled inside a ``cel.bind``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import functools
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from google.protobuf import duration_pb2, timestamp_pb2

from svcnet.api.cellib import BudgetExceeded, cel, compile_issues, environment, evaluate
from svcnet.api.errors import (
    OMIT,
    ErrorType,
    FieldError,
    GoRaw,
    Path,
    duplicate,
    forbidden,
    go_quote,
    invalid,
    not_supported,
    required,
)

__all__ = ["RuleTree", "compile_schema", "escape", "rules_for", "validate"]

Schema = Mapping[str, Any]

REASONS: Final = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid",
                  "FieldValueRequired")
_MAX_MESSAGE: Final = 2048
_RESERVED: Final = frozenset((
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
    "function", "if", "import", "let", "loop", "package", "namespace", "return", "var", "void",
    "while"))
_ESCAPABLE: Final = re.compile(r"[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*")
_NEWLINE: Final = re.compile(r"[\n\r]")
_OLD_LIST: Final = "__svcnet_old_self__"
_COST_EXCEEDED: Final = "operation cancelled: actual cost limit exceeded"
OBJECT_CPU_BUDGET: Final = 1.0
"""Seconds of CPU the rules of one object may take in all (upstream's per-object cost budget,
in time rather than cost units): past it no further rule runs, and one error says so."""


def escape(name: str) -> str | None:
    """A property name as rules select it (escaping.go), or None when it cannot be."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.fullmatch(name):
        return None
    return (name.replace("__", "__underscores__").replace(".", "__dot__")
            .replace("-", "__dash__").replace("/", "__slash__"))


# ------------------------------------------------------------------------------------- types


def _type_of(schema: Schema) -> tuple[Any, str]:
    """The CEL type of a schema node's values, and its text (the environments' cache key)."""
    if schema.get("x-kubernetes-int-or-string") is True:
        return cel.Type.DYN, "dyn"
    type_name = schema.get("type")
    fmt = schema.get("format")
    if type_name == "integer":
        return cel.Type.INT, "int"
    if type_name == "number":
        return cel.Type.DOUBLE, "double"
    if type_name == "boolean":
        return cel.Type.BOOL, "bool"
    if type_name == "string":
        if fmt == "byte":
            return cel.Type.BYTES, "bytes"
        if fmt in ("date-time", "date"):
            return cel.Type.TIMESTAMP, "timestamp"
        if fmt == "duration":
            return cel.Type.DURATION, "duration"
        return cel.Type.STRING, "string"
    if type_name == "array":
        items = schema.get("items")
        item_type, item_text = _type_of(items) if isinstance(items, Mapping) else (
            cel.Type.DYN, "dyn")
        return cel.Type.List(item_type), f"list({item_text})"
    if type_name == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and not schema.get("properties"):
            value_type, value_text = _type_of(extra)
            return cel.Type.Map(cel.Type.STRING, value_type), f"map(string,{value_text})"
        return cel.Type.Map(cel.Type.STRING, cel.Type.DYN), "map(string,dyn)"
    return cel.Type.DYN, "dyn"


@functools.lru_cache(maxsize=64)
def _env(type_text: str, optional_old: bool) -> Any:
    """The environment of rules on nodes of one type (self, oldSelf; or self and the list that
    carries an optional oldSelf, see :func:`_wrap_optional`)."""
    t = _TYPES[type_text]
    if optional_old:
        return environment({"self": t, _OLD_LIST: cel.Type.List(t)})
    return environment({"self": t, "oldSelf": t})


@functools.lru_cache(maxsize=64)
def _env_without_old(type_text: str) -> Any:
    return environment({"self": _TYPES[type_text]})


_TYPES: dict[str, Any] = {"dyn": cel.Type.DYN}


def _wrap_optional(rule: str) -> str:
    return (f"cel.bind(oldSelf, {_OLD_LIST}.size() == 0 ? optional.none() : "
            f"optional.of({_OLD_LIST}[0]), {rule})")


# ------------------------------------------------------------------------------- compilation


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: str
    message: str
    reason: str | None
    field_path: tuple[tuple[str, bool], ...]  # (name, is a map key) steps
    program: Any
    message_program: Any
    transition: bool
    optional_old_self: bool

    def error_string(self) -> str:
        return self.message.strip() if self.message else self.rule.strip()

    def default_message(self) -> str:
        return self.message.strip() if self.message else f"failed rule: {self.rule.strip()}"


@dataclass(slots=True)
class RuleTree:
    """The compiled rules of one schema node and of the nodes under it that have some."""

    schema: Schema
    root: bool = False
    rules: list[_Rule] = field(default_factory=list)
    properties: dict[str, RuleTree] = field(default_factory=dict)
    additional: RuleTree | None = None
    items: RuleTree | None = None


def _rule_value(rule: Mapping[str, Any]) -> GoRaw:
    """A rule object as upstream prints the Go struct in an Invalid error."""
    reason = rule.get("reason")
    optional = rule.get("optionalOldSelf")
    reason_text = ("(*apiextensions.FieldValueErrorReason)(nil)" if reason is None
                   else f"&{go_quote(str(reason))}")
    optional_text = "(*bool)(nil)" if optional is None else f"&{str(bool(optional)).lower()}"
    return GoRaw(f"apiextensions.ValidationRule{{Rule:{go_quote(str(rule.get('rule', '')))}, "
                 f"Message:{go_quote(str(rule.get('message', '')))}, "
                 f"MessageExpression:{go_quote(str(rule.get('messageExpression', '')))}, "
                 f"Reason:{reason_text}, FieldPath:{go_quote(str(rule.get('fieldPath', '')))}, "
                 f"OptionalOldSelf:{optional_text}}}")


def _field_path(text: str, schema: Schema) -> tuple[tuple[str, bool], ...] | None:
    """ValidFieldPath: ``.a.b``, ``['a.b']`` steps through properties and map keys of
    ``schema``; None when the path names nothing there."""
    steps: list[tuple[str, bool]] = []
    pos = 0
    node = schema
    token = re.compile(r"\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\]")
    while pos < len(text):
        m = token.match(text, pos)
        if m is None:
            return None
        name = m.group(1) if m.group(1) is not None else re.sub(r"\\(.)", r"\1", m.group(2))
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if isinstance(props, Mapping) and props:
            sub = props.get(name)
            if not isinstance(sub, Mapping):
                return None
            steps.append((name, False))
            node = sub
        elif isinstance(extra, Mapping):
            steps.append((name, True))
            node = extra
        else:
            return None
        pos = m.end()
    return tuple(steps)


def _check_rule(rule: Mapping[str, Any], schema: Schema, path: Path) -> list[FieldError]:
    """The static checks of one rule object (apiextensions validation.go)."""
    errs: list[FieldError] = []
    text = str(rule.get("rule") or "")
    message = str(rule.get("message") or "")
    trimmed_rule, trimmed_msg = text.strip(), message.strip()
    if not trimmed_rule:
        errs.append(required(path.child("rule"), "rule is not specified"))
    elif message and not trimmed_msg:
        errs.append(invalid(path.child("message"), message,
                            "message must be non-empty if specified"))
    elif len(message) > _MAX_MESSAGE:
        errs.append(invalid(path.child("message"), message[:10] + "...",
                            "message must have a maximum length of 2048 characters"))
    elif _NEWLINE.search(trimmed_msg):
        errs.append(invalid(path.child("message"), message,
                            "message must not contain line breaks"))
    elif _NEWLINE.search(trimmed_rule) and not trimmed_msg:
        errs.append(required(path.child("message"),
                             "message must be specified if rule contains line breaks"))
    message_expression = str(rule.get("messageExpression") or "")
    if message_expression and not message_expression.strip():
        errs.append(required(path.child("messageExpression"),
                             "messageExpression must be non-empty if specified"))
    reason = rule.get("reason")
    if reason is not None and reason not in REASONS:
        errs.append(not_supported(path.child("reason"), reason, REASONS))
    field_path = str(rule.get("fieldPath") or "")
    if field_path and not field_path.strip():
        errs.append(invalid(path.child("fieldPath"), field_path,
                            "fieldPath must be non-empty if specified"))
    if _NEWLINE.search(field_path):
        errs.append(invalid(path.child("fieldPath"), field_path,
                            "fieldPath must not contain line breaks"))
    if field_path.strip() and _field_path(field_path.strip(), schema) is None:
        errs.append(invalid(path.child("fieldPath"), field_path,
                            "fieldPath must be a valid path"))
    return errs


_CROSS_NUMERIC: Final = re.compile(
    r"found no matching overload for '_(?:<|<=|>|>=)_' applied to "
    r"'\((?:int|uint|double), (?:int|uint|double)\)'")


def _only_cross_numeric(e: RuntimeError) -> bool:
    """Whether every issue of a failed compilation is an ordering of two numbers of different
    types (``self <= 1`` on a ``number``), which Kubernetes' environment allows (cel-go's
    CrossTypeNumericComparisons) and the C++ checker does not."""
    text = str(e)
    return text.count("ERROR: ") == len(_CROSS_NUMERIC.findall(text)) > 0


def _program(text: str, type_text: str, optional_old: bool) -> tuple[Any, bool]:
    """``text`` compiled for values of ``type_text``, and whether it is a transition rule
    (it compiles only with ``oldSelf``); RuntimeError if it does not compile."""
    if "oldSelf" in text:
        try:
            return _env_without_old(type_text).compile(text), False
        except RuntimeError:
            return (_env(type_text, True).compile(_wrap_optional(text)) if optional_old
                    else _env(type_text, False).compile(text)), True
    return _env_without_old(type_text).compile(text), False


def _compile_rule(rule: Mapping[str, Any], schema: Schema, type_text: str, path: Path,
                  uncorrelatable: Path | None, errs: list[FieldError],
                  preexisting: frozenset[str]) -> _Rule | None:
    text = str(rule.get("rule") or "").strip()
    optional_old = rule.get("optionalOldSelf") is True
    rule_path = path.child("rule")
    try:
        try:
            program, transition = _program(text, type_text, optional_old)
        except RuntimeError as e:
            if not _only_cross_numeric(e):
                raise
            # The node's values typed dyn instead: the runtime orders numbers across types.
            type_text = "dyn"
            program, transition = _program(text, type_text, optional_old)
    except RuntimeError as e:
        if text not in preexisting:
            errs.append(invalid(rule_path, _rule_value(rule),
                                f"compilation failed: {compile_issues(e)}"))
        return None
    if program.return_type() not in (cel.Type.BOOL, cel.Type.DYN):
        errs.append(invalid(rule_path, _rule_value(rule),
                            "cel expression must evaluate to a bool"))
        return None
    message_program = None
    message_expression = str(rule.get("messageExpression") or "").strip()
    if message_expression:
        try:
            message_program = _env(type_text, False).compile(message_expression)
        except RuntimeError as e:
            if message_expression not in preexisting:
                errs.append(invalid(path.child("messageExpression"), _rule_value(rule),
                                    f"messageExpression compilation failed: "
                                    f"{compile_issues(e)}"))
            return None
        if message_program.return_type() not in (cel.Type.STRING, cel.Type.DYN):
            errs.append(invalid(path.child("messageExpression"), _rule_value(rule),
                                "messageExpression must evaluate to a string"))
            return None
    if transition and uncorrelatable is not None:
        errs.append(invalid(rule_path, text, "oldSelf cannot be used on the uncorrelatable "
                                             f"portion of the schema within {uncorrelatable}"))
    elif not transition and rule.get("optionalOldSelf") is not None:
        errs.append(invalid(path.child("optionalOldSelf"), GoRaw(
            str(bool(rule.get("optionalOldSelf"))).lower()),
            "may not be set if rule does not use oldSelf"))
    field_path = _field_path(str(rule.get("fieldPath") or "").strip(), schema) or ()
    reason = rule.get("reason")
    return _Rule(text, str(rule.get("message") or ""), reason if isinstance(reason, str) else None,
                 field_path, program, message_program, transition, optional_old)


def compile_schema(schema: Schema, path: Path | None = None, *,
                   preexisting: frozenset[str] = frozenset()
                   ) -> tuple[RuleTree | None, list[FieldError]]:
    """Every rule of ``schema`` compiled (None: it has none), and the errors of those that do
    not compile or whose rule objects are invalid, at ``path`` (the openAPIV3Schema's).
    ``preexisting``: rule and messageExpression texts the stored CRD already has (on update),
    whose compile errors are not reported (:func:`rule_texts`)."""
    errs: list[FieldError] = []
    tree = _compile(schema, path or Path(), None, errs, preexisting, root=True)
    return tree, errs


def _compile(schema: Schema, path: Path, uncorrelatable: Path | None, errs: list[FieldError],
             preexisting: frozenset[str], *, root: bool = False) -> RuleTree | None:
    node = RuleTree(schema, root=root)
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for key, sub in props.items():
            if isinstance(sub, Mapping):
                child = _compile(sub, path.child("properties").key(key), uncorrelatable, errs,
                                 preexisting)
                if child is not None:
                    node.properties[key] = child
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        node.additional = _compile(extra, path.child("additionalProperties"), uncorrelatable,
                                   errs, preexisting)
    items = schema.get("items")
    if isinstance(items, Mapping):
        items_path = path.child("items")
        correlatable = schema.get("x-kubernetes-list-type") == "map"
        node.items = _compile(items, items_path,
                              uncorrelatable if correlatable or uncorrelatable else items_path,
                              errs, preexisting)
    rules = schema.get("x-kubernetes-validations")
    if isinstance(rules, list) and rules:
        type_obj, type_text = _type_of(schema)
        _TYPES.setdefault(type_text, type_obj)
        vpath = path.child("x-kubernetes-validations")
        for i, entry in enumerate(rules):
            rule: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {}
            problems = _check_rule(rule, schema, vpath.index(i))
            errs.extend(problems)
            if problems:
                continue
            compiled = _compile_rule(rule, schema, type_text, vpath.index(i), uncorrelatable,
                                     errs, preexisting)
            if compiled is not None:
                node.rules.append(compiled)
    if not (node.rules or node.properties or node.additional or node.items):
        return None
    return node


def rule_texts(value: Any) -> frozenset[str]:
    """Every rule and messageExpression text in ``value`` (a stored CRD). On update these do
    not have to compile, as upstream compiles stored expressions leniently: a CRD stored with
    a rule this server cannot compile (one written before rules were compiled, or using a
    library svcnet lacks) can still be updated, have its finalizer removed and be deleted;
    such a rule is not evaluated."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            rules = v.get("x-kubernetes-validations")
            for rule in rules if isinstance(rules, list) else ():
                if isinstance(rule, Mapping):
                    found.update(str(rule.get(k) or "").strip()
                                 for k in ("rule", "messageExpression"))
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)
    walk(value)
    found.discard("")
    return frozenset(found)


def _has_rules(schema: Any) -> bool:
    if isinstance(schema, Mapping):
        return "x-kubernetes-validations" in schema or any(
            _has_rules(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_rules(v) for v in schema)
    return False


def rules_for(schema: Schema) -> RuleTree | None:
    """The compiled rules of ``schema`` (None: it has none), compiled once per schema text."""
    if not _has_rules(schema):
        return None
    return _cached(json.dumps(schema, sort_keys=True, separators=(",", ":")))


@functools.lru_cache(maxsize=256)
def _cached(schema_text: str) -> RuleTree | None:
    tree, _ = compile_schema(json.loads(schema_text))
    return tree


# -------------------------------------------------------------------------------- evaluation


_DURATION: Final = re.compile(r"([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+")
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_MAX_DURATION: Final = (2**63 - 1) / 1e9
"""The longest Go ``time.Duration``, in seconds."""
_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0}


def _scalar(value: Any, schema: Schema) -> Any:
    type_name = schema.get("type")
    if type_name == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type_name == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if type_name == "string" and isinstance(value, str):
        fmt = schema.get("format")
        try:
            if fmt == "byte":
                return base64.b64decode(value)
            if fmt in ("date-time", "date"):
                # protobuf's well-known types: the runtime takes them anywhere in a value
                # (datetime and timedelta only as the whole of ``self``)
                parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                stamp = timestamp_pb2.Timestamp()
                stamp.FromDatetime(parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC))
                return stamp
            if fmt == "duration" and _DURATION.fullmatch(value):
                seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value))
                if seconds > _MAX_DURATION:  # beyond Go's time.Duration: not a duration
                    return value
                duration = duration_pb2.Duration()
                duration.FromNanoseconds(round((-seconds if value.startswith("-") else seconds)
                                               * 1e9))
                return duration
        except (ValueError, OverflowError):
            return value
    return value


def _to_cel(value: Any, schema: Schema, *, root: bool = False) -> Any:
    """``value`` as CEL data typed by ``schema`` (see the module docstring)."""
    if isinstance(value, dict):
        props = schema.get("properties")
        # A resource (the root, or an embedded one) shows its apiVersion, kind and the name of
        # its metadata, whatever its schema says (upstream's WithTypeAndObjectMeta).
        resource = root or schema.get("x-kubernetes-embedded-resource") is True
        if resource or (isinstance(props, Mapping) and props):
            props = props if isinstance(props, Mapping) else {}
            out: dict[str, Any] = {}
            for key, item in value.items():
                sub = props.get(key)
                if item is None:
                    continue  # a null (nullable) property is absent, as upstream reads it
                if resource and key in ("apiVersion", "kind"):
                    out[key] = item
                elif resource and key == "metadata" and isinstance(item, dict):
                    out[key] = {k: item[k] for k in ("name", "generateName") if k in item}
                elif isinstance(sub, Mapping) and (name := escape(key)) is not None:
                    out[name] = _to_cel(item, sub)
            return out
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            return {key: _to_cel(item, extra) for key, item in value.items()}
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [_to_cel(item, items) for item in value]
        return value
    return _scalar(value, schema)


#: Errors of the other validations that keep the rules from running (strategy.go's
#: hasBlockingErr): the value may not have the types the rules were compiled for.
_BLOCKING: Final = frozenset((ErrorType.NOT_SUPPORTED, ErrorType.REQUIRED, ErrorType.TOO_LONG,
                              ErrorType.TOO_MANY, ErrorType.TYPE_INVALID))


def validate(tree: RuleTree | None, obj: Any, old: Any = None, *,
             other_errors: Sequence[FieldError] = ()) -> list[FieldError]:
    """The field errors of ``obj``'s rules (``old``: the stored object, on update).
    ``other_errors``, the object's metadata and schema errors: some of them mean the rules are
    not run, which one error says instead."""
    if tree is None:
        return []
    if any(e.type in _BLOCKING for e in other_errors):
        return [invalid("<nil>", None, "some validation rules were not checked because the "
                                       "object was invalid; correct the existing errors to "
                                       "complete validation")]
    errs: list[FieldError] = []
    with contextlib.suppress(BudgetExceeded):  # (its error is in errs)
        _walk(tree, obj, old, Path(), errs, time.thread_time() + OBJECT_CPU_BUDGET)
    # Rules of the resource's root report at a nil field path, which Go prints as "<nil>".
    return [replace(e, field="<nil>") if not e.field else e for e in errs]


def _walk(node: RuleTree, value: Any, old: Any, path: Path, errs: list[FieldError],
          deadline: float, *, parent_unchanged: bool = False) -> None:
    """``old`` is the value's correlated old value (None: none). ``parent_unchanged``: the
    nearest correlated ancestor equals its old value (what ratchets an uncorrelated node).
    ``deadline``: this thread's CPU time (``time.thread_time``) past which no rule runs."""
    if value is None:
        return
    unchanged = value == old if old is not None else parent_unchanged
    if node.rules:
        _run_rules(node, value, old, path, errs, deadline, unchanged=unchanged)
    if isinstance(value, dict):
        old_map = old if isinstance(old, dict) else {}
        map_type = node.schema.get("x-kubernetes-map-type")
        correlatable = map_type in (None, "granular", "atomic")
        for key, sub in node.properties.items():
            if key in value:
                _walk(sub, value[key], old_map.get(key) if correlatable else None,
                      path.child(key), errs, deadline, parent_unchanged=unchanged)
        if node.additional is not None:
            for key, item in value.items():
                if key not in node.schema.get("properties", {}):
                    _walk(node.additional, item, old_map.get(key) if correlatable else None,
                          path.key(key), errs, deadline, parent_unchanged=unchanged)
    elif isinstance(value, list) and node.items is not None:
        old_items = _correlated_items(node.schema, old)
        for i, item in enumerate(value):
            _walk(node.items, item, old_items(item), path.index(i), errs, deadline,
                  parent_unchanged=unchanged)


def _correlated_items(schema: Schema, old: Any) -> Any:
    """For each new item of a list, its old item (a ``map`` list's by keys; else None)."""
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(keys, list) \
            or not isinstance(old, list):
        return lambda item: None
    by_key = {}
    for item in old:
        if isinstance(item, dict):
            by_key[json.dumps([item.get(k) for k in keys])] = item

    def find(item: Any) -> Any:
        if not isinstance(item, dict):
            return None
        return by_key.get(json.dumps([item.get(k) for k in keys]))
    return find


def _run_rules(node: RuleTree, value: Any, old: Any, path: Path, errs: list[FieldError],
               deadline: float, *, unchanged: bool) -> None:
    schema = node.schema
    type_name = str(schema.get("type") or "")
    self_value = _to_cel(value, schema, root=node.root)
    old_value: Any = None
    for rule in node.rules:
        if rule.transition and old is None and not rule.optional_old_self:
            continue
        if time.thread_time() > deadline:
            errs.append(invalid(path, type_name, "validation failed due to running out of cost "
                                                 "budget, no further validation rules will be "
                                                 "run"))
            raise BudgetExceeded
        data: dict[str, Any] = {"self": self_value}
        if rule.transition:
            if old_value is None and old is not None:
                old_value = _to_cel(old, schema, root=node.root)
            if rule.optional_old_self:
                data[_OLD_LIST] = [] if old is None else [old_value]
            else:
                data["oldSelf"] = old_value
        try:
            result, error = evaluate(rule.program, data)
        except BudgetExceeded:
            errs.append(invalid(path, type_name, f"'{_COST_EXCEEDED}': no further validation "
                                                 "rules will be run due to call cost exceeds "
                                                 f"limit for rule: {rule.error_string()}"))
            raise
        if error is not None:
            if error.startswith("no such overload"):
                errs.append(invalid(path, type_name,
                                    f"'{error}': call arguments did not match a supported "
                                    "operator, function or macro signature for rule: "
                                    f"{rule.error_string()}"))
            else:
                errs.append(invalid(path, type_name,
                                    f"{error} evaluating rule: {rule.error_string()}"))
            continue
        if result is True:
            continue
        if not isinstance(result, bool):
            errs.append(invalid(path, type_name, "'no such overload': call arguments did not "
                                                 "match a supported operator, function or "
                                                 f"macro signature for rule: "
                                                 f"{rule.error_string()}"))
            continue
        if unchanged and not rule.transition:
            continue  # ratcheting: an unchanged value keeps passing (upstream warns)
        errs.append(_failure(rule, value, path, type_name, data))


def _failure(rule: _Rule, value: Any, path: Path, type_name: str,
             data: dict[str, Any]) -> FieldError:
    detail = rule.default_message()
    if rule.message_program is not None:
        message_data = {k: v for k, v in data.items() if k in ("self", "oldSelf")}
        try:
            text, error = evaluate(rule.message_program, message_data)
        except BudgetExceeded:
            text, error = None, "cost"
        if error is None and isinstance(text, str):
            trimmed = text.strip()
            if trimmed and not _NEWLINE.search(trimmed) and len(trimmed) <= 5 * 1024:
                detail = trimmed
    where = path
    for name, is_key in rule.field_path:
        where = where.key(name) if is_key else where.child(name)
    shown: Any = OMIT if type_name in ("object", "array") else value
    if rule.reason == "FieldValueForbidden":
        return forbidden(where, detail)
    if rule.reason == "FieldValueRequired":
        return required(where, detail)
    if rule.reason == "FieldValueDuplicate":
        return duplicate(where, shown)
    return invalid(where, shown, detail)
