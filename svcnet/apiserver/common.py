"""What every request handler shares: the served resources, the per-server context, and the
helpers that read a request (query flags, selectors, the body as an object) and write an
answer (JSON, Status). Handlers, watch serving and the subresources build on this module."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from svcnet.api.errors import StatusError, bad_request
from svcnet.api.gojson import go_dumps
from svcnet.api.labels import (
    FieldSelector,
    Operator,
    Selector,
    SelectorError,
    normalize_field_selector,
    parse_field_selector,
    parse_selector,
    validate_field_selector,
)
from svcnet.api.metricsstorage import MetricsStorage
from svcnet.api.protobuf import MEDIA_TYPE as PROTOBUF, Codec, default_codec
from svcnet.api.schema import Decoded, decode, strict_error
from svcnet.apiserver.authn import Authenticator
from svcnet.apiserver.nodeclient import NodeClient
from svcnet.apiserver.rbac import RBAC
from svcnet.registry.generic import Registry
from svcnet.util import jsonbytes
from svcnet.util.clock import Clock

Obj = dict[str, Any]
_FREE_FIELD_SELECTOR_KINDS = frozenset({"Event"})


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
    decoder: Callable[[Obj], Decoded] | None = None
    """How a body becomes an object when the built-in schema does not know the kind (custom
    resources: :mod:`svcnet.apiserver.customresources`)."""
    scale_paths: tuple[str, str, str] | None = None
    """A custom resource's ``/scale``: its spec replicas, status replicas and label selector
    paths (:func:`svcnet.api.crds.scale_paths`)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def custom(self) -> bool:
        """A custom resource (of a CustomResourceDefinition)."""
        return self.decoder is not None

    @property
    def retyped(self) -> bool:
        """A custom resource: its stored bytes carry the apiVersion of the storage version
        when they were written, which need not be the version served now (nor the storage
        version now, once the CRD moved it), so they are never sent as they are."""
        return self.custom


@dataclass
class Context:
    """Per-server state every handler needs."""

    served: dict[tuple[str, str, str], Served]
    authn: Authenticator
    clock: Clock
    namespaces: Registry
    rbac: RBAC
    on_request: Callable[[str, str, int, float], None] = lambda verb, res, code, secs: None
    watch_bookmark_interval: float = 60.0
    default_watch_timeout: float = 1800.0
    node_client: NodeClient | None = None
    """How pods/log, exec, attach and portforward reach node agents."""
    metrics: MetricsStorage | None = None
    """The resource metrics this process serves (metrics.k8s.io; metricsapi.py)."""


METHOD_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create",
                 "DELETE": "delete"}


def method_not_allowed() -> StatusError:
    return StatusError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource")


def protobuf_codec(request: web.Request, api_version: str, kind: str) -> Codec | None:
    """The codec to answer in, when the client prefers protobuf and ``kind`` has that form.

    As kube-apiserver's negotiation: the first media type of ``Accept`` that the server can
    write wins, so ``application/vnd.kubernetes.protobuf, */*`` (Go clients) is answered in
    protobuf and ``application/json, */*`` in JSON; a kind without a protobuf form (a Table)
    falls back to JSON, which every client also accepts.
    """
    if not request.headers.get("Accept", "").lstrip().startswith(PROTOBUF):
        return None
    codec = default_codec()
    return codec if codec is not None and codec.has(api_version, kind) else None


