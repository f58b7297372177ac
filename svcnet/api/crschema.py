"""Custom resources against their CustomResourceDefinition's structural schema: pruning,
defaulting and validation, with upstream's field paths and messages.

Theory of operation
-------------------
A CRD version's ``schema.openAPIV3Schema`` is a *structural* schema (every node says its
``type``; :mod:`svcnet.api.crds` refuses the rest), so one walk of an object beside its schema
answers every question, without a general JSON-schema engine:

* :func:`prune` (apiextensions-apiserver ``pkg/apiserver/schema/pruning/algorithm.go``): fields
  the schema does not declare are dropped, except under ``x-kubernetes-preserve-unknown-fields:
  true``, where unknown fields stay but declared ones are still walked. At the root and in an
  ``x-kubernetes-embedded-resource`` object, ``apiVersion``, ``kind`` and ``metadata`` are always
  kept. The dropped fields' paths are returned: the request's ``fieldValidation`` turns them into
  ``unknown field "spec.foo"`` warnings (Warn, the default) or a 400 (Strict), as upstream reports
  pruned fields.
* :func:`apply_defaults` (``pkg/apiserver/schema/defaulting/algorithm.go`` and
  ``prunenulls.go``): a declared property that is missing gets a copy of its ``default``; a
  ``null`` in a non-nullable field is replaced by its default, or dropped when it has none; the
  walk goes on into defaulted values, array items and ``additionalProperties`` values.
* :func:`validate` (kube-openapi's ``validate`` package as apiextensions runs it, through
  ``pkg/apiserver/validation/validation.go``'s conversion of its results into field errors):
  type (``nullable``), ``enum``, ``minimum``/``maximum`` (exclusive too), ``multipleOf``,
  ``minLength``/``maxLength``, ``pattern``, ``format`` (the formats upstream checks that have a
  plain definition: see :data:`_FORMATS`), ``minItems``/``maxItems``, ``uniqueItems``,
  ``required``, ``minProperties``/``maxProperties``, ``x-kubernetes-int-or-string``, ``allOf``,
  ``anyOf``, ``oneOf``, ``not``. Messages are kube-openapi's (``spec.size in body should be
  greater than or equal to 1``) at upstream's paths; ``required``, ``enum``, ``maxLength``,
  ``maxItems``, ``maxProperties`` and ``type`` become Required, NotSupported, TooLong, TooMany
  and TypeInvalid errors, as upstream converts them.

CEL rules (``x-kubernetes-validations``) are not this module's: :mod:`svcnet.api.crcel` compiles
them at CRD write and evaluates them after these checks (the custom resource strategy runs both).
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import functools
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, Final

import re2

from svcnet.api.errors import (
    ErrorType,
    FieldError,
    Path,
    bad_request,
    duplicate,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
)
from svcnet.api.names import is_dns1123_subdomain
from svcnet.api.schema import Decoded, decode_as

__all__ = ["apply_defaults", "decode_custom_resource", "prune", "validate"]

Schema = Mapping[str, Any]
#: Kept at the root of a custom resource and of an embedded resource, whatever the schema says.
_OBJECT_FIELDS: Final = ("apiVersion", "kind", "metadata")


def _props(schema: Schema) -> Mapping[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, Mapping) else {}


def _additional(schema: Schema) -> Schema | None:
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _items(schema: Schema) -> Schema | None:
    items = schema.get("items")
    return items if isinstance(items, Mapping) else None


def _path_text(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


# ------------------------------------------------------------------------------------ pruning


def prune(obj: Any, schema: Schema, *, root: bool = True) -> list[str]:
    """Drop from ``obj`` (in place) what ``schema`` does not declare; the dropped paths."""
    pruned: list[str] = []
    _prune(obj, schema, "", root, pruned)
    return pruned


def _prune(value: Any, schema: Schema, path: str, keep_object_fields: bool,
           pruned: list[str]) -> None:
    if isinstance(value, dict):
        props = _props(schema)
        extra = _additional(schema)
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = keep_object_fields or schema.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            sub = props.get(key)
            if embedded and key in _OBJECT_FIELDS:
                # apiVersion, kind and metadata of the object (or of an embedded one) are
                # ObjectMeta's business, never the schema's: controller-gen declares
                # `metadata: {type: object}` in every CRD, which must not empty it.
                continue
            if isinstance(sub, Mapping):
                _prune(value[key], sub, _path_text(path, key), False, pruned)
            elif extra is not None:
                _prune(value[key], extra, _path_text(path, key), False, pruned)
            elif not (schema.get("additionalProperties") is True or preserve
                      or (embedded and key in _OBJECT_FIELDS)):
                del value[key]
                pruned.append(_path_text(path, key))
    elif isinstance(value, list):
        items = _items(schema)
        if items is not None:
            for i, item in enumerate(value):
                _prune(item, items, f"{path}[{i}]", False, pruned)


# --------------------------------------------------------------------------------- defaulting


def apply_defaults(value: Any, schema: Schema) -> None:
    """Fill in ``default`` values (in place), and drop nulls nothing allows."""
    if isinstance(value, dict):
        props = _props(schema)
        for key, sub in props.items():
            if not isinstance(sub, Mapping):
                continue
            if key in value and value[key] is None and not sub.get("nullable"):
                if "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                else:
                    del value[key]
            elif key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        extra = _additional(schema)
        for key, item in value.items():
            sub = props.get(key)
            if isinstance(sub, Mapping):
                apply_defaults(item, sub)
            elif extra is not None:
                apply_defaults(item, extra)
    elif isinstance(value, list):
        items = _items(schema)
        if items is not None:
            for item in value:
                apply_defaults(item, items)


# --------------------------------------------------------------------------------- validation


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _has_type(value: Any, type_name: str) -> bool:
    actual = _json_type(value)
    if type_name == "number":
        return actual in ("integer", "number")
    return actual == type_name


def _go_number(n: Any) -> str:
    """A float64 as Go's %v prints it (10, 1.5)."""
    f = float(n)
    return str(int(f)) if f.is_integer() and abs(f) < 1e21 else repr(f)


