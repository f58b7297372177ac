"""Server-side apply and ``metadata.managedFields``, as kube-apiserver's field manager does them.

Theory of operation
===================

Every write records who set which fields. A *field set* (:class:`FieldSet`) is a set of field
paths; a path is a sequence of :class:`PathElement` -- a field name (``f:spec``), a list-map
item key (``k:{"port":80,"protocol":"TCP"}``), a set value (``v:"x"``) or an index
(``i:0``). ``metadata.managedFields`` stores one field set per *manager* (name + operation
``Apply``/``Update`` + apiVersion for updates + subresource), encoded in structured-merge-diff's
``FieldsV1`` JSON: a trie whose leaves are ``{}`` and where ``".": {}`` marks a node that is a
member itself as well as a parent.

Three typed walks over plain JSON dicts do the work; the "types" are the list/map kinds from
:data:`svcnet.apiserver.patch.PATCH_META` (atomic, set, map-with-keys; atomic maps/structs):

* :func:`fields_of` (smd ``ToFieldSet``): every leaf and list item of an object;
* ``compare`` (smd ``Compare``): which paths were added, modified or removed;
* ``merge`` (smd ``Merge``): the applied configuration over the live object, list-map items
  matched by key and kept in a stable order, atomic values replaced whole.

On top of them sits a port of the ``fieldmanager`` pipeline, layer by layer:

``update_managed_fields`` (``FieldManager.UpdateNoErrors``)
    For create/update/non-apply patch. Ownership comes from comparing old and new: the writer
    gains every path it added or modified; every other manager loses the paths whose value
    changed and all removed paths. Entries of the same manager merge; ``time`` only moves
    when the writer changed something. An existing object without managedFields is not
    tracked on update (upstream ``skipNonApplied``); at most 10 ``Update`` entries are kept,
    the oldest folded into ``ancient-changes``.

``server_side_apply`` (``FieldManager.Apply``)
    1. merge the applied configuration into the live object;
    2. the applier's new set is the configuration's field set;
    3. prune: remove what the applier applied last time but no longer applies, unless another
       manager (or the new configuration) still owns it;
    4. compare live with the result: a changed or added path owned by another manager is a
       conflict (409 ``Apply failed with N conflict(s): ...``) unless ``force``, in which case
       the other manager loses it;
    5. a no-op keeps the live object and the manager's ``time``.
    Around that: ``before-first-apply`` takes ownership of everything when an object without
    managedFields is first applied to; for the manager ``kubectl``, conflicts with values that
    still match the client-side ``last-applied-configuration`` annotation are forced, and that
    annotation is kept in sync with the applied configuration.

In both, fields of the kind's *reset set* never get owners (``status`` for the main
resource, ``spec`` for ``/status``), and ``apiVersion``, ``kind``, ``metadata.name`` and the
other system metadata are stripped from every set.

Conversion between API versions is not needed (one version per kind): managers recorded
against another apiVersion are dropped, as upstream drops managers of versions that no
longer exist. Go's typed decoding after a merge (nulls become absent) is done by dropping
nulls from the result; defaulting is left to the registry, as it runs after apply upstream.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from svcnet.api.errors import StatusError, bad_request, go_quote
from svcnet.apiserver.patch import ListMeta, PatchSchema, go_float, go_json, patch_schema

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "FieldSet",
    "PathElement",
    "fields_of",
    "server_side_apply",
    "update_managed_fields",
]

Obj = dict[str, Any]
JSON = Any

LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS: Final = 10
TOTAL_ANNOTATION_SIZE_LIMIT: Final = 256 * 1024


class _Missing:
    """An absent value (Go's nil ``value.Value``), as opposed to a JSON null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

# ============================================================================================
# Values: structured-merge-diff's equality and total order
# ============================================================================================


def _value_eq(a: JSON, b: JSON) -> bool:
    """smd ``value.Equals``: ints and floats compare numerically, bools are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_value_eq(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_value_eq(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _value_order(v: JSON) -> tuple[Any, ...]:
    """smd ``value.Compare`` as a sort key: numbers < strings < bools < lists < maps < null."""
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, int | float):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, tuple(_value_order(x) for x in v))
    if isinstance(v, dict):
        return (4, tuple(sorted((k, _value_order(x)) for k, x in v.items())))
    return (5,)


def _value_key(v: JSON) -> tuple[Any, ...]:
    """A hashable identity consistent with :func:`_value_eq`."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int | float):
        return ("n", v)
    if isinstance(v, str):
        return ("s", v)
    if isinstance(v, list):
        return ("l", tuple(_value_key(x) for x in v))
    if isinstance(v, dict):
        return ("m", tuple(sorted((k, _value_key(x)) for k, x in v.items())))
    return ("z",)


def _value_string(v: JSON) -> str:
    """smd ``value.ToString``: how a key value prints inside a conflict path."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, list):
        return "[" + ",".join(_value_string(x) for x in v) + "]"
    if isinstance(v, dict):
        return "".join(f"{k}={_value_string(x)}" for k, x in v.items())
    return str(v)


# ============================================================================================
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
        return hash(self._id)

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

    # -- set algebra ----------------------------------------------------------------------

    def union(self, other: FieldSet) -> FieldSet:
        return FieldSet(self._paths | other._paths)

    def intersection(self, other: FieldSet) -> FieldSet:
        return FieldSet(self._paths & other._paths)

    def difference(self, other: FieldSet) -> FieldSet:
        return FieldSet(self._paths - other._paths)

    __or__ = union
    __and__ = intersection
    __sub__ = difference

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Drop every path that is in ``other`` or lies below a member of ``other``."""
        return FieldSet(p for p in self._paths
                        if not any(p[:i] in other._paths for i in range(1, len(p) + 1)))

    def ensure_named_fields_are_members(self) -> FieldSet:
        """Also own every field (not list item) that has owned paths below it.

        smd restricts this to struct fields; map entries never have children in the kinds we
        serve, so every field name qualifies.
        """
        extra = {p[:i] for p in self._paths for i in range(1, len(p))
                 if p[i - 1].kind == _FIELD}
        return FieldSet(self._paths | extra)

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
        """The ``fieldsV1`` JSON object, keys in smd's order."""
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
        """Parse ``fieldsV1``; unknown element types are ignored, as smd does."""
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

        if not isinstance(fields, dict):
            raise ValueError(f"fieldsV1 must be an object, got {json.dumps(fields)}")
        read(fields, ())
        return cls(paths)


# ============================================================================================
# Typed walks
# ============================================================================================


class _TypedError(Exception):
    """The object does not fit its schema (duplicate or key-less list-map items, ...)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors

    def message(self) -> str:
        if len(self.errors) == 1:
            return self.errors[0]
        return "\n".join(["errors:", *("  " + e for e in self.errors)])


@dataclass
class _Acc:
    added: set[FieldPath] = field(default_factory=set)
    modified: set[FieldPath] = field(default_factory=set)
    removed: set[FieldPath] = field(default_factory=set)


@dataclass
class _Comparison:
    added: FieldSet = field(default_factory=FieldSet)
    modified: FieldSet = field(default_factory=FieldSet)
    removed: FieldSet = field(default_factory=FieldSet)

    def exclude(self, ignored: FieldSet) -> _Comparison:
        if not ignored:
            return self
        return _Comparison(self.added.recursive_difference(ignored),
                           self.modified.recursive_difference(ignored),
                           self.removed.recursive_difference(ignored))


def _is_empty_container(v: JSON) -> bool:
    return v is MISSING or v is None or (isinstance(v, dict | list) and not v)


class _Typed:
    """The smd walks over one kind's schema; ``spath`` is the schema path (``"[]"`` = item)."""

    def __init__(self, schema: PatchSchema) -> None:
        self.schema = schema

    # -- list items -----------------------------------------------------------------------

    def item_element(self, meta: ListMeta, item: JSON, path: FieldPath) -> PathElement:
        """``listItemToPathElement`` for a map or set list."""
        where = path_string(path)
        if meta.list_type == "map":
            if item is None:
                raise _TypedError([f"{where}: associative list with keys may not have a null "
                                   "element"])
            if not isinstance(item, dict):
                raise _TypedError([f"{where}: associative list with keys may not have non-map "
                                   "elements"])
            defaults = dict(meta.key_defaults)
            fields = [(k, item[k]) if k in item else (k, defaults[k])
                      for k in meta.map_keys if k in item or k in defaults]
            if not fields:
                keys = "[" + " ".join(go_quote(k) for k in meta.map_keys) + "]"
                raise _TypedError([f"{where}: associative list with keys has an element that "
                                   f"omits all key fields {keys} (and doesn't have default "
                                   "values for any key fields)"])
            return PathElement.key_of(fields)
        if isinstance(item, dict):
            raise _TypedError([f"{where}: associative list without keys has an element "
                               "that's a map type"])
        if isinstance(item, list):
            raise _TypedError([f"{where}: not supported: associative list with lists as "
                               "elements"])
        if item is None:
            raise _TypedError([f"{where}: associative list without keys has an element "
                               "that's an explicit null"])
        return PathElement.value_of(item)

    def _indexed(self, meta: ListMeta, items: list[Any], path: FieldPath,
                 ) -> list[tuple[PathElement, Any]]:
        return [(self.item_element(meta, it, path), it) for it in items]

    # -- validation of an applied configuration -------------------------------------------

    def validate(self, v: JSON, spath: tuple[str, ...] = (), path: FieldPath = ()) -> None:
        """Reject what smd's typed conversion rejects in a configuration (no duplicates)."""
        errors: list[str] = []
        self._validate(v, spath, path, errors)
        if errors:
            raise _TypedError(errors)

    def _validate(self, v: JSON, spath: tuple[str, ...], path: FieldPath,
                  errors: list[str]) -> None:
        if isinstance(v, dict):
            if self.schema.map_meta(spath).atomic:
                return
            for k, x in v.items():
                self._validate(x, (*spath, k), (*path, _F(k)), errors)
        elif isinstance(v, list):
            meta = self.schema.list_meta(spath)
            if meta.list_type == "atomic":
                return
            seen: set[PathElement] = set()
            for i, item in enumerate(v):
                try:
                    pe = self.item_element(meta, item, path)
                except _TypedError as e:
                    where = path_string(path) + ": "
                    errors.extend(where + f"element {i}: " + m.removeprefix(where)
                                  for m in e.errors)
                    continue
                if pe in seen:
                    errors.append(f"{path_string(path)}: duplicate entries for key {pe}")
                    continue
                seen.add(pe)
                self._validate(item, (*spath, "[]"), (*path, pe), errors)

    # -- ToFieldSet -----------------------------------------------------------------------

    def field_set(self, v: JSON) -> FieldSet:
        out: set[FieldPath] = set()
        self._to_field_set(v, (), (), out)
        return FieldSet(out)

    def _to_field_set(self, v: JSON, spath: tuple[str, ...], path: FieldPath,
                      out: set[FieldPath]) -> None:
        if isinstance(v, dict):
            if self.schema.map_meta(spath).atomic:
                out.add(path)
                return
            for k, x in v.items():
                child = (*path, _F(k))
                self._to_field_set(x, (*spath, k), child, out)
                if x is None or (isinstance(x, dict) and not x):
                    out.add(child)
        elif isinstance(v, list):
            meta = self.schema.list_meta(spath)
            if meta.list_type == "atomic":
                out.add(path)
                return
            pes = self._indexed(meta, v, path)
            counts: dict[PathElement, int] = {}
            for pe, _ in pes:
                counts[pe] = counts.get(pe, 0) + 1
            for pe, item in pes:
                # Duplicated items are owned as a unit, without descending into them.
                if counts[pe] == 1:
                    self._to_field_set(item, (*spath, "[]"), (*path, pe), out)
                out.add((*path, pe))
        else:
            out.add(path)

    # -- Compare --------------------------------------------------------------------------

    def compare(self, lhs: JSON, rhs: JSON) -> _Comparison:
        acc = _Acc()
        self._compare(lhs, rhs, (), (), acc)
        return _Comparison(FieldSet(acc.added), FieldSet(acc.modified), FieldSet(acc.removed))

    def _compare(self, lhs: JSON, rhs: JSON, spath: tuple[str, ...], path: FieldPath,
                 acc: _Acc) -> None:
        def leaf() -> None:
            if lhs is MISSING:
                acc.added.add(path)
            elif rhs is MISSING:
                acc.removed.add(path)
            elif not _value_eq(lhs, rhs):
                acc.modified.add(path)

        kind = _container_kind(lhs, rhs)
        if kind == "map":
            if self.schema.map_meta(spath).atomic or (
                    _is_empty_container(lhs) and _is_empty_container(rhs)):
                leaf()
                return
            lm = lhs if isinstance(lhs, dict) else {}
            rm = rhs if isinstance(rhs, dict) else {}
            for k in [*lm, *(k for k in rm if k not in lm)]:
                self._compare(lm.get(k, MISSING), rm.get(k, MISSING), (*spath, k),
                              (*path, _F(k)), acc)
        elif kind == "list":
            meta = self.schema.list_meta(spath)
            if meta.list_type == "atomic" or (
                    _is_empty_container(lhs) and _is_empty_container(rhs)):
                leaf()
                return
            self._compare_list_items(meta, lhs if isinstance(lhs, list) else [],
                                     rhs if isinstance(rhs, list) else [], spath, path, acc=acc)
        else:
            leaf()
            return
        # A container that appeared or disappeared is itself added/removed.
        if lhs is MISSING:
            acc.added.add(path)
        elif rhs is MISSING:
            acc.removed.add(path)

    def _compare_list_items(self, meta: ListMeta, lhs: list[Any], rhs: list[Any],
                            spath: tuple[str, ...], path: FieldPath, *, acc: _Acc) -> None:
        order: list[PathElement] = []
        lvals: dict[PathElement, list[Any]] = {}
        rvals: dict[PathElement, list[Any]] = {}
        for pe, item in self._indexed(meta, lhs, path):
            if pe not in lvals:
                order.append(pe)
            lvals.setdefault(pe, []).append(item)
        for pe, item in self._indexed(meta, rhs, path):
            if pe not in rvals and pe not in lvals:
                order.append(pe)
            rvals.setdefault(pe, []).append(item)
        item_spath = (*spath, "[]")
        for pe in order:
            ll, rl = lvals.get(pe, []), rvals.get(pe, [])
            child = (*path, pe)
            if len(ll) <= 1 and len(rl) <= 1:
                self._compare(ll[0] if ll else MISSING, rl[0] if rl else MISSING, item_spath,
                              child, acc)
            elif len(ll) >= 2 and len(rl) >= 2:
                # Duplicates before and after: the group compares as a unit.
                if not _value_eq(ll, rl):
                    acc.modified.add(child)
            elif len(ll) >= 2:
                if rl:
                    self._compare(MISSING, rl[0], item_spath, child, acc)
                acc.removed.add(child)
            else:
                if ll:
                    self._compare(ll[0], MISSING, item_spath, child, acc)
                acc.added.add(child)

    # -- Merge ----------------------------------------------------------------------------

    def merge(self, lhs: JSON, rhs: JSON) -> JSON:
        return self._merge(lhs, rhs, (), ())

    def _merge(self, lhs: JSON, rhs: JSON, spath: tuple[str, ...], path: FieldPath) -> JSON:
        kind = _container_kind(lhs, rhs)
        leaf = rhs if rhs is not MISSING else lhs
        if kind == "map":
            if self.schema.map_meta(spath).atomic or (
                    _is_empty_container(lhs) and _is_empty_container(rhs)):
                return leaf
            lm = lhs if isinstance(lhs, dict) else {}
            rm = rhs if isinstance(rhs, dict) else {}
            out: Obj = {}
            for k in [*lm, *(k for k in rm if k not in lm)]:
                v = self._merge(lm.get(k, MISSING), rm.get(k, MISSING), (*spath, k),
                                (*path, _F(k)))
                if v is not MISSING:
                    out[k] = v
            return out if out else MISSING
        if kind == "list":
            meta = self.schema.list_meta(spath)
            if meta.list_type == "atomic" or (
                    _is_empty_container(lhs) and _is_empty_container(rhs)):
                return leaf
            return self._merge_list_items(meta, lhs if isinstance(lhs, list) else [],
                                          rhs if isinstance(rhs, list) else [], spath, path)
        return leaf

    def _merge_list_items(self, meta: ListMeta, lhs: list[Any], rhs: list[Any],
                          spath: tuple[str, ...], path: FieldPath) -> JSON:
        """smd's list merge: live order, with the applied items' relative order kept."""
        rhs_pes: list[PathElement] = []
        obs_r: dict[PathElement, Any] = {}
        for pe, item in self._indexed(meta, rhs, path):
            if pe in obs_r:
                raise _TypedError([f"{path_string(path)}: duplicate entries for key {pe}"])
            obs_r[pe] = item
            rhs_pes.append(pe)
        lhs_pes: list[PathElement] = []
        obs_l: dict[PathElement, Any] = {}
        for pe, item in self._indexed(meta, lhs, path):
            # A duplicated live item is not merged with the new value: it reads as null.
            obs_l[pe] = None if pe in obs_l else item
            lhs_pes.append(pe)

        shared = [pe for pe in rhs_pes if pe in obs_l]
        next_shared = shared.pop(0) if shared else None
        merged_rhs: set[PathElement] = set()
        out: list[Any] = []
        item_spath = (*spath, "[]")

        def merge_item(pe: PathElement, lv: JSON, rv: JSON) -> None:
            v = self._merge(lv, rv, item_spath, (*path, pe))
            if v is not MISSING:
                out.append(v)

        li = ri = 0
        while li < len(lhs_pes) or ri < len(rhs_pes):
            if li < len(lhs_pes) and ri < len(rhs_pes):
                pe = lhs_pes[li]
                if pe == rhs_pes[ri]:
                    merged_rhs.add(pe)
                    merge_item(pe, obs_l[pe], obs_r[pe])
                    li += 1
                    ri += 1
                    next_shared = shared.pop(0) if shared else None
                    continue
                if pe in obs_r and next_shared is not None and next_shared != pe:
                    li += 1  # a shared item, but not the one due in this round
                    continue
            if li < len(lhs_pes):
                pe = lhs_pes[li]
                if pe not in obs_r:
                    merge_item(pe, lhs[li], MISSING)
                    li += 1
                    continue
                if pe in merged_rhs:
                    li += 1
            if ri < len(rhs_pes):
                pe = rhs_pes[ri]
                merged_rhs.add(pe)
                merge_item(pe, obs_l.get(pe, MISSING), obs_r[pe])
                ri += 1
                if next_shared is not None and next_shared == pe:
                    next_shared = shared.pop(0) if shared else None
        return out if out else MISSING

    # -- RemoveItems ----------------------------------------------------------------------

    def remove_items(self, v: JSON, to_remove: FieldSet) -> JSON:
        return self._remove(v, to_remove.trie(), ())

    def _remove(self, v: JSON, node: _Node, spath: tuple[str, ...]) -> JSON:
        if isinstance(v, dict):
            if not v or self.schema.map_meta(spath).atomic:
                return MISSING
            out: Obj = {}
            for k, x in v.items():
                sub = node.children.get(_F(k))
                if sub is not None and sub.member:
                    continue
                kept = self._remove(x, sub, (*spath, k)) if sub is not None and sub.children else x
                # A value emptied by the removal stays as null, as in smd; nulls are dropped
                # when the result becomes an object again.
                out[k] = None if kept is MISSING else kept
            return out if out else MISSING
        if isinstance(v, list):
            meta = self.schema.list_meta(spath)
            if not v or meta.list_type == "atomic":
                return MISSING
            items: list[Any] = []
            for pe, item in self._indexed(meta, v, ()):
                sub = node.children.get(pe)
                if sub is not None and sub.member:
                    continue
                kept = (self._remove(item, sub, (*spath, "[]"))
                        if sub is not None and sub.children else item)
                items.append(None if kept is MISSING else kept)
            return items if items else MISSING
        return v


def _container_kind(lhs: JSON, rhs: JSON) -> str:
    """The shape both sides agree on; disagreeing shapes compare and merge as leaves."""
    kinds = {("map" if isinstance(x, dict) else "list" if isinstance(x, list) else "scalar")
             for x in (lhs, rhs) if x is not MISSING and x is not None}
    return kinds.pop() if len(kinds) == 1 else "scalar"


def _drop_nulls(v: JSON) -> JSON:
    """What Go's typed decoding does with null members: they become absent."""
    if isinstance(v, dict):
        return {k: _drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_nulls(x) for x in v]
    return v


# ============================================================================================
# Managers
# ============================================================================================


@dataclass(frozen=True, slots=True)
class _VersionedSet:
    fields: FieldSet
    api_version: str
    applied: bool


@dataclass
class _Managed:
    """Decoded managedFields: manager identifier → field set, and → time."""

    fields: dict[str, _VersionedSet] = field(default_factory=dict)
    times: dict[str, str | None] = field(default_factory=dict)

    def copy(self) -> _Managed:
        return _Managed(dict(self.fields), dict(self.times))


def _manager_id(manager: str, operation: str, api_version: str, subresource: str) -> str:
    """``BuildManagerIdentifier``: the entry minus fields, time and (for Apply) apiVersion."""
    ident: Obj = {}
    if manager:
        ident["manager"] = manager
    if operation:
        ident["operation"] = operation
    if api_version and operation != "Apply":
        ident["apiVersion"] = api_version
    if subresource:
        ident["subresource"] = subresource
    # json.Marshal of the struct: declaration order, not sorted.
    return json.dumps(ident, ensure_ascii=False, separators=(",", ":"))


def _print_manager(manager_id: str) -> str:
    """How a conflict names a manager: ``"kubectl-client-side-apply" using v1``."""
    try:
        ident = json.loads(manager_id)
    except ValueError:
        return go_quote(manager_id)
    if not isinstance(ident, dict):
        return go_quote(manager_id)
    text = go_quote(str(ident.get("manager", "")))
    if ident.get("subresource"):
        text += f" with subresource {go_quote(str(ident['subresource']))}"
    if ident.get("operation") == "Update":
        text += f" using {ident.get('apiVersion', '')}"
        if ident.get("time"):
            text += f" at {ident['time']}"
    return text


def _decode_managed_fields(entries: JSON) -> _Managed:
    """``DecodeManagedFields``; raises ValueError like upstream on a malformed entry."""
    managed = _Managed()
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"managed fields entry {i} is not an object")
        op = e.get("operation")
        if op not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = e.get("apiVersion") or ""
        if not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = e.get("fieldsType") or ""
        if fields_type == "":
            raise ValueError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise ValueError(f"invalid fieldsType {go_quote(str(fields_type))} in managed "
                             f"fields entry {i}")
        mid = _manager_id(str(e.get("manager") or ""), op, api_version,
                          str(e.get("subresource") or ""))
        fields = FieldSet.from_fields_v1(e.get("fieldsV1") or {})
        managed.fields[mid] = _VersionedSet(fields, api_version, op == "Apply")
        managed.times[mid] = e.get("time")
    return managed


