"""EndpointsController: sync against the in-memory API, the handlers, and the whole loop.

Same conventions as ``test_endpointslice_controller``: never-started informers filled through
``Env.put``, ``sync`` called directly, ``Env.catch_up`` standing in for the watch.
"""

from __future__ import annotations

import copy

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.controller import RequeueError
from svcnet.client.informer import Informer
from svcnet.client.rest import ENDPOINTS, EVENTS, GVR, PODS, SERVICES
from svcnet.controllers.endpoints import LEADER_ANNOTATION, EndpointsController
from svcnet.controllers.endpointslice.util import ANNOTATION_LAST_CHANGE_TRIGGER_TIME
from svcnet.util.clock import FakeClock
from tests.unit.controllers.test_endpointslice_helpers import (
    SVC_CREATED,
    T0,
    FakeAPI,
    Obj,
    make_pod,
    make_service,
    meta,
    not_ready,
    spec,
    sync_cache,
)
from tests.waiting import cache_settles


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.api = FakeAPI()
        self.informers = {gvr: Informer(self.api, gvr, clock=self.clock)
                          for gvr in (SERVICES, PODS, ENDPOINTS)}
        self.ctrl = EndpointsController(self.api, services=self.informers[SERVICES],
                                        pods=self.informers[PODS],
                                        endpoints=self.informers[ENDPOINTS], clock=self.clock)

    def put(self, gvr: GVR, *objs: Obj) -> None:
        for obj in objs:
            self.api.seed(gvr, obj)
        self.catch_up()

    def delete(self, gvr: GVR, key: str) -> None:
        self.api.remove(gvr, key)
        self.catch_up()

    def catch_up(self) -> None:
        for gvr, informer in self.informers.items():
            sync_cache(informer, self.api.items(gvr))

    def endpoints(self, key: str = "ns/web") -> Obj:
        ep = self.api.get(ENDPOINTS, key)
        assert ep is not None
        return ep

    def writes(self) -> list[tuple[str, str]]:
        return self.api.writes("endpoints")

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


def ips_of(ep: Obj, field: str = "addresses") -> list[str]:
    return [a["ip"] for s in ep.get("subsets") or [] for a in s.get(field, [])]


