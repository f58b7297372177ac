"""Kubernetes' protobuf media type (``application/vnd.kubernetes.protobuf``), driven by descriptors.

Theory of operation
-------------------
This follows the protobuf serializer of apimachinery
(``staging/src/k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go``) and its
stream framer (``.../serializer/protobuf/protobuf.go`` ``LengthDelimitedFramer``):

**Envelope.** An object travels as the 4 magic bytes ``k8s\\x00`` followed by a
``runtime.Unknown`` message: ``typeMeta`` (apiVersion 1, kind 2), ``raw`` (the object's own
message), ``contentEncoding`` and ``contentType``. The envelope and everything inside ``raw`` are
described by the Kubernetes message descriptors the :class:`Codec` is given (a
``FileDescriptorSet``, :mod:`svcnet.api.kubectl_descriptors`); none is written out here.

**Which message.** ``(apiVersion, kind)`` names the message the way Kubernetes' generated
protobuf packages are laid out: group ``""`` is ``k8s.io.api.core.<version>``, group ``apps``
is ``k8s.io.api.apps.<version>``, ``discovery.k8s.io`` is ``k8s.io.api.discovery.<version>``;
``Status``, ``DeleteOptions``, ``WatchEvent`` and the other ``meta.k8s.io`` kinds live in
``k8s.io.apimachinery.pkg.apis.meta.v1``. No kind has code of its own: a kind is served in
protobuf exactly when the descriptors hold its message.

**JSON shape.** svcnet works on JSON-shaped dicts, so a protobuf body must become exactly the
dict the same object gives as JSON (what Go's ``json.Marshal`` writes for the struct that the
message decodes into), and an answer a message that decodes into the struct the dict decodes
into (only the fields the dict holds are written: Go's ``Marshal`` also writes zero scalars,
which read back the same). Two facts of the Go structs are not in the descriptors, and
come with them as *shapes* (``{message: {field: flags}}``): ``p`` a pointer (``*int32``: emitted
whenever set, zero included; otherwise a scalar's zero is emitted unless ``o``), ``o``
``omitempty`` (zero values, empty lists and maps left out of JSON),
``i`` inline (``json:",inline"``: the nested message's fields sit in the parent's JSON object).
A field without a shape behaves as a pointer (emitted exactly when present on the wire), the
closest reading of proto2 ``optional``. Non-pointer nested messages are always emitted (Go's
``omitempty`` never omits a struct), as their zero value when absent.

**Well-known types** have the JSON form of their Go ``MarshalJSON``: ``meta.v1.Time`` (RFC 3339,
seconds; an empty message is the zero time, JSON ``null``), ``MicroTime`` (six fractional
digits), ``Duration`` (nanoseconds ↔ Go's ``time.Duration`` string), ``intstr.IntOrString``
(int or string by its ``type``), ``resource.Quantity`` (its string), ``runtime.RawExtension``
and ``meta.v1.FieldsV1`` (their raw bytes are JSON), ``bytes`` (base64), int64 (a JSON number,
as Kubernetes writes it).

**Watch streams** are a sequence of frames, each a 4-byte big-endian length and a
``meta.v1.WatchEvent`` without envelope whose ``object.raw`` is the object *with* its envelope
(upstream's ``watch.Encoder`` over the raw protobuf serializer).
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from svcnet.api.goduration import go_duration, parse_go_duration

MEDIA_TYPE: Final = "application/vnd.kubernetes.protobuf"
STREAM_MEDIA_TYPE: Final = "application/vnd.kubernetes.protobuf;stream=watch"
MAGIC: Final = b"k8s\x00"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_RUNTIME = "k8s.io.apimachinery.pkg.runtime"
#: meta.k8s.io kinds a client sends or receives that have no group of their own.
_META_KINDS: Final = frozenset({"Status", "DeleteOptions", "WatchEvent", "ListOptions",
                                "GetOptions", "CreateOptions", "UpdateOptions", "PatchOptions",
                                "APIResourceList", "APIGroupList", "APIGroup", "APIVersions"})
#: Groups whose package is not the group less ``.k8s.io`` (k8s.io/api's directory names).
_PACKAGES: Final = {"": "core", "rbac.authorization.k8s.io": "rbac",
                    "flowcontrol.apiserver.k8s.io": "flowcontrol",
                    "internal.apiserver.k8s.io": "apiserverinternal"}

Obj = dict[str, Any]
Shapes = Mapping[str, Mapping[str, str]]


class ProtobufError(ValueError):
    """A body that is not a well-formed protobuf object (the caller answers 400)."""


class NotRegistered(LookupError):
    """A kind with no protobuf form here (the caller answers 415, or falls back to JSON)."""


def message_name(api_version: str, kind: str) -> str:
    """The full protobuf name of ``kind``'s message, by Kubernetes' package layout."""
    if kind in _META_KINDS or (kind.endswith("List") and kind[:-4] in _META_KINDS):
        return f"{_META}.{kind}"
    group, _, version = api_version.rpartition("/")
    short = _PACKAGES.get(group) or group.removesuffix(".k8s.io")
    return f"k8s.io.api.{short}.{version}.{kind}"


# -- well-known types ------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                      r"([Zz]|[+-]\d{2}:\d{2})$")


def _parse_time(text: Any) -> tuple[int, int]:
    """RFC 3339 → (seconds, nanos) since the epoch."""
    if not isinstance(text, str):
        raise ProtobufError(f"cannot encode {text!r} as a time")
    return _parse_time_text(text)


@lru_cache(maxsize=4096)
def _parse_time_text(text: str) -> tuple[int, int]:
    m = _RFC3339.match(text)
    if m is None:
        raise ProtobufError(f"cannot encode {text!r} as a time")
    year, mon, day, hour, minute, sec = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8)
    offset = 0
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    base = datetime(year, mon, day, hour, minute, min(sec, 59), tzinfo=UTC)
    seconds = int((base - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) - offset
    nanos = int((frac[1:] + "000000000")[:9]) if frac else 0
    return seconds, nanos


@lru_cache(maxsize=4096)
def _format_time(seconds: int, nanos: int, micro: bool) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if micro:
        text += f".{nanos // 1000:06d}"
    return text + "Z"


def _parse_duration(text: Any) -> int:
    if not isinstance(text, str):
        raise ProtobufError(f"cannot encode {text!r} as a duration")
    try:
        return parse_go_duration(text)
    except ValueError:
        raise ProtobufError(f"time: invalid duration {text!r}") from None


def _time_to_json(msg: Message, micro: bool) -> Any:
    if not msg.ListFields():
        return None  # the zero time
    return _format_time(msg.seconds, msg.nanos, micro)


def _time_from_json(value: Any, msg: Message, micro: bool) -> None:
    if value is None:
        return
    seconds, nanos = _parse_time(value)
    msg.seconds = seconds
    msg.nanos = nanos - nanos % 1000 if micro else 0


def _intstr_to_json(msg: Message) -> Any:
    return msg.strVal if msg.type == 1 else msg.intVal


def _intstr_from_json(value: Any, msg: Message) -> None:
    if isinstance(value, str):
        msg.type, msg.strVal = 1, value
    elif isinstance(value, int) and not isinstance(value, bool):
        msg.type, msg.intVal = 0, value
    elif value is not None:
        raise ProtobufError(f"cannot encode {value!r} as an int or string")


def _raw_to_json(msg: Message, field: str) -> Any:
    raw = getattr(msg, field)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ProtobufError("an embedded object is not JSON") from None


def _raw_from_json(value: Any, msg: Message, field: str) -> None:
    if value is None:
        return
    try:
        raw = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ProtobufError(f"an embedded object is not JSON: {e}") from None
    setattr(msg, field, raw.encode())


_WellKnown = tuple[Callable[[Message], Any], Callable[[Any, Message], None]]
_WELL_KNOWN: Final[dict[str, _WellKnown]] = {
    f"{_META}.Time": (lambda m: _time_to_json(m, False),
                      lambda v, m: _time_from_json(v, m, False)),
    f"{_META}.MicroTime": (lambda m: _time_to_json(m, True),
                           lambda v, m: _time_from_json(v, m, True)),
    f"{_META}.Duration": (lambda m: go_duration(m.duration),
                          lambda v, m: setattr(m, "duration", _parse_duration(v))),
    f"{_META}.FieldsV1": (lambda m: _raw_to_json(m, "Raw"),
                          lambda v, m: _raw_from_json(v, m, "Raw")),
    f"{_RUNTIME}.RawExtension": (lambda m: _raw_to_json(m, "raw"),
                                 lambda v, m: _raw_from_json(v, m, "raw")),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": (_intstr_to_json, _intstr_from_json),
    "k8s.io.apimachinery.pkg.api.resource.Quantity": (
        lambda m: m.string or "0", lambda v, m: setattr(m, "string", _quantity_text(v))),
}


def _quantity_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ProtobufError(f"cannot encode {value!r} as a quantity")
    return value if isinstance(value, str) else json.dumps(value)


def _zero_json(field: FieldDescriptor) -> Any:
    """A Go zero value as JSON (a nil ``[]byte`` is ``null``, and is not written)."""
    if field.type == FieldDescriptor.TYPE_BYTES:
        return None
    if field.type == FieldDescriptor.TYPE_STRING:
        return ""
    if field.type == FieldDescriptor.TYPE_BOOL:
        return False
    return 0


_INT_TYPES = frozenset({FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64,
                        FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
                        FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
                        FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64,
                        FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64})
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})


class _Field:
    """How one field of a message maps to its JSON (built once per message type)."""

    __slots__ = ("checked", "fd", "inline", "is_map", "json", "known", "message", "name",
                 "omitempty", "pointer", "repeated", "shaped")

    def __init__(self, fd: FieldDescriptor, flags: str | None) -> None:
        self.fd = fd
        self.name = fd.name
        self.shaped = flags is not None
        flags = flags or ""
        flags, _, json_name = flags.partition(":")
        self.json = json_name or fd.name
        self.pointer = "p" in flags or not self.shaped
        self.omitempty = "o" in flags or not self.shaped
        self.inline = "i" in flags
        # ``label`` is gone from protobuf 7's descriptors; ``is_repeated`` is not in 5's.
        repeated = getattr(fd, "is_repeated", None)
        self.repeated = bool(fd.label == FieldDescriptor.LABEL_REPEATED if repeated is None
                             else repeated)
        self.message = fd.message_type is not None
        self.is_map = self.repeated and self.message and fd.message_type.GetOptions().map_entry
        self.known = _WELL_KNOWN.get(fd.message_type.full_name) if self.message else None
        #: Scalars the protobuf runtime would take in a form JSON does not have (bytes), or
        #: of the wrong JSON type (an int for a bool); the rest it type-checks itself.
        self.checked = fd.type in (FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_BOOL,
                                   *_FLOAT_TYPES)


class _Plan:
    """A message's fields in order, by JSON name, and those inlined."""

    __slots__ = ("by_json", "fields", "inline")

    def __init__(self, fields: list[_Field]) -> None:
        self.fields = fields
        self.by_json = {f.json: f for f in fields if not f.inline}
        self.inline = [f for f in fields if f.inline]


