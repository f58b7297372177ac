"""apps/v1 DaemonSet and StatefulSet and core/v1 ReplicationController defaulting and
validation (upstream's rules, field paths and messages), their strategies, and the RC's Scale."""

from __future__ import annotations

import copy
from typing import Any

from svcnet.api.daemonsets import (
    TEMPLATE_GENERATION_ANNOTATION,
    prepare_daemonset_for_create,
    prepare_daemonset_for_update,
    set_defaults_daemonset,
    validate_daemonset,
    validate_daemonset_status_update,
    validate_daemonset_update,
)
from svcnet.api.replicationcontrollers import set_defaults_rc, validate_rc, validate_rc_update
from svcnet.api.statefulsets import (
    set_defaults_statefulset,
    validate_statefulset,
    validate_statefulset_status_update,
    validate_statefulset_update,
)
from svcnet.api.workloads import scale_from_object

Obj = dict[str, Any]
_TEMPLATE: Obj = {"metadata": {"labels": {"app": "web"}},
                  "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}


def _obj(api_version: str, kind: str, spec: Obj) -> Obj:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
            "spec": spec}


def daemonset(**spec: Any) -> Obj:
    base = {"selector": {"matchLabels": {"app": "web"}}, "template": copy.deepcopy(_TEMPLATE)}
    return prepare_daemonset_for_create(set_defaults_daemonset(
        _obj("apps/v1", "DaemonSet", {**base, **spec})))


def statefulset(**spec: Any) -> Obj:
    base = {"selector": {"matchLabels": {"app": "web"}}, "serviceName": "web",
            "template": copy.deepcopy(_TEMPLATE)}
    return set_defaults_statefulset(_obj("apps/v1", "StatefulSet", {**base, **spec}))


