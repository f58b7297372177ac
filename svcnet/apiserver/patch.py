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
    ``op``) is 422 Invalid with the fixed message ``the server rejected our request due to
    an error in our request`` -- the apiserver builds it with ``NewGenericServerResponse``,
    which drops evanphx's message (it is kept here as the exception's ``__cause__``).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from svcnet.api.errors import (
    FieldError,
    StatusError,
    bad_request,
    forbidden,
    invalid,
    invalid_error,
    not_supported,
    required,
    too_long,
)

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
    "validate_patch_options",
]

JSON = Any
Obj = dict[str, Any]

# ============================================================================================
# Patch metadata
# ============================================================================================


@dataclass(frozen=True, slots=True)
class ListMeta:
    """How one list field merges.

    ``list_type``/``map_keys``/``key_defaults`` are the server-side apply view
    (``x-kubernetes-list-type``, ``x-kubernetes-list-map-keys`` and ``+default`` on a key
    field, which SSA uses when an item omits that key). ``patch_strategy``/``merge_key`` are
    the strategic merge patch view (``patchStrategy``/``patchMergeKey``); ``""`` means
    "replace the whole list". ``atomic_items`` marks lists whose items are atomic structs
    (``+structType=atomic``, e.g. ``LocalObjectReference``).
    """

    list_type: str = "atomic"
    map_keys: tuple[str, ...] = ()
    key_defaults: tuple[tuple[str, Any], ...] = ()
    patch_strategy: str = ""
    merge_key: str = ""
    retain_keys: bool = False
    atomic_items: bool = False


@dataclass(frozen=True, slots=True)
class MapMeta:
    """How one map/struct field merges.

    ``atomic`` is SSA's ``mapType=atomic``/``structType=atomic`` (the value is owned and
    replaced as a unit); ``patch_strategy="replace"`` makes SMP replace it whole.
    """

    atomic: bool = False
    patch_strategy: str = ""
    retain_keys: bool = False


FieldMeta = ListMeta | MapMeta

_DEFAULT_LIST: Final = ListMeta()
_DEFAULT_MAP: Final = MapMeta()


class PatchSchema:
    """Patch metadata of one kind: field path (``a.b[].c``) → :class:`ListMeta`/:class:`MapMeta`.

    Lookups take a tuple of path segments, ``"[]"`` standing for "any list item".
    """

    __slots__ = ("_fields", "name")

    def __init__(self, name: str, fields: Mapping[str, FieldMeta]) -> None:
        self.name = name
        self._fields: dict[tuple[str, ...], FieldMeta] = {
            _split_path(p): m for p, m in fields.items()}

    def lookup(self, path: tuple[str, ...]) -> FieldMeta | None:
        return self._fields.get(path)

    def list_meta(self, path: tuple[str, ...]) -> ListMeta:
        m = self._fields.get(path)
        return m if isinstance(m, ListMeta) else _DEFAULT_LIST

    def map_meta(self, path: tuple[str, ...]) -> MapMeta:
        m = self._fields.get(path)
        if isinstance(m, MapMeta):
            return m
        # The item of a list of atomic structs is itself atomic.
        if path and path[-1] == "[]":
            parent = self._fields.get(path[:-1])
            if isinstance(parent, ListMeta) and parent.atomic_items:
                return MapMeta(atomic=True)
        return _DEFAULT_MAP


def _split_path(path: str) -> tuple[str, ...]:
    """``"spec.containers[].ports"`` → ``("spec", "containers", "[]", "ports")``."""
    return tuple(seg for seg in path.replace("[]", ".[]").split(".") if seg)


def _under(prefix: str, fields: Mapping[str, FieldMeta]) -> dict[str, FieldMeta]:
    return {f"{prefix}.{k}" if prefix else k: v for k, v in fields.items()}


def _merge_by(key: str, *, keys: tuple[str, ...] | None = None,
              defaults: tuple[tuple[str, Any], ...] = (), retain_keys: bool = False,
              atomic_items: bool = False) -> ListMeta:
    """A list that SMP merges on ``key`` and SSA treats as a map keyed by ``keys``."""
    return ListMeta("map", keys or (key,), defaults, "merge", key, retain_keys, atomic_items)


def _ssa_map(*keys: str, defaults: tuple[tuple[str, Any], ...] = ()) -> ListMeta:
    """listType=map without a patch strategy (SMP replaces it)."""
    return ListMeta("map", keys, defaults)


