"""kubectl's port-forward: a SPDY/3.1 session, tunnelled in a WebSocket, whose streams carry
TCP connections to ports of the pod.

Theory of operation
-------------------
Followed: pkg/kubelet/cri/streaming/portforward/httpstream.go (stream pairs, headers,
errors) and client-go's tools/portforward (what kubectl sends: portforward.go,
tunneling_connection.go).

kubectl negotiates ``SPDY/3.1+portforward.k8s.io`` and then writes a SPDY session into the
WebSocket's binary messages as if it were a TCP connection (message boundaries mean nothing).
For each local connection it opens two streams with the same ``requestID`` and ``port``
headers: ``streamType: error`` (which it half-closes at once) and ``streamType: data``. The
server accepts every stream (SYN_REPLY: kubectl waits for it, and spdystream drops DATA on a
stream not yet replied), and once both of a pair are there it dials the port (through the
pod's :class:`~svcnet.node.podconn.Dialer`) and copies bytes both ways. When the pod's side
ends, the data and error streams are finished (FIN), which ends kubectl's copy; why the
connection failed, if it did, is written on the error stream first (kubectl prints it).
kubectl's FIN on the data stream half-closes the pod connection; its RST_STREAM (it resets the
data stream once done) drops it. PINGs (every 10 s) are echoed. Many connections share the
session concurrently; each pair is one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from svcnet.api import spdy
from svcnet.util.bytequeue import ByteQueue

if TYPE_CHECKING:
    from svcnet.node.podconn import Dialer, PodConnection

log = logging.getLogger(__name__)


@dataclass
class _Pair:
    port: int = 0
    error: int = 0
    data: int = 0
    inbox: ByteQueue = field(default_factory=ByteQueue)
    """What kubectl sent for the pod, not yet written to it (bounded: back-pressure)."""
    task: asyncio.Task[None] | None = None


class Session:
    """One SPDY session over one WebSocket (see the module docstring)."""

    def __init__(self, ws: web.WebSocketResponse, dialer: Dialer) -> None:
        self.ws = ws
        self.dialer = dialer
        self.codec = spdy.Codec()
        self._send_lock = asyncio.Lock()
        self._pairs: dict[str, _Pair] = {}
        self._by_stream: dict[int, _Pair] = {}

    async def send(self, frame: spdy.Frame) -> None:
        async with self._send_lock:  # frames share one compression context: keep order
            await self.ws.send_bytes(self.codec.encode(frame))

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    break
                for frame in self.codec.feed(msg.data):
                    if not await self._handle(frame):
                        return
        except spdy.SpdyError as e:
            log.info("port-forward session: %s", e)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(spdy.Frame(spdy.GOAWAY, value=1))
        finally:
            for pair in self._pairs.values():
                if pair.task is not None:
                    pair.task.cancel()
            tasks = [p.task for p in self._pairs.values() if p.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, frame: spdy.Frame) -> bool:
        """Act on one frame; False ends the session."""
        if frame.kind == spdy.SYN_STREAM:
            await self._stream(frame)
        elif frame.kind == spdy.DATA:
            pair = self._by_stream.get(frame.stream_id)
            if pair is not None and frame.stream_id == pair.data:
                if frame.data:
                    await pair.inbox.put(frame.data)  # waits while the pod lags
                if frame.fin:
                    pair.inbox.close()
        elif frame.kind == spdy.RST_STREAM:
            pair = self._by_stream.get(frame.stream_id)
            if pair is not None and pair.task is not None:
                pair.task.cancel()
        elif frame.kind == spdy.PING:
            await self.send(frame)
        elif frame.kind == spdy.GOAWAY:
            return False
        return True

    async def _stream(self, frame: spdy.Frame) -> None:
        await self.send(spdy.Frame(spdy.SYN_REPLY, frame.stream_id))
        kind, request = frame.header("streamType"), frame.header("requestID")
        try:
            port = int(frame.header("port"))
        except ValueError:
            port = 0
        if kind not in ("data", "error") or not 0 < port < 65536:
            await self.send(spdy.Frame(spdy.RST_STREAM, frame.stream_id,
                                       value=spdy.RST_PROTOCOL_ERROR))
            return
        pair = self._pairs.setdefault(request, _Pair(port))
        setattr(pair, kind, frame.stream_id)
        self._by_stream[frame.stream_id] = pair
        if pair.data and pair.error and pair.task is None:
            pair.task = asyncio.create_task(self._forward(request, pair))

    async def _forward(self, request: str, pair: _Pair) -> None:
        conn: PodConnection | None = None
        try:
            conn = await self.dialer.dial(pair.port)
            upload = asyncio.create_task(_upload(pair.inbox, conn))
            try:
                while data := await conn.read():
                    await self.send(spdy.Frame(spdy.DATA, pair.data, data=data))
                if message := await conn.error():
                    await self.send(spdy.Frame(spdy.DATA, pair.error, data=message.encode()))
            finally:
                upload.cancel()
        finally:
            pair.inbox.close()  # what kubectl still sends has nowhere to go: drop it
            if conn is not None:
                await conn.close()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(spdy.Frame(spdy.DATA, pair.data, spdy.FLAG_FIN))
                await self.send(spdy.Frame(spdy.DATA, pair.error, spdy.FLAG_FIN))
            self._pairs.pop(request, None)
            self._by_stream.pop(pair.data, None)
            self._by_stream.pop(pair.error, None)


async def _upload(inbox: ByteQueue, conn: PodConnection) -> None:
    """What kubectl sends on the data stream, to the pod; its FIN half-closes."""
    with contextlib.suppress(ConnectionError):
        while data := await inbox.get():
            await conn.write(data)
        await conn.write_eof()


async def serve_spdy(ws: web.WebSocketResponse, dialer: Dialer) -> None:
    await Session(ws, dialer).run()
