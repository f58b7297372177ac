"""LimitRange defaulting and validation, and the LimitRanger admission (upstream's
TestValidateLimitRange and plugin/pkg/admission/limitranger's admission_test.go cases)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.api.limitranges import (
    LIMIT_RANGER_ANNOTATION,
    admit_claim_limits,
    check_pod_limits,
    default_pod_limits,
    pod_requests_and_limits,
    set_defaults_limit_range,
    validate_limit_range,
    validate_limit_range_update,
)

Obj = dict[str, Any]


def _lr(*items: Obj) -> Obj:
    return {"metadata": {"name": "abc", "namespace": "foo"}, "spec": {"limits": list(items)}}


def _res(cpu: str = "", memory: str = "") -> Obj:
    return {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}


def test_defaults_fill_default_from_max_and_requests_from_default_then_min() -> None:
    lr = set_defaults_limit_range(_lr(
        {"type": "Container", "max": _res("2", "1Gi"), "min": _res("100m", "64Mi"),
         "default": _res(memory="512Mi")},
        {"type": "Pod", "max": _res("4")}))
    container, pod = lr["spec"]["limits"]
    assert container["default"] == {"memory": "512Mi", "cpu": "2"}
    assert container["defaultRequest"] == {"memory": "512Mi", "cpu": "2"}
    assert "default" not in pod and "defaultRequest" not in pod
    only_min = set_defaults_limit_range(_lr({"type": "Container", "min": _res("100m")}))
    assert only_min["spec"]["limits"][0] == {"type": "Container", "min": {"cpu": "100m"},
                                             "defaultRequest": {"cpu": "100m"}}


def test_valid_limit_ranges() -> None:
    assert validate_limit_range(_lr(
        {"type": "Pod", "max": _res("100m", "10000Mi"), "min": _res("5m", "100Mi"),
         "maxLimitRequestRatio": _res("10")},
        {"type": "Container", "max": _res("100m", "10000Mi"), "min": _res("5m", "100Mi"),
         "default": _res("50m", "500Mi"), "defaultRequest": _res("10m", "200Mi"),
         "maxLimitRequestRatio": _res("10")},
        {"type": "PersistentVolumeClaim", "max": {"storage": "10Gi"},
         "min": {"storage": "1Gi"}})) == []


@pytest.mark.parametrize(("items", "want"), [
    ([{"type": "Pod"}, {"type": "Pod"}], ['spec.limits[1].type: Duplicate value: "Pod"']),
    ([{"type": "Pod", "default": _res("10m")}],
     ["spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"]),
    ([{"type": "Pod", "defaultRequest": _res("10m")}],
     ["spec.limits[0].defaultRequest: Forbidden: may not be specified when `type` is 'Pod'"]),
    ([{"type": "Container", "max": _res("1"), "min": _res("2")}],
     ["spec.limits[0].min[cpu]: Invalid value: 2: min value 2 is greater than max value 1"]),
    ([{"type": "Container", "max": _res("1"), "min": _res("100m"),
       "defaultRequest": _res("2000m")}],
     ["spec.limits[0].defaultRequest[cpu]: Invalid value: 2: default request value 2 is "
      "greater than max value 1"]),
    ([{"type": "Container", "max": _res("2"), "min": _res("100m"), "default": _res("500m"),
       "defaultRequest": _res("800m")}],
     ["spec.limits[0].defaultRequest[cpu]: Invalid value: 800m: default request value 800m "
      "is greater than default limit value 500m"]),
    ([{"type": "Container", "max": _res("1"), "default": _res("2")}],
     ["spec.limits[0].default[cpu]: Invalid value: 1: default value 2 is greater than max "
      "value 1"]),
    ([{"type": "Pod", "maxLimitRequestRatio": _res("800m")}],
     ["spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: 800m: ratio 800m is less "
      "than 1"]),
    ([{"type": "Container", "max": _res(memory="2Gi"), "min": _res(memory="512Mi"),
       "maxLimitRequestRatio": _res(memory="10")}],
     ["spec.limits[0].maxLimitRequestRatio[memory]: Invalid value: 10: ratio 10 is greater "
      "than max/min = 4.000000"]),
    ([{"type": "PersistentVolumeClaim", "max": _res("1")}],
     ["spec.limits[0].limits: Required value: either minimum or maximum storage value is "
      "required, but neither was provided"]),
    ([{"type": "Container", "default": {"example.com/gpu": "2"},
       "defaultRequest": {"example.com/gpu": "1"}}],
     ["spec.limits[0].defaultRequest[example.com/gpu]: Invalid value: 1: default value 2 "
      "must equal to defaultRequest value 1 in example.com/gpu"]),
    ([{"type": "Bogus"}],
     ['spec.limits[0].type: Invalid value: "Bogus": must be a standard limit type or fully '
      'qualified']),
    ([{"type": "Container", "max": {"storage": "1"}}],
     ['spec.limits[0].max[storage]: Invalid value: "storage": must be a standard resource '
      'for containers']),
])
def test_invalid_limit_ranges(items: list[Obj], want: list[str]) -> None:
    assert [str(e) for e in validate_limit_range(_lr(*items))] == want


def test_update_checks_metadata_then_the_create_rules() -> None:
    old = _lr({"type": "Pod"})
    old["metadata"]["resourceVersion"] = "1"
    new = _lr({"type": "Pod", "default": _res("1")})
    new["metadata"]["resourceVersion"] = "1"
    assert [str(e) for e in validate_limit_range_update(new, old)] == [
        "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"]


_DEFAULTS = set_defaults_limit_range(_lr(
    {"type": "Container", "default": _res("200m", "64Mi"), "defaultRequest": _res("100m"),
     "min": _res("50m"), "max": _res("1"), "maxLimitRequestRatio": _res("4")},
    {"type": "Pod", "max": _res(memory="100Mi")}))


def _pod(*containers: Obj, init: tuple[Obj, ...] = ()) -> Obj:
    spec: Obj = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    return {"metadata": {"name": "p", "namespace": "foo"}, "spec": spec}


def test_defaults_are_merged_and_noted() -> None:
    pod = default_pod_limits(_pod({"name": "a", "resources": {"limits": _res("300m")}},
                                  init=({"name": "i"},)), [_DEFAULTS])
    a, i = pod["spec"]["containers"][0], pod["spec"]["initContainers"][0]
    assert a["resources"] == {"limits": {"cpu": "300m", "memory": "64Mi"},
                              "requests": {"cpu": "100m", "memory": "64Mi"}}
    assert i["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}
    assert pod["metadata"]["annotations"][LIMIT_RANGER_ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container a; memory limit for "
        "container a; cpu, memory request for init container i; cpu, memory limit for init "
        "container i")
    check_pod_limits(pod, [_DEFAULTS], "p")
    untouched = _pod({"name": "a"})
    assert default_pod_limits(untouched, []) is untouched


@pytest.mark.parametrize(("resources", "want"), [
    ({"requests": _res("10m", "10Mi"), "limits": _res("40m", "10Mi")},
     "minimum cpu usage per Container is 50m, but request is 10m"),
    ({"requests": _res("100m", "10Mi"), "limits": _res("2", "10Mi")},
     "[maximum cpu usage per Container is 1, but limit is 2, cpu max limit to request ratio "
     "per Container is 4, but provided ratio is 20.000000]"),
    ({"requests": _res("100m", "10Mi"), "limits": _res(memory="10Mi")},
     "[maximum cpu usage per Container is 1.  No limit is specified, cpu max limit to request "
     "ratio per Container is 4, but no limit is specified or limit is 0]"),
    ({"requests": _res("100m", "200Mi"), "limits": _res("100m", "200Mi")},
     "maximum memory usage per Pod is 100Mi, but limit is 200Mi"),
])
def test_bounds_are_refused_with_upstreams_messages(resources: Obj, want: str) -> None:
    with pytest.raises(StatusError) as e:
        check_pod_limits(_pod({"name": "a", "resources": resources}), [_DEFAULTS], "p")
    assert e.value.code == 403
    assert e.value.message == f'pods "p" is forbidden: {want}'


def test_pod_bounds_take_init_containers_at_their_largest() -> None:
    pod = _pod({"name": "a", "resources": {"limits": _res(memory="40Mi")}},
               {"name": "b", "resources": {"limits": _res(memory="40Mi")}},
               init=({"name": "i", "resources": {"limits": _res(memory="90Mi")}},))
    only_pod = _lr({"type": "Pod", "max": _res(memory="100Mi")})
    check_pod_limits(pod, [only_pod], "p")
    pod["spec"]["initContainers"][0]["resources"]["limits"]["memory"] = "101Mi"
    with pytest.raises(StatusError, match="maximum memory usage per Pod is 100Mi, but limit "
                                          "is 101Mi"):
        check_pod_limits(pod, [only_pod], "p")


def test_claims_are_bounded_by_their_request() -> None:
    lr = _lr({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"},
              "max": {"storage": "10Gi"}})
    claim = {"spec": {"resources": {"requests": {"storage": "5Gi"}}}}
    admit_claim_limits(claim, [lr], "c")
    claim["spec"]["resources"]["requests"]["storage"] = "20Gi"
    with pytest.raises(StatusError) as e:
        admit_claim_limits(claim, [lr], "c")
    assert e.value.message == ('persistentvolumeclaims "c" is forbidden: maximum storage usage '
                               'per PersistentVolumeClaim is 10Gi, but request is 20Gi')
    claim["spec"]["resources"]["requests"] = {}
    with pytest.raises(StatusError, match=r"\[minimum storage usage per PersistentVolumeClaim "
                                          r"is 1Gi.  No request is specified, maximum"):
        admit_claim_limits(claim, [lr], "c")


def test_pod_requests_count_sidecars_with_the_containers() -> None:
    """resourcehelper.PodRequests: a sidecar (init container, restartPolicy Always) runs beside
    the containers, so it adds to their sum; a plain init container needs its own plus the
    sidecars started before it."""
    def c(cpu: str, **extra: Any) -> Obj:
        return {"name": "x", "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}},
                **extra}
    spec = {"containers": [c("600m")],
            "initContainers": [c("100m"), c("600m", restartPolicy="Always"), c("1")]}
    requests, limits = pod_requests_and_limits(spec)
    assert requests["cpu"] == limits["cpu"] == Fraction(8, 5), "max(600m + 600m, 600m + 1)"
    requests, _ = pod_requests_and_limits({"containers": [c("600m")],
                                           "initContainers": [c("600m", restartPolicy="Always")]})
    assert requests["cpu"] == Fraction(6, 5)
