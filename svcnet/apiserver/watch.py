"""Watch serving: ``GET <collection>?watch=true`` as a stream of watch events.

Theory of operation
-------------------
This follows ListResource and serveWatch in Kubernetes' apiserver
(staging/src/k8s.io/apiserver/pkg/endpoints/handlers/get.go and watch.go):

1. **Parameters, as Kubernetes decodes them.** ``timeoutSeconds`` is an int64 (Go's
   ``strconv.ParseInt``: ``nan``, ``inf``, ``1.5``, an empty value or one out of range are 400
   BadRequest with Go's message); the watch lasts ``timeoutSeconds`` times a second computed in
   int64 nanoseconds as Go does (so it wraps for huge values), 0 meaning the server's default,
   and a negative one ends the stream at once. ``resourceVersion`` must be what etcd's
   versioner accepts (``strconv.ParseUint``; ``-1`` or ``abc`` are 400 with its message), and
   ``resourceVersionMatch`` is forbidden for watch (422, validation.ValidateListOptions).
2. **Everything that can fail before the stream starts is done before the 200 is sent:** the
   initial list for ``resourceVersion`` 0/absent and opening the watch on the registry's watch
   cache. Their errors (a store that is unavailable, say) become an ordinary Status response.
3. **After the 200, an error is a watch event.** The stream carries an ``ERROR`` event whose
   object is the Status (410 Expired for a compacted revision, 503/504 for a store that stopped
   serving) and then ends, as Kubernetes' watch server sends errors. A watcher the cache cut
   loose for falling behind sees its stream simply end and re-watches.
4. **Batches.** Each wake-up takes every event buffered for this watcher, filters it through the
   label/field selectors (an object that stops matching is DELETED for this watcher, one that
   starts matching ADDED), and writes the shared, pre-serialized lines in one chunk; after a
   write the watcher lets ``FLUSH_INTERVAL`` pass so that events arriving under load share the
   next chunk.
   A BOOKMARK (with ``allowWatchBookmarks``) is sent after each quiet ``watch_bookmark_interval``.
   Table watches (``Accept: ...;as=Table``) render per watcher, the column definitions once.
   A client that prefers protobuf gets upstream's framing instead of lines: each event a 4-byte
   big-endian length and a ``WatchEvent`` (:meth:`svcnet.api.protobuf.Codec.watch_frame`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from svcnet.api import errors
from svcnet.api.errors import StatusError, bad_request
from svcnet.api.protobuf import STREAM_MEDIA_TYPE
from svcnet.apiserver import tables
from svcnet.apiserver.common import (
    Served,
    include_object,
    matches,
    protobuf_codec,
    query_bool,
    selectors_of,
    with_type,
)
from svcnet.apiserver.query import parse_int64
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.registry.watchcache import CachedEvent, Watcher
from svcnet.storage.interface import Compacted, EventType, Unavailable, WatchClosed
from svcnet.util import jsonbytes
from svcnet.util.memory import release_soon

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers

log = logging.getLogger(__name__)

Obj = dict[str, Any]

_UINT64_MAX = 2**64 - 1
_GO_UINT = re.compile(r"[0-9]+")
_NANOS_PER_SECOND = 1_000_000_000

FLUSH_INTERVAL = 0.02
"""Seconds a watcher waits after writing before it takes its next events.

