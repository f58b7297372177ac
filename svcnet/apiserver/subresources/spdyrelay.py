"""Plain SPDY/3.1 upgrades of ``pods/exec``, ``pods/attach`` and ``pods/portforward`` (what
kubectl before 1.30 speaks), served by the API server and relayed to the node agent's
WebSocket.

Theory of operation
-------------------
Followed: staging/src/k8s.io/apimachinery/pkg/util/httpstream/httpstream.go (``Handshake``:
the ``X-Stream-Protocol-Version`` negotiation), .../httpstream/spdy/upgrade.go (the 101
answer), pkg/kubelet/cri/streaming/remotecommand/httpstream.go (the streams of exec/attach,
told apart by their ``streamType`` header) and client-go's tools/remotecommand (v2-v4 stream
protocols: what the client creates, what it waits for).

kube-apiserver proxies the upgraded connection to the kubelet, which speaks SPDY itself.
svcnet's node agent speaks WebSocket, so the API server ends the SPDY session here: it dials
the node first (a failure is still an HTTP error the client can read), then answers ``101
Switching Protocols`` with ``Upgrade: SPDY/3.1`` and the protocol chosen (the first of the
client's ``X-Stream-Protocol-Version`` values it supports, in the client's order; none at
all is 400, none in common 403 with ``X-Accepted-Stream-Protocol-Versions``, as upstream).
From then on the connection's bytes come through a feed installed as the request's payload
parser (aiohttp would otherwise read them as the next HTTP request) and go out raw on the
response.

* **port-forward** (``portforward.k8s.io``): the node serves SPDY itself, tunnelled in a
  WebSocket (``SPDY/3.1+portforward.k8s.io``, svcnet/node/spdyforward.py), so bytes are
  passed through unchanged as binary messages, both ways.
* **exec/attach** (``v4.channel.k8s.io`` ... ``channel.k8s.io``): :class:`ExecBridge` maps
  the client's streams to the channels of a ``v5.channel.k8s.io`` WebSocket to the node:
  every SYN_STREAM is accepted (SYN_REPLY; client-go waits for it); stdin DATA goes on
  channel 0 and its FIN becomes v5's close signal (so ``exec -i`` and ``cp`` see EOF);
  resize streams carry newline-separated JSON, each object one channel-4 message. The node's
  stdout/stderr go out as DATA on the client's streams of that type (held until the client
  has opened them: the node may start writing first), its error channel (a Status) on the
  error stream, as is for v4 and as its message for v2/v3. When the node closes, every
  stream the server writes is finished (FIN: client-go reads stdout/stderr and the error
  stream to their end), and one the client opens after that is finished as soon as it is
  answered (a command refused by the node ends before the client has opened all its
  streams, and client-go waits for each SYN_REPLY); the connection is closed once the client
  has closed its side (or after a grace period), so that nothing unread is reset away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Final, cast

import aiohttp
from aiohttp import WSMsgType, web

from svcnet.api import remotecommand as rc, spdy
from svcnet.api.errors import StatusError, bad_request
from svcnet.apiserver.common import status_response

SPDY_31: Final = "SPDY/3.1"
PROTOCOL_HEADER: Final = "X-Stream-Protocol-Version"
ACCEPTED_HEADER: Final = "X-Accepted-Stream-Protocol-Versions"
SPDY_EXEC_PROTOCOLS: Final = (rc.V4, rc.V3, rc.V2, rc.V1)
"""What the kubelet serves over SPDY for exec and attach (v5 is WebSocket-only)."""
SPDY_PORT_FORWARD_PROTOCOLS: Final = (rc.PORT_FORWARD_V1,)

_HIGH_WATER: Final = 64
"""Unread chunks from the client after which its connection stops being read."""
_STREAM_WAIT: Final = 10.0
_CLOSE_GRACE: Final = 5.0

Node = aiohttp.ClientWebSocketResponse


def is_spdy_upgrade(request: web.Request) -> bool:
    return (request.headers.get("Upgrade", "").lower() == SPDY_31.lower()
            and "upgrade" in request.headers.get("Connection", "").lower())


def negotiate_stream_protocol(request: web.Request, supported: tuple[str, ...]
                              ) -> str | web.Response:
    """httpstream.Handshake: the first of the client's versions the server supports, or the
    refusal to answer (400 without any; 403 listing the accepted ones when none is
    common)."""
    offered = [p.strip() for value in request.headers.getall(PROTOCOL_HEADER, [])
               for p in value.split(",") if p.strip()]
    if not offered:
        raise bad_request(f"unable to upgrade: {PROTOCOL_HEADER} is required")
    chosen = rc.negotiate(offered, supported)
    if chosen is not None:
        return chosen
    response = status_response(StatusError(403, "Forbidden", (
        f"unable to upgrade: unable to negotiate protocol: client supports "
        f"[{' '.join(offered)}], server accepts [{' '.join(supported)}]")), request)
    for p in supported:
        response.headers.add(ACCEPTED_HEADER, p)
    return response


class _Feed:
    """The upgraded connection's incoming bytes (an aiohttp payload parser)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport = transport
        self.paused = False
        self.ended = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        if self.queue.qsize() >= _HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    async def read(self) -> bytes | None:
        if self.ended:
            return None
        data = await self.queue.get()
        self.ended = data is None
        if self.paused and self.queue.qsize() < _HIGH_WATER // 2:
            self.paused = False
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()
        return data


