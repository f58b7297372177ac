"""Sans-IO framing of a Kubernetes watch stream: bytes in, events out.

A watch response is a chunked HTTP body of JSON documents, one per line (the API server writes
``{"type": ..., "object": ...}\\n``; kube-apiserver's JSON framer is newline-delimited too).
HTTP chunk boundaries carry no meaning: a chunk may hold half an event or several. The
:class:`WatchDecoder` buffers bytes until a newline and decodes whole lines only, so the
asyncio shell in :mod:`svcnet.client.rest` just feeds it whatever the socket produced.

Event types: ``ADDED``, ``MODIFIED``, ``DELETED`` (object = the object, for DELETED its last
state), ``BOOKMARK`` (object carries only ``metadata.resourceVersion``: "you have seen
everything up to here"), ``ERROR`` (object = a ``Status``; code 410 means the requested
resourceVersion is gone and the caller must relist).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from svcnet.util import jsonbytes

__all__ = ["EVENT_TYPES", "MAX_EVENT_BYTES", "WatchDecodeError", "WatchDecoder", "WatchEvent"]

Obj = dict[str, Any]

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
MAX_EVENT_BYTES = 16 * 1024 * 1024
"""One event larger than this is a broken stream, not an object (etcd's limit is 1.5 MiB)."""


class WatchEvent(NamedTuple):
    """One watch event; unpacks as ``(type, object)``."""

    type: str
    object: Obj


class WatchDecodeError(ValueError):
    """The stream is not newline-delimited watch events."""


class WatchDecoder:
    """Turns the bytes of a watch body into :class:`WatchEvent` values, in order."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_event_bytes

    def feed(self, data: bytes) -> list[WatchEvent]:
        """Every event completed by ``data``; a trailing partial line stays buffered."""
        self._buffer += data
        events: list[WatchEvent] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end])
            start = end + 1
            if line.strip():
                events.append(_decode(line))
        del self._buffer[:start]
        if len(self._buffer) > self._max:
            raise WatchDecodeError(f"watch event exceeds {self._max} bytes")
        return events

    def close(self) -> list[WatchEvent]:
        """End of stream: a final event without its newline still counts, garbage does not."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return [_decode(rest)] if rest.strip() else []

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def _decode(line: bytes) -> WatchEvent:
    try:
        doc = jsonbytes.loads(line)
    except ValueError as e:
        raise WatchDecodeError(f"watch event is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise WatchDecodeError("watch event is not a JSON object")
    etype, obj = doc.get("type"), doc.get("object")
    if etype not in EVENT_TYPES or not isinstance(obj, dict):
        raise WatchDecodeError(f"malformed watch event: type={etype!r}")
    return WatchEvent(str(etype), obj)
