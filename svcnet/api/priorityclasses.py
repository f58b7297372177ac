"""scheduling.k8s.io/v1 PriorityClasses: defaulting and validation as Kubernetes does them, and
the two system classes every cluster has.

Theory of operation
-------------------
A PriorityClass (cluster-scoped) maps a name to an integer ``value``; a pod names one in
``spec.priorityClassName`` and the Priority admission (:mod:`svcnet.api.podpriority`) copies
the value into ``spec.priority``, and the class's ``preemptionPolicy`` into the pod's. At most
one class is the ``globalDefault``: pods that name none get it.

Mirrors:

* ``pkg/apis/scheduling/types.go`` — the constants: user classes go up to
  :data:`HIGHEST_USER_DEFINABLE_PRIORITY` (one billion); above that are the system classes,
  ``system-cluster-critical`` at :data:`SYSTEM_CRITICAL_PRIORITY` (two billion) and
  ``system-node-critical`` a thousand higher; names starting ``system-`` are reserved;
* ``pkg/apis/scheduling/v1/helpers.go`` — the system classes (with their descriptions) and
  ``IsKnownSystemPriorityClass``, whose error text ends up in the validation message;
* ``pkg/apis/scheduling/v1/defaults.go`` — a missing ``preemptionPolicy`` is
  ``PreemptLowerPriority``;
* ``pkg/apis/scheduling/validation/validation.go`` — ``ValidatePriorityClass``: core's
  ObjectMeta rules (not namespaced, a DNS-subdomain name, core's finalizer names); a
  ``system-`` name must be one of the system classes with its exact value and globalDefault
  (one Forbidden on ``metadata.name``), any other class's value is at most one billion
  (Forbidden on ``value``); the preemption policy as a pod's. ``ValidatePriorityClassUpdate``:
  the ObjectMeta update rules, ``value`` cannot change (Forbidden, "may not be changed in an
  update."), nor ``preemptionPolicy`` (Invalid, "field is immutable");
* ``pkg/registry/scheduling/priorityclass/strategy.go`` — a create starts at generation 1,
  which nothing bumps; an update is validated by the update rules *only* (upstream does not
  re-run the create rules, so the reserved-name and value checks are not repeated, and
  ``globalDefault`` of a system class can be turned on);
* ``pkg/registry/scheduling/rest/storage_scheduling.go`` — the server creates the system
  classes that are missing once it serves (:data:`SYSTEM_PRIORITY_CLASSES`), and
  ``pkg/registry/scheduling/priorityclass/storage/storage.go`` refuses to delete them
  (:data:`SYSTEM_CLASS_DELETE_REFUSAL`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Final

from svcnet.api.access import int_of, map_of, str_of
from svcnet.api.errors import FieldError, Path, forbidden, invalid
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import name_is_dns_subdomain
from svcnet.api.pods import validate_preemption_policy

__all__ = [
    "API_VERSION",
    "DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS",
    "GROUP",
    "HIGHEST_USER_DEFINABLE_PRIORITY",
    "PREEMPT_LOWER_PRIORITY",
    "SYSTEM_CLASS_DELETE_REFUSAL",
    "SYSTEM_CLUSTER_CRITICAL",
    "SYSTEM_CRITICAL_PRIORITY",
    "SYSTEM_NODE_CRITICAL",
    "SYSTEM_PRIORITY_CLASSES",
    "default_priority_class",
    "is_system_priority_class",
    "set_defaults_priority_class",
    "validate_priority_class",
    "validate_priority_class_update",
]

Obj = dict[str, Any]
GROUP: Final = "scheduling.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"

#: The largest value a class that is not a system class may have.
HIGHEST_USER_DEFINABLE_PRIORITY: Final = 1_000_000_000
#: ``system-cluster-critical``'s value; ``system-node-critical`` is a thousand higher.
SYSTEM_CRITICAL_PRIORITY: Final = 2 * HIGHEST_USER_DEFINABLE_PRIORITY
#: A pod's priority when it names no class and no class is the global default.
DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS: Final = 0
SYSTEM_CLUSTER_CRITICAL: Final = "system-cluster-critical"
SYSTEM_NODE_CRITICAL: Final = "system-node-critical"
PREEMPT_LOWER_PRIORITY: Final = "PreemptLowerPriority"
#: The reason (403) a delete of a system class is refused with.
SYSTEM_CLASS_DELETE_REFUSAL: Final = "this is a system priority class and cannot be deleted"
_SYSTEM_PREFIX: Final = "system-"
_META: Final = Path("metadata")
_VALUE: Final = Path("value")
_PREEMPTION_POLICY: Final = Path("preemptionPolicy")


def _system_class(name: str, value: int, description: str) -> Obj:
    # As the server stores them: defaulted (preemptionPolicy), globalDefault false.
    return {"apiVersion": API_VERSION, "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "description": description,
            "preemptionPolicy": PREEMPT_LOWER_PRIORITY}


#: The classes the API server creates when they are missing, in upstream's order.
SYSTEM_PRIORITY_CLASSES: Final[tuple[Obj, ...]] = (
    _system_class(SYSTEM_NODE_CRITICAL, SYSTEM_CRITICAL_PRIORITY + 1000,
                  "Used for system critical pods that must not be moved from their current "
                  "node."),
    _system_class(SYSTEM_CLUSTER_CRITICAL, SYSTEM_CRITICAL_PRIORITY,
                  "Used for system critical pods that must run in the cluster, but can be "
                  "moved to another node if necessary."),
)
_BY_NAME: Final[dict[str, Obj]] = {c["metadata"]["name"]: c for c in SYSTEM_PRIORITY_CLASSES}


def is_system_priority_class(name: str) -> bool:
    """Whether ``name`` is one of the two system classes (which cannot be deleted)."""
    return name in _BY_NAME


def _known_system_class_error(name: str, value: int, global_default: bool) -> str:
    """IsKnownSystemPriorityClass's error ("" when the class is exactly a system one)."""
    known = _BY_NAME.get(name)
    if known is None:
        return f"{name} is not a known system priority class"
    if known["value"] != value:
        return f"value of {name} PriorityClass must be {known['value']}"
    if global_default:  # neither system class is the global default
        return f"globalDefault of {name} PriorityClass must be false"
    return ""


