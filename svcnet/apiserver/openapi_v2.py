"""``/openapi/v2`` as kube-openapi's ``handler`` serves it: JSON, or gnostic's protobuf.

Theory of operation. kubectl asks for ``/openapi/v2`` with
``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` (client-side validation
of kinds the ``fieldValidation`` probe does not cover, such as ``kind: List``; the strategic
merge patch of client-side apply when OpenAPI v3 cannot give it). kube-openapi
(``pkg/handler/handler.go``) answers from one JSON document: the protobuf form is
``openapi_v2.ParseDocument(json)`` marshalled (gnostic-models' ``openapiv2/OpenAPIv2.go``), the
ETag of both is the upper-case hex SHA-512 of the JSON bytes, ``Vary: Accept`` is set, the
first ``Accept`` clause (by quality) that matches JSON or either protobuf spelling wins and
anything else is a 406; ``http.ServeContent`` answers ``If-None-Match`` with 304.

The protobuf messages are gnostic's ``openapi.v2`` package, described by the descriptor that
:mod:`svcnet.apiserver.openapi_descriptor` reads from the installed kubectl (cached in the data
directory named by :func:`use_data_dir`), and built in a private descriptor pool, so they
cannot clash with other protobuf users in the process. Without it :func:`document_class` is
None and the protobuf form is a 406. The JSON-to-message mapping follows ``OpenAPIv2.go``'s
``New<Message>`` functions: camelCase keys become snake_case fields, ``x-`` keys become
``vendor_extension`` entries whose ``Any.yaml`` holds the value (JSON text, which is YAML),
maps become repeated ``Named*`` pairs, and the ``oneof`` wrappers pick their branch the way
gnostic's matching does (``$ref`` makes a ``JsonReference``, ``in`` picks the parameter kind,
``type: file`` a ``FileSchema``).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcnet.apiserver import openapi_descriptor

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PROTOBUF",
    "Negotiated",
    "document_class",
    "negotiate",
    "to_protobuf",
    "use_data_dir",
]

CONTENT_TYPE_JSON = "application/json"
#: What upstream answers for either protobuf spelling (the ``@`` one is deprecated).
CONTENT_TYPE_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_PROTOBUF_SUBTYPES = ("com.github.proto-openapi.spec.v2@v1.0+protobuf",
                      "com.github.proto-openapi.spec.v2.v1.0+protobuf")

_PACKAGE = "openapi.v2"
_data_dir: list[Path] = []


def use_data_dir(path: Path) -> None:
    """Cache the descriptor read from kubectl in ``path`` (the server's data directory)."""
    _data_dir[:] = [path]
    _pool.cache_clear()


_made_pools: list[Any] = []
"""Every pool :func:`_pool` made, kept alive for the process's life (one per data directory
given, so a handful at most): a message of gnostic's classes lives in its pool's tables, and
freeing the pool while another thread still fills such a message (a second in-process server's
:func:`use_data_dir` during the first one's warm-up) crashes protobuf's C extension."""


@functools.cache
def _pool() -> Any:
    from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool
    from google.protobuf.message import DecodeError

    raw = openapi_descriptor.descriptor_bytes(_data_dir[0] if _data_dir else None)
    if raw is None:
        return None
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    try:
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(raw))
        pool.FindMessageTypeByName(f"{_PACKAGE}.Document")
    except (DecodeError, TypeError, KeyError):
        return None  # not gnostic's descriptor (a damaged cache): no protobuf, as without it
    _made_pools.append(pool)
    return pool


def document_class() -> Any:
    """gnostic's ``openapi.v2.Document`` message class, or None without the descriptor."""
    from google.protobuf import message_factory

    pool = _pool()
    if pool is None:
        return None
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Document"))


def _snake(key: str) -> str:
    if key == "$ref":
        return "_ref"
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _yaml(value: Any) -> str:
    # JSON is YAML; gnostic's readers (kubectl's VendorExtensionToMap) YAML-decode this text.
    return json.dumps(value, separators=(",", ":")) + "\n"


def _oneof_branch(name: str, value: Any) -> str:
    """Which branch of a ``oneof`` wrapper message a JSON value takes.

    gnostic tries every branch and keeps the last that parses; in effect ``$ref`` makes a
    ``JsonReference``, ``in`` picks the parameter kind, ``type`` (and ``flow``) the rest.
    """
    if name == "AdditionalPropertiesItem":
        return "boolean" if isinstance(value, bool) else "schema"
    if name in ("ParametersItem", "ResponseValue"):
        is_ref = "$ref" in value
        return "json_reference" if is_ref else ("parameter" if name == "ParametersItem"
                                                 else "response")
    if name == "Parameter":
        return "body_parameter" if value.get("in") == "body" else "non_body_parameter"
    if name == "NonBodyParameter":
        return {"header": "header_parameter_sub_schema", "formData":
                "form_data_parameter_sub_schema", "path": "path_parameter_sub_schema"
                }.get(value.get("in"), "query_parameter_sub_schema")
    if name == "SchemaItem":
        return "file_schema" if value.get("type") == "file" else "schema"
    if name == "SecurityDefinitionsItem":
        kind = value.get("type")
        if kind == "basic":
            return "basic_authentication_security"
        if kind == "apiKey":
            return "api_key_security"
        return {"implicit": "oauth2_implicit_security", "password": "oauth2_password_security",
                "application": "oauth2_application_security"}.get(
                    value.get("flow"), "oauth2_access_code_security")
    raise KeyError(name)