def messages(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


# -- DaemonSet --------------------------------------------------------------------------------


def test_daemonset_defaults() -> None:
    ds = daemonset()
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert ds["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert ds["metadata"]["annotations"] == {TEMPLATE_GENERATION_ANNOTATION: "1"}
    assert validate_daemonset(ds) == []
    on_delete = daemonset(updateStrategy={"type": "OnDelete"})
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_daemonset_selector_and_template_errors() -> None:
    ds = daemonset(selector={"matchLabels": {"app": "other"}})
    assert messages(validate_daemonset(ds)) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]
    empty = daemonset(selector={})
    assert "spec.selector: Invalid value" in messages(validate_daemonset(empty))[0]
    assert "empty selector is invalid for daemonset" in messages(validate_daemonset(empty))[0]
    never = daemonset()
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    never["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    assert messages(validate_daemonset(never)) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": '
        'supported values: "Always"',
        "spec.template.spec.activeDeadlineSeconds: Forbidden: "
        "activeDeadlineSeconds in DaemonSet is not Supported"]


def test_daemonset_rolling_update_rules() -> None:
    both = daemonset(updateStrategy={"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}})
    assert messages(validate_daemonset(both)) == [
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: "
        "may not be set when maxUnavailable is non-zero"]
    none = daemonset(updateStrategy={"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}})
    assert messages(validate_daemonset(none)) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: "
        "cannot be 0 when maxSurge is 0"]
    too_much = daemonset(updateStrategy={"type": "RollingUpdate",
                                         "rollingUpdate": {"maxUnavailable": "150%"}})
    assert messages(validate_daemonset(too_much)) == [
        'spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 150%: '
        "must not be greater than 100%"]
    bad_type = daemonset(updateStrategy={"type": "Sometimes"})
    assert messages(validate_daemonset(bad_type))[0].startswith(
        "spec.updateStrategy: Unsupported value: ")
    assert messages(validate_daemonset(bad_type))[0].endswith(
        'supported values: "RollingUpdate", "OnDelete"')


def test_daemonset_update_bumps_template_generation_and_keeps_selector() -> None:
    old = daemonset()
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    prepared = prepare_daemonset_for_update(new, old)
    assert prepared["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION] == "2"
    assert validate_daemonset_update(prepared, old) == []
    same = prepare_daemonset_for_update(copy.deepcopy(old), old)
    assert same["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION] == "1"
    moved = copy.deepcopy(old)
    moved["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    moved = prepare_daemonset_for_update(moved, old)
    assert any(m.startswith("spec.selector: Invalid value: ") and
               m.endswith("field is immutable") for m in messages(
                   validate_daemonset_update(moved, old)))


def test_daemonset_status_counts_are_not_negative() -> None:
    old = daemonset()
    new = copy.deepcopy(old)
    new["status"] = {"numberReady": -1, "desiredNumberScheduled": 2}
    assert messages(validate_daemonset_status_update(new, old)) == [
        "status.numberReady: Invalid value: -1: must be greater than or equal to 0"]


# -- StatefulSet ------------------------------------------------------------------------------


def test_statefulset_defaults() -> None:
    sts = statefulset(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}])
    spec = sts["spec"]
    assert (spec["replicas"], spec["podManagementPolicy"], spec["revisionHistoryLimit"]) == (
        1, "OrderedReady", 10)
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                            "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert validate_statefulset(sts) == []
    on_delete = statefulset(updateStrategy={"type": "OnDelete"})
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_statefulset_validation_paths() -> None:
    bad = statefulset(podManagementPolicy="Random", replicas=-1,
                      persistentVolumeClaimRetentionPolicy={"whenDeleted": "Keep"},
                      updateStrategy={"type": "RollingUpdate",
                                      "rollingUpdate": {"partition": -2}})
    assert messages(validate_statefulset(bad)) == [
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or "
        "'Parallel'",
        "spec.updateStrategy.rollingUpdate.partition: Invalid value: -2: "
        "must be greater than or equal to 0",
        'spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep": '
        'supported values: "Retain", "Delete"',
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
    mismatch = statefulset(selector={"matchLabels": {"app": "db"}})
    assert messages(validate_statefulset(mismatch)) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]
    no_selector = statefulset()
    del no_selector["spec"]["selector"]
    # A nil selector selects nothing, so the template does not match it either (as upstream).
    assert messages(validate_statefulset(no_selector)) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]


def test_statefulset_update_may_change_only_some_fields() -> None:
    old = statefulset()
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 3
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    scaled["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert validate_statefulset_update(scaled, old) == []
    renamed = copy.deepcopy(old)
    renamed["spec"]["serviceName"] = "other"
    assert messages(validate_statefulset_update(renamed, old)) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden"]
    claims = copy.deepcopy(old)
    claims["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    assert len(validate_statefulset_update(claims, old)) == 1


def test_statefulset_status_rules() -> None:
    old = statefulset()
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 1, "readyReplicas": 2, "availableReplicas": 2}
    assert messages(validate_statefulset_status_update(new, old)) == [
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
        "status.availableReplicas: Invalid value: 2: cannot be greater than status.replicas"]


# -- ReplicationController --------------------------------------------------------------------


def test_rc_defaults_selector_and_labels_from_the_template() -> None:
    rc = set_defaults_rc(_obj("v1", "ReplicationController",
                              {"template": copy.deepcopy(_TEMPLATE)}))
    assert rc["spec"]["selector"] == {"app": "web"}
    assert rc["metadata"]["labels"] == {"app": "web"}
    assert rc["spec"]["replicas"] == 1
    assert validate_rc(rc) == []
    assert scale_from_object({**rc, "status": {"replicas": 1}}, map_selector=True)["status"] == {
        "replicas": 1, "selector": "app=web"}


def test_rc_validation() -> None:
    rc = set_defaults_rc(_obj("v1", "ReplicationController",
                              {"selector": {"app": "db"}, "template": copy.deepcopy(_TEMPLATE)}))
    rc["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert messages(validate_rc(rc)) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`",
        'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": '
        'supported values: "Always"']
    bare = set_defaults_rc(_obj("v1", "ReplicationController", {}))
    assert messages(validate_rc(bare)) == ["spec.selector: Required value",
                                           "spec.template: Required value"]
    ok = set_defaults_rc(_obj("v1", "ReplicationController",
                              {"template": copy.deepcopy(_TEMPLATE)}))
    moved = copy.deepcopy(ok)
    moved["spec"]["selector"] = {"app": "web"}
    moved["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert validate_rc_update(moved, ok) == [], "an RC's selector may change"
