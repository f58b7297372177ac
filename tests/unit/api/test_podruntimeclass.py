"""The RuntimeClass admission of new pods (plugin/pkg/admission/runtimeclass), alone and in the
pod registry's create pipeline."""

from __future__ import annotations

import random
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.api.podruntimeclass import admit_pod_runtime_class, merge_tolerations
from svcnet.registry.generic import Registry
from svcnet.registry.strategies import PodStrategy
from svcnet.storage.memory import MemoryStore

Obj = dict[str, Any]

GVISOR: Obj = {"metadata": {"name": "gvisor"}, "handler": "runsc",
               "overhead": {"podFixed": {"cpu": "250m", "memory": "64Mi"}},
               "scheduling": {"nodeSelector": {"sandbox": "gvisor"},
                              "tolerations": [{"key": "sandbox", "operator": "Exists",
                                               "effect": "NoSchedule"}]}}
PLAIN: Obj = {"metadata": {"name": "runc"}, "handler": "runc"}


def pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def refusal(pod_obj: Obj, rc: Obj | None, name: str = "p") -> StatusError:
    with pytest.raises(StatusError) as err:
        admit_pod_runtime_class(pod_obj, rc, name)
    assert err.value.code == 403 and err.value.reason == "Forbidden"
    return err.value


def test_a_pod_without_a_class_is_left_alone() -> None:
    assert admit_pod_runtime_class(pod(), None, "p") == pod()


def test_an_unknown_class_is_refused() -> None:
    err = refusal(pod(runtimeClassName="nope"), None)
    assert err.message == 'pods "p" is forbidden: pod rejected: RuntimeClass "nope" not found'
    assert err.details == {"name": "p", "kind": "pods"}


def test_a_class_without_overhead_or_scheduling_changes_nothing() -> None:
    assert admit_pod_runtime_class(pod(runtimeClassName="runc"), PLAIN, "p") == pod(
        runtimeClassName="runc")


def test_overhead_and_scheduling_are_set_from_the_class() -> None:
    given = pod(runtimeClassName="gvisor", nodeSelector={"disk": "ssd"},
                tolerations=[{"key": "a", "operator": "Equal", "value": "1"}])
    out = admit_pod_runtime_class(given, GVISOR, "p")
    spec = out["spec"]
    assert spec["overhead"] == {"cpu": "250m", "memory": "64Mi"}
    assert spec["nodeSelector"] == {"disk": "ssd", "sandbox": "gvisor"}
    assert spec["tolerations"] == [{"key": "a", "operator": "Equal", "value": "1"},
                                   {"key": "sandbox", "operator": "Exists",
                                    "effect": "NoSchedule"}]
    assert "overhead" not in given["spec"], "the input is not changed"
    spec["overhead"]["cpu"] = "1"
    assert GVISOR["overhead"]["podFixed"]["cpu"] == "250m", "nor is the class"


def test_a_pod_without_a_selector_takes_the_classes() -> None:
    out = admit_pod_runtime_class(pod(runtimeClassName="gvisor"), GVISOR, "p")
    assert out["spec"]["nodeSelector"] == {"sandbox": "gvisor"}


def test_an_equal_overhead_of_the_pod_is_accepted() -> None:
    out = admit_pod_runtime_class(
        pod(runtimeClassName="gvisor", overhead={"cpu": "0.25", "memory": "67108864"}),
        GVISOR, "p")
    assert out["spec"]["overhead"] == {"cpu": "250m", "memory": "64Mi"}


def test_a_different_overhead_is_refused() -> None:
    err = refusal(pod(runtimeClassName="gvisor", overhead={"cpu": "1"}), GVISOR)
    assert err.message == ('pods "p" is forbidden: pod rejected: Pod\'s Overhead doesn\'t match '
                           "RuntimeClass's defined Overhead")


@pytest.mark.parametrize("rc", [None, PLAIN], ids=["no class", "class without overhead"])
def test_an_overhead_without_a_class_that_defines_one_is_refused(rc: Obj | None) -> None:
    given = pod(overhead={"cpu": "1"})
    if rc is not None:
        given["spec"]["runtimeClassName"] = "runc"
    err = refusal(given, rc)
    assert err.message == ('pods "p" is forbidden: pod rejected: Pod Overhead set without '
                           "corresponding RuntimeClass defined Overhead")


def test_a_class_with_an_empty_overhead_clears_the_pods() -> None:
    rc = {**PLAIN, "overhead": {}}
    out = admit_pod_runtime_class(pod(runtimeClassName="runc"), rc, "p")
    assert "overhead" not in out["spec"]
    assert admit_pod_runtime_class(pod(runtimeClassName="runc", overhead={}), rc, "p")


def test_a_conflicting_node_selector_is_refused() -> None:
    err = refusal(pod(runtimeClassName="gvisor", nodeSelector={"sandbox": "kata"}), GVISOR)
    assert err.message == ('pods "p" is forbidden: conflict: '
                           "runtimeClass.scheduling.nodeSelector[sandbox] = gvisor; "
                           "pod.spec.nodeSelector[sandbox] = kata")


def test_the_error_names_the_pod_as_given() -> None:
    err = refusal(pod(runtimeClassName="nope"), None, name="web-")
    assert err.message.startswith('pods "web-" is forbidden:')


# ---------------------------------------------------------------------------- tolerations

