"""``pods/exec``, ``pods/attach`` and ``pods/portforward``: the client's WebSocket relayed to
the pod's node agent (pkg/registry/core/pod/rest/subresources.go, ExecREST, AttachREST,
PortForwardREST; the upgrade-aware proxy of
staging/src/k8s.io/apimachinery/pkg/util/proxy/upgradeaware.go).

Authorization is ``create`` on the subresource whatever the method (a WebSocket upgrade is a
GET; upstream authorizes those as ``create`` too since its
AuthorizePodWebsocketUpgradeCreatePermission). The API server opens its own WebSocket to the
node first, offering exactly the subprotocols the client offered; the node's choice is the
one the client then gets, so the protocol is negotiated end to end. After that, messages are
relayed unchanged in both directions (text frames stay text: base64 protocols) until either
side closes, and the close goes on to the other side.

A plain SPDY/3.1 upgrade (kubectl before 1.30) is accepted here and relayed over the same
kind of WebSocket to the node: :mod:`svcnet.apiserver.subresources.spdyrelay`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import WSMsgType, web

from svcnet.api.errors import bad_request
from svcnet.api.remotecommand import (
    MAX_MESSAGE_BYTES,
    PORT_FORWARD_PROTOCOLS,
    SPDY_PORT_FORWARD,
    V5,
    negotiate,
    offered_protocols,
    parse_ports,
)
from svcnet.apiserver.common import Served
from svcnet.apiserver.nodeclient import unreachable, upstream_failure
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.apiserver.subresources.log import Obj, node_client, pod_container, pod_node
from svcnet.apiserver.subresources.spdyrelay import (
    SPDY_EXEC_PROTOCOLS,
    SPDY_PORT_FORWARD_PROTOCOLS,
    ExecBridge,
    Upgraded,
    is_spdy_upgrade,
    negotiate_stream_protocol,
    relay_port_forward,
)

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers

STREAM_SUBRESOURCES = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
"""Subresource → the node agent's path (kubelet's)."""


async def serve_stream(handlers: Handlers, request: web.Request, info: RequestInfo,
                       served: Served, user: User) -> web.StreamResponse:
    await handlers.authorize(user, "create", info, served)
    pod = await served.registry.get(info.namespace, info.name)
    parts = [info.namespace, info.name]
    spdy_upgrade = is_spdy_upgrade(request)
    offered = offered_protocols(request.headers.get("Sec-WebSocket-Protocol", ""))
    if info.subresource != "portforward":
        parts.append(pod_container(pod, request.query.get("container", ""), info.name))
    elif not spdy_upgrade and negotiate(offered, PORT_FORWARD_PROTOCOLS) != SPDY_PORT_FORWARD:
        parse_ports(request.query.getall("ports", []))  # SPDY names ports in its streams
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        raise bad_request(f"cannot {info.subresource} into a container in a completed pod; "
                          f"current phase is {pod['status']['phase']}")
    node = await pod_node(handlers, pod, info.name)
    params = [(k, v) for k, v in request.query.items() if k != "container"]
    path = [STREAM_SUBRESOURCES[info.subresource], *parts]
    if spdy_upgrade:
        return await _serve_spdy(handlers, request, info, node, path, params)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise bad_request("Upgrade request required")
    upstream = await _dial(handlers, node, path, params, offered)
    chosen = upstream.protocol
    ws = web.WebSocketResponse(protocols=(chosen,) if chosen else (),
                               max_msg_size=MAX_MESSAGE_BYTES)
    try:
        await ws.prepare(request)
        await relay(ws, upstream)
    finally:
        await upstream.close()
    return ws


async def _serve_spdy(handlers: Handlers, request: web.Request, info: RequestInfo,
                      node: Obj, path: list[str], params: list[tuple[str, str]]
                      ) -> web.StreamResponse:
    """kubectl before 1.30: plain SPDY, ended here and relayed over the node's WebSocket
    (spdyrelay.py)."""
    forward = info.subresource == "portforward"
    chosen = negotiate_stream_protocol(
        request, SPDY_PORT_FORWARD_PROTOCOLS if forward else SPDY_EXEC_PROTOCOLS)
    if not isinstance(chosen, str):
        return chosen  # the refusal
    upstream = await _dial(handlers, node, path, params,
                           [SPDY_PORT_FORWARD if forward else V5])
    try:
        conn = await Upgraded.accept(request, chosen)
        try:
            if forward:
                await relay_port_forward(conn, upstream)
            else:
                await ExecBridge(conn, upstream, chosen).run()
        finally:
            conn.close()
        return conn.response
    finally:
        await upstream.close()


async def _dial(handlers: Handlers, node: Obj, path: list[str],
                params: list[tuple[str, str]], protocols: list[str]
                ) -> aiohttp.ClientWebSocketResponse:
    """The node's WebSocket for this stream, offering these subprotocols."""
    client = node_client(handlers)
    url = client.url(node, *path)
    try:
        return await client.session.ws_connect(url, params=params, protocols=protocols,
                                               max_msg_size=MAX_MESSAGE_BYTES, autoping=True)
    except aiohttp.WSServerHandshakeError as e:
        # The node refused the upgrade (its Status body is not readable from here).
        raise upstream_failure(e.status, f"unable to upgrade connection: node "
                               f"{node['metadata']['name']} answered {e.status} "
                               f"({e.message})".encode()) from None
    except (aiohttp.ClientError, OSError) as e:
        raise unreachable(str(node["metadata"]["name"]), e) from None


async def relay(client: web.WebSocketResponse, node: aiohttp.ClientWebSocketResponse) -> None:
    async def pump(src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                   dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
        async for msg in src:
            if msg.type == WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await dst.send_str(msg.data)
            else:
                break
        code = src.close_code or aiohttp.WSCloseCode.OK
        with contextlib.suppress(ConnectionError, RuntimeError):
            await dst.close(code=code)

    tasks = [asyncio.create_task(pump(client, node)), asyncio.create_task(pump(node, client))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # The other direction ends once its side sees the close; give it a moment.
        await asyncio.wait(tasks, timeout=5)
    finally:
        for t in tasks:
            t.cancel()
