"""The OpenAPI documents: ``/openapi/v3`` with one document per group version, and ``/openapi/v2``.

What they hold is built by :mod:`svcnet.apiserver.openapi_spec`: paths in upstream's shape from
the catalogue (``fieldValidation``, ``x-kubernetes-group-version-kind``,
``x-kubernetes-action``, ``requestBody``, responses) and schemas generated from the official
Python client's models, with upstream's descriptions. What kubectl does with them:

* ``create -f``, ``apply`` and ``replace -f`` first ask whether the server supports the
  ``fieldValidation`` query parameter (cli-runtime's ``queryParamVerifierV3``): kubectl fetches
  ``/openapi/v3``, follows the ``serverRelativeURL`` of the object's group version, and looks for
  a PATCH operation carrying the object's ``x-kubernetes-group-version-kind`` and the parameter.
  It stops at the *first* PATCH operation it meets for a kind (Go map order), so every PATCH
  operation of a kind, ``/status`` and ``/scale`` included, lists it (upstream's all do).
* Kinds the probe never covers (``kind: List``) are validated client-side against
  ``/openapi/v2`` (protobuf, :mod:`svcnet.apiserver.openapi_v2`); without it the command fails.
* Client-side ``apply`` computes its strategic merge patch from the v3 schema, because the PATCH
  operation advertises ``application/strategic-merge-patch+json`` in its ``requestBody``: the
  merge keys and strategies (``x-kubernetes-patch-merge-key: port`` on ``Service.spec.ports``)
  are svcnet's patch schema, the same facts as kubectl's compiled-in types, so the patches are
  the same.
* ``kubectl explain`` walks the v3 schemas (``--output plaintext-openapiv2``: the v2 ones).

Caching follows kube-openapi's ``handler3``: each group-version document is served as fixed
bytes whose ETag is the upper-case hex SHA-512 of those bytes, and the root lists each document
as ``/openapi/v3/<path>?hash=<etag>``. Clients treat a hashed URL as immutable, so the hash must
change whenever the content does; computing it from the served bytes guarantees that. The v2
document's ETag is computed the same way from its JSON bytes (``handler``), for both forms.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from svcnet.apiserver import openapi_spec, openapi_v2, resources
from svcnet.apiserver.discovery import GIT_VERSION

__all__ = [
    "OpenAPIDocument",
    "OpenAPIV2Document",
    "add_routes",
    "build_group_version_document",
    "compute_etag",
    "custom_documents",
    "document_for",
    "group_version_documents",
    "group_version_path",
    "not_modified",
    "root_document",
    "root_document_bytes",
    "v2_document",
    "warm",
]

Obj = dict[str, Any]


def group_version_path(group: str, version: str) -> str:
    """The key of a group version in the root document: ``api/v1`` or ``apis/<g>/<v>``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def build_group_version_document(group: str, version: str) -> Obj:
    """The OpenAPI v3 document of one group version, as a dict (empty ``paths`` if unknown)."""
    return openapi_spec.v3_document(group, version, _spec_version())


def _spec_version() -> str:
    """``info.version``: the server's version, as kube-apiserver reports it there."""
    return GIT_VERSION.partition("+")[0]


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
        if not any(r.in_openapi for r in resources.resources_in(group, version)):
            continue  # metrics.k8s.io (resources.Resource.in_openapi)
        path = group_version_path(group, version)
        body = _encode(build_group_version_document(group, version))
        docs[path] = OpenAPIDocument(path, body, compute_etag(body))
    return docs


def document_for(path: str) -> OpenAPIDocument | None:
    """The document served at ``/openapi/v3/<path>``; ``path`` may carry a leading ``/``."""
    return group_version_documents().get(path.strip("/"))


def root_document(extra: Mapping[str, OpenAPIDocument] | None = None) -> Obj:
    """``GET /openapi/v3``: each group version with its hashed ``serverRelativeURL``
    (``extra``: the custom resources' documents, :func:`custom_documents`)."""
    docs = {**group_version_documents(), **(extra or {})}
    return {"paths": {path: {"serverRelativeURL": doc.server_relative_url}
                      for path, doc in sorted(docs.items())}}


def root_document_bytes(extra: Mapping[str, OpenAPIDocument] | None = None) -> bytes:
    """The root document as served (its ETag is :func:`compute_etag` of these bytes)."""
    return _encode(root_document(extra))


