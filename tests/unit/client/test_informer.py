"""Informer: the indexed cache (pure) and the reflector against the in-process fake API.

Reflector tests run the real RESTClient against :class:`FakeAPI` on a loopback TestServer, with a
:class:`SleepWatchingClock`: back-off and resync happen on the fake clock, and tests await
events (handler calls, open watches, sleeps) instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from svcnet.client.informer import (
    NAMESPACE_INDEX,
    Backoff,
    EventHandler,
    Indexer,
    Informer,
    InformerFactory,
    object_key,
    split_key,
)
from svcnet.client.rest import PODS, SERVICES, RESTClient
from tests.unit.client.fakeapi import FakeAPI, SleepWatchingClock, serve
from tests.waiting import LoopTurns

Obj = dict[str, Any]


def svc(ns: str, name: str, rv: str = "1", **labels: str) -> Obj:
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": rv,
                         "labels": labels}}


# -- keys and the indexer -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        pytest.param({"metadata": {"namespace": "ns", "name": "a"}}, "ns/a", id="namespaced"),
        pytest.param({"metadata": {"name": "node-1"}}, "node-1", id="cluster-scoped"),
        pytest.param({"metadata": {"namespace": "", "name": "x"}}, "x", id="empty-namespace"),
    ],
)
def test_object_key(obj: Obj, key: str) -> None:
    assert object_key(obj) == key
    assert object_key({"metadata": {"namespace": split_key(key)[0],
                                    "name": split_key(key)[1]}}) == key


def test_object_key_needs_a_name() -> None:
    with pytest.raises(ValueError, match="name"):
        object_key({"metadata": {}})


def test_indexer_keeps_indexes_in_step() -> None:
    idx = Indexer({"app": lambda o: [(o["metadata"].get("labels") or {}).get("app", "")]})
    idx.upsert("a/x", svc("a", "x", app="web"))
    idx.upsert("a/y", svc("a", "y", app="db"))
    idx.upsert("b/z", svc("b", "z", app="web"))
    assert idx.index_keys(NAMESPACE_INDEX, "a") == ["a/x", "a/y"]
    assert idx.index_keys("app", "web") == ["a/x", "b/z"]
    idx.upsert("a/x", svc("a", "x", app="db"))  # relabelled: leaves the "web" bucket
    assert idx.index_keys("app", "web") == ["b/z"]
    assert [o["metadata"]["name"] for o in idx.by_index("app", "db")] == ["x", "y"]
    assert idx.delete("a/y") is not None
    assert idx.delete("a/y") is None
    assert idx.index_keys("app", "db") == ["a/x"]
    assert idx.index_keys(NAMESPACE_INDEX, "nowhere") == []
    with pytest.raises(KeyError):
        idx.index_keys("no-such-index", "x")
    idx.add_index("name", lambda o: [o["metadata"]["name"]])
    assert idx.index_keys("name", "z") == ["b/z"]
    assert len(idx) == 2 and "b/z" in idx and sorted(idx.list_keys()) == ["a/x", "b/z"]


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        pytest.param(Backoff(), [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0], id="default"),
        pytest.param(Backoff(initial=1.0, cap=4.0), [1.0, 2.0, 4.0, 4.0], id="small-cap"),
    ],
)
def test_backoff_ladder(backoff: Backoff, expected: list[float]) -> None:
    assert [backoff.next_delay() for _ in expected] == pytest.approx(expected)
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(expected[0])


# -- the reflector --------------------------------------------------------------------------


class Recorder:
    """Handler that logs every notification and lets tests await a count of them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self._changed = asyncio.Condition()

    def handler(self) -> EventHandler:
        return EventHandler(on_add=lambda o: self._log("add", o),
                            on_update=lambda old, new: self._log(
                                "update" if old is not new else "resync", new),
                            on_delete=lambda o: self._log("delete", o))

    def _log(self, kind: str, obj: Obj) -> None:
        self.events.append((kind, object_key(obj), obj["metadata"]["resourceVersion"]))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[tuple[str, str, str]]:
        """The first ``count`` events, once there are that many."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.events) >= count),
                                   timeout=10)
        return self.events[:count]


@asynccontextmanager
async def running(fake: FakeAPI, clock: SleepWatchingClock, *,
                  client_options: dict[str, Any] | None = None, **kw: Any
                  ) -> AsyncIterator[tuple[Informer, Recorder, RESTClient]]:
    async with serve(fake, **(client_options or {})) as client:
        informer = Informer(client, SERVICES, clock=clock, **kw)
        rec = Recorder()
        informer.add_handler(rec.handler())
        informer.start()
        try:
            yield informer, rec, client
        finally:
            await informer.stop()


def names(informer: Informer) -> dict[str, str]:
    return {object_key(o): o["metadata"]["resourceVersion"] for o in informer.list()}


async def test_lists_then_watches_from_the_list_revision() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    fake.put("ns", "b")
    clock = SleepWatchingClock()
    async with running(fake, clock, page_size=1) as (informer, rec, _):
        await informer.wait_for_sync()
        assert informer.has_synced()
        assert names(informer) == {"ns/a": "101", "ns/b": "102"}
        assert sorted(await rec.wait_for(2)) == [("add", "ns/a", "101"), ("add", "ns/b", "102")]
        await fake.wait_for_watchers(after=102)
        fake.put("ns", "c")
        fake.put("ns", "a", spec={"type": "NodePort"})
        fake.remove("ns", "b")
        assert (await rec.wait_for(5))[2:] == [("add", "ns/c", "103"), ("update", "ns/a", "104"),
                                               ("delete", "ns/b", "105")]
        assert names(informer) == {"ns/a": "104", "ns/c": "103"}
        assert informer.last_sync_resource_version == "105"
        assert informer.relists == 1
        assert informer.by_index(NAMESPACE_INDEX, "ns")[0]["kind"] == "Service"


async def test_clean_watch_end_rewatches_from_the_last_revision() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    clock = SleepWatchingClock()
    async with running(fake, clock) as (informer, rec, _):
        await fake.wait_for_watchers(after=101)
        fake.put("ns", "b")
        await rec.wait_for(2)
        fake.end_watches()  # the server's timeoutSeconds
        await fake.wait_for_watchers(after=102)
        fake.put("ns", "c")
        await rec.wait_for(3)
        assert informer.relists == 1 and informer.watches == 2
        assert clock.sleeps == [], "a clean end is not a failure: no back-off"


async def test_expired_watch_relists_and_reports_the_differences() -> None:
    fake = FakeAPI()
    fake.put("ns", "keep")  # 101
    fake.put("ns", "change")  # 102
    fake.put("ns", "gone")  # 103
    clock = SleepWatchingClock()
    async with running(fake, clock) as (informer, rec, _):
        await rec.wait_for(3)
        await fake.wait_for_watchers(after=103)
        # The stream stalls; meanwhile the world changes and history is compacted away.
        fake.mute()
        fake.put("ns", "change", spec={"x": 1})  # 104
        fake.remove("ns", "gone")  # 105
        fake.put("ns", "new")  # 106
        fake.compact()
        fake.end_watches()
        events = await rec.wait_for(6)
        assert sorted(events[3:]) == [("add", "ns/new", "106"),
                                      ("delete", "ns/gone", "103"),
                                      ("update", "ns/change", "104")]
        assert names(informer) == {"ns/keep": "101", "ns/change": "104", "ns/new": "106"}
        assert informer.relists == 2
        await fake.wait_for_watchers(after=106)
        assert [q.get("resourceVersion") for q in fake.requests_of("watch")] == ["103", "103",
                                                                                  "106"]


async def test_expired_via_http_410_relists_too() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    fake.expire_with_http = True
    clock = SleepWatchingClock()
    async with running(fake, clock) as (informer, _, _):
        await fake.wait_for_watchers(after=101)
        fake.mute()
        fake.put("ns", "b")
        fake.compact()
        fake.end_watches()
        await fake.wait_for_watchers(after=102)
        assert informer.relists == 2
        assert names(informer) == {"ns/a": "101", "ns/b": "102"}


async def test_dropped_connection_rewatches_after_backoff_without_relisting() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    clock = SleepWatchingClock()
    async with running(fake, clock, backoff=Backoff(initial=2.0, cap=8.0)) as (informer, rec, _):
        await fake.wait_for_opened(1)
        fake.drop_watches()
        await clock.wait_for_sleeps(1)
        assert clock.sleeps == [2.0]
        fake.put("ns", "b")  # happens while we are disconnected
        clock.advance(2.0)
        await fake.wait_for_opened(2)
        assert fake.requests_of("watch")[-1]["resourceVersion"] == "101"
        assert (await rec.wait_for(2))[1] == ("add", "ns/b", "102"), "replayed from the backlog"
        assert informer.relists == 1
        # Progress resets the back-off: the next outage starts from the initial delay again.
        fake.drop_watches()
        await clock.wait_for_sleeps(2)
        assert clock.sleeps == [2.0, 2.0]
        clock.advance(2.0)
        await fake.wait_for_opened(3)
        assert fake.requests_of("watch")[-1]["resourceVersion"] == "102"


async def test_silent_watch_is_abandoned_and_rewatched_from_the_last_revision() -> None:
    """A stream that delivers nothing, not even a bookmark, for longer than the idle timeout
    (a hung server-side watch, a peer gone without FIN) is dead: the informer drops it, backs
    off on its clock and re-watches from its last resourceVersion, missing nothing."""
    fake = FakeAPI()
    fake.put("ns", "a")  # 101
    clock = SleepWatchingClock()
    # A tiny real idle timeout stands in for the 90 s default (the server's bookmark interval
    # plus a margin); the back-off after it runs on the fake clock.
    async with running(fake, clock, backoff=Backoff(initial=2.0, cap=8.0),
                       client_options={"watch_idle_timeout": 0.2}) as (informer, rec, _):
        await fake.wait_for_watchers(after=101)
        fake.mute()  # the stream goes silent; the change below is never sent on it
        fake.put("ns", "b")  # 102
        await clock.wait_for_sleeps(1)
        assert clock.sleeps == [2.0]
        clock.advance(2.0)
        await fake.wait_for_opened(2)
        assert fake.requests_of("watch")[-1]["resourceVersion"] == "101"
        assert (await rec.wait_for(2))[1] == ("add", "ns/b", "102"), "replayed from the backlog"
        assert informer.relists == 1


async def test_error_event_ends_the_watch_and_backs_off_before_rewatching() -> None:
    """An ERROR event that is not 410 (the store was unavailable under the watch) ends the
    watch; the informer backs off and re-watches from its last resourceVersion without a
    relist, as client-go's reflector does for a retriable watch error."""
    fake = FakeAPI()
    fake.put("ns", "a")  # 101
    clock = SleepWatchingClock()
    async with running(fake, clock, backoff=Backoff(initial=2.0, cap=8.0)) as (informer, rec, _):
        await fake.wait_for_watchers(after=101)
        fake.error_watches(503, "ServiceUnavailable", "etcd watch failed: UNAVAILABLE")
        await clock.wait_for_sleeps(1)
        assert clock.sleeps == [2.0]
        fake.put("ns", "b")  # 102, while the informer waits
        clock.advance(2.0)
        await fake.wait_for_opened(2)
        assert fake.requests_of("watch")[-1]["resourceVersion"] == "101"
        assert (await rec.wait_for(2))[1] == ("add", "ns/b", "102")
        assert informer.relists == 1


