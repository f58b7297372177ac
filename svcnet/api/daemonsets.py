"""apps/v1 DaemonSets: defaulting, the registry's preparation steps, and validation.

Theory of operation. Mirrors ``pkg/apis/apps/v1/defaults.go`` (``SetDefaults_DaemonSet``),
``pkg/apis/apps/validation/validation.go`` (``ValidateDaemonSet``/``...Update``/
``...StatusUpdate``, ``ValidateDaemonSetSpec``, ``ValidateDaemonSetUpdateStrategy``,
``ValidateRollingUpdateDaemonSet``) and ``pkg/registry/apps/daemonset/strategy.go``:

* the template generation: the internal ``spec.templateGeneration`` is, in apps/v1, the
  ``deprecated.daemonset.template.generation`` annotation. It is 1 on create and goes up by one
  with every template change (PrepareForUpdate bumps it together with ``metadata.generation``),
  so ``ValidateDaemonSetSpecUpdate``'s rules on it always hold for writes through the API;
* ``spec.selector`` is immutable in apps/v1 (the strategy's check, as for Deployments);
* status is reset on create and kept on update; the status endpoint keeps the spec.

Objects are JSON dicts as on the wire; inputs are never mutated. The pod-template and selector
rules are the ones of :mod:`svcnet.api.workloads` (one home), with DaemonSet's own messages.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import int_of as _int, map_of as _map
from svcnet.api.errors import FieldError, GoRaw, Path, go_quote, invalid, not_supported, required
from svcnet.api.labels import SelectorError, selector_from_label_selector, validate_label_selector
from svcnet.api.meta import validate_object_meta_update
from svcnet.api.workloads import (
    go_int_or_string,
    go_label_selector,
    go_string_map,
    immutable_selector,
    int_or_percent_value,
    meta_of_mut,
    nonnegative,
    not_more_than_100_percent,
    opt_int,
    prepare_for_create,
    prepare_for_status_update,
    prepare_for_update,
    semantically_equal,
    set_defaults_pod_template,
    validate_collision_count,
    validate_create_meta,
    validate_pod_template,
    validate_positive_int_or_percent,
)

__all__ = [
    "ON_DELETE",
    "ROLLING_UPDATE",
    "TEMPLATE_GENERATION_ANNOTATION",
    "prepare_daemonset_for_create",
    "prepare_daemonset_for_status_update",
    "prepare_daemonset_for_update",
    "set_defaults_daemonset",
    "template_generation",
    "validate_daemonset",
    "validate_daemonset_status_update",
    "validate_daemonset_update",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

ROLLING_UPDATE: Final = "RollingUpdate"
ON_DELETE: Final = "OnDelete"
TEMPLATE_GENERATION_ANNOTATION: Final = "deprecated.daemonset.template.generation"
DEFAULT_REVISION_HISTORY_LIMIT: Final = 10

_SPEC: Final = Path("spec")
_STATUS: Final = Path("status")
_STATUS_COUNTS: Final = ("currentNumberScheduled", "numberMisscheduled",
                         "desiredNumberScheduled", "numberReady", "observedGeneration",
                         "updatedNumberScheduled", "numberAvailable", "numberUnavailable")


def set_defaults_daemonset(obj: ObjMap) -> Obj:
    """SetDefaults_DaemonSet: updateStrategy ``RollingUpdate`` with ``maxUnavailable: 1`` and
    ``maxSurge: 0`` (only for that type), ``revisionHistoryLimit: 10``; the template as a pod
    template."""
    out = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        strategy = spec["updateStrategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = ROLLING_UPDATE
    if strategy["type"] == ROLLING_UPDATE:
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            rolling = strategy["rollingUpdate"] = {}
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = DEFAULT_REVISION_HISTORY_LIMIT
    spec["template"] = set_defaults_pod_template(_map(spec, "template"))
    return out


def template_generation(ds: ObjMap) -> int:
    """The template generation (the annotation; 0 when absent or not a number)."""
    raw = _map(_map(ds, "metadata"), "annotations").get(TEMPLATE_GENERATION_ANNOTATION)
    try:
        return int(str(raw))
    except ValueError:
        return 0


def _set_template_generation(obj: Obj, value: int) -> None:
    meta = meta_of_mut(obj)
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[TEMPLATE_GENERATION_ANNOTATION] = str(value)


def prepare_daemonset_for_create(obj: ObjMap) -> Obj:
    """daemonSetStrategy.PrepareForCreate: status reset, template generation 1."""
    out = prepare_for_create(obj)
    _set_template_generation(out, 1)
    return out


def prepare_daemonset_for_update(new: ObjMap, old: ObjMap) -> Obj:
    """daemonSetStrategy.PrepareForUpdate: status kept; a changed template bumps the template
    generation (the registry bumps ``metadata.generation`` for any spec change)."""
    out = prepare_for_update(new, old)
    old_generation = template_generation(old)
    if not semantically_equal(_map(new, "spec").get("template"),
                              _map(old, "spec").get("template")):
        _set_template_generation(out, old_generation + 1)
    else:
        _set_template_generation(out, old_generation)
    return out


def prepare_daemonset_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    """daemonSetStatusStrategy.PrepareForUpdate: the spec comes from the stored object."""
    return prepare_for_status_update(new, old, keep_labels=False)


def _go_rolling_update(rolling: object) -> GoRaw:
    if not isinstance(rolling, Mapping):
        return GoRaw("(*apps.RollingUpdateDaemonSet)(nil)")
    return GoRaw("&apps.RollingUpdateDaemonSet{MaxUnavailable:"
                 f"{go_int_or_string(rolling.get('maxUnavailable'))}, "
                 f"MaxSurge:{go_int_or_string(rolling.get('maxSurge'))}}}")


def _validate_rolling_update(rolling: ObjMap, path: Path) -> list[FieldError]:
    """ValidateRollingUpdateDaemonSet: exactly one of maxUnavailable and maxSurge non-zero."""
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = validate_positive_int_or_percent(unavailable, path.child("maxUnavailable"))
    errs.extend(validate_positive_int_or_percent(surge, path.child("maxSurge")))
    errs.extend(not_more_than_100_percent(unavailable, path.child("maxUnavailable")))
    errs.extend(not_more_than_100_percent(surge, path.child("maxSurge")))
    has_unavailable = int_or_percent_value(unavailable) != 0
    has_surge = int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        errs.append(invalid(path.child("maxSurge"), go_int_or_string(surge),
                            "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errs.append(required(path.child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
    return errs


def _validate_update_strategy(strategy: ObjMap, path: Path) -> list[FieldError]:
    """ValidateDaemonSetUpdateStrategy."""
    stype = strategy.get("type") or ""
    rolling = strategy.get("rollingUpdate")
    if stype == ON_DELETE:
        return []
    if stype == ROLLING_UPDATE:
        if not isinstance(rolling, Mapping):
            return [required(path.child("rollingUpdate"))]
        return _validate_rolling_update(rolling, path.child("rollingUpdate"))
    return [not_supported(path, GoRaw(f"apps.DaemonSetUpdateStrategy{{Type:{go_quote(stype)}, "
                                      f"RollingUpdate:{_go_rolling_update(rolling)}}}"),
                          [ROLLING_UPDATE, ON_DELETE])]


def _validate_spec(spec: ObjMap, path: Path, generation: int) -> list[FieldError]:
    """ValidateDaemonSetSpec, in upstream's order."""
    raw_selector = spec.get("selector")
    sel_path = path.child("selector")
    errs = validate_label_selector(raw_selector if isinstance(raw_selector, Mapping) else None,
                                   sel_path)
    template = _map(spec, "template")
    with contextlib.suppress(SelectorError):
        selector = selector_from_label_selector(
            raw_selector if isinstance(raw_selector, Mapping) else None)
        labels = _map(template, "metadata").get("labels")
        if not selector.matches(labels if isinstance(labels, Mapping) else {}):
            errs.append(invalid(path.child("template", "metadata", "labels"),
                                go_string_map(labels),
                                "`selector` does not match template `labels`"))
    if isinstance(raw_selector, Mapping) and not raw_selector.get("matchLabels") and not (
            raw_selector.get("matchExpressions")):
        errs.append(invalid(sel_path, go_label_selector(raw_selector),
                            "empty selector is invalid for daemonset"))
    errs.extend(validate_pod_template(template, False, None, path.child("template"),
                                      "DaemonSet"))
    errs.extend(nonnegative(_int(spec, "minReadySeconds"), path.child("minReadySeconds")))
    errs.extend(nonnegative(generation, path.child("templateGeneration")))
    errs.extend(_validate_update_strategy(_map(spec, "updateStrategy"),
                                          path.child("updateStrategy")))
    history = opt_int(spec, "revisionHistoryLimit")
    if history is not None:
        errs.extend(nonnegative(history, path.child("revisionHistoryLimit")))
    return errs


