"""A pure bitmap over a range's offsets, and the two-band choice of the next free offset.

``next_free`` reproduces Kubernetes' allocation order: start at a random offset inside the
*dynamic* band and scan upward with wrap-around for a free offset; only if that band is full,
do the same inside the *static* band. Ranges flagged ``lowest_first`` (LoadBalancer pools) scan
from offset 0 instead. The bitmap is only a cache of what the store holds: the store decides.

Two shapes, one behaviour (:func:`new_bitmap` picks): :class:`Bitmap` is a dense bit string,
right for IPv4 ranges and node ports; :class:`SparseBitmap` keeps only the taken offsets, for
IPv6 service CIDRs, which upstream's IPAddress allocator (ipallocator.go) serves whole, up to
2^64 - 1 addresses for a /64, where a bit string could never be held.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

#: Ranges larger than this keep a set of taken offsets instead of a bit string.
DENSE_LIMIT = 1 << 24


def new_bitmap(size: int) -> Bitmap | SparseBitmap:
    return Bitmap(size) if size <= DENSE_LIMIT else SparseBitmap(size)


class _TwoBands:
    """The choice of the next free offset, over any ``_scan``."""

    __slots__ = ()
    size: int

    def _scan(self, lo: int, hi: int, start: int) -> int | None:
        raise NotImplementedError

    def next_free(self, static_size: int, rng: random.Random, *,
                  lowest_first: bool = False, allowed: range | None = None) -> int | None:
        """The offset to try next, or None if the range is full."""
        if allowed is not None:
            return self._scan(allowed.start, allowed.stop, allowed.start)
        if lowest_first:
            return self._scan(0, self.size, 0)
        if static_size < self.size:
            start = rng.randrange(static_size, self.size)
            found = self._scan(static_size, self.size, start)
            if found is not None:
                return found
        if static_size > 0:
            return self._scan(0, static_size, rng.randrange(0, static_size))
        return None


class SparseBitmap(_TwoBands):
    """The taken offsets of a huge range, as a set (same interface as :class:`Bitmap`)."""

    __slots__ = ("_taken", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._taken: set[int] = set()

    def copy(self) -> SparseBitmap:
        out = SparseBitmap(self.size)
        out._taken = set(self._taken)
        return out

    def has(self, offset: int) -> bool:
        return offset in self._taken

    def set(self, offset: int) -> bool:
        """Mark ``offset``; False if it was already marked."""
        if not 0 <= offset < self.size:
            raise IndexError(offset)
        if offset in self._taken:
            return False
        self._taken.add(offset)
        return True

    def clear(self, offset: int) -> bool:
        if offset not in self._taken:
            return False
        self._taken.discard(offset)
        return True

    def free(self) -> int:
        return self.size - len(self._taken)

    def __len__(self) -> int:
        return len(self._taken)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._taken))

    def _scan(self, lo: int, hi: int, start: int) -> int | None:
        """First clear offset in [lo, hi) at or after ``start``, wrapping once: at most one
        probe more than there are taken offsets in the window."""
        width = hi - lo
        if width <= 0 or sum(1 for o in self._taken if lo <= o < hi) >= width:
            return None
        off = start
        while off in self._taken:
            off = lo + (off - lo + 1) % width
        return off


class Bitmap(_TwoBands):
    __slots__ = ("_bits", "_count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._bits = 0
        self._count = 0

    def copy(self) -> Bitmap:
        out = Bitmap(self.size)
        out._bits, out._count = self._bits, self._count
        return out

    def has(self, offset: int) -> bool:
        return bool(self._bits >> offset & 1)

    def set(self, offset: int) -> bool:
        """Mark ``offset``; False if it was already marked."""
        if not 0 <= offset < self.size:
            raise IndexError(offset)
        if self.has(offset):
            return False
        self._bits |= 1 << offset
        self._count += 1
        return True

    def clear(self, offset: int) -> bool:
        if not self.has(offset):
            return False
        self._bits &= ~(1 << offset)
        self._count -= 1
        return True

    def free(self) -> int:
        return self.size - self._count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        bits, offset = self._bits, 0
        while bits:
            low = bits & -bits
            offset = low.bit_length() - 1
            yield offset
            bits ^= low

    def _scan(self, lo: int, hi: int, start: int) -> int | None:
        """First clear offset in [lo, hi) at or after ``start``, wrapping once."""
        if hi <= lo:
            return None
        width = hi - lo
        # All ones across the window means full: skip the scan.
        window = (self._bits >> lo) & ((1 << width) - 1)
        if window == (1 << width) - 1:
            return None
        for i in range(width):
            off = lo + (start - lo + i) % width
            if not self._bits >> off & 1:
                return off
        return None