async def test_retry_after_of_an_unavailable_server_replaces_the_backoff() -> None:
    """A 503 with Retry-After (details.retryAfterSeconds) during a store outage: the informer
    comes back after that delay (plus jitter), not after a back-off grown during the outage."""
    fake = FakeAPI()
    fake.put("ns", "a")  # 101
    clock = SleepWatchingClock()
    async with running(fake, clock, backoff=Backoff(initial=8.0, cap=30.0)) as (informer, rec, _):
        await fake.wait_for_watchers(after=101)
        fake.fail_next(503, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "code": 503, "reason": "ServiceUnavailable",
                             "message": "etcd is down", "details": {"retryAfterSeconds": 1}})
        fake.end_watches()  # the next watch request gets the 503
        await clock.wait_for_sleeps(1)
        assert 1.0 <= clock.sleeps[0] <= 1.5
        fake.put("ns", "b")  # 102
        clock.advance(1.5)
        assert (await rec.wait_for(2))[1] == ("add", "ns/b", "102")
        assert informer.relists == 1


async def test_watch_closed_at_once_without_events_backs_off() -> None:
    fake = FakeAPI()
    fake.initial_bookmark = False
    clock = SleepWatchingClock()
    async with running(fake, clock, backoff=Backoff(initial=1.0, cap=8.0)) as (informer, _, _):
        for n in range(1, 4):
            await fake.wait_for_opened(n)
            fake.end_watches()
            await clock.wait_for_sleeps(n)
            clock.advance(clock.sleeps[-1])
        assert clock.sleeps == [1.0, 2.0, 4.0]
        assert informer.relists == 1


