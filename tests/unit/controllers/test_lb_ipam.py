"""The LoadBalancer IP controller: the pure ``plan`` table, then ``sync`` against a fake client.

Test address plan: pool ``default`` = 192.0.2.0/30 (TEST-NET-1, four addresses, lowest first),
pool ``v6`` = 2001:db8::/126, pool ``one`` = 198.51.100.7 (a single address, to exhaust).
203.0.113.0/24 (TEST-NET-3) is "someone else's" address space, in none of our pools.

``sync`` tests follow the EndpointSlice controller's style: a real controller over an informer
that is never started; Services go straight into its indexer and ``sync(key)`` is called
directly, with a real :class:`LoadBalancerIPAM` over a :class:`MemoryStore`. The fake client
records actions and behaves like the API server where it matters: conditional status writes
(409 on a stale resourceVersion), 404 for unknown Services, and the Service registry's release
of addresses dropped from status after the write commits.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.api.lbips import ANNOTATION_IPS, ANNOTATION_POOL
from svcnet.client.controller import RequeueError
from svcnet.client.informer import EventHandler, Informer, object_key
from svcnet.client.rest import GVR, SERVICES, ObjectList, PatchType, TransportError
from svcnet.client.watchstream import WatchEvent
from svcnet.controllers.lb_ipam import (
    Assign,
    Clear,
    LoadBalancerIPController,
    Skip,
    plan,
    with_ingress,
)
from svcnet.registry.lb_ipam import LoadBalancerIPAM
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]
POOLS = ["default=192.0.2.0/30", "v6=2001:db8::/126", "one=198.51.100.7-198.51.100.7"]


def make_service(ns: str, name: str, fn: Callable[[Obj], None] | None = None, *,
                 rv: str = "100") -> Obj:
    svc: Obj = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}",
                             "resourceVersion": rv},
                "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"],
                         "ports": [{"port": 80, "protocol": "TCP"}]},
                "status": {"loadBalancer": {}}}
    if fn is not None:
        fn(svc)
    return svc


def ingress(*ips: str) -> Callable[[Obj], None]:
    def set_ingress(svc: Obj) -> None:
        svc["status"]["loadBalancer"]["ingress"] = [{"ip": ip, "ipMode": "VIP"} for ip in ips]
    return set_ingress


def spec(**fields: Any) -> Callable[[Obj], None]:
    return lambda svc: svc["spec"].update(fields)


def annotate(**annotations: str) -> Callable[[Obj], None]:
    return lambda svc: svc["metadata"].setdefault("annotations", {}).update(
        {ANNOTATION_IPS if k == "ips" else ANNOTATION_POOL: v for k, v in annotations.items()})


def both(*fns: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def apply(svc: Obj) -> None:
        for fn in fns:
            fn(svc)
    return apply


# -- plan -----------------------------------------------------------------------------------


def pool_of(ip: str) -> str | None:
    if ip.startswith("192.0.2."):
        return "default"
    if ip.startswith("2001:db8:"):
        return "v6"
    return "one" if ip == "198.51.100.7" else None


FOREIGN = {"ip": "203.0.113.9", "ipMode": "Proxy"}


@pytest.mark.parametrize(
    ("svc", "expected"),
    [
        pytest.param(None, Skip("deleted"), id="deleted"),
        pytest.param(make_service("ns", "a", lambda s: s["metadata"].update(
            deletionTimestamp="2026-01-01T00:00:00Z")), Skip("being deleted"),
            id="being-deleted"),
        pytest.param(make_service("ns", "a", spec(type="ClusterIP")),
                     Skip("not a LoadBalancer we serve"), id="cluster-ip"),
        pytest.param(make_service("ns", "a"), Assign("no addresses yet"), id="lb-pending"),
        pytest.param(make_service("ns", "a", lambda s: s["status"]["loadBalancer"].update(
            ingress=[{"hostname": "lb.example.com"}])), Assign("no addresses yet"),
            id="lb-hostname-only"),
        pytest.param(make_service("ns", "a", ingress("192.0.2.0")), Skip("up to date"),
                     id="lb-served"),
        pytest.param(make_service("ns", "a", both(ingress("192.0.2.0"), annotate(
            ips="192.0.2.3"))), Assign("requested addresses differ from status"),
            id="lb-requested-differs"),
        pytest.param(make_service("ns", "a", both(ingress("192.0.2.3"), annotate(
            ips="192.0.2.3"))), Skip("up to date"), id="lb-requested-served"),
        pytest.param(make_service("ns", "a", both(ingress("192.0.2.0"), spec(
            ipFamilies=["IPv6"]))),
            Assign("an address of a family the Service no longer has"), id="lb-family-gone"),
        pytest.param(make_service("ns", "a", both(ingress("192.0.2.0"), spec(
            ipFamilies=["IPv4", "IPv6"]))), Assign("a family without an address"),
            id="lb-second-family-missing"),
        pytest.param(make_service("ns", "a", both(ingress("192.0.2.0"), spec(
            ipFamilies=["IPv4", "IPv6"]), annotate(ips="192.0.2.0"))), Skip("up to date"),
            id="lb-second-family-not-requested"),
        pytest.param(make_service("ns", "a", both(ingress("192.0.2.0"), annotate(pool="one"))),
                     Assign("an address outside the requested pool"), id="lb-wrong-pool"),
        pytest.param(make_service("ns", "a", both(ingress("198.51.100.7"), annotate(
            pool="one"))), Skip("up to date"), id="lb-right-pool"),
        pytest.param(make_service("ns", "a", both(spec(loadBalancerClass="example.com/lb"),
                                                  ingress("192.0.2.1"), lambda s: s["status"][
                                                      "loadBalancer"]["ingress"].append(
                                                          FOREIGN))),
                     Clear(("192.0.2.1",), (FOREIGN,)), id="lb-class-with-our-address"),
        pytest.param(make_service("ns", "a", both(spec(loadBalancerClass="example.com/lb"),
                                                  lambda s: s["status"]["loadBalancer"].update(
                                                      ingress=[FOREIGN]))),
                     Skip("not a LoadBalancer we serve"), id="lb-class-foreign-only"),
        pytest.param(make_service("ns", "a", both(spec(type="ClusterIP"),
                                                  ingress("192.0.2.1", "203.0.113.9"))),
                     Clear(("192.0.2.1",), ()), id="cluster-ip-with-our-address"),
        pytest.param(make_service("ns", "a", both(spec(type="NodePort"),
                                                  ingress("203.0.113.9"))),
                     Skip("not a LoadBalancer we serve"), id="node-port-foreign-address"),
    ],
)
def test_plan(svc: Obj | None, expected: object) -> None:
    before = copy.deepcopy(svc)
    assert plan(svc, pool_of) == expected
    assert svc == before, "plan must not mutate its input"


@pytest.mark.parametrize(
    ("current", "wanted", "changed"),
    [
        pytest.param([], [{"ip": "192.0.2.0", "ipMode": "VIP"}], True, id="add"),
        pytest.param(["192.0.2.0"], [{"ip": "192.0.2.0", "ipMode": "VIP"}], False,
                     id="same"),
        pytest.param(["192.0.2.0"], [], True, id="clear"),
        pytest.param(["192.0.2.0"], [{"ip": "192.0.2.0"}], True, id="ip-mode-missing"),
    ],
)
def test_with_ingress(current: list[str], wanted: list[Obj], changed: bool) -> None:
    svc = make_service("ns", "a", ingress(*current))
    before = copy.deepcopy(svc)
    out = with_ingress(svc, wanted)
    assert svc == before
    if not changed:
        assert out is None
        return
    assert out is not None
    assert out["status"]["loadBalancer"].get("ingress", []) == wanted
    assert out["metadata"] == svc["metadata"]


# -- the fake client ------------------------------------------------------------------------


class FakeClient:
    """Records actions; status writes behave like the Service registry's."""

    def __init__(self, ipam: LoadBalancerIPAM) -> None:
        self.ipam = ipam
        self.rev = 500
        self.objects: dict[str, Obj] = {}
        self.actions: list[tuple[str, str, str]] = []
        self.events: list[Obj] = []
        self.event_patches: list[Any] = []
        self.fail_status: list[Exception] = []
        self.watchers: list[asyncio.Queue[WatchEvent]] = []

    def seed(self, svc: Obj) -> Obj:
        self.objects[object_key(svc)] = copy.deepcopy(svc)
        return svc

    # -- writes ---------------------------------------------------------------------------

    async def update_status(self, gvr: GVR, obj: Obj, *, dry_run: bool = False,
                            field_manager: str = "") -> Obj:
        key = object_key(obj)
        self.actions.append(("update_status", str(gvr), key))
        if self.fail_status:
            raise self.fail_status.pop(0)
        current = self.objects.get(key)
        if current is None:
            raise StatusError(404, "NotFound", f'services "{key}" not found')
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise StatusError(409, "Conflict", "the object has been modified")
        self.rev += 1
        updated = copy.deepcopy(current)
        updated["status"] = copy.deepcopy(obj["status"])
        updated["metadata"]["resourceVersion"] = str(self.rev)
        self.objects[key] = updated
        # The Service registry gives back addresses dropped from status once the write commits.
        kept = {i.get("ip") for i in updated["status"]["loadBalancer"].get("ingress") or []}
        dropped = [i["ip"] for i in current["status"]["loadBalancer"].get("ingress") or []
                   if i.get("ip") and i["ip"] not in kept]
        await self.ipam.release(current, dropped)
        for q in self.watchers:
            q.put_nowait(WatchEvent("MODIFIED", copy.deepcopy(updated)))
        return copy.deepcopy(updated)

    async def create(self, gvr: GVR, obj: Obj, *, namespace: str | None = None,
                     dry_run: bool = False, field_manager: str = "") -> Obj:
        self.actions.append(("create", str(gvr), f"{namespace}/{obj['metadata']['name']}"))
        self.events.append(obj)
        return obj

    async def patch(self, gvr: GVR, namespace: str, name: str, patch: Any, *,
                    patch_type: PatchType = PatchType.MERGE, subresource: str = "",
                    dry_run: bool = False, field_manager: str = "", force: bool = False) -> Obj:
        self.actions.append(("patch", str(gvr), f"{namespace}/{name}"))
        self.event_patches.append(patch)
        return {}

    # -- list and watch (only for the full-loop test) -------------------------------------

    async def list_all(self, gvr: GVR, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500) -> ObjectList:
        return ObjectList([copy.deepcopy(o) for o in self.objects.values()], str(self.rev))

    @asynccontextmanager
    async def _stream(self) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        q: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self.watchers.append(q)

        async def events() -> AsyncGenerator[WatchEvent, None]:
            while True:
                yield await q.get()

        gen = events()
        try:
            yield gen
        finally:
            self.watchers.remove(q)
            await gen.aclose()

    def watch(self, gvr: GVR, namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "", timeout_seconds: int = 300,
              allow_bookmarks: bool = True
              ) -> AbstractAsyncContextManager[AsyncIterator[WatchEvent]]:
        return self._stream()


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore()
        self.ipam = LoadBalancerIPAM(self.store, POOLS, clock=self.clock, rng=random.Random(1))
        self.client = FakeClient(self.ipam)
        informer = Informer(self.client, SERVICES, clock=self.clock)  # never started
        self.ctrl = LoadBalancerIPController(self.client, self.ipam, informer, clock=self.clock)
        self.informer = informer

    def cache(self, *services: Obj) -> None:
        """Put Services in the informer cache and on the 'server'."""
        for svc in services:
            self.informer.indexer.upsert(object_key(svc), svc)
            self.client.seed(svc)

    async def owner(self, ip: str) -> str | None:
        pa = self.ipam.pool_of(ip)
        assert pa is not None
        got = await pa.allocator.get(ip)
        return got.owner.key() if got is not None else None

    def written(self, key: str) -> Obj:
        return self.client.objects[key]


