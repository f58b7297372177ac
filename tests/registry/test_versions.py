"""One kind at two versions (svcnet/registry/versions.py): the autoscaling/v1 view of the
autoscaling/v2 HorizontalPodAutoscaler registry, over a real (memory) store: writes are
converted and validated at v2, and reads, raw lists and watch events answer at v1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.registry.autoscaling import HorizontalPodAutoscalerStrategy
from svcnet.registry.generic import Registry
from svcnet.registry.versions import CONVERTERS, VersionedRegistry
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]


def _registries() -> tuple[Registry, VersionedRegistry]:
    v2 = Registry(MemoryStore(), HorizontalPodAutoscalerStrategy(), clock=FakeClock())
    return v2, VersionedRegistry(v2, CONVERTERS[("autoscaling/v1", "HorizontalPodAutoscaler")])


def _v1(name: str, cpu: int = 70) -> Obj:
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                     "maxReplicas": 4, "targetCPUUtilizationPercentage": cpu}}


async def test_write_at_v1_store_at_v2_read_at_both() -> None:
    v2, v1 = _registries()
    created = await v1.create("default", _v1("a"))
    assert created["apiVersion"] == "autoscaling/v1"
    assert created["spec"]["targetCPUUtilizationPercentage"] == 70
    assert created["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    stored = await v2.get("default", "a")
    assert stored["apiVersion"] == "autoscaling/v2"
    assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert stored["metadata"]["generation"] == 1
    # A patch-like write computed from the v1 object.
    def bump(current: Obj | None) -> Obj:
        assert current is not None and current["apiVersion"] == "autoscaling/v1"
        current["spec"]["targetCPUUtilizationPercentage"] = 90
        return current
    written, created_now = await v1.update_from("default", "a", bump)
    assert not created_now and written["spec"]["targetCPUUtilizationPercentage"] == 90
    assert (await v2.get("default", "a"))["metadata"]["generation"] == 2
    raw, _, _ = await v1.list_raw("default")
    assert [json.loads(item)["spec"]["targetCPUUtilizationPercentage"] for item in raw] == [90]
    page = await v1.list("default")
    assert [o["apiVersion"] for o in page.items] == ["autoscaling/v1"]


async def test_validation_is_the_storage_versions() -> None:
    _, v1 = _registries()
    with pytest.raises(StatusError) as e:
        await v1.create("default", _v1("bad", cpu=0))
    assert e.value.code == 422
    assert e.value.message == (
        'HorizontalPodAutoscaler.autoscaling "bad" is invalid: '
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be "
        "greater than 0")


async def test_watch_events_at_v1() -> None:
    v2, v1 = _registries()
    watcher = await v1.open_watch("default", 0)
    try:
        await v2.create("default", {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "b", "namespace": "default"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                     "maxReplicas": 3}})
        batch = await watcher.next_batch(5)
        assert [ev.obj["apiVersion"] for ev in batch] == ["autoscaling/v1"]
        assert batch[0].obj["spec"]["targetCPUUtilizationPercentage"] == 80
        line = json.loads(batch[0].line("ADDED"))
        assert line["object"]["apiVersion"] == "autoscaling/v1"
        assert line["object"]["metadata"]["resourceVersion"]
        await v1.delete("default", "b")
        gone = await watcher.next_batch(5)
        assert [ev.type.value for ev in gone] == ["DELETED"]
        assert gone[0].obj["apiVersion"] == "autoscaling/v1"
    finally:
        watcher.close()
    assert watcher.closed
