"""batch/v1 Jobs and CronJobs: defaulting, the registry's preparation steps, and validation.

Theory of operation
-------------------
Mirrors, for the fields svcnet models:

* ``pkg/apis/batch/v1/defaults.go`` — ``SetDefaults_Job`` (``completions``/``parallelism`` 1
  when both are unset, ``parallelism`` 1, ``backoffLimit`` 6 (or MaxInt32 with a
  ``backoffLimitPerIndex``), the Job's labels from its template's when it has none,
  ``completionMode: NonIndexed``, ``suspend: false``, ``podReplacementPolicy``
  ``TerminatingOrFailed`` (``Failed`` with a ``podFailurePolicy``), ``manualSelector: false``)
  and ``SetDefaults_CronJob`` (``concurrencyPolicy: Allow``, ``suspend: false``, history limits 3
  and 1); the pod templates are defaulted as a Deployment's are
  (:func:`svcnet.api.workloads.set_defaults_pod_template`). A CronJob's ``jobTemplate.spec`` is
  *not* defaulted as a Job (upstream's generated defaulters only call ``SetDefaults_Job`` on a
  Job), so a CronJob reads back without ``parallelism`` and friends;
* ``pkg/registry/batch/job/strategy.go`` — ``generateSelector`` on create unless
  ``manualSelector``: the template gets ``controller-uid``/``batch.kubernetes.io/controller-uid``
  (the Job's uid) and ``job-name``/``batch.kubernetes.io/job-name`` labels (those it already has
  are kept, and validation rejects a wrong value), and the selector
  ``matchLabels: {batch.kubernetes.io/controller-uid: <uid>}``; status reset on create and kept
  on update, spec kept on a status update, the generation bumped by spec changes;
* ``pkg/apis/batch/validation/validation.go`` — ``ValidateJob`` (``validateGeneratedSelector``,
  ``ValidateJobSpec``), ``ValidateJobUpdate`` (the immutable selector, template, completions,
  completionMode...; the template's scheduling directives, labels and annotations may change
  while a suspended Job has never started), ``ValidateJobUpdateStatus`` (non-negative counters,
  terminal conditions may not be withdrawn, a Complete Job needs a completionTime),
  ``ValidateCronJobCreate``/``ValidateCronJobUpdate`` (schedule, ``TZ=`` in a schedule,
  ``timeZone``, concurrencyPolicy, ``ValidateJobTemplateSpec``, history limits, names of at
  most 52 characters on create), with upstream's field paths and messages. The
  ``podFailurePolicy`` and ``successPolicy`` rules themselves are not validated (their presence
  is, where it constrains other fields).

Objects are JSON dicts as on the wire; inputs are never mutated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import map_of as _map
from svcnet.api.cronschedule import ScheduleError, load_zone, parse_schedule
from svcnet.api.errors import (
    OMIT,
    FieldError,
    GoRaw,
    Path,
    invalid,
    not_supported,
    required,
    too_long,
)
from svcnet.api.labels import SelectorError, selector_from_label_selector, validate_label_selector
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    IS_NEGATIVE_ERROR_MSG,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import name_is_dns_label, name_is_dns_subdomain
from svcnet.api.workloads import (
    go_label_selector,
    go_string_map,
    prepare_replicaset_for_status_update,
    prepare_replicaset_for_update,
    semantically_equal,
    set_defaults_pod_template,
    validate_pod_template_spec,
)

__all__ = [
    "CONTROLLER_UID_LABEL",
    "JOB_NAME_LABEL",
    "LEGACY_CONTROLLER_UID_LABEL",
    "LEGACY_JOB_NAME_LABEL",
    "job_condition_true",
    "prepare_cronjob_for_create",
    "prepare_cronjob_for_status_update",
    "prepare_cronjob_for_update",
    "prepare_job_for_create",
    "prepare_job_for_status_update",
    "prepare_job_for_update",
    "set_defaults_cronjob",
    "set_defaults_job",
    "spec_changed",
    "validate_cronjob",
    "validate_cronjob_status_update",
    "validate_cronjob_update",
    "validate_job",
    "validate_job_status_update",
    "validate_job_update",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

CONTROLLER_UID_LABEL: Final = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL: Final = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL: Final = "controller-uid"
LEGACY_JOB_NAME_LABEL: Final = "job-name"

NON_INDEXED: Final = "NonIndexed"
INDEXED: Final = "Indexed"
_MAX_INT32: Final = 2**31 - 1
_MAX_PARALLELISM_INDEXED: Final = 100_000
_MAX_MANAGED_BY_LENGTH: Final = 63
_CRONJOB_NAME_MAX: Final = 52  # 63 minus the "-<minutes>" suffix of its Jobs
_REPLACEMENT_POLICIES: Final = ("Failed", "TerminatingOrFailed")
_CONCURRENCY_POLICIES: Final = ("Allow", "Forbid", "Replace")
_TERMINAL_CONDITIONS: Final = ("Failed", "Complete", "FailureTarget")
_TZ_PART: Final = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")

_META: Final = Path("metadata")
_SPEC: Final = Path("spec")
_STATUS: Final = Path("status")


def _opt_int(d: ObjMap | None, key: str) -> int | None:
    v = d.get(key) if d else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _spec_of(obj: Obj) -> Obj:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    return spec


def job_condition_true(obj: ObjMap, ctype: str) -> bool:
    """Whether the Job has condition ``ctype`` with status True."""
    return any(isinstance(c, Mapping) and c.get("type") == ctype and c.get("status") == "True"
               for c in _map(obj, "status").get("conditions") or [])


# =============================================================================================
# defaulting


def set_defaults_job(obj: ObjMap) -> Obj:
    """SetDefaults_Job, plus the template defaulted as a pod template."""
    out = copy.deepcopy(dict(obj))
    spec = _spec_of(out)
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = _MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    template_labels = _map(_map(spec, "template"), "metadata").get("labels")
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    if isinstance(template_labels, dict) and not meta.get("labels"):
        meta["labels"] = copy.deepcopy(template_labels)
    if spec.get("completionMode") is None:
        spec["completionMode"] = NON_INDEXED
    if spec.get("suspend") is None:
        spec["suspend"] = False
    _default_pod_failure_policy(spec)
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = ("Failed" if spec.get("podFailurePolicy") is not None
                                        else "TerminatingOrFailed")
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False
    spec["template"] = set_defaults_pod_template(_map(spec, "template"))
    return out


def _default_pod_failure_policy(spec: Obj) -> None:
    """SetDefaults_PodFailurePolicyOnPodConditionsPattern: a pattern's status is True."""
    policy = spec.get("podFailurePolicy")
    for rule in (policy.get("rules") or []) if isinstance(policy, dict) else []:
        for pattern in (rule.get("onPodConditions") or []) if isinstance(rule, dict) else []:
            if isinstance(pattern, dict) and not pattern.get("status"):
                pattern["status"] = "True"