def _is_date_time(v: str) -> bool:
    try:
        _dt.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return "T" in v.upper()


def _is_date(v: str) -> bool:
    try:
        _dt.date.fromisoformat(v)
    except ValueError:
        return False
    return len(v) == 10


def _is_uuid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return len(v) == 36


def _is_ip(version: int) -> Callable[[str], bool]:
    def check(v: str) -> bool:
        try:
            return ipaddress.ip_address(v).version == version
        except ValueError:
            return False
    return check


def _is_cidr(v: str) -> bool:
    try:
        ipaddress.ip_network(v, strict=False)
    except ValueError:
        return False
    return "/" in v


def _is_byte(v: str) -> bool:
    try:
        base64.b64decode(v, validate=True)
    except ValueError:
        return False
    return True


_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the caller's error, not a log line

_MAC: Final = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: The formats kube-openapi's strfmt registry checks (apiextensions' supported formats) that
#: have a plain definition here; others pass, as unknown formats do upstream.
_FORMATS: Final[dict[str, Callable[[str], bool]]] = {
    "date-time": _is_date_time,
    "datetime": _is_date_time,
    "date": _is_date,
    "uuid": _is_uuid,
    "ipv4": _is_ip(4),
    "ipv6": _is_ip(6),
    "cidr": _is_cidr,
    "mac": lambda v: bool(_MAC.match(v)),
    "hostname": lambda v: not is_dns1123_subdomain(v),
    "email": lambda v: bool(_EMAIL.match(v)),
    "byte": _is_byte,
}


def validate(value: Any, schema: Schema, path: Path | None = None) -> list[FieldError]:
    """Every way ``value`` fails ``schema``, at upstream's field paths."""
    errs: list[FieldError] = []
    _validate(value, schema, path or Path(), errs)
    return errs


def _type_error(path: Path, type_name: str, value: Any) -> FieldError:
    """A TypeInvalid error (as upstream converts kube-openapi's InvalidTypeCode)."""
    actual = _json_type(value)
    return FieldError(ErrorType.TYPE_INVALID, str(path), actual,
                      f"{path} in body must be of type {type_name}: \"{actual}\"")


