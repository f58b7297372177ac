"""core/v1 ResourceQuotas: validation, usage evaluation, and the ResourceQuota admission's
check of one write against a namespace's quotas.

Theory of operation
-------------------
* Validation follows ``ValidateResourceQuota`` and its update and status variants
  (``pkg/apis/core/validation/validation.go``): every name in ``spec.hard``, ``status.hard``
  and ``status.used`` is a standard quota resource or a qualified name
  (``ValidateResourceQuotaResourceName``) with a valid quantity; ``scopes`` are standard, apply
  to every standard resource in ``hard`` (``IsResourceQuotaScopeValidForResource``: pod scopes
  only to ``pods`` and the pod compute resources, ``BestEffort`` only to ``pods``) and do not
  conflict (``BestEffort``/``NotBestEffort``, ``Terminating``/``NotTerminating``);
  ``scopeSelector`` expressions as ``validateScopedResourceSelectorRequirement``; on update the
  set of ``scopes`` is immutable. The strategy (``pkg/registry/core/resourcequota``) clears
  ``status`` on create and keeps it on update; ``/status`` keeps ``spec``.
* Usage follows ``pkg/quota/v1/evaluator/core`` and ``generic``: :func:`usage` of a pod is
  ``count/pods`` always and, while it is not terminal (``QuotaV1Pod``), ``pods`` and its
  compute resources (``podComputeUsageHelper`` over ``PodRequests``/``PodLimits``: ``cpu`` and
  ``requests.cpu``, ``limits.cpu``, the same for memory and ephemeral storage, hugepages and
  ``requests.<extended>``); of a Service ``services``, ``services.nodeports`` (its ports, for
  NodePort and LoadBalancer types, only those with a nodePort when a LoadBalancer allocates
  none) and ``services.loadbalancers``; of a claim ``persistentvolumeclaims``,
  ``requests.storage`` and their ``<class>.storageclass.storage.k8s.io/`` twins; of anything
  else ``count/<resource>[.<group>]`` (with the legacy ``configmaps``, ``secrets``,
  ``replicationcontrollers`` and ``resourcequotas`` names for those).
* Scopes (:func:`matches_scopes`): a quota's ``scopes`` are ``Exists`` selectors, added to its
  ``scopeSelector``; pods match ``Terminating`` (``activeDeadlineSeconds >= 0``),
  ``NotTerminating``, ``BestEffort`` (no cpu or memory request or limit anywhere),
  ``NotBestEffort``, ``PriorityClass`` (the selector over ``{PriorityClass: <class>}``) and
  ``CrossNamespacePodAffinity`` (an affinity term with ``namespaces`` or a
  ``namespaceSelector``); nothing but a pod matches a scoped quota.
* The check (:func:`charge`, after ``plugin/pkg/admission/resourcequota``'s
  ``CheckRequest``): a quota matches when its ``status.hard`` names a resource the object's
  evaluator counts and its scopes match; a pod missing a request or limit a matching quota
  restricts is refused (``failed quota: <name>: must specify limits.cpu for: c1``); a
  matching quota whose ``status.used`` lacks a restricted resource is refused (``status
  unknown for quota``); the usage (on update, its increase over the old object's) is added to
  each matching quota's ``used``, and a sum above ``hard`` is refused (``exceeded quota:
  <name>, requested: pods=1, used: pods=2, limited: pods=2``). Like upstream, a quota whose
  ``status.hard`` the controller has not yet filled restricts nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Final

from svcnet.api.access import map_of, meta_of, name_of
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    forbidden_error,
    go_quote,
    invalid,
    required,
)
from svcnet.api.limitranges import pod_requests_and_limits
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import name_is_dns_subdomain
from svcnet.api.resourcelists import (
    HUGE_PAGES_PREFIX,
    format_quantity,
    is_binary_quantity,
    is_extended_resource_name,
    parse_quantity,
    validate_resource_name,
    validate_resource_quantity_value,
)
from svcnet.api.storageclasses import claim_class
from svcnet.util.clock import parse_time

__all__ = [
    "Charge",
    "calculate_status",
    "charge",
    "count_name",
    "increases_usage",
    "is_counted",
    "matches_scopes",
    "pretty",
    "tracked_resources",
    "usage",
    "validate_resource_quota",
    "validate_resource_quota_status_update",
    "validate_resource_quota_update",
    "with_used",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]
Usage = dict[str, Fraction]

STORAGE_CLASS_SUFFIX: Final = ".storageclass.storage.k8s.io/"
_STANDARD_QUOTA_RESOURCES: Final = frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.storage", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
    "limits.ephemeral-storage", "pods", "services", "replicationcontrollers", "resourcequotas",
    "secrets", "persistentvolumeclaims", "configmaps", "services.nodeports",
    "services.loadbalancers",
})
_INVALID_QUOTA_RESOURCE: Final = "must be a standard resource for quota"
_POD_COMPUTE: Final = frozenset({"cpu", "memory", "limits.cpu", "limits.memory",
                                 "requests.cpu", "requests.memory"})
#: The pod resources for which every container must say what it asks (validationSet).
_MUST_SPECIFY: Final = _POD_COMPUTE
SCOPES: Final = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort",
                 "PriorityClass", "CrossNamespacePodAffinity")
_EXISTS_ONLY: Final = frozenset({"Terminating", "NotTerminating", "BestEffort",
                                 "NotBestEffort", "CrossNamespacePodAffinity"})
_CONFLICTS: Final = (frozenset({"BestEffort", "NotBestEffort"}),
                     frozenset({"Terminating", "NotTerminating"}))
#: Core kinds counted under their own name besides count/<resource> (NewObjectCountEvaluator
#: aliases).
_LEGACY_COUNTS: Final = frozenset({"configmaps", "secrets", "replicationcontrollers",
                                   "resourcequotas"})
#: Resources no quota counts (the admission's ignoredResources).
_IGNORED: Final = frozenset({("", "events"), ("events.k8s.io", "events")})


# ---------------------------------------------------------------------------- validation


def _is_standard_quota_resource(name: str) -> bool:
    """helper.IsStandardQuotaResourceName (hugepages counted, with ``requests.``)."""
    return (name in _STANDARD_QUOTA_RESOURCES or name.startswith(HUGE_PAGES_PREFIX)
            or name.startswith("requests." + HUGE_PAGES_PREFIX))


def _scope_valid_for(scope: str, name: str) -> bool:
    """helper.IsResourceQuotaScopeValidForResource."""
    if scope == "BestEffort":
        return name == "pods"
    if scope in SCOPES:
        return name == "pods" or name in _POD_COMPUTE
    return True


def _validate_resource_list(values: Mapping[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    for name in sorted(values):
        key_path = path.key(name)
        errs.extend(validate_resource_name(name, key_path))
        if "/" not in name and not _is_standard_quota_resource(name):
            errs.append(invalid(key_path, name, _INVALID_QUOTA_RESOURCE))
        errs.extend(validate_resource_quantity_value(name, values[name], key_path))
    return errs


def _standard_hard(spec: ObjMap) -> list[str]:
    return [k for k in sorted(spec.get("hard") or {}) if _is_standard_quota_resource(k)]


def _scopes_value(scopes: Sequence[object]) -> GoRaw:
    """A ``[]core.ResourceQuotaScope`` as field.Invalid prints it (``%#v``)."""
    return GoRaw("[]core.ResourceQuotaScope{" + ", ".join(go_quote(str(s)) for s in scopes)
                 + "}")


def _validate_scopes(spec: ObjMap, path: Path) -> list[FieldError]:
    raw = [str(s) for s in spec.get("scopes") or []]
    if not raw:
        return []
    scopes = _scopes_value(raw)
    errs: list[FieldError] = []
    scopes_path = path.child("scopes")
    for scope in raw:
        if scope not in SCOPES:
            errs.append(invalid(scopes_path, scopes, "unsupported scope"))
        for name in _standard_hard(spec):
            if not _scope_valid_for(scope, name):
                errs.append(invalid(scopes_path, scopes, "unsupported scope applied to "
                                                         "resource"))
    errs.extend(invalid(scopes_path, scopes, "conflicting scopes")
                for pair in _CONFLICTS if pair <= set(raw))
    return errs


def _validate_scope_selector(spec: ObjMap, path: Path) -> list[FieldError]:
    selector = spec.get("scopeSelector")
    if not isinstance(selector, dict):
        return []
    errs: list[FieldError] = []
    exprs_path = path.child("scopeSelector", "matchExpressions")
    seen: set[str] = set()
    for req in selector.get("matchExpressions") or []:
        scope, op = str(req.get("scopeName") or ""), str(req.get("operator") or "")
        values = list(req.get("values") or [])
        if scope not in SCOPES:
            errs.append(invalid(exprs_path.child("scopeName"), scope, "unsupported scope"))
        for name in _standard_hard(spec):
            if not _scope_valid_for(scope, name):
                errs.append(invalid(exprs_path, selector, "unsupported scope applied to "
                                                          "resource"))
        if scope in _EXISTS_ONLY and op != "Exists":
            errs.append(invalid(exprs_path.child("operator"), op,
                                "must be 'Exist' when scope is any of "
                                "ResourceQuotaScopeTerminating, "
                                "ResourceQuotaScopeNotTerminating, "
                                "ResourceQuotaScopeBestEffort, "
                                "ResourceQuotaScopeNotBestEffort or "
                                "ResourceQuotaScopeCrossNamespacePodAffinity"))
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(exprs_path.child("values"),
                                     "must be at least one value when `operator` is 'In' or "
                                     "'NotIn' for scope selector"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(invalid(exprs_path.child("values"), values,
                                    "must be no value when `operator` is 'Exist' or "
                                    "'DoesNotExist' for scope selector"))
        else:
            errs.append(invalid(exprs_path.child("operator"), op,
                                "not a valid selector operator"))
        seen.add(scope)
    errs.extend(invalid(exprs_path, selector, "conflicting scopes")
                for pair in _CONFLICTS if pair <= seen)
    return errs


def _validate_status(status: ObjMap) -> list[FieldError]:
    path = Path("status")
    return [*_validate_resource_list(status.get("hard") or {}, path.child("hard")),
            *_validate_resource_list(status.get("used") or {}, path.child("used"))]


def validate_resource_quota(obj: ObjMap) -> list[FieldError]:
    """ValidateResourceQuota."""
    spec = map_of(obj, "spec")
    path = Path("spec")
    return [*validate_object_meta(obj.get("metadata"), requires_namespace=True,
                                  name_fn=name_is_dns_subdomain),
            *_validate_resource_list(spec.get("hard") or {}, path.child("hard")),
            *_validate_scopes(spec, path), *_validate_scope_selector(spec, path),
            *_validate_status(map_of(obj, "status"))]


def validate_resource_quota_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateResourceQuotaUpdate: the spec's rules, and scopes that do not change."""
    spec = map_of(new, "spec")
    path = Path("spec")
    errs = [*validate_object_meta_update(new.get("metadata"), old.get("metadata")),
            *_validate_resource_list(spec.get("hard") or {}, path.child("hard")),
            *_validate_scopes(spec, path), *_validate_scope_selector(spec, path)]
    new_scopes = {str(s) for s in spec.get("scopes") or []}
    if new_scopes != {str(s) for s in map_of(old, "spec").get("scopes") or []}:
        errs.append(invalid(path.child("scopes"), _scopes_value(spec.get("scopes") or []),
                            "field is immutable"))
    return errs


def validate_resource_quota_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateResourceQuotaStatusUpdate: a status write must name the version it replaces
    (a blind write could undo the admission's charges)."""
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    if not map_of(new, "metadata").get("resourceVersion"):
        errs.append(required(Path("resourceVersion")))
    return [*errs, *_validate_status(map_of(new, "status"))]


# ---------------------------------------------------------------------------- quantities


def to_usage(values: Mapping[str, Any] | None) -> Usage:
    return {k: parse_quantity(v) or Fraction(0) for k, v in (values or {}).items()}


def _binary_names(*lists: Mapping[str, Any] | None) -> set[str]:
    return {k for values in lists for k, v in (values or {}).items() if is_binary_quantity(v)}


def render(values: Usage, binary: Iterable[str] = ()) -> dict[str, str]:
    """A usage as a ResourceList, each quantity as ``Quantity.String()`` writes it."""
    binary = set(binary)
    return {k: format_quantity(values[k], binary=k in binary) for k in sorted(values)}


def pretty(values: Usage, binary: Iterable[str] = ()) -> str:
    """prettyPrint: ``name=quantity`` pairs in name order, joined by commas."""
    return ",".join(f"{k}={v}" for k, v in render(values, binary).items())


# ----------------------------------------------------------------------------- evaluators


def _is_terminal(pod: ObjMap, now: datetime) -> bool:
    """Not QuotaV1Pod: finished, or deleted with its grace period over."""
    if map_of(pod, "status").get("phase") in ("Succeeded", "Failed"):
        return True
    meta = meta_of(pod)
    deleted, grace = meta.get("deletionTimestamp"), meta.get("deletionGracePeriodSeconds")
    if deleted and grace is not None:
        at = parse_time(str(deleted))
        return at is not None and now > at + timedelta(seconds=int(grace))
    return False


def _compute_usage(requests: Mapping[str, Fraction], limits: Mapping[str, Fraction]) -> Usage:
    """podComputeUsageHelper."""
    out: Usage = {"pods": Fraction(1)}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith(HUGE_PAGES_PREFIX):
            out[name] = out[f"requests.{name}"] = value
        if is_extended_resource_name(name):
            out[f"requests.{name}"] = value
    return out


def _pod_usage(pod: ObjMap, now: datetime) -> Usage:
    out: Usage = {"count/pods": Fraction(1)}
    if _is_terminal(pod, now):
        return out
    requests, limits = pod_requests_and_limits(map_of(pod, "spec"))
    out.update(_compute_usage(requests, limits))
    return out


def _service_usage(svc: ObjMap) -> Usage:
    spec = map_of(svc, "spec")
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    out: Usage = {"count/services": Fraction(1), "services": Fraction(1),
                  "services.loadbalancers": Fraction(0), "services.nodeports": Fraction(0)}
    kind = spec.get("type")
    if kind == "NodePort":
        out["services.nodeports"] = Fraction(len(ports))
    elif kind == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is False:
            out["services.nodeports"] = Fraction(sum(1 for p in ports if p.get("nodePort")))
        else:
            out["services.nodeports"] = Fraction(len(ports))
        out["services.loadbalancers"] = Fraction(1)
    return out


def _claim_usage(claim: ObjMap) -> Usage:
    out: Usage = {"count/persistentvolumeclaims": Fraction(1),
                  "persistentvolumeclaims": Fraction(1)}
    cls = claim_class(claim)
    if cls:
        out[f"{cls}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = Fraction(1)
    spec_storage = map_of(map_of(map_of(claim, "spec"), "resources"), "requests").get("storage")
    allocated = map_of(map_of(claim, "status"), "allocatedResources").get("storage")
    sizes = [q for q in (parse_quantity(spec_storage), parse_quantity(allocated))
             if q is not None]
    if sizes:
        out["requests.storage"] = max(sizes)
        if cls:
            out[f"{cls}{STORAGE_CLASS_SUFFIX}requests.storage"] = max(sizes)
    return out


def count_name(group: str, resource: str) -> str:
    return f"count/{resource}.{group}" if group else f"count/{resource}"


def usage(group: str, resource: str, obj: ObjMap, now: datetime) -> Usage:
    """What one object of ``group``/``resource`` counts against a quota."""
    if (group, resource) == ("", "pods"):
        return _pod_usage(obj, now)
    if (group, resource) == ("", "services"):
        return _service_usage(obj)
    if (group, resource) == ("", "persistentvolumeclaims"):
        return _claim_usage(obj)
    out: Usage = {count_name(group, resource): Fraction(1)}
    if not group and resource in _LEGACY_COUNTS:
        out[resource] = Fraction(1)
    return out


def binary_names(group: str, resource: str, obj: ObjMap) -> set[str]:
    """The usage names whose quantities print in BinarySI (taken from the object's)."""
    if (group, resource) == ("", "pods"):
        spec = map_of(obj, "spec")
        names = set()
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            res = map_of(c, "resources")
            for kind, values in (("requests", map_of(res, "requests")),
                                 ("limits", map_of(res, "limits"))):
                for k in _binary_names(values):
                    names.update({k, f"{kind}.{k}"})
        return names
    if (group, resource) == ("", "persistentvolumeclaims"):
        storage = map_of(map_of(map_of(obj, "spec"), "resources"), "requests").get("storage")
        if is_binary_quantity(storage):
            cls = claim_class(obj)
            return {"requests.storage", f"{cls}{STORAGE_CLASS_SUFFIX}requests.storage"}
    return set()


def matching_resources(group: str, resource: str, names: Iterable[str]) -> list[str]:
    """The evaluator's MatchingResources: which of a quota's names it counts."""
    names = sorted(names)
    if (group, resource) == ("", "pods"):
        return [n for n in names if n in ("pods", "count/pods", "cpu", "memory",
                                          "ephemeral-storage")
                or (n.startswith(("requests.", "limits.", HUGE_PAGES_PREFIX))
                and n not in ("requests.storage",))]
    if (group, resource) == ("", "services"):
        return [n for n in names if n in ("services", "count/services",
                                          "services.nodeports", "services.loadbalancers")]
    if (group, resource) == ("", "persistentvolumeclaims"):
        return [n for n in names if n in ("persistentvolumeclaims",
                                          "count/persistentvolumeclaims", "requests.storage")
                or STORAGE_CLASS_SUFFIX in n]
    own = {count_name(group, resource)}
    if not group and resource in _LEGACY_COUNTS:
        own.add(resource)
    return [n for n in names if n in own]


# ----------------------------------------------------------------------------------- scopes


def scope_selectors(quota: ObjMap) -> list[ObjMap]:
    """GetScopeSelectorsFromQuota: ``scopes`` as Exists selectors, then ``scopeSelector``'s."""
    spec = map_of(quota, "spec")
    out: list[ObjMap] = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    out.extend(map_of(spec, "scopeSelector").get("matchExpressions") or [])
    return out


def _best_effort(spec: ObjMap) -> bool:
    """qos.GetPodQOS == BestEffort: no container asks for or limits cpu or memory."""
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        res = map_of(c, "resources")
        for values in (map_of(res, "requests"), map_of(res, "limits")):
            if any(k in ("cpu", "memory") and parse_quantity(v) for k, v in values.items()):
                return False
    return True


def _cross_namespace_affinity(spec: ObjMap) -> bool:
    affinity = map_of(spec, "affinity")
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = map_of(affinity, kind)
        terms = list(rules.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [map_of(w, "podAffinityTerm") for w in
                  rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def _pod_matches(selector: ObjMap, pod: ObjMap) -> bool:
    spec = map_of(pod, "spec")
    scope, op = selector.get("scopeName"), selector.get("operator")
    deadline = spec.get("activeDeadlineSeconds")
    terminating = deadline is not None and int(deadline) >= 0
    if scope == "Terminating":
        return terminating
    if scope == "NotTerminating":
        return not terminating
    if scope == "BestEffort":
        return _best_effort(spec)
    if scope == "NotBestEffort":
        return not _best_effort(spec)
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(spec)
    if scope == "PriorityClass":
        cls = spec.get("priorityClassName")
        values = list(selector.get("values") or [])
        if op == "Exists":
            return bool(cls)
        if op == "DoesNotExist":
            return not cls
        if op == "In":
            return bool(cls) and cls in values
        if op == "NotIn":
            return not cls or cls not in values
    return False


def matches_scopes(quota: ObjMap, group: str, resource: str, obj: ObjMap) -> bool:
    """Whether every scope of ``quota`` matches ``obj`` (no scopes: everything matches;
    only pods match any scope)."""
    selectors = scope_selectors(quota)
    if not selectors:
        return True
    if (group, resource) != ("", "pods"):
        return False
    return all(_pod_matches(s, obj) for s in selectors)


# ---------------------------------------------------------------------------------- check


def _missing_requests(pod: ObjMap, restricted: Iterable[str]) -> str | None:
    """The pod evaluator's Constraints: each container says what a quota restricts."""
    required_set = set(restricted) & _MUST_SPECIFY
    missing: dict[str, set[str]] = {}
    spec = map_of(pod, "spec")
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        res = map_of(c, "resources")
        own = _compute_usage(to_usage(map_of(res, "requests")), to_usage(map_of(res, "limits")))
        for name in required_set - set(own):
            missing.setdefault(name, set()).add(str(c.get("name") or ""))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{name} for: {','.join(sorted(missing[name]))}"
                                       for name in sorted(missing))


@dataclass(frozen=True, slots=True)
class Charge:
    """What one write adds to its namespace's quotas: each quota's new ``status.used``
    (by quota name), or nothing to write."""

    used: dict[str, dict[str, str]]


def increases_usage(group: str, resource: str, new: ObjMap, old: ObjMap, now: datetime
                    ) -> bool:
    """Whether an update counts for more than the object it replaces (nothing to charge
    otherwise: the admission need not read the quotas)."""
    before = usage(group, resource, old, now)
    return any(v > before.get(k, Fraction(0)) for k, v in usage(group, resource, new,
                                                                now).items())


def is_counted(group: str, resource: str) -> bool:
    """Whether quotas count objects of this resource at all (not Events)."""
    return (group, resource) not in _IGNORED


def charge(quotas: Sequence[ObjMap], group: str, resource: str, name: str, obj: ObjMap,
           old: ObjMap | None, now: datetime) -> Charge:
    """CheckRequest over ``quotas`` for a create (``old`` None) or an update. Raises the 403."""
    if not is_counted(group, resource):
        return Charge({})
    qualified = f"{resource}.{group}" if group else resource
    interesting: list[ObjMap] = []
    for quota in quotas:
        hard = map_of(map_of(quota, "status"), "hard")
        restricted = matching_resources(group, resource, hard)
        if not restricted or not matches_scopes(quota, group, resource, obj):
            continue
        if (group, resource) == ("", "pods"):
            missing = _missing_requests(obj, restricted)
            if missing is not None:
                raise forbidden_error(qualified, name,
                                      f"failed quota: {name_of(quota)}: {missing}", group)
        used = map_of(map_of(quota, "status"), "used")
        if any(n not in used for n in restricted):
            raise forbidden_error(qualified, name,
                                  f"status unknown for quota: {name_of(quota)}, resources: "
                                  f"{','.join(restricted)}", group)
        interesting.append(quota)
    if not interesting:
        return Charge({})
    delta = usage(group, resource, obj, now)
    negative = sorted(k for k, v in delta.items() if v < 0)
    if negative:
        raise forbidden_error(qualified, name, "quota usage is negative for resource(s): "
                                               f"{','.join(negative)}", group)
    if old is not None and meta_of(old).get("resourceVersion"):
        before = usage(group, resource, old, now)
        delta = {k: max(v - before.get(k, Fraction(0)), Fraction(0)) for k, v in delta.items()}
    delta = {k: v for k, v in delta.items() if v != 0}
    if not delta:
        return Charge({})
    binary = binary_names(group, resource, obj)
    out: dict[str, dict[str, str]] = {}
    for quota in interesting:
        status = map_of(quota, "status")
        hard, used = to_usage(status.get("hard")), to_usage(status.get("used"))
        requested = {k: v for k, v in delta.items() if k in hard}
        new_used = dict(used)
        for k, v in requested.items():
            new_used[k] = new_used.get(k, Fraction(0)) + v
        exceeded = sorted(k for k in requested if new_used[k] > hard[k])
        quota_binary = binary | _binary_names(status.get("used"))
        if exceeded:
            raise forbidden_error(
                qualified, name,
                f"exceeded quota: {name_of(quota)}, requested: "
                f"{pretty({k: requested[k] for k in exceeded}, quota_binary)}, used: "
                f"{pretty({k: used.get(k, Fraction(0)) for k in exceeded}, quota_binary)}, "
                f"limited: {pretty({k: hard[k] for k in exceeded}, quota_binary)}", group)
        if requested:
            out[name_of(quota)] = render(new_used, quota_binary)
    return Charge(out)


def tracked_resources(quota: ObjMap) -> list[tuple[str, str]]:
    """The (group, resource) pairs whose objects ``quota``'s ``spec.hard`` counts: the pod,
    Service and claim evaluators', and each ``count/<resource>[.<group>]`` or legacy name."""
    hard = map_of(map_of(quota, "spec"), "hard")
    out: list[tuple[str, str]] = []
    out = [pair for pair in (("", "pods"), ("", "services"), ("", "persistentvolumeclaims"))
           if matching_resources(*pair, hard)]
    for name in sorted(hard):
        counted: tuple[str, str] | None = None
        if name in _LEGACY_COUNTS:
            counted = ("", name)
        elif name.startswith("count/"):
            resource, _, group = name.removeprefix("count/").partition(".")
            counted = (group, resource)
        if counted is not None and counted not in out and counted not in _IGNORED:
            out.append(counted)
    return out


def calculate_status(quota: ObjMap, objects: Mapping[tuple[str, str], Sequence[ObjMap]],
                     now: datetime) -> Obj:
    """The status the quota controller writes (syncResourceQuota with CalculateUsage):
    ``hard`` is ``spec.hard``, ``used`` the summed usage of the matching objects of each
    tracked resource (``objects``: the namespace's, by (group, resource)) for every hard
    resource some evaluator counts, 0 when nothing uses it."""
    hard = dict(map_of(map_of(quota, "spec"), "hard"))
    total: Usage = {}
    binary: set[str] = set()
    for (group, resource), items in objects.items():
        names = matching_resources(group, resource, hard)
        if not names:
            continue
        for name in names:
            total.setdefault(name, Fraction(0))
        for obj in items:
            if not matches_scopes(quota, group, resource, obj):
                continue
            for k, v in usage(group, resource, obj, now).items():
                if k in total:
                    total[k] += v
            binary |= binary_names(group, resource, obj)
    return {"hard": hard, "used": render(total, binary)}


def with_used(quota: ObjMap, used: Mapping[str, str]) -> Obj:
    """``quota`` with ``status.used`` replaced."""
    out = copy.deepcopy(dict(quota))
    out.setdefault("status", {})["used"] = dict(used)
    return out



