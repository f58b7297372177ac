"""Namespace defaulting and validation, as Kubernetes does it.

Mirrors:

* ``pkg/apis/core/v1/defaults.go`` — ``SetDefaults_Namespace`` (the
  ``kubernetes.io/metadata.name`` label) and ``SetDefaults_NamespaceStatus`` (phase
  ``Active``);
* ``pkg/registry/core/namespace/strategy.go`` — the ``kubernetes`` finalizer added on create,
  spec/status preserved across the main, ``status`` and ``finalize`` endpoints, and
  ``Canonicalize`` (the label is re-set after validation, for generateName'd namespaces);
* ``pkg/apis/core/validation/validation.go`` — ``ValidateNamespace``,
  ``ValidateNamespaceUpdate``, ``ValidateNamespaceStatusUpdate``,
  ``ValidateNamespaceFinalizeUpdate``, ``validateFinalizerName``;
* ``pkg/registry/core/namespace/storage/storage.go`` — what the first DELETE of a namespace
  writes (:func:`mark_terminating`) and ``ShouldDeleteNamespaceDuringUpdate``
  (:func:`finalized`);
* ``staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go`` —
  the namespaces that may not be deleted (:data:`IMMORTAL_NAMESPACES`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import map_of as _map
from svcnet.api.errors import FieldError, Path, PathLike, invalid
from svcnet.api.meta import (
    STANDARD_FINALIZERS,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import is_qualified_name, validate_namespace_name

__all__ = [
    "FINALIZER_KUBERNETES",
    "IMMORTAL_NAMESPACES",
    "LABEL_METADATA_NAME",
    "PHASE_TERMINATING",
    "canonicalize_namespace",
    "finalized",
    "mark_terminating",
    "prepare_namespace_for_create",
    "prepare_namespace_for_finalize_update",
    "prepare_namespace_for_status_update",
    "prepare_namespace_for_update",
    "set_defaults_namespace",
    "spec_finalizers",
    "validate_namespace",
    "validate_namespace_finalize_update",
    "validate_namespace_status_update",
    "validate_namespace_update",
]

LABEL_METADATA_NAME: Final = "kubernetes.io/metadata.name"
FINALIZER_KUBERNETES: Final = "kubernetes"
PHASE_TERMINATING: Final = "Terminating"
IMMORTAL_NAMESPACES: Final = frozenset({"default", "kube-system", "kube-public"})
"""What kube-apiserver gives NamespaceLifecycle as immortal: deleting one is a 403 (``this
namespace may not be deleted``). ``kube-node-lease`` is not among them: it may be deleted, and
the server puts it back."""


def _ensure_map(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    if not isinstance(v, dict):
        v = d[key] = {}
    return v


def _finalizers(ns: Mapping[str, Any]) -> list[str]:
    raw = _map(ns, "spec").get("finalizers")
    return [f if isinstance(f, str) else "" for f in raw] if isinstance(raw, list) else []


# =============================================================================================
# defaulting and registry preparation


def set_defaults_namespace(ns: Mapping[str, Any]) -> dict[str, Any]:
    """v1 defaulting; returns a new dict.

    The ``kubernetes.io/metadata.name`` label is set to the name (only when there is a name:
    a generateName'd namespace gets it in :func:`canonicalize_namespace`), and an empty
    ``status.phase`` becomes ``Active``.
    """
    out = copy.deepcopy(dict(ns))
    name = _map(out, "metadata").get("name")
    if isinstance(name, str) and name:
        _ensure_map(_ensure_map(out, "metadata"), "labels")[LABEL_METADATA_NAME] = name
    status = _ensure_map(out, "status")
    if not status.get("phase"):
        status["phase"] = "Active"
    return out


def prepare_namespace_for_create(ns: Mapping[str, Any]) -> dict[str, Any]:
    """namespaceStrategy.PrepareForCreate: status is ``Active`` and the ``kubernetes``
    finalizer is present (appended to any finalizers the user asked for)."""
    out = copy.deepcopy(dict(ns))
    out["status"] = {"phase": "Active"}
    spec = _ensure_map(out, "spec")
    finalizers = _finalizers(out)
    if FINALIZER_KUBERNETES not in finalizers:
        spec["finalizers"] = [*finalizers, FINALIZER_KUBERNETES]
    return out


def prepare_namespace_for_update(new: Mapping[str, Any],
                                 old: Mapping[str, Any]) -> dict[str, Any]:
    """namespaceStrategy.PrepareForUpdate: finalizers change only through ``/finalize`` and
    status only through ``/status``, so both are taken from the old object."""
    out = copy.deepcopy(dict(new))
    spec = _ensure_map(out, "spec")
    old_spec = _map(old, "spec")
    if "finalizers" in old_spec:
        spec["finalizers"] = copy.deepcopy(old_spec["finalizers"])
    else:
        spec.pop("finalizers", None)
    out["status"] = copy.deepcopy(old.get("status") or {})
    return out


def prepare_namespace_for_status_update(new: Mapping[str, Any],
                                        old: Mapping[str, Any]) -> dict[str, Any]:
    """namespaceStatusStrategy.PrepareForUpdate: the spec is taken from the old object."""
    out = copy.deepcopy(dict(new))
    out["spec"] = copy.deepcopy(old.get("spec") or {})
    return out


def prepare_namespace_for_finalize_update(new: Mapping[str, Any],
                                          old: Mapping[str, Any]) -> dict[str, Any]:
    """namespaceFinalizeStrategy.PrepareForUpdate: the status is taken from the old object."""
    out = copy.deepcopy(dict(new))
    out["status"] = copy.deepcopy(old.get("status") or {})
    return out


def spec_finalizers(ns: Mapping[str, Any]) -> list[str]:
    """``spec.finalizers``: what must happen before a terminating namespace may go."""
    return _finalizers(ns)


def finalized(ns: Mapping[str, Any]) -> bool:
    """Nothing is left in ``spec.finalizers`` (the namespace controller's ``finalized``)."""
    return not _finalizers(ns)


def mark_terminating(ns: Mapping[str, Any], now: str,
                     finalizers: list[str] | None = None) -> dict[str, Any]:
    """The first DELETE of a namespace (REST.Delete's update): ``deletionTimestamp`` now (if
    unset), phase ``Terminating``, and the metadata finalizers the delete options ask for
    (given by the caller, None to keep them). Returns a new dict."""
    out = copy.deepcopy(dict(ns))
    meta = _ensure_map(out, "metadata")
    if not meta.get("deletionTimestamp"):
        meta["deletionTimestamp"] = now
    _ensure_map(out, "status")["phase"] = PHASE_TERMINATING
    if finalizers is not None:
        if finalizers:
            meta["finalizers"] = finalizers
        else:
            meta.pop("finalizers", None)
    return out


def canonicalize_namespace(ns: Mapping[str, Any]) -> dict[str, Any]:
    """namespaceStrategy.Canonicalize (after validation): the label always equals the name."""
    out = copy.deepcopy(dict(ns))
    meta = _ensure_map(out, "metadata")
    name = meta.get("name")
    _ensure_map(meta, "labels")[LABEL_METADATA_NAME] = name if isinstance(name, str) else ""
    return out


# =============================================================================================
# validation


def _validate_finalizer_name(value: str, path: PathLike) -> list[FieldError]:
    """validateFinalizerName: a qualified name, and bare names must be standard ones."""
    errs = [invalid(path, value, m) for m in is_qualified_name(value)]
    if "/" not in value and value not in STANDARD_FINALIZERS:
        errs.append(invalid(path, value, "name is neither a standard finalizer name nor is it "
                                         "fully qualified"))
    return errs


def validate_namespace(ns: Mapping[str, Any]) -> list[FieldError]:
    """ValidateNamespace: name is a DNS-1123 label, no namespace, valid spec finalizers.

    Upstream reports spec finalizer problems on the un-indexed path ``spec.finalizers``.
    """
    errs = validate_object_meta(_map(ns, "metadata"), requires_namespace=False,
                                name_fn=validate_namespace_name, path=Path("metadata"))
    path = Path("spec", "finalizers")
    for f in _finalizers(ns):
        errs.extend(_validate_finalizer_name(f, path))
    return errs


def validate_namespace_update(new: Mapping[str, Any], old: Mapping[str, Any],
                              ) -> list[FieldError]:
    """namespaceStrategy.ValidateUpdate: ValidateNamespace(new) + ValidateNamespaceUpdate
    (metadata rules: name immutable, resourceVersion required, ...)."""
    errs = validate_namespace(new)
    errs.extend(validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                            Path("metadata")))
    return errs


def validate_namespace_status_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                     ) -> list[FieldError]:
    """ValidateNamespaceStatusUpdate: the phase must agree with the deletion timestamp.

    The error path is ``status.Phase`` (capital P), as upstream spells it.
    """
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                       Path("metadata"))
    phase_raw = _map(new, "status").get("phase")
    phase = phase_raw if isinstance(phase_raw, str) else ""
    path = Path("status", "Phase")
    if not _map(new, "metadata").get("deletionTimestamp"):
        if phase != "Active":
            errs.append(invalid(path, phase, "may only be 'Active' if `deletionTimestamp` is "
                                             "empty"))
    elif phase != "Terminating":
        errs.append(invalid(path, phase, "may only be 'Terminating' if `deletionTimestamp` is "
                                         "not empty"))
    return errs


def validate_namespace_finalize_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                       ) -> list[FieldError]:
    """ValidateNamespaceFinalizeUpdate: metadata rules plus each finalizer (indexed path)."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                       Path("metadata"))
    path = Path("spec", "finalizers")
    for i, f in enumerate(_finalizers(new)):
        errs.extend(_validate_finalizer_name(f, path.index(i)))
    return errs