def _validate(value: Any, schema: Schema, path: Path, errs: list[FieldError]) -> None:
    if value is None:
        if schema.get("nullable") or not schema.get("type"):
            return
        errs.append(_type_error(path, str(schema["type"]), value))
        return
    if schema.get("x-kubernetes-int-or-string") is True and _json_type(value) not in (
            "integer", "string"):
        errs.append(_type_error(path, "integer,string", value))
        return
    type_name = schema.get("type")
    if isinstance(type_name, str) and type_name and not _has_type(value, type_name):
        errs.append(_type_error(path, type_name, value))
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        errs.append(not_supported(path, value, [_enum_text(e) for e in enum]))
    if isinstance(value, str):
        _validate_string(value, schema, path, errs)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, errs)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errs)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, errs)
    _validate_combinators(value, schema, path, errs)


def _enum_text(value: Any) -> str:
    return value if isinstance(value, str) else _go_number(value) if isinstance(
        value, (int, float)) and not isinstance(value, bool) else str(value).lower()


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, _RE2_OPTIONS)


def compile_pattern(pattern: str) -> Any:
    """A schema's ``pattern`` compiled as Go's regexp compiles it (RE2 syntax, linear-time
    matching); None when it is not a valid one."""
    try:
        return _compiled(pattern)
    except re2.error:
        return None


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid RE2 regular expression (None: it is)."""
    try:
        _compiled(pattern)
    except re2.error as e:
        detail = e.args[0] if e.args else e
        return detail.decode() if isinstance(detail, bytes) else str(detail)
    return None


def _validate_string(value: str, schema: Schema, path: Path, errs: list[FieldError]) -> None:
    length = len(value)
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and length > max_length:
        errs.append(too_long(path, value, max_length))
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and length < min_length:
        errs.append(invalid(path, value,
                            f"{path} in body should be at least {min_length} chars long"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        compiled = compile_pattern(pattern)
        # (the CRD's validation refuses patterns that do not compile)
        if compiled is not None and compiled.search(value) is None:
            errs.append(invalid(path, value, f"{path} in body should match '{pattern}'"))
    fmt = schema.get("format")
    check = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if check is not None and not check(value):
        errs.append(invalid(path, value, f"{path} in body must be of type {fmt}: \"{value}\""))


def _validate_number(value: float, schema: Schema, path: Path, errs: list[FieldError]) -> None:
    minimum = schema.get("minimum")
    if isinstance(minimum, (int, float)):
        if schema.get("exclusiveMinimum") is True and value <= minimum:
            errs.append(invalid(path, value, f"{path} in body should be greater than "
                                             f"{_go_number(minimum)}"))
        elif value < minimum:
            errs.append(invalid(path, value, f"{path} in body should be greater than or equal "
                                             f"to {_go_number(minimum)}"))
    maximum = schema.get("maximum")
    if isinstance(maximum, (int, float)):
        if schema.get("exclusiveMaximum") is True and value >= maximum:
            errs.append(invalid(path, value, f"{path} in body should be less than "
                                             f"{_go_number(maximum)}"))
        elif value > maximum:
            errs.append(invalid(path, value, f"{path} in body should be less than or equal to "
                                             f"{_go_number(maximum)}"))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and multiple > 0 and not _is_multiple(value, multiple):
        errs.append(invalid(path, value, f"{path} in body should be a multiple of "
                                         f"{_go_number(multiple)}"))


def _is_multiple(value: int | float, multiple: int | float) -> bool:
    """go-openapi's MultipleOf: the quotient is an integer (to 1e-9, as floats go); exact for
    numbers too large for a float."""
    try:
        quotient = value / multiple
    except OverflowError:
        quotient = math.inf
    if math.isfinite(quotient):
        return math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9)
    try:
        return (Fraction(value) / Fraction(multiple)).denominator == 1
    except (OverflowError, ValueError):  # an infinite or NaN value
        return False


def _canonical(value: Any) -> str:
    """JSON text with sorted keys: equal exactly when Go's DeepEqual of the decoded values is
    (``1`` and ``true`` differ, ``1`` and ``1.0`` too)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _count_bounds(count: int, schema: Schema, path: Path, suffix: str, noun: str,
                  errs: list[FieldError]) -> None:
    """``max<suffix>`` (TooMany, as upstream converts it) and ``min<suffix>``."""
    most = schema.get(f"max{suffix}")
    if isinstance(most, int) and count > most:
        errs.append(too_many(path, count, most))
    least = schema.get(f"min{suffix}")
    if isinstance(least, int) and count < least:
        errs.append(invalid(path, count, f"{path} in body should have at least {least} {noun}"))


