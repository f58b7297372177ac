"""SPDY/3.1 framing, as much as Kubernetes' port-forward needs: frames to and from bytes, and
the zlib-compressed header blocks with SPDY's dictionary.

Theory of operation
-------------------
Followed: the SPDY/3.1 draft (the framing layer), as moby/spdystream's ``spdy`` package
implements it (the framer client-go and the kubelet use); no flow control is done because
spdystream does none (it ignores WINDOW_UPDATE and never sends one).

Every frame has an 8-byte header. A control frame: the control bit, version (3), type, flags,
a 24-bit length; a data frame: a 31-bit stream id, flags, a 24-bit length. SYN_STREAM,
SYN_REPLY and HEADERS carry a header block: a count, then length-prefixed names (lower case)
and values (several values joined by NUL), compressed with zlib against the dictionary below.
Each direction of a session is *one* zlib stream: the compressor is flushed (``Z_SYNC_FLUSH``)
after each block but never reset, so a :class:`Codec` lives as long as its session.

Sans-IO: :meth:`Codec.feed` takes bytes as they arrive (a tunnel may cut frames anywhere) and
returns whole frames; :meth:`Codec.encode` returns the bytes of one frame.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Final

#: The largest decompressed header block accepted (1 MiB, Go's default for HTTP headers).
MAX_HEADER_BYTES = 1 << 20

VERSION: Final = 3
FLAG_FIN: Final = 0x01
MAX_DATA: Final = (1 << 24) - 1

SYN_STREAM: Final = 1
SYN_REPLY: Final = 2
RST_STREAM: Final = 3
SETTINGS: Final = 4
PING: Final = 6
GOAWAY: Final = 7
HEADERS: Final = 8
WINDOW_UPDATE: Final = 9

RST_PROTOCOL_ERROR: Final = 1
RST_CANCEL: Final = 5

_WORDS: Final = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status 200_OK version HTTP/1.1 url public set-cookie "
    "keep-alive origin")
_TAIL: Final = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504"
    "505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, "
    "Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    """SPDY/3's zlib dictionary: 65 length-prefixed words (``_`` stands for a space) and a
    tail of status lines, dates and media types."""
    words = [w.replace("_", " ").encode() for w in _WORDS.split()]
    return b"".join(len(w).to_bytes(4, "big") + w for w in words) + _TAIL.encode()


DICTIONARY: Final = _dictionary()


class SpdyError(ValueError):
    """Bytes that are not SPDY/3.1 (the session answers with GOAWAY and ends)."""


Headers = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    """A control type (SYN_STREAM...), or 0 for DATA."""
    stream_id: int = 0
    flags: int = 0
    headers: Headers = field(default_factory=dict)
    data: bytes = b""
    value: int = 0
    """PING's id, RST_STREAM's and GOAWAY's status, WINDOW_UPDATE's delta."""
    associated: int = 0
    priority: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower()) or [""]
        return values[0]


DATA: Final = 0


class Codec:
    """One end of a session: decodes what arrives, encodes what leaves."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         DICTIONARY)

    # -- reading ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, payload = bytes(self._buffer[:8]), bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            frame = self._decode(head, payload)
            if frame is not None:
                frames.append(frame)
        return frames

    def _decode(self, head: bytes, payload: bytes) -> Frame | None:
        flags = head[4]
        if not head[0] & 0x80:
            return Frame(DATA, int.from_bytes(head[:4], "big") & 0x7FFFFFFF, flags,
                         data=payload)
        version = int.from_bytes(head[:2], "big") & 0x7FFF
        kind = int.from_bytes(head[2:4], "big")
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")
        if kind == SYN_STREAM:
            _need(payload, 10, "SYN_STREAM")
            sid, assoc = struct.unpack("!II", payload[:8])
            return Frame(kind, sid & 0x7FFFFFFF, flags, self._headers(payload[10:]),
                         associated=assoc & 0x7FFFFFFF, priority=payload[8] >> 5)
        if kind in (SYN_REPLY, HEADERS):
            _need(payload, 4, "SYN_REPLY")
            return Frame(kind, _u31(payload), flags, self._headers(payload[4:]))
        if kind in (RST_STREAM, WINDOW_UPDATE):
            _need(payload, 8, "RST_STREAM")
            return Frame(kind, _u31(payload), flags, value=int.from_bytes(payload[4:8], "big"))
        if kind == PING:
            _need(payload, 4, "PING")
            return Frame(kind, flags=flags, value=int.from_bytes(payload[:4], "big"))
        if kind == GOAWAY:
            _need(payload, 8, "GOAWAY")
            return Frame(kind, _u31(payload), flags, value=int.from_bytes(payload[4:8], "big"))
        if kind == SETTINGS:
            return Frame(kind, flags=flags, data=payload)
        return None  # unknown control frames are ignored, as the draft says

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BYTES + 1)
        except zlib.error as e:
            raise SpdyError(f"bad header block: {e}") from None
        if len(raw) > MAX_HEADER_BYTES or self._inflate.unconsumed_tail:
            # A small compressed block can inflate to gigabytes: refuse, as Go's framer
            # refuses header blocks past its limit.
            raise SpdyError(f"header block larger than {MAX_HEADER_BYTES} bytes")
        out: Headers = {}
        try:
            count = int.from_bytes(raw[:4], "big")
            pos = 4
            for _ in range(count):
                name, pos = _string(raw, pos)
                value, pos = _string(raw, pos)
                out[name.decode("latin-1").lower()] = value.decode("latin-1").split("\x00")
        except (IndexError, ValueError):
            raise SpdyError("truncated header block") from None
        return out

    # -- writing ---------------------------------------------------------------------------

    def encode(self, frame: Frame) -> bytes:
        if frame.kind == DATA:
            if len(frame.data) > MAX_DATA:
                raise ValueError("DATA frame too long")
            return (struct.pack("!IB", frame.stream_id & 0x7FFFFFFF, frame.flags)
                    + len(frame.data).to_bytes(3, "big") + frame.data)
        if frame.kind == SYN_STREAM:
            payload = struct.pack("!IIBB", frame.stream_id, frame.associated,
                                  frame.priority << 5, 0) + self._block(frame.headers)
        elif frame.kind in (SYN_REPLY, HEADERS):
            payload = struct.pack("!I", frame.stream_id) + self._block(frame.headers)
        elif frame.kind in (RST_STREAM, WINDOW_UPDATE, GOAWAY):
            payload = struct.pack("!II", frame.stream_id, frame.value)
        elif frame.kind == PING:
            payload = struct.pack("!I", frame.value)
        elif frame.kind == SETTINGS:
            payload = frame.data
        else:
            raise ValueError(f"cannot encode frame type {frame.kind}")
        return (struct.pack("!HHB", 0x8000 | VERSION, frame.kind, frame.flags)
                + len(payload).to_bytes(3, "big") + payload)

    def _block(self, headers: Headers) -> bytes:
        raw = bytearray(len(headers).to_bytes(4, "big"))
        for name, values in sorted(headers.items()):
            for part in (name.lower().encode("latin-1"),
                         "\x00".join(values).encode("latin-1")):
                raw += len(part).to_bytes(4, "big") + part
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def _need(payload: bytes, n: int, what: str) -> None:
    if len(payload) < n:
        raise SpdyError(f"{what} frame too short")


def _u31(payload: bytes) -> int:
    return int.from_bytes(payload[:4], "big") & 0x7FFFFFFF


def _string(raw: bytes, pos: int) -> tuple[bytes, int]:
    n = int.from_bytes(raw[pos:pos + 4], "big")
    if pos + 4 + n > len(raw):
        raise ValueError("truncated")
    return raw[pos + 4:pos + 4 + n], pos + 4 + n
