"""What Go's ``json.Unmarshal(data, &map[string]interface{}{})`` says about some bytes.

Theory of operation. Secret validation (``ValidateSecret`` for the ``dockercfg`` and
``dockerconfigjson`` types) reports the error text of that call, so the messages here are Go's
``encoding/json`` ones (``scanner.go``: ``checkValid`` scans the whole input first, so a syntax
error wins over a type error; ``decode.go``: ``UnmarshalTypeError``):

* ``unexpected end of JSON input`` (empty, or cut short);
* ``invalid character 'x' <context>``, the context naming the scanner state (``looking for
  beginning of value``, ``after object key``, ``in string literal``, ...);
* ``json: cannot unmarshal array into Go value of type map[string]interface {}`` for valid JSON
  that is not an object (``null`` is accepted, as Go accepts it).

It is a recursive-descent reading of the same grammar whose error points are those of Go's
state machine; it works on bytes, as Go does.
"""

from __future__ import annotations

from typing import Final

__all__ = ["unmarshal_object_error"]

_WS: Final = frozenset(b" \t\r\n")
_DIGITS: Final = frozenset(b"0123456789")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = frozenset(b'"\\/bfnrtu')
_END: Final = "unexpected end of JSON input"
_GO_ESCAPES: Final = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


class _SyntaxError(Exception):
    pass


def _quote_char(c: int) -> str:
    """Go's ``quoteChar``: the byte as a rune, in single quotes, ``strconv.Quote``-escaped."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    if c == ord("\\"):
        return "'\\\\'"
    if c in _GO_ESCAPES:
        return f"'{_GO_ESCAPES[c]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    if 0x80 <= c < 0xA0:
        return f"'\\u{c:04x}'"
    if c == 0xAD:  # soft hyphen: not printable for strconv
        return "'\\u00ad'"
    return f"'{chr(c)}'"


class _Scanner:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def fail(self, context: str) -> _SyntaxError:
        if self.i >= len(self.data):
            return _SyntaxError(_END)
        return _SyntaxError(f"invalid character {_quote_char(self.data[self.i])} {context}")

    def peek(self) -> int | None:
        return self.data[self.i] if self.i < len(self.data) else None

    def skip_ws(self) -> int | None:
        while self.i < len(self.data) and self.data[self.i] in _WS:
            self.i += 1
        return self.peek()

    def value(self) -> str:
        """One value from a 'beginning of value' state; returns its JSON type name."""
        c = self.skip_ws()
        if c == ord("{"):
            self.i += 1
            self.object()
            return "object"
        if c == ord("["):
            self.i += 1
            self.array()
            return "array"
        if c == ord('"'):
            self.i += 1
            self.string()
            return "string"
        if c is not None and (c == ord("-") or c in _DIGITS):
            self.number()
            return "number"
        for word, kind in ((b"true", "bool"), (b"false", "bool"), (b"null", "null")):
            if c == word[0]:
                self.literal(word)
                return kind
        raise self.fail("looking for beginning of value")

    def object(self) -> None:
        if self.skip_ws() == ord("}"):
            self.i += 1
            return
        while True:
            if self.skip_ws() != ord('"'):
                raise self.fail("looking for beginning of object key string")
            self.i += 1
            self.string()
            if self.skip_ws() != ord(":"):
                raise self.fail("after object key")
            self.i += 1
            self.value()
            c = self.skip_ws()
            self.i += 1
            if c == ord("}"):
                return
            if c != ord(","):
                self.i -= 1
                raise self.fail("after object key:value pair")

    def array(self) -> None:
        if self.skip_ws() == ord("]"):
            self.i += 1
            return
        while True:
            self.value()
            c = self.skip_ws()
            self.i += 1
            if c == ord("]"):
                return
            if c != ord(","):
                self.i -= 1
                raise self.fail("after array element")

    def string(self) -> None:
        while True:
            c = self.peek()
            if c is None:
                raise self.fail("")
            if c == ord('"'):
                self.i += 1
                return
            if c == ord("\\"):
                self.i += 1
                e = self.peek()
                if e is None or e not in _ESCAPES:
                    raise self.fail("in string escape code")
                self.i += 1
                if e == ord("u"):
                    for _ in range(4):
                        h = self.peek()
                        if h is None or h not in _HEX:
                            raise self.fail("in \\u hexadecimal character escape")
                        self.i += 1
                continue
            if c < 0x20:
                raise self.fail("in string literal")
            self.i += 1

    def digits(self) -> None:
        while (c := self.peek()) is not None and c in _DIGITS:
            self.i += 1

    def number(self) -> None:
        if self.peek() == ord("-"):
            self.i += 1
            c = self.peek()
            if c is None or c not in _DIGITS:
                raise self.fail("in numeric literal")
        if self.peek() == ord("0"):
            self.i += 1
        else:
            self.digits()
        if self.peek() == ord("."):
            self.i += 1
            c = self.peek()
            if c is None or c not in _DIGITS:
                raise self.fail("after decimal point in numeric literal")
            self.digits()
        if self.peek() in (ord("e"), ord("E")):
            self.i += 1
            if self.peek() in (ord("+"), ord("-")):
                self.i += 1
            c = self.peek()
            if c is None or c not in _DIGITS:
                raise self.fail("in exponent of numeric literal")
            self.digits()

    def literal(self, word: bytes) -> None:
        self.i += 1
        for expected in word[1:]:
            if self.peek() != expected:
                raise self.fail(f"in literal {word.decode()} (expecting {_quote_char(expected)})")
            self.i += 1


def unmarshal_object_error(data: bytes) -> str | None:
    """The error text of Go's ``json.Unmarshal`` into a ``map[string]interface{}``, or None."""
    scanner = _Scanner(data)
    try:
        kind = scanner.value()
        if scanner.skip_ws() is not None:
            raise scanner.fail("after top-level value")
    except _SyntaxError as e:
        return str(e)
    if kind in ("object", "null"):
        return None
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
