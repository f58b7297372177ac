"""Watch serving through the real API server (in process, TLS on a loopback port).

The store is a MemoryStore that can be told to fail like an unreachable etcd
(:class:`FlakyStore`), before a watch starts or in the middle of one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from svcnet.apiserver.handlers import Handlers
from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.registry.watchcache import WatchCache
from svcnet.storage.interface import Unavailable, WatchEvent
from svcnet.storage.memory import MemoryStore

Obj = dict[str, Any]
SVC = "/api/v1/namespaces/default/services"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class FlakyStore(MemoryStore):
    """A MemoryStore whose reads, or whose watches' next event, raise Unavailable on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.reads_fail = False
        self.watch_fails: Unavailable | None = None

    def _check(self) -> None:
        if self.reads_fail:
            raise Unavailable("etcd is unreachable")

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> Any:
        self._check()
        return await super().list(prefix, revision=revision, limit=limit,
                                  start_after=start_after)

    async def current_revision(self) -> int:
        self._check()
        return await super().current_revision()

    async def watch(self, prefix: str, after_revision: int,
                    ) -> AsyncGenerator[WatchEvent, None]:
        async for event in super().watch(prefix, after_revision):
            if self.watch_fails is not None:
                raise self.watch_fails
            yield event


@dataclass
class Api:
    server: APIServer
    handlers: Handlers
    store: FlakyStore
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.server.url

    async def call(self, method: str, path: str, body: Obj | None = None,
                   content_type: str = "application/json") -> Obj:
        async with self.session.request(method, self.url + path, json=body,
                                        headers={"Content-Type": content_type}) as resp:
            payload: Obj = await resp.json()
            assert resp.status < 300, payload
            return payload

    async def create(self, name: str, labels: dict[str, str] | None = None) -> Obj:
        return await self.call("POST", SVC, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"ports": [{"port": 80}]}})

    async def label(self, name: str, labels: dict[str, str | None]) -> Obj:
        return await self.call("PATCH", f"{SVC}/{name}", {"metadata": {"labels": labels}},
                               "application/merge-patch+json")


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    captured: list[Handlers] = []
    original = APIServer._app

    def capture(self: APIServer, handlers: Handlers) -> Any:
        captured.append(handlers)
        return original(self, handlers)

    monkeypatch.setattr(APIServer, "_app", capture)
    store = FlakyStore()
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"), store=store)
    await server.start()
    cfg = load_kubeconfig(server.kubeconfig_path)
    session = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {cfg.token}"},
        connector=aiohttp.TCPConnector(ssl=cfg.ssl_context()),
        timeout=aiohttp.ClientTimeout(total=20))
    try:
        yield Api(server, captured[0], store, session)
    finally:
        store.reads_fail = False
        await session.close()
        await server.stop()