async def test_repeated_failures_back_off_exponentially() -> None:
    fake = FakeAPI()
    clock = SleepWatchingClock()
    for _ in range(3):
        fake.fail_next(500, {"kind": "Status", "code": 500, "message": "etcd is sad"})
    async with running(fake, clock, backoff=Backoff(initial=1.0, cap=3.0)) as (informer, _, _):
        for n, delay in enumerate([1.0, 2.0, 3.0], start=1):
            await clock.wait_for_sleeps(n)
            assert not informer.has_synced()
            clock.advance(delay)
        await informer.wait_for_sync()
        assert clock.sleeps == [1.0, 2.0, 3.0]
        assert len(fake.requests_of("get")) == 4


async def test_resync_redelivers_every_object_as_an_update_to_itself() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    fake.put("ns", "b")
    clock = SleepWatchingClock()
    async with running(fake, clock, resync_period=30.0) as (informer, rec, _):
        await informer.wait_for_sync()
        await rec.wait_for(2)
        await clock.wait_for_sleeps(1)
        clock.advance(30.0)
        assert sorted((await rec.wait_for(4))[2:]) == [("resync", "ns/a", "101"),
                                                       ("resync", "ns/b", "102")]


async def test_a_resync_of_many_objects_gives_the_loop_turns() -> None:
    fake = FakeAPI()
    for i in range(1200):
        fake.put("ns", f"s{i}")
    clock = SleepWatchingClock()
    async with running(fake, clock) as (informer, _, _), LoopTurns() as turns:
        await informer.wait_for_sync()
        seen: list[int] = []
        asleep = clock.sleeping()
        informer.add_handler(EventHandler(on_update=lambda old, new: seen.append(turns.count)),
                             resync_period=30.0)

        async def until(done: Callable[[], bool]) -> None:
            while not done():
                await asyncio.sleep(0)

        # The resync loop, now with a period, asleep on the clock (not only about to be).
        await asyncio.wait_for(until(lambda: clock.sleeping() > asleep), 10)
        clock.advance(30.0)
        await asyncio.wait_for(until(lambda: len(seen) >= 1200), 10)
    # 1,200 objects in chunks of aio.TURN_EVERY (500): the loop turned twice in between.
    assert len(set(seen)) == 3, sorted(set(seen))


