"""DeploymentController with the ReplicaSet controller, against the in-process API.

A ``step`` delivers what changed to the informers (running the handlers), then syncs every
Deployment and ReplicaSet, as a resync would; ``World.settle`` steps until nothing changes. The
"kubelet" is :meth:`World.mark_ready`. Rollouts are checked step by step against their
invariants (never more than replicas + maxSurge pods asked for, never fewer than
replicas - maxUnavailable available).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.controller import RequeueError
from svcnet.client.informer import object_key
from svcnet.client.rest import EVENTS, PODS, PatchType
from svcnet.controllers.deployment import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    ROLLBACK_TO_ANNOTATION,
    DeploymentController,
    compute_hash,
)
from svcnet.controllers.ownership import DEPLOYMENTS, REPLICASETS
from svcnet.controllers.replicaset import ReplicaSetController
from tests.unit.controllers.test_replicaset_helpers import (
    Obj,
    World,
    make_deployment,
    make_replicaset,
    settle,
    spec,
    strategy,
)


class Env(World):
    def __init__(self) -> None:
        super().__init__((PODS, REPLICASETS, DEPLOYMENTS))
        self.rsc = ReplicaSetController(self.api, replicasets=self.informers[REPLICASETS],
                                        pods=self.informers[PODS], clock=self.clock)
        self.dc = DeploymentController(self.api, deployments=self.informers[DEPLOYMENTS],
                                       replicasets=self.informers[REPLICASETS],
                                       pods=self.informers[PODS], clock=self.clock)
        self.errors: list[Exception] = []

    async def step(self) -> None:
        await self.catch_up(notify=True)
        for ctrl, gvr in ((self.dc, DEPLOYMENTS), (self.rsc, REPLICASETS)):
            for obj in self.informers[gvr].list():
                ctrl.queue.add(object_key(obj))
            keys = []
            while len(ctrl.queue):
                key = await ctrl.queue.get()
                ctrl.queue.done(key)
                keys.append(key)
            for key in sorted(set(keys)):
                try:
                    await ctrl.sync(key)
                except (RequeueError, StatusError) as e:
                    self.errors.append(e)  # retried next step, as the work queue would
            await self.catch_up(notify=True)

    async def settle(self) -> None:
        await settle(self, self.step)

    async def deployment(self, name: str = "web") -> Obj:
        return await self.api.get(DEPLOYMENTS, "ns", name)

    async def set_image(self, image: str, name: str = "web") -> None:
        """kubectl set image: a strategic merge patch of the container."""
        await self.api.patch(DEPLOYMENTS, "ns", name, {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": image}]}}}},
            patch_type=PatchType.STRATEGIC)

    async def rs_by_image(self) -> dict[str, Obj]:
        return {r["spec"]["template"]["spec"]["containers"][0]["image"]: r
                for r in await self.replicasets()}

    async def bind_all(self, node: str = "node-a") -> None:
        """The scheduler: bound pods are deleted gracefully (they linger, terminating)."""
        for pod in await self.pods():
            if not pod["spec"].get("nodeName"):
                await self.api.registries[PODS].guaranteed_update(
                    "ns", pod["metadata"]["name"],
                    lambda o: {**o, "spec": {**o["spec"], "nodeName": node}})

    async def kubelet_reap(self) -> None:
        """The node finishes terminating pods (a delete with grace 0)."""
        for pod in await self.pods():
            if pod["metadata"].get("deletionTimestamp"):
                await self.api.registries[PODS].delete("ns", pod["metadata"]["name"],
                                                       grace_period=0)


def conditions(obj: Obj) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"])
            for c in obj.get("status", {}).get("conditions") or []}


@pytest.fixture
def env() -> Env:
    return Env()


async def roll_to_ready(env: Env, *, replicas: int, surge: int, unavailable: int) -> int:
    """Step until the rollout completes, the kubelet making every pod Ready at once; check the
    invariants at every step. Returns the number of steps."""
    for n in range(60):
        await env.step()
        rss = await env.replicasets()
        asked = sum(r["spec"]["replicas"] for r in rss)
        assert asked <= replicas + surge, f"step {n}: {asked} pods asked for"
        available = sum(r["status"].get("availableReplicas", 0) for r in rss)
        assert available >= replicas - unavailable, f"step {n}: only {available} available"
        await env.mark_ready()
        d = await env.deployment()
        if conditions(d).get("Progressing") == ("True", "NewReplicaSetAvailable") and len(
                await env.pods()) == replicas:
            return n
    raise AssertionError("the rollout did not complete")


async def test_a_new_deployment_gets_a_replica_set_and_pods(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment(replicas=3))
    await env.settle()
    (rs,) = await env.replicasets()
    d = await env.deployment()
    h = compute_hash(d["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": h}}
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert rs["metadata"]["annotations"] == {REVISION_ANNOTATION: "1",
                                             DESIRED_REPLICAS_ANNOTATION: "3",
                                             MAX_REPLICAS_ANNOTATION: "4"}
    pods = await env.pods()
    assert len(pods) == 3
    assert all(p["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
               and p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
               for p in pods)
    assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    status = {k: v for k, v in d["status"].items() if k != "conditions"}
    assert status == {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                      "unavailableReplicas": 3}
    assert conditions(d) == {"Available": ("False", "MinimumReplicasUnavailable"),
                             "Progressing": ("True", "ReplicaSetUpdated")}

    await env.mark_ready()
    await env.settle()
    d = await env.deployment()
    assert {k: v for k, v in d["status"].items() if k != "conditions"} == {
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3}
    assert conditions(d) == {"Available": ("True", "MinimumReplicasAvailable"),
                             "Progressing": ("True", "NewReplicaSetAvailable")}
    reasons = [e["reason"] for e in await env.api.items(EVENTS, "ns")]
    assert "ScalingReplicaSet" in reasons and "SuccessfulCreate" in reasons


@pytest.mark.parametrize(("replicas", "surge", "unavailable"), [
    (3, "25%", "25%"), (4, 1, 0), (4, 0, 1), (5, 2, 2), (10, "30%", "10%"), (1, 1, 0)])
async def test_rolling_update_respects_surge_and_unavailability(
        env: Env, replicas: int, surge: Any, unavailable: Any) -> None:
    from svcnet.controllers.deployment import max_surge, max_unavailable

    await env.api.create(DEPLOYMENTS, make_deployment(
        "web", strategy(type="RollingUpdate",
                        rollingUpdate={"maxSurge": surge, "maxUnavailable": unavailable}),
        replicas=replicas))
    await env.settle()
    await env.mark_ready()
    await env.settle()
    d = await env.deployment()
    s, u = max_surge(d), max_unavailable(d)
    await env.set_image("app:2")
    await roll_to_ready(env, replicas=replicas, surge=s, unavailable=u)
    by_image = await env.rs_by_image()
    assert by_image["app:2"]["spec"]["replicas"] == replicas
    assert by_image["app:1"]["spec"]["replicas"] == 0
    assert by_image["app:2"]["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    d = await env.deployment()
    assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert d["status"]["updatedReplicas"] == replicas
    assert all(p["spec"]["containers"][0]["image"] == "app:2" for p in await env.pods())


async def test_a_stuck_rollout_keeps_the_old_pods(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment(replicas=3))
    await env.settle()
    await env.mark_ready()
    await env.settle()
    await env.set_image("app:broken")
    await env.settle()  # the new pods never become Ready
    by_image = await env.rs_by_image()
    assert by_image["app:broken"]["spec"]["replicas"] == 1  # maxSurge 25% of 3 = 1
    assert by_image["app:1"]["spec"]["replicas"] == 3       # maxUnavailable 25% of 3 = 0
    d = await env.deployment()
    assert d["status"]["availableReplicas"] == 3
    assert conditions(d)["Available"] == ("True", "MinimumReplicasAvailable")


async def test_undo_restores_the_previous_replica_set(env: Env) -> None:
    """kubectl rollout undo: a JSON patch of the template (and annotations) from the
    previous revision's ReplicaSet; the controller re-uses that ReplicaSet."""
    await env.api.create(DEPLOYMENTS, make_deployment(replicas=2))
    await env.settle()
    await env.mark_ready()
    await env.settle()
    await env.set_image("app:2")
    await roll_to_ready(env, replicas=2, surge=1, unavailable=0)
    first = (await env.rs_by_image())["app:1"]
    template = copy.deepcopy(first["spec"]["template"])
    del template["metadata"]["labels"]["pod-template-hash"]
    d = await env.deployment()
    annotations = {REVISION_ANNOTATION: d["metadata"]["annotations"][REVISION_ANNOTATION]}
    await env.api.patch(DEPLOYMENTS, "ns", "web", [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations}],
        patch_type=PatchType.JSON)
    await roll_to_ready(env, replicas=2, surge=1, unavailable=0)
    by_image = await env.rs_by_image()
    assert len(by_image) == 2, "no third ReplicaSet"
    restored = by_image["app:1"]
    assert restored["metadata"]["name"] == first["metadata"]["name"]
    assert restored["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert restored["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "1"
    assert restored["spec"]["replicas"] == 2 and by_image["app:2"]["spec"]["replicas"] == 0
    assert (await env.deployment())["metadata"]["annotations"][REVISION_ANNOTATION] == "3"


async def test_rollback_to_annotation(env: Env) -> None:
    """The deprecated rollbackTo, carried as an annotation: handled by the controller."""
    await env.api.create(DEPLOYMENTS, make_deployment(replicas=1))
    await env.settle()
    await env.set_image("app:2")
    await env.settle()
    d = await env.deployment()
    d["metadata"]["annotations"][ROLLBACK_TO_ANNOTATION] = "1"
    await env.api.update(DEPLOYMENTS, d)
    await env.settle()
    d = await env.deployment()
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"
    assert ROLLBACK_TO_ANNOTATION not in d["metadata"]["annotations"]
    reasons = [e["reason"] for e in await env.api.items(EVENTS, "ns")]
    assert "DeploymentRollback" in reasons


async def test_scaling_a_settled_deployment(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment(replicas=3))
    await env.settle()
    for replicas in (5, 1):
        d = await env.deployment()
        d["spec"]["replicas"] = replicas
        await env.api.update(DEPLOYMENTS, d)
        await env.settle()
        (rs,) = await env.replicasets()
        assert rs["spec"]["replicas"] == replicas
        assert rs["metadata"]["annotations"][DESIRED_REPLICAS_ANNOTATION] == str(replicas)
        assert len(await env.pods()) == replicas
        assert (await env.deployment())["status"]["replicas"] == replicas


async def test_recreate_waits_for_the_old_pods_to_be_gone(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment("web", strategy(type="Recreate"),
                                                      replicas=2))
    await env.settle()
    await env.bind_all()
    await env.mark_ready()
    await env.settle()
    await env.set_image("app:2")
    await env.settle()
    rss = await env.replicasets()
    assert [r["spec"]["replicas"] for r in rss] == [0], "old scaled down, no new one yet"
    assert all(p["metadata"].get("deletionTimestamp") for p in await env.pods())
    await env.kubelet_reap()
    await env.settle()
    by_image = await env.rs_by_image()
    assert by_image["app:2"]["spec"]["replicas"] == 2
    assert len(await env.pods()) == 2


async def test_a_paused_deployment_does_not_roll(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment("web", spec(paused=True), replicas=2))
    await env.settle()
    assert await env.replicasets() == [], "a paused deployment does not even start"
    assert conditions(await env.deployment())["Progressing"] == ("Unknown",
                                                                 "DeploymentPaused")
    d = await env.deployment()
    d["spec"]["paused"] = False
    await env.api.update(DEPLOYMENTS, d)
    await env.settle()
    await env.mark_ready()
    await env.settle()
    d = await env.deployment()
    d["spec"]["paused"] = True
    await env.api.update(DEPLOYMENTS, d)
    await env.set_image("app:2")
    await env.settle()
    assert list(await env.rs_by_image()) == ["app:1"]
    d = await env.deployment()
    d["spec"]["paused"] = False
    d["spec"]["replicas"] = 2
    await env.api.update(DEPLOYMENTS, d)
    await roll_to_ready(env, replicas=2, surge=1, unavailable=0)
    assert (await env.rs_by_image())["app:2"]["spec"]["replicas"] == 2


async def test_scaling_while_paused_is_proportional(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment("web", strategy(
        type="RollingUpdate", rollingUpdate={"maxSurge": 3, "maxUnavailable": 2}),
        replicas=10))
    await env.settle()
    await env.mark_ready()
    await env.settle()
    await env.set_image("app:2")
    await env.step()
    await env.step()
    d = await env.deployment()
    d["spec"]["paused"] = True
    await env.api.update(DEPLOYMENTS, d)
    await env.settle()
    before = {k: r["spec"]["replicas"] for k, r in (await env.rs_by_image()).items()}
    assert sum(before.values()) == 13
    d = await env.deployment()
    d["spec"]["replicas"] = 20
    await env.api.update(DEPLOYMENTS, d)
    await env.settle()
    after = {k: r["spec"]["replicas"] for k, r in (await env.rs_by_image()).items()}
    assert sum(after.values()) == 23
    assert after["app:1"] > before["app:1"] and after["app:2"] > before["app:2"]


async def test_revision_history_limit(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment("web", spec(revisionHistoryLimit=1),
                                                      replicas=1))
    await env.settle()
    for image in ("app:2", "app:3", "app:4"):
        await env.mark_ready()
        await env.set_image(image)
        await roll_to_ready(env, replicas=1, surge=1, unavailable=0)
    await env.settle()
    assert sorted(await env.rs_by_image()) == ["app:3", "app:4"]


async def test_progress_deadline(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment("web", spec(progressDeadlineSeconds=30),
                                                      replicas=1))
    await env.settle()
    env.clock.advance(31)
    await env.settle()
    d = await env.deployment()
    assert conditions(d)["Progressing"] == ("False", "ProgressDeadlineExceeded")
    (cond,) = [c for c in d["status"]["conditions"] if c["type"] == "Progressing"]
    assert cond["message"].endswith("has timed out progressing.")


async def test_a_stuck_deployment_is_looked_at_again_at_its_deadline(env: Env) -> None:
    await env.api.create(DEPLOYMENTS, make_deployment("web", spec(progressDeadlineSeconds=30),
                                                      replicas=1))
    await env.settle()
    await env.dc.sync("ns/web")  # no change: the deadline check is scheduled
    assert env.dc.queue.waiting == 1


async def test_adopts_a_matching_orphan_replica_set(env: Env) -> None:
    d = make_deployment(replicas=2)
    orphan = make_replicaset("web-orphan", labels={"app": "web"}, replicas=2)
    orphan["spec"]["template"] = copy.deepcopy(d["spec"]["template"])
    await env.api.create(REPLICASETS, orphan)
    await env.api.create(DEPLOYMENTS, d)
    await env.settle()
    (rs,) = await env.replicasets()
    assert rs["metadata"]["name"] == "web-orphan"
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert rs["metadata"]["annotations"][REVISION_ANNOTATION] == "1"


async def test_a_hash_collision_bumps_the_collision_count(env: Env) -> None:
    d = make_deployment(replicas=1)
    squatter = make_replicaset("x", labels={"app": "other"}, replicas=0)
    defaulted = await env.api.create(DEPLOYMENTS, copy.deepcopy(d))
    squatter["metadata"]["name"] = f"web-{compute_hash(defaulted['spec']['template'])}"
    await env.api.delete(DEPLOYMENTS, "ns", "web")
    await env.api.create(REPLICASETS, squatter)
    await env.api.create(DEPLOYMENTS, d)
    await env.settle()
    d2 = await env.deployment()
    assert d2["status"]["collisionCount"] == 1
    owned = [r for r in await env.replicasets() if r["metadata"].get("ownerReferences")]
    assert len(owned) == 1 and owned[0]["metadata"]["name"] != squatter["metadata"]["name"]


async def test_an_empty_selector_is_refused(env: Env) -> None:
    await env.catch_up()
    d = make_deployment(replicas=1)
    created = await env.api.create(DEPLOYMENTS, d)
    # Validation refuses an empty selector; a stored one (older server) is only reported.
    created["spec"]["selector"] = {}
    created["metadata"]["generation"] = 2
    env.informers[DEPLOYMENTS].indexer.upsert("ns/web", created)
    await env.dc.sync("ns/web")
    assert await env.replicasets() == []
    assert "SelectingAll" in [e["reason"] for e in await env.api.items(EVENTS, "ns")]
