"""PATCH semantics: strategic merge patch, JSON merge patch, JSON patch and media types.

Strategic merge patch cases are ported from ``strategicpatch/patch_test.go`` (the current
upstream version): they run against upstream's ``MergeItem`` test type, rebuilt below as a
:class:`PatchSchema`. Each raw upstream case yields up to two applications, the two-way one
(``original`` + ``twoWay`` → ``modified``) and the three-way one (``current`` + ``threeWay``
→ ``result``); ids say which. After them come the exact bodies kubectl sends (docs/KUBECTL.md
§6), the Kubernetes kinds' merge keys, and the error mapping of ``handlers/patch.go``.
JSON merge patch and JSON patch are checked against the RFC appendices.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from svcnet.api.errors import StatusError
from svcnet.apiserver.patch import (
    PATCH_META,
    ListMeta,
    MapMeta,
    PatchSchema,
    PatchType,
    apply_patch,
    apply_patch_type,
    go_json,
    json_merge_patch,
    json_patch,
    merge_patch_value,
    patch_schema,
    patch_type_of,
    strategic_merge_patch,
    strategic_merge_patch_with_schema,
    validate_patch_options,
)

Obj = dict[str, Any]


def y(text: str) -> Any:
    return yaml.safe_load(text)


# upstream's MergeItem, with its struct tags as patch metadata
_MERGING = ListMeta("map", ("name",), (), "merge", "name")
MERGE_ITEM = PatchSchema("MergeItem", {
    "mergingList": _MERGING,
    "mergingList[].mergingList": _MERGING,
    "mergingList[].mergeItemPtr": _MERGING,
    "mergingList[].mergingIntList": ListMeta("set", patch_strategy="merge"),
    "mergingIntList": ListMeta("set", patch_strategy="merge"),
    "mergeItemPtr": _MERGING,
    "mergeItemPtr[].mergeItemPtr": _MERGING,
    "mergeItemPtr[].mergingIntList": ListMeta("set", patch_strategy="merge"),
    "replacingItem": MapMeta(patch_strategy="replace"),
    "retainKeysMap": MapMeta(retain_keys=True),
    "retainKeysMap.mergingList": _MERGING,
    "retainKeysMap.mergingIntList": ListMeta("set", patch_strategy="merge"),
    "retainKeysMergingList": ListMeta("map", ("name",), (), "merge", "name", True),
})


def smp(original: Any, patch: Any) -> Obj:
    return strategic_merge_patch_with_schema(original, patch, MERGE_ITEM)


# ============================================================================================
# Upstream strategic merge patch cases: (id, original, patch, expected)
# ============================================================================================

UPSTREAM: list[tuple[str, str, str, str]] = [
    # -- customStrategicMergePatchTestCaseData (two-way) ---------------------------------
    ("unique scalars when merging lists",
     "mergingIntList: [1, 2]", "mergingIntList: [2, 3]", "mergingIntList: [1, 2, 3]"),
    ("delete map from nested map",
     "simpleMap: {key1: 1, key2: 1}", "simpleMap: {$patch: delete}", "simpleMap: {}"),
    ("delete all items from merging list",
     "mergingList: [{name: 1}, {name: 2}]", "mergingList: [{$patch: replace}]",
     "mergingList: []"),
    ("merge empty merging lists", "mergingList: []", "mergingList: []", "mergingList: []"),
    ("delete all keys from map", "{name: 1, value: 1}", "{$patch: replace}", "{}"),
    ("add key and delete all keys from map",
     "{name: 1, value: 1}", "{other: a, $patch: replace}", "{other: a}"),
    ("delete all duplicate entries in a merging list", """
mergingList:
  - name: 1
  - name: 1
  - name: 2
    value: a
  - name: 3
  - name: 3
""", """
mergingList:
  - {name: 1, $patch: delete}
  - {name: 3, $patch: delete}
""", "mergingList: [{name: 2, value: a}]"),
    ("retainKeys map can add a field when no retainKeys directive present",
     "retainKeysMap: {name: foo}", "retainKeysMap: {value: bar}",
     "retainKeysMap: {name: foo, value: bar}"),
    ("retainKeys map can change a field when no retainKeys directive present",
     "retainKeysMap: {name: foo, value: a}", "retainKeysMap: {value: b}",
     "retainKeysMap: {name: foo, value: b}"),
    ("retainKeys map can delete a field when no retainKeys directive present",
     "retainKeysMap: {name: foo, value: a}", "retainKeysMap: {value: null}",
     "retainKeysMap: {name: foo}"),
    ("retainKeys map merge an empty map",
     "retainKeysMap: {name: foo, value: a}", "retainKeysMap: {}",
     "retainKeysMap: {name: foo, value: a}"),
    ("retainKeys list can add a field when no retainKeys directive present",
     "retainKeysMergingList: [{name: bar}, {name: foo}]",
     "retainKeysMergingList: [{name: foo, value: a}]",
     "retainKeysMergingList: [{name: bar}, {name: foo, value: a}]"),
    ("retainKeys list can delete a field when no retainKeys directive present",
     "retainKeysMergingList: [{name: bar}, {name: foo, value: a}]",
     "retainKeysMergingList: [{name: foo, value: null}]",
     "retainKeysMergingList: [{name: bar}, {name: foo}]"),
    ("preserve the order from the patch in a merging list",
     "mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]",
     "mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, other: x}]",
     "mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, value: b, other: x}]"),
    ("preserve the order from the patch in a merging list 2",
     "mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]",
     "mergingList: [{name: 3, value: c}, {name: 1, value: a}]",
     "mergingList: [{name: 2, value: b}, {name: 3, value: c}, {name: 1, value: a}]"),
    ("preserve the order from the patch in a merging int list",
     "mergingIntList: [1, 2, 3]", "mergingIntList: [3, 1, 2]", "mergingIntList: [3, 1, 2]"),
    ("preserve the order from the patch in a merging int list 2",
     "mergingIntList: [1, 2, 3]", "mergingIntList: [3, 1]", "mergingIntList: [2, 3, 1]"),
    # -- customStrategicMergePatchRawTestCases -------------------------------------------
    ("$setElementOrder contains item that is not present in the list to be merged",
     "mergingList: [{name: 1}, {name: 3}]", """
