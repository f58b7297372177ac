"""ReplicaSetController against the in-process API: sync, handlers and expectations, and the
whole loop.

Most tests use never-started informers: objects go onto the API, ``World.catch_up`` plays the
watch (with ``notify=True`` the handlers run, as they would for watch events), and ``sync`` is
called directly. The last test runs the real loop: informers listing and watching the API, the
work queue and a worker.
"""

from __future__ import annotations

import asyncio
import copy

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.controller import RequeueError
from svcnet.client.informer import Informer
from svcnet.client.rest import EVENTS, PODS
from svcnet.controllers.ownership import REPLICASETS
from svcnet.controllers.replicaset import ReplicaSetController
from tests.unit.controllers.test_replicaset_helpers import (
    Obj,
    World,
    make_pod,
    make_replicaset,
    spec,
)


class Env(World):
    def __init__(self) -> None:
        super().__init__((PODS, REPLICASETS))
        self.ctrl = ReplicaSetController(self.api, replicasets=self.informers[REPLICASETS],
                                         pods=self.informers[PODS], clock=self.clock)

    async def drain(self) -> list[str]:
        keys = []
        while len(self.ctrl.queue):
            key = await self.ctrl.queue.get()
            self.ctrl.queue.done(key)
            keys.append(key)
        return sorted(set(keys))

    async def rs(self, name: str = "rs") -> Obj:
        return await self.api.get(REPLICASETS, "ns", name)

    async def owned_pods(self, name: str = "rs") -> list[Obj]:
        rs = await self.rs(name)
        return [p for p in await self.pods() if any(
            r.get("uid") == rs["metadata"]["uid"] for r in
            p["metadata"].get("ownerReferences") or [])]


@pytest.fixture
def env() -> Env:
    return Env()


