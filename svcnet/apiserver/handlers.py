"""REST verbs over the registries: decode, authorize, call the registry, encode.

One :class:`Served` per resource binds its discovery facts to its registry. The request flow
for every verb is the same and short:

    parse path → authenticate → find Served → authorize → (namespace exists?) →
    decode body (size limit, JSON/YAML, apiVersion/kind, schema, fieldValidation) →
    registry call → encode (object, list, Table, or watch stream)

Everything a client can get wrong becomes a Kubernetes Status with a 4xx code; an unexpected
exception is logged and answered 500 without a traceback in the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from svcnet.api import errors, workloads
from svcnet.api.errors import StatusError, bad_request
from svcnet.api.labels import (
    FieldSelector,
    Selector,
    SelectorError,
    normalize_field_selector,
    parse_field_selector,
    parse_selector,
    validate_field_selector,
)
from svcnet.api.podlogs import ANNOTATION_STATE_DIR, log_files
from svcnet.api.schema import decode, strict_error
from svcnet.apiserver import patch as patching, tables
from svcnet.apiserver.apply import server_side_apply, update_managed_fields
from svcnet.apiserver.auth import TokenFile, User, authorize, forbidden
from svcnet.apiserver.body import read_body
from svcnet.apiserver.query import decode_continue, encode_continue, int64_param
from svcnet.apiserver.requestinfo import RequestInfo, parse_path
from svcnet.registry.generic import PROPAGATION_POLICIES, Preconditions, Registry
from svcnet.storage.interface import Compacted, Unavailable
from svcnet.util.clock import Clock, rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PATCH_RETRIES = 5
_FIELD_SELECTOR_KINDS_WITH_FREE_PATHS = frozenset({"Event"})


@dataclass
class Served:
    """A resource this server serves, bound to its registry."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    registry: Registry
    subresources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """The verbs each subresource answers (discovery's, from :mod:`resources`)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass
class Context:
    """Per-server state every handler needs."""

    served: dict[tuple[str, str, str], Served]
    tokens: TokenFile
    clock: Clock
    namespaces: Registry
    on_request: Callable[[str, str, int, float], None] = lambda verb, res, code, secs: None
    watch_bookmark_interval: float = 60.0
    default_watch_timeout: float = 1800.0


_METHOD_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create",
                 "DELETE": "delete"}


def method_not_allowed() -> StatusError:
    return StatusError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource")


def status_response(err: StatusError) -> web.Response:
    return web.json_response(err.to_status(), status=err.code)


def _failure(request: web.Request, err: StatusError) -> web.Response:
    """The Status answer for a failed request (with ``Retry-After`` when it says when to retry).

    If the request's own answer had already started (a stream that failed midway), a second
    HTTP response cannot follow it: the connection is cut instead, so the client sees a broken
    stream at once rather than a 200 with another response written into its body.
    """
    if request.writer.output_size and request.transport is not None:
        request.transport.abort()
    response = status_response(err)
    retry_after = err.details.get("retryAfterSeconds")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise bad_request(f'unsupported dryRun value "{v}": only "All" is supported')
    return bool(values)


def _selectors(request: web.Request, served: Served) -> tuple[Selector | None,
                                                                FieldSelector | None]:
    try:
        labels = request.query.get("labelSelector", "")
        label_sel = parse_selector(labels) if labels else None
        fields = request.query.get("fieldSelector", "")
        field_sel = None
        if fields:
            field_sel = normalize_field_selector(parse_field_selector(fields), served.kind)
            if served.kind not in _FIELD_SELECTOR_KINDS_WITH_FREE_PATHS:
                validate_field_selector(field_sel, served.kind)
    except SelectorError as e:
        raise bad_request(str(e)) from None
    return label_sel, field_sel


def _matches(obj: Obj, served: Served, label_sel: Selector | None,
             field_sel: FieldSelector | None) -> bool:
    if label_sel is not None and not label_sel.matches((obj.get("metadata") or {}).get(
            "labels") or {}):
        return False
    if field_sel is not None:
        kind = None if served.kind in _FIELD_SELECTOR_KINDS_WITH_FREE_PATHS else served.kind
        return field_sel.matches_object(obj, kind)
    return True


def _with_type(obj: Obj, served: Served) -> Obj:
    obj["apiVersion"] = served.api_version
    obj["kind"] = served.kind
    return obj


def decode_object(body: Any, served: Served, request: web.Request,
                  warnings: list[str]) -> Obj:
    """apiVersion/kind checks, schema decoding, and fieldValidation."""
    if not isinstance(body, dict):
        raise bad_request(f"{served.kind} in version \"{served.version}\" cannot be handled as "
                          f"a {served.kind}: the body must be a JSON object")
    api_version = body.get("apiVersion") or served.api_version
    kind = body.get("kind") or served.kind
    if api_version != served.api_version:
        raise bad_request(f"the API version in the data ({api_version}) does not match the "
                          f"expected API version ({served.api_version})")
    if kind != served.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                          f"({served.kind})")
    decoded = decode(body, api_version=served.api_version, kind=served.kind)
    if decoded.unknown_fields:
        mode = request.query.get("fieldValidation", "Warn")
        if mode == "Strict":
            err = strict_error(decoded.unknown_fields)
            err.message = (f'{served.kind} in version "{served.version}" cannot be handled as '
                           f"a {served.kind}: {err.message}")
            raise err
        if mode == "Warn":
            warnings.extend(f'unknown field "{f}"' for f in decoded.unknown_fields)
    return _with_type(decoded.obj, served)


def _json(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=json.dumps(obj, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")
    for w in warnings or []:
        resp.headers.add("Warning", f'299 - {json.dumps(w)}')
    return resp


def _include_object(request: web.Request) -> str:
    value = request.query.get("includeObject", "Metadata")
    return value if value in ("None", "Metadata", "Object") else "Metadata"


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
            user = self.ctx.tokens.authenticate(request.headers.get("Authorization"))
            served = self.ctx.served.get((info.group, info.version, info.resource))
            if served is None or (info.subresource and info.subresource not in
                                  served.subresources) or _misaddressed(request, info, served):
                raise errors.StatusError(404, "NotFound",
                                         "the server could not find the requested resource")
            verb, response = await self._route(request, info, served, user)
            code = response.status
            return response
        except StatusError as e:
            code = e.code
            return _failure(request, e)
        except Unavailable as e:
            err = errors.store_unavailable(str(e), timeout=e.timeout)
            code = err.code
            return _failure(request, err)
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            code = 500
            return _failure(request, errors.internal_error("an unexpected error occurred"))
        finally:
            self.ctx.on_request(verb, resource, code, time.perf_counter() - started)

    async def _route(self, request: web.Request, info: RequestInfo, served: Served,
                     user: User) -> tuple[str, web.StreamResponse]:
        method = request.method
        if info.subresource:
            # A subresource answers only the verbs its REST storage implements (a DELETE of
            # services/x/status is not a delete of the Service): 405 for the rest.
            if _METHOD_VERBS.get(method) not in served.subresources[info.subresource]:
                raise method_not_allowed()
            if info.subresource == "scale":
                return await self.scale(request, info, served, user)
            if info.subresource == "log":
                return "get", await self.pod_log(request, info, served, user)
            if info.subresource == "binding":
                return "create", await self.bind(request, info, served, user)
        if method == "GET":
            if info.name:
                return "get", await self.get(request, info, served, user)
            if _query_bool(request, "watch"):
                return "watch", await self.watch(request, info, served, user)
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

    async def _authorize(self, user: User, verb: str, info: RequestInfo, served: Served,
                         name: str | None = None) -> None:
        name = info.name if name is None else name
        pod_node = None
        if served.resource == "pods" and served.group == "" and name and verb in (
                "update", "patch", "delete") and user.node_name is not None:
            with contextlib.suppress(StatusError):
                pod = await served.registry.get(info.namespace, name)
                pod_node = (pod.get("spec") or {}).get("nodeName")
        if not authorize(user, verb, group=served.group, resource=served.resource,
                         namespace=info.namespace, name=name, subresource=info.subresource,
                         pod_node=pod_node):
            raise forbidden(user, verb, served.resource, served.group, info.namespace, name,
                            info.subresource)

    async def _require_namespace(self, info: RequestInfo, served: Served,
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

    def _respond(self, request: web.Request, obj: Obj, served: Served, status: int = 200,
                 warnings: list[str] | None = None) -> web.Response:
        if tables.table_accepted(request.headers.get("Accept", "")):
            meta = obj.get("metadata") or {}
            table = tables.table_for([obj], api_version=served.api_version, kind=served.kind,
                                     include_object=_include_object(request),
                                     now=self.ctx.clock.now(),
                                     resource_version=str(meta.get("resourceVersion", "")))
            return _json(table, status, warnings)
        return _json(obj, status, warnings)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, request: web.Request, info: RequestInfo, served: Served,
                  user: User) -> web.Response:
        await self._authorize(user, "get", info, served)
        obj = await served.registry.get(info.namespace, info.name)
        return self._respond(request, obj, served)

    async def pod_log(self, request: web.Request, info: RequestInfo, served: Served,
                      user: User) -> web.StreamResponse:
        """``pods/log``: the container's log file, read from its node's state directory.

        ``container`` (required when the pod has several), ``previous``, ``tailLines`` and
        ``follow`` as kubectl sends them. Following ends when the pod is gone or restarts.
        """
        await self._authorize(user, "get", info, served)
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
                node = await self.ctx.served[("", "v1", "nodes")].registry.get("", node_name)
                state_dir = ((node.get("metadata") or {}).get("annotations") or {}).get(
                    ANNOTATION_STATE_DIR, "")
        files = log_files(Path(state_dir), pod["metadata"]["uid"], container) if state_dir \
            else []
        previous = _query_bool(request, "previous")
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
        if not _query_bool(request, "follow"):
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

    async def list_collection(self, request: web.Request, info: RequestInfo, served: Served,
                              user: User) -> web.Response:
        await self._authorize(user, "list", info, served)
        label_sel, field_sel = _selectors(request, served)
        limit = max(0, int64_param(request.query, "limit", 0) or 0)
        revision, start = 0, ""
        prefix = served.registry.list_prefix(info.namespace)
        token = request.query.get("continue", "")
        if token:
            revision, start = decode_continue(token, prefix)
        as_table = tables.table_accepted(request.headers.get("Accept", ""))
        if label_sel is None and field_sel is None and not as_table:
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
                    if _matches(obj, served, label_sel, field_sel):
                        items.append(_with_type(obj, served))
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
                                     include_object=_include_object(request),
                                     now=self.ctx.clock.now(), resource_version=page_rv)
            table["metadata"] = meta
            return _json(table)
        for obj in items:
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
        return _json({"kind": f"{served.kind}List", "apiVersion": served.api_version,
                      "metadata": meta, "items": items})

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
        list_rv = str(revision) if continuing else rv
        meta: Obj = {"resourceVersion": list_rv}
        if cont_key:
            meta["continue"] = encode_continue(int(list_rv), cont_key,
                                               served.registry.list_prefix(info.namespace))
        head = json.dumps({"kind": f"{served.kind}List", "apiVersion": served.api_version,
                           "metadata": meta}, separators=(",", ":")).encode()
        body = head[:-1] + b',"items":[' + b",".join(raw) + b"]}"
        return web.Response(body=body, content_type="application/json")

    async def watch(self, request: web.Request, info: RequestInfo, served: Served,
                    user: User) -> web.StreamResponse:
        from svcnet.apiserver.watch import serve_watch  # watch.py builds on this module

        return await serve_watch(self, request, info, served, user)

    # -- writes -----------------------------------------------------------------------------

    async def create(self, request: web.Request, info: RequestInfo, served: Served,
                     user: User) -> web.Response:
        warnings: list[str] = []
        body = await read_body(request)
        obj = decode_object(body, served, request, warnings)
        name = str((obj.get("metadata") or {}).get("name") or "")
        await self._authorize(user, "create", info, served, name=name)
        await self._require_namespace(info, served, creating=True, name=name)
        manager = request.query.get("fieldManager", "") or _user_agent_manager(request)
        created = await served.registry.create(
            info.namespace, obj, dry_run=_dry_run(request),
            before_write=self._managed(served, manager, "Update", info.subresource))
        return self._respond(request, _with_type(created, served), served, 201, warnings)

    async def bind(self, request: web.Request, info: RequestInfo, served: Served,
                   user: User) -> web.Response:
        """``pods/binding``: assign a pod to a node, once (the scheduler's write)."""
        await self._authorize(user, "create", info, served)
        await self._require_namespace(info, served, creating=False)
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
        now = rfc3339(self.ctx.clock.now())

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

        if _dry_run(request):
            assign(await served.registry.get(info.namespace, info.name))
        else:
            await served.registry.guaranteed_update(info.namespace, info.name, assign)
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Success", "code": 201}, 201)

    def _managed(self, served: Served, manager: str, operation: str,
                 subresource: str) -> Callable[[Obj | None, Obj], Obj]:
        now = rfc3339(self.ctx.clock.now())

        def record(old: Obj | None, new: Obj) -> Obj:
            return update_managed_fields(old, new, manager, operation, served.api_version,
                                         now, subresource=subresource)
        return record

    async def update(self, request: web.Request, info: RequestInfo, served: Served,
                     user: User) -> web.Response:
        await self._authorize(user, "update", info, served)
        await self._require_namespace(info, served, creating=False)
        warnings: list[str] = []
        body = await read_body(request)
        obj = decode_object(body, served, request, warnings)
        manager = request.query.get("fieldManager", "") or _user_agent_manager(request)
        updated = await served.registry.update(
            info.namespace, info.name, obj, dry_run=_dry_run(request),
            status_only=info.subresource == "status",
            before_write=self._managed(served, manager, "Update", info.subresource))
        return self._respond(request, _with_type(updated, served), served, 200, warnings)

    async def patch(self, request: web.Request, info: RequestInfo, served: Served,
                    user: User) -> web.Response:
        await self._authorize(user, "patch", info, served)
        await self._require_namespace(info, served, creating=False)
        patch_type = patching.patch_type_of(request.content_type)
        body = await read_body(request)
        dry_run = _dry_run(request)
        warnings: list[str] = []
        manager = request.query.get("fieldManager", "")
        force_param = request.query.get("force")
        patching.validate_patch_options(
            patch_type, manager,
            force=None if force_param is None else force_param.lower() == "true",
            dry_run=request.query.getall("dryRun", []),
            field_validation=request.query.get("fieldValidation", ""))
        if patch_type == "apply":
            return await self._apply(request, info, served, body, manager, dry_run, warnings)
        manager = manager or _user_agent_manager(request)
        for _ in range(PATCH_RETRIES):
            current = await served.registry.get(info.namespace, info.name)
            rv = current["metadata"]["resourceVersion"]
            patched = patching.apply_patch(patch_type, current, body, served.api_version,
                                           served.kind)
            obj = decode_object(patched, served, request, warnings)
            meta = obj.setdefault("metadata", {})
            # A patch that names a resourceVersion is conditional; otherwise retry on races.
            conditional = bool(meta.get("resourceVersion")) and meta["resourceVersion"] != rv
            meta.setdefault("resourceVersion", rv)
            if not meta["resourceVersion"]:
                meta["resourceVersion"] = rv
            try:
                updated = await served.registry.update(
                    info.namespace, info.name, obj, dry_run=dry_run,
                    status_only=info.subresource == "status",
                    before_write=self._managed(served, manager, "Update", info.subresource))
            except StatusError as e:
                if e.code == 409 and e.reason == "Conflict" and not conditional:
                    continue
                raise
            return self._respond(request, _with_type(updated, served), served, 200, warnings)
        raise errors.conflict(served.resource, info.name,
                              "the object kept changing while the patch was applied",
                              served.group)

    async def _apply(self, request: web.Request, info: RequestInfo, served: Served, body: Any,
                     manager: str, dry_run: bool, warnings: list[str]) -> web.Response:
        applied = decode_object(body, served, request, warnings)
        force = _query_bool(request, "force")
        now = rfc3339(self.ctx.clock.now())
        for _ in range(PATCH_RETRIES):
            try:
                live: Obj | None = await served.registry.get(info.namespace, info.name)
            except StatusError as e:
                if e.code != 404:
                    raise
                live = None
            merged = server_side_apply(live, applied, manager, force, served.api_version,
                                       served.kind, now, subresource=info.subresource)
            merged = _with_type(merged, served)
            try:
                if live is None:
                    if info.subresource:
                        raise errors.not_found(served.resource, info.name, served.group)
                    created = await served.registry.create(info.namespace, merged,
                                                           dry_run=dry_run)
                    return self._respond(request, _with_type(created, served), served, 201,
                                         warnings)
                merged.setdefault("metadata", {})["resourceVersion"] = live["metadata"][
                    "resourceVersion"]
                updated = await served.registry.update(
                    info.namespace, info.name, merged, dry_run=dry_run,
                    status_only=info.subresource == "status")
                return self._respond(request, _with_type(updated, served), served, 200,
                                     warnings)
            except StatusError as e:
                if e.code == 409 and e.reason in ("Conflict", "AlreadyExists") and (
                        not e.details.get("causes")):
                    continue
                raise
        raise errors.conflict(served.resource, info.name,
                              "the object kept changing while the apply was made",
                              served.group)

    async def scale(self, request: web.Request, info: RequestInfo, served: Served,
                    user: User) -> tuple[str, web.StreamResponse]:
        """``<resource>/scale``: the object's ``spec.replicas`` as an ``autoscaling/v1`` Scale
        (ScaleREST). GET reads it; PUT and PATCH change the replicas through an ordinary
        update of the object (validation, generation). A Scale naming a resourceVersion makes
        the write conditional on it; otherwise it is retried on conflicts."""
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(request.method)
        if verb is None or not info.name:
            raise method_not_allowed()
        await self._authorize(user, verb, info, served)
        await self._require_namespace(info, served, creating=False)
        if verb == "get":
            current = await served.registry.get(info.namespace, info.name)
            return verb, _json(workloads.scale_from_object(current))
        body = await read_body(request)
        dry_run = _dry_run(request)
        patch_type = patching.patch_type_of(request.content_type) if verb == "patch" else None
        if patch_type == "apply":
            raise StatusError(415, "UnsupportedMediaType",
                              "apply patches are not supported on the scale subresource")
        manager = request.query.get("fieldManager", "") or _user_agent_manager(request)
        for _ in range(PATCH_RETRIES):
            current = await served.registry.get(info.namespace, info.name)
            old_scale = workloads.scale_from_object(current)
            rv = str(old_scale["metadata"].get("resourceVersion") or "")
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
            conditional = bool(meta.get("resourceVersion")) and meta["resourceVersion"] != rv \
                if patch_type is not None else bool(meta.get("resourceVersion"))
            try:
                written = await served.registry.update(
                    info.namespace, info.name, workloads.apply_scale(current, scale),
                    dry_run=dry_run,
                    before_write=self._managed(served, manager, "Update", "scale"))
            except StatusError as e:
                if e.code == 409 and e.reason == "Conflict" and not conditional:
                    continue
                raise
            return verb, _json(workloads.scale_from_object(written))
        raise errors.conflict(served.resource, info.name,
                              "the object kept changing while it was scaled", served.group)

    async def delete(self, request: web.Request, info: RequestInfo, served: Served,
                     user: User) -> web.Response:
        await self._authorize(user, "delete", info, served)
        await self._require_namespace(info, served, creating=False)
        pre = Preconditions()
        dry_run = _dry_run(request)
        grace = int64_param(request.query, "gracePeriodSeconds")
        policy: str | None = request.query.get("propagationPolicy")
        orphan: bool | None = None
        if "orphanDependents" in request.query:
            orphan = request.query["orphanDependents"].lower() == "true"
        if request.can_read_body:
            body = await read_body(request)
            if body:
                if not isinstance(body, dict):
                    raise bad_request("DeleteOptions must be a JSON object")
                # Decoding checks every field's type and range (gracePeriodSeconds: int64).
                opts = decode(body, api_version="v1", kind="DeleteOptions").obj
                p = opts.get("preconditions") or {}
                pre = Preconditions(str(p.get("uid") or ""), str(p.get("resourceVersion") or ""))
                dry_run = dry_run or "All" in (opts.get("dryRun") or [])
                if opts.get("gracePeriodSeconds") is not None:
                    grace = int(opts["gracePeriodSeconds"])
                if opts.get("propagationPolicy") is not None:
                    policy = str(opts["propagationPolicy"])
                if opts.get("orphanDependents") is not None:
                    orphan = bool(opts["orphanDependents"])
        deleted = await served.registry.delete(info.namespace, info.name, preconditions=pre,
                                               dry_run=dry_run, grace_period=grace,
                                               propagation_policy=_propagation(policy, orphan))
        return self._respond(request, _with_type(deleted, served), served)


    async def delete_collection(self, request: web.Request, info: RequestInfo, served: Served,
                                user: User) -> web.Response:
        """Delete every object the selectors match, one by one (as the generic registry)."""
        await self._authorize(user, "deletecollection", info, served)
        label_sel, field_sel = _selectors(request, served)
        dry_run = _dry_run(request)
        page = await served.registry.list(info.namespace)
        deleted = []
        for obj in page.items:
            if not _matches(obj, served, label_sel, field_sel):
                continue
            meta = obj["metadata"]
            try:
                gone = await served.registry.delete(meta.get("namespace", ""), meta["name"],
                                                    dry_run=dry_run)
            except StatusError as e:
                if e.code == 404:
                    continue  # deleted meanwhile
                raise
            gone.pop("apiVersion", None)
            gone.pop("kind", None)
            deleted.append(gone)
        return _json({"kind": f"{served.kind}List", "apiVersion": served.api_version,
                      "metadata": {"resourceVersion": page.resource_version},
                      "items": deleted})


def _propagation(policy: str | None, orphan: bool | None) -> str:
    """ValidateDeleteOptions, and the deprecated orphanDependents as a policy."""
    errs = []
    if policy is not None and orphan is not None:
        errs.append(errors.invalid("propagationPolicy", policy,
                                   "orphanDependents and deletionPropagation cannot be both set"))
    if policy is not None and policy not in PROPAGATION_POLICIES:
        errs.append(errors.not_supported("propagationPolicy", policy,
                                         ["Foreground", "Background", "Orphan", "nil"]))
    if errs:
        raise errors.invalid_error("DeleteOptions", "", errs, "meta.k8s.io")
    if policy is not None:
        return policy
    if orphan is not None:
        return "Orphan" if orphan else "Background"
    return ""


def _misaddressed(request: web.Request, info: RequestInfo, served: Served) -> bool:
    """A cluster-scoped resource under a namespace, or a namespaced object without one."""
    if not served.namespaced:
        return bool(info.namespace)
    if info.namespace:
        return False
    # Only reads of whole collections may span namespaces (/api/v1/services, watch included).
    return bool(info.name) or request.method != "GET"


def _user_agent_manager(request: web.Request) -> str:
    """Kubernetes names the manager after the user agent's first word when none is given."""
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/")[0][:128] or "unknown"
