"""Label selectors and field selectors, parsed and matched exactly as Kubernetes does.

Mirrors:

* ``staging/src/k8s.io/apimachinery/pkg/labels/selector.go`` — the label selector lexer and
  recursive-descent parser (``Parse``), ``NewRequirement``'s checks, ``Requirement.Matches`` and
  the canonical ``String()`` form;
* ``staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/helpers.go`` — ``LabelSelectorAsSelector``
  (a ``metav1.LabelSelector`` object → selector);
* ``staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go`` —
  ``ValidateLabelSelector`` (the field errors reported when a LabelSelector is a field of an
  object being validated);
* ``staging/src/k8s.io/apimachinery/pkg/fields/selector.go`` — field selectors, with backslash
  escaping of ``,`` ``=`` and ``\\`` in values;
* the per-kind field-label conversion functions (``pkg/apis/core/v1/conversion.go``) and
  ``ToSelectableFields`` of the pod/node/namespace/service registries, which decide what a field
  selector may name and what value each field has.

Parse failures raise :class:`SelectorError` (a ``ValueError``) whose message is the text the
Kubernetes API server puts in its 400 response, so clients that match on it keep working.

Why this module is long: A port of labels/selector.go and fields/selector.go, kept whole so it
can be compared with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Final

from svcnet.api.errors import (
    FieldError,
    Path,
    aggregate_message,
    forbidden,
    go_quote,
    invalid,
    not_supported,
    required,
)
from svcnet.api.meta import validate_labels
from svcnet.api.names import is_qualified_name, is_valid_label_value

__all__ = [
    "EVERYTHING",
    "FIELD_LABELS",
    "NOTHING",
    "FieldRequirement",
    "FieldSelector",
    "Operator",
    "Requirement",
    "Selector",
    "SelectorError",
    "Token",
    "escape_field_value",
    "field_value",
    "lex",
    "new_requirement",
    "normalize_field_selector",
    "parse_field_selector",
    "parse_selector",
    "selectable_fields",
    "selector_from_label_selector",
    "selector_from_set",
    "unescape_field_value",
    "validate_field_selector",
    "validate_label_selector",
]


class SelectorError(ValueError):
    """A selector that cannot be parsed or built; ``str()`` is Kubernetes' message.

    ``errors`` carries the underlying field errors when the failure came from
    ``NewRequirement``'s checks (empty otherwise).
    """

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors: list[FieldError] = list(errors)


# =============================================================================================
# label selectors: requirements


class Operator(StrEnum):
    """selection.Operator: the string values are upstream's (``Exists`` is ``"exists"``...)."""

    DOES_NOT_EXIST = "!"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    IN = "in"
    NOT_EQUALS = "!="
    NOT_IN = "notin"
    EXISTS = "exists"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


# The order matters: it is the order of the "expected: ..." list in parse errors.
_BINARY_OPERATORS: Final = (Operator.IN, Operator.NOT_IN, Operator.EQUALS, Operator.DOUBLE_EQUALS,
                            Operator.NOT_EQUALS, Operator.GREATER_THAN, Operator.LESS_THAN)
_UNARY_OPERATORS: Final = (Operator.EXISTS, Operator.DOES_NOT_EXIST)
_VALID_OPERATORS: Final = (*_BINARY_OPERATORS, *_UNARY_OPERATORS)

# strconv.ParseInt(s, 10, 64): optional sign, ASCII digits only (no spaces, no underscores).
_GO_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _parse_int64(value: str) -> int | None:
    if not _GO_INT_RE.fullmatch(value):
        return None
    n = int(value)
    return n if _INT64_MIN <= n <= _INT64_MAX else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key op values`` term; build it with :func:`new_requirement` to get it checked."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Requirement.Matches."""
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int64(labels[self.key])
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op is Operator.GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        """Requirement.String: the canonical text (multi-value sets are printed sorted)."""
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({values})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{values}"


