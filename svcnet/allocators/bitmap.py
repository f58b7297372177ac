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
import re
from collections.abc import Iterator

#: Ranges larger than this keep a set of taken offsets instead of a bit string.
DENSE_LIMIT = 1 << 24

_NOT_FULL = re.compile(rb"[^\xff]")
_NOT_EMPTY = re.compile(rb"[^\x00]")


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
    """A dense bit string in a bytearray (bit ``o`` is bit ``o & 7`` of byte ``o >> 3``):
    every test and change is O(1), and the scan for a clear bit skips full bytes at C speed
    (a Python int holding the bits, as before, made each of them a copy of the whole string:
    128 KiB for a /12 service CIDR, several times per allocation)."""

    __slots__ = ("_bytes", "_count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._bytes = bytearray((size + 7) >> 3)
        self._count = 0

    def copy(self) -> Bitmap:
        out = Bitmap(self.size)
        out._bytes, out._count = bytearray(self._bytes), self._count
        return out

    def has(self, offset: int) -> bool:
        return 0 <= offset < self.size and bool(self._bytes[offset >> 3] >> (offset & 7) & 1)

    def set(self, offset: int) -> bool:
        """Mark ``offset``; False if it was already marked."""
        if not 0 <= offset < self.size:
            raise IndexError(offset)
        if self.has(offset):
            return False
        self._bytes[offset >> 3] |= 1 << (offset & 7)
        self._count += 1
        return True

    def clear(self, offset: int) -> bool:
        if not self.has(offset):
            return False
        self._bytes[offset >> 3] &= ~(1 << (offset & 7)) & 0xFF
        self._count -= 1
        return True

    def free(self) -> int:
        return self.size - self._count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for match in _NOT_EMPTY.finditer(self._bytes):
            byte, base = match.group()[0], match.start() << 3
            for bit in range(8):
                if byte >> bit & 1:
                    yield base + bit

    def _first_clear(self, lo: int, hi: int) -> int | None:
        """The first clear offset in [lo, hi)."""
        off = lo
        while off < hi:
            if off & 7 == 0:  # at a byte's start: skip the full bytes
                found = _NOT_FULL.search(self._bytes, off >> 3, (hi + 7) >> 3)
                if found is None:
                    return None
                off = found.start() << 3
            if not self._bytes[off >> 3] >> (off & 7) & 1:
                return off if off < hi else None
            off += 1
        return None

    def _scan(self, lo: int, hi: int, start: int) -> int | None:
        """First clear offset in [lo, hi) at or after ``start``, wrapping once."""
        if hi <= lo:
            return None
        found = self._first_clear(start, hi)
        return found if found is not None else self._first_clear(lo, start)
