"""Field paths and field sets, and the managedFields ``FieldsV1`` trie codec (smd's fieldpath)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from svcnet.apiserver.apply.values import JSON, Obj, _value_key, _value_order, _value_string
from svcnet.apiserver.patch import go_json

# Paths and field sets
# ============================================================================================

_FIELD, _KEY, _VALUE, _INDEX = 0, 1, 2, 3


@dataclass(frozen=True, slots=True, eq=False)
class PathElement:
    """One step of a field path: a field name, a list-map key, a set value or an index."""

    kind: int
    name: str = ""
    key: tuple[tuple[str, Any], ...] = ()
    value: Any = None
    index: int = 0
    _id: tuple[Any, ...] = field(default=(), repr=False)
    _hash: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        # Paths are tuples of elements, hashed element by element in every set operation:
        # the hash is computed once.
        object.__setattr__(self, "_hash", hash(self._id))

    @classmethod
    def field(cls, name: str) -> PathElement:
        return cls(_FIELD, name=name, _id=(_FIELD, name))

    @classmethod
    def key_of(cls, fields: Iterable[tuple[str, Any]]) -> PathElement:
        ordered = tuple(sorted(fields, key=lambda kv: kv[0]))
        ident = (_KEY, tuple((k, _value_key(v)) for k, v in ordered))
        return cls(_KEY, key=ordered, _id=ident)

    @classmethod
    def value_of(cls, value: JSON) -> PathElement:
        return cls(_VALUE, value=value, _id=(_VALUE, _value_key(value)))

    @classmethod
    def index_of(cls, index: int) -> PathElement:
        return cls(_INDEX, index=index, _id=(_INDEX, index))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathElement) and self._id == other._id

    def __hash__(self) -> int:
        return self._hash

    def order(self) -> tuple[Any, ...]:
        """smd ``PathElement.Compare``: fields < keys < values < indexes."""
        if self.kind == _FIELD:
            return (_FIELD, self.name)
        if self.kind == _KEY:
            return (_KEY, tuple((k, _value_order(v)) for k, v in self.key))
        if self.kind == _VALUE:
            return (_VALUE, _value_order(self.value))
        return (_INDEX, self.index)

    def __str__(self) -> str:
        if self.kind == _FIELD:
            return "." + self.name
        if self.kind == _KEY:
            return "[" + ",".join(f"{k}={_value_string(v)}" for k, v in self.key) + "]"
        if self.kind == _VALUE:
            return f"[={_value_string(self.value)}]"
        return f"[{self.index}]"

    def serialize(self) -> str:
        """The ``FieldsV1`` key for this element."""
        if self.kind == _FIELD:
            return "f:" + self.name
        if self.kind == _KEY:
            return "k:" + go_json(dict(self.key))
        if self.kind == _VALUE:
            return "v:" + go_json(self.value)
        return f"i:{self.index}"

    @classmethod
    def parse(cls, s: str) -> PathElement | None:
        """Inverse of :meth:`serialize`; None for a type this version does not know."""
        if len(s) < 2:
            raise ValueError(f"key must be 2 characters long: {s!r}")
        if s[1] != ":":
            raise ValueError(f"missing colon: {s}")
        body = s[2:]
        if s[0] == "f":
            return cls.field(body)
        if s[0] == "v":
            return cls.value_of(json.loads(body))
        if s[0] == "k":
            obj = json.loads(body)
            if not isinstance(obj, dict):
                raise ValueError(f"key is not an object: {s}")
            return cls.key_of(obj.items())
        if s[0] == "i":
            return cls.index_of(int(body))
        return None


FieldPath = tuple[PathElement, ...]


def path_string(path: FieldPath) -> str:
    """``.spec.ports[port=80,protocol="TCP"].targetPort``, as conflicts print paths."""
    return "".join(str(pe) for pe in path)


_F = PathElement.field


def _fp(dotted: str) -> FieldPath:
    return tuple(_F(p) for p in dotted.split("."))


class _Node:
    """A trie node of a field set: is the path here a member, and what is below it."""

    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[PathElement, _Node] = {}


class FieldSet:
    """An immutable set of field paths (smd ``fieldpath.Set``)."""

    __slots__ = ("_paths", "_trie")

    def __init__(self, paths: Iterable[FieldPath] = ()) -> None:
        self._paths: frozenset[FieldPath] = frozenset(p for p in paths if p)
        self._trie: _Node | None = None

    @classmethod
    def _of(cls, paths: frozenset[FieldPath]) -> FieldSet:
        """A set of ``paths`` (none empty) as they are: the set algebra of frozensets keeps
        each path's hash, which building a new frozenset would compute again, element by
        element (the bulk of recording managedFields for a large object)."""
        out = cls.__new__(cls)
        out._paths = paths
        out._trie = None
        return out

    # -- set algebra ----------------------------------------------------------------------

    def union(self, other: FieldSet) -> FieldSet:
        return FieldSet._of(self._paths | other._paths)

    def intersection(self, other: FieldSet) -> FieldSet:
        return FieldSet._of(self._paths & other._paths)

    def difference(self, other: FieldSet) -> FieldSet:
        return FieldSet._of(self._paths - other._paths)

    __or__ = union
    __and__ = intersection
    __sub__ = difference

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Drop every path that is in ``other`` or lies below a member of ``other``."""
        if not other._paths:
            return self
        heads = {p[0] for p in other._paths}
        dropped = frozenset(p for p in self._paths if p[0] in heads and any(
            p[:i] in other._paths for i in range(1, len(p) + 1)))
        return FieldSet._of(self._paths - dropped) if dropped else self

    def ensure_named_fields_are_members(self) -> FieldSet:
        """Also own every field (not list item) that has owned paths below it.

        smd restricts this to struct fields; map entries never have children in the kinds we
        serve, so every field name qualifies.
        """
        extra = frozenset(p[:i] for p in self._paths for i in range(1, len(p))
                          if p[i - 1].kind == _FIELD)
        return FieldSet._of(self._paths | extra)

    def __contains__(self, path: object) -> bool:
        return path in self._paths

    def __len__(self) -> int:
        return len(self._paths)

    def __bool__(self) -> bool:
        return bool(self._paths)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSet) and self._paths == other._paths

    def __hash__(self) -> int:
        return hash(self._paths)

    def __iter__(self) -> Iterator[FieldPath]:
        """smd's iteration order: at each node its members, then its children, sorted."""
        def walk(node: _Node, prefix: FieldPath) -> Iterator[FieldPath]:
            order = sorted(node.children, key=PathElement.order)
            for pe in order:
                if node.children[pe].member:
                    yield (*prefix, pe)
            for pe in order:
                if node.children[pe].children:
                    yield from walk(node.children[pe], (*prefix, pe))
        return walk(self.trie(), ())

    def __repr__(self) -> str:
        return "FieldSet({" + ", ".join(path_string(p) for p in self) + "})"

    def trie(self) -> _Node:
        if self._trie is None:
            root = _Node()
            for p in self._paths:
                node = root
                for pe in p:
                    node = node.children.setdefault(pe, _Node())
                node.member = True
            self._trie = root
        return self._trie

    # -- FieldsV1 -------------------------------------------------------------------------

    def to_fields_v1(self) -> Obj:
        """The ``fieldsV1`` JSON object, keys in smd's order: a new object each time, decoded
        from the text kept for this set (the last :data:`_KEPT` sets), since most writes
        record the same sets as the write before (building the trie and sorting it costs
        several times the decoding)."""
        text = _ENCODED.get(self._paths)
        if text is None:
            text = json.dumps(self._emit_fields_v1(), separators=(",", ":"))
            with _CACHE_LOCK:  # large objects are recorded on the CPU thread
                if len(_ENCODED) >= _KEPT:
                    del _ENCODED[next(iter(_ENCODED))]
                _ENCODED[self._paths] = text
        fields: Obj = json.loads(text)
        return fields

    def _emit_fields_v1(self) -> Obj:
        def emit(node: _Node) -> Obj:
            out: Obj = {}
            for pe in sorted(node.children, key=PathElement.order):
                child = node.children[pe]
                if not child.children:
                    out[pe.serialize()] = {}
                else:
                    sub: Obj = {".": {}} if child.member else {}
                    sub.update(emit(child))
                    out[pe.serialize()] = sub
            return out
        return emit(self.trie())

    @classmethod
    def from_fields_v1(cls, fields: JSON) -> FieldSet:
        """Parse ``fieldsV1``; unknown element types are ignored, as smd does.

        Every update of an object parses its stored managedFields again, and they rarely
        change between two writes: the sets (immutable) of the last :data:`_KEPT` distinct
        texts are kept, keyed by the JSON text of ``fieldsV1``."""
        if not isinstance(fields, dict):
            raise ValueError(f"fieldsV1 must be an object, got {json.dumps(fields)}")
        text = json.dumps(fields, separators=(",", ":"))
        parsed = _PARSED.get(text)
        if parsed is None:
            parsed = cls._parse_fields_v1(fields)
            with _CACHE_LOCK:  # large objects are recorded on the CPU thread
                if len(_PARSED) >= _KEPT:
                    del _PARSED[next(iter(_PARSED))]
                _PARSED[text] = parsed
        return parsed

    @classmethod
    def _parse_fields_v1(cls, fields: Obj) -> FieldSet:
        paths: list[FieldPath] = []

        def read(obj: JSON, prefix: FieldPath) -> bool:
            """Adds the paths below ``prefix``; returns whether ``prefix`` is a member."""
            if not isinstance(obj, dict):
                return True
            member = False
            any_child = False
            for k, v in obj.items():
                if k == ".":
                    member = True
                    continue
                pe = PathElement.parse(k)
                if pe is None:
                    continue
                any_child = True
                if read(v, (*prefix, pe)):
                    paths.append((*prefix, pe))
            return member or not any_child

        read(fields, ())
        return cls(paths)


_KEPT = 4096
"""Entries of each codec cache below (oldest out first)."""
_PARSED: dict[str, FieldSet] = {}
"""``fieldsV1`` text → its set (:meth:`FieldSet.from_fields_v1`)."""
_ENCODED: dict[frozenset[FieldPath], str] = {}
"""A set's paths → its ``fieldsV1`` text (:meth:`FieldSet.to_fields_v1`)."""
_CACHE_LOCK = threading.Lock()


# ============================================================================================
