"""Per-kind facts of apply outside the patch table (reset fields, system metadata)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from svcnet.apiserver.apply.fieldset import FieldSet, _fp
from svcnet.apiserver.apply.managers import _encode_managed_fields, _Managed
from svcnet.apiserver.apply.values import Obj
from svcnet.util.jsoncopy import object_copy

# Per-kind facts outside the patch table
# ============================================================================================

# GetResetFields of each strategy: fields a write through this (sub)resource never owns.
_RESET_FIELDS: Final[dict[tuple[str, str, str], tuple[str, ...]]] = {
    ("v1", "Service", ""): ("status",),
    ("v1", "Service", "status"): ("spec",),
    ("v1", "Pod", ""): ("status",),
    ("v1", "Pod", "status"): ("spec", "metadata.deletionTimestamp",
                              "metadata.ownerReferences"),
    ("v1", "Node", ""): ("status",),
    ("v1", "Node", "status"): ("spec",),
    ("v1", "Namespace", ""): ("status",),
    ("v1", "Namespace", "status"): ("spec",),
    ("v1", "Namespace", "finalize"): ("status",),
    ("apps/v1", "Deployment", ""): ("status",),
    ("apps/v1", "Deployment", "status"): ("spec", "metadata.labels"),
    ("apps/v1", "ReplicaSet", ""): ("status",),
    ("apps/v1", "ReplicaSet", "status"): ("spec",),
    ("apps/v1", "DaemonSet", ""): ("status",),
    ("apps/v1", "DaemonSet", "status"): ("spec",),
    ("apps/v1", "StatefulSet", ""): ("status",),
    ("apps/v1", "StatefulSet", "status"): ("spec",),
    ("v1", "ReplicationController", ""): ("status",),
    ("v1", "ReplicationController", "status"): ("spec",),
}

# Top-level structs a zero-valued Go object of the kind carries (``creater.New``).
_ZERO_STRUCTS: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("v1", "Service"): ("spec", "status"),
    ("v1", "Pod"): ("spec", "status"),
    ("v1", "Node"): ("spec", "status"),
    ("v1", "Namespace"): ("spec", "status"),
    ("apps/v1", "Deployment"): ("spec", "status"),
    ("apps/v1", "ReplicaSet"): ("spec", "status"),
    ("apps/v1", "DaemonSet"): ("spec", "status"),
    ("apps/v1", "StatefulSet"): ("spec", "status"),
    ("v1", "ReplicationController"): ("spec", "status"),
}

# stripMeta: paths no manager ever owns.
_STRIP: Final = FieldSet([_fp("apiVersion"), _fp("kind"), _fp("metadata")] + [
    _fp(f"metadata.{f}") for f in ("name", "namespace", "creationTimestamp", "selfLink",
                                    "uid", "clusterName", "generation", "managedFields",
                                    "resourceVersion")])

_CURRENT_OPERATION: Final = "current-operation"
_BEFORE_FIRST_APPLY: Final = "before-first-apply"
_ANCIENT_CHANGES: Final = "ancient-changes"


def _rfc3339(now: str | datetime) -> str:
    if isinstance(now, datetime):
        return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return now


def _without_managed_fields(obj: Obj) -> Obj:
    out = object_copy(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return out


def _metadata_view(obj: Obj) -> tuple[Obj, dict[str, Any]]:
    """A new top level and metadata over ``obj``'s other values (shared, not copied): what a
    read-only walk, or a result whose input is the caller's own copy, needs."""
    out = dict(obj)
    meta = out.get("metadata")
    meta = out["metadata"] = dict(meta) if isinstance(meta, dict) else {}
    return out, meta


def _view_without_managed_fields(obj: Obj) -> Obj:
    """``obj`` without managedFields, sharing its other values: for reading only."""
    out, meta = _metadata_view(obj)
    meta.pop("managedFields", None)
    if not meta and not isinstance(obj.get("metadata"), dict):
        del out["metadata"]
    return out


def _with_managed_fields(obj: Obj, managed: _Managed) -> Obj:
    """``obj`` with ``managed`` encoded as its managedFields. Only the top level and metadata
    are new: callers pass an object of their own (a copy or a merge result)."""
    out, meta = _metadata_view(obj)
    entries = _encode_managed_fields(managed)
    if entries is None:
        meta.pop("managedFields", None)
        if not meta and not isinstance(obj.get("metadata"), dict):
            del out["metadata"]
        return out
    meta["managedFields"] = entries
    return out


# ============================================================================================