_ATOMIC: Final = ListMeta("atomic")
_ATOMIC_MAP: Final = MapMeta(atomic=True)
_PRIMITIVE_MERGE_SET: Final = ListMeta("set", patch_strategy="merge")
_BY_TYPE: Final = _merge_by("type")
_TCP: Final = (("protocol", "TCP"),)

# metav1.ObjectMeta (types.go in apimachinery/pkg/apis/meta/v1).
_OBJECT_META: Final[dict[str, FieldMeta]] = {
    "ownerReferences": _merge_by("uid", atomic_items=True),  # OwnerReference: structType=atomic
    "finalizers": _PRIMITIVE_MERGE_SET,
    "managedFields": _ATOMIC,
}

# metav1.LabelSelector is structType=atomic.
_LABEL_SELECTOR: Final = _ATOMIC_MAP

_CONTAINER: Final[dict[str, FieldMeta]] = {
    "command": _ATOMIC,
    "args": _ATOMIC,
    "ports": _merge_by("containerPort", keys=("containerPort", "protocol"), defaults=_TCP),
    "env": _merge_by("name"),
    "env[].valueFrom.configMapKeyRef": _ATOMIC_MAP,
    "env[].valueFrom.secretKeyRef": _ATOMIC_MAP,
    "env[].valueFrom.fieldRef": _ATOMIC_MAP,
    "env[].valueFrom.resourceFieldRef": _ATOMIC_MAP,
    "envFrom": _ATOMIC,
    "volumeMounts": _merge_by("mountPath"),
    "volumeDevices": _merge_by("devicePath"),
    "resizePolicy": _ATOMIC,
    "resources.claims": _ssa_map("name"),
    "securityContext.capabilities.add": _ATOMIC,
    "securityContext.capabilities.drop": _ATOMIC,
    "lifecycle.postStart.exec.command": _ATOMIC,
    "lifecycle.preStop.exec.command": _ATOMIC,
    "livenessProbe.exec.command": _ATOMIC,
    "readinessProbe.exec.command": _ATOMIC,
    "startupProbe.exec.command": _ATOMIC,
    "livenessProbe.httpGet.httpHeaders": _ATOMIC,
    "readinessProbe.httpGet.httpHeaders": _ATOMIC,
    "startupProbe.httpGet.httpHeaders": _ATOMIC,
}

# core/v1 PodSpec.
_POD_SPEC: Final[dict[str, FieldMeta]] = {
    "volumes": _merge_by("name", retain_keys=True),
    "volumes[].configMap.items": _ATOMIC,
    "volumes[].secret.items": _ATOMIC,
    "volumes[].downwardAPI.items": _ATOMIC,
    "volumes[].projected.sources": _ATOMIC,
    "initContainers": _merge_by("name"),
    **_under("initContainers[]", _CONTAINER),
    "containers": _merge_by("name"),
    **_under("containers[]", _CONTAINER),
    "ephemeralContainers": _merge_by("name"),
    **_under("ephemeralContainers[]", _CONTAINER),
    "imagePullSecrets": _merge_by("name", atomic_items=True),  # LocalObjectReference: atomic
    "nodeSelector": _ATOMIC_MAP,
    "tolerations": _ATOMIC,
    "hostAliases": _merge_by("ip"),
    "hostAliases[].hostnames": _ATOMIC,
    "readinessGates": _ATOMIC,
    "topologySpreadConstraints": _merge_by(
        "topologyKey", keys=("topologyKey", "whenUnsatisfiable")),
    "topologySpreadConstraints[].labelSelector": _LABEL_SELECTOR,
    "topologySpreadConstraints[].matchLabelKeys": _ATOMIC,
    "resourceClaims": _merge_by("name", retain_keys=True),
    "schedulingGates": _merge_by("name"),
    "securityContext.supplementalGroups": _ATOMIC,
    "securityContext.sysctls": _ATOMIC,
    "dnsConfig.nameservers": _ATOMIC,
    "dnsConfig.searches": _ATOMIC,
    "dnsConfig.options": _ATOMIC,
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution": _ATOMIC_MAP,
    "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
    "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
    "affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
}