def _epoch(t: str | None) -> int:
    if not t:
        return 0
    try:
        return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _encode_managed_fields(managed: _Managed) -> list[Obj] | None:
    """``EncodeObjectManagedFields``: one entry per manager, sorted as upstream sorts them."""
    if not managed.fields:
        return None
    entries: list[Obj] = []
    for mid, vs in managed.fields.items():
        try:
            ident = json.loads(mid)
        except ValueError:
            ident = {"manager": mid}
        entry: Obj = {}
        if ident.get("manager"):
            entry["manager"] = ident["manager"]
        entry["operation"] = "Apply" if vs.applied else ident.get("operation", "Update")
        entry["apiVersion"] = vs.api_version
        if managed.times.get(mid):
            entry["time"] = managed.times[mid]
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = vs.fields.to_fields_v1()
        if ident.get("subresource"):
            entry["subresource"] = ident["subresource"]
        entries.append(entry)
    entries.sort(key=lambda e: (e["operation"], _epoch(e.get("time")), e.get("manager", ""),
                                e["apiVersion"], e.get("subresource", "")))
    return entries


def _is_reset_managed_fields(entries: JSON) -> bool:
    """``[]`` or ``[{}]`` in a request means "drop all ownership"."""
    if not isinstance(entries, list):
        return False
    if not entries:
        return True
    return len(entries) == 1 and isinstance(entries[0], dict) and not any(
        v not in (None, "", {}) for v in entries[0].values())