@pytest.fixture
def env() -> Env:
    return Env()


# -- sync -----------------------------------------------------------------------------------


async def test_pending_service_gets_an_address(env: Env) -> None:
    env.cache(make_service("ns", "web"))
    await env.ctrl.sync("ns/web")
    assert [a[:2] for a in env.client.actions] == [("update_status", "services"),
                                                   ("create", "events")]
    assert env.client.actions[1][2].startswith("ns/web.")
    assert env.written("ns/web")["status"]["loadBalancer"]["ingress"] == [
        {"ip": "192.0.2.0", "ipMode": "VIP"}]
    assert await env.owner("192.0.2.0") == "ns/web"
    event = env.client.events[0]
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal", "IPAllocated", 'Assigned IP ["192.0.2.0"]')


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        pytest.param(spec(ipFamilies=["IPv4", "IPv6"]), ["192.0.2.0", "2001:db8::"],
                     id="dual-stack"),
        pytest.param(annotate(ips="192.0.2.2"), ["192.0.2.2"], id="requested"),
        pytest.param(annotate(pool="one"), ["198.51.100.7"], id="pool-annotation"),
    ],
)
async def test_assignment_variants(env: Env, fn: Callable[[Obj], None],
                                   expected: list[str]) -> None:
    env.cache(make_service("ns", "web", fn))
    await env.ctrl.sync("ns/web")
    got = [i["ip"] for i in env.written("ns/web")["status"]["loadBalancer"]["ingress"]]
    assert got == expected


@pytest.mark.parametrize(
    "svc",
    [
        pytest.param(make_service("ns", "web", spec(type="ClusterIP")), id="not-lb"),
        pytest.param(make_service("ns", "web", spec(loadBalancerClass="x/y")), id="lb-class"),
    ],
)
async def test_services_we_do_not_serve_are_left_alone(env: Env, svc: Obj) -> None:
    env.cache(svc)
    await env.ctrl.sync("ns/web")
    assert env.client.actions == []


async def test_missing_service_is_success_without_actions(env: Env) -> None:
    await env.ctrl.sync("ns/gone")
    assert env.client.actions == []


async def test_sync_is_idempotent_once_the_cache_catches_up(env: Env) -> None:
    env.cache(make_service("ns", "web"))
    await env.ctrl.sync("ns/web")
    env.informer.indexer.upsert("ns/web", env.written("ns/web"))
    await env.ctrl.sync("ns/web")
    await env.ctrl.sync("ns/web")
    assert [a[0] for a in env.client.actions] == ["update_status", "create"]


async def test_stale_cache_is_not_acted_on(env: Env) -> None:
    env.cache(make_service("ns", "web"))
    await env.ctrl.sync("ns/web")
    # The informer has not delivered our write yet: assigning again would take a 2nd address.
    with pytest.raises(RequeueError, match="older than our last status write"):
        await env.ctrl.sync("ns/web")
    assert [a[0] for a in env.client.actions] == ["update_status", "create"]
    assert await env.owner("192.0.2.1") is None