async def test_creates_the_missing_pods_from_the_template(env: Env) -> None:
    await env.create(REPLICASETS, make_replicaset(replicas=3))
    await env.ctrl.sync("ns/rs")
    pods = await env.pods()
    assert len(pods) == 3
    rs = await env.rs()
    for p in pods:
        meta = p["metadata"]
        assert meta["name"].startswith("rs-") and len(meta["name"]) == len("rs-") + 5
        assert meta["labels"] == {"app": "rs"}
        assert meta["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
            "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        assert p["spec"]["containers"][0]["image"] == "app:1"
    # The status counts what the sync saw (no pods yet), as upstream's does.
    assert rs["status"] == {"replicas": 0, "observedGeneration": 1}
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/rs")
    assert (await env.rs())["status"] == {"replicas": 3, "fullyLabeledReplicas": 3,
                                          "observedGeneration": 1}
    events = await env.api.items(EVENTS, "ns")
    assert sorted(e["reason"] for e in events) == ["SuccessfulCreate"] * 3


async def test_expectations_prevent_double_creation_on_a_stale_cache(env: Env) -> None:
    await env.create(REPLICASETS, make_replicaset(replicas=2))
    await env.ctrl.sync("ns/rs")
    # The pod cache has not caught up: a second sync must not create two more pods.
    await env.ctrl.sync("ns/rs")
    assert len(await env.pods()) == 2
    assert env.ctrl.expectations.pending("ns/rs") == (2, 0)
    await env.catch_up(notify=True)  # the watch delivers both pods: creations observed
    assert env.ctrl.expectations.satisfied("ns/rs")
    await env.ctrl.sync("ns/rs")
    assert len(await env.pods()) == 2


async def test_scale_down_deletes_the_least_valuable_pods(env: Env) -> None:
    await env.create(REPLICASETS, make_replicaset(replicas=3))
    await env.ctrl.sync("ns/rs")
    await env.catch_up(notify=True)
    first = sorted(p["metadata"]["name"] for p in await env.pods())
    await env.mark_ready(only=lambda p: p["metadata"]["name"] != first[0])
    rs = await env.rs()
    rs["spec"]["replicas"] = 1
    await env.api.update(REPLICASETS, rs)
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/rs")
    left = [p["metadata"]["name"] for p in await env.pods()]
    assert len(left) == 1 and left[0] != first[0], "the pod that is not ready goes first"
    assert env.ctrl.expectations.pending("ns/rs") == (0, 2)
    await env.catch_up(notify=True)
    assert env.ctrl.expectations.satisfied("ns/rs")
    assert (await env.rs())["status"]["replicas"] == 3, "status counted before deleting"
    await env.ctrl.sync("ns/rs")
    assert (await env.rs())["status"]["replicas"] == 1


async def test_adopts_orphans_and_releases_pods_that_stop_matching(env: Env) -> None:
    await env.create(PODS, make_pod("orphan", {"app": "rs"}))
    await env.create(PODS, make_pod("stranger", {"app": "other"}))
    await env.create(REPLICASETS, make_replicaset(replicas=2))
    await env.ctrl.sync("ns/rs")
    owned = await env.owned_pods()
    assert "orphan" in [p["metadata"]["name"] for p in owned]
    assert len(owned) == 2, "the adopted orphan counts: only one pod created"
    await env.catch_up(notify=True)

    victim = next(p for p in owned if p["metadata"]["name"] != "orphan")
    victim["metadata"]["labels"] = {"app": "moved"}
    await env.api.update(PODS, victim)
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/rs")
    released = await env.api.get(PODS, "ns", victim["metadata"]["name"])
    assert "ownerReferences" not in released["metadata"]
    assert len(await env.owned_pods()) == 2, "a replacement was created"
    stranger = await env.api.get(PODS, "ns", "stranger")
    assert "ownerReferences" not in stranger["metadata"]


async def test_leaves_pods_of_other_controllers_alone(env: Env) -> None:
    await env.create(REPLICASETS, make_replicaset("other", labels={"app": "rs"}, replicas=1))
    await env.ctrl.sync("ns/other")
    await env.catch_up()
    await env.create(REPLICASETS, make_replicaset(replicas=1))
    await env.ctrl.sync("ns/rs")
    assert len(await env.owned_pods("rs")) == 1
    assert len(await env.owned_pods("other")) == 1


async def test_adoption_rechecks_the_owner_on_the_server(env: Env) -> None:
    await env.create(PODS, make_pod("orphan", {"app": "rs"}))
    await env.create(REPLICASETS, make_replicaset(replicas=1))
    # The ReplicaSet was replaced under the same name; our cache still has the old one.
    await env.api.delete(REPLICASETS, "ns", "rs")
    await env.api.create(REPLICASETS, make_replicaset(replicas=1))
    with pytest.raises(RequeueError, match="is gone"):
        await env.ctrl.sync("ns/rs")
    assert "ownerReferences" not in (await env.api.get(PODS, "ns", "orphan"))["metadata"]


async def test_status_ready_and_available_with_min_ready_seconds(env: Env) -> None:
    await env.create(REPLICASETS, make_replicaset("rs", spec(minReadySeconds=10), replicas=2))
    await env.ctrl.sync("ns/rs")
    await env.catch_up(notify=True)
    await env.drain()
    await env.mark_ready()
    await env.catch_up(notify=True)
    assert env.ctrl.queue.waiting == 1, "looked at again once they can be available"
    await env.ctrl.sync("ns/rs")
    status = (await env.rs())["status"]
    assert (status["readyReplicas"], status.get("availableReplicas", 0)) == (2, 0)
    env.clock.advance(11)
    await env.ctrl.sync("ns/rs")
    assert (await env.rs())["status"]["availableReplicas"] == 2


async def test_a_failing_create_is_reported_and_unexpected(env: Env) -> None:
    await env.create(REPLICASETS, make_replicaset(replicas=3))
    env.api.fail["create"] = [StatusError(403, "Forbidden", "exceeded quota")]
    with pytest.raises(StatusError, match="exceeded quota"):
        await env.ctrl.sync("ns/rs")
    assert await env.pods() == [], "the first batch (of 1) failed: nothing more was tried"
    assert env.ctrl.expectations.satisfied("ns/rs")
    (cond,) = (await env.rs())["status"]["conditions"]
    assert (cond["type"], cond["reason"], cond["message"]) == (
        "ReplicaFailure", "FailedCreate", "exceeded quota")
    await env.ctrl.sync("ns/rs")
    assert len(await env.pods()) == 3
    assert "conditions" not in (await env.rs())["status"]


async def test_a_replica_set_being_deleted_creates_nothing(env: Env) -> None:
    rs = make_replicaset(replicas=2)
    rs["metadata"]["finalizers"] = ["example.com/hold"]
    await env.create(REPLICASETS, rs)
    await env.api.delete(REPLICASETS, "ns", "rs")
    await env.catch_up()
    await env.ctrl.sync("ns/rs")
    assert await env.pods() == []


async def test_handlers_map_pods_to_their_replica_set(env: Env) -> None:
    await env.create(REPLICASETS, make_replicaset(replicas=1))
    await env.create(REPLICASETS, make_replicaset("b", labels={"app": "b"}, replicas=0))
    await env.drain()
    await env.ctrl.sync("ns/rs")
    await env.catch_up(notify=True)
    assert await env.drain() == ["ns/rs"]
    (p,) = await env.pods()
    moved = copy.deepcopy(p)
    moved["metadata"]["labels"] = {"app": "b"}
    moved["metadata"].pop("ownerReferences")
    await env.api.update(PODS, moved)
    await env.catch_up(notify=True)
    assert await env.drain() == ["ns/b", "ns/rs"], "old controller and the new match"
    await env.api.delete(PODS, "ns", p["metadata"]["name"])
    await env.catch_up(notify=True)
    assert await env.drain() == [], "an orphan's deletion concerns nobody"


async def test_terminating_pods_count_as_deleted_at_once(env: Env) -> None:
    await env.create(REPLICASETS, make_replicaset(replicas=1))
    await env.ctrl.sync("ns/rs")
    await env.catch_up(notify=True)
    (p,) = await env.pods()
    p["spec"]["nodeName"] = "node-a"  # bound: its deletion is graceful
    await env.api.registries[PODS].guaranteed_update(
        "ns", p["metadata"]["name"], lambda o: {**o, "spec": {**o["spec"],
                                                              "nodeName": "node-a"}})
    await env.catch_up(notify=True)
    await env.api.delete(PODS, "ns", p["metadata"]["name"])
    assert (await env.api.get(PODS, "ns", p["metadata"]["name"]))["metadata"][
        "deletionTimestamp"]
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/rs")
    assert len(await env.pods()) == 2, "the replacement does not wait for the grace period"


async def test_the_whole_loop() -> None:
    env = World((PODS, REPLICASETS))
    ctrl = ReplicaSetController.from_client(env.api, clock=None)
    assert isinstance(ctrl.replicasets, Informer)
    ctrl.start()
    try:
        await env.api.create(REPLICASETS, make_replicaset(replicas=4))

        async def settled(want: int) -> None:
            for _ in range(500):
                rs = await env.api.get(REPLICASETS, "ns", "rs")
                if len(await env.pods()) == want and rs.get("status", {}).get(
                        "replicas") == want:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"never reached {want} pods")

        await settled(4)
        rs = await env.api.get(REPLICASETS, "ns", "rs")
        rs["spec"]["replicas"] = 1
        await env.api.update(REPLICASETS, rs)
        await settled(1)
    finally:
        await ctrl.stop()
