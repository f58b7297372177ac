"""A deep copy of a JSON tree (dicts, lists and immutable scalars), about 3x as fast as
:func:`copy.deepcopy`, which also handles shared and cyclic references that a decoded JSON
document never has. The request path copies objects at several steps (defaulting, patching,
managed fields), so this is where that cost is paid once."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def json_copy(value: T) -> T:
    """A deep copy of ``value``: new dicts and lists all the way down; scalars are shared."""
    kind = type(value)
    if kind is dict:
        return {k: json_copy(v) for k, v in value.items()}  # type: ignore[attr-defined,return-value]
    if kind is list:
        return [json_copy(v) for v in value]  # type: ignore[attr-defined,return-value]
    return value
