"""The minimal OpenAPI v3 documents kubectl needs: ``/openapi/v3`` and one per group version.

Why they exist at all: before ``create -f``, ``apply`` and ``replace -f``, kubectl asks whether
the server supports the ``fieldValidation`` query parameter (cli-runtime's
``queryParamVerifierV3``). It fetches ``/openapi/v3``, follows the ``serverRelativeURL`` of the
object's group version, and looks for a path whose **PATCH** operation carries
``x-kubernetes-group-version-kind`` equal to the object's kind and a ``fieldValidation``
parameter. Without that, kubectl falls back to client-side validation against OpenAPI v2
(protobuf), and with no v2 either every such command fails unless run with ``--validate=false``.

The verifier stops at the *first* PATCH operation it meets for a kind (Go map order, so any of
them), and reports "unsupported" if that one lacks the parameter. Hence every PATCH operation
here, ``/status`` and ``/scale`` included, lists ``fieldValidation``.

What is deliberately missing:

* ``requestBody``. kubectl computes a client-side-apply patch from the OpenAPI v3 schema only
  when the PATCH operation advertises ``application/strategic-merge-patch+json`` in its
  ``requestBody``; with the skeletal schemas served here that fails with ``unable to find api
  field``. Without ``requestBody`` kubectl uses its compiled-in types, which is what we want.
* Real schemas. ``components.schemas`` holds one stub per kind (type, description and
  ``x-kubernetes-group-version-kind``) so that the ``$ref`` in responses resolve; ``kubectl
  explain`` is not supported.

Caching follows kube-openapi's ``handler3``: each group-version document is served as fixed
bytes whose ETag is the upper-case hex SHA-512 of those bytes, and the root lists each document
as ``/openapi/v3/<path>?hash=<etag>``. Clients treat a hashed URL as immutable, so the hash must
change whenever the content does; computing it from the served bytes guarantees that.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from svcnet.apiserver import resources
from svcnet.apiserver.discovery import GIT_VERSION
from svcnet.apiserver.resources import Resource, Subresource

__all__ = [
    "OpenAPIDocument",
    "build_group_version_document",
    "compute_etag",
    "document_for",
    "group_version_documents",
    "group_version_path",
    "root_document",
    "root_document_bytes",
]

Obj = dict[str, Any]

#: Query parameters of each action, as upstream declares them (``pretty`` sits on the path).
_QUERY_PARAMS: dict[str, tuple[str, ...]] = {
    "create": ("dryRun", "fieldManager", "fieldValidation"),
    "update": ("dryRun", "fieldManager", "fieldValidation"),
    "patch": ("dryRun", "fieldManager", "fieldValidation", "force"),
    "delete": ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
               "orphanDependents", "propagationPolicy"),
    "get": (),
    "list": ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
             "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
             "watch"),
}
_PARAM_TYPES: dict[str, str] = {
    "force": "boolean", "orphanDependents": "boolean", "allowWatchBookmarks": "boolean",
    "sendInitialEvents": "boolean", "watch": "boolean",
    "ignoreStoreReadErrorWithClusterBreakingPotential": "boolean",
    "gracePeriodSeconds": "integer", "limit": "integer", "timeoutSeconds": "integer",
}
_PARAM_DESCRIPTIONS: dict[str, str] = {
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the "
                       "request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid "
                       "values are: Ignore, Warn (the default) and Strict.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making "
                    "these changes.",
    "dryRun": "When present, indicates that modifications should not be persisted. The only "
              "valid value is All.",
    "force": "Force is going to \"force\" Apply requests. It must be unset for non-apply patch "
             "requests.",
}
_VERB_TO_METHOD = {"get": "get", "list": "get", "create": "post", "update": "put",
                   "patch": "patch", "delete": "delete"}
#: Operation id prefix and description of each verb, as upstream words them.
_VERB_WORDS: dict[str, tuple[str, str]] = {
    "get": ("read", "read {sub}the specified {kind}"),
    "list": ("list", "list or watch objects of kind {kind}"),
    "create": ("create", "create a {kind}"),
    "update": ("replace", "replace {sub}the specified {kind}"),
    "patch": ("patch", "partially update {sub}the specified {kind}"),
    "delete": ("delete", "delete a {kind}"),
}
_RESPONSE_CODES: dict[str, tuple[str, ...]] = {
    "get": ("200",), "list": ("200",), "create": ("200", "201", "202"),
    "update": ("200", "201"), "patch": ("200", "201"), "delete": ("200", "202")}
_RESPONSE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}
_ACTIONS = {"get": "get", "list": "list", "create": "post", "update": "put", "patch": "patch",
            "delete": "delete"}


def group_version_path(group: str, version: str) -> str:
    """The key of a group version in the root document: ``api/v1`` or ``apis/<g>/<v>``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(group: str, version: str, kind: str) -> str:
    """Upstream's component name, e.g. ``io.k8s.api.core.v1.Service``."""
    package = group.removesuffix(".k8s.io") if group else "core"
    return f"io.k8s.api.{package}.{version}.{kind}"


