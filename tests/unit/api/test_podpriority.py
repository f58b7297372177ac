"""The Priority admission (plugin/pkg/admission/priority): new pods alone and in the pod
registry's pipeline, pod updates, and PriorityClass writes through their registry."""

from __future__ import annotations

import random
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.api.podpriority import admit_pod_priority, keep_pod_priority
from svcnet.api.priorityclasses import SYSTEM_PRIORITY_CLASSES
from svcnet.registry.generic import Registry
from svcnet.registry.scheduling import PriorityClassRegistry, PriorityClassStrategy
from svcnet.registry.strategies import PodStrategy
from svcnet.storage.memory import MemoryStore

Obj = dict[str, Any]

HIGH: Obj = {"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"}
LOW_DEFAULT: Obj = {"metadata": {"name": "low"}, "value": 10, "globalDefault": True,
                    "preemptionPolicy": "PreemptLowerPriority"}
CLASSES: list[Obj] = [*SYSTEM_PRIORITY_CLASSES, HIGH]


def pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def refusal(pod_obj: Obj, classes: list[Obj], name: str = "p") -> str:
    with pytest.raises(StatusError) as err:
        admit_pod_priority(pod_obj, classes, name)
    assert err.value.code == 403 and err.value.reason == "Forbidden"
    return err.value.message


def test_no_class_and_no_default_is_priority_zero() -> None:
    spec = admit_pod_priority(pod(), CLASSES, "p")["spec"]
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert "priorityClassName" not in spec


def test_no_class_gets_the_global_default() -> None:
    spec = admit_pod_priority(pod(), [*CLASSES, LOW_DEFAULT], "p")["spec"]
    assert (spec["priorityClassName"], spec["priority"], spec["preemptionPolicy"]) == (
        "low", 10, "PreemptLowerPriority")


def test_a_named_class_gives_its_value_and_policy() -> None:
    original = pod(priorityClassName="high")
    spec = admit_pod_priority(original, [*CLASSES, LOW_DEFAULT], "p")["spec"]
    assert (spec["priorityClassName"], spec["priority"], spec["preemptionPolicy"]) == (
        "high", 1000, "Never")
    assert "priority" not in original["spec"], "a copy"
    critical = admit_pod_priority(pod(priorityClassName="system-cluster-critical"), CLASSES,
                                  "p")
    assert critical["spec"]["priority"] == 2_000_000_000


def test_an_unknown_class_is_forbidden() -> None:
    assert refusal(pod(priorityClassName="foo"), CLASSES, "x") == (
        'pods "x" is forbidden: no PriorityClass with name foo was found')


def test_a_given_priority_must_be_the_computed_one() -> None:
    assert admit_pod_priority(pod(priorityClassName="high", priority=1000), CLASSES,
                              "p")["spec"]["priority"] == 1000
    assert admit_pod_priority(pod(priority=0), CLASSES, "p")["spec"]["priority"] == 0
    assert refusal(pod(priorityClassName="high", priority=5), CLASSES) == (
        'pods "p" is forbidden: the integer value of priority (5) must not be provided in pod '
        "spec; priority admission controller computed 1000 from the given PriorityClass name")
    assert refusal(pod(priority=7), CLASSES).endswith("computed 0 from the given PriorityClass "
                                                      "name")


def test_a_given_preemption_policy_must_be_the_class_one() -> None:
    assert admit_pod_priority(pod(priorityClassName="high", preemptionPolicy="Never"),
                              CLASSES, "p")["spec"]["preemptionPolicy"] == "Never"
    assert refusal(pod(priorityClassName="high", preemptionPolicy="PreemptLowerPriority"),
                   CLASSES) == (
        'pods "p" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) '
        "must not be provided in pod spec; priority admission controller computed Never from "
        "the given PriorityClass name")
    # Without a default class the computed policy is PreemptLowerPriority.
    assert "(Never)" in refusal(pod(preemptionPolicy="Never"), CLASSES)


def test_an_update_keeps_the_stored_priority() -> None:
    old = admit_pod_priority(pod(priorityClassName="high"), CLASSES, "p")
    new = pod(priorityClassName="high")
    kept = keep_pod_priority(new, old)
    assert (kept["spec"]["priority"], kept["spec"]["preemptionPolicy"]) == (1000, "Never")
    assert "priority" not in new["spec"], "a copy"
    assert keep_pod_priority(old, old) is old


