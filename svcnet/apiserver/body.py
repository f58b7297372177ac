"""Request bodies: read whole, bounded, then decoded the way kube-apiserver's codecs do.

Theory of operation
-------------------
**Reading.** A body is read to its end before anything decodes it, however slowly or in however
many pieces it arrives (``StreamReader.read(n)`` returns what has arrived *so far*, so one call
is not a body). The size is checked as it grows: a declared ``Content-Length`` over the limit is
refused before reading, an undeclared (chunked) body as soon as it passes the limit, always as
a Kubernetes 413 Status and never a partial body (kube-apiserver's ``limitedReadBody`` in
``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go``, 3 MiB).

**Decoding.** JSON, or YAML for the YAML media types, as :mod:`svcnet.api.yamljson` reads
them the way Kubernetes does (U+FFFD for invalid text, no NaN, bounded depth and aliasing); a
refusal is a 400. A protobuf body (``application/vnd.kubernetes.protobuf``) becomes the very
dict its JSON form gives (:mod:`svcnet.api.protobuf`), so everything after reading is shared; a
malformed one is a 400, one whose kind has no protobuf form a 415.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from svcnet.api.errors import StatusError, bad_request
from svcnet.api.protobuf import MEDIA_TYPE as PROTOBUF, NotRegistered, ProtobufError, default_codec
from svcnet.api.yamljson import decode_bytes
from svcnet.util import offload

MAX_BODY_BYTES: Final = 3 * 1024 * 1024
"""kube-apiserver's limit for a request body."""
_READ_CHUNK: Final = 256 * 1024

YAML_TYPES: Final = frozenset({"application/yaml", "application/apply-patch+yaml"})


def too_large(limit: int = MAX_BODY_BYTES) -> StatusError:
    """``NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", limit))``, as
    ``limitedReadBody`` answers a body over the limit."""
    return StatusError(413, "RequestEntityTooLarge",
                       f"Request entity too large: limit is {limit}")


async def read_raw(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, however it arrives; 413 past ``limit`` (before reading, if declared)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:  # b"" only at the end of the body
            break
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: web.Request, kind: tuple[str, str] | None = None) -> Any:
    """The request body decoded (JSON, YAML for the YAML types, protobuf), with Kubernetes'
    errors; ``kind`` (version, kind) is what a malformed protobuf body is reported as."""
    raw = await read_raw(request)
    # A large body makes the request heavy: its decoding and the rest of its CPU-bound work
    # leave the event loop (svcnet.util.offload).
    offload.note_size(len(raw))
    ctype = request.content_type
    if "protobuf" in ctype:
        return await offload.run(_protobuf_body, raw, ctype, kind)
    try:
        return await offload.run(decode_bytes, raw, yaml_ok=ctype in YAML_TYPES)
    except ValueError as e:
        raise bad_request(f"the body of the request could not be decoded: {e}") from None


def unsupported(protobuf: bool) -> StatusError:
    """kube-apiserver's 415 for a body in a media type the resource does not decode
    (``NewUnsupportedMediaTypeError``: the types it does decode, in its order)."""
    types = "application/json, application/yaml" + (f", {PROTOBUF}" if protobuf else "")
    return StatusError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media "
                       f"types include: {types}")


def _protobuf_body(raw: bytes, ctype: str, kind: tuple[str, str] | None) -> Any:
    """A protobuf body as the dict its JSON form gives (:mod:`svcnet.api.protobuf`)."""
    codec = default_codec()
    if codec is None or ctype != PROTOBUF:
        raise unsupported(codec is not None)
    try:
        return codec.decode(raw)
    except NotRegistered:
        # The envelope names a kind that has no protobuf form here (Table, a kind not served).
        raise unsupported(False) from None
    except ProtobufError as e:
        if kind is None:
            raise bad_request(f"the body of the request could not be decoded: {e}") from None
        # transformDecodeError in staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go
        version, name = kind
        raise bad_request(f'{name} in version "{version}" cannot be handled as a {name}: '
                          f"{e}") from None