_POD_STATUS: Final[dict[str, FieldMeta]] = {
    "conditions": _BY_TYPE,
    "podIPs": _merge_by("ip"),
    "hostIPs": ListMeta("atomic", patch_strategy="merge", merge_key="ip"),
    "containerStatuses": _ATOMIC,
    "initContainerStatuses": _ATOMIC,
    "ephemeralContainerStatuses": _ATOMIC,
    "resourceClaimStatuses": _merge_by("name", retain_keys=True),
}


def _pod_template(prefix: str) -> dict[str, FieldMeta]:
    return {**_under(f"{prefix}.metadata", _OBJECT_META), **_under(f"{prefix}.spec", _POD_SPEC)}


_WORKLOAD_STATUS: Final[dict[str, FieldMeta]] = {"conditions": _BY_TYPE}

_KIND_FIELDS: Final[dict[tuple[str, str], dict[str, FieldMeta]]] = {
    ("v1", "Service"): {
        "spec.ports": _merge_by("port", keys=("port", "protocol"), defaults=_TCP),
        "spec.selector": _ATOMIC_MAP,  # +mapType=atomic
        "spec.clusterIPs": _ATOMIC,
        "spec.externalIPs": _ATOMIC,
        "spec.ipFamilies": _ATOMIC,
        "spec.loadBalancerSourceRanges": _ATOMIC,
        "status.loadBalancer.ingress": _ATOMIC,
        "status.loadBalancer.ingress[].ports": _ATOMIC,
        "status.conditions": _BY_TYPE,
    },
    ("v1", "Pod"): {**_under("spec", _POD_SPEC), **_under("status", _POD_STATUS)},
    ("v1", "Node"): {
        "spec.podCIDRs": _PRIMITIVE_MERGE_SET,
        "spec.taints": _ATOMIC,
        "status.addresses": _BY_TYPE,
        "status.conditions": _BY_TYPE,
        "status.images": _ATOMIC,
        "status.volumesInUse": _ATOMIC,
        "status.volumesAttached": _ATOMIC,
        "status.runtimeHandlers": _ATOMIC,
    },
    ("v1", "Namespace"): {
        "spec.finalizers": _ATOMIC,
        "status.conditions": _BY_TYPE,
    },
    ("v1", "Endpoints"): {
        "subsets": _ATOMIC,
    },
    ("discovery.k8s.io/v1", "EndpointSlice"): {
        "endpoints": _ATOMIC,
        "ports": _ATOMIC,
    },
    ("apps/v1", "Deployment"): {
        "spec.selector": _LABEL_SELECTOR,
        "spec.strategy": MapMeta(retain_keys=True),
        **_pod_template("spec.template"),
        **_under("status", _WORKLOAD_STATUS),
    },
    ("apps/v1", "ReplicaSet"): {
        "spec.selector": _LABEL_SELECTOR,
        **_pod_template("spec.template"),
        **_under("status", _WORKLOAD_STATUS),
    },
}

#: Patch metadata for every kind we serve, keyed by ``(apiVersion, kind)``. ObjectMeta rules
#: apply to all of them.
PATCH_META: Final[dict[tuple[str, str], PatchSchema]] = {
    gvk: PatchSchema(f"{gvk[0]}/{gvk[1]}", {**_under("metadata", _OBJECT_META), **fields})
    for gvk, fields in _KIND_FIELDS.items()
}

_OBJECT_META_ONLY: Final = PatchSchema("unknown", _under("metadata", _OBJECT_META))


def patch_schema(api_version: str, kind: str) -> PatchSchema:
    """The patch metadata of a kind; unknown kinds get the ObjectMeta rules only."""
    return PATCH_META.get((api_version, kind), _OBJECT_META_ONLY)


# ============================================================================================
# Patch types and request options
# ============================================================================================


class PatchType(StrEnum):
    """The four PATCH media types; compare with the short names (``== "apply"``)."""

    JSON = "json"
    MERGE = "merge"
    STRATEGIC = "strategic"
    APPLY = "apply"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES: Final = {
    PatchType.JSON: "application/json-patch+json",
    PatchType.MERGE: "application/merge-patch+json",
    PatchType.STRATEGIC: "application/strategic-merge-patch+json",
    PatchType.APPLY: "application/apply-patch+yaml",
}
_BY_CONTENT_TYPE: Final = {v: k for k, v in _CONTENT_TYPES.items()}