class Codec:
    """Objects ⇄ Kubernetes' protobuf, for every kind whose message the descriptors hold."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet, shapes: Shapes | None = None,
                 ) -> None:
        self._pool = descriptor_pool.DescriptorPool()
        for f in files.file:
            self._pool.Add(f)
        self._shapes: Shapes = shapes or {}
        self._plans: dict[str, _Plan] = {}
        self._classes: dict[str, type[Message]] = {}
        self._unknown = self._class(f"{_RUNTIME}.Unknown")

    # -- messages --------------------------------------------------------------------------

    def _class(self, full_name: str) -> type[Message]:
        cls = self._classes.get(full_name)
        if cls is None:
            try:
                desc = self._pool.FindMessageTypeByName(full_name)
            except KeyError:
                raise NotRegistered(full_name) from None
            cls = self._classes[full_name] = message_factory.GetMessageClass(desc)
        return cls

    def has(self, api_version: str, kind: str) -> bool:
        """Whether ``kind`` has a protobuf form here."""
        try:
            self._class(message_name(api_version, kind))
        except NotRegistered:
            return False
        return True

    def _plan(self, desc: Descriptor) -> _Plan:
        plan = self._plans.get(desc.full_name)
        if plan is None:
            shapes = self._shapes.get(desc.full_name, {})
            plan = self._plans[desc.full_name] = _Plan(
                [_Field(fd, shapes.get(fd.name)) for fd in desc.fields])
        return plan

    # -- message → JSON-shaped dict --------------------------------------------------------

    def to_json(self, msg: Message) -> Obj:
        """The dict Go's ``json.Marshal`` writes for the struct ``msg`` decodes into."""
        out: Obj = {}
        for f in self._plan(msg.DESCRIPTOR).fields:
            if f.inline:
                out.update(self.to_json(getattr(msg, f.name)))
            elif f.repeated:
                values = getattr(msg, f.name)
                if values:
                    out[f.json] = self._map_to_json(f, values) if f.is_map else [
                        self._value_to_json(f.fd, v) for v in values]
                elif not f.omitempty:
                    out[f.json] = None
            elif msg.HasField(f.name):
                value = getattr(msg, f.name)
                if f.message:
                    out[f.json] = f.known[0](value) if f.known else self.to_json(value)
                elif f.pointer or not f.omitempty or value != _zero_json(f.fd):
                    out[f.json] = self._value_to_json(f.fd, value)
            elif f.message and not f.pointer:
                out[f.json] = self._value_to_json(f.fd, getattr(msg, f.name))  # the zero struct
            elif not f.omitempty:
                out[f.json] = None if f.pointer else _zero_json(f.fd)
        return out

    def _map_to_json(self, f: _Field, entries: Any) -> Obj:
        value_fd = f.fd.message_type.fields_by_name["value"]
        return {k: self._value_to_json(value_fd, v) for k, v in entries.items()}

    def _value_to_json(self, fd: FieldDescriptor, value: Any) -> Any:
        if fd.message_type is not None:
            known = _WELL_KNOWN.get(fd.message_type.full_name)
            return known[0](value) if known else self.to_json(value)
        if fd.type == FieldDescriptor.TYPE_BYTES:
            return base64.b64encode(value).decode()
        return value

    # -- JSON-shaped dict → message --------------------------------------------------------

    def from_json(self, obj: Mapping[str, Any], msg: Message) -> None:
        """Fill ``msg`` so that it decodes into the struct ``obj`` decodes into.

        Only what ``obj`` holds is written: an absent scalar and an absent non-pointer struct
        decode to their zero values anyway (Go's generated ``Marshal`` writes them, which
        changes nothing for any reader), and an object has far fewer fields set than its
        message has.
        """
        if not isinstance(obj, Mapping):
            raise ProtobufError(f"cannot encode {type(obj).__name__} as "
                                f"{msg.DESCRIPTOR.name}")
        plan = self._plan(msg.DESCRIPTOR)
        by_json = plan.by_json
        for key, value in obj.items():
            f = by_json.get(key)
            if f is None or value is None:
                continue  # apiVersion/kind, unknown fields, null
            if f.repeated:
                if value:
                    self._repeated_from_json(f, value, getattr(msg, f.name))
            elif f.message:
                sub = getattr(msg, f.name)
                sub.SetInParent()
                if f.known is not None:
                    f.known[1](value, sub)
                else:
                    self.from_json(value, sub)
            else:
                try:
                    setattr(msg, f.name, self._scalar(f.fd, value) if f.checked else value)
                except (TypeError, ValueError):
                    raise ProtobufError(f"{f.json}: cannot encode {value!r}") from None
        for f in plan.inline:
            sub = getattr(msg, f.name)
            sub.SetInParent()
            self.from_json(obj, sub)

    def _message_from_json(self, fd: FieldDescriptor, value: Any, sub: Message) -> None:
        known = _WELL_KNOWN.get(fd.message_type.full_name)
        if known:
            known[1](value, sub)
        elif value is not None:
            self.from_json(value, sub)

    def _repeated_from_json(self, f: _Field, value: Any, target: Any) -> None:
        if f.is_map:
            if not isinstance(value, Mapping):
                raise ProtobufError(f"{f.json}: cannot encode {type(value).__name__} as a map")
            value_fd = f.fd.message_type.fields_by_name["value"]
            for k, v in value.items():
                if value_fd.message_type is not None:
                    self._message_from_json(value_fd, v, target[k])
                else:
                    target[k] = self._scalar(value_fd, v)
            return
        if not isinstance(value, list):
            raise ProtobufError(f"{f.json}: cannot encode {type(value).__name__} as a list")
        for v in value:
            if f.fd.message_type is not None:
                self._message_from_json(f.fd, v, target.add())
            else:
                target.append(self._scalar(f.fd, v))

    @staticmethod
    def _scalar(fd: FieldDescriptor, value: Any) -> Any:
        try:
            if fd.type == FieldDescriptor.TYPE_BYTES:
                if not isinstance(value, str):
                    raise TypeError
                return base64.b64decode(value, validate=True)
            if fd.type in _INT_TYPES and (isinstance(value, bool) or
                                          not isinstance(value, int)):
                if isinstance(value, float) and value.is_integer():
                    return int(value)
                raise TypeError
            if fd.type in _FLOAT_TYPES:
                return float(value)
            if fd.type == FieldDescriptor.TYPE_STRING and not isinstance(value, str):
                raise TypeError
            if fd.type == FieldDescriptor.TYPE_BOOL and not isinstance(value, bool):
                raise TypeError
            return value
        except (TypeError, ValueError):
            raise ProtobufError(f"{fd.name}: cannot encode {value!r}") from None

    # -- the envelope ----------------------------------------------------------------------

    def decode(self, data: bytes, api_version: str = "", kind: str = "") -> Obj:
        """An enveloped object → its dict, with ``apiVersion``/``kind`` from the envelope.

        ``api_version``/``kind`` are what the caller expects when the envelope names no type.
        """
        if not data.startswith(MAGIC):
            raise ProtobufError(f"provided data does not appear to be a protobuf message, "
                                f"expected prefix {list(MAGIC)}")
        unknown = self._unknown()
        try:
            unknown.ParseFromString(data[len(MAGIC):])
        except DecodeError as e:
            raise ProtobufError(str(e) or "the protobuf envelope is malformed") from None
        if unknown.contentEncoding:
            raise ProtobufError(f"unsupported content encoding {unknown.contentEncoding!r}")
        if unknown.contentType not in ("", MEDIA_TYPE):
            raise ProtobufError(f"unsupported content type {unknown.contentType!r}")
        api_version = unknown.typeMeta.apiVersion or api_version
        kind = unknown.typeMeta.kind or kind
        if not kind:
            raise ProtobufError("Object 'Kind' is missing in the protobuf envelope")
        msg = self._class(message_name(api_version, kind))()
        try:
            msg.ParseFromString(unknown.raw)
        except DecodeError as e:
            raise ProtobufError(str(e) or f"the {kind} message is malformed") from None
        out = {"kind": kind, "apiVersion": api_version} if unknown.typeMeta.kind else {}
        out.update(self.to_json(msg))
        return out

    def message(self, obj: Obj, api_version: str = "", kind: str = "") -> Message:
        api_version = obj.get("apiVersion") or api_version
        kind = obj.get("kind") or kind
        msg = self._class(message_name(api_version, kind))()
        self.from_json(obj, msg)
        return msg

    def encode(self, obj: Obj, api_version: str = "", kind: str = "") -> bytes:
        """An object (its ``apiVersion``/``kind``, else the given ones) → envelope bytes."""
        api_version = obj.get("apiVersion") or api_version
        kind = obj.get("kind") or kind
        raw = self.message(obj, api_version, kind).SerializeToString(deterministic=True)
        unknown = self._unknown()
        unknown.typeMeta.apiVersion = api_version
        unknown.typeMeta.kind = kind
        unknown.raw = raw
        unknown.contentEncoding = ""  # written, empty, as upstream does
        unknown.contentType = ""
        out: bytes = unknown.SerializeToString()
        return MAGIC + out

    def watch_frame(self, event_type: str, obj: Obj, api_version: str = "",
                    kind: str = "") -> bytes:
        """One frame of a watch stream: length, then a WatchEvent holding the enveloped object."""
        event = self._class(f"{_META}.WatchEvent")()
        event.type = event_type
        event.object.raw = self.encode(obj, api_version, kind)
        data: bytes = event.SerializeToString()
        return struct.pack(">I", len(data)) + data

    def read_frames(self, data: bytes) -> Iterable[tuple[str, Obj]]:
        """The events of a protobuf watch stream (what a client reads)."""
        pos = 0
        event_cls = self._class(f"{_META}.WatchEvent")
        while pos + 4 <= len(data):
            (size,) = struct.unpack_from(">I", data, pos)
            event = event_cls()
            try:
                event.ParseFromString(data[pos + 4:pos + 4 + size])
            except DecodeError as e:
                raise ProtobufError(str(e)) from None
            pos += 4 + size
            yield event.type, self.decode(event.object.raw)
        if pos != len(data):
            raise ProtobufError("a watch frame is cut short")


_installed: Codec | None = None


def install(codec: Codec | None) -> None:
    """Make ``codec`` the server's (:mod:`svcnet.api.kubectl_descriptors` builds it at start)."""
    global _installed  # noqa: PLW0603 (one codec per server process, set once at start)
    _installed = codec


def default_codec() -> Codec | None:
    """The server's codec (None: protobuf is not spoken, and protobuf bodies are a 415)."""
    return _installed