class _Conflicts(Exception):
    def __init__(self, conflicts: list[tuple[str, FieldPath]]) -> None:
        super().__init__(f"{len(conflicts)} conflicts")
        self.conflicts = conflicts


def _conflicts_from(managers: Mapping[str, FieldSet]) -> list[tuple[str, FieldPath]]:
    return [(m, p) for m in sorted(managers) for p in managers[m]]


def _conflict_error(conflicts: list[tuple[str, FieldPath]]) -> StatusError:
    """``NewConflictError``: 409 Conflict with one FieldManagerConflict cause per path."""
    causes = [{"reason": "FieldManagerConflict",
               "message": f"conflict with {_print_manager(m)}",
               "field": path_string(p)} for m, p in conflicts]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = (f"Apply failed with 1 conflict: conflict with {_print_manager(m)}: "
                   f"{path_string(p)}")
    else:
        by_manager: dict[str, list[FieldPath]] = {}
        for m, p in conflicts:
            by_manager.setdefault(m, []).append(p)
        lines: list[str] = []
        for m in sorted(by_manager):
            lines.append(f"conflicts with {_print_manager(m)}:")
            lines.extend(f"- {path_string(p)}" for p in by_manager[m])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, {"causes": causes})


# ============================================================================================
# Per-kind facts outside the patch table
# ============================================================================================

