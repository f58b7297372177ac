"""``pods/binding``: BindingREST (pkg/registry/core/pod/storage/storage.go), the scheduler's
write."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from svcnet.api import errors
from svcnet.api.errors import bad_request
from svcnet.api.schema import decode
from svcnet.apiserver.body import read_body
from svcnet.apiserver.common import (
    Obj,
    Served,
    created_status,
    dry_run_of,
    encoded_response,
)
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.util.clock import rfc3339

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers


async def serve_binding(handlers: Handlers, request: web.Request, info: RequestInfo, served: Served,
               user: User) -> web.Response:
    """``pods/binding``: assign a pod to a node, once (the scheduler's write)."""
    await handlers.authorize(user, "create", info, served)
    await handlers.require_namespace(info, served, creating=False)
    body = await read_body(request)
    if not isinstance(body, dict):
        raise bad_request("Binding must be a JSON object")
    binding = decode(body, api_version="v1", kind="Binding").obj
    target = binding.get("target") or {}
    node = str(target.get("name") or "")
    if not node:
        raise errors.invalid_error("Binding", info.name, [
            errors.required("target.name")])
    if target.get("kind", "Node") != "Node":
        raise errors.invalid_error("Binding", info.name, [
            errors.not_supported("target.kind", target.get("kind"), ["Node"])])
    now = rfc3339(handlers.ctx.clock.now())

    def assign(pod: Obj) -> Obj:
        spec = pod.setdefault("spec", {})
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.conflict("pods", info.name, "pod is being deleted")
        if spec.get("nodeName"):
            raise errors.conflict(
                "pods", info.name,
                f"pod {info.name} is already assigned to node {spec['nodeName']!r}")
        spec["nodeName"] = node
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or []
                      if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True",
                           "lastTransitionTime": now})
        status["conditions"] = conditions
        return pod

    if dry_run_of(request):
        assign(await served.registry.get(info.namespace, info.name))
    else:
        await served.registry.guaranteed_update(info.namespace, info.name, assign)
    return encoded_response(request, created_status(), "v1", "Status", 201)