def validate_daemonset(obj: ObjMap) -> list[FieldError]:
    """ValidateDaemonSet (call after defaulting)."""
    errs = validate_create_meta(obj)
    errs.extend(_validate_spec(_map(obj, "spec"), _SPEC, template_generation(obj)))
    return errs


def validate_daemonset_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateDaemonSetUpdate (+ ValidateDaemonSetSpecUpdate) and apps/v1's immutable
    selector."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                       Path("metadata"))
    new_gen, old_gen = template_generation(new), template_generation(old)
    gen_path = _SPEC.child("templateGeneration")
    if new_gen < old_gen:
        errs.append(invalid(gen_path, new_gen, "must not be decremented"))
    template_updated = not semantically_equal(_map(new, "spec").get("template"),
                                              _map(old, "spec").get("template"))
    if new_gen == old_gen and template_updated:
        errs.append(invalid(gen_path, new_gen, "must be incremented upon template update"))
    elif new_gen > old_gen and not template_updated:
        errs.append(invalid(gen_path, new_gen, "must not be incremented without template update"))
    errs.extend(_validate_spec(_map(new, "spec"), _SPEC, new_gen))
    errs.extend(immutable_selector(new, old))
    return errs


def validate_daemonset_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateDaemonSetStatusUpdate: non-negative counts, collisionCount not decremented."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"),
                                       Path("metadata"))
    status = _map(new, "status")
    for key in _STATUS_COUNTS:
        errs.extend(nonnegative(_int(status, key), _STATUS.child(key)))
    errs.extend(validate_collision_count(status, _map(old, "status")))
    return errs
