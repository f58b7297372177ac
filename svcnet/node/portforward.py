"""``portForward`` on the node: TCP connections to ``localhost:PORT`` inside the pod's network
namespace, carried over a WebSocket.

Theory of operation
-------------------
Followed: pkg/kubelet/cri/streaming/portforward/websocket.go (the WebSocket protocol).

How a connection is made depends on the pod's runtime (a :class:`~svcnet.node.podconn.Dialer`):
for the process runtime the agent dials itself (:class:`~svcnet.node.podconn.PodDialer`); for a
CRI pod the container runtime does, through its streaming server
(:class:`svcnet.node.cristreams.CriDialer`).

The ``ports`` query names the ports (repeated, or comma-separated). Port number ``i`` gets
channel ``2i`` for data and ``2i+1`` for errors; the server's first message on each is the
port (two bytes, little-endian). A port nobody listens on gets its error on its error channel,
in the words of whoever dialled; the others carry on. The WebSocket closes when every
connection has ended or the client leaves. kubectl's SPDY-in-WebSocket variant is
:mod:`svcnet.node.spdyforward`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from svcnet.api import remotecommand as rc
from svcnet.node.exec import Channels, accept
from svcnet.node.podconn import Dialer, PodConnection, PodDialer
from svcnet.node.spdyforward import serve_spdy

if TYPE_CHECKING:
    from svcnet.node.server import NodeServer


async def serve_port_forward(server: NodeServer, request: web.Request) -> web.StreamResponse:
    from svcnet.node.cristreams import CriDialer

    pod = server.pod(request.match_info["ns"], request.match_info["pod"])
    uid = str(pod["metadata"]["uid"])
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    dialer: Dialer
    if (sandbox := server.runner.sandbox(uid)) is not None:
        cri, sandbox_id = sandbox
        dialer = CriDialer(lambda: cri.port_forward_url(sandbox_id), sandbox_id)
    else:
        dialer = PodDialer(server.runner.exec_context(pod, containers[0]).pod_netns, uid)
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
        await dialer.close()


async def _serve_channels(chans: Channels, dialer: Dialer, ports: list[int]) -> None:
    """The channel protocol: per port a data and an error channel."""
    conns: dict[int, PodConnection] = {}
    tasks = []
    try:
        for i, port in enumerate(ports):
            await chans.send(rc.data_channel(i), rc.port_prefix(port))
            await chans.send(rc.error_channel(i), rc.port_prefix(port))
            conn = await dialer.dial(port)
            conns[rc.data_channel(i)] = conn
            tasks.append(asyncio.create_task(_to_client(chans, i, conn)))
        client = asyncio.create_task(_from_client(chans, conns))
        relays = asyncio.create_task(_all(tasks))
        await asyncio.wait([client, relays], return_when=asyncio.FIRST_COMPLETED)
        relays.cancel()
        client.cancel()
    finally:
        for t in tasks:
            t.cancel()
        for conn in conns.values():
            await conn.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await chans.ws.close()


async def _all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks)


async def _to_client(chans: Channels, index: int, conn: PodConnection) -> None:
    """The pod's bytes on the port's data channel; then why it failed, if it did."""
    with contextlib.suppress(ConnectionError):
        while data := await conn.read():
            await chans.send(rc.data_channel(index), data)
        if message := await conn.error():
            await chans.send(rc.error_channel(index), message.encode())


async def _from_client(chans: Channels, conns: dict[int, PodConnection]) -> None:
    async for msg in chans.ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            break
        try:
            channel, data = chans.protocol.decode(msg.data)
        except rc.ProtocolError:
            continue
        conn = conns.get(channel)
        if conn is not None and data:
            await conn.write(data)
