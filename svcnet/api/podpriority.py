"""The Priority admission: a new pod's priority comes from its PriorityClass, and at most one
PriorityClass is the global default.

Theory of operation
-------------------
plugin/pkg/admission/priority/admission.go, as pure functions over the object and the stored
PriorityClasses (the caller lists them; subresources are never admitted):

* a new pod (:func:`admit_pod_priority`) that names no class gets the global default class
  (:func:`svcnet.api.priorityclasses.default_priority_class`): its name in
  ``spec.priorityClassName``, its value and its preemption policy; with no default class the
  pod gets priority 0, no class name, and ``PreemptLowerPriority``. A pod that names a class
  that does not exist is refused, 403 ``pods "<name>" is forbidden: no PriorityClass with name
  <class> was found``. A pod may carry ``spec.priority`` or ``spec.preemptionPolicy`` only
  when it is what admission computes; otherwise 403 with upstream's two messages;
* an updated pod (:func:`keep_pod_priority`) that leaves out ``spec.priority`` or
  ``spec.preemptionPolicy`` keeps the stored ones (a client that replaces a pod from its own
  manifest did not mean to change them); pod update validation refuses any real change;
* a PriorityClass created or updated as ``globalDefault`` (:func:`admit_priority_class`) is
  refused when another class already is the default (403 ``PriorityClass <other> is already
  marked as default. Only one default can exist``); updating the default class itself is
  fine. Upstream runs this half as validating admission, after the class's own validation.

Errors name the pod as ``admission.NewForbidden`` does: the name the create request gave, else
its ``generateName`` (the caller works that out).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from svcnet.api.access import int_of, map_of, name_of, str_of
from svcnet.api.errors import forbidden_error
from svcnet.api.priorityclasses import (
    DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS,
    GROUP,
    PREEMPT_LOWER_PRIORITY,
    default_priority_class,
)

__all__ = ["admit_pod_priority", "admit_priority_class", "keep_pod_priority"]

Obj = dict[str, Any]


def admit_pod_priority(pod: Mapping[str, Any], classes: Iterable[Mapping[str, Any]],
                       pod_name: str) -> Obj:
    """The new pod as the Priority admission leaves it (a copy), or a 403 StatusError.

    ``classes`` are every stored PriorityClass; ``pod_name`` is how errors name the pod.
    """
    out = copy.deepcopy(dict(pod))
    spec = out.setdefault("spec", {})
    class_name = str_of(spec, "priorityClassName")
    policy: str | None
    if not class_name:
        found = default_priority_class(classes)
        if found is None:
            priority, policy = DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS, \
                PREEMPT_LOWER_PRIORITY
        else:
            spec["priorityClassName"] = name_of(found)
            priority, policy = int_of(found, "value"), found.get("preemptionPolicy")
    else:
        named = next((pc for pc in classes if name_of(pc) == class_name), None)
        if named is None:
            raise forbidden_error("pods", pod_name,
                                  f"no PriorityClass with name {class_name} was found")
        priority, policy = int_of(named, "value"), named.get("preemptionPolicy")
    _set_computed(spec, "priority", "integer value of priority", priority, pod_name)
    if policy is not None:
        _set_computed(spec, "preemptionPolicy", "string value of PreemptionPolicy", policy,
                      pod_name)
    return out


def _set_computed(spec: Obj, field: str, what: str, computed: object, pod_name: str) -> None:
    """Set ``spec[field]`` to what admission computed; a pod that brought another value of its
    own is refused."""
    given = spec.get(field)
    if given is not None and given != computed:
        raise forbidden_error(
            "pods", pod_name,
            f"the {what} ({given}) must not be provided in pod spec; priority admission "
            f"controller computed {computed} from the given PriorityClass name")
    spec[field] = computed


def keep_pod_priority(new: Obj, old: Mapping[str, Any]) -> Obj:
    """An updated pod with the stored priority and preemption policy where it has none
    (``new`` itself when it lacks neither; else a copy that shares all but ``spec``'s top
    level)."""
    spec, old_spec = map_of(new, "spec"), map_of(old, "spec")
    kept = {f: old_spec[f] for f in ("priority", "preemptionPolicy")
            if spec.get(f) is None and old_spec.get(f) is not None}
    if not kept or not isinstance(new.get("spec"), dict):
        return new
    return {**new, "spec": {**spec, **kept}}


def admit_priority_class(pc: Mapping[str, Any], classes: Iterable[Mapping[str, Any]],
                         *, update: bool) -> None:
    """Refuse (403 StatusError) a class that would be a second global default.

    ``classes`` are the stored PriorityClasses (on update, the class's stored self among
    them); ``update`` tells a create from an update.
    """
    if pc.get("globalDefault") is not True:
        return
    current = default_priority_class(classes)
    if current is None:
        return
    name = name_of(pc)
    if not update or name_of(current) != name:
        raise forbidden_error("priorityclasses", name,
                              f"PriorityClass {name_of(current)} is already marked as "
                              "default. Only one default can exist", GROUP)