# -- through the registries ------------------------------------------------------------------


@pytest.fixture
def classes() -> PriorityClassRegistry:
    store = MemoryStore()
    registry: PriorityClassRegistry

    async def every_class() -> list[Obj]:
        return (await registry.list("")).items

    registry = PriorityClassRegistry(store, PriorityClassStrategy(every_class),
                                     rng=random.Random(7))
    return registry


@pytest.fixture
async def pods(classes: PriorityClassRegistry) -> Registry:
    for obj in SYSTEM_PRIORITY_CLASSES:
        await classes.create("", dict(obj))

    async def every_class() -> list[Obj]:
        return (await classes.list("")).items

    return Registry(MemoryStore(), PodStrategy(priority_classes=every_class),
                    rng=random.Random(7))


async def test_pod_create_and_update_through_the_registry(
        pods: Registry, classes: PriorityClassRegistry) -> None:
    made = await pods.create("ns", pod(priorityClassName="system-node-critical"))
    assert made["spec"]["priority"] == 2_000_001_000
    # A replace that leaves priority out keeps it; changing it is refused by validation.
    replaced = pod(priorityClassName="system-node-critical")
    replaced["metadata"].update(labels={"a": "b"},
                                resourceVersion=made["metadata"]["resourceVersion"])
    updated = await pods.update("ns", "p", replaced)
    assert updated["spec"]["priority"] == 2_000_001_000
    updated["spec"]["priority"] = 1
    with pytest.raises(StatusError) as err:
        await pods.update("ns", "p", updated)
    assert err.value.code == 422
    generated = pod(priorityClassName="nope")
    generated["metadata"] = {"generateName": "web-", "namespace": "ns"}
    with pytest.raises(StatusError) as err:
        await pods.create("ns", generated)
    assert err.value.message == ('pods "web-" is forbidden: no PriorityClass with name nope '
                                 "was found")
    await classes.create("", {"metadata": {"name": "dflt"}, "value": 7, "globalDefault": True})
    plain = pod()
    plain["metadata"]["name"] = "q"
    spec = (await pods.create("ns", plain))["spec"]
    assert (spec["priorityClassName"], spec["priority"]) == ("dflt", 7)


async def test_class_writes_through_the_registry(classes: PriorityClassRegistry) -> None:
    for obj in SYSTEM_PRIORITY_CLASSES:
        await classes.create("", dict(obj))
    made = await classes.create("", {"metadata": {"name": "a"}, "value": 1,
                                     "globalDefault": True})
    assert made["preemptionPolicy"] == "PreemptLowerPriority"
    assert made["metadata"]["generation"] == 1
    with pytest.raises(StatusError) as err:
        await classes.create("", {"metadata": {"name": "b"}, "value": 2, "globalDefault": True})
    assert (err.value.code, err.value.message) == (
        403, 'priorityclasses.scheduling.k8s.io "b" is forbidden: PriorityClass a is already '
             "marked as default. Only one default can exist")
    # An invalid class is a 422 first, as upstream validates before it admits.
    with pytest.raises(StatusError) as err:
        await classes.create("", {"metadata": {"name": "c"}, "value": 2_000_000_000,
                                  "globalDefault": True})
    assert err.value.code == 422
    # The default class itself can be updated; its value cannot.
    made["description"] = "mine"
    made = await classes.update("", "a", made)
    assert made["description"] == "mine"
    with pytest.raises(StatusError) as err:
        await classes.update("", "a", {**made, "value": 3})
    assert err.value.code == 422
    # System classes cannot be deleted; others can.
    with pytest.raises(StatusError) as err:
        await classes.delete("", "system-cluster-critical")
    assert (err.value.code, err.value.message) == (
        403, 'priorityclasses.scheduling.k8s.io "system-cluster-critical" is forbidden: this is '
             "a system priority class and cannot be deleted")
    await classes.delete("", "a")
    assert [c["metadata"]["name"] for c in (await classes.list("")).items] == [
        "system-cluster-critical", "system-node-critical"]
    # A DELETE of the whole collection takes them too (upstream's DeleteCollection calls the
    # store's Delete, not the resource's); the server makes them again at its next start.
    for name in ("system-cluster-critical", "system-node-critical"):
        await classes.delete_in_collection("", name)
    assert (await classes.list("")).items == []
