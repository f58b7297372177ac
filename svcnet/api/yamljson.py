"""JSON and YAML as Kubernetes reads them (sigs.k8s.io/yaml, Go's encoding/json), for request
bodies and manifests alike.

* YAML is converted to what JSON could say: timestamps stay strings, map keys become strings,
  aliases expand into independent copies (and may not expand to many more values than the
  document has bytes: yaml.v2's "excessive aliasing" guard against a billion laughs).
* Go's decoder replaces invalid UTF-8 and lone UTF-16 surrogates (``"\\ud800"``) with U+FFFD;
  so do we, in keys and values, instead of keeping text that cannot be encoded.
* ``NaN``/``Infinity`` are not JSON (Go refuses them; YAML's ``.nan``/``.inf`` cannot be
  marshalled into JSON either).
* Nesting is bounded (:data:`MAX_DEPTH`). Go's decoder stops at 10,000 levels; every object
  svcnet serves is less than 30 deep, and Python's recursive code paths (schema decoding,
  patches, copies) need the bound far below 10,000, so ours is 100. Deeper documents are a
  ValueError, never a ``RecursionError``.

Every refusal is a ValueError with a one-line reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, Final

import yaml

MAX_DEPTH: Final = 100
"""Deepest nesting of arrays and objects a document may have."""
_ALIAS_SLACK: Final = 10_000
"""Values an aliased YAML document may expand to beyond its length in bytes."""


def load_yaml_documents(text: str) -> Iterator[Any]:
    """Every document of a (multi-document) YAML text, as :func:`decode_bytes` gives one."""
    budget = len(text.encode()) + _ALIAS_SLACK
    try:
        for doc in yaml.load_all(text, Loader=_YAMLLoader):  # a SafeLoader subclass: safe
            yield clean(doc, budget=budget)
    except RecursionError:
        raise ValueError(f"exceeded max depth of {MAX_DEPTH}") from None
    except yaml.YAMLError as e:
        raise ValueError("error converting YAML to JSON: " +
                         str(e).replace("\n", " ")) from None


def decode_bytes(raw: bytes, *, yaml_ok: bool = False) -> Any:
    """JSON (or YAML when ``yaml_ok`` and the text is not JSON); ValueError when it is bad."""
    text = raw.decode("utf-8", errors="replace")
    if yaml_ok and text.lstrip().startswith(("{", "[")):
        try:
            return _json(text)
        except ValueError:
            pass  # not JSON: YAML's flow style (``{a: 1}``) reads the same brackets
    if yaml_ok:
        try:
            doc = yaml.load(text, Loader=_YAMLLoader)  # a SafeLoader subclass: safe
        except RecursionError:
            raise ValueError(f"exceeded max depth of {MAX_DEPTH}") from None
        except yaml.YAMLError as e:
            raise ValueError("error converting YAML to JSON: " +
                             str(e).replace("\n", " ")) from None
        return clean(doc, budget=len(raw) + _ALIAS_SLACK)
    return _json(text)


def _json(text: str) -> Any:
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"exceeded max depth of {MAX_DEPTH}") from None
    return clean(doc)


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


class _YAMLLoader(yaml.SafeLoader):
    """SafeLoader without timestamps: ``sigs.k8s.io/yaml`` leaves them strings."""


_YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def clean(doc: Any, *, budget: int | None = None) -> Any:
    """``doc`` as JSON could carry it: depth bounded, strings valid Unicode, keys strings,
    numbers finite; ``budget`` bounds how many values it may hold (aliases count each time).

    Iterative, so a deep document cannot exhaust the stack here. Raises ValueError.
    """
    root: list[Any] = [doc]
    # (container, key or index, value, depth)
    stack: list[tuple[Any, Any, Any, int]] = [(root, 0, doc, 1)]
    seen = 0
    while stack:
        parent, slot, value, depth = stack.pop()
        seen += 1
        if budget is not None and seen > budget:
            raise ValueError("document contains excessive aliasing")
        if isinstance(value, str):
            if not value.isascii():
                parent[slot] = valid_text(value)
        elif isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise ValueError(f"exceeded max depth of {MAX_DEPTH}")
            if budget is not None:
                value = dict(value)  # an alias is shared: this occurrence gets its own copy
                parent[slot] = value
            if not all(isinstance(k, str) and k.isascii() for k in value):
                fixed = {_key(k): v for k, v in value.items()}
                value.clear()
                value.update(fixed)
            stack.extend((value, k, v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise ValueError(f"exceeded max depth of {MAX_DEPTH}")
            if budget is not None:
                value = list(value)
                parent[slot] = value
            stack.extend((value, i, v, depth + 1) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"unsupported value: {value}")
        elif value is not None and not isinstance(value, (bool, int, float)):
            # YAML binary or other tags SafeLoader knows but JSON cannot hold.
            raise ValueError(f"unsupported value of type {type(value).__name__}")
    return root[0]


def _key(key: Any) -> str:
    """A YAML key as JSON writes it (sigs.k8s.io/yaml formats scalars); strings made valid."""
    if isinstance(key, str):
        return key if key.isascii() else valid_text(key)
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, (int, float)):
        return str(key)
    raise ValueError(f"unsupported map key of type {type(key).__name__}")


def valid_text(text: str) -> str:
    """Text as Go's decoder leaves it: a surrogate pair (which YAML's ``\\u`` escapes give as two
    code points, where JSON's decoder already joins them) becomes its character, and a lone
    surrogate becomes U+FFFD."""
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in joined)
