"""ReplicationControllers run by the ReplicaSet controller (upstream's replication manager):
pods from the template owned by the RC, a label-map selector, scale down, adoption, status."""

from __future__ import annotations

from svcnet.client.rest import EVENTS, PODS
from svcnet.controllers.ownership import REPLICATIONCONTROLLERS, map_selector
from svcnet.controllers.replicaset import RC_COMPONENT, ReplicaSetController
from tests.unit.controllers.test_replicaset_helpers import Obj, World, make_pod


def make_rc(replicas: int) -> Obj:
    # No selector: the server defaults it (and the labels) from the template.
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "rc", "namespace": "ns"},
            "spec": {"replicas": replicas,
                     "template": {"metadata": {"labels": {"app": "rc"}},
                                  "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}


class Env(World):
    def __init__(self) -> None:
        super().__init__((PODS, REPLICATIONCONTROLLERS))
        # What for_replication_controllers builds, over this world's informers.
        self.ctrl = ReplicaSetController(
            self.api, replicasets=self.informers[REPLICATIONCONTROLLERS],
            pods=self.informers[PODS], clock=self.clock, gvr=REPLICATIONCONTROLLERS,
            selector_of=map_selector, component=RC_COMPONENT)

    async def rc(self) -> Obj:
        return await self.api.get(REPLICATIONCONTROLLERS, "ns", "rc")


async def test_rc_creates_owned_pods_scales_down_and_reports_status() -> None:
    env = Env()
    created = await env.create(REPLICATIONCONTROLLERS, make_rc(3))
    assert created["spec"]["selector"] == {"app": "rc"}
    # An orphan with the RC's labels is adopted instead of creating a third pod.
    await env.create(PODS, make_pod("orphan", {"app": "rc"}))
    await env.ctrl.sync("ns/rc")
    pods = await env.pods()
    assert len(pods) == 3
    uid = created["metadata"]["uid"]
    for p in pods:
        assert p["metadata"]["ownerReferences"] == [{
            "apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "uid": uid,
            "controller": True, "blockOwnerDeletion": True}]
    await env.catch_up(notify=True)
    await env.mark_ready()
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/rc")
    assert (await env.rc())["status"] == {
        "replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "observedGeneration": 1}
    rc = await env.rc()
    rc["spec"]["replicas"] = 1
    await env.api.update(REPLICATIONCONTROLLERS, rc)
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/rc")
    live = [p for p in await env.pods() if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 1
    events = await env.api.items(EVENTS, "ns")
    assert {e["source"]["component"] for e in events} == {RC_COMPONENT}
    assert sorted({e["reason"] for e in events}) == ["SuccessfulCreate", "SuccessfulDelete"]
    assert all(e["involvedObject"]["kind"] == "ReplicationController" for e in events)


def test_the_factory_watches_replication_controllers() -> None:
    rm = ReplicaSetController.for_replication_controllers(Env().api)
    assert rm.gvr == REPLICATIONCONTROLLERS and rm.component == RC_COMPONENT
    assert rm.replicasets.gvr == REPLICATIONCONTROLLERS