$setElementOrder/mergingList: [{name: 3}, {name: 2}, {name: 1}]
mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]
""", "mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]"),
    ("$setElementOrder contains item that is not present in the int list to be merged",
     "mergingIntList: [1, 3]", "$setElementOrder/mergingIntList: [3, 2, 1]",
     "mergingIntList: [3, 1]"),
    ("$deleteFromPrimitiveList of nonexistent item in primitive list should not add it",
     "mergingIntList: [1, 2]", "$deleteFromPrimitiveList/mergingIntList: [3]",
     "mergingIntList: [1, 2]"),
    ("$deleteFromPrimitiveList on empty primitive list should not add the item",
     "mergingIntList:", "$deleteFromPrimitiveList/mergingIntList: [3]", "mergingIntList:"),
    ("$deleteFromPrimitiveList on nonexistent primitive list should not add the list",
     "foo: [bar]", "$deleteFromPrimitiveList/mergingIntList: [3]", "foo: [bar]"),
    ("$deleteFromPrimitiveList should delete item from a list with merge patch strategy",
     "mergingIntList: [1, 2, 3]", "$deleteFromPrimitiveList/mergingIntList: [2]",
     "mergingIntList: [1, 3]"),
    ("$deleteFromPrimitiveList should delete item from a list without merge patch strategy",
     "nonMergingIntList: [1, 2, 3]", "$deleteFromPrimitiveList/nonMergingIntList: [2]",
     "nonMergingIntList: [1, 3]"),
    # -- createStrategicMergePatchTestCaseData (two-way and three-way) -------------------
    ("nil original (two-way)", "{}", "{name: 1, value: 1}", "{name: 1, value: 1}"),
    ("nil original (three-way)", "{name: 1, other: a}", "{value: 1}",
     "{name: 1, value: 1, other: a}"),
    ("nil patch", "{name: 1}", "{}", "{name: 1}"),
    ("add field to map with conflict (three-way)", "{name: a, other: a}",
     "{name: 1, value: 1}", "{name: 1, value: 1, other: a}"),
    ("add field and delete field from map (three-way)", "{name: 1, other: a}",
     "{name: null, value: 1}", "{value: 1, other: a}"),
    ("delete field from nested map (three-way)", "simpleMap: {key1: 1, key2: 1, other: a}",
     "simpleMap: {key2: null}", "simpleMap: {key1: 1, other: a}"),
    ("delete field from nested map with conflict (three-way)",
     "simpleMap: {key1: a, key2: 1, other: a}", "simpleMap: {key1: 1, key2: null}",
     "simpleMap: {key1: 1, other: a}"),
    ("delete all fields from map (two-way)", "{name: 1, value: 1}",
     "{name: null, value: null}", "{}"),
    ("add field and delete all fields from map with conflict (three-way)",
     "{name: 1, value: 1, other: b}", "{name: null, value: null, other: a}", "{other: a}"),
    ("replace list of scalars (three-way)", "nonMergingIntList: [1, 2]",
     "nonMergingIntList: [2, 3]", "nonMergingIntList: [2, 3]"),
    ("delete all maps from merging list with conflict (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, other: b}]",
     "mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]", "mergingList: []"),
    ("delete all maps from empty merging list (three-way)", "mergingList: []",
     "mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]", "mergingList: []"),
    ("defined null values should propagate overwrite current fields (two-way)",
     "{name: 2}", "{name: 1, value: 1, other: null}", "{name: 1, value: 1}"),
    ("defined null values should propagate removing original fields (three-way)",
     "{name: original-name, value: original-value, other: current-other}",
     "{name: modified-name, value: null}", "{name: modified-name, other: current-other}"),
    ("retainKeys map with no change should not be present (three-way)",
     "{name: a, other: c, retainKeysMap: {name: foo}}", "{value: b}",
     "{name: a, value: b, other: c, retainKeysMap: {name: foo}}"),
    # -- strategicMergePatchRawTestCases -------------------------------------------------
    ("delete items in lists of scalars (two-way)", "mergingIntList: [1, 2, 3]", """
$setElementOrder/mergingIntList: [1, 2]
$deleteFromPrimitiveList/mergingIntList: [3]
""", "mergingIntList: [1, 2]"),
    ("delete items in lists of scalars (three-way)", "mergingIntList: [1, 2, 3, 4]", """
$setElementOrder/mergingIntList: [1, 2]
$deleteFromPrimitiveList/mergingIntList: [3]
""", "mergingIntList: [1, 2, 4]"),
    ("delete all duplicate items in lists of scalars (three-way)",
     "mergingIntList: [1, 2, 3, 3, 4]", """
$setElementOrder/mergingIntList: [1, 2]
$deleteFromPrimitiveList/mergingIntList: [3]
""", "mergingIntList: [1, 2, 4]"),
    ("add and delete items in lists of scalars (two-way)", "mergingIntList: [1, 2, 3]", """
$setElementOrder/mergingIntList: [1, 2, 4]
$deleteFromPrimitiveList/mergingIntList: [3]
mergingIntList: [4]
""", "mergingIntList: [1, 2, 4]"),
    ("merge lists of maps (two-way)", "mergingList: [{name: 1}, {name: 2, value: 2}]", """
$setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}]
mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]
""", "mergingList: [{name: 4, value: 4}, {name: 1}, {name: 2, value: 2}, {name: 3, value: 3}]"),
    ("merge lists of maps (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]", """
$setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}]
mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]
""", """
mergingList:
  - {name: 4, value: 4}
  - {name: 1, other: a}
  - {name: 2, value: 2, other: b}
  - {name: 3, value: 3}
"""),
    ("merge lists of maps with conflict (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 3, other: b}]", """
$setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}]
mergingList: [{name: 2, value: 2}, {name: 3, value: 3}]
""", "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]"),
    ("add field to map in merging list with conflict (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 3, value: 2, other: b}]", """
$setElementOrder/mergingList: [{name: 1}, {name: 2}]
mergingList: [{name: 1, value: 1}, {name: 2, value: 2}]
""", "mergingList: [{name: 1, value: 1, other: a}, {name: 2, value: 2}, {name: 3, value: 2, other: b}]"),
    ("de-duplicate field in merging list (two-way)", "mergingList: [{name: 1}, {name: 1}]", """
$setElementOrder/mergingList: [{name: 1}]
mergingList: [{$patch: delete, name: 1}]
""", "mergingList: []"),
    ("delete duplicate field in merging list", "mergingList: [{name: 1}, {name: 1}]",
     "mergingList: {}", "mergingList: {}"),
    ("delete map from merging list (three-way)", "mergingList: [{name: 1}, {name: 2, other: b}]",
     """
$setElementOrder/mergingList: [{name: 2}]
mergingList: [{name: 1, $patch: delete}]
""", "mergingList: [{name: 2, other: b}]"),
    ("delete missing map from merging list with conflict (three-way)",
     "mergingList: [{name: 3, other: a}]", """
$setElementOrder/mergingList: [{name: 2}]
mergingList: [{name: 2}, {name: 1, $patch: delete}]
""", "mergingList: [{name: 2}, {name: 3, other: a}]"),
    ("add map and delete map from merging list (three-way)",
     "mergingList: [{name: 1}, {name: 2, other: b}, {name: 4, other: c}]", """
$setElementOrder/mergingList: [{name: 2}, {name: 3}]
mergingList: [{name: 3}, {name: 1, $patch: delete}]
""", "mergingList: [{name: 2, other: b}, {name: 4, other: c}, {name: 3}]"),
    ("add map and delete map from merging list with conflict (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 4, other: c}]", """
$setElementOrder/mergingList: [{name: 2}, {name: 3}]
mergingList: [{name: 2}, {name: 3}, {name: 1, $patch: delete}]
""", "mergingList: [{name: 4, other: c}, {name: 2}, {name: 3}]"),
    ("delete missing field from map in merging list with conflict (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, other: b}]", """
$setElementOrder/mergingList: [{name: 1}, {name: 2}]
mergingList: [{name: 1, value: null}, {name: 2, value: 2}]
""", "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]"),
    ("replace non merging list nested in merging list with value conflict (three-way)", """
mergingList:
  - {name: 1, other: a, nonMergingList: [{name: 1, value: c}]}
  - {name: 2, other: b}
""", """
$setElementOrder/mergingList: [{name: 1}, {name: 2}]
mergingList: [{name: 1, nonMergingList: [{name: 1, value: 1}]}]
""", """
mergingList:
  - {name: 1, other: a, nonMergingList: [{name: 1, value: 1}]}
  - {name: 2, other: b}
"""),
    ("add field to map in merging list nested in merging list with value conflict "
     "(three-way)", """
mergingList:
  - name: 1
    other: a
    mergingList: [{name: 1, value: a, other: c}, {name: 2, value: b, other: d}]
  - {name: 2, other: b}
""", """
$setElementOrder/mergingList: [{name: 1}, {name: 2}]
mergingList:
  - $setElementOrder/mergingList: [{name: 1}, {name: 2}]
    name: 1
    mergingList: [{name: 1, value: 1}, {name: 2, value: 2}]
