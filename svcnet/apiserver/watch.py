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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from svcnet.api import errors
from svcnet.api.errors import StatusError, bad_request
from svcnet.apiserver import tables
from svcnet.apiserver.handlers import (
    Served,
    _include_object,
    _matches,
    _query_bool,
    _selectors,
    _with_type,
)
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.registry.watchcache import CachedEvent, Watcher
from svcnet.storage.interface import Compacted, EventType, Unavailable, WatchClosed
from svcnet.util.memory import release_soon

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers

log = logging.getLogger(__name__)

Obj = dict[str, Any]

_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
_GO_INT = re.compile(r"[+-]?[0-9]+")
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
    text = values[0]
    if not _GO_INT.fullmatch(text):
        raise bad_request(f"strconv.ParseInt: parsing {errors.go_quote(text)}: invalid syntax")
    seconds = int(text)
    if not -_INT64_MAX - 1 <= seconds <= _INT64_MAX:
        raise bad_request(f"strconv.ParseInt: parsing {errors.go_quote(text)}: "
                          "value out of range")
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
        if error.timeout:
            return StatusError(504, "Timeout", str(error))
        return StatusError(503, "ServiceUnavailable", str(error))
    if isinstance(error, WatchClosed):
        return None
    return errors.internal_error("an unexpected error occurred")


async def serve_watch(handlers: Handlers, request: web.Request, info: RequestInfo,
                      served: Served, user: User) -> web.StreamResponse:
    ctx = handlers.ctx
    await handlers._authorize(user, "watch", info, served)
    label_sel, field_sel = _selectors(request, served)
    timeout = parse_timeout(request, ctx.default_watch_timeout)
    validate_watch_options(request)
    rv = parse_resource_version(request)
    as_table = tables.table_accepted(request.headers.get("Accept", ""))
    include = _include_object(request)
    bookmarks = _query_bool(request, "allowWatchBookmarks")
    selective = label_sel is not None or field_sel is not None
    deadline = time.monotonic() + timeout

    # Before the 200: what fails here is an ordinary error response.
    initial: list[Obj] = []
    watcher: Watcher | None = None
    last_rv = rv
    if timeout > 0:
        if rv == 0:
            page = await served.registry.list(info.namespace)
            initial = [obj for obj in page.items if _matches(obj, served, label_sel, field_sel)]
            last_rv = int(page.resource_version)
        watcher = await served.registry.open_watch(info.namespace, last_rv)

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    first_table = True

    def line(event_type: str, obj: Obj, cached: CachedEvent | None = None) -> bytes:
        nonlocal first_table
        if as_table and event_type not in {"BOOKMARK", "ERROR"}:
            payload = tables.table_for(
                [obj], api_version=served.api_version, kind=served.kind,
                include_object=include, now=ctx.clock.now(),
                resource_version=str((obj.get("metadata") or {}).get("resourceVersion")),
                with_column_definitions=first_table)
            first_table = False
            obj = payload
        elif cached is not None:
            return cached.line(event_type)
        return json.dumps({"type": event_type, "object": obj},
                          separators=(",", ":")).encode() + b"\n"

    def typed(ev: CachedEvent) -> Obj:
        """The event's object for a Table row (a copy: the decoded object is shared)."""
        return _with_type(dict(ev.obj), served) if as_table else {}

    def event_line(ev: CachedEvent) -> bytes | None:
        """What this watcher is sent for ``ev``, if anything."""
        if not selective:
            return line(ev.type.value, typed(ev), ev)
        now_match = _matches(ev.obj, served, label_sel, field_sel)
        prev = ev.prev
        was_match = prev is not None and _matches(prev, served, label_sel, field_sel)
        if ev.type == EventType.DELETED:
            etype = "DELETED" if now_match else ""
        elif ev.type == EventType.ADDED or (now_match and not was_match):
            etype = "ADDED" if now_match else ""
        elif now_match:
            etype = "MODIFIED"
        else:
            # It left the selection: to this watcher it is gone.
            etype = "DELETED" if was_match else ""
        if not etype:
            return None
        return line(etype, typed(ev), ev)

    try:
        await response.prepare(request)
        if initial:
            await response.write(b"".join(line("ADDED", _with_type(obj, served))
                                          for obj in initial))
        while watcher is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch = await watcher.next_batch(min(ctx.watch_bookmark_interval, remaining))
            except Exception as e:
                status = error_status(e, rv)
                if status is not None and status.code == 500:
                    log.error("watch %s failed", request.path_qs, exc_info=e)
                if status is not None:
                    await response.write(line("ERROR", status.to_status()))
                break
            if not batch:
                if bookmarks and time.monotonic() < deadline:
                    await response.write(line("BOOKMARK", {
                        "kind": served.kind, "apiVersion": served.api_version,
                        "metadata": {"resourceVersion": str(last_rv)}}))
                continue
            last_rv = batch[-1].revision
            chunk = b"".join(out for out in map(event_line, batch) if out is not None)
            if chunk:
                await response.write(chunk)
                # Let the next events gather (see FLUSH_INTERVAL); the buffer is bounded.
                await asyncio.sleep(FLUSH_INTERVAL)
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
