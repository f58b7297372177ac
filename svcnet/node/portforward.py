"""``portForward`` on the node: TCP connections to ``localhost:PORT`` inside the pod's network
namespace, carried over a WebSocket.

Theory of operation
-------------------
Followed: pkg/kubelet/cri/streaming/portforward/websocket.go (the WebSocket protocol) and
portforward.go / the runtimes' PortForward (dial localhost:port in the pod's netns).

The ``ports`` query names the ports (repeated, or comma-separated). Port number ``i`` gets
channel ``2i`` for data and ``2i+1`` for errors; the server's first message on each is the
port (two bytes, little-endian). The sockets are created on a thread inside the pod's network
namespace (a socket belongs to the namespace it was created in: :mod:`svcnet.util.nsthread`),
then connected and relayed by the event loop. A port nobody listens on gets its error on its
error channel, as the kubelet words it; the others carry on. The WebSocket closes when every
connection has ended or the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from svcnet.api import remotecommand as rc
from svcnet.node.exec import Channels, accept
from svcnet.node.spdyforward import serve_spdy
from svcnet.util.nsthread import NetnsThread

if TYPE_CHECKING:
    from svcnet.node.server import NodeServer

_READ = 64 * 1024


class PodDialer:
    """TCP connections to ``127.0.0.1:PORT`` inside a pod's network namespace: sockets are
    created on a thread in that namespace, then connected by the event loop."""

    def __init__(self, netns: str | None, uid: str) -> None:
        self.netns, self.uid = netns, uid
        self._thread = NetnsThread(netns) if netns else None

    async def dial(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connected streams, or OSError with the kubelet's message."""
        sock = await (self._thread.call(_socket) if self._thread else
                      asyncio.to_thread(_socket))
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except OSError as e:
            sock.close()
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            raise OSError(e.errno, (
                f"error forwarding port {port} to pod {self.uid}, uid : failed to connect to "
                f"localhost:{port} inside namespace {self.netns or 'of the node'}, IPv4: dial "
                f"tcp4 127.0.0.1:{port}: connect: {reason}")) from None
        return await asyncio.open_connection(sock=sock)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()


def _socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    return s


async def serve_port_forward(server: NodeServer, request: web.Request) -> web.StreamResponse:
    pod = server.pod(request.match_info["ns"], request.match_info["pod"])
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    dialer = PodDialer(server.runner.exec_context(pod, containers[0]).pod_netns,
                       str(pod["metadata"]["uid"]))
    offered = rc.offered_protocols(request.headers.get("Sec-WebSocket-Protocol", ""))
    try:
        if rc.negotiate(offered, rc.PORT_FORWARD_PROTOCOLS) == rc.SPDY_PORT_FORWARD:
            chans = await accept(request, rc.PORT_FORWARD_PROTOCOLS)
            await serve_spdy(chans.ws, dialer)
            return chans.ws
        ports = rc.parse_ports(request.query.getall("ports", []))
        chans = await accept(request, rc.PORT_FORWARD_PROTOCOLS)
        await _serve_channels(chans, dialer, ports)
        return chans.ws
    finally:
        dialer.close()


async def _serve_channels(chans: Channels, dialer: PodDialer, ports: list[int]) -> None:
    """The channel protocol: per port a data and an error channel."""
    streams: dict[int, asyncio.StreamWriter] = {}
    tasks = []
    try:
        for i, port in enumerate(ports):
            await chans.send(rc.data_channel(i), rc.port_prefix(port))
            await chans.send(rc.error_channel(i), rc.port_prefix(port))
            try:
                reader, writer = await dialer.dial(port)
            except OSError as e:
                await chans.send(rc.error_channel(i), str(e.strerror).encode())
                continue
            streams[rc.data_channel(i)] = writer
            tasks.append(asyncio.create_task(_to_client(chans, rc.data_channel(i), reader)))
        client = asyncio.create_task(_from_client(chans, streams))
        if tasks:
            relays = asyncio.create_task(_all(tasks))
            await asyncio.wait([client, relays], return_when=asyncio.FIRST_COMPLETED)
            relays.cancel()
        client.cancel()
    finally:
        for t in tasks:
            t.cancel()
        for w in streams.values():
            w.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await chans.ws.close()


async def _all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks)


async def _to_client(chans: Channels, channel: int, reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(_READ):
            await chans.send(channel, data)


async def _from_client(chans: Channels, streams: dict[int, asyncio.StreamWriter]) -> None:
    async for msg in chans.ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            break
        try:
            channel, data = chans.protocol.decode(msg.data)
        except rc.ProtocolError:
            continue
        writer = streams.get(channel)
        if writer is None or not data:
            continue
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