class Upgraded:
    """The client's connection after ``101 Switching Protocols``: raw bytes both ways."""

    def __init__(self, request: web.Request, response: web.StreamResponse,
                 feed: _Feed) -> None:
        self.request = request
        self.response = response
        self._feed = feed

    @classmethod
    async def accept(cls, request: web.Request, protocol: str) -> Upgraded:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away")
        feed = _Feed(transport)
        # Installed before the 101 goes out: whatever the client sends next is SPDY.
        cast(Any, request.protocol).set_parser(feed)
        response = web.StreamResponse(status=101, headers={
            "Connection": "Upgrade", "Upgrade": SPDY_31, PROTOCOL_HEADER: protocol})
        response.force_close()
        await response.prepare(request)
        return cls(request, response, feed)

    async def read(self) -> bytes | None:
        """The next bytes from the client, None at its end."""
        return await self._feed.read()

    async def write(self, data: bytes) -> None:
        await self.response.write(data)

    def close(self) -> None:
        if self.request.transport is not None:
            self.request.transport.close()


async def relay_port_forward(conn: Upgraded, node: Node) -> None:
    """Raw SPDY bytes, client to node and back, until either side ends."""
    async def upload() -> None:
        while (data := await conn.read()) is not None:
            await node.send_bytes(data)

    async def download() -> None:
        async for msg in node:
            if msg.type != WSMsgType.BINARY:
                break
            await conn.write(msg.data)

    await _until_first(upload(), download())


