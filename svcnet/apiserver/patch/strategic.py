"""Strategic merge patch: a port of k8s.io/apimachinery/pkg/util/strategicpatch
(see the package docstring).

Why this module is long: A literal port of strategicpatch's patch.go, kept whole so it reads
against upstream. Where upstream scans a list per item (finding a map by its merge key,
``index``, ``sort.SliceStable`` with a scanning comparator, ``deduplicateScalars``), the scans
are lookups in :mod:`.golists` indexes that give the same answers: a patch of n list items
costs O(n log n), not O(n²) to O(n³).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from svcnet.api.errors import (
    StatusError,
    bad_request,
)
from svcnet.apiserver.patch.gofmt import go_fmt, go_fmt_s, go_type, json_type_name
from svcnet.apiserver.patch.golists import (
    GoPanic,
    Positions,
    deduplicate,
    sort_by_position,
    uncomparable,
)
from svcnet.apiserver.patch.options import GENERIC_422
from svcnet.apiserver.patch.schema import PatchSchema, patch_schema

JSON = Any
Obj = dict[str, Any]



_DIRECTIVE: Final = "$patch"
_DELETE: Final = "delete"
_REPLACE: Final = "replace"
_MERGE: Final = "merge"
_RETAIN_KEYS: Final = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER: Final = "$setElementOrder"



class _SMPError(Exception):
    """An error the apiserver does not classify: 500, no reason, the raw message."""

    def status(self) -> StatusError:
        return StatusError(500, "", str(self))


class _SMPBadRequest(_SMPError):
    def status(self) -> StatusError:
        return bad_request(str(self))


class _SMPUnprocessable(_SMPError):
    def status(self) -> StatusError:
        return StatusError(422, "Invalid", GENERIC_422)


# mergepatch's sentinel errors, with the codes interpretStrategicMergePatchError gives them.
def _err_bad_format_primitive_list() -> _SMPError:
    return _SMPBadRequest("invalid patch format of primitive list")


def _err_bad_format_retain_keys() -> _SMPError:
    return _SMPBadRequest("invalid patch format of retainKeys")


def _err_bad_format_set_element_order() -> _SMPError:
    return _SMPBadRequest("invalid patch format of setElementOrder list")


def _err_no_list_of_lists() -> _SMPError:
    return _SMPUnprocessable("lists of lists are not supported")


def _err_no_merge_key(m: JSON, key: str) -> _SMPError:
    return _SMPError(f"map: {go_fmt(m)} does not contain declared merge key: {key}")


def _err_bad_arg_type(expected: str, actual: JSON) -> _SMPError:
    return _SMPError(f"expected a {expected}, but received a {go_type(actual)}")


def _err_bad_patch_type(t: JSON, m: JSON) -> _SMPError:
    return _SMPError(f"unknown patch type: {go_fmt_s(t)} in map: {go_fmt(m)}")


_MAP_T: Final = "map[string]interface {}"
_SLICE_T: Final = "[]interface {}"


def _go_eq(a: JSON, b: JSON) -> bool:
    """Go's ``==`` on two ``interface{}`` values holding decoded JSON."""
    ta, tb = go_type(a), go_type(b)
    if ta != tb:
        return False
    if ta in (_MAP_T, _SLICE_T):
        raise _SMPError(f"runtime error: comparing uncomparable type {ta}")
    return bool(a == b)


def _go_key(v: JSON) -> tuple[str, Any]:
    """A Go map key for an ``interface{}`` value (maps and slices are unhashable in Go too)."""
    t = go_type(v)
    if t in (_MAP_T, _SLICE_T):
        raise _SMPError(f"runtime error: hash of unhashable type {t}")
    return (t, v)


