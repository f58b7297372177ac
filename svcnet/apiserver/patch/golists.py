"""Go's slice idioms that strategic merge patch is built on, with Go's answers but not its cost.

Theory of operation
-------------------
``strategicpatch`` (``k8s.io/apimachinery/pkg/util/strategicpatch/patch.go``) finds list items
by scanning the list and comparing ``interface{}`` values with ``==`` (``index``,
``findMapInSliceBasedOnKeyValue``), orders lists with ``sort.SliceStable`` and a comparator
that scans the order list on every call (``normalizeSliceOrder``), and removes duplicate
scalars with a nested loop (``deduplicateScalars``). Compiled Go shrugs that off at the sizes a
3 MiB body allows; ported line for line to Python it made one patch of 4,000 list items run for
minutes on the server's event loop (O(n²) lookups, an O(n³) sort). This module gives the same
results, and raises the same panics, in O(1) per lookup and O(n log n) per sort:

* :class:`Positions` records where each value occurs, as Go's ``==`` tells values apart: equal
  dynamic types and equal values (``int64(1)`` is not ``float64(1)``); comparing two maps or
  two slices panics ("comparing uncomparable type"), while a map and a string are merely
  unequal. A lookup answers what the first-match scan would: the first equal position, or
  the position where the scan would have panicked.
* :func:`slice_stable` is ``sort.SliceStable`` step for step (insertion sort of 20-item
  blocks, then ``symMerge`` rounds, ``sort/zsortfunc.go``), so that even a comparator that is
  not a strict weak order (upstream's for items missing from the order list) yields Go's
  permutation; the block moves Go makes with swaps are list slices here (same result).
  :func:`sort_by_position` takes Python's stable sort when every item has its place, where
  any stable sort gives the same order.
* :func:`deduplicate` replays ``deduplicateScalars``' "overwrite a duplicate with the last
  item" removal with a position index instead of rescanning.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final, TypeVar

from svcnet.apiserver.patch.gofmt import go_type

JSON = Any
T = TypeVar("T")

UNCOMPARABLE: Final = frozenset({"map[string]interface {}", "[]interface {}"})
"""The dynamic types of decoded JSON that Go's ``==`` panics on."""


class GoPanic(Exception):
    """A runtime panic of the Go code followed here (the apiserver answers it 500)."""


def uncomparable(go_type_name: str) -> GoPanic:
    return GoPanic(f"runtime error: comparing uncomparable type {go_type_name}")


class Positions:
    """The positions of values in one list, ascending per value, keyed by Go's ``==``."""

    __slots__ = ("_at", "_odd")

    def __init__(self, values: Iterable[tuple[int, JSON]] = ()) -> None:
        self._at: dict[tuple[str, Any], deque[int]] = {}
        self._odd: dict[str, int] = {}  # uncomparable type → first position holding one
        for pos, value in values:
            self.add(pos, value)

    def add(self, pos: int, value: JSON) -> None:
        """Record ``value`` at ``pos``, which lies after every position recorded so far."""
        t = go_type(value)
        if t in UNCOMPARABLE:
            self._odd.setdefault(t, pos)
        else:
            self._at.setdefault((t, value), deque()).append(pos)

    def locate(self, value: JSON) -> tuple[int, bool]:
        """Where a first-match scan for ``value`` stops: (position, panics), or (-1, False).

        A scan for a map or slice panics at the first value of its own type (nothing before
        it can be equal); for any other value it stops at the first equal one.
        """
        t = go_type(value)
        if t in UNCOMPARABLE:
            pos = self._odd.get(t, -1)
            return pos, pos >= 0
        at = self._at.get((t, value))
        return (at[0] if at else -1), False

    def first(self, value: JSON) -> int:
        """The first position holding ``value`` (-1: none); raises where the scan panics."""
        pos, panics = self.locate(value)
        if panics:
            raise uncomparable(go_type(value))
        return pos

    def pop_first(self, value: JSON) -> None:
        """The first position of (comparable) ``value`` no longer holds it."""
        at = self._at.get((go_type(value), value))
        if at:
            at.popleft()

    def take(self, value: JSON) -> list[int]:
        """Every position of ``value``, ascending, forgotten from now on (what deleting each
        first match until none is left removes); raises where the first scan panics."""
        if self.first(value) < 0:
            return []
        return list(self._at.pop((go_type(value), value)))


# sort.SliceStable
# ============================================================================================

_BLOCK: Final = 20


