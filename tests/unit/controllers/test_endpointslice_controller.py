"""EndpointSliceController: sync against the in-memory API, the handlers, and the whole loop.

As upstream's controller tests do, ``sync`` tests use informers that are never started: objects
go onto the :class:`FakeAPI` and into the caches (``Env.put``), ``sync(key)`` is called
directly, and ``Env.catch_up`` plays the watch delivering the controller's own writes. Handler
tests call the registered handlers and look at the queue. The last test runs the real loop:
informers listing and watching the FakeAPI, the work queue and a worker.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from svcnet.api.errors import StatusError, namespace_terminating_error
from svcnet.api.labels import parse_selector
from svcnet.client.controller import RequeueError
from svcnet.client.informer import Informer, object_key
from svcnet.client.rest import ENDPOINTSLICES, EVENTS, GVR, NODES, PODS, SERVICES
from svcnet.controllers.endpointslice import CONTROLLER_NAME, EndpointSliceController
from svcnet.controllers.endpointslice.util import (
    ANNOTATION_LAST_CHANGE_TRIGGER_TIME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
)
from svcnet.util.clock import FakeClock
from tests.unit.controllers.test_endpointslice_helpers import (
    NODES as NODE_OBJS,
    SVC_CREATED,
    T0,
    FakeAPI,
    Obj,
    describe,
    labels,
    make_pod,
    make_service,
    meta,
    not_ready,
    on_node,
    spec,
    sync_cache,
)
from tests.waiting import cache_settles

SELECTOR = f"{LABEL_MANAGED_BY}={CONTROLLER_NAME}"
READY_A = "ready,serving zone=zone-a"


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.api = FakeAPI()
        self.informers = {
            SERVICES: Informer(self.api, SERVICES, clock=self.clock),
            PODS: Informer(self.api, PODS, clock=self.clock),
            NODES: Informer(self.api, NODES, clock=self.clock),
            ENDPOINTSLICES: Informer(self.api, ENDPOINTSLICES, clock=self.clock,
                                     label_selector=SELECTOR),
        }
        self.ctrl = EndpointSliceController(
            self.api, services=self.informers[SERVICES], pods=self.informers[PODS],
            nodes=self.informers[NODES], slices=self.informers[ENDPOINTSLICES],
            clock=self.clock)
        self.put(NODES, *NODE_OBJS.values())

    def put(self, gvr: GVR, *objs: Obj) -> None:
        """Objects onto the server, then the caches catch up."""
        for obj in objs:
            self.api.seed(gvr, obj)
        self.catch_up()

    def delete(self, gvr: GVR, key: str) -> None:
        self.api.remove(gvr, key)
        self.catch_up()

    def catch_up(self) -> None:
        """The watches deliver everything (without running handlers)."""
        for gvr, informer in self.informers.items():
            sel = parse_selector(SELECTOR if gvr is ENDPOINTSLICES else "")
            sync_cache(informer, [o for o in self.api.items(gvr)
                                  if sel.matches(o["metadata"].get("labels"))])

    def slices(self) -> list[Obj]:
        return self.api.items(ENDPOINTSLICES)

    def writes(self) -> list[tuple[str, str]]:
        return self.api.writes()

    async def drain(self) -> list[str]:
        keys = []
        while len(self.ctrl.queue):
            key = await self.ctrl.queue.get()
            self.ctrl.queue.done(key)
            keys.append(key)
        return sorted(keys)


@pytest.fixture
def env() -> Env:
    return Env()


def fire(handler: Callable[[Obj], None] | None, obj: Obj) -> None:
    assert handler is not None
    handler(obj)


def fire2(handler: Callable[[Obj, Obj], None] | None, old: Obj, new: Obj) -> None:
    assert handler is not None
    handler(old, new)


# -- sync -----------------------------------------------------------------------------------


async def test_new_service_gets_a_slice(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"), make_pod("p2", not_ready))
    await env.ctrl.sync("ns/web")
    (created,) = env.slices()
    assert env.writes() == [("create", object_key(created))]
    assert created["metadata"]["name"].startswith("web-")
    assert created["metadata"]["generation"] == 1
    assert describe(created) == ("IPv4", ["http/TCP:8080"], [
        f"10.1.0.1 p1 {READY_A}", "10.1.0.2 p2 - zone=zone-a"])
    # First sync of a Service: its creation is the trigger.
    assert created["metadata"]["annotations"] == {
        ANNOTATION_LAST_CHANGE_TRIGGER_TIME: SVC_CREATED}
    assert env.api.writes("events") == []


async def test_sync_is_idempotent_once_the_cache_catches_up(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    await env.ctrl.sync("ns/web")
    await env.ctrl.sync("ns/web")
    assert [verb for verb, _ in env.writes()] == ["create"]


async def test_stale_slice_cache_is_not_acted_on(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    # Our slice has not come back through the watch yet: creating another would duplicate.
    with pytest.raises(RequeueError, match="informer cache is out of date"):
        await env.ctrl.sync("ns/web")
    assert len(env.writes()) == 1
    env.catch_up()
    await env.ctrl.sync("ns/web")
    assert len(env.writes()) == 1


async def test_pod_readiness_flip_updates_the_slice(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"), make_pod("p2"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    (before,) = env.slices()
    flipped = make_pod("p2", lambda p: not_ready(p, at="2026-01-01T00:00:05Z"), meta(
        resourceVersion="21"))
    env.put(PODS, flipped)
    await env.ctrl.sync("ns/web")
    (after,) = env.slices()
    assert env.writes()[-1] == ("update", object_key(before))
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["generation"] == 2
    assert describe(after)[2] == [f"10.1.0.1 p1 {READY_A}", "10.1.0.2 p2 - zone=zone-a"]
    # The pod's readiness change is what this write reflects.
    assert after["metadata"]["annotations"][ANNOTATION_LAST_CHANGE_TRIGGER_TIME] == (
        "2026-01-01T00:00:05Z")


async def test_change_without_tracked_trigger_clears_the_annotation(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    zoned = copy.deepcopy(NODE_OBJS["node-a"])
    zoned["metadata"]["labels"]["topology.kubernetes.io/zone"] = "zone-z"
    env.put(NODES, zoned)
    await env.ctrl.sync("ns/web")
    (eps,) = env.slices()
    assert describe(eps)[2] == ["10.1.0.1 p1 ready,serving zone=zone-z"]
    assert "annotations" not in eps["metadata"]


async def test_deleted_service_has_its_slices_deleted(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    foreign = {"metadata": {"namespace": "ns", "name": "web-by-hand",
                            "labels": {LABEL_SERVICE_NAME: "web",
                                       LABEL_MANAGED_BY: "someone-else"}},
               "addressType": "IPv4", "endpoints": []}
    env.put(ENDPOINTSLICES, foreign)
    await env.ctrl.sync("ns/web")
    env.catch_up()
    (ours,) = [s for s in env.slices() if s["metadata"]["name"] != "web-by-hand"]
    env.delete(SERVICES, "ns/web")
    await env.ctrl.sync("ns/web")
    assert env.writes()[-1] == ("delete", object_key(ours))
    assert [s["metadata"]["name"] for s in env.slices()] == ["web-by-hand"]
    # Our own deletion coming back through the watch asks for nothing more.
    fire(env.ctrl.slice_handler.on_delete, ours)
    env.catch_up()
    assert env.ctrl.queue.waiting == 0
    await env.ctrl.sync("ns/web")
    assert len(env.writes()) == 2


@pytest.mark.parametrize("svc", [
    pytest.param(make_service(spec(selector=None)), id="selectorless"),
    pytest.param(make_service(spec(type="ExternalName", externalName="db.example.com")),
                 id="external-name"),
])
async def test_services_we_do_not_manage_are_left_alone(env: Env, svc: Obj) -> None:
    env.put(SERVICES, svc)
    env.put(PODS, make_pod("p1"))
    # Even a slice wearing our label: selectorless Services' slices are the user's.
    env.put(ENDPOINTSLICES, {"metadata": {"namespace": "ns", "name": "web-1",
                                          "labels": {LABEL_SERVICE_NAME: "web",
                                                     LABEL_MANAGED_BY: CONTROLLER_NAME}},
                             "addressType": "IPv4", "endpoints": []})
    await env.ctrl.sync("ns/web")
    assert env.writes() == []


async def test_missing_service_without_slices_is_a_no_op(env: Env) -> None:
    await env.ctrl.sync("ns/gone")
    assert env.writes() == []


async def test_pod_on_unknown_node_is_retried_until_the_node_appears(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"), make_pod("p2", on_node("node-x")))
    with pytest.raises(RequeueError, match="Node node-x Not Found"):
        await env.ctrl.sync("ns/web")
    (eps,) = env.slices()
    assert describe(eps)[2] == [f"10.1.0.1 p1 {READY_A}"], "the rest is applied"
    (event,) = env.api.items(EVENTS)
    assert (event["type"], event["reason"]) == ("Warning", "FailedToUpdateEndpointSlices")
    assert event["message"].startswith("Error updating Endpoint Slices for Service ns/web: ")
    assert event["source"] == {"component": "endpoint-slice-controller"}
    env.catch_up()

    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-x", "labels": {"topology.kubernetes.io/zone": "zone-x"}}}
    env.put(NODES, node)
    fire(env.ctrl.node_handler.on_add, node)
    assert await env.drain() == ["ns/web"]
    await env.ctrl.sync("ns/web")
    (eps,) = env.slices()
    assert describe(eps)[2] == [f"10.1.0.1 p1 {READY_A}", "10.1.0.2 p2 ready,serving zone=zone-x"]


async def test_conflicting_update_is_retried(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    env.put(PODS, make_pod("p1", not_ready, meta(resourceVersion="21")))
    env.api.fail["update"] = [StatusError(409, "Conflict", "the object has been modified")]
    with pytest.raises(RequeueError, match="changed meanwhile"):
        await env.ctrl.sync("ns/web")
    await env.ctrl.sync("ns/web")
    (eps,) = env.slices()
    assert describe(eps)[2] == ["10.1.0.1 p1 - zone=zone-a"]


async def test_creates_in_a_terminating_namespace_are_dropped(env: Env) -> None:
    env.put(SERVICES, make_service())
    # The very error the API server answers (tests/e2e checks the server's bytes against it).
    env.api.fail["create"] = [namespace_terminating_error(
        "endpointslices", "", "ns", "discovery.k8s.io")]
    await env.ctrl.sync("ns/web")
    assert env.slices() == []


async def test_recreated_service_replaces_the_old_ones_slices(env: Env) -> None:
    env.put(SERVICES, make_service(meta(uid="uid-old")))
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    (old,) = env.slices()
    env.put(SERVICES, make_service(meta(uid="uid-new")))
    await env.ctrl.sync("ns/web")
    (new,) = env.slices()
    assert env.writes()[1:] == [("create", object_key(new)), ("delete", object_key(old))]
    assert new["metadata"]["ownerReferences"][0]["uid"] == "uid-new"


async def test_foreign_edit_is_reverted(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    (ours,) = env.slices()
    # Our own write coming back: no sync needed.
    fire(env.ctrl.slice_handler.on_add, ours)
    assert env.ctrl.queue.waiting == 0
    edited = copy.deepcopy(ours)
    edited["endpoints"] = []
    edited = await env.api.update(ENDPOINTSLICES, edited)
    env.catch_up()
    fire2(env.ctrl.slice_handler.on_update, ours, edited)
    assert env.ctrl.queue.waiting == 1, "queued after the minimum slice-change delay"
    env.clock.advance(1.0)
    assert await env.drain() == ["ns/web"]
    await env.ctrl.sync("ns/web")
    (eps,) = env.slices()
    assert describe(eps)[2] == [f"10.1.0.1 p1 {READY_A}"]


async def test_foreign_delete_is_reverted(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    (ours,) = env.slices()
    env.delete(ENDPOINTSLICES, object_key(ours))
    fire(env.ctrl.slice_handler.on_delete, ours)
    env.clock.advance(1.0)
    assert await env.drain() == ["ns/web"]
    await env.ctrl.sync("ns/web")
    (eps,) = env.slices()
    assert describe(eps)[2] == [f"10.1.0.1 p1 {READY_A}"]
    assert eps["metadata"]["name"] != ours["metadata"]["name"]


# -- handlers -------------------------------------------------------------------------------


async def test_pod_events_map_to_the_services_that_select_them(env: Env) -> None:
    env.put(SERVICES, make_service(), make_service(spec(selector={"app": "api"}), name="api"),
            make_service(spec(selector={"app": "web"}), name="all-web"),
            make_service(spec(selector=None), name="manual"))
    h = env.ctrl.pod_handler
    assert h.on_add is not None and h.on_update is not None and h.on_delete is not None
    pod = make_pod("p1")
    h.on_add(pod)
    assert await env.drain() == ["ns/all-web", "ns/web"]
    h.on_delete(pod)
    assert await env.drain() == ["ns/all-web", "ns/web"]
    h.on_add(make_pod("p2", labels(app="other")))
    assert await env.drain() == []
    h.on_update(pod, pod)
    assert await env.drain() == [], "a resync: Services resync themselves"
    h.on_update(pod, make_pod("p1", meta(resourceVersion="21", annotations={"a": "b"})))
    assert await env.drain() == [], "an annotation cannot change an endpoint"
    h.on_update(pod, make_pod("p1", not_ready, meta(resourceVersion="21")))
    assert await env.drain() == ["ns/all-web", "ns/web"]
    h.on_update(pod, make_pod("p1", labels(app="api"), meta(resourceVersion="21")))
    assert await env.drain() == ["ns/all-web", "ns/api", "ns/web"], "left two, joined one"
    h.on_update(pod, make_pod("p1", labels(app="web", x="y"), meta(resourceVersion="21")))
    assert await env.drain() == [], "labels changed, membership did not"
    h.on_update(pod, make_pod("p1", spec(hostname="h", subdomain="web"),
                              meta(resourceVersion="21")))
    assert await env.drain() == [], "same Services (hostname matters only within them)"


async def test_node_zone_change_requeues_services_of_its_pods(env: Env) -> None:
    env.put(SERVICES, make_service(), make_service(spec(selector={"app": "api"}), name="api"))
    env.put(PODS, make_pod("p1"), make_pod("p2", labels(app="api"), on_node("node-b")))
    h = env.ctrl.node_handler
    assert h.on_update is not None and h.on_delete is not None
    node = NODE_OBJS["node-a"]
    h.on_update(node, node)
    assert await env.drain() == []
    relabelled = copy.deepcopy(node)
    relabelled["metadata"]["labels"]["other"] = "x"
    h.on_update(node, relabelled)
    assert await env.drain() == []
    rezoned = copy.deepcopy(node)
    rezoned["metadata"]["labels"]["topology.kubernetes.io/zone"] = "zone-z"
    h.on_update(node, rezoned)
    assert await env.drain() == ["ns/web"]
    h.on_delete(NODE_OBJS["node-b"])
    assert await env.drain() == ["ns/api"]


async def test_service_events_queue_the_service(env: Env) -> None:
    svc = make_service()
    h = env.ctrl.service_handler
    assert h.on_add is not None and h.on_update is not None and h.on_delete is not None
    h.on_add(svc)
    h.on_update(svc, svc)
    h.on_delete(svc)
    assert await env.drain() == ["ns/web"]


async def test_relabelled_slice_queues_both_services(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    (ours,) = env.slices()
    moved = copy.deepcopy(ours)
    moved["metadata"]["labels"][LABEL_SERVICE_NAME] = "api"
    fire2(env.ctrl.slice_handler.on_update, ours, moved)
    env.clock.advance(1.0)
    assert await env.drain() == ["ns/api", "ns/web"]


# -- the whole loop -------------------------------------------------------------------------


async def test_full_loop_through_informers_queue_and_worker() -> None:
    clock = FakeClock(T0)
    api = FakeAPI()
    for node in NODE_OBJS.values():
        api.seed(NODES, node)
    api.seed(SERVICES, make_service())
    api.seed(PODS, make_pod("p1"))
    api.seed(PODS, make_pod("p2", not_ready))
    ctrl = EndpointSliceController.from_client(api, clock=clock)
    slices = ctrl.slices

    def endpoints() -> list[str]:
        return [e for s in slices.list() for e in describe(s)[2]]

    ctrl.start()
    try:
        await cache_settles(slices, lambda: len(endpoints()) == 2)
        assert ctrl.has_synced()
        assert endpoints() == [f"10.1.0.1 p1 {READY_A}", "10.1.0.2 p2 - zone=zone-a"]

        api.seed(PODS, make_pod("p2", meta(resourceVersion="x")))  # p2 turns Ready
        await cache_settles(slices, lambda: endpoints() == [f"10.1.0.1 p1 {READY_A}",
                                                        f"10.1.0.2 p2 {READY_A}"])
        api.remove(PODS, "ns/p1")
        await cache_settles(slices, lambda: endpoints() == [f"10.1.0.2 p2 {READY_A}"])

        api.remove(SERVICES, "ns/web")
        await cache_settles(slices, lambda: not slices.list())
    finally:
        await ctrl.stop()
    assert [verb for verb, _ in api.writes()] == ["create", "update", "update", "delete"]