class _View:
    """What Go's caller-held slice header sees of a list the merge edits in place.

    ``mergeSlice`` deletes items by shifting the tail left and appends new items into the
    freed capacity; the ``originalFieldValue`` header in ``mergePatchIntoOriginal`` keeps its
    old length and so reads the edited backing array. That array is the "server order" used
    to place server-only items, so we replay the edits here.
    """

    __slots__ = ("aliased", "items", "n", "used")

    def __init__(self, items: list[Any]) -> None:
        self.items = list(items)
        self.n = len(items)
        self.used = len(items)
        self.aliased = True

    def deleted(self, live: list[Any], tails: list[Any]) -> None:
        """Deletions were made, each shifting the tail left over the deleted item (Go's
        ``append(s[:i], s[i+1:]...)``), leaving ``live``; ``tails`` holds the last live item
        before each deletion, which is what each left behind past the new end."""
        if self.aliased and tails:
            self.items = live + tails[::-1]
            self.used = len(live)

    def set(self, idx: int, v: JSON) -> None:
        if self.aliased:
            self.items[idx] = v

    def append(self, v: JSON) -> None:
        if self.aliased and self.used < self.n:
            self.items[self.used] = v
            self.used += 1
        else:
            # Beyond the old length: invisible to the old header (or a reallocation).
            self.aliased = False

    def detach(self) -> None:
        self.aliased = False


def strategic_merge_patch(original: Obj, patch: JSON, api_version: str, kind: str) -> Obj:
    """Apply a strategic merge patch to ``original`` (a ``kind`` object); never mutates inputs.

    ``patch`` is the decoded body. ``null`` is a no-op (Go decodes it into an empty map); a
    non-object is 400, like the apiserver's JSON decoding of the patch into a map.
    """
    return strategic_merge_patch_with_schema(original, patch, patch_schema(api_version, kind))


def strategic_merge_patch_with_schema(original: Obj, patch: JSON, schema: PatchSchema) -> Obj:
    """:func:`strategic_merge_patch` with explicit metadata (tests use upstream's MergeItem)."""
    if patch is None:
        return copy.deepcopy(original)
    if not isinstance(patch, dict):
        raise bad_request(f"json: cannot unmarshal {json_type_name(patch)} into Go value of "
                          "type map[string]interface {}")
    try:
        return _StrategicMerge(schema).merge_map(copy.deepcopy(original), copy.deepcopy(patch),
                                                 ())
    except _SMPError as e:
        raise e.status() from e
    except GoPanic as e:
        raise _SMPError(str(e)).status() from e


