"""``pods/log``: LogREST (pkg/registry/core/pod/rest/log.go)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from svcnet.api.errors import StatusError, bad_request
from svcnet.api.podlogs import ANNOTATION_STATE_DIR, log_files
from svcnet.apiserver.common import (
    Served,
    query_bool,
)
from svcnet.apiserver.requestinfo import RequestInfo

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers


async def serve_log(handlers: Handlers, request: web.Request, info: RequestInfo, served: Served,
                  user: User) -> web.StreamResponse:
    """``pods/log``: the container's log file, read from its node's state directory.

    ``container`` (required when the pod has several), ``previous``, ``tailLines`` and
    ``follow`` as kubectl sends them. Following ends when the pod is gone or restarts.
    """
    await handlers.authorize(user, "get", info, served)
    pod = await served.registry.get(info.namespace, info.name)
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = request.query.get("container") or (names[0] if len(names) == 1 else "")
    if not container:
        raise bad_request(f"a container name must be specified for pod {info.name}, "
                          f"choose one of: [{' '.join(names)}]")
    if container not in names + [c["name"] for c in (pod.get("spec") or {}).get(
            "initContainers") or []]:
        raise bad_request(f"container {container} is not valid for pod {info.name}")
    node_name = (pod.get("spec") or {}).get("nodeName") or ""
    state_dir = ""
    if node_name:
        with contextlib.suppress(StatusError):
            node = await handlers.ctx.served[("", "v1", "nodes")].registry.get("", node_name)
            state_dir = ((node.get("metadata") or {}).get("annotations") or {}).get(
                ANNOTATION_STATE_DIR, "")
    files = log_files(Path(state_dir), pod["metadata"]["uid"], container) if state_dir \
        else []
    previous = query_bool(request, "previous")
    if previous:
        files = files[:-1]
    if not files:
        what = "previous terminated container" if previous else "container"
        raise bad_request(f'{what} "{container}" in pod "{info.name}" is waiting to start: '
                          "no logs yet")
    path = files[-1]
    data = await asyncio.to_thread(path.read_bytes)
    tail = request.query.get("tailLines")
    if tail and tail.isdigit():
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-int(tail):]) if int(tail) else b""
    if not query_bool(request, "follow"):
        return web.Response(body=data, content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(data)
    offset = path.stat().st_size
    try:
        while True:
            await asyncio.sleep(0.2)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                break
            if size > offset:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read(size - offset)
                offset = size
                await response.write(chunk)
            newer = log_files(Path(state_dir), pod["metadata"]["uid"], container)
            if newer and newer[-1] != path:
                break  # the container restarted: kubectl logs -f ends here too
    except ConnectionResetError:
        return response
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
