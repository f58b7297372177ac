"""``exec``, ``attach`` and ``port-forward`` of CRI containers: the API server's WebSocket,
bridged to the container runtime's streaming server.

Theory of operation
-------------------
Followed: pkg/kubelet/server/server.go (getExec, getAttach, getPortForward: the kubelet asks
the runtime for a streaming URL and proxies the client to it), client-go's
tools/remotecommand (v4 streams: ``error``, ``stdin``, ``stdout``, ``stderr``, ``resize``;
errorDecoderV4) and tools/portforward (a ``data`` and an ``error`` stream per connection,
paired by ``requestID``).

The kubelet proxies the client's own SPDY connection byte for byte; here the API server
already ends the client's protocol and speaks WebSocket channels to the node agent
(:mod:`svcnet.node.exec`), so the agent translates: it asks CRI for the URL
(:meth:`CriRuntime.exec_url`, ``attach_url``, ``port_forward_url``), opens SPDY to it as
client-go would (:mod:`svcnet.node.spdyclient`), and maps channels to streams:

* **exec / attach** (protocol ``v4.channel.k8s.io``): one stream per requested standard
  stream, plus ``error`` and, with a TTY, ``resize``. Channel 0 is written to ``stdin``;
  v5's close signal half-closes it (so ``kubectl exec -i … < file`` ends); resize messages go
  to ``resize`` as client-go encodes them (``{"Width":…,"Height":…}``). ``stdout`` and
  ``stderr`` are copied to channels 1 and 2. The runtime writes the command's Status on
  ``error`` when it ends (nothing for success, as errorDecoderV4 reads it), and that Status
  is what the client gets. A client that leaves closes the session.
* **port-forward** (protocol ``portforward.k8s.io``): one session per request (the URL is
  single-use) carries every connection: :class:`CriDialer` opens an ``error`` stream (half-
  closed at once: nobody writes to it but the runtime) and a ``data`` stream for each dial.
  The runtime connects to ``localhost:PORT`` in the sandbox's network namespace; when that
  fails it writes why on ``error`` before finishing ``data``, so the reason is read when the
  data ends (:meth:`CriConnection.error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from svcnet.api import remotecommand as rc
from svcnet.node.cri import CriError
from svcnet.node.podconn import Refused
from svcnet.node.spdyclient import ClientStream, SpdyClient, UpgradeError

if TYPE_CHECKING:
    from svcnet.node.exec import Channels, StreamOptions

    #: :func:`svcnet.node.exec._drain_client`: reads the client's channels into callbacks.
    DrainClient = Callable[[Channels, Callable[[bytes], Awaitable[None]],
                            Callable[[], Awaitable[None]], Callable[[int, int], Awaitable[None]]],
                           Coroutine[Any, Any, None]]

log = logging.getLogger(__name__)

_ERROR_AFTER_DATA = 1.0
"""Seconds to wait for a port-forward error stream to end after its data stream did."""


async def remote_command(chans: Channels, opts: StreamOptions, url: str,
                         drain_client: DrainClient) -> None:
    """Run one exec or attach at ``url``; the client gets its output and Status."""
    try:
        session = await SpdyClient.connect(url, (rc.V4,))
    except UpgradeError as e:
        await chans.finish(rc.failure_status(f"error dialing backend: {e}"))
        return
    try:
        await _bridge(chans, opts, session, drain_client)
    except ConnectionError as e:
        await chans.finish(rc.failure_status(f"the runtime's stream ended: {e}"))
    finally:
        await session.close()


async def _bridge(chans: Channels, opts: StreamOptions, session: SpdyClient,
                  drain_client: DrainClient) -> None:
    async def stream(kind: str, wanted: bool) -> ClientStream | None:
        return await session.open({"streamType": kind}) if wanted else None

    error = await session.open({"streamType": "error"})
    stdin = await stream("stdin", opts.stdin)
    stdout = await stream("stdout", opts.stdout)
    stderr = await stream("stderr", opts.stderr)
    resize = await stream("resize", opts.tty)

    async def pump(source: ClientStream | None, channel: int) -> None:
        if source is not None:
            while data := await source.read():
                await chans.send(channel, data)

    async def to_stdin(data: bytes) -> None:
        if stdin is not None:
            await stdin.write(data)

    async def close_stdin() -> None:
        if stdin is not None:
            await stdin.close_write()

    async def on_resize(columns: int, rows: int) -> None:
        if resize is not None:
            await resize.write(json.dumps({"Width": columns, "Height": rows}).encode())

    pumps = [asyncio.create_task(pump(stdout, rc.STDOUT)),
             asyncio.create_task(pump(stderr, rc.STDERR))]
    status = asyncio.create_task(error.read_all())
    client = asyncio.create_task(drain_client(chans, to_stdin, close_stdin, on_resize))
    tasks = (*pumps, status, client)
    try:
        await asyncio.wait({status, client}, return_when=asyncio.FIRST_COMPLETED)
        if status.done() and not client.done():
            # The runtime wrote the Status after the output, and closes the session: the
            # pumps end once the client has taken what is still buffered, or it leaves.
            while not client.done() and not all(p.done() for p in pumps):
                await asyncio.wait({*(p for p in pumps if not p.done()), client},
                                   return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:  # the WebSocket's reader must be gone before it is closed
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if not status.cancelled() and status.exception() is None:
        await chans.finish(decode_status(status.result()))
    # else the client left: closing the session ends the runtime's side


def decode_status(payload: bytes) -> dict[str, Any]:
    """The v4 error stream's Status; empty means success (client-go's errorDecoderV4)."""
    if not payload.strip():
        return {"metadata": {}, "status": "Success"}
    try:
        status = json.loads(payload)
    except ValueError:
        status = None
    if not isinstance(status, dict) or "status" not in status:
        return rc.failure_status(payload.decode("utf-8", "replace"))
    return status


class CriConnection:
    """One port-forward connection: a ``data`` stream, and the ``error`` stream that says
    why it failed."""

    def __init__(self, data: ClientStream, error: ClientStream) -> None:
        self._data = data
        self._error_stream = error
        self._error = asyncio.create_task(error.read_all())

    async def read(self) -> bytes:
        return await self._data.read()

    async def write(self, data: bytes) -> None:
        await self._data.write(data)

    async def write_eof(self) -> None:
        await self._data.close_write()

    async def close(self) -> None:
        """Both streams reset: the session forgets them (it carries the next connection)."""
        self._error.cancel()
        await self._data.reset()
        await self._error_stream.reset()

    async def error(self) -> str:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, ConnectionError):
            async with asyncio.timeout(_ERROR_AFTER_DATA):
                return (await asyncio.shield(self._error)).decode("utf-8", "replace")
        return ""


class CriDialer:
    """Connections to a CRI pod's ports through the runtime's streaming server: one SPDY
    session per port-forward request, opened at the first dial."""

    def __init__(self, url: Callable[[], Awaitable[str]], pod: str) -> None:
        self._url = url
        self._pod = pod
        self._session: SpdyClient | None = None
        self._lock = asyncio.Lock()
        self._requests = 0

    async def _connected(self) -> SpdyClient:
        async with self._lock:
            if self._session is None:
                self._session = await SpdyClient.connect(await self._url(),
                                                         (rc.PORT_FORWARD_V1,))
            return self._session

    async def dial(self, port: int) -> CriConnection | Refused:
        try:
            session = await self._connected()
            request = {"port": str(port), "requestID": str(self._requests)}
            self._requests += 1
            error = await session.open({"streamType": "error", **request})
            await error.close_write()
            data = await session.open({"streamType": "data", **request})
        except (UpgradeError, CriError, ConnectionError) as e:
            return Refused(f"error forwarding port {port} to pod {self._pod}: {e}")
        return CriConnection(data, error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