@pytest.mark.parametrize(
    ("error", "raised", "released"),
    [
        pytest.param(StatusError(409, "Conflict", "modified"), RequeueError, True,
                     id="conflict-releases-and-retries"),
        pytest.param(StatusError(422, "Invalid", "bad"), StatusError, True,
                     id="invalid-releases"),
        pytest.param(StatusError(404, "NotFound", "gone"), None, True,
                     id="deleted-meanwhile-releases"),
        pytest.param(StatusError(500, "InternalError", "?"), StatusError, False,
                     id="server-error-may-have-committed"),
        pytest.param(TransportError("reset"), TransportError, False,
                     id="lost-connection-may-have-committed"),
    ],
)
async def test_failed_status_write(env: Env, error: Exception,
                                   raised: type[Exception] | None, released: bool) -> None:
    env.cache(make_service("ns", "web"))
    env.client.fail_status.append(error)
    if raised is None:
        await env.ctrl.sync("ns/web")
    else:
        with pytest.raises(raised):
            await env.ctrl.sync("ns/web")
    # Leak rather than double-allocate: only a definite refusal gives the address back.
    assert await env.owner("192.0.2.0") == (None if released else "ns/web")
    assert env.client.events == []


async def test_conflict_only_releases_what_this_write_added(env: Env) -> None:
    env.cache(make_service("ns", "web", spec(ipFamilies=["IPv4", "IPv6"])))
    env.client.fail_status.append(StatusError(500, "InternalError", "?"))
    with pytest.raises(StatusError):
        await env.ctrl.sync("ns/web")
    # The first attempt's v4 address made it into status after all; v6 is missing.
    half = make_service("ns", "web", both(spec(ipFamilies=["IPv4", "IPv6"]),
                                          ingress("192.0.2.0")), rv="101")
    env.informer.indexer.upsert("ns/web", half)
    env.client.fail_status.append(StatusError(409, "Conflict", "modified"))
    with pytest.raises(RequeueError):
        await env.ctrl.sync("ns/web")
    assert await env.owner("192.0.2.0") == "ns/web", "held before this write: kept"
    assert await env.owner("2001:db8::1") is None, "added by the refused write: released"