def set_defaults_cronjob(obj: ObjMap) -> Obj:
    """SetDefaults_CronJob, plus the job template's pod template defaulted."""
    out = copy.deepcopy(dict(obj))
    spec = _spec_of(out)
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.get("jobTemplate")
    if not isinstance(job_template, dict):
        job_template = spec["jobTemplate"] = {}
    job_spec = job_template.get("spec")
    if not isinstance(job_spec, dict):
        job_spec = job_template["spec"] = {}
    _default_pod_failure_policy(job_spec)
    job_spec["template"] = set_defaults_pod_template(_map(job_spec, "template"))
    return out


# =============================================================================================
# registry strategy steps


def prepare_job_for_create(obj: ObjMap) -> Obj:
    """jobStrategy.PrepareForCreate: the generated selector (unless manualSelector), status
    reset. Needs the uid, which the registry sets before this step."""
    out = copy.deepcopy(dict(obj))
    out["status"] = {}
    spec = _spec_of(out)
    if spec.get("manualSelector") is True:
        return out
    meta = _map(out, "metadata")
    name, uid = str(meta.get("name") or ""), str(meta.get("uid") or "")
    template = spec.get("template")
    if not isinstance(template, dict):
        template = spec["template"] = {}
    tmeta = template.get("metadata")
    if not isinstance(tmeta, dict):
        tmeta = template["metadata"] = {}
    labels = tmeta.get("labels")
    if not isinstance(labels, dict):
        labels = tmeta["labels"] = {}
    for key, value in ((LEGACY_JOB_NAME_LABEL, name), (JOB_NAME_LABEL, name),
                       (LEGACY_CONTROLLER_UID_LABEL, uid), (CONTROLLER_UID_LABEL, uid)):
        labels.setdefault(key, value)
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = selector.get("matchLabels")
    if not isinstance(match, dict):
        match = selector["matchLabels"] = {}
    match.setdefault(CONTROLLER_UID_LABEL, uid)
    return out


