"""The garbage collector against the in-process API (which supports finalizers on delete, as
the registry will once wired): background, foreground and orphan propagation, dangling and
solid owners, and the pure decisions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.informer import object_key
from svcnet.client.rest import ENDPOINTSLICES, PODS, SERVICES
from svcnet.controllers.gc import (
    FINALIZER_FOREGROUND,
    FINALIZER_ORPHAN,
    GarbageCollector,
    OwnerClass,
    classify_owners,
    decide,
    remove_finalizer_patch,
    unlink_patch,
)
from svcnet.controllers.ownership import DEPLOYMENTS, REPLICASETS
from tests.unit.controllers.test_replicaset_helpers import (
    Obj,
    World,
    make_deployment,
    make_pod,
    make_replicaset,
    settle,
)

RESOURCES = (PODS, REPLICASETS, DEPLOYMENTS, SERVICES, ENDPOINTSLICES)


def ref(owner: Obj, *, controller: bool = True, block: bool = True) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": controller, "blockOwnerDeletion": block}


def owned(obj: Obj, *owners: Obj, block: bool = True) -> Obj:
    obj["metadata"]["ownerReferences"] = [ref(o, controller=i == 0, block=block)
                                          for i, o in enumerate(owners)]
    return obj


class Env(World):
    def __init__(self) -> None:
        super().__init__(RESOURCES)
        self.gc = GarbageCollector(self.api, self.informers, clock=self.clock)
        self.errors: list[StatusError] = []

    async def step(self) -> None:
        await self.catch_up(notify=True)
        while len(self.gc.queue):
            key = await self.gc.queue.get()
            self.gc.queue.done(key)
            try:
                await self.gc.sync(key)
            except StatusError as e:
                self.errors.append(e)
        await self.catch_up(notify=True)

    async def settle(self) -> None:
        await settle(self, self.step)

    async def names(self, gvr: Any) -> list[str]:
        return sorted(o["metadata"]["name"] for o in await self.api.items(gvr, "ns"))

    async def family(self) -> tuple[Obj, Obj, list[Obj]]:
        """A Deployment owning a ReplicaSet owning two pods (made by hand: no controllers)."""
        d = await self.api.create(DEPLOYMENTS, make_deployment(replicas=2))
        rs = await self.api.create(REPLICASETS, owned(make_replicaset("web-1", labels={
            "app": "web"}), d))
        pods = [await self.api.create(PODS, owned(make_pod(f"web-1-{i}", {"app": "web"}), rs))
                for i in range(2)]
        await self.step()
        return d, rs, pods


@pytest.fixture
def env() -> Env:
    return Env()


async def test_background_deletion_removes_the_whole_family(env: Env) -> None:
    await env.family()
    await env.api.create(PODS, make_pod("bystander", {"app": "web"}))
    assert env.api.writes("pods") == [("create", "ns/web-1-0"), ("create", "ns/web-1-1"),
                                      ("create", "ns/bystander")], "nothing while owners live"
    await env.api.delete(DEPLOYMENTS, "ns", "web")
    await env.settle()
    assert await env.names(REPLICASETS) == []
    assert await env.names(PODS) == ["bystander"]


async def test_an_owner_missing_from_the_cache_is_asked_for(env: Env) -> None:
    """Informers lag behind each other: a dependent seen before its owner is not garbage."""
    d = await env.api.create(DEPLOYMENTS, make_deployment(replicas=1))
    rs = owned(make_replicaset("web-1", labels={"app": "web"}), d)
    await env.api.create(REPLICASETS, rs)
    # Only the ReplicaSet cache has caught up; the Deployment cache is still empty.
    for obj in await env.api.items(REPLICASETS):
        env.informers[REPLICASETS].indexer.upsert(object_key(obj), obj)
    await env.gc.sync("replicasets.apps|ns/web-1")
    assert await env.names(REPLICASETS) == ["web-1"]
    assert env.api.writes("replicasets") == [("create", "ns/web-1")]


async def test_only_changes_of_references_deletion_or_finalizers_queue_a_dependent(
        env: Env) -> None:
    """graph_builder.go acts on reference diffs and deletion transitions: a dependent
    rewritten for other reasons (an EndpointSlice following its Service) is not queued."""
    svc = await env.api.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                          "metadata": {"name": "a", "namespace": "ns"}})
    pod = await env.api.create(PODS, owned(make_pod("p", {"app": "x"}), svc))
    await env.step()
    pod["metadata"]["labels"] = {"app": "y"}
    pod = await env.api.update(PODS, pod)
    await env.catch_up(notify=True)
    assert len(env.gc.queue) == 0, "a label change is not the collector's business"
    pod["metadata"]["finalizers"] = ["example.com/keep"]
    pod = await env.api.update(PODS, pod)
    await env.catch_up(notify=True)
    assert len(env.gc.queue) == 1, "finalizers changed"
    await env.step()
    other = await env.api.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                            "metadata": {"name": "b", "namespace": "ns"}})
    pod["metadata"]["ownerReferences"].append(ref(other, controller=False))
    await env.api.update(PODS, pod)
    await env.catch_up(notify=True)
    assert len(env.gc.queue) == 1, "owner references changed"


async def test_a_recreated_owner_is_not_the_owner(env: Env) -> None:
    d = await env.api.create(DEPLOYMENTS, make_deployment(replicas=1))
    await env.api.create(REPLICASETS, owned(make_replicaset("web-1", labels={"app": "web"}),
                                            d))
    await env.step()
    await env.api.delete(DEPLOYMENTS, "ns", "web")
    await env.api.create(DEPLOYMENTS, make_deployment(replicas=1))  # same name, new uid
    await env.settle()
    assert await env.names(REPLICASETS) == []


async def test_a_solid_owner_keeps_the_object_and_dangling_references_go(env: Env) -> None:
    svc_a = await env.api.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                            "metadata": {"name": "a", "namespace": "ns"}})
    svc_b = await env.api.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                            "metadata": {"name": "b", "namespace": "ns"}})
    await env.api.create(PODS, owned(make_pod("shared", {"app": "x"}), svc_a, svc_b))
    await env.step()
    await env.api.delete(SERVICES, "ns", "a")
    await env.settle()
    pod = await env.api.get(PODS, "ns", "shared")
    assert [r["name"] for r in pod["metadata"]["ownerReferences"]] == ["b"]
    await env.api.delete(SERVICES, "ns", "b")
    await env.settle()
    assert await env.names(PODS) == []


async def test_foreground_deletion_removes_dependents_first(env: Env) -> None:
    await env.family()
    await env.api.delete(DEPLOYMENTS, "ns", "web", propagation_policy="Foreground")
    d = await env.api.get(DEPLOYMENTS, "ns", "web")
    assert d["metadata"]["deletionTimestamp"]
    assert d["metadata"]["finalizers"] == [FINALIZER_FOREGROUND]
    await env.step()
    # The ReplicaSet has dependents of its own: it is deleted in the foreground too.
    rs = await env.api.get(REPLICASETS, "ns", "web-1")
    assert rs["metadata"]["finalizers"] == [FINALIZER_FOREGROUND]
    assert await env.names(DEPLOYMENTS) == ["web"], "the owner waits for its dependents"
    await env.settle()
    assert await env.names(DEPLOYMENTS) == []
    assert await env.names(REPLICASETS) == []
    assert await env.names(PODS) == []
    deletes = [key for verb, key in env.api.writes("pods") if verb == "delete"]
    assert sorted(deletes) == ["ns/web-1-0", "ns/web-1-1"]


async def test_foreground_does_not_wait_for_non_blocking_dependents(env: Env) -> None:
    d = await env.api.create(DEPLOYMENTS, make_deployment(replicas=1))
    await env.api.create(PODS, owned(make_pod("loose", {"app": "x"}), d, block=False))
    await env.step()
    await env.api.delete(DEPLOYMENTS, "ns", "web", propagation_policy="Foreground")
    await env.step()
    assert await env.names(DEPLOYMENTS) == [], "nothing blocked the owner"
    await env.settle()
    assert await env.names(PODS) == []


async def test_orphan_deletion_keeps_the_dependents(env: Env) -> None:
    _, _, pods = await env.family()
    await env.api.delete(REPLICASETS, "ns", "web-1", propagation_policy="Orphan")
    assert (await env.api.get(REPLICASETS, "ns", "web-1"))["metadata"]["finalizers"] == [
        FINALIZER_ORPHAN]
    await env.settle()
    assert await env.names(REPLICASETS) == []
    for p in pods:
        left = await env.api.get(PODS, "ns", p["metadata"]["name"])
        assert "ownerReferences" not in left["metadata"]


async def test_owners_of_kinds_we_cannot_look_up_are_trusted(env: Env) -> None:
    pod = make_pod("crd-owned", {"app": "x"})
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "example.com/v1", "kind": "Thing",
                                           "name": "t", "uid": "uid-thing"}]
    await env.api.create(PODS, pod)
    await env.settle()
    assert await env.names(PODS) == ["crd-owned"]


async def test_an_unserved_owner_resource_is_an_error_not_a_deletion(env: Env) -> None:
    real_get = env.api.get

    async def get(gvr: Any, namespace: str, name: str, *, subresource: str = "") -> Obj:
        if gvr == DEPLOYMENTS:  # as if apps/v1 were not served
            raise StatusError(404, "NotFound",
                              "the server could not find the requested resource")
        return await real_get(gvr, namespace, name, subresource=subresource)

    env.api.get = get  # type: ignore[method-assign]
    pod = make_pod("p", {"app": "x"})
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment",
                                           "name": "d", "uid": "uid-d"}]
    await env.api.create(PODS, pod)
    await env.settle()
    assert await env.names(PODS) == ["p"]
    assert env.errors and env.errors[0].code == 404


async def test_the_whole_loop() -> None:
    env = World(RESOURCES)
    gc = GarbageCollector.from_client(env.api)
    gc.start()
    try:
        d = await env.api.create(DEPLOYMENTS, make_deployment(replicas=1))
        rs = await env.api.create(REPLICASETS, owned(make_replicaset(
            "web-1", labels={"app": "web"}), d))
        await env.api.create(PODS, owned(make_pod("web-1-a", {"app": "web"}), rs))
        await env.api.delete(DEPLOYMENTS, "ns", "web")
        for _ in range(500):
            if not await env.api.items(PODS) and not await env.api.items(REPLICASETS):
                break
            await asyncio.sleep(0.01)
        assert await env.api.items(PODS) == [] and await env.api.items(REPLICASETS) == []
    finally:
        await gc.stop()


# -- pure ------------------------------------------------------------------------------------

OWNER = {"metadata": {"uid": "o1"}}
DELETING = {"metadata": {"uid": "o2", "deletionTimestamp": "2026-01-01T00:00:00Z",
                         "finalizers": [FINALIZER_FOREGROUND]}}
GRACEFUL = {"metadata": {"uid": "o3", "deletionTimestamp": "2026-01-01T00:00:00Z"}}


def test_classify() -> None:
    refs = [{"uid": "o1"}, {"uid": "o2"}, {"uid": "o3"}, {"uid": "gone"}]
    got = classify_owners(refs, {"o1": OWNER, "o2": DELETING, "o3": GRACEFUL, "gone": None})
    assert got == OwnerClass(solid=["o1", "o3"], dangling=["gone"], waiting=["o2"])


@pytest.mark.parametrize(("classes", "has_dependents", "finalizers", "want"), [
    (OwnerClass(solid=["a"]), False, [], ("keep", (), "")),
    (OwnerClass(solid=["a"], dangling=["b"], waiting=["c"]), False, [],
     ("unlink", ("b", "c"), "")),
    (OwnerClass(waiting=["a"]), True, [], ("delete", (), "Foreground")),
    (OwnerClass(waiting=["a"]), False, [], ("delete", (), "Background")),
    (OwnerClass(dangling=["a"]), True, [], ("delete", (), "Background")),
    (OwnerClass(dangling=["a"]), False, [FINALIZER_ORPHAN], ("delete", (), "Orphan")),
    (OwnerClass(dangling=["a"]), False, [FINALIZER_FOREGROUND], ("delete", (), "Foreground")),
])
def test_decide(classes: OwnerClass, has_dependents: bool, finalizers: list[str],
                want: tuple[str, tuple[str, ...], str]) -> None:
    obj = {"metadata": {"finalizers": finalizers}}
    d = decide(obj, classes, has_dependents)
    assert (d.action, d.uids, d.policy) == want


def test_patches() -> None:
    obj = {"metadata": {"uid": "u", "resourceVersion": "7",
                        "ownerReferences": [{"uid": "a"}, {"uid": "b"}],
                        "finalizers": [FINALIZER_ORPHAN, "x"]}}
    assert unlink_patch(obj, ["a"])[-1] == {"op": "replace", "path": "/metadata/ownerReferences",
                                            "value": [{"uid": "b"}]}
    assert unlink_patch(obj, ["a", "b"])[-1] == {"op": "remove",
                                                 "path": "/metadata/ownerReferences"}
    assert remove_finalizer_patch(obj, FINALIZER_ORPHAN) == {
        "metadata": {"resourceVersion": "7", "finalizers": ["x"]}}
    assert remove_finalizer_patch({"metadata": {"finalizers": ["x"]}}, "x") == {
        "metadata": {"resourceVersion": "", "finalizers": None}}
