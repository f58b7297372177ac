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
refusal is a 400.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from svcnet.api.errors import StatusError, bad_request
from svcnet.api.yamljson import decode_bytes

MAX_BODY_BYTES: Final = 3 * 1024 * 1024
"""kube-apiserver's limit for a request body."""
_READ_CHUNK: Final = 256 * 1024

YAML_TYPES: Final = frozenset({"application/yaml", "application/apply-patch+yaml"})


def too_large() -> StatusError:
    return StatusError(413, "RequestEntityTooLarge",
                       "the server has received too large a request entity")


async def read_raw(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, however it arrives; 413 past ``limit`` (before reading, if declared)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:  # b"" only at the end of the body
            break
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: web.Request) -> Any:
    """The request body decoded (JSON, or YAML for the YAML types), with Kubernetes' errors."""
    raw = await read_raw(request)
    ctype = request.content_type
    if "protobuf" in ctype:
        raise StatusError(415, "UnsupportedMediaType",
                          f'the body of the request was in an unknown format - accepted media '
                          f'types include: application/json, application/yaml (got "{ctype}")')
    try:
        return decode_bytes(raw, yaml_ok=ctype in YAML_TYPES)
    except ValueError as e:
        raise bad_request(f"the body of the request could not be decoded: {e}") from None


