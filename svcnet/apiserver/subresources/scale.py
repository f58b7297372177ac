"""``<resource>/scale``: ScaleREST (pkg/registry/apps/deployment/storage/storage.go), and a
custom resource's (apiextensions' ``customresource`` ScaleREST: the replicas and selector at the
paths its CRD names)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from svcnet.api import crds, errors, workloads
from svcnet.api.errors import StatusError, bad_request
from svcnet.api.schema import decode
from svcnet.apiserver import patch as patching
from svcnet.apiserver.body import read_body
from svcnet.apiserver.common import (
    Obj,
    Served,
    dry_run_of,
    encoded_response,
    method_not_allowed,
    user_agent_manager,
)
from svcnet.apiserver.requestinfo import RequestInfo

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers


async def serve_scale(handlers: Handlers, request: web.Request, info: RequestInfo, served: Served,
                user: User) -> tuple[str, web.StreamResponse]:
    """``<resource>/scale``: the object's ``spec.replicas`` as an ``autoscaling/v1`` Scale
    (ScaleREST). GET reads it; PUT and PATCH change the replicas through an ordinary
    update of the object (validation, generation). A Scale naming a resourceVersion makes
    the write conditional on it; otherwise it is retried on conflicts."""
    verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(request.method)
    if verb is None or not info.name:
        raise method_not_allowed()
    await handlers.authorize(user, verb, info, served)
    # A core/v1 ReplicationController's selector is a label map (scaleFromRC).
    map_selector = served.group == "" and served.resource == "replicationcontrollers"
    await handlers.require_namespace(info, served, creating=False)
    paths = served.scale_paths  # a custom resource's, from its CRD

    def scale_of(obj: Obj) -> Obj:
        return (crds.scale_of(obj, paths) if paths is not None
                else workloads.scale_from_object(obj, map_selector=map_selector))

    if verb == "get":
        current = await served.registry.get(info.namespace, info.name)
        return verb, encoded_response(request, scale_of(current), "autoscaling/v1", "Scale")
    body = await read_body(request)
    dry_run = dry_run_of(request)
    patch_type = patching.patch_type_of(request.content_type) if verb == "patch" else None
    if patch_type == "apply":
        raise StatusError(415, "UnsupportedMediaType",
                          "apply patches are not supported on the scale subresource")
    manager = request.query.get("fieldManager", "") or user_agent_manager(request)

    def scaled(current: Obj | None) -> Obj:
        """The object with the Scale's replicas (the Scale computed from this version)."""
        assert current is not None
        old_scale = scale_of(current)
        if patch_type is not None:
            wanted: Any = patching.apply_patch(patch_type, old_scale, body, "autoscaling/v1",
                                               "Scale")
        else:
            wanted = body
        if not isinstance(wanted, dict):
            raise bad_request("Scale must be a JSON object")
        if wanted.get("apiVersion", "autoscaling/v1") != "autoscaling/v1" or wanted.get(
                "kind", "Scale") != "Scale":
            raise bad_request(f"the body must be an autoscaling/v1 Scale, not "
                              f"{wanted.get('apiVersion')} {wanted.get('kind')}")
        scale = decode(wanted, api_version="autoscaling/v1", kind="Scale").obj
        meta = scale.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != info.name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match "
                              f"the name on the URL ({info.name})")
        meta.setdefault("name", info.name)
        meta.setdefault("namespace", info.namespace)
        errs = workloads.validate_scale(scale)
        if errs:
            raise errors.invalid_error("Scale", info.name, errs, "autoscaling")
        # A Scale naming a resourceVersion is a precondition on the object's.
        return (crds.with_scale(current, scale, paths) if paths is not None
                else workloads.apply_scale(current, scale))

    written, _ = await served.registry.update_from(
        info.namespace, info.name, scaled, dry_run=dry_run,
        before_write=handlers.managed_fields(served, manager, "Update", "scale"))
    return verb, encoded_response(request, scale_of(written), "autoscaling/v1", "Scale")
