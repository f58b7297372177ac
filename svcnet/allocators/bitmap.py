"""A pure bitmap over a range's offsets, and the two-band choice of the next free offset.

``next_free`` reproduces Kubernetes' allocation order: start at a random offset inside the
*dynamic* band and scan upward with wrap-around for a free offset; only if that band is full,
do the same inside the *static* band. Ranges flagged ``lowest_first`` (LoadBalancer pools) scan
from offset 0 instead. The bitmap is only a cache of what the store holds: the store decides.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


class Bitmap:
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
