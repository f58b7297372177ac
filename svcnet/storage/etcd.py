"""EtcdStore: the storage contract on an etcd v3 cluster, over gRPC.

Theory of operation
-------------------
etcd already *is* the model the contract describes (one store-wide revision, MVCC history,
compaction, watch from a revision), so this backend is a thin translation layer. It talks to
etcd's gRPC API directly through the generated stubs that ship with ``aetcd`` (``KVStub``,
``WatchStub``) on one ``grpc.aio`` channel; aetcd's own ``Client`` wrapper is not used because
the contract needs fields it hides (``prev_kv`` on watch events, the response header revision of
every call, exact ``more`` on ranges).

Keys
    Every store key ``k`` is stored as etcd key ``PREFIX + k`` (UTF-8), and the prefix is
    stripped on the way out. A prefix range ``p`` is ``[PREFIX+p, increment(PREFIX+p))``, so key
    order is etcd's byte order, which for UTF-8 is the code-point order MemoryStore uses.

Revisions
    Store revision = etcd revision - ``revision_base``. etcd counts its empty state as revision
    1, so the default base of 1 makes a fresh etcd read as the contract's empty store (revision
    0, first write 1). The base must be the same for every process sharing a cluster (it is not
    a URL parameter). ``revision_base=None`` takes the etcd revision at the moment the store
    first connects: that lets a test suite share one etcd server between many stores, each on
    its own prefix, and still see each store start at revision 0. Other writers on the same
    cluster (under other prefixes) still advance the one revision counter, exactly as etcd does.

Writes are single transactions (``Txn``), so each is atomic and takes exactly one revision:

* ``create``: ``if create_revision(key) == 0 then put else range(key)`` -> KeyExists;
* ``update``: ``if version(key) > 0 and mod_revision(key) == expected then put(prev_kv)
  else range(key)`` -> KeyNotFound (range empty) or Conflict (carrying the range's value). The
  ``version > 0`` guard matters: etcd compares a missing key's mod_revision as 0;
* ``delete``: the same, with ``delete_range(prev_kv)``; ``expected_revision`` 0 omits the
  mod_revision comparison. The returned KeyValue is the deleted value at the txn's revision.

Reads are linearizable ranges. ``list(revision=R)`` is a range at etcd revision ``R + base``;
etcd answers ``OUT_OF_RANGE`` "compacted" (-> Compacted) or "future revision" (then it is
served at the current revision, as the contract says). ``limit`` maps to etcd's ``limit``,
whose ``more`` flag is exact; ``start_after`` starts the range at ``PREFIX+start_after+"\\0"``.

Compaction is etcd's ``Compact`` at ``revision + base`` (clamped to now; "already compacted" is
a no-op). etcd does not report its compacted revision directly, so ``compact_revision()``
binary-searches the oldest revision a range still accepts (a range at revision ``r`` fails iff
``r`` is below etcd's compacted revision): about log2(current revision) tiny reads. This is
only used for ``compact_revision()`` itself and to fill in :class:`Compacted`.

Watches: each ``watch()`` is one gRPC watch stream with ``prev_kv``, from etcd revision
``after + base + 1``. A PUT whose ``create_revision == mod_revision`` is ADDED, any other PUT
MODIFIED, a DELETE is DELETED with the value (and create revision) taken from ``prev_kv``.
etcd accepts a watch from its compacted revision ``E`` itself, but the contract must refuse
``after = C - 1`` (whose first event needs history at ``C - 1``). So a watch that has history
to replay first reads at ``after`` (refused iff ``after`` is below the compacted revision);
etcd's own compacted answer on the stream is mapped to Compacted as well.

``after_revision`` 0 ("now") is resolved when ``watch()`` is *called*, without I/O, to the
newest revision this store has seen in any response header (every call updates it). Nothing
written after the call is missed; events written by *other* clients between that revision
and the call are delivered too (the store had not seen them yet). On a store that has done no
I/O yet (not even ``open()``), "now" is the revision when the watch first reaches etcd; with
``revision_base=None`` it is the store's origin, i.e. store revision 0.

"Registered by the call": ``watch()`` starts the watch's pump task at once (when a loop is
running; otherwise the first iteration does), and every later operation of this store waits
until etcd has confirmed all watches made before it. So a compaction (or any write) issued
after ``watch()`` can never reach etcd before the watch does.

The pump reads the stream into an unbounded queue. Replayed history (revisions up to the
newest the store had seen when the watch was made) is not limited; beyond it, a watcher with
``watch_buffer`` undelivered events is dropped with :class:`WatchClosed`, like kine's
broadcaster and etcd's own slow-watcher handling.

Ending a watch never cancels an operation gRPC has in flight: etcd 3.4 never ends a watch
stream by itself (not even on a client half-close), so the watch is cancelled *in etcd* with a
cancel request on the stream; the pump's pending read then completes with etcd's "canceled"
answer, and the pump cancels the RPC while no read is pending and waits for its status. (A read
pending at cancel time completes later in gRPC core, on the event loop that started it, which
with one loop per test may be closed by then.) ``close()`` ends every watch with WatchClosed,
awaits every pump (cancelling, after ``timeout``, any stuck on an unreachable etcd), then
closes the channel.

Outages: every unary call carries a deadline (``timeout``), and so does the wait for watches to
be confirmed, so nothing waits forever on an etcd that is gone. A call etcd could not serve
(UNAVAILABLE, the NOSPACE alarm's RESOURCE_EXHAUSTED, a connection lost under the call) raises
:class:`Unavailable`; DEADLINE_EXCEEDED and etcd's own "request timed out" raise it with
``timeout=True`` (the write may have been applied). gRPC fails calls at once while the channel
is down (no wait-for-ready) and reconnects with a back-off capped at one second, and keepalive
pings (and the socket's TCP_USER_TIMEOUT, both 3 s) find a peer that vanished without closing
its connections: a member whose machine left the network costs about 3 s of failed calls. A
watch whose stream fails ends with Unavailable (the storage contract: no silent resumption);
the consumer re-watches from its last revision. Watch streams require a leader
(:data:`REQUIRE_LEADER`): a member cut off from its peers ends them once it has been without a
leader for three election timeouts, where it would otherwise keep them open and silent while
the other members go on writing.

Watch streams are read on a thread of their own (:class:`_StreamThread`, over a synchronous
gRPC channel): ``grpc.aio`` hands a stream over one message per event-loop iteration, and an
API server under load (hundreds of watchers, a write finishing every few milliseconds) would
then take events in slower than etcd commits them, falling further behind the longer the load
lasts. The thread hands each response to the loop as it arrives, so a busy loop takes every
response that arrived meanwhile in one iteration; unary calls stay on ``grpc.aio``.

Endpoints: each member (``host:port``) has channels of its own, opened on first use, and
calls go to one of them, the *active* member, until a call to it fails as an unreachable or
unserving member's would (:class:`Unavailable`, a timeout included); the next calls then go
to the next member, round the list, as clientv3 moves on from an unhealthy endpoint. The
first call (``open()`` or the first operation) tries each member in turn. A channel per
member, rather than one gRPC target of every address (gRPC's pick-first), is what lets TLS
check each member's certificate against that member's own name or address: gRPC verifies
every connection of a channel against the one authority of its target. A call in flight
when its member fails is not repeated on another (a write's outcome is unknown): it fails,
as it would have with pick-first.

TLS: with ``tls`` (:class:`~svcnet.storage.etcdtls.EtcdTLS`, the server's ``--etcd-cafile``,
``--etcd-certfile``, ``--etcd-keyfile``), every channel is a TLS channel that verifies the
member against the CA file (the system's roots without one) and presents the client
certificate, which an etcd run with ``--client-cert-auth`` requires. A refused handshake
fails the call as UNAVAILABLE, with gRPC's reason (a certificate verify or hostname check
failure) in the message.

Why this module is long: One backend of the store contract: unary calls, the watch pump and its
stream thread share the revision bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aetcd.rpc import kv_pb2, rpc_pb2, rpc_pb2_grpc

from svcnet.storage.etcdtls import EtcdTLS
from svcnet.storage.interface import (
    Compacted,
    Conflict,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListResult,
    StorageError,
    TooLarge,
    Unavailable,
    WatchClosed,
    WatchEvent,
)

log = logging.getLogger(__name__)

DEFAULT_BUFFER = 1024
"""Undelivered live events a watcher may have before it is dropped as too slow."""

_COMPACTED = "compacted"
_TOO_LARGE = "request is too large"  # etcd's ErrGRPCRequestTooLarge
_FUTURE = "future revision"

_UNAVAILABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,  # unreachable, no leader, leader changed, "request timed out"
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # the NOSPACE alarm: "database space exceeded"
    grpc.StatusCode.CANCELLED,  # the connection went away under the call
    grpc.StatusCode.UNKNOWN,  # a broken transport reported without a code
})

CHANNEL_OPTIONS = (
    # A silent peer (a dead host, a cut cable: no FIN) is noticed instead of never: a ping
    # after 10 s without traffic must be answered within 3 s, and gRPC sets the same 3 s as the
    # socket's TCP_USER_TIMEOUT (gRFC A18), so a call in flight to a member that vanished from
    # the network fails in about 3 s, not at its deadline, and the store moves on to the next
    # member (3.3-3.6 s without reads, 10.4 s with a 10 s ping timeout:
    # tests/multimachine/test_silent_server.py). etcd's server accepts pings every 5 s
    # (--grpc-keepalive-min-time).
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 3_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Answers of any size: a range over every object of a kind (a watch cache's list of 10k
    # Services is ~15 MiB) is one message, and gRPC refuses those over 4 MiB by default
    # (kube-apiserver's client sets math.MaxInt32 too). What etcd takes is its own limit
    # (--max-request-bytes, 1.5 MiB by default).
    ("grpc.max_receive_message_length", 2**31 - 1),
    # Reconnect within a second or so of etcd coming back (gRPC's default backs off to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)
"""Options of every gRPC channel a store opens."""


def unavailable(what: str, error: grpc.aio.AioRpcError) -> StorageError:
    """The StorageError for a failed etcd call: :class:`Unavailable` (timeout=True for a
    deadline) when etcd could not be reached or could not serve, a plain StorageError for
    anything else (a bug: a request etcd refuses as malformed)."""
    code = error.code()
    text = f"{what}: {code.name}: {error.details()}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or "timed out" in (error.details() or ""):
        return Unavailable(text, timeout=True)
    if code in _UNAVAILABLE_CODES:
        return Unavailable(text)
    return StorageError(text)


def _span(key: bytes) -> tuple[bytes, bytes]:
    """``(key, range_end)`` of every key starting with ``key`` (etcd refuses an empty key)."""
    return (key or b"\0"), _range_end(key)


def _range_end(key: bytes) -> bytes:
    """The smallest key greater than every key starting with ``key`` (etcd's prefix end)."""
    end = bytearray(key)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # empty prefix (or all 0xff): to the end of the key space


def _targets(endpoints: Sequence[str]) -> tuple[str, ...]:
    """The members' ``host:port`` gRPC targets, each its own channel (module docstring)."""
    if not endpoints:
        raise ValueError("at least one etcd endpoint is needed")
    return tuple(endpoints)


def credentials(tls: EtcdTLS) -> grpc.ChannelCredentials:
    """TLS credentials from ``tls``'s files (kube-apiserver's ``--etcd-cafile``,
    ``--etcd-certfile``, ``--etcd-keyfile``); no CA file: the system's roots."""

    def read(path: Path | None, what: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as e:
            raise StorageError(f"cannot read the etcd {what} {path}: {e.strerror or e}") from e

    return grpc.ssl_channel_credentials(root_certificates=read(tls.ca_file, "CA file"),
                                        private_key=read(tls.key_file, "key file"),
                                        certificate_chain=read(tls.cert_file, "certificate"))


_TLS_FAILURES = ("Socket closed", "TSI_", "handshake", "Unwrap failed")
"""What gRPC's reason for a failed connection holds when TLS is what failed."""


def _tls_hint(tls: EtcdTLS | None, error: grpc.aio.AioRpcError) -> str:
    """A hint for a first connection that failed the way a TLS mismatch does: gRPC's reason
    names the symptom (a closed socket, a corrupt record), not the cause."""
    if not any(f in (error.details() or "") for f in _TLS_FAILURES):
        return ""
    if tls is None:
        return (" (if the members serve TLS: --etcd-cafile, and --etcd-certfile and "
                "--etcd-keyfile if they require client certificates)")
    if tls.cert_file is None:
        return (" (no client certificate given: members run with --client-cert-auth refuse "
                "the connection; --etcd-certfile and --etcd-keyfile)")
    return ""


@dataclass(frozen=True, slots=True)
class _Member:
    """One member's channels: unary calls on ``grpc.aio``, watch streams on a synchronous
    channel (module docstring)."""

    target: str
    channel: Any
    kv: Any
    watch_channel: Any
    watch_stub: Any

    @classmethod
    def open(cls, target: str, creds: grpc.ChannelCredentials | None) -> _Member:
        if creds is None:
            channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
            watch_channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.secure_channel(target, creds, options=CHANNEL_OPTIONS)
            watch_channel = grpc.secure_channel(target, creds, options=CHANNEL_OPTIONS)
        return cls(target, channel, rpc_pb2_grpc.KVStub(channel), watch_channel,
                   rpc_pb2_grpc.WatchStub(watch_channel))

    async def close(self) -> None:
        self.watch_channel.close()
        await self.channel.close()


REQUIRE_LEADER: Any = (("hasleader", "true"),)
"""Watch streams' metadata (clientv3's ``WithRequireLeader``, which kube-apiserver's etcd3
watcher sets): a member that has lost its leader ends the stream (UNAVAILABLE "no leader",
after three election timeouts without one) instead of keeping it open with no events while
the rest of the cluster goes on without it."""

_EOF: Any = object()
"""What :meth:`_StreamThread.read` returns once etcd ended the stream (grpc.aio's EOF)."""


class _StreamThread:
    """A Watch stream read on a thread: ``write``/``read``/``cancel``/``done``/``code`` as a
    ``grpc.aio`` stream call offers them (see the module docstring for why)."""

    def __init__(self, stub: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._finished = asyncio.Event()
        self._call = stub.Watch(self._request_iterator(), metadata=REQUIRE_LEADER)
        self._thread = threading.Thread(target=self._read, name="svcnet-etcd-watch",
                                        daemon=True)
        self._thread.start()

    def _request_iterator(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _read(self) -> None:
        end: Any = _EOF
        try:
            for response in self._call:
                self._deliver(response)
        except grpc.RpcError as e:
            end = e
        except BaseException as e:  # surfaced to the pump, not lost on a thread
            end = e
        self._deliver(end)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._finished.set)

    def _deliver(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, item)

    async def write(self, request: Any) -> None:
        self._requests.put(request)

    async def read(self) -> Any:
        """The next response; ``_EOF`` when the stream ended; raises the stream's error."""
        item = await self._inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> None:
        self._requests.put(None)
        self._call.cancel()

    def done(self) -> bool:
        return self._finished.is_set() or bool(self._call.done())

    async def code(self) -> None:
        """Until the stream and its reader thread have ended."""
        await self._finished.wait()


class _Watch:
    """One watch: its gRPC stream, the pump task and the queue the iterator reads."""

    def __init__(self, store: EtcdStore, prefix: str, after: int | None,
                 live_from: int) -> None:
        self.store = store
        self.prefix = prefix
        self.after = after  # store revision; None = "now" (no revision seen yet)
        self.live_from = live_from  # events up to here are history: no buffer limit
        self.queue: asyncio.Queue[WatchEvent | BaseException] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.call: Any = None  # the gRPC stream, once open
        self.watch_id: int | None = None  # etcd's id for the watch, once created
        self.created = asyncio.Event()
        self.done = False
        self.registered = asyncio.Event()  # etcd confirmed the watch (or it ended)

    def start(self) -> None:
        if self.task is not None or self.done:
            return
        if self.store._closed:
            self.finish(WatchClosed("store is closed"))
            return
        self.task = asyncio.get_running_loop().create_task(self._pump())
        self.store._tasks.add(self.task)
        self.task.add_done_callback(self.store._tasks.discard)
        self.store._watches.add(self)
        self.store._registering.add(self)

    def finish(self, error: BaseException) -> None:
        """End the watch: the iterator raises ``error`` after the events already queued."""
        if self.done:
            return
        self.done = True
        self.queue.put_nowait(error)
        self.stop()

    def _registered(self) -> None:
        self.registered.set()
        self.store._registering.discard(self)

    def stop(self) -> None:
        """Make the pump end soon, without cancelling an operation gRPC has in flight.

        A unary call in flight is left to complete (the pump checks ``done`` after it). An open
        stream gets a cancel request, so the pending read completes with etcd's "canceled"
        answer and the pump ends the RPC itself, with no read pending (see ``_end_stream``).
        """
        self.done = True
        self._registered()
        if self.call is not None and self.task is not asyncio.current_task():
            task = asyncio.get_running_loop().create_task(self._request_cancel())
            self.store._tasks.add(task)
            task.add_done_callback(self.store._tasks.discard)
        self.store._watches.discard(self)

    async def _request_cancel(self) -> None:
        call = self.call
        try:
            async with asyncio.timeout(self.store._timeout):
                await self.created.wait()  # also set when the pump ends
            if self.watch_id is not None and not call.done():
                await call.write(rpc_pb2.WatchRequest(
                    cancel_request=rpc_pb2.WatchCancelRequest(watch_id=self.watch_id)))
        except asyncio.CancelledError:
            call.cancel()
            raise
        except Exception:
            call.cancel()  # the fallback: etcd did not answer in time, or the RPC is over

    async def _end_stream(self) -> None:
        """Cancel the RPC while no read is pending, and wait until gRPC has finished it.

        (etcd 3.4 never ends a watch stream itself, not even on a client half-close.) A read
        pending at cancel time would complete later in gRPC core, and with one event loop per
        test or per ``asyncio.run`` possibly on a loop that is closed by then.
        """
        call = self.call
        if call is None:
            return
        call.cancel()
        with contextlib.suppress(BaseException):
            await call.code()

    async def _pump(self) -> None:  # noqa: C901 (one branch per response kind)
        store = self.store
        member: int | None = None  # the member the stream goes to, once open
        try:
            await store._connect()
            base = store._base_revision()
            if self.after is None and not self.done:
                self.after = await store._current_etcd(wait=False) - base
                self.live_from = max(self.live_from, self.after)
            if self.done or self.after is None:
                return
            after_etcd = self.after + base
            if store._last_seen is not None and after_etcd < store._last_seen:
                # History to replay: is it still there? (A range at the start revision fails
                # iff it is below etcd's compacted revision; see the module docstring.)
                try:
                    await store._range_at(store._probe, b"", after_etcd, count_only=True,
                                          wait=False)
                except grpc.aio.AioRpcError as e:
                    if not store._is(e, _COMPACTED):
                        raise
                    self.finish(Compacted(self.after, await store._compact_revision(wait=False)))
                    return
            if self.done:
                return
            key, end = _span(store._full(self.prefix))
            member = store._active
            call = self.call = _StreamThread(store._member(member).watch_stub,
                                             asyncio.get_running_loop())
            await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                key=key, range_end=end, start_revision=after_etcd + 1,
                prev_kv=True)))
            while True:
                response = await call.read()
                if response is _EOF:
                    self.finish(Unavailable("etcd ended the watch stream"))
                    return
                self._registered()
                if response.created:
                    self.watch_id = int(response.watch_id)
                    self.created.set()
                if response.compact_revision:
                    self.finish(Compacted(self.after, int(response.compact_revision) - base))
                    return
                if response.canceled:
                    self.finish(WatchClosed(f"etcd cancelled the watch: {response.cancel_reason}"))
                    return
                store._seen(response.header.revision)
                for ev in response.events:
                    event = store._event(ev)
                    if (event.revision > self.live_from
                            and self.queue.qsize() >= store._watch_buffer):
                        self.finish(WatchClosed("watcher fell too far behind"))
                        return
                    self.queue.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except (grpc.aio.AioRpcError, grpc.RpcError) as e:
            error = unavailable("etcd watch failed", e)
            # (A stream this side cancelled, the watch being stopped, says nothing of etcd.)
            if member is not None and not self.done and isinstance(error, Unavailable):
                store._failed(member, e)
            self.finish(error)
        except Exception as e:  # surfaced to the consumer, not lost in a task
            self.finish(e)
        finally:
            self.created.set()  # nothing to wait for any more (see _request_cancel)
            await self._end_stream()