def set_defaults_priority_class(obj: Mapping[str, Any]) -> Obj:
    """SetDefaults_PriorityClass: ``preemptionPolicy`` defaults to ``PreemptLowerPriority``
    (a copy, with ``value`` as Go writes it)."""
    out = copy.deepcopy(dict(obj))
    if out.get("preemptionPolicy") is None:
        out["preemptionPolicy"] = PREEMPT_LOWER_PRIORITY
    # Not a default: Go's encoder writes ``value`` (no omitempty) even at 0.
    out.setdefault("value", 0)
    return out


def validate_priority_class(pc: Mapping[str, Any]) -> list[FieldError]:
    """ValidatePriorityClass."""
    errs = validate_object_meta(map_of(pc, "metadata"), requires_namespace=False,
                                name_fn=name_is_dns_subdomain, path=_META)
    name = str_of(map_of(pc, "metadata"), "name")
    value = int_of(pc, "value")
    if name.startswith(_SYSTEM_PREFIX):
        reason = _known_system_class_error(name, value, pc.get("globalDefault") is True)
        if reason:
            errs.append(forbidden(_META.child("name"),
                                  f"priority class names with '{_SYSTEM_PREFIX}' prefix are "
                                  f"reserved for system use only. error: {reason}"))
    elif value > HIGHEST_USER_DEFINABLE_PRIORITY:
        errs.append(forbidden(_VALUE, "maximum allowed value of a user defined priority is "
                                      f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
    if pc.get("preemptionPolicy") is not None:
        errs.extend(validate_preemption_policy(str_of(pc, "preemptionPolicy"),
                                               _PREEMPTION_POLICY))
    return errs


def validate_priority_class_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                   ) -> list[FieldError]:
    """ValidatePriorityClassUpdate (all the strategy's ValidateUpdate runs)."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    if int_of(new, "value") != int_of(old, "value"):
        errs.append(forbidden(_VALUE, "may not be changed in an update."))
    policy = new.get("preemptionPolicy")
    if policy != old.get("preemptionPolicy"):
        errs.append(invalid(_PREEMPTION_POLICY, policy, FIELD_IMMUTABLE_ERROR_MSG))
    return errs


def default_priority_class(classes: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The global default class: of those marked ``globalDefault`` (more than one only after a
    race of two writes), the one with the lowest value; None when none is marked."""
    found: Mapping[str, Any] | None = None
    for pc in classes:
        if pc.get("globalDefault") is True and (
                found is None or int_of(pc, "value") < int_of(found, "value")):
            found = pc
    return found