def _group_word(group: str) -> str:
    """``Core``, ``Apps``, ``Discovery``, ``Coordination``: the group as operation ids spell it."""
    return "".join(p.capitalize() for p in group.removesuffix(".k8s.io").split(".")) or "Core"


def _operation_id(verb: str, res: Resource, *, namespaced: bool, suffix: str = "") -> str:
    """E.g. ``patchCoreV1NamespacedServiceStatus`` or ``listAppsV1DeploymentForAllNamespaces``."""
    scope = "Namespaced" if namespaced else ""
    return (f"{_VERB_WORDS[verb][0]}{_group_word(res.group)}{res.version.capitalize()}"
            f"{scope}{res.kind}{suffix}")


def _param(name: str, location: str = "query") -> Obj:
    param: Obj = {"name": name, "in": location,
                  "schema": {"type": _PARAM_TYPES.get(name, "string"), "uniqueItems": True}}
    if name in _PARAM_DESCRIPTIONS:
        param["description"] = _PARAM_DESCRIPTIONS[name]
    if location == "path":
        param["required"] = True
    return param


def _operation(verb: str, res: Resource, *, operation_id: str,
               gvk: tuple[str, str, str] | None = None, body_kind: str | None = None,
               subresource: str = "") -> Obj:
    """One operation; ``gvk`` is the kind the body is (the parent's unless a subresource's)."""
    group, version, kind = gvk or (res.group, res.version, res.kind)
    schema = {"$ref": f"#/components/schemas/{_schema_name(group, version, body_kind or kind)}"}
    sub = f"{subresource} of " if subresource else ""
    return {
        "tags": [f"{_group_word(res.group).lower()}_{res.version}"],
        "description": _VERB_WORDS[verb][1].format(sub=sub, kind=res.kind),
        "operationId": operation_id,
        "parameters": [_param(p) for p in _QUERY_PARAMS[verb]],
        "responses": {code: {"description": _RESPONSE_TEXT[code],
                             "content": {"application/json": {"schema": schema}}}
                      for code in _RESPONSE_CODES[verb]},
        "x-kubernetes-action": _ACTIONS[verb],
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
    }


def _has_object_operations(sub: Subresource) -> bool:
    """Whether a subresource is read and written as a whole object (status, scale).

    Only those get operations here; binding and log have no body worth describing, and kubectl
    never probes them.
    """
    return set(sub.verbs) == {"get", "patch", "update"}


