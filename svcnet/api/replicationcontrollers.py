"""core/v1 ReplicationControllers: defaulting, the registry's preparation steps, validation.

Theory of operation. Mirrors ``pkg/apis/core/v1/defaults.go``
(``SetDefaults_ReplicationController``: the selector, and the object's labels, default to the
template's labels; ``replicas: 1``), ``pkg/apis/core/validation/validation.go``
(``ValidateReplicationController``/``...Update``/``...StatusUpdate``,
``ValidateReplicationControllerSpec``, ``ValidateNonEmptySelector``,
``ValidatePodTemplateSpecForRC``) and ``pkg/registry/core/replicationcontroller/strategy.go``
(status reset on create and kept on update, spec kept on a status update; unlike the apps
kinds, the selector of an RC may change).

An RC's ``spec.selector`` is a plain label map (``SelectorFromSet``), not a LabelSelector; its
``spec.template`` is optional in the type but required by validation. The pod-template rules
and the status rules are those of ReplicaSets (:mod:`svcnet.api.workloads`, one home).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import int_of as _int, map_of as _map
from svcnet.api.errors import FieldError, Path, required
from svcnet.api.labels import selector_from_set
from svcnet.api.meta import validate_object_meta_update
from svcnet.api.workloads import (
    nonnegative,
    prepare_for_create,
    prepare_for_status_update,
    prepare_for_update,
    set_defaults_pod_template,
    validate_create_meta,
    validate_pod_template,
    validate_replicaset_status_update,
)

__all__ = [
    "prepare_rc_for_create",
    "prepare_rc_for_status_update",
    "prepare_rc_for_update",
    "set_defaults_rc",
    "validate_rc",
    "validate_rc_status_update",
    "validate_rc_update",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

_SPEC: Final = Path("spec")


def set_defaults_rc(obj: ObjMap) -> Obj:
    """SetDefaults_ReplicationController: an empty selector and empty labels become the
    template's labels (when it has any); ``replicas: 1``; the template as a pod template."""
    out = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    template = spec.get("template")
    if isinstance(template, dict):
        labels = _map(template, "metadata").get("labels")
        if isinstance(labels, dict):
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = out.get("metadata")
            if not isinstance(meta, dict):
                meta = out["metadata"] = {}
            if not meta.get("labels"):
                meta["labels"] = dict(labels)
        spec["template"] = set_defaults_pod_template(template)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    return out


def prepare_rc_for_create(obj: ObjMap) -> Obj:
    """rcStrategy.PrepareForCreate: status is the server's (reset)."""
    return prepare_for_create(obj)


def prepare_rc_for_update(new: ObjMap, old: ObjMap) -> Obj:
    """rcStrategy.PrepareForUpdate: the main endpoint cannot change status."""
    return prepare_for_update(new, old)


def prepare_rc_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    """rcStatusStrategy.PrepareForUpdate: the spec comes from the stored object."""
    return prepare_for_status_update(new, old, keep_labels=False)


def _validate_spec(spec: ObjMap, path: Path) -> list[FieldError]:
    """ValidateReplicationControllerSpec, in upstream's order."""
    errs = nonnegative(_int(spec, "minReadySeconds"), path.child("minReadySeconds"))
    raw = spec.get("selector")
    selector = selector_from_set(raw if isinstance(raw, Mapping) else None)
    if selector.empty():
        errs.append(required(path.child("selector")))
    errs.extend(nonnegative(_int(spec, "replicas"), path.child("replicas")))
    template = spec.get("template")
    if not isinstance(template, Mapping):
        errs.append(required(path.child("template")))
    else:
        errs.extend(validate_pod_template(template, True, selector, path.child("template"),
                                          "ReplicationController"))
    return errs


def validate_rc(obj: ObjMap) -> list[FieldError]:
    """ValidateReplicationController (call after defaulting)."""
    errs = validate_create_meta(obj)
    errs.extend(_validate_spec(_map(obj, "spec"), _SPEC))
    return errs


def validate_rc_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateReplicationControllerUpdate: metadata, and the new spec as on create."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                       Path("metadata"))
    errs.extend(_validate_spec(_map(new, "spec"), _SPEC))
    return errs


def validate_rc_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateReplicationControllerStatusUpdate: the counts of a ReplicaSet's status."""
    return validate_replicaset_status_update(new, old)