async def test_exhausted_pool_records_a_warning_and_retries(env: Env) -> None:
    env.cache(make_service("ns", "a", annotate(pool="one"), rv="100"),
              make_service("ns", "b", annotate(pool="one"), rv="101"))
    await env.ctrl.sync("ns/a")
    for _ in range(2):
        with pytest.raises(RequeueError, match="AllocationFailed"):
            await env.ctrl.sync("ns/b")
    warning = env.client.events[1]
    assert warning["type"] == "Warning" and warning["reason"] == "AllocationFailed"
    assert warning["message"] == "no available IPv4 address in pool(s) one"
    assert warning["involvedObject"] == {"apiVersion": "v1", "kind": "Service", "name": "b",
                                         "namespace": "ns", "uid": "uid-b",
                                         "resourceVersion": "101"}
    assert warning["source"] == {"component": "svcnet-lb-ipam"}
    assert warning["count"] == 1
    assert warning["firstTimestamp"] == warning["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert env.client.actions[-1] == ("patch", "events", f"ns/{warning['metadata']['name']}")
    assert env.client.event_patches == [{"count": 2, "lastTimestamp": "2026-01-01T00:00:00Z"}]
    assert "ingress" not in env.written("ns/b")["status"]["loadBalancer"], "left pending"


async def test_requested_address_change_moves_the_service(env: Env) -> None:
    env.cache(make_service("ns", "web"))
    await env.ctrl.sync("ns/web")
    moved = copy.deepcopy(env.written("ns/web"))
    annotate(ips="192.0.2.3")(moved)
    env.cache(moved)
    await env.ctrl.sync("ns/web")
    assert env.written("ns/web")["status"]["loadBalancer"]["ingress"] == [
        {"ip": "192.0.2.3", "ipMode": "VIP"}]
    assert await env.owner("192.0.2.3") == "ns/web"
    assert await env.owner("192.0.2.0") is None, "released by the registry after the write"


async def test_service_that_stops_wanting_addresses_has_ours_cleared(env: Env) -> None:
    env.cache(make_service("ns", "web"))
    await env.ctrl.sync("ns/web")
    changed = copy.deepcopy(env.written("ns/web"))
    changed["spec"]["loadBalancerClass"] = "example.com/other"
    changed["status"]["loadBalancer"]["ingress"].append(FOREIGN)
    env.cache(changed)
    await env.ctrl.sync("ns/web")
    assert env.written("ns/web")["status"]["loadBalancer"]["ingress"] == [FOREIGN]
    assert await env.owner("192.0.2.0") is None


# -- handlers -------------------------------------------------------------------------------


async def drain(env: Env) -> list[str]:
    keys = []
    while len(env.ctrl.queue):
        key = await env.ctrl.queue.get()
        env.ctrl.queue.done(key)
        keys.append(key)
    return keys


async def test_freed_addresses_requeue_pending_services(env: Env) -> None:
    served = make_service("ns", "served", ingress("192.0.2.0"))
    pending = make_service("ns", "pending")
    other = make_service("ns", "other", spec(type="ClusterIP"))
    env.cache(served, pending, other)
    handler = env.ctrl.handler
    assert handler.on_update is not None and handler.on_delete is not None
    handler.on_update(served, served)
    assert await drain(env) == ["ns/served"], "no address freed: only the key itself"
    handler.on_delete(served)
    assert sorted(await drain(env)) == ["ns/pending", "ns/served"]
    handler.on_update(served, make_service("ns", "served", spec(type="ClusterIP")))
    assert sorted(await drain(env)) == ["ns/pending", "ns/served"]


# -- the whole loop -------------------------------------------------------------------------


async def test_full_loop_assigns_through_informer_queue_and_worker() -> None:
    clock = FakeClock()
    ipam = LoadBalancerIPAM(MemoryStore(), POOLS, clock=clock, rng=random.Random(1))
    client = FakeClient(ipam)
    client.seed(make_service("ns", "a"))
    client.seed(make_service("ns", "b", spec(type="ClusterIP")))
    informer = Informer(client, SERVICES, clock=clock)
    ctrl = LoadBalancerIPController(client, ipam, informer, clock=clock)
    done = asyncio.Event()
    informer.add_handler(_when(lambda: "ingress" in (
        (informer.get("ns/a") or {}).get("status", {}).get("loadBalancer", {})), done))
    ctrl.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=10)
        assert ctrl.has_synced()
    finally:
        await ctrl.stop()
    assert [a for a in client.actions if a[0] == "update_status"] == [
        ("update_status", "services", "ns/a")]
    assert ctrl.controller.stats.syncs >= 2


def _when(cond: Callable[[], bool], event: asyncio.Event) -> EventHandler:
    def check(*_: Obj) -> None:
        if cond():
            event.set()
    return EventHandler(on_add=check, on_update=check)