def created_status() -> Obj:
    """The ``Status`` a create answers when it makes no object to return (``pods/binding``,
    ``pods/eviction``): the create handler fills in its code, 201."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": 201}


def encoded_response(request: web.Request, obj: Obj, api_version: str, kind: str,
                     status: int = 200, warnings: list[str] | None = None) -> web.Response:
    """``obj`` as JSON, or as protobuf when the client asked for it first."""
    return encoded_body_response(encode_object(request, obj, api_version, kind), status,
                                 warnings)


def encode_object(request: web.Request, obj: Obj, api_version: str,
                  kind: str) -> tuple[bytes, str]:
    """``obj``'s bytes and media type for :func:`encoded_response` (pure: it may run off the
    event loop, see :mod:`svcnet.util.offload`)."""
    codec = protobuf_codec(request, api_version, kind)
    if codec is None:
        return jsonbytes.dumps(obj), "application/json"
    return codec.encode(obj, api_version, kind), PROTOBUF


def encoded_body_response(encoded: tuple[bytes, str], status: int = 200,
                          warnings: list[str] | None = None) -> web.Response:
    """The answer carrying what :func:`encode_object` made."""
    body, content_type = encoded
    resp = web.Response(body=body, status=status, content_type=content_type)
    for w in warnings or []:
        resp.headers.add("Warning", warning_header(w))
    return resp


def status_response(err: StatusError, request: web.Request | None = None) -> web.Response:
    """A failure's Status, byte for byte as kube-apiserver writes it (Go's encoder: compact,
    struct order, a trailing newline); in protobuf to a client that prefers it."""
    codec = None if request is None else protobuf_codec(request, "v1", "Status")
    if codec is not None:
        return web.Response(body=codec.encode(err.to_status(), "v1", "Status"),
                            status=err.code, content_type=PROTOBUF)
    return web.Response(body=(go_dumps(err.to_status()) + "\n").encode(), status=err.code,
                        content_type="application/json")


def failure_response(request: web.Request, err: StatusError) -> web.Response:
    """The Status answer for a failed request (with ``Retry-After`` when it says when to retry).

    If the request's own answer had already started (a stream that failed midway), a second
    HTTP response cannot follow it: the connection is cut instead, so the client sees a broken
    stream at once rather than a 200 with another response written into its body.
    """
    if request.writer.output_size and request.transport is not None:
        request.transport.abort()
    response = status_response(err, request)
    retry_after = err.details.get("retryAfterSeconds")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def dry_run_of(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise bad_request(f'unsupported dryRun value "{v}": only "All" is supported')
    return bool(values)


def selectors_of(request: web.Request, served: Served) -> tuple[Selector | None,
                                                                FieldSelector | None]:
    try:
        labels = request.query.get("labelSelector", "")
        label_sel = parse_selector(labels) if labels else None
        fields = request.query.get("fieldSelector", "")
        field_sel = None
        if fields:
            field_sel = normalize_field_selector(parse_field_selector(fields), served.kind)
            if served.kind not in _FREE_FIELD_SELECTOR_KINDS:
                validate_field_selector(field_sel, served.kind)
    except SelectorError as e:
        raise bad_request(str(e)) from None
    return label_sel, field_sel


def single_object_name(request: web.Request) -> str:
    """The name a ``fieldSelector`` of ``metadata.name=<name>`` (alone) narrows a list or
    watch to, as kube-apiserver's request-info resolver sets it for authorization; else ""."""
    try:
        selector = parse_field_selector(request.query.get("fieldSelector", ""))
    except SelectorError:
        return ""
    if len(selector.requirements) != 1:
        return ""
    req = selector.requirements[0]
    if req.field != "metadata.name" or req.operator not in (Operator.EQUALS,
                                                            Operator.DOUBLE_EQUALS):
        return ""
    return req.value


def matches(obj: Obj, served: Served, label_sel: Selector | None,
             field_sel: FieldSelector | None) -> bool:
    if label_sel is not None and not label_sel.matches((obj.get("metadata") or {}).get(
            "labels") or {}):
        return False
    if field_sel is not None:
        kind = None if served.kind in _FREE_FIELD_SELECTOR_KINDS else served.kind
        return field_sel.matches_object(obj, kind)
    return True


def with_type(obj: Obj, served: Served) -> Obj:
    obj["apiVersion"] = served.api_version
    obj["kind"] = served.kind
    return obj


def decode_object(body: Any, served: Served, request: web.Request, warnings: list[str], *,
                  strict: Callable[[StatusError], StatusError] | None = None) -> Obj:
    """apiVersion/kind checks, schema decoding, and fieldValidation.

    ``strict`` rewrites fieldValidation=Strict's error where upstream words it differently
    from a decoded body's ``<Kind> in version ... cannot be handled as ...`` (patches).
    """
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
    decoded = (served.decoder(body) if served.decoder is not None else
               decode(body, api_version=served.api_version, kind=served.kind))
    if decoded.unknown_fields:
        mode = request.query.get("fieldValidation", "Warn")
        if mode == "Strict":
            err = strict_error(decoded.unknown_fields)
            if strict is not None:
                raise strict(err)
            err.message = (f'{served.kind} in version "{served.version}" cannot be handled as '
                           f"a {served.kind}: {err.message}")
            raise err
        if mode == "Warn":
            warnings.extend(f'unknown field "{f}"' for f in decoded.unknown_fields)
    return with_type(decoded.obj, served)


def warning_header(text: str) -> str:
    """An RFC 7234 ``Warning`` value as apiserver writes it: code 299, agent ``-``."""
    return f"299 - {json.dumps(text)}"


def json_response(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=jsonbytes.dumps(obj), status=status,
                        content_type="application/json")
    for w in warnings or []:
        resp.headers.add("Warning", warning_header(w))
    return resp


#: Where the dispatcher leaves a deprecated resource's warning for :func:`add_deprecation_warning`.
#: (A typed key: aiohttp 3.14 warns about plain string keys, and the tests make warnings
#: errors, which made every in-process GET of Endpoints a 500.)
DEPRECATION_WARNING = web.RequestKey("svcnet.deprecation_warning", str)


async def add_deprecation_warning(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer about a deprecated resource (errors and watch
    streams included) carries its deprecation warning, ahead of the request's own warnings,
    as apiserver's installer wraps each verb's handler."""
    text = request.get(DEPRECATION_WARNING)
    if text is None:
        return
    others = response.headers.getall("Warning", [])
    response.headers.popall("Warning", None)
    for value in (warning_header(text), *others):
        response.headers.add("Warning", value)


def include_object(request: web.Request) -> str:
    value = request.query.get("includeObject", "Metadata")
    return value if value in ("None", "Metadata", "Object") else "Metadata"


def user_agent_manager(request: web.Request) -> str:
    """Kubernetes names the manager after the user agent's first word when none is given."""
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/")[0][:128] or "unknown"