def apply_patch_type(content_type: str | None) -> PatchType:
    """Map a PATCH ``Content-Type`` to its patch type, or raise 415 UnsupportedMediaType.

    Like ``PatchResource``, parameters after the first ``;`` are dropped and the rest is
    compared exactly; the message lists the types in the order the route declares them.
    """
    ct = content_type or ""
    if (idx := ct.find(";")) > 0:
        ct = ct[:idx]
    pt = _BY_CONTENT_TYPE.get(ct)
    if pt is None:
        accepted = ", ".join(_CONTENT_TYPES[t] for t in PatchType)
        raise StatusError(415, "UnsupportedMediaType",
                          "the body of the request was in an unknown format - accepted media "
                          f"types include: {accepted}")
    return pt


#: The name the HTTP layer uses.
patch_type_of = apply_patch_type

MAX_JSON_PATCH_OPERATIONS: Final = 10000
FIELD_MANAGER_MAX_LENGTH: Final = 128


def validate_patch_options(patch_type: PatchType | str, field_manager: str, *,
                           force: bool | None = None, dry_run: Iterable[str] = (),
                           field_validation: str = "") -> None:
    """``ValidatePatchOptions``: 422 ``PatchOptions.meta.k8s.io "" is invalid: ...``.

    ``force`` is ``None`` when the query parameter is absent (it may only be given for apply).
    """
    errs: list[FieldError] = []
    if patch_type != PatchType.APPLY:
        if force is not None:
            errs.append(forbidden("force", "may not be specified for non-apply patch"))
    elif field_manager == "":
        errs.append(required("fieldManager", "is required for apply patch"))
    if len(field_manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        errs.append(too_long("fieldManager", field_manager, FIELD_MANAGER_MAX_LENGTH))
    pos = 0
    for ch in field_manager:
        if not ch.isprintable():
            errs.append(invalid("fieldManager", field_manager,
                                f"invalid character U+{ord(ch):04X} (at position {pos})"))
        pos += len(ch.encode())
    dry = list(dry_run)
    if any(d != "All" for d in dry):
        errs.append(not_supported("dryRun", dry, ["All"]))
    if field_validation not in ("", "Ignore", "Warn", "Strict"):
        errs.append(not_supported("fieldValidation", field_validation,
                                  ["", "Ignore", "Strict", "Warn"]))
    if errs:
        raise invalid_error("PatchOptions", "", errs, group="meta.k8s.io")


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


# ============================================================================================
# Go value rendering (error messages quote values the way Go's fmt prints them)
# ============================================================================================


def _go_type(v: JSON) -> str:
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


def _go_fmt(v: JSON) -> str:
    """``fmt.Sprintf("%v", v)`` for decoded JSON: maps sorted, slices space-separated."""
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_fmt(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_go_fmt(x) for x in v) + "]"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    return str(v)


def _go_fmt_s(v: JSON) -> str:
    """``%s``: strings as they are, anything else in Go's ``%!s(type=value)`` form."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict | list):
        return _go_fmt(v)
    if v is None:
        return "%!s(<nil>)"
    return f"%!s({_go_type(v)}={_go_fmt(v)})"


def go_json(v: JSON) -> str:
    """Compact JSON as Go's ``encoding/json`` writes it: sorted keys, HTML-safe escapes."""
    s = json.dumps(_go_numbers(v), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _go_numbers(v: JSON) -> JSON:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, dict):
        return {k: _go_numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_go_numbers(x) for x in v]
    return v


def _json_type_name(v: JSON) -> str:
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


# ============================================================================================
# Strategic merge patch
# ============================================================================================

_DIRECTIVE: Final = "$patch"
_DELETE: Final = "delete"
_REPLACE: Final = "replace"
_MERGE: Final = "merge"
_RETAIN_KEYS: Final = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER: Final = "$setElementOrder"

_GENERIC_422: Final = "the server rejected our request due to an error in our request"


class _SMPError(Exception):
    """An error the apiserver does not classify: 500, no reason, the raw message."""

    def status(self) -> StatusError:
        return StatusError(500, "", str(self))


class _SMPBadRequest(_SMPError):
    def status(self) -> StatusError:
        return bad_request(str(self))


class _SMPUnprocessable(_SMPError):
    def status(self) -> StatusError:
        return StatusError(422, "Invalid", _GENERIC_422)


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
    return _SMPError(f"map: {_go_fmt(m)} does not contain declared merge key: {key}")


def _err_bad_arg_type(expected: str, actual: JSON) -> _SMPError:
    return _SMPError(f"expected a {expected}, but received a {_go_type(actual)}")


def _err_bad_patch_type(t: JSON, m: JSON) -> _SMPError:
    return _SMPError(f"unknown patch type: {_go_fmt_s(t)} in map: {_go_fmt(m)}")


_MAP_T: Final = "map[string]interface {}"
_SLICE_T: Final = "[]interface {}"


def _go_eq(a: JSON, b: JSON) -> bool:
    """Go's ``==`` on two ``interface{}`` values holding decoded JSON."""
    ta, tb = _go_type(a), _go_type(b)
    if ta != tb:
        return False
    if ta in (_MAP_T, _SLICE_T):
        raise _SMPError(f"runtime error: comparing uncomparable type {ta}")
    return bool(a == b)


def _go_key(v: JSON) -> tuple[str, Any]:
    """A Go map key for an ``interface{}`` value (maps and slices are unhashable in Go too)."""
    t = _go_type(v)
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

    def delete(self, idx: int) -> None:
        if self.aliased:
            self.items[idx:self.used - 1] = self.items[idx + 1:self.used]
            self.used -= 1

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
        raise bad_request(f"json: cannot unmarshal {_json_type_name(patch)} into Go value of "
                          "type map[string]interface {}")
    try:
        return _StrategicMerge(schema).merge_map(copy.deepcopy(original), copy.deepcopy(patch),
                                                 ())
    except _SMPError as e:
        raise e.status() from e


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
            if k not in original or _go_type(original[k]) != _go_type(patch_v):
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
            merged = _deduplicate_scalars(original + patch)
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
        for v in patch:
            if merge_key not in v:
                raise _err_no_merge_key(v, merge_key)
            found = _find_map_in_slice(original, merge_key, v[merge_key])
            if found is not None:
                idx, m = found
                merged = self.merge_map(m, v, item_spath)
                original[idx] = merged
                view.set(idx, merged)
            else:
                original.append(v)
                view.append(v)
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
        raise _SMPError(f"The order in patch list:\n{_go_fmt(patch_list)}\n doesn't match "
                        f"{_SET_ELEMENT_ORDER} list:\n{_go_fmt(order)}\n")


def _slice_element_kind(*slices: list[Any]) -> str:
    """``sliceElementType``: all elements share one Go type, which is not a slice."""
    prev: str | None = None
    for s in slices:
        for v in s:
            t = _go_type(v)
            if prev is None:
                if v is None:
                    raise _SMPError("runtime error: invalid memory address or nil pointer "
                                    "dereference")
                if t == _SLICE_T:
                    raise _err_no_list_of_lists()
                prev = t
            elif prev != t:
                rendered = "[" + " ".join(_go_fmt(x) for x in slices) + "]"
                raise _SMPError(f"list element types are not identical: {rendered}")
    if prev is None:
        raise _SMPError("no elements in any of the given slices")
    return "map" if prev == _MAP_T else "scalar"


def _find_map_in_slice(items: list[Any], key: str, value: JSON) -> tuple[int, Obj] | None:
    for i, v in enumerate(items):
        if not isinstance(v, dict):
            raise _SMPError(f"value for key {i} is not a map")
        if key in v and _go_eq(v[key], value):
            return i, v
    return None


def _merge_slice_with_special_elements(original: list[Any], patch: list[Any], merge_key: str,
                                       view: _View) -> tuple[list[Any], list[Any]]:
    without: list[Any] = []
    replace = False
    original = list(original)
    for v in patch:
        if _DIRECTIVE not in v:
            without.append(v)
            continue
        directive = v[_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in v:
                raise _err_no_merge_key(v, merge_key)
            while (found := _find_map_in_slice(original, merge_key, v[merge_key])) is not None:
                del original[found[0]]
                view.delete(found[0])
        elif directive == _REPLACE:
            replace = True  # keep going: the other $patch items are still processed
        elif directive == _MERGE:
            raise _SMPError("merging lists cannot yet be specified in the patch")
        else:
            raise _err_bad_patch_type(directive, v)
    if replace:
        view.detach()
        return without, []
    return original, without


def _delete_from_slice(current: list[Any], to_delete: list[Any]) -> list[Any]:
    gone = {_go_key(v) for v in to_delete}
    return [v for v in current if _go_key(v) not in gone]


def _deduplicate_scalars(s: list[Any]) -> list[Any]:
    """Upstream's in-place dedup: a duplicate is overwritten by the last element."""
    s = list(s)
    length = len(s) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if _go_eq(s[i], s[j]):
                s[j] = s[length]
                s = s[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return s


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
    for v in items:
        if not isinstance(v, dict):
            raise _err_bad_arg_type(_MAP_T, v)
        if merge_key not in v:
            raise _err_no_merge_key(v, merge_key)
        found = _find_map_in_slice(by, merge_key, v[merge_key]) is not None
        (patch if found else server_only).append(v)
    return patch, server_only


def _index(items: list[Any], v: JSON, merge_key: str, kind: str) -> int:
    def val(x: JSON) -> JSON:
        if kind == "map":
            return x.get(merge_key) if isinstance(x, dict) else None
        return x

    target = val(v)
    for i, x in enumerate(items):
        if _go_eq(target, val(x)):
            return i
    return -1


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
    items = list(to_sort)

    def less(a: JSON, b: JSON) -> bool:
        ia = _index(order, a, merge_key, kind)
        if ia >= 0:
            ib = _index(order, b, merge_key, kind)
            if ib >= 0:
                return ia < ib
        return True

    # sort.SliceStable (an insertion sort at these sizes), with upstream's comparator.
    for i in range(1, len(items)):
        j = i
        while j > 0 and less(items[j], items[j - 1]):
            items[j], items[j - 1] = items[j - 1], items[j]
            j -= 1
    return items + to_delete


def _merge_sorted_slice(left: list[Any], right: list[Any], server_order: list[Any],
                        merge_key: str, kind: str) -> list[Any]:
    """Interleave server-only items (left) into patch items (right) by server order."""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, kind)
            ri = _index(server_order, right[j], merge_key, kind)
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
# JSON merge patch (RFC 7386)
# ============================================================================================


def merge_patch_value(target: JSON, patch: JSON) -> JSON:
    """RFC 7386 ``MergePatch(Target, Patch)`` on any JSON values; never mutates inputs.

    For object patches this is evanphx's merge (see :func:`json_merge_patch`), which also
    drops ``null`` members of objects nested in arrays that replace a value.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    doc = copy.deepcopy(target) if isinstance(target, dict) else {}
    _merge_docs(doc, copy.deepcopy(patch))
    return doc


def json_merge_patch(original: Obj, patch: JSON) -> Obj:
    """Apply an ``application/merge-patch+json`` body as the apiserver does.

    ``null`` or a scalar patch is 400 ``Invalid JSON Patch`` (evanphx's ``ErrBadJSONPatch``);
    an array patch replaces the object with an array, which then fails to decode: 422.
    """
    if patch is None or not isinstance(patch, dict | list):
        raise bad_request("Invalid JSON Patch")
    if isinstance(patch, list):
        arr = copy.deepcopy(patch)
        _prune_nulls(arr)
        raise _not_an_object(arr)
    doc = copy.deepcopy(original)
    _merge_docs(doc, copy.deepcopy(patch))
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


def _not_an_object(doc: JSON) -> StatusError:
    """The patched document must decode into the object; an array or scalar cannot."""
    detail = (f"json: cannot unmarshal {_json_type_name(doc)} into Go value of type "
              "map[string]interface {}")
    return invalid_error("", "", [invalid("patch", go_json(doc), detail)])


# ============================================================================================
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
        raise bad_request(f"json: cannot unmarshal {_json_type_name(ops)} into Go value of "
                          "type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise bad_request(f"json: cannot unmarshal {_json_type_name(op)} into Go value "
                              "of type jsonpatch.Operation")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(413, "RequestEntityTooLarge",
                          "Request entity too large: The allowed maximum operations in a JSON "
                          f"patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    doc: JSON = copy.deepcopy(original)
    for op in ops:
        try:
            doc = _apply_json_op(doc, op)
        except _JSONPatchError as e:
            raise StatusError(422, "Invalid", _GENERIC_422) from e
    if not isinstance(doc, dict):
        raise _not_an_object(doc)
    return doc


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


def _apply_json_op(doc: JSON, op: Obj) -> JSON:  # noqa: C901 (one branch per RFC 6902 op)
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