def slice_stable(items: Sequence[T], less: Callable[[T, T], bool]) -> list[T]:
    """``sort.SliceStable(items, less)``: the permutation Go's algorithm produces."""
    a = list(items)
    n = len(a)
    block = _BLOCK
    lo, hi = 0, block
    while hi <= n:
        _insertion_sort(a, lo, hi, less)
        lo, hi = hi, hi + block
    _insertion_sort(a, lo, n, less)
    while block < n:
        lo, hi = 0, 2 * block
        while hi <= n:
            _sym_merge(a, lo, lo + block, hi, less)
            lo, hi = hi, hi + 2 * block
        if lo + block < n:
            _sym_merge(a, lo, lo + block, n, less)
        block *= 2
    return a


def _insertion_sort(a: list[T], lo: int, hi: int, less: Callable[[T, T], bool]) -> None:
    for i in range(lo + 1, hi):
        j = i
        while j > lo and less(a[j], a[j - 1]):
            a[j], a[j - 1] = a[j - 1], a[j]
            j -= 1


def _sym_merge(a: list[T], lo: int, m: int, hi: int, less: Callable[[T, T], bool]) -> None:
    """SymMerge of the sorted runs a[lo:m] and a[m:hi], as ``symMerge_func``."""
    if m - lo == 1:
        # a[lo] goes before the first of a[m:hi] that is not less than it.
        i, j = m, hi
        while i < j:
            h = (i + j) >> 1
            if less(a[h], a[lo]):
                i = h + 1
            else:
                j = h
        a[lo:i] = [*a[lo + 1:i], a[lo]]
        return
    if hi - m == 1:
        # a[m] goes before the first of a[lo:m] that it is less than.
        i, j = lo, m
        while i < j:
            h = (i + j) >> 1
            if not less(a[m], a[h]):
                i = h + 1
            else:
                j = h
        a[i:m + 1] = [a[m], *a[i:m]]
        return
    mid = (lo + hi) >> 1
    n = mid + m
    start, r = (n - hi, mid) if m > mid else (lo, m)
    p = n - 1
    while start < r:
        c = (start + r) >> 1
        if not less(a[p - c], a[c]):
            start = c + 1
        else:
            r = c
    end = n - start
    if start < m < end:
        a[start:end] = [*a[m:end], *a[start:m]]  # rotate_func: swap the two blocks
    if lo < start < mid:
        _sym_merge(a, lo, start, mid, less)
    if mid < end < hi:
        _sym_merge(a, mid, end, hi, less)


def sort_by_position(items: Sequence[T], places: Sequence[int | GoPanic]) -> list[T]:
    """``sort.SliceStable`` with normalizeSliceOrder's comparator, given each item's place in
    the order list (-1: missing; a GoPanic: looking it up panics)::

        less(i, j) = place(i) < place(j) if both are placed, else true

    The comparator is a strict weak order only when every item is placed; then Python's
    stable sort gives the same order. Otherwise Go's own algorithm decides.
    """
    placed = [p for p in places if isinstance(p, int) and p >= 0]
    if len(placed) == len(items):
        order = sorted(range(len(items)), key=placed.__getitem__)
        return [items[i] for i in order]

    def less(a: tuple[T, int | GoPanic], b: tuple[T, int | GoPanic]) -> bool:
        pa = a[1]
        if isinstance(pa, GoPanic):
            raise pa
        if pa >= 0:
            pb = b[1]
            if isinstance(pb, GoPanic):
                raise pb
            if pb >= 0:
                return pa < pb
        return True

    return [item for item, _ in slice_stable(list(zip(items, places, strict=True)), less)]


# deduplicateScalars
# ============================================================================================


def deduplicate(items: Sequence[T], key: Callable[[T], Hashable]) -> list[T]:
    """``deduplicateScalars``: for each item in turn, every later equal item is overwritten
    by the list's last item (the list shrinking by one each time); items equal under ``key``.

    Upstream's loop is O(n²); here each item's later duplicates are found from an index, so
    the same list comes out in O(n log n).
    """
    s = list(items)
    last = len(s) - 1
    where: dict[Hashable, set[int]] = {}
    for pos, v in enumerate(s):
        where.setdefault(key(v), set()).add(pos)
    i = 0
    while i < last:
        k = key(s[i])
        for j in sorted(p for p in where[k] if p > i):
            if j > last:
                break
            # s[j] == s[i]: Go copies s[last] over it, drops the end and looks at s[j] again;
            # duplicates at the end simply fall off.
            while last >= j and key(s[last]) == k:
                where[k].discard(last)
                last -= 1
            if last < j:
                break
            moved = s[last]
            where[key(moved)].discard(last)
            where[key(moved)].add(j)
            where[k].discard(j)
            s[j] = moved
            last -= 1
        i += 1
    return s[:last + 1]
