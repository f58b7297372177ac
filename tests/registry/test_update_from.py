"""Registry.update_from: a write computed from the current object, through the strategy,
recomputed when someone else wrote first, unless it names a resourceVersion (a precondition)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.registry.generic import Registry
from svcnet.registry.workloads import ReplicaSetStrategy
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock

RS: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "ReplicaSet",
    "metadata": {"name": "rs", "namespace": "ns"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryStore(), ReplicaSetStrategy(), clock=FakeClock(),
                    rng=random.Random(1))


async def test_a_race_is_recomputed_from_the_newer_object(registry: Registry) -> None:
    await registry.create("ns", RS)
    calls = 0

    def bump(current: dict[str, Any] | None) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        assert current is not None
        if calls == 1:  # someone else writes between our read and our write
            other = copy.deepcopy(current)
            other["metadata"]["labels"] = {"other": "yes"}
            raced.append(other)
        current["spec"]["replicas"] += 1
        return current

    raced: list[dict[str, Any]] = []
    original_update = registry.update

    async def racing_update(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if raced:
            await original_update("ns", "rs", raced.pop())
        return await original_update(*args, **kwargs)

    registry.update = racing_update  # type: ignore[method-assign]
    written, created = await registry.update_from("ns", "rs", bump)
    assert (calls, created) == (2, False)
    assert written["spec"]["replicas"] == 2
    assert written["metadata"]["labels"] == {"other": "yes"}, "the other write is kept"
    assert written["metadata"]["generation"] == 2, "the strategy ran (generation bumped)"


async def test_a_delete_between_read_and_write_answers_not_found(registry: Registry) -> None:
    """The update writes conditionally on the revision update_from read (it does not read
    again): a delete in between fails that write, and the retry finds nothing."""
    await registry.create("ns", RS)
    original_update = registry.update

    async def racing_update(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if (await registry.store.get(registry.key("ns", "rs"))) is not None:
            await registry.delete("ns", "rs")
        return await original_update(*args, **kwargs)

    def bump(current: dict[str, Any] | None) -> dict[str, Any]:
        assert current is not None
        current["spec"]["replicas"] += 1
        return current

    registry.update = racing_update  # type: ignore[method-assign]
    with pytest.raises(StatusError) as e:
        await registry.update_from("ns", "rs", bump)
    assert e.value.code == 404
    assert await registry.store.get(registry.key("ns", "rs")) is None, "nothing written"


async def test_a_named_resource_version_is_a_precondition(registry: Registry) -> None:
    created = await registry.create("ns", RS)
    stale = created["metadata"]["resourceVersion"]
    await registry.update("ns", "rs", {**created, "spec": {**created["spec"], "replicas": 3}})

    def with_old_version(current: dict[str, Any] | None) -> dict[str, Any]:
        assert current is not None
        current["metadata"]["resourceVersion"] = stale
        return current

    with pytest.raises(StatusError) as ei:
        await registry.update_from("ns", "rs", with_old_version)
    assert (ei.value.code, ei.value.reason) == (409, "Conflict")


async def test_create_only_when_allowed(registry: Registry) -> None:
    with pytest.raises(StatusError) as ei:
        await registry.update_from("ns", "rs", lambda current: dict(RS))
    assert ei.value.code == 404
    obj, created = await registry.update_from("ns", "rs", lambda current: dict(RS),
                                              allow_create=True)
    assert created and obj["metadata"]["name"] == "rs"
