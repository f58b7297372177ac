"""StatefulSetController against the in-process API (never-started informers, ``sync`` called
directly) and its pure planner: ordered creation gated on readiness, the pods' identity,
reverse-ordinal scale-down waiting for termination, the rolling update with a partition,
OnDelete, the Parallel policy, ``ordinals.start``, claims from volumeClaimTemplates, status."""

from __future__ import annotations

from typing import Any

from svcnet.client.rest import PERSISTENTVOLUMECLAIMS, PODS
from svcnet.controllers.ownership import CONTROLLERREVISIONS, STATEFULSETS
from svcnet.controllers.statefulset import StatefulSetController, plan, revision_name, stateful_pod
from tests.unit.controllers.test_replicaset_helpers import T0, Obj, World


def make_sts(replicas: int = 3, **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"replicas": replicas, "serviceName": "svc",
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "a", "image": "web:1"}]}},
                     **spec}}


class Env(World):
    def __init__(self) -> None:
        super().__init__((PODS, STATEFULSETS, CONTROLLERREVISIONS))
        self.ctrl = StatefulSetController(self.api, statefulsets=self.informers[STATEFULSETS],
                                          pods=self.informers[PODS],
                                          revisions=self.informers[CONTROLLERREVISIONS],
                                          clock=self.clock)

    async def sts(self) -> Obj:
        return await self.api.get(STATEFULSETS, "ns", "web")

    async def sync(self) -> None:
        """A watch delivered what changed, then one sync."""
        await self.catch_up(notify=True)
        await self.ctrl.sync("ns/web")
        await self.catch_up(notify=True)

    async def names(self, *, live: bool = True) -> list[str]:
        return sorted(p["metadata"]["name"] for p in await self.pods()
                      if not (live and p["metadata"].get("deletionTimestamp")))

    async def edit(self, **spec: Any) -> None:
        sts = await self.sts()
        sts["spec"].update(spec)
        await self.api.update(STATEFULSETS, sts)

    async def set_image(self, image: str) -> None:
        sts = await self.sts()
        sts["spec"]["template"]["spec"]["containers"][0]["image"] = image
        await self.api.update(STATEFULSETS, sts)

    async def bind(self) -> None:
        """Bind every pod to a node, so that deleting it is graceful."""
        for pod in await self.pods():
            def bound(o: Obj) -> Obj:
                return {**o, "spec": {**o["spec"], "nodeName": "n1"}}
            await self.api.registries[PODS].guaranteed_update("ns", pod["metadata"]["name"],
                                                              bound)

    async def scale_up_ready(self, replicas: int) -> None:
        """Create the set and walk it up, marking each new pod Ready."""
        for _ in range(replicas + 1):
            await self.sync()
            await self.mark_ready()


async def test_pods_are_created_in_order_each_after_the_previous_is_ready() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts())
    await env.sync()
    assert await env.names() == ["web-0"]
    await env.sync()
    assert await env.names() == ["web-0"], "web-0 is not Running and Ready yet"
    await env.mark_ready(ready=False)
    await env.sync()
    assert await env.names() == ["web-0"], "Running but not Ready still blocks"
    await env.mark_ready()
    await env.sync()
    assert await env.names() == ["web-0", "web-1"]
    await env.mark_ready()
    await env.sync()
    await env.mark_ready()
    await env.sync()
    assert await env.names() == ["web-0", "web-1", "web-2"]
    sts = await env.sts()
    rev = revision_name(sts)
    assert rev.startswith("web-")
    assert sts["status"] == {
        "observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "currentReplicas": 3, "updatedReplicas": 3, "currentRevision": rev,
        "updateRevision": rev, "collisionCount": 0}


async def test_the_pod_identity() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts())
    await env.sync()
    (pod,) = await env.pods()
    sts = await env.sts()
    assert pod["metadata"]["name"] == "web-0"
    assert pod["metadata"]["labels"] == {
        "app": "web", "statefulset.kubernetes.io/pod-name": "web-0",
        "apps.kubernetes.io/pod-index": "0", "controller-revision-hash": revision_name(sts)}
    assert pod["spec"]["hostname"] == "web-0"
    assert pod["spec"]["subdomain"] == "svc"
    (ref,) = pod["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "StatefulSet", "web", sts["metadata"]["uid"], True)


async def test_ordinals_start_is_honoured() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts(2, ordinals={"start": 5}))
    await env.scale_up_ready(2)
    assert await env.names() == ["web-5", "web-6"]
    assert (await env.pods())[0]["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "5"


async def test_scale_down_removes_the_highest_ordinal_first_one_at_a_time() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts())
    await env.scale_up_ready(3)
    await env.bind()
    await env.edit(replicas=1)
    await env.sync()
    assert await env.names() == ["web-0", "web-1"], "web-2 goes first"
    assert await env.names(live=False) == ["web-0", "web-1", "web-2"]
    await env.sync()
    assert await env.names() == ["web-0", "web-1"], "waits for web-2 to terminate"
    await env.api.registries[PODS].delete("ns", "web-2", grace_period=0)
    await env.sync()
    assert await env.names() == ["web-0"]
    await env.api.registries[PODS].delete("ns", "web-1", grace_period=0)
    await env.sync()
    status = (await env.sts())["status"]
    assert (status["replicas"], status["readyReplicas"]) == (1, 1)


