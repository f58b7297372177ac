"""Go's ``net/url.Parse``, as far as validating a URL the way Kubernetes does needs it.

Theory of operation
-------------------
Kubernetes validates the URLs of webhooks (``clientConfig.url``) by parsing them with Go's
``url.Parse`` and then looking at the parts: the scheme, the host, the user information, the
fragment and the query. Python's ``urllib.parse`` splits URLs by other rules (it has no
"opaque" form, accepts what Go refuses and refuses what Go accepts), so the messages a user
sees would differ. :func:`parse_url` follows Go's algorithm (``net/url/url.go``: ``Parse``,
``parse``, ``getScheme``, ``parseAuthority``, ``parseHost``, ``unescape``) step by step:

1. the fragment is everything after the first ``#``;
2. a control character (below 0x20, or 0x7f) anywhere is an error;
3. the scheme is a leading ``[A-Za-z][A-Za-z0-9+.-]*`` ended by ``:`` (``:`` first is "missing
   protocol scheme"), lower-cased;
4. the query is everything after the first ``?`` (a lone trailing ``?`` forces an empty one);
5. with a scheme and no ``/`` after it the rest is *opaque* (no host); without a scheme a
   first path segment holding ``:`` is an error;
6. ``//authority`` gives the user information (before the last ``@``, with Go's allowed
   characters) and the host (a ``[...]`` literal or a name, an optional numeric port, and
   characters a host may hold); the path and fragment must have valid ``%XX`` escapes.

Errors carry Go's text, wrapped as ``url.Error`` prints itself: ``parse "<url>": <reason>``.
What is left out, because no caller reads it: the path, the user name and password apart,
IPv6 zone identifiers (``%25`` in a literal is accepted as Go does, without further checks),
and the ``OmitHost``/``RawPath`` bookkeeping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from svcnet.api.errors import go_quote

__all__ = ["GoURL", "URLError", "parse_url"]

_HEX: Final = frozenset("0123456789abcdefABCDEF")
_UNRESERVED: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")
#: What a host may hold besides unreserved characters (shouldEscape's encodeHost case).
_HOST_EXTRA: Final = frozenset("!$&'()*+,;=:[]<>\"")
#: validUserinfo: unreserved, sub-delims, ':', '%' and '@'.
_USERINFO: Final = _UNRESERVED | frozenset("!$&'()*+,;=:%@")
_SCHEME_START: Final = re.compile(r"[A-Za-z]")


class URLError(ValueError):
    """A URL Go's ``url.Parse`` refuses; ``str()`` is Go's ``*url.Error`` text."""


@dataclass(frozen=True, slots=True)
class GoURL:
    """The parts of a parsed URL that validation looks at (Go's ``url.URL`` fields)."""

    scheme: str = ""
    opaque: str = ""
    #: The user information as written (``user`` or ``user:password``); None without ``@``.
    user: str | None = None
    host: str = ""
    raw_query: str = ""
    fragment: str = ""


def parse_url(raw: str) -> GoURL:
    """``url.Parse(raw)``; raises :class:`URLError` with Go's message where Go errs."""
    text, _, fragment = raw.partition("#")
    try:
        url = _parse(text)
    except ValueError as e:
        raise URLError(f"parse {go_quote(text)}: {e}") from None
    if not fragment:
        return url
    try:
        fragment = _unescape(fragment, host=False)
    except ValueError as e:
        raise URLError(f"parse {go_quote(raw)}: {e}") from None
    return GoURL(url.scheme, url.opaque, url.user, url.host, url.raw_query, fragment)


def _parse(raw: str) -> GoURL:
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in raw):
        raise ValueError("net/url: invalid control character in URL")
    if raw == "*":
        return GoURL()
    scheme, rest = _get_scheme(raw)
    scheme = scheme.lower()
    raw_query = ""
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]  # ForceQuery: an empty query
    else:
        rest, _, raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            return GoURL(scheme, opaque=rest, raw_query=raw_query)  # a rootless path
        if ":" in rest.partition("/")[0]:
            raise ValueError("first path segment in URL cannot contain colon")
    user: str | None = None
    host = ""
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        user, host = _parse_authority(authority)
        rest = slash + path
    _unescape(rest, host=False)  # setPath: only its escapes can be wrong
    return GoURL(scheme, "", user, host, raw_query)


def _get_scheme(raw: str) -> tuple[str, str]:
    for i, c in enumerate(raw):
        if _SCHEME_START.fullmatch(c):
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise ValueError("missing protocol scheme")
            return raw[:i], raw[i + 1:]
        return "", raw  # a character no scheme holds: there is none
    return "", raw


def _parse_authority(authority: str) -> tuple[str | None, str]:
    at = authority.rfind("@")
    host = _parse_host(authority[at + 1:])
    if at < 0:
        return None, host
    userinfo = authority[:at]
    if any(c.isascii() and c not in _USERINFO for c in userinfo):
        raise ValueError("net/url: invalid userinfo")
    for part in userinfo.split(":", 1):
        _unescape(part, host=False)
    return userinfo, host


def _parse_host(host: str) -> str:
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0:
            raise ValueError("missing ']' in host")
        port = host[close + 1:]
    else:
        colon = host.rfind(":")
        port = host[colon:] if colon >= 0 else ""
    if port and (port[0] != ":" or not all(c in "0123456789" for c in port[1:])):
        raise ValueError(f"invalid port {go_quote(port)} after host")
    return _unescape(host, host=True)


def _unescape(s: str, *, host: bool) -> str:
    """``unescape`` in encodePath/encodeFragment (``host=False``) or encodeHost mode: every
    ``%`` starts two hex digits; a host may hold only its own characters."""
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%":
            code = s[i + 1:i + 3]
            if len(code) < 2 or not set(code) <= _HEX:
                raise ValueError(f"invalid URL escape {go_quote(s[i:i + 3])}")
            # In a host, %XX may only escape a byte >= 0x80 (or be %25, a zone's '%').
            if host and int(code[0], 16) < 8 and s[i:i + 3] != "%25":
                raise ValueError(f"invalid URL escape {go_quote(s[i:i + 3])}")
            out.append(int(code, 16))
            i += 3
            continue
        if host and c.isascii() and c not in _UNRESERVED and c not in _HOST_EXTRA:
            raise ValueError(f"invalid character {go_quote(c)} in host name")
        out.extend(c.encode())
        i += 1
    return out.decode(errors="replace")
