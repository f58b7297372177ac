"""An in-process fake API server for one resource (core/v1 Services), for client tests.

It serves list (with limit/continue) and watch (from a resourceVersion, with bookmarks) from an
in-memory dict and an event log, the way kube-apiserver does, and lets a test misbehave on cue:

* :meth:`FakeAPI.compact` forgets history, so a watch from an older resourceVersion gets an
  ``ERROR`` event with a 410 Status (as kube-apiserver sends it), or an HTTP 410 with
  ``expire_with_http``;
* :meth:`FakeAPI.drop_watches` aborts every open watch connection mid-stream;
* :meth:`FakeAPI.end_watches` ends them cleanly (as timeoutSeconds does);
* :meth:`FakeAPI.error_watches` sends every open watch an ``ERROR`` event with a Status (as
  the server does when its store fails under a watch), which ends it;
* :meth:`FakeAPI.fail_next` answers the next request with a canned status and body.

Writes are made in Python (:meth:`put`, :meth:`remove`); each takes the next revision. Tests wait
on :meth:`wait_for_watchers` rather than sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from svcnet.client.rest import RESTClient
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]


@dataclass
class _Watcher:
    after: int
    queue: asyncio.Queue[tuple[str, Obj] | str] = field(default_factory=asyncio.Queue)


@dataclass
class Canned:
    status: int
    body: bytes
    content_type: str = "application/json"


class FakeAPI:
    def __init__(self) -> None:
        self.rev = 100
        self.objects: dict[str, Obj] = {}
        self.log: list[tuple[int, str, Obj]] = []
        self.compacted = 0
        self.expire_with_http = False
        self.expire_continue = False
        self.watchers: list[_Watcher] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.content_types: list[str] = []
        self._canned: list[Canned] = []
        self.muted = False
        self.initial_bookmark = True
        self.opened = 0
        """Watch streams opened so far."""
        self._watchers_changed = asyncio.Condition()

    # -- test controls ----------------------------------------------------------------------

    def put(self, namespace: str, name: str, **fields: Any) -> Obj:
        """Create or replace an object; returns it with its new resourceVersion."""
        self.rev += 1
        key = f"{namespace}/{name}"
        etype = "MODIFIED" if key in self.objects else "ADDED"
        obj: Obj = {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"namespace": namespace, "name": name,
                                 "uid": f"uid-{name}", "resourceVersion": str(self.rev)},
                    **fields}
        self.objects[key] = obj
        self._publish(etype, obj)
        return obj

    def remove(self, namespace: str, name: str) -> None:
        self.rev += 1
        obj = json.loads(json.dumps(self.objects.pop(f"{namespace}/{name}")))
        obj["metadata"]["resourceVersion"] = str(self.rev)
        self._publish("DELETED", obj)

    def mute(self) -> None:
        """Stop delivering events to open watches (they are still logged): a stalled stream."""
        self.muted = True

    def compact(self) -> None:
        """Forget all history: watches from any past revision now get 410."""
        self.compacted = self.rev
        self.log.clear()

    def drop_watches(self) -> None:
        for w in self.watchers:
            w.queue.put_nowait("drop")

    def end_watches(self) -> None:
        for w in self.watchers:
            w.queue.put_nowait("end")

    def error_watches(self, code: int, reason: str, message: str) -> None:
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                  "reason": reason, "message": message}
        for w in self.watchers:
            w.queue.put_nowait(("ERROR", status))
            w.queue.put_nowait("end")

    def fail_next(self, status: int, body: Any, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self._canned.append(Canned(status, raw, content_type))

    async def wait_for_watchers(self, count: int = 1, *, after: int | None = None) -> None:
        """Until ``count`` watches are open (from revision ``after``, if given)."""
        def ready() -> bool:
            return sum(1 for w in self.watchers
                       if after is None or w.after == after) >= count
        async with self._watchers_changed:
            await asyncio.wait_for(self._watchers_changed.wait_for(ready), timeout=10)

    async def wait_for_opened(self, count: int) -> None:
        """Until ``count`` watch streams have been opened in total."""
        async with self._watchers_changed:
            await asyncio.wait_for(self._watchers_changed.wait_for(lambda: self.opened >= count),
                                   timeout=10)

    def requests_of(self, kind: str) -> list[dict[str, str]]:
        """The query parameters of every list (``kind="list"``) or watch request."""
        return [q for k, _, q in self.requests if k == kind]

    def _publish(self, etype: str, obj: Obj) -> None:
        self.log.append((self.rev, etype, obj))
        if self.muted:
            return
        for w in self.watchers:
            w.queue.put_nowait((etype, obj))

    # -- the app ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/v1/services", self.collection)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/services", self.collection)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/services/{name}", self.item)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/services/{name}/{sub}", self.item)
        return app

    def _record(self, request: web.Request, kind: str) -> None:
        self.requests.append((kind, request.path, dict(request.query)))
        self.headers.append(dict(request.headers))
        self.content_types.append(request.content_type)

    def _take_canned(self) -> web.Response | None:
        if not self._canned:
            return None
        c = self._canned.pop(0)
        return web.Response(status=c.status, body=c.body, content_type=c.content_type)

    async def item(self, request: web.Request) -> web.StreamResponse:
        self._record(request, request.method.lower())
        if request.can_read_body:
            self.bodies.append(json.loads(await request.read()))
        canned = self._take_canned()
        if canned is not None:
            return canned
        key = f"{request.match_info['ns']}/{request.match_info['name']}"
        obj = self.objects.get(key)
        if obj is None:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "NotFound", "code": 404,
                                      "message": f'services "{request.match_info["name"]}" '
                                                 "not found"}, status=404)
        return web.json_response(obj)

    async def collection(self, request: web.Request) -> web.StreamResponse:
        watching = request.query.get("watch") == "true"
        self._record(request, "watch" if watching else request.method.lower())
        if request.method == "POST":
            self.bodies.append(json.loads(await request.read()))
        canned = self._take_canned()
        if canned is not None:
            return canned
        if watching:
            return await self.watch(request)
        return self.list(request)

    def list(self, request: web.Request) -> web.Response:
        ns = request.match_info.get("ns", "")
        keys = sorted(k for k in self.objects if not ns or k.startswith(f"{ns}/"))
        limit = int(request.query.get("limit", "0") or 0)
        token = request.query.get("continue", "")
        rv = self.rev
        if token:
            if self.expire_continue:
                return _status(410, "Expired", "The provided continue parameter is too old")
            snapshot, _, start = token.partition(":")
            rv = int(snapshot)
            keys = [k for k in keys if k > start]
        meta: Obj = {"resourceVersion": str(rv)}
        if limit and len(keys) > limit:
            keys = keys[:limit]
            meta["continue"] = f"{rv}:{keys[-1]}"
        items = []
        for k in keys:
            item = json.loads(json.dumps(self.objects[k]))
            del item["apiVersion"], item["kind"]  # as kube-apiserver strips them from items
            items.append(item)
        return web.json_response({"kind": "ServiceList", "apiVersion": "v1", "metadata": meta,
                                  "items": items})

    async def watch(self, request: web.Request) -> web.StreamResponse:
        after = int(request.query.get("resourceVersion", "0") or 0)
        if after and after < self.compacted and self.expire_with_http:
            return _status(410, "Expired", f"too old resource version: {after}")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def send(etype: str, obj: Obj) -> None:
            await resp.write(json.dumps({"type": etype, "object": obj}).encode() + b"\n")

        if after and after < self.compacted:
            await send("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "Expired", "code": 410,
                                 "message": f"too old resource version: {after} "
                                            f"({self.compacted})"})
            await resp.write_eof()
            return resp
        self.muted = False  # a new connection is a fresh stream
        watcher = _Watcher(after)
        # Subscribe and replay without awaiting in between, so no event falls in a gap.
        self.watchers.append(watcher)
        self.opened += 1
        backlog = [(t, o) for r, t, o in self.log if r > after] if after else []
        for etype, obj in backlog:
            watcher.queue.put_nowait((etype, obj))
        async with self._watchers_changed:
            self._watchers_changed.notify_all()
        try:
            if self.initial_bookmark and request.query.get("allowWatchBookmarks") == "true":
                await send("BOOKMARK", {"kind": "Service", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": str(after or self.rev)}})
            while True:
                item = await watcher.queue.get()
                if item == "drop":
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if item == "end":
                    break
                assert not isinstance(item, str)
                await send(*item)
            await resp.write_eof()
            return resp
        finally:
            self.watchers.remove(watcher)


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "reason": reason, "code": code, "message": message}, status=code)


@asynccontextmanager
async def serve(fake: FakeAPI, *, token: str | None = "t0ken",
                **client_options: Any) -> AsyncIterator[RESTClient]:
    """Run ``fake`` on a loopback TestServer; yield a RESTClient for it; tear both down."""
    server = TestServer(fake.app())
    await server.start_server()
    client = RESTClient(str(server.make_url("")), token=token, **client_options)
    try:
        yield client
    finally:
        fake.end_watches()
        await client.close()
        await server.close()


class SleepWatchingClock(FakeClock):
    """A FakeClock that lets a test wait until code under test is asleep on it."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []
        self._changed = asyncio.Condition()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        async with self._changed:
            self._changed.notify_all()
        await super().sleep(seconds)

    async def wait_for_sleeps(self, count: int) -> None:
        """Until ``sleep`` has been called ``count`` times in total."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.sleeps) >= count),
                                   timeout=10)
