"""REST verbs over the registries: decode, authorize, call the registry, encode.

One :class:`Served` per resource binds its discovery facts to its registry. The request flow
for every verb is the same and short:

    parse path → authenticate → find Served → authorize → (namespace exists?) →
    decode body (size limit, JSON/YAML, apiVersion/kind, schema, fieldValidation) →
    registry call → encode (object, list, Table, or watch stream)

Everything a client can get wrong becomes a Kubernetes Status with a 4xx code; an unexpected
exception is logged and answered 500 without a traceback in the body.

A request with a large body (or about a large stored object) is *heavy*: its CPU-bound steps,
decoding, the registry's pure steps and encoding the answer, run on the CPU thread of
:mod:`svcnet.util.offload`, so that the event loop keeps serving everyone else meanwhile.

Writes computed from the current object (patch, apply, scale) go through the registry's one
retrying update (:meth:`svcnet.registry.generic.Registry.update_from`) and so through the
strategy; watches are served by :mod:`.watch`, subresources with REST storage of their own by
:mod:`.subresources`, and what they all share is in :mod:`.common`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from svcnet.api import errors
from svcnet.api.errors import StatusError
from svcnet.api.podrefs import (
    PERSISTENT_VOLUME,
    PERSISTENT_VOLUME_CLAIM,
    pod_claim_names,
    pod_config_references,
)
from svcnet.api.rbac import Attributes
from svcnet.apiserver import patch as patching, resources, tables
from svcnet.apiserver.apply import server_side_apply, update_managed_fields
from svcnet.apiserver.auth import NODE_GRAPH_RESOURCES, READ_VERBS, User, authorize, forbidden
from svcnet.apiserver.body import read_body
from svcnet.apiserver.clientcerts import peer_certificate
from svcnet.apiserver.common import (
    DEPRECATION_WARNING,
    METHOD_VERBS,
    Context,
    Obj,
    Served,
    decode_object,
    dry_run_of,
    encode_object,
    encoded_body_response,
    encoded_response,
    failure_response,
    include_object,
    json_response,
    matches,
    method_not_allowed,
    protobuf_codec,
    query_bool,
    selectors_of,
    single_object_name,
    user_agent_manager,
    with_type,
)
from svcnet.apiserver.deleteoptions import delete_options
from svcnet.apiserver.metricsapi import is_metrics_request, serve_metrics
from svcnet.apiserver.query import decode_continue, encode_continue, int64_param
from svcnet.apiserver.requestinfo import RequestInfo, parse_path
from svcnet.apiserver.reviews import REVIEWS, serve_review
from svcnet.apiserver.subresources.binding import serve_binding
from svcnet.apiserver.subresources.eviction import serve_eviction
from svcnet.apiserver.subresources.finalize import serve_finalize
from svcnet.apiserver.subresources.log import serve_log
from svcnet.apiserver.subresources.nodeproxy import is_node_proxy, serve_node_proxy
from svcnet.apiserver.subresources.scale import serve_scale
from svcnet.apiserver.subresources.stream import STREAM_SUBRESOURCES, serve_stream
from svcnet.apiserver.subresources.token import serve_token
from svcnet.apiserver.watch import serve_watch
from svcnet.registry import requestwarnings
from svcnet.storage.interface import Compacted, TooLarge, Unavailable
from svcnet.util import offload
from svcnet.util.clock import rfc3339

log = logging.getLogger(__name__)

_Subresource = Callable[["Handlers", web.Request, RequestInfo, Served, User],
                        Awaitable[web.StreamResponse]]
#: Subresources with REST types of their own (subresources/), by name: (verb, handler).
#: ``status`` goes through the ordinary verbs; ``scale`` reports its own verb.
_SUBRESOURCES: dict[str, tuple[str, _Subresource]] = {
    "log": ("get", serve_log),
    "binding": ("create", serve_binding),
    "eviction": ("create", serve_eviction),
    "token": ("create", serve_token),
    "finalize": ("update", serve_finalize),
    **dict.fromkeys(STREAM_SUBRESOURCES, ("connect", serve_stream)),
}


class Handlers:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- plumbing ---------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        verb, resource, code = request.method.lower(), "", 500
        try:
            info = parse_path(request.path)
            if info is None:
                raise errors.StatusError(404, "NotFound",
                                         "the server could not find the requested resource")
            resource = info.resource
            user = await self.ctx.authn.authenticate(request.headers.get("Authorization"),
                                                     peer_certificate(request))
            if (info.group, info.resource) in REVIEWS:
                verb = "create"
                answer = await serve_review(self, request, info, user)
                code = answer.status
                return answer
            if is_metrics_request(info):
                verb, answer = await serve_metrics(self, request, info, user, self.ctx.metrics)
                code = answer.status
                return answer
            served = self.ctx.served.get((info.group, info.version, info.resource))
            described = resources.by_resource(info.group, info.version, info.resource)
            if served is not None and described is not None and described.deprecation_warning:
                request[DEPRECATION_WARNING] = described.deprecation_warning
            if served is None or (info.subresource and info.subresource not in
                                  served.subresources and not is_node_proxy(info)) or \
                    _misaddressed(request, info, served):
                raise errors.StatusError(404, "NotFound",
                                         "the server could not find the requested resource")
            verb, response = await self._route(request, info, served, user)
            code = response.status
            return response
        except StatusError as e:
            code = e.code
            return failure_response(request, e)
        except Unavailable as e:
            err = errors.store_unavailable(str(e), timeout=e.timeout)
            code = err.code
            return failure_response(request, err)
        except TooLarge as e:
            err = errors.store_too_large(str(e))
            code = err.code
            return failure_response(request, err)
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            code = 500
            return failure_response(request, errors.internal_error("an unexpected error occurred"))
        finally:
            self.ctx.on_request(verb, resource, code, time.perf_counter() - started)

    async def _route(self, request: web.Request, info: RequestInfo, served: Served,
                     user: User) -> tuple[str, web.StreamResponse]:
        method = request.method
        if is_node_proxy(info):
            return "get", await serve_node_proxy(self, request, info, served, user)
        if info.subresource:
            # A subresource answers only the verbs its REST storage implements (a DELETE of
            # services/x/status is not a delete of the Service): 405 for the rest.
            if METHOD_VERBS.get(method) not in served.subresources[info.subresource]:
                raise method_not_allowed()
            if info.subresource == "scale":
                return await serve_scale(self, request, info, served, user)
            special = _SUBRESOURCES.get(info.subresource)
            if special is not None:
                verb, serve = special
                return verb, await serve(self, request, info, served, user)
        if method == "GET":
            if info.name:
                return "get", await self.get(request, info, served, user)
            if query_bool(request, "watch"):
                return "watch", await serve_watch(self, request, info, served, user)
            return "list", await self.list_collection(request, info, served, user)
        if method == "POST" and not info.name:
            return "create", await self.create(request, info, served, user)
        if method == "PUT" and info.name:
            return "update", await self.update(request, info, served, user)
        if method == "PATCH" and info.name:
            return "patch", await self.patch(request, info, served, user)
        if method == "DELETE" and info.name and not info.subresource:
            return "delete", await self.delete(request, info, served, user)
        if method == "DELETE" and not info.name and served.resource != "namespaces":
            return "deletecollection", await self.delete_collection(request, info, served,
                                                                     user)
        raise method_not_allowed()

    async def authorize(self, user: User, verb: str, info: RequestInfo, served: Served,
                         name: str | None = None, request: web.Request | None = None) -> None:
        name = info.name if name is None else name
        pod_node = None
        related = False
        if (user.node_name is not None and served.group == ""
                and served.resource in NODE_GRAPH_RESOURCES and verb in READ_VERBS):
            # list/watch: only of the one object a metadata.name field selector names.
            name = name or (single_object_name(request) if request is not None else "")
            related = bool(name) and await self._node_names_object(
                user.node_name, info.namespace, served.kind, name)
        if served.resource == "pods" and served.group == "" and name and (verb in (
                "update", "patch", "delete") or info.subresource == "log") and \
                user.node_name is not None:
            with contextlib.suppress(StatusError):
                pod = await served.registry.get(info.namespace, name)
                pod_node = (pod.get("spec") or {}).get("nodeName")
        if not authorize(user, verb, group=served.group, resource=served.resource,
                         namespace=info.namespace, name=name, subresource=info.subresource,
                         pod_node=pod_node, node_related=related) and \
                not await self.ctx.rbac.rbac_allows(user, Attributes(
                    verb, served.group, served.resource, info.subresource, info.namespace,
                    name)):
            reason = (f"no relationship found between node '{user.node_name}' and this object"
                      if served.resource in NODE_GRAPH_RESOURCES and served.group == ""
                      and user.node_name is not None and verb in READ_VERBS else "")
            raise forbidden(user, verb, served.resource, served.group, info.namespace, name,
                            info.subresource, reason)

    async def _node_names_object(self, node: str, namespace: str, kind: str,
                                 name: str) -> bool:
        """Whether a pod bound to ``node`` names ConfigMap/Secret/PersistentVolumeClaim
        ``namespace/name``, or the claim PersistentVolume ``name``'s ``claimRef`` names (the
        Node authorizer's ``node <- pod <- pvc <- pv``)."""
        pods = self.ctx.served.get(("", "v1", "pods"))
        if kind == PERSISTENT_VOLUME:
            volumes = self.ctx.served.get(("", "v1", "persistentvolumes"))
            if volumes is None:
                return False
            try:
                pv = await volumes.registry.get("", name)
            except StatusError:
                return False
            ref = (pv.get("spec") or {}).get("claimRef")
            if not isinstance(ref, Mapping) or not ref.get("name"):
                return False
            namespace, kind, name = (str(ref.get("namespace") or ""), PERSISTENT_VOLUME_CLAIM,
                                     str(ref["name"]))
        if pods is None or not namespace:
            return False
        page = await pods.registry.list(namespace)
        if kind == PERSISTENT_VOLUME_CLAIM:
            return any((p.get("spec") or {}).get("nodeName") == node
                       and name in pod_claim_names(p) for p in page.items)
        return any((p.get("spec") or {}).get("nodeName") == node
                   and (kind, name) in pod_config_references(p) for p in page.items)

    async def require_namespace(self, info: RequestInfo, served: Served,
                                 creating: bool, name: str = "") -> None:
        if not served.namespaced:
            return
        if not info.namespace:
            raise errors.StatusError(404, "NotFound",
                                     "the server could not find the requested resource")
        try:
            ns = await self.ctx.namespaces.get("", info.namespace)
        except StatusError:
            raise errors.not_found("namespaces", info.namespace) from None
        if creating and (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.namespace_terminating_error(served.resource, name, info.namespace,
                                                     served.group)

    async def _respond(self, request: web.Request, obj: Obj, served: Served,
                       status: int = 200, warnings: list[str] | None = None) -> web.Response:
        if tables.table_accepted(request.headers.get("Accept", "")):
            meta = obj.get("metadata") or {}
            table = tables.table_for([obj], api_version=served.api_version, kind=served.kind,
                                     include_object=include_object(request),
                                     now=self.ctx.clock.now(),
                                     resource_version=str(meta.get("resourceVersion", "")))
            return json_response(table, status, warnings)
        encoded = await offload.run(encode_object, request, obj, served.api_version, served.kind)
        return encoded_body_response(encoded, status, warnings)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, request: web.Request, info: RequestInfo, served: Served,
                  user: User) -> web.Response:
        await self.authorize(user, "get", info, served)
        obj = await served.registry.get(info.namespace, info.name)
        if served.retyped:
            obj = with_type(obj, served)
        return await self._respond(request, obj, served)

    async def list_collection(self, request: web.Request, info: RequestInfo, served: Served,
                              user: User) -> web.Response:
        await self.authorize(user, "list", info, served, request=request)
        label_sel, field_sel = selectors_of(request, served)
        limit = max(0, int64_param(request.query, "limit", 0) or 0)
        revision, start = 0, ""
        prefix = served.registry.list_prefix(info.namespace)
        token = request.query.get("continue", "")
        if token:
            revision, start = decode_continue(token, prefix)
        as_table = tables.table_accepted(request.headers.get("Accept", ""))
        as_protobuf = not as_table and protobuf_codec(request, served.api_version,
                                                      served.list_kind) is not None
        if label_sel is None and field_sel is None and not as_table and not as_protobuf \
                and not served.retyped:
            return await self._list_raw(served, info, limit, start, revision, bool(token))
        items: list[Obj] = []
        cont = ""
        try:
            page_rv = str(revision)
            # Keep reading pages until ``limit`` matching items are found (selectors filter).
            while True:
                page = await served.registry.list(
                    info.namespace, limit=limit * 2 if limit else 0, start_after=start,
                    revision=revision)
                revision = revision or int(page.resource_version)
                page_rv = page.resource_version if not token else str(revision)
                for obj in page.items:
                    if matches(obj, served, label_sel, field_sel):
                        items.append(with_type(obj, served))
                if limit and len(items) > limit:
                    last_meta = items[limit - 1]["metadata"]
                    cont = encode_continue(revision, served.registry.key(
                        last_meta.get("namespace", ""), last_meta["name"]), prefix)
                    items = items[:limit]
                    break
                if not page.continue_after:
                    break
                start = page.continue_after
        except Compacted:
            raise StatusError(410, "Expired",
                              "The provided continue parameter is too old to display a "
                              "consistent list result. You can start a new list without the "
                              "continue parameter.") from None
        meta: Obj = {"resourceVersion": page_rv}
        if cont:
            meta["continue"] = cont
        if as_table:
            table = tables.table_for(items, api_version=served.api_version, kind=served.kind,
                                     include_object=include_object(request),
                                     now=self.ctx.clock.now(), resource_version=page_rv)
            table["metadata"] = meta
            return json_response(table)
        for obj in items:
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
        return encoded_response(request, {"kind": served.list_kind,
                                          "apiVersion": served.api_version,
                                          "metadata": meta, "items": items},
                                served.api_version, served.list_kind)

    async def _list_raw(self, served: Served, info: RequestInfo, limit: int, start: str,
                        revision: int, continuing: bool) -> web.Response:
        """The common list (no selectors, JSON): stored bytes go out without re-encoding."""
        try:
            raw, rv, cont_key = await served.registry.list_raw(
                info.namespace, limit=limit, start_after=start, revision=revision)
        except Compacted:
            raise StatusError(410, "Expired",
                              "The provided continue parameter is too old to display a "
                              "consistent list result. You can start a new list without the "
                              "continue parameter.") from None
        # A token asking for the latest (a negative revision) continues at the store's now.
        list_rv = str(revision) if continuing and revision else rv
        meta: Obj = {"resourceVersion": list_rv}
        if cont_key:
            meta["continue"] = encode_continue(int(list_rv), cont_key,
                                               served.registry.list_prefix(info.namespace))
        head = json.dumps({"kind": f"{served.kind}List", "apiVersion": served.api_version,
                           "metadata": meta}, separators=(",", ":")).encode()
        body = head[:-1] + b',"items":[' + b",".join(raw) + b"]}"
        return web.Response(body=body, content_type="application/json")


    # -- writes -----------------------------------------------------------------------------

    async def create(self, request: web.Request, info: RequestInfo, served: Served,
                     user: User) -> web.Response:
        warnings: list[str] = []
        body = await read_body(request, (served.version, served.kind))
        obj = await offload.run(decode_object, body, served, request, warnings)
        name = str((obj.get("metadata") or {}).get("name") or "")
        await self.authorize(user, "create", info, served, name=name)
        await self.require_namespace(info, served, creating=True, name=name)
        manager = request.query.get("fieldManager", "") or user_agent_manager(request)
        with requestwarnings.recording() as earned:
            created = await served.registry.create(
                info.namespace, obj, dry_run=dry_run_of(request),
                before_write=self.managed_fields(served, manager, "Update", info.subresource))
        warnings.extend(earned)
        return await self._respond(request, with_type(created, served), served, 201, warnings)

    def managed_fields(self, served: Served, manager: str, operation: str,
                 subresource: str) -> Callable[[Obj | None, Obj], Obj]:
        now = rfc3339(self.ctx.clock.now())

        def record(old: Obj | None, new: Obj) -> Obj:
            return update_managed_fields(old, new, manager, operation, served.api_version,
                                         now, subresource=subresource)
        return record

    async def update(self, request: web.Request, info: RequestInfo, served: Served,
                     user: User) -> web.Response:
        await self.authorize(user, "update", info, served)
        await self.require_namespace(info, served, creating=False)
        warnings: list[str] = []
        body = await read_body(request, (served.version, served.kind))
        obj = await offload.run(decode_object, body, served, request, warnings)
        manager = request.query.get("fieldManager", "") or user_agent_manager(request)
        with requestwarnings.recording() as earned:
            updated = await served.registry.for_subresource(info.subresource).update(
                info.namespace, info.name, obj, dry_run=dry_run_of(request),
                status_only=info.subresource == "status",
                before_write=self.managed_fields(served, manager, "Update", info.subresource))
        warnings.extend(earned)
        return await self._respond(request, with_type(updated, served), served, 200, warnings)

    async def patch(self, request: web.Request, info: RequestInfo, served: Served,
                    user: User) -> web.Response:
        await self.authorize(user, "patch", info, served)
        await self.require_namespace(info, served, creating=False)
        # Custom resources have no strategic merge metadata: upstream's route refuses it (415).
        patch_type = patching.patch_type_of(request.content_type, strategic=not served.custom)
        body = await read_body(request)
        dry_run = dry_run_of(request)
        warnings: list[str] = []
        manager = request.query.get("fieldManager", "")
        force_param = request.query.get("force")
        patching.validate_patch_options(
            patch_type, manager,
            force=None if force_param is None else force_param.lower() == "true",
            dry_run=request.query.getall("dryRun", []),
            field_validation=request.query.get("fieldValidation", ""))
        if patch_type == "apply":
            return await self._apply(request, info, served, body, manager, dry_run, warnings,
                                     user)
        manager = manager or user_agent_manager(request)

        def patched(current: Obj | None) -> Obj:
            assert current is not None  # no create through a non-apply patch
            warnings.clear()  # a retry decodes again: its warnings, not twice
            return decode_object(patching.apply_patch(patch_type, current, body,
                                                      served.api_version, served.kind),
                                 served, request, warnings, strict=strict)

        def strict(err: StatusError) -> StatusError:
            if patch_type != "strategic":
                return err
            return patching.strict_patch_error(body, err.message)

        with requestwarnings.recording() as earned:
            updated, _ = await served.registry.for_subresource(info.subresource).update_from(
                info.namespace, info.name, patched, dry_run=dry_run,
                status_only=info.subresource == "status",
                before_write=self.managed_fields(served, manager, "Update", info.subresource))
        warnings.extend(earned)
        return await self._respond(request, with_type(updated, served), served, 200, warnings)

    async def _apply(self, request: web.Request, info: RequestInfo, served: Served, body: Any,
                     manager: str, dry_run: bool, warnings: list[str],
                     user: User) -> web.Response:
        applied = await offload.run(decode_object, body, served, request, warnings)
        force = query_bool(request, "force")
        now = rfc3339(self.ctx.clock.now())

        async def before_create() -> None:
            # An apply that creates is a create: the writer needs that verb too (upstream's
            # patch handler authorizes create in its create validation).
            await self.authorize(user, "create", info, served)
            # NamespaceLifecycle refuses a create in a namespace being deleted, apply's too.
            await self.require_namespace(info, served, creating=True, name=info.name)

        def merged(live: Obj | None) -> Obj:
            out = with_type(server_side_apply(live, applied, manager, force,
                                               served.api_version, served.kind, now,
                                               subresource=info.subresource), served)
            if live is not None:  # what was applied is merged into this version, no other
                out.setdefault("metadata", {})["resourceVersion"] = live["metadata"][
                    "resourceVersion"]
            return out

        with requestwarnings.recording() as earned:
            registry = served.registry.for_subresource(info.subresource)
            written, created = await registry.update_from(
                info.namespace, info.name, merged, dry_run=dry_run,
                status_only=info.subresource == "status", allow_create=not info.subresource,
                before_create=before_create)
        warnings.extend(earned)
        return await self._respond(request, with_type(written, served), served,
                             201 if created else 200, warnings)

    async def delete(self, request: web.Request, info: RequestInfo, served: Served,
                     user: User) -> web.Response:
        # NamespaceLifecycle always allows deletes: no namespace check (the object's own 404).
        await self.authorize(user, "delete", info, served)
        opts = await delete_options(request)
        deleted = await served.registry.delete(info.namespace, info.name,
                                               preconditions=opts.preconditions,
                                               dry_run=opts.dry_run, grace_period=opts.grace,
                                               propagation_policy=opts.policy)
        return await self._respond(request, with_type(deleted, served), served)


    async def delete_collection(self, request: web.Request, info: RequestInfo, served: Served,
                                user: User) -> web.Response:
        """Delete every object the selectors match, one by one (as the generic registry)."""
        await self.authorize(user, "deletecollection", info, served)
        label_sel, field_sel = selectors_of(request, served)
        opts = await delete_options(request)
        page = await served.registry.list(info.namespace)
        deleted = []
        for obj in page.items:
            if not matches(obj, served, label_sel, field_sel):
                continue
            meta = obj["metadata"]
            try:
                gone = await served.registry.delete_in_collection(
                    meta.get("namespace", ""), meta["name"], dry_run=opts.dry_run,
                    grace_period=opts.grace, propagation_policy=opts.policy)
            except StatusError as e:
                if e.code == 404:
                    continue  # deleted meanwhile
                raise
            gone.pop("apiVersion", None)
            gone.pop("kind", None)
            deleted.append(gone)
        return encoded_response(request, {"kind": served.list_kind,
                                          "apiVersion": served.api_version,
                                          "metadata": {"resourceVersion": page.resource_version},
                                          "items": deleted},
                                served.api_version, served.list_kind)


def _misaddressed(request: web.Request, info: RequestInfo, served: Served) -> bool:
    """A cluster-scoped resource under a namespace, or a namespaced object without one."""
    if not served.namespaced:
        return bool(info.namespace)
    if info.namespace:
        return False
    # Only reads of whole collections may span namespaces (/api/v1/services, watch included).
    return bool(info.name) or request.method != "GET"