async def test_late_handler_gets_the_cache_as_adds_and_bad_handlers_are_contained() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    clock = SleepWatchingClock()
    async with running(fake, clock) as (informer, _, _):
        await informer.wait_for_sync()

        def explode(obj: Obj) -> None:
            raise RuntimeError("handler bug")

        informer.add_handler(EventHandler(on_add=explode))  # logged, not raised
        late = Recorder()
        informer.add_handler(late.handler())
        assert await late.wait_for(1) == [("add", "ns/a", "101")]
        await fake.wait_for_watchers(after=101)
        fake.put("ns", "b")
        assert (await late.wait_for(2))[1] == ("add", "ns/b", "102")


def test_for_keys_handler_enqueues_keys() -> None:
    keys: list[str] = []
    handler = EventHandler.for_keys(keys.append)
    assert handler.on_add is not None
    assert handler.on_update is not None
    assert handler.on_delete is not None
    handler.on_add(svc("a", "x"))
    handler.on_update(svc("a", "x"), svc("a", "x", "2"))
    handler.on_delete(svc("b", "y"))
    assert keys == ["a/x", "a/x", "b/y"]


async def test_stop_closes_the_watch() -> None:
    fake = FakeAPI()
    clock = SleepWatchingClock()
    async with serve(fake) as client:
        informer = Informer(client, SERVICES, clock=clock)
        informer.start()
        await fake.wait_for_watchers()
        await informer.stop()
        await informer.stop()  # idempotent