class _StrategicMerge:
    """``mergeMap`` and friends; functions keep their upstream names in snake case."""

    def __init__(self, schema: PatchSchema) -> None:
        self.schema = schema

    # -- maps ------------------------------------------------------------------------------

    def merge_map(self, original: Obj | None, patch: Obj, spath: tuple[str, ...]) -> Obj:
        if _DIRECTIVE in patch:
            return self._directive_in_map(patch[_DIRECTIVE], patch)
        if original is None:
            original = {}
        self._apply_retain_keys(original, patch)
        self._merge_patch_into_original(original, patch, spath)

        for key in list(patch):
            if key not in patch:  # consumed by $setElementOrder processing
                continue
            patch_v = patch[key]
            k = key
            is_delete_list = False
            if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
                k = _extract_key(key, _DELETE_FROM_PRIMITIVE_LIST)
                is_delete_list = True
            if patch_v is None:
                # null deletes (for a $deleteFromPrimitiveList key: the list itself, as
                # upstream); IgnoreUnmatchedNulls drops a null for an absent key.
                original.pop(k, None)
                continue
            if k not in original or go_type(original[k]) != go_type(patch_v):
                # A new value (or one of another type) replaces: without its nulls and
                # without maps carrying $patch. A deletion list for a missing list is a no-op.
                if not is_delete_list:
                    _set_cleaned(original, k, patch_v)
                continue
            orig_v = original[k]
            child = (*spath, k)
            if isinstance(orig_v, dict):
                meta = self.schema.map_meta(child)
                original[k] = (patch_v if meta.patch_strategy == _REPLACE
                               else self.merge_map(orig_v, patch_v, child))
            elif isinstance(orig_v, list):
                original[k] = self._merge_slice_handler(orig_v, patch_v, child,
                                                        is_delete_list)[0]
            else:
                _set_cleaned(original, k, patch_v)
        return original

    @staticmethod
    def _directive_in_map(directive: JSON, patch: Obj) -> Obj:
        if directive == _REPLACE:
            # Replace the map with the patch (nested directives stay unprocessed, as upstream).
            del patch[_DIRECTIVE]
            return patch
        if directive == _DELETE:
            return {}
        raise _err_bad_patch_type(directive, patch)

    @staticmethod
    def _apply_retain_keys(original: Obj, patch: Obj) -> None:
        if _RETAIN_KEYS not in patch:
            return
        retain = patch.pop(_RETAIN_KEYS)
        if not isinstance(retain, list):
            raise _err_bad_format_retain_keys()
        keep = {_go_key(v) for v in retain}
        for k, v in patch.items():
            if v is None or k.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
                continue
            if _go_key(k) not in keep:
                raise _err_bad_format_retain_keys()
        for k in list(original):
            if _go_key(k) not in keep:
                del original[k]

    # -- $setElementOrder -----------------------------------------------------------------

    def _merge_patch_into_original(self, original: Obj, patch: Obj,
                                   spath: tuple[str, ...]) -> None:
        for key in list(patch):
            if not key.startswith(_SET_ELEMENT_ORDER):
                continue
            order = patch.pop(key)
            if not isinstance(order, list):
                raise _err_bad_arg_type(_SLICE_T, order)
            okey = _extract_key(key, _SET_ELEMENT_ORDER)
            found_original, found_patch = okey in original, okey in patch
            original_list: list[Any] = []
            patch_list: list[Any] = []
            if found_original:
                if not isinstance(original[okey], list):
                    raise _err_bad_arg_type(_SLICE_T, original[okey])
                original_list = original[okey]
            if found_patch:
                if not isinstance(patch[okey], list):
                    raise _err_bad_arg_type(_SLICE_T, patch[okey])
                patch_list = patch[okey]
            child = (*spath, okey)
            meta = self.schema.list_meta(child)
            merge_key = meta.merge_key
            _validate_patch_with_set_order_list(patch_list, order, merge_key)

            if found_original and not found_patch:
                merged, view = original_list, original_list
            elif not found_original and found_patch:
                merged, view = _remove_directives(patch_list)[0], []
            elif found_original and found_patch:
                merged, view = self._merge_slice_handler(original_list, patch_list, child,
                                                         False)
            else:
                continue

            if not merge_key:
                patch_items, server_only = _partition_primitives(merged, order)
            else:
                patch_items, server_only = _partition_maps(merged, order, merge_key)
            kind = _slice_element_kind(view, patch_list)
            original[okey] = _normalize_element_order(patch_items, server_only, order, view,
                                                      merge_key, kind)
            patch.pop(okey, None)

    # -- lists -----------------------------------------------------------------------------

    def _merge_slice_handler(self, original: list[Any], patch: list[Any],
                             spath: tuple[str, ...],
                             is_delete_list: bool) -> tuple[list[Any], list[Any]]:
        """Returns the merged list and the caller's view of ``original`` (see :class:`_View`)."""
        meta = self.schema.list_meta(spath)
        # A deletion list applies whatever the list's strategy is.
        if meta.patch_strategy == _MERGE or is_delete_list:
            return self._merge_slice(original, patch, (*spath, "[]"), meta.merge_key,
                                     is_delete_list)
        return patch, original

    def _merge_slice(self, original: list[Any], patch: list[Any], item_spath: tuple[str, ...],
                     merge_key: str, is_delete_list: bool) -> tuple[list[Any], list[Any]]:
        view = _View(original)
        if not original and not patch:
            return original, view.items
        kind = _slice_element_kind(original, patch)
        if kind != "map":
            if is_delete_list:
                return _delete_from_slice(original, patch), view.items
            merged = deduplicate(original + patch, _go_key)
        else:
            if not merge_key:
                raise _SMPError("cannot merge lists without merge key for string")
            original, patch = _merge_slice_with_special_elements(original, patch, merge_key,
                                                                 view)
            merged = self._merge_slice_without_special_elements(original, patch, merge_key,
                                                                item_spath, view)
        if not merge_key:
            patch_items, server_only = _partition_primitives(merged, patch)
        else:
            patch_items, server_only = _partition_maps(merged, patch, merge_key)
        return (_normalize_element_order(patch_items, server_only, patch, original, merge_key,
                                         kind), view.items)

    def _merge_slice_without_special_elements(self, original: list[Any], patch: list[Any],
                                              merge_key: str, item_spath: tuple[str, ...],
                                              view: _View) -> list[Any]:
        original = list(original)
        finder = _MapFinder(original, merge_key)
        for v in patch:
            if merge_key not in v:
                raise _err_no_merge_key(v, merge_key)
            value = v[merge_key]
            idx = finder.find(value)
            if idx >= 0:
                merged = self.merge_map(original[idx], v, item_spath)
                original[idx] = merged
                view.set(idx, merged)
                finder.merged(idx, value, merged, original)
            else:
                original.append(v)
                view.append(v)
                finder.appended(v)
        return original