async def _until_first(*coros: Any) -> None:
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ResizeLines:
    """A resize stream's bytes (JSON objects, each ended by a newline) as whole objects."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        *lines, rest = bytes(self._buffer).split(b"\n")
        self._buffer = bytearray(rest)
        return [line for line in lines if line.strip()]


def error_for_client(protocol: str, payload: bytes) -> bytes:
    """The node's v5 error channel (a Status) as the client's protocol carries it."""
    if protocol == rc.V4:
        return payload
    try:
        status = json.loads(payload)
    except ValueError:
        return payload
    return rc.error_payload(rc.Protocol(protocol), status) if isinstance(status, dict) \
        else payload


_CHANNEL_STREAMS: Final = {rc.STDOUT: "stdout", rc.STDERR: "stderr", rc.ERROR: "error"}
_OUTPUTS: Final = tuple(_CHANNEL_STREAMS.values())


class ExecBridge:
    """One exec/attach: the client's SPDY session on one side, the node's v5 WebSocket on
    the other (see the module docstring)."""

    def __init__(self, conn: Upgraded, node: Node, protocol: str) -> None:
        self.conn = conn
        self.node = node
        self.protocol = protocol
        self.codec = spdy.Codec()
        self._lock = asyncio.Lock()
        self._types: dict[int, str] = {}
        self._opened: dict[str, asyncio.Future[int]] = {}
        self._resize = ResizeLines()
        self._ended = False
        """The node has closed: the output streams are finished."""

    def _stream(self, kind: str) -> asyncio.Future[int]:
        return self._opened.setdefault(kind, asyncio.get_running_loop().create_future())

    async def send(self, frame: spdy.Frame) -> None:
        async with self._lock:  # one compression context: frames leave in order
            await self.conn.write(self.codec.encode(frame))

    async def run(self) -> None:
        client = asyncio.create_task(self._from_client())
        node = asyncio.create_task(self._from_node())
        try:
            done, _ = await asyncio.wait({client, node}, return_when=asyncio.FIRST_COMPLETED)
            if node in done:
                # The client closes once it has read every stream to its end; closing first
                # could reset the connection and lose what it has not read yet. Until then
                # its frames are still answered (a stream it opens now is finished at once).
                await asyncio.wait({client}, timeout=_CLOSE_GRACE)
        finally:
            for t in (client, node):
                t.cancel()
            await asyncio.gather(client, node, return_exceptions=True)

    async def _from_client(self) -> None:
        while (data := await self.conn.read()) is not None:
            for frame in self.codec.feed(data):
                if frame.kind == spdy.GOAWAY:
                    return
                await self._client_frame(frame)

    async def _client_frame(self, frame: spdy.Frame) -> None:
        if frame.kind == spdy.SYN_STREAM:
            await self.send(spdy.Frame(spdy.SYN_REPLY, frame.stream_id))
            kind = frame.header("streamType")
            if self._ended and kind in _OUTPUTS:
                await self.send(spdy.Frame(spdy.DATA, frame.stream_id, spdy.FLAG_FIN))
            self._types[frame.stream_id] = kind
            opened = self._stream(kind)
            if not opened.done():
                opened.set_result(frame.stream_id)
        elif frame.kind == spdy.DATA:
            kind = self._types.get(frame.stream_id, "")
            if kind == "stdin":
                if frame.data:
                    await self.node.send_bytes(bytes((rc.STDIN,)) + frame.data)
                if frame.fin:
                    await self.node.send_bytes(bytes((rc.CLOSE, rc.STDIN)))
            elif kind == "resize":
                for line in self._resize.feed(frame.data):
                    await self.node.send_bytes(bytes((rc.RESIZE,)) + line)
        elif frame.kind == spdy.PING:
            await self.send(frame)

    async def _from_node(self) -> None:
        async for msg in self.node:
            if msg.type != WSMsgType.BINARY or not msg.data:
                break
            kind = _CHANNEL_STREAMS.get(msg.data[0])
            if kind is None:
                continue
            data = bytes(msg.data[1:])
            if kind == "error":
                data = error_for_client(self.protocol, data)
            sid = await self._wait_stream(kind)
            if sid is not None and data:
                await self.send(spdy.Frame(spdy.DATA, sid, data=data))
        self._ended = True
        finished = [f.result() for kind in _OUTPUTS
                    if (f := self._opened.get(kind)) is not None and f.done()]
        for sid in finished:
            await self.send(spdy.Frame(spdy.DATA, sid, spdy.FLAG_FIN))

    async def _wait_stream(self, kind: str) -> int | None:
        """The client's stream of this type, once it has opened it (None if it never
        does)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._stream(kind)), _STREAM_WAIT)
        except TimeoutError:
            return None
