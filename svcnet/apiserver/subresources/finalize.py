"""``namespaces/finalize``: FinalizeREST (pkg/registry/core/namespace/storage/storage.go), the
namespace controller's write that removes its finalizer from ``spec.finalizers``.

Only PUT (discovery's ``update``): the body is the Namespace, stored with the namespace's
status kept (:class:`svcnet.registry.namespaces.NamespaceRegistry.finalize`). A namespace being
deleted whose last finalizer this removes is deleted by the same request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from svcnet.apiserver.body import read_body
from svcnet.apiserver.common import (
    Served,
    decode_object,
    dry_run_of,
    json_response,
    user_agent_manager,
    with_type,
)
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.registry.namespaces import NamespaceRegistry

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers


async def serve_finalize(handlers: Handlers, request: web.Request, info: RequestInfo,
                         served: Served, user: User) -> web.Response:
    await handlers.authorize(user, "update", info, served)
    registry = served.registry
    assert isinstance(registry, NamespaceRegistry)
    warnings: list[str] = []
    obj = decode_object(await read_body(request), served, request, warnings)
    manager = request.query.get("fieldManager", "") or user_agent_manager(request)
    written = await registry.finalize(
        info.name, obj, dry_run=dry_run_of(request),
        before_write=handlers.managed_fields(served, manager, "Update", "finalize"))
    return json_response(with_type(written, served), 200, warnings)