def _extract_key(s: str, prefix: str) -> str:
    parts = s.split("/", 1)
    if len(parts) <= 1 or parts[0] != prefix:
        if prefix == _DELETE_FROM_PRIMITIVE_LIST:
            raise _err_bad_format_primitive_list()
        raise _err_bad_format_set_element_order()
    return parts[1]


def _discard_nulls(v: JSON) -> None:
    """``discardNullValuesFromPatch``: drop null members of maps, at any depth."""
    if isinstance(v, dict):
        for k in [k for k, x in v.items() if x is None]:
            del v[k]
        for x in v.values():
            _discard_nulls(x)
    elif isinstance(v, list):
        for x in v:
            _discard_nulls(x)


def _remove_directives(v: JSON) -> tuple[JSON, bool]:
    """``removeDirectives``: maps carrying ``$patch`` vanish (``keep`` is False for them)."""
    if isinstance(v, dict):
        if _DIRECTIVE in v:
            return None, False
        for k in list(v):
            nv, keep = _remove_directives(v[k])
            if keep:
                v[k] = nv
            else:
                del v[k]
        return v, True
    if isinstance(v, list):
        return [nv for nv, keep in map(_remove_directives, v) if keep], True
    return v, True


def _set_cleaned(original: Obj, key: str, value: JSON) -> None:
    _discard_nulls(value)
    cleaned, keep = _remove_directives(value)
    if keep:
        original[key] = cleaned
    else:
        original.pop(key, None)


def _contains_directive_marker(item: JSON) -> bool:
    return isinstance(item, dict) and _DIRECTIVE in item


def _merge_key_value_equal(left: JSON, right: JSON, merge_key: str) -> bool:
    if not merge_key:
        return _go_eq(left, right)
    if not isinstance(left, dict):
        raise _err_bad_arg_type(_MAP_T, left)
    if not isinstance(right, dict):
        raise _err_bad_arg_type(_MAP_T, right)
    if merge_key not in left:
        raise _err_no_merge_key(left, merge_key)
    if merge_key not in right:
        raise _err_no_merge_key(right, merge_key)
    return _go_eq(left[merge_key], right[merge_key])


def _extract_to_delete_items(items: list[Any]) -> tuple[list[Any], list[Any]]:
    keep: list[Any] = []
    delete: list[Any] = []
    for v in items:
        if not isinstance(v, dict):
            raise _err_bad_arg_type(_MAP_T, v)
        (delete if _DIRECTIVE in v and v[_DIRECTIVE] == _DELETE else keep).append(v)
    return keep, delete