The first event after a quiet spell goes out at once; under load, events that arrive within
this interval go out as one chunk: one TLS record and one send instead of one per event per
watcher, and an event loop that is not swamped by one wake-up per watcher per event (which
also starves a store watch that reads one message per loop iteration, as etcd's gRPC one does).
"""


def parse_timeout(request: web.Request, default: float) -> float:
    """The watch's duration in seconds from ``timeoutSeconds``, as Kubernetes computes it.

    Negative: the watch ends at once. A 400 for anything ``strconv.ParseInt(s, 10, 64)``
    refuses. ``time.Duration(n) * time.Second`` wraps around in int64, as in Go.
    """
    values = request.query.getall("timeoutSeconds", [])
    if not values:
        return default
    try:
        seconds = parse_int64(values[0])
    except ValueError as e:
        raise bad_request(str(e)) from None
    nanos = (seconds * _NANOS_PER_SECOND + 2**63) % 2**64 - 2**63
    return default if nanos == 0 else nanos / _NANOS_PER_SECOND


def parse_resource_version(request: web.Request) -> int:
    """``resourceVersion`` as etcd's versioner parses it ("" and "0" are 0)."""
    text = request.query.get("resourceVersion", "")
    if text in ("", "0"):
        return 0
    problem = ""
    if not _GO_UINT.fullmatch(text):
        problem = "invalid syntax"
    elif int(text) > _UINT64_MAX:
        problem = "value out of range"
    if problem:
        # Kubernetes answers this 500 (its storage error is not mapped); it is the client's.
        raise bad_request(errors.aggregate_message([errors.invalid(
            "resourceVersion", text,
            f"strconv.ParseUint: parsing {errors.go_quote(text)}: {problem}")]))
    return int(text)


def validate_watch_options(request: web.Request) -> None:
    """validation.ValidateListOptions for a watch."""
    if request.query.get("resourceVersionMatch", ""):
        raise errors.invalid_error("ListOptions", "", [errors.forbidden(
            "resourceVersionMatch", "resourceVersionMatch is forbidden for watch")],
            "meta.k8s.io")


def error_status(error: Exception, rv: int) -> StatusError | None:
    """The Status an error ending a started watch is sent as (None: just end the stream)."""
    if isinstance(error, Compacted):
        return StatusError(410, "Expired",
                           f"too old resource version: {rv} ({error.compact_revision})")
    if isinstance(error, Unavailable):
        return errors.store_unavailable(str(error), timeout=error.timeout)
    if isinstance(error, WatchClosed):
        return None
    return errors.internal_error("an unexpected error occurred")


class _Lines:
    """What one watcher is sent: its selectors, Table rendering, and the shared lines."""

    def __init__(self, handlers: Handlers, request: web.Request, served: Served) -> None:
        self.served = served
        self.clock = handlers.ctx.clock
        self.label_sel, self.field_sel = selectors_of(request, served)
        self.selective = self.label_sel is not None or self.field_sel is not None
        self.as_table = tables.table_accepted(request.headers.get("Accept", ""))
        self.include = include_object(request)
        self.first_table = True
        self.codec = None if self.as_table else protobuf_codec(request, served.api_version,
                                                                served.kind)
        self.content_type = "application/json" if self.codec is None else STREAM_MEDIA_TYPE

    def matches(self, obj: Obj) -> bool:
        return matches(obj, self.served, self.label_sel, self.field_sel)

    def line(self, event_type: str, obj: Obj, cached: CachedEvent | None = None) -> bytes:
        if self.as_table and event_type not in {"BOOKMARK", "ERROR"}:
            obj = tables.table_for(
                [obj], api_version=self.served.api_version, kind=self.served.kind,
                include_object=self.include, now=self.clock.now(),
                resource_version=str((obj.get("metadata") or {}).get("resourceVersion")),
                with_column_definitions=self.first_table)
            self.first_table = False
        elif self.codec is not None:
            codec = self.codec
            if cached is not None:
                return cached.encoded(f"protobuf:{event_type}", lambda: codec.watch_frame(
                    event_type, with_type(dict(cached.obj), self.served)))
            return codec.watch_frame(event_type, obj)
        elif cached is not None and not self.served.retyped:
            return cached.line(event_type)
        elif cached is not None:
            obj = with_type(dict(cached.obj), self.served)
        return jsonbytes.dumps({"type": event_type, "object": obj}) + b"\n"

    def event_line(self, ev: CachedEvent) -> bytes | None:
        """What this watcher is sent for ``ev``, if anything."""
        # A Table row is rendered from a copy: the decoded object is shared by all watchers.
        typed = with_type(dict(ev.obj), self.served) if self.as_table else {}
        if not self.selective:
            return self.line(ev.type.value, typed, ev)
        etype = selected_event(ev.type, self.matches(ev.obj),
                               ev.prev is not None and self.matches(ev.prev))
        return self.line(etype, typed, ev) if etype else None

    def bookmark(self, rv: int) -> bytes:
        return self.line("BOOKMARK", {"kind": self.served.kind,
                                      "apiVersion": self.served.api_version,
                                      "metadata": {"resourceVersion": str(rv)}})


def selected_event(event: EventType, now_match: bool, was_match: bool) -> str:
    """The event a selective watcher sees ("" for none): an object that starts matching is
    ADDED for it, one that stops matching is DELETED (the watch cache's filtering)."""
    if event == EventType.DELETED:
        return "DELETED" if now_match else ""
    if event == EventType.ADDED or (now_match and not was_match):
        return "ADDED" if now_match else ""
    if now_match:
        return "MODIFIED"
    return "DELETED" if was_match else ""


async def serve_watch(handlers: Handlers, request: web.Request, info: RequestInfo,
                      served: Served, user: User) -> web.StreamResponse:
    ctx = handlers.ctx
    await handlers.authorize(user, "watch", info, served, request=request)
    lines = _Lines(handlers, request, served)
    timeout = parse_timeout(request, ctx.default_watch_timeout)
    validate_watch_options(request)
    rv = parse_resource_version(request)
    bookmarks = query_bool(request, "allowWatchBookmarks")
    deadline = time.monotonic() + timeout

    # Before the 200: what fails here is an ordinary error response.
    initial: list[Obj] = []
    watcher: Watcher | None = None
    last_rv = rv
    if timeout > 0:
        if rv == 0:
            page = await served.registry.list(info.namespace)
            initial = [obj for obj in page.items if lines.matches(obj)]
            last_rv = int(page.resource_version)
        watcher = await served.registry.open_watch(info.namespace, last_rv)

    response = web.StreamResponse(status=200, headers={"Content-Type": lines.content_type})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        if initial:
            await response.write(b"".join(lines.line("ADDED", with_type(obj, served))
                                          for obj in initial))
        # A bookmark goes out after every quiet bookmark interval *of this watcher*: one whose
        # selector filters out every event still hears that its resourceVersion moved on.
        last_write = time.monotonic()
        while watcher is not None:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                break
            until_bookmark = max(0.0, last_write + ctx.watch_bookmark_interval - now)
            try:
                batch = await watcher.next_batch(min(until_bookmark or
                                                     ctx.watch_bookmark_interval, remaining))
            except Exception as e:
                status = error_status(e, rv)
                if status is not None and status.code == 500:
                    log.error("watch %s failed", request.path_qs, exc_info=e)
                if status is not None:
                    await response.write(lines.line("ERROR", status.to_status()))
                break
            if batch:
                last_rv = batch[-1].revision
                chunk = b"".join(out for out in map(lines.event_line, batch) if out is not None)
                if chunk:
                    await response.write(chunk)
                    last_write = time.monotonic()
                    # Let the next events gather (see FLUSH_INTERVAL); the buffer is bounded.
                    await asyncio.sleep(FLUSH_INTERVAL)
                    continue
            now = time.monotonic()
            if now - last_write >= ctx.watch_bookmark_interval:
                if bookmarks and now < deadline:
                    await response.write(lines.bookmark(last_rv))
                last_write = now
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: a normal end of a watch
    finally:
        if watcher is not None:
            watcher.close()
        # A watch holds its connection's buffers for long; when watches end (often many at
        # once), give the memory back rather than keep RSS at the peak.
        release_soon()
    return response
