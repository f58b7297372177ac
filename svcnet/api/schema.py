"""Decoding: JSON-shaped input → a well-typed object dict, the way Kubernetes' decoder does it.

Kubernetes decodes a request body into Go structs before anything else runs. Two classes of
problems surface there, before defaulting or validation, and both are answered 400 BadRequest:

* a value of the wrong JSON type (``"port": "80"``) →
  ``Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into
  Go struct field ServicePort.spec.ports.port of type int32``;
* a ``[]byte`` value (``Secret.data``, ``ConfigMap.binaryData``) that is not Go's base64 →
  ``... cannot be handled as a Secret: illegal base64 data at input byte 4``
  (:mod:`svcnet.api.gobase64`; values are stored canonically re-encoded);
* fields the type does not have. Depending on ``fieldValidation`` they are an error
  (``Strict``: ``strict decoding error: unknown field "spec.foo"``), a warning (``Warn``, the
  server default) or silently dropped (``Ignore``). Either way they are never stored.

The schema comes from ``schema.json`` (generated from the official client's models by
``tools/gen_schema.py``). ``null`` values decode to "absent", as Go's zero values do on output.
After :func:`decode`, defaulting and validation may rely on JSON types being right.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Final

from svcnet.api.errors import StatusError, bad_request
from svcnet.api.gobase64 import Base64Error, canonical_base64

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_GO_NAMES = {"string": "string", "int32": "int32", "int64": "int64", "boolean": "bool",
             "number": "float64", "time": "v1.Time", "intorstring": "intstr.IntOrString",
             "quantity": "resource.Quantity", "any": "interface {}", "bytes": "[]uint8"}
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[numkMGTPE])?$")


@dataclass(frozen=True, slots=True)
class Schema:
    kinds: dict[str, str]
    types: dict[str, dict[str, Any]]

    def type_for(self, api_version: str, kind: str) -> str | None:
        return self.kinds.get(f"{api_version}/{kind}")


@cache
def schema() -> Schema:
    raw = json.loads(resources.files("svcnet.api").joinpath("schema.json").read_text())
    return Schema(kinds=raw["kinds"], types=raw["types"])


_ZEROS: Final = {"int32": 0, "int64": 0, "string": "", "boolean": False, "number": 0}


@cache
def required_doc() -> dict[str, Any]:
    """required.json (tools/gen_schema.py): the client's extra kinds and types, and each
    type's required (non-``omitempty``) fields."""
    doc: dict[str, Any] = json.loads(
        resources.files("svcnet.api").joinpath("required.json").read_text())
    return doc


@cache
def _status_zeros(api_version: str, kind: str) -> tuple[tuple[str, Any], ...]:
    """The status type's required (non-``omitempty``) scalar fields and their zero values."""
    top = schema().type_for(api_version, kind)
    status_type = schema().types.get(top or "", {}).get("status")
    if not isinstance(status_type, str):
        return ()
    required = required_doc()["required"].get(status_type, [])
    fields = schema().types.get(status_type, {})
    return tuple((name, _ZEROS[fields[name]]) for name in required
                 if isinstance(fields.get(name), str) and fields[name] in _ZEROS)


def with_status_zeros(obj: dict[str, Any], *, api_version: str, kind: str) -> dict[str, Any]:
    """``obj`` as Go's encoder writes it: a status struct's non-``omitempty`` numbers (a new
    DaemonSet's ``currentNumberScheduled: 0``, a ReplicaSet's ``replicas: 0``) are there even
    at zero, which typed clients (the Python client's models) require. ``obj`` is changed in
    place when its ``status`` lacks one."""
    zeros = _status_zeros(api_version, kind)
    if not zeros:
        return obj
    status = obj.get("status")
    if status is None:
        status = obj["status"] = {}
    if isinstance(status, dict):
        for name, zero in zeros:
            status.setdefault(name, zero)
    return obj


@dataclass
class Decoded:
    obj: dict[str, Any]
    unknown_fields: list[str] = field(default_factory=list)
    """Paths of dropped unknown fields, e.g. ``spec.ports[0].foo`` (for warnings / Strict)."""


class _BadValue(Exception):
    """A value Go's decoder refuses; the message is the whole reason (after the kind)."""


class _TypeMismatch(_BadValue):
    def __init__(self, json_type: str, struct: str, path: str, go_type: str) -> None:
        super().__init__(
            f"json: cannot unmarshal {json_type} into Go struct field {struct}.{path} "
            f"of type {go_type}")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _go_name(t: Any) -> str:
    if isinstance(t, str):
        if t in _GO_NAMES:
            return _GO_NAMES[t]
        return "v1." + re.sub(r"^(V1|CoreV1|EventsV1|DiscoveryV1)", "", t)
    if "list" in t:
        return "[]" + _go_name(t["list"])
    return "map[string]" + _go_name(t["map"])


def _struct_name(type_name: str) -> str:
    return re.sub(r"^(V1|CoreV1|EventsV1|DiscoveryV1)", "", type_name)