async def test_scale_down_waits_for_the_remaining_pods_to_be_ready() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts())
    await env.scale_up_ready(3)
    await env.mark_ready(ready=False, only=lambda p: p["metadata"]["name"] == "web-0")
    await env.edit(replicas=2)
    await env.sync()
    assert await env.names() == ["web-0", "web-1", "web-2"], "web-0 is unhealthy: blocked"


async def test_rolling_update_in_reverse_order_respects_the_partition() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts(updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": 1}}))
    await env.scale_up_ready(3)
    old_rev = revision_name(await env.sts())
    await env.set_image("web:2")
    new_rev = revision_name(await env.sts())
    assert new_rev != old_rev
    await env.sync()
    assert await env.names() == ["web-0", "web-1"], "the highest ordinal is replaced first"
    await env.sync()
    revs = {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"]
            for p in await env.pods()}
    assert revs == {"web-0": old_rev, "web-1": old_rev, "web-2": new_rev}
    await env.sync()
    assert await env.names() == ["web-0", "web-1", "web-2"], "waits for web-2 to be Ready"
    await env.mark_ready()
    for _ in range(4):
        await env.sync()
        await env.mark_ready()
    revs = {p["metadata"]["name"]: p["metadata"]["labels"]["controller-revision-hash"]
            for p in await env.pods()}
    assert revs == {"web-0": old_rev, "web-1": new_rev, "web-2": new_rev}, "partition 1"
    status = (await env.sts())["status"]
    assert (status["currentRevision"], status["updateRevision"]) == (old_rev, new_rev)
    assert (status["currentReplicas"], status["updatedReplicas"]) == (1, 2)
    await env.edit(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    for _ in range(3):
        await env.sync()
        await env.mark_ready()
    status = (await env.sts())["status"]
    assert status["currentRevision"] == status["updateRevision"] == new_rev
    assert (status["currentReplicas"], status["updatedReplicas"], status["readyReplicas"]) == (
        3, 3, 3)


async def test_on_delete_only_recreates_deleted_pods_with_the_new_template() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts(2, updateStrategy={"type": "OnDelete"}))
    await env.scale_up_ready(2)
    old_rev = revision_name(await env.sts())
    await env.set_image("web:2")
    for _ in range(3):
        await env.sync()
    assert await env.names() == ["web-0", "web-1"]
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in await env.pods()} == {
        old_rev}
    await env.api.delete(PODS, "ns", "web-1")
    await env.sync()
    pods = {p["metadata"]["name"]: p for p in await env.pods()}
    assert pods["web-1"]["spec"]["containers"][0]["image"] == "web:2"
    assert pods["web-0"]["spec"]["containers"][0]["image"] == "web:1"
    await env.mark_ready()
    await env.sync()
    status = (await env.sts())["status"]
    assert status["currentRevision"] == old_rev, "OnDelete never completes a rollout"
    assert (status["currentReplicas"], status["updatedReplicas"]) == (1, 1)


async def test_parallel_creates_and_deletes_all_at_once() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts(podManagementPolicy="Parallel"))
    await env.sync()
    assert await env.names() == ["web-0", "web-1", "web-2"], "no waiting for readiness"
    await env.edit(replicas=0)
    await env.sync()
    assert await env.names() == []
    await env.sync()
    assert (await env.sts())["status"]["replicas"] == 0


async def test_failed_pods_are_replaced() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts(1))
    await env.scale_up_ready(1)
    (pod,) = await env.pods()
    pod["status"]["phase"] = "Failed"
    await env.api.update(PODS, pod, subresource="status")
    await env.sync()
    assert await env.names() == []
    await env.sync()
    (fresh,) = await env.pods()
    assert fresh["metadata"]["name"] == "web-0"
    assert fresh["metadata"]["uid"] != pod["metadata"]["uid"]


async def test_volume_claim_templates_make_one_claim_per_pod() -> None:
    env = Env()
    claim = {"metadata": {"name": "data", "labels": {"x": "y"}},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}}
    await env.create(STATEFULSETS, make_sts(2, volumeClaimTemplates=[claim]))
    await env.scale_up_ready(2)
    claims = await env.api.items(PERSISTENTVOLUMECLAIMS, "ns")
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-web-0", "data-web-1"]
    assert all(c["metadata"]["labels"] == {"app": "web"} for c in claims)
    assert all(not c["metadata"].get("ownerReferences") for c in claims), "Retain"
    pod = next(p for p in await env.pods() if p["metadata"]["name"] == "web-1")
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}} in pod[
        "spec"]["volumes"]
    await env.edit(replicas=0)
    for _ in range(3):
        await env.sync()
    assert await env.names() == []
    assert len(await env.api.items(PERSISTENTVOLUMECLAIMS, "ns")) == 2, "claims are kept"


