"""The RuntimeClass admission of a new pod: its RuntimeClass exists, and lends it its overhead
and scheduling constraints.

Theory of operation
-------------------
plugin/pkg/admission/runtimeclass/admission.go, both halves, as one pure function over the
pod and the RuntimeClass it names (the caller looks the class up; only creates of pods are
admitted, never their subresources or updates):

* a pod that names a RuntimeClass that does not exist is refused, 403 ``pods "<name>" is
  forbidden: pod rejected: RuntimeClass "<class>" not found``;
* a RuntimeClass with an ``overhead`` sets the pod's ``spec.overhead`` to its ``podFixed``; a
  pod that set an overhead of its own that is not the same (quantities compared by value) is
  refused (``pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead``), and
  a pod that sets one without a RuntimeClass that defines one is refused too (``pod rejected:
  Pod Overhead set without corresponding RuntimeClass defined Overhead``: upstream's validating
  half, which the mutating half leaves as the only way to fail);
* a RuntimeClass with ``scheduling`` adds its ``nodeSelector`` to the pod's (the same key with
  another value is refused: ``conflict: runtimeClass.scheduling.nodeSelector[k] = v;
  pod.spec.nodeSelector[k] = w``, keys taken in sorted order where Go's map order is random)
  and merges its ``tolerations`` into the pod's as ``pkg/util/tolerations.MergeTolerations``
  does: a toleration another one tolerates a superset of is dropped.

The error names the pod as upstream's ``admission.NewForbidden`` does: by the name its create
request gave, else by its ``generateName`` (upstream admits before the name is generated).
Upstream runs the validating half after the pod's validation, so a pod that is invalid *and*
sets a stray overhead gets the 422 there and the 403 here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from svcnet.api.access import map_of, str_of
from svcnet.api.errors import StatusError, forbidden_error, go_quote
from svcnet.api.resourcelists import quantities_equal

__all__ = ["admit_pod_runtime_class", "merge_tolerations"]

Obj = dict[str, Any]

_OVERHEAD_MISMATCH = "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"
_OVERHEAD_WITHOUT_CLASS = ("pod rejected: Pod Overhead set without corresponding RuntimeClass "
                           "defined Overhead")


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Semantic equality of two tolerations (an absent field is its zero value)."""
    return all(str_of(a, k) == str_of(b, k) for k in ("key", "operator", "value", "effect")) \
        and a.get("tolerationSeconds") == b.get("tolerationSeconds")


def _is_superset(ss: Mapping[str, Any], t: Mapping[str, Any]) -> bool:
    """tolerations.isSuperset: whether ``ss`` tolerates everything ``t`` does."""
    if _same(ss, t):
        return True
    ss_key, t_key, ss_op = str_of(ss, "key"), str_of(t, "key"), str_of(ss, "operator")
    # An empty key with Exists matches every key and value.
    if t_key != ss_key and (ss_key or ss_op != "Exists"):
        return False
    # An empty effect matches every effect.
    ss_effect = str_of(ss, "effect")
    if str_of(t, "effect") != ss_effect and ss_effect:
        return False
    if ss_effect == "NoExecute" and ss.get("tolerationSeconds") is not None:
        seconds = t.get("tolerationSeconds")
        if seconds is None or seconds > ss["tolerationSeconds"]:
            return False
    if ss_op in ("Equal", ""):  # an empty operator means Equal
        return str_of(t, "operator") == "Equal" and str_of(t, "value") == str_of(ss, "value")
    return ss_op == "Exists"


def merge_tolerations(first: Sequence[Mapping[str, Any]],
                      second: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """tolerations.MergeTolerations: both lists in order, without the tolerations another
    one already covers (of two equal ones, the first stays)."""
    everything = [dict(t) for t in (*first, *second)]
    merged: list[Obj] = []
    for i, t in enumerate(everything):
        if any(_is_superset(kept, t) for kept in merged):
            continue
        if any(not _same(t, later) and _is_superset(later, t)
               for later in everything[i + 1:]):
            continue
        merged.append(t)
    return merged


def _refused(pod_name: str, reason: str) -> StatusError:
    return forbidden_error("pods", pod_name, reason)


def _set_overhead(spec: Obj, rc: Mapping[str, Any], pod_name: str) -> None:
    """setOverhead: the class's podFixed becomes the pod's overhead."""
    overhead = rc.get("overhead")
    if not isinstance(overhead, dict):
        return
    pod_fixed = overhead.get("podFixed")
    if spec.get("overhead") is not None and not quantities_equal(pod_fixed, spec["overhead"]):
        raise _refused(pod_name, _OVERHEAD_MISMATCH)
    if pod_fixed:
        spec["overhead"] = copy.deepcopy(pod_fixed)
    else:
        spec.pop("overhead", None)


def _set_scheduling(spec: Obj, rc: Mapping[str, Any], pod_name: str) -> None:
    """setScheduling: the class's nodeSelector and tolerations join the pod's."""
    scheduling = rc.get("scheduling")
    if not isinstance(scheduling, dict):
        return
    wanted = map_of(scheduling, "nodeSelector")
    if spec.get("nodeSelector") is None:
        selector = dict(wanted)
    else:
        selector = dict(map_of(spec, "nodeSelector"))
        for key in sorted(wanted):
            value = wanted[key]
            if key in selector and selector[key] != value:
                raise _refused(pod_name,
                               f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = "
                               f"{value}; pod.spec.nodeSelector[{key}] = {selector[key]}")
            selector[key] = value
    tolerations = merge_tolerations(
        [t for t in spec.get("tolerations") or [] if isinstance(t, dict)],
        [t for t in scheduling.get("tolerations") or [] if isinstance(t, dict)])
    for field, value in (("nodeSelector", selector), ("tolerations", tolerations)):
        if value:
            spec[field] = value
        else:
            spec.pop(field, None)


def admit_pod_runtime_class(pod: Mapping[str, Any], runtime_class: Mapping[str, Any] | None,
                            pod_name: str) -> Obj:
    """The pod as the RuntimeClass admission leaves it, or a 403 StatusError.

    ``runtime_class`` is the RuntimeClass the pod names (None: none by that name, or the pod
    names none); ``pod_name`` is how errors name the pod. Returns a new dict.
    """
    out = copy.deepcopy(dict(pod))
    spec = out.setdefault("spec", {})
    class_name = spec.get("runtimeClassName")
    if class_name is None:
        runtime_class = None
    elif runtime_class is None:
        raise _refused(pod_name, f"pod rejected: RuntimeClass {go_quote(str(class_name))} "
                                 "not found")
    if runtime_class is not None:
        _set_overhead(spec, runtime_class, pod_name)
        _set_scheduling(spec, runtime_class, pod_name)
    # The validating half: only an overhead no RuntimeClass defines can be left to refuse.
    if not isinstance((runtime_class or {}).get("overhead"), dict) and \
            spec.get("overhead") is not None:
        raise _refused(pod_name, _OVERHEAD_WITHOUT_CLASS)
    return out
