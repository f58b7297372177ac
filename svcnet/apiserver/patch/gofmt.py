"""Go value rendering: error messages quote values the way Go's fmt prints them."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from svcnet.api.gojson import go_dumps

JSON = Any
Obj = dict[str, Any]




def go_type(v: JSON) -> str:
    """``reflect.TypeOf(v).String()`` for a value decoded by Kubernetes' JSON decoder."""
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    return "%!s(<nil>)"


def go_float(f: float) -> str:
    """``%v`` of a float64: shortest digits, ``%e`` form when the exponent is < -4 or >= 6."""
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    d = Decimal(repr(f))
    exp = d.adjusted()
    if exp < -4 or exp >= 6:
        digits = "".join(map(str, d.as_tuple().digits)).rstrip("0") or "0"
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{'-' if f < 0 else ''}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    text = f"{d:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def go_fmt(v: JSON) -> str:
    """``fmt.Sprintf("%v", v)`` for decoded JSON: maps sorted, slices space-separated."""
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_fmt(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_fmt(x) for x in v) + "]"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    return str(v)


def go_fmt_s(v: JSON) -> str:
    """``%s``: strings as they are, anything else in Go's ``%!s(type=value)`` form."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict | list):
        return go_fmt(v)
    if v is None:
        return "%!s(<nil>)"
    return f"%!s({go_type(v)}={go_fmt(v)})"


def go_json(v: JSON) -> str:
    """Compact JSON as Go's ``encoding/json`` writes it: sorted keys, HTML-safe escapes."""
    return go_dumps(_go_numbers(v), sort_keys=True)


def _go_numbers(v: JSON) -> JSON:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, dict):
        return {k: _go_numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_go_numbers(x) for x in v]
    return v


def json_type_name(v: JSON) -> str:
    """The JSON type word Go's decoder uses in "cannot unmarshal X into ..."."""
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    return "number"
