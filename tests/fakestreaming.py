"""A fake CRI streaming server (what containerd serves at the URLs of ``Exec``, ``Attach`` and
``PortForward``), for tests without a container runtime.

It behaves as the kubelet's streaming package does (pkg/kubelet/cri/streaming: the SPDY
upgrade with ``X-Stream-Protocol-Version`` negotiation, a 403 with the reason when none fits;
remotecommand v4: it replies to each stream, waits for the ones the request implies, runs the
command, writes the Status on ``error`` and closes the connection; portforward: streams paired
by ``requestID``, a dial of ``127.0.0.1:PORT``, the failure written on ``error``, then both
streams closed). Commands are Python coroutines standing in for a container's programs:

* ``cat``: copies stdin to stdout until stdin ends; exit 0.
* ``fail CODE``: writes ``oops`` on stderr; exits ``CODE``.
* ``size``: with a TTY, prints the first resize it gets as ``COLSxROWS``.
* ``flood BYTES``: writes that many bytes on stdout, as fast as the connection takes them.

Each URL is single-use, as a runtime's tokens are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import remotecommand as rc, spdy


@dataclass
class _Request:
    kind: str  # exec | portforward
    command: Sequence[str] = ()
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


@dataclass
class _Stream:
    kind: str
    headers: spdy.Headers
    inbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class FakeStreamingServer:
    def __init__(self) -> None:
        self._requests: dict[str, _Request] = {}
        self._server: asyncio.Server | None = None
        self._next = 0
        self.port = 0
        self.sessions = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def url(self, kind: str, **opts: Any) -> str:
        self._next += 1
        token = f"t{self._next}"
        self._requests[token] = _Request(kind, **opts)
        return f"http://127.0.0.1:{self.port}/{kind}/{token}"

    # -- the connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            path = head[0].split()[1]
            offered = [line.split(":", 1)[1].strip() for line in head[1:]
                       if line.lower().startswith("x-stream-protocol-version:")]
            request = self._requests.pop(path.rsplit("/", 1)[-1], None)
            if request is None:
                return _refuse(writer, 404, "Not Found")
            supported = rc.PORT_FORWARD_V1 if request.kind == "portforward" else rc.V4
            if supported not in offered:
                return _refuse(writer, 403, f"unable to upgrade: unable to negotiate protocol: "
                                            f"client supports {offered}, server supports "
                                            f"[{supported}]")
            writer.write((f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {supported}\r\n\r\n"
                          ).encode())
            self.sessions += 1
            await _Session(reader, writer, request).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _refuse(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = message.encode() + b"\n"
    writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: "
                 f"{len(body)}\r\n\r\n".encode() + body)


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 request: _Request) -> None:
        self.reader, self.writer, self.request = reader, writer, request
        self.codec = spdy.Codec()
        self.streams: dict[int, _Stream] = {}
        self.arrived: asyncio.Queue[int] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []

    async def send(self, frame: spdy.Frame) -> None:
        self.writer.write(self.codec.encode(frame))
        await self.writer.drain()

    async def run(self) -> None:
        work = asyncio.create_task(self._exec() if self.request.kind == "exec" else
                                   self._port_forward())
        try:
            while data := await self.reader.read(65536):
                for frame in self.codec.feed(data):
                    await self._handle(frame)
                if work.done():
                    break
        finally:
            if not work.done():
                work.cancel()
            for t in self.tasks:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work

    async def _handle(self, frame: spdy.Frame) -> None:
        if frame.kind == spdy.SYN_STREAM:
            self.streams[frame.stream_id] = _Stream(frame.header("streamType"), frame.headers)
            await self.send(spdy.Frame(spdy.SYN_REPLY, frame.stream_id))
            self.arrived.put_nowait(frame.stream_id)
        elif frame.kind in (spdy.DATA, spdy.RST_STREAM):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                if frame.data:
                    stream.inbox.put_nowait(frame.data)
                if frame.fin or frame.kind == spdy.RST_STREAM:
                    stream.inbox.put_nowait(None)

    # -- remotecommand v4

    async def _exec(self) -> None:
        r = self.request
        expected = 1 + r.stdin + r.stdout + (r.stderr and not r.tty) + r.tty
        by_kind: dict[str, int] = {}
        while len(by_kind) < expected:
            sid = await self.arrived.get()
            by_kind[self.streams[sid].kind] = sid
        code = await self._program(by_kind)
        status = rc.exit_status(code, list(r.command))
        if code == 0:
            status = {"metadata": {}, "status": "Success"}
        await self.send(spdy.Frame(spdy.DATA, by_kind["error"], data=json.dumps(status).encode()))
        self.writer.close()  # the kubelet closes the whole connection once the command ends

    async def _program(self, by_kind: dict[str, int]) -> int:
        async def out(kind: str, data: bytes) -> None:
            if kind in by_kind:
                await self.send(spdy.Frame(spdy.DATA, by_kind[kind], data=data))

        argv = list(self.request.command)
        if argv[:1] == ["cat"]:
            inbox = self.streams[by_kind["stdin"]].inbox
            while (data := await inbox.get()) is not None:
                await out("stdout", data)
            return 0
        if argv[:1] == ["fail"]:
            await out("stderr", b"oops\n")
            return int(argv[1])
        if argv[:1] == ["flood"]:
            left = int(argv[1])
            while left > 0:
                chunk = min(left, 65536)
                await out("stdout", b"x" * chunk)
                left -= chunk
            return 0
        if argv[:1] == ["size"]:
            raw = await self.streams[by_kind["resize"]].inbox.get()
            size = json.loads(raw or b"{}")
            await out("stdout", f"{size['Width']}x{size['Height']}\n".encode())
            return 0
        await out("stderr", f"{argv[0]}: not found\n".encode())
        return 127

    # -- portforward

    async def _port_forward(self) -> None:
        pairs: dict[str, dict[str, int]] = {}
        while True:
            sid = await self.arrived.get()
            stream = self.streams[sid]
            pair = pairs.setdefault(stream.headers.get("requestid", [""])[0], {})
            pair[stream.kind] = sid
            if "data" in pair and "error" in pair:
                self.tasks.append(asyncio.create_task(self._forward(pair)))

    async def _forward(self, pair: dict[str, int]) -> None:
        data, error = pair["data"], pair["error"]
        port = int(self.streams[data].headers["port"][0])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            await self.send(spdy.Frame(spdy.DATA, error, data=(
                f"error forwarding port {port} to pod fake, uid : failed to connect to "
                f"localhost:{port}: {e.strerror}").encode()))
        else:
            async def upload() -> None:
                while (chunk := await self.streams[data].inbox.get()) is not None:
                    writer.write(chunk)
                    await writer.drain()
                writer.write_eof()

            up = asyncio.create_task(upload())
            while chunk := await reader.read(65536):
                await self.send(spdy.Frame(spdy.DATA, data, data=chunk))
            up.cancel()
            writer.close()
        await self.send(spdy.Frame(spdy.DATA, data, spdy.FLAG_FIN))
        await self.send(spdy.Frame(spdy.DATA, error, spdy.FLAG_FIN))