""", """
mergingList:
  - name: 1
    other: a
    mergingList: [{name: 1, value: 1, other: c}, {name: 2, value: 2, other: d}]
  - {name: 2, other: b}
"""),
    ("add field to map in merging list nested in merging list with deletion conflict "
     "(three-way, reordered)", """
mergingList:
  - {name: 1, other: a, mergingList: [{name: 2, value: 2, other: d}]}
  - {name: 2, other: b}
""", """
$setElementOrder/mergingList: [{name: 1}, {name: 2}]
mergingList:
  - $setElementOrder/mergingList: [{name: 2}, {name: 1}]
    name: 1
    mergingList: [{name: 1, value: 1}]
""", """
mergingList:
  - {name: 1, other: a, mergingList: [{name: 2, value: 2, other: d}, {name: 1, value: 1}]}
  - {name: 2, other: b}
"""),
    ("add map to merging list by pointer (three-way)",
     "mergeItemPtr: [{name: 1, other: a}, {name: 3}]", """
$setElementOrder/mergeItemPtr: [{name: 1}, {name: 2}]
mergeItemPtr: [{name: 2}]
""", "mergeItemPtr: [{name: 1, other: a}, {name: 2}, {name: 3}]"),
    ("merge lists of scalars (three-way)", "mergingIntList: [1, 2, 4]", """
$setElementOrder/mergingIntList: [1, 2, 3]
mergingIntList: [3]
""", "mergingIntList: [1, 2, 3, 4]"),
    ("add an item in a list of primitives and preserve order (three-way)",
     "mergingIntList: [1, 4, 2]", """
$setElementOrder/mergingIntList: [3, 1, 2]
mergingIntList: [3]
""", "mergingIntList: [3, 1, 4, 2]"),
    ("delete an item in a list of primitives and preserve order (three-way)",
     "mergingIntList: [1, 2, 3]", """
$setElementOrder/mergingIntList: [2, 1]
$deleteFromPrimitiveList/mergingIntList: [3]
""", "mergingIntList: [2, 1]"),
    ("add an item in a list and preserve order (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]", """
$setElementOrder/mergingList: [{name: 3}, {name: 1}, {name: 2}]
mergingList: [{name: 3, value: 3}]
""", "mergingList: [{name: 3, value: 3}, {name: 1, other: a}, {name: 2, value: 2, other: b}]"),
    ("add multiple items in a list and preserve order (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]", """
$setElementOrder/mergingList: [{name: 1}, {name: 4}, {name: 2}, {name: 3}]
mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]
""", """
mergingList:
  - {name: 1, other: a}
  - {name: 4, value: 4}
  - {name: 2, value: 2, other: b}
  - {name: 3, value: 3}
"""),
    ("delete an item in a list and preserve order (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
     """
$setElementOrder/mergingList: [{name: 2}, {name: 1}]
mergingList: [{name: 3, $patch: delete}]
""", "mergingList: [{name: 2, value: 2, other: b}, {name: 1, other: a}]"),
    ("change an item in a list and preserve order (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
     """
$setElementOrder/mergingList: [{name: 2}, {name: 3}, {name: 1}]
mergingList: [{name: 3, value: x}]
""", "mergingList: [{name: 2, value: 2, other: b}, {name: 3, value: x}, {name: 1, other: a}]"),
    ("add and delete an item in a list and preserve order (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
     """
$setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 1}]
mergingList: [{name: 4, value: 4}, {name: 3, $patch: delete}]
""", "mergingList: [{name: 4, value: 4}, {name: 2, value: 2, other: b}, {name: 1, other: a}]"),
    ("set elements order in a list with server-only items (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 3, value: 3}, {name: 4, value: 4}, "
     "{name: 2, value: 2}, {name: 9}]",
     "$setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 3}, {name: 1}]", """
mergingList:
  - {name: 4, value: 4}
  - {name: 2, value: 2}
  - {name: 3, value: 3}
  - {name: 1, other: a}
  - {name: 9}
"""),
    ("set elements order in a list with server-only items 2 (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 2}, {name: 9}, {name: 3, value: 3}, "
     "{name: 4, value: 4}]",
     "$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]", """
mergingList:
  - {name: 2, value: 2}
  - {name: 1, other: a}
  - {name: 9}
  - {name: 4, value: 4}
  - {name: 3, value: 3}
"""),
    ("set elements order in a list with server-only items 3 (three-way)",
     "mergingList: [{name: 1, other: a}, {name: 2, value: 2}, {name: 7}, {name: 9}, {name: 8}, "
     "{name: 3, value: 3}, {name: 4, value: 4}]",
     "$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]", """
mergingList:
  - {name: 2, value: 2}
  - {name: 1, other: a}
  - {name: 7}
  - {name: 9}
  - {name: 8}
  - {name: 4, value: 4}
  - {name: 3, value: 3}
"""),
    ("add and delete an item in a int list and preserve order (three-way)",
     "mergingIntList: [1, 2, 3]", """
$setElementOrder/mergingIntList: [4, 2, 1]
mergingIntList: [4]
$deleteFromPrimitiveList/mergingIntList: [3]
""", "mergingIntList: [4, 2, 1]"),
    ("set elements order in a int list with server-only items 3 (three-way)",
     "mergingIntList: [1, 2, 7, 9, 8, 3, 4]", "$setElementOrder/mergingIntList: [2, 1, 4, 3]",
     "mergingIntList: [2, 1, 7, 9, 8, 4, 3]"),
    ("behavior of set element order for a merging list with duplicate (three-way)", """
mergingList:
  - name: 1
  - {name: 2, value: dup1}
  - name: 3
  - {name: 2, value: dup2}
  - name: 4
""", "$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}, {name: 2}]",
     """
mergingList:
  - {name: 2, value: dup1}
  - {name: 2, value: dup2}
  - name: 1
  - name: 4
  - name: 3
"""),
    ("behavior of set element order for a merging int list with duplicate (three-way)",
     "mergingIntList: [1, 2, 3, 2, 4]", "$setElementOrder/mergingIntList: [2, 1, 4, 3, 2]",
     "mergingIntList: [2, 2, 1, 4, 3]"),
    ("retainKeys map should clear defaulted field (three-way)", "retainKeysMap: {value: foo}",
     "retainKeysMap: {$retainKeys: [other], other: bar}", "retainKeysMap: {other: bar}"),
    ("retainKeys map should clear defaulted field with conflict (discriminated union) "
     "(three-way)", "retainKeysMap: {name: type1, value: foo}",
     "retainKeysMap: {$retainKeys: [name, other], name: type2, other: bar}",
     "retainKeysMap: {name: type2, other: bar}"),
    ("retainKeys map adds a field and clear a field (three-way)",
     "retainKeysMap: {name: foo, other: a}",
     "retainKeysMap: {$retainKeys: [name, value], value: bar}",
     "retainKeysMap: {name: foo, value: bar}"),
    ("retainKeys map deletes a field and clears a field (three-way)",
     "retainKeysMap: {name: foo, value: bar, other: a}",
     "retainKeysMap: {$retainKeys: [name], value: null}", "retainKeysMap: {name: foo}"),
    ("retainKeys map clears a field (three-way)",
     "retainKeysMap: {name: foo, value: bar, other: a}",
     "retainKeysMap: {$retainKeys: [name, value]}", "retainKeysMap: {name: foo, value: bar}"),
    ("retainKeys map adds a field in a nested map (three-way)",
     "retainKeysMap: {name: foo, value: bar, simpleMap: {key1: a, key3: c}}",
     "retainKeysMap: {$retainKeys: [name, simpleMap, value], simpleMap: {key2: b}}",
     "retainKeysMap: {name: foo, value: bar, simpleMap: {key1: a, key2: b, key3: c}}"),
    ("retainKeys map deletes nested non-merging list with conflict (three-way)",
     "retainKeysMap: {name: foo, nonMergingList: [{name: a}, {name: b}, {name: c}]}",
     "retainKeysMap: {$retainKeys: [name, value], value: bar, nonMergingList: null}",
     "retainKeysMap: {name: foo, value: bar}"),
    ("retainKeys map nested merging int list with no change (three-way)",
     "retainKeysMap: {name: foo, mergingIntList: [1, 2, 3]}", """