def test_plan_ignores_non_members_and_condemns_out_of_range_ordinals() -> None:
    sts = make_sts(2)
    sts["metadata"]["uid"] = "u1"

    def pod(ordinal: int, name: str = "") -> Obj:
        p = stateful_pod(sts, ordinal)
        if name:
            p["metadata"]["name"] = name
        p["status"] = {"phase": "Running", "conditions": [{"type": "Ready",
                                                           "status": "True"}]}
        return p

    pods = [pod(0), pod(1), pod(3), pod(4), pod(0, "web-x"), pod(0, "other-0")]
    result = plan(sts, pods, T0)
    assert [p["metadata"]["name"] for p in result.delete] == ["web-4"], "highest first"
    assert not result.create
    assert result.status["replicas"] == 4, "members only"
    sts["spec"]["podManagementPolicy"] = "Parallel"
    assert [p["metadata"]["name"] for p in plan(sts, pods, T0).delete] == ["web-4", "web-3"]


async def test_expectations_keep_a_stale_cache_from_creating_twice() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts(1))
    await env.scale_up_ready(1)
    await env.edit(replicas=2)
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/web")
    assert await env.names() == ["web-0", "web-1"]
    # The informer hears of web-0 changing but not yet of web-1: web-1 is still expected.
    pods = {p["metadata"]["name"]: p for p in await env.pods()}
    web0 = {**pods["web-0"], "metadata": {**pods["web-0"]["metadata"], "resourceVersion": "0"}}
    env.informers[PODS]._replace([web0])
    await env.ctrl.sync("ns/web")
    await env.ctrl.sync("ns/web")
    assert env.api.writes("pods").count(("create", "ns/web-1")) == 1


async def test_revisions_are_kept_and_a_pod_below_the_partition_comes_back_at_its_revision(
) -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts(updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}))
    await env.scale_up_ready(3)
    old_rev = revision_name(await env.sts())
    await env.set_image("web:2")
    new_rev = revision_name(await env.sts())
    for _ in range(4):
        await env.sync()
        await env.mark_ready()
    revisions = {r["metadata"]["name"]: r for r in await env.api.items(CONTROLLERREVISIONS,
                                                                      "ns")}
    assert {n: r["revision"] for n, r in revisions.items()} == {old_rev: 1, new_rev: 2}
    assert revisions[new_rev]["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    pods = {p["metadata"]["name"]: p for p in await env.pods()}
    assert pods["web-2"]["metadata"]["labels"]["controller-revision-hash"] == new_rev
    # web-0 is lost: below the partition, it is made again from the current revision.
    await env.api.registries[PODS].delete("ns", "web-0")
    await env.sync()
    pods = {p["metadata"]["name"]: p for p in await env.pods()}
    assert pods["web-0"]["metadata"]["labels"]["controller-revision-hash"] == old_rev
    assert pods["web-0"]["spec"]["containers"][0]["image"] == "web:1"
    # Back to the first template (a rollback): its revision is renumbered, none is added.
    await env.set_image("web:1")
    await env.sync()
    numbers = {r["metadata"]["name"]: r["revision"]
               for r in await env.api.items(CONTROLLERREVISIONS, "ns")}
    assert numbers == {old_rev: 3, new_rev: 2}


async def test_revision_history_limit_prunes_revisions_no_pod_runs() -> None:
    env = Env()
    await env.create(STATEFULSETS, make_sts(1, revisionHistoryLimit=1))
    await env.scale_up_ready(1)
    for image in ("web:2", "web:3", "web:4"):
        await env.set_image(image)
        await env.sync()
    names = {r["metadata"]["name"] for r in await env.api.items(CONTROLLERREVISIONS, "ns")}
    pod_rev = (await env.pods())[0]["metadata"]["labels"]["controller-revision-hash"]
    current = revision_name(await env.sts())
    assert current in names and pod_rev in names, "the update revision and the pod's stay"
    assert len(names - {current, pod_rev}) <= 1, f"at most one more: {names}"


def test_the_plan_labels_pods_with_the_revision_the_history_chose() -> None:
    """After a rollback the history's revision for the template may be an older one, hashed
    with an older collision count: pods and status name it, not a recomputed name."""
    sts = make_sts(1)
    sts["metadata"]["uid"] = "u1"
    out = plan(sts, [], T0, None, "web-older")
    assert out.create[0]["metadata"]["labels"]["controller-revision-hash"] == "web-older"
    assert out.status["updateRevision"] == "web-older"
