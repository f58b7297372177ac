"""``pods/log``: LogREST (pkg/registry/core/pod/rest/log.go), proxied to the pod's node agent.

The options are validated here (``ValidatePodLogOptions``: 422 on ``PodLogOptions``), the pod
and container checked, then the request goes to the node's ``/containerLogs`` (strategy.go's
``LogLocation``) through :class:`svcnet.apiserver.nodeclient.NodeClient`, and its answer is
streamed back as it arrives.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from svcnet.api import errors
from svcnet.api.errors import StatusError, bad_request
from svcnet.apiserver.common import Served, query_bool
from svcnet.apiserver.nodeclient import NodeClient, unreachable, upstream_failure
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.util.clock import parse_time, rfc3339

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers

Obj = dict[str, Any]


def log_options(request: web.Request, name: str) -> dict[str, str]:
    """The query the node gets; a 400 for a number that is not one, 422 for a bad value."""
    found: list[errors.FieldError] = []
    out: dict[str, str] = {}
    for key, least in (("tailLines", 0), ("limitBytes", 1), ("sinceSeconds", 1)):
        value = request.query.get(key)
        if value is None:
            continue
        try:
            n = int(value)
        except ValueError:
            raise bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
        if n < least:
            found.append(errors.invalid(key, n, "must be greater than or equal to 0"
                                        if least == 0 else "must be greater than 0"))
        out[key] = str(n)
    if "sinceSeconds" in request.query and "sinceTime" in request.query:
        found.append(errors.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be "
                                      "specified"))
    if found:
        raise errors.invalid_error("PodLogOptions", name, found)
    if (since := request.query.get("sinceTime")) is not None:
        when = parse_time(since)
        if when is None:  # metav1.Time's query form is RFC 3339 (Go's time.Parse)
            raise bad_request(f'parsing time "{since}" as "2006-01-02T15:04:05Z07:00": '
                              f'cannot parse "{since}" as "2006"')
        out["sinceTime"] = rfc3339(when)
    for key in ("follow", "previous", "timestamps"):
        if query_bool(request, key):
            out[key] = "true"
    return out


def pod_container(pod: Obj, requested: str, name: str) -> str:
    """The container a request addresses (the only one when none is named), checked."""
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in spec.get("containers") or []]
    container = requested or (names[0] if len(names) == 1 else "")
    if not container:
        raise bad_request(f"a container name must be specified for pod {name}, "
                          f"choose one of: [{' '.join(names)}]")
    if container not in names + [str(c.get("name")) for c in spec.get("initContainers") or []]:
        raise bad_request(f"container {container} is not valid for pod {name}")
    return container


async def pod_node(handlers: Handlers, pod: Obj, name: str) -> Obj:
    """The Node object of the pod's node (a 400 when it has none, as upstream's
    "pod does not have a host assigned")."""
    node_name = (pod.get("spec") or {}).get("nodeName") or ""
    if not node_name:
        raise bad_request(f"pod {name} does not have a host assigned")
    try:
        return await handlers.ctx.served[("", "v1", "nodes")].registry.get("", node_name)
    except StatusError as e:
        if e.code == 404:
            raise bad_request(f"node {node_name} for pod {name} was not found") from None
        raise


def node_client(handlers: Handlers) -> NodeClient:
    client = handlers.ctx.node_client
    if client is None:
        raise StatusError(503, "ServiceUnavailable", "this server cannot reach node agents")
    return client


async def serve_log(handlers: Handlers, request: web.Request, info: RequestInfo, served: Served,
                    user: User) -> web.StreamResponse:
    """``pods/log``: the container's log, from its node (``follow`` streams it)."""
    await handlers.authorize(user, "get", info, served)
    query = log_options(request, info.name)
    pod = await served.registry.get(info.namespace, info.name)
    container = pod_container(pod, request.query.get("container", ""), info.name)
    node = await pod_node(handlers, pod, info.name)
    client = node_client(handlers)
    url = client.url(node, "containerLogs", info.namespace, info.name, container)
    node_name = str(node["metadata"]["name"])
    try:
        upstream = await client.session.get(url, params=query)
    except (aiohttp.ClientError, OSError) as e:
        raise unreachable(node_name, e) from None
    async with upstream:
        if upstream.status >= 300:
            raise upstream_failure(upstream.status, await upstream.read())
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
    return response
