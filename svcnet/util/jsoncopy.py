"""A deep copy of a JSON tree (dicts, lists and immutable scalars), about 3x as fast as
:func:`copy.deepcopy`, which also handles shared and cyclic references that a decoded JSON
document never has. The request path copies objects at several steps (defaulting, patching,
managed fields), so this is where that cost is paid once."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def json_copy(value: T) -> T:
    """A deep copy of ``value``: new dicts and lists all the way down; scalars are shared."""
    kind = type(value)
    if kind is dict:
        return {k: json_copy(v) for k, v in value.items()}  # type: ignore[attr-defined,return-value]
    if kind is list:
        return [json_copy(v) for v in value]  # type: ignore[attr-defined,return-value]
    return value


def object_copy(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a Kubernetes object that shares its ``metadata.managedFields``.

    For the steps of a write that return a rewritten copy of the object (defaulting, the
    Service strategy's fix-ups, allocation): none of them edits managedFields, which the field
    manager only ever replaces as a whole, and they are most of a small object's bytes (every
    field's path, for each manager), so copying them at each step was most of the copying.
    Everything else is new, as with :func:`json_copy`; key order is kept.
    """
    meta = obj.get("metadata")
    if type(meta) is not dict or "managedFields" not in meta:
        return json_copy(obj)
    out = {k: json_copy(v) for k, v in obj.items() if k != "metadata"}
    copied = {k: v if k == "managedFields" else json_copy(v) for k, v in meta.items()}
    return {k: copied if k == "metadata" else out[k] for k in obj}