def _validate_patch_with_set_order_list(patch_list: list[Any], order: list[Any],
                                        merge_key: str) -> None:
    """The patch list (deletions aside) must be a subsequence of ``$setElementOrder``."""
    if not order or not patch_list:
        return
    items = _extract_to_delete_items(patch_list)[0] if merge_key else patch_list
    pi = si = 0
    while pi < len(items) and si < len(order):
        if _contains_directive_marker(items[pi]):
            pi += 1
            continue
        if _merge_key_value_equal(items[pi], order[si], merge_key):
            pi += 1
        si += 1
    if pi < len(items) and si >= len(order):
        raise _SMPError(f"The order in patch list:\n{go_fmt(patch_list)}\n doesn't match "
                        f"{_SET_ELEMENT_ORDER} list:\n{go_fmt(order)}\n")


def _slice_element_kind(*slices: list[Any]) -> str:
    """``sliceElementType``: all elements share one Go type, which is not a slice."""
    prev: str | None = None
    for s in slices:
        for v in s:
            t = go_type(v)
            if prev is None:
                if v is None:
                    raise _SMPError("runtime error: invalid memory address or nil pointer "
                                    "dereference")
                if t == _SLICE_T:
                    raise _err_no_list_of_lists()
                prev = t
            elif prev != t:
                rendered = "[" + " ".join(go_fmt(x) for x in slices) + "]"
                raise _SMPError(f"list element types are not identical: {rendered}")
    if prev is None:
        raise _SMPError("no elements in any of the given slices")
    return "map" if prev == _MAP_T else "scalar"


class _MapFinder:
    """``findMapInSliceBasedOnKeyValue`` over one list, O(1) a lookup: the first map whose
    ``key`` member == the value, or "value for key i is not a map" when the scan would meet
    a non-map first. The list may grow by :meth:`appended` items."""

    __slots__ = ("_at", "_key", "_n", "_non_map")

    def __init__(self, items: list[Any], key: str) -> None:
        self._key = key
        self._at = Positions()
        self._non_map = -1
        self._n = 0
        self._index(items)

    def _index(self, items: list[Any]) -> None:
        self._at = Positions()
        self._non_map = -1
        self._n = 0
        for v in items:
            self.appended(v)

    def appended(self, v: JSON) -> None:
        if not isinstance(v, dict):
            if self._non_map < 0:
                self._non_map = self._n
        elif self._key in v:
            self._at.add(self._n, v[self._key])
        self._n += 1

    def find(self, value: JSON) -> int:
        pos, panics = self._at.locate(value)
        if self._non_map >= 0 and (pos < 0 or self._non_map < pos):
            raise _SMPError(f"value for key {self._non_map} is not a map")
        if panics:
            raise uncomparable(go_type(value))
        return pos

    def merged(self, idx: int, value: JSON, merged: Obj, items: list[Any]) -> None:
        """The map found at ``idx`` for ``value`` was merged into ``merged``: a patch can only
        drop its key (``key: null``); should the key change otherwise, index afresh."""
        if self._key in merged and _go_key(merged[self._key]) == _go_key(value):
            return
        self._at.pop_first(value)
        if self._key in merged:
            self._index(items)


