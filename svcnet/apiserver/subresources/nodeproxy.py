"""``nodes/{name}/proxy/{path}``: a GET relayed to the node agent (upstream's NodeREST proxy,
pkg/registry/core/node/rest/proxy.go, read-only here).

Theory of operation
-------------------
The caller needs ``get`` on ``nodes/proxy`` (upstream's permission for the kubelet API: only
admins have it by default). The request goes to the node's agent at
``https://<InternalIP>:<port>/<path>?<query>`` through :class:`svcnet.apiserver.nodeclient.
NodeClient` (the API server's kubelet client certificate, the node's serving certificate
checked against the cluster CA), and the answer's status, content type and body come back as
they are. svcnet's dashboard reads ``/stats/services`` this way, as tools read the kubelet's
``/stats/summary``. Only GET is relayed: the node's writing endpoints (exec, attach,
port-forward) have their own pod subresources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from svcnet.api.errors import StatusError
from svcnet.apiserver.common import Served
from svcnet.apiserver.nodeclient import unreachable
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.apiserver.subresources.log import node_client

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers

MAX_BODY = 16 << 20


def is_node_proxy(info: RequestInfo) -> bool:
    return info.group == "" and info.resource == "nodes" and info.subresource == "proxy"


async def serve_node_proxy(handlers: Handlers, request: web.Request, info: RequestInfo,
                           served: Served, user: User) -> web.StreamResponse:
    if request.method != "GET":
        raise StatusError(405, "MethodNotAllowed",
                          "only GET is relayed to the node through nodes/proxy")
    await handlers.authorize(user, "get", info, served)
    node = await served.registry.get("", info.name)
    client = node_client(handlers)
    parts = [p for p in info.path.split("/") if p]
    if not parts:
        raise StatusError(404, "NotFound", "nodes/proxy needs a path on the node")
    url = client.url(node, *parts)
    try:
        async with client.session.get(url, params=request.query) as upstream:
            body = await upstream.content.read(MAX_BODY)
            return web.Response(body=body, status=upstream.status,
                                content_type=upstream.content_type)
    except (aiohttp.ClientError, OSError) as e:
        raise unreachable(info.name, e) from None