retainKeysMap:
  $retainKeys: [mergingIntList, name, value]
  $setElementOrder/mergingIntList: [1, 2]
  value: bar
""", "retainKeysMap: {name: foo, value: bar, mergingIntList: [1, 2, 3]}"),
    ("retainKeys map adds an item in nested merging int list (three-way)",
     "retainKeysMap: {name: foo, mergingIntList: [1, 2, 3]}", """
retainKeysMap:
  $setElementOrder/mergingIntList: [1, 2, 4]
  $retainKeys: [mergingIntList, name]
  mergingIntList: [4]
""", "retainKeysMap: {name: foo, mergingIntList: [1, 2, 4, 3]}"),
    ("retainKeys map adds an item and deletes an item in nested merging int list "
     "(three-way)", "retainKeysMap: {name: foo, mergingIntList: [1, 2, 3, 4]}", """
retainKeysMap:
  $retainKeys: [mergingIntList, name]
  mergingIntList: [5]
  $deleteFromPrimitiveList/mergingIntList: [2]
  $setElementOrder/mergingIntList: [1, 3, 5]
""", "retainKeysMap: {name: foo, mergingIntList: [1, 3, 5, 4]}"),
    ("retainKeys map adds an item in nested merging list (three-way)",
     "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: b}, {name: x}]}", """
retainKeysMap:
  $retainKeys: [mergingList, name]
  $setElementOrder/mergingList: [{name: a}, {name: b}, {name: c}]
  mergingList: [{name: c}]
""", "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: b}, {name: c}, {name: x}]}"),
    ("retainKeys map deletes an item in nested merging list (three-way)",
     "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: b}, {name: x}]}", """
retainKeysMap:
  $retainKeys: [mergingList, name]
  $setElementOrder/mergingList: [{name: a}]
  mergingList: [{name: b, $patch: delete}]
""", "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: x}]}"),
    ("retainKeys list of maps clears a field (three-way)",
     "retainKeysMergingList: [{name: bar}, {name: foo, value: a, other: x}]", """
$setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]
retainKeysMergingList: [{$retainKeys: [name, value], name: foo}]
""", "retainKeysMergingList: [{name: bar}, {name: foo, value: a}]"),
    ("retainKeys list of maps changes a field and clear a field with conflict (three-way)",
     "retainKeysMergingList: [{name: bar}, {name: foo, value: modified, other: x}]", """
$setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]
retainKeysMergingList: [{$retainKeys: [name, value], name: foo, value: new}]
""", "retainKeysMergingList: [{name: bar}, {name: foo, value: new}]"),
    ("retainKeys list of maps deletes a field and clear a field (three-way)",
     "retainKeysMergingList: [{name: bar}, {name: foo, value: a, other: x}]", """
$setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]
retainKeysMergingList: [{$retainKeys: [name], name: foo, value: null}]
""", "retainKeysMergingList: [{name: bar}, {name: foo}]"),
    ("delete and reorder in one list, reorder in another (three-way)", """
mergingList: [{name: a, value: a}, {name: b, value: b}]
mergeItemPtr: [{name: c, value: c}, {name: d, value: d}]
""", """
$setElementOrder/mergingList: [{name: b}]
$setElementOrder/mergeItemPtr: [{name: d}, {name: c}]
mergingList: [{$patch: delete, name: a}]
""", """
mergingList: [{name: b, value: b}]
mergeItemPtr: [{name: d, value: d}, {name: c, value: c}]
"""),
    # -- replaceRawExtensionPatchTestCases ----------------------------------------------
    ("replace RawExtension field and merge list (three-way)", """
name: my-object
value: some-value
other: current-other
mergingList: [{name: 1}, {name: 3}]
replacingItem: {Some: Generic, Yaml: Inside, The: RawExtension, Field: Period}
""", """
$setElementOrder/mergingList: [{name: 1}, {name: 2}]
mergingList: [{name: 2}]
replacingItem: {Newly: Modified, Yaml: Inside, The: RawExtension}
""", """
name: my-object
value: some-value
other: current-other
mergingList: [{name: 1}, {name: 2}, {name: 3}]
replacingItem: {Newly: Modified, Yaml: Inside, The: RawExtension}
"""),
    # -- TestUnknownField -----------------------------------------------------------------
    ("unknown field: no diff even if modified null",
     '{"array":[1,2,3],"complex":{"nested":true},"name":"foo","scalar":true}',
     '{"complex_nullable":{"key":null}}',
     '{"array":[1,2,3],"complex":{"nested":true},"complex_nullable":{},"name":"foo",'
     '"scalar":true}'),
    ("unknown field: discard nulls in nested and adds not nulls", '{"name":"foo"}',
     '{"complex_nullable":{"key":{"keynotnull":"value","keynull":null}}}',
     '{"complex_nullable":{"key":{"keynotnull":"value"}},"name":"foo"}'),
    ("unknown field: discard if modified all nulls", "{}", '{"complex":{"nested":null}}',
     '{"complex":{}}'),
    ("unknown field: null values in original are preserved", '{"thing":null}',
     '{"nested":{"value":5}}', '{"nested":{"value":5},"thing":null}'),
    ("unknown field: add empty slices", '{"name":"foo"}', '{"complex_nullable":[]}',
     '{"complex_nullable":[],"name":"foo"}'),
    ("unknown field: filter nulls from nested slices", "{}",
     '{"complex_nullable":[{"inner_one":{"key_one":"foo","key_two":null}}]}',
     '{"complex_nullable":[{"inner_one":{"key_one":"foo"}}]}'),
    ("unknown field: filter if slice is all empty", "{}",
     '{"complex_nullable":[{"inner_one":{"key_one":null,"key_two":null}}]}',
     '{"complex_nullable":[{"inner_one":{}}]}'),
    ("unknown field: not filter nulls from non-associative slice", "{}",
     '{"complex_nullable":["key1",null,"key2"]}', '{"complex_nullable":["key1",null,"key2"]}'),
    ("unknown field: removed only (three-way)",
     '{"name":"foo","scalar":true,"complex":{"nested":true},"array":[1,2,3]}',
     '{"complex":null,"scalar":null}', '{"array":[1,2,3],"name":"foo"}'),
]


@pytest.mark.parametrize(("original", "patch", "expected"),
                         [pytest.param(o, p, e, id=i) for i, o, p, e in UPSTREAM])
def test_upstream_strategic_merge_patch(original: str, patch: str, expected: str) -> None:
    orig, pat = y(original), y(patch)
    before = (copy.deepcopy(orig), copy.deepcopy(pat))
    assert smp(orig, pat) == y(expected)
    assert (orig, pat) == before  # inputs untouched


# ============================================================================================
# Strategic merge patch errors (interpretStrategicMergePatchError and the 500 fallback)
# ============================================================================================

SMP_ERRORS: list[tuple[str, str, str, int, str, str]] = [
    # (id, original, patch, code, reason, message (substring for 500s))
    ("should check if order in $setElementOrder and patch list match",
     "mergingList: [{name: 1}, {name: 3}, {name: 2}]", """
$setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}]
mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]
""", 500, "", "doesn't match $setElementOrder list"),
    ("should check if order in $setElementOrder and int patch list match",
     "mergingIntList: [1, 3, 2]", """
