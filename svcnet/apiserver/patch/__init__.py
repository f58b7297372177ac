"""PATCH semantics: strategic merge patch, JSON merge patch and JSON patch, as kube-apiserver.

Theory of operation
===================

A PATCH request names one of four media types (:func:`apply_patch_type`). Three of them are
pure functions of (current object, patch body) and live here; the fourth, server-side apply,
also needs field ownership and lives in :mod:`svcnet.apiserver.apply`. Every function takes
plain JSON dicts, deep-copies its inputs and never mutates them.

Patch metadata (:data:`PATCH_META`)
    Kubernetes learns how to merge a list from struct tags on the Go types: ``patchStrategy``
    / ``patchMergeKey`` for strategic merge patch, ``listType`` / ``listMapKey`` /
    ``mapType`` / ``structType`` for server-side apply. We have no Go types, so the same facts
    are a data table keyed by ``(apiVersion, kind)``: one :class:`PatchSchema` per kind that
    maps field paths (``spec.template.spec.containers[].ports``) to a :class:`ListMeta` or a
    :class:`MapMeta`. Paths not in the table are "unknown": their lists are replaced whole
    (SMP) or atomic (SSA), their maps merged key by key.

Strategic merge patch (:func:`strategic_merge_patch`)
    A port of ``StrategicMergeMapPatch`` (``k8s.io/apimachinery/pkg/util/strategicpatch``)
    with the server's options (``MergeParallelList`` and ``IgnoreUnmatchedNulls``): maps merge
    recursively and ``null`` deletes; lists with ``patchStrategy: merge`` merge item by item on
    their merge key (or as sets, for lists of scalars); other lists are replaced. Directives:
    ``$patch: replace|delete`` (on a map or a list item), ``$retainKeys``,
    ``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>``. The port is literal,
    including two behaviours a reader would not guess:

    * list order. ``$setElementOrder`` sorts the merged list against the "server order". In Go
      that order is read through a slice header that shares its backing array with the list
      the merge just edited in place (deleted items shift left, appended items land in the
      freed slots), and upstream's own test expectations depend on it. :class:`_View`
      replays those in-place edits so we produce the same order.
    * new values. A value added where there was none (or of another type) loses its null
      members and any map carrying ``$patch`` (``discardNullValuesFromPatch`` and
      ``removeDirectives``); a new *item* of a merging list is appended as the patch has it.
      ``$deleteFromPrimitiveList/x: null`` deletes ``x`` itself, as upstream.

    The port follows the current upstream (``any``-era) ``patch.go``: ``$patch: delete``
    removes every item with that key, and deletion lists work on lists of any strategy.

    Errors come out with the status codes ``handlers/patch.go`` gives them: malformed
    directives are 400 BadRequest, "lists of lists" is 422 Invalid (with the generic
    422 message, because ``NewGenericServerResponse`` discards the detail), and everything
    else (a missing merge key, a bad ``$patch`` value, an order mismatch) is an error the
    handler does not recognise, so it becomes a 500 with no reason and the raw message; that
    is what kubectl prints as ``Error from server: map: map[...] does not contain declared
    merge key: name``.

JSON merge patch (:func:`json_merge_patch`)
    RFC 7386, as ``evanphx/json-patch`` v4 ``MergePatch`` implements it for the apiserver:
    a value that replaces another has its ``null`` members pruned, also inside arrays.
    :func:`merge_patch_value` applies the same merge to any JSON values (the RFC's
    non-object targets and patches included); :func:`json_merge_patch` adds the apiserver's
    rules (400 for a null or scalar patch, 422 when the result is not an object).

JSON patch (:func:`json_patch`)
    RFC 6902 with evanphx v4's semantics (the apiserver's): ``replace`` of a missing object
    member adds it, negative array indices count from the end, ``test`` of an absent member
    against ``null`` passes. A patch that is not a list of objects is 400; more than 10000
    operations is 413; any operation that fails (missing path, failed ``test``, unknown
    ``op``, ``copy`` operations adding more than 3 MiB in all, kube-apiserver's
    ``JSONPatchMaxCopyBytes``) is 422 Invalid with the fixed message ``the server rejected
    our request due to an error in our request`` -- the apiserver builds it with
    ``NewGenericServerResponse``, which drops evanphx's message (it is kept here as the
    exception's ``__cause__``).
"""

from __future__ import annotations

from typing import Any

from svcnet.apiserver.patch.gofmt import go_float, go_json
from svcnet.apiserver.patch.jsonpatch import json_patch
from svcnet.apiserver.patch.merge import json_merge_patch, merge_patch_value
from svcnet.apiserver.patch.options import (
    MAX_JSON_PATCH_OPERATIONS,
    PatchType,
    apply_patch_type,
    patch_type_of,
    strict_patch_error,
    validate_patch_options,
)
from svcnet.apiserver.patch.schema import PATCH_META, ListMeta, MapMeta, PatchSchema, patch_schema
from svcnet.apiserver.patch.strategic import (
    strategic_merge_patch,
    strategic_merge_patch_with_schema,
)

Obj = dict[str, Any]
JSON = Any

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "PATCH_META",
    "ListMeta",
    "MapMeta",
    "PatchSchema",
    "PatchType",
    "apply_patch",
    "apply_patch_type",
    "go_float",
    "go_json",
    "json_merge_patch",
    "json_patch",
    "merge_patch_value",
    "patch_schema",
    "patch_type_of",
    "strategic_merge_patch",
    "strategic_merge_patch_with_schema",
    "strict_patch_error",
    "validate_patch_options",
]


def apply_patch(patch_type: PatchType | str, original: Obj, patch: JSON, api_version: str,
                kind: str) -> Obj:
    """Apply a JSON, merge or strategic patch; apply patches go through server-side apply."""
    if patch_type == PatchType.JSON:
        return json_patch(original, patch)
    if patch_type == PatchType.MERGE:
        return json_merge_patch(original, patch)
    if patch_type == PatchType.STRATEGIC:
        return strategic_merge_patch(original, patch, api_version, kind)
    raise ValueError(f"patch type {patch_type!r} is not a pure patch; use server_side_apply")