def _label_key_error(key: str, path: Path | str) -> FieldError | None:
    msgs = is_qualified_name(key)
    return invalid(path, key, "; ".join(msgs)) if msgs else None


def new_requirement(key: str, operator: Operator | str, values: Iterable[str] = (),  # noqa: C901
                    path: Path | None = None) -> Requirement:
    """NewRequirement: build a requirement, raising :class:`SelectorError` if it is invalid.

    ``path`` prefixes the error fields the way ``field.WithPath`` does; without it the fields
    are ``key``, ``values`` and ``values[i][<key>]`` (what clients see in the 400 message).
    """
    vals = tuple(values)
    base = path if path is not None else Path()
    errs: list[FieldError] = []
    key_err = _label_key_error(key, base.child("key"))
    if key_err is not None:
        errs.append(key_err)
    values_path = base.child("values")
    try:
        op = Operator(operator)
    except ValueError:
        op = None
    if op in (Operator.IN, Operator.NOT_IN):
        if not vals:
            errs.append(invalid(values_path, list(vals),
                                "for 'in', 'notin' operators, values set can't be empty"))
    elif op in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
        if len(vals) != 1:
            errs.append(invalid(values_path, list(vals),
                                "exact-match compatibility requires one single value"))
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        if vals:
            errs.append(invalid(values_path, list(vals),
                                "values set must be empty for exists and does not exist"))
    elif op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        if len(vals) != 1:
            errs.append(invalid(values_path, list(vals),
                                "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(vals):
            if _parse_int64(v) is None:
                errs.append(invalid(values_path.index(i), v,
                                    "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        errs.append(not_supported(base.child("operator"), str(operator),
                                  [o.value for o in _VALID_OPERATORS]))
    for i, v in enumerate(vals):
        msgs = is_valid_label_value(v)
        if msgs:
            errs.append(invalid(values_path.index(i).key(key), v, "; ".join(msgs)))
    if errs or op is None:  # an unknown operator always produced an error above
        raise SelectorError(aggregate_message(errs), errs)
    return Requirement(key, op, vals)


# =============================================================================================
# label selectors: the selector


@dataclass(frozen=True, slots=True)
class Selector:
    """A label selector: the AND of its requirements (kept sorted by key, as upstream does).

    ``nothing`` marks ``labels.Nothing()`` — what a nil ``metav1.LabelSelector`` converts to.
    """

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        ls = labels or {}
        return all(r.matches(ls) for r in self.requirements)

    def empty(self) -> bool:
        """True when the selector does not restrict anything (Everything)."""
        return not self.nothing and not self.requirements

    def add(self, *reqs: Requirement) -> Selector:
        if self.nothing:
            return self
        return Selector(_sort_by_key((*self.requirements, *reqs)))

    def requires_exact_match(self, label: str) -> str | None:
        """The single value ``label`` must have, if the selector pins one (else None)."""
        for r in self.requirements:
            if r.key == label:
                if (r.operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
                        and len(r.values) == 1):
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _sort_by_key(reqs: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(reqs, key=lambda r: r.key))


EVERYTHING: Final = Selector()
NOTHING: Final = Selector(nothing=True)


def selector_from_set(labels: Mapping[str, str] | None) -> Selector:
    """SelectorFromSet / SelectorFromValidatedSet: equality on every pair; {} matches all.

    No validation, as upstream (a Service's ``spec.selector`` was validated on write).
    """
    if not labels:
        return EVERYTHING
    return Selector(_sort_by_key(Requirement(k, Operator.EQUALS, (v,)) for k, v in labels.items()))


# =============================================================================================
# label selectors: lexer


class Token(IntEnum):
    """Lexer tokens, numbered as upstream (0 is the error token)."""

    ERROR = 0
    END_OF_STRING = 1
    CLOSED_PAR = 2
    COMMA = 3
    DOES_NOT_EXIST = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GREATER_THAN = 7
    IDENTIFIER = 8
    IN = 9
    LESS_THAN = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN_PAR = 13


_STRING_TO_TOKEN: Final = {
    ")": Token.CLOSED_PAR,
    ",": Token.COMMA,
    "!": Token.DOES_NOT_EXIST,
    "==": Token.DOUBLE_EQUALS,
    "=": Token.EQUALS,
    ">": Token.GREATER_THAN,
    "in": Token.IN,
    "<": Token.LESS_THAN,
    "!=": Token.NOT_EQUALS,
    "notin": Token.NOT_IN,
    "(": Token.OPEN_PAR,
}
_WHITESPACE: Final = frozenset(" \t\r\n")
_SPECIAL: Final = frozenset("=!(),><")


class _Lexer:
    """Upstream's byte lexer, on code points (same result: all delimiters are ASCII).

    A NUL character ends the input, as the Go lexer's ``read()`` returns 0 both for a NUL
    byte and for the end of the string.
    """

    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0

    def _read(self) -> str:
        if self.pos < len(self.s):
            ch = self.s[self.pos]
            self.pos += 1
            return ch
        return "\0"

    def _unread(self) -> None:
        self.pos -= 1

    def _scan_id_or_keyword(self) -> tuple[Token, str]:
        buf: list[str] = []
        while True:
            ch = self._read()
            if ch == "\0":
                break
            if ch in _SPECIAL or ch in _WHITESPACE:
                self._unread()
                break
            buf.append(ch)
        text = "".join(buf)
        return _STRING_TO_TOKEN.get(text, Token.IDENTIFIER), text

    def _scan_special_symbol(self) -> tuple[Token, str]:
        # Longest match: keep extending while the buffer is still a known operator.
        last: tuple[Token, str] = (Token.ERROR, "")
        buf = ""
        while True:
            ch = self._read()
            if ch == "\0":
                break
            if ch in _SPECIAL:
                buf += ch
                tok = _STRING_TO_TOKEN.get(buf)
                if tok is not None:
                    last = (tok, buf)
                elif last[0] is not Token.ERROR:
                    self._unread()
                    break
            else:
                self._unread()
                break
        if last[0] is Token.ERROR:
            return Token.ERROR, f"error expected: keyword found '{buf}'"
        return last

    def lex(self) -> tuple[Token, str]:
        ch = self._read()
        while ch in _WHITESPACE:
            ch = self._read()
        if ch == "\0":
            return Token.END_OF_STRING, ""
        self._unread()
        if ch in _SPECIAL:
            return self._scan_special_symbol()
        return self._scan_id_or_keyword()


def lex(text: str) -> list[tuple[Token, str]]:
    """All tokens of ``text`` up to and including END_OF_STRING (for tests and debugging)."""
    lexer = _Lexer(text)
    items: list[tuple[Token, str]] = []
    while True:
        tok, lit = lexer.lex()
        items.append((tok, lit))
        if tok is Token.END_OF_STRING:
            return items


# =============================================================================================
# label selectors: parser


class _ParseError(Exception):
    """Internal: a parse error message, before the "unable to parse requirement" wrapping."""


class _Parser:
    def __init__(self, text: str, path: Path | None) -> None:
        self.items = lex(text)
        self.position = 0
        self.path = path

    def _item(self, index: int, values_context: bool) -> tuple[Token, str]:
        tok, lit = self.items[min(index, len(self.items) - 1)]
        # In a values context "in"/"notin" are just words: "x in (in,notin)" is valid.
        if values_context and tok in (Token.IN, Token.NOT_IN):
            tok = Token.IDENTIFIER
        return tok, lit

    def lookahead(self, values_context: bool = True) -> tuple[Token, str]:
        return self._item(self.position, values_context)

    def consume(self, values_context: bool = True) -> tuple[Token, str]:
        item = self._item(self.position, values_context)
        self.position += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (Token.IDENTIFIER, Token.DOES_NOT_EXIST):
                try:
                    reqs.append(self._parse_requirement())
                except _ParseError as exc:
                    raise SelectorError(f"unable to parse requirement: {exc}") from None
                except SelectorError as exc:
                    raise SelectorError(f"unable to parse requirement: {exc}",
                                        exc.errors) from None
                t, lit2 = self.consume()
                if t is Token.END_OF_STRING:
                    return reqs
                if t is Token.COMMA:
                    t2, lit3 = self.lookahead()
                    if t2 not in (Token.IDENTIFIER, Token.DOES_NOT_EXIST):
                        raise SelectorError(f"found '{lit3}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok is Token.END_OF_STRING:
                return reqs
            else:
                raise SelectorError(
                    f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _parse_requirement(self) -> Requirement:
        key, op = self._parse_key_and_infer_operator()
        if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            return new_requirement(key, op, (), self.path)
        op = self._parse_operator()
        if op in (Operator.IN, Operator.NOT_IN):
            values = self._parse_values()
        else:
            values = self._parse_exact_value()
        # Upstream collects values in a sets.String and passes its sorted List().
        return new_requirement(key, op, sorted(values), self.path)

    def _parse_key_and_infer_operator(self) -> tuple[str, Operator | None]:
        op: Operator | None = None
        tok, lit = self.consume()
        if tok is Token.DOES_NOT_EXIST:
            op = Operator.DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok is not Token.IDENTIFIER:
            raise _ParseError(f"found '{lit}', expected: identifier")
        # Upstream validates the key against the parser's path, which is nil for a plain
        # Parse(): Go prints a nil *field.Path as "<nil>", and clients see exactly that.
        key_err = _label_key_error(lit, self.path if self.path is not None else "<nil>")
        if key_err is not None:
            raise SelectorError(str(key_err), [key_err])
        nxt, _ = self.lookahead()
        if nxt in (Token.END_OF_STRING, Token.COMMA) and op is not Operator.DOES_NOT_EXIST:
            op = Operator.EXISTS
        return lit, op

    def _parse_operator(self) -> Operator:
        tok, lit = self.consume(values_context=False)
        ops = {
            Token.IN: Operator.IN,
            Token.EQUALS: Operator.EQUALS,
            Token.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
            Token.GREATER_THAN: Operator.GREATER_THAN,
            Token.LESS_THAN: Operator.LESS_THAN,
            Token.NOT_IN: Operator.NOT_IN,
            Token.NOT_EQUALS: Operator.NOT_EQUALS,
        }
        if tok not in ops:
            expected = ", ".join(o.value for o in _BINARY_OPERATORS)
            raise _ParseError(f"found '{lit}', expected: {expected}")
        return ops[tok]

    def _parse_values(self) -> set[str]:
        tok, lit = self.consume()
        if tok is not Token.OPEN_PAR:
            raise _ParseError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in (Token.IDENTIFIER, Token.COMMA):
            values = self._parse_identifiers_list()
            tok2, _ = self.consume()
            if tok2 is not Token.CLOSED_PAR:  # unreachable upstream too; kept for parity
                raise _ParseError(f"found '{lit}', expected: ')'")
            return values
        if tok is Token.CLOSED_PAR:  # "()" means the set {""}
            self.consume()
            return {""}
        raise _ParseError(f"found '{lit}', expected: ',', ')' or identifier")

    def _parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok is Token.IDENTIFIER:
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 is Token.COMMA:
                    continue
                if tok2 is Token.CLOSED_PAR:
                    return values
                raise _ParseError(f"found '{lit2}', expected: ',' or ')'")
            if tok is Token.COMMA:
                # Empty items between commas are the empty-string value: "(,a)", "(a,)", "(a,,b)".
                if not values:
                    values.add("")
                tok2, _ = self.lookahead()
                if tok2 is Token.CLOSED_PAR:
                    values.add("")
                    return values
                if tok2 is Token.COMMA:
                    values.add("")
                continue
            raise _ParseError(f"found '{lit}', expected: ',', or identifier")

    def _parse_exact_value(self) -> set[str]:
        tok, _ = self.lookahead()
        if tok in (Token.END_OF_STRING, Token.COMMA):
            return {""}
        tok, lit = self.consume()
        if tok is Token.IDENTIFIER:
            return {lit}
        raise _ParseError(f"found '{lit}', expected: identifier")


def parse_selector(text: str, path: Path | None = None) -> Selector:
    """labels.Parse: ``a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3``.

    Whitespace separates tokens and is otherwise ignored; values may be empty (``a=``,
    ``a in ()``); ``in``/``notin`` are only keywords in operator position. Raises
    :class:`SelectorError` with upstream's message on any error.
    """
    return Selector(_sort_by_key(_Parser(text, path).parse()))


# =============================================================================================
# metav1.LabelSelector


_LABEL_SELECTOR_OPS: Final = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def selector_from_label_selector(label_selector: Mapping[str, Any] | None) -> Selector:
    """LabelSelectorAsSelector: None matches nothing, ``{}`` matches everything.

    Raises :class:`SelectorError` for an unknown operator or an invalid requirement, with
    upstream's message. ``matchLabels`` is processed in key order (Go's map order is random,
    so upstream's choice of *which* bad entry to report is not deterministic).
    """
    if label_selector is None:
        return NOTHING
    match_labels: Mapping[str, str] = label_selector.get("matchLabels") or {}
    exprs: Sequence[Mapping[str, Any]] = label_selector.get("matchExpressions") or []
    if not match_labels and not exprs:
        return EVERYTHING
    reqs = [new_requirement(k, Operator.EQUALS, [match_labels[k]]) for k in sorted(match_labels)]
    for expr in exprs:
        op_name = expr.get("operator") or ""
        op = _LABEL_SELECTOR_OPS.get(op_name)
        if op is None:
            raise SelectorError(f"{go_quote(op_name)} is not a valid pod selector operator")
        reqs.append(new_requirement(expr.get("key") or "", op, list(expr.get("values") or [])))
    return Selector(_sort_by_key(reqs))


def validate_label_selector(label_selector: Mapping[str, Any] | None, path: Path, *,
                            allow_invalid_label_value: bool = False) -> list[FieldError]:
    """metav1 ValidateLabelSelector: field errors for a LabelSelector inside an object.

    ``allow_invalid_label_value`` is LabelSelectorValidationOptions' escape hatch (upstream
    uses it only for objects that were stored before values were checked).
    """
    errs: list[FieldError] = []
    if label_selector is None:
        return errs
    errs.extend(validate_labels(label_selector.get("matchLabels"), path.child("matchLabels")))
    exprs: Sequence[Mapping[str, Any]] = label_selector.get("matchExpressions") or []
    for i, expr in enumerate(exprs):
        p = path.child("matchExpressions").index(i)
        op = expr.get("operator") or ""
        values: Sequence[str] = expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(p.child("values"),
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(
                    p.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(p.child("operator"), op, "not a valid selector operator"))
        key = expr.get("key") or ""
        errs.extend(invalid(p.child("key"), key, m) for m in is_qualified_name(key))
        if not allow_invalid_label_value:
            for j, v in enumerate(values):
                errs.extend(invalid(p.child("values").index(j), v, m)
                            for m in is_valid_label_value(v))
    return errs


# =============================================================================================
# field selectors


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``field=value`` (``==`` is the same) or ``field!=value``."""

    field: str
    operator: Operator  # EQUALS or NOT_EQUALS
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        # fields.Set.Get: an absent field reads as "".
        have = fields.get(self.field, "")
        return have == self.value if self.operator is Operator.EQUALS else have != self.value

    def __str__(self) -> str:
        op = "=" if self.operator is Operator.EQUALS else "!="
        return f"{self.field}{op}{escape_field_value(self.value)}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """The AND of field requirements; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Match against a flat ``{"metadata.name": ..., ...}`` map (a fields.Set)."""
        return all(r.matches(fields) for r in self.requirements)

    def matches_object(self, obj: Mapping[str, Any], kind: str | None = None) -> bool:
        """Match an object: through its kind's selectable fields when ``kind`` is known to
        :data:`FIELD_LABELS`, else by reading each requirement's dotted path from the object."""
        if kind is not None and kind in FIELD_LABELS:
            return self.matches(selectable_fields(kind, obj))
        return self.matches({r.field: field_value(obj, r.field) for r in self.requirements})

    def empty(self) -> bool:
        return not self.requirements

    def requires_exact_match(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and r.operator is Operator.EQUALS:
                return r.value
        return None

    def fields(self) -> list[str]:
        return [r.field for r in self.requirements]

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_FIELD_ESCAPES: Final = {"\\": "\\\\", ",": "\\,", "=": "\\="}


def escape_field_value(value: str) -> str:
    """fields.EscapeValue: backslash-escape ``\\``, ``,`` and ``=``."""
    return "".join(_FIELD_ESCAPES.get(c, c) for c in value)


def unescape_field_value(value: str) -> str:
    """fields.UnescapeValue, with upstream's messages.

    Note the unescaped-rune message prints the code point as a number (Go formats a rune with
    ``%v``): ``"a=b"`` fails with "unescaped character in value: 61".
    """
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(
                    f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            raise SelectorError(
                f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped (the backslashes are kept)."""
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first position where any operator starts wins; "!=" and "==" are tried before "="
    # so that "a==b" does not leave "=b" as the value.
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """fields.ParseSelector: ``metadata.name=x,spec.nodeName!=,status.phase==Running``.

    Terms are sorted (as upstream sorts them before building the selector); the left-hand side
    is taken verbatim, the right-hand side is unescaped. Raises :class:`SelectorError`.
    """
    reqs: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        value = unescape_field_value(rhs)
        operator = Operator.NOT_EQUALS if op == "!=" else Operator.EQUALS
        reqs.append(FieldRequirement(lhs, operator, value))
    return FieldSelector(tuple(reqs))


def _go_string(value: object) -> str:
    """How a scalar reads in a fields.Set (strconv.FormatBool for booleans)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_value(obj: Mapping[str, Any], dotted: str) -> str:
    """The value at a dotted path (``spec.nodeName``) as a string; absent reads as ``""``."""
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, Mapping | list):
        return ""
    return _go_string(cur)


def _meta_fields(obj: Mapping[str, Any], namespaced: bool) -> dict[str, str]:
    """generic.ObjectMetaFieldsSet."""
    meta = obj.get("metadata") or {}
    fields = {"metadata.name": _go_string(meta.get("name"))}
    if namespaced:
        fields["metadata.namespace"] = _go_string(meta.get("namespace"))
    return fields


def _pod_fields(pod: Mapping[str, Any]) -> dict[str, str]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    pod_ips = status.get("podIPs") or []
    fields = _meta_fields(pod, True)
    fields.update({
        "spec.nodeName": _go_string(spec.get("nodeName")),
        "spec.restartPolicy": _go_string(spec.get("restartPolicy")),
        "spec.schedulerName": _go_string(spec.get("schedulerName")),
        "spec.serviceAccountName": _go_string(spec.get("serviceAccountName")),
        "spec.hostNetwork": _go_string(bool(spec.get("hostNetwork"))),
        "status.phase": _go_string(status.get("phase")),
        # Upstream reads status.podIP from podIPs[0], not from status.podIP.
        "status.podIP": _go_string(pod_ips[0].get("ip")) if pod_ips else "",
        "status.nominatedNodeName": _go_string(status.get("nominatedNodeName")),
    })
    return fields


def _node_fields(node: Mapping[str, Any]) -> dict[str, str]:
    fields = _meta_fields(node, False)
    fields["spec.unschedulable"] = _go_string(bool((node.get("spec") or {}).get("unschedulable")))
    return fields


def _namespace_fields(ns: Mapping[str, Any]) -> dict[str, str]:
    fields = _meta_fields(ns, False)
    fields["status.phase"] = _go_string((ns.get("status") or {}).get("phase"))
    # Upstream keeps a bare "name" field for backward compatibility (a known bug).
    fields["name"] = fields["metadata.name"]
    return fields


def _service_fields(svc: Mapping[str, Any]) -> dict[str, str]:
    spec = svc.get("spec") or {}
    fields = _meta_fields(svc, True)
    fields["spec.clusterIP"] = _go_string(spec.get("clusterIP"))
    fields["spec.type"] = _go_string(spec.get("type"))
    return fields


# What each kind's field-label conversion function accepts. Pods accept a few labels their
# selectable field set does not carry (metadata.uid, metadata.labels, ...): those always read
# as "" when matching, exactly as upstream.
FIELD_LABELS: Final[Mapping[str, frozenset[str]]] = {
    "Pod": frozenset({
        "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
        "metadata.uid", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
        "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
        "status.podIPs", "status.nominatedNodeName",
    }),
    "Node": frozenset({"metadata.name", "spec.unschedulable"}),
    "Namespace": frozenset({"metadata.name", "status.phase"}),
    "Service": frozenset({"metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"}),
    "EndpointSlice": frozenset({"metadata.name", "metadata.namespace"}),
    "Secret": frozenset({"metadata.name", "metadata.namespace", "type"}),
    "CertificateSigningRequest": frozenset({"metadata.name", "spec.signerName"}),
}

def _namespaced_meta_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    return _meta_fields(obj, True)


def _secret_fields(secret: Mapping[str, Any]) -> dict[str, str]:
    fields = _meta_fields(secret, True)
    fields["type"] = _go_string(secret.get("type"))
    return fields


def _csr_fields(csr: Mapping[str, Any]) -> dict[str, str]:
    fields = _meta_fields(csr, False)
    fields["spec.signerName"] = _go_string((csr.get("spec") or {}).get("signerName"))
    return fields


_SELECTABLE: Final[Mapping[str, Callable[[Mapping[str, Any]], dict[str, str]]]] = {
    "Pod": _pod_fields,
    "Node": _node_fields,
    "Namespace": _namespace_fields,
    "Service": _service_fields,
    "EndpointSlice": _namespaced_meta_fields,
    "Secret": _secret_fields,
    "CertificateSigningRequest": _csr_fields,
}

# Kinds without their own conversion function get DefaultMetaV1FieldSelectorConversion.
_DEFAULT_FIELD_LABELS: Final = frozenset({"metadata.name", "metadata.namespace"})


def selectable_fields(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The registry's ToSelectableFields for ``kind`` (metadata.name/namespace otherwise)."""
    return _SELECTABLE.get(kind, _namespaced_meta_fields)(obj)


def validate_field_selector(selector: FieldSelector, kind: str) -> None:
    """Reject field labels ``kind`` does not support, as the API server's conversion does.

    Pods also accept upstream's one alias, ``spec.host`` (see :func:`normalize_field_selector`,
    which rewrites it). Raises :class:`SelectorError`.
    """
    allowed = FIELD_LABELS.get(kind)
    if kind == "Pod" and allowed is not None:
        allowed = allowed | {"spec.host"}
    for r in selector.requirements:
        if allowed is None:
            if r.field not in _DEFAULT_FIELD_LABELS:
                raise SelectorError(
                    f"{go_quote(r.field)} is not a known field selector: only "
                    f"\"metadata.name\", \"metadata.namespace\"")
        elif r.field not in allowed:
            raise SelectorError(f"field label not supported: {r.field}")


def normalize_field_selector(selector: FieldSelector, kind: str) -> FieldSelector:
    """Apply the conversion aliases (old v1 clients send ``spec.host`` for pods)."""
    if kind != "Pod":
        return selector
    return FieldSelector(tuple(
        FieldRequirement("spec.nodeName", r.operator, r.value) if r.field == "spec.host" else r
        for r in selector.requirements))
