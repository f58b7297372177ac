"""The OpenAPI v2 and v3 documents: paths from the catalogue, schemas from the package data.

Theory of operation. kube-apiserver builds its OpenAPI documents (kube-openapi's
``builder``/``builder3``, wired in ``staging/src/k8s.io/apiserver/pkg/server/routes/openapi.go``)
from the routes its installer (``staging/src/k8s.io/apiserver/pkg/endpoints/installer.go``)
registers and the Go types they use: a path appears for each installed resource and verb, and a
definition only when some path reaches it. svcnet does the same from its own facts:

* paths and operations come from :data:`resources.RESOURCES` (:func:`paths`), in upstream's
  shape: the collection, item and subresource paths (not the deprecated ``/watch/`` ones),
  ``operationId``, ``x-kubernetes-action``, ``x-kubernetes-group-version-kind``, the query
  parameters (``fieldValidation`` on every write), ``requestBody`` (the four patch content
  types on PATCH) and responses;
* schemas are the package data ``openapi_schemas.json`` written by ``tools/gen_openapi.py`` from
  the official Python client's models (upstream's descriptions) and svcnet's patch schema
  (merge keys and strategies); the documents hold the ``$ref`` closure of their paths;
* the operations' and parameters' descriptions are the client's API methods' (same data file,
  keyed by ``operationId``), with svcnet's words for any the client lacks.

The v2 document is built with ``#/definitions/`` references; v3 rewrites them to
``#/components/schemas/``, moves bodies to ``requestBody``/``content`` and wraps a ``$ref``
that carries its own description in ``allOf``, as ``builder3`` does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from importlib import resources as package_files
from typing import Any

from svcnet.apiserver import resources
from svcnet.apiserver.resources import Resource

__all__ = ["DATA_FILE", "definition_name", "iter_refs", "paths", "ref_closure", "schema_data",
           "v2_document", "v3_document"]

Obj = dict[str, Any]
#: The package data written by ``tools/gen_openapi.py``, next to this module.
DATA_FILE = "openapi_schemas.json"
_DEF = "#/definitions/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_STRATEGIC = "application/strategic-merge-patch+json"
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
                "application/merge-patch+json", _STRATEGIC)
_PRODUCES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
_WRITE = ("dryRun", "fieldManager", "fieldValidation")
_QUERY: dict[str, tuple[str, ...]] = {
    "post": _WRITE, "put": _WRITE, "patch": (*_WRITE, "force"),
    "delete": ("dryRun", "gracePeriodSeconds",
               "ignoreStoreReadErrorWithClusterBreakingPotential", "orphanDependents",
               "propagationPolicy"),
    "list": ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
             "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
             "watch"),
}
_QUERY["deletecollection"] = (*_QUERY["list"][:5], *_QUERY["delete"], *_QUERY["list"][5:9])
#: What ``pods/log`` reads (svcnet/apiserver/subresources/log.py).
_LOG_QUERY = ("container", "follow", "limitBytes", "previous", "sinceSeconds", "sinceTime",
              "tailLines", "timestamps")
#: The ``connect`` subresources (relayed to the node: subresources/stream.py) and their query.
CONNECT_QUERY: dict[str, tuple[str, ...]] = {
    "attach": ("container", "stderr", "stdin", "stdout", "tty"),
    "exec": ("command", "container", "stderr", "stdin", "stdout", "tty"),
    "portforward": ("ports",),
}
_TYPES = {"follow": "boolean", "previous": "boolean", "tailLines": "integer",
          "timestamps": "boolean", "limitBytes": "integer", "sinceSeconds": "integer",
          "stderr": "boolean", "stdin": "boolean", "stdout": "boolean", "tty": "boolean",
          "ports": "integer",
          "force": "boolean", "orphanDependents": "boolean", "allowWatchBookmarks": "boolean",
          "sendInitialEvents": "boolean", "watch": "boolean",
          "ignoreStoreReadErrorWithClusterBreakingPotential": "boolean",
          "gracePeriodSeconds": "integer", "limit": "integer", "timeoutSeconds": "integer"}
#: (method, operationId verb, description) of each ``x-kubernetes-action`` (the description
#: stands in where the package data has none, e.g. a kind added before regenerating it).
_ACTIONS: dict[str, tuple[str, str, str]] = {
    "get": ("get", "read", "read {sub}the specified {kind}"),
    "list": ("get", "list", "list or watch objects of kind {kind}"),
    "post": ("post", "create", "create {sub}a {kind}"),
    "put": ("put", "replace", "replace {sub}the specified {kind}"),
    "patch": ("patch", "patch", "partially update {sub}the specified {kind}"),
    "delete": ("delete", "delete", "delete a {kind}"),
    "deletecollection": ("delete", "delete", "delete collection of {kind}"),
}
_CODES = {"get": ("200",), "list": ("200",),
          "post": ("200", "201", "202"), "put": ("200", "201"), "patch": ("200", "201"),
          "delete": ("200", "202"), "deletecollection": ("200",)}
_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}
#: Discovery verb → the actions that serve it. ``watch`` is the list operation's ``watch``
#: parameter: svcnet serves no ``/watch/`` paths (deprecated upstream since 1.11).
VERB_ACTIONS: dict[str, tuple[str, ...]] = {
    "get": ("get",), "list": ("list",), "watch": ("list",), "create": ("post",),
    "update": ("put",), "patch": ("patch",), "delete": ("delete",),
    "deletecollection": ("deletecollection",)}


@functools.cache
def schema_data() -> Obj:
    """The generated data: ``{"definitions": {name: schema}, "operations": {operationId:
    {"description", "parameters": {name: text}}}, "parameters": {name: text}}`` (an
    operation's parameter texts are those that differ from the common ones)."""
    raw = package_files.files("svcnet.apiserver").joinpath(DATA_FILE).read_bytes()
    data: Obj = json.loads(raw)
    return data


def definition_name(group: str, version: str, kind: str) -> str:
    """Upstream's definition of a kind: ``io.k8s.api.<group's first label or core>.<v>.<Kind>``."""
    return f"io.k8s.api.{group.split('.', 1)[0] or 'core'}.{version}.{kind}"


def _describe(item: Obj) -> Obj:
    """A path item with the client's texts (``operations`` in the package data) where known.

    Each operation gets its description and its parameters' descriptions; the parameters
    shared by the path item (``name``, ``namespace``, ``pretty``) take the first operation's.
    """
    texts = schema_data().get("operations", {})
    out: Obj = {}
    first: Obj = {}
    for key, value in item.items():
        if key == "parameters":
            continue
        known = texts.get(value["operationId"], {})
        first = first or known
        out[key] = {**value, "description": known.get("description", value["description"]),
                    "parameters": [_described(p, known) for p in value["parameters"]]}
    return {"parameters": [_described(p, first) for p in item["parameters"]], **out}


def _described(param: Obj, known: Obj) -> Obj:
    name = param["name"]
    text = known.get("parameters", {}).get(name) or schema_data().get("parameters", {}).get(name)
    return {**param, "description": text} if text else param


def iter_refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` value in a JSON value, depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def ref_closure(roots: Any, doc: Obj, *, prefixes: tuple[str, ...] = ("#/components/schemas/",)
                ) -> dict[str, set[str]]:
    """The names reached from ``roots`` through local ``$ref``, by section.

    The result maps each section's last pointer segment (``schemas``, ``definitions``) to the
    names reached. A ``$ref`` to a missing name or another section raises ``KeyError``: a
    dangling reference is a bug in the data, not something to serve.
    """
    reached: dict[str, set[str]] = {p.strip("#/").rpartition("/")[2]: set() for p in prefixes}
    pending = list(iter_refs(roots))
    while pending:
        ref = pending.pop()
        prefix = next((p for p in prefixes if ref.startswith(p)), None)
        if prefix is None:
            raise KeyError(f"unexpected $ref {ref!r}")
        section, name = prefix.strip("#/").rpartition("/")[2], ref[len(prefix):]
        if name in reached[section]:
            continue
        target: Any = doc
        for part in prefix.strip("#/").split("/"):
            target = target[part]
        reached[section].add(name)
        pending.extend(iter_refs(target[name]))
    return reached


# ===================================================================================== paths

def _param(name: str, location: str = "query") -> Obj:
    param: Obj = {"name": name, "in": location, "type": _TYPES.get(name, "string"),
                  "uniqueItems": True}
    if location == "path":
        param["required"] = True
    return param


def _group_word(group: str) -> str:
    """``Core``, ``Apps``, ``RbacAuthorization``: the group as operation ids spell it."""
    return "".join(p.capitalize() for p in group.removesuffix(".k8s.io").split(".")) or "Core"


def _operation(action: str, res: Resource, *, gvk: tuple[str, str, str], body: str | None,
               response: str | None, scope: str, suffix: str = "", sub: str = "") -> Obj:
    """One v2 operation; ``body``/``response`` are definition names (None: none/a string)."""
    _, word, text = _ACTIONS[action]
    op: Obj = {
        "description": text.format(sub=f"{sub} of " if sub else "", kind=res.kind),
        "consumes": list(_PATCH_TYPES) if action == "patch" else ["*/*"],
        "produces": ["text/plain"] if response is None else list(_PRODUCES),
        "schemes": ["https"],
        "tags": [f"{_group_word(res.group)[:1].lower()}{_group_word(res.group)[1:]}_"
                 f"{res.version}"],
        "operationId": (f"{word}{_group_word(res.group)}{res.version.capitalize()}"
                        f"{'Collection' if action == 'deletecollection' else ''}{scope}"
                        f"{res.kind}{suffix}"),
        "parameters": [_param(p) for p in _QUERY.get(action, ())],
        "responses": {code: {"description": _CODE_TEXT[code], "schema":
                             {"$ref": _DEF + response} if response else {"type": "string"}}
                      for code in _CODES[action]},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": dict(zip(("group", "version", "kind"), gvk,
                                                    strict=True)),
    }
    if body is not None:
        op["parameters"].insert(0, {"name": "body", "in": "body", "required": True,
                                    "schema": {"$ref": _DEF + body}})
    return op


def _connect(res: Resource, sub: str, method: str, gvk: tuple[str, str, str], scope: str
             ) -> Obj:
    """A ``connect`` operation (exec, attach, portforward): options in the query, a stream."""
    group_version = f"{_group_word(res.group)}{res.version.capitalize()}"
    return {
        "description": f"connect {method.upper()} requests to {sub} of {res.kind}",
        "consumes": ["*/*"], "produces": ["*/*"], "schemes": ["https"],
        "tags": [f"{_group_word(res.group)[:1].lower()}{_group_word(res.group)[1:]}_"
                 f"{res.version}"],
        "operationId": (f"connect{group_version}{method.capitalize()}{scope}{res.kind}"
                        f"{sub.capitalize()}"),
        "parameters": [_param(p) for p in CONNECT_QUERY[sub]],
        "responses": {"200": {"description": "OK", "schema": {"type": "string"}}},
        "x-kubernetes-action": "connect",
        "x-kubernetes-group-version-kind": dict(zip(("group", "version", "kind"), gvk,
                                                    strict=True)),
    }


def _subresource_paths(res: Resource, item_path: str, params: list[Obj],
                       scope: str) -> dict[str, Obj]:
    out: dict[str, Obj] = {}
    for sub in res.subresources:
        gvk = res.subresource_gvk(sub)
        name = definition_name(*gvk)
        entry: Obj = {"parameters": params}
        suffix = sub.name.capitalize()
        if sub.name in CONNECT_QUERY:
            for verb in sub.verbs:
                method = "post" if verb == "create" else "get"
                entry[method] = _connect(res, sub.name, method, gvk, scope)
            out[f"{item_path}/{sub.name}"] = entry
            continue
        for verb in sub.verbs:
            action = VERB_ACTIONS[verb][0]
            method = _ACTIONS[action][0]
            if sub.name == "log":
                entry[method] = _operation(action, res, gvk=gvk, body=None, response=None,
                                           scope=scope, suffix="Log", sub="log")
                entry[method]["parameters"] = [_param(p) for p in _LOG_QUERY]
                continue
            entry[method] = _operation(
                action, res, gvk=gvk, body=(_META + "Patch" if action == "patch" else
                                            name if action in ("post", "put") else None),
                response=name, scope=scope, suffix=suffix, sub=sub.name)
        out[f"{item_path}/{sub.name}"] = entry
    return out


def _resource_paths(res: Resource) -> dict[str, Obj]:
    ns = "/namespaces/{namespace}" if res.namespaced else ""
    scope = "Namespaced" if res.namespaced else ""
    common = [*([_param("namespace", "path")] if res.namespaced else []), _param("pretty")]
    named = [_param("name", "path"), *common]
    gvk = (res.group, res.version, res.kind)
    kind = definition_name(*gvk)
    verbs = set(res.verbs)
    list_kind = definition_name(res.group, res.version, res.list_kind) if "list" in verbs else None

    def op(action: str, body: str | None, response: str | None, **kw: Any) -> Obj:
        return _operation(action, res, gvk=gvk, body=body, response=response,
                          scope=kw.pop("scope", scope), **kw)

    base = f"{res.path_prefix}{ns}/{res.resource}"
    collection: Obj = {"parameters": common}
    if "list" in verbs:
        collection["get"] = op("list", None, list_kind)
    if "create" in verbs:
        collection["post"] = op("post", kind, kind)
    if "deletecollection" in verbs:
        collection["delete"] = op("deletecollection", _META + "DeleteOptions", _META + "Status")
    out: dict[str, Obj] = {base: collection}
    item: Obj = {"parameters": named}
    for verb, action in (("get", "get"), ("update", "put"), ("patch", "patch"),
                         ("delete", "delete")):
        if verb in verbs:
            body = {"put": kind, "patch": _META + "Patch", "delete": _META + "DeleteOptions"}
            item[_ACTIONS[action][0]] = op(action, body.get(action), kind)
    if len(item) > 1:
        out[f"{base}/{{name}}"] = item
    out.update(_subresource_paths(res, f"{base}/{{name}}", named, scope))
    if res.namespaced and "list" in verbs:
        # The all-namespaces list, e.g. /api/v1/services (what `kubectl get svc -A` calls).
        out[f"{res.path_prefix}/{res.resource}"] = {"parameters": [_param("pretty")], "get": op(
            "list", None, list_kind, scope="", suffix="ForAllNamespaces")}
    return out


def paths(group: str | None = None, version: str | None = None, *, described: bool = True
          ) -> dict[str, Obj]:
    """The v2 paths of every served resource, or of one group version.

    ``described=False`` leaves out the client's texts (the generator, which writes them, asks
    for the paths without reading them)."""
    out: dict[str, Obj] = {}
    for res in resources.RESOURCES:
        if not res.in_openapi:
            continue
        if group is None or (res.group, res.version) == (group, version):
            out.update(_resource_paths(res))
    return {path: _describe(item) if described else item for path, item in sorted(out.items())}


# ================================================================================= documents

def v2_document(version: str) -> Obj:
    """The OpenAPI v2 (Swagger 2.0) document of everything served."""
    definitions = schema_data()["definitions"]
    all_paths = paths()
    reached = ref_closure(all_paths, {"definitions": definitions},
                          prefixes=(_DEF,))["definitions"]
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": all_paths,
        "definitions": {name: definitions[name] for name in sorted(reached)},
        "securityDefinitions": {"BearerToken": {
            "description": "Bearer Token authentication", "type": "apiKey",
            "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }


def _v3_operation(op: Obj) -> Obj:
    out = {k: v for k, v in op.items() if k not in ("consumes", "produces", "schemes")}
    params = [p for p in op["parameters"] if p["in"] != "body"]
    out["parameters"] = [_v3_param(p) for p in params]
    body = next((p for p in op["parameters"] if p["in"] == "body"), None)
    if body is not None:
        out["requestBody"] = {"content": {c: {"schema": body["schema"]} for c in op["consumes"]},
                              "required": True}
    out["responses"] = {code: {"description": r["description"], "content": {
        c: {"schema": r["schema"]} for c in op["produces"]}}
        for code, r in op["responses"].items()}
    return out


def _v3_param(param: Obj) -> Obj:
    out = {k: v for k, v in param.items() if k not in ("type", "uniqueItems")}
    out["schema"] = {"type": param["type"], "uniqueItems": True}
    return out


def _v3_schema(schema: Obj) -> Obj:
    if schema.get("format") == "int-or-string":
        return {"description": schema["description"], "x-kubernetes-int-or-string": True}
    props = schema.get("properties")
    if not props:
        return schema
    wrapped = {}
    for name, prop in props.items():
        wrapped[name] = prop
        if "$ref" in prop and len(prop) > 1:
            extra = {k: v for k, v in prop.items() if k != "$ref"}
            wrapped[name] = {"allOf": [{"$ref": prop["$ref"]}], **extra}
    return {**schema, "properties": wrapped}


def v3_document(group: str, version: str, spec_version: str) -> Obj:
    """The OpenAPI v3 document of one group version, as kube-apiserver serves it."""
    return _v3_document(paths(group, version), {}, spec_version)


def _v3_document(v2_paths: Obj, extra_definitions: Obj, spec_version: str) -> Obj:
    """A v3 document of these (v2-shaped) paths, with the definitions they reach (the package
    data's, and ``extra_definitions``)."""
    gv_paths = {path: {key: [_v3_param(p) for p in value] if key == "parameters"
                       else _v3_operation(value) for key, value in item.items()}
                for path, item in v2_paths.items()}
    definitions = {**schema_data()["definitions"], **extra_definitions}
    reached = ref_closure(gv_paths, {"definitions": definitions}, prefixes=(_DEF,))
    schemas = {name: (definitions[name] if name in extra_definitions
                      else _v3_schema(definitions[name]))
               for name in sorted(reached["definitions"])}
    text = json.dumps({"paths": gv_paths, "schemas": schemas}).replace(
        f'"{_DEF}', '"#/components/schemas/')
    body = json.loads(text)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": spec_version},
        "paths": body["paths"],
        "components": {"schemas": body["schemas"], "securitySchemes": {"BearerToken": {
            "type": "apiKey", "description": "Bearer Token authentication",
            "name": "authorization", "in": "header"}}},
    }


def custom_v3_document(served: Sequence[tuple[Resource, Obj]], spec_version: str) -> Obj:
    """The v3 document of one group version of custom resources: each (resource, its
    version's ``openAPIV3Schema``), as apiextensions-apiserver's ``builder`` publishes them:
    the paths of the resource, and the kind's schema with ``apiVersion``, ``kind`` and
    ``metadata`` (ObjectMeta) added and its ``x-kubernetes-group-version-kind``, and the list
    kind's (what ``kubectl explain`` reads)."""
    out_paths: Obj = {}
    definitions: Obj = {}
    for res, schema in served:
        out_paths.update(_resource_paths(res))
        gvk = [{"group": res.group, "kind": res.kind, "version": res.version}]
        common = {"apiVersion": {"type": "string", "description": _API_VERSION_TEXT},
                  "kind": {"type": "string", "description": _KIND_TEXT}}
        kind_schema = json.loads(json.dumps(schema))
        kind_schema["properties"] = {**common, "metadata": {"$ref": _DEF + _META + "ObjectMeta"},
                                     **(kind_schema.get("properties") or {})}
        kind_schema["x-kubernetes-group-version-kind"] = gvk
        definitions[definition_name(res.group, res.version, res.kind)] = kind_schema
        definitions[definition_name(res.group, res.version, res.list_kind)] = {
            "type": "object", "required": ["items"],
            "description": f"{res.list_kind} is a list of {res.kind}",
            "properties": {**common, "items": {"type": "array", "items": {
                "$ref": _DEF + definition_name(res.group, res.version, res.kind)}},
                "metadata": {"$ref": _DEF + _META + "ListMeta"}},
            "x-kubernetes-group-version-kind": [
                {"group": res.group, "kind": res.list_kind, "version": res.version}]}
    for item in out_paths.values():  # no strategic merge patch for custom resources
        for op in item.values():
            if isinstance(op, dict) and "consumes" in op:
                op["consumes"] = [c for c in op["consumes"] if c != _STRATEGIC]
    return _v3_document({p: _describe(item) for p, item in sorted(out_paths.items())},
                        definitions, spec_version)


_API_VERSION_TEXT = ("APIVersion defines the versioned schema of this representation of an "
                     "object.")
_KIND_TEXT = "Kind is a string value representing the REST resource this object represents."