$setElementOrder/mergingIntList: [1, 2, 3]
mergingIntList: [3, 1]
""", 500, "", "doesn't match"),
    ("missing merge key should error out", "mergingList: [{name: 1, value: a}]",
     "mergingList: [{value: b}]", 500, "",
     "map: map[value:b] does not contain declared merge key: name"),
    ("delete directive without merge key", "mergingList: [{name: 1}]",
     "mergingList: [{$patch: delete}]", 500, "",
     "map: map[$patch:delete] does not contain declared merge key: name"),
    ("unknown $patch value on a map", "simpleMap: {a: b}", "simpleMap: {$patch: merge}", 500,
     "", "unknown patch type: merge in map: map[$patch:merge]"),
    ("$patch merge in a list", "mergingList: [{name: 1}]",
     "mergingList: [{name: 1, $patch: merge}]", 500, "",
     "merging lists cannot yet be specified in the patch"),
    ("unknown $patch value in a list", "mergingList: [{name: 1}]",
     "mergingList: [{name: 1, $patch: frobnicate}]", 500, "",
     "unknown patch type: frobnicate in map: map[$patch:frobnicate name:1]"),
    ("mixed element types in a merging list", "mergingList: [{name: 1}]",
     "mergingList: [2]", 500, "", "list element types are not identical: [[map[name:1]] [2]]"),
    ("lists of lists", "mergingIntList: [[1]]", "mergingIntList: [[2]]", 422, "Invalid",
     "the server rejected our request due to an error in our request"),
    ("$retainKeys not a list", "retainKeysMap: {name: a}",
     "retainKeysMap: {$retainKeys: name, name: b}", 400, "BadRequest",
     "invalid patch format of retainKeys"),
    ("patch key missing from $retainKeys", "retainKeysMap: {name: a}",
     "retainKeysMap: {$retainKeys: [name], value: b}", 400, "BadRequest",
     "invalid patch format of retainKeys"),
    ("$deleteFromPrimitiveList without a list name", "mergingIntList: [1]",
     "$deleteFromPrimitiveListmergingIntList: [1]", 400, "BadRequest",
     "invalid patch format of primitive list"),
    ("$setElementOrder without a list name", "mergingIntList: [1]",
     "$setElementOrdermergingIntList: [1]", 400, "BadRequest",
     "invalid patch format of setElementOrder list"),
    ("$setElementOrder that is not a list", "mergingIntList: [1]",
     "$setElementOrder/mergingIntList: 1", 500, "",
     "expected a []interface {}, but received a int64"),
    ("$setElementOrder item without the merge key", "mergingList: [{name: 1}]",
     "$setElementOrder/mergingList: [{value: 1}]", 500, "",
     "does not contain declared merge key: name"),
    ("patch is not an object", "{}", "[1, 2]", 400, "BadRequest",
     "json: cannot unmarshal array into Go value of type map[string]interface {}"),
]


@pytest.mark.parametrize(("original", "patch", "code", "reason", "message"),
                         [pytest.param(*c[1:], id=c[0]) for c in SMP_ERRORS])
def test_strategic_merge_patch_errors(original: str, patch: str, code: int, reason: str,
                                      message: str) -> None:
    with pytest.raises(StatusError) as ei:
        smp(y(original), y(patch))
    assert (ei.value.code, ei.value.reason) == (code, reason)
    if code == 500:
        assert message in ei.value.message
    else:
        assert ei.value.message == message


def test_strategic_merge_patch_null_is_a_no_op() -> None:
    assert smp({"a": 1}, None) == {"a": 1}


# ============================================================================================
# What kubectl sends (docs/KUBECTL.md §6) against a real Service
# ============================================================================================

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

SVC_V1: Obj = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "backend", "namespace": "default", "resourceVersion": "7",
                 "annotations": {LAST_APPLIED: '{"old":true}\n'}},
    "spec": {"selector": {"app": "backend"}, "type": "ClusterIP", "clusterIP": "10.96.0.11",
             "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]},
    "status": {"loadBalancer": {}},
}


def test_kubectl_client_side_apply_configure_then_revert() -> None:
    configure = json.loads("""
{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{new}\\n"},
             "labels":{"tier":"web"}},
 "spec":{"$setElementOrder/ports":[{"port":80},{"port":9100}],
         "ports":[{"port":80,"targetPort":9090},{"name":"metrics","port":9100}],
         "selector":{"app":"backend2"}}}""")
    after = strategic_merge_patch(SVC_V1, configure, "v1", "Service")
    assert after["metadata"]["labels"] == {"tier": "web"}
    assert after["metadata"]["annotations"] == {LAST_APPLIED: "{new}\n"}
    assert after["spec"]["ports"] == [
        {"protocol": "TCP", "port": 80, "targetPort": 9090},
        {"name": "metrics", "port": 9100},
    ]
    assert after["spec"]["selector"] == {"app": "backend2"}
    assert after["spec"]["clusterIP"] == "10.96.0.11"  # untouched fields survive

    revert = json.loads("""
{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{old}\\n"},
             "labels":null},
 "spec":{"$setElementOrder/ports":[{"port":80}],
         "ports":[{"port":80,"targetPort":8080},{"$patch":"delete","port":9100}],
         "selector":{"app":"backend"}}}""")
    back = strategic_merge_patch(after, revert, "v1", "Service")
    assert "labels" not in back["metadata"]
    assert back["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert back["spec"]["selector"] == {"app": "backend"}


@pytest.mark.parametrize(("patch", "metadata"), [
    pytest.param({"metadata": {"labels": {"x": "y"}}},
                 {"name": "backend", "labels": {"app": "a", "x": "y"}}, id="label x=y"),
    # RFC 7386 deletes the member; the (then empty) labels map stays.
    pytest.param({"metadata": {"labels": {"app": None}}},
                 {"name": "backend", "labels": {}}, id="unlabel app-"),
    pytest.param({"metadata": {"annotations": {"note": "hello"}}},
                 {"name": "backend", "labels": {"app": "a"}, "annotations": {"note": "hello"}},
                 id="annotate note=hello"),
])
def test_kubectl_label_and_annotate_merge_patches(patch: Obj, metadata: Obj) -> None:
    live = {"metadata": {"name": "backend", "labels": {"app": "a"}}, "spec": {}}
    out = json_merge_patch(live, patch)
    assert out == {"metadata": metadata, "spec": {}}


def test_kubectl_patch_default_strategic_selector() -> None:
    out = strategic_merge_patch(SVC_V1, {"spec": {"selector": {"tier": "db"}}}, "v1", "Service")
    # SMP merges maps, even the SSA-atomic selector.
    assert out["spec"]["selector"] == {"app": "backend", "tier": "db"}


# ============================================================================================
# The Kubernetes kinds' patch metadata
# ============================================================================================

POD: Obj = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "finalizers": ["a", "b"],
                 "ownerReferences": [{"uid": "u1", "name": "rs1", "kind": "ReplicaSet",
                                      "apiVersion": "apps/v1"}]},
    "spec": {
        "containers": [{"name": "app", "image": "app:1",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        "args": ["--x"]}],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "k1", "operator": "Exists"}],
        "imagePullSecrets": [{"name": "reg1"}],
    },
    "status": {"conditions": [{"type": "Ready", "status": "False"}],
               "podIPs": [{"ip": "10.0.0.1"}],
               "containerStatuses": [{"name": "app", "ready": False}]},
}

KIND_CASES: list[tuple[str, str, str, Obj, Obj, Obj]] = [
    # (id, apiVersion, kind, original, patch, expected subset {dotted path: value})
    ("Pod containers merge by name", "v1", "Pod", POD,
     {"spec": {"containers": [{"name": "app", "image": "app:2"},
                              {"name": "side", "image": "side:1"}]}},
     {"spec.containers": [
         {**POD["spec"]["containers"][0], "image": "app:2"},
         {"name": "side", "image": "side:1"}]}),
    ("Pod env merges by name", "v1", "Pod", POD,
     {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "3"},
                                                       {"name": "A", "$patch": "delete"}]}]}},
     {"spec.containers.0.env": [{"name": "B", "value": "3"}]}),
    ("Pod container ports merge by containerPort", "v1", "Pod", POD,
     {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 81}]}]}},
     # Without $setElementOrder, items the live list lacks go first (upstream's order).
     {"spec.containers.0.ports": [{"containerPort": 81},
                                  {"containerPort": 80, "protocol": "TCP"}]}),
    ("Pod volumeMounts merge by mountPath", "v1", "Pod", POD,
     {"spec": {"containers": [{"name": "app",
                               "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}]}},
     {"spec.containers.0.volumeMounts": [{"name": "data", "mountPath": "/data",
                                          "readOnly": True}]}),
    ("Pod container args are replaced", "v1", "Pod", POD,
     {"spec": {"containers": [{"name": "app", "args": ["--y"]}]}},
     {"spec.containers.0.args": ["--y"]}),
    ("Pod tolerations are replaced", "v1", "Pod", POD,
     {"spec": {"tolerations": [{"key": "k2", "operator": "Exists"}]}},
     {"spec.tolerations": [{"key": "k2", "operator": "Exists"}]}),
    ("Pod volumes merge by name with $retainKeys", "v1", "Pod", POD,
     {"spec": {"volumes": [{"$retainKeys": ["name", "configMap"], "name": "data",
                            "configMap": {"name": "cm"}}]}},
     {"spec.volumes": [{"name": "data", "configMap": {"name": "cm"}}]}),
    ("Pod imagePullSecrets merge by name", "v1", "Pod", POD,
     {"spec": {"imagePullSecrets": [{"name": "reg2"}]}},
     {"spec.imagePullSecrets": [{"name": "reg2"}, {"name": "reg1"}]}),
    ("Pod finalizers merge as a set", "v1", "Pod", POD,
     {"metadata": {"finalizers": ["c", "a"]}}, {"metadata.finalizers": ["c", "a", "b"]}),
    ("Pod finalizers $deleteFromPrimitiveList", "v1", "Pod", POD,
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
     {"metadata.finalizers": ["b"]}),
    ("ownerReferences merge by uid", "v1", "Pod", POD,
     {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}},
     {"metadata.ownerReferences": [{"uid": "u1", "name": "rs1", "kind": "ReplicaSet",
                                    "apiVersion": "apps/v1", "controller": True}]}),
    ("Pod status conditions merge by type", "v1", "Pod", POD,
     {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                {"type": "Initialized", "status": "True"}]}},
     {"status.conditions": [{"type": "Ready", "status": "True"},
                            {"type": "Initialized", "status": "True"}]}),
    ("Pod status podIPs merge by ip", "v1", "Pod", POD,
     {"status": {"podIPs": [{"ip": "fd00::1"}]}},
     {"status.podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}]}),
    ("Pod containerStatuses are replaced", "v1", "Pod", POD,
     {"status": {"containerStatuses": [{"name": "app", "ready": True}]}},
     {"status.containerStatuses": [{"name": "app", "ready": True}]}),
    ("Service clusterIPs are replaced", "v1", "Service",
     {"spec": {"clusterIPs": ["10.0.0.1", "fd00::1"]}},
     {"spec": {"clusterIPs": ["10.0.0.2"]}}, {"spec.clusterIPs": ["10.0.0.2"]}),
    ("Service status conditions merge by type", "v1", "Service",
     {"status": {"conditions": [{"type": "A", "status": "True"}]}},
     {"status": {"conditions": [{"type": "B", "status": "True"}]}},
     {"status.conditions": [{"type": "B", "status": "True"}, {"type": "A", "status": "True"}]}),
    ("Service loadBalancer ingress is replaced", "v1", "Service",
     {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}},
     {"status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}},
     {"status.loadBalancer.ingress": [{"ip": "5.6.7.8"}]}),
    ("Node addresses merge by type", "v1", "Node",
     {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                               {"type": "Hostname", "address": "n1"}]}},
     {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}},
     {"status.addresses": [{"type": "InternalIP", "address": "10.0.0.9"},
                           {"type": "Hostname", "address": "n1"}]}),
    ("Node taints are replaced", "v1", "Node",
     {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
     {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}},
     {"spec.taints": [{"key": "b", "effect": "NoSchedule"}]}),
    ("Node podCIDRs merge as a set", "v1", "Node", {"spec": {"podCIDRs": ["10.244.0.0/24"]}},
     {"spec": {"podCIDRs": ["fd00:10:244::/64"]}},
     {"spec.podCIDRs": ["fd00:10:244::/64", "10.244.0.0/24"]}),
    ("Namespace conditions merge by type", "v1", "Namespace",
     {"status": {"phase": "Active", "conditions": [{"type": "A", "status": "True"}]}},
     {"status": {"conditions": [{"type": "A", "status": "False"}]}},
     {"status.conditions": [{"type": "A", "status": "False"}], "status.phase": "Active"}),
    ("Endpoints subsets are replaced", "v1", "Endpoints",
     {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]},
     {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]},
     {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}),
    ("EndpointSlice endpoints and ports are replaced", "discovery.k8s.io/v1", "EndpointSlice",
     {"endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]},
     {"endpoints": [{"addresses": ["10.0.0.2"]}], "ports": [{"port": 81}]},
     {"endpoints": [{"addresses": ["10.0.0.2"]}], "ports": [{"port": 81}]}),
    ("Deployment template containers merge by name", "apps/v1", "Deployment",
     {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"},
                                                    {"name": "b", "image": "b:1"}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}},
     {"spec.template.spec.containers": [{"name": "a", "image": "a:1"},
                                        {"name": "b", "image": "b:2"}]}),
    ("ReplicaSet status conditions merge by type", "apps/v1", "ReplicaSet",
     {"status": {"conditions": [{"type": "A", "status": "True"}]}},
     {"status": {"conditions": [{"type": "B", "status": "True"}]}},
     {"status.conditions": [{"type": "B", "status": "True"}, {"type": "A", "status": "True"}]}),
    ("unknown lists are replaced", "v1", "Service", {"spec": {"whatever": [1, 2]}},
     {"spec": {"whatever": [3]}}, {"spec.whatever": [3]}),
    ("unknown kinds still know ObjectMeta", "example.com/v1", "Widget",
     {"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": ["b"]}},
     {"metadata.finalizers": ["b", "a"]}),
]


def _at(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


@pytest.mark.parametrize(("api_version", "kind", "original", "patch", "expected"),
                         [pytest.param(*c[1:], id=c[0]) for c in KIND_CASES])
def test_kind_patch_metadata(api_version: str, kind: str, original: Obj, patch: Obj,
                             expected: Obj) -> None:
    out = strategic_merge_patch(original, patch, api_version, kind)
    for path, value in expected.items():
        assert _at(out, path) == value, path


def test_patch_meta_table_is_keyed_by_group_version_kind() -> None:
    assert set(PATCH_META) == {
        ("v1", "Service"), ("v1", "Pod"), ("v1", "Node"), ("v1", "Namespace"),
        ("v1", "Endpoints"), ("v1", "ServiceAccount"), ("discovery.k8s.io/v1", "EndpointSlice"),
        ("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"), ("node.k8s.io/v1", "RuntimeClass"),
        ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"), ("v1", "ReplicationController"),
        ("v1", "PersistentVolume"), ("v1", "PersistentVolumeClaim"),
        ("batch/v1", "Job"), ("batch/v1", "CronJob"), ("networking.k8s.io/v1", "ServiceCIDR"),
        ("policy/v1", "PodDisruptionBudget"), ("networking.k8s.io/v1", "NetworkPolicy"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"), ("storage.k8s.io/v1", "StorageClass"),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
        ("certificates.k8s.io/v1", "CertificateSigningRequest")}
    job = patch_schema("batch/v1", "Job")
    assert job.list_meta(("status", "conditions")).merge_key == "type"
    assert job.list_meta(("spec", "template", "spec", "containers")).merge_key == "name"
    cronjob = patch_schema("batch/v1", "CronJob")
    assert cronjob.list_meta(("spec", "jobTemplate", "spec", "template", "spec",
                              "containers")).merge_key == "name"
    ports = patch_schema("v1", "Service").list_meta(("spec", "ports"))
    assert (ports.merge_key, ports.map_keys, ports.key_defaults) == (
        "port", ("port", "protocol"), (("protocol", "TCP"),))
    deploy = patch_schema("apps/v1", "Deployment")
    assert deploy.list_meta(("spec", "template", "spec", "containers", "[]", "env")).merge_key \
        == "name"
    assert deploy.map_meta(("spec", "selector")).atomic


# ============================================================================================
# JSON merge patch (RFC 7386)
# ============================================================================================

RFC7386_APPENDIX: list[tuple[str, str, str]] = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
    ('{"a":"b"}', '{"a":null}', "{}"),
    ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
    ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', "null", "null"),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
    ('[1,2]', '{"a":"b","c":null}', '{"a":"b"}'),
    ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]


@pytest.mark.parametrize(("target", "patch", "expected"), [
    pytest.param(t, p, e, id=f"RFC7386 A.{i + 1}") for i, (t, p, e) in enumerate(RFC7386_APPENDIX)])
def test_rfc7386_appendix(target: str, patch: str, expected: str) -> None:
    assert merge_patch_value(json.loads(target), json.loads(patch)) == json.loads(expected)


@pytest.mark.parametrize(("patch", "code", "reason", "message"), [
    pytest.param(None, 400, "BadRequest", "Invalid JSON Patch", id="null"),
    pytest.param("bar", 400, "BadRequest", "Invalid JSON Patch", id="string"),
    pytest.param(3, 400, "BadRequest", "Invalid JSON Patch", id="number"),
    pytest.param(["c"], 422, "Invalid",
                 ' "" is invalid: patch: Invalid value: "[\\"c\\"]": json: cannot unmarshal array '
                 "into Go value of type map[string]interface {}", id="array"),
])
def test_json_merge_patch_errors(patch: Any, code: int, reason: str, message: str) -> None:
    with pytest.raises(StatusError) as ei:
        json_merge_patch({"a": 1}, patch)
    assert (ei.value.code, ei.value.reason, ei.value.message) == (code, reason, message)


def test_json_merge_patch_prunes_nulls_inside_new_arrays() -> None:
    # evanphx (the apiserver's library) prunes nulls in objects of a replacing array.
    out = json_merge_patch({"spec": {}}, {"spec": {"ports": [{"port": 80, "name": None}]}})
    assert out == {"spec": {"ports": [{"port": 80}]}}


def test_json_merge_patch_does_not_mutate() -> None:
    live = {"metadata": {"labels": {"a": "b"}}}
    patch = {"metadata": {"labels": {"a": None, "c": {"d": None}}}}
    snapshot = copy.deepcopy((live, patch))
    assert json_merge_patch(live, patch) == {"metadata": {"labels": {"c": {}}}}
    assert (live, patch) == snapshot


# ============================================================================================
# JSON patch (RFC 6902)
# ============================================================================================

RFC6902_APPENDIX: list[tuple[str, str, str, str | None]] = [
    # (id, document, patch, result or None for "error")
    ("A.1 adding an object member", '{"foo":"bar"}',
     '[{"op":"add","path":"/baz","value":"qux"}]', '{"baz":"qux","foo":"bar"}'),
    ("A.2 adding an array element", '{"foo":["bar","baz"]}',
     '[{"op":"add","path":"/foo/1","value":"qux"}]', '{"foo":["bar","qux","baz"]}'),
    ("A.3 removing an object member", '{"baz":"qux","foo":"bar"}',
     '[{"op":"remove","path":"/baz"}]', '{"foo":"bar"}'),
    ("A.4 removing an array element", '{"foo":["bar","qux","baz"]}',
     '[{"op":"remove","path":"/foo/1"}]', '{"foo":["bar","baz"]}'),
    ("A.5 replacing a value", '{"baz":"qux","foo":"bar"}',
     '[{"op":"replace","path":"/baz","value":"boo"}]', '{"baz":"boo","foo":"bar"}'),
    ("A.6 moving a value", '{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}',
     '[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]',
     '{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}'),
    ("A.7 moving an array element", '{"foo":["all","grass","cows","eat"]}',
     '[{"op":"move","from":"/foo/1","path":"/foo/3"}]', '{"foo":["all","cows","eat","grass"]}'),
    ("A.8 testing a value: success", '{"baz":"qux","foo":["a",2,"c"]}',
     '[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]',
     '{"baz":"qux","foo":["a",2,"c"]}'),
    ("A.9 testing a value: error", '{"baz":"qux"}',
     '[{"op":"test","path":"/baz","value":"bar"}]', None),
    ("A.10 adding a nested member object", '{"foo":"bar"}',
     '[{"op":"add","path":"/child","value":{"grandchild":{}}}]',
     '{"foo":"bar","child":{"grandchild":{}}}'),
    ("A.11 ignoring unrecognized elements", '{"foo":"bar"}',
     '[{"op":"add","path":"/baz","value":"qux","xyz":123}]', '{"foo":"bar","baz":"qux"}'),
    ("A.12 adding to a nonexistent target", '{"foo":"bar"}',
     '[{"op":"add","path":"/baz/bat","value":"qux"}]', None),
    ("A.14 ~ escape ordering", '{"/":9,"~1":10}', '[{"op":"test","path":"/~01","value":10}]',
     '{"/":9,"~1":10}'),
    ("A.15 comparing strings and numbers", '{"/":9,"~1":10}',
     '[{"op":"test","path":"/~01","value":"10"}]', None),
    ("A.16 adding an array value", '{"foo":["bar"]}',
     '[{"op":"add","path":"/foo/-","value":["abc","def"]}]', '{"foo":["bar",["abc","def"]]}'),
    # evanphx v4 behaviour the apiserver exposes
    ("replace of a missing member adds it", '{"a":1}',
     '[{"op":"replace","path":"/b","value":2}]', '{"a":1,"b":2}'),
    ("negative array index counts from the end", '{"a":[1,2,3]}',
     '[{"op":"remove","path":"/a/-1"}]', '{"a":[1,2]}'),
    ("test of an absent member against null passes", '{"a":1}',
     '[{"op":"test","path":"/b","value":null}]', '{"a":1}'),
    ("remove of a missing member fails", '{"a":1}', '[{"op":"remove","path":"/b"}]', None),
    ("array index out of range fails", '{"a":[1]}',
     '[{"op":"add","path":"/a/5","value":0}]', None),
    ("copy", '{"a":{"b":1}}', '[{"op":"copy","from":"/a","path":"/c"}]',
     '{"a":{"b":1},"c":{"b":1}}'),
    ("unknown op fails", '{"a":1}', '[{"op":"frob","path":"/a"}]', None),
    ("missing path fails", '{"a":1}', '[{"op":"add","value":1}]', None),
    ("a failed test stops the patch", '{"a":1}',
     '[{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":2}]', None),
]


@pytest.mark.parametrize(("doc", "patch", "result"),
                         [pytest.param(*c[1:], id=c[0]) for c in RFC6902_APPENDIX])
def test_json_patch(doc: str, patch: str, result: str | None) -> None:
    original = json.loads(doc)
    snapshot = copy.deepcopy(original)
    if result is None:
        with pytest.raises(StatusError) as ei:
            json_patch(original, json.loads(patch))
        # NewGenericServerResponse(422) drops evanphx's message.
        assert (ei.value.code, ei.value.reason, ei.value.message) == (
            422, "Invalid", "the server rejected our request due to an error in our request")
        assert ei.value.__cause__ is not None
    else:
        assert json_patch(original, json.loads(patch)) == json.loads(result)
    assert original == snapshot


@pytest.mark.parametrize(("ops", "code", "reason", "message"), [
    pytest.param({"op": "add"}, 400, "BadRequest",
                 "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
                 id="not a list"),
    pytest.param(["add"], 400, "BadRequest",
                 "json: cannot unmarshal string into Go value of type jsonpatch.Operation",
                 id="op not an object"),
    pytest.param([{"op": "test", "path": "/a", "value": 1}] * 10001, 413,
                 "RequestEntityTooLarge", "Request entity too large: The allowed maximum "
                 "operations in a JSON patch is 10000, got 10001", id="too many operations"),
])
def test_json_patch_request_errors(ops: Any, code: int, reason: str, message: str) -> None:
    with pytest.raises(StatusError) as ei:
        json_patch({"a": 1}, ops)
    assert (ei.value.code, ei.value.reason, ei.value.message) == (code, reason, message)


def test_json_patch_copies_may_add_at_most_3_mib() -> None:
    """kube-apiserver arms evanphx's AccumulatedCopySizeLimit with JSONPatchMaxCopyBytes
    (3 MiB): without it, each copy of a subtree into itself doubles the document."""
    doc = {"spec": {"a": "x" * 1000}}
    doubling = [{"op": "copy", "from": "/spec", "path": f"/spec/b{i}"} for i in range(40)]
    with pytest.raises(StatusError) as ei:
        json_patch(doc, doubling)
    assert (ei.value.code, ei.value.message) == (
        422, "the server rejected our request due to an error in our request")
    assert "accumulated size increase of copy" in str(ei.value.__cause__)
    # Up to the limit copies are fine: 3 MiB of 1 KiB values.
    out = json_patch(doc, [{"op": "copy", "from": "/spec/a", "path": f"/spec/c{i}"}
                           for i in range(3000)])
    assert len(out["spec"]) == 3001


def test_json_patch_replacing_the_document_with_an_array_is_invalid() -> None:
    with pytest.raises(StatusError) as ei:
        json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}])
    assert ei.value.code == 422
    assert ei.value.details["causes"][0]["field"] == "patch"


def test_json_patch_null_body_is_a_no_op() -> None:
    assert json_patch({"a": 1}, None) == {"a": 1}


# ============================================================================================
# Media types, request options, body decoding, dispatch
# ============================================================================================


@pytest.mark.parametrize(("content_type", "expected"), [
    pytest.param("application/json-patch+json", PatchType.JSON, id="json"),
    pytest.param("application/merge-patch+json", PatchType.MERGE, id="merge"),
    pytest.param("application/strategic-merge-patch+json", PatchType.STRATEGIC, id="strategic"),
    pytest.param("application/apply-patch+yaml", PatchType.APPLY, id="apply"),
    pytest.param("application/merge-patch+json; charset=utf-8", PatchType.MERGE,
                 id="parameters dropped"),
])
def test_apply_patch_type(content_type: str, expected: PatchType) -> None:
    assert apply_patch_type(content_type) is expected
    assert patch_type_of(content_type) == expected.value
    assert expected.content_type == content_type.split(";", maxsplit=1)[0]


@pytest.mark.parametrize("content_type", [
    pytest.param("application/json", id="json"),
    pytest.param("application/vnd.kubernetes.protobuf", id="protobuf"),
    pytest.param(None, id="none"),
    pytest.param("Application/Merge-Patch+json", id="case matters"),
])
def test_apply_patch_type_unsupported(content_type: str | None) -> None:
    with pytest.raises(StatusError) as ei:
        apply_patch_type(content_type)
    assert (ei.value.code, ei.value.reason) == (415, "UnsupportedMediaType")
    assert ei.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml")


@pytest.mark.parametrize(("patch_type", "manager", "force", "message"), [
    pytest.param("apply", "", False, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                 "Required value: is required for apply patch", id="apply without manager"),
    pytest.param("merge", "kubectl", True, 'PatchOptions.meta.k8s.io "" is invalid: force: '
                 "Forbidden: may not be specified for non-apply patch", id="force on merge"),
    pytest.param("json", "x" * 129, None, 'PatchOptions.meta.k8s.io "" is invalid: '
                 'fieldManager: Too long: may not be more than 128 bytes',
                 id="manager too long"),
    pytest.param("strategic", "bad\x07", None, 'PatchOptions.meta.k8s.io "" is invalid: '
                 'fieldManager: Invalid value: "bad\\u0007": invalid character U+0007 '
                 "(at position 3)", id="unprintable manager"),
])
def test_validate_patch_options(patch_type: str, manager: str, force: bool | None,
                                message: str) -> None:
    with pytest.raises(StatusError) as ei:
        validate_patch_options(patch_type, manager, force=force)
    assert (ei.value.code, ei.value.reason, ei.value.message) == (422, "Invalid", message)


def test_validate_patch_options_accepts_good_requests() -> None:
    validate_patch_options(PatchType.APPLY, "kubectl", force=False, dry_run=["All"],
                           field_validation="Strict")
    validate_patch_options(PatchType.MERGE, "")




def test_apply_patch_dispatch() -> None:
    live = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
            "spec": {"ports": [{"port": 1}]}}
    assert apply_patch("json", live, [{"op": "add", "path": "/spec/x", "value": 1}], "v1",
                       "Service")["spec"]["x"] == 1
    assert apply_patch("merge", live, {"spec": {"ports": [{"port": 2}]}}, "v1",
                       "Service")["spec"]["ports"] == [{"port": 2}]
    assert apply_patch("strategic", live, {"spec": {"ports": [{"port": 2}]}}, "v1",
                       "Service")["spec"]["ports"] == [{"port": 2}, {"port": 1}]
    with pytest.raises(ValueError, match="server_side_apply"):
        apply_patch("apply", live, {}, "v1", "Service")


def test_go_json_matches_encoding_json() -> None:
    assert go_json({"b": "<&>", "a": 1.0, "c": [True, None]}) == (
        '{"a":1,"b":"\\u003c\\u0026\\u003e","c":[true,null]}')


def test_strict_error_of_a_strategic_patch_is_upstreams_422_on_patch() -> None:
    from svcnet.apiserver.patch import strict_patch_error

    patch = {"spec": {"foo": 1, "ports": [{"port": 80, "x": 1.5}]}, "metadata": {"a": None}}
    err = strict_patch_error(patch, 'strict decoding error: unknown field "spec.foo"')
    value = "map[metadata:map[a:<nil>] spec:map[foo:1 ports:[map[port:80 x:1.5]]]]"
    detail = f'Invalid value: "{value}": strict decoding error: unknown field "spec.foo"'
    assert err.to_status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f' "" is invalid: patch: {detail}', "reason": "Invalid",
        "details": {"causes": [{"reason": "FieldValueInvalid", "message": detail,
                                "field": "patch"}]},
        "code": 422}