def _merge_slice_with_special_elements(original: list[Any], patch: list[Any], merge_key: str,
                                       view: _View) -> tuple[list[Any], list[Any]]:
    """``original`` and ``patch`` are lists of maps (``sliceElementType`` said so)."""
    without: list[Any] = []
    replace = False
    at = Positions((i, v[merge_key]) for i, v in enumerate(original) if merge_key in v)
    gone = bytearray(len(original))
    tails: list[Any] = []  # the last live item before each deletion (see _View.deleted)
    last = len(original) - 1
    for v in patch:
        if _DIRECTIVE not in v:
            without.append(v)
            continue
        directive = v[_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in v:
                raise _err_no_merge_key(v, merge_key)
            # Upstream deletes the first match until there is none: every match, in order.
            for pos in at.take(v[merge_key]):
                tails.append(original[last])
                gone[pos] = 1
                while last >= 0 and gone[last]:
                    last -= 1
        elif directive == _REPLACE:
            replace = True  # keep going: the other $patch items are still processed
        elif directive == _MERGE:
            raise _SMPError("merging lists cannot yet be specified in the patch")
        else:
            raise _err_bad_patch_type(directive, v)
    live = [v for v, g in zip(original, gone, strict=True) if not g]
    view.deleted(live, tails)
    if replace:
        view.detach()
        return without, []
    return live, without


def _delete_from_slice(current: list[Any], to_delete: list[Any]) -> list[Any]:
    gone = {_go_key(v) for v in to_delete}
    return [v for v in current if _go_key(v) not in gone]


def _partition_primitives(items: list[Any], by: list[Any]) -> tuple[list[Any], list[Any]]:
    present = {_go_key(v) for v in by}
    patch: list[Any] = []
    server_only: list[Any] = []
    for v in items:
        (patch if _go_key(v) in present else server_only).append(v)
    return patch, server_only


def _partition_maps(items: list[Any], by: list[Any],
                    merge_key: str) -> tuple[list[Any], list[Any]]:
    patch: list[Any] = []
    server_only: list[Any] = []
    finder = _MapFinder(by, merge_key)
    for v in items:
        if not isinstance(v, dict):
            raise _err_bad_arg_type(_MAP_T, v)
        if merge_key not in v:
            raise _err_no_merge_key(v, merge_key)
        (patch if finder.find(v[merge_key]) >= 0 else server_only).append(v)
    return patch, server_only


class _Index:
    """``index(l, v, mergeKey, kind)`` over one list ``l``, O(1) a lookup: where the first item
    equal to ``v`` (for maps: whose merge key value equals ``v``'s) is; -1 if none; a GoPanic
    (returned, for the caller to raise when Go would evaluate it) where the scan panics."""

    __slots__ = ("_at", "_key")

    def __init__(self, items: list[Any], merge_key: str, kind: str) -> None:
        self._key = merge_key if kind == "map" else None
        self._at = Positions(enumerate(map(self._val, items)))

    def _val(self, x: JSON) -> JSON:
        if self._key is None:
            return x
        return x.get(self._key) if isinstance(x, dict) else None

    def of(self, v: JSON) -> int | GoPanic:
        value = self._val(v)
        pos, panics = self._at.locate(value)
        return uncomparable(go_type(value)) if panics else pos


def _placed(place: int | GoPanic) -> int:
    if isinstance(place, GoPanic):
        raise place
    return place


def _normalize_slice_order(to_sort: list[Any], order: list[Any], merge_key: str,
                           kind: str) -> list[Any]:
    to_delete: list[Any] = []
    if kind == "map":
        for lst in (to_sort, order):
            for item in lst:
                if not isinstance(item, dict):
                    raise _err_bad_arg_type(_MAP_T, item)
                if merge_key not in item:
                    raise _err_no_merge_key(item, merge_key)
        to_sort, to_delete = _extract_to_delete_items(to_sort)
    index = _Index(order, merge_key, kind)
    # sort.SliceStable with upstream's comparator (placed items by place, else "less").
    return sort_by_position(to_sort, [index.of(v) for v in to_sort]) + to_delete


def _merge_sorted_slice(left: list[Any], right: list[Any], server_order: list[Any],
                        merge_key: str, kind: str) -> list[Any]:
    """Interleave server-only items (left) into patch items (right) by server order."""
    out: list[Any] = []
    index = _Index(server_order, merge_key, kind)
    left_at = [index.of(v) for v in left]
    right_at = [index.of(v) for v in right]
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _placed(left_at[i])
            ri = _placed(right_at[j])
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _normalize_element_order(patch: list[Any], server_only: list[Any],
                             patch_order: list[Any], server_order: list[Any], merge_key: str,
                             kind: str) -> list[Any]:
    patch = _normalize_slice_order(patch, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    return _merge_sorted_slice(server_only, patch, server_order, merge_key, kind)


# ============================================================================================