def _resource_paths(res: Resource) -> dict[str, Obj]:
    base = res.path_prefix
    ns = "/namespaces/{namespace}" if res.namespaced else ""
    ns_params = [_param("namespace", "path")] if res.namespaced else []
    pretty = _param("pretty")
    verbs = set(res.verbs)

    def op(verb: str, **kw: Any) -> Obj:
        return _operation(verb, res, operation_id=_operation_id(
            verb, res, namespaced=res.namespaced), **kw)

    paths: dict[str, Obj] = {}
    collection: Obj = {"parameters": [*ns_params, pretty]}
    if "list" in verbs:
        collection["get"] = op("list", body_kind=res.list_kind)
    if "create" in verbs:
        collection["post"] = op("create")
    paths[f"{base}{ns}/{res.resource}"] = collection

    item: Obj = {"parameters": [_param("name", "path"), *ns_params, pretty]}
    for verb in ("get", "update", "patch", "delete"):
        if verb in verbs:
            item[_VERB_TO_METHOD[verb]] = op(verb)
    paths[f"{base}{ns}/{res.resource}/{{name}}"] = item

    for sub in res.subresources:
        if not _has_object_operations(sub):
            continue
        sub_item: Obj = {"parameters": [_param("name", "path"), *ns_params, pretty]}
        for verb in ("get", "update", "patch"):
            sub_item[_VERB_TO_METHOD[verb]] = _operation(
                verb, res, gvk=res.subresource_gvk(sub), subresource=sub.name,
                operation_id=_operation_id(verb, res, namespaced=res.namespaced,
                                           suffix=sub.name.capitalize()))
        paths[f"{base}{ns}/{res.resource}/{{name}}/{sub.name}"] = sub_item

    if res.namespaced and "list" in verbs:
        # The all-namespaces list, e.g. /api/v1/services (what `kubectl get svc -A` calls).
        paths[f"{base}/{res.resource}"] = {"parameters": [pretty], "get": _operation(
            "list", res, body_kind=res.list_kind, operation_id=_operation_id(
                "list", res, namespaced=False, suffix="ForAllNamespaces"))}
    return paths


def _schemas(group: str, version: str) -> dict[str, Obj]:
    schemas: dict[str, Obj] = {}

    def stub(g: str, v: str, kind: str, description: str) -> None:
        schemas[_schema_name(g, v, kind)] = {
            "description": description, "type": "object",
            "x-kubernetes-group-version-kind": [{"group": g, "version": v, "kind": kind}]}

    for res in resources.resources_in(group, version):
        stub(res.group, res.version, res.kind, f"{res.kind} (schema not published by svcnet)")
        stub(res.group, res.version, res.list_kind, f"{res.list_kind} is a list of {res.kind}.")
        for sub in filter(_has_object_operations, res.subresources):
            sub_group, sub_version, sub_kind = res.subresource_gvk(sub)
            if sub_kind != res.kind:
                stub(sub_group, sub_version, sub_kind,
                     f"{sub_kind} (schema not published by svcnet)")
    return dict(sorted(schemas.items()))


def build_group_version_document(group: str, version: str) -> Obj:
    """The OpenAPI v3 document of one group version, as a dict (empty ``paths`` if unknown)."""
    paths: dict[str, Obj] = {}
    for res in resources.resources_in(group, version):
        paths.update(_resource_paths(res))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION.partition("+")[0]},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": _schemas(group, version)},
    }


def compute_etag(body: bytes) -> str:
    """kube-openapi's ``computeETag``: upper-case hex SHA-512 of the served bytes."""
    return hashlib.sha512(body).hexdigest().upper()


def _encode(doc: Obj) -> bytes:
    # Sorted keys and no whitespace make the bytes, and so the hash, a function of content only.
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class OpenAPIDocument:
    """One served group-version document: the exact bytes and their ETag/hash."""

    path: str
    body: bytes
    etag: str

    @property
    def server_relative_url(self) -> str:
        return f"/openapi/v3/{self.path}?hash={self.etag}"

    @property
    def etag_header(self) -> str:
        """The ``ETag`` response header value (quoted, as upstream sends it)."""
        return f'"{self.etag}"'


@functools.cache
def group_version_documents() -> dict[str, OpenAPIDocument]:
    """Every group-version document, keyed by path (``api/v1``, ``apis/apps/v1``, ...).

    Cached: the catalogue is static for the life of the process.
    """
    docs: dict[str, OpenAPIDocument] = {}
    for group, version in resources.group_versions():
        path = group_version_path(group, version)
        body = _encode(build_group_version_document(group, version))
        docs[path] = OpenAPIDocument(path, body, compute_etag(body))
    return docs


def document_for(path: str) -> OpenAPIDocument | None:
    """The document served at ``/openapi/v3/<path>``; ``path`` may carry a leading ``/``."""
    return group_version_documents().get(path.strip("/"))


def root_document() -> Obj:
    """``GET /openapi/v3``: each group version with its hashed ``serverRelativeURL``."""
    return {"paths": {path: {"serverRelativeURL": doc.server_relative_url}
                      for path, doc in sorted(group_version_documents().items())}}


def root_document_bytes() -> bytes:
    """The root document as served (its ETag is :func:`compute_etag` of these bytes)."""
    return _encode(root_document())
