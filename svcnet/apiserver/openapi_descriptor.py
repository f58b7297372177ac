"""gnostic's ``openapi.v2`` message descriptor, read from the installed kubectl binary.

Theory of operation. ``/openapi/v2`` in protobuf is gnostic-models' ``openapi.v2.Document``
(kube-openapi's ``pkg/handler/handler.go`` marshals ``openapi_v2.ParseDocument(json)``). Its
schema, the ``FileDescriptorProto`` of ``openapiv2/OpenAPIv2.proto``, is compiled into every Go
program that links gnostic-models, kubectl included: Go's protobuf runtime keeps each file's
serialized descriptor verbatim (``file_openapiv2_OpenAPIv2_proto_rawDesc``). It starts with
field 1, the file name (``0a 19 "openapiv2/OpenAPIv2.proto"``), and protoc writes the fields in
ascending number order; so the descriptor is the run of well-formed top-level
``FileDescriptorProto`` fields from there, ending at the first byte that is not one (an unknown
field number, a wrong wire type, or a number lower than the previous one).

The bytes are cached in the server's data directory (``openapi-v2.desc``), keyed by nothing but
their presence: a new kubectl describes the same messages. Without kubectl (and no cache) the
protobuf form is not available and ``/openapi/v2`` answers it with 406; JSON is still served.
"""

from __future__ import annotations

from pathlib import Path

from svcnet.api.kubectl_descriptors import find_kubectl

__all__ = ["CACHE_NAME", "MARKER", "descriptor_bytes", "extract"]

CACHE_NAME = "openapi-v2.desc"
#: Field 1 (name, length-delimited) of the descriptor: where the raw bytes start.
MARKER = b"\n\x19openapiv2/OpenAPIv2.proto"
# FileDescriptorProto field number -> wire types allowed (2 = bytes; 0 = varint, for the
# unpacked int32 lists and the edition enum).
_FIELDS = {1: {2}, 2: {2}, 3: {2}, 4: {2}, 5: {2}, 6: {2}, 7: {2}, 8: {2}, 9: {2},
           10: {0, 2}, 11: {0, 2}, 12: {2}, 13: {2}, 14: {0}}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def extract(data: bytes) -> bytes | None:
    """The serialized ``FileDescriptorProto`` of ``openapiv2/OpenAPIv2.proto`` in ``data``."""
    start = data.find(MARKER)
    if start < 0:
        return None
    pos, last = start, 0
    while pos < len(data):
        try:
            tag, after_tag = _varint(data, pos)
            number, wire = tag >> 3, tag & 7
            if number < last or wire not in _FIELDS.get(number, ()):
                break
            if wire == 0:
                _, end = _varint(data, after_tag)
            else:
                size, body = _varint(data, after_tag)
                end = body + size
        except ValueError:
            break
        if end > len(data):
            break
        pos, last = end, number
    return data[start:pos]


def descriptor_bytes(data_dir: Path | None = None, kubectl: str | None = None) -> bytes | None:
    """The descriptor from the cache in ``data_dir``, else from kubectl (then cached)."""
    cache = data_dir / CACHE_NAME if data_dir is not None else None
    if cache is not None and cache.is_file():
        return cache.read_bytes()
    binary = kubectl or find_kubectl()  # the same kubectl the object codec reads
    if binary is None:
        return None
    try:
        raw = extract(Path(binary).read_bytes())
    except OSError:
        return None
    if raw and cache is not None:
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(cache)
    return raw
