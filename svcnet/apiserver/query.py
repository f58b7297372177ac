"""Query parameters and continue tokens, converted exactly as kube-apiserver converts them.

Theory of operation
-------------------
kube-apiserver decodes a request's query into ``ListOptions``/``DeleteOptions`` through its
parameter codec; an integer parameter goes through ``strconv.ParseInt(s, 10, 64)``
(``Convert_Slice_string_To_int64`` in ``staging/src/k8s.io/apimachinery/pkg/runtime/
conversion.go``), and any failure is a 400 carrying Go's message. Python's ``int()`` is far more
lenient (spaces, underscores, other scripts' digits, no size limit), so :func:`int64_param`
does what ``ParseInt`` does.

A continue token is ``base64url({"v":"meta.k8s.io/v1","rv":REV,"start":KEY})`` where ``KEY``
is relative to the list's key prefix (``staging/src/k8s.io/apiserver/pkg/storage/continue.go``).
Decoding refuses what the upstream decoder refuses: bad base64 or JSON, a revision that is not an
int64, revision 0, an empty or un-clean key (``..``, ``//``: a token can never reach above the
prefix it is used with). A negative revision means "the latest", as in the etcd3 store. Every
refusal is 400 ``invalid continue token: ...``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from svcnet.api.errors import bad_request
from svcnet.api.yamljson import valid_text

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"[+-]?[0-9]+")
CONTINUE_VERSION = "meta.k8s.io/v1"


def parse_int64(text: str) -> int:
    """``strconv.ParseInt(text, 10, 64)``; ValueError with Go's message."""
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def int64_param(query: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """The query parameter ``name`` as an int64, ``default`` when absent; 400 when malformed."""
    text = query.get(name)
    if text is None:
        return default
    try:
        return parse_int64(text)
    except ValueError as e:
        raise bad_request(str(e)) from None


def encode_continue(revision: int, key: str, prefix: str) -> str:
    """The token that continues a list of keys under ``prefix`` after ``key`` at ``revision``."""
    if not key.startswith(prefix):
        raise ValueError(f"unable to encode next field: the key and key prefix do not match "
                         f"{prefix} {key}")
    raw = json.dumps({"v": CONTINUE_VERSION, "rv": revision, "start": key[len(prefix):]},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    """(revision, the key to continue after) from ``token``, for a list under ``prefix``.

    A revision below 0 asks for the latest (returned as 0, as a list without one).
    """
    try:
        revision, start = _decode(token)
    except ValueError as e:
        raise bad_request(f"invalid continue token: continue key is not valid: {e}") from None
    key = start if start.startswith("/") else "/" + start
    if not _is_clean(key):
        raise bad_request(f"invalid continue token: continue key is not valid: {start}")
    return max(revision, 0), prefix + key[1:]


def _decode(token: str) -> tuple[int, str]:
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("illegal base64 data") from None
    try:
        doc = json.loads(data.decode("utf-8", errors="replace"))
    except ValueError as e:
        raise ValueError(f"json: {e}") from None
    except RecursionError:
        raise ValueError("json: exceeded max depth") from None
    if not isinstance(doc, dict):
        raise ValueError("json: cannot unmarshal into Go value of type storage.continueToken")
    version, rv, start = doc.get("v", ""), doc.get("rv", 0), doc.get("start", "")
    if not isinstance(version, str) or not isinstance(start, str):
        raise ValueError("json: cannot unmarshal into Go struct field of type string")
    if isinstance(rv, bool) or not isinstance(rv, int) or not INT64_MIN <= rv <= INT64_MAX:
        raise ValueError(f"json: cannot unmarshal number {rv} into Go struct field "
                         "continueToken.rv of type int64")
    if version != CONTINUE_VERSION:
        raise bad_request("invalid continue token: continue key is not valid: server does not "
                          f"recognize this encoded version {version}")
    if rv == 0:
        raise bad_request("invalid continue token: continue key is not valid: incorrect "
                          "encoded start resourceVersion (version meta.k8s.io/v1)")
    if not start:
        raise bad_request("invalid continue token: continue key is not valid: encoded start "
                          "key empty (version meta.k8s.io/v1)")
    return rv, valid_text(start)


def _is_clean(key: str) -> bool:
    """``path.Clean(key) == key`` for a key starting with ``/``."""
    if key == "/":
        return True
    parts = key[1:].split("/")
    return all(p not in ("", ".", "..") for p in parts)
