"""JSON as Go's ``encoding/json`` writes it, which is what Kubernetes sends and what clients that
compare bodies expect: UTF-8 (not ``\\uXXXX`` for non-ASCII), the HTML-safe escapes of
``<``, ``>``, ``&`` and the line and paragraph separators, compact unless indented, and (from an
``Encoder``, as the API server writes every answer) a trailing newline."""

from __future__ import annotations

import json
from typing import Any, Final

_ESCAPES: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                   "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_escape(text: str) -> str:
    """Go's HTML-safe escapes applied to JSON text (the characters only occur in strings)."""
    for char, escaped in _ESCAPES.items():
        if char in text:
            text = text.replace(char, escaped)
    return text


def go_dumps(obj: Any, *, sort_keys: bool = False, indent: int | None = None) -> str:
    """``json.Marshal`` (or ``MarshalIndent``) of ``obj``; keys in the order given unless
    ``sort_keys`` (Go sorts map keys; struct fields keep their declaration order)."""
    separators = (",", ":") if indent is None else (",", ": ")
    return go_escape(json.dumps(obj, ensure_ascii=False, separators=separators,
                                sort_keys=sort_keys, indent=indent))
