"""The client end of a SPDY/3.1 session over an HTTP upgrade: how the node agent talks to the
container runtime's streaming server (``kubectl exec``, ``attach`` and ``port-forward`` of
containers run through CRI).

Theory of operation
-------------------
Followed: staging/src/k8s.io/apimachinery/pkg/util/httpstream/spdy/roundtripper.go and
connection.go (the upgrade and the client's streams), over moby/spdystream's session rules
(the framing itself is :mod:`svcnet.api.spdy`).

A CRI runtime answers ``Exec``, ``Attach`` and ``PortForward`` with a one-time URL on its
streaming server (containerd: ``http://127.0.0.1:PORT/exec/TOKEN``). The client sends ``GET``
with ``Connection: Upgrade``, ``Upgrade: SPDY/3.1`` and one ``X-Stream-Protocol-Version`` per
protocol it speaks; the server answers ``101 Switching Protocols`` naming the one it chose (any
other status is a refusal whose body says why), and from then on the connection carries SPDY
frames. The client opens streams (odd ids, from 1) with ``SYN_STREAM`` frames whose headers
say what each stream is for (``streamType``…) and waits for each ``SYN_REPLY``, as client-go
does. ``DATA`` frames carry the bytes; an empty ``DATA`` with ``FIN`` half-closes a direction;
``RST_STREAM`` drops a stream; ``PING`` is echoed; ``GOAWAY`` stops new streams, and the
connection's end finishes every stream. There is no SPDY flow control (spdystream does none),
but there is back-pressure as in Go: a stream buffers at most 1 MiB that its reader has not
taken, and the session stops reading the connection until it has (the server's TCP window then
stops the runtime), so a fast container and a slow client never pile up output in the agent.
Streams finished both ways, or reset, are forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from svcnet.api import spdy
from svcnet.util.bytequeue import ByteQueue

log = logging.getLogger(__name__)

STREAM_REPLY_TIMEOUT = 30.0
"""Seconds to wait for a stream's ``SYN_REPLY`` (client-go's createStreamResponseTimeout)."""

_MAX_RESPONSE_HEAD = 64 * 1024
_READ = 64 * 1024


class UpgradeError(Exception):
    """The streaming server refused the upgrade (its status and body), or was unreachable."""


class ClientStream:
    """One stream the client opened: what the server sends, in order (at most
    :data:`~svcnet.util.bytequeue.DEFAULT_LIMIT` bytes buffered: the session stops reading
    until they are taken); writes; half-close."""

    def __init__(self, session: SpdyClient, stream_id: int) -> None:
        self.session = session
        self.id = stream_id
        self.replied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox = ByteQueue()
        self._ended = False
        self._write_closed = False

    async def read(self) -> bytes:
        """The next bytes from the server; ``b""`` once it finished (or reset) the stream."""
        return await self._inbox.get()

    async def read_all(self) -> bytes:
        chunks = []
        while data := await self.read():
            chunks.append(data)
        return b"".join(chunks)

    async def write(self, data: bytes) -> None:
        if self._write_closed:
            return
        for at in range(0, len(data), spdy.MAX_DATA):
            await self.session.send(spdy.Frame(spdy.DATA, self.id,
                                               data=data[at:at + spdy.MAX_DATA]))

    async def close_write(self) -> None:
        """Half-close: the server reads EOF (a command's stdin ends)."""
        if not self._write_closed:
            self._write_closed = True
            with contextlib.suppress(ConnectionError):
                await self.session.send(spdy.Frame(spdy.DATA, self.id, spdy.FLAG_FIN))
            self.session._forget_if_done(self)

    async def reset(self) -> None:
        """Drop the stream both ways (RST_STREAM); the session forgets it."""
        already = self._write_closed and self._ended
        self._write_closed = True
        self._end()
        self.session._forget(self)
        if not already:
            with contextlib.suppress(ConnectionError):
                await self.session.send(spdy.Frame(spdy.RST_STREAM, self.id,
                                                   value=spdy.RST_CANCEL))

    async def _receive(self, data: bytes) -> None:
        await self._inbox.put(data)

    def _end(self) -> None:
        self._ended = True
        self._inbox.close()


class SpdyClient:
    """One upgraded connection and its streams (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 protocol: str, early: bytes = b"") -> None:
        self.protocol = protocol
        """The ``X-Stream-Protocol-Version`` the server chose."""
        self._reader, self._writer = reader, writer
        self._codec = spdy.Codec()
        self._send_lock = asyncio.Lock()
        self._next_id = 1
        self._streams: dict[int, ClientStream] = {}
        self._closed = False
        self._goaway = False
        self._pump = asyncio.create_task(self._read_loop(early), name="spdy client")

    @classmethod
    async def connect(cls, url: str, protocols: Sequence[str],
                      timeout: float = 10.0) -> SpdyClient:
        """Upgrade ``url`` (``http://HOST:PORT/PATH``) to SPDY, offering ``protocols``."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UpgradeError(f"unsupported streaming URL {url!r}")
        port = parts.port or 80
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(parts.hostname, port)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                head = [f"GET {path or '/'} HTTP/1.1", f"Host: {parts.netloc}",
                        "Connection: Upgrade", "Upgrade: SPDY/3.1",
                        *(f"X-Stream-Protocol-Version: {p}" for p in protocols), "", ""]
                writer.write("\r\n".join(head).encode("latin-1"))
                status, headers, early = await _response_head(reader)
            if status != 101:
                body = early
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(2):
                        body += await reader.read(_READ)
                raise UpgradeError(body.decode("utf-8", "replace").strip()
                                   or f"the streaming server answered {status}")
            chosen = headers.get("x-stream-protocol-version", "")
            if protocols and chosen not in protocols:
                raise UpgradeError(f"the streaming server chose protocol {chosen!r}, not one "
                                   f"of {list(protocols)}")
        except BaseException as e:
            if writer is not None:
                writer.close()
            if isinstance(e, (OSError, TimeoutError)):
                raise UpgradeError(f"cannot reach the streaming server at {parts.netloc}: "
                                   f"{e or 'timed out'}") from None
            raise
        return cls(reader, writer, chosen, early)

    async def open(self, headers: Mapping[str, str]) -> ClientStream:
        """A new stream with these headers, once the server replied to it."""
        if self._closed or self._goaway:
            raise ConnectionError("the SPDY session is closed")
        stream = ClientStream(self, self._next_id)
        self._next_id += 2
        self._streams[stream.id] = stream
        await self.send(spdy.Frame(spdy.SYN_STREAM, stream.id,
                                   headers={k.lower(): [v] for k, v in headers.items()}))
        try:
            async with asyncio.timeout(STREAM_REPLY_TIMEOUT):
                await stream.replied
        except TimeoutError:
            await stream.reset()
            raise ConnectionError("timed out waiting for the streaming server to accept a "
                                  "stream") from None
        except ConnectionError:
            self._forget(stream)
            raise
        return stream

    async def send(self, frame: spdy.Frame) -> None:
        if self._closed:
            raise ConnectionError("the SPDY session is closed")
        async with self._send_lock:  # one compression context: frames keep their order
            self._writer.write(self._codec.encode(frame))
            await self._writer.drain()

    async def close(self) -> None:
        """GOAWAY, then the connection; every stream ends."""
        if not self._closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(spdy.Frame(spdy.GOAWAY, self._next_id - 2 if
                                           self._next_id > 1 else 0))
        self._finish()
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump

    async def wait_closed(self) -> None:
        """Until the server ends the session."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._pump)

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in self._streams.values():
            stream._end()
            if not stream.replied.done():
                stream.replied.set_exception(ConnectionError("the SPDY session ended"))
        self._writer.close()

    def _forget(self, stream: ClientStream) -> None:
        self._streams.pop(stream.id, None)

    def _forget_if_done(self, stream: ClientStream) -> None:
        """A stream finished both ways is no longer the session's business."""
        if stream._ended and stream._write_closed:
            self._forget(stream)

    async def _read_loop(self, early: bytes) -> None:
        try:
            data = early
            while True:
                for frame in self._codec.feed(data):
                    if not await self._handle(frame):
                        return
                data = await self._reader.read(_READ)
                if not data:
                    return
        except (ConnectionError, spdy.SpdyError) as e:
            log.debug("streaming session ended: %s", e)
        finally:
            self._finish()

    async def _handle(self, frame: spdy.Frame) -> bool:
        stream = self._streams.get(frame.stream_id)
        if frame.kind == spdy.DATA and stream is not None:
            if frame.data:
                await stream._receive(frame.data)  # waits while the reader lags: back-pressure
            if frame.fin:
                stream._end()
                self._forget_if_done(stream)
        elif frame.kind == spdy.SYN_REPLY and stream is not None:
            if not stream.replied.done():
                stream.replied.set_result(None)
            if frame.fin:
                stream._end()
                self._forget_if_done(stream)
        elif frame.kind == spdy.RST_STREAM and stream is not None:
            if not stream.replied.done():
                stream.replied.set_exception(ConnectionError("the streaming server reset "
                                                             "the stream"))
            stream._write_closed = True
            stream._end()
            self._forget(stream)
        elif frame.kind == spdy.SYN_STREAM:  # servers open none here: refuse
            await self.send(spdy.Frame(spdy.RST_STREAM, frame.stream_id,
                                       value=spdy.RST_PROTOCOL_ERROR))
        elif frame.kind == spdy.PING:
            await self.send(frame)
        elif frame.kind == spdy.GOAWAY:
            # No new streams; those open carry on until the connection ends (spdystream).
            self._goaway = True
        return True


async def _response_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (lower-case names) and any bytes read past the head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await reader.read(_READ)
        if not chunk:
            raise ConnectionError("the streaming server closed the connection")
        buf += chunk
        if len(buf) > _MAX_RESPONSE_HEAD:
            raise ConnectionError("the streaming server's response head is too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise ConnectionError(f"not an HTTP response: {lines[0]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest
