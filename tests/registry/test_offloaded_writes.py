"""A heavy request's writes (svcnet.util.offload: their pure steps on the CPU thread) come out
exactly as a light request's do: create, update, status update, update_from, 422s."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.registry.generic import Registry
from svcnet.registry.workloads import ReplicaSetStrategy
from svcnet.storage.memory import MemoryStore
from svcnet.util import offload
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]


def replicaset(name: str, replicas: int = 1) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "a:1"}]}}}}


def managed(old: Obj | None, new: Obj) -> Obj:
    new["metadata"]["managedFields"] = [{"manager": "test", "old": old is not None}]
    return new


async def story(registry: Registry) -> list[Any]:
    """A series of writes and failures, each result or error recorded."""
    out: list[Any] = []

    async def step(fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            out.append(await fn())
        except StatusError as e:
            out.append((e.code, e.message))

    await step(lambda: registry.create("ns", replicaset("a"), before_write=managed))
    await step(lambda: registry.create("ns", replicaset("a")))  # 409
    await step(lambda: registry.create("ns", replicaset("b", replicas=-1)))  # 422
    rs = await registry.get("ns", "a")
    rs["spec"]["replicas"] = 3
    await step(lambda: registry.update("ns", "a", rs, before_write=managed))
    rs = await registry.get("ns", "a")
    rs["status"] = {"replicas": 3}
    await step(lambda: registry.update("ns", "a", rs, status_only=True))

    def bump(current: Obj | None) -> Obj:
        assert current is not None
        current["spec"]["replicas"] += 1
        return current

    await step(lambda: registry.update_from("ns", "a", bump, before_write=managed))
    await step(lambda: registry.update_from("ns", "missing", bump))  # 404
    out.append([o["metadata"]["name"] for o in (await registry.list("ns")).items])
    return out


class Recording(ReplicaSetStrategy):
    """Notes which thread defaults and validates."""

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def default(self, obj: Obj) -> Obj:
        self.threads.add(threading.current_thread().name)
        return super().default(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Any]:
        self.threads.add(threading.current_thread().name)
        return super().validate_update(new, old)


def new_registry(strategy: ReplicaSetStrategy | None = None) -> Registry:
    uids = itertools.count()
    return Registry(MemoryStore(), strategy or ReplicaSetStrategy(), clock=FakeClock(),
                    rng=random.Random(1), uid_factory=lambda: f"uid-{next(uids)}")


@pytest.mark.parametrize("heavy", [False, True])
async def test_writes_are_the_same_heavy_or_light(heavy: bool) -> None:
    strategy = Recording()

    async def run() -> list[Any]:
        if heavy:
            offload.note_size(offload.HEAVY_BYTES)
        assert offload.is_heavy() == heavy
        return await story(new_registry(strategy))

    light = await asyncio.create_task(story(new_registry()))
    assert await asyncio.create_task(run()) == light
    assert len(strategy.threads) == 1
    on_cpu_thread = strategy.threads.pop().startswith("svcnet-cpu")
    assert on_cpu_thread == heavy