async def test_each_handler_resyncs_at_its_own_period() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    fake.put("ns", "b")
    clock = SleepWatchingClock()
    async with serve(fake) as client:
        informer = Informer(client, SERVICES, clock=clock, resync_period=30.0)
        default, fast, never = Recorder(), Recorder(), Recorder()
        informer.add_handler(default.handler())  # the informer's own 30 s
        informer.add_handler(fast.handler(), resync_period=10.0)
        informer.add_handler(never.handler(), resync_period=0)
        informer.start()
        try:
            for rec in (default, fast, never):
                await rec.wait_for(2)
            for tick in (1, 2, 3):
                await clock.wait_for_sleeps(tick)
                assert clock.sleeps[-1] == 10.0  # woken at the shortest period
                clock.advance(10.0)
                await fast.wait_for(2 + 2 * tick)
                # Delivered in the same pass as fast's: default's count is final here.
                assert len(default.events) == (4 if tick == 3 else 2)
            assert {kind for kind, _, _ in fast.events[2:]} == {"resync"}
            assert sorted(default.events[2:]) == [("resync", "ns/a", "101"),
                                                  ("resync", "ns/b", "102")]
            assert len(never.events) == 2
        finally:
            await informer.stop()


async def test_a_shared_informer_runs_until_its_last_user_stops() -> None:
    fake = FakeAPI()
    clock = SleepWatchingClock()
    async with serve(fake) as client:
        informer = Informer(client, SERVICES, clock=clock)
        rec = Recorder()
        informer.add_handler(rec.handler())
        first = informer.start()
        assert informer.start() is first  # a second user: the same run
        await fake.wait_for_watchers()
        await informer.stop()  # one user left: still watching
        fake.put("ns", "a")
        assert await rec.wait_for(1) == [("add", "ns/a", "101")]
        assert not first.done()
        await informer.stop()
        assert first.done()


def test_an_index_may_be_asked_for_twice_but_not_redefined() -> None:
    idx = Indexer()

    def by_app(obj: Obj) -> list[str]:
        return [str(obj["metadata"]["labels"].get("app", ""))]

    idx.add_index("app", by_app)
    idx.upsert("ns/a", svc("ns", "a", app="web"))
    idx.add_index("app", by_app)  # a second controller sharing the informer: no change
    assert idx.index_keys("app", "web") == ["ns/a"]
    with pytest.raises(ValueError, match="'app' already exists"):
        idx.add_index("app", lambda obj: [])


async def test_factory_hands_out_one_informer_per_resource_and_selectors() -> None:
    fake = FakeAPI()
    async with serve(fake) as client:
        factory = InformerFactory(client)
        services = factory.informer(SERVICES, name="services")
        assert factory.informer(SERVICES) is services
        assert factory.informer(SERVICES, label_selector="app=web") is not services
        assert factory.informer(SERVICES, namespace="ns") is not services
        assert factory.informer(PODS) is not services
        assert InformerFactory.of(factory, client) is factory
        assert InformerFactory.of(None, client) is not factory