class _Decoder:
    def __init__(self, types: dict[str, dict[str, Any]]) -> None:
        self.types = types
        self.unknown: list[str] = []

    def value(self, value: Any, t: Any, struct: str, go_path: str, path: str) -> Any:  # noqa: C901
        if isinstance(t, dict):
            if "list" in t:
                if not isinstance(value, list):
                    raise _TypeMismatch(_json_type(value), struct, go_path, _go_name(t))
                return [self.value(v, t["list"], struct, go_path, f"{path}[{i}]")
                        for i, v in enumerate(value) if v is not None]
            if not isinstance(value, dict):
                raise _TypeMismatch(_json_type(value), struct, go_path, _go_name(t))
            out: dict[str, Any] = {}
            for k, v in value.items():
                if v is None:
                    # A null map value stays (Go keeps the key with a zero value); for
                    # string maps the zero value is "".
                    out[k] = "" if t["map"] in ("string", "bytes") else None
                    continue
                out[k] = self.value(v, t["map"], struct, go_path, f"{path}[{k}]")
            return out
        if t in _INT_RANGES:
            lo, hi = _INT_RANGES[t]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _TypeMismatch(_json_type(value), struct, go_path, t)
            if isinstance(value, float):
                if not value.is_integer():
                    raise _TypeMismatch(f"number {value}", struct, go_path, t)
                value = int(value)
            if not lo <= value <= hi:
                raise _TypeMismatch(f"number {value}", struct, go_path, t)
            return value
        if t == "string":
            if not isinstance(value, str):
                raise _TypeMismatch(_json_type(value), struct, go_path, "string")
            return value
        if t == "boolean":
            if not isinstance(value, bool):
                raise _TypeMismatch(_json_type(value), struct, go_path, "bool")
            return value
        if t == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _TypeMismatch(_json_type(value), struct, go_path, "float64")
            return value
        if t == "time":
            if not isinstance(value, str) or not _RFC3339.match(value):
                raise _TypeMismatch(_json_type(value), struct, go_path, "v1.Time")
            return value
        if t == "intorstring":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise _TypeMismatch(_json_type(value), struct, go_path, "intstr.IntOrString")
            if isinstance(value, int) and not _INT_RANGES["int32"][0] <= value <= (
                    _INT_RANGES["int32"][1]):
                raise _TypeMismatch(f"number {value}", struct, go_path, "int32")
            return value
        if t == "quantity":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise _TypeMismatch(_json_type(value), struct, go_path, "resource.Quantity")
            text = value if isinstance(value, str) else json.dumps(value)
            if not _QUANTITY.match(text):
                raise _TypeMismatch(_json_type(value), struct, go_path, "resource.Quantity")
            return text
        if t == "any":
            return value
        if t == "bytes":
            if not isinstance(value, str):
                raise _TypeMismatch(_json_type(value), struct, go_path, "[]uint8")
            try:
                return canonical_base64(value)
            except Base64Error as e:
                raise _BadValue(str(e)) from None
        if not isinstance(value, dict):
            raise _TypeMismatch(_json_type(value), struct, go_path, "v1." + _struct_name(t))
        return self.struct(value, t, go_path, path)

    def struct(self, value: Any, type_name: str, go_path: str, path: str) -> dict[str, Any]:
        fields = self.types[type_name]
        struct = _struct_name(type_name)
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if k not in fields:
                self.unknown.append(sub)
                continue
            if v is None:
                continue
            sub_go = f"{go_path}.{k}" if go_path else k
            out[k] = self.value(v, fields[k], struct, sub_go, sub)
        return out


def decode_as(body: Any, type_name: str, *, kind: str, api_version: str) -> Decoded:
    """Decode ``body`` as ``type_name``; raises a 400 StatusError on a type mismatch."""
    dec = _Decoder(schema().types)
    if not isinstance(body, dict):
        raise bad_request(
            f'{kind} in version "{api_version.rsplit("/", maxsplit=1)[-1]}" cannot be handled as a '
            f"{kind}: json: cannot unmarshal {_json_type(body).split()[0]} into Go value of "
            f"type v1.{_struct_name(type_name)}")
    try:
        obj = dec.struct(body, type_name, "", "")
    except _BadValue as e:
        raise bad_request(
            f'{kind} in version "{api_version.rsplit("/", maxsplit=1)[-1]}" cannot be handled as a '
            f"{kind}: {e}") from None
    except RecursionError:
        raise bad_request(f"{kind} in version {api_version!r}: object nested too deeply") from None
    return Decoded(obj, dec.unknown)


def decode(body: Any, *, api_version: str, kind: str) -> Decoded:
    """Decode a whole object of a kind we serve (``apiVersion``/``kind`` are kept as given)."""
    type_name = schema().type_for(api_version, kind)
    if type_name is None:
        raise bad_request(f"no kind {kind!r} is registered for version {api_version!r}")
    return decode_as(body, type_name, kind=kind, api_version=api_version)


def strict_error(unknown_fields: list[str]) -> StatusError:
    """fieldValidation=Strict's 400 for unknown fields."""
    parts = ", ".join(f'unknown field "{f}"' for f in unknown_fields)
    return bad_request(f"strict decoding error: {parts}")
