"""``[]byte`` fields as Kubernetes' JSON decoder reads them: Go's standard base64.

Theory of operation. A Secret's ``data`` and a ConfigMap's ``binaryData`` are ``map[string][]byte``
in the Go types; ``encoding/json`` (through ``sigs.k8s.io/json``) carries a ``[]byte`` as a
base64 string and decodes it with ``base64.StdEncoding`` (Go's ``encoding/base64``, file
``base64.go``: ``Decode`` and ``decodeQuantum``). That decoder is not Python's:

* ``\\r`` and ``\\n`` are skipped wherever they are, padding included;
* padding is required (``YQ`` is an error, ``YQ==`` is ``a``), and nothing may follow it;
* it is not strict: the unused low bits of the last character need not be zero;
* a failure names the offset of the bad input byte (``illegal base64 data at input byte 4``),
  which is what kube-apiserver answers (400, ``Secret in version "v1" cannot be handled as a
  Secret: illegal base64 data at input byte 4``).

Values are kept canonical after decoding (re-encoded without line breaks), as the API server
returns what it stored as bytes, never the client's spelling.
"""

from __future__ import annotations

import base64
import re
from typing import Final

__all__ = ["Base64Error", "canonical_base64", "decoded_length"]

_ALPHABET: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_CANONICAL: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_NEWLINES: Final = frozenset(b"\r\n")
_OTHER: Final = re.compile(rb"[^A-Za-z0-9+/\r\n]")


class Base64Error(ValueError):
    """Go's ``base64.CorruptInputError``: the offset of the first bad byte of the input."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"illegal base64 data at input byte {offset}")
        self.offset = offset


def _quantum(src: bytes, si: int) -> int:
    """One ``decodeQuantum`` step from ``src[si]``: the next ``si``; raises on bad input.

    Mirrors Go's control flow so that the reported offset is Go's, character for character.
    """
    n = len(src)
    j = 0
    while j < 4:
        if si == n:
            if j == 0:
                return si
            raise Base64Error(si - j)  # StdEncoding pads: a short final quantum is an error
        c = src[si]
        si += 1
        if c in _ALPHABET:
            j += 1
            continue
        if c in _NEWLINES:
            continue
        if c != ord("=") or j < 2:
            raise Base64Error(si - 1)
        if j == 2:  # "==" expected; the first "=" is consumed
            while si < n and src[si] in _NEWLINES:
                si += 1
            if si == n:
                raise Base64Error(n)
            if src[si] != ord("="):
                raise Base64Error(si - 1)
            si += 1
        while si < n and src[si] in _NEWLINES:
            si += 1
        if si < n:
            raise Base64Error(si)  # trailing garbage after the padding
        return si
    return si


def _error_offset(src: bytes) -> int:
    """Go's offset for input that is not valid, found without walking the valid prefix: every
    quantum before the first byte outside the alphabet and line breaks decodes, so Go's
    ``decodeQuantum`` is replayed from the start of the quantum holding that byte."""
    first_other = _OTHER.search(src)
    end = first_other.start() if first_other else len(src)
    alphabet = end - src.count(b"\n", 0, end) - src.count(b"\r", 0, end)
    si, left = end, alphabet % 4
    while left:
        si -= 1
        if src[si] in _ALPHABET:
            left -= 1
    try:
        while si < len(src):
            si = _quantum(src, si)
    except Base64Error as e:
        return e.offset
    return 0  # unreachable for input the fast path refused


def canonical_base64(text: str) -> str:
    """``text`` decoded as Go's ``base64.StdEncoding`` does, re-encoded canonically.

    Raises :class:`Base64Error` (Go's message and offset) when Go would refuse it.
    """
    stripped = text.replace("\n", "").replace("\r", "") if "\n" in text or "\r" in text \
        else text
    if _CANONICAL.fullmatch(stripped):
        # Line breaks are skipped wherever they are, padding included: without them the
        # input is canonical, so Go accepts it.
        return base64.b64encode(base64.b64decode(stripped)).decode("ascii")
    raise Base64Error(_error_offset(text.encode("utf-8", "surrogatepass")))


def decoded_length(canonical: str) -> int:
    """The number of bytes a canonical base64 string (as stored) stands for."""
    return len(canonical) // 4 * 3 - canonical[-2:].count("=") if canonical else 0
