"""Typed reads of JSON-shaped Kubernetes objects that tolerate absent or wrongly typed fields.

Controllers read objects that the API validated, but optional fields are often absent; these
return an empty value of the right type instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

ObjMap = Mapping[str, Any]


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def as_text(value: object) -> str:
    """A value as text to print: a string as is, None as empty, anything else as str()."""
    return value if isinstance(value, str) else "" if value is None else str(value)


def map_of(d: ObjMap | None, key: str) -> dict[str, Any]:
    v = d.get(key) if d else None
    return v if isinstance(v, dict) else {}


def list_of(d: ObjMap | None, key: str) -> list[Any]:
    v = d.get(key) if d else None
    return v if isinstance(v, list) else []


def is_mapping(value: object) -> TypeGuard[ObjMap]:
    """Any Mapping; a dict (what JSON decodes to) is checked first, since isinstance against
    the Mapping ABC is several times slower and hot paths read every field of every object."""
    return type(value) is dict or isinstance(value, Mapping)


def mapping_of(d: ObjMap | None, key: str) -> ObjMap:
    """Like :func:`map_of`, but any Mapping counts, and the result is read-only."""
    v = d.get(key) if d else None
    return v if is_mapping(v) else {}


def str_of(d: ObjMap | None, key: str) -> str:
    v = d.get(key) if d else None
    return v if isinstance(v, str) else ""


def int_of(d: ObjMap | None, key: str) -> int:
    v = d.get(key) if d else None
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def meta_of(obj: ObjMap) -> dict[str, Any]:
    return map_of(obj, "metadata")


def name_of(obj: ObjMap) -> str:
    return str(meta_of(obj).get("name") or "")


def namespace_of(obj: ObjMap) -> str:
    return str(meta_of(obj).get("namespace") or "")


def namespace_name_of(obj: ObjMap) -> tuple[str, str]:
    """``(namespace_of(obj), name_of(obj))``, reading ``metadata`` once."""
    meta = meta_of(obj)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def uid_of(obj: ObjMap) -> str:
    return str(meta_of(obj).get("uid") or "")


def labels_of(obj: ObjMap) -> dict[str, Any]:
    return map_of(meta_of(obj), "labels")


def annotations_of(obj: ObjMap) -> dict[str, Any]:
    return map_of(meta_of(obj), "annotations")