class EtcdStore:
    """A :class:`~svcnet.storage.interface.Store` on etcd v3 (see the module docstring).

    ``endpoints`` are ``host:port`` strings; ``prefix`` is prepended to every key (it should end
    with '/'). No I/O happens until the first operation or ``await open()``.
    """

    def __init__(self, endpoints: Sequence[str], prefix: str, *,
                 watch_buffer: int = DEFAULT_BUFFER, revision_base: int | None = 1,
                 timeout: float = 10.0, tls: EtcdTLS | None = None) -> None:
        self._targets = _targets(endpoints)
        self._tls = tls
        self._credentials: grpc.ChannelCredentials | None = None  # of tls, on first use
        self._prefix = prefix.encode()
        self._probe = self._prefix or b"\0"  # a key for reads that only want a header
        self._watch_buffer = watch_buffer
        self._base = revision_base
        self._timeout = timeout
        self._members: dict[int, _Member] = {}  # by index in _targets, opened on first use
        self._active = 0  # the member calls go to (module docstring: "Endpoints")
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._last_seen: int | None = None  # etcd revision
        self._watches: set[_Watch] = set()
        self._registering: set[_Watch] = set()  # watches etcd has not confirmed yet
        self._tasks: set[asyncio.Task[None]] = set()  # pumps and cancel requests, until done
        self._closed = False

    # -- plumbing -----------------------------------------------------------------------------

    async def open(self) -> None:
        await self._connect()

    def _member(self, index: int) -> _Member:
        member = self._members.get(index)
        if member is None:
            if self._closed:
                raise StorageError("store is closed")
            if self._tls is not None and self._credentials is None:
                self._credentials = credentials(self._tls)  # the files, read once
            member = self._members[index] = _Member.open(self._targets[index],
                                                         self._credentials)
        return member

    def _failed(self, index: int, error: grpc.RpcError) -> None:
        """A call to member ``index`` failed as an unreachable or unserving member's would:
        the next calls go to the next member (once per failure of the active one, however
        many calls were in flight to it)."""
        if len(self._targets) > 1 and index == self._active:
            self._active = (index + 1) % len(self._targets)
            log.warning("etcd member %s failed (%s); moving to %s", self._targets[index],
                        error.code().name if isinstance(error, grpc.Call) else error,
                        self._targets[self._active])

    async def _connect(self) -> None:
        if self._closed:
            raise StorageError("store is closed")
        if self._connected:
            return
        async with self._connect_lock:
            if self._connected:
                return
            # The first call: each member in turn until one answers (a read: safe to repeat).
            errors = []
            for _ in self._targets:
                index = self._active
                try:
                    response = await self._member(index).kv.Range(
                        rpc_pb2.RangeRequest(key=self._probe, count_only=True),
                        timeout=self._timeout)
                    break
                except grpc.aio.AioRpcError as e:
                    errors.append(e)
                    self._failed(index, e)
            else:
                error = unavailable(f"cannot reach etcd at {', '.join(self._targets)}",
                                    errors[-1])
                raise type(error)(f"{error}{_tls_hint(self._tls, errors[-1])}") from errors[-1]
            if self._closed:
                raise StorageError("store is closed")
            if self._base is None:
                self._base = int(response.header.revision)
            self._seen(response.header.revision)
            self._connected = True

    def _base_revision(self) -> int:
        assert self._base is not None, "connect first"
        return self._base

    def _seen(self, revision: int) -> None:
        revision = int(revision)
        if self._last_seen is None or revision > self._last_seen:
            self._last_seen = revision

    def _full(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _kv_of(self, kv: Any) -> KeyValue:
        base = self._base_revision()
        return KeyValue(key=bytes(kv.key)[len(self._prefix):].decode(), value=bytes(kv.value),
                        mod_revision=int(kv.mod_revision) - base,
                        create_revision=int(kv.create_revision) - base)

    def _event(self, ev: Any) -> WatchEvent:
        prev = self._kv_of(ev.prev_kv) if ev.HasField("prev_kv") else None
        if ev.type == kv_pb2.Event.DELETE:
            kv = KeyValue(key=bytes(ev.kv.key)[len(self._prefix):].decode(),
                          value=prev.value if prev else b"",
                          mod_revision=int(ev.kv.mod_revision) - self._base_revision(),
                          create_revision=prev.create_revision if prev else 0)
            return WatchEvent(EventType.DELETED, kv, prev)
        kv = self._kv_of(ev.kv)
        if ev.kv.create_revision == ev.kv.mod_revision:
            return WatchEvent(EventType.ADDED, kv, None)
        return WatchEvent(EventType.MODIFIED, kv, prev)

    async def _call(self, method: str, request: Any, *, wait: bool = True) -> Any:
        await self._connect()
        if wait and self._registering:
            # Watches made before this call must be in place before it runs (see watch()); a
            # watch etcd does not confirm in time ends (the pump fails), but never wait forever.
            try:
                async with asyncio.timeout(self._timeout):
                    await asyncio.gather(*(w.registered.wait() for w in list(self._registering)))
            except TimeoutError:
                raise Unavailable(f"etcd did not confirm a watch in {self._timeout:g} s",
                                  timeout=True) from None
        index = self._active
        try:
            response = await getattr(self._member(index).kv, method)(request,
                                                                     timeout=self._timeout)
        except grpc.aio.AioRpcError as e:
            if self._closed:
                raise StorageError("store is closed") from e
            if e.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise  # compacted / future revision: the caller maps it
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT and _TOO_LARGE in (e.details() or ""):
                raise TooLarge(f"etcd refused the write as larger than its --max-request-bytes "
                               f"({e.details()})") from e
            error = unavailable(f"etcd {method} failed", e)
            if isinstance(error, Unavailable):
                self._failed(index, e)
            raise error from e
        self._seen(response.header.revision)
        return response

    async def _range_at(self, key: bytes, range_end: bytes, etcd_revision: int, *,
                        wait: bool = True, **kw: Any) -> Any:
        """A range at an etcd revision; raises AioRpcError OUT_OF_RANGE if compacted/future."""
        return await self._call("Range", rpc_pb2.RangeRequest(
            key=key, range_end=range_end, revision=etcd_revision, **kw), wait=wait)

    @staticmethod
    def _is(error: grpc.aio.AioRpcError, what: str) -> bool:
        return bool(error.code() == grpc.StatusCode.OUT_OF_RANGE and what in
                    (error.details() or ""))

    # -- reads --------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        response = await self._call("Range", rpc_pb2.RangeRequest(key=self._full(key)))
        return self._kv_of(response.kvs[0]) if response.kvs else None

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> ListResult:
        if revision < 0 or limit < 0:
            raise ValueError("revision and limit must not be negative")
        await self._connect()
        base = self._base_revision()
        key, end = _span(self._full(prefix))
        start = self._full(start_after) + b"\0" if start_after >= prefix else key
        at = revision + base if revision else 0
        try:
            response = await self._range_at(start, end, at, limit=limit)
        except grpc.aio.AioRpcError as e:
            if self._is(e, _COMPACTED):
                raise Compacted(revision, await self.compact_revision()) from e
            if not self._is(e, _FUTURE):
                raise
            # A revision in the future is served as "now", and reported as such.
            at = 0
            response = await self._range_at(start, end, 0, limit=limit)
        served_at = revision if at else int(response.header.revision) - base
        return ListResult(items=[self._kv_of(kv) for kv in response.kvs], revision=served_at,
                          more=bool(response.more))

    async def count(self, prefix: str) -> int:
        key, end = _span(self._full(prefix))
        response = await self._call("Range", rpc_pb2.RangeRequest(
            key=key, range_end=end, count_only=True))
        return int(response.count)

    async def _current_etcd(self, *, wait: bool = True) -> int:
        response = await self._call("Range", rpc_pb2.RangeRequest(key=self._probe,
                                                                   count_only=True), wait=wait)
        return int(response.header.revision)

    async def current_revision(self) -> int:
        return await self._current_etcd() - self._base_revision()

    async def compact_revision(self) -> int:
        return await self._compact_revision()

    async def _compact_revision(self, *, wait: bool = True) -> int:
        # The smallest etcd revision >= base that a range still accepts (see the docstring).
        hi = await self._current_etcd(wait=wait)
        lo = self._base_revision()
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                await self._range_at(self._probe, b"", mid, count_only=True, wait=wait)
            except grpc.aio.AioRpcError as e:
                if not self._is(e, _COMPACTED):
                    raise
                lo = mid + 1
            else:
                hi = mid
        return lo - self._base_revision()

    # -- writes -------------------------------------------------------------------------------

    def _compare(self, key: bytes, target: str, result: str, value: int) -> Any:
        compare = rpc_pb2.Compare(key=key, target=getattr(rpc_pb2.Compare, target),
                                  result=getattr(rpc_pb2.Compare, result))
        setattr(compare, {"CREATE": "create_revision", "MOD": "mod_revision",
                          "VERSION": "version"}[target], value)
        return compare

    async def _txn(self, compare: Sequence[Any], success: Any, failure: Any) -> Any:
        return await self._call("Txn", rpc_pb2.TxnRequest(compare=compare, success=[success],
                                                          failure=[failure]))

    async def create(self, key: str, value: bytes) -> KeyValue:
        full = self._full(key)
        response = await self._txn(
            [self._compare(full, "CREATE", "EQUAL", 0)],
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=full, value=value)),
            rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=full, count_only=True)))
        if not response.succeeded:
            raise KeyExists(key)
        rev = int(response.header.revision) - self._base_revision()
        return KeyValue(key=key, value=value, mod_revision=rev, create_revision=rev)

    async def _conditional(self, key: str, expected_revision: int,
                           op: Any) -> tuple[int, KeyValue]:
        """Run ``op`` if ``key`` exists (at ``expected_revision``, unless 0): (revision, prev)."""
        await self._connect()
        full = self._full(key)
        compare = [self._compare(full, "VERSION", "GREATER", 0)]
        if expected_revision:
            compare.append(self._compare(full, "MOD", "EQUAL",
                                         expected_revision + self._base_revision()))
        response = await self._txn(
            compare, op, rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=full)))
        if not response.succeeded:
            kvs = response.responses[0].response_range.kvs
            if not kvs:
                raise KeyNotFound(key)
            raise Conflict(key, self._kv_of(kvs[0]))
        first = response.responses[0]
        prev = (first.response_put.prev_kv if first.HasField("response_put")
                else first.response_delete_range.prev_kvs[0])
        return int(response.header.revision) - self._base_revision(), self._kv_of(prev)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        if expected_revision <= 0:
            # No key has revision 0; keep "0 = unconditional" out of update (it is a Conflict).
            current = await self.get(key)
            if current is None:
                raise KeyNotFound(key)
            raise Conflict(key, current)
        full = self._full(key)
        rev, prev = await self._conditional(key, expected_revision, rpc_pb2.RequestOp(
            request_put=rpc_pb2.PutRequest(key=full, value=value, prev_kv=True)))
        return KeyValue(key=key, value=value, mod_revision=rev,
                        create_revision=prev.create_revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        full = self._full(key)
        rev, prev = await self._conditional(key, expected_revision, rpc_pb2.RequestOp(
            request_delete_range=rpc_pb2.DeleteRangeRequest(key=full, prev_kv=True)))
        return KeyValue(key=key, value=prev.value, mod_revision=rev,
                        create_revision=prev.create_revision)

    async def compact(self, revision: int) -> None:
        current = await self._current_etcd()
        target = min(revision + self._base_revision(), current)
        if target <= self._base_revision():
            return
        try:
            await self._call("Compact", rpc_pb2.CompactionRequest(revision=target))
        except grpc.aio.AioRpcError as e:
            if not self._is(e, _COMPACTED):
                raise

    # -- watch --------------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> AsyncGenerator[WatchEvent, None]:
        if after_revision < 0:
            raise ValueError("after_revision must not be negative")
        seen: int | None = None  # the newest store revision seen so far
        if self._last_seen is not None and self._base is not None:
            seen = self._last_seen - self._base
        elif self._base is None:
            seen = 0  # origin not fixed yet: "now" is the origin itself
        after = after_revision or seen
        w = _Watch(self, prefix, after, max(after_revision, seen or 0))
        with contextlib.suppress(RuntimeError):  # no running loop: start on first iteration
            asyncio.get_running_loop()
            w.start()
        return self._iterate(w)

    async def _iterate(self, w: _Watch) -> AsyncGenerator[WatchEvent, None]:
        w.start()
        try:
            while True:
                item = await w.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            w.done = True
            w.stop()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in list(self._watches):
            w.finish(WatchClosed("store closed"))
        # Also the pumps of watches that ended earlier but may still be winding down, so that
        # no gRPC operation outlives the store (and the event loop it runs on).
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self._timeout)
            for task in late:  # stuck on an unreachable etcd
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for member in self._members.values():
            await member.close()
