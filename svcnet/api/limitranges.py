"""core/v1 LimitRanges: defaulting, validation, and the LimitRanger admission of pods and
claims.

Theory of operation
-------------------
* Defaulting follows ``pkg/apis/core/v1/defaults.go`` (SetDefaults_LimitRangeItem): an item of
  type ``Container`` gets ``default`` from ``max`` where it has none, then ``defaultRequest``
  from ``default``, then from ``min``. Empty lists are left out, as Go's ``omitempty`` does.
* Validation follows ``ValidateLimitRange`` (``pkg/apis/core/validation/validation.go``):
  the type is a standard limit type or a qualified name, each type once; resource names as
  containers name them for ``Pod``/``Container`` items, as any resource otherwise; a ``Pod``
  item has no ``default``/``defaultRequest``; a ``PersistentVolumeClaim`` item bounds
  ``storage`` below or above; and for each resource ``min <= defaultRequest <= default <=
  max``, ``maxLimitRequestRatio >= 1`` and no more than ``max/min``, and ``default ==
  defaultRequest`` for resources that cannot be overcommitted (extended resources, hugepages).
  Upstream ranges over Go maps; errors come here in the order of sorted names.
* The admission follows ``plugin/pkg/admission/limitranger/admission.go``: on a pod's create,
  every container and init container gets the ``default`` limits and ``defaultRequest``
  requests of the namespace's ``Container`` items that it does not set, and the pod is
  annotated ``kubernetes.io/limit-ranger: LimitRanger plugin set: cpu request for container
  app; ...``; then each LimitRange's ``Container`` items bound each container, its ``Pod``
  items the pod's summed requests and limits (init containers taken at their largest, as
  ``resourcehelper.PodRequests``), and on a claim's create its ``PersistentVolumeClaim``
  items bound the claim's request. Violations are refused with 403, every message joined as
  ``utilerrors.NewAggregate`` joins them: ``pods "x" is forbidden: minimum cpu usage per
  Container is 100m, but request is 50m``. Quantities are compared by exact value (upstream
  compares milli-values, which is the same for every quantity below 9.2e15).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Final

from svcnet.api.access import map_of
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    duplicate,
    forbidden,
    forbidden_error,
    invalid,
    required,
)
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import is_qualified_name, name_is_dns_subdomain
from svcnet.api.resourcelists import (
    HUGE_PAGES_PREFIX,
    format_quantity,
    is_binary_quantity,
    is_extended_resource_name,
    parse_quantity,
    quantity_string,
    validate_container_resource_name,
    validate_resource_name,
)

__all__ = [
    "LIMIT_RANGER_ANNOTATION",
    "admit_claim_limits",
    "check_pod_limits",
    "default_pod_limits",
    "pod_requests_and_limits",
    "set_defaults_limit_range",
    "validate_limit_range",
    "validate_limit_range_update",
]

Obj = dict[str, Any]

LIMIT_RANGER_ANNOTATION: Final = "kubernetes.io/limit-ranger"
TYPE_POD: Final = "Pod"
TYPE_CONTAINER: Final = "Container"
TYPE_CLAIM: Final = "PersistentVolumeClaim"
_STANDARD_TYPES: Final = frozenset({TYPE_POD, TYPE_CONTAINER, TYPE_CLAIM})


def _items(limit_range: Mapping[str, Any]) -> list[Obj]:
    return [i for i in (map_of(limit_range, "spec").get("limits") or [])
            if isinstance(i, dict)]


# ---------------------------------------------------------------------------- defaulting


def set_defaults_limit_range(obj: Obj) -> Obj:
    """SetDefaults_LimitRangeItem for every item of type ``Container``."""
    for item in _items(obj):
        if item.get("type") != TYPE_CONTAINER:
            continue
        default = dict(item.get("default") or {})
        request = dict(item.get("defaultRequest") or {})
        for key, value in (item.get("max") or {}).items():
            default.setdefault(key, value)
        for key, value in default.items():
            request.setdefault(key, value)
        for key, value in (item.get("min") or {}).items():
            request.setdefault(key, value)
        if default:
            item["default"] = default
        if request:
            item["defaultRequest"] = request
    return obj


# ---------------------------------------------------------------------------- validation


def _validate_type_name(value: str, path: Path) -> list[FieldError]:
    """validateLimitRangeTypeName."""
    errs = [invalid(path, value, m) for m in is_qualified_name(value)]
    if errs:
        return errs
    if "/" not in value and value not in _STANDARD_TYPES:
        errs.append(invalid(path, value, "must be a standard limit type or fully qualified"))
    return errs


def _validate_resource_name(limit_type: str, name: str, path: Path) -> list[FieldError]:
    """validateLimitRangeResourceName: containers' names for Pod and Container items."""
    if limit_type in (TYPE_POD, TYPE_CONTAINER):
        return validate_container_resource_name(name, path)
    return validate_resource_name(name, path)