def _validate_array(value: list[Any], schema: Schema, path: Path,
                    errs: list[FieldError]) -> None:
    _count_bounds(len(value), schema, path, "Items", "items", errs)
    if schema.get("uniqueItems") is True or schema.get("x-kubernetes-list-type") == "set":
        seen: set[str] = set()
        for i, item in enumerate(value):
            text = _canonical(item)
            if text in seen:
                errs.append(duplicate(path.index(i), item))
            seen.add(text)
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") == "map" and isinstance(keys, list):
        seen_keys: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                continue
            key = {str(k): item[k] for k in keys if k in item}
            text = _canonical(key)
            if text in seen_keys:
                errs.append(duplicate(path.index(i), key))
            seen_keys.add(text)
    items = _items(schema)
    if items is not None:
        for i, item in enumerate(value):
            _validate(item, items, path.index(i), errs)


def _validate_object(value: dict[str, Any], schema: Schema, path: Path,
                     errs: list[FieldError]) -> None:
    _count_bounds(len(value), schema, path, "Properties", "properties", errs)
    for name in schema.get("required") or ():
        if isinstance(name, str) and name not in value:
            errs.append(required(path.child(name)))
    props = _props(schema)
    extra = _additional(schema)
    for key, item in value.items():
        sub = props.get(key)
        if isinstance(sub, Mapping):
            _validate(item, sub, path.child(key), errs)
        elif extra is not None:
            _validate(item, extra, path.child(key), errs)


def _validate_combinators(value: Any, schema: Schema, path: Path,
                          errs: list[FieldError]) -> None:
    for sub in schema.get("allOf") or ():
        if isinstance(sub, Mapping):
            _validate(value, sub, path, errs)
    any_of = [s for s in schema.get("anyOf") or () if isinstance(s, Mapping)]
    if any_of and all(validate(value, s, path) for s in any_of):
        errs.append(invalid(path, value,
                            f"{path} in body must validate at least one schema (anyOf)"))
    one_of = [s for s in schema.get("oneOf") or () if isinstance(s, Mapping)]
    if one_of and sum(1 for s in one_of if not validate(value, s, path)) != 1:
        errs.append(invalid(path, value,
                            f"{path} in body must validate one and only one schema (oneOf)"))
    not_schema = schema.get("not")
    if isinstance(not_schema, Mapping) and not validate(value, not_schema, path):
        errs.append(invalid(path, value, f"{path} in body should not validate the schema "
                                         "(not)"))


MAX_DEPTH: Final = 200
"""How deep a custom resource may nest: every pass over it (pruning, defaulting, validation,
managedFields) walks it recursively, and the body decoder takes up to 1,024 levels."""


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: it is what guards the recursive walks)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = current.values() if isinstance(current, Mapping) else (
            current if isinstance(current, list) else ())
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, Mapping | list))
    return deepest


def decode_custom_resource(body: Mapping[str, Any], schema: Schema, *, api_version: str,
                           kind: str) -> Decoded:
    """A custom resource as its version's codec reads it: ``metadata`` decoded as ObjectMeta
    (a wrong type is a 400, as for every kind), then everything pruned by the schema. The
    unknown fields of both are reported (``metadata.foo``, ``spec.bar``)."""
    if _depth(body) > MAX_DEPTH:
        raise bad_request(f"the object is nested more than {MAX_DEPTH} levels deep")
    obj = copy.deepcopy(dict(body))
    unknown: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        decoded = decode_as(meta, "V1ObjectMeta", kind=kind, api_version=api_version)
        obj["metadata"] = decoded.obj
        unknown.extend(f"metadata.{f}" for f in decoded.unknown_fields)
    unknown.extend(prune(obj, schema))
    return Decoded(obj, unknown)
