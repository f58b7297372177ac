"""The typed walks over plain JSON objects: to field set, compare, merge (smd's typed package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from svcnet.api.errors import go_quote
from svcnet.apiserver.apply.fieldset import _F, FieldPath, FieldSet, PathElement, _Node, path_string
from svcnet.apiserver.apply.values import JSON, MISSING, Obj, _value_eq
from svcnet.apiserver.patch import ListMeta, PatchSchema

# Typed walks
# ============================================================================================

_SCALARS: Final = frozenset({str, int, float, bool})
"""Types whose equal values (of one type) have no differences below them to walk."""


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
        # Equal values have no differences below them: skip the walk (Python's == first, at C
        # speed; then smd's own equality, as == takes True for 1).
        if lhs is not MISSING and rhs is not MISSING and lhs == rhs and _value_eq(lhs, rhs):
            return

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
                lv, rv = lm.get(k, MISSING), rm.get(k, MISSING)
                if type(lv) is type(rv) and type(lv) in _SCALARS and lv == rv:
                    continue  # an unchanged string, number or bool: nothing below to walk
                self._compare(lv, rv, (*spath, k), (*path, _F(k)), acc)
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