def _fill(msg: Any, value: Any) -> None:
    """Fill gnostic message ``msg`` from the JSON ``value`` it stands for."""
    desc = msg.DESCRIPTOR
    name = desc.name
    fields = desc.fields_by_name
    if name == "Any":
        msg.yaml = _yaml(value)
    elif name in ("TypeItem", "StringArray"):
        msg.value.extend(value if isinstance(value, list) else [value])
    elif name == "ItemsItem":
        for item in value if isinstance(value, list) else [value]:
            _fill(msg.schema.add(), item)
    elif desc.oneofs:
        branch = _oneof_branch(name, value)
        field = fields[branch]
        if field.message_type is None:
            setattr(msg, branch, value)
        else:
            _fill(getattr(msg, branch), value)
    elif set(fields) == {"additional_properties"}:
        _fill_map(msg.additional_properties, value)
    elif name in ("Paths", "Responses"):
        entries = msg.path if name == "Paths" else msg.response_code
        _fill_map(entries, {k: v for k, v in value.items() if not k.startswith("x-")})
        _fill_map(msg.vendor_extension, {k: v for k, v in value.items() if k.startswith("x-")})
    else:
        _fill_fields(msg, value)


def _fill_map(entries: Any, value: dict[str, Any]) -> None:
    """A JSON object as repeated ``Named*`` pairs (name, value)."""
    for key, item in value.items():
        pair = entries.add()
        pair.name = key
        if pair.DESCRIPTOR.fields_by_name["value"].message_type is None:
            pair.value = item
        else:
            _fill(pair.value, item)


def _fill_fields(msg: Any, value: dict[str, Any]) -> None:
    fields = msg.DESCRIPTOR.fields_by_name
    extensions = {k: v for k, v in value.items() if k.startswith("x-")}
    if extensions and "vendor_extension" in fields:
        _fill_map(msg.vendor_extension, extensions)
    for key, item in value.items():
        field = fields.get(_snake(key))
        if field is None or key.startswith("x-"):
            continue  # not part of gnostic's model (upstream's data has none)
        target = getattr(msg, field.name)
        repeated = (field.is_repeated if hasattr(field, "is_repeated")  # protobuf >= 6
                    else field.label == field.LABEL_REPEATED)
        if field.message_type is None:
            if repeated:
                target.extend(item)
            else:
                setattr(msg, field.name, item)
        elif repeated:
            for element in item:
                _fill(target.add(), element)
        else:
            _fill(target, item)


def to_protobuf(document: dict[str, Any]) -> bytes | None:
    """The OpenAPI v2 JSON document as gnostic's serialized ``openapi.v2.Document``."""
    cls = document_class()
    if cls is None:
        return None
    msg = cls()
    _fill(msg, document)
    data: bytes = msg.SerializeToString(deterministic=True)
    return data


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The representation chosen for an ``Accept`` header."""

    protobuf: bool
    content_type: str


def _clauses(accept: str) -> list[tuple[str, str]]:
    """(type, subtype) of each clause, best quality first, as goautoneg sorts them."""
    parsed: list[tuple[float, int, str, str]] = []
    for clause in accept.split(","):
        media, *params = (part.strip() for part in clause.split(";"))
        quality = 1.0
        for param in params:
            key, _, val = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(val)
                except ValueError:
                    quality = 0.0
        kind, _, sub = media.partition("/")
        if quality > 0 and kind:
            parsed.append((-quality, (kind == "*") * 2 + (sub == "*"), kind, sub))
    parsed.sort(key=lambda c: (c[0], c[1]))  # stable: equal clauses keep their order
    return [(kind, sub) for _, _, kind, sub in parsed]


def negotiate(accept: str | None) -> Negotiated | None:
    """The representation served for ``Accept``, or None for upstream's 406."""
    for kind, sub in _clauses(accept or "*/*"):
        if kind not in ("application", "*"):
            continue
        if sub in ("json", "*"):
            return Negotiated(False, CONTENT_TYPE_JSON)
        if sub in _PROTOBUF_SUBTYPES:
            return Negotiated(True, CONTENT_TYPE_PROTOBUF)
    return None