def custom_documents(served: Sequence[tuple[resources.Resource, Obj]]
                     ) -> dict[str, OpenAPIDocument]:
    """The documents of custom resources' group versions, from each served (resource, its
    version's schema) (openapi_spec.custom_v3_document)."""
    by_gv: dict[str, list[tuple[resources.Resource, Obj]]] = {}
    for res, schema in served:
        by_gv.setdefault(group_version_path(res.group, res.version), []).append((res, schema))
    docs = {}
    for path, members in by_gv.items():
        body = _encode(openapi_spec.custom_v3_document(members, _spec_version()))
        docs[path] = OpenAPIDocument(path, body, compute_etag(body))
    return docs


@dataclass(frozen=True, slots=True)
class OpenAPIV2Document:
    """``/openapi/v2`` in both forms; one ETag (of the JSON bytes) for both, as upstream."""

    json_body: bytes
    #: None when gnostic's descriptor is not available (no kubectl): protobuf is then a 406.
    protobuf_body: bytes | None
    etag: str

    @property
    def etag_header(self) -> str:
        return f'"{self.etag}"'


@functools.cache
def v2_document() -> OpenAPIV2Document:
    """The served OpenAPI v2 document (cached: the catalogue is static)."""
    doc = openapi_spec.v2_document(_spec_version())
    body = _encode(doc)
    return OpenAPIV2Document(body, openapi_v2.to_protobuf(doc), compute_etag(body))


def warm(data_dir: Path | None = None) -> None:
    """Build every document now (kube-apiserver has them before it serves): the first
    ``kubectl apply`` then does not wait about half a second for them. Safe in a thread.

    ``data_dir`` caches gnostic's descriptor read from kubectl (protobuf ``/openapi/v2``)."""
    if data_dir is not None:
        openapi_v2.use_data_dir(data_dir)
        v2_document.cache_clear()
    group_version_documents()
    v2_document()


def not_modified(if_none_match: str | None, etag_header: str) -> bool:
    """Whether a GET with this ``If-None-Match`` gets a 304 (Go's ``http.ServeContent``).

    ``*`` or any listed entity tag equal to ours, compared weakly (a ``W/`` prefix ignored).
    """
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag_header in tags


async def _root(request: web.Request, extra: Mapping[str, OpenAPIDocument]) -> web.Response:
    body = root_document_bytes(extra)
    headers = {"Cache-Control": "no-cache, private", "ETag": f'"{compute_etag(body)}"'}
    if not_modified(request.headers.get("If-None-Match"), headers["ETag"]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


async def _group_version(request: web.Request,
                         extra: Mapping[str, OpenAPIDocument]) -> web.Response:
    path = request.match_info["gvpath"]
    doc = document_for(path) or extra.get(path.strip("/"))
    if doc is None:
        # kube-aggregator's answer for a group version no API service serves: an empty 404.
        return web.Response(status=404)
    wanted = request.query.get("hash")
    if wanted and wanted != doc.etag:
        # handler3: an outdated hash is sent to the current document's URL.
        return web.Response(status=301, headers={"Location": doc.server_relative_url})
    # A hashed URL names immutable content; the bare one must be revalidated.
    cache = "public, immutable" if wanted else "no-cache, private"
    headers = {"Cache-Control": cache, "ETag": doc.etag_header, "Vary": "Accept"}
    if not_modified(request.headers.get("If-None-Match"), doc.etag_header):
        return web.Response(status=304, headers=headers)
    return web.Response(body=doc.body, content_type="application/json", headers=headers)


async def _v2(request: web.Request) -> web.Response:
    chosen = openapi_v2.negotiate(request.headers.get("Accept"))
    if chosen is None:
        return web.Response(status=406, headers={"Vary": "Accept"})
    doc = v2_document()
    headers = {"ETag": doc.etag_header, "Vary": "Accept"}
    if not_modified(request.headers.get("If-None-Match"), doc.etag_header):
        return web.Response(status=304, headers=headers)
    body = doc.protobuf_body if chosen.protobuf else doc.json_body
    if body is None:
        return web.Response(status=406, headers={"Vary": "Accept"})
    return web.Response(body=body, headers={**headers, "Content-Type": chosen.content_type})


def add_routes(router: web.UrlDispatcher,
               custom: Callable[[], Mapping[str, OpenAPIDocument]] = dict) -> None:
    """``/openapi/v2``, ``/openapi/v3`` and ``/openapi/v3/<group version>``; ``custom``: the
    custom resources' v3 documents now (they change with the CRDs)."""

    async def root(request: web.Request) -> web.Response:
        return await _root(request, custom())

    async def group_version(request: web.Request) -> web.Response:
        return await _group_version(request, custom())

    router.add_get("/openapi/v2", _v2)
    router.add_get("/openapi/v3", root)
    router.add_get(r"/openapi/v3/{gvpath:.+}", group_version)
