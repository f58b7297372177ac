"""JSON merge patch (RFC 7386), as evanphx/json-patch v4 MergePatch (see the package docstring)."""

from __future__ import annotations

from typing import Any

from svcnet.api.errors import (
    StatusError,
    bad_request,
    invalid,
    invalid_error,
)
from svcnet.apiserver.patch.gofmt import go_json, json_type_name
from svcnet.util.jsoncopy import json_copy

JSON = Any
Obj = dict[str, Any]


# JSON merge patch (RFC 7386)
# ============================================================================================


def merge_patch_value(target: JSON, patch: JSON) -> JSON:
    """RFC 7386 ``MergePatch(Target, Patch)`` on any JSON values; never mutates inputs.

    For object patches this is evanphx's merge (see :func:`json_merge_patch`), which also
    drops ``null`` members of objects nested in arrays that replace a value.
    """
    if not isinstance(patch, dict):
        return json_copy(patch)
    doc = json_copy(target) if isinstance(target, dict) else {}
    _merge_docs(doc, json_copy(patch))
    return doc


def json_merge_patch(original: Obj, patch: JSON) -> Obj:
    """Apply an ``application/merge-patch+json`` body as the apiserver does.

    ``null`` or a scalar patch is 400 ``Invalid JSON Patch`` (evanphx's ``ErrBadJSONPatch``);
    an array patch replaces the object with an array, which then fails to decode: 422.
    """
    if patch is None or not isinstance(patch, dict | list):
        raise bad_request("Invalid JSON Patch")
    if isinstance(patch, list):
        arr = json_copy(patch)
        _prune_nulls(arr)
        raise not_an_object(arr)
    doc = json_copy(original)
    _merge_docs(doc, json_copy(patch))
    return doc


def _merge_docs(doc: Obj, patch: Obj) -> None:
    for k, v in patch.items():
        if v is None:
            doc.pop(k, None)
            continue
        cur = doc.get(k)
        if cur is None:
            _prune_nulls(v)
            doc[k] = v
        else:
            doc[k] = _merge_values(cur, v)


def _merge_values(cur: JSON, patch: JSON) -> JSON:
    if not isinstance(cur, dict):
        _prune_nulls(patch)
        return patch
    if not isinstance(patch, dict):
        return patch  # evanphx returns a non-object patch value unpruned here
    _merge_docs(cur, patch)
    return cur


def _prune_nulls(v: JSON) -> None:
    if isinstance(v, dict):
        for k in [k for k, x in v.items() if x is None]:
            del v[k]
        for x in v.values():
            _prune_nulls(x)
    elif isinstance(v, list):
        for x in v:
            if x is not None:
                _prune_nulls(x)


def not_an_object(doc: JSON) -> StatusError:
    """The patched document must decode into the object; an array or scalar cannot."""
    detail = (f"json: cannot unmarshal {json_type_name(doc)} into Go value of type "
              "map[string]interface {}")
    return invalid_error("", "", [invalid("patch", go_json(doc), detail)])


# ============================================================================================