# GetResetFields of each strategy: fields a write through this (sub)resource never owns.
_RESET_FIELDS: Final[dict[tuple[str, str, str], tuple[str, ...]]] = {
    ("v1", "Service", ""): ("status",),
    ("v1", "Service", "status"): ("spec",),
    ("v1", "Pod", ""): ("status",),
    ("v1", "Pod", "status"): ("spec", "metadata.deletionTimestamp",
                              "metadata.ownerReferences"),
    ("v1", "Node", ""): ("status",),
    ("v1", "Node", "status"): ("spec",),
    ("v1", "Namespace", ""): ("status",),
    ("v1", "Namespace", "status"): ("spec",),
    ("v1", "Namespace", "finalize"): ("status",),
    ("apps/v1", "Deployment", ""): ("status",),
    ("apps/v1", "Deployment", "status"): ("spec", "metadata.labels"),
    ("apps/v1", "ReplicaSet", ""): ("status",),
    ("apps/v1", "ReplicaSet", "status"): ("spec",),
}

# Top-level structs a zero-valued Go object of the kind carries (``creater.New``).
_ZERO_STRUCTS: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("v1", "Service"): ("spec", "status"),
    ("v1", "Pod"): ("spec", "status"),
    ("v1", "Node"): ("spec", "status"),
    ("v1", "Namespace"): ("spec", "status"),
    ("apps/v1", "Deployment"): ("spec", "status"),
    ("apps/v1", "ReplicaSet"): ("spec", "status"),
}

