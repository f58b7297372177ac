"""Finalizers on delete (Store.Delete's updateForGracefulDeletionAndFinalizers) and deletion
on the removal of the last one (shouldDeleteDuringUpdate); the propagation policies."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver.deleteoptions import _propagation
from svcnet.registry.generic import Registry
from svcnet.registry.strategies import PodStrategy
from svcnet.registry.workloads import ReplicaSetStrategy
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock

RS: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "ReplicaSet",
    "metadata": {"name": "rs", "namespace": "ns"},
    "spec": {"selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryStore(), ReplicaSetStrategy(), clock=FakeClock(),
                    rng=random.Random(1))


async def remove_finalizers(registry: Registry) -> None:
    current = await registry.get("ns", "rs")
    current["metadata"]["finalizers"] = []
    await registry.update("ns", "rs", current)


@pytest.mark.parametrize(("policy", "finalizer"), [("Foreground", "foregroundDeletion"),
                                                  ("Orphan", "orphan")])
async def test_policies_mark_instead_of_deleting(registry: Registry, policy: str,
                                                 finalizer: str) -> None:
    await registry.create("ns", copy.deepcopy(RS))
    marked = await registry.delete("ns", "rs", propagation_policy=policy)
    meta = marked["metadata"]
    assert (meta["finalizers"], meta["deletionGracePeriodSeconds"]) == ([finalizer], 0)
    assert meta["deletionTimestamp"] and meta["generation"] == 1
    again = await registry.delete("ns", "rs", propagation_policy="Background")
    assert again["metadata"]["finalizers"] == [finalizer], "too late to change the policy"
    await remove_finalizers(registry)
    with pytest.raises(StatusError) as e:
        await registry.get("ns", "rs")
    assert e.value.code == 404


async def test_background_and_no_policy_delete_at_once(registry: Registry) -> None:
    for policy in ("", "Background"):
        await registry.create("ns", copy.deepcopy(RS))
        await registry.delete("ns", "rs", propagation_policy=policy)
        with pytest.raises(StatusError):
            await registry.get("ns", "rs")


async def test_other_finalizers_hold_the_object(registry: Registry) -> None:
    rs = copy.deepcopy(RS)
    rs["metadata"]["finalizers"] = ["example.com/hold"]
    await registry.create("ns", rs)
    await registry.delete("ns", "rs")
    held = await registry.get("ns", "rs")
    assert held["metadata"]["deletionTimestamp"]
    current = copy.deepcopy(held)
    current["metadata"]["labels"] = {"still": "here"}
    await registry.update("ns", "rs", current)
    assert (await registry.get("ns", "rs"))["metadata"]["labels"] == {"still": "here"}
    await remove_finalizers(registry)
    with pytest.raises(StatusError):
        await registry.get("ns", "rs")


async def test_a_graceful_pod_with_a_finalizer() -> None:
    pods = Registry(MemoryStore(), PodStrategy(), clock=FakeClock(), rng=random.Random(1))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
           "spec": {"nodeName": "node-a",
                    "containers": [{"name": "app", "image": "app:1"}]}}
    await pods.create("ns", pod)
    marked = await pods.delete("ns", "p", propagation_policy="Foreground")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    # The kubelet is done with it: grace 0, but the finalizer still holds it.
    done = await pods.delete("ns", "p", grace_period=0)
    assert done["metadata"]["deletionGracePeriodSeconds"] == 0
    current = await pods.get("ns", "p")
    current["metadata"]["finalizers"] = []
    await pods.update("ns", "p", current)
    with pytest.raises(StatusError):
        await pods.get("ns", "p")


def test_delete_options_validation() -> None:
    assert _propagation(None, None) == ""
    assert _propagation(None, True) == "Orphan"
    assert _propagation("Foreground", None) == "Foreground"
    with pytest.raises(StatusError) as e:
        _propagation("Sideways", None)
    assert e.value.message == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
        '"Sideways": supported values: "Foreground", "Background", "Orphan", "nil"')
    with pytest.raises(StatusError):
        _propagation("Orphan", False)


async def test_any_int64_grace_period_marks_a_pod() -> None:
    """Go's Duration would overflow; the deadline stops centuries away instead of failing."""
    pods = Registry(MemoryStore(), PodStrategy(), clock=FakeClock(), rng=random.Random(1))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
           "spec": {"nodeName": "node-a",
                    "containers": [{"name": "app", "image": "app:1"}]}}
    await pods.create("ns", pod)
    marked = await pods.delete("ns", "p", grace_period=2**63 - 1)
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 2**63 - 1
    assert marked["metadata"]["deletionTimestamp"] > "2300"
