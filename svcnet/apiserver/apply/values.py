"""structured-merge-diff's value equality and total order (as smd's value package)."""

from __future__ import annotations

from typing import Any, Final

from svcnet.api.errors import go_quote
from svcnet.apiserver.patch import go_float
from svcnet.util import jsonbytes

Obj = dict[str, Any]
JSON = Any

LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS: Final = 10
TOTAL_ANNOTATION_SIZE_LIMIT: Final = 256 * 1024


class _Missing:
    """An absent value (Go's nil ``value.Value``), as opposed to a JSON null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


# Values: structured-merge-diff's equality and total order
# ============================================================================================


def _value_eq(a: JSON, b: JSON) -> bool:
    """smd ``value.Equals``: ints and floats compare numerically, bools are not numbers.

    Containers that Python finds equal (``==`` takes ``True`` for ``1``) and that encode to the
    same JSON text are equal without a walk in Python: the same text means the same keys in
    the same order and, for every scalar, the same kind (a bool, an int and a float never
    print alike) and value. NaN, which equals nothing, prints as ``null`` (as infinities do), so
    a text with a ``null`` in it takes the walk.
    """
    if type(a) in _CONTAINERS and a == b:
        text = jsonbytes.dumps(a)
        if text == jsonbytes.dumps(b) and b"null" not in text:
            return True
    return _walk_eq(a, b)


_CONTAINERS: Final = (dict, list)


def _walk_eq(a: JSON, b: JSON) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_walk_eq(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_walk_eq(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _value_order(v: JSON) -> tuple[Any, ...]:
    """smd ``value.Compare`` as a sort key: numbers < strings < bools < lists < maps < null."""
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, int | float):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, tuple(_value_order(x) for x in v))
    if isinstance(v, dict):
        return (4, tuple(sorted((k, _value_order(x)) for k, x in v.items())))
    return (5,)


def _value_key(v: JSON) -> tuple[Any, ...]:
    """A hashable identity consistent with :func:`_value_eq`."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int | float):
        return ("n", v)
    if isinstance(v, str):
        return ("s", v)
    if isinstance(v, list):
        return ("l", tuple(_value_key(x) for x in v))
    if isinstance(v, dict):
        return ("m", tuple(sorted((k, _value_key(x)) for k, x in v.items())))
    return ("z",)


def _value_string(v: JSON) -> str:
    """smd ``value.ToString``: how a key value prints inside a conflict path."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, list):
        return "[" + ",".join(_value_string(x) for x in v) + "]"
    if isinstance(v, dict):
        return "".join(f"{k}={_value_string(x)}" for k, x in v.items())
    return str(v)


# ============================================================================================