# stripMeta: paths no manager ever owns.
_STRIP: Final = FieldSet([_fp("apiVersion"), _fp("kind"), _fp("metadata")] + [
    _fp(f"metadata.{f}") for f in ("name", "namespace", "creationTimestamp", "selfLink",
                                    "uid", "clusterName", "generation", "managedFields",
                                    "resourceVersion")])

_CURRENT_OPERATION: Final = "current-operation"
_BEFORE_FIRST_APPLY: Final = "before-first-apply"
_ANCIENT_CHANGES: Final = "ancient-changes"


def _rfc3339(now: str | datetime) -> str:
    if isinstance(now, datetime):
        return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return now


def _meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _without_managed_fields(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return out


def _with_managed_fields(obj: Obj, managed: _Managed) -> Obj:
    out = copy.deepcopy(obj)
    entries = _encode_managed_fields(managed)
    meta = out.get("metadata")
    if entries is None:
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        return out
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    meta["managedFields"] = entries
    return out


# ============================================================================================
# The field manager
# ============================================================================================


class _FieldManager:
    """The default fieldmanager stack for one kind, (sub)resource and point in time."""

    def __init__(self, api_version: str, kind: str, subresource: str,
                 now: str | datetime) -> None:
        self.api_version = api_version
        self.kind = kind
        self.subresource = subresource
        self.now = _rfc3339(now)
        self.typed = _Typed(patch_schema(api_version, kind))
        self.ignored = FieldSet(_fp(p) for p in _RESET_FIELDS.get(
            (api_version, kind, subresource), ()))

    def _id(self, manager: str, operation: str) -> str:
        return _manager_id(manager or "unknown", operation, self.api_version, self.subresource)

    def _zero(self, like: Obj | None = None) -> Obj:
        """The zero object of the kind, limited to the structs ``like`` has."""
        zero: Obj = {"metadata": {}}
        for k in _ZERO_STRUCTS.get((self.api_version, self.kind), ()):
            if like is None or k in like:
                zero[k] = {}
        return zero

    # -- structured-merge-diff Updater ----------------------------------------------------

    def _reconcile(self, managed: dict[str, _VersionedSet]) -> dict[str, _VersionedSet]:
        # Managers of an apiVersion we cannot convert to are dropped, as upstream drops
        # managers of versions that are no longer served.
        return {m: vs for m, vs in managed.items() if vs.api_version == self.api_version}

    def _update_managers(self, live: JSON, new: JSON, managers: dict[str, _VersionedSet],
                         workflow: str, force: bool) -> _Comparison:
        cmp = self.typed.compare(live, new).exclude(self.ignored)
        changed = cmp.modified | cmp.added
        conflicts = {m: vs.fields & changed for m, vs in managers.items()
                     if m != workflow and vs.fields & changed}
        if conflicts and not force:
            raise _Conflicts(_conflicts_from(conflicts))
        for m, vs in list(managers.items()):
            if m == workflow:
                continue
            kept = vs.fields - conflicts.get(m, FieldSet()) - cmp.removed
            managers[m] = _VersionedSet(kept, vs.api_version, vs.applied)
        for m in [m for m, vs in managers.items() if not vs.fields]:
            del managers[m]
        return cmp

    def _updater_update(self, live: JSON, new: JSON, managed: dict[str, _VersionedSet],
                        manager: str) -> dict[str, _VersionedSet]:
        managers = self._reconcile(managed)
        cmp = self._update_managers(live, new, managers, manager, force=True)
        prev = managers.get(manager, _VersionedSet(FieldSet(), self.api_version, False))
        owned = ((prev.fields - cmp.removed) | cmp.modified | cmp.added)
        owned = owned.recursive_difference(self.ignored)
        managers[manager] = _VersionedSet(owned, self.api_version, False)
        if not owned:
            del managers[manager]
        return managers

    def _prune(self, merged: JSON, managers: dict[str, _VersionedSet],
               last: _VersionedSet | None) -> JSON:
        """Remove what the applier owned last time and nobody owns now."""
        if last is None or not last.fields:
            return merged
        t = self.typed
        last_named = last.fields.ensure_named_fields_are_members()
        pruned = t.remove_items(merged, last_named)
        # addBackOwnedItems: keep anything another manager (or the new config) owns.
        owned = FieldSet()
        for vs in managers.values():
            owned = owned | vs.fields
        merged_set = t.field_set(merged).ensure_named_fields_are_members()
        pruned_set = t.field_set(pruned).ensure_named_fields_are_members()
        pruned = t.remove_items(merged, merged_set - (
            pruned_set | owned.ensure_named_fields_are_members()))
        # addBackDanglingItems: only remove what the applier itself had.
        pruned_set = t.field_set(pruned).ensure_named_fields_are_members()
        return t.remove_items(merged, (merged_set - pruned_set) & last_named)

    def _updater_apply(self, live: Obj, config: Obj, managed: dict[str, _VersionedSet],
                       manager: str, force: bool) -> tuple[Obj | None, dict[str, _VersionedSet]]:
        managers = self._reconcile(managed)
        merged = self.typed.merge(live, config)
        new: JSON = {} if merged is MISSING else merged
        last = managers.get(manager)
        applied_set = self.typed.field_set(config).recursive_difference(self.ignored)
        managers[manager] = _VersionedSet(applied_set, self.api_version, True)
        new = self._prune(new, managers, last)
        if new is MISSING:
            new = {}
        self._update_managers(live, new, managers, manager, force)
        if _value_eq(live, new):
            return None, managers
        return new, managers

    # -- update layers --------------------------------------------------------------------

    def update_no_errors(self, live: Obj | None, new: Obj, manager: str) -> Obj:
        try:
            return self._update(live, new, manager)
        except (_TypedError, ValueError):
            # UpdateNoErrors keeps the live object's managedFields rather than losing them.
            out = copy.deepcopy(new)
            entries = _meta(live or {}).get("managedFields")
            meta = out.setdefault("metadata", {})
            if entries:
                meta["managedFields"] = copy.deepcopy(entries)
            else:
                meta.pop("managedFields", None)
            return out

    def _update(self, live: Obj | None, new: Obj, manager: str) -> Obj:
        creating = live is None
        live_obj = self._zero(new) if live is None else _without_managed_fields(live)
        managed = self._decode_live_or_new(live or {}, new)
        new_obj = _without_managed_fields(new)
        # skipNonApplied: an existing object without managedFields stays untracked.
        if not managed.fields and not creating and _meta(live_obj).get("uid"):
            return new_obj
        managed = self._update_capped(live_obj, new_obj, managed, manager)
        return _with_managed_fields(new_obj, managed)

    def _decode_live_or_new(self, live: Obj, new: Obj) -> _Managed:
        live_entries = _meta(live).get("managedFields")
        if self.subresource:
            # Subresources cannot set managedFields; take the live object's.
            try:
                return _decode_managed_fields(live_entries)
            except ValueError:
                return _Managed()
        new_entries = _meta(new).get("managedFields")
        if _is_reset_managed_fields(new_entries):
            return _Managed()
        try:
            managed = _decode_managed_fields(new_entries)
        except ValueError:
            managed = _Managed()
        if managed.fields:
            return managed
        try:
            return _decode_managed_fields(live_entries)
        except ValueError:
            return _Managed()

    def _update_capped(self, live: Obj, new: Obj, managed: _Managed, manager: str) -> _Managed:
        managed = self._update_tracked(live, new, managed, self._id(manager, "Update"))
        return self._cap_update_managers(managed)

    def _update_tracked(self, live: Obj, new: Obj, managed: _Managed, mid: str) -> _Managed:
        """managedFieldsUpdater + stripMeta + structured merge for an update."""
        out = managed.copy()
        fields = self._updater_update(live, new, out.fields, _CURRENT_OPERATION)
        fields = self._strip(fields, _CURRENT_OPERATION)
        current = fields.pop(_CURRENT_OPERATION, None)
        if current is not None:
            prev = fields.get(mid)
            fields[mid] = current if prev is None else _VersionedSet(
                current.fields | prev.fields, current.api_version, current.applied)
            out.times[mid] = self.now
        out.fields = fields
        return out

    @staticmethod
    def _strip(fields: dict[str, _VersionedSet], manager: str) -> dict[str, _VersionedSet]:
        vs = fields.get(manager)
        if vs is not None:
            kept = vs.fields - _STRIP
            if kept:
                fields[manager] = _VersionedSet(kept, vs.api_version, vs.applied)
            else:
                del fields[manager]
        return fields

    def _cap_update_managers(self, managed: _Managed) -> _Managed:
        """Fold the oldest Update entries into per-version ``ancient-changes`` buckets."""
        updaters = [m for m, vs in managed.fields.items() if not vs.applied]
        if len(updaters) <= MAX_UPDATE_MANAGERS:
            return managed
        updaters.sort(key=lambda m: (_epoch(managed.times.get(m)), m))
        first_of_version: dict[str, str] = {}
        length = len(updaters)
        for m in updaters:
            if length <= MAX_UPDATE_MANAGERS:
                break
            vs = managed.fields[m]
            bucket = _manager_id(_ANCIENT_CHANGES, "Update", vs.api_version, "")
            first = first_of_version.get(vs.api_version)
            if first is None:
                first_of_version[vs.api_version] = m
                continue
            if bucket not in managed.fields:
                managed.fields[bucket] = managed.fields.pop(first)
            managed.fields[bucket] = _VersionedSet(vs.fields | managed.fields[bucket].fields,
                                                   vs.api_version, vs.applied)
            del managed.fields[m]
            managed.times[bucket] = managed.times.get(m)
            length -= 1
        return managed

    # -- apply layers ---------------------------------------------------------------------

    def apply(self, live: Obj | None, applied: JSON, manager: str, force: bool) -> Obj:
        if not isinstance(applied, dict):
            raise bad_request("error decoding YAML: the apply configuration must be an "
                              "object")
        # versionCheck
        av, kd = str(applied.get("apiVersion") or ""), str(applied.get("kind") or "")
        if (av, kd) != (self.api_version, self.kind):
            group, _, version = av.rpartition("/")
            raise bad_request(f"invalid object type: {group}/{version}, Kind={kd}")
        live_obj: Obj = {} if live is None else copy.deepcopy(live)
        try:
            managed = _decode_managed_fields(_meta(live_obj).get("managedFields"))
        except ValueError as e:
            raise StatusError(500, "", f"failed to decode managed fields: {e}") from e
        try:
            obj, managed = self._apply_last_applied(live_obj, applied, managed, manager, force)
        except _Conflicts as c:
            raise _conflict_error(c.conflicts) from None
        return _with_managed_fields(obj, managed)

    def _apply_last_applied(self, live: Obj, applied: Obj, managed: _Managed, manager: str,
                            force: bool) -> tuple[Obj, _Managed]:
        """lastAppliedUpdater + lastAppliedManager: kubectl's client-side-apply migration."""
        try:
            obj, managed = self._apply_tracked(live, applied, managed, manager, force)
        except _Conflicts as c:
            if manager != "kubectl":
                raise
            allowed = self._allowed_conflicts_from_last_applied(live)
            if allowed is None:
                raise
            remaining = [(m, p) for m, p in c.conflicts if p not in allowed]
            if remaining:
                raise _Conflicts(remaining) from None
            obj, managed = self._apply_tracked(live, applied, managed, manager, True)
        if manager == "kubectl" and _meta(obj).get("annotations", {}).get(
                LAST_APPLIED_ANNOTATION):
            obj = _set_last_applied(obj, _build_last_applied(applied))
        return obj, managed

    def _allowed_conflicts_from_last_applied(self, live: Obj) -> FieldSet | None:
        """Fields whose live value still equals the client-side last-applied configuration."""
        raw = _meta(live).get("annotations", {}).get(LAST_APPLIED_ANNOTATION)
        if not raw or not isinstance(raw, str):
            return None
        try:
            last = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(last, dict) or last.get("apiVersion") != self.api_version:
            return None
        try:
            last_set = self.typed.field_set(last)
            cmp = self.typed.compare(last, _without_managed_fields(live))
        except _TypedError:
            return None
        return last_set - cmp.modified - cmp.added - cmp.removed

    def _apply_tracked(self, live: Obj, applied: Obj, managed: _Managed, manager: str,
                       force: bool) -> tuple[Obj, _Managed]:
        """skipNonApplied, buildManagerInfo, managedFieldsUpdater and stripMeta for apply."""
        managed = managed.copy()
        if not managed.fields:
            # Whatever is already there belongs to "before-first-apply".
            base = _without_managed_fields(live)
            managed = self._update_capped(self._zero(base), base, managed,
                                          _BEFORE_FIRST_APPLY)
        mid = self._id(manager, "Apply")
        new, fields = self._structured_apply(live, applied, managed.fields, mid, force)
        managed.fields = self._strip(fields, mid)
        if new is not None:
            managed.times[mid] = self.now
            return new, managed
        return _without_managed_fields(live), managed

    def _structured_apply(self, live: Obj, applied: Obj, managed: dict[str, _VersionedSet],
                          mid: str, force: bool) -> tuple[Obj | None, dict[str, _VersionedSet]]:
        if applied.get("apiVersion") != self.api_version:
            raise bad_request("Incorrect version specified in apply patch. Specified patch "
                              f"version: {applied.get('apiVersion')}, expected: "
                              f"{self.api_version}")
        meta = applied.get("metadata")
        if isinstance(meta, dict) and meta.get("managedFields") is not None:
            raise bad_request("metadata.managedFields must be nil")
        try:
            self.typed.validate(applied)
        except _TypedError as e:
            raise StatusError(500, "", f"failed to create typed patch object "
                                       f"({self._describe(applied)}): {e.message()}") from e
        try:
            new, fields = self._updater_apply(_without_managed_fields(live), applied, managed,
                                              mid, force)
        except _TypedError as e:
            raise StatusError(500, "", f"failed to create typed live object "
                                       f"({self._describe(live)}): {e.message()}") from e
        return (None if new is None else _drop_nulls(new)), fields

    def _describe(self, obj: Obj) -> str:
        """``objectGVKNN``: ``namespace/name; group/version, Kind=kind``."""
        meta = _meta(obj)
        group, _, version = self.api_version.rpartition("/")
        return (f"{meta.get('namespace', '')}/{meta.get('name', '')}; "
                f"{group}/{version}, Kind={self.kind}")


def _build_last_applied(applied: Obj) -> str:
    """The applied configuration minus the annotation, as ``UnstructuredJSONScheme`` encodes."""
    obj = copy.deepcopy(applied)
    annotations = _meta(obj).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
    return go_json(obj) + "\n"


def _set_last_applied(obj: Obj, value: str) -> Obj:
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[LAST_APPLIED_ANNOTATION] = value
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        # ValidateAnnotationsSize would fail: drop the annotation rather than the write.
        del annotations[LAST_APPLIED_ANNOTATION]
    return out


# ============================================================================================
# Public API
# ============================================================================================


def fields_of(obj: JSON, api_version: str, kind: str) -> FieldSet:
    """Every leaf and list item of ``obj`` as field paths (smd ``ToFieldSet``).

    Nothing is stripped: ``apiVersion``, ``metadata.name`` and the like are included.
    """
    return _Typed(patch_schema(api_version, kind)).field_set(obj)


def update_managed_fields(old_obj: Obj | None, new_obj: Obj, manager: str,
                          operation: str, api_version: str, now: str | datetime,
                          subresource: str = "", *, kind: str | None = None) -> Obj:
    """Record a create/update/non-apply patch in ``new_obj``'s managedFields; returns a copy.

    ``old_obj`` is the stored object (None on create); ``new_obj`` is what will be stored.
    ``manager`` is the ``fieldManager`` (or user agent); ``now`` an RFC 3339 time or a
    datetime. ``operation`` must be ``"Update"``: apply goes through :func:`server_side_apply`.
    The kind defaults to ``new_obj["kind"]``. Never raises for bad managedFields: like
    ``UpdateNoErrors`` it then keeps the old object's entries.
    """
    if operation != "Update":
        raise ValueError(f"operation must be Update, got {operation!r}; use server_side_apply")
    kind = kind or str(new_obj.get("kind") or (old_obj or {}).get("kind") or "")
    fm = _FieldManager(api_version, kind, subresource, now)
    return fm.update_no_errors(old_obj, new_obj, manager)


def server_side_apply(live: Obj | None, applied: JSON, manager: str,
                      force: bool, api_version: str, kind: str, now: str | datetime, *,
                      subresource: str = "") -> Obj:
    """Merge an apply configuration into ``live`` (None: create) for ``manager``.

    Returns the new object with its managedFields; if nothing changed, the live object (with
    possibly updated ownership). Raises StatusError 409 on conflicts (unless ``force``), 400
    for a configuration of the wrong type or carrying managedFields, 500 for a configuration
    smd cannot type (duplicate list-map keys). Inputs are not mutated.
    """
    fm = _FieldManager(api_version, kind, subresource, now)
    return fm.apply(live, applied, manager, force)