def _overcommit_allowed(name: str) -> bool:
    """helper.IsOvercommitAllowed: native resources other than hugepages."""
    return not is_extended_resource_name(name) and not name.startswith(HUGE_PAGES_PREFIX)


def _q(raw: object) -> Fraction:
    return parse_quantity(raw) or Fraction(0)


def _shown(raw: object) -> GoRaw:
    """A quantity as field.Invalid prints one (it is a fmt.Stringer)."""
    return GoRaw(quantity_string(raw))


def _validate_item(item: Mapping[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    limit_type = str(item.get("type") or "")
    lists: dict[str, Mapping[str, Any]] = {}
    for field in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
        values = item.get(field) or {}
        if field in ("default", "defaultRequest") and limit_type == TYPE_POD:
            if values:
                errs.append(forbidden(path.child(field),
                                      "may not be specified when `type` is 'Pod'"))
            continue
        if field == "maxLimitRequestRatio" and limit_type == TYPE_CLAIM:
            _check_claim_bounds(item, path, errs)
        for name in sorted(values):
            errs.extend(_validate_resource_name(limit_type, name, path.child(field).key(name)))
        lists[field] = values
    keys = sorted({k for values in lists.values() for k in values})
    mins, maxs = lists.get("min", {}), lists.get("max", {})
    defaults, requests = lists.get("default", {}), lists.get("defaultRequest", {})
    ratios = lists.get("maxLimitRequestRatio", {})
    for k in keys:
        errs.extend(_validate_ordering(k, path, mins.get(k), maxs.get(k), defaults.get(k),
                                       requests.get(k), ratios.get(k)))
    return errs


def _check_claim_bounds(item: Mapping[str, Any], path: Path, errs: list[FieldError]) -> None:
    if "storage" not in (item.get("min") or {}) and "storage" not in (item.get("max") or {}):
        errs.append(required(path.child("limits"), "either minimum or maximum storage value is "
                                                   "required, but neither was provided"))


def _validate_ordering(k: str, path: Path, mn: object, mx: object, df: object, dr: object,
                       ratio: object) -> list[FieldError]:
    """The per-resource checks of ValidateLimitRange, in upstream's order."""
    errs: list[FieldError] = []
    s = quantity_string
    # (field reported, lower, upper, value reported, message): lower must not exceed upper.
    pairs = (("min", mn, mx, mn, "min value {a} is greater than max value {b}"),
             ("defaultRequest", mn, dr, dr, "min value {a} is greater than default request "
                                            "value {b}"),
             ("defaultRequest", dr, mx, dr, "default request value {a} is greater than max "
                                            "value {b}"),
             ("defaultRequest", dr, df, dr, "default request value {a} is greater than "
                                            "default limit value {b}"),
             ("default", mn, df, mn, "min value {a} is greater than default value {b}"),
             ("default", df, mx, mx, "default value {a} is greater than max value {b}"))
    for field, lower, upper, shown, message in pairs:
        if lower is not None and upper is not None and _q(lower) > _q(upper):
            errs.append(invalid(path.child(field).key(k), _shown(shown),
                                message.format(a=s(lower), b=s(upper))))
    if ratio is not None and _q(ratio) < 1:
        errs.append(invalid(path.child("maxLimitRequestRatio").key(k), _shown(ratio),
                            f"ratio {s(ratio)} is less than 1"))
    if ratio is not None and mn is not None and mx is not None and _q(mn) != 0:
        limit = _q(mx) / _q(mn)
        if _q(ratio) > limit:
            errs.append(invalid(path.child("maxLimitRequestRatio").key(k), _shown(ratio),
                                f"ratio {s(ratio)} is greater than max/min = "
                                f"{float(limit):f}"))
    if (not _overcommit_allowed(k) and df is not None and dr is not None
            and _q(df) != _q(dr)):
        errs.append(invalid(path.child("defaultRequest").key(k), _shown(dr),
                            f"default value {s(df)} must equal to defaultRequest value {s(dr)} "
                            f"in {k}"))
    return errs


def validate_limit_range(obj: Mapping[str, Any]) -> list[FieldError]:
    """ValidateLimitRange."""
    errs = validate_object_meta(obj.get("metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain)
    path = Path("spec", "limits")
    seen: set[str] = set()
    for i, item in enumerate(_items(obj)):
        item_path = path.index(i)
        limit_type = str(item.get("type") or "")
        errs.extend(_validate_type_name(limit_type, item_path.child("type")))
        if limit_type in seen:
            errs.append(duplicate(item_path.child("type"), limit_type))
        seen.add(limit_type)
        errs.extend(_validate_item(item, item_path))
    return errs


def validate_limit_range_update(new: Mapping[str, Any], old: Mapping[str, Any]
                                ) -> list[FieldError]:
    """The LimitRange strategy's ValidateUpdate: metadata update rules, then the create
    rules."""
    return [*validate_object_meta_update(new.get("metadata"), old.get("metadata")),
            *validate_limit_range(new)]


# ----------------------------------------------------------------------------- admission


def _aggregate(messages: Iterable[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): deduplicated, bracketed when more than one."""
    seen = list(dict.fromkeys(messages))
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


def _min_constraint(limit_type: str, name: str, enforced: object, requests: Mapping[str, Any],
                    limits: Mapping[str, Any]) -> str | None:
    e = quantity_string(enforced)
    if name not in requests:
        return f"minimum {name} usage per {limit_type} is {e}.  No request is specified"
    if _q(requests[name]) < _q(enforced):
        return (f"minimum {name} usage per {limit_type} is {e}, but request is "
                f"{quantity_string(requests[name])}")
    if name in limits and _q(limits[name]) < _q(enforced):
        return (f"minimum {name} usage per {limit_type} is {e}, but limit is "
                f"{quantity_string(limits[name])}")
    return None


def _above_max(limit_type: str, name: str, enforced: object, values: Mapping[str, Any],
               what: str) -> str | None:
    if name in values and _q(values[name]) > _q(enforced):
        return (f"maximum {name} usage per {limit_type} is {quantity_string(enforced)}, but "
                f"{what} is {quantity_string(values[name])}")
    return None


def _max_constraint(limit_type: str, name: str, enforced: object, requests: Mapping[str, Any],
                    limits: Mapping[str, Any]) -> str | None:
    if name not in limits:
        return (f"maximum {name} usage per {limit_type} is {quantity_string(enforced)}.  No "
                f"limit is specified")
    return (_above_max(limit_type, name, enforced, limits, "limit")
            or _above_max(limit_type, name, enforced, requests, "request"))


def _max_request_constraint(limit_type: str, name: str, enforced: object,
                            requests: Mapping[str, Any]) -> str | None:
    if name not in requests:
        return (f"maximum {name} usage per {limit_type} is {quantity_string(enforced)}.  No "
                f"request is specified")
    return _above_max(limit_type, name, enforced, requests, "request")


def _ratio_constraint(limit_type: str, name: str, enforced: object,
                      requests: Mapping[str, Any], limits: Mapping[str, Any]) -> str | None:
    e = quantity_string(enforced)
    request, limit = _q(requests.get(name)), _q(limits.get(name))
    if name not in requests or request == 0:
        return (f"{name} max limit to request ratio per {limit_type} is {e}, but no request "
                f"is specified or request is 0")
    if name not in limits or limit == 0:
        return (f"{name} max limit to request ratio per {limit_type} is {e}, but no limit is "
                f"specified or limit is 0")
    if limit / request > _q(enforced):
        return (f"{name} max limit to request ratio per {limit_type} is {e}, but provided "
                f"ratio is {float(limit / request):f}")
    return None


def _bounds(item: Mapping[str, Any], limit_type: str, requests: Mapping[str, Any],
            limits: Mapping[str, Any]) -> list[str]:
    """The min, max and ratio constraints of one item over one set of requests and limits."""
    out: list[str | None] = []
    for name, value in sorted((item.get("min") or {}).items()):
        out.append(_min_constraint(limit_type, name, value, requests, limits))
    for name, value in sorted((item.get("max") or {}).items()):
        out.append(_max_constraint(limit_type, name, value, requests, limits))
    for name, value in sorted((item.get("maxLimitRequestRatio") or {}).items()):
        out.append(_ratio_constraint(limit_type, name, value, requests, limits))
    return [m for m in out if m is not None]


def _resources(container: Mapping[str, Any]) -> tuple[Obj, Obj]:
    res = map_of(container, "resources")
    return map_of(res, "requests"), map_of(res, "limits")


def _sum_into(total: dict[str, Fraction], values: Mapping[str, Any]) -> None:
    for name, raw in values.items():
        total[name] = total.get(name, Fraction(0)) + _q(raw)


def pod_requests_and_limits(spec: Mapping[str, Any]) -> tuple[dict[str, Fraction],
                                                              dict[str, Fraction]]:
    """resourcehelper.PodRequests and PodLimits: the containers' sum plus the sidecars' (init
    containers with ``restartPolicy: Always``), at least each other init container's own
    plus the sidecars started before it, plus the overhead (added to a limit only where the
    pod has that limit)."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    for container in spec.get("containers") or []:
        req, lim = _resources(container)
        _sum_into(requests, req)
        _sum_into(limits, lim)
    for total, which in ((requests, 0), (limits, 1)):
        sidecars: dict[str, Fraction] = {}
        init_peak: dict[str, Fraction] = {}
        for container in spec.get("initContainers") or []:
            values = _resources(container)[which]
            if container.get("restartPolicy") == "Always":
                _sum_into(total, values)
                _sum_into(sidecars, values)
                needs = dict(sidecars)
            else:
                needs = dict(sidecars)
                _sum_into(needs, values)
            for name, value in needs.items():
                init_peak[name] = max(init_peak.get(name, Fraction(0)), value)
        for name, value in init_peak.items():
            total[name] = max(total.get(name, Fraction(0)), value)
    for name, raw in (spec.get("overhead") or {}).items():
        requests[name] = requests.get(name, Fraction(0)) + _q(raw)
        if name in limits:
            limits[name] += _q(raw)
    return requests, limits


def _shown_list(values: Mapping[str, Fraction], binary: set[str]) -> dict[str, str]:
    """Summed quantities as Quantity.String() writes them (BinarySI when the pod's are)."""
    return {k: format_quantity(v, binary=k in binary) for k, v in values.items()}


def _default_requirements(limit_range: Mapping[str, Any]) -> tuple[Obj, Obj]:
    """defaultContainerResourceRequirements: the Container items' defaultRequest and
    default."""
    requests: Obj = {}
    limits: Obj = {}
    for item in _items(limit_range):
        if item.get("type") == TYPE_CONTAINER:
            requests.update(item.get("defaultRequest") or {})
            limits.update(item.get("default") or {})
    return requests, limits


def _merge_container(container: Obj, requests: Obj, limits: Obj, prefix: str,
                     notes: list[str]) -> None:
    """mergeContainerResources: what the container does not set, and the note of it."""
    res = container.setdefault("resources", {})
    own_limits = res.setdefault("limits", {})
    own_requests = res.setdefault("requests", {})
    set_limits = sorted(k for k in limits if k not in own_limits)
    set_requests = sorted(k for k in requests if k not in own_requests)
    for k in set_limits:
        own_limits[k] = limits[k]
    for k in set_requests:
        own_requests[k] = requests[k]
    name = container.get("name", "")
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {prefix} {name}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {prefix} {name}")
    for key in ("limits", "requests"):
        if not res[key]:
            del res[key]


def _pod_violations(pod: Mapping[str, Any], limit_range: Mapping[str, Any]) -> list[str]:
    """PodValidateLimitFunc of one LimitRange."""
    spec = map_of(pod, "spec")
    out: list[str] = []
    for item in _items(limit_range):
        if item.get("type") == TYPE_CONTAINER:
            for container in [*(spec.get("containers") or []),
                              *(spec.get("initContainers") or [])]:
                req, lim = _resources(container)
                out.extend(_bounds(item, TYPE_CONTAINER, req, lim))
        elif item.get("type") == TYPE_POD:
            requests, limits = pod_requests_and_limits(spec)
            binary = {k for c in [*(spec.get("containers") or []),
                                  *(spec.get("initContainers") or [])]
                      for values in _resources(c) for k, v in values.items()
                      if is_binary_quantity(v)}
            out.extend(_bounds(item, TYPE_POD, _shown_list(requests, binary),
                               _shown_list(limits, binary)))
    return out


def default_pod_limits(pod: Obj, limit_ranges: Sequence[Mapping[str, Any]]) -> Obj:
    """The LimitRanger's mutating half (PodMutateLimitFunc, for each LimitRange in turn): the
    defaults a container does not set, and the annotation that says which were set."""
    if not limit_ranges:
        return pod
    out = copy.deepcopy(pod)
    spec = out.setdefault("spec", {})
    for limit_range in limit_ranges:
        requests, limits = _default_requirements(limit_range)
        notes: list[str] = []
        for container in spec.get("containers") or []:
            _merge_container(container, requests, limits, "container", notes)
        for container in spec.get("initContainers") or []:
            _merge_container(container, requests, limits, "init container", notes)
        if notes:
            annotations = out.setdefault("metadata", {}).setdefault("annotations", {})
            annotations[LIMIT_RANGER_ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
    return out


def check_pod_limits(pod: Mapping[str, Any], limit_ranges: Sequence[Mapping[str, Any]],
                     pod_name: str) -> None:
    """The LimitRanger's validating half (PodValidateLimitFunc over every LimitRange). Raises
    the 403."""
    violations = [m for lr in limit_ranges for m in _pod_violations(pod, lr)]
    if violations:
        raise forbidden_error("pods", pod_name, _aggregate(violations))


def admit_claim_limits(claim: Mapping[str, Any], limit_ranges: Sequence[Mapping[str, Any]],
                       claim_name: str) -> None:
    """PersistentVolumeClaimValidateLimitFunc over every LimitRange. Raises the 403."""
    requests = map_of(map_of(map_of(claim, "spec"), "resources"), "requests")
    violations: list[str] = []
    for limit_range in limit_ranges:
        for item in _items(limit_range):
            if item.get("type") != TYPE_CLAIM:
                continue
            for name, value in sorted((item.get("min") or {}).items()):
                m = _min_constraint(TYPE_CLAIM, name, value, requests, {})
                if m is not None:
                    violations.append(m)
            for name, value in sorted((item.get("max") or {}).items()):
                m = _max_request_constraint(TYPE_CLAIM, name, value, requests)
                if m is not None:
                    violations.append(m)
    if violations:
        raise forbidden_error("persistentvolumeclaims", claim_name, _aggregate(violations))