async def test_new_service_gets_endpoints(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"), make_pod("p2", not_ready))
    await env.ctrl.sync("ns/web")
    assert env.writes() == [("create", "ns/web")]
    ep = env.endpoints()
    assert ips_of(ep) == ["10.1.0.1"] and ips_of(ep, "notReadyAddresses") == ["10.1.0.2"]
    assert ep["metadata"]["annotations"] == {ANNOTATION_LAST_CHANGE_TRIGGER_TIME: SVC_CREATED}


async def test_sync_is_idempotent_once_the_cache_catches_up(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    await env.ctrl.sync("ns/web")
    await env.ctrl.sync("ns/web")
    assert env.writes() == [("create", "ns/web")]


async def test_readiness_flip_updates_and_stale_cache_waits(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"), make_pod("p2"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    env.put(PODS, make_pod("p2", lambda p: not_ready(p, at="2026-01-01T00:00:07Z"),
                           meta(resourceVersion="21")))
    await env.ctrl.sync("ns/web")
    ep = env.endpoints()
    assert env.writes()[-1] == ("update", "ns/web")
    assert ips_of(ep) == ["10.1.0.1"] and ips_of(ep, "notReadyAddresses") == ["10.1.0.2"]
    assert ep["metadata"]["annotations"][ANNOTATION_LAST_CHANGE_TRIGGER_TIME] == (
        "2026-01-01T00:00:07Z")
    # The cache still shows the version our update replaced: wait for it.
    with pytest.raises(RequeueError, match="out of date"):
        await env.ctrl.sync("ns/web")
    env.put(PODS, make_pod("p3"))
    await env.ctrl.sync("ns/web")
    assert len(env.writes()) == 3
    assert ips_of(env.endpoints()) == ["10.1.0.1", "10.1.0.3"]


async def test_deleted_service_has_its_endpoints_deleted(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.delete(SERVICES, "ns/web")
    await env.ctrl.sync("ns/web")
    assert env.writes()[-1] == ("delete", "ns/web")
    assert env.api.items(ENDPOINTS) == []
    await env.ctrl.sync("ns/web")  # already gone: a 404 is success
    assert env.writes()[-1] == ("delete", "ns/web")


async def test_selectorless_service_endpoints_are_the_users(env: Env) -> None:
    env.put(SERVICES, make_service(spec(selector=None)))
    env.put(ENDPOINTS, {"metadata": {"namespace": "ns", "name": "web"},
                        "subsets": [{"addresses": [{"ip": "192.0.2.1"}]}]})
    await env.ctrl.sync("ns/web")
    assert env.writes() == []


async def test_create_conflict_is_retried(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.api.fail["create"] = [StatusError(409, "AlreadyExists", 'endpoints "web" already '
                                                                 "exists")]
    with pytest.raises(RequeueError, match="already exists"):
        await env.ctrl.sync("ns/web")
    (event,) = env.api.items(EVENTS)
    assert (event["reason"], event["involvedObject"]["kind"]) == ("FailedToCreateEndpoint",
                                                                  "Endpoints")


async def test_update_conflict_is_retried(env: Env) -> None:
    env.put(SERVICES, make_service())
    env.put(PODS, make_pod("p1"))
    await env.ctrl.sync("ns/web")
    env.catch_up()
    env.put(PODS, make_pod("p1", not_ready, meta(resourceVersion="21")))
    env.api.fail["update"] = [StatusError(409, "Conflict", "the object has been modified")]
    with pytest.raises(RequeueError):
        await env.ctrl.sync("ns/web")


async def test_handlers(env: Env) -> None:
    env.put(SERVICES, make_service(), make_service(spec(selector={"app": "api"}), name="api"))
    pods_h, eps_h = env.ctrl.pod_handler, env.ctrl.endpoints_handler
    assert pods_h.on_add is not None and pods_h.on_update is not None
    assert eps_h.on_add is not None and eps_h.on_delete is not None
    pod = make_pod("p1")
    pods_h.on_add(pod)
    assert await env.drain() == ["ns/web"]
    pods_h.on_update(pod, make_pod("p1", not_ready, meta(resourceVersion="21")))
    assert await env.drain() == ["ns/web"]
    pods_h.on_update(pod, make_pod("p1", meta(resourceVersion="21", annotations={"a": "b"})))
    assert await env.drain() == []
    # Before the Endpoints cache has synced (the initial list), every object is checked
    # once, except leader-election records.
    orphan = {"metadata": {"namespace": "ns", "name": "orphan"}}
    leader = {"metadata": {"namespace": "ns", "name": "lock",
                           "annotations": {LEADER_ANNOTATION: "{}"}}}
    eps_h.on_add(orphan)
    eps_h.on_add(leader)
    assert await env.drain() == ["ns/orphan"]
    eps_h.on_delete(copy.deepcopy(orphan))
    assert await env.drain() == [], "no Service: nothing to recreate"
    eps_h.on_delete({"metadata": {"namespace": "ns", "name": "web"}})
    assert await env.drain() == ["ns/web"], "deleted from under its Service: recreate"


async def test_full_loop_through_informers_queue_and_worker() -> None:
    clock = FakeClock(T0)
    api = FakeAPI()
    api.seed(SERVICES, make_service())
    api.seed(PODS, make_pod("p1"))
    api.seed(ENDPOINTS, {"metadata": {"namespace": "ns", "name": "left-behind"}})
    ctrl = EndpointsController.from_client(api, clock=clock)
    cache = ctrl.endpoints

    def ready_ips() -> list[str]:
        ep = cache.get("ns/web")
        return ips_of(ep) if ep is not None else []

    ctrl.start()
    try:
        await cache_settles(cache, lambda: ready_ips() == ["10.1.0.1"]
                        and cache.get("ns/left-behind") is None)
        api.seed(PODS, make_pod("p2"))
        await cache_settles(cache, lambda: ready_ips() == ["10.1.0.1", "10.1.0.2"])
        api.remove(SERVICES, "ns/web")
        await cache_settles(cache, lambda: cache.get("ns/web") is None)
    finally:
        await ctrl.stop()
    assert sorted(api.writes("endpoints")) == [("create", "ns/web"), ("delete", "ns/left-behind"),
                                               ("delete", "ns/web"), ("update", "ns/web")]