class Stream:
    """One open watch: its HTTP status and its events as they arrive."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self, timeout: float = 5.0) -> Obj | None:
        """The next event, or None when the server ended the stream."""
        line = await asyncio.wait_for(self.resp.content.readline(), timeout)
        return json.loads(line) if line else None

    async def rest(self, timeout: float = 5.0) -> list[Obj]:
        """Every event until the server ends the stream (fails if it does not in time)."""
        events = []
        while (event := await self.next(timeout)) is not None:
            events.append(event)
        return events


async def open_watch(api: Api, query: str, headers: dict[str, str] | None = None,
                     ) -> aiohttp.ClientResponse:
    return await api.session.get(f"{api.url}{SVC}?watch=true&{query}", headers=headers)


def summary(events: list[Obj]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


# -- existing behaviour, through the watch cache -------------------------------------------


async def test_label_selector_turns_entering_and_leaving_into_added_and_deleted(api: Api
                                                                                ) -> None:
    await api.create("a", {"app": "x"})
    await api.create("b")
    async with await open_watch(api, "labelSelector=app%3Dx&timeoutSeconds=30") as resp:
        stream = Stream(resp)
        assert summary([await stream.next()]) == [("ADDED", "a")]  # type: ignore[list-item]
        await api.label("b", {"app": "x"})
        await api.label("a", {"app": None})
        await api.label("b", {"more": "1"})
        events = [await stream.next() for _ in range(3)]
        assert summary(events) == [  # type: ignore[arg-type]
            ("ADDED", "b"), ("DELETED", "a"), ("MODIFIED", "b")]
        assert all(e["object"]["kind"] == "Service" for e in events)  # type: ignore[index]


async def test_resume_from_a_resource_version_replays_what_came_after(api: Api) -> None:
    first = await api.create("r1")
    await api.create("r2")
    await api.label("r1", {"x": "1"})
    rv = first["metadata"]["resourceVersion"]
    async with await open_watch(api, f"resourceVersion={rv}&timeoutSeconds=1") as resp:
        events = await Stream(resp).rest()
    assert summary(events) == [("ADDED", "r2"), ("MODIFIED", "r1")]
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) > int(rv)


async def test_table_watch_sends_column_definitions_once(api: Api) -> None:
    created = await api.create("t1")
    rv = created["metadata"]["resourceVersion"]
    async with await open_watch(api, f"resourceVersion={rv}&timeoutSeconds=30",
                                {"Accept": TABLE}) as resp:
        stream = Stream(resp)
        await api.create("t2")
        await api.create("t3")
        first, second = await stream.next(), await stream.next()
    assert first is not None and second is not None
    assert first["object"]["kind"] == "Table" and first["object"]["columnDefinitions"]
    assert not second["object"].get("columnDefinitions")
    assert [r["cells"][0] for e in (first, second) for r in e["object"]["rows"]] == [
        "t2", "t3"]


async def test_bookmarks_after_a_quiet_interval_carry_the_last_resource_version(api: Api
                                                                                 ) -> None:
    api.handlers.ctx.watch_bookmark_interval = 0.2
    created = await api.create("b1")
    rv = created["metadata"]["resourceVersion"]
    async with await open_watch(api, f"resourceVersion={rv}&allowWatchBookmarks=true"
                                     "&timeoutSeconds=30") as resp:
        event = await Stream(resp).next()
    assert event is not None
    assert event["type"] == "BOOKMARK"
    assert event["object"]["metadata"]["resourceVersion"] == rv


async def test_a_watch_whose_selector_filters_out_every_event_still_gets_bookmarks(
        api: Api) -> None:
    """Other objects keep changing, none matches: the watcher still hears, once per quiet
    bookmark interval of its own, that its resourceVersion moved on (else its client takes
    the silent watch for dead and re-watches from a revision that never advances)."""
    api.handlers.ctx.watch_bookmark_interval = 0.3
    created = await api.create("other")
    rv = int(created["metadata"]["resourceVersion"])

    async def churn() -> None:
        for n in range(30):
            await api.label("other", {"n": str(n)})
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(churn())
    seen: list[Obj] = []
    try:
        async with await open_watch(api, f"resourceVersion={rv}&allowWatchBookmarks=true"
                                         "&labelSelector=app%3Dnone&timeoutSeconds=30") as resp:
            stream = Stream(resp)
            # Bookmarks only, one per quiet interval at most 1.5 s apart; on a loaded machine
            # the first may come before the first write lands, so look at a few.
            while len(seen) < 5 and (
                    not seen or int(seen[-1]["object"]["metadata"]["resourceVersion"]) <= rv):
                event = await stream.next(timeout=1.5)
                assert event is not None and event["type"] == "BOOKMARK", event
                seen.append(event)
    finally:
        await writer
    assert int(seen[-1]["object"]["metadata"]["resourceVersion"]) > rv, seen


async def test_a_compacted_resource_version_is_an_expired_error_event(api: Api) -> None:
    # 410 is for a revision older than the watch cache holds (as with Kubernetes' cacher) and
    # compacted in the store: keep a small window so three writes leave the first behind.
    registry = api.server.registries["services"]
    registry.watch_cache = WatchCache(registry.store, registry.prefix, registry.decode,
                                      history=2)
    first = await api.create("c1")
    for i in range(3):
        await api.label("c1", {"i": str(i)})
    await api.store.compact(await api.store.current_revision())
    rv = first["metadata"]["resourceVersion"]
    async with await open_watch(api, f"resourceVersion={rv}&timeoutSeconds=30") as resp:
        assert resp.status == 200
        events = await Stream(resp).rest()
    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in events] == [
        ("ERROR", 410, "Expired")]
    assert events[0]["object"]["message"].startswith(f"too old resource version: {rv} (")


# -- finding 2: errors before and after the stream starts -----------------------------------


async def test_store_unavailable_before_the_stream_is_a_status_response(api: Api) -> None:
    api.store.reads_fail = True
    async with await open_watch(api, "timeoutSeconds=30") as resp:
        body = await resp.read()
        status = resp.status
    assert status >= 500
    doc = json.loads(body)  # one Status document, not a stream with a response inside
    assert doc["kind"] == "Status" and doc["code"] == status
    assert b"HTTP/1.1" not in body


@pytest.mark.parametrize(("timeout", "code", "reason"), [
    (False, 503, "ServiceUnavailable"), (True, 504, "Timeout")])
async def test_store_unavailable_after_the_stream_started_is_an_error_event(
        api: Api, timeout: bool, code: int, reason: str) -> None:
    created = await api.create("u1")
    rv = created["metadata"]["resourceVersion"]
    async with await open_watch(api, f"resourceVersion={rv}&timeoutSeconds=30") as resp:
        assert resp.status == 200
        stream = Stream(resp)
        await api.label("u1", {"before": "1"})
        assert summary([await stream.next()]) == [("MODIFIED", "u1")]  # type: ignore[list-item]
        api.store.watch_fails = Unavailable("etcd is unreachable", timeout=timeout)
        await api.label("u1", {"after": "1"})
        rest = await stream.rest()
    assert [(e["type"], e["object"]["kind"], e["object"]["code"], e["object"]["reason"])
            for e in rest] == [("ERROR", "Status", code, reason)]


async def test_after_a_store_failure_the_next_watch_works_again(api: Api) -> None:
    created = await api.create("n1")
    rv = created["metadata"]["resourceVersion"]
    api.store.watch_fails = Unavailable("etcd is unreachable")
    async with await open_watch(api, f"resourceVersion={rv}&timeoutSeconds=30") as resp:
        await api.label("n1", {"a": "1"})
        assert [e["type"] for e in await Stream(resp).rest()] == ["ERROR"]
    api.store.watch_fails = None
    async with await open_watch(api, f"resourceVersion={rv}&timeoutSeconds=1") as resp:
        stream = Stream(resp)
        await api.label("n1", {"b": "1"})
        events = await stream.rest()
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED"]


@pytest.mark.parametrize(("value", "message"), [
    ("-1", 'resourceVersion: Invalid value: "-1": strconv.ParseUint: parsing "-1": '
           "invalid syntax"),
    ("abc", 'resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": '
            "invalid syntax"),
    ("18446744073709551616", 'resourceVersion: Invalid value: "18446744073709551616": '
     'strconv.ParseUint: parsing "18446744073709551616": value out of range'),
])
async def test_a_malformed_resource_version_is_a_bad_request(api: Api, value: str,
                                                             message: str) -> None:
    async with await open_watch(api, f"resourceVersion={value}") as resp:
        doc = await resp.json()
        assert resp.status == 400
    assert (doc["reason"], doc["message"]) == ("BadRequest", message)


async def test_resource_version_match_is_forbidden_for_watch(api: Api) -> None:
    async with await open_watch(api, "resourceVersion=1&resourceVersionMatch=NotOlderThan"
                                ) as resp:
        doc = await resp.json()
        assert resp.status == 422
    assert doc["reason"] == "Invalid"
    assert doc["message"] == ('ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: '
                              "Forbidden: resourceVersionMatch is forbidden for watch")
    assert doc["details"]["causes"] == [{"reason": "FieldValueForbidden",
                                         "message": "Forbidden: resourceVersionMatch is "
                                                    "forbidden for watch",
                                         "field": "resourceVersionMatch"}]


# -- finding 7: timeoutSeconds is an int64 --------------------------------------------------


@pytest.mark.parametrize(("value", "problem"), [
    ("nan", "invalid syntax"), ("inf", "invalid syntax"), ("-inf", "invalid syntax"),
    ("1.5", "invalid syntax"), ("", "invalid syntax"), ("1_0", "invalid syntax"),
    (" 5", "invalid syntax"),
    ("9223372036854775808", "value out of range"),
    ("-9223372036854775809", "value out of range"),
])
async def test_timeout_seconds_that_is_no_int64_is_a_bad_request(api: Api, value: str,
                                                                 problem: str) -> None:
    async with await api.session.get(f"{api.url}{SVC}", params={
            "watch": "true", "timeoutSeconds": value}) as resp:
        doc = await resp.json()
        assert resp.status == 400
    assert doc["reason"] == "BadRequest"
    assert doc["message"] == f"strconv.ParseInt: parsing {json.dumps(value)}: {problem}"


@pytest.mark.parametrize("value", [
    "-1",
    # time.Duration(n) * time.Second wraps around to a negative duration in Go's int64.
    "9223372036854775807", "10000000000"])
async def test_timeout_seconds_that_is_negative_in_go_ends_the_watch_at_once(api: Api,
                                                                              value: str
                                                                              ) -> None:
    await api.create("e1")
    async with await open_watch(api, f"timeoutSeconds={value}") as resp:
        assert resp.status == 200
        assert await Stream(resp).rest(timeout=5) == []


@pytest.mark.parametrize("value", [
    "0", "9223372036",
    # -2**63 s is 0 ns once wrapped: the default timeout, as in Go.
    "-9223372036854775808"])
async def test_timeout_seconds_that_is_zero_or_positive_in_go_keeps_the_watch(api: Api,
                                                                              value: str
                                                                              ) -> None:
    rv = (await api.create("k1"))["metadata"]["resourceVersion"]
    async with await open_watch(api, f"resourceVersion={rv}&timeoutSeconds={value}") as resp:
        stream = Stream(resp)
        await api.label("k1", {"x": "1"})
        assert summary([await stream.next()]) == [("MODIFIED", "k1")]  # type: ignore[list-item]
        with pytest.raises(TimeoutError):  # still open: no end of stream
            await stream.next(timeout=0.5)