def prepare_job_for_update(new: ObjMap, old: ObjMap) -> Obj:
    """jobStrategy.PrepareForUpdate: the main endpoint cannot change status (as a
    ReplicaSet's)."""
    return prepare_replicaset_for_update(new, old)


def prepare_job_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    """jobStatusStrategy.PrepareForUpdate: spec comes from the stored object."""
    return prepare_replicaset_for_status_update(new, old)


def prepare_cronjob_for_create(obj: ObjMap) -> Obj:
    """cronJobStrategy.PrepareForCreate: status reset."""
    out = copy.deepcopy(dict(obj))
    out["status"] = {}
    return out


def prepare_cronjob_for_update(new: ObjMap, old: ObjMap) -> Obj:
    return prepare_replicaset_for_update(new, old)


def prepare_cronjob_for_status_update(new: ObjMap, old: ObjMap) -> Obj:
    return prepare_replicaset_for_status_update(new, old)


def spec_changed(new: ObjMap, old: ObjMap) -> bool:
    """Any spec change bumps a Job's or CronJob's generation."""
    return not semantically_equal(new.get("spec"), old.get("spec"))


# =============================================================================================
# validation: Jobs


def _nonnegative(spec: ObjMap, key: str, path: Path) -> list[FieldError]:
    value = _opt_int(spec, key)
    if value is None or value >= 0:
        return []
    return [invalid(path.child(key), value, IS_NEGATIVE_ERROR_MSG)]


def _validate_has_label(template_meta: ObjMap, path: Path, key: str,
                        expected: str) -> list[FieldError]:
    """ValidateHasLabel."""
    labels = template_meta.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    lpath = path.child("labels").key(key)
    if key not in labels:
        return [required(lpath, expected)]
    if labels[key] != expected:
        return [invalid(lpath, go_string_map(labels), f"must be '{expected}'")]
    return []


def _validate_generated_selector(obj: ObjMap, prefixed: bool) -> list[FieldError]:
    """validateGeneratedSelector."""
    spec = _map(obj, "spec")
    raw_selector = spec.get("selector")
    if spec.get("manualSelector") is True or not isinstance(raw_selector, Mapping):
        return []
    meta = _map(obj, "metadata")
    uid, name = str(meta.get("uid") or ""), str(meta.get("name") or "")
    errs: list[FieldError] = []
    if not uid:
        errs.append(required(_META.child("uid")))
    tmeta = _map(_map(spec, "template"), "metadata")
    tpath = _SPEC.child("template", "metadata")
    expected = {LEGACY_CONTROLLER_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name}
    errs.extend(_validate_has_label(tmeta, tpath, LEGACY_CONTROLLER_UID_LABEL, uid))
    errs.extend(_validate_has_label(tmeta, tpath, LEGACY_JOB_NAME_LABEL, name))
    if prefixed:
        errs.extend(_validate_has_label(tmeta, tpath, CONTROLLER_UID_LABEL, uid))
        errs.extend(_validate_has_label(tmeta, tpath, JOB_NAME_LABEL, name))
        expected |= {CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name}
    try:
        selector = selector_from_label_selector(raw_selector)
    except SelectorError:
        return errs
    if not selector.matches(expected):
        errs.append(invalid(_SPEC.child("selector"), go_label_selector(raw_selector),
                            "`selector` not auto-generated"))
    return errs


