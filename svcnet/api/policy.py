"""policy/v1: PodDisruptionBudgets (validation, strategy, the DisruptionAllowed condition) and
the eviction's decision.

Theory of operation, after upstream's files:

* ``pkg/apis/policy/validation/validation.go``: a budget's spec takes ``minAvailable`` or
  ``maxUnavailable`` (not both), each a non-negative integer or a percent of at most 100%, a
  label selector and an ``unhealthyPodEvictionPolicy`` of ``IfHealthyBudget`` or
  ``AlwaysAllow``. Every field may change (policy/v1). A status write checks its metav1
  conditions and that its four counts are not negative. The both-set error carries the whole
  spec as its bad value, which Go prints with pointer addresses: svcnet leaves the value out
  (field path and message as upstream's);
* ``pkg/registry/policy/poddisruptionbudget/strategy.go``: a new budget starts with an empty
  status, the main endpoint never writes status, the status endpoint never writes spec, and a
  spec change bumps ``metadata.generation``;
* ``k8s.io/component-helpers/apps/poddisruptionbudget``: the ``DisruptionAllowed`` condition
  (True/``SufficientPods`` while ``disruptionsAllowed > 0``, else False/``InsufficientPods``),
  set as ``meta.SetStatusCondition`` does (the transition time moves only when the status does);
* ``pkg/registry/core/pod/storage/eviction.go``: which pods an eviction may delete without
  looking at budgets (:func:`can_ignore_budgets`), which budgets cover a pod
  (:func:`covering_budgets`: same namespace, a non-empty selector that matches), and
  :func:`take_disruption`, the check-and-decrement of the one covering budget that the eviction
  writes back through ``/status`` before it deletes the pod, with upstream's 429 and 403 answers.

The disruption controller (svcnet/controllers/disruption.py) computes the rest of the status.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from svcnet.api.access import int_of, labels_of, list_of, map_of, name_of, namespace_of, str_of
from svcnet.api.conditions import set_status_condition
from svcnet.api.errors import (
    OMIT,
    FieldError,
    Path,
    StatusError,
    forbidden_error,
    invalid,
    not_supported,
)
from svcnet.api.labels import SelectorError, selector_from_label_selector, validate_label_selector
from svcnet.api.meta import (
    IS_NEGATIVE_ERROR_MSG,
    validate_conditions,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import name_is_dns_subdomain
from svcnet.api.pods import is_pod_ready
from svcnet.api.workloads import not_more_than_100_percent, validate_positive_int_or_percent
from svcnet.util.clock import rfc3339

__all__ = [
    "API_VERSION", "DISRUPTION_ALLOWED", "GROUP", "MAX_DISRUPTED_POD_SIZE",
    "UNHEALTHY_POD_EVICTION_POLICIES", "can_ignore_budgets", "covering_budgets",
    "enforces_resource_version", "may_evict_unready",
    "prepare_pdb_for_create", "prepare_pdb_for_status_update", "prepare_pdb_for_update",
    "set_disruption_allowed_condition", "still_processing",
    "take_disruption", "too_many_requests", "validate_pdb", "validate_pdb_status_update",
    "validate_pdb_update",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

GROUP: Final = "policy"
API_VERSION: Final = "policy/v1"
UNHEALTHY_POD_EVICTION_POLICIES: Final = ("AlwaysAllow", "IfHealthyBudget")
DISRUPTION_ALLOWED: Final = "DisruptionAllowed"
SUFFICIENT_PODS: Final = "SufficientPods"
INSUFFICIENT_PODS: Final = "InsufficientPods"
#: The cause type of an eviction's 429 (policy/v1 DisruptionBudgetCause).
DISRUPTION_BUDGET_CAUSE: Final = "DisruptionBudget"
#: Evictions granted but not yet seen through by the controller, at most (eviction.go).
MAX_DISRUPTED_POD_SIZE: Final = 2000
EVICTION_REFUSED: Final = "Cannot evict pod as it would violate the pod's disruption budget."

_META: Final = Path("metadata")
_SPEC: Final = Path("spec")
_STATUS: Final = Path("status")


# -- validation ----------------------------------------------------------------------------


def _validate_spec(spec: ObjMap) -> list[FieldError]:
    """ValidatePodDisruptionBudgetSpec."""
    errs: list[FieldError] = []
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        errs.append(invalid(_SPEC, OMIT, "minAvailable and maxUnavailable cannot be both set"))
    for key, value in (("minAvailable", min_available), ("maxUnavailable", max_unavailable)):
        if value is not None:
            errs.extend(validate_positive_int_or_percent(value, _SPEC.child(key)))
            errs.extend(not_more_than_100_percent(value, _SPEC.child(key)))
    selector = spec.get("selector")
    errs.extend(validate_label_selector(selector if isinstance(selector, Mapping) else None,
                                        _SPEC.child("selector")))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        errs.append(not_supported(_SPEC.child("unhealthyPodEvictionPolicy"), policy,
                                  UNHEALTHY_POD_EVICTION_POLICIES))
    return errs


def validate_pdb(pdb: ObjMap) -> list[FieldError]:
    """A new budget: its metadata (a DNS subdomain name) and spec."""
    errs = validate_object_meta(map_of(pdb, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)
    errs.extend(_validate_spec(map_of(pdb, "spec")))
    return errs


def validate_pdb_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """An update: the metadata update rules, then the spec as on create (all of it mutable)."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    errs.extend(_validate_spec(map_of(new, "spec")))
    return errs


def validate_pdb_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidatePodDisruptionBudgetStatusUpdate (policy/v1): conditions, and counts >= 0."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    status = map_of(new, "status")
    errs.extend(validate_conditions(list_of(status, "conditions"), _STATUS.child("conditions")))
    for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
        value = status.get(key) or 0
        if isinstance(value, int) and value < 0:
            errs.append(invalid(_STATUS.child(key), value, IS_NEGATIVE_ERROR_MSG))
    return errs


