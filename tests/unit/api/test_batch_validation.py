"""batch/v1 Jobs and CronJobs: defaulting, the generated selector, validation (upstream's
cases from validation_test.go and defaults_test.go, with their field paths), and cron
schedules (robfig/cron's parser messages and its Next)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from svcnet.api import batch
from svcnet.api.cronschedule import ScheduleError, parse_schedule

Obj = dict[str, Any]
UID = "1a2b3c"


def pod_template(restart: str = "OnFailure") -> Obj:
    return {"spec": {"restartPolicy": restart,
                     "containers": [{"name": "c", "image": "busybox"}]}}


def new_job(**spec: Any) -> Obj:
    """A Job as the server prepares it: defaulted, with a uid and the generated selector."""
    job: Obj = {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "myjob", "namespace": "default", "uid": UID,
                             "resourceVersion": "1"},
                "spec": {"template": pod_template(), **spec}}
    return batch.prepare_job_for_create(batch.set_defaults_job(job))


def new_cronjob(**spec: Any) -> Obj:
    cj: Obj = {"apiVersion": "batch/v1", "kind": "CronJob",
               "metadata": {"name": "mycronjob", "namespace": "default", "uid": UID},
               "spec": {"schedule": "* * * * ?",
                        "jobTemplate": {"spec": {"template": pod_template()}}, **spec}}
    return batch.set_defaults_cronjob(cj)


def messages(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


# -- defaulting --------------------------------------------------------------------------------


def test_job_defaults() -> None:
    job = new_job()
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False and spec["manualSelector"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert job["status"] == {}


def test_job_defaults_keep_given_values() -> None:
    spec = new_job(parallelism=3, backoffLimitPerIndex=1, completionMode="Indexed",
                   podFailurePolicy={"rules": [{"action": "Ignore",
                                                "onPodConditions": [{"type": "X"}]}]})["spec"]
    # Parallelism alone leaves completions unset (a work queue).
    assert "completions" not in spec and spec["parallelism"] == 3
    assert spec["backoffLimit"] == 2**31 - 1
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


def test_job_labels_come_from_its_template_when_it_has_none() -> None:
    template = pod_template()
    template["metadata"] = {"labels": {"app": "x"}}
    job = batch.set_defaults_job({"metadata": {"name": "j"}, "spec": {"template": template}})
    assert job["metadata"]["labels"] == {"app": "x"}
    job = batch.set_defaults_job({"metadata": {"name": "j", "labels": {"own": "1"}},
                                  "spec": {"template": template}})
    assert job["metadata"]["labels"] == {"own": "1"}


def test_generated_selector_and_labels() -> None:
    job = new_job()
    assert job["spec"]["selector"] == {"matchLabels": {batch.CONTROLLER_UID_LABEL: UID}}
    assert job["spec"]["template"]["metadata"]["labels"] == {
        "controller-uid": UID, "batch.kubernetes.io/controller-uid": UID,
        "job-name": "myjob", "batch.kubernetes.io/job-name": "myjob"}
    assert batch.validate_job(job) == []


def test_manual_selector_is_left_alone() -> None:
    template = pod_template()
    template["metadata"] = {"labels": {"a": "b"}}
    job = new_job(manualSelector=True, selector={"matchLabels": {"a": "b"}}, template=template)
    assert job["spec"]["selector"] == {"matchLabels": {"a": "b"}}
    assert job["spec"]["template"]["metadata"]["labels"] == {"a": "b"}
    assert batch.validate_job(job) == []


def test_cronjob_defaults_do_not_default_the_job_template_as_a_job() -> None:
    spec = new_cronjob()["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"]) == ("Allow", False)
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert "parallelism" not in spec["jobTemplate"]["spec"]
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


# -- Job validation ----------------------------------------------------------------------------


def _with(job: Obj, path: str, value: Any) -> Obj:
    out = copy.deepcopy(job)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("spec.parallelism", -1,
     "spec.parallelism: Invalid value: -1: must be greater than or equal to 0"),
    ("spec.completions", -1,
     "spec.completions: Invalid value: -1: must be greater than or equal to 0"),
    ("spec.activeDeadlineSeconds", -1,
     "spec.activeDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0"),
    ("spec.backoffLimit", -1,
     "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"),
    ("spec.ttlSecondsAfterFinished", -1,
     "spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0"),
    ("spec.template.spec.restartPolicy", "Always",
     'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    ("spec.podReplacementPolicy", "Sometimes",
     'spec.podReplacementPolicy: Unsupported value: "Sometimes": supported values: "Failed", '
     '"TerminatingOrFailed"'),
    ("spec.completionMode", "Foo",
     'spec.completionMode: Unsupported value: "Foo": supported values: "NonIndexed", '
     '"Indexed"'),
    ("spec.backoffLimitPerIndex", 1,
     "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"),
    ("spec.selector", None, "spec.selector: Required value"),
])
def test_job_spec_errors(path: str, value: Any, expected: str) -> None:
    errs = messages(batch.validate_job(_with(new_job(), path, value)))
    assert expected in errs


def test_indexed_job_needs_completions() -> None:
    job = _with(new_job(completionMode="Indexed"), "spec.completions", None)
    assert "spec.completions: Required value: when completion mode is Indexed" in messages(
        batch.validate_job(job))


def test_selector_must_match_template_and_be_the_generated_one() -> None:
    job = _with(new_job(), "spec.selector", {"matchLabels": {"a": "b"}})
    errs = messages(batch.validate_job(job))
    assert any(e.startswith("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:"
                            'map[string]string{"a":"b"}') and e.endswith(
        "`selector` not auto-generated") for e in errs)
    assert any(e.startswith("spec.template.metadata.labels: Invalid value:") and e.endswith(
        "`selector` does not match template `labels`") for e in errs)


def test_wrong_generated_label_is_refused() -> None:
    job = _with(new_job(), "spec.template.metadata.labels.job-name", "other")
    errs = messages(batch.validate_job(job))
    assert any(e.startswith("spec.template.metadata.labels[job-name]: Invalid value:")
               and e.endswith("must be 'myjob'") for e in errs)


def test_job_update_immutable_fields() -> None:
    old = new_job()
    new = _with(old, "spec.completions", 2)
    assert "spec.completions: Invalid value: 2: field is immutable" in messages(
        batch.validate_job_update(new, old))
    new = _with(old, "spec.template.spec.containers", [{"name": "c", "image": "other"}])
    assert "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable" in \
        messages(batch.validate_job_update(new, old))
    # Parallelism and suspend may change.
    assert batch.validate_job_update(_with(old, "spec.parallelism", 5), old) == []


def test_suspended_job_that_never_started_may_change_its_scheduling() -> None:
    old = new_job(suspend=True)
    new = _with(old, "spec.template.spec.nodeSelector", {"disk": "ssd"})
    assert batch.validate_job_update(new, old) == []
    started = _with(old, "status.startTime", "2026-01-01T00:00:00Z")
    assert any("field is immutable" in m for m in messages(
        batch.validate_job_update(new, started)))


def test_indexed_job_completions_change_with_parallelism() -> None:
    old = new_job(completionMode="Indexed", completions=2, parallelism=2)
    assert batch.validate_job_update(
        _with(_with(old, "spec.completions", 3), "spec.parallelism", 3), old) == []
    assert "spec.completions: Invalid value: 3: can only be modified in tandem with " \
        "spec.parallelism" in messages(batch.validate_job_update(
            _with(old, "spec.completions", 3), old))


def test_job_status_update_rules() -> None:
    old = new_job()
    done = _with(old, "status", {"conditions": [{"type": "Complete", "status": "True"}]})
    assert "status.completionTime: Required value: completionTime is required for Complete " \
        "jobs" in messages(batch.validate_job_status_update(done, old))
    done["status"]["completionTime"] = "2026-01-01T00:00:00Z"
    assert batch.validate_job_status_update(done, old) == []
    assert "status.conditions: Invalid value: cannot disable the terminal Complete=True " \
        "condition" in messages(batch.validate_job_status_update(old, done))
    assert "status.active: Invalid value: -1: must be greater than or equal to 0" in messages(
        batch.validate_job_status_update(_with(old, "status", {"active": -1}), old))


def test_prepare_for_status_update_keeps_spec() -> None:
    old = new_job()
    new = _with(old, "spec.parallelism", 9)
    new["status"] = {"active": 1}
    out = batch.prepare_job_for_status_update(new, old)
    assert out["spec"]["parallelism"] == 1 and out["status"] == {"active": 1}


# -- CronJob validation ------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "expected"), [
    ({"schedule": ""}, "spec.schedule: Required value"),
    ({"schedule": "error"},
     'spec.schedule: Invalid value: "error": expected exactly 5 fields, found 1: [error]'),
    ({"schedule": "TZ=UTC 0 * * * *"},
     'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, '
     "use timeZone field instead"),
    ({"schedule": "61 * * * *"},
     'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61'),
    ({"startingDeadlineSeconds": -1},
     "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0"),
    ({"concurrencyPolicy": "Sometimes"},
     'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", '
     '"Forbid", "Replace"'),
    ({"timeZone": ""},
     'spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string'),
    ({"timeZone": "Local"},
     'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as '
     "defined in https://www.iana.org/time-zones"),
    ({"timeZone": "America/New_York "},
     'spec.timeZone: Invalid value: "America/New_York ": unknown time zone America/New_York '),
    ({"timeZone": "Continent/Zone"},
     'spec.timeZone: Invalid value: "Continent/Zone": unknown time zone Continent/Zone'),
    ({"successfulJobsHistoryLimit": -1},
     "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0"),
])
def test_cronjob_spec_errors(spec: Obj, expected: str) -> None:
    cj = new_cronjob(**spec)
    assert expected in messages(batch.validate_cronjob(cj))


def test_valid_cronjobs() -> None:
    for spec in ({}, {"timeZone": "America/New_York"}, {"timeZone": "Etc/GMT-14"},
                 {"schedule": "@hourly"}, {"schedule": "0 9 * * MON-FRI"},
                 {"schedule": "@every 1h30m"}):
        assert batch.validate_cronjob(new_cronjob(**spec)) == [], spec


def test_cronjob_job_template_rules() -> None:
    cj = new_cronjob()
    cj["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    cj["spec"]["jobTemplate"]["spec"]["manualSelector"] = True
    cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    errs = messages(batch.validate_cronjob(cj))
    assert any(e.startswith("spec.jobTemplate.spec.selector: Invalid value:") and e.endswith(
        "`selector` will be auto-generated") for e in errs)
    assert 'spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: ' \
        '"nil", "false"' in errs
    assert 'spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: ' \
        '"OnFailure", "Never"' in errs


def test_cronjob_name_length_only_on_create() -> None:
    cj = new_cronjob()
    cj["metadata"]["name"] = "a" * 53
    assert f'metadata.name: Invalid value: "{"a" * 53}": must be no more than 52 characters' \
        in messages(batch.validate_cronjob(cj))
    old = copy.deepcopy(cj)
    old["metadata"]["resourceVersion"] = "1"
    assert batch.validate_cronjob_update(copy.deepcopy(old), old) == []


def test_tz_in_schedule_allowed_on_update_when_already_there() -> None:
    old = new_cronjob(schedule="TZ=UTC 0 * * * *")
    old["metadata"]["resourceVersion"] = "1"
    assert batch.validate_cronjob_update(copy.deepcopy(old), old) == []
    new = copy.deepcopy(old)
    new["spec"]["timeZone"] = "UTC"
    assert 'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use both timeZone field ' \
        "and TZ or CRON_TZ in schedule" in messages(batch.validate_cronjob_update(new, old))


# -- cron schedules ----------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("* 24 * * *", "end of range (24) above maximum (23): 24"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("*/2/3 * * * *", "too many slashes: */2/3"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every x", 'failed to parse duration x: time: invalid duration "x"'),
])
def test_schedule_errors(spec: str, message: str) -> None:
    with pytest.raises(ScheduleError) as e:
        parse_schedule(spec)
    assert str(e.value) == message


T = datetime(2026, 3, 2, 10, 7, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("spec", "expected"), [
    ("*/5 * * * *", datetime(2026, 3, 2, 10, 10, tzinfo=UTC)),
    ("@hourly", datetime(2026, 3, 2, 11, 0, tzinfo=UTC)),
    ("0 0 1 1 *", datetime(2027, 1, 1, tzinfo=UTC)),
    ("30 9 * * sat", datetime(2026, 3, 7, 9, 30, tzinfo=UTC)),
    # Both day fields restricted: either may match (the 13th, or any Friday).
    ("0 0 13 * 5", datetime(2026, 3, 6, tzinfo=UTC)),
    # Day of week is '*': the day of month alone decides.
    ("0 0 13 * *", datetime(2026, 3, 13, tzinfo=UTC)),
    ("TZ=Asia/Tokyo 0 9 * * *", datetime(2026, 3, 3, 0, 0, tzinfo=UTC)),
    ("@every 90s", datetime(2026, 3, 2, 10, 9, tzinfo=UTC)),
])
def test_next_activation(spec: str, expected: datetime) -> None:
    assert parse_schedule(spec).next_after(T) == expected


def test_next_activation_in_a_zone_and_never() -> None:
    from zoneinfo import ZoneInfo
    assert parse_schedule("0 9 * * *").next_after(T, ZoneInfo("Europe/Paris")) == datetime(
        2026, 3, 3, 8, 0, tzinfo=UTC)
    assert parse_schedule("0 0 30 2 *").next_after(T) is None