def _validate_completion_mode(spec: ObjMap, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    mode = spec.get("completionMode")
    if mode is not None and mode not in (NON_INDEXED, INDEXED):
        errs.append(not_supported(path.child("completionMode"), mode, (NON_INDEXED, INDEXED)))
    if mode == INDEXED:
        if spec.get("completions") is None:
            errs.append(required(path.child("completions"),
                                 f"when completion mode is {INDEXED}"))
        parallelism = _opt_int(spec, "parallelism")
        if parallelism is not None and parallelism > _MAX_PARALLELISM_INDEXED:
            errs.append(invalid(path.child("parallelism"), parallelism,
                                f"must be less than or equal to {_MAX_PARALLELISM_INDEXED} "
                                f"when completion mode is {INDEXED}"))
    else:
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            value = _opt_int(spec, key)
            if value is not None:
                errs.append(invalid(path.child(key), value, "requires indexed completion mode"))
    if spec.get("successPolicy") is not None and mode != INDEXED:
        errs.append(invalid(path.child("successPolicy"), OMIT,
                            "requires indexed completion mode"))
    return errs


def _validate_replacement_policy(spec: ObjMap, path: Path) -> list[FieldError]:
    policy = spec.get("podReplacementPolicy")
    if policy is None:
        return []
    if spec.get("podFailurePolicy") is not None:
        return [] if policy == "Failed" else [not_supported(path, policy, ["Failed"])]
    return [] if policy in _REPLACEMENT_POLICIES else [
        not_supported(path, policy, _REPLACEMENT_POLICIES)]


def _validate_restart_policy(spec: ObjMap, path: Path) -> list[FieldError]:
    restart = _map(_map(spec, "template"), "spec").get("restartPolicy") or ""
    rpath = path.child("template", "spec", "restartPolicy")
    if restart in ("Always", ""):
        return [required(rpath, 'valid values: "OnFailure", "Never"')]
    if restart not in ("OnFailure", "Never"):
        return [not_supported(rpath, restart, ("OnFailure", "Never"))]
    if spec.get("podFailurePolicy") is not None and restart != "Never":
        return [invalid(rpath, restart, 'only "Never" is supported when podFailurePolicy is '
                                        "specified")]
    return []


def _validate_job_spec_fields(spec: ObjMap, path: Path) -> list[FieldError]:
    """validateJobSpec (the part a CronJob's job template shares)."""
    errs: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        errs.extend(_nonnegative(spec, key, path))
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(required(path.child("backoffLimitPerIndex"),
                             "when maxFailedIndexes is specified"))
    managed_by = spec.get("managedBy")
    if isinstance(managed_by, str) and len(managed_by) > _MAX_MANAGED_BY_LENGTH:
        errs.append(too_long(path.child("managedBy"), managed_by, _MAX_MANAGED_BY_LENGTH))
    errs.extend(_validate_completion_mode(spec, path))
    errs.extend(_validate_replacement_policy(spec, path.child("podReplacementPolicy")))
    errs.extend(validate_pod_template_spec(_map(spec, "template"), path.child("template")))
    errs.extend(_validate_restart_policy(spec, path))
    return errs


def _validate_job_spec(spec: ObjMap, path: Path) -> list[FieldError]:
    """ValidateJobSpec: validateJobSpec, the selector, and the selector matching the
    template's labels."""
    errs = _validate_job_spec_fields(spec, path)
    raw_selector = spec.get("selector")
    sel_path = path.child("selector")
    if not isinstance(raw_selector, Mapping):
        errs.append(required(sel_path))
    else:
        errs.extend(validate_label_selector(raw_selector, sel_path))
    try:
        selector = selector_from_label_selector(
            raw_selector if isinstance(raw_selector, Mapping) else None)
    except SelectorError:
        return errs
    labels = _map(_map(spec, "template"), "metadata").get("labels")
    if not selector.matches(labels if isinstance(labels, Mapping) else {}):
        errs.append(invalid(path.child("template", "metadata", "labels"), go_string_map(labels),
                            "`selector` does not match template `labels`"))
    return errs


def _validate_meta(obj: ObjMap) -> list[FieldError]:
    # Jobs and CronJobs have the ReplicationController name rule: a DNS subdomain.
    return validate_object_meta(_map(obj, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)


def _validate_job_common(obj: ObjMap, prefixed: bool) -> list[FieldError]:
    errs = _validate_generated_selector(obj, prefixed)
    spec = _map(obj, "spec")
    errs.extend(_validate_job_spec(spec, _SPEC))
    completions = _opt_int(spec, "completions")
    if spec.get("completionMode") == INDEXED and completions is not None and completions > 0:
        name = str(_map(obj, "metadata").get("name") or "")
        hostname = f"{name}-{completions - 1}"
        if name_is_dns_label(hostname, False):
            errs.append(invalid(_META.child("name"), name, "will not able to create pod with "
                                f"invalid DNS label: {hostname}"))
    return errs


def validate_job(obj: ObjMap) -> list[FieldError]:
    """ValidateJob (call after defaulting and preparation)."""
    return _validate_meta(obj) + _validate_job_common(obj, True)


_SCHEDULING_DIRECTIVES: Final = ("nodeSelector", "tolerations", "schedulingGates")


def _template_for_immutability(template: ObjMap, new_template: ObjMap,
                               mutable_scheduling: bool) -> Any:
    """validatePodTemplateUpdate's view of the old template: with AllowMutableSchedulingDirectives
    the new template's node affinity, nodeSelector, tolerations, schedulingGates, labels and
    annotations are taken as the old's."""
    if not mutable_scheduling:
        return template
    old = copy.deepcopy(dict(template))
    old_meta = old.setdefault("metadata", {})
    new_meta = _map(new_template, "metadata")
    for key in ("labels", "annotations"):
        old_meta[key] = copy.deepcopy(new_meta.get(key))
    old_spec = old.setdefault("spec", {})
    new_spec = _map(new_template, "spec")
    for key in _SCHEDULING_DIRECTIVES:
        old_spec[key] = copy.deepcopy(new_spec.get(key))
    affinity = dict(_map(old_spec, "affinity"))
    affinity["nodeAffinity"] = copy.deepcopy(_map(new_spec, "affinity").get("nodeAffinity"))
    old_spec["affinity"] = affinity
    return old


def _validate_completions_update(spec: ObjMap, old_spec: ObjMap) -> list[FieldError]:
    """validateCompletions (ElasticIndexedJob on): an Indexed Job may change completions
    together with parallelism."""
    new, old = spec.get("completions"), old_spec.get("completions")
    if semantically_equal(new, old):
        return []
    path = _SPEC.child("completions")
    if spec.get("completionMode") != INDEXED:
        return [invalid(path, new, FIELD_IMMUTABLE_ERROR_MSG)]
    if new is None or new == spec.get("parallelism"):
        return []
    return [invalid(path, new, "can only be modified in tandem with spec.parallelism")]


def validate_job_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateJob + ValidateJobUpdate (the spec errors once, not twice as upstream's
    concatenation reports them)."""
    old_labels = _map(_map(_map(old, "spec"), "template"), "metadata").get("labels") or {}
    prefixed = JOB_NAME_LABEL in old_labels and CONTROLLER_UID_LABEL in old_labels
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), _META)
    errs.extend(_validate_job_common(new, prefixed))
    spec, old_spec = _map(new, "spec"), _map(old, "spec")
    errs.extend(_validate_completions_update(spec, old_spec))
    if not semantically_equal(spec.get("selector"), old_spec.get("selector")):
        errs.append(invalid(_SPEC.child("selector"), go_label_selector(spec.get("selector")),
                            FIELD_IMMUTABLE_ERROR_MSG))
    mutable = old_spec.get("suspend") is True and not _map(old, "status").get("startTime")
    template = _map(spec, "template")
    if not semantically_equal(template, _template_for_immutability(
            _map(old_spec, "template"), template, mutable)):
        errs.append(invalid(_SPEC.child("template"), GoRaw("core.PodTemplateSpec{...}"),
                            FIELD_IMMUTABLE_ERROR_MSG))
    for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy",
                "successPolicy"):
        if not semantically_equal(spec.get(key), old_spec.get(key)):
            value = spec.get(key)
            shown = value if isinstance(value, str | int) or value is None else OMIT
            errs.append(invalid(_SPEC.child(key), shown, FIELD_IMMUTABLE_ERROR_MSG))
    return errs


def validate_job_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateJobUpdateStatus: counters non-negative; once the Job's status holds a terminal
    condition it keeps it; a Job that becomes Complete has a completionTime."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), _META)
    status = _map(new, "status")
    for key in ("active", "succeeded", "failed", "ready", "terminating"):
        errs.extend(_nonnegative(status, key, _STATUS))
    for ctype in _TERMINAL_CONDITIONS:
        if job_condition_true(old, ctype) and not job_condition_true(new, ctype):
            errs.append(invalid(_STATUS.child("conditions"), OMIT,
                                f"cannot disable the terminal {ctype}=True condition"))
    if job_condition_true(new, "Complete") and not job_condition_true(old, "Complete") and (
            not status.get("completionTime")):
        errs.append(required(_STATUS.child("completionTime"),
                             "completionTime is required for Complete jobs"))
    return errs


# =============================================================================================
# validation: CronJobs


def _validate_schedule(schedule: str, allow_tz: bool, time_zone: object,
                       path: Path) -> list[FieldError]:
    """validateScheduleFormat."""
    errs: list[FieldError] = []
    try:
        parse_schedule(schedule)
    except ScheduleError as e:
        errs.append(invalid(path, schedule, str(e)))
    if allow_tz and "TZ" in schedule and time_zone is not None:
        errs.append(invalid(path, schedule,
                            "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not allow_tz and "TZ" in schedule:
        errs.append(invalid(path, schedule,
                            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return errs


def _validate_time_zone(time_zone: object, path: Path) -> list[FieldError]:
    """validateTimeZone."""
    if time_zone is None:
        return []
    tz = str(time_zone)
    if not tz:
        return [invalid(path, tz, "timeZone must be nil or non-empty string")]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.fullmatch(part):
            return [invalid(path, tz, f"unknown time zone {tz}")]
    errs: list[FieldError] = []
    if tz.lower() == "local":
        errs.append(invalid(path, tz, "timeZone must be an explicit time zone as defined in "
                                      "https://www.iana.org/time-zones"))
    try:
        load_zone(tz)
    except ScheduleError as e:
        errs.append(invalid(path, tz, str(e)))
    return errs


def _validate_job_template(spec: ObjMap, path: Path) -> list[FieldError]:
    """ValidateJobTemplateSpec: the job spec, whose selector the controller generates."""
    job_spec = _map(spec, "spec")
    spath = path.child("spec")
    errs = _validate_job_spec_fields(job_spec, spath)
    if job_spec.get("selector") is not None:
        errs.append(invalid(spath.child("selector"), go_label_selector(job_spec.get("selector")),
                            "`selector` will be auto-generated"))
    if job_spec.get("manualSelector") is True:
        errs.append(not_supported(spath.child("manualSelector"), GoRaw("true"),
                                  ("nil", "false")))
    return errs


def _validate_cronjob_spec(spec: ObjMap, old_spec: ObjMap | None) -> list[FieldError]:
    """validateCronJobSpec."""
    errs: list[FieldError] = []
    schedule = spec.get("schedule") or ""
    if not schedule:
        errs.append(required(_SPEC.child("schedule")))
    else:
        allow_tz = old_spec is not None and "TZ" in str(old_spec.get("schedule") or "")
        errs.extend(_validate_schedule(str(schedule), allow_tz, spec.get("timeZone"),
                                       _SPEC.child("schedule")))
    errs.extend(_nonnegative(spec, "startingDeadlineSeconds", _SPEC))
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        errs.extend(_validate_time_zone(spec.get("timeZone"), _SPEC.child("timeZone")))
    policy = spec.get("concurrencyPolicy") or ""
    if not policy:
        errs.append(required(_SPEC.child("concurrencyPolicy")))
    elif policy not in _CONCURRENCY_POLICIES:
        errs.append(not_supported(_SPEC.child("concurrencyPolicy"), policy,
                                  _CONCURRENCY_POLICIES))
    errs.extend(_validate_job_template(_map(spec, "jobTemplate"), _SPEC.child("jobTemplate")))
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errs.extend(_nonnegative(spec, key, _SPEC))
    return errs


def validate_cronjob(obj: ObjMap) -> list[FieldError]:
    """ValidateCronJobCreate (call after defaulting)."""
    errs = _validate_meta(obj)
    errs.extend(_validate_cronjob_spec(_map(obj, "spec"), None))
    name = str(_map(obj, "metadata").get("name") or "")
    if len(name) > _CRONJOB_NAME_MAX:
        errs.append(invalid(_META.child("name"), name,
                            f"must be no more than {_CRONJOB_NAME_MAX} characters"))
    return errs


def validate_cronjob_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateCronJobUpdate (no name-length rule: old long names stay updatable)."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), _META)
    errs.extend(_validate_cronjob_spec(_map(new, "spec"), _map(old, "spec")))
    return errs


def validate_cronjob_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """cronJobStatusStrategy.ValidateUpdate: the metadata rules only."""
    return validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), _META)