# -- strategy --------------------------------------------------------------------------------


def _empty_status() -> Obj:
    """A zero PodDisruptionBudgetStatus as Go encodes it (the four counts are not omitempty)."""
    return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
            "expectedPods": 0}


def prepare_pdb_for_create(pdb: ObjMap) -> Obj:
    out = copy.deepcopy(dict(pdb))
    out["status"] = _empty_status()
    return out


def prepare_pdb_for_update(new: ObjMap, old: ObjMap) -> Obj:
    out = copy.deepcopy(dict(new))
    out["status"] = copy.deepcopy(old.get("status") or _empty_status())
    return out


def prepare_pdb_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    out = copy.deepcopy(dict(new))
    out["spec"] = copy.deepcopy(old.get("spec") or {})
    return out


# -- the DisruptionAllowed condition ------------------------------------------------------------


def set_disruption_allowed_condition(status: Obj, now: datetime, *, reason: str = "",
                                     message: str = "") -> None:
    """UpdateDisruptionAllowedCondition on ``status`` (its observedGeneration already set):
    True/SufficientPods while disruptions are allowed, else False/InsufficientPods; ``reason``
    (with ``message``) forces False with that reason (the controller's SyncFailed)."""
    allowed = int_of(status, "disruptionsAllowed") > 0 and not reason
    set_status_condition(status, {
        "type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False",
        "observedGeneration": int_of(status, "observedGeneration"),
        "reason": reason or (SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS),
        "message": message}, now)


# -- evictions -------------------------------------------------------------------------------


def can_ignore_budgets(pod: ObjMap) -> bool:
    """canIgnorePDB: a pod that is done, not yet running, or already going is just deleted."""
    phase = str_of(map_of(pod, "status"), "phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(
        map_of(pod, "metadata").get("deletionTimestamp"))


def enforces_resource_version(pod: ObjMap) -> bool:
    """shouldEnforceResourceVersion: delete a live pod only as it was read (it may become
    Ready meanwhile and count against a budget)."""
    phase = str_of(map_of(pod, "status"), "phase")
    return phase not in ("Succeeded", "Failed") and not map_of(pod, "metadata").get(
        "deletionTimestamp")


def covering_budgets(budgets: Sequence[ObjMap], pod: ObjMap) -> list[ObjMap]:
    """The budgets of the pod's namespace whose selector matches it. A budget with an empty or
    invalid selector covers no pod here (the eviction's rule; the controller counts every pod
    of the namespace for an empty one)."""
    out = []
    for pdb in budgets:
        if namespace_of(pdb) != namespace_of(pod):
            continue
        raw = map_of(pdb, "spec").get("selector")
        try:
            selector = selector_from_label_selector(raw if isinstance(raw, Mapping) else None)
        except SelectorError:
            continue
        if selector.empty() or not selector.matches(labels_of(pod)):
            continue
        out.append(pdb)
    return out


def may_evict_unready(pdb: ObjMap, pod: ObjMap) -> bool:
    """An unready pod does not count as healthy: it may go without taking a disruption when the
    budget says ``AlwaysAllow``, or (``IfHealthyBudget``, the default) while the budget is met."""
    if is_pod_ready(pod):
        return False
    if str_of(map_of(pdb, "spec"), "unhealthyPodEvictionPolicy") == "AlwaysAllow":
        return True
    status = map_of(pdb, "status")
    desired = int_of(status, "desiredHealthy")
    return int_of(status, "currentHealthy") >= desired > 0


def too_many_requests(message: str, cause: str, retry_after: int) -> StatusError:
    """errors.NewTooManyRequests with a DisruptionBudget cause, as an eviction answers."""
    details: Obj = {"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return StatusError(429, "TooManyRequests", message, details=details)


def still_processing(name: str) -> StatusError:
    """createTooManyRequestsError: the controller has not seen the budget's spec yet."""
    return too_many_requests(EVICTION_REFUSED,
                             f"The disruption budget {name} is still being processed by the "
                             "server.", 10)


def take_disruption(pdb: ObjMap, pod_name: str, now: datetime, *, dry_run: bool) -> Obj:
    """checkAndDecrement: the budget after granting one disruption for ``pod_name``, or the
    refusal. A dry run decrements but records no disrupted pod (and writes nothing)."""
    name = name_of(pdb)
    status = map_of(pdb, "status")
    if int_of(status, "observedGeneration") < int_of(map_of(pdb, "metadata"), "generation"):
        raise still_processing(name)
    allowed = int_of(status, "disruptionsAllowed")
    if allowed < 0:
        raise forbidden_error("poddisruptionbudget", name, "pdb disruptions allowed is negative",
                              GROUP)
    if len(map_of(status, "disruptedPods")) > MAX_DISRUPTED_POD_SIZE:
        raise forbidden_error("poddisruptionbudget", name,
                              "DisruptedPods map too big - too many evictions not confirmed by "
                              "PDB controller", GROUP)
    if allowed == 0:
        raise too_many_requests(
            EVICTION_REFUSED,
            f"The disruption budget {name} needs {int_of(status, 'desiredHealthy')} healthy pods "
            f"and has {int_of(status, 'currentHealthy')} currently", 0)
    out = copy.deepcopy(dict(pdb))
    new_status: Obj = out.setdefault("status", {})
    new_status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        set_disruption_allowed_condition(new_status, now)
    if not dry_run:
        new_status["disruptedPods"] = {**map_of(new_status, "disruptedPods"),
                                       pod_name: rfc3339(now)}
    return out