EXISTS_ALL: Obj = {"operator": "Exists"}
NO_SCHEDULE_A: Obj = {"key": "a", "operator": "Exists", "effect": "NoSchedule"}
ANY_EFFECT_A: Obj = {"key": "a", "operator": "Exists"}
EQUAL_A1: Obj = {"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"}
EQUAL_A2: Obj = {"key": "a", "operator": "Equal", "value": "2", "effect": "NoSchedule"}
EXECUTE_10: Obj = {"key": "b", "operator": "Exists", "effect": "NoExecute",
                   "tolerationSeconds": 10}
EXECUTE_20: Obj = {"key": "b", "operator": "Exists", "effect": "NoExecute",
                   "tolerationSeconds": 20}
EXECUTE_FOREVER: Obj = {"key": "b", "operator": "Exists", "effect": "NoExecute"}


@pytest.mark.parametrize(("first", "second", "merged"), [
    ([], [], []),
    ([NO_SCHEDULE_A], [], [NO_SCHEDULE_A]),
    ([], [NO_SCHEDULE_A], [NO_SCHEDULE_A]),
    ([NO_SCHEDULE_A], [dict(NO_SCHEDULE_A)], [NO_SCHEDULE_A]),
    # Equal to another but for a zero value spelled out: still the same toleration.
    ([NO_SCHEDULE_A], [{**NO_SCHEDULE_A, "value": ""}], [NO_SCHEDULE_A]),
    ([EQUAL_A1, EQUAL_A2], [], [EQUAL_A1, EQUAL_A2]),
    # Exists covers every value of its key and effect; an empty effect covers every effect.
    ([EQUAL_A1], [NO_SCHEDULE_A], [NO_SCHEDULE_A]),
    ([NO_SCHEDULE_A, EQUAL_A2], [ANY_EFFECT_A], [ANY_EFFECT_A]),
    # An empty key with Exists tolerates everything.
    ([NO_SCHEDULE_A, EXECUTE_10], [EXISTS_ALL], [EXISTS_ALL]),
    # For NoExecute, the longer toleration covers the shorter; no seconds is forever.
    ([EXECUTE_10, EXECUTE_20], [], [EXECUTE_20]),
    ([EXECUTE_20], [EXECUTE_FOREVER], [EXECUTE_FOREVER]),
    ([EXECUTE_FOREVER], [EXECUTE_10], [EXECUTE_FOREVER]),
    # An empty operator means Equal and covers an explicit Equal, not the other way round:
    # whichever comes first, the one with the empty operator stays.
    ([{"key": "a", "value": "1", "effect": "NoSchedule"}], [EQUAL_A1],
     [{"key": "a", "value": "1", "effect": "NoSchedule"}]),
    ([EQUAL_A1], [{"key": "a", "value": "1", "effect": "NoSchedule"}],
     [{"key": "a", "value": "1", "effect": "NoSchedule"}]),
], ids=["empty", "first only", "second only", "same", "same but spelled out",
        "different values", "exists covers equal", "no effect covers effects", "match all",
        "longer NoExecute", "forever", "forever first", "empty operator first",
        "empty operator second"])
def test_merge_tolerations(first: list[Obj], second: list[Obj], merged: list[Obj]) -> None:
    assert merge_tolerations(first, second) == merged


# -------------------------------------------------------------- the registry's pipeline


CLASSES: dict[str, Obj] = {}


@pytest.fixture
def pods() -> Registry:
    CLASSES.clear()
    CLASSES.update(gvisor=GVISOR, runc=PLAIN)

    async def lookup(name: str) -> Obj | None:
        return CLASSES.get(name)

    return Registry(MemoryStore(), PodStrategy(runtime_class=lookup), rng=random.Random(7))


async def test_create_admits_before_validation(pods: Registry) -> None:
    made = await pods.create("ns", pod(runtimeClassName="gvisor"))
    assert made["spec"]["overhead"] == {"cpu": "250m", "memory": "64Mi"}
    assert made["spec"]["nodeSelector"] == {"sandbox": "gvisor"}
    stored = await pods.get("ns", "p")
    assert stored["spec"]["overhead"] == made["spec"]["overhead"]


async def test_create_refuses_an_unknown_class_and_names_the_pod_as_requested(
        pods: Registry) -> None:
    generated = pod(runtimeClassName="nope")
    generated["metadata"] = {"generateName": "web-", "namespace": "ns"}
    with pytest.raises(StatusError) as err:
        await pods.create("ns", generated)
    # Upstream admits before the name is generated: the error names the generateName.
    assert err.value.message == ('pods "web-" is forbidden: pod rejected: RuntimeClass "nope" '
                                 "not found")
    with pytest.raises(StatusError) as err:
        await pods.create("ns", pod(runtimeClassName="nope"), dry_run=True)
    assert err.value.message.startswith('pods "p" is forbidden')
    assert (await pods.list("ns")).items == []


async def test_updates_are_not_admitted(pods: Registry) -> None:
    made = await pods.create("ns", pod(runtimeClassName="runc"))
    del CLASSES["runc"]  # deleted meanwhile: only creates look their class up
    made["metadata"]["labels"] = {"a": "b"}
    updated = await pods.update("ns", "p", made)
    assert updated["metadata"]["labels"] == {"a": "b"}
    assert updated["spec"]["runtimeClassName"] == "runc"
