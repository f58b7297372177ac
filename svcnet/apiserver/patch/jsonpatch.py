"""JSON patch (RFC 6902), with evanphx/json-patch v4 semantics (see the package docstring)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Final

from svcnet.api.errors import (
    StatusError,
    bad_request,
)
from svcnet.apiserver.patch.gofmt import go_json, json_type_name
from svcnet.apiserver.patch.merge import not_an_object
from svcnet.apiserver.patch.options import (
    GENERIC_422,
    MAX_JSON_PATCH_COPY_BYTES,
    MAX_JSON_PATCH_OPERATIONS,
)

JSON = Any
Obj = dict[str, Any]


# JSON patch (RFC 6902)
# ============================================================================================


class _JSONPatchError(Exception):
    """One operation failed (evanphx's message)."""


_ATOI: Final = re.compile(r"[+-]?[0-9]+")


def json_patch(original: Obj, ops: JSON) -> Obj:
    """Apply an ``application/json-patch+json`` body (see the module docstring for codes)."""
    if ops is None:
        return copy.deepcopy(original)  # Go decodes null into an empty patch
    if not isinstance(ops, list):
        raise bad_request(f"json: cannot unmarshal {json_type_name(ops)} into Go value of "
                          "type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise bad_request(f"json: cannot unmarshal {json_type_name(op)} into Go value "
                              "of type jsonpatch.Operation")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(413, "RequestEntityTooLarge",
                          "Request entity too large: The allowed maximum operations in a JSON "
                          f"patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    doc: JSON = copy.deepcopy(original)
    copied = _Copied()
    for op in ops:
        try:
            doc = _apply_json_op(doc, op, copied)
        except _JSONPatchError as e:
            raise StatusError(422, "Invalid", GENERIC_422) from e
    if not isinstance(doc, dict):
        raise not_an_object(doc)
    return doc


class _Copied:
    """The bytes ``copy`` operations have added so far (evanphx's accumulatedCopySize: each
    copied value counts as long as its JSON); past the limit, the patch fails."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0

    def add(self, value: JSON) -> None:
        if value is None:
            return  # a missing member is a nil node, which copies as nothing
        self.size += len(go_json(value).encode())
        if self.size > MAX_JSON_PATCH_COPY_BYTES:
            raise _JSONPatchError(
                "Unable to complete the copy, the accumulated size increase of copy is "
                f"{self.size}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}")


def _op_string(op: Obj, name: str, kind: str) -> str:
    """An operation's ``path``/``from``: present, non-null and a string."""
    v = op.get(name)
    if not isinstance(v, str):
        raise _JSONPatchError(f"{kind} operation failed to decode {name}: missing value")
    return v


def _decode_pointer_token(s: str) -> str:
    # strings.NewReplacer("~1", "/", "~0", "~"): one left-to-right pass.
    return re.sub(r"~[01]", lambda m: "/" if m.group() == "~1" else "~", s)


def _atoi(s: str) -> int:
    if not _ATOI.fullmatch(s):
        raise _JSONPatchError(f'strconv.Atoi: parsing "{s}": invalid syntax')
    return int(s)


def _find_object(doc: JSON, path: str) -> tuple[dict[str, Any] | list[Any], str] | None:
    """evanphx's ``findObject``: the container of the last token, or None."""
    split = path.split("/")
    if len(split) < 2:
        return None
    cur = doc
    for part in split[1:-1]:
        try:
            nxt = _container_get(cur, _decode_pointer_token(part))
        except _JSONPatchError:
            return None
        if not isinstance(nxt, dict | list):
            return None
        cur = nxt
    return cur, _decode_pointer_token(split[-1])


def _norm_index(idx: int, size: int) -> int:
    if idx < 0:
        if idx < -size:
            raise _JSONPatchError(f"Unable to access invalid index: {idx}: invalid index "
                                  "referenced")
        idx += size
    return idx


def _container_get(con: dict[str, Any] | list[Any], key: str) -> JSON:
    if isinstance(con, dict):
        return con.get(key)  # a missing member reads as nil, which is not an error
    idx = _norm_index(_atoi(key), len(con))
    if idx >= len(con):
        raise _JSONPatchError(f"Unable to access invalid index: {idx}: invalid index "
                              "referenced")
    return con[idx]


def _container_add(con: dict[str, Any] | list[Any], key: str, val: JSON) -> None:
    if isinstance(con, dict):
        con[key] = val
        return
    if key == "-":
        con.append(val)
        return
    idx = _atoi(key)
    size = len(con) + 1
    if idx >= size:
        raise _JSONPatchError(f"Unable to access invalid index: {idx}: invalid index "
                              "referenced")
    con.insert(_norm_index(idx, size), val)


def _container_remove(con: dict[str, Any] | list[Any], key: str) -> None:
    if isinstance(con, dict):
        if key not in con:
            raise _JSONPatchError(f"Unable to remove nonexistent key: {key}: missing value")
        del con[key]
        return
    idx = _atoi(key)
    if idx >= len(con):
        raise _JSONPatchError(f"Unable to access invalid index: {idx}: invalid index "
                              "referenced")
    del con[_norm_index(idx, len(con))]


def _json_equal(a: JSON, b: JSON) -> bool:
    """evanphx's ``equal``: structural for containers, JSON text for scalars."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(_json_equal(a[k], b[k]) for k in a))
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(_json_equal(x, y) for x, y in zip(a, b, strict=True)))
    return json.dumps(a) == json.dumps(b)


def _apply_json_op(doc: JSON, op: Obj,  # noqa: C901 (one branch per RFC 6902 op)
                   copied: _Copied) -> JSON:
    kind = op.get("op")
    if not isinstance(kind, str):
        kind = "unknown"
    value = op.get("value")
    if kind == "add":
        path = _op_string(op, "path", "add")
        found = _find_object(doc, path)
        if found is None:
            raise _JSONPatchError(f'add operation does not apply: doc is missing path: "{path}"'
                                  ": missing value")
        _container_add(*found, copy.deepcopy(value))
    elif kind == "remove":
        path = _op_string(op, "path", "remove")
        found = _find_object(doc, path)
        if found is None:
            raise _JSONPatchError(f"remove operation does not apply: doc is missing path: "
                                  f'"{path}": missing value')
        _container_remove(*found)
    elif kind == "replace":
        path = _op_string(op, "path", "replace")
        if path == "":
            if not isinstance(value, dict | list):
                raise _JSONPatchError("replace operation value must be object or array")
            return copy.deepcopy(value)
        found = _find_object(doc, path)
        if found is None:
            raise _JSONPatchError(f"replace operation does not apply: doc is missing path: "
                                  f"{path}: missing value")
        con, key = found
        _container_get(con, key)  # bounds check; a missing object member is simply added
        if isinstance(con, dict):
            con[key] = copy.deepcopy(value)
        else:
            con[_norm_index(_atoi(key), len(con))] = copy.deepcopy(value)
    elif kind in ("move", "copy"):
        frm = _op_string(op, "from", kind)
        found = _find_object(doc, frm)
        if found is None:
            raise _JSONPatchError(f"{kind} operation does not apply: doc is missing from "
                                  f"path: {frm}: missing value")
        val = _container_get(*found)
        if kind == "move":
            _container_remove(*found)
        else:
            copied.add(val)  # before copying: a refused copy costs nothing
            val = copy.deepcopy(val)
        path = _op_string(op, "path", kind)
        dest = _find_object(doc, path)
        if dest is None:
            raise _JSONPatchError(f"{kind} operation does not apply: doc is missing "
                                  f"destination path: {path}: missing value")
        _container_add(*dest, val)
    elif kind == "test":
        path = _op_string(op, "path", "test")
        if path == "":
            if not _json_equal(doc, value):
                raise _JSONPatchError(f"testing value {path} failed: test failed")
            return doc
        found = _find_object(doc, path)
        if found is None:
            raise _JSONPatchError(f"test operation does not apply: is missing path: {path}: "
                                  "missing value")
        cur = _container_get(*found)
        # An absent member and a null both read as nil; a nil value test passes for them.
        if cur is None:
            if value is not None:
                raise _JSONPatchError(f"testing value {path} failed: test failed")
        elif value is None or not _json_equal(cur, value):
            raise _JSONPatchError(f"testing value {path} failed: test failed")
    else:
        raise _JSONPatchError(f"Unexpected kind: {kind}")
    return doc
